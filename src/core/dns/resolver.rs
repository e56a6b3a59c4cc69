//! DNS with DNSSEC validated inside the library (hickory's validating handle), talking only
//! to the configured nameservers. An AD bit from a server is never trusted (T-AUTH-02).
//!
//! The stack, bottom up, per nameserver: [`Transport`] (hickory's `NameServerPool` with that
//! one server over UDP, and over TCP when an answer does not fit, T-SRV-15; whether TCP
//! works is remembered: RFC 8027's TCP test, made only when an answer needs it) →
//! [`KeyCache`] (DNSKEY/DS answers kept for their TTL: hickory's validator otherwise
//! re-fetches them for every RRset) → [`Watch`] (notes sub-query network failures, so a
//! validation that failed for want of keys is reported INDETERMINATE, not BOGUS) →
//! hickory's `DnssecDnsHandle` (one per query, so the watch belongs to that query).
//!
//! Around it, the roadblock handling of RFC 8027 (docs/SECURITY.md, "DNSSEC downgrade"):
//! each nameserver's capability is tested alongside the first queries and cached; the next
//! nameserver is asked on failure; a path that cannot carry DNSSEC gives answers fetched
//! without it, in state UNAVAILABLE; negative trust anchors (RFC 7646) exempt private zones.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{FutureExt, Shared};
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

use crate::core::dns::anchors::{AnchorSource, keys_matching_ds};
use crate::core::dns::answer::{Answer, DnssecState, Outcome};
use crate::core::dns::answer_cache::AnswerCache;
use crate::core::dns::hosts::HostsFile;
use crate::core::{Error, Result};

/// Longest CNAME chain followed before giving up.
const MAX_CNAME_HOPS: usize = 8;
/// Upper bound on how long DNSKEY/DS answers are reused.
const MAX_KEY_CACHE: Duration = Duration::from_secs(3600);

/// What the resolver is told to use.
#[derive(Clone)]
pub struct ResolverConfig {
    /// Nameservers asked, in order of preference (the next one on failure). Never empty.
    pub nameservers: Vec<SocketAddr>,
    /// Asked only when every nameserver above is a DNSSEC roadblock (off when empty). They
    /// come from the caller; mailsrv never adds a public resolver of its own.
    pub fallback_nameservers: Vec<SocketAddr>,
    pub anchors: AnchorSource,
    /// Zones not validated (RFC 7646): answers under them are used as insecure.
    pub negative_anchors: Vec<Name>,
    /// Budget for one DNS exchange with one nameserver (retries included).
    pub query_timeout: Duration,
    /// Datagrams re-sent per exchange after the first (resolv.conf `attempts`, minus one).
    pub attempts: usize,
    /// Spread queries over the nameservers (resolv.conf `options rotate`).
    pub rotate: bool,
    /// The hosts file consulted for host addresses before DNS (`None`: none).
    pub hosts_file: Option<PathBuf>,
}

impl ResolverConfig {
    /// One nameserver, the built-in special-use negative anchors, no fallback.
    pub fn simple(nameservers: Vec<SocketAddr>, anchors: AnchorSource, timeout: Duration) -> Self {
        let public = matches!(anchors, AnchorSource::BuiltIn);
        ResolverConfig {
            nameservers,
            fallback_nameservers: Vec::new(),
            anchors,
            negative_anchors: builtin_negative_anchors(public),
            query_timeout: timeout,
            attempts: 2,
            rotate: false,
            hosts_file: None,
        }
    }
}

/// Zones that are never validated against the root (RFC 7646 negative trust anchors): the
/// special-use and private names, whose nonexistence the public root proves although they
/// exist on the local network (RFC 6761, RFC 6762 `.local`, RFC 8375 `home.arpa`, the
/// ICANN-reserved `.internal`, the customary single-label private TLDs and the private
/// reverse zones, RFC 1918 and RFC 4193). `test.` and `example.` are included only with the
/// public (built-in) anchors: a private root, such as the testbed's, may sign them.
pub fn builtin_negative_anchors(public_root: bool) -> Vec<Name> {
    let mut zones: Vec<String> = [
        "local",
        "home.arpa",
        "internal",
        "lan",
        "home",
        "corp",
        "localdomain",
        "intranet",
        "private",
        "localhost",
        "invalid",
        "10.in-addr.arpa",
        "168.192.in-addr.arpa",
        "254.169.in-addr.arpa",
        "d.f.ip6.arpa",
        "8.e.f.ip6.arpa",
        "9.e.f.ip6.arpa",
        "a.e.f.ip6.arpa",
        "b.e.f.ip6.arpa",
    ]
    .iter()
    .map(|z| z.to_string())
    .collect();
    zones.extend((16..32).map(|n| format!("{n}.172.in-addr.arpa")));
    if public_root {
        zones.extend(["test".into(), "example".into()]);
    }
    zones
        .iter()
        .filter_map(|z| Name::from_ascii(format!("{z}.")).ok())
        .collect()
}

type Pool = NameServerPool<TokioRuntimeProvider>;
type BoxedResponse = Pin<Box<dyn Stream<Item = std::result::Result<DnsResponse, NetError>> + Send>>;

/// How long a failed TCP connection to a nameserver is believed before TCP is tried again.
const TCP_FAILURE_LIFE: Duration = Duration::from_secs(60);

/// The way to one nameserver: UDP, and TCP for an answer that does not fit in a datagram
/// (TC=1, RFC 7766). This is RFC 8027 §3's TCP test, made lazily: TCP is tried only when an
/// answer needs it, so a path whose answers fit costs nothing extra, and its failure is
/// remembered for [`TCP_FAILURE_LIFE`] with the reason, which the errors and the roadblock
/// verdict then name (a truncated answer is never a silent failure). While TCP is known to
/// fail, truncated answers fail at once instead of waiting for another connection.
#[derive(Clone)]
struct Transport {
    addr: SocketAddr,
    udp: Pool,
    tcp: Pool,
    /// Why TCP failed when last needed, and when; cleared when it works.
    tcp_failure: Arc<Mutex<Option<(String, Instant)>>>,
}

impl Transport {
    /// Why TCP to the nameserver is not available, when it failed within the last minute.
    fn tcp_unavailable(&self) -> Option<String> {
        let f = self.tcp_failure.lock().ok()?;
        match &*f {
            Some((why, at)) if at.elapsed() < TCP_FAILURE_LIFE => Some(why.clone()),
            _ => None,
        }
    }

    /// The words for an answer lost to TC=1 without TCP.
    fn truncated_text(&self) -> String {
        let why = self
            .tcp_unavailable()
            .map_or(String::new(), |w| format!(" ({w})"));
        format!(
            "the answer does not fit in a UDP datagram (TC=1) and TCP to the nameserver {} is \
             not available{why}",
            self.addr
        )
    }

    /// `request` over TCP after a truncated UDP answer. A connection that fails, or times
    /// out, is remembered and reported as [`NetError::Truncated`].
    async fn over_tcp(&self, request: DnsRequest) -> Cached {
        if self.tcp_unavailable().is_some() {
            return Err(NetError::Truncated);
        }
        let r = self.tcp.send(request).first_answer().await;
        let failed = match &r {
            Err(NetError::Timeout) => Some("no answer over TCP".to_string()),
            // hickory's pool reports a refused or failed connect this way.
            Err(NetError::NoConnections) => Some("the TCP connection failed".to_string()),
            Err(e) if is_network_failure(e) => Some(e.to_string()),
            _ => None,
        };
        if let Ok(mut f) = self.tcp_failure.lock() {
            *f = failed.clone().map(|why| (why, Instant::now()));
        }
        match failed {
            Some(_) => Err(NetError::Truncated),
            None => r,
        }
    }
}

impl DnsHandle for Transport {
    type Response = BoxedResponse;
    type Runtime = TokioRuntimeProvider;

    fn is_verifying_dnssec(&self) -> bool {
        false
    }

    fn send(&self, request: DnsRequest) -> Self::Response {
        let me = self.clone();
        Box::pin(stream::once(async move {
            // The UDP-only pool answers a truncated datagram with `Truncated` at once.
            match me.udp.send(request.clone()).first_answer().await {
                Err(NetError::Truncated) => me.over_tcp(request).await,
                other => other,
            }
        }))
    }
}

/// What a nameserver has shown it can do for a validating stub (RFC 8027 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathCapability {
    /// It answers DNSKEY and DS queries with their signatures: validate through it.
    Carries,
    /// It answers, but cannot carry DNSSEC (the reason): answers are used as unsigned.
    Roadblock(String),
    /// It does not answer at all: a network failure, not a roadblock.
    Dead,
}

/// How long a capability verdict is reused before the nameserver is tested again.
fn verdict_life(c: &PathCapability) -> Duration {
    match c {
        PathCapability::Carries => Duration::from_secs(600),
        PathCapability::Roadblock(_) => Duration::from_secs(60),
        PathCapability::Dead => Duration::from_secs(5),
    }
}

/// A verdict younger than this is not re-tested after a failure.
const RETEST_AFTER: Duration = Duration::from_secs(30);

type Detection = Shared<Pin<Box<dyn Future<Output = PathCapability> + Send>>>;

#[derive(Default)]
struct CapSlot {
    verdict: Option<(PathCapability, Instant)>,
    pending: Option<Detection>,
}

/// One nameserver: its own transport, DNSKEY/DS cache and capability verdict.
struct Upstream {
    addr: SocketAddr,
    keys: KeyCache,
    cap: Mutex<CapSlot>,
    /// Cleared when the server rejects EDNS (RFC 6891 §6.2.2): plain queries then go without.
    edns: AtomicBool,
}

/// hickory's validating handle over the per-query failure watch.
type Validator = DnssecDnsHandle<Watch>;

impl Upstream {
    fn new(addr: SocketAddr, cfg: &ResolverConfig) -> Result<Self> {
        let tls = TlsConfig::new().map_err(|e| Error::Runtime(format!("DNS TLS setup: {e}")))?;
        let mut opts = ResolverOpts::default();
        opts.timeout = cfg.query_timeout;
        opts.attempts = cfg.attempts;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.cache_size = 0;
        opts.edns_payload_len = 1232;
        let cx = Arc::new(PoolContext::new(opts, tls));
        let pool = |mut ns: NameServerConfig| {
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            NameServerPool::from_config([ns], cx.clone(), TokioRuntimeProvider::default())
        };
        let transport = Transport {
            addr,
            udp: pool(NameServerConfig::udp(addr.ip())),
            tcp: pool(NameServerConfig::tcp(addr.ip())),
            tcp_failure: Arc::default(),
        };
        Ok(Upstream {
            addr,
            keys: KeyCache {
                inner: transport,
                entries: Arc::default(),
                primed: Arc::default(),
                pending_max: cfg.query_timeout * 3 + Duration::from_secs(1),
            },
            cap: Mutex::default(),
            edns: AtomicBool::new(true),
        })
    }

    /// A validator for one query. Deliberately not shared between queries: hickory's verdict
    /// cache recognises an RRset by a 64-bit non-cryptographic hash, so a verdict kept for the
    /// life of a context could be matched by a crafted RRset; within one query that exposure
    /// is as small as hickory makes it. Sharing waits for a collision-resistant key
    /// (docs/BENCHMARKS.md, issue 18).
    fn validator(&self, anchors: Arc<TrustAnchors>) -> Validator {
        DnssecDnsHandle::with_trust_anchor(
            Watch {
                inner: self.keys.clone(),
            },
            anchors,
        )
    }

    /// The verdict now, if one is known and fresh.
    fn known(&self) -> Option<PathCapability> {
        let slot = self.cap.lock().ok()?;
        match &slot.verdict {
            Some((c, at)) if at.elapsed() < verdict_life(c) => Some(c.clone()),
            _ => None,
        }
    }

    /// Starts the capability tests unless a fresh verdict or a test in flight exists; returns
    /// the test to wait for. With `retest`, a verdict older than [`RETEST_AFTER`] is tested
    /// again, bypassing the key cache (the network may have changed under the same address).
    fn detection(self: &Arc<Self>, tld: Option<Name>, retest: bool) -> Option<Detection> {
        let mut slot = self.cap.lock().ok()?;
        if let Some(p) = &slot.pending {
            return Some(p.clone());
        }
        let fresh = match &slot.verdict {
            Some((c, at)) => {
                at.elapsed() < verdict_life(c) && !(retest && at.elapsed() >= RETEST_AFTER)
            }
            None => false,
        };
        if fresh {
            return None;
        }
        let rt = tokio::runtime::Handle::try_current().ok()?;
        let me = self.clone();
        let bypass = retest && slot.verdict.is_some();
        let task = rt.spawn(async move {
            let c = detect(&me, tld, bypass).await;
            if let Ok(mut s) = me.cap.lock() {
                s.verdict = Some((c.clone(), Instant::now()));
                s.pending = None;
            }
            c
        });
        let fut: Pin<Box<dyn Future<Output = PathCapability> + Send>> = Box::pin(async move {
            task.await
                .unwrap_or_else(|e| PathCapability::Roadblock(format!("capability test: {e}")))
        });
        let shared = fut.shared();
        slot.pending = Some(shared.clone());
        Some(shared)
    }

    /// The verdict, waiting for the tests when none is fresh.
    async fn capability(self: &Arc<Self>, tld: Option<Name>, retest: bool) -> PathCapability {
        match self.detection(tld, retest) {
            Some(d) => d.await,
            None => self.known().unwrap_or(PathCapability::Dead),
        }
    }

    /// One unvalidated exchange (no DO bit), without EDNS once the server rejected it.
    async fn plain(&self, name: &Name, rtype: RecordType) -> Cached {
        let ask = |edns: bool| {
            let mut o = DnsRequestOptions::default();
            o.use_edns = edns;
            o.edns_payload_len = 1232;
            self.keys
                .inner
                .lookup(Query::query(name.clone(), rtype), o)
                .first_answer()
        };
        let edns = self.edns.load(Ordering::Relaxed);
        let r = ask(edns).await;
        if edns && rejects_edns(&r) {
            // RFC 6891 §6.2.2: FORMERR or NOTIMP to an EDNS query, so ask without.
            self.edns.store(false, Ordering::Relaxed);
            return ask(false).await;
        }
        r
    }
}

/// FORMERR or NOTIMP: the server does not understand the query as sent (EDNS).
fn rejects_edns(r: &Cached) -> bool {
    matches!(
        r,
        Err(NetError::Dns(DnsError::ResponseCode(
            ResponseCode::FormErr | ResponseCode::NotImp
        )))
    )
}

/// The RFC 8027 §3 tests that decide between validating through a nameserver and using its
/// answers as unsigned: the root DNSKEY with DO set (EDNS0 accepted, DNSKEY answerable,
/// RRSIGs returned; over TCP when it does not fit in UDP) and, in parallel, the DS of the
/// asked name's TLD (DS answerable, signed, or a negative answer with NSEC/NSEC3). Both go
/// through the key cache, which the chain prefetch fills with the same queries, so on a
/// capable path the tests cost no packet of their own. Only when one goes unanswered is a
/// plain query (no EDNS) sent, to tell a roadblock from a dead server.
async fn detect(up: &Upstream, tld: Option<Name>, bypass_cache: bool) -> PathCapability {
    let signed_query = |name: Name, rtype: RecordType| {
        let mut opts = DnsRequestOptions::default();
        opts.use_edns = true;
        opts.edns_set_dnssec_ok = true;
        let req = DnsRequest::from_query(Query::query(name, rtype), opts);
        if bypass_cache {
            Box::pin(up.keys.inner.send(req).first_answer())
                as Pin<Box<dyn Future<Output = Cached> + Send>>
        } else {
            Box::pin(up.keys.send(req).first_answer())
        }
    };
    let dnskey = signed_query(Name::root(), RecordType::DNSKEY);
    let ds = async {
        match tld {
            Some(t) => Some(signed_query(t, RecordType::DS).await),
            None => None,
        }
    };
    let (dnskey, ds) = futures_util::join!(dnskey, ds);
    let mut unanswered = false;
    for (what, r) in std::iter::once(("root DNSKEY", &dnskey)).chain(ds.as_ref().map(|d| ("DS", d)))
    {
        match judge_signed(what, r, &up.keys.inner) {
            Judged::Fine => {}
            Judged::Roadblock(why) => return PathCapability::Roadblock(why),
            Judged::Unanswered => unanswered = true,
        }
    }
    if !unanswered {
        return PathCapability::Carries;
    }
    // Signed queries went unanswered: does the server answer a plain one?
    match up.plain(&Name::root(), RecordType::SOA).await {
        Ok(_) | Err(NetError::Dns(DnsError::NoRecordsFound(_))) => PathCapability::Roadblock(
            "the nameserver answers plain queries but not DNSSEC ones (DNSKEY/DS with DO)".into(),
        ),
        Err(_) => PathCapability::Dead,
    }
}

enum Judged {
    Fine,
    Roadblock(String),
    Unanswered,
}

fn judge_signed(what: &str, r: &Cached, transport: &Transport) -> Judged {
    match r {
        Ok(resp) => {
            let data = resp
                .answers
                .iter()
                .filter(|r| r.record_type() != RecordType::RRSIG)
                .count();
            let sigs = resp
                .answers
                .iter()
                .filter(|r| r.record_type() == RecordType::RRSIG)
                .count();
            if data > 0 && sigs == 0 {
                Judged::Roadblock(format!(
                    "the nameserver strips DNSSEC signatures ({what} answered without RRSIG)"
                ))
            } else {
                Judged::Fine
            }
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => {
            let proof = nr.authorities.as_ref().is_some_and(|a| {
                a.iter()
                    .any(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
            });
            if proof {
                Judged::Fine
            } else {
                Judged::Roadblock(format!(
                    "the nameserver returns negative answers without NSEC/NSEC3 proof ({what})"
                ))
            }
        }
        Err(NetError::Dns(DnsError::ResponseCode(code))) => {
            let why = match code {
                ResponseCode::FormErr | ResponseCode::NotImp => {
                    format!("the nameserver rejects EDNS0 queries ({code} to a {what} query)")
                }
                _ => format!("the nameserver answers {what} queries with {code}"),
            };
            Judged::Roadblock(why)
        }
        // RFC 8027 §3 "TCP": the signed answer needs TCP and the path has none.
        Err(NetError::Truncated) => Judged::Roadblock(format!(
            "{what} with its signatures: {}",
            transport.truncated_text()
        )),
        Err(NetError::Timeout) => Judged::Unanswered,
        Err(e) if is_network_failure(e) => Judged::Unanswered,
        Err(e) => Judged::Roadblock(format!("{what} queries fail through the nameserver: {e}")),
    }
}

/// How one query is made.
#[derive(Clone, Copy)]
enum Mode {
    /// Validated by hickory's handle.
    Validate,
    /// Sent without DO and not validated; every RRset gets this state.
    Plain(DnssecState),
}

/// One answer as both modes see it.
struct Reply {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl From<DnsResponse> for Reply {
    fn from(r: DnsResponse) -> Self {
        Reply {
            rcode: r.response_code,
            answers: r.answers.clone(),
            authorities: r.authorities.clone(),
            additionals: r.additionals.clone(),
        }
    }
}

/// A validating stub resolver bound to fixed nameservers, that falls back to using answers
/// as unsigned (state UNAVAILABLE) on a path that cannot carry DNSSEC (RFC 8027).
pub struct Resolver {
    primary: Vec<Arc<Upstream>>,
    fallback: Vec<Arc<Upstream>>,
    rotate: bool,
    next: AtomicUsize,
    negative_anchors: Vec<Name>,
    anchor_source: AnchorSource,
    anchors: OnceCell<Arc<TrustAnchors>>,
    hosts: Option<HostsFile>,
    /// Outcomes kept for their TTL with their DNSSEC state (issue 18).
    answers: AnswerCache,
    /// Zone cuts learnt from answers ([`Self::learn_cuts`]); only steers prefetching.
    cuts: Mutex<std::collections::HashSet<Name>>,
}

/// Zone cuts remembered per context (the set is emptied when full).
const MAX_KNOWN_CUTS: usize = 4096;

/// The registrable domain of `name` (one label under its Public Suffix List suffix, the
/// list compiled in with the `psl` crate), lower case, without the final dot.
fn registrable(name: &str) -> Option<String> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    psl::domain(n.as_bytes()).map(|d| String::from_utf8_lossy(d.as_bytes()).into_owned())
}

/// Whether `name` (any case, final dot or not) is itself a public suffix (`com`, `co.uk`).
fn is_public_suffix(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    !n.is_empty() && psl::suffix(n.as_bytes()).is_some_and(|s| s.as_bytes().len() == n.len())
}

impl Resolver {
    /// Builds the resolver; no packet is sent until the first query.
    pub fn new(cfg: &ResolverConfig) -> Result<Self> {
        if cfg.nameservers.is_empty() {
            return Err(Error::InvalidArg("no nameserver configured".into()));
        }
        let make = |list: &[SocketAddr]| {
            list.iter()
                .map(|a| Upstream::new(*a, cfg).map(Arc::new))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Resolver {
            primary: make(&cfg.nameservers)?,
            fallback: make(&cfg.fallback_nameservers)?,
            rotate: cfg.rotate,
            next: AtomicUsize::new(0),
            negative_anchors: cfg.negative_anchors.clone(),
            anchor_source: cfg.anchors.clone(),
            anchors: OnceCell::new(),
            hosts: cfg.hosts_file.clone().map(HostsFile::new),
            answers: AnswerCache::default(),
            cuts: Mutex::default(),
        })
    }

    /// The hosts file's addresses for `host`, when it names the host (src/core/dns/hosts.rs).
    pub fn hosts_lookup(&self, host: &str) -> Option<Vec<IpAddr>> {
        self.hosts.as_ref()?.lookup(host)
    }

    /// The configured nameservers in the order this query tries them.
    fn order(&self) -> Vec<Arc<Upstream>> {
        let n = self.primary.len();
        let start = if self.rotate && n > 1 {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        } else {
            0
        };
        let mut order: Vec<_> = (0..n)
            .map(|i| self.primary[(start + i) % n].clone())
            .collect();
        // Servers known not to answer go last (stable: the configured order stays otherwise).
        order.sort_by_key(|u| u.known() == Some(PathCapability::Dead));
        order
    }

    /// The nameserver queries go to first: the first one not known to be dead.
    fn preferred(&self) -> &Arc<Upstream> {
        self.primary
            .iter()
            .find(|u| u.known() != Some(PathCapability::Dead))
            .unwrap_or(&self.primary[0])
    }

    /// Whether `name` is at or under a negative trust anchor.
    pub fn under_negative_anchor(&self, name: &Name) -> bool {
        self.negative_anchors.iter().any(|z| z.zone_of(name))
    }

    /// Why DNSSEC cannot be validated through the configured nameservers, when every one that
    /// answers has shown it is a roadblock (and no fallback resolver carries DNSSEC).
    pub fn roadblock_reason(&self) -> Option<String> {
        let mut reason = None;
        for u in &self.primary {
            match u.known() {
                Some(PathCapability::Roadblock(r)) => {
                    reason.get_or_insert(format!("{}: {r}", u.addr));
                }
                Some(PathCapability::Carries) => return None,
                _ => {}
            }
        }
        reason
    }

    async fn trust_anchors(&self, up: &Upstream) -> Result<Arc<TrustAnchors>> {
        self.anchors
            .get_or_try_init(|| async {
                match &self.anchor_source {
                    AnchorSource::BuiltIn => Ok(Arc::new(TrustAnchors::default())),
                    AnchorSource::Keys(k) => Ok(k.clone()),
                    AnchorSource::Ds(ds) => Self::anchors_from_ds(up, ds).await,
                }
            })
            .await
            .cloned()
    }

    /// Fetches each DS owner's DNSKEY set (unvalidated: the DS digest is the check), through
    /// the key cache, so the chain prefetch's identical query serves it.
    async fn anchors_from_ds(
        up: &Upstream,
        ds: &[(Name, hickory_resolver::proto::dnssec::rdata::DS)],
    ) -> Result<Arc<TrustAnchors>> {
        let owner = ds[0].0.clone();
        let resp = up
            .keys
            .send(signed_request(owner.clone(), RecordType::DNSKEY))
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
    /// Nothing is sent for names under a negative trust anchor or through a roadblock.
    pub fn prefetch_keys(&self, name: &str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
            .is_ok_and(|n| self.under_negative_anchor(&n))
        {
            return;
        }
        let up = self.preferred().clone();
        if matches!(up.known(), Some(PathCapability::Roadblock(_))) {
            return;
        }
        let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
        let start = labels
            .iter()
            .position(|l| !l.starts_with('_'))
            .unwrap_or(labels.len());
        let mut zones: Vec<String> = (start..labels.len())
            .map(|i| format!("{}.", labels[i..].join(".")))
            .collect();
        zones.push(".".into());
        // Names below the registrable domain (`mail.example.net` under `example.net`) are
        // rarely zone cuts: their DNSKEY/DS are asked only once an answer showed they are one.
        // Should one be a cut not learnt yet, the validator asks for its keys itself (more
        // round trips that once, never a different verdict).
        let reg = registrable(name);
        for zone in zones {
            let Ok(owner) = Name::from_ascii(&zone) else {
                continue;
            };
            if let Some(reg) = &reg {
                let z = zone.trim_end_matches('.').to_ascii_lowercase();
                if z.len() > reg.len() && z.ends_with(&format!(".{reg}")) && !self.known_cut(&owner)
                {
                    continue;
                }
            }
            for rtype in [RecordType::DNSKEY, RecordType::DS] {
                if owner.is_root() && rtype == RecordType::DS {
                    continue;
                }
                let keys = up.keys.clone();
                let req = signed_request(owner.clone(), rtype);
                rt.spawn(async move {
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
    fn prefetch_zone_cuts(&self, up: &Upstream, name: &Name) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut chain = Vec::new();
        let mut n = name.clone();
        while !n.is_root() {
            if up.keys.has_ds(&n) {
                return;
            }
            chain.push(n.clone());
            n = n.base_name();
        }
        for owner in chain {
            // The insecurity walk stops at the first cut above the owner, which is the
            // registrable domain or below it: a public suffix's NS is not needed there.
            if is_public_suffix(&owner.to_ascii()) && !self.known_cut(&owner) {
                continue;
            }
            let keys = up.keys.clone();
            let q = Query::query(owner, RecordType::NS);
            rt.spawn(async move {
                let _ = keys
                    .lookup(q, DnsRequestOptions::default())
                    .first_answer()
                    .await;
            });
        }
    }

    /// Remembers the zone cuts a validated response shows: the signer of every RRSIG that
    /// validated (a zone apex, RFC 4034 §3.1.7) and the owner of the SOA of a negative
    /// answer (RFC 2308 §3). Only prefetching uses them: never the validator.
    fn learn_cuts(&self, resp: &DnsResponse) {
        let found = resp
            .answers
            .iter()
            .chain(&resp.authorities)
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::RRSIG(sig)) if r.proof == Proof::Secure => {
                    Some(sig.input().signer_name.to_lowercase())
                }
                RData::SOA(_) if r.proof != Proof::Bogus => Some(r.name.to_lowercase()),
                _ => None,
            });
        let Ok(mut cuts) = self.cuts.lock() else {
            return;
        };
        for cut in found {
            if cuts.len() >= MAX_KNOWN_CUTS {
                cuts.clear();
            }
            cuts.insert(cut);
        }
    }

    /// Whether an answer has shown `zone` to be a zone cut.
    fn known_cut(&self, zone: &Name) -> bool {
        self.cuts
            .lock()
            .is_ok_and(|c| c.contains(&zone.to_lowercase()))
    }

    /// One query, following CNAMEs. NXDOMAIN and NODATA are outcomes, not errors; SERVFAIL,
    /// timeouts, bogus and indeterminate answers are errors (T-SRV-05, T-SRV-06).
    ///
    /// Validated through the first nameserver that answers. When validation fails, the
    /// nameserver's capability (RFC 8027 tests, started with the first query and cached)
    /// decides: a path that carries DNSSEC keeps the failure (BOGUS stays BOGUS); on a
    /// roadblock a caller-configured fallback resolver is tried, and failing that the answer
    /// is fetched without DNSSEC and reported UNAVAILABLE (used as unsigned, docs/design.md §2.2).
    /// Names under a negative trust anchor are not validated and come back INSECURE.
    ///
    /// Outcomes are kept for their TTL in the context's answer cache (`answer_cache.rs`:
    /// never errors, BOGUS or INDETERMINATE), so a repeat within the TTL sends nothing.
    pub async fn query(&self, name: &Name, rtype: RecordType) -> Result<Outcome> {
        if let Some(o) = self.answers.get(name, rtype, Instant::now()) {
            return Ok(o);
        }
        let asked = Instant::now();
        let negative_anchor = self.under_negative_anchor(name);
        let r = self
            .query_any(&self.order(), name, rtype, negative_anchor)
            .await;
        if let Ok(o) = &r {
            // Kept from when it was asked: the TTL ran from the server's answer, not from now.
            self.answers.put(name, rtype, o, asked);
        }
        r
    }

    /// Number of questions in the answer cache (for tests and the bench).
    pub fn cached_answers(&self) -> usize {
        self.answers.len()
    }

    async fn query_any(
        &self,
        order: &[Arc<Upstream>],
        name: &Name,
        rtype: RecordType,
        negative_anchor: bool,
    ) -> Result<Outcome> {
        let key_query = matches!(rtype, RecordType::DNSKEY | RecordType::DS | RecordType::NS);
        let tld = top_label(name);
        let mut last_err = None;
        for (i, up) in order.iter().enumerate() {
            let more = i + 1 < order.len();
            if negative_anchor {
                match self
                    .follow(up, name, rtype, Mode::Plain(DnssecState::Insecure))
                    .await
                {
                    Err(e) if moves_on(&e) => {
                        last_err = Some(e);
                        continue;
                    }
                    r => return r,
                }
            }
            // The capability tests run alongside the first real queries (no extra round).
            let detection = up.detection(tld.clone(), false);
            if let Some(PathCapability::Roadblock(_)) = up.known() {
                match self.around_roadblock(up, name, rtype).await {
                    Err(e) if moves_on(&e) => {
                        last_err = Some(e);
                        continue;
                    }
                    r => return r,
                }
            }
            if !key_query {
                self.prefetch_zone_cuts(up, name);
            }
            let err = match self.follow(up, name, rtype, Mode::Validate).await {
                Ok(o) => return Ok(o),
                // No answer in time: the next server now, rather than after the tests.
                Err(e @ Error::Timeout(_)) if more => {
                    last_err = Some(e);
                    continue;
                }
                Err(e) if is_dnssec_or_path_failure(&e) => e,
                Err(e) => return Err(e),
            };
            let cap = match detection {
                Some(d) => d.await,
                None => up.capability(tld.clone(), true).await,
            };
            match cap {
                PathCapability::Carries if moves_on(&err) => last_err = Some(err),
                PathCapability::Carries => return Err(err),
                PathCapability::Roadblock(_) => {
                    match self.around_roadblock(up, name, rtype).await {
                        Err(e) if moves_on(&e) => last_err = Some(e),
                        r => return r,
                    }
                }
                PathCapability::Dead => last_err = Some(err),
            }
        }
        Err(last_err
            .unwrap_or_else(|| Error::LookupFailed(format!("{name} {rtype}: no nameserver"))))
    }

    /// On a roadblock: a fallback resolver that carries DNSSEC validates; otherwise the
    /// answer comes without DNSSEC from the roadblock itself, as UNAVAILABLE.
    async fn around_roadblock(
        &self,
        up: &Arc<Upstream>,
        name: &Name,
        rtype: RecordType,
    ) -> Result<Outcome> {
        let tld = top_label(name);
        for fb in &self.fallback {
            if fb.capability(tld.clone(), false).await != PathCapability::Carries {
                continue;
            }
            match self.follow(fb, name, rtype, Mode::Validate).await {
                Err(e) if moves_on(&e) => continue,
                r => return r,
            }
        }
        self.follow(up, name, rtype, Mode::Plain(DnssecState::Unavailable))
            .await
    }

    /// One query through one nameserver, following CNAMEs.
    async fn follow(
        &self,
        up: &Upstream,
        name: &Name,
        rtype: RecordType,
        mode: Mode,
    ) -> Result<Outcome> {
        let state_of = |p: Proof| match mode {
            Mode::Validate => DnssecState::from_proof(p),
            Mode::Plain(s) => s,
        };
        let mut name = name.clone();
        let mut cnames = Vec::new();
        let mut chain_state = match mode {
            Mode::Validate => DnssecState::Secure,
            Mode::Plain(s) => s,
        };
        let mut chain_ttl = u32::MAX;
        for _ in 0..=MAX_CNAME_HOPS {
            let resp = match mode {
                Mode::Validate => self.exchange(up, &name, rtype).await?,
                Mode::Plain(_) => plain_reply(up, &name, rtype).await?,
            };
            let rcode = resp.rcode;
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
                chain_state = chain_state.and(state_of(proof));
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
                    .fold(chain_state, |s, r| s.and(state_of(r.proof)));
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
            if cnames.last() == Some(&name) && !answer_has_owner(&resp.answers, &name) {
                // The server stopped at a CNAME into another zone: ask for the target.
                continue;
            }
            let (state, ttl) = negative_state(&resp.authorities);
            let state = match mode {
                Mode::Validate => state.and(chain_state),
                Mode::Plain(s) => s,
            };
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
    async fn exchange(&self, up: &Upstream, name: &Name, rtype: RecordType) -> Result<Reply> {
        let anchors = if self.anchors.initialized() {
            self.trust_anchors(up).await?
        } else {
            // A DS-form anchor needs the root DNSKEY first: the query itself leaves in the
            // same round and waits in the key cache for the validator (2 RTT cold, not 3).
            let prime = up.keys.prime(name.clone(), rtype);
            let (anchors, _) = futures_util::join!(self.trust_anchors(up), prime);
            anchors?
        };
        let failures: Arc<AtomicUsize> = Arc::default();
        let handle = up.validator(anchors);
        let what = format!("{} {rtype}", name.to_ascii());
        let lookup = handle
            .lookup(
                Query::query(name.clone(), rtype),
                DnsRequestOptions::default(),
            )
            .first_answer();
        let res = QUERY_FAILURES.scope(failures.clone(), lookup).await;
        let key_trouble = failures.load(Ordering::Relaxed) > 0;
        match res {
            Ok(resp) => {
                let bogus = resp
                    .answers
                    .iter()
                    .chain(&resp.authorities)
                    .any(|r| r.proof == Proof::Bogus && r.record_type() != RecordType::RRSIG);
                if bogus && key_trouble {
                    return Err(Error::Indeterminate(keys_not_fetched(&what, up)));
                }
                self.learn_cuts(&resp);
                Ok(resp.into())
            }
            Err(e) => Err(classify(up, &what, e, key_trouble)),
        }
    }
}

/// A DNSKEY/DS query with DO set, as the validator sends it (so the key cache serves both).
fn signed_request(name: Name, rtype: RecordType) -> DnsRequest {
    let mut opts = DnsRequestOptions::default();
    opts.use_edns = true;
    let mut req = DnsRequest::from_query(Query::query(name, rtype), opts);
    req.edns
        .get_or_insert_with(Default::default)
        .enable_dnssec();
    req
}

/// An unvalidated answer, negative answers included.
async fn plain_reply(up: &Upstream, name: &Name, rtype: RecordType) -> Result<Reply> {
    let what = format!("{} {rtype}", name.to_ascii());
    match up.plain(name, rtype).await {
        Ok(resp) => Ok(resp.into()),
        Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => Ok(Reply {
            rcode: nr.response_code,
            answers: Vec::new(),
            authorities: nr
                .authorities
                .as_deref()
                .map(<[Record]>::to_vec)
                .unwrap_or_default(),
            additionals: Vec::new(),
        }),
        Err(e) => Err(classify(up, &what, e, false)),
    }
}

/// The last label of `name` as a zone (`com.` for `mail.example.com.`).
fn top_label(name: &Name) -> Option<Name> {
    let n = name.num_labels();
    (n >= 1).then(|| name.trim_to(1))
}

/// Errors after which the path's capability is consulted.
fn is_dnssec_or_path_failure(e: &Error) -> bool {
    matches!(
        e,
        Error::Bogus(_)
            | Error::Indeterminate(_)
            | Error::ServFail(_)
            | Error::Timeout(_)
            | Error::LookupFailed(_)
            | Error::BadTrustAnchor(_)
    )
}

/// Errors after which the next nameserver is asked.
fn moves_on(e: &Error) -> bool {
    matches!(
        e,
        Error::ServFail(_) | Error::Timeout(_) | Error::LookupFailed(_)
    )
}

fn answer_has_owner(answers: &[Record], name: &Name) -> bool {
    answers
        .iter()
        .any(|r| &r.name == name && r.record_type() != RecordType::RRSIG)
}

/// DNSSEC state and negative TTL of a negative answer, from its SOA (RFC 2308 §5).
fn negative_state(authorities: &[Record]) -> (DnssecState, u32) {
    let soa = authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA);
    match soa {
        Some(r) => {
            let min = match &r.data {
                RData::SOA(s) => s.minimum,
                _ => r.ttl,
            };
            let nsec = authorities
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

/// Why a validation failed for want of keys, naming TCP when a key answer needed it and
/// the path has none.
fn keys_not_fetched(what: &str, up: &Upstream) -> String {
    match up.keys.inner.tcp_unavailable() {
        Some(_) => format!(
            "{what}: DNSSEC keys could not be fetched: {}",
            up.keys.inner.truncated_text()
        ),
        None => format!("{what}: DNSSEC keys could not be fetched"),
    }
}

fn classify(up: &Upstream, what: &str, e: NetError, key_trouble: bool) -> Error {
    match e {
        NetError::Timeout => Error::Timeout(format!("{what}: no answer from the nameserver")),
        NetError::Truncated => {
            Error::LookupFailed(format!("{what}: {}", up.keys.inner.truncated_text()))
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            Error::ServFail(format!("{what}: server answered {code}"))
        }
        NetError::Dns(DnsError::DnssecBogus) | NetError::Dns(DnsError::Nsec { .. }) => {
            if key_trouble {
                Error::Indeterminate(keys_not_fetched(what, up))
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

/// The exchange failed on the way, not in the answer: no answer, no connection, or an
/// answer that needed TCP where TCP is not available ([`Transport`]).
fn is_network_failure(e: &NetError) -> bool {
    matches!(
        e,
        NetError::Timeout
            | NetError::Io(_)
            | NetError::NoConnections
            | NetError::Busy
            | NetError::Truncated
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
    inner: Transport,
    entries: KeyEntries,
    /// Other queries sent ahead of the validator ([`KeyCache::prime`]): their answer is
    /// served once, to the validator's identical query, then forgotten.
    primed: Arc<Mutex<std::collections::HashSet<(Name, RecordType)>>>,
    /// A fetch in flight longer than this is presumed lost (the pool's own timeout is shorter).
    pending_max: Duration,
}

impl KeyCache {
    /// Sends `name rtype` (with DO, as the validator will) now, so that the validator's own
    /// query, made once the trust anchors are known, is answered from memory.
    async fn prime(&self, name: Name, rtype: RecordType) {
        if let Ok(mut p) = self.primed.lock() {
            p.insert((name.to_lowercase(), rtype));
        }
        let _ = self.send(signed_request(name, rtype)).first_answer().await;
    }

    /// Whether answers to this question are kept (and whether a primed one is used up).
    fn keeps(&self, key: &(Name, RecordType)) -> (bool, bool) {
        if matches!(key.1, RecordType::DNSKEY | RecordType::DS | RecordType::NS) {
            return (true, false);
        }
        let primed = self.primed.lock().is_ok_and(|p| p.contains(key));
        (primed, primed)
    }

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
            .map(|q| (q.name().to_lowercase(), q.query_type()))
            .filter(|k| self.keeps(k).0);
        let (Some(key), Ok(rt)) = (key, tokio::runtime::Handle::try_current()) else {
            return Box::pin(self.inner.send(request));
        };
        let one_shot = self.keeps(&key).1;
        let now = Instant::now();
        let Ok(mut map) = self.entries.lock() else {
            return Box::pin(self.inner.send(request));
        };
        match map.get(&key) {
            Some(Slot::Ready(r, until)) if *until > now => {
                let r = r.clone();
                if one_shot {
                    map.remove(&key);
                    if let Ok(mut p) = self.primed.lock() {
                        p.remove(&key);
                    }
                }
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
                // A primed answer waits only for the validator's query, moments later.
                let keep = cache_for(&r).map(|k| {
                    if one_shot {
                        k.min(Duration::from_secs(10))
                    } else {
                        k
                    }
                });
                match keep {
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

tokio::task_local! {
    /// The network failures of the validated query this task is making ([`Watch`]).
    static QUERY_FAILURES: Arc<AtomicUsize>;
}

/// Counts network failures of every exchange made for one validated query, in the counter
/// of the query whose task sends it (the validator, shared, runs in the asker's task).
#[derive(Clone)]
struct Watch {
    inner: KeyCache,
}

impl DnsHandle for Watch {
    type Response = BoxedResponse;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let failures = QUERY_FAILURES.try_with(Arc::clone).ok();
        Box::pin(self.inner.send(request).inspect(move |r| {
            if let Err(e) = r
                && is_network_failure(e)
                && let Some(f) = &failures
            {
                f.fetch_add(1, Ordering::Relaxed);
            }
        }))
    }
}
