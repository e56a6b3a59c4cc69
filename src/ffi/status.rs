//! Status codes: one per error kind, numbers fixed forever (docs/design.md §4, "Status codes").

use std::os::raw::{c_char, c_int};

use super::boundary::{NullDefault, PanicDefault, ffi_boundary};
use crate::core::Error;

/// The result of every fallible call. 0 is success; the ranges are 1-99 usage and internal,
/// 100-199 DNS, 200-299 DNSSEC, 300-399 TLS and certificates, 400-499 network and mail
/// protocols. Numbers are never changed or reused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum mailsrv_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArg = 1,
    /// An argument was malformed: bad address, over-long name, non-UTF-8 text, unknown enum value or flag.
    InvalidArg = 2,
    /// Memory could not be allocated.
    NoMemory = 3,
    /// A bug in mailsrv was caught (a Rust panic); the host process is unharmed.
    Panic = 4,
    /// The request was cancelled with mailsrv_cancel().
    Cancelled = 5,
    /// The operation's deadline (mailsrv_config_set_timeout_ms) passed.
    Timeout = 6,
    /// The context is being freed; outstanding requests end with this.
    Shutdown = 7,
    /// Not allowed inside a mailsrv callback (blocking calls, mailsrv_ctx_dispatch).
    InCallback = 8,
    /// The thing asked for does not exist (unknown or finished request id).
    NotFound = 9,
    /// The async runtime or a library thread could not be started.
    Runtime = 10,
    /// A file could not be read or written.
    Io = 11,
    /// A file mailsrv wrote earlier (the history) is damaged; it was kept aside, not replaced.
    Corrupt = 12,
    /// A file (the history) was written by a newer mailsrv in a format this one does not
    /// read; it was left untouched (not moved aside, not overwritten). Since 0.1.
    UnsupportedVersion = 20,
    /// DNS: the name does not exist (NXDOMAIN).
    Nxdomain = 100,
    /// DNS: the name has no record of that type (NODATA); for SRV, "no SRV record".
    NoRecord = 101,
    /// DNS: the server answered SERVFAIL, REFUSED or another error code. Never "no record".
    Servfail = 102,
    /// DNS: MAILSRV_FLAG_REQUIRE_SECURE was set and the answer was not DNSSEC-secure.
    NoSecureAnswer = 103,
    /// DNS: the lookup failed for another network or protocol reason. Never "no record".
    LookupFailed = 104,
    /// DNSSEC: validation failed; the answer is bogus and was not used.
    Bogus = 200,
    /// DNSSEC: the state could not be established (keys could not be fetched).
    Indeterminate = 201,
    /// DNSSEC: the configured trust anchor file is unusable.
    BadTrustAnchor = 202,
    /// Certificate: a certificate on the path has expired.
    CertExpired = 300,
    /// Certificate: a certificate on the path is not valid yet.
    CertNotYetValid = 301,
    /// Certificate: the chain does not lead to a trusted CA.
    UnknownIssuer = 302,
    /// Certificate: valid chain, but no presented identifier matches the reference identity.
    NameMismatch = 303,
    /// Certificate: malformed, badly signed or otherwise unusable.
    BadCertificate = 304,
    /// Certificate: not valid for TLS server authentication (extended key usage).
    CertPurpose = 305,
    /// Certificate: a CA's name constraints exclude the name.
    NameConstraint = 306,
    /// No trusted CA certificate could be loaded.
    NoTrustAnchors = 307,
    /// TLS: the handshake failed for a reason other than the certificate.
    Handshake = 308,
    /// DANE: DNSSEC-secure TLSA records apply to the server and none matches its
    /// certificates (RFC 7671); the connection was refused.
    DaneMismatch = 320,
    /// Certificate: the connection requires a pinned key (mailsrv_connect_opts_add_pin_sha256()
    /// with MAILSRV_PIN_MODE_REQUIRE) and the server's certificate has another. Since 0.1.
    PinMismatch = 321,
    /// Network: no TCP connection could be made.
    ConnectFailed = 400,
    /// Network: the peer closed the connection unexpectedly.
    ConnectionClosed = 401,
    /// Mail protocol: STARTTLS missing or refused, plaintext injection, garbage from the server.
    Protocol = 402,
    /// Non-blocking stream: nothing can be done now; poll the descriptor and call again.
    WouldBlock = 403,
    /// HTTP (account discovery): an error status, a redirect that is not HTTPS to HTTPS, too
    /// many redirects, or a body over the size limit.
    Http = 404,
    /// Account discovery: a configuration document is malformed or hostile (not UTF-8, a
    /// DOCTYPE or entity, too deep, too many servers) or names no usable server.
    BadConfig = 405,
    /// Account discovery (PACC): the document's SHA-256 digest matches none of the
    /// `_ua-auto-config` TXT records of its domain, so it is rejected; DNSSEC-signed records
    /// make this proof of tampering (mailsrv_account_source_detail() says which). Since 0.1.
    DigestMismatch = 406,
}

impl PanicDefault for mailsrv_status {
    fn panic_default() -> Self {
        mailsrv_status::Panic
    }
}

impl NullDefault for mailsrv_status {
    fn null_default() -> Self {
        mailsrv_status::NullArg
    }
}

impl mailsrv_status {
    /// The one place where core errors become status codes (exhaustive on purpose).
    pub fn from_error(e: &Error) -> Self {
        use mailsrv_status as S;
        match e {
            Error::InvalidArg(_) => S::InvalidArg,
            Error::Timeout(_) => S::Timeout,
            Error::Cancelled => S::Cancelled,
            Error::Shutdown => S::Shutdown,
            Error::Io(_) => S::Io,
            Error::Corrupt(_) => S::Corrupt,
            Error::UnsupportedVersion(_) => S::UnsupportedVersion,
            Error::Runtime(_) => S::Runtime,
            Error::Panic(_) => S::Panic,
            Error::InCallback => S::InCallback,
            Error::NotFound(_) => S::NotFound,
            Error::NxDomain(_) => S::Nxdomain,
            Error::NoRecord(_) => S::NoRecord,
            Error::ServFail(_) => S::Servfail,
            Error::LookupFailed(_) => S::LookupFailed,
            Error::NoSecureAnswer(_) => S::NoSecureAnswer,
            Error::Bogus(_) => S::Bogus,
            Error::Indeterminate(_) => S::Indeterminate,
            Error::BadTrustAnchor(_) => S::BadTrustAnchor,
            Error::CertExpired(_) => S::CertExpired,
            Error::CertNotYetValid(_) => S::CertNotYetValid,
            Error::UnknownIssuer(_) => S::UnknownIssuer,
            Error::NameMismatch(_) => S::NameMismatch,
            Error::BadCertificate(_) => S::BadCertificate,
            Error::CertPurpose(_) => S::CertPurpose,
            Error::NameConstraint(_) => S::NameConstraint,
            Error::NoTrustAnchors(_) => S::NoTrustAnchors,
            Error::Handshake(_) => S::Handshake,
            Error::DaneMismatch(_) => S::DaneMismatch,
            Error::PinMismatch(_) => S::PinMismatch,
            Error::ConnectFailed(_) => S::ConnectFailed,
            Error::ConnectionClosed(_) => S::ConnectionClosed,
            Error::Protocol(_) => S::Protocol,
            Error::Http(_) => S::Http,
            Error::BadConfig(_) => S::BadConfig,
            Error::DigestMismatch(_) => S::DigestMismatch,
        }
    }

    /// Static NUL-terminated text for each code.
    fn text(code: c_int) -> &'static std::ffi::CStr {
        match code {
            0 => c"success",
            1 => c"a required argument was NULL",
            2 => c"invalid argument",
            3 => c"out of memory",
            4 => c"internal error (a panic was caught)",
            5 => c"request cancelled",
            6 => c"timed out",
            7 => c"context shutting down",
            8 => c"not allowed inside a mailsrv callback",
            9 => c"not found",
            10 => c"runtime could not be started",
            11 => c"file input/output error",
            12 => c"damaged file kept aside",
            20 => c"file format version newer than this mailsrv reads (file left untouched)",
            100 => c"DNS: no such domain (NXDOMAIN)",
            101 => c"DNS: no record of that type",
            102 => c"DNS: server failure (SERVFAIL or refused)",
            103 => c"DNS: answer is not DNSSEC-secure, and a secure one is required",
            104 => c"DNS: lookup failed",
            200 => c"DNSSEC: validation failed (bogus)",
            201 => c"DNSSEC: state indeterminate",
            202 => c"DNSSEC: bad trust anchor",
            300 => c"certificate expired",
            301 => c"certificate not yet valid",
            302 => c"certificate issuer unknown (untrusted chain)",
            303 => c"certificate does not name the expected server",
            304 => c"bad certificate",
            305 => c"certificate not valid for server authentication",
            306 => c"certificate outside its CA's name constraints",
            307 => c"no trusted CA certificates",
            308 => c"TLS handshake failed",
            320 => c"certificate does not match the server's DNSSEC-signed TLSA records",
            321 => c"certificate key does not match the pinned key",
            400 => c"could not connect",
            401 => c"connection closed by the server",
            402 => c"mail protocol error (STARTTLS)",
            403 => c"would block",
            404 => c"HTTP error (status, redirect or size limit)",
            405 => c"malformed or hostile configuration document",
            406 => c"configuration document does not match its published digest",
            _ => c"unknown status",
        }
    }
}

/// A static, human-readable text for a status code.
///
/// Never NULL, never to be freed; an unknown code gives "unknown status".
/// Since 0.1.
#[unsafe(no_mangle)]
pub extern "C" fn mailsrv_status_str(code: c_int) -> *const c_char {
    ffi_boundary! { mailsrv_status::text(code).as_ptr() }
}

/// True for the DNS and DNSSEC statuses (100-299).
///
/// Since 0.1.
#[unsafe(no_mangle)]
pub extern "C" fn mailsrv_status_is_dns_error(code: c_int) -> bool {
    ffi_boundary! { (100..300).contains(&code) }
}

/// True for the certificate and TLS statuses (300-399).
///
/// Since 0.1.
#[unsafe(no_mangle)]
pub extern "C" fn mailsrv_status_is_cert_error(code: c_int) -> bool {
    ffi_boundary! { (300..400).contains(&code) }
}
