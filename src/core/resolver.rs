//! DNS with DNSSEC validated inside the library (hickory's validating handle), talking only
//! to the configured nameservers. An AD bit from a server is never trusted (T-AUTH-02).
//!
//! The stack, bottom up: hickory's `NameServerPool` (UDP with TCP fallback on TC, T-SRV-15)
//! → [`KeyCache`] (DNSKEY/DS answers kept for their TTL: hickory's validator otherwise
//! re-fetches them for every RRset) → [`Watch`] (notes sub-query network failures, so a
//! validation that failed for want of keys is reported INDETERMINATE, not BOGUS)
//! → hickory's `DnssecDnsHandle` (one per query, so the watch belongs to that query).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, Stream, StreamExt};
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverOpts};
use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Query, ResponseCode,
};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};
use tokio::sync::OnceCell;

use super::anchors::{AnchorSource, keys_matching_ds};
use super::{Error, Result};

/// Longest CNAME chain followed before giving up.
const MAX_CNAME_HOPS: usize = 8;
/// Upper bound on how long DNSKEY/DS answers are reused.
const MAX_KEY_CACHE: Duration = Duration::from_secs(3600);

/// The DNSSEC state of one RRset (or of a negative answer), RFC 4033 §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnssecState {
    Secure,
    Insecure,
    Bogus,
    Indeterminate,
}

impl DnssecState {
    pub fn name(self) -> &'static str {
        match self {
            DnssecState::Secure => "secure",
            DnssecState::Insecure => "insecure",
            DnssecState::Bogus => "bogus",
            DnssecState::Indeterminate => "indeterminate",
        }
    }

    fn from_proof(p: Proof) -> Self {
        match p {
            Proof::Secure => DnssecState::Secure,
            Proof::Insecure => DnssecState::Insecure,
            Proof::Bogus => DnssecState::Bogus,
            _ => DnssecState::Indeterminate,
        }
    }

    /// The weaker of two states: a chain is only as strong as its weakest link.
    pub fn and(self, other: Self) -> Self {
        fn rank(s: DnssecState) -> u8 {
            match s {
                DnssecState::Secure => 0,
                DnssecState::Insecure => 1,
                DnssecState::Indeterminate => 2,
                DnssecState::Bogus => 3,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// What the resolver is told to use.
#[derive(Clone)]
pub struct ResolverConfig {
    /// Nameservers asked, in order of preference. Never empty.
    pub nameservers: Vec<SocketAddr>,
    pub anchors: AnchorSource,
    /// Budget for one DNS exchange (retries included).
    pub query_timeout: Duration,
}

/// A positive answer: the records of the asked type at the end of any CNAME chain.
#[derive(Debug, Clone)]
pub struct Answer {
    pub records: Vec<Record>,
    /// The weakest state over the RRset and every CNAME on the way to it.
    pub dnssec: DnssecState,
    /// The smallest TTL over the RRset and the CNAMEs (hickory clamps secure TTLs to the RRSIG).
    pub ttl: u32,
    /// CNAMEs followed from the asked name (empty when it had none).
    pub cnames: Vec<Name>,
    /// The additional section, with its own proofs.
    pub additionals: Vec<Record>,
}

/// The outcome of one query that the server answered authoritatively.
#[derive(Debug, Clone)]
pub enum Outcome {
    Records(Answer),
    /// The name does not exist.
    NxDomain {
        dnssec: DnssecState,
        ttl: u32,
    },
    /// The name exists without records of this type.
    NoData {
        dnssec: DnssecState,
        ttl: u32,
    },
}

type Pool = NameServerPool<TokioRuntimeProvider>;
type BoxedResponse = Pin<Box<dyn Stream<Item = std::result::Result<DnsResponse, NetError>> + Send>>;

/// A validating stub resolver bound to fixed nameservers.
pub struct Resolver {
    keys: KeyCache,
    anchor_source: AnchorSource,
    anchors: OnceCell<Arc<TrustAnchors>>,
}

impl Resolver {
    /// Builds the resolver; no packet is sent until the first query.
    pub fn new(cfg: &ResolverConfig) -> Result<Self> {
        if cfg.nameservers.is_empty() {
            return Err(Error::InvalidArg("no nameserver configured".into()));
        }
        let mut opts = ResolverOpts::default();
        opts.timeout = cfg.query_timeout;
        opts.attempts = 2;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.cache_size = 0;
        opts.edns_payload_len = 1232;
        let tls = TlsConfig::new().map_err(|e| Error::Runtime(format!("DNS TLS setup: {e}")))?;
        let servers = cfg.nameservers.iter().map(|sa| {
            let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
            for c in &mut ns.connections {
                c.port = sa.port();
            }
            ns
        });
        let pool = NameServerPool::from_config(
            servers,
            Arc::new(PoolContext::new(opts, tls)),
            TokioRuntimeProvider::default(),
        );
        Ok(Resolver {
            keys: KeyCache {
                inner: pool,
                entries: Arc::default(),
                pending_max: cfg.query_timeout * 3 + Duration::from_secs(1),
            },
            anchor_source: cfg.anchors.clone(),
            anchors: OnceCell::new(),
        })
    }

    async fn trust_anchors(&self) -> Result<Arc<TrustAnchors>> {
        self.anchors
            .get_or_try_init(|| async {
                match &self.anchor_source {
                    AnchorSource::BuiltIn => Ok(Arc::new(TrustAnchors::default())),
                    AnchorSource::Keys(k) => Ok(k.clone()),
                    AnchorSource::Ds(ds) => self.anchors_from_ds(ds).await,
                }
            })
            .await
            .cloned()
    }

    /// Fetches each DS owner's DNSKEY set (unvalidated: the DS digest is the check).
    async fn anchors_from_ds(
        &self,
        ds: &[(Name, hickory_resolver::proto::dnssec::rdata::DS)],
    ) -> Result<Arc<TrustAnchors>> {
        let owner = ds[0].0.clone();
        let resp = self
            .keys
            .inner
            .lookup(
                Query::query(owner.clone(), RecordType::DNSKEY),
                DnsRequestOptions::default(),
            )
            .first_answer()
            .await
            .map_err(|e| {
                Error::LookupFailed(format!(
                    "fetching the {owner} DNSKEY for the DS anchor: {e}"
                ))
            })?;
        let keys: Vec<_> = resp
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
                _ => None,
            })
            .collect();
        let anchors = keys_matching_ds(ds, &owner, &keys);
        if anchors.is_empty() {
            return Err(Error::BadTrustAnchor(format!(
                "no {owner} DNSKEY matches the DS trust anchor"
            )));
        }
        Ok(Arc::new(anchors))
    }

    /// Starts fetching, all at once and without waiting, the DNSKEY and DS sets of `name`'s
    /// enclosing zones, so that validating answers under `name` finds them in the key cache
    /// instead of walking the chain one round trip per level (hickory's validator asks for
    /// them one after the other). Labels starting with `_` are never zone cuts here. Answers
    /// are validated when used, exactly as if fetched then; this only saves round trips.
    pub fn prefetch_keys(&self, name: &str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
        let start = labels
            .iter()
            .position(|l| !l.starts_with('_'))
            .unwrap_or(labels.len());
        let mut zones: Vec<String> = (start..labels.len())
            .map(|i| format!("{}.", labels[i..].join(".")))
            .collect();
        zones.push(".".into());
        for zone in zones {
            let Ok(owner) = Name::from_ascii(&zone) else {
                continue;
            };
            for rtype in [RecordType::DNSKEY, RecordType::DS] {
                if owner.is_root() && rtype == RecordType::DS {
                    continue;
                }
                let keys = self.keys.clone();
                let q = Query::query(owner.clone(), rtype);
                rt.spawn(async move {
                    let mut opts = DnsRequestOptions::default();
                    opts.use_edns = true;
                    let mut req = DnsRequest::from_query(q, opts);
                    req.edns
                        .get_or_insert_with(Default::default)
                        .enable_dnssec();
                    let _ = keys.send(req).first_answer().await;
                });
            }
        }
    }

    /// hickory proves an unsigned answer insecure by finding its zone cut with NS queries,
    /// the owner first and then one ancestor after the other (a round trip per label),
    /// then asking the cut's DS. This sends the NS queries for `name` and all its ancestors at
    /// once, in parallel with the query itself, so the walk finds them in the key cache (the
    /// DS come from [`Self::prefetch_keys`]). Skipped when a DS RRset is cached for an
    /// ancestor: the zone is then signed and no walk is expected. Only saves round trips.
    fn prefetch_zone_cuts(&self, name: &Name) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut chain = Vec::new();
        let mut n = name.clone();
        while !n.is_root() {
            if self.keys.has_ds(&n) {
                return;
            }
            chain.push(n.clone());
            n = n.base_name();
        }
        for owner in chain {
            let keys = self.keys.clone();
            let q = Query::query(owner, RecordType::NS);
            rt.spawn(async move {
                let _ = keys
                    .lookup(q, DnsRequestOptions::default())
                    .first_answer()
                    .await;
            });
        }
    }

    /// One validated query, following CNAMEs. NXDOMAIN and NODATA are outcomes, not errors;
    /// SERVFAIL, timeouts, bogus and indeterminate answers are errors (T-SRV-05, T-SRV-06).
    pub async fn query(&self, name: &Name, rtype: RecordType) -> Result<Outcome> {
        if !matches!(rtype, RecordType::DNSKEY | RecordType::DS | RecordType::NS) {
            self.prefetch_zone_cuts(name);
        }
        let mut name = name.clone();
        let mut cnames = Vec::new();
        let mut chain_state = DnssecState::Secure;
        let mut chain_ttl = u32::MAX;
        for _ in 0..=MAX_CNAME_HOPS {
            let resp = self.exchange(&name, rtype).await?;
            let rcode = resp.response_code;
            // Walk the answer section from `name` through any CNAMEs in it.
            loop {
                let target = resp.answers.iter().find_map(|r| match &r.data {
                    RData::CNAME(c) if r.name == name && rtype != RecordType::CNAME => {
                        Some((c.0.clone(), r.proof, r.ttl))
                    }
                    _ => None,
                });
                let Some((next, proof, ttl)) = target else {
                    break;
                };
                if cnames.len() >= MAX_CNAME_HOPS || cnames.contains(&next) {
                    return Err(Error::LookupFailed(format!(
                        "CNAME loop or chain too long at {name}"
                    )));
                }
                chain_state = chain_state.and(DnssecState::from_proof(proof));
                chain_ttl = chain_ttl.min(ttl);
                cnames.push(next.clone());
                name = next;
            }
            let records: Vec<Record> = resp
                .answers
                .iter()
                .filter(|r| r.record_type() == rtype && r.name == name)
                .cloned()
                .collect();
            if !records.is_empty() {
                let state = records
                    .iter()
                    .fold(chain_state, |s, r| s.and(DnssecState::from_proof(r.proof)));
                let ttl = records
                    .iter()
                    .map(|r| r.ttl)
                    .min()
                    .unwrap_or(0)
                    .min(chain_ttl);
                return ensure_valid(
                    &name,
                    Outcome::Records(Answer {
                        records,
                        dnssec: state,
                        ttl,
                        cnames,
                        additionals: resp.additionals.clone(),
                    }),
                    state,
                );
            }
            if cnames.last() == Some(&name) && !answer_has_owner(&resp, &name) {
                // The server stopped at a CNAME into another zone: ask for the target.
                continue;
            }
            let (state, ttl) = negative_state(&resp);
            let state = state.and(chain_state);
            let outcome = match rcode {
                ResponseCode::NXDomain => Outcome::NxDomain { dnssec: state, ttl },
                ResponseCode::NoError => Outcome::NoData { dnssec: state, ttl },
                other => {
                    return Err(Error::ServFail(format!(
                        "{name} {rtype}: server answered {other}"
                    )));
                }
            };
            return ensure_valid(&name, outcome, state);
        }
        Err(Error::LookupFailed(format!(
            "CNAME chain longer than {MAX_CNAME_HOPS} at {name}"
        )))
    }

    /// Sends one validated query and classifies transport and validation failures.
    async fn exchange(&self, name: &Name, rtype: RecordType) -> Result<DnsResponse> {
        let anchors = self.trust_anchors().await?;
        let watch = Watch {
            inner: self.keys.clone(),
            failures: Arc::default(),
        };
        let failures = watch.failures.clone();
        let handle = DnssecDnsHandle::with_trust_anchor(watch, anchors);
        let what = format!("{} {rtype}", name.to_ascii());
        let res = handle
            .lookup(
                Query::query(name.clone(), rtype),
                DnsRequestOptions::default(),
            )
            .first_answer()
            .await;
        let key_trouble = failures.load(Ordering::Relaxed) > 0;
        match res {
            Ok(resp) => {
                let bogus = resp
                    .answers
                    .iter()
                    .chain(&resp.authorities)
                    .any(|r| r.proof == Proof::Bogus && r.record_type() != RecordType::RRSIG);
                if bogus && key_trouble {
                    return Err(Error::Indeterminate(format!(
                        "{what}: DNSSEC keys could not be fetched"
                    )));
                }
                Ok(resp)
            }
            Err(e) => Err(classify(&what, e, key_trouble)),
        }
    }
}

fn answer_has_owner(resp: &DnsResponse, name: &Name) -> bool {
    resp.answers
        .iter()
        .any(|r| &r.name == name && r.record_type() != RecordType::RRSIG)
}

/// DNSSEC state and negative TTL of a negative answer, from its SOA (RFC 2308 §5).
fn negative_state(resp: &DnsResponse) -> (DnssecState, u32) {
    let soa = resp
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA);
    match soa {
        Some(r) => {
            let min = match &r.data {
                RData::SOA(s) => s.minimum,
                _ => r.ttl,
            };
            let nsec = resp
                .authorities
                .iter()
                .filter(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
                .fold(DnssecState::from_proof(r.proof), |s, r| {
                    s.and(DnssecState::from_proof(r.proof))
                });
            (nsec, r.ttl.min(min))
        }
        None => (DnssecState::Indeterminate, 0),
    }
}

/// Bogus data is never handed out as an answer (RFC 4035 §5.5; GHSA-5j98-2g5x-46v6).
fn ensure_valid(name: &Name, outcome: Outcome, state: DnssecState) -> Result<Outcome> {
    match state {
        DnssecState::Bogus => Err(Error::Bogus(format!(
            "{}: DNSSEC validation failed",
            name.to_ascii()
        ))),
        DnssecState::Indeterminate if matches!(outcome, Outcome::Records(_)) => Ok(outcome),
        _ => Ok(outcome),
    }
}

fn classify(what: &str, e: NetError, key_trouble: bool) -> Error {
    match e {
        NetError::Timeout => Error::Timeout(format!("{what}: no answer from the nameserver")),
        NetError::Dns(DnsError::ResponseCode(code)) => {
            Error::ServFail(format!("{what}: server answered {code}"))
        }
        NetError::Dns(DnsError::DnssecBogus) | NetError::Dns(DnsError::Nsec { .. }) => {
            if key_trouble {
                Error::Indeterminate(format!("{what}: DNSSEC keys could not be fetched"))
            } else {
                Error::Bogus(format!("{what}: DNSSEC validation failed"))
            }
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) => {
            // The validating handle turns these into messages; keep a clear text anyway.
            Error::LookupFailed(format!("{what}: negative answer without proof"))
        }
        other => Error::LookupFailed(format!("{what}: {other}")),
    }
}

fn is_network_failure(e: &NetError) -> bool {
    matches!(
        e,
        NetError::Timeout | NetError::Io(_) | NetError::NoConnections | NetError::Busy
    )
}

/// A DNSKEY/DS/NS answer as the pool gave it: negative answers arrive as `NoRecordsFound`.
type Cached = std::result::Result<DnsResponse, NetError>;

/// One key-cache slot.
enum Slot {
    /// An answer kept until the instant.
    Ready(Cached, Instant),
    /// A fetch in flight since the instant; its result is published on the channel, so a
    /// second asker waits for it instead of sending the same query again.
    Pending(tokio::sync::watch::Receiver<Option<Cached>>, Instant),
}

type KeyEntries = Arc<Mutex<HashMap<(Name, RecordType), Slot>>>;

/// How long a positive or negative (RFC 2308) answer may be reused, if at all.
fn cache_for(r: &Cached) -> Option<Duration> {
    let ttl = match r {
        Ok(resp) if resp.response_code == ResponseCode::NoError => {
            resp.answers.iter().map(|r| r.ttl).min()
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(nr)))
            if nr.soa.is_some()
                && matches!(
                    nr.response_code,
                    ResponseCode::NoError | ResponseCode::NXDomain
                ) =>
        {
            nr.negative_ttl
        }
        _ => None,
    }?;
    let keep = Duration::from_secs(u64::from(ttl)).min(MAX_KEY_CACHE);
    (!keep.is_zero()).then_some(keep)
}

/// Answers DNSKEY, DS and NS queries (positive and negative) from memory for their TTL, and
/// shares a fetch in flight among everyone asking the same question. The answers are kept raw:
/// the validator above checks them on every use, exactly as if they had just been fetched.
#[derive(Clone)]
struct KeyCache {
    inner: Pool,
    entries: KeyEntries,
    /// A fetch in flight longer than this is presumed lost (the pool's own timeout is shorter).
    pending_max: Duration,
}

impl KeyCache {
    /// Whether a DS RRset with records is cached for `zone` (the zone is signed).
    fn has_ds(&self, zone: &Name) -> bool {
        let now = Instant::now();
        self.entries.lock().is_ok_and(|m| {
            matches!(m.get(&(zone.to_lowercase(), RecordType::DS)),
                Some(Slot::Ready(Ok(resp), until)) if *until > now
                    && resp.answers.iter().any(|r| r.record_type() == RecordType::DS))
        })
    }
}

impl DnsHandle for KeyCache {
    type Response = BoxedResponse;
    type Runtime = TokioRuntimeProvider;

    fn is_verifying_dnssec(&self) -> bool {
        false
    }

    fn send(&self, request: DnsRequest) -> Self::Response {
        let key = request
            .queries
            .first()
            .filter(|q| {
                matches!(
                    q.query_type(),
                    RecordType::DNSKEY | RecordType::DS | RecordType::NS
                )
            })
            .map(|q| (q.name().to_lowercase(), q.query_type()));
        let (Some(key), Ok(rt)) = (key, tokio::runtime::Handle::try_current()) else {
            return Box::pin(self.inner.send(request));
        };
        let now = Instant::now();
        let Ok(mut map) = self.entries.lock() else {
            return Box::pin(self.inner.send(request));
        };
        match map.get(&key) {
            Some(Slot::Ready(r, until)) if *until > now => {
                let r = r.clone();
                return Box::pin(stream::once(async move { r }));
            }
            Some(Slot::Pending(rx, since)) if now < *since + self.pending_max => {
                let mut rx = rx.clone();
                drop(map);
                let inner = self.inner.clone();
                return Box::pin(stream::once(async move {
                    if let Ok(v) = rx.wait_for(Option::is_some).await
                        && let Some(r) = v.clone()
                    {
                        return r;
                    }
                    // The fetch was lost: ask ourselves.
                    inner.send(request).first_answer().await
                }));
            }
            _ => {}
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        map.insert(key.clone(), Slot::Pending(rx, now));
        drop(map);
        let entries = self.entries.clone();
        let pending_max = self.pending_max;
        let fetch = self.inner.send(request).first_answer();
        // Spawned, so the answer lands in the cache even if this asker gives up.
        let task = rt.spawn(async move {
            let r = fetch.await;
            if let Ok(mut m) = entries.lock() {
                let now = Instant::now();
                m.retain(|_, s| match s {
                    Slot::Ready(_, until) => *until > now,
                    Slot::Pending(_, since) => now < *since + pending_max,
                });
                match cache_for(&r) {
                    Some(keep) => {
                        m.insert(key, Slot::Ready(r.clone(), now + keep));
                    }
                    None => {
                        m.remove(&key);
                    }
                }
            }
            let _ = tx.send(Some(r.clone()));
            r
        });
        Box::pin(stream::once(async move {
            task.await
                .unwrap_or_else(|e| Err(NetError::from(format!("DNS fetch task: {e}"))))
        }))
    }
}

/// Counts network failures of every exchange made for one validated query.
#[derive(Clone)]
struct Watch {
    inner: KeyCache,
    failures: Arc<AtomicUsize>,
}

impl DnsHandle for Watch {
    type Response = BoxedResponse;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let failures = self.failures.clone();
        Box::pin(self.inner.send(request).inspect(move |r| {
            if let Err(e) = r
                && is_network_failure(e)
            {
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }))
    }
}
