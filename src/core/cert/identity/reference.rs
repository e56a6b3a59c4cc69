//! Reference identifiers: what the client expects the server's certificate to name, built
//! from the caller's input alone (RFC 9525 §6.1.1).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use crate::core::name::{MAX_NAME_LEN, NameForm, check_ldh_name, show};
use crate::core::service::Service;
use crate::core::{Error, Result};

/// Inputs longer than this are refused before IDNA processing (no name can be this long).
const MAX_INPUT_LEN: usize = 1024;

/// A validated DNS name: ASCII A-labels, lower case, no trailing dot, LDH labels,
/// label ≤ 63 and name ≤ 253 octets, not an IP address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(pub(super) String);

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
        check_ldh_name(&ascii, NameForm::Host).map_err(|why| {
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
