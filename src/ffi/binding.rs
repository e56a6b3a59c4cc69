//! `mailsrv_binding`: how every connection that carries the user's credentials must be made
//! (host, port, security, SNI, reference identity, TLSA), and
//! `mailsrv_connect_with_binding` (+ `_async`), which makes exactly that connection.

use std::ffi::CString;
use std::os::raw::{c_char, c_void};

use super::boundary::{ffi_boundary, free_box, try_mut, try_ref, try_str};
use super::ctx::mailsrv_ctx;
use super::errbuf::{finish, with_errbuf};
use super::request::{UserData, deliver_to_c, mailsrv_request_id, started};
use super::status::mailsrv_status;
use super::stream::{mailsrv_connect_cb, mailsrv_tls_stream, security_out};
use super::strings::cstring;
use crate::core::verdict::binding::Binding;

/// The connection parameters under which a verdict's evidence holds (opaque, immutable).
/// Borrowed from a verdict or a change decision, or owned (from_text, clone).
pub struct mailsrv_binding {
    pub(crate) inner: Binding,
    host: CString,
    sni: Option<CString>,
    identity: CString,
    text: CString,
}

impl mailsrv_binding {
    pub(crate) fn new(b: Binding) -> Self {
        let ids: Vec<String> = b.identity.ids().iter().map(|i| i.to_string()).collect();
        mailsrv_binding {
            host: cstring(&b.host),
            sni: b.sni.as_deref().map(cstring),
            identity: cstring(&ids.join(", ")),
            text: cstring(&b.to_text()),
            inner: b,
        }
    }

    /// The borrowed pointer C gets for an optional binding.
    pub(crate) fn ptr(b: &Option<Self>) -> *const Self {
        b.as_ref().map_or(std::ptr::null(), |b| b as *const Self)
    }
}

/// Reads a binding back from its text (mailsrv_binding_text()), as stored with an account.
/// `out` (out, not NULL): owned, freed with mailsrv_binding_free(); NULL on error.
/// Returns OK, NULL_ARG or INVALID_ARG (unknown format version, missing or bad field; the
/// reason in errbuf).
/// Since 0.1.
///
/// # Safety
/// `text` NULL or NUL-terminated; `out` NULL or writable; `errbuf` NULL or `errlen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_from_text(
    text: *const c_char,
    out: *mut *mut mailsrv_binding,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let text = try_str!(text);
        finish(Binding::from_text(text), errbuf, errlen, |b| {
            *out = Box::into_raw(Box::new(mailsrv_binding::new(b)));
        })
    })}
}

/// An owned copy of a (borrowed) binding, to keep after its verdict or decision is freed.
/// `out` (out, not NULL): owned, freed with mailsrv_binding_free(). Returns OK or NULL_ARG.
/// Since 0.1.
///
/// # Safety
/// `b` NULL or valid; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_clone(
    b: *const mailsrv_binding,
    out: *mut *mut mailsrv_binding,
) -> mailsrv_status {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let b = try_ref!(b);
        *out = Box::into_raw(Box::new(mailsrv_binding::new(b.inner.clone())));
        mailsrv_status::Ok
    }
}

/// Frees an owned binding (from mailsrv_binding_from_text() or _clone()). NULL does
/// nothing. Never pass a borrowed one.
/// Since 0.1.
///
/// # Safety
/// `b` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_free(b: *mut mailsrv_binding) {
    ffi_boundary! { unsafe { free_box(b) } }
}

/// The binding as one line of text, to store with the account and read back with
/// mailsrv_binding_from_text(). Stable across versions of the same format word
/// (`mailsrv-binding-1 service=imaps host=... port=... sni=... identity=... dane=no`).
/// Borrowed.
/// Since 0.1.
///
/// # Safety
/// `b` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_text(b: *const mailsrv_binding) -> *const c_char {
    ffi_boundary! { try_ref!(b).text.as_ptr() }
}

/// The service (one mailsrv_service value); 0 for NULL.
/// Since 0.1.
///
/// # Safety
/// `b` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_service(b: *const mailsrv_binding) -> u32 {
    ffi_boundary! { try_ref!(b).inner.service.bit() }
}

/// The host to connect to (A-label name). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `b` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_host(b: *const mailsrv_binding) -> *const c_char {
    ffi_boundary! { try_ref!(b).host.as_ptr() }
}

/// The port; 0 for NULL.
/// Since 0.1.
///
/// # Safety
/// `b` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_port(b: *const mailsrv_binding) -> u16 {
    ffi_boundary! { try_ref!(b).inner.port }
}

/// How TLS starts (a mailsrv_security value: IMPLICIT_TLS_IMAP/_POP3/_SMTP or a STARTTLS
/// mode); 0 for NULL.
/// Since 0.1.
///
/// # Safety
/// `b` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_security(b: *const mailsrv_binding) -> u32 {
    ffi_boundary! {
        let b = &try_ref!(b).inner;
        security_out(b.security(), Some(b.service.protocol())) as u32
    }
}

/// The TLS server name (SNI) the connection sends. It is the mail domain, not the host,
/// when the evidence was the TLS probe and the host lies outside the mail domain: only a
/// session that starts that way reaches the provider the probe proved. Borrowed; NULL when
/// no SNI is sent.
/// Since 0.1.
///
/// # Safety
/// `b` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_sni(b: *const mailsrv_binding) -> *const c_char {
    ffi_boundary! { try_ref!(b).sni.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()) }
}

/// The reference identity the certificate must prove, as text ("SRV-ID _imaps.example.com"
/// or "DNS-ID mail.example.net"; several joined by ", "). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `b` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_identity(b: *const mailsrv_binding) -> *const c_char {
    ffi_boundary! { try_ref!(b).identity.as_ptr() }
}

/// True when every connection looks up the host's TLSA records (DNSSEC) and, when a secure
/// usable set exists, accepts only a certificate they match (DANE, RFC 7671); a lookup that
/// cannot be judged refuses the connection. False for NULL.
/// Since 0.1.
///
/// # Safety
/// `b` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_binding_dane(b: *const mailsrv_binding) -> bool {
    ffi_boundary! { try_ref!(b).inner.dane }
}

/// Connects exactly as `binding` says and returns a verified TLS stream, blocking: the
/// host and port, the service's security mode and protocol (the greeting must be that
/// protocol's; the IANA ALPN id is offered for IMAP and POP3), the binding's SNI and
/// reference identity with strict matching (the context's LEGACY_CN never applies), and,
/// when mailsrv_binding_dane() is true, the TLSA records enforced instead of PKIX. This is
/// the connection to send the user's credentials on.
///
/// `binding` (borrowed, not NULL). `flags`: reserved, must be 0.
/// `out` (out, not NULL): owned stream, freed with mailsrv_tls_stream_free(); NULL on error.
/// Returns OK; NULL_ARG; INVALID_ARG; DNS errors (BOGUS, INDETERMINATE, TIMEOUT: a TLSA
/// state that cannot be judged refuses the connection); CONNECT_FAILED; PROTOCOL (including
/// a server of another protocol); DANE_MISMATCH; the precise certificate status; HANDSHAKE.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_with_binding(
    ctx: *mut mailsrv_ctx,
    binding: *const mailsrv_binding,
    flags: u32,
    out: *mut *mut mailsrv_tls_stream,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let binding = try_ref!(binding);
        if flags != 0 {
            return mailsrv_status::InvalidArg;
        }
        finish(ctx.inner.connect_bound(&binding.inner), errbuf, errlen, |c| {
            *out = Box::into_raw(Box::new(mailsrv_tls_stream::from_connection(c)));
        })
    })}
}

/// mailsrv_connect_with_binding() without blocking: same leading arguments, then `cb` (not
/// NULL; the mailsrv_connect_cb of mailsrv_connect_with_sni_async()), `userdata`, `id_out`
/// (may be NULL). The binding is copied: it may be freed once this returns.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_with_binding_async(
    ctx: *mut mailsrv_ctx,
    binding: *const mailsrv_binding,
    flags: u32,
    cb: mailsrv_connect_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let binding = try_ref!(binding);
        let Some(cb) = cb else { return mailsrv_status::NullArg };
        if flags != 0 {
            return mailsrv_status::InvalidArg;
        }
        let deliver = deliver_to_c(cb, UserData(userdata), mailsrv_tls_stream::from_connection);
        started(ctx.inner.connect_bound_async(&binding.inner, deliver), id_out)
    }
}
