//! Certificate verification for mail: webpki path validation with no name check, then the
//! RFC 7817 / RFC 9525 name check of [`crate::core::cert::identity`] (so an SRV-ID-only
//! certificate can pass), plus the SRV-ID name-constraint fix, as a standalone check and as
//! a rustls [`ServerCertVerifier`].
//!
//! Order (RFC 7817 §3, T-AUTH-11): path validation first; names are only looked at on a
//! chain that leads to a trusted CA, so an untrusted certificate is reported as such even
//! when its names are wrong too.
//!
//! Name constraints: webpki applies a CA's dNSName constraints to dNSName SANs but never
//! reads SRVName otherNames (or the CN), so a CA constrained to `example.net` could vouch
//! for `_imaps.example.com` (docs/design.md §2.15). After the chain check the dNSName
//! subtrees of every CA on the verified path (intermediates and the anchor) are collected,
//! and presented SRV-IDs (and legacy CN-IDs) whose domain they do not cover are dropped,
//! using the RFC 4985 §4 label-wise suffix rule.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, ExtendedKeyPurpose, OtherError,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::asn1_rs::{Any, Class, FromDer as _, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, NameConstraints};
use x509_parser::oid_registry::OID_X509_EXT_NAME_CONSTRAINTS;
use x509_parser::x509::X509Name;

use crate::core::cert::ca_store::CaStore;
use crate::core::cert::identity::{
    MatchOptions, MatchedId, PresentedIds, ReferenceIdentity, match_identity,
};
use crate::core::{Error, Result};

// ------------------------------------------------------------------ name constraints

/// One dNSName subtree base from a CA's name constraints.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Base {
    /// Lower-case base; may be empty (everything) or start with `.` (strict subdomains).
    Name(String),
    /// A base that is not a valid DNS name: fails closed (permits nothing, excludes all).
    Malformed(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct CaConstraints {
    ca: String,
    /// `None`: this CA does not restrict DNS names to permitted subtrees.
    permitted: Option<Vec<Base>>,
    excluded: Vec<Base>,
}

/// The dNSName name constraints of every CA on a verified path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsConstraints {
    cas: Vec<CaConstraints>,
}

impl DnsConstraints {
    /// True when no CA on the path constrains DNS names.
    pub fn is_empty(&self) -> bool {
        self.cas.is_empty()
    }

    /// Why `name` (a DNS name, or `*.parent`) is outside the constraints, or `None` if
    /// every CA's permitted and excluded subtrees allow it.
    pub fn check(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        for ca in &self.cas {
            if let Some(permitted) = &ca.permitted
                && !permitted.iter().any(|b| permits(b, &name))
            {
                return Some(format!(
                    "{name} is outside the permitted DNS subtrees ({}) of CA \"{}\"",
                    list_bases(permitted),
                    ca.ca
                ));
            }
            if let Some(b) = ca.excluded.iter().find(|b| excludes(b, &name)) {
                return Some(format!(
                    "{name} is in the excluded DNS subtree {} of CA \"{}\"",
                    list_bases(std::slice::from_ref(b)),
                    ca.ca
                ));
            }
        }
        None
    }

    /// Adds the constraints of a CA certificate (DER). A constraints extension that does
    /// not parse fails closed: that CA then permits no SRV-ID or CN-ID at all.
    fn add_cert(&mut self, der: &[u8]) {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            self.add_unreadable("unparsable CA certificate".into());
            return;
        };
        let ca = cert.subject().to_string();
        let mut found = cert
            .extensions()
            .iter()
            .filter(|e| e.oid == OID_X509_EXT_NAME_CONSTRAINTS);
        match (found.next(), found.next()) {
            (None, _) => {}
            (Some(ext), None) => match Any::from_der(ext.value) {
                Ok((rest, seq))
                    if rest.is_empty()
                        && seq.class() == Class::Universal
                        && seq.tag() == Tag::Sequence =>
                {
                    self.add_contents(seq.data, ca)
                }
                _ => self.add_unreadable(ca),
            },
            // a duplicate extension: webpki rejects it anyway; fail closed regardless
            (Some(_), Some(_)) => self.add_unreadable(ca),
        }
    }

    /// Adds constraints given as the contents of the NameConstraints SEQUENCE (the form
    /// rustls' `TrustAnchor::name_constraints` holds). Anything but `[0]` then `[1]`
    /// subtrees, or a subtree list that does not parse, fails closed.
    fn add_contents(&mut self, contents: &[u8], ca: String) {
        let mut rest = contents;
        let mut last_tag = None;
        while !rest.is_empty() {
            match Any::from_der(rest) {
                Ok((r, any))
                    if any.class() == Class::ContextSpecific
                        && any.header.is_constructed()
                        && (any.tag() == Tag(0) || any.tag() == Tag(1))
                        && last_tag.is_none_or(|t: Tag| t.0 < any.tag().0) =>
                {
                    last_tag = Some(any.tag());
                    rest = r;
                }
                _ => return self.add_unreadable(ca),
            }
        }
        let der = wrap_sequence(contents);
        match NameConstraints::from_der(&der) {
            Ok(([], nc)) => self.add(&nc, ca),
            _ => self.add_unreadable(ca),
        }
    }

    fn add_unreadable(&mut self, ca: String) {
        self.cas.push(CaConstraints {
            ca,
            permitted: Some(vec![Base::Malformed("unreadable name constraints".into())]),
            excluded: Vec::new(),
        });
    }

    fn add(&mut self, nc: &NameConstraints<'_>, ca: String) {
        let dns_bases = |subtrees: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| {
            subtrees
                .iter()
                .flatten()
                .filter_map(|s| match &s.base {
                    GeneralName::DNSName(n) => Some(parse_base(n)),
                    // a dNSName base that is not UTF-8
                    GeneralName::Invalid(tag, _) if tag.0 == 2 => {
                        Some(Base::Malformed("non-UTF-8 dNSName".into()))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let permitted = dns_bases(&nc.permitted_subtrees);
        let excluded = dns_bases(&nc.excluded_subtrees);
        if permitted.is_empty() && excluded.is_empty() {
            return;
        }
        self.cas.push(CaConstraints {
            ca,
            permitted: (!permitted.is_empty()).then_some(permitted),
            excluded,
        });
    }
}

fn parse_base(n: &str) -> Base {
    let lower = n.to_ascii_lowercase();
    let body = lower.strip_prefix('.').unwrap_or(&lower);
    let valid = lower.is_empty()
        || (!body.is_empty()
            && body.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    if valid {
        Base::Name(lower)
    } else {
        Base::Malformed(crate::core::name::show(n))
    }
}

fn list_bases(bases: &[Base]) -> String {
    bases
        .iter()
        .map(|b| match b {
            Base::Name(n) if n.is_empty() => "\"\" (any)".to_string(),
            Base::Name(n) => n.clone(),
            Base::Malformed(m) => format!("malformed {m}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// RFC 5280 / RFC 4985 §4: `name` lies in the subtree `base` when it equals it or adds
/// labels on the left; a base with a leading dot covers strict subdomains only.
fn within(name: &str, base: &str) -> bool {
    if base.is_empty() {
        return true;
    }
    if base.starts_with('.') {
        return name.len() > base.len() && name.ends_with(base);
    }
    name == base
        || (name.len() > base.len()
            && name.ends_with(base)
            && name.as_bytes().get(name.len() - base.len() - 1) == Some(&b'.'))
}

fn permits(base: &Base, name: &str) -> bool {
    match base {
        // `*.p` is taken literally: inside `b` only if every expansion is.
        Base::Name(b) => within(name, b),
        Base::Malformed(_) => false,
    }
}

fn excludes(base: &Base, name: &str) -> bool {
    match base {
        Base::Name(b) => {
            within(name, b)
                || name.strip_prefix("*.").is_some_and(|parent| {
                    // an expansion of `*.parent` could be the excluded name itself
                    b.split_once('.').is_some_and(|(_, bp)| bp == parent)
                })
        }
        Base::Malformed(_) => true,
    }
}

/// DER SEQUENCE header around `contents`.
fn wrap_sequence(contents: &[u8]) -> Vec<u8> {
    let n = contents.len();
    let mut v = Vec::with_capacity(n + 6);
    v.push(0x30);
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        v.push(0x80 | (bytes.len() - skip) as u8);
        v.extend_from_slice(&bytes[skip..]);
    }
    v.extend_from_slice(contents);
    v
}

fn name_text(subject_contents: &[u8]) -> String {
    let der = wrap_sequence(subject_contents);
    match X509Name::from_der(&der) {
        Ok((_, name)) => name.to_string(),
        Err(_) => "unreadable subject".into(),
    }
}

// ------------------------------------------------------------------ chain check

/// A chain that webpki validated for server authentication (no name checked yet).
#[derive(Clone, Debug)]
pub struct VerifiedChain {
    path: Vec<CertificateDer<'static>>,
    anchor_subject: String,
    constraints: DnsConstraints,
}

impl VerifiedChain {
    /// The certificates of the validated path: the end entity first, then the
    /// intermediates used, nearest first (the anchor itself is not included).
    pub fn path(&self) -> &[CertificateDer<'static>] {
        &self.path
    }

    /// The trust anchor's subject, e.g. `CN=mailsrv Test CA`.
    pub fn anchor_subject(&self) -> &str {
        &self.anchor_subject
    }

    /// The dNSName name constraints of the CAs on the path.
    pub fn dns_constraints(&self) -> &DnsConstraints {
        &self.constraints
    }

    /// Drops the presented SRV-IDs and CN-IDs that the path's name constraints do not
    /// cover (webpki checked the dNSName and iPAddress SANs itself).
    pub fn restrict(&self, ids: &mut PresentedIds) {
        if !self.constraints.is_empty() {
            ids.restrict_names(|name| self.constraints.check(name));
        }
    }
}

/// The ring provider, used for all signature checks.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn webpki_chain(
    store: &CaStore,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> std::result::Result<VerifiedChain, webpki::Error> {
    let algs = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    let ee = webpki::EndEntityCert::try_from(end_entity)?;
    let path = ee.verify_for_usage(
        algs,
        &store.roots().roots,
        intermediates,
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )?;
    let mut certs = vec![end_entity.clone().into_owned()];
    let mut constraints = DnsConstraints::default();
    for cert in path.intermediate_certificates() {
        let der = cert.der();
        constraints.add_cert(&der);
        certs.push(der.into_owned());
    }
    let anchor = path.anchor();
    let anchor_subject = name_text(anchor.subject.as_ref());
    if let Some(nc) = &anchor.name_constraints {
        constraints.add_contents(nc.as_ref(), anchor_subject.clone());
    }
    Ok(VerifiedChain {
        path: certs,
        anchor_subject,
        constraints,
    })
}

/// Validates `end_entity` + `intermediates` against `store` at `now` for server
/// authentication (EKU serverAuth if the extension is present), without any name check.
///
/// Errors: [`Error::CertExpired`], [`Error::CertNotYetValid`] (any certificate on the
/// path), [`Error::UnknownIssuer`] (no path to an anchor, distrusted CA),
/// [`Error::CertPurpose`] (EKU), [`Error::NameConstraint`] (a CA's constraints exclude a
/// dNSName or IP SAN), [`Error::BadCertificate`] (encoding, signature, other defects).
pub fn check_chain(
    store: &CaStore,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<VerifiedChain> {
    webpki_chain(store, end_entity, intermediates, now).map_err(|e| chain_error(&e))
}

/// The result of a successful [`verify_cert`].
#[derive(Clone, Debug)]
pub struct CertVerdict {
    /// Which reference identifier matched, through which presented identifier.
    pub matched: MatchedId,
    /// The validated path.
    pub chain: VerifiedChain,
    /// What the leaf presents (after the name-constraint filter).
    pub presented: PresentedIds,
}

/// Why a verification failed, kept in webpki's terms for the chain so that both the core
/// error and the rustls error can be built without losing context.
enum Failure {
    Chain(webpki::Error),
    Identity {
        error: Error,
        presented: Vec<String>,
    },
}

impl Failure {
    fn to_core(&self) -> Error {
        match self {
            Failure::Chain(e) => chain_error(e),
            Failure::Identity { error, .. } => error.clone(),
        }
    }

    fn to_rustls(&self, server_name: &ServerName<'_>) -> rustls::Error {
        match self {
            Failure::Chain(e) => chain_error_rustls(e.clone()),
            Failure::Identity {
                error: Error::NameMismatch(_),
                presented,
            } => CertificateError::NotValidForNameContext {
                expected: server_name.to_owned(),
                presented: presented.clone(),
            }
            .into(),
            // No rustls counterpart with detail: carry the core error itself, so
            // `from_rustls_error` gets it back unchanged.
            Failure::Identity { error, .. } => {
                CertificateError::Other(OtherError(Arc::new(error.clone()))).into()
            }
        }
    }
}

fn verify_detailed(
    store: &CaStore,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    reference: &ReferenceIdentity,
    options: &MatchOptions,
    now: UnixTime,
) -> std::result::Result<CertVerdict, Failure> {
    let identity = |error: Error| Failure::Identity {
        error,
        presented: Vec::new(),
    };
    // Path validation precedes name matching (T-AUTH-11).
    let chain = webpki_chain(store, end_entity, intermediates, now).map_err(Failure::Chain)?;
    check_leaf_key(end_entity.as_ref()).map_err(identity)?;
    let mut presented = PresentedIds::from_der(end_entity.as_ref()).map_err(identity)?;
    chain.restrict(&mut presented);
    match match_identity(reference, &presented, options) {
        Ok(matched) => Ok(CertVerdict {
            matched,
            chain,
            presented,
        }),
        Err(error) => Err(Failure::Identity {
            error,
            presented: presented.sans().iter().map(|p| p.to_string()).collect(),
        }),
    }
}

/// The leaf's public key must be one that mailsrv's TLS (rustls with ring) can verify a
/// handshake signature with: RSA (rsaEncryption) of 2048 to 8192 bits, ECDSA on P-256 or
/// P-384, or Ed25519. A certificate with another key (RSA under 2048 bits, DSA, other
/// curves) could never complete a handshake with mailsrv, so a client's own TLS stack must
/// not be told it is fine ([`Error::BadCertificate`]).
pub fn check_leaf_key(der: &[u8]) -> Result<()> {
    use x509_parser::oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384,
        OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
    };
    use x509_parser::public_key::PublicKey;
    let bad = |why: String| {
        Err(Error::BadCertificate(format!(
            "leaf certificate key: {why}"
        )))
    };
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::BadCertificate(format!("leaf certificate: {e}")))?;
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => unsigned_bits(rsa.modulus),
            _ => return bad("malformed RSA key".into()),
        };
        if !(2048..=8192).contains(&bits) {
            return bad(format!(
                "RSA {bits} bits; mailsrv's TLS accepts 2048 to 8192 bits"
            ));
        }
        Ok(())
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 || c == OID_NIST_EC_P384 => Ok(()),
            Some(c) => bad(format!(
                "ECDSA on curve {c}; mailsrv's TLS accepts P-256 and P-384"
            )),
            None => bad("ECDSA key without a named curve".into()),
        }
    } else if *alg == OID_SIG_ED25519 {
        Ok(())
    } else if *alg == OID_KEY_TYPE_DSA {
        bad("DSA, which mailsrv's TLS never accepts".into())
    } else {
        bad(format!(
            "algorithm {alg}, which mailsrv's TLS does not support"
        ))
    }
}

/// Bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn unsigned_bits(bytes: &[u8]) -> usize {
    let bytes = &bytes[bytes.iter().take_while(|&&b| b == 0).count()..];
    match bytes.first() {
        Some(&top) => (bytes.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    }
}

/// Verifies a server certificate chain (`chain[0]` is the leaf, the rest are
/// intermediates in any order) against `store` and the reference identifiers, at `now`:
/// [`check_chain`] first, then the name-constraint filter, then [`match_identity`].
///
/// Errors: those of [`check_chain`]; [`Error::BadCertificate`] for a malformed SAN;
/// [`Error::NameMismatch`] / [`Error::NameConstraint`] from matching;
/// [`Error::InvalidArg`] for an empty chain or reference list.
pub fn verify_cert(
    store: &CaStore,
    chain: &[CertificateDer<'_>],
    reference: &ReferenceIdentity,
    options: &MatchOptions,
    now: UnixTime,
) -> Result<CertVerdict> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(Error::InvalidArg("empty certificate chain".into()));
    };
    if reference.is_empty() {
        return Err(Error::InvalidArg("no reference identifiers".into()));
    }
    verify_detailed(store, leaf, intermediates, reference, options, now).map_err(|f| f.to_core())
}

/// The names-only check, for a client whose own TLS stack (OpenSSL, GnuTLS, NSS) already
/// validated the path to its own trust store: no path validation, no dates, no key check;
/// only the RFC 7817 / RFC 9525 identity of the leaf (`chain[0]`). The dNSName name
/// constraints of the other certificates given (the client's validated path) are still
/// applied to SRV-IDs and CN-IDs, which the client's stack does not read. The result's
/// path is empty: nothing was validated here.
///
/// Errors: [`Error::InvalidArg`] (empty chain or reference list), [`Error::BadCertificate`]
/// (a leaf or a SAN that does not parse), [`Error::NameMismatch`].
pub fn check_names_only(
    chain: &[CertificateDer<'_>],
    reference: &ReferenceIdentity,
    options: &MatchOptions,
) -> Result<CertVerdict> {
    let Some((leaf, issuers)) = chain.split_first() else {
        return Err(Error::InvalidArg("empty certificate chain".into()));
    };
    if reference.is_empty() {
        return Err(Error::InvalidArg("no reference identifiers".into()));
    }
    let mut constraints = DnsConstraints::default();
    for ca in issuers {
        constraints.add_cert(ca.as_ref());
    }
    let chain = VerifiedChain {
        path: Vec::new(),
        anchor_subject: String::new(),
        constraints,
    };
    let mut presented = PresentedIds::from_der(leaf.as_ref())?;
    chain.restrict(&mut presented);
    let matched = match_identity(reference, &presented, options)?;
    Ok(CertVerdict {
        matched,
        chain,
        presented,
    })
}

// ------------------------------------------------------------------ error mapping

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (proleptic Gregorian, no leap seconds).
fn fmt_time(t: UnixTime) -> String {
    let secs = t.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // civil_from_days (H. Hinnant), valid for every u64 / 86400.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

const OID_SERVER_AUTH: &[usize] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
const OID_CLIENT_AUTH: &[usize] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];

fn eku_purpose(values: &[usize]) -> ExtendedKeyPurpose {
    match values {
        OID_SERVER_AUTH => ExtendedKeyPurpose::ServerAuth,
        OID_CLIENT_AUTH => ExtendedKeyPurpose::ClientAuth,
        v => ExtendedKeyPurpose::Other(v.to_vec()),
    }
}

fn eku_text(values: &[usize]) -> String {
    match values {
        OID_SERVER_AUTH => "serverAuth".into(),
        OID_CLIENT_AUTH => "clientAuth".into(),
        v => v
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join("."),
    }
}

const UNKNOWN_ISSUER: &str = "the certificate chain does not lead to a trusted CA";
const BAD_SIGNATURE: &str = "a signature on the path is invalid";
const REVOKED: &str = "a certificate on the path is revoked";

/// webpki's verdict as a core error, with readable detail.
fn chain_error(e: &webpki::Error) -> Error {
    use webpki::Error as W;
    match e {
        W::CertExpired { time, not_after } => Error::CertExpired(format!(
            "a certificate on the path expired at {} (checked at {})",
            fmt_time(*not_after),
            fmt_time(*time)
        )),
        W::CertNotValidYet { time, not_before } => Error::CertNotYetValid(format!(
            "a certificate on the path is not valid before {} (checked at {})",
            fmt_time(*not_before),
            fmt_time(*time)
        )),
        W::UnknownIssuer => Error::UnknownIssuer(UNKNOWN_ISSUER.into()),
        W::CertDistrusted => {
            Error::UnknownIssuer("the chain leads to an explicitly distrusted CA".into())
        }
        W::EndEntityUsedAsCa => {
            Error::UnknownIssuer("the chain needs a non-CA certificate as an issuer".into())
        }
        W::MaximumPathDepthExceeded
        | W::MaximumSignatureChecksExceeded
        | W::MaximumPathBuildCallsExceeded => Error::UnknownIssuer(format!(
            "no path to a trusted CA within the search limits ({e:?})"
        )),
        W::RequiredEkuNotFoundContext(ctx) => Error::CertPurpose(format!(
            "the certificate is not valid for server authentication (extended key usage: {})",
            if ctx.present.is_empty() {
                "none".to_string()
            } else {
                ctx.present
                    .iter()
                    .map(|v| eku_text(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )),
        #[allow(deprecated)]
        W::RequiredEkuNotFound | W::EmptyEkuExtension => Error::CertPurpose(
            "the certificate is not valid for server authentication (extended key usage)".into(),
        ),
        W::NameConstraintViolation => Error::NameConstraint(
            "a CA's name constraints do not cover a name in the certificate".into(),
        ),
        W::CertNotValidForName(ctx) => Error::NameMismatch(format!(
            "certificate not valid for {}",
            ctx.expected.to_str()
        )),
        W::InvalidSignatureForPublicKey => Error::BadCertificate(BAD_SIGNATURE.into()),
        W::InvalidCertValidity => Error::BadCertificate(
            "a certificate's validity period is invalid (notAfter before notBefore)".into(),
        ),
        W::CaUsedAsEndEntity => {
            Error::BadCertificate("the server certificate is a CA certificate".into())
        }
        W::CertRevoked => Error::BadCertificate(REVOKED.into()),
        W::BadDer | W::BadDerTime | W::TrailingData(_) => {
            Error::BadCertificate(format!("malformed certificate ({e:?})"))
        }
        other => Error::BadCertificate(format!("certificate rejected ({other:?})")),
    }
}

/// webpki's verdict as rustls would report it (the mapping of rustls' private
/// `pki_error`); errors without a counterpart travel as `Other(webpki::Error)`.
fn chain_error_rustls(e: webpki::Error) -> rustls::Error {
    use webpki::Error as W;
    let ce = match e {
        W::BadDer | W::BadDerTime | W::TrailingData(_) => CertificateError::BadEncoding,
        W::CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }
        }
        W::CertExpired { time, not_after } => CertificateError::ExpiredContext { time, not_after },
        W::UnknownIssuer => CertificateError::UnknownIssuer,
        W::CertNotValidForName(ctx) => CertificateError::NotValidForNameContext {
            expected: ctx.expected,
            presented: ctx.presented,
        },
        W::CertRevoked => CertificateError::Revoked,
        W::UnknownRevocationStatus => CertificateError::UnknownRevocationStatus,
        W::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        W::UnsupportedSignatureAlgorithmContext(cx) => {
            CertificateError::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id: cx.signature_algorithm_id,
                supported_algorithms: cx.supported_algorithms,
            }
        }
        W::UnsupportedSignatureAlgorithmForPublicKeyContext(cx) => {
            CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: cx.signature_algorithm_id,
                public_key_algorithm_id: cx.public_key_algorithm_id,
            }
        }
        W::RequiredEkuNotFoundContext(ctx) => CertificateError::InvalidPurposeContext {
            required: eku_purpose(&ctx.required.oid_values().collect::<Vec<_>>()),
            presented: ctx.present.iter().map(|v| eku_purpose(v)).collect(),
        },
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(ce)
}

/// Core errors as rustls certificate errors, for code that must hand an [`Error`] to
/// rustls. Variants without a rustls counterpart travel inside `Other`.
pub fn to_rustls_error(e: &Error) -> rustls::Error {
    let ce = match e {
        Error::UnknownIssuer(_) => CertificateError::UnknownIssuer,
        Error::NameMismatch(_) => CertificateError::NotValidForName,
        Error::CertExpired(_) => CertificateError::Expired,
        Error::CertNotYetValid(_) => CertificateError::NotValidYet,
        Error::CertPurpose(_) => CertificateError::InvalidPurpose,
        other => CertificateError::Other(OtherError(Arc::new(other.clone()))),
    };
    rustls::Error::InvalidCertificate(ce)
}

/// The precise core error for a failed rustls handshake: certificate problems map to
/// their certificate variants (errors this module put into `Other` come back unchanged),
/// everything else is [`Error::Handshake`].
pub fn from_rustls_error(e: &rustls::Error) -> Error {
    match e {
        rustls::Error::InvalidCertificate(ce) => from_certificate_error(ce),
        rustls::Error::NoCertificatesPresented => {
            Error::BadCertificate("the server sent no certificate".into())
        }
        other => Error::Handshake(other.to_string()),
    }
}

fn from_certificate_error(ce: &CertificateError) -> Error {
    use CertificateError as C;
    match ce {
        C::BadEncoding => Error::BadCertificate("malformed certificate (bad encoding)".into()),
        C::Expired => Error::CertExpired("a certificate on the path has expired".into()),
        C::ExpiredContext { time, not_after } => Error::CertExpired(format!(
            "a certificate on the path expired at {} (checked at {})",
            fmt_time(*not_after),
            fmt_time(*time)
        )),
        C::NotValidYet => {
            Error::CertNotYetValid("a certificate on the path is not valid yet".into())
        }
        C::NotValidYetContext { time, not_before } => Error::CertNotYetValid(format!(
            "a certificate on the path is not valid before {} (checked at {})",
            fmt_time(*not_before),
            fmt_time(*time)
        )),
        C::UnknownIssuer => Error::UnknownIssuer(UNKNOWN_ISSUER.into()),
        C::BadSignature => Error::BadCertificate(BAD_SIGNATURE.into()),
        C::Revoked => Error::BadCertificate(REVOKED.into()),
        C::NotValidForName => {
            Error::NameMismatch("the certificate is not valid for the expected name".into())
        }
        C::NotValidForNameContext {
            expected,
            presented,
        } => Error::NameMismatch(format!(
            "the certificate is not valid for {}; presented: {}",
            expected.to_str(),
            if presented.is_empty() {
                "nothing".to_string()
            } else {
                presented.join(", ")
            }
        )),
        C::InvalidPurpose => {
            Error::CertPurpose("the certificate is not valid for server authentication".into())
        }
        C::InvalidPurposeContext { presented, .. } => Error::CertPurpose(format!(
            "the certificate is not valid for server authentication (extended key usage: {})",
            presented
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        C::Other(OtherError(inner)) => {
            if let Some(core) = inner.downcast_ref::<Error>() {
                core.clone()
            } else if let Some(w) = inner.downcast_ref::<webpki::Error>() {
                chain_error(w)
            } else {
                Error::BadCertificate(format!("certificate rejected: {inner}"))
            }
        }
        other => Error::BadCertificate(format!("certificate rejected: {other}")),
    }
}

// ------------------------------------------------------------------ rustls verifier

/// A rustls server-certificate verifier for one reference identity.
///
/// It ignores the `server_name` rustls passes (that is only the SNI / session key): the
/// [`ReferenceIdentity`] it was built with decides, so SNI `example.com` can be checked
/// against SRV-ID `_imaps.example.com`. It records the outcome of the last verification
/// ([`MailVerifier::last_match`], [`MailVerifier::last_error`]).
///
/// Resumption pitfall (docs/design.md §2.9): a resumed session skips the verifier, so a
/// config shared between identities could accept a session verified for another identity,
/// and `last_match` would be stale. Use [`client_config`], which disables resumption; give
/// each connection (or at least each identity) its own verifier if the outcome is read
/// back, since "last" is per verifier.
pub struct MailVerifier {
    store: CaStore,
    reference: ReferenceIdentity,
    options: MatchOptions,
    provider: Arc<CryptoProvider>,
    last: Mutex<Option<std::result::Result<MatchedId, Error>>>,
}

impl fmt::Debug for MailVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailVerifier")
            .field("store", &self.store)
            .field("reference", &self.reference.to_string())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl MailVerifier {
    /// A verifier for `reference` (must not be empty: [`Error::InvalidArg`]).
    pub fn new(
        store: CaStore,
        reference: ReferenceIdentity,
        options: MatchOptions,
    ) -> Result<Self> {
        if reference.is_empty() {
            return Err(Error::InvalidArg("no reference identifiers".into()));
        }
        Ok(MailVerifier {
            store,
            reference,
            options,
            provider: provider(),
            last: Mutex::new(None),
        })
    }

    /// The reference identifiers this verifier checks.
    pub fn reference(&self) -> &ReferenceIdentity {
        &self.reference
    }

    /// The matching policy.
    pub fn options(&self) -> MatchOptions {
        self.options
    }

    /// The match of the last successful verification (`None` before any, or if the last
    /// one failed).
    pub fn last_match(&self) -> Option<MatchedId> {
        match &*self.last.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(Ok(m)) => Some(m.clone()),
            _ => None,
        }
    }

    /// The precise reason of the last failed verification (`None` if it succeeded).
    pub fn last_error(&self) -> Option<Error> {
        match &*self.last.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    fn record(&self, outcome: std::result::Result<MatchedId, Error>) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    }
}

impl ServerCertVerifier for MailVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match verify_detailed(
            &self.store,
            end_entity,
            intermediates,
            &self.reference,
            &self.options,
            now,
        ) {
            Ok(verdict) => {
                self.record(Ok(verdict.matched));
                Ok(ServerCertVerified::assertion())
            }
            Err(failure) => {
                self.record(Err(failure.to_core()));
                Err(failure.to_rustls(server_name))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a successful certificate check proved about the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertProof {
    /// PKIX: the chain leads to a trusted CA and the certificate carries this identifier.
    Identity(MatchedId),
    /// DANE-EE: a DNSSEC-secure TLSA record matches the server's key (RFC 7671 §5.1);
    /// names and dates are not checked.
    DaneEe,
    /// DANE-TA: a DNSSEC-secure TLSA record matches the issuing CA, and the certificate
    /// carries this identifier (RFC 7671 §5.2).
    DaneTa(MatchedId),
    /// The leaf's key is one the caller pinned (SPKI SHA-256) as trusted on its own, like
    /// DANE-EE: names and dates are not checked.
    Pinned,
}

impl CertProof {
    /// The reference identifier that matched, unless DANE-EE made names irrelevant.
    pub fn matched(&self) -> Option<&MatchedId> {
        match self {
            CertProof::Identity(m) | CertProof::DaneTa(m) => Some(m),
            CertProof::DaneEe | CertProof::Pinned => None,
        }
    }

    /// True when the check rested on TLSA records.
    pub fn is_dane(&self) -> bool {
        matches!(self, CertProof::DaneEe | CertProof::DaneTa(_))
    }
}

impl fmt::Display for CertProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertProof::Identity(m) => write!(f, "{m}"),
            CertProof::DaneEe => f.write_str("DANE-EE TLSA record matches the server's key"),
            CertProof::DaneTa(m) => write!(f, "DANE-TA TLSA record matches the issuing CA; {m}"),
            CertProof::Pinned => f.write_str("the server's key matches a pinned SPKI SHA-256"),
        }
    }
}

/// A client configuration for mail connections using `verifier`: TLS 1.3 and 1.2 only
/// (1.3 preferred, RFC 8314/8997), no client certificate (RFC 8314 §5.5), no early data,
/// and **resumption disabled**: a resumed session skips the verifier, so the probe's
/// session must never satisfy a later connection with other reference identifiers
/// (T-SNI-09), and the verifier's recorded match must always belong to this handshake.
/// Mail sessions are long-lived, so the extra full handshake is cheap.
pub fn client_config(verifier: Arc<dyn ServerCertVerifier>) -> Result<Arc<ClientConfig>> {
    client_config_with_auth(verifier, None)
}

/// A client certificate chain (DER, leaf first) and its private key, for servers that
/// require one (the caller's choice; mailsrv never offers one on its own).
pub struct ClientAuth {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: rustls_pki_types::PrivateKeyDer<'static>,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

/// [`client_config`] that presents `auth` when the server asks for a client certificate.
/// Errors: [`Error::InvalidArg`] when the key does not fit the certificate or is of a
/// kind rustls cannot sign with.
pub fn client_config_with_auth(
    verifier: Arc<dyn ServerCertVerifier>,
    auth: Option<&ClientAuth>,
) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Handshake(format!("cannot build the TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match auth {
        None => builder.with_no_client_auth(),
        Some(a) => builder
            .with_client_auth_cert(a.certs.clone(), a.key.clone_key())
            .map_err(|e| Error::InvalidArg(format!("client certificate: {e}")))?,
    };
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    Ok(Arc::new(config))
}

// ------------------------------------------------------------------ tests

#[cfg(test)]
mod tests {
    use super::*;

    fn cons(permitted: &[&str], excluded: &[&str]) -> DnsConstraints {
        let p: Vec<Base> = permitted.iter().map(|b| parse_base(b)).collect();
        DnsConstraints {
            cas: vec![CaConstraints {
                ca: "CN=test".into(),
                permitted: (!p.is_empty()).then_some(p),
                excluded: excluded.iter().map(|b| parse_base(b)).collect(),
            }],
        }
    }

    #[test]
    fn rfc4985_label_wise_suffix_rule() {
        let c = cons(&["host.example.com"], &[]);
        assert_eq!(c.check("host.example.com"), None);
        assert_eq!(c.check("www.host.example.com"), None);
        assert!(c.check("1host.example.com").is_some());
        assert!(c.check("example.com").is_some());
        let c = cons(&["example.net"], &[]);
        assert!(c.check("example.com").is_some());
        assert_eq!(c.check("EXAMPLE.NET"), None);
        let c = cons(&[".example.net"], &[]);
        assert!(c.check("example.net").is_some());
        assert_eq!(c.check("mail.example.net"), None);
        assert_eq!(cons(&[""], &[]).check("anything.org"), None);
    }

    #[test]
    fn excluded_subtrees_and_wildcards() {
        let c = cons(&[], &["bad.example.net"]);
        assert!(c.check("bad.example.net").is_some());
        assert!(c.check("x.bad.example.net").is_some());
        assert_eq!(c.check("good.example.net"), None);
        // `*.example.net` could expand to bad.example.net
        assert!(c.check("*.example.net").is_some());
        // permitted: a wildcard is inside only if its parent is
        let c = cons(&["example.net"], &[]);
        assert_eq!(c.check("*.example.net"), None);
        assert!(
            cons(&["mail.example.net"], &[])
                .check("*.example.net")
                .is_some()
        );
    }

    #[test]
    fn malformed_constraints_fail_closed() {
        assert!(cons(&["exa mple.net"], &[]).check("example.net").is_some());
        assert!(cons(&[], &["bad..net"]).check("example.net").is_some());
        let mut c = DnsConstraints::default();
        c.add_contents(b"\x01\x02", "CN=broken".into());
        assert!(c.check("example.net").is_some());
    }

    #[test]
    fn anchor_constraints_from_raw_contents() {
        // permittedSubtrees [0] { GeneralSubtree { dNSName "example.net" } }
        let dns = b"example.net";
        let mut gs = vec![0x30, (dns.len() + 2) as u8, 0x82, dns.len() as u8];
        gs.extend_from_slice(dns);
        let mut contents = vec![0xa0, gs.len() as u8];
        contents.extend(gs);
        let mut c = DnsConstraints::default();
        c.add_contents(&contents, "CN=NC root".into());
        assert_eq!(c.check("mail.example.net"), None);
        let why = c.check("example.com").unwrap();
        assert!(
            why.contains("CN=NC root") && why.contains("example.net"),
            "{why}"
        );
    }

    #[test]
    fn wrap_sequence_lengths() {
        assert_eq!(wrap_sequence(&[1, 2]), vec![0x30, 2, 1, 2]);
        let long = vec![0u8; 300];
        assert_eq!(&wrap_sequence(&long)[..4], &[0x30, 0x82, 0x01, 0x2c]);
        assert_eq!(&wrap_sequence(&[0u8; 200])[..3], &[0x30, 0x81, 200]);
    }

    #[test]
    fn time_format() {
        assert_eq!(
            fmt_time(UnixTime::since_unix_epoch(std::time::Duration::ZERO)),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            fmt_time(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                1_580_515_200
            ))),
            "2020-02-01T00:00:00Z"
        );
        assert_eq!(
            fmt_time(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                951_782_400
            ))),
            "2000-02-29T00:00:00Z"
        );
        // no panic at the far end
        let _ = fmt_time(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::MAX,
        )));
    }

    #[test]
    fn rustls_error_round_trip() {
        let cases = [
            Error::NameConstraint("x".into()),
            Error::BadCertificate("malformed SRVName: embedded NUL".into()),
        ];
        for e in cases {
            assert_eq!(from_rustls_error(&to_rustls_error(&e)), e);
        }
        let w = webpki::Error::CertExpired {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_580_515_200)),
        };
        let back = from_rustls_error(&chain_error_rustls(w.clone()));
        assert_eq!(back, chain_error(&w));
        assert!(matches!(back, Error::CertExpired(ref d) if d.contains("2020-02-01")));
        for (w, want) in [
            (webpki::Error::UnknownIssuer, "UnknownIssuer"),
            (webpki::Error::NameConstraintViolation, "NameConstraint"),
            (
                webpki::Error::InvalidSignatureForPublicKey,
                "BadCertificate",
            ),
            (webpki::Error::InvalidCertValidity, "BadCertificate"),
            (webpki::Error::CertDistrusted, "UnknownIssuer"),
        ] {
            let core = chain_error(&w);
            assert!(format!("{core:?}").starts_with(want), "{w:?} -> {core:?}");
            assert_eq!(from_rustls_error(&chain_error_rustls(w)), core);
        }
        assert!(matches!(
            from_rustls_error(&rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            )),
            Error::Handshake(_)
        ));
    }

    #[test]
    fn verifier_needs_references() {
        let Ok(store) = CaStore::system() else {
            return;
        };
        let e = MailVerifier::new(store, ReferenceIdentity::new(), MatchOptions::default());
        assert!(matches!(e, Err(Error::InvalidArg(_))));
    }
}
