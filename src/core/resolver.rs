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

    /// One validated query, following CNAMEs. NXDOMAIN and NODATA are outcomes, not errors;
    /// SERVFAIL, timeouts, bogus and indeterminate answers are errors (T-SRV-05, T-SRV-06).
    pub async fn query(&self, name: &Name, rtype: RecordType) -> Result<Outcome> {
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

/// Cached DNSKEY/DS answers with the instant they expire.
type KeyEntries = Arc<Mutex<HashMap<(Name, RecordType), (DnsResponse, Instant)>>>;

/// Answers DNSKEY and DS queries from memory for their TTL.
#[derive(Clone)]
struct KeyCache {
    inner: Pool,
    entries: KeyEntries,
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
            .filter(|q| matches!(q.query_type(), RecordType::DNSKEY | RecordType::DS))
            .map(|q| (q.name().to_lowercase(), q.query_type()));
        let Some(key) = key else {
            return Box::pin(self.inner.send(request));
        };
        let now = Instant::now();
        if let Some((resp, until)) = self.entries.lock().ok().and_then(|m| m.get(&key).cloned())
            && until > now
        {
            return Box::pin(stream::once(async move { Ok(resp) }));
        }
        let entries = self.entries.clone();
        let fut = self.inner.send(request).first_answer();
        Box::pin(stream::once(async move {
            let resp = fut.await?;
            let ttl = resp.answers.iter().map(|r| r.ttl).min().unwrap_or(0);
            let keep = Duration::from_secs(u64::from(ttl)).min(MAX_KEY_CACHE);
            if !keep.is_zero()
                && let Ok(mut m) = entries.lock()
            {
                m.retain(|_, (_, until)| *until > now);
                m.insert(key, (resp.clone(), now + keep));
            }
            Ok(resp)
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
