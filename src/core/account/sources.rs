//! The sources: where each looks, and what its document's coverage is (see `mod.rs`).

use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

use super::fetch::{self, Fetched, Hop};
use super::source_run::SourceRun;
use super::xml::{self, AddressParts};
use super::{AccountOptions, Coverage, Found, Source};
use crate::core::address::{MailDomain, is_in_domain, normalize_domain};
use crate::core::cert::ca_store::CaStore;
use crate::core::dns::answer::{DnssecState, Outcome};
use crate::core::dns::discover::{DiscoverOptions, SrvState, discover};
use crate::core::dns::resolver::Resolver;
use crate::core::service::Service;
use crate::core::{Error, Result};

/// The parts of `address` for the `username` placeholders; the address must have a local
/// part (the documents are per user).
pub fn address_parts(address: &str, domain: &MailDomain) -> Result<AddressParts> {
    let Some(at) = address.rfind('@') else {
        return Err(Error::InvalidArg(format!(
            "{address:?} is not an email address (account discovery needs the local part)"
        )));
    };
    let local = &address[..at];
    Ok(AddressParts {
        address: format!("{local}@{domain}"),
        local: local.to_string(),
        domain: domain.clone(),
    })
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL `source` asks for `domain` (the ISPDB ones need `ispdb`).
pub fn url(source: Source, domain: &str, address: &str, ispdb: Option<&str>) -> Option<String> {
    let q = query_value(address);
    Some(match source {
        Source::Autoconfig | Source::MxAutoconfig => {
            format!("https://autoconfig.{domain}/mail/config-v1.1.xml?emailaddress={q}")
        }
        Source::AutoconfigWellKnown => {
            format!("https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={q}")
        }
        // Plain HTTP: the address is not sent where anyone on the path can read it.
        Source::AutoconfigHttp => format!("http://autoconfig.{domain}/mail/config-v1.1.xml"),
        Source::Ispdb | Source::MxIspdb => format!("{}{domain}", ispdb?),
        Source::Pacc => super::pacc::url(domain),
        Source::Autodiscover => super::autodiscover::urls(domain)[0].clone(),
        Source::Srv | Source::Guess => return None,
    })
}

/// Fetches and parses one document.
async fn document(
    resolver: &Resolver,
    trust: &CaStore,
    url: &str,
    parts: &AddressParts,
    deadline: Instant,
) -> (Result<(xml::ClientConfig, Fetched)>, Vec<Hop>) {
    match fetch::get(resolver, trust, url, deadline).await {
        Err(e) => (Err(e.error), e.hops),
        Ok(f) => {
            let hops = f.hops.clone();
            match xml::parse(&f.body, parts) {
                Err(e) => (Err(e), hops),
                Ok(c) if c.servers.is_empty() => (
                    Err(Error::BadConfig(format!(
                        "{}: the document names no server mailsrv can use{}",
                        f.final_url(),
                        if c.notes.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", c.notes.join("; "))
                        }
                    ))),
                    hops,
                ),
                Ok(c) => (Ok((c, f)), hops),
            }
        }
    }
}

/// Provider autoconfig (HTTPS, .well-known or plain HTTP) for the mail domain.
pub async fn provider(
    source: Source,
    resolver: &Resolver,
    trust: &CaStore,
    parts: &AddressParts,
    deadline: Instant,
) -> SourceRun {
    let domain = &parts.domain;
    let Some(url) = url(source, domain, &parts.address, None) else {
        return SourceRun::failed(Error::InvalidArg("no URL".into()), Vec::new());
    };
    let (doc, hops) = document(resolver, trust, &url, parts, deadline).await;
    let (config, fetched) = match doc {
        Ok(d) => d,
        Err(e) => return SourceRun::failed(e, hops),
    };
    let coverage = if !fetched.all_https() {
        Coverage::None(format!("the configuration came over plain HTTP ({url})"))
    } else if let Some(out) = fetched.hops.iter().find(|h| !is_in_domain(&h.host, domain)) {
        Coverage::None(format!(
            "the configuration was redirected to {}, outside {domain}",
            out.host
        ))
    } else {
        Coverage::HttpsDomain
    };
    SourceRun::found(source, config, &fetched, coverage)
}

/// The ISPDB entry of the mail domain.
pub async fn ispdb(
    resolver: &Resolver,
    trust: &CaStore,
    parts: &AddressParts,
    base: &str,
    deadline: Instant,
) -> SourceRun {
    let url = format!("{base}{}", parts.domain);
    let (doc, hops) = document(resolver, trust, &url, parts, deadline).await;
    let (config, fetched) = match doc {
        Ok(d) => d,
        Err(e) => return SourceRun::failed(e, hops),
    };
    let coverage = if fetched.all_https() {
        Coverage::Ispdb
    } else {
        Coverage::None(format!("the ISPDB answered over plain HTTP ({url})"))
    };
    SourceRun::found(Source::Ispdb, config, &fetched, coverage)
}

/// The highest-priority MX host of `domain` and the DNSSEC state of the answer.
pub async fn mx(resolver: &Resolver, domain: &str) -> Result<(String, DnssecState)> {
    let name = Name::from_ascii(format!("{domain}."))
        .map_err(|e| Error::InvalidArg(format!("{domain}: {e}")))?;
    match resolver.query(&name, RecordType::MX).await? {
        Outcome::Records(a) => {
            let best = a
                .records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(m) => Some((m.preference, m.exchange.to_ascii())),
                    _ => None,
                })
                .min_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
            match best {
                Some((_, host)) if host != "." => Ok((normalize_domain(&host)?, a.dnssec)),
                Some(_) => Err(Error::NoRecord(format!(
                    "{domain} accepts no mail (null MX)"
                ))),
                None => Err(Error::NoRecord(format!("{domain} has no MX record"))),
            }
        }
        Outcome::NoData { .. } => Err(Error::NoRecord(format!("{domain} has no MX record"))),
        Outcome::NxDomain { .. } => Err(Error::NxDomain(format!("{domain} does not exist"))),
    }
}

/// The domains an MX host stands for (§4.3): its parent, then its registrable domain (PSL),
/// without repeats, single labels, or the mail domain itself (the provider sources ask it).
pub fn mx_domains(host: &str, mail_domain: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let parent = host.split_once('.').map(|(_, p)| p.to_string());
    let registrable = psl::domain_str(host).map(str::to_string);
    for d in [parent, registrable].into_iter().flatten() {
        if d.contains('.') && d != mail_domain && !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// MX-derived autoconfig (HTTPS) or ISPDB: each of the MX host's domains in turn.
#[allow(clippy::too_many_arguments)]
pub async fn mx_derived(
    source: Source,
    resolver: &Resolver,
    trust: &CaStore,
    parts: &AddressParts,
    mx: Result<(String, DnssecState)>,
    ispdb: Option<&str>,
    fetch_timeout: std::time::Duration,
    deadline: Instant,
) -> SourceRun {
    let (host, dnssec) = match mx {
        Ok(m) => m,
        Err(e) => return SourceRun::failed(e, Vec::new()),
    };
    let mut hops = Vec::new();
    let mut notes = Vec::new();
    let mut last = Error::NotFound(format!("the MX host {host} gives no provider domain"));
    if dnssec == DnssecState::Bogus {
        last = Error::Bogus(format!("the MX answer of {} is bogus", parts.domain));
        return SourceRun {
            found: Err(last),
            hops,
            notes,
            mx: Some((host, dnssec)),
            record: None,
            unfollowed: Vec::new(),
        };
    }
    for d in mx_domains(&host, &parts.domain) {
        let Some(url) = url(source, &d, &parts.address, ispdb) else {
            break;
        };
        notes.push(format!("MX {host}: asked {url}"));
        let one = deadline.min(Instant::now() + fetch_timeout);
        let (doc, h) = document(resolver, trust, &url, parts, one).await;
        hops.extend(h);
        let (config, fetched) = match doc {
            Ok(x) => x,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let coverage = if dnssec != DnssecState::Secure {
            Coverage::None(format!(
                "the MX answer of {} is not DNSSEC-signed ({})",
                parts.domain,
                dnssec.name()
            ))
        } else if !fetched.all_https() {
            Coverage::None(format!("the configuration for {d} came over plain HTTP"))
        } else if source == Source::MxAutoconfig
            && let Some(out) = fetched.hops.iter().find(|h| !is_in_domain(&h.host, &d))
        {
            Coverage::None(format!(
                "the configuration for {d} was redirected to {}, outside it",
                out.host
            ))
        } else {
            Coverage::DnssecMx {
                provider: d.clone(),
            }
        };
        notes.extend(config.notes.iter().cloned());
        return SourceRun {
            found: Ok(Found {
                source,
                url: Some(fetched.final_url().to_string()),
                config,
                coverage,
                srv: None,
                mx_dnssec: Some(dnssec),
            }),
            hops,
            notes,
            mx: Some((host, dnssec)),
            record: None,
            unfollowed: Vec::new(),
        };
    }
    SourceRun {
        found: Err(last),
        hops,
        notes,
        mx: Some((host, dnssec)),
        record: None,
        unfollowed: Vec::new(),
    }
}

/// RFC 6186 SRV discovery of every service.
pub async fn srv(
    resolver: &Resolver,
    parts: &AddressParts,
    opts: &AccountOptions,
    deadline: Instant,
) -> SourceRun {
    let dopts = DiscoverOptions {
        services: Service::ALL.to_vec(),
        require_secure: opts.require_secure,
        seed: opts.seed,
    };
    match discover(resolver, &parts.domain, &dopts, deadline).await {
        Err(e) => SourceRun::failed(e, Vec::new()),
        Ok(d) => {
            let any = d
                .services
                .iter()
                .any(|s| s.state == SrvState::Found && !s.endpoints.is_empty());
            if !any {
                let why: Vec<String> = d
                    .services
                    .iter()
                    .map(|s| format!("{}: {}", s.service, s.state.name()))
                    .collect();
                return SourceRun::failed(
                    Error::NoRecord(format!(
                        "{} offers no service through SRV ({})",
                        parts.domain,
                        why.join(", ")
                    )),
                    Vec::new(),
                );
            }
            SourceRun {
                found: Ok(Found {
                    source: Source::Srv,
                    url: None,
                    config: xml::ClientConfig::default(),
                    coverage: Coverage::None(String::new()),
                    srv: Some(d),
                    mx_dnssec: None,
                }),
                hops: Vec::new(),
                notes: Vec::new(),
                mx: None,
                record: None,
                unfollowed: Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_mx_domains() {
        assert_eq!(
            url(Source::Autoconfig, "example.com", "joe+x@example.com", None).unwrap(),
            "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=joe%2Bx%40example.com"
        );
        assert_eq!(
            url(
                Source::AutoconfigHttp,
                "example.com",
                "joe@example.com",
                None
            )
            .unwrap(),
            "http://autoconfig.example.com/mail/config-v1.1.xml"
        );
        assert_eq!(
            url(
                Source::Ispdb,
                "example.com",
                "a@example.com",
                Some("https://db.example/v1.1/")
            )
            .unwrap(),
            "https://db.example/v1.1/example.com"
        );
        assert!(url(Source::Ispdb, "example.com", "a@example.com", None).is_none());
        assert_eq!(
            mx_domains("mx1.mail.provider.co.uk", "example.com"),
            ["mail.provider.co.uk", "provider.co.uk"]
        );
        assert_eq!(
            mx_domains("mx1.example.net", "example.com"),
            ["example.net"]
        );
        assert_eq!(
            mx_domains("mx.example.com", "example.com"),
            Vec::<String>::new()
        );
        assert!(address_parts("example.com", &MailDomain::parse("example.com").unwrap()).is_err());
        let p = address_parts(
            "Joe@Example.COM",
            &MailDomain::parse("example.com").unwrap(),
        )
        .unwrap();
        assert_eq!(p.address, "Joe@example.com");
    }
}
