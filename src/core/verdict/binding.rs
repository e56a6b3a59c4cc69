//! The binding: the connection parameters under which a verdict's evidence holds, and which
//! every connection that carries the user's credentials must use (docs/SECURITY.md, "SNI
//! relay").
//!
//! Why it exists: an on-path attacker who forges an unsigned SRV record can point it at a
//! relay that pipes ClientHellos with SNI = the mail domain, untouched, to the genuine
//! provider and answers every other SNI with its own valid certificate. Such a relay
//! passes the probe (SNI = domain, proof = the domain's name) and the reconnect (SNI =
//! relay, proof = the relay's own name). The probe proved one thing only: a TLS session
//! that *starts with SNI = the mail domain and ends with a certificate for the mail
//! domain* reaches the genuine provider. So that is the session the login must use, and a
//! relay can only pass its bytes along, never read them.
//!
//! Rules (one per kind of evidence):
//!
//! | evidence | host | SNI | identity | TLSA |
//! |---|---|---|---|---|
//! | DNSSEC (SRV secure) | target | target | DNS-ID target | enforced unless provably absent |
//! | probe, target inside the mail domain | target | target | DNS-ID target | no |
//! | probe, target outside the mail domain | target | mail domain | what the probe proved (SRV-ID `_service.domain` or DNS-ID domain) | no |
//! | none (unverified; only after the user accepted it) | target | target | DNS-ID target | no |
//!
//! A binding is stored with the account as one line of text ([`Binding::to_text`]) and
//! read back with [`Binding::from_text`].

use std::fmt;

use crate::core::cert::identity::{DnsName, MatchKind, MatchedId, ReferenceId, ReferenceIdentity};
use crate::core::service::Security;
use crate::core::service::Service;
use crate::core::tls::connect::ConnectRequest;
use crate::core::{Error, Result};

/// The first word of a binding text; a later format gets a new one.
const TEXT_VERSION: &str = "mailsrv-binding-1";

/// How every credential-carrying connection to one server must be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The service, which fixes the protocol and the security mode.
    pub service: Service,
    /// The host to connect to (A-label name or IP address text).
    pub host: String,
    pub port: u16,
    /// The ClientHello server_name; `None`: the host's own (none for an IP address).
    pub sni: Option<String>,
    /// What the certificate must prove.
    pub identity: ReferenceIdentity,
    /// The probe's proof rested on the sibling service's SRV-ID (`_submission` for
    /// `_submissions`), so the login accepts it too.
    pub accept_sibling: bool,
    /// The host's TLSA records are looked up (DNSSEC) on every connection and, when a
    /// secure usable set exists, enforced instead of PKIX; a lookup that cannot be judged
    /// refuses the connection.
    pub dane: bool,
}

impl Binding {
    /// The binding of a DNSSEC-authentic SRV target: its own name, TLSA when `dane`.
    pub fn dnssec(service: Service, target: &str, port: u16, dane: bool) -> Result<Self> {
        Ok(Binding {
            dane,
            ..Self::own_name(service, target, port)?
        })
    }

    /// The binding of a probe-authentic SRV target (see the module table): a target inside
    /// `domain` keeps its own name; any other is bound to SNI = `domain` and to the
    /// identifier the probe matched.
    pub fn probe(
        service: Service,
        domain: &str,
        target: &str,
        port: u16,
        probe_matched: &MatchedId,
    ) -> Result<Self> {
        if crate::core::address::is_in_domain(target, domain) {
            return Self::own_name(service, target, port);
        }
        let mut identity = ReferenceIdentity::new();
        identity.push(probe_matched.reference.clone());
        Ok(Binding {
            sni: Some(DnsName::new(domain)?.as_str().to_string()),
            identity,
            accept_sibling: probe_matched.kind == MatchKind::SiblingService,
            ..Self::own_name(service, target, port)?
        })
    }

    /// The binding of an answer nothing proved: a plain connection to the target under its
    /// own name. Only for after the user accepted the server.
    pub fn unverified(service: Service, target: &str, port: u16) -> Result<Self> {
        Self::own_name(service, target, port)
    }

    fn own_name(service: Service, target: &str, port: u16) -> Result<Self> {
        if port == 0 {
            return Err(Error::InvalidArg("port 0".into()));
        }
        let host = DnsName::new(target)?.as_str().to_string();
        let mut identity = ReferenceIdentity::new();
        identity.add_dns_id(&host)?;
        Ok(Binding {
            service,
            sni: Some(host.clone()),
            host,
            port,
            identity,
            accept_sibling: false,
            dane: false,
        })
    }

    /// How TLS starts on this service.
    pub fn security(&self) -> Security {
        self.service.security()
    }

    /// True when the SNI differs from the host: the login goes to a relay-proof session of
    /// the mail domain's provider through this host.
    pub fn sni_is_mail_domain(&self) -> bool {
        self.sni.as_deref().is_some_and(|s| s != self.host)
    }

    /// The connect request this binding stands for (no TLSA: the caller adds them after
    /// looking them up when [`Binding::dane`] is set).
    pub fn connect_request(&self) -> ConnectRequest {
        let mut req = ConnectRequest::new(self.host.clone(), self.port, self.security());
        // `None` leaves it to the host: its own name, or none for an IP address.
        req.sni = self.sni.clone();
        req.identity = Some(self.identity.clone());
        req.options.accept_sibling_service = self.accept_sibling;
        req.protocol = Some(self.service.protocol());
        req
    }

    /// One line for the account store:
    /// `mailsrv-binding-1 service=imaps host=mx.example.net port=993 sni=example.com
    /// identity=srv:imaps:example.com dane=no` (`sni=-` for none; `identity` a comma
    /// list of `dns:NAME`, `srv:SERVICE:DOMAIN`, `ip:ADDRESS`; `sibling=yes` when set).
    pub fn to_text(&self) -> String {
        let ids: Vec<String> = self
            .identity
            .ids()
            .iter()
            .map(|id| match id {
                ReferenceId::DnsId(n) => format!("dns:{n}"),
                ReferenceId::SrvId { service, domain } => {
                    format!("srv:{}:{domain}", service.name())
                }
                ReferenceId::IpId(ip) => format!("ip:{ip}"),
            })
            .collect();
        let mut text = format!(
            "{TEXT_VERSION} service={} host={} port={} sni={} identity={} dane={}",
            self.service.name(),
            self.host,
            self.port,
            self.sni.as_deref().unwrap_or("-"),
            ids.join(","),
            yes_no(self.dane),
        );
        if self.accept_sibling {
            text.push_str(" sibling=yes");
        }
        text
    }

    /// Reads [`Binding::to_text`]'s form back, checking every field as a connect would.
    pub fn from_text(text: &str) -> Result<Self> {
        let bad = |why: String| Error::InvalidArg(format!("binding text: {why}"));
        let mut words = text.split_ascii_whitespace();
        match words.next() {
            Some(TEXT_VERSION) => {}
            Some(other) if other.starts_with("mailsrv-binding-") => {
                return Err(bad(format!(
                    "format {other:?} is not known to this version"
                )));
            }
            _ => return Err(bad(format!("does not start with {TEXT_VERSION:?}"))),
        }
        let (mut service, mut host, mut port, mut sni, mut identity, mut dane, mut sibling) =
            (None, None, None, None, None, None, false);
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| bad(format!("{word:?} is not key=value")))?;
            match key {
                "service" => {
                    service = Some(
                        Service::from_name(value)
                            .ok_or_else(|| bad(format!("unknown service {value:?}")))?,
                    )
                }
                "host" => host = Some(ReferenceId::from_host(value).map(|_| value.to_string())?),
                "port" => {
                    port = Some(
                        value
                            .parse::<u16>()
                            .ok()
                            .filter(|&p| p != 0)
                            .ok_or_else(|| bad(format!("bad port {value:?}")))?,
                    )
                }
                "sni" if value == "-" => sni = Some(None),
                "sni" => sni = Some(Some(DnsName::new(value)?.as_str().to_string())),
                "identity" => identity = Some(parse_identity(value).map_err(bad)?),
                "dane" => dane = Some(parse_yes_no(value).map_err(bad)?),
                "sibling" => sibling = parse_yes_no(value).map_err(bad)?,
                _ => return Err(bad(format!("unknown field {key:?}"))),
            }
        }
        let missing = |what: &str| bad(format!("no {what}="));
        Ok(Binding {
            service: service.ok_or_else(|| missing("service"))?,
            host: host.ok_or_else(|| missing("host"))?,
            port: port.ok_or_else(|| missing("port"))?,
            sni: sni.ok_or_else(|| missing("sni"))?,
            identity: identity.ok_or_else(|| missing("identity"))?,
            dane: dane.ok_or_else(|| missing("dane"))?,
            accept_sibling: sibling,
        })
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn parse_yes_no(value: &str) -> std::result::Result<bool, String> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("{value:?} is neither yes nor no")),
    }
}

fn parse_identity(value: &str) -> std::result::Result<ReferenceIdentity, String> {
    let mut identity = ReferenceIdentity::new();
    for item in value.split(',') {
        let id = match item.split_once(':') {
            Some(("dns", name)) => ReferenceId::dns(name),
            Some(("srv", rest)) => match rest.split_once(':') {
                Some((service, domain)) => ReferenceId::srv(service, domain),
                None => return Err(format!("{item:?} is not srv:SERVICE:DOMAIN")),
            },
            Some(("ip", ip)) => match ReferenceId::from_host(ip) {
                Ok(id @ ReferenceId::IpId(_)) => Ok(id),
                _ => return Err(format!("{item:?} is not an IP address")),
            },
            _ => return Err(format!("{item:?} is not dns:, srv: or ip:")),
        }
        .map_err(|e| e.to_string())?;
        identity.push(id);
    }
    if identity.is_empty() {
        return Err("an empty identity".into());
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cert::identity::PresentedId;

    fn srv_match(domain: &str) -> MatchedId {
        MatchedId {
            reference: ReferenceId::srv("imaps", domain).unwrap(),
            presented: PresentedId::SrvId {
                service: "imaps".into(),
                domain: domain.into(),
            },
            kind: MatchKind::Exact,
        }
    }

    #[test]
    fn probe_outside_the_domain_binds_sni_and_identity_to_the_domain() {
        let m = srv_match("victim.example");
        let b = Binding::probe(
            Service::Imaps,
            "victim.example",
            "relay.evil.example",
            993,
            &m,
        )
        .unwrap();
        assert_eq!(b.host, "relay.evil.example");
        assert_eq!(b.sni.as_deref(), Some("victim.example"));
        assert_eq!(b.identity.to_string(), "[SRV-ID _imaps.victim.example]");
        assert!(b.sni_is_mail_domain());
        let req = b.connect_request();
        assert_eq!(req.sni.as_deref(), Some("victim.example"));
        assert_eq!(req.identity, Some(b.identity.clone()));
    }

    #[test]
    fn probe_inside_the_domain_and_dnssec_keep_the_target_name() {
        let m = srv_match("example.com");
        let b = Binding::probe(Service::Imaps, "example.com", "imap.example.com", 993, &m).unwrap();
        assert_eq!(b.sni.as_deref(), Some("imap.example.com"));
        assert_eq!(b.identity.to_string(), "[DNS-ID imap.example.com]");
        let d = Binding::dnssec(Service::Submission, "MX.Provider.NET.", 587, true).unwrap();
        assert_eq!(d.host, "mx.provider.net");
        assert_eq!(d.security(), Security::StartTlsSmtp);
        assert!(d.dane);
    }

    #[test]
    fn text_round_trips_and_bad_text_is_refused() {
        let m = srv_match("victim.example");
        let b = Binding::probe(
            Service::Imaps,
            "victim.example",
            "relay.evil.example",
            993,
            &m,
        )
        .unwrap();
        let text = b.to_text();
        assert_eq!(
            text,
            "mailsrv-binding-1 service=imaps host=relay.evil.example port=993 sni=victim.example identity=srv:imaps:victim.example dane=no"
        );
        assert_eq!(Binding::from_text(&text).unwrap(), b);
        let d = Binding::dnssec(Service::Pop3, "mx.example.net", 110, true).unwrap();
        assert_eq!(Binding::from_text(&d.to_text()).unwrap(), d);
        for bad in [
            "",
            "mailsrv-binding-2 service=imaps",
            "mailsrv-binding-1 service=imaps host=a.example port=993 sni=a.example dane=no",
            "mailsrv-binding-1 service=smtp host=a.example port=993 sni=a.example identity=dns:a.example dane=no",
            "mailsrv-binding-1 service=imaps host=a.example port=0 sni=a.example identity=dns:a.example dane=no",
            "mailsrv-binding-1 service=imaps host=a..example port=993 sni=a.example identity=dns:a.example dane=no",
            "mailsrv-binding-1 service=imaps host=a.example port=993 sni=a.example identity=cn:a.example dane=no",
            "mailsrv-binding-1 service=imaps host=a.example port=993 sni=a.example identity=dns:a.example dane=maybe",
            "mailsrv-binding-1 service=imaps host=a.example port=993 sni=a.example identity=dns:a.example dane=no extra=1",
        ] {
            let e = Binding::from_text(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArg(_)), "{bad}: {e:?}");
        }
    }
}
