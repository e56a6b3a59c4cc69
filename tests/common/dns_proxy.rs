//! A user-space DNS proxy for the tests (tokio, UDP and TCP on one port; this kernel has no
//! netem) that sits between the library and a nameserver and, for chosen query names and
//! types, delays, drops, truncates, answers SERVFAIL or FORMERR, strips DNSSEC records or
//! answers with synthesised records; and the helpers that run one discovery through it.
//! Shared by tests/faults.rs (issue 7) and tests/roadblocks.rs (issue 14).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::raw::c_char;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::discovery::*;
use mailsrv::ffi::status::mailsrv_status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::*;

pub const IMAPS: u32 = 1;

// ------------------------------------------------------------------ the DNS proxy

/// What the proxy does with a matching query.
#[derive(Clone)]
pub enum Action {
    /// Forward after a pause.
    Delay(Duration),
    /// Never answer (UDP and TCP).
    Drop,
    /// Over UDP: an empty answer with TC=1, so the client must retry over TCP (forwarded).
    Truncate,
    /// RCODE 2, no records.
    ServFail,
    /// A synthesised authoritative answer: (owner, type, rdata) records, answer section.
    Answer(Synth),
    /// Forward, then remove RRSIG, NSEC, NSEC3 and DS records and the AD bit, and answer
    /// without EDNS (an old forwarder or home router that does not know DNSSEC).
    StripDnssec,
    /// FORMERR to any query carrying EDNS (an OPT record); others are forwarded.
    FormErrOnEdns,
    /// Silence for queries with the CD bit set; others are forwarded.
    DropCd,
    /// Forward, but over UDP answer TC=1 (no records) when the answer is longer than this
    /// (a path whose large datagrams are lost); over TCP, forward.
    TruncateOver(usize),
}

/// Makes the records of a synthesised answer from the asked name.
pub type Synth = Arc<dyn Fn(&str) -> Vec<Rr> + Send + Sync>;

/// One resource record of a synthesised answer: owner name, type, wire rdata.
pub struct Rr(pub String, pub u16, pub Vec<u8>);

pub struct Rule {
    /// Lower-case name without the final dot; `*.x` matches x and every name below it, `*` all.
    name: String,
    qtype: Option<u16>,
    action: Action,
    hits: AtomicUsize,
}

impl Rule {
    fn matches(&self, name: &str, qtype: u16) -> bool {
        let name_ok = self.name == "*"
            || match self.name.strip_prefix("*.") {
                Some(zone) => name == zone || name.ends_with(&format!(".{zone}")),
                None => name == self.name,
            };
        name_ok && self.qtype.is_none_or(|t| t == qtype)
    }
}

#[derive(Default)]
pub struct Stats {
    pub udp: AtomicUsize,
    pub tcp: AtomicUsize,
    /// TCP queries per (name, type).
    tcp_names: Mutex<HashMap<(String, u16), usize>>,
    /// Every question asked, in arrival order, UDP and TCP (name lower case, no final dot).
    log: Mutex<Vec<(String, u16)>>,
}

/// A DNS proxy in front of the testbed's knotd, on its own thread and runtime (the library's
/// blocking calls refuse to run inside a tokio runtime).
pub struct Proxy {
    pub addr: SocketAddr,
    pub rules: Arc<Vec<Rule>>,
    pub stats: Arc<Stats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Proxy {
    pub fn start(rules: Vec<Rule>) -> Proxy {
        Self::start_opts(
            rules,
            env("MAILSRV_TEST_NS").parse().expect("MAILSRV_TEST_NS"),
            true,
        )
    }

    /// A proxy in front of `upstream`; without `tcp`, nothing listens on its TCP port
    /// (a path where TC=1 cannot be followed up).
    pub fn start_opts(rules: Vec<Rule>, upstream: SocketAddr, tcp: bool) -> Proxy {
        Self::start_at(rules, upstream, tcp, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// A proxy listening on `bind` (UDP and TCP; port 0: any free port of that address).
    /// A fixed port 53 is what a resolv.conf `nameserver` line names (root only).
    pub fn start_at(rules: Vec<Rule>, upstream: SocketAddr, tcp: bool, bind: SocketAddr) -> Proxy {
        let rules = Arc::new(rules);
        let stats = Arc::new(Stats::default());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (r, s) = (rules.clone(), stats.clone());
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // UDP and TCP on the same port, as a nameserver address names both.
                // A fixed address may still be held for a moment by a proxy just dropped.
                let t0 = Instant::now();
                let (udp, listener) = loop {
                    let pair = match UdpSocket::bind(bind).await {
                        Ok(udp) => {
                            let at = udp.local_addr().unwrap();
                            TcpListener::bind(at).await.map(|tcp| (Arc::new(udp), tcp))
                        }
                        Err(e) => Err(e),
                    };
                    match pair {
                        Ok(p) => break p,
                        Err(e) if bind.port() != 0 && t0.elapsed() > Duration::from_secs(3) => {
                            panic!("DNS proxy on {bind}: {e}")
                        }
                        Err(_) if bind.port() != 0 => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        Err(_) => {}
                    }
                };
                addr_tx.send(udp.local_addr().unwrap()).unwrap();
                let udp_task = tokio::spawn(serve_udp(udp, upstream, r.clone(), s.clone()));
                let tcp_task = if tcp {
                    tokio::spawn(serve_tcp(listener, upstream, r, s))
                } else {
                    drop(listener);
                    tokio::spawn(async {})
                };
                let _ = stop_rx.await;
                udp_task.abort();
                tcp_task.abort();
            });
            rt.shutdown_background();
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        Proxy {
            addr,
            rules,
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn hits(&self, i: usize) -> usize {
        self.rules[i].hits.load(Ordering::SeqCst)
    }

    /// The questions asked so far, in arrival order (UDP retries and TCP each count).
    pub fn queries(&self) -> Vec<(String, u16)> {
        self.stats.log.lock().unwrap().clone()
    }

    /// Forgets the questions asked so far.
    pub fn clear_queries(&self) {
        self.stats.log.lock().unwrap().clear();
    }

    pub fn tcp_queries(&self, name: &str, qtype: u16) -> usize {
        let m = self.stats.tcp_names.lock().unwrap();
        m.get(&(name.to_string(), qtype)).copied().unwrap_or(0)
    }
}

pub fn rule(name: &str, qtype: Option<u16>, action: Action) -> Rule {
    Rule {
        name: name.to_string(),
        qtype,
        action,
        hits: AtomicUsize::new(0),
    }
}

/// (name, type, end of the question) of a query.
pub fn parse_question(msg: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(msg.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

pub fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

/// A response to `query` carrying only its question: flags QR (+AA), `tc` and `rcode`.
pub fn empty_response(query: &[u8], q_end: usize, tc: bool, rcode: u8) -> Vec<u8> {
    let mut r = query[..q_end].to_vec();
    r[2] = (r[2] & 0x01) | 0x80 | 0x04 | if tc { 0x02 } else { 0 }; // QR, AA, TC, RD kept
    r[3] = rcode & 0x0f;
    r[6..12].fill(0); // ANCOUNT, NSCOUNT, ARCOUNT
    r
}

pub fn synth_response(query: &[u8], q_end: usize, records: &[Rr]) -> Vec<u8> {
    let mut r = empty_response(query, q_end, false, 0);
    let (qname, _, _) = parse_question(query).expect("a question");
    for Rr(owner, rtype, rdata) in records {
        if owner.eq_ignore_ascii_case(&qname) {
            r.extend([0xc0, 0x0c]); // compressed: the question's name at offset 12
        } else {
            r.extend(encode_name(owner));
        }
        r.extend(rtype.to_be_bytes());
        r.extend(1u16.to_be_bytes()); // IN
        r.extend(300u32.to_be_bytes());
        r.extend((rdata.len() as u16).to_be_bytes());
        r.extend(rdata);
    }
    r[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
    r
}

/// What to send back for `query`, or None to forward it upstream (after `delay`).
pub enum Verdict {
    Reply(Vec<u8>),
    Forward(Duration),
    /// Forward, then rewrite the answer.
    ForwardThen(Rewrite),
    Silence,
}

/// A change made to an upstream answer on its way back.
#[derive(Clone, Copy)]
pub enum Rewrite {
    Strip,
    TruncateOver(usize),
}

impl Rewrite {
    fn apply(self, query: &[u8], answer: Vec<u8>) -> Vec<u8> {
        match self {
            Rewrite::Strip => strip_dnssec(&answer).unwrap_or(answer),
            Rewrite::TruncateOver(n) if answer.len() > n => match parse_question(query) {
                Some((_, _, q_end)) => empty_response(query, q_end, true, 0),
                None => answer,
            },
            Rewrite::TruncateOver(_) => answer,
        }
    }
}

/// The answer without DNSSEC records, AD bit or EDNS, re-encoded.
fn strip_dnssec(answer: &[u8]) -> Option<Vec<u8>> {
    use hickory_resolver::proto::op::Message;
    use hickory_resolver::proto::rr::RecordType;
    use hickory_resolver::proto::serialize::binary::BinEncodable;
    let mut m = Message::from_vec(answer).ok()?;
    let keep = |r: &hickory_resolver::proto::rr::Record| {
        !matches!(
            r.record_type(),
            RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3 | RecordType::DS
        )
    };
    m.answers.retain(keep);
    m.authorities.retain(keep);
    m.additionals.retain(keep);
    m.edns = None;
    m.metadata.authentic_data = false;
    m.to_bytes().ok()
}

/// Whether a query carries an OPT record (EDNS).
fn has_edns(query: &[u8]) -> bool {
    use hickory_resolver::proto::op::Message;
    Message::from_vec(query).is_ok_and(|m| m.edns.is_some())
}

pub fn judge(query: &[u8], over_tcp: bool, rules: &[Rule], stats: &Stats) -> Verdict {
    let Some((name, qtype, q_end)) = parse_question(query) else {
        return Verdict::Forward(Duration::ZERO);
    };
    stats.log.lock().unwrap().push((name.clone(), qtype));
    if over_tcp {
        *stats
            .tcp_names
            .lock()
            .unwrap()
            .entry((name.clone(), qtype))
            .or_default() += 1;
    }
    let Some(rule) = rules.iter().find(|r| r.matches(&name, qtype)) else {
        return Verdict::Forward(Duration::ZERO);
    };
    rule.hits.fetch_add(1, Ordering::SeqCst);
    match &rule.action {
        Action::Delay(d) => Verdict::Forward(*d),
        Action::StripDnssec => Verdict::ForwardThen(Rewrite::Strip),
        Action::FormErrOnEdns if has_edns(query) => {
            Verdict::Reply(empty_response(query, q_end, false, 1))
        }
        Action::FormErrOnEdns => Verdict::Forward(Duration::ZERO),
        Action::DropCd if query.get(3).is_some_and(|b| b & 0x10 != 0) => Verdict::Silence,
        Action::DropCd => Verdict::Forward(Duration::ZERO),
        Action::TruncateOver(_) if over_tcp => Verdict::Forward(Duration::ZERO),
        Action::TruncateOver(n) => Verdict::ForwardThen(Rewrite::TruncateOver(*n)),
        Action::Drop => Verdict::Silence,
        Action::Truncate if over_tcp => Verdict::Forward(Duration::ZERO),
        Action::Truncate => Verdict::Reply(empty_response(query, q_end, true, 0)),
        Action::ServFail => Verdict::Reply(empty_response(query, q_end, false, 2)),
        Action::Answer(f) => {
            let resp = synth_response(query, q_end, &f(&name));
            if !over_tcp && resp.len() > 1232 {
                Verdict::Reply(empty_response(query, q_end, true, 0))
            } else {
                Verdict::Reply(resp)
            }
        }
    }
}

pub async fn serve_udp(
    sock: Arc<UdpSocket>,
    upstream: SocketAddr,
    rules: Arc<Vec<Rule>>,
    stats: Arc<Stats>,
) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        stats.udp.fetch_add(1, Ordering::SeqCst);
        let query = buf[..n].to_vec();
        let (sock, rules) = (sock.clone(), rules.clone());
        let verdict = judge(&query, false, &rules, &stats);
        tokio::spawn(async move {
            let reply = match verdict {
                Verdict::Silence => return,
                Verdict::Reply(r) => r,
                Verdict::Forward(_) | Verdict::ForwardThen(_) => {
                    let (delay, rewrite) = match verdict {
                        Verdict::Forward(d) => (d, None),
                        Verdict::ForwardThen(w) => (Duration::ZERO, Some(w)),
                        _ => unreachable!(),
                    };
                    tokio::time::sleep(delay).await;
                    let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    up.send_to(&query, upstream).await.unwrap();
                    let mut b = vec![0u8; 65535];
                    let answer =
                        match tokio::time::timeout(Duration::from_secs(5), up.recv(&mut b)).await {
                            Ok(Ok(n)) => b[..n].to_vec(),
                            _ => return,
                        };
                    match rewrite {
                        Some(w) => w.apply(&query, answer),
                        None => answer,
                    }
                }
            };
            let _ = sock.send_to(&reply, peer).await;
        });
    }
}

pub async fn serve_tcp(
    listener: TcpListener,
    upstream: SocketAddr,
    rules: Arc<Vec<Rule>>,
    stats: Arc<Stats>,
) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let (rules, stats) = (rules.clone(), stats.clone());
        tokio::spawn(async move {
            loop {
                let mut len = [0u8; 2];
                if conn.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
                if conn.read_exact(&mut query).await.is_err() {
                    return;
                }
                stats.tcp.fetch_add(1, Ordering::SeqCst);
                let reply = match judge(&query, true, &rules, &stats) {
                    Verdict::Silence => continue,
                    Verdict::Reply(r) => r,
                    Verdict::Forward(delay) => {
                        tokio::time::sleep(delay).await;
                        match tcp_exchange(upstream, &query).await {
                            Some(r) => r,
                            None => return,
                        }
                    }
                    Verdict::ForwardThen(w) => match tcp_exchange(upstream, &query).await {
                        Some(r) => w.apply(&query, r),
                        None => return,
                    },
                };
                let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                out.extend(reply);
                if conn.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
    }
}

pub async fn tcp_exchange(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let work = async {
        let mut up = TcpStream::connect(upstream).await.ok()?;
        let mut msg = (query.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(query);
        up.write_all(&msg).await.ok()?;
        let mut len = [0u8; 2];
        up.read_exact(&mut len).await.ok()?;
        let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
        up.read_exact(&mut resp).await.ok()?;
        Some(resp)
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .ok()?
}

// ------------------------------------------------------------------ the library side

/// A context whose only nameserver is `ns`, with the testbed's root anchor and CA.
pub fn ctx_for(ns: &str, timeout_ms: u32) -> *mut mailsrv_ctx {
    let mut cfg = ptr::null_mut();
    unsafe {
        assert_eq!(mailsrv_config_new(&mut cfg), mailsrv_status::Ok);
        for (st, what) in [
            (
                mailsrv_config_set_nameserver(cfg, c(ns).as_ptr()),
                "nameserver",
            ),
            (
                mailsrv_config_set_trust_anchor_file(cfg, c(&env("MAILSRV_TEST_ANCHOR")).as_ptr()),
                "anchor",
            ),
            (
                mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()),
                "ca",
            ),
            (mailsrv_config_set_timeout_ms(cfg, timeout_ms), "timeout"),
        ] {
            assert_eq!(st, mailsrv_status::Ok, "{what}");
        }
    }
    ctx_from(cfg)
}

/// The IMAPS answer of one blocking discovery: (state, status, dnssec, detail, endpoints).
pub struct Imaps {
    pub state: u32,
    pub status: mailsrv_status,
    pub dnssec: u32,
    pub detail: String,
    pub endpoints: usize,
    pub took: Duration,
}

pub fn discover_imaps(proxy: &Proxy, domain: &str, timeout_ms: u32) -> Imaps {
    let ctx = ctx_for(&proxy.addr.to_string(), timeout_ms);
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let t0 = Instant::now();
    let st = unsafe {
        mailsrv_srv_discover(
            ctx,
            c(domain).as_ptr(),
            IMAPS,
            0,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    let took = t0.elapsed();
    assert_eq!(st, mailsrv_status::Ok, "{domain}: {}", text(err.as_ptr()));
    let r = unsafe {
        let s = mailsrv_discovery_find(out, IMAPS);
        Imaps {
            state: mailsrv_srv_set_state(s),
            status: mailsrv_srv_set_status(s),
            dnssec: mailsrv_srv_set_dnssec(s),
            detail: text(mailsrv_srv_set_detail(s)),
            endpoints: mailsrv_srv_set_endpoints_len(s),
            took,
        }
    };
    unsafe {
        mailsrv_discovery_free(out);
        mailsrv_ctx_free(ctx);
    }
    r
}

/// `took` stays within the deadline plus scheduling slack.
pub fn within(took: Duration, timeout_ms: u32) {
    let bound = Duration::from_millis(u64::from(timeout_ms)) + Duration::from_millis(750);
    assert!(took <= bound, "took {took:?}, deadline {timeout_ms} ms");
}
