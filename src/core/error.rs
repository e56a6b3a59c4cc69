//! The one error type of the core. Every variant carries the detail a user can read;
//! the C layer maps each variant to exactly one `mailsrv_status` (one exhaustive match).

use std::fmt;

/// What went wrong, by kind. The `String`s are human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    // --- usage and internal ---
    /// Bad input from the caller (malformed address, over-long name, unknown enum value, ...).
    InvalidArg(String),
    /// The operation's deadline passed.
    Timeout(String),
    /// The caller cancelled the request.
    Cancelled,
    /// The context is shutting down.
    Shutdown,
    /// A file could not be read or written.
    Io(String),
    /// A file mailsrv wrote earlier is damaged (it was kept aside, never overwritten).
    Corrupt(String),
    /// A file (the history) is in a newer format than this mailsrv reads; left untouched.
    UnsupportedVersion(String),
    /// The async runtime could not be started or a task died.
    Runtime(String),
    /// A bug in mailsrv: a panic was caught at a boundary.
    Panic(String),
    /// A blocking call or a dispatch was made from inside a callback.
    InCallback,
    /// The thing asked for does not exist (an unknown or finished request id, ...).
    NotFound(String),

    // --- DNS ---
    /// The name does not exist (NXDOMAIN).
    NxDomain(String),
    /// The name exists but has no record of the asked type (NODATA).
    NoRecord(String),
    /// The server answered SERVFAIL (or REFUSED, or another error rcode).
    ServFail(String),
    /// The lookup failed for a network or protocol reason (not "no record").
    LookupFailed(String),
    /// `MAILSRV_FLAG_REQUIRE_SECURE` was set and the answer was not DNSSEC-secure.
    NoSecureAnswer(String),

    // --- DNSSEC ---
    /// DNSSEC validation failed: the answer is bogus.
    Bogus(String),
    /// DNSSEC state could not be determined (a sub-query for keys timed out).
    Indeterminate(String),
    /// The configured trust anchor file is unusable.
    BadTrustAnchor(String),

    // --- TLS and certificates ---
    /// A certificate on the path has expired.
    CertExpired(String),
    /// A certificate on the path is not valid yet.
    CertNotYetValid(String),
    /// The chain does not lead to a trusted root.
    UnknownIssuer(String),
    /// The chain is valid but no presented identifier matches a reference identifier.
    NameMismatch(String),
    /// The certificate is malformed, badly signed, or unusable for other reasons.
    BadCertificate(String),
    /// The certificate is not valid for server authentication (EKU).
    CertPurpose(String),
    /// A CA's name constraints exclude the name.
    NameConstraint(String),
    /// No trusted CA certificates could be loaded.
    NoTrustAnchors(String),
    /// The TLS handshake failed for a reason other than the certificate.
    Handshake(String),
    /// DNSSEC-secure TLSA records apply and none matches the server's certificates.
    DaneMismatch(String),
    /// The connection requires a pinned key (SPKI SHA-256) and the server's leaf has another.
    PinMismatch(String),

    // --- network and mail protocols ---
    /// No TCP connection could be made to any address.
    ConnectFailed(String),
    /// The peer closed the connection unexpectedly.
    ConnectionClosed(String),
    /// The server broke the pre-TLS protocol (STARTTLS refused or missing, injection, garbage).
    Protocol(String),
    /// HTTP: an error status, a refused redirect, a body over the limit (account discovery).
    Http(String),
    /// A configuration document is malformed or hostile (account discovery).
    BadConfig(String),
    /// A configuration document's digest matches none its domain published (PACC's
    /// `_ua-auto-config` TXT records): the document is rejected.
    DigestMismatch(String),
}

impl Error {
    /// The same kind of error with another detail text (variants without one stay as
    /// they are).
    pub fn with_detail(self, text: String) -> Error {
        use Error::*;
        match self {
            Cancelled | Shutdown | InCallback => self,
            InvalidArg(_) => InvalidArg(text),
            Timeout(_) => Timeout(text),
            Io(_) => Io(text),
            Corrupt(_) => Corrupt(text),
            UnsupportedVersion(_) => UnsupportedVersion(text),
            Runtime(_) => Runtime(text),
            Panic(_) => Panic(text),
            NotFound(_) => NotFound(text),
            NxDomain(_) => NxDomain(text),
            NoRecord(_) => NoRecord(text),
            ServFail(_) => ServFail(text),
            LookupFailed(_) => LookupFailed(text),
            NoSecureAnswer(_) => NoSecureAnswer(text),
            Bogus(_) => Bogus(text),
            Indeterminate(_) => Indeterminate(text),
            BadTrustAnchor(_) => BadTrustAnchor(text),
            CertExpired(_) => CertExpired(text),
            CertNotYetValid(_) => CertNotYetValid(text),
            UnknownIssuer(_) => UnknownIssuer(text),
            NameMismatch(_) => NameMismatch(text),
            BadCertificate(_) => BadCertificate(text),
            CertPurpose(_) => CertPurpose(text),
            NameConstraint(_) => NameConstraint(text),
            NoTrustAnchors(_) => NoTrustAnchors(text),
            Handshake(_) => Handshake(text),
            DaneMismatch(_) => DaneMismatch(text),
            PinMismatch(_) => PinMismatch(text),
            ConnectFailed(_) => ConnectFailed(text),
            ConnectionClosed(_) => ConnectionClosed(text),
            Protocol(_) => Protocol(text),
            Http(_) => Http(text),
            BadConfig(_) => BadConfig(text),
            DigestMismatch(_) => DigestMismatch(text),
        }
    }

    /// The detail text (empty for variants without one).
    pub fn detail(&self) -> &str {
        use Error::*;
        match self {
            Cancelled => "request cancelled",
            Shutdown => "context shutting down",
            InCallback => "not allowed inside a mailsrv callback",
            InvalidArg(s)
            | Timeout(s)
            | Io(s)
            | Corrupt(s)
            | UnsupportedVersion(s)
            | Runtime(s)
            | Panic(s)
            | NotFound(s)
            | NxDomain(s)
            | NoRecord(s)
            | ServFail(s)
            | LookupFailed(s)
            | NoSecureAnswer(s)
            | Bogus(s)
            | Indeterminate(s)
            | BadTrustAnchor(s)
            | CertExpired(s)
            | CertNotYetValid(s)
            | UnknownIssuer(s)
            | NameMismatch(s)
            | BadCertificate(s)
            | CertPurpose(s)
            | NameConstraint(s)
            | NoTrustAnchors(s)
            | Handshake(s)
            | DaneMismatch(s)
            | PinMismatch(s)
            | ConnectFailed(s)
            | ConnectionClosed(s)
            | Protocol(s)
            | Http(s)
            | BadConfig(s)
            | DigestMismatch(s) => s,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail())
    }
}

impl std::error::Error for Error {}

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;
