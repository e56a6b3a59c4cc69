//! `mailsrv_autoconfigure` (+ `_async`): account setup in one call. From an email address,
//! every service's endpoints in preference order, each with its authenticity verdict.

use std::os::raw::{c_char, c_void};

use super::authenticity::mailsrv_authenticity;
use super::boundary::{ffi_boundary, free_box, try_mut, try_ref, try_str};
use super::config::call_flags;
use super::ctx::mailsrv_ctx;
use super::discovery::mailsrv_discovery;
use super::errbuf::{finish, with_errbuf};
use super::request::{UserData, deliver_to_c, mailsrv_request_id, started};
use super::status::mailsrv_status;
use crate::core::context::AutoConfig;

/// An account-setup result (opaque, immutable, owned by the caller).
pub struct mailsrv_autoconfig {
    discovery: mailsrv_discovery,
    /// Per service (discovery order), per endpoint: the verdict or why it could not be made.
    verdicts: Vec<Vec<Result<mailsrv_authenticity, mailsrv_status>>>,
}

impl mailsrv_autoconfig {
    fn new(a: AutoConfig) -> Self {
        let verdicts = a
            .verdicts
            .into_iter()
            .map(|per| {
                per.into_iter()
                    .map(|r| {
                        r.map(mailsrv_authenticity::new)
                            .map_err(|e| mailsrv_status::from_error(&e))
                    })
                    .collect()
            })
            .collect();
        mailsrv_autoconfig {
            discovery: mailsrv_discovery::new(a.discovery),
            verdicts,
        }
    }
}

/// Discovers every service of `address` and judges every endpoint found (DNSSEC, else the
/// TLS probe; see mailsrv_verify_srv_authenticity()), all at once, blocking. `flags`:
/// MAILSRV_FLAG_NO_PROBE. `out` (out, not NULL): owned, freed with mailsrv_autoconfig_free().
/// Returns OK, NULL_ARG, INVALID_ARG, TIMEOUT, NO_TRUST_ANCHORS.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_autoconfigure(
    ctx: *mut mailsrv_ctx,
    address: *const c_char,
    flags: u32,
    out: *mut *mut mailsrv_autoconfig,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let address = try_str!(address);
        let Some(flags) = call_flags(flags) else { return mailsrv_status::InvalidArg };
        finish(ctx.inner.autoconfigure(address, flags.autoconfig()), errbuf, errlen, |a| {
            *out = Box::into_raw(Box::new(mailsrv_autoconfig::new(a)));
        })
    })}
}

/// Completion of mailsrv_autoconfigure_async(): `result` owned, NULL unless OK.
#[allow(non_camel_case_types)]
pub type mailsrv_autoconfig_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        id: mailsrv_request_id,
        status: mailsrv_status,
        result: *mut mailsrv_autoconfig,
        detail: *const c_char,
    ),
>;

/// mailsrv_autoconfigure() without blocking: same leading arguments, then `cb`, `userdata`,
/// `id_out`. The callback runs exactly once.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_autoconfigure_async(
    ctx: *mut mailsrv_ctx,
    address: *const c_char,
    flags: u32,
    cb: mailsrv_autoconfig_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let Some(cb) = cb else { return mailsrv_status::NullArg };
        let address = try_str!(address);
        let Some(flags) = call_flags(flags) else { return mailsrv_status::InvalidArg };
        let deliver = deliver_to_c(cb, UserData(userdata), mailsrv_autoconfig::new);
        started(ctx.inner.autoconfigure_async(address, flags.autoconfig(), deliver), id_out)
    }
}

/// Frees an account-setup result. NULL does nothing.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_autoconfig_free(a: *mut mailsrv_autoconfig) {
    ffi_boundary! {
        unsafe { free_box(a) }
    }
}

/// The discovery part (borrowed, valid until the result is freed): services, states and
/// endpoints in preference order, exactly as mailsrv_srv_discover() returns them.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_autoconfig_discovery(
    a: *const mailsrv_autoconfig,
) -> *const mailsrv_discovery {
    ffi_boundary! { &try_ref!(a).discovery as *const _ }
}

/// The verdict on endpoint `endpoint` of service number `service` (the indexes of
/// mailsrv_discovery_service_get() and mailsrv_srv_set_endpoint_get()), borrowed; NULL when
/// out of range or when the check itself failed (see mailsrv_autoconfig_verdict_status()).
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_autoconfig_verdict(
    a: *const mailsrv_autoconfig,
    service: usize,
    endpoint: usize,
) -> *const mailsrv_authenticity {
    ffi_boundary! {
        match try_ref!(a).verdicts.get(service).and_then(|v| v.get(endpoint)) {
            Some(Ok(v)) => v as *const _,
            _ => std::ptr::null(),
        }
    }
}

/// Why the check of that endpoint failed (TIMEOUT, ...); OK when a verdict exists;
/// NOT_FOUND when out of range.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_autoconfig_verdict_status(
    a: *const mailsrv_autoconfig,
    service: usize,
    endpoint: usize,
) -> mailsrv_status {
    ffi_boundary! {
        match try_ref!(a).verdicts.get(service).and_then(|v| v.get(endpoint)) {
            Some(Ok(_)) => mailsrv_status::Ok,
            Some(Err(s)) => *s,
            None => mailsrv_status::NotFound,
        }
    }
}
