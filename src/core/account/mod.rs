//! Account discovery beyond SRV (issues 16 and 17; docs/account-discovery.md): PACC
//! (draft-ietf-mailmaint-pacc, [`pacc`]), provider autoconfig (draft-ietf-mailmaint-autoconfig
//! §4.1), the ISPDB (§4.2), MX-derived lookups (§4.3), Exchange Autodiscover (POX,
//! [`autodiscover`]), the RFC 6186 SRV discovery and, opt-in, guessing ([`guess`]), run at
//! once by a priority-parallel runner ([`runner`]), and then a verdict, its evidence and a
//! binding for **every** candidate server, whatever its source:
//!
//! | how the candidate's host is known | evidence | verdict |
//! |---|---|---|
//! | a DNSSEC-secure SRV answer | `DNSSEC` (+ `DANE`) | AUTHENTIC |
//! | a PACC document whose SHA-256 digest is in a DNSSEC-secure `_ua-auto-config` TXT record | `PACC_DNSSEC` (+ `DANE`) | AUTHENTIC |
//! | a config fetched over HTTPS on every hop from hosts in the mail domain (PACC with an unsigned TXT, autoconfig, Autodiscover) | `HTTPS_DOMAIN` (+ `DANE`) | AUTHENTIC |
//! | the ISPDB's entry for the mail domain (HTTPS) | `ISPDB` (+ `DANE`) | AUTHENTIC |
//! | a DNSSEC-secure MX, then a config over HTTPS from the MX's provider domain, for hosts in that domain | `DNSSEC` (+ `DANE`) | AUTHENTIC |
//! | a DNSSEC-secure `_autodiscover._tcp` SRV, then the Autodiscover answer over HTTPS from its target | `DNSSEC` (+ `DANE`) | AUTHENTIC |
//! | a guess (`imap.`, `mail.`, the bare domain; `smtp.`, `mail.`) that answered with TLS | `DANE`, else the probe | AUTHENTIC when one proves it, else UNVERIFIED |
//! | anything else (plain HTTP, an unsigned MX or SRV, a redirect out of the domain, a host outside the provider domain) | the probe: `PROBE_SRV_ID` / `PROBE_DNS_ID` | AUTHENTIC when it passes, else UNVERIFIED |
//! | `socketType` plain | none | REJECTED (mailsrv never connects without TLS) |
//!
//! A DNSSEC-secure, usable TLSA set on a covered host is enforced (a mismatch REJECTS).

pub mod autodiscover;
pub mod change;
pub mod fetch;
pub mod guess;
pub mod pacc;
pub mod runner;
pub mod source_run;
pub mod sources;
pub mod xml;

use std::time::Duration;

use tokio::time::Instant;

use crate::core::address::{MailDomain, is_in_domain};
use crate::core::cert::ca_store::CaStore;
use crate::core::dns::answer::DnssecState;
use crate::core::dns::discover::Discovery;
use crate::core::dns::resolver::Resolver;
use crate::core::service::{Protocol, Purpose, Service};
use crate::core::verdict::Verdict;
use crate::core::verdict::authenticity::{self, AuthRequest, Authenticity, Evidence};
use crate::core::verdict::binding::Binding;
use crate::core::{Error, Result};

pub use crate::core::source::Source;
pub use autodiscover::{AutodiscoverAnswer, AutodiscoverAsk, AutodiscoverHook};
pub use fetch::Hop;
pub use xml::{OAuth2, ServerProtocol, SocketType, WebServices};

/// The draft's ISPDB (§4.2); clients and distributions may configure a mirror.
pub const DEFAULT_ISPDB_URL: &str = "https://v1.ispdb.net/";
/// Per-fetch deadline of the provider and MX-derived fetches (Thunderbird: 5 s).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-fetch deadline of ISPDB lookups and of each guess (Thunderbird: 10 s).
pub const DEFAULT_ISPDB_TIMEOUT: Duration = Duration::from_secs(10);

/// The choices of one account discovery.
#[derive(Debug, Clone)]
pub struct AccountOptions {
    /// The sources to run (any order; they are ranked by [`Source::ALL`]).
    pub sources: Vec<Source>,
    /// The TLS probe may connect to candidates no other evidence covers.
    pub probe: bool,
    /// Only DNSSEC (SRV or MX) and DANE can make a candidate AUTHENTIC; no probe.
    pub require_secure: bool,
    pub accept_sibling: bool,
    /// ISPDB base URL (ends with `/`); `None` turns both ISPDB sources off.
    pub ispdb_url: Option<String>,
    pub fetch_timeout: Duration,
    /// ISPDB lookups and each guess.
    pub ispdb_timeout: Duration,
    /// RFC 2782 weighted-order seed (tests).
    pub seed: Option<u64>,
    /// The port of each service where a source names a host only (PACC, guessing).
    pub ports: ServicePorts,
    /// Exchange Autodiscover asks the caller through it (a target outside the mail domain,
    /// credentials); `None`: never followed, never sent.
    pub autodiscover_hook: Option<AutodiscoverHook>,
}

impl Default for AccountOptions {
    fn default() -> Self {
        AccountOptions {
            sources: Source::ALL.to_vec(),
            probe: true,
            require_secure: false,
            accept_sibling: false,
            ispdb_url: Some(DEFAULT_ISPDB_URL.into()),
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            ispdb_timeout: DEFAULT_ISPDB_TIMEOUT,
            seed: None,
            ports: ServicePorts::default(),
            autodiscover_hook: None,
        }
    }
}

/// The port of each service where a source names a host without one: PACC (IMAP, POP3 and
/// submission on implicit TLS) and guessing. RFC 8314 / RFC 6186 ports by default; tests and
/// private deployments change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePorts([u16; 6]);

impl Default for ServicePorts {
    fn default() -> Self {
        ServicePorts(Service::ALL.map(Service::default_port))
    }
}

impl ServicePorts {
    fn index(service: Service) -> usize {
        Service::ALL.iter().position(|s| *s == service).unwrap_or(0)
    }

    pub fn get(&self, service: Service) -> u16 {
        self.0[Self::index(service)]
    }

    /// Sets the port of `service`; 0 restores its default.
    pub fn set(&mut self, service: Service, port: u16) {
        self.0[Self::index(service)] = if port == 0 {
            service.default_port()
        } else {
            port
        };
    }
}

/// One server a source named, with its verdict.
#[derive(Debug)]
pub struct Candidate {
    pub source: Source,
    /// The config document's final URL (none for SRV).
    pub url: Option<String>,
    pub protocol: ServerProtocol,
    /// The mailsrv service (protocol + TLS mode); `None` for `socketType` plain.
    pub service: Option<Service>,
    pub host: String,
    pub port: u16,
    pub socket: SocketType,
    pub username: Option<String>,
    pub authentication: Vec<String>,
    /// The verdict with its evidence and binding; an error when the check itself failed.
    pub verdict: Result<Authenticity>,
}

impl Candidate {
    pub fn purpose(&self) -> Purpose {
        match self.protocol {
            ServerProtocol::Imap | ServerProtocol::Pop3 => Purpose::Access,
            ServerProtocol::Smtp => Purpose::Submission,
        }
    }

    fn verdict_is(&self, v: Verdict) -> bool {
        self.verdict.as_ref().is_ok_and(|a| a.verdict == v)
    }
}

/// What became of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// It found a configuration (the winner, or one ranked below it that finished first).
    Found,
    /// It failed (no document, an HTTP or XML error, no record, a timeout...).
    Failed,
    /// A higher-ranked source won before it finished: it was cancelled.
    Cancelled,
    /// Not asked (not in the options, or no ISPDB configured).
    Skipped,
}

impl SourceState {
    pub fn name(self) -> &'static str {
        match self {
            SourceState::Found => "found",
            SourceState::Failed => "failed",
            SourceState::Cancelled => "cancelled",
            SourceState::Skipped => "skipped",
        }
    }
}

/// The report of one source.
#[derive(Debug, Clone)]
pub struct SourceReport {
    pub source: Source,
    pub state: SourceState,
    /// Why it failed.
    pub error: Option<Error>,
    /// Every HTTP request made, in order (the last one answered, when found).
    pub hops: Vec<Hop>,
    /// For MX sources: the MX host used and the DNSSEC state of the MX answer.
    pub mx: Option<(String, DnssecState)>,
    /// The other DNS record a source rests on, with the DNSSEC state of its answer: PACC's
    /// `_ua-auto-config` TXT, Autodiscover's `_autodiscover._tcp` SRV.
    pub record: Option<(String, DnssecState)>,
    /// URLs and addresses the source did not follow because they lie outside the mail
    /// domain's registrable domain and nobody confirmed them (Autodiscover).
    pub unfollowed: Vec<String>,
    /// Remarks: entries skipped in the document, the domains tried.
    pub notes: Vec<String>,
    /// How long it ran.
    pub elapsed: Duration,
}

/// The outcome of an account discovery.
#[derive(Debug)]
pub struct AccountDiscovery {
    pub address: String,
    /// The mail domain, A-labels.
    pub domain: String,
    /// The source whose configuration was taken (`None`: nothing found).
    pub source: Option<Source>,
    /// Every server of that configuration, in the document's order, each with its verdict.
    pub candidates: Vec<Candidate>,
    /// Every source in rank order, with what became of it.
    pub sources: Vec<SourceReport>,
    pub display_name: Option<String>,
    pub oauth2: Option<OAuth2>,
    /// JMAP, CalDAV and CardDAV URLs and the `oauth-public` issuer the configuration passes
    /// through (PACC), as written.
    pub web: WebServices,
    /// Indexes into `candidates`: the first AUTHENTIC candidate of the purpose, else the
    /// first UNVERIFIED one; never a REJECTED one.
    pub preferred_access: Option<usize>,
    pub preferred_submission: Option<usize>,
}

impl AccountDiscovery {
    pub fn preferred(&self, purpose: Purpose) -> Option<usize> {
        match purpose {
            Purpose::Access => self.preferred_access,
            Purpose::Submission => self.preferred_submission,
        }
    }

    fn choose(&mut self) {
        for purpose in [Purpose::Access, Purpose::Submission] {
            let of = |v| {
                self.candidates
                    .iter()
                    .position(|c| c.purpose() == purpose && c.verdict_is(v))
            };
            let pick = of(Verdict::Authentic).or_else(|| of(Verdict::Unverified));
            match purpose {
                Purpose::Access => self.preferred_access = pick,
                Purpose::Submission => self.preferred_submission = pick,
            }
        }
    }
}

/// The mail service of a server entry.
pub fn service_of(protocol: ServerProtocol, socket: SocketType) -> Option<Service> {
    Some(match (protocol, socket) {
        (_, SocketType::Plain) => return None,
        (ServerProtocol::Imap, SocketType::Tls) => Service::Imaps,
        (ServerProtocol::Imap, SocketType::StartTls) => Service::Imap,
        (ServerProtocol::Pop3, SocketType::Tls) => Service::Pop3s,
        (ServerProtocol::Pop3, SocketType::StartTls) => Service::Pop3,
        (ServerProtocol::Smtp, SocketType::Tls) => Service::Submissions,
        (ServerProtocol::Smtp, SocketType::StartTls) => Service::Submission,
    })
}

/// The server entry of a mailsrv service.
pub fn entry_of(service: Service) -> (ServerProtocol, SocketType) {
    let p = match service.protocol() {
        Protocol::Imap => ServerProtocol::Imap,
        Protocol::Pop3 => ServerProtocol::Pop3,
        Protocol::Smtp => ServerProtocol::Smtp,
    };
    let s = if service.implicit_tls() {
        SocketType::Tls
    } else {
        SocketType::StartTls
    };
    (p, s)
}

/// What makes a configuration's hosts authentic (see the module table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// A PACC document whose digest is in the mail domain's DNSSEC-secure TXT record:
    /// every host it names.
    PaccDnssec,
    /// The mail domain's own document over HTTPS: every host it names.
    HttpsDomain,
    /// The ISPDB's entry for the mail domain: every host it names.
    Ispdb,
    /// A DNSSEC-secure MX into `provider`, and the provider's document over HTTPS (or its
    /// ISPDB entry): hosts inside `provider`.
    DnssecMx { provider: String },
    /// A DNSSEC-secure record of the mail domain hands the answer to a host, which gave it
    /// over HTTPS (Autodiscover's `_autodiscover._tcp` SRV): every host it names. The text
    /// says how.
    DnssecDelegation(String),
    /// A guess: only DANE or the probe can prove it.
    Guess,
    /// Nothing: the reason, for the user.
    None(String),
}

/// A configuration a source found (before the verdicts).
#[derive(Debug, Clone)]
pub struct Found {
    pub source: Source,
    pub url: Option<String>,
    pub config: xml::ClientConfig,
    pub coverage: Coverage,
    /// For the SRV source: the discovery (its endpoints are judged by
    /// [`authenticity::verify`]).
    pub srv: Option<Discovery>,
    pub mx_dnssec: Option<DnssecState>,
}

/// Everything the verdict phase needs.
#[derive(Clone)]
pub struct Judge {
    pub resolver: std::sync::Arc<Resolver>,
    pub trust: CaStore,
    pub domain: String,
    pub probe: bool,
    pub require_secure: bool,
    pub accept_sibling: bool,
}

impl Judge {
    /// The verdict on one server of a non-SRV configuration (see the module table).
    pub async fn config_candidate(
        &self,
        found: &Found,
        service: Service,
        host: &str,
        port: u16,
        deadline: Instant,
    ) -> Result<Authenticity> {
        let domain = &self.domain;
        let mut req = AuthRequest::new(domain, service, host, port);
        req.probe = self.probe;
        req.require_secure = self.require_secure;
        req.accept_sibling = self.accept_sibling;
        authenticity::check(&req)?;
        let in_domain = is_in_domain(host, domain);
        let covered = match &found.coverage {
            Coverage::PaccDnssec => Ok((
                Evidence::PaccDnssec,
                format!(
                    "{host}:{port} is named by {domain}'s PACC configuration, whose SHA-256 digest is in {domain}'s DNSSEC-signed _ua-auto-config record"
                ),
            )),
            Coverage::DnssecDelegation(how) => Ok((
                Evidence::Dnssec,
                format!("{how}, and that answer (HTTPS) names {host}:{port}"),
            )),
            Coverage::HttpsDomain => Ok((
                Evidence::HttpsDomain,
                format!(
                    "{host}:{port} is named by {domain}'s own configuration, fetched over HTTPS on every hop"
                ),
            )),
            Coverage::Ispdb => Ok((
                Evidence::Ispdb,
                format!("{host}:{port} is named by the ISPDB's entry for {domain} (HTTPS)"),
            )),
            Coverage::DnssecMx { provider } if is_in_domain(host, provider) => Ok((
                Evidence::Dnssec,
                format!(
                    "{domain}'s DNSSEC-signed MX names {provider}, whose configuration (HTTPS) names {host}:{port}"
                ),
            )),
            Coverage::DnssecMx { provider } => Err(format!(
                "{host} lies outside {provider}, the provider {domain}'s signed MX names"
            )),
            Coverage::Guess => {
                // Only the host's own DNSSEC-signed TLSA records (or the probe below) can
                // make a guess more than a guess.
                let mut a = Authenticity::new(
                    Verdict::Authentic,
                    domain,
                    in_domain,
                    None,
                    format!("{host}:{port} is a guess that answered with TLS"),
                );
                authenticity::dane(
                    &self.resolver,
                    Some(self.trust.clone()),
                    &req,
                    host,
                    deadline,
                    &mut a,
                )
                .await?;
                if a.evidence == Some(Evidence::Dane) || a.verdict == Verdict::Rejected {
                    return Ok(a);
                }
                Err(format!(
                    "{host}:{port} is a guess (it answered with TLS, but neither {domain} nor DANE names it)"
                ))
            }
            Coverage::None(why) => Err(why.clone()),
        };
        match covered {
            Ok((evidence, detail)) => {
                if self.require_secure
                    && !matches!(evidence, Evidence::Dnssec | Evidence::PaccDnssec)
                {
                    let mut a = Authenticity::new(
                        Verdict::Unverified,
                        domain,
                        in_domain,
                        found.mx_dnssec,
                        format!(
                            "{detail}, but only DNSSEC-signed answers are accepted (REQUIRE_SECURE)"
                        ),
                    );
                    a.binding = Some(Binding::unverified(service, host, port)?);
                    return Ok(a);
                }
                let mut a = Authenticity::new(
                    Verdict::Authentic,
                    domain,
                    in_domain,
                    found.mx_dnssec,
                    detail,
                );
                a.evidence = Some(evidence);
                authenticity::dane(
                    &self.resolver,
                    Some(self.trust.clone()),
                    &req,
                    host,
                    deadline,
                    &mut a,
                )
                .await?;
                Ok(a)
            }
            Err(why) => {
                let unverified = |detail: String| -> Result<Authenticity> {
                    let mut a = Authenticity::new(
                        Verdict::Unverified,
                        domain,
                        in_domain,
                        found.mx_dnssec,
                        detail,
                    );
                    a.binding = Some(Binding::unverified(service, host, port)?);
                    Ok(a)
                };
                if self.require_secure {
                    return unverified(format!(
                        "{why}, and only DNSSEC-signed answers are accepted (REQUIRE_SECURE)"
                    ));
                }
                if !self.probe {
                    return unverified(format!("{why}, and the TLS probe is off: ask the user"));
                }
                let note = format!(" ({why})");
                authenticity::probe(
                    &self.resolver,
                    self.trust.clone(),
                    &req,
                    domain,
                    host,
                    in_domain,
                    found.mx_dnssec,
                    deadline,
                    &note,
                )
                .await
            }
        }
    }

    /// The candidates of `found`, each with its verdict, all judged at once.
    pub async fn candidates(&self, found: &Found, deadline: Instant) -> Vec<Candidate> {
        if let Some(d) = &found.srv {
            return self.srv_candidates(d, deadline).await;
        }
        let checks = found.config.servers.iter().map(|s| async move {
            let service = service_of(s.protocol, s.socket);
            let verdict = match service {
                None => {
                    let mut a = Authenticity::new(
                        Verdict::Rejected,
                        &self.domain,
                        is_in_domain(&s.host, &self.domain),
                        found.mx_dnssec,
                        format!(
                            "{}:{} is offered without TLS (socketType plain): mailsrv never connects so",
                            s.host, s.port
                        ),
                    );
                    a.binding = None;
                    Ok(a)
                }
                Some(service) => {
                    self.config_candidate(found, service, &s.host, s.port, deadline)
                        .await
                }
            };
            Candidate {
                source: found.source,
                url: found.url.clone(),
                protocol: s.protocol,
                service,
                host: s.host.clone(),
                port: s.port,
                socket: s.socket,
                username: s.username.clone(),
                authentication: s.authentication.clone(),
                verdict,
            }
        });
        futures_util::future::join_all(checks).await
    }

    async fn srv_candidates(&self, d: &Discovery, deadline: Instant) -> Vec<Candidate> {
        // The preferred service of each purpose first, then the others in discovery order.
        let mut order: Vec<&crate::core::dns::discover::ServiceAnswer> = Vec::new();
        for p in [Purpose::Access, Purpose::Submission] {
            if let Some(s) = d.preferred(p) {
                order.push(s);
            }
        }
        for s in &d.services {
            if !order.iter().any(|o| o.service == s.service) {
                order.push(s);
            }
        }
        let checks = order.into_iter().flat_map(|s| {
            s.endpoints.iter().map(move |e| async move {
                let mut req = AuthRequest::new(&self.domain, s.service, &e.target, e.port);
                req.probe = self.probe;
                req.require_secure = self.require_secure;
                req.accept_sibling = self.accept_sibling;
                let verdict =
                    authenticity::verify(&self.resolver, Some(self.trust.clone()), req, deadline)
                        .await;
                let (protocol, socket) = entry_of(s.service);
                Candidate {
                    source: Source::Srv,
                    url: None,
                    protocol,
                    service: Some(s.service),
                    host: e.target.clone(),
                    port: e.port,
                    socket,
                    username: None,
                    authentication: Vec::new(),
                    verdict,
                }
            })
        });
        futures_util::future::join_all(checks).await
    }
}

/// Account discovery (see the module comment): every source at once, the best-ranked
/// configuration, every candidate judged. `deadline` bounds everything.
pub async fn discover_account(
    resolver: std::sync::Arc<Resolver>,
    trust: CaStore,
    address: &str,
    opts: AccountOptions,
    deadline: Instant,
) -> Result<AccountDiscovery> {
    let domain = MailDomain::parse(address)?;
    let parts = sources::address_parts(address, &domain)?;
    // The verdicts need time after the sources: the sources get 70% of what is left.
    let now = Instant::now();
    let left = deadline.saturating_duration_since(now);
    let source_deadline = now + left.mul_f32(0.7);
    let (found, reports) = runner::run(&resolver, &trust, &parts, &opts, source_deadline).await;
    let judge = Judge {
        resolver: resolver.clone(),
        trust,
        domain: domain.to_string(),
        probe: opts.probe,
        require_secure: opts.require_secure,
        accept_sibling: opts.accept_sibling,
    };
    let mut out = AccountDiscovery {
        address: parts.address.clone(),
        domain: domain.to_string(),
        source: found.as_ref().map(|f| f.source),
        candidates: Vec::new(),
        sources: reports,
        display_name: found.as_ref().and_then(|f| f.config.display_name.clone()),
        oauth2: found.as_ref().and_then(|f| f.config.oauth2.clone()),
        web: found
            .as_ref()
            .map(|f| f.config.web.clone())
            .unwrap_or_default(),
        preferred_access: None,
        preferred_submission: None,
    };
    if let Some(f) = &found {
        out.candidates = judge.candidates(f, deadline).await;
    }
    out.choose();
    Ok(out)
}
