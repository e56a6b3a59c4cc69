//! `mailsrv_cert_check`: mailsrv's chain and RFC 7817 / RFC 9525 name check for clients
//! that keep their own TLS stack (OpenSSL, NSS, GnuTLS) and hand over the peer's chain.

use std::ffi::CString;
use std::os::raw::c_char;

use super::boundary::{ffi_boundary, free_box, try_mut, try_ref};
use super::config::call_flags;
use super::ctx::mailsrv_ctx;
use super::errbuf::{finish, with_errbuf};
use super::identity::mailsrv_identity;
use super::status::mailsrv_status;
use super::strings::cstring;
use crate::core::Error;
use crate::core::cert::identity::{MatchKind, ReferenceId};
use crate::core::cert::verifier::CertVerdict;

/// A successful certificate check (opaque, immutable, owned by the caller).
pub struct mailsrv_cert_result {
    matched: CString,
    kind: mailsrv_match_kind,
    path_len: usize,
}

/// Which kind of reference identifier a certificate matched.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub enum mailsrv_match_kind {
    /// A DNS-ID, exactly.
    DnsId = 1,
    /// A DNS-ID through a `*.` wildcard in the certificate.
    DnsIdWildcard = 2,
    /// An SRV-ID for the same service.
    SrvId = 3,
    /// An SRV-ID for the sibling service (MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE).
    SrvIdSibling = 4,
    /// An IP-ID (iPAddress SAN).
    IpId = 5,
    /// A subject CN (MAILSRV_FLAG_LEGACY_CN).
    LegacyCn = 6,
}

impl mailsrv_cert_result {
    fn new(v: CertVerdict) -> Self {
        let kind = match (&v.matched.reference, v.matched.kind) {
            (_, MatchKind::LegacyCn) => mailsrv_match_kind::LegacyCn,
            (ReferenceId::IpId(_), _) => mailsrv_match_kind::IpId,
            (ReferenceId::SrvId { .. }, MatchKind::SiblingService) => {
                mailsrv_match_kind::SrvIdSibling
            }
            (ReferenceId::SrvId { .. }, _) => mailsrv_match_kind::SrvId,
            (ReferenceId::DnsId(_), MatchKind::Wildcard) => mailsrv_match_kind::DnsIdWildcard,
            (ReferenceId::DnsId(_), _) => mailsrv_match_kind::DnsId,
        };
        mailsrv_cert_result {
            matched: cstring(&v.matched.to_string()),
            kind,
            path_len: v.chain.path().len(),
        }
    }
}

/// Checks a server's certificate chain the way mailsrv's own connections do: path
/// validation to a trusted CA (the context's CA file, else the system store) with
/// server-auth usage and validity dates, then the leaf's key (one mailsrv's TLS can use:
/// RSA 2048 to 8192 bits, ECDSA P-256/P-384 or Ed25519, else BAD_CERTIFICATE), then name
/// matching against `identity` (DNS-IDs, SRV-IDs, IP-IDs; CN only with
/// MAILSRV_FLAG_LEGACY_CN; no wildcard over a public suffix), with CA name constraints
/// applied to SRV-IDs too. Blocking, no network.
///
/// `certs[i]` / `cert_lens[i]` (borrowed): `n` DER certificates, the leaf first, then the
/// intermediates the server sent. `identity` (borrowed, not empty). `flags`:
/// MAILSRV_FLAG_LEGACY_CN, MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE (OR'ed with the context's),
/// MAILSRV_FLAG_NAMES_ONLY.
///
/// Names-only mode (MAILSRV_FLAG_NAMES_ONLY), for a client whose own TLS stack already
/// validated the path against its own trust store: no path validation, no dates, no key
/// check and no CA store (NO_TRUST_ANCHORS never comes back); only the identity of
/// `certs[0]`, with the dNSName name constraints of the other certificates given (pass the
/// path your stack validated) applied to SRV-IDs and CN-IDs, which OpenSSL, GnuTLS and NSS
/// do not read. mailsrv_cert_result_path_len() is then 0. Use it only after your stack's
/// own verification succeeded: on its own it proves nothing about who holds the key.
/// `out` (out, not NULL): owned result on success, freed with mailsrv_cert_result_free();
/// NULL on failure. `errbuf`/`errlen` (may be NULL/0): the precise reason on failure.
/// Returns OK (verified), CERT_EXPIRED, CERT_NOT_YET_VALID, UNKNOWN_ISSUER, NAME_MISMATCH,
/// NAME_CONSTRAINT, CERT_PURPOSE, BAD_CERTIFICATE, NO_TRUST_ANCHORS, IO (CA file),
/// NULL_ARG or INVALID_ARG (n == 0, empty identity, unknown flags).
/// Since 0.1.
///
/// # Safety
/// `certs` and `cert_lens` NULL or arrays of `n` elements, each `certs[i]` pointing to
/// `cert_lens[i]` readable bytes; other pointers NULL or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_cert_check(
    ctx: *mut mailsrv_ctx,
    certs: *const *const u8,
    cert_lens: *const usize,
    n: usize,
    identity: *const mailsrv_identity,
    flags: u32,
    out: *mut *mut mailsrv_cert_result,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let identity = try_ref!(identity);
        if certs.is_null() || cert_lens.is_null() {
            return mailsrv_status::NullArg;
        }
        let Some(flags) = call_flags(flags) else { return mailsrv_status::InvalidArg };
        let chain = unsafe { copy_chain(certs, cert_lens, n) };
        let result = chain.and_then(|c| {
            if flags.names_only {
                ctx.inner.check_cert_names(&c, &identity.inner, flags.match_options)
            } else {
                ctx.inner.check_cert(&c, &identity.inner, flags.match_options)
            }
        });
        finish(result, errbuf, errlen, |v| {
            *out = Box::into_raw(Box::new(mailsrv_cert_result::new(v)));
        })
    })}
}

/// Copies `n` borrowed DER buffers; a NULL entry or an empty chain is INVALID_ARG.
unsafe fn copy_chain(
    certs: *const *const u8,
    lens: *const usize,
    n: usize,
) -> crate::core::Result<Vec<Vec<u8>>> {
    if n == 0 {
        return Err(Error::InvalidArg("empty certificate chain".into()));
    }
    if n > 16 {
        return Err(Error::InvalidArg(
            "more than 16 certificates in a chain".into(),
        ));
    }
    let ptrs = unsafe { std::slice::from_raw_parts(certs, n) };
    let lens = unsafe { std::slice::from_raw_parts(lens, n) };
    ptrs.iter()
        .zip(lens)
        .enumerate()
        .map(|(i, (&p, &len))| {
            if p.is_null() || len == 0 {
                return Err(Error::InvalidArg(format!(
                    "certificate {i} is NULL or empty"
                )));
            }
            Ok(unsafe { std::slice::from_raw_parts(p, len) }.to_vec())
        })
        .collect()
}

/// Frees a certificate check result. NULL does nothing.
/// Since 0.1.
///
/// # Safety
/// `r` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_cert_result_free(r: *mut mailsrv_cert_result) {
    ffi_boundary! {
        unsafe { free_box(r) }
    }
}

/// The reference identifier that matched, as text: "SRV-ID _imaps.example.com",
/// "DNS-ID mail.example.net via DNS-ID *.example.net", "IP-ID 192.0.2.1". Borrowed.
/// Since 0.1.
///
/// # Safety
/// `r` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_cert_result_matched(
    r: *const mailsrv_cert_result,
) -> *const c_char {
    ffi_boundary! { try_ref!(r).matched.as_ptr() }
}

/// How the match was made (a mailsrv_match_kind value); 0 for NULL.
/// Since 0.1.
///
/// # Safety
/// `r` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_cert_result_kind(r: *const mailsrv_cert_result) -> u32 {
    ffi_boundary! { try_ref!(r).kind as u32 }
}

/// Length of the validated path: the leaf and the intermediates used (not the trust anchor);
/// 0 after a names-only check (MAILSRV_FLAG_NAMES_ONLY), which validates no path.
/// Since 0.1.
///
/// # Safety
/// `r` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_cert_result_path_len(r: *const mailsrv_cert_result) -> usize {
    ffi_boundary! { try_ref!(r).path_len }
}

/// The SHA-256 of a certificate's DER SubjectPublicKeyInfo, the value
/// mailsrv_connect_opts_add_pin_sha256() pins (and the data of a TLSA `x 1 1` record): for
/// a client that pins the key of a certificate the user accepted.
///
/// `der` borrowed, `len` bytes (one DER certificate). `out` (out, not NULL): 32 bytes,
/// written only on success.
/// Returns OK, NULL_ARG or BAD_CERTIFICATE (not a certificate).
/// Since 0.1.
///
/// # Safety
/// `der` NULL or `len` readable bytes; `out` NULL or 32 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_cert_spki_sha256(
    der: *const u8,
    len: usize,
    out: *mut u8,
) -> mailsrv_status {
    ffi_boundary! {
        if der.is_null() || out.is_null() {
            return mailsrv_status::NullArg;
        }
        let cert = unsafe { std::slice::from_raw_parts(der, len) };
        match crate::core::tls::connect::spki_sha256(cert) {
            Ok(d) => {
                unsafe { std::ptr::copy_nonoverlapping(d.as_ptr(), out, 32) };
                mailsrv_status::Ok
            }
            Err(e) => mailsrv_status::from_error(&e),
        }
    }
}
