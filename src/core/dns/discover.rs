//! Mail server discovery (RFC 6186, RFC 8314 §5.1): the six SRV queries at once, RFC 2782
//! ordering, "." handling, then the targets' addresses, every RRset with its DNSSEC state.

use std::collections::HashMap;
use std::net::IpAddr;

use futures_util::future::join_all;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::time::{Instant, timeout_at};

use crate::core::address::MailDomain;
use crate::core::dns::answer::{Answer, DnssecState, MAX_ADDRESSES_PER_FAMILY, Outcome};
use crate::core::dns::resolver::Resolver;
use crate::core::dns::srv_order::{Draw, SplitMix, rfc2782_order};
use crate::core::service::{Purpose, Service};
use crate::core::{Error, Result};

/// Endpoints kept per service (in RFC 2782 order): bounds the address lookups of one answer.
const MAX_ENDPOINTS: usize = 64;

/// What to ask and how strictly.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// The services to query (all six by default).
    pub services: Vec<Service>,
    /// Anything but a DNSSEC-secure answer is an error for that service.
    pub require_secure: bool,
    /// Seed for the weighted random order, for reproducible tests; random when `None`.
    pub seed: Option<u64>,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            services: Service::ALL.to_vec(),
            require_secure: false,
            seed: None,
        }
    }
}

/// The outcome of one service's SRV query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrvState {
    /// Usable endpoints, in preference order.
    Found,
    /// The domain says the service is not offered (a "." target, RFC 2782, RFC 6186 §3.4).
    NotOffered,
    /// NXDOMAIN or NODATA: no SRV record (T-SRV-05). The caller may use other discovery.
    NoRecord,
    /// SERVFAIL, timeout, indeterminate DNSSEC or a policy failure: unknown, never "no record".
    LookupFailed,
    /// DNSSEC validation failed: the answer must not be used (T-AUTH-03).
    Bogus,
}

impl SrvState {
    pub fn name(self) -> &'static str {
        match self {
            SrvState::Found => "found",
            SrvState::NotOffered => "not_offered",
            SrvState::NoRecord => "no_record",
            SrvState::LookupFailed => "lookup_failed",
            SrvState::Bogus => "bogus",
        }
    }
}

/// One SRV target with its addresses.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// A-label host name, lower case, without trailing dot (T-SRV-13).
    pub target: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
    /// TTL of the SRV RRset.
    pub ttl: u32,
    /// DNSSEC state of the SRV RRset this endpoint came from.
    pub dnssec: DnssecState,
    /// IPv6 first, then IPv4, each in the order DNS gave them.
    pub addresses: Vec<IpAddr>,
    /// The weakest state over the address RRsets (`None` when none was answered).
    pub address_dnssec: Option<DnssecState>,
    /// Why addresses are missing or incomplete, if they are.
    pub address_error: Option<Error>,
}

/// The answer for one service label.
#[derive(Debug, Clone)]
pub struct ServiceAnswer {
    pub service: Service,
    pub state: SrvState,
    /// Set for `LookupFailed` and `Bogus`.
    pub error: Option<Error>,
    /// DNSSEC state of the SRV RRset or of the negative answer; `None` when there was none.
    pub dnssec: Option<DnssecState>,
    /// TTL of the SRV RRset, or the negative-caching TTL.
    pub ttl: u32,
    pub endpoints: Vec<Endpoint>,
    /// Misconfigurations worth telling an administrator (mixed ".", CNAMEs, ...).
    pub diagnostics: Vec<String>,
}

/// Everything discovery learnt about one mail domain.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The mail domain, A-labels.
    pub domain: String,
    /// One entry per service asked, in [`Service::ALL`] order.
    pub services: Vec<ServiceAnswer>,
}

impl Discovery {
    pub fn get(&self, service: Service) -> Option<&ServiceAnswer> {
        self.services.iter().find(|s| s.service == service)
    }

    /// The service a client should configure for `purpose`: lowest SRV priority among the
    /// found ones; on a tie implicit TLS first (RFC 8314 §3, T-SEL-04), then IMAP before
    /// POP3 (the client's choice, RFC 6186 §3.4). The protocol is chosen before any weight.
    pub fn preferred(&self, purpose: Purpose) -> Option<&ServiceAnswer> {
        self.services
            .iter()
            .filter(|s| s.state == SrvState::Found && s.service.purpose() == purpose)
            .filter_map(|s| s.endpoints.first().map(|e| (e.priority, s)))
            .min_by_key(|(prio, s)| (*prio, !s.service.implicit_tls(), s.service))
            .map(|(_, s)| s)
    }
}

/// Discovers the mail services of `address` (an email address or a domain), finishing by
/// `deadline`: what is not answered by then is reported as a timeout for that service.
pub async fn discover(
    resolver: &Resolver,
    domain: &MailDomain,
    opts: &DiscoverOptions,
    deadline: Instant,
) -> Result<Discovery> {
    let mut rng = match opts.seed {
        Some(seed) => SplitMix::from_seed(seed),
        None => SplitMix::from_entropy(),
    };
    // The chain of trust of the domain is fetched alongside the SRV queries (one round trip
    // for all, instead of one per level while validating).
    resolver.prefetch_keys(domain);
    let queries = opts.services.iter().map(|&svc| {
        let owner = format!("{}.{domain}.", svc.srv_prefix());
        async move {
            let name =
                Name::from_ascii(&owner).map_err(|e| Error::InvalidArg(format!("{owner}: {e}")))?;
            timeout_at(deadline, resolver.query(&name, RecordType::SRV))
                .await
                .unwrap_or_else(|_| Err(Error::Timeout(format!("{owner} SRV: deadline passed"))))
        }
    });
    let answers = join_all(queries).await;
    let mut services: Vec<ServiceAnswer> = opts
        .services
        .iter()
        .zip(answers)
        .map(|(&svc, res)| service_answer(svc, res, opts.require_secure, &mut rng))
        .collect();
    resolve_targets(resolver, &mut services, deadline).await;
    if let Some(why) = resolver.roadblock_reason() {
        for s in services
            .iter_mut()
            .filter(|s| s.dnssec == Some(DnssecState::Unavailable))
        {
            s.diagnostics.push(format!(
                "DNSSEC is unavailable on this network ({why}); the answer is used as unsigned"
            ));
        }
    }
    Ok(Discovery {
        domain: domain.to_string(),
        services,
    })
}

fn service_answer(
    service: Service,
    res: Result<Outcome>,
    require_secure: bool,
    rng: &mut impl Draw,
) -> ServiceAnswer {
    let mut out = ServiceAnswer {
        service,
        state: SrvState::LookupFailed,
        error: None,
        dnssec: None,
        ttl: 0,
        endpoints: Vec::new(),
        diagnostics: Vec::new(),
    };
    let (dnssec, ttl) = match &res {
        Ok(Outcome::Records(a)) => (a.dnssec, a.ttl),
        Ok(Outcome::NxDomain { dnssec, ttl } | Outcome::NoData { dnssec, ttl }) => (*dnssec, *ttl),
        Err(e) => {
            out.state = if matches!(e, Error::Bogus(_)) {
                SrvState::Bogus
            } else {
                SrvState::LookupFailed
            };
            out.dnssec = matches!(e, Error::Bogus(_)).then_some(DnssecState::Bogus);
            out.error = Some(e.clone());
            return out;
        }
    };
    out.dnssec = Some(dnssec);
    out.ttl = ttl;
    if require_secure && dnssec != DnssecState::Secure {
        out.error = Some(Error::NoSecureAnswer(format!(
            "_{}._tcp answer is {}, and a secure one is required",
            service.name(),
            dnssec.name()
        )));
        return out;
    }
    let answer = match res {
        Ok(Outcome::Records(a)) => a,
        _ => {
            out.state = SrvState::NoRecord;
            return out;
        }
    };
    if !answer.cnames.is_empty() {
        out.diagnostics.push(format!(
            "the SRV owner is an alias (CNAME to {})",
            answer.cnames.last().map(Name::to_ascii).unwrap_or_default()
        ));
    }
    let records = srv_records(&answer);
    let dots = records.iter().filter(|r| r.0.is_root()).count();
    if dots > 0 {
        out.state = SrvState::NotOffered;
        if dots < records.len() {
            // RFC 6186 §3.4 over RFC 2782 for mail labels (T-SRV-17).
            out.diagnostics.push(
                "mixed RRset: a \".\" target next to real targets; the service is treated as not offered"
                    .into(),
            );
        }
        return out;
    }
    let mut ordered = rfc2782_order(records, |r| r.1, |r| r.2, rng);
    if ordered.len() > MAX_ENDPOINTS {
        // One hostile answer must not fan out into thousands of address lookups (issue 7).
        out.diagnostics.push(format!(
            "{} SRV records; only the first {MAX_ENDPOINTS} in RFC 2782 order are used",
            ordered.len()
        ));
        ordered.truncate(MAX_ENDPOINTS);
    }
    out.endpoints = ordered
        .into_iter()
        .map(|(target, priority, weight, port)| Endpoint {
            target: host_text(&target),
            port,
            priority,
            weight,
            ttl: answer.ttl,
            dnssec: answer.dnssec,
            addresses: Vec::new(),
            address_dnssec: None,
            address_error: None,
        })
        .collect();
    out.state = SrvState::Found;
    out
}

/// (target, priority, weight, port) of every SRV record.
fn srv_records(answer: &Answer) -> Vec<(Name, u16, u16, u16)> {
    answer
        .records
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.target.clone(), s.priority, s.weight, s.port)),
            _ => None,
        })
        .collect()
}

/// `mail.example.net.` → `mail.example.net`.
fn host_text(name: &Name) -> String {
    let s = name.to_lowercase().to_ascii();
    s.strip_suffix('.').map(str::to_owned).unwrap_or(s)
}

/// What one target's address lookups gave.
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetAddrs {
    pub(crate) addresses: Vec<IpAddr>,
    /// The weakest state over both families (`None` when neither was answered).
    pub(crate) dnssec: Option<DnssecState>,
    pub(crate) error: Option<Error>,
    pub(crate) cname: Option<String>,
    /// How many addresses one family had, when more than the cap.
    pub(crate) capped: Option<usize>,
}

/// Looks up every distinct target once, all in parallel, and fills the endpoints in.
async fn resolve_targets(resolver: &Resolver, services: &mut [ServiceAnswer], deadline: Instant) {
    let mut targets: Vec<String> = Vec::new();
    for s in services.iter().filter(|s| s.state == SrvState::Found) {
        for e in &s.endpoints {
            if !targets.contains(&e.target) {
                targets.push(e.target.clone());
            }
        }
    }
    for t in &targets {
        resolver.prefetch_keys(t);
    }
    let lookups = targets.iter().map(|t| lookup_target(resolver, t, deadline));
    let found: HashMap<String, TargetAddrs> = targets
        .iter()
        .cloned()
        .zip(join_all(lookups).await)
        .collect();
    for s in services.iter_mut() {
        let mut notes = Vec::new();
        for e in &mut s.endpoints {
            if let Some(t) = found.get(&e.target) {
                e.addresses = t.addresses.clone();
                e.address_dnssec = t.dnssec;
                e.address_error = t.error.clone();
                if let Some(n) = t.capped {
                    let note = format!(
                        "target {} has {n} addresses in one family; the first {MAX_ADDRESSES_PER_FAMILY} are used",
                        e.target
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                if let Some(c) = &t.cname {
                    let note = format!(
                        "target {} is an alias (CNAME to {c}), which RFC 2782 forbids",
                        e.target
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
            }
        }
        s.diagnostics.extend(notes);
    }
}

/// The addresses of one target as the system would find them: the hosts file first (when
/// it names the target, its entries are the answer and DNS is not asked, like nsswitch's
/// `hosts: files dns`), in state [`DnssecState::HostsFile`]; DNS otherwise
/// ([`lookup_target_dns`]).
pub(crate) async fn lookup_target(
    resolver: &Resolver,
    target: &str,
    deadline: Instant,
) -> TargetAddrs {
    match resolver.hosts_lookup(target) {
        Some(addresses) if !addresses.is_empty() => TargetAddrs {
            addresses,
            dnssec: Some(DnssecState::HostsFile),
            ..TargetAddrs::default()
        },
        _ => lookup_target_dns(resolver, target, deadline).await,
    }
}

/// AAAA and A of one target at once, through DNS only (DANE uses this: RFC 7673 needs
/// DNSSEC-secure addresses, which a hosts file cannot give). The additional section is not
/// used: knot omits out-of-zone targets there, and a partial section (A without AAAA) would
/// hide addresses.
pub(crate) async fn lookup_target_dns(
    resolver: &Resolver,
    target: &str,
    deadline: Instant,
) -> TargetAddrs {
    let mut out = TargetAddrs::default();
    let name = match Name::from_ascii(format!("{target}.")) {
        Ok(n) => n,
        Err(e) => {
            out.error = Some(Error::InvalidArg(format!("{target}: {e}")));
            return out;
        }
    };
    let ask = |rtype| {
        let name = name.clone();
        async move {
            timeout_at(deadline, resolver.query(&name, rtype))
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Timeout(format!("{target} {rtype}: deadline passed")))
                })
        }
    };
    let (v6, v4) = futures_util::join!(ask(RecordType::AAAA), ask(RecordType::A));
    for res in [v6, v4] {
        match res {
            Ok(Outcome::Records(a)) => {
                out.dnssec = Some(out.dnssec.map_or(a.dnssec, |d| d.and(a.dnssec)));
                if let Some(c) = a.cnames.last() {
                    out.cname = Some(host_text(c));
                }
                let (addresses, total) = a.addresses();
                if total > MAX_ADDRESSES_PER_FAMILY {
                    out.capped = Some(total);
                }
                out.addresses.extend(addresses);
            }
            Ok(Outcome::NoData { dnssec, .. } | Outcome::NxDomain { dnssec, .. }) => {
                out.dnssec = Some(out.dnssec.map_or(dnssec, |d| d.and(dnssec)));
            }
            Err(e) => {
                if matches!(e, Error::Bogus(_)) {
                    out.dnssec = Some(DnssecState::Bogus);
                }
                out.error.get_or_insert(e);
            }
        }
    }
    if out.addresses.is_empty() && out.error.is_none() {
        out.error = Some(Error::NoRecord(format!("{target} has no A or AAAA record")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(service: Service, state: SrvState, prio: u16) -> ServiceAnswer {
        ServiceAnswer {
            service,
            state,
            error: None,
            dnssec: Some(DnssecState::Secure),
            ttl: 300,
            endpoints: vec![Endpoint {
                target: "h.example.net".into(),
                port: 1,
                priority: prio,
                weight: 1,
                ttl: 300,
                dnssec: DnssecState::Secure,
                addresses: vec![],
                address_dnssec: None,
                address_error: None,
            }],
            diagnostics: vec![],
        }
    }

    fn pick(list: Vec<ServiceAnswer>, purpose: Purpose) -> Option<Service> {
        Discovery {
            domain: "example.com".into(),
            services: list,
        }
        .preferred(purpose)
        .map(|s| s.service)
    }

    #[test]
    fn t_sel_01_lowest_priority_protocol_wins() {
        let got = pick(
            vec![
                answer(Service::Imaps, SrvState::Found, 0),
                answer(Service::Pop3s, SrvState::Found, 10),
            ],
            Purpose::Access,
        );
        assert_eq!(got, Some(Service::Imaps));
        let got = pick(
            vec![
                answer(Service::Imaps, SrvState::Found, 20),
                answer(Service::Pop3s, SrvState::Found, 0),
            ],
            Purpose::Access,
        );
        assert_eq!(got, Some(Service::Pop3s));
    }

    #[test]
    fn t_sel_02_protocol_chosen_before_weight() {
        // Equal priority: IMAP is the client's choice whatever the weights say.
        let got = pick(
            vec![
                answer(Service::Pop3s, SrvState::Found, 5),
                answer(Service::Imaps, SrvState::Found, 5),
            ],
            Purpose::Access,
        );
        assert_eq!(got, Some(Service::Imaps));
    }

    #[test]
    fn t_sel_03_and_05_not_offered_is_skipped() {
        let mut imap = answer(Service::Imap, SrvState::NotOffered, 0);
        imap.endpoints.clear();
        let got = pick(
            vec![imap, answer(Service::Imaps, SrvState::Found, 0)],
            Purpose::Access,
        );
        assert_eq!(got, Some(Service::Imaps));
        let mut subs = answer(Service::Submissions, SrvState::NotOffered, 0);
        subs.endpoints.clear();
        let got = pick(
            vec![subs, answer(Service::Submission, SrvState::Found, 0)],
            Purpose::Submission,
        );
        assert_eq!(got, Some(Service::Submission));
    }

    #[test]
    fn t_sel_04_tie_prefers_implicit_tls() {
        let got = pick(
            vec![
                answer(Service::Submission, SrvState::Found, 0),
                answer(Service::Submissions, SrvState::Found, 0),
            ],
            Purpose::Submission,
        );
        assert_eq!(got, Some(Service::Submissions));
    }
}
