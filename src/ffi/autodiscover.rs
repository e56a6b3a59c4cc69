//! The Exchange Autodiscover callback (`mailsrv_config_set_autodiscover_cb`) and the
//! `mailsrv_credentials` object it fills: how a client lets Autodiscover follow a URL
//! outside the mail domain, or send credentials, and nothing else.

use std::ffi::CString;
use std::os::raw::{c_char, c_void};

use super::boundary::{ffi_boundary, try_mut, try_str};
use super::status::mailsrv_status;
use crate::core::account::{AutodiscoverAnswer, AutodiscoverAsk, AutodiscoverHook};

/// What Exchange Autodiscover asks the mailsrv_autodiscover_cb.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub enum mailsrv_autodiscover_ask {
    /// May the request (it carries the address) go to `url`, outside the registrable domain
    /// of the address's domain? `why` says how the URL was found (a plain-HTTP redirect, an
    /// SRV record that is not DNSSEC-signed, a RedirectAddr answer, ...). Return true to
    /// follow it. `credentials` is NULL.
    Follow = 1,
    /// `url` (HTTPS, a host already allowed) answered 401. To send credentials there (HTTP
    /// Basic over TLS), call mailsrv_credentials_set() and return true; false sends none.
    Credentials = 2,
}

/// Credentials the callback hands over (opaque; borrowed for the callback only).
pub struct mailsrv_credentials {
    user: Option<String>,
    password: Option<String>,
}

/// The Autodiscover callback. `url`, `address` and `why` are borrowed for the call and never
/// NULL; `credentials` is non-NULL only for MAILSRV_AUTODISCOVER_ASK_CREDENTIALS. It runs on
/// a library thread (never the dispatch queue), possibly on several threads at once for
/// concurrent discoveries, and may block (a prompt): the discovery's deadline keeps
/// running. It must not call mailsrv functions other than mailsrv_credentials_set()
/// (blocking ones return IN_CALLBACK). mailsrv_ctx_free() waits for a call in flight.
#[allow(non_camel_case_types)]
pub type mailsrv_autodiscover_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        ask: u32,
        url: *const c_char,
        address: *const c_char,
        why: *const c_char,
        credentials: *mut mailsrv_credentials,
    ) -> bool,
>;

/// Sets the user name and password the Autodiscover callback hands over (copied). Only
/// valid inside the callback, on the `credentials` it received.
///
/// Returns OK, NULL_ARG or INVALID_ARG (not UTF-8, or a user name with ':').
/// Since 0.1.
///
/// # Safety
/// `credentials` from the callback; `user` and `password` NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_credentials_set(
    credentials: *mut mailsrv_credentials,
    user: *const c_char,
    password: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let c = try_mut!(credentials);
        let user = try_str!(user);
        let password = try_str!(password);
        // RFC 7617: the user-id of Basic cannot contain a colon.
        if user.contains(':') {
            return mailsrv_status::InvalidArg;
        }
        c.user = Some(user.to_string());
        c.password = Some(password.to_string());
        mailsrv_status::Ok
    }
}

/// The C function and its userdata.
struct CHook {
    cb: unsafe extern "C" fn(
        *mut c_void,
        u32,
        *const c_char,
        *const c_char,
        *const c_char,
        *mut mailsrv_credentials,
    ) -> bool,
    userdata: *mut c_void,
}

// SAFETY: the pointer is only passed back to the caller's own function, which the header
// documents as called from library threads, possibly at once.
unsafe impl Send for CHook {}
unsafe impl Sync for CHook {}

impl CHook {
    fn call(&self, ask: &AutodiscoverAsk) -> AutodiscoverAnswer {
        let c = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        let (kind, url, address, why) = match ask {
            AutodiscoverAsk::Follow { url, address, why } => {
                (mailsrv_autodiscover_ask::Follow, url, address, why.clone())
            }
            AutodiscoverAsk::Credentials { url, address } => (
                mailsrv_autodiscover_ask::Credentials,
                url,
                address,
                format!("{url} answered 401 (credentials wanted)"),
            ),
        };
        let (url, address, why) = (c(url), c(address), c(&why));
        let mut creds = mailsrv_credentials {
            user: None,
            password: None,
        };
        let creds_ptr = match kind {
            mailsrv_autodiscover_ask::Credentials => &mut creds as *mut mailsrv_credentials,
            mailsrv_autodiscover_ask::Follow => std::ptr::null_mut(),
        };
        let yes = unsafe {
            (self.cb)(
                self.userdata,
                kind as u32,
                url.as_ptr(),
                address.as_ptr(),
                why.as_ptr(),
                creds_ptr,
            )
        };
        match (kind, yes, creds) {
            (_, false, _) => AutodiscoverAnswer::No,
            (mailsrv_autodiscover_ask::Follow, true, _) => AutodiscoverAnswer::Yes,
            (
                mailsrv_autodiscover_ask::Credentials,
                true,
                mailsrv_credentials {
                    user: Some(user),
                    password: Some(password),
                },
            ) => AutodiscoverAnswer::Credentials { user, password },
            _ => AutodiscoverAnswer::No,
        }
    }
}

/// The core hook that calls `cb` with `userdata`.
pub(crate) fn hook(
    cb: unsafe extern "C" fn(
        *mut c_void,
        u32,
        *const c_char,
        *const c_char,
        *const c_char,
        *mut mailsrv_credentials,
    ) -> bool,
    userdata: *mut c_void,
) -> AutodiscoverHook {
    let h = CHook { cb, userdata };
    AutodiscoverHook::new(move |ask| h.call(ask))
}
