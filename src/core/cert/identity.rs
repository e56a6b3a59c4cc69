//! Server identity for mail: reference identifiers (what the client expects), presented
//! identifiers (what the certificate says) and their matching, per RFC 7817, RFC 9525 and
//! RFC 4985 (docs/conformance.md, groups D–H).
//!
//! The reference list is built from the caller's input alone, never from a certificate
//! (RFC 9525 §6.1.1, T-REF-06). Presented identifiers are read with x509-parser and checked
//! here, because x509-parser only checks UTF-8 and webpki never reads otherName contents.
//!
//! Decisions on the questions the RFCs leave open:
//! * Services: the six RFC 6186 / RFC 8314 services of [`Service`]. `sieve` (RFC 7817 §3,
//!   ManageSieve) is rejected: mailsrv neither discovers nor connects to ManageSieve, and one
//!   service type for discovery and identity keeps the two from drifting apart.
//! * The implicit-TLS / STARTTLS sibling (`_submission` for `_submissions`, `_imap` for
//!   `_imaps`, `_pop3` for `_pop3s`, both ways) only with
//!   [`MatchOptions::accept_sibling_service`] (docs/design.md §2.6, T-REF-05).
//! * Malformed SRVNames: the wrong string type (UTF8String, ...) is ignored (T-SRVID-09); a
//!   broken encoding (length mismatch, trailing bytes, not `[0] EXPLICIT`, empty) or a byte
//!   that no host name can hold (NUL, other control characters, non-ASCII) rejects the whole
//!   certificate (T-SRVID-15: NUL-style truncation tricks must not reach C callers). A
//!   well-encoded value with bad syntax (`imaps.example.com`, `_imaps._tcp.example.com`,
//!   wildcards) is ignored (T-SRVID-06/07/08).
//! * Malformed dNSNames (NUL, non-ASCII, empty labels, trailing dot, partial wildcards) are
//!   ignored and kept as diagnostics (T-DNS-06/14/16/17).
//! * CN-IDs: only with [`MatchOptions::legacy_cn`], only for DNS-ID references, and only when
//!   the certificate has no dNSName, otherName, URI or iPAddress SAN at all (T-CN-01..05;
//!   iPAddress is stricter than RFC 6125 and costs nothing now that RFC 9525 drops CN).
//! * Wildcards: the whole left-most label only, one label, at least two labels after it
//!   (so never `*.tld`, T-DNS-09) and never a public suffix after it (`*.co.uk`,
//!   `*.s3.amazonaws.com`: the Public Suffix List, ICANN and PRIVATE sections), never in
//!   SRV-IDs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use x509_parser::asn1_rs::{Any, Class, FromDer as _, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_X509_COMMON_NAME;

use crate::core::service::Service;
use crate::core::{Error, Result};

/// The SRVName otherName type (RFC 4985 §2, id-on-dnsSRV).
pub const SRV_NAME_OID: &str = "1.3.6.1.5.5.7.8.7";

const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// Inputs longer than this are refused before IDNA processing (no name can be this long).
const MAX_INPUT_LEN: usize = 1024;
/// How many presented identifiers a mismatch message lists before it summarises.
const MAX_LISTED: usize = 16;

// ------------------------------------------------------------------ reference identifiers

/// A validated DNS name: ASCII A-labels, lower case, no trailing dot, LDH labels,
/// label ≤ 63 and name ≤ 253 octets, not an IP address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    /// Normalises a host or domain name given by the user: U-labels become A-labels
    /// (UTS-46 ToASCII), one trailing dot is stripped, the result is lower case.
    ///
    /// Rejects (as [`Error::InvalidArg`]) empty names, empty labels, over-long labels or
    /// names, non-LDH characters (including the `_` of SRV owner names, T-SNI-08), and IP
    /// address text (use [`ReferenceId::from_host`] for input that may be an address).
    pub fn new(input: &str) -> Result<Self> {
        if input.is_empty() {
            return Err(Error::InvalidArg("empty host name".into()));
        }
        if input.len() > MAX_INPUT_LEN {
            return Err(Error::InvalidArg(format!(
                "host name longer than {MAX_NAME_LEN} octets"
            )));
        }
        let name = input.strip_suffix('.').unwrap_or(input);
        if name.is_empty() {
            return Err(Error::InvalidArg("\".\" is not a host name".into()));
        }
        if name.contains('_') {
            // `_imaps.example.com` is an SRV-ID, never a host name or SNI (T-SNI-08).
            return Err(Error::InvalidArg(format!(
                "{} is not a host name (underscore; SRV-IDs are given as service + domain)",
                show(input)
            )));
        }
        if parse_ip_literal(name).is_some() {
            return Err(Error::InvalidArg(format!(
                "{} is an IP address, not a DNS name",
                show(input)
            )));
        }
        let ascii = Uts46::new()
            .to_ascii(
                name.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::CheckFirstLast,
                DnsLength::Ignore,
            )
            .map_err(|_| Error::InvalidArg(format!("{} is not a valid host name", show(input))))?
            .to_ascii_lowercase();
        check_ldh_name(&ascii, false).map_err(|why| {
            Error::InvalidArg(format!("{} is not a valid host name: {why}", show(input)))
        })?;
        if ascii
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            // An all-numeric last label is an address in disguise (`127.1`, `192.0.2`).
            return Err(Error::InvalidArg(format!(
                "{} looks like an IP address, not a DNS name",
                show(input)
            )));
        }
        Ok(DnsName(ascii))
    }

    /// The name as ASCII text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `192.0.2.1`, `2001:db8::1` or `[2001:db8::1]`.
fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    host.parse::<IpAddr>().ok()
}

/// One reference identifier: a name the client expects the server to prove.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReferenceId {
    /// A DNS-ID: matched against dNSName SANs (and CN-IDs under the legacy flag).
    DnsId(DnsName),
    /// An SRV-ID `_service.domain`: matched against SRVName SANs only.
    SrvId {
        /// The mail service (no underscore).
        service: Service,
        /// The domain the service is offered for (the mail domain).
        domain: DnsName,
    },
    /// An IP address: matched against iPAddress SANs only (T-REF-08).
    IpId(IpAddr),
}

impl ReferenceId {
    /// A DNS-ID from user input (IDN allowed, see [`DnsName::new`]).
    pub fn dns(name: &str) -> Result<Self> {
        DnsName::new(name).map(ReferenceId::DnsId)
    }

    /// An SRV-ID from a service name (`imaps` or `_imaps`, any case) and a domain.
    pub fn srv(service: &str, domain: &str) -> Result<Self> {
        Ok(ReferenceId::SrvId {
            service: parse_service(service)?,
            domain: DnsName::new(domain)?,
        })
    }

    /// The reference identifier for the host a client connects to: an IP literal
    /// (`192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`) becomes an IP-ID, anything else must
    /// be a valid host name and becomes a DNS-ID.
    pub fn from_host(host: &str) -> Result<Self> {
        if let Some(ip) = parse_ip_literal(host) {
            return Ok(ReferenceId::IpId(ip));
        }
        if host.starts_with('[') {
            return Err(Error::InvalidArg(format!(
                "{} is not a valid bracketed IPv6 address",
                show(host)
            )));
        }
        Self::dns(host)
    }
}

impl fmt::Display for ReferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceId::DnsId(n) => write!(f, "DNS-ID {n}"),
            ReferenceId::SrvId { service, domain } => {
                write!(f, "SRV-ID _{}.{domain}", service.name())
            }
            ReferenceId::IpId(ip) => write!(f, "IP-ID {ip}"),
        }
    }
}

/// Parses a mail service name: one of the six services, with or without the leading `_`,
/// case-insensitive. Anything else (including `sieve`) is [`Error::InvalidArg`].
pub fn parse_service(name: &str) -> Result<Service> {
    Service::from_name(name).ok_or_else(|| {
        Error::InvalidArg(format!(
            "unknown mail service {}; expected imap, imaps, pop3, pop3s, submission or submissions",
            show(name)
        ))
    })
}

/// The client's reference identifiers for one connection, in the caller's order.
///
/// Built only from what the caller knows (user input, configuration, DNSSEC-validated
/// data), never from a presented certificate (RFC 9525 §6.1.1, T-REF-06). Duplicates are
/// dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReferenceIdentity {
    ids: Vec<ReferenceId>,
}

impl ReferenceIdentity {
    /// An empty list (nothing can match it; add identifiers before use).
    pub fn new() -> Self {
        Self::default()
    }

    /// A list holding one DNS-ID.
    pub fn for_dns(name: &str) -> Result<Self> {
        let mut r = Self::new();
        r.add_dns_id(name)?;
        Ok(r)
    }

    /// A list holding one SRV-ID.
    pub fn for_srv(service: &str, domain: &str) -> Result<Self> {
        let mut r = Self::new();
        r.add_srv_id(service, domain)?;
        Ok(r)
    }

    /// Adds an identifier (ignored if already present).
    pub fn push(&mut self, id: ReferenceId) {
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
    }

    /// Adds a DNS-ID (see [`DnsName::new`]).
    pub fn add_dns_id(&mut self, name: &str) -> Result<()> {
        self.push(ReferenceId::dns(name)?);
        Ok(())
    }

    /// Adds an SRV-ID `_service.domain`.
    pub fn add_srv_id(&mut self, service: &str, domain: &str) -> Result<()> {
        self.push(ReferenceId::srv(service, domain)?);
        Ok(())
    }

    /// Adds an IP-ID.
    pub fn add_ip_id(&mut self, ip: IpAddr) {
        self.push(ReferenceId::IpId(ip));
    }

    /// Adds the identifier for a connect host (IP-ID or DNS-ID, see
    /// [`ReferenceId::from_host`]).
    pub fn add_host(&mut self, host: &str) -> Result<()> {
        self.push(ReferenceId::from_host(host)?);
        Ok(())
    }

    /// The identifiers, in the order they were added.
    pub fn ids(&self) -> &[ReferenceId] {
        &self.ids
    }

    /// Number of identifiers.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no identifier has been added.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl fmt::Display for ReferenceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, id) in self.ids.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{id}")?;
        }
        f.write_str("]")
    }
}

/// The TLS SNI host name for a connect host (RFC 6066 §3): A-labels, lower case, no
/// trailing dot; `None` for IP literals (no server_name extension, T-SNI-03/04).
/// SRV-ID forms (T-SNI-08), empty names and bad lengths (T-SNI-10) are errors.
pub fn sni_for_host(host: &str) -> Result<Option<String>> {
    match ReferenceId::from_host(host)? {
        ReferenceId::IpId(_) => Ok(None),
        ReferenceId::DnsId(n) => Ok(Some(n.0)),
        // from_host never builds an SRV-ID.
        ReferenceId::SrvId { .. } => Err(Error::InvalidArg("not a host name".into())),
    }
}

// ------------------------------------------------------------------ presented identifiers

/// One identifier a certificate presents (already checked for syntax, lower case).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PresentedId {
    /// A dNSName SAN, possibly a wildcard (`*.example.net`).
    DnsId(String),
    /// An SRVName SAN `_service.domain`; `service` is any valid RFC 6335 service name.
    SrvId {
        /// Service name without underscore, lower case.
        service: String,
        /// Domain part, lower case A-labels.
        domain: String,
    },
    /// An iPAddress SAN.
    IpId(IpAddr),
    /// A URI SAN: collected for diagnostics, never matched (RFC 7817 §3, T-REF-07).
    UriId(String),
    /// A subject CN that looks like a host name; used only under the legacy flag.
    CnId(String),
}

impl fmt::Display for PresentedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PresentedId::DnsId(n) => write!(f, "DNS-ID {n}"),
            PresentedId::SrvId { service, domain } => write!(f, "SRV-ID _{service}.{domain}"),
            PresentedId::IpId(ip) => write!(f, "IP-ID {ip}"),
            PresentedId::UriId(u) => write!(f, "URI-ID {}", show(u)),
            PresentedId::CnId(n) => write!(f, "CN-ID {n}"),
        }
    }
}

/// The identifiers a leaf certificate presents, plus what was ignored and why.
///
/// Build it with [`PresentedIds::from_der`]; the `add_*` methods run the same checks and
/// exist for tests and fuzzing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresentedIds {
    /// Valid SAN identifiers in certificate order (DNS, SRV, IP, URI).
    sans: Vec<PresentedId>,
    /// Subject CNs with host-name syntax.
    cns: Vec<String>,
    /// True once any dNSName, otherName, URI or iPAddress SAN was seen, valid or not:
    /// then the CN must not be used (RFC 6125 §6.4.4).
    san_names_seen: bool,
    /// Human-readable notes about ignored values.
    ignored: Vec<String>,
    /// Identifiers removed because a CA's name constraints do not cover them, with why.
    constrained: Vec<(PresentedId, String)>,
}

/// How an SRVName value decodes.
enum SrvDecode<'a> {
    /// An IA5String of printable ASCII.
    Text(&'a str),
    /// Another string type (UTF8String, ...): non-conformant, ignored (T-SRVID-09).
    WrongType(String),
}

impl PresentedIds {
    /// No identifiers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the presented identifiers of a DER leaf certificate.
    ///
    /// Errors ([`Error::BadCertificate`]): the certificate does not parse, the SAN
    /// extension appears twice or does not parse, or an SRVName is malformed (T-SRVID-15).
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| Error::BadCertificate(format!("certificate does not parse: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::BadCertificate(
                "trailing bytes after the certificate".into(),
            ));
        }
        let mut ids = PresentedIds::new();
        match cert.subject_alternative_name() {
            Ok(None) => {}
            Ok(Some(san)) => {
                for name in &san.value.general_names {
                    ids.add_general_name(name)?;
                }
            }
            Err(X509Error::DuplicateExtensions) => {
                return Err(Error::BadCertificate(
                    "subjectAltName extension appears more than once".into(),
                ));
            }
            Err(e) => {
                return Err(Error::BadCertificate(format!(
                    "subjectAltName extension is malformed: {e}"
                )));
            }
        }
        for rdn in cert.subject().iter_rdn() {
            let attrs: Vec<_> = rdn.iter().collect();
            for attr in &attrs {
                if attr.attr_type() != &OID_X509_COMMON_NAME {
                    continue;
                }
                if attrs.len() != 1 {
                    // RFC 7817 §2: a CN-ID is a single-attribute RDN.
                    ids.ignored
                        .push("CN in a multi-attribute RDN (not a CN-ID)".into());
                    continue;
                }
                match attr.as_str() {
                    Ok(s) => ids.add_subject_cn(s),
                    Err(_) => ids
                        .ignored
                        .push("CN that is not a readable string (not a CN-ID)".into()),
                }
            }
        }
        Ok(ids)
    }

    fn add_general_name(&mut self, name: &GeneralName<'_>) -> Result<()> {
        match name {
            GeneralName::DNSName(s) => self.add_dns_san(s),
            GeneralName::OtherName(oid, value) => {
                let oid = oid.to_id_string();
                if oid == SRV_NAME_OID {
                    self.add_srv_san_der(value)?;
                } else {
                    // e.g. XmppAddr 1.3.6.1.5.5.7.8.5 (T-SRVID-11): not an SRV-ID.
                    self.san_names_seen = true;
                    self.ignored
                        .push(format!("otherName {oid} (not an SRV-ID)"));
                }
            }
            GeneralName::IPAddress(b) => self.add_ip_san(b),
            GeneralName::URI(u) => self.add_uri_san(u),
            GeneralName::Invalid(tag, raw) => match tag.0 {
                // dNSName or URI that is not even UTF-8 (a Latin-1 byte, say).
                2 | 6 => {
                    self.san_names_seen = true;
                    self.ignored.push(format!(
                        "{} SAN that is not ASCII: {}",
                        if tag.0 == 2 { "dNSName" } else { "URI" },
                        show_bytes(raw)
                    ));
                }
                // An otherName whose type OID does not parse could be an SRVName.
                0 => {
                    return Err(Error::BadCertificate(
                        "malformed otherName in subjectAltName".into(),
                    ));
                }
                t => self.ignored.push(format!("undecodable SAN entry [{t}]")),
            },
            // rfc822Name, directoryName, registeredID, ...: not server identities.
            _ => {}
        }
        Ok(())
    }

    /// Adds a dNSName SAN value. Invalid values are ignored with a diagnostic.
    pub fn add_dns_san(&mut self, value: &str) {
        self.san_names_seen = true;
        match check_presented_dns(value, true) {
            Ok(name) => self.sans.push(PresentedId::DnsId(name)),
            Err(why) => self.ignored.push(format!("dNSName {}: {why}", show(value))),
        }
    }

    /// Adds an SRVName SAN from the DER bytes x509-parser leaves after the type OID
    /// (the `[0] EXPLICIT` wrapper and the string). A broken encoding or a control /
    /// non-ASCII byte is an error (T-SRVID-15); a wrong string type or bad syntax is
    /// ignored with a diagnostic (T-SRVID-07/09).
    pub fn add_srv_san_der(&mut self, value: &[u8]) -> Result<()> {
        self.san_names_seen = true;
        match decode_srv_name(value)? {
            SrvDecode::Text(s) => self.add_srv_text(s),
            SrvDecode::WrongType(why) => self.ignored.push(format!("SRVName {why}")),
        }
        Ok(())
    }

    /// Adds an SRVName SAN given as text (`_imaps.example.com`), as if it had been a
    /// well-encoded IA5String. Bad syntax is ignored with a diagnostic.
    pub fn add_srv_san(&mut self, value: &str) {
        self.san_names_seen = true;
        self.add_srv_text(value);
    }

    fn add_srv_text(&mut self, value: &str) {
        match check_presented_srv(value) {
            Ok((service, domain)) => self.sans.push(PresentedId::SrvId { service, domain }),
            Err(why) => self.ignored.push(format!("SRVName {}: {why}", show(value))),
        }
    }

    /// Adds an iPAddress SAN (4 or 16 octets; other lengths are ignored).
    pub fn add_ip_san(&mut self, octets: &[u8]) {
        self.san_names_seen = true;
        if let Ok(b) = <[u8; 4]>::try_from(octets) {
            self.sans
                .push(PresentedId::IpId(IpAddr::V4(Ipv4Addr::from(b))));
        } else if let Ok(b) = <[u8; 16]>::try_from(octets) {
            self.sans
                .push(PresentedId::IpId(IpAddr::V6(Ipv6Addr::from(b))));
        } else {
            self.ignored.push(format!(
                "iPAddress SAN of {} octets (an address constraint?)",
                octets.len()
            ));
        }
    }

    /// Adds a URI SAN (kept for diagnostics only; URI-IDs never match).
    pub fn add_uri_san(&mut self, uri: &str) {
        self.san_names_seen = true;
        self.sans.push(PresentedId::UriId(uri.to_string()));
    }

    /// Adds a subject CN. Only a value with host-name syntax becomes a CN-ID (T-CN-04).
    pub fn add_subject_cn(&mut self, cn: &str) {
        match check_presented_dns(cn, true) {
            Ok(name) => self.cns.push(name),
            Err(why) => self
                .ignored
                .push(format!("CN {} is not a host name: {why}", show(cn))),
        }
    }

    /// The valid SAN identifiers, in certificate order.
    pub fn sans(&self) -> &[PresentedId] {
        &self.sans
    }

    /// The subject CN-IDs (host-name syntax only).
    pub fn cn_ids(&self) -> &[String] {
        &self.cns
    }

    /// True when the CN may be consulted under the legacy flag: the certificate has no
    /// dNSName, otherName, URI or iPAddress SAN, valid or not.
    pub fn cn_eligible(&self) -> bool {
        !self.san_names_seen
    }

    /// What was ignored and why (for error details and logs).
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    /// Identifiers removed by [`PresentedIds::restrict_names`], with the reason.
    pub fn constrained(&self) -> &[(PresentedId, String)] {
        &self.constrained
    }

    /// Removes every SRV-ID and CN-ID whose DNS name `outside` rejects (returns a
    /// reason). The verifier uses it to apply CA dNSName name constraints that webpki does
    /// not apply to these names (webpki reads neither otherName contents nor the CN).
    pub fn restrict_names(&mut self, outside: impl Fn(&str) -> Option<String>) {
        let mut kept = Vec::with_capacity(self.sans.len());
        for id in std::mem::take(&mut self.sans) {
            let why = match &id {
                PresentedId::SrvId { domain, .. } => outside(domain),
                _ => None,
            };
            match why {
                Some(why) => self.constrained.push((id, why)),
                None => kept.push(id),
            }
        }
        self.sans = kept;
        let mut kept_cns = Vec::with_capacity(self.cns.len());
        for cn in std::mem::take(&mut self.cns) {
            match outside(&cn) {
                Some(why) => self.constrained.push((PresentedId::CnId(cn), why)),
                None => kept_cns.push(cn),
            }
        }
        self.cns = kept_cns;
    }

    /// A short listing of what is presented (and ignored), for error details.
    pub fn describe(&self) -> String {
        let mut items: Vec<String> = self.sans.iter().map(|p| p.to_string()).collect();
        let cn_note = if self.cn_eligible() {
            "legacy only"
        } else {
            "ignored: SANs present"
        };
        items.extend(self.cns.iter().map(|c| format!("CN-ID {c} ({cn_note})")));
        items.extend(
            self.constrained
                .iter()
                .map(|(p, why)| format!("{p} (dropped: {why})")),
        );
        items.extend(self.ignored.iter().map(|i| format!("ignored {i}")));
        if items.is_empty() {
            return "nothing".into();
        }
        let more = items.len().saturating_sub(MAX_LISTED);
        items.truncate(MAX_LISTED);
        let mut s = items.join(", ");
        if more > 0 {
            s.push_str(&format!(", and {more} more"));
        }
        s
    }
}

/// Decodes the otherName value of an SRVName: `[0] EXPLICIT IA5String`, exactly.
fn decode_srv_name(bytes: &[u8]) -> Result<SrvDecode<'_>> {
    let bad = |why: &str| Err(Error::BadCertificate(format!("malformed SRVName: {why}")));
    let Ok((rest, outer)) = Any::from_der(bytes) else {
        return bad("bad DER encoding");
    };
    if !rest.is_empty() {
        return bad("bytes after the value (length mismatch)");
    }
    if outer.class() != Class::ContextSpecific
        || outer.tag() != Tag(0)
        || !outer.header.is_constructed()
    {
        return bad("value is not [0] EXPLICIT");
    }
    let Ok((rest, inner)) = Any::from_der(outer.data) else {
        return bad("bad DER encoding of the string (length mismatch)");
    };
    if !rest.is_empty() {
        return bad("bytes after the string (length mismatch)");
    }
    if inner.class() != Class::Universal || inner.tag() != Tag::Ia5String {
        return Ok(SrvDecode::WrongType(format!(
            "encoded as {} instead of IA5String (ignored)",
            string_type_name(inner.class(), inner.tag())
        )));
    }
    if inner.header.is_constructed() {
        return bad("constructed IA5String");
    }
    let data = inner.data;
    if data.is_empty() {
        return bad("empty");
    }
    if let Some(pos) = data.iter().position(|&b| b == 0) {
        return bad(&format!(
            "embedded NUL at offset {pos}: {}",
            show_bytes(data)
        ));
    }
    if !data.iter().all(|b| b.is_ascii_graphic()) {
        return bad(&format!(
            "control, space or non-ASCII byte: {}",
            show_bytes(data)
        ));
    }
    // All bytes are printable ASCII, so this cannot fail.
    match std::str::from_utf8(data) {
        Ok(s) => Ok(SrvDecode::Text(s)),
        Err(_) => bad("not ASCII"),
    }
}

fn string_type_name(class: Class, tag: Tag) -> String {
    if class != Class::Universal {
        return format!("a [{}] tagged value", tag.0);
    }
    match tag {
        Tag::Utf8String => "UTF8String".into(),
        Tag::PrintableString => "PrintableString".into(),
        Tag::BmpString => "BMPString".into(),
        Tag::UniversalString => "UniversalString".into(),
        Tag::T61String => "TeletexString".into(),
        Tag::VisibleString => "VisibleString".into(),
        t => format!("universal type {}", t.0),
    }
}

/// Checks one LDH label (letters, digits, hyphen; no edge hyphen; 1..=63 octets).
fn check_ldh_label(label: &str) -> std::result::Result<(), &'static str> {
    if label.is_empty() {
        return Err("empty label");
    }
    if label.len() > MAX_LABEL_LEN {
        return Err("label longer than 63 octets");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err("character outside letters, digits and hyphen");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("label starts or ends with a hyphen");
    }
    Ok(())
}

/// Checks an ASCII name of LDH labels; with `wildcard`, the left-most label may be `*`.
fn check_ldh_name(name: &str, wildcard: bool) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("name longer than 253 octets");
    }
    for (i, label) in name.split('.').enumerate() {
        if wildcard && i == 0 && label == "*" {
            continue;
        }
        if label.contains('*') {
            return Err("wildcard that is not the whole left-most label");
        }
        check_ldh_label(label)?;
    }
    Ok(())
}

/// Checks a presented dNSName (or CN-ID) and lower-cases it.
fn check_presented_dns(value: &str, wildcard: bool) -> std::result::Result<String, &'static str> {
    if value.is_empty() {
        return Err("empty");
    }
    if value.bytes().any(|b| b == 0) {
        return Err("embedded NUL");
    }
    if !value.is_ascii() {
        return Err("non-ASCII (RFC 9525 §2 requires A-labels)");
    }
    if value.ends_with('.') {
        return Err("absolute name with a trailing dot");
    }
    if value == "*" {
        return Err("bare wildcard");
    }
    check_ldh_name(value, wildcard)?;
    Ok(value.to_ascii_lowercase())
}

/// Checks an RFC 6335 service name (without the underscore): 1..=15 of letters, digits and
/// hyphens, at least one letter, no edge or doubled hyphen.
fn check_service_name(s: &str) -> std::result::Result<(), &'static str> {
    if s.is_empty() || s.len() > 15 {
        return Err("service name must be 1 to 15 characters");
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || !s.bytes().any(|b| b.is_ascii_alphabetic())
        || s.starts_with('-')
        || s.ends_with('-')
        || s.contains("--")
    {
        return Err("invalid service name");
    }
    Ok(())
}

/// Splits and checks a presented SRVName `_service.domain`.
fn check_presented_srv(value: &str) -> std::result::Result<(String, String), &'static str> {
    let Some(rest) = value.strip_prefix('_') else {
        return Err("no leading underscore");
    };
    let Some((service, domain)) = rest.split_once('.') else {
        return Err("no domain part");
    };
    check_service_name(service)?;
    if domain.contains('_') {
        // `_imaps._tcp.example.com`: SRV-IDs carry no protocol label (T-SRVID-06).
        return Err("underscore label in the domain part");
    }
    if domain.contains('*') {
        return Err("wildcard (not allowed in SRV-IDs)");
    }
    let domain = check_presented_dns(domain, false)?;
    Ok((service.to_ascii_lowercase(), domain))
}

// ------------------------------------------------------------------ matching

/// Policy switches for matching. The default is strict: no sibling service, no CN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MatchOptions {
    /// Accept the implicit-TLS / STARTTLS sibling service in SRV-IDs (`_submission` for
    /// an `_submissions` reference and vice versa; likewise imap/imaps, pop3/pop3s).
    pub accept_sibling_service: bool,
    /// Accept a subject CN as a DNS-ID when the certificate has no SAN identifiers
    /// (RFC 7817 MAY; RFC 9525 forbids). Never set it for the SRV authenticity probe.
    pub legacy_cn: bool,
}

impl MatchOptions {
    /// The strict policy (the default).
    pub fn strict() -> Self {
        Self::default()
    }

    /// The policy for the SRV authenticity probe: strict, and CN never (T-CN-05). The
    /// sibling flag is kept from `self`, CN is forced off.
    pub fn for_probe(self) -> Self {
        Self {
            legacy_cn: false,
            ..self
        }
    }
}

/// How a reference identifier was matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// Equal names (ASCII case-insensitive) or equal addresses.
    Exact,
    /// A `*.parent` DNS-ID covered the reference's left-most label.
    Wildcard,
    /// An SRV-ID for the sibling service (only with `accept_sibling_service`).
    SiblingService,
    /// A subject CN (only with `legacy_cn`).
    LegacyCn,
}

/// Which reference identifier matched, and through which presented identifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MatchedId {
    /// The reference identifier that matched.
    pub reference: ReferenceId,
    /// The certificate's identifier that matched it.
    pub presented: PresentedId,
    /// How they matched.
    pub kind: MatchKind,
}

impl MatchedId {
    /// True when the match rests on an SRV-ID.
    pub fn is_srv_id(&self) -> bool {
        matches!(self.reference, ReferenceId::SrvId { .. })
    }

    /// True when the match rests on a subject CN (never acceptable as probe evidence).
    pub fn is_legacy_cn(&self) -> bool {
        self.kind == MatchKind::LegacyCn
    }
}

impl fmt::Display for MatchedId {
    /// `SRV-ID _imaps.example.com`, or with the presented form when it differs:
    /// `DNS-ID mail.example.net via DNS-ID *.example.net`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            MatchKind::Exact => write!(f, "{}", self.reference),
            MatchKind::Wildcard => write!(f, "{} via {}", self.reference, self.presented),
            MatchKind::SiblingService => write!(
                f,
                "{} via {} (sibling service)",
                self.reference, self.presented
            ),
            MatchKind::LegacyCn => {
                write!(f, "{} via {} (legacy)", self.reference, self.presented)
            }
        }
    }
}

/// Label-wise ASCII case-insensitive DNS-ID match, with the strict wildcard rule.
/// Both sides are already syntax-checked and lower case.
fn dns_matches(reference: &str, presented: &str) -> Option<MatchKind> {
    if reference.eq_ignore_ascii_case(presented) {
        return Some(MatchKind::Exact);
    }
    let parent = presented.strip_prefix("*.")?;
    // At least two labels after `*` (no `*.com`, T-DNS-09), and never a public suffix.
    if !parent.contains('.') || is_public_suffix(parent) {
        return None;
    }
    let (first, rest) = reference.split_once('.')?;
    if !first.is_empty() && rest.eq_ignore_ascii_case(parent) {
        Some(MatchKind::Wildcard)
    } else {
        None
    }
}

/// Whether `name` (lower case) is a public suffix: a rule of the Public Suffix List, ICANN
/// or PRIVATE section (`co.uk`, `s3.amazonaws.com`), from the `psl` crate. A wildcard over
/// it would cover names of unrelated registrants (T-DNS-09). The list is compiled in: it is
/// updated by bumping `psl` in Cargo.toml (docs/SECURITY.md, "Public Suffix List").
fn is_public_suffix(name: &str) -> bool {
    psl::suffix(name.as_bytes()).is_some_and(|s| s.as_bytes().len() == name.len())
}

fn match_one(r: &ReferenceId, p: &PresentedId, opts: &MatchOptions) -> Option<MatchKind> {
    match (r, p) {
        (ReferenceId::DnsId(name), PresentedId::DnsId(pres)) => dns_matches(name.as_str(), pres),
        (
            ReferenceId::SrvId { service, domain },
            PresentedId::SrvId {
                service: psvc,
                domain: pdom,
            },
        ) => {
            // Same domain exactly (no wildcards, no cross-combination, T-SRVID-14).
            if !domain.as_str().eq_ignore_ascii_case(pdom) {
                return None;
            }
            if service.name().eq_ignore_ascii_case(psvc) {
                Some(MatchKind::Exact)
            } else if opts.accept_sibling_service
                && service.sibling().name().eq_ignore_ascii_case(psvc)
            {
                Some(MatchKind::SiblingService)
            } else {
                None
            }
        }
        (ReferenceId::IpId(ip), PresentedId::IpId(pip)) => (ip == pip).then_some(MatchKind::Exact),
        (ReferenceId::DnsId(name), PresentedId::CnId(cn)) if opts.legacy_cn => {
            dns_matches(name.as_str(), cn).map(|_| MatchKind::LegacyCn)
        }
        // URI-IDs never (T-REF-07); no type crosses to another (T-SRVID-13, T-REF-08).
        _ => None,
    }
}

/// Matches the reference identifiers against the presented ones (RFC 9525 §6.3–§6.5,
/// RFC 7817 §3). Reference identifiers are tried in the caller's order; SAN identifiers
/// first, the CN only as a last resort under [`MatchOptions::legacy_cn`].
///
/// Errors: [`Error::NameMismatch`] listing what was wanted and what was presented, or
/// [`Error::NameConstraint`] when the only identifier that would have matched was dropped
/// because a CA's name constraints do not cover it.
pub fn match_identity(
    reference: &ReferenceIdentity,
    presented: &PresentedIds,
    options: &MatchOptions,
) -> Result<MatchedId> {
    for r in reference.ids() {
        for p in &presented.sans {
            if let Some(kind) = match_one(r, p, options) {
                return Ok(MatchedId {
                    reference: r.clone(),
                    presented: p.clone(),
                    kind,
                });
            }
        }
    }
    let cn_usable = options.legacy_cn && presented.cn_eligible();
    if cn_usable {
        for r in reference.ids() {
            for cn in &presented.cns {
                let p = PresentedId::CnId(cn.clone());
                if let Some(kind) = match_one(r, &p, options) {
                    return Ok(MatchedId {
                        reference: r.clone(),
                        presented: p,
                        kind,
                    });
                }
            }
        }
    }
    for (p, why) in &presented.constrained {
        if matches!(p, PresentedId::CnId(_)) && !cn_usable {
            continue;
        }
        for r in reference.ids() {
            if match_one(r, p, options).is_some() {
                return Err(Error::NameConstraint(format!(
                    "{p} would match {r}, but {why}"
                )));
            }
        }
    }
    Err(Error::NameMismatch(format!(
        "no presented identifier matches; wanted {reference}; presented: {}",
        presented.describe()
    )))
}

// ------------------------------------------------------------------ display helpers

/// Quotes hostile text for messages: escapes controls and non-ASCII, caps the length.
pub(crate) fn show(s: &str) -> String {
    const CAP: usize = 96;
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i >= CAP {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

/// Shows raw bytes: printable ASCII as is, everything else as `\xNN`, length capped.
fn show_bytes(b: &[u8]) -> String {
    const CAP: usize = 96;
    let mut out = String::from("\"");
    for (i, &c) in b.iter().enumerate() {
        if i >= CAP {
            out.push_str("...");
            break;
        }
        if c.is_ascii_graphic() || c == b' ' {
            if c == b'"' || c == b'\\' {
                out.push('\\');
            }
            out.push(char::from(c));
        } else {
            out.push_str(&format!("\\x{c:02x}"));
        }
    }
    out.push('"');
    out
}

// ------------------------------------------------------------------ tests

#[cfg(test)]
mod tests {
    use super::*;

    fn dns_ref(n: &str) -> ReferenceIdentity {
        ReferenceIdentity::for_dns(n).unwrap()
    }
    fn srv_ref(s: &str, d: &str) -> ReferenceIdentity {
        ReferenceIdentity::for_srv(s, d).unwrap()
    }
    fn dns_pres(names: &[&str]) -> PresentedIds {
        let mut p = PresentedIds::new();
        for n in names {
            p.add_dns_san(n);
        }
        p
    }
    fn srv_pres(names: &[&str]) -> PresentedIds {
        let mut p = PresentedIds::new();
        for n in names {
            p.add_srv_san(n);
        }
        p
    }
    fn strict() -> MatchOptions {
        MatchOptions::strict()
    }
    fn matches(r: &ReferenceIdentity, p: &PresentedIds) -> bool {
        match_identity(r, p, &strict()).is_ok()
    }
    fn mismatch(r: &ReferenceIdentity, p: &PresentedIds) -> bool {
        matches!(match_identity(r, p, &strict()), Err(Error::NameMismatch(_)))
    }
    /// DER of an SRVName otherName value: `[0] EXPLICIT <tag> <text>`.
    fn srv_der(tag: u8, text: &[u8]) -> Vec<u8> {
        let mut inner = vec![tag, text.len() as u8];
        inner.extend_from_slice(text);
        let mut v = vec![0xa0, inner.len() as u8];
        v.extend(inner);
        v
    }

    // ---- D. reference identifiers

    #[test]
    fn t_ref_01_manual_host_and_domain() {
        let mut r = ReferenceIdentity::new();
        r.add_host("mail.example.net").unwrap();
        r.add_dns_id("example.org").unwrap();
        assert_eq!(
            r.to_string(),
            "[DNS-ID mail.example.net, DNS-ID example.org]"
        );
    }

    #[test]
    fn t_ref_02_03_probe_references() {
        let mut r = ReferenceIdentity::new();
        r.add_srv_id("imaps", "example.org").unwrap();
        r.add_dns_id("example.org").unwrap();
        assert_eq!(r.len(), 2);
        let target = dns_pres(&["mail.host.net"]);
        assert!(mismatch(&r, &target), "insecure target is not a reference");
        // T-REF-03: with a secure SRV the caller adds the target.
        r.add_dns_id("mail.host.net").unwrap();
        assert!(matches(&r, &target));
    }

    #[test]
    fn t_ref_04_no_cname_canonicalisation() {
        let r = dns_ref("imap.example.com");
        assert!(mismatch(&r, &dns_pres(&["imap.cdn.net"])));
    }

    #[test]
    fn t_ref_05_submissions_strict_unless_flag() {
        let r = srv_ref("submissions", "example.org");
        assert_eq!(r.to_string(), "[SRV-ID _submissions.example.org]");
        let p = srv_pres(&["_submission.example.org"]);
        assert!(mismatch(&r, &p));
        let sib = MatchOptions {
            accept_sibling_service: true,
            ..MatchOptions::default()
        };
        let m = match_identity(&r, &p, &sib).unwrap();
        assert_eq!(m.kind, MatchKind::SiblingService);
        assert_eq!(
            m.to_string(),
            "SRV-ID _submissions.example.org via SRV-ID _submission.example.org (sibling service)"
        );
        // and the other siblings, both directions
        for (a, b) in [
            ("imap", "imaps"),
            ("pop3s", "pop3"),
            ("submission", "submissions"),
        ] {
            let r = srv_ref(a, "example.org");
            let p = srv_pres(&[&format!("_{b}.example.org")]);
            assert!(mismatch(&r, &p));
            assert!(match_identity(&r, &p, &sib).is_ok());
        }
        // the flag never crosses protocols
        let r = srv_ref("imaps", "example.org");
        assert!(match_identity(&r, &srv_pres(&["_pop3s.example.org"]), &sib).is_err());
    }

    #[test]
    fn t_ref_07_uri_id_never() {
        let mut p = PresentedIds::new();
        p.add_uri_san("imaps://example.org");
        assert_eq!(p.sans().len(), 1);
        assert!(mismatch(&dns_ref("example.org"), &p));
        assert!(mismatch(&srv_ref("imaps", "example.org"), &p));
    }

    #[test]
    fn t_ref_08_ip_reference() {
        let r = ReferenceId::from_host("192.0.2.10").unwrap();
        assert_eq!(r, ReferenceId::IpId("192.0.2.10".parse().unwrap()));
        assert!(ReferenceId::dns("192.0.2.10").is_err());
        let mut refs = ReferenceIdentity::new();
        refs.push(r);
        // a dNSName spelling the address does not match
        assert!(mismatch(&refs, &dns_pres(&["192.0.2.10"])));
        let mut p = PresentedIds::new();
        p.add_ip_san(&[192, 0, 2, 10]);
        assert_eq!(
            match_identity(&refs, &p, &strict()).unwrap().to_string(),
            "IP-ID 192.0.2.10"
        );
        let mut p = PresentedIds::new();
        p.add_ip_san(&[192, 0, 2, 11]);
        assert!(mismatch(&refs, &p));
        // IPv6, bracketed
        let mut refs = ReferenceIdentity::new();
        refs.add_host("[2001:db8::1]").unwrap();
        let mut p = PresentedIds::new();
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 1;
        p.add_ip_san(&v6);
        assert!(matches(&refs, &p));
        // an IP-ID never matches a DNS-ID reference and vice versa
        assert!(mismatch(&dns_ref("example.com"), &p));
    }

    /// T-REF-06: the reference list is built from the caller's input alone; presenting any
    /// certificate leaves it unchanged, and rebuilding it gives the same list.
    #[test]
    fn t_ref_06_reference_list_independent_of_certificate() {
        fn build() -> ReferenceIdentity {
            let mut r = ReferenceIdentity::new();
            r.add_srv_id("_IMAPS", "Example.COM.").unwrap();
            r.add_dns_id("example.com").unwrap();
            r.add_host("mail.provider.net").unwrap();
            r
        }
        let before = build();
        let snapshot = before.clone();
        const POOL: &[&str] = &[
            "example.com",
            "*.example.com",
            "mail.provider.net",
            "*.provider.net",
            "evil.org",
            "*.com",
            "mail..example.com",
            "xn--bcher-kva.example",
            "EXAMPLE.COM",
            "m\u{e4}il.example.net",
        ];
        const SRV_POOL: &[&str] = &[
            "_imaps.example.com",
            "_submissions.example.com",
            "_imaps.mail.provider.net",
            "_imap.example.com",
            "imaps.example.com",
            "_imaps.*.com",
        ];
        // A fixed LCG: deterministic, no crates.
        let mut state: u64 = 0x5eed_1234_abcd_0001;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % n
        };
        let mut outcomes = std::collections::HashSet::new();
        for _ in 0..2000 {
            let mut p = PresentedIds::new();
            for _ in 0..next(4) {
                p.add_dns_san(POOL[next(POOL.len())]);
            }
            for _ in 0..next(3) {
                p.add_srv_san(SRV_POOL[next(SRV_POOL.len())]);
            }
            if next(2) == 0 {
                p.add_subject_cn(POOL[next(POOL.len())]);
            }
            let opts = MatchOptions {
                accept_sibling_service: next(2) == 0,
                legacy_cn: next(2) == 0,
            };
            let first = match_identity(&before, &p, &opts);
            // pure: same answer again
            assert_eq!(first, match_identity(&before, &p, &opts));
            outcomes.insert(first.is_ok());
            // unchanged, and a fresh build (after seeing the cert) is identical
            assert_eq!(before, snapshot);
            assert_eq!(build(), snapshot);
        }
        assert_eq!(
            outcomes.len(),
            2,
            "generator must produce matches and mismatches"
        );
    }

    // ---- E. DNS-ID matching

    #[test]
    fn t_dns_01_02_exact_and_case() {
        assert!(matches(
            &dns_ref("mail.example.com"),
            &dns_pres(&["mail.example.com"])
        ));
        assert!(matches(
            &dns_ref("MAIL.Example.COM"),
            &dns_pres(&["mail.example.com"])
        ));
        assert!(matches(
            &dns_ref("mail.example.com"),
            &dns_pres(&["MAIL.EXAMPLE.com"])
        ));
    }

    #[test]
    fn t_dns_03_to_05_wildcard_one_label() {
        let p = dns_pres(&["*.example.com"]);
        let m = match_identity(&dns_ref("mail.example.com"), &p, &strict()).unwrap();
        assert_eq!(m.kind, MatchKind::Wildcard);
        assert_eq!(
            m.to_string(),
            "DNS-ID mail.example.com via DNS-ID *.example.com"
        );
        assert!(mismatch(&dns_ref("example.com"), &p)); // T-DNS-04
        assert!(mismatch(&dns_ref("a.b.example.com"), &p)); // T-DNS-05
    }

    #[test]
    fn t_dns_06_partial_wildcards_ignored() {
        for w in ["f*o.example.com", "*oo.example.com", "foo*.example.com"] {
            let p = dns_pres(&[w]);
            assert!(p.sans().is_empty(), "{w} must be ignored");
            assert_eq!(p.ignored().len(), 1);
            assert!(mismatch(&dns_ref("foo.example.com"), &p));
        }
    }

    #[test]
    fn t_dns_07_08_non_left_most_wildcards() {
        assert!(mismatch(
            &dns_ref("mail.example.com"),
            &dns_pres(&["mail.*.com"])
        ));
        assert!(mismatch(
            &dns_ref("a.b.example.com"),
            &dns_pres(&["*.*.example.com"])
        ));
        assert!(
            dns_pres(&["mail.*.com", "*.*.example.com"])
                .sans()
                .is_empty()
        );
    }

    #[test]
    fn t_dns_09_no_wildcard_over_tld() {
        assert!(mismatch(&dns_ref("example.com"), &dns_pres(&["*.com"])));
    }

    #[test]
    fn t_dns_09_no_wildcard_over_a_public_suffix() {
        for (reference, wildcard) in [
            ("example.co.uk", "*.co.uk"),                      // ICANN section
            ("bucket.s3.amazonaws.com", "*.s3.amazonaws.com"), // PRIVATE section
            ("evil.github.io", "*.github.io"),                 // PRIVATE section
            ("foo.bar.ck", "*.bar.ck"),                        // wildcard rule `*.ck`
        ] {
            assert!(
                mismatch(&dns_ref(reference), &dns_pres(&[wildcard])),
                "{wildcard}"
            );
        }
        // Registrable domains under those suffixes still take wildcards.
        for (reference, wildcard) in [
            ("mail.example.co.uk", "*.example.co.uk"),
            ("a.bucket.s3.amazonaws.com", "*.bucket.s3.amazonaws.com"),
            ("mail.example.net", "*.example.net"),
            ("mail.hosted.test", "*.hosted.test"), // unknown TLD: only `test` is a suffix
        ] {
            assert!(
                matches(&dns_ref(reference), &dns_pres(&[wildcard])),
                "{wildcard}"
            );
        }
    }

    #[test]
    fn t_dns_10_11_idn_reference() {
        let r = dns_ref("bücher.example");
        assert_eq!(
            r.ids()[0],
            ReferenceId::DnsId(DnsName("xn--bcher-kva.example".into()))
        );
        assert!(matches(&r, &dns_pres(&["xn--bcher-kva.example"])));
        assert!(matches(
            &dns_ref("mail.bücher.example"),
            &dns_pres(&["*.xn--bcher-kva.example"])
        ));
    }

    #[test]
    fn t_dns_12_wildcard_inside_a_label() {
        let p = dns_pres(&["xn--bcher*.example"]);
        assert!(p.sans().is_empty());
        assert!(mismatch(&dns_ref("xn--bcher-kva.example"), &p));
    }

    #[test]
    fn t_dns_13_reference_trailing_dot() {
        assert_eq!(
            DnsName::new("mail.example.com.").unwrap().as_str(),
            "mail.example.com"
        );
        assert!(matches(
            &dns_ref("mail.example.com."),
            &dns_pres(&["mail.example.com"])
        ));
        assert!(
            DnsName::new("mail.example.com..").is_err(),
            "only one dot is stripped"
        );
    }

    #[test]
    fn t_dns_14_presented_trailing_dot_ignored() {
        let p = dns_pres(&["mail.example.com."]);
        assert!(p.sans().is_empty());
        assert!(mismatch(&dns_ref("mail.example.com"), &p));
    }

    #[test]
    fn t_dns_15_any_san_suffices() {
        let p = dns_pres(&["other.example.com", "mail.example.com"]);
        assert!(matches(&dns_ref("mail.example.com"), &p));
    }

    #[test]
    fn t_dns_16_empty_labels_ignored() {
        let p = dns_pres(&["mail..example.com", "", ".example.com"]);
        assert!(p.sans().is_empty());
        assert_eq!(p.ignored().len(), 3);
        assert!(mismatch(&dns_ref("mail.example.com"), &p));
    }

    #[test]
    fn t_dns_17_raw_utf8_presented_ignored() {
        let p = dns_pres(&["bücher.example"]);
        assert!(p.sans().is_empty());
        assert!(mismatch(&dns_ref("bücher.example"), &p));
    }

    #[test]
    fn t_dns_18_bare_wildcard() {
        let p = dns_pres(&["*"]);
        assert!(p.sans().is_empty());
        assert!(mismatch(&dns_ref("mail.example.com"), &p));
    }

    #[test]
    fn t_dns_19_a_labels_case_insensitive() {
        assert!(matches(
            &dns_ref("xn--bcher-kva.example"),
            &dns_pres(&["XN--BCHER-KVA.EXAMPLE"])
        ));
    }

    #[test]
    fn presented_dns_nul_ignored() {
        // NUL-in-SAN (the certificate trick against C string APIs) never matches.
        let p = dns_pres(&["mail.example.net\0.evil.org"]);
        assert!(p.sans().is_empty());
        assert!(p.ignored()[0].contains("NUL"));
        assert!(mismatch(&dns_ref("mail.example.net"), &p));
    }

    // ---- F. SRV-IDs

    #[test]
    fn t_srvid_01_03_match_and_case() {
        let r = srv_ref("imaps", "example.com");
        let m = match_identity(&r, &srv_pres(&["_imaps.example.com"]), &strict()).unwrap();
        assert_eq!(m.to_string(), "SRV-ID _imaps.example.com");
        assert!(m.is_srv_id());
        assert!(matches(&r, &srv_pres(&["_IMAPS.EXAMPLE.COM"]))); // T-SRVID-03
        assert!(matches(
            &srv_ref("_IMAPS", "EXAMPLE.com."),
            &srv_pres(&["_imaps.example.com"])
        ));
    }

    #[test]
    fn t_srvid_02_04_strict_service() {
        assert!(mismatch(
            &srv_ref("submissions", "example.com"),
            &srv_pres(&["_imaps.example.com"])
        ));
        assert!(mismatch(
            &srv_ref("imap", "example.com"),
            &srv_pres(&["_imaps.example.com"])
        ));
    }

    #[test]
    fn t_srvid_05_other_domain() {
        assert!(mismatch(
            &srv_ref("imaps", "example.com"),
            &srv_pres(&["_imaps.mail.example.com"])
        ));
    }

    #[test]
    fn t_srvid_06_07_08_invalid_forms_ignored() {
        let p = srv_pres(&[
            "_imaps._tcp.example.com",
            "imaps.example.com",
            "_imaps.*.com",
            "_imaps.*.example.com",
            "_.example.com",
            "_imaps",
            "_imaps.example.com.",
        ]);
        assert!(p.sans().is_empty(), "{:?}", p.sans());
        assert_eq!(p.ignored().len(), 7);
        assert!(mismatch(&srv_ref("imaps", "example.com"), &p));
    }

    #[test]
    fn t_srvid_09_utf8string_ignored() {
        let mut p = PresentedIds::new();
        p.add_srv_san_der(&srv_der(0x0c, b"_imaps.example.com"))
            .unwrap();
        assert!(p.sans().is_empty());
        assert!(p.ignored()[0].contains("UTF8String"), "{:?}", p.ignored());
        assert!(mismatch(&srv_ref("imaps", "example.com"), &p));
        // but it still counts as an SRV SAN for the CN rule
        assert!(!p.cn_eligible());
    }

    #[test]
    fn t_srvid_10_idn_domain() {
        let r = srv_ref("imaps", "bücher.example");
        assert_eq!(r.to_string(), "[SRV-ID _imaps.xn--bcher-kva.example]");
        assert!(matches(&r, &srv_pres(&["_imaps.xn--bcher-kva.example"])));
    }

    #[test]
    fn t_srvid_11_xmpp_other_name_is_not_srv() {
        // XmppAddr otherName: not an SRV-ID; handled in add_general_name.
        let oid = x509_parser::der_parser::oid!(1.3.6.1.5.5.7.8.5);
        let value = srv_der(0x0c, b"_imaps.example.com");
        let gn = GeneralName::OtherName(oid, &value);
        let mut p = PresentedIds::new();
        p.add_general_name(&gn).unwrap();
        assert!(p.sans().is_empty());
        assert!(p.ignored()[0].contains("1.3.6.1.5.5.7.8.5"));
        assert!(mismatch(&srv_ref("imaps", "example.com"), &p));
    }

    #[test]
    fn t_srvid_12_parse_general_name_der() {
        let der: &[u8] = &[
            0xa0, 0x20, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07, 0xa0, 0x14,
            0x16, 0x12, 0x5f, 0x69, 0x6d, 0x61, 0x70, 0x73, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70,
            0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d,
        ];
        let (rest, gn) = GeneralName::from_der(der).unwrap();
        assert!(rest.is_empty());
        let mut p = PresentedIds::new();
        p.add_general_name(&gn).unwrap();
        assert_eq!(
            p.sans(),
            &[PresentedId::SrvId {
                service: "imaps".into(),
                domain: "example.com".into()
            }]
        );
    }

    #[test]
    fn t_srvid_13_srv_id_answers_only_srv_references() {
        assert!(mismatch(
            &dns_ref("example.com"),
            &srv_pres(&["_imaps.example.com"])
        ));
    }

    #[test]
    fn t_srvid_14_no_cross_combination() {
        let mut r = ReferenceIdentity::new();
        r.add_srv_id("imaps", "example.org").unwrap();
        r.add_dns_id("mail.host.net").unwrap();
        assert!(mismatch(&r, &srv_pres(&["_imaps.mail.host.net"])));
    }

    #[test]
    fn t_srvid_15_malformed_encoding_rejects_certificate() {
        let bad: Vec<Vec<u8>> = vec![
            srv_der(0x16, b"_imaps.example.com\0.evil.org"), // embedded NUL
            srv_der(0x16, b"_imaps.ex\xe4mple.com"),         // non-ASCII
            srv_der(0x16, b"_imaps.example.com\n"),          // control
            srv_der(0x16, b""),                              // SIZE (1..MAX)
            {
                let mut v = srv_der(0x16, b"_imaps.example.com");
                v[3] += 1; // inner length overruns the outer
                v
            },
            {
                let mut v = srv_der(0x16, b"_imaps.example.com");
                v.push(0); // trailing byte
                v
            },
            {
                let mut v = srv_der(0x16, b"_imaps.example.com");
                v[0] = 0x80; // [0] IMPLICIT (primitive) instead of EXPLICIT
                v
            },
            vec![],
            vec![0xa0],
        ];
        for v in bad {
            let mut p = PresentedIds::new();
            let e = p.add_srv_san_der(&v);
            assert!(
                matches!(e, Err(Error::BadCertificate(_))),
                "{v:02x?}: {e:?}"
            );
        }
        // the well-formed one is fine
        let mut p = PresentedIds::new();
        p.add_srv_san_der(&srv_der(0x16, b"_imaps.example.com"))
            .unwrap();
        assert!(matches(&srv_ref("imaps", "example.com"), &p));
    }

    #[test]
    fn srv_wildcard_reference_impossible() {
        assert!(ReferenceId::srv("imaps", "*.example.com").is_err());
    }

    // ---- G. CN-IDs

    fn legacy() -> MatchOptions {
        MatchOptions {
            legacy_cn: true,
            ..MatchOptions::default()
        }
    }

    #[test]
    fn t_cn_01_cn_ignored_when_san_present() {
        let mut p = dns_pres(&["a.example.com"]);
        p.add_subject_cn("mail.example.com");
        assert!(match_identity(&dns_ref("mail.example.com"), &p, &legacy()).is_err());
    }

    #[test]
    fn t_cn_02_cn_only_with_legacy_flag() {
        let mut p = PresentedIds::new();
        p.add_subject_cn("mail.example.com");
        let r = dns_ref("mail.example.com");
        assert!(mismatch(&r, &p));
        let m = match_identity(&r, &p, &legacy()).unwrap();
        assert!(m.is_legacy_cn());
        assert_eq!(
            m.to_string(),
            "DNS-ID mail.example.com via CN-ID mail.example.com (legacy)"
        );
        // a CN never answers an SRV-ID reference
        assert!(match_identity(&srv_ref("imaps", "mail.example.com"), &p, &legacy()).is_err());
    }

    #[test]
    fn t_cn_03_srv_id_disables_cn() {
        let mut p = srv_pres(&["_imaps.example.com"]);
        p.add_subject_cn("example.com");
        assert!(match_identity(&dns_ref("example.com"), &p, &legacy()).is_err());
    }

    #[test]
    fn t_cn_04_non_name_cn_never() {
        let mut p = PresentedIds::new();
        p.add_subject_cn("Example Mail Server");
        assert!(p.cn_ids().is_empty());
        assert!(match_identity(&dns_ref("example.com"), &p, &legacy()).is_err());
    }

    #[test]
    fn t_cn_05_probe_never_uses_cn() {
        let mut p = PresentedIds::new();
        p.add_subject_cn("mail.example.com");
        let probe = legacy().for_probe();
        assert!(!probe.legacy_cn);
        assert!(match_identity(&dns_ref("mail.example.com"), &p, &probe).is_err());
    }

    // ---- H. SNI

    #[test]
    fn t_sni_01_02_05_names() {
        assert_eq!(
            sni_for_host("mail.example.com").unwrap().as_deref(),
            Some("mail.example.com")
        );
        assert_eq!(
            sni_for_host("Mail.Example.COM.").unwrap().as_deref(),
            Some("mail.example.com")
        );
        assert_eq!(
            sni_for_host("bücher.example").unwrap().as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            sni_for_host("BÜCHER.example").unwrap().as_deref(),
            Some("xn--bcher-kva.example")
        );
    }

    #[test]
    fn t_sni_03_04_ip_literals() {
        for h in ["192.0.2.1", "2001:db8::1", "[2001:db8::1]", "::1", "[::1]"] {
            assert_eq!(sni_for_host(h).unwrap(), None, "{h}");
        }
        assert!(sni_for_host("[mail.example.com]").is_err());
        assert!(sni_for_host("[192.0.2.1]").is_err());
    }

    #[test]
    fn t_sni_08_srv_form_rejected() {
        assert!(matches!(
            sni_for_host("_imaps.example.com"),
            Err(Error::InvalidArg(_))
        ));
        assert!(ReferenceId::dns("_imaps.example.com").is_err());
    }

    #[test]
    fn t_sni_10_bad_lengths() {
        assert!(sni_for_host("").is_err());
        assert!(sni_for_host(".").is_err());
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(sni_for_host(&long_label).is_err());
        let ok_label = format!("{}.example.com", "a".repeat(63));
        assert!(sni_for_host(&ok_label).unwrap().is_some());
        // 4 × 63 + 3 dots = 255 > 253
        let long_name = vec!["a".repeat(63); 4].join(".");
        assert!(sni_for_host(&long_name).is_err());
        let name_253 = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(61));
        assert_eq!(name_253.len(), 253);
        assert!(sni_for_host(&name_253).unwrap().is_some());
        assert!(sni_for_host(&"a".repeat(5000)).is_err());
    }

    #[test]
    fn reference_name_validation() {
        for bad in [
            "a..b",
            "-a.example",
            "a-.example",
            "a b.example",
            "*.example.com",
            "mail.example.com/x",
            "127.1",
            "mail.123",
            "xn--zz.example",
            "a\0b.example",
        ] {
            assert!(DnsName::new(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(DnsName::new("localhost").unwrap().as_str(), "localhost");
        assert_eq!(
            DnsName::new("r3---sn-abc.example").unwrap().as_str(),
            "r3---sn-abc.example"
        );
    }

    #[test]
    fn service_names() {
        for (s, want) in [
            ("imaps", Service::Imaps),
            ("_IMAP", Service::Imap),
            ("Pop3S", Service::Pop3s),
            ("_submission", Service::Submission),
        ] {
            assert_eq!(parse_service(s).unwrap(), want);
        }
        for s in ["sieve", "xmpp-client", "", "_", "__imaps", "imaps."] {
            assert!(parse_service(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn hostile_text_is_escaped_in_details() {
        let mut p = dns_pres(&["evil\u{1b}[31m.example"]);
        p.add_uri_san("imaps://x\ny");
        let e = match_identity(&dns_ref("mail.example.net"), &p, &strict()).unwrap_err();
        let d = e.detail();
        assert!(!d.contains('\u{1b}') && !d.contains('\n'), "{d}");
    }

    #[test]
    fn mismatch_detail_lists_both_sides() {
        let e = match_identity(
            &srv_ref("imaps", "example.com"),
            &dns_pres(&["mail.example.net", "bad..name"]),
            &strict(),
        )
        .unwrap_err();
        let d = e.detail();
        assert!(d.contains("SRV-ID _imaps.example.com"), "{d}");
        assert!(d.contains("DNS-ID mail.example.net"), "{d}");
        assert!(d.contains("ignored dNSName \"bad..name\""), "{d}");
    }

    #[test]
    fn restrict_names_reports_name_constraint() {
        let mut p = srv_pres(&["_imaps.example.com", "_imaps.example.net"]);
        p.restrict_names(|d| (d != "example.net").then(|| format!("{d} outside example.net")));
        assert_eq!(p.constrained().len(), 1);
        let e = match_identity(&srv_ref("imaps", "example.com"), &p, &strict()).unwrap_err();
        assert!(matches!(e, Error::NameConstraint(_)), "{e:?}");
        assert!(matches(&srv_ref("imaps", "example.net"), &p));
        // nothing that would have matched: a plain mismatch
        let e = match_identity(&srv_ref("pop3s", "example.com"), &p, &strict()).unwrap_err();
        assert!(matches!(e, Error::NameMismatch(_)));
    }

    #[test]
    fn empty_reference_never_matches() {
        let r = ReferenceIdentity::new();
        assert!(r.is_empty());
        assert!(mismatch(&r, &dns_pres(&["mail.example.com"])));
    }

    #[test]
    fn garbage_der_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\x30", b"\x30\x03\x02\x01", &[0xff; 64]] {
            assert!(matches!(
                PresentedIds::from_der(bytes),
                Err(Error::BadCertificate(_))
            ));
        }
    }
}
