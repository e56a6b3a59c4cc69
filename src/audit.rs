//! `mailsrv audit`: the mail provider's view of many domains (issue 6, docs/design.md §5, §7).
//!
//! For each domain: discovery of all six services; for every service found, its first
//! target is asked twice, at the same time: with SNI = the domain (the probe: a chain-valid
//! certificate naming the domain by the SRV-ID `_service.domain` or the DNS-ID `domain`;
//! never a CN) and with SNI = the target (the reconnect: a certificate for the target's own
//! DNS-ID). A service passes when both hold. A provider must pass for every service of a
//! domain, so a domain that passes for some services and not for others is flagged
//! (`mixed`). When one public key (SPKI) appears both in a certificate carrying an SRV-ID for
//! the domain and in one carrying a DNS-ID for it, the domain is flagged `key_reuse`: the
//! SRV-ID certificate's key sits with the provider, so the provider also holds a key that
//! speaks for the domain itself, which is what SRV-IDs exist to avoid (RFC 4985, RFC 7817 §2).
//! The certificates compared are the leaves of the domain's connections that verified.
//! The reconnect does not depend on the domain, so it is made once per service, target and
//! port in a run and shared by all the domains pointing there.
//!
//! [`run`] streams: lines come in through a bounded channel, at most `concurrency` domains
//! are in flight (a semaphore), reports go out in input order through another bounded
//! channel, and nothing is kept per domain after its report is sent, so memory stays flat in
//! the number of domains. No I/O other than DNS and TLS happens here; the caller reads the
//! file and prints.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::sync::{OnceCell, Semaphore, mpsc};
use tokio::time::Instant;

use crate::core::address::MailDomain;
use crate::core::cert::ca_store::CaStore;
use crate::core::cert::identity::{
    MatchOptions, PresentedId, PresentedIds, ReferenceIdentity, match_identity,
};
use crate::core::context::Context;
use crate::core::dns::answer::DnssecState;
use crate::core::dns::discover::{DiscoverOptions, ServiceAnswer, SrvState, discover};
use crate::core::dns::resolver::Resolver;
use crate::core::service::Service;
use crate::core::tls::connect::{ConnectRequest, connect};
use crate::core::verdict::authenticity::{probe_request, reconnect_request};
use crate::core::{Error, Result};

/// Domains in flight when the caller does not say.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// The most domains in flight (each may hold up to twelve connections).
pub const MAX_CONCURRENCY: usize = 1024;
/// Longest input line kept; a longer one is reported as an error and skipped.
pub const MAX_LINE: usize = 1024;
/// Reconnect results kept per run (one per service, target and port; a few KiB each).
const MAX_CACHED_TARGETS: usize = 4096;

/// What a domain is flagged for. Names are stable (JSON `flags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// Some found services pass and others do not.
    Mixed,
    /// Services were found and none passes.
    NonePass,
    /// No service is offered or has a record (and no lookup failed).
    NoSrv,
    /// A service's SRV lookup failed (SERVFAIL, timeout, indeterminate): unknown, not absent.
    LookupFailed,
    /// A service's SRV answer failed DNSSEC validation.
    Bogus,
    /// One key is used in an SRV-ID certificate and a DNS-ID certificate of the domain.
    KeyReuse,
    /// The line is not a domain, or discovery could not run at all.
    Error,
}

impl Flag {
    pub const ALL: [Flag; 7] = [
        Flag::Mixed,
        Flag::NonePass,
        Flag::NoSrv,
        Flag::LookupFailed,
        Flag::Bogus,
        Flag::KeyReuse,
        Flag::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Flag::Mixed => "mixed",
            Flag::NonePass => "none_pass",
            Flag::NoSrv => "no_srv",
            Flag::LookupFailed => "lookup_failed",
            Flag::Bogus => "bogus",
            Flag::KeyReuse => "key_reuse",
            Flag::Error => "error",
        }
    }
}

/// One TLS connection of the audit.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// The SNI sent.
    pub sni: String,
    pub ok: bool,
    /// The reference identifier the certificate proved (`SRV-ID _imaps.example.com`).
    pub matched: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Check {
    fn to_json(&self) -> Value {
        json!({"sni": self.sni, "ok": self.ok, "matched": self.matched, "error": self.error})
    }

    fn text(&self) -> String {
        match (&self.matched, &self.error) {
            (Some(m), _) => format!("ok ({m})"),
            (_, Some(e)) => format!("FAILED: {e}"),
            _ => "FAILED".into(),
        }
    }
}

/// The two checks of one found service.
#[derive(Debug, Clone)]
pub struct ServiceCheck {
    pub service: Service,
    /// The first target in preference order, and its port.
    pub target: String,
    pub port: u16,
    /// DNSSEC state of the SRV RRset.
    pub dnssec: Option<DnssecState>,
    /// SNI = the domain; SRV-ID `_service.domain` or DNS-ID `domain`.
    pub probe: Check,
    /// SNI = the target; DNS-ID `target`.
    pub reconnect: Check,
}

impl ServiceCheck {
    /// Both connections proved what they must.
    pub fn passed(&self) -> bool {
        self.probe.ok && self.reconnect.ok
    }
}

/// A service's discovery state (all six are reported, found or not).
#[derive(Debug, Clone)]
pub struct ServiceState {
    pub service: Service,
    pub state: SrvState,
    pub dnssec: Option<DnssecState>,
    pub error: Option<String>,
}

/// What one leaf certificate says about the audited domain, for the key-reuse check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// SHA-256 of the certificate (DER).
    pub cert_sha256: [u8; 32],
    /// SHA-256 of its SubjectPublicKeyInfo (the `TLSA x 1 1` hash).
    pub spki_sha256: [u8; 32],
    /// Its SRV-IDs for the domain (`_imaps.example.com`), any service.
    pub srv_ids: Vec<String>,
    /// Its DNS-IDs that match the domain (`example.com`, or a wildcard covering it).
    pub dns_ids: Vec<String>,
    /// Where it was presented (`imaps probe`, `submission reconnect`).
    pub seen: Vec<String>,
}

/// One key used for both kinds of certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReuse {
    /// Hex SHA-256 of the shared SubjectPublicKeyInfo.
    pub spki_sha256: String,
    /// The SRV-IDs and DNS-IDs for the domain carried by certificates with this key.
    pub srv_ids: Vec<String>,
    pub dns_ids: Vec<String>,
    /// Hex SHA-256 of each certificate with this key that names the domain.
    pub certificates: Vec<String>,
    /// Where those certificates were presented.
    pub seen: Vec<String>,
}

impl KeyReuse {
    fn to_json(&self) -> Value {
        json!({
            "spki_sha256": self.spki_sha256, "srv_ids": self.srv_ids, "dns_ids": self.dns_ids,
            "certificates": self.certificates, "seen": self.seen,
        })
    }
}

/// The audit of one input line.
#[derive(Debug, Clone)]
pub struct DomainReport {
    /// 1-based line number in the input.
    pub line: usize,
    /// The line as given (trimmed).
    pub input: String,
    /// The mail domain in A-labels; `None` when the line is not a domain.
    pub domain: Option<String>,
    /// Why the line could not be audited at all.
    pub error: Option<String>,
    pub states: Vec<ServiceState>,
    /// One entry per found service, in [`Service::ALL`] order.
    pub services: Vec<ServiceCheck>,
    pub flags: Vec<Flag>,
    pub key_reuse: Vec<KeyReuse>,
}

impl DomainReport {
    fn failed(line: usize, input: &str, domain: Option<String>, error: &Error) -> Self {
        DomainReport {
            line,
            input: input.to_string(),
            domain,
            error: Some(error.to_string()),
            states: Vec::new(),
            services: Vec::new(),
            flags: vec![Flag::Error],
            key_reuse: Vec::new(),
        }
    }

    /// No flag: every found service passed and nothing else is wrong.
    pub fn clean(&self) -> bool {
        self.flags.is_empty()
    }

    /// One JSON object (one line of `--json` output). Keys are stable: `line`, `domain`
    /// (the A-label domain, or the input when it is not a domain), `error`, `states`
    /// (service → discovery state), `services` [{`service`, `target`, `port`, `dnssec`,
    /// `ok`, `probe` {`sni`, `ok`, `matched`, `error`}, `reconnect` {same}}], `flags`,
    /// `key_reuse` [{`spki_sha256`, `srv_ids`, `dns_ids`, `certificates`, `seen`}].
    pub fn to_json(&self) -> Value {
        let states: serde_json::Map<String, Value> = self
            .states
            .iter()
            .map(|s| (s.service.name().to_string(), json!(s.state.name())))
            .collect();
        let services: Vec<Value> = self
            .services
            .iter()
            .map(|s| {
                json!({
                    "service": s.service.name(), "target": s.target, "port": s.port,
                    "dnssec": s.dnssec.map(|d| d.name()), "ok": s.passed(),
                    "probe": s.probe.to_json(), "reconnect": s.reconnect.to_json(),
                })
            })
            .collect();
        json!({
            "line": self.line,
            "domain": self.domain.as_deref().unwrap_or(&self.input),
            "error": self.error,
            "states": states,
            "services": services,
            "flags": self.flags.iter().map(|f| f.name()).collect::<Vec<_>>(),
            "key_reuse": self.key_reuse.iter().map(KeyReuse::to_json).collect::<Vec<_>>(),
        })
    }

    /// The text form: one line for a clean domain, details for a flagged one.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let name = self.domain.as_deref().unwrap_or(&self.input);
        if let Some(e) = &self.error {
            let _ = writeln!(o, "{name}: error (line {}): {e}", self.line);
            return o;
        }
        let flags: Vec<&str> = self.flags.iter().map(|f| f.name()).collect();
        let passed = self.services.iter().filter(|s| s.passed()).count();
        let verdict = if self.clean() { "ok" } else { "FLAGGED" };
        let _ = writeln!(
            o,
            "{name}: {verdict}, {passed} of {} services pass{}",
            self.services.len(),
            if flags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", flags.join(", "))
            }
        );
        if self.clean() {
            return o;
        }
        for s in &self.services {
            let _ = writeln!(
                o,
                "  {:<12} {}:{}  {}\n      probe (SNI {}): {}\n      reconnect (SNI {}): {}",
                s.service.name(),
                s.target,
                s.port,
                if s.passed() { "pass" } else { "FAIL" },
                s.probe.sni,
                s.probe.text(),
                s.reconnect.sni,
                s.reconnect.text()
            );
        }
        for s in &self.states {
            if matches!(s.state, SrvState::LookupFailed | SrvState::Bogus) {
                let _ = writeln!(
                    o,
                    "  {:<12} {}: {}",
                    s.service.name(),
                    s.state.name(),
                    s.error.as_deref().unwrap_or("")
                );
            }
        }
        for k in &self.key_reuse {
            let _ = writeln!(
                o,
                "  warning: key {} is in a certificate with {} and in one with DNS-ID {} \
                 (the SRV-ID certificate's key sits with the provider; seen: {})",
                &k.spki_sha256[..16],
                k.srv_ids
                    .iter()
                    .map(|s| format!("SRV-ID {s}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                k.dns_ids.join(", "),
                k.seen.join(", ")
            );
        }
        o
    }
}

/// The text of a line to audit, or `None` for a blank line or a `#` comment.
pub fn parse_line(line: &str) -> Option<&str> {
    let t = line.trim();
    (!t.is_empty() && !t.starts_with('#')).then_some(t)
}

/// Counters for the closing table.
#[derive(Debug, Clone, Default)]
pub struct ServiceTally {
    pub found: usize,
    pub passed: usize,
    pub probe_failed: usize,
    pub reconnect_failed: usize,
}

/// The summary of a run, built by [`Summary::add`] from each report as it goes by.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub domains: usize,
    pub clean: usize,
    pub flags: BTreeMap<Flag, usize>,
    pub services: BTreeMap<Service, ServiceTally>,
}

impl Summary {
    pub fn add(&mut self, r: &DomainReport) {
        self.domains += 1;
        if r.clean() {
            self.clean += 1;
        }
        for f in &r.flags {
            *self.flags.entry(*f).or_default() += 1;
        }
        for s in &r.services {
            let t = self.services.entry(s.service).or_default();
            t.found += 1;
            t.passed += usize::from(s.passed());
            t.probe_failed += usize::from(!s.probe.ok);
            t.reconnect_failed += usize::from(!s.reconnect.ok);
        }
    }

    pub fn flagged(&self) -> usize {
        self.domains - self.clean
    }

    /// `{"domains", "clean", "flagged", "flags": {name: count}, "services": {name: {"found",
    /// "passed", "probe_failed", "reconnect_failed"}}, "elapsed_ms"}`.
    pub fn to_json(&self, elapsed: Duration) -> Value {
        let flags: serde_json::Map<String, Value> = Flag::ALL
            .iter()
            .map(|f| {
                (
                    f.name().to_string(),
                    json!(self.flags.get(f).copied().unwrap_or(0)),
                )
            })
            .collect();
        let services: serde_json::Map<String, Value> = Service::ALL
            .iter()
            .map(|s| {
                let t = self.services.get(s).cloned().unwrap_or_default();
                (
                    s.name().to_string(),
                    json!({"found": t.found, "passed": t.passed, "probe_failed": t.probe_failed,
                           "reconnect_failed": t.reconnect_failed}),
                )
            })
            .collect();
        json!({"summary": {
            "domains": self.domains, "clean": self.clean, "flagged": self.flagged(),
            "flags": flags, "services": services, "elapsed_ms": elapsed.as_millis() as u64,
        }})
    }

    /// The closing table of the text output.
    pub fn table(&self, elapsed: Duration) -> String {
        let mut o = String::new();
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.domains as f64 / secs
        } else {
            0.0
        };
        let _ = writeln!(
            o,
            "\nsummary: {} domains in {secs:.1} s ({rate:.1}/s): {} clean, {} flagged",
            self.domains,
            self.clean,
            self.flagged()
        );
        let _ = writeln!(
            o,
            "  {:<12} {:>7} {:>7} {:>12} {:>16}",
            "service", "found", "pass", "probe fail", "reconnect fail"
        );
        for s in Service::ALL {
            let t = self.services.get(&s).cloned().unwrap_or_default();
            let _ = writeln!(
                o,
                "  {:<12} {:>7} {:>7} {:>12} {:>16}",
                s.name(),
                t.found,
                t.passed,
                t.probe_failed,
                t.reconnect_failed
            );
        }
        let _ = writeln!(o, "  {:<14} {:>7}", "flag", "domains");
        for f in Flag::ALL {
            let _ = writeln!(
                o,
                "  {:<14} {:>7}",
                f.name(),
                self.flags.get(&f).copied().unwrap_or(0)
            );
        }
        o
    }
}

/// The outcome of one connection: the check and the leaf certificate with where it was seen.
type Outcome = (Check, Option<(Vec<u8>, String)>);
/// Shared reconnect outcomes, by (service, target, port).
type ReconnectCache = HashMap<(Service, String, u16), Arc<OnceCell<Outcome>>>;

/// The settings and shared state of an audit: the context's resolver (with its DNSSEC
/// cache) and CA store, and the reconnect results of this run. Share it behind an `Arc`.
pub struct Auditor {
    resolver: Arc<Resolver>,
    trust: CaStore,
    /// Budget of each domain: discovery and every connection of that domain.
    timeout: Duration,
    accept_sibling: bool,
    seed: Option<u64>,
    /// The reconnect (SNI = the target, DNS-ID = the target) does not depend on the domain:
    /// it is made once per (service, target, port) and run, and shared by every domain that
    /// points there, also by those in flight at the same time. Bounded: past
    /// [`MAX_CACHED_TARGETS`] entries, new targets are checked per domain.
    reconnects: Mutex<ReconnectCache>,
}

impl Auditor {
    /// An auditor using `ctx`'s resolver, CA store, timeout (per domain), sibling-service
    /// policy and order seed. Fails when the CA store cannot be loaded.
    pub fn from_context(ctx: &Context) -> Result<Self> {
        let config = ctx.config();
        Ok(Auditor {
            resolver: ctx.resolver(),
            trust: ctx.ca_store()?,
            timeout: config.timeout,
            accept_sibling: config.match_options.accept_sibling_service,
            seed: config.rng_seed,
            reconnects: Mutex::new(HashMap::new()),
        })
    }

    /// Audits one domain (or address): never fails, a problem is part of the report.
    pub async fn audit(&self, line: usize, input: &str) -> DomainReport {
        let deadline = Instant::now() + self.timeout;
        let domain = match MailDomain::parse(input) {
            Ok(d) => d,
            Err(e) => return DomainReport::failed(line, input, None, &e),
        };
        let opts = DiscoverOptions {
            services: Service::ALL.to_vec(),
            require_secure: false,
            seed: self.seed,
        };
        // Leave a little of the budget so the connections' errors name their step.
        let dns_deadline = deadline - self.timeout / 4;
        let d = match discover(&self.resolver, &domain, &opts, dns_deadline).await {
            Ok(d) => d,
            Err(e) => return DomainReport::failed(line, input, Some(domain.into()), &e),
        };
        let states = d
            .services
            .iter()
            .map(|s| ServiceState {
                service: s.service,
                state: s.state,
                dnssec: s.dnssec,
                error: s.error.as_ref().map(|e| e.to_string()),
            })
            .collect::<Vec<_>>();
        let found = d
            .services
            .iter()
            .filter(|s| s.state == SrvState::Found && !s.endpoints.is_empty());
        let checks = join_all(found.map(|s| self.check_service(&d.domain, s, deadline))).await;
        let mut services = Vec::with_capacity(checks.len());
        let mut facts: Vec<CertFacts> = Vec::new();
        for (check, leaves) in checks {
            for (der, seen) in leaves {
                let Ok(f) = cert_facts(&der, &d.domain) else {
                    continue;
                };
                match facts.iter_mut().find(|x| x.cert_sha256 == f.cert_sha256) {
                    Some(x) => x.seen.push(seen),
                    None => facts.push(CertFacts {
                        seen: vec![seen],
                        ..f
                    }),
                }
            }
            services.push(check);
        }
        let key_reuse = find_key_reuse(&facts);
        let flags = flags(&states, &services, !key_reuse.is_empty());
        DomainReport {
            line,
            input: input.to_string(),
            domain: Some(d.domain),
            error: None,
            states,
            services,
            flags,
            key_reuse,
        }
    }

    /// The probe and the reconnect of one service's first target, at the same time.
    /// Returns the checks and the leaf certificates seen, with where they were seen.
    async fn check_service(
        &self,
        domain: &str,
        s: &ServiceAnswer,
        deadline: Instant,
    ) -> (ServiceCheck, Vec<(Vec<u8>, String)>) {
        let e = &s.endpoints[0];
        let probe_req = probe_request(domain, s.service, &e.target, e.port, self.accept_sibling)
            .map(|mut r| {
                r.addresses = e.addresses.clone();
                r
            });
        let mut target_req = reconnect_request(s.service, &e.target, e.port);
        target_req.addresses = e.addresses.clone();
        let one = move |req: ConnectRequest, what: &'static str| async move {
            let mut check = Check {
                sni: req.sni.clone().unwrap_or_else(|| req.host.clone()),
                ..Check::default()
            };
            let mut leaf: Option<(Vec<u8>, String)> = None;
            match connect(&self.resolver, Some(self.trust.clone()), req, deadline).await {
                Ok(mut conn) => {
                    check.ok = true;
                    check.matched = Some(conn.info().proof.to_string());
                    leaf = conn
                        .info()
                        .peer_chain
                        .first()
                        .map(|c| (c.clone(), format!("{} {what}", s.service.name())));
                    let _ = conn.close();
                }
                Err(e) => check.error = Some(e.to_string()),
            }
            (check, leaf)
        };
        let cell = {
            let key = (s.service, e.target.clone(), e.port);
            let mut cache = self.reconnects.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(&key) {
                Some(cell) => cell.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    if cache.len() < MAX_CACHED_TARGETS {
                        cache.insert(key, cell.clone());
                    }
                    cell
                }
            }
        };
        let reconnect = async {
            cell.get_or_init(|| one(target_req, "reconnect"))
                .await
                .clone()
        };
        let ((probe, leaf_p), (reconnect, leaf_t)) = match probe_req {
            Ok(probe_req) => tokio::join!(one(probe_req, "probe"), reconnect),
            Err(err) => {
                let probe = Check {
                    sni: domain.to_string(),
                    error: Some(err.to_string()),
                    ..Check::default()
                };
                ((probe, None), reconnect.await)
            }
        };
        let check = ServiceCheck {
            service: s.service,
            target: e.target.clone(),
            port: e.port,
            dnssec: s.dnssec,
            probe,
            reconnect,
        };
        (check, leaf_p.into_iter().chain(leaf_t).collect())
    }
}

/// The flags of a domain from its discovery states and checks.
fn flags(states: &[ServiceState], services: &[ServiceCheck], key_reuse: bool) -> Vec<Flag> {
    let mut flags = Vec::new();
    let passed = services.iter().filter(|s| s.passed()).count();
    if passed > 0 && passed < services.len() {
        flags.push(Flag::Mixed);
    }
    if passed == 0 && !services.is_empty() {
        flags.push(Flag::NonePass);
    }
    let failed = |st| states.iter().any(|s| s.state == st);
    let lookup_failed = failed(SrvState::LookupFailed);
    let bogus = failed(SrvState::Bogus);
    if services.is_empty() && !lookup_failed && !bogus {
        flags.push(Flag::NoSrv);
    }
    if lookup_failed {
        flags.push(Flag::LookupFailed);
    }
    if bogus {
        flags.push(Flag::Bogus);
    }
    if key_reuse {
        flags.push(Flag::KeyReuse);
    }
    flags
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Reads what a DER leaf certificate says about `domain` (A-labels): its SPKI hash, its
/// SRV-IDs for the domain (any service) and its DNS-IDs matching the domain (strict rules:
/// a wildcard covers one left-most label, never a CN). `seen` is left empty.
pub fn cert_facts(der: &[u8], domain: &str) -> Result<CertFacts> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::BadCertificate(format!("certificate does not parse: {e}")))?;
    let spki_sha256 = sha256(cert.public_key().raw);
    let ids = PresentedIds::from_der(der)?;
    let srv_ids = ids
        .sans()
        .iter()
        .filter_map(|p| match p {
            PresentedId::SrvId { service, domain: d } if d.eq_ignore_ascii_case(domain) => {
                Some(format!("_{service}.{d}"))
            }
            _ => None,
        })
        .collect();
    let reference = ReferenceIdentity::for_dns(domain)?;
    let mut dns_ids = Vec::new();
    for p in ids.sans() {
        if let PresentedId::DnsId(name) = p {
            let mut one = PresentedIds::new();
            one.add_dns_san(name);
            if match_identity(&reference, &one, &MatchOptions::strict()).is_ok() {
                dns_ids.push(name.clone());
            }
        }
    }
    Ok(CertFacts {
        cert_sha256: sha256(der),
        spki_sha256,
        srv_ids,
        dns_ids,
        seen: Vec::new(),
    })
}

/// Every key that appears in a certificate with an SRV-ID for the domain and in one with a
/// DNS-ID for it (the same certificate carrying both counts too: the provider then holds a
/// DNS-ID certificate of the domain). One entry per key, in order of first appearance.
pub fn find_key_reuse(facts: &[CertFacts]) -> Vec<KeyReuse> {
    let mut keys: Vec<[u8; 32]> = Vec::new();
    for f in facts {
        if !keys.contains(&f.spki_sha256) {
            keys.push(f.spki_sha256);
        }
    }
    let mut out = Vec::new();
    for key in keys {
        let with_key: Vec<&CertFacts> = facts
            .iter()
            .filter(|f| f.spki_sha256 == key && (!f.srv_ids.is_empty() || !f.dns_ids.is_empty()))
            .collect();
        let has_srv = with_key.iter().any(|f| !f.srv_ids.is_empty());
        let has_dns = with_key.iter().any(|f| !f.dns_ids.is_empty());
        if !(has_srv && has_dns) {
            continue;
        }
        let mut r = KeyReuse {
            spki_sha256: hex(&key),
            srv_ids: Vec::new(),
            dns_ids: Vec::new(),
            certificates: Vec::new(),
            seen: Vec::new(),
        };
        for f in with_key {
            for (list, items) in [
                (&mut r.srv_ids, &f.srv_ids),
                (&mut r.dns_ids, &f.dns_ids),
                (&mut r.seen, &f.seen),
            ] {
                for i in items {
                    if !list.contains(i) {
                        list.push(i.clone());
                    }
                }
            }
            r.certificates.push(hex(&f.cert_sha256));
        }
        out.push(r);
    }
    out
}

/// Audits the lines that arrive on `lines` (line number, text) and sends one report per
/// domain line on `out`, in input order. Blank lines and `#` comments are skipped. At most
/// `concurrency` domains are audited at once; completed reports wait for their turn only
/// while at most `concurrency` more are queued, so memory is bounded by the concurrency,
/// never by the input. Returns when the input ends and every report is sent, or early when
/// `out` is closed. Must run inside a tokio runtime (the domains are spawned).
pub async fn run(
    auditor: Arc<Auditor>,
    mut lines: mpsc::Receiver<(usize, String)>,
    concurrency: usize,
    out: mpsc::Sender<DomainReport>,
) {
    let concurrency = concurrency.clamp(1, MAX_CONCURRENCY);
    let permits = Arc::new(Semaphore::new(concurrency));
    let (queued, mut pending) =
        mpsc::channel::<(usize, String, tokio::task::JoinHandle<DomainReport>)>(concurrency);
    let producer = async move {
        while let Some((n, text)) = lines.recv().await {
            let Some(domain) = parse_line(&text) else {
                continue;
            };
            let domain = domain.to_string();
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let a = auditor.clone();
            let d = domain.clone();
            let task = tokio::spawn(async move {
                let r = a.audit(n, &d).await;
                drop(permit);
                r
            });
            if queued.send((n, domain, task)).await.is_err() {
                break;
            }
        }
    };
    let consumer = async move {
        while let Some((n, domain, task)) = pending.recv().await {
            let report = task.await.unwrap_or_else(|e| {
                let why = Error::Panic(format!("the audit of this domain failed: {e}"));
                DomainReport::failed(n, &domain, None, &why)
            });
            if out.send(report).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(producer, consumer);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(key: u8, cert: u8, srv: &[&str], dns: &[&str]) -> CertFacts {
        CertFacts {
            cert_sha256: [cert; 32],
            spki_sha256: [key; 32],
            srv_ids: srv.iter().map(|s| s.to_string()).collect(),
            dns_ids: dns.iter().map(|s| s.to_string()).collect(),
            seen: vec![format!("cert {cert}")],
        }
    }

    #[test]
    fn key_reuse_detector() {
        // Different keys: nothing.
        let a = facts(1, 1, &["_imaps.example.com"], &[]);
        let b = facts(2, 2, &[], &["example.com"]);
        assert!(find_key_reuse(&[a.clone(), b.clone()]).is_empty());
        // The same key in an SRV-ID certificate and a DNS-ID certificate: one warning.
        let c = facts(1, 3, &[], &["example.com"]);
        let r = find_key_reuse(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].spki_sha256, hex(&[1; 32]));
        assert_eq!(r[0].srv_ids, ["_imaps.example.com"]);
        assert_eq!(r[0].dns_ids, ["example.com"]);
        assert_eq!(r[0].certificates, [hex(&[1; 32]), hex(&[3; 32])]);
        assert_eq!(r[0].seen, ["cert 1", "cert 3"]);
        // One certificate carrying both also counts.
        let both = facts(4, 4, &["_submissions.example.com"], &["example.com"]);
        assert_eq!(find_key_reuse(&[both]).len(), 1);
        // The same key on two SRV-ID certificates, or on a certificate naming neither: no.
        let d = facts(1, 5, &["_submission.example.com"], &[]);
        let e = facts(1, 6, &[], &[]);
        assert!(find_key_reuse(&[a, d, e]).is_empty());
    }

    fn check(ok: bool) -> Check {
        Check {
            sni: "x".into(),
            ok,
            matched: None,
            error: None,
        }
    }

    fn service(svc: Service, probe: bool, reconnect: bool) -> ServiceCheck {
        ServiceCheck {
            service: svc,
            target: "mail.example.net".into(),
            port: 993,
            dnssec: None,
            probe: check(probe),
            reconnect: check(reconnect),
        }
    }

    fn state(svc: Service, state: SrvState) -> ServiceState {
        ServiceState {
            service: svc,
            state,
            dnssec: None,
            error: None,
        }
    }

    #[test]
    fn flag_rules() {
        let found = [state(Service::Imaps, SrvState::Found)];
        let all_pass = [
            service(Service::Imaps, true, true),
            service(Service::Submissions, true, true),
        ];
        assert!(flags(&found, &all_pass, false).is_empty());
        let half = [
            service(Service::Imaps, true, true),
            service(Service::Submissions, false, true),
        ];
        assert_eq!(flags(&found, &half, false), [Flag::Mixed]);
        let target_only = [service(Service::Imaps, true, false)];
        assert_eq!(
            flags(&found, &target_only, true),
            [Flag::NonePass, Flag::KeyReuse]
        );
        let none = [state(Service::Imaps, SrvState::NoRecord)];
        assert_eq!(flags(&none, &[], false), [Flag::NoSrv]);
        let bogus = [state(Service::Imaps, SrvState::Bogus)];
        assert_eq!(flags(&bogus, &[], false), [Flag::Bogus]);
        let failed = [state(Service::Imaps, SrvState::LookupFailed)];
        assert_eq!(flags(&failed, &all_pass, false), [Flag::LookupFailed]);
    }

    #[test]
    fn lines() {
        assert_eq!(parse_line("  example.com \n"), Some("example.com"));
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("   "), None);
        assert_eq!(parse_line("# comment"), None);
        assert_eq!(parse_line("  # indented comment"), None);
        assert_eq!(parse_line("not a domain!"), Some("not a domain!"));
    }

    #[test]
    fn summary_counts() {
        let mut s = Summary::default();
        let r = DomainReport {
            line: 1,
            input: "half.test".into(),
            domain: Some("half.test".into()),
            error: None,
            states: vec![],
            services: vec![
                service(Service::Imaps, true, true),
                service(Service::Submissions, false, true),
            ],
            flags: vec![Flag::Mixed],
            key_reuse: vec![],
        };
        s.add(&r);
        s.add(&DomainReport::failed(
            2,
            "x",
            None,
            &Error::InvalidArg("bad".into()),
        ));
        assert_eq!((s.domains, s.clean, s.flagged()), (2, 0, 2));
        let j = s.to_json(Duration::from_millis(5));
        assert_eq!(j["summary"]["flags"]["mixed"], 1);
        assert_eq!(j["summary"]["flags"]["error"], 1);
        assert_eq!(j["summary"]["services"]["submissions"]["probe_failed"], 1);
        assert_eq!(j["summary"]["services"]["imaps"]["passed"], 1);
        assert!(
            s.table(Duration::from_secs(1))
                .contains("summary: 2 domains")
        );
    }
}
