//! `mailsrv_rustls_verify_server_cert`: mailsrv's certificate check as a rustls-ffi
//! server-certificate verifier callback, for C clients that already do their TLS through
//! rustls-ffi (curl's rustls backend, ...). One line switches such a client over:
//!
//! ```c
//! rustls_client_config_builder_dangerous_set_certificate_verifier(b, mailsrv_rustls_verify_server_cert);
//! rustls_connection_set_userdata(conn, verifier);   /* a mailsrv_rustls_verifier */
//! ```
//!
//! The verdict comes from the same code as `mailsrv_cert_check` and `mailsrv_connect_with_sni`:
//! [`MailVerifier`] (chain first, then RFC 7817 / RFC 9525 / SRV-ID matching with the CA
//! name-constraint filter). The server name rustls passes is not an identity input: the
//! verifier's `mailsrv_identity` decides, exactly like [`MailVerifier`].
//!
//! The callback's code is a function of mailsrv's verdict (the `mailsrv_status` that
//! `mailsrv_cert_check` returns for the same chain), see `rustls_code`:
//!
//! | mailsrv_status     | rustls_result                                                       |
//! |--------------------|---------------------------------------------------------------------|
//! | OK                 | RUSTLS_RESULT_OK                                                    |
//! | CERT_EXPIRED       | RUSTLS_RESULT_CERT_EXPIRED                                          |
//! | CERT_NOT_YET_VALID | RUSTLS_RESULT_CERT_NOT_YET_VALID                                    |
//! | UNKNOWN_ISSUER     | RUSTLS_RESULT_CERT_UNKNOWN_ISSUER                                   |
//! | NAME_MISMATCH      | RUSTLS_RESULT_CERT_NOT_VALID_FOR_NAME                               |
//! | CERT_PURPOSE       | RUSTLS_RESULT_CERT_INVALID_PURPOSE                                  |
//! | NAME_CONSTRAINT    | RUSTLS_RESULT_CERT_OTHER_ERROR (rustls-ffi has no such code)        |
//! | BAD_CERTIFICATE    | CERT_ENCODING_BAD, CERT_BAD_SIGNATURE, CERT_REVOKED,                |
//! |                    | CERT_UNSUPPORTED_SIGNATURE_ALGORITHM,                               |
//! |                    | CERT_UNHANDLED_CRITICAL_EXTENSION, else CERT_OTHER_ERROR            |
//! | NULL_ARG (NULL)    | RUSTLS_RESULT_NULL_PARAMETER                                        |
//! | PANIC              | RUSTLS_RESULT_PANIC                                                 |
//! | anything else      | RUSTLS_RESULT_GENERAL                                               |
//!
//! ABI note: `rustls_verify_server_cert_params` comes from the client's own librustls.
//! Its public fields are `#[repr(C)]` (checked against rustls.h by
//! scripts/check-rustls-ffi.sh); the intermediates are read through rustls-ffi's accessors
//! compiled into mailsrv, so the client's librustls must be the release named by
//! `MAILSRV_RUSTLS_FFI_VERSION`.

use std::ffi::c_void;
use std::os::raw::c_char;

use rustls::client::danger::ServerCertVerifier as _;
use rustls::{CertificateError, OtherError};
use rustls_ffi::client::rustls_verify_server_cert_params;
use rustls_ffi::rslice::{
    rustls_slice_bytes, rustls_slice_slice_bytes, rustls_slice_slice_bytes_get,
    rustls_slice_slice_bytes_len, rustls_str,
};
use rustls_ffi::rustls_result;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::boundary::{NullDefault, PanicDefault, ffi_boundary, free_box, try_mut, try_ref};
use super::config::call_flags;
use super::ctx::mailsrv_ctx;
use super::errbuf::{finish, with_errbuf};
use super::identity::mailsrv_identity;
use super::status::mailsrv_status;
use super::strings::write_errbuf;
use crate::core::Error;
use crate::core::cert::verifier::{MailVerifier, from_rustls_error};

/// The rustls-ffi release whose `rustls.h` mailsrv_rustls_verify_server_cert() matches
/// (`rustls_verify_server_cert_callback`, `struct rustls_verify_server_cert_params`).
/// Link mailsrv with a librustls of this release only.
pub const MAILSRV_RUSTLS_FFI_VERSION: &str = "0.15.7";

/// mailsrv's certificate policy for a rustls-ffi client (opaque): the trusted CAs and the
/// reference identity, fixed at creation. Immutable; may be used by any number of
/// connections and threads at once.
pub struct mailsrv_rustls_verifier {
    inner: MailVerifier,
}

/// A rustls_result as the callback returns it; also the boundary's NULL and panic value.
#[derive(Clone, Copy)]
struct Code(rustls_result);

impl PanicDefault for Code {
    fn panic_default() -> Self {
        Code(rustls_result::Panic)
    }
}

impl NullDefault for Code {
    fn null_default() -> Self {
        Code(rustls_result::NullParameter)
    }
}

/// Creates a verifier for rustls-ffi from `ctx`'s trust settings and `identity`.
///
/// `ctx` (borrowed, not NULL): supplies the trusted CAs (the context's CA file, else the
/// system store, as for mailsrv_cert_check) and its matching flags; the verifier keeps its
/// own copy, so it may outlive `ctx`. `identity` (borrowed, not empty): the reference
/// identifiers every certificate must prove, copied. `flags`: MAILSRV_FLAG_LEGACY_CN,
/// MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE (OR'ed with the context's). `out` (out, not NULL):
/// owned verifier, freed with mailsrv_rustls_verifier_free(); NULL on failure.
/// `errbuf`/`errlen` (may be NULL/0): the reason on failure, "" on success.
/// Returns OK, NULL_ARG, INVALID_ARG (empty identity, unknown flags), NO_TRUST_ANCHORS or
/// IO (CA file).
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_rustls_verifier_new(
    ctx: *const mailsrv_ctx,
    identity: *const mailsrv_identity,
    flags: u32,
    out: *mut *mut mailsrv_rustls_verifier,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let identity = try_ref!(identity);
        let Some(flags) = call_flags(flags) else { return mailsrv_status::InvalidArg };
        // The context's policy OR'ed with the call's, as in mailsrv_cert_check.
        let options = ctx.inner.config().match_options.union(flags.match_options);
        let verifier = ctx
            .inner
            .ca_store()
            .and_then(|store| MailVerifier::new(store, identity.inner.clone(), options));
        finish(verifier, errbuf, errlen, |inner| {
            *out = Box::into_raw(Box::new(mailsrv_rustls_verifier { inner }));
        })
    })}
}

/// Frees a verifier. NULL does nothing. No connection may still use it.
/// Since 0.1.
///
/// # Safety
/// `v` NULL or from mailsrv_rustls_verifier_new(), not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_rustls_verifier_free(v: *mut mailsrv_rustls_verifier) {
    ffi_boundary! {
        unsafe { free_box(v) }
    }
}

/// rustls-ffi's server-certificate verifier callback (`rustls_verify_server_cert_callback`
/// of the rustls-ffi release MAILSRV_RUSTLS_FFI_VERSION): install it with
/// `rustls_client_config_builder_dangerous_set_certificate_verifier(builder,
/// mailsrv_rustls_verify_server_cert)` and give each connection its verifier with
/// `rustls_connection_set_userdata(conn, verifier)`.
///
/// `userdata` (borrowed): a mailsrv_rustls_verifier; NULL (no userdata set on the
/// connection) fails with RUSTLS_RESULT_NULL_PARAMETER. `params` (borrowed, from rustls-ffi):
/// the end-entity certificate, the intermediates, the server name and the OCSP response;
/// the server name (the SNI) is ignored for identity: the verifier's mailsrv_identity
/// decides, so SNI "example.com" can be checked against SRV-ID _imaps.example.com. The
/// OCSP response is ignored, as by mailsrv's own connections.
/// Returns RUSTLS_RESULT_OK (7000) when mailsrv_cert_check would return OK for the same
/// chain, else the certificate code for its status: CERT_EXPIRED, CERT_NOT_YET_VALID,
/// CERT_UNKNOWN_ISSUER, CERT_NOT_VALID_FOR_NAME, CERT_INVALID_PURPOSE, CERT_ENCODING_BAD,
/// CERT_BAD_SIGNATURE, CERT_REVOKED, CERT_UNSUPPORTED_SIGNATURE_ALGORITHM or
/// CERT_OTHER_ERROR (name constraints, other defects); NULL_PARAMETER; PANIC.
/// Thread-safe; never blocks on the network; never calls back into rustls.
/// Since 0.1.
///
/// # Safety
/// `userdata` NULL or a live mailsrv_rustls_verifier; `params` NULL or valid for the call,
/// as rustls-ffi passes it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_rustls_verify_server_cert(
    userdata: *mut c_void,
    params: *const rustls_verify_server_cert_params,
) -> u32 {
    let code: Code = ffi_boundary! {
        let v = try_ref!(userdata.cast_const().cast::<mailsrv_rustls_verifier>());
        if params.is_null() {
            return Code(rustls_result::NullParameter);
        }
        Code(unsafe { verify(&v.inner, params) })
    };
    code.0 as u32
}

/// The verdict of the verifier's last verification (through the callback) as
/// mailsrv_cert_check would give it: OK with the matched identifier in `text` ("SRV-ID
/// _imaps.example.com"), or the failure status with the precise reason in `text`.
/// NOT_FOUND before the first verification; NULL_ARG for NULL `v`. `text`/`textlen` (out,
/// may be NULL/0): always NUL-terminated. With several connections verifying at once it
/// is one of theirs: give each connection its own verifier if you read it. A resumed TLS
/// session skips the callback, so this then still shows the earlier verification.
/// Since 0.1.
///
/// # Safety
/// `v` NULL or valid; `text` NULL or `textlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_rustls_verifier_last_verdict(
    v: *const mailsrv_rustls_verifier,
    text: *mut c_char,
    textlen: usize,
) -> mailsrv_status {
    ffi_boundary! {
        unsafe { write_errbuf(text, textlen, "") };
        let v = try_ref!(v);
        if let Some(m) = v.inner.last_match() {
            unsafe { write_errbuf(text, textlen, &m.to_string()) };
            return mailsrv_status::Ok;
        }
        match v.inner.last_error() {
            Some(e) => {
                unsafe { write_errbuf(text, textlen, e.detail()) };
                mailsrv_status::from_error(&e)
            }
            None => {
                unsafe { write_errbuf(text, textlen, "no certificate verified yet") };
                mailsrv_status::NotFound
            }
        }
    }
}

/// A borrowed byte view; NULL data is the empty slice.
unsafe fn bytes<'a>(s: &rustls_slice_bytes<'a>) -> &'a [u8] {
    if s.data.is_null() || s.len == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(s.data, s.len) }
    }
}

/// The server name rustls passed. Only used as the `expected` name in the rustls error
/// the core builds (then reduced to a code here), never as a reference identifier.
unsafe fn server_name(s: &rustls_str<'_>) -> ServerName<'static> {
    let text = if s.data.is_null() || s.len == 0 {
        None
    } else {
        std::str::from_utf8(unsafe { std::slice::from_raw_parts(s.data.cast::<u8>(), s.len) }).ok()
    };
    text.and_then(|t| ServerName::try_from(t.to_string()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()))
}

/// Runs [`MailVerifier`] on the certificates in `params` and reduces its verdict to a code.
///
/// # Safety
/// `params` non-NULL and valid, as rustls-ffi passes it.
unsafe fn verify(
    v: &MailVerifier,
    params: *const rustls_verify_server_cert_params,
) -> rustls_result {
    // Read the fields through raw pointers: `intermediate_certs_der` is a reference in
    // rustls-ffi's Rust type, and a NULL there must not become a Rust reference.
    let (ee, inters, name, ocsp) = unsafe {
        (
            &*std::ptr::addr_of!((*params).end_entity_cert_der),
            std::ptr::addr_of!((*params).intermediate_certs_der)
                .cast::<*const rustls_slice_slice_bytes>()
                .read(),
            &*std::ptr::addr_of!((*params).server_name),
            &*std::ptr::addr_of!((*params).ocsp_response),
        )
    };
    let end_entity = CertificateDer::from(unsafe { bytes(ee) });
    let intermediates: Vec<CertificateDer<'_>> = (0..rustls_slice_slice_bytes_len(inters))
        .map(|i| CertificateDer::from(unsafe { bytes(&rustls_slice_slice_bytes_get(inters, i)) }))
        .collect();
    let name = unsafe { server_name(name) };
    match v.verify_server_cert(
        &end_entity,
        &intermediates,
        &name,
        unsafe { bytes(ocsp) },
        UnixTime::now(),
    ) {
        Ok(_) => rustls_result::Ok,
        Err(e) => rustls_code(&e),
    }
}

/// The rustls-ffi code for a verification error of [`MailVerifier`]: decided by mailsrv's
/// verdict ([`from_rustls_error`], the error mailsrv_cert_check reports); within
/// BAD_CERTIFICATE, the most specific rustls-ffi code for the underlying error.
///
/// Where rustls' own webpki verifier would say otherwise, mailsrv's verdict wins: a
/// notAfter-before-notBefore certificate is BAD_CERTIFICATE here (OTHER_ERROR), not
/// EXPIRED; an unsupported critical extension gets CERT_UNHANDLED_CRITICAL_EXTENSION, not
/// OTHER_ERROR; a distrusted CA is UNKNOWN_ISSUER, not OTHER_ERROR.
pub(crate) fn rustls_code(e: &rustls::Error) -> rustls_result {
    use rustls_result as R;
    match from_rustls_error(e) {
        Error::CertExpired(_) => R::CertExpired,
        Error::CertNotYetValid(_) => R::CertNotYetValid,
        Error::UnknownIssuer(_) => R::CertUnknownIssuer,
        Error::NameMismatch(_) => R::CertNotValidForName,
        Error::CertPurpose(_) => R::CertInvalidPurpose,
        // rustls-ffi has no name-constraint code; its webpki verifier says OTHER_ERROR too.
        Error::NameConstraint(_) => R::CertOtherError,
        Error::BadCertificate(_) => match e {
            rustls::Error::InvalidCertificate(ce) => match ce {
                CertificateError::BadEncoding => R::CertEncodingBad,
                CertificateError::BadSignature => R::CertBadSignature,
                CertificateError::Revoked => R::CertRevoked,
                CertificateError::UnsupportedSignatureAlgorithmContext { .. }
                | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                    R::CertUnsupportedSignatureAlgorithm
                }
                CertificateError::Other(OtherError(inner))
                    if matches!(
                        inner.downcast_ref::<webpki::Error>(),
                        Some(webpki::Error::UnsupportedCriticalExtension)
                    ) =>
                {
                    R::CertUnhandledCriticalExtension
                }
                // mailsrv's own leaf parse (x509-parser: SAN, SRVName encoding) failed.
                CertificateError::Other(OtherError(inner)) if inner.is::<Error>() => {
                    R::CertEncodingBad
                }
                _ => R::CertOtherError,
            },
            rustls::Error::NoCertificatesPresented => R::NoCertificatesPresented,
            _ => R::CertOtherError,
        },
        _ => R::General,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn other(e: Error) -> rustls::Error {
        CertificateError::Other(OtherError(Arc::new(e))).into()
    }

    fn webpki_other(e: webpki::Error) -> rustls::Error {
        CertificateError::Other(OtherError(Arc::new(e))).into()
    }

    #[test]
    fn codes_follow_mailsrv_verdicts() {
        use rustls_result as R;
        let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000));
        let cases: Vec<(rustls::Error, R)> = vec![
            (
                CertificateError::ExpiredContext {
                    time: t,
                    not_after: t,
                }
                .into(),
                R::CertExpired,
            ),
            (
                CertificateError::NotValidYetContext {
                    time: t,
                    not_before: t,
                }
                .into(),
                R::CertNotYetValid,
            ),
            (CertificateError::UnknownIssuer.into(), R::CertUnknownIssuer),
            (
                webpki_other(webpki::Error::CertDistrusted),
                R::CertUnknownIssuer,
            ),
            (
                CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from("example.com").unwrap(),
                    presented: vec![],
                }
                .into(),
                R::CertNotValidForName,
            ),
            (
                CertificateError::InvalidPurpose.into(),
                R::CertInvalidPurpose,
            ),
            (other(Error::NameConstraint("x".into())), R::CertOtherError),
            (
                webpki_other(webpki::Error::NameConstraintViolation),
                R::CertOtherError,
            ),
            (CertificateError::BadEncoding.into(), R::CertEncodingBad),
            (
                other(Error::BadCertificate("malformed SRVName: NUL".into())),
                R::CertEncodingBad,
            ),
            (CertificateError::BadSignature.into(), R::CertBadSignature),
            (CertificateError::Revoked.into(), R::CertRevoked),
            (
                webpki_other(webpki::Error::UnsupportedCriticalExtension),
                R::CertUnhandledCriticalExtension,
            ),
            (
                webpki_other(webpki::Error::InvalidCertValidity),
                R::CertOtherError,
            ),
            (
                webpki_other(webpki::Error::CaUsedAsEndEntity),
                R::CertOtherError,
            ),
            (
                rustls::Error::NoCertificatesPresented,
                R::NoCertificatesPresented,
            ),
            (rustls::Error::General("x".into()), R::General),
        ];
        for (e, want) in cases {
            assert_eq!(rustls_code(&e), want, "{e:?}");
        }
    }

    #[test]
    fn code_numbers_are_the_releases() {
        // rustls.h of rustls-ffi 0.15.7 (scripts/check-rustls-ffi.sh checks the header).
        use rustls_result as R;
        for (r, n) in [
            (R::Ok, 7000),
            (R::NullParameter, 7002),
            (R::Panic, 7004),
            (R::General, 7112),
            (R::CertEncodingBad, 7121),
            (R::CertExpired, 7122),
            (R::CertNotYetValid, 7123),
            (R::CertRevoked, 7124),
            (R::CertUnknownIssuer, 7126),
            (R::CertBadSignature, 7127),
            (R::CertNotValidForName, 7128),
            (R::CertInvalidPurpose, 7129),
            (R::CertOtherError, 7131),
            (R::CertUnsupportedSignatureAlgorithm, 7157),
        ] {
            assert_eq!(r as u32, n, "{r:?}");
        }
    }

    #[test]
    fn version_is_the_linked_release() {
        let v = rustls_ffi::rustls_version();
        let v = unsafe { std::slice::from_raw_parts(v.data.cast::<u8>(), v.len) };
        let v = std::str::from_utf8(v).unwrap();
        assert!(
            v.starts_with(&format!("rustls-ffi/{MAILSRV_RUSTLS_FFI_VERSION}/")),
            "{v}"
        );
        assert!(v.ends_with("/ring"), "{v}");
    }

    #[test]
    fn params_layout_is_rustls_h() {
        // The relations scripts/check-rustls-ffi.sh asserts in C against rustls.h.
        use std::mem::{offset_of, size_of};
        type P = rustls_verify_server_cert_params<'static>;
        let bytes = size_of::<rustls_slice_bytes<'static>>();
        let text = size_of::<rustls_str<'static>>();
        let ptr = size_of::<*const c_void>();
        assert_eq!(bytes, 2 * ptr);
        assert_eq!(text, 2 * ptr);
        assert_eq!(offset_of!(P, end_entity_cert_der), 0);
        assert_eq!(offset_of!(P, intermediate_certs_der), bytes);
        assert_eq!(offset_of!(P, server_name), bytes + ptr);
        assert_eq!(offset_of!(P, ocsp_response), bytes + ptr + text);
        assert_eq!(size_of::<P>(), 2 * bytes + ptr + text);
    }

    #[test]
    fn header_names_the_release() {
        let header = include_str!("../../include/mailsrv.h");
        let want = format!("#define MAILSRV_RUSTLS_FFI_VERSION \"{MAILSRV_RUSTLS_FFI_VERSION}\"");
        assert!(header.contains(&want), "include/mailsrv.h lacks {want}");
    }

    #[test]
    fn null_arguments_fail_closed() {
        let r =
            unsafe { mailsrv_rustls_verify_server_cert(std::ptr::null_mut(), std::ptr::null()) };
        assert_eq!(r, rustls_result::NullParameter as u32);
        let mut out = std::ptr::null_mut();
        let st = unsafe {
            mailsrv_rustls_verifier_new(
                std::ptr::null(),
                std::ptr::null(),
                0,
                &mut out,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(st, mailsrv_status::NullArg);
        assert!(out.is_null());
        let mut buf = [1 as c_char; 8];
        let st = unsafe {
            mailsrv_rustls_verifier_last_verdict(std::ptr::null(), buf.as_mut_ptr(), buf.len())
        };
        assert_eq!(st, mailsrv_status::NullArg);
        assert_eq!(buf[0], 0);
        unsafe { mailsrv_rustls_verifier_free(std::ptr::null_mut()) };
    }
}
