//! `mailsrv_identity`: the reference identifiers a certificate must prove (RFC 6125 §6,
//! RFC 7817 §3, RFC 9525), built by the caller independently of any certificate.

use std::os::raw::c_char;

use super::boundary::{ffi_boundary, free_box, try_mut, try_ref, try_str};
use super::status::mailsrv_status;
use crate::core::cert::identity::{ReferenceId, ReferenceIdentity};

/// A list of reference identifiers (opaque). Single-threaded while being built; read-only
/// (and shareable) once handed to a call, which copies what it needs.
pub struct mailsrv_identity {
    pub(crate) inner: ReferenceIdentity,
}

fn added(r: crate::core::Result<()>) -> mailsrv_status {
    match r {
        Ok(()) => mailsrv_status::Ok,
        Err(e) => mailsrv_status::from_error(&e),
    }
}

/// Creates an empty reference identity. `out` (out, not NULL): owned, freed with
/// mailsrv_identity_free(); NULL on failure. Returns OK or NULL_ARG.
/// Since 0.1.
///
/// # Safety
/// `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_identity_new(out: *mut *mut mailsrv_identity) -> mailsrv_status {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = Box::into_raw(Box::new(mailsrv_identity { inner: ReferenceIdentity::new() }));
        mailsrv_status::Ok
    }
}

/// Frees a reference identity. NULL does nothing.
/// Since 0.1.
///
/// # Safety
/// `id` NULL or from mailsrv_identity_new(), not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_identity_free(id: *mut mailsrv_identity) {
    ffi_boundary! {
        unsafe { free_box(id) }
    }
}

/// Adds a DNS-ID: a host or domain name the certificate must carry as a dNSName
/// (wildcards in the certificate match one left-most label). IDNs are converted to
/// A-labels, one trailing dot is dropped, case is folded. IP literals are refused: use
/// mailsrv_identity_add_ip(). Returns OK, NULL_ARG or INVALID_ARG.
/// Since 0.1.
///
/// # Safety
/// `id` NULL or valid; `name` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_identity_add_dns_id(
    id: *mut mailsrv_identity,
    name: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let id = try_mut!(id);
        let name = try_str!(name);
        added(id.inner.add_dns_id(name))
    }
}

/// Adds an SRV-ID (RFC 4985): `service` is one of "imap", "imaps", "pop3", "pop3s",
/// "submission", "submissions" (leading "_" allowed), `domain` the mail domain. It matches
/// only a certificate SRVName `_service.domain` for the same service (the sibling service
/// only with MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE), never a dNSName, never a wildcard.
/// Returns OK, NULL_ARG or INVALID_ARG.
/// Since 0.1.
///
/// # Safety
/// `id` NULL or valid; strings NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_identity_add_srv_id(
    id: *mut mailsrv_identity,
    service: *const c_char,
    domain: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let id = try_mut!(id);
        let service = try_str!(service);
        let domain = try_str!(domain);
        added(id.inner.add_srv_id(service, domain))
    }
}

/// Adds an IP-ID: an IPv4 or IPv6 address ("192.0.2.1", "2001:db8::1", "[2001:db8::1]")
/// that must appear as an iPAddress SAN (T-REF-08). Returns OK, NULL_ARG or INVALID_ARG.
/// Since 0.1.
///
/// # Safety
/// `id` NULL or valid; `ip` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_identity_add_ip(
    id: *mut mailsrv_identity,
    ip: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let id = try_mut!(id);
        let ip = try_str!(ip);
        match ReferenceId::from_host(ip) {
            Ok(r @ ReferenceId::IpId(_)) => {
                id.inner.push(r);
                mailsrv_status::Ok
            }
            _ => mailsrv_status::InvalidArg,
        }
    }
}

/// How many reference identifiers `id` holds; 0 for NULL.
/// Since 0.1.
///
/// # Safety
/// `id` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_identity_len(id: *const mailsrv_identity) -> usize {
    ffi_boundary! { try_ref!(id).inner.len() }
}
