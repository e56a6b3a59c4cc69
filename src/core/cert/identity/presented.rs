//! Presented identifiers: what a certificate names (dNSName, SRVName, iPAddress, URI SANs
//! and the subject CN), read with x509-parser and checked for syntax here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::asn1_rs::{Any, Class, FromDer as _, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_X509_COMMON_NAME;

use crate::core::name::{NameForm, check_ldh_name, show, show_bytes};
use crate::core::{Error, Result};

/// The SRVName otherName type (RFC 4985 §2, id-on-dnsSRV).
pub const SRV_NAME_OID: &str = "1.3.6.1.5.5.7.8.7";
/// How many presented identifiers a mismatch message lists before it summarises.
const MAX_LISTED: usize = 16;

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
    pub(super) sans: Vec<PresentedId>,
    /// Subject CNs with host-name syntax.
    pub(super) cns: Vec<String>,
    /// True once any dNSName, otherName, URI or iPAddress SAN was seen, valid or not:
    /// then the CN must not be used (RFC 6125 §6.4.4).
    pub(super) san_names_seen: bool,
    /// Human-readable notes about ignored values.
    pub(super) ignored: Vec<String>,
    /// Identifiers removed because a CA's name constraints do not cover them, with why.
    pub(super) constrained: Vec<(PresentedId, String)>,
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

    pub(super) fn add_general_name(&mut self, name: &GeneralName<'_>) -> Result<()> {
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
    let form = if wildcard {
        NameForm::Wildcard
    } else {
        NameForm::Host
    };
    check_ldh_name(value, form)?;
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
