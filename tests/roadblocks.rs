//! Discovery on every network (issue 14): DNSSEC roadblocks (RFC 8027), EDNS fallback
//! (RFC 6891 §6.2.2), the next nameserver, fallback resolvers and negative trust anchors
//! (RFC 7646), against the testbed's knotd through
//! - real forwarders started here on loopback and stopped by PID: `dnsmasq` (a home router)
//!   and `unbound` with validation off (a DNSSEC-transparent recursor);
//! - scripted forwarders (tests/common/dns_proxy.rs) for what no daemon does on demand:
//!   strip RRSIGs, FORMERR on EDNS, SERVFAIL on DNSKEY/DS, drop CD queries, TC=1 without TCP.
//!
//! For each: the endpoints are found with the right DNSSEC state (T-SRV-05/06: never "no
//! record" for a failure), a bogus domain on a capable path stays BOGUS (T-AUTH-03),
//! REQUIRE_SECURE fails on UNAVAILABLE, and a probe-ready domain is AUTHENTIC by probe.
//!
//! Run with `testbed/run.sh cargo test --features test-hooks --test roadblocks`.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dns_proxy::*;
use common::*;
use mailsrv::core::Error;
use mailsrv::core::config::Config;
use mailsrv::core::context::Context;
use mailsrv::core::dns::answer::DnssecState;
use mailsrv::core::dns::discover::SrvState;
use mailsrv::core::service::Service;
use mailsrv::core::verdict::Verdict;
use mailsrv::core::verdict::authenticity::{AuthRequest, Evidence};

const T_SRV: u16 = 33;
const T_A: u16 = 1;
const T_DS: u16 = 43;
const T_DNSKEY: u16 = 48;

// ------------------------------------------------------------------ helpers

struct Setup<'a> {
    /// Empty: the nameservers of `resolv_conf` (the system configuration), followed.
    nameservers: Vec<String>,
    resolv_conf: Option<PathBuf>,
    fallback: Vec<String>,
    negative_anchors: &'a [&'a str],
    require_secure: bool,
    timeout_ms: u64,
    ds_anchor: bool,
}

impl Setup<'_> {
    fn ns(addr: SocketAddr) -> Self {
        Setup {
            nameservers: vec![addr.to_string()],
            resolv_conf: None,
            fallback: vec![],
            negative_anchors: &[],
            require_secure: false,
            timeout_ms: 5000,
            ds_anchor: false,
        }
    }

    fn context(&self) -> Context {
        let mut cfg = Config::default();
        for ns in &self.nameservers {
            cfg.add_nameserver(ns).unwrap();
        }
        if let Some(p) = &self.resolv_conf {
            cfg.resolv_conf = p.clone();
        }
        for ns in &self.fallback {
            cfg.add_fallback_nameserver(ns).unwrap();
        }
        for z in self.negative_anchors {
            cfg.add_negative_trust_anchor(z).unwrap();
        }
        let anchor = if self.ds_anchor {
            "MAILSRV_TEST_ANCHOR_DS"
        } else {
            "MAILSRV_TEST_ANCHOR"
        };
        cfg.trust_anchor_file = Some(PathBuf::from(env(anchor)));
        cfg.ca_file = Some(PathBuf::from(env("MAILSRV_TEST_CA")));
        cfg.set_timeout(Duration::from_millis(self.timeout_ms))
            .unwrap();
        cfg.rng_seed = Some(1);
        Context::new(cfg).expect("context")
    }
}

/// The IMAPS answer of one discovery: (state, dnssec, error, endpoints with addresses, took).
struct Found {
    state: SrvState,
    dnssec: Option<DnssecState>,
    error: Option<Error>,
    endpoints: usize,
    addressed: usize,
    diagnostics: Vec<String>,
    took: Duration,
}

fn imaps(setup: &Setup, domain: &str) -> Found {
    imaps_on(&setup.context(), domain, setup.require_secure)
}

/// [`imaps`] on a given context (several discoveries on one context).
fn imaps_on(ctx: &Context, domain: &str, require_secure: bool) -> Found {
    let t0 = Instant::now();
    let d = ctx
        .discover(domain, &[Service::Imaps], require_secure)
        .expect("discover");
    let took = t0.elapsed();
    let s = d.get(Service::Imaps).expect("imaps asked").clone();
    Found {
        state: s.state,
        dnssec: s.dnssec,
        error: s.error,
        endpoints: s.endpoints.len(),
        addressed: s
            .endpoints
            .iter()
            .filter(|e| !e.addresses.is_empty())
            .count(),
        diagnostics: s.diagnostics,
        took,
    }
}

/// Found with addresses, in `state`.
fn assert_found(f: &Found, state: DnssecState) {
    assert_eq!(
        (f.state, f.dnssec),
        (SrvState::Found, Some(state)),
        "error {:?}, notes {:?}",
        f.error,
        f.diagnostics
    );
    assert!(
        f.endpoints >= 1 && f.addressed == f.endpoints,
        "{}",
        f.endpoints
    );
}

/// Discovery through a roadblock: the endpoints as a non-validating client sees them, state
/// UNAVAILABLE with the reason; REQUIRE_SECURE refuses it; signed and unsigned alike.
fn roadblock_is_unavailable_not_bogus(p: &Proxy, reason: &str) {
    for domain in ["example.com", "insecure.test"] {
        let f = imaps(&Setup::ns(p.addr), domain);
        assert_found(&f, DnssecState::Unavailable);
        assert!(
            f.diagnostics
                .iter()
                .any(|d| d.contains("DNSSEC is unavailable") && d.contains(reason)),
            "{domain}: {:?}",
            f.diagnostics
        );
    }
    let strict = Setup {
        require_secure: true,
        ..Setup::ns(p.addr)
    };
    let f = imaps(&strict, "example.com");
    assert_eq!(f.state, SrvState::LookupFailed);
    assert!(
        matches!(f.error, Some(Error::NoSecureAnswer(_))),
        "{:?}",
        f.error
    );
}

/// verify of the probe-ready example.com (SRV-ID certificate) through `ns`: AUTHENTIC by
/// the probe when DNSSEC cannot help.
fn verify_by_probe(ns: SocketAddr, expect_dnssec: DnssecState) {
    let ctx = Setup::ns(ns).context();
    let a = ctx
        .verify_srv_authenticity(AuthRequest::new(
            "example.com",
            Service::Imaps,
            "mail.example.net",
            port("IMAPS"),
        ))
        .expect("verify");
    assert_eq!(a.verdict, Verdict::Authentic, "{}", a.detail);
    assert_eq!(a.srv_dnssec, Some(expect_dnssec), "{}", a.detail);
    if expect_dnssec != DnssecState::Secure {
        assert_eq!(a.evidence, Some(Evidence::ProbeSrvId), "{}", a.detail);
    }
}

fn knot() -> SocketAddr {
    env("MAILSRV_TEST_NS").parse().unwrap()
}

// ------------------------------------------------------------------ scripted forwarders

#[test]
fn rfc8027_stripped_signatures_are_unavailable_and_probe_decides() {
    let p = Proxy::start(vec![rule("*", None, Action::StripDnssec)]);
    roadblock_is_unavailable_not_bogus(&p, "strips DNSSEC signatures");
    verify_by_probe(p.addr, DnssecState::Unavailable);
}

#[test]
fn rfc6891_formerr_on_edns_is_retried_without_edns() {
    let p = Proxy::start(vec![rule("*", None, Action::FormErrOnEdns)]);
    roadblock_is_unavailable_not_bogus(&p, "rejects EDNS0");
    assert!(p.hits(0) > 0);
}

#[test]
fn rfc8027_servfail_on_dnskey_and_ds_is_unavailable() {
    let p = Proxy::start(vec![
        rule("*", Some(T_DNSKEY), Action::ServFail),
        rule("*", Some(T_DS), Action::ServFail),
    ]);
    roadblock_is_unavailable_not_bogus(&p, "answers root DNSKEY queries with");
}

/// The words every TC=1-without-TCP reason carries (docs/SECURITY.md).
const NO_TCP: &str = "does not fit in a UDP datagram (TC=1) and TCP to the nameserver";

#[test]
fn tc_without_tcp_is_unavailable_not_failed() {
    // A path that loses large datagrams and has no TCP: every signed answer the chain needs
    // is truncated, the plain ones fit. RFC 8027 §3's TCP test, made when TC=1 needs it,
    // names the reason: UNAVAILABLE because TCP is not available, not a silent failure.
    let p = Proxy::start_opts(
        vec![rule("*", None, Action::TruncateOver(200))],
        knot(),
        false,
    );
    let f = imaps(&Setup::ns(p.addr), "example.com");
    assert_found(&f, DnssecState::Unavailable);
    let why = format!("{NO_TCP} {} is not available", p.addr);
    assert!(
        f.diagnostics
            .iter()
            .any(|d| d.contains("DNSSEC is unavailable") && d.contains(&why)),
        "{:?}",
        f.diagnostics
    );
}

#[test]
fn tc_without_tcp_for_a_plain_answer_is_a_clear_error() {
    // Even the unsigned SRV answer does not fit: nothing can be found through this path,
    // and the error says why (LOOKUP_FAILED, never "no record").
    let p = Proxy::start_opts(
        vec![rule("*", None, Action::TruncateOver(60))],
        knot(),
        false,
    );
    let f = imaps(&Setup::ns(p.addr), "example.com");
    assert_eq!(f.state, SrvState::LookupFailed, "{:?}", f.diagnostics);
    let e = f.error.expect("the reason").to_string();
    assert!(e.contains(NO_TCP) && e.contains("is not available"), "{e}");
    assert!(f.took < Duration::from_secs(2), "{:?}", f.took);
}

#[test]
fn tc_with_tcp_costs_no_round_of_its_own_and_stays_secure() {
    // The capable path: TC=1 is followed over TCP (the TCP test passes by being used), so
    // the answers validate and no roadblock is reported.
    let p = Proxy::start(vec![rule("*", None, Action::TruncateOver(200))]);
    let f = imaps(&Setup::ns(p.addr), "example.com");
    assert_found(&f, DnssecState::Secure);
    assert!(
        !f.diagnostics.iter().any(|d| d.contains("unavailable")),
        "{:?}",
        f.diagnostics
    );
    assert!(p.stats.tcp.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[test]
fn dropped_cd_queries_do_not_matter_validation_never_sets_cd() {
    let p = Proxy::start(vec![rule("*", None, Action::DropCd)]);
    let f = imaps(&Setup::ns(p.addr), "example.com");
    assert_found(&f, DnssecState::Secure);
    assert!(f.took < Duration::from_secs(2), "{:?}", f.took);
}

#[test]
fn t_auth_03_bogus_on_a_capable_path_stays_bogus() {
    // The path carries DNSSEC (signed answers for the chain), so a failing answer is an
    // attack or a broken zone, never downgraded.
    let p = Proxy::start(vec![rule("*", None, Action::DropCd)]);
    let f = imaps(&Setup::ns(p.addr), "bogus.test");
    assert_eq!(
        (f.state, f.dnssec),
        (SrvState::Bogus, Some(DnssecState::Bogus))
    );
    assert_eq!(f.endpoints, 0);
}

#[test]
fn next_nameserver_after_a_dead_one() {
    let setup = Setup {
        nameservers: vec![env("MAILSRV_TEST_DEAD_NS"), knot().to_string()],
        ..Setup::ns(knot())
    };
    let f = imaps(&setup, "example.com");
    assert_found(&f, DnssecState::Secure);
    assert!(f.took < Duration::from_millis(4500), "{:?}", f.took);
}

#[test]
fn fallback_resolver_validates_when_the_system_one_is_a_roadblock() {
    let strip = Proxy::start(vec![rule("*", None, Action::StripDnssec)]);
    let clean = Proxy::start(vec![]);
    let setup = Setup {
        fallback: vec![clean.addr.to_string()],
        ..Setup::ns(strip.addr)
    };
    let f = imaps(&setup, "example.com");
    assert_found(&f, DnssecState::Secure);
    assert!(clean.stats.udp.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

// ------------------------------------------------------------------ negative trust anchors

fn srv_rdata(port: u16, target: &str) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1];
    v.extend(port.to_be_bytes());
    for l in target.split('.') {
        v.push(l.len() as u8);
        v.extend(l.as_bytes());
    }
    v.push(0);
    v
}

/// A split-horizon resolver: it answers for `zone` itself (unsigned), everything else
/// comes from the public (testbed) tree, which proves `zone` does not exist or is signed.
fn split_horizon(zone: &str) -> Proxy {
    let owner = format!("_imaps._tcp.{zone}");
    let target = format!("mail.{zone}");
    let t2 = target.clone();
    Proxy::start(vec![
        rule(
            &owner,
            Some(T_SRV),
            Action::Answer(std::sync::Arc::new(move |n: &str| {
                vec![Rr(n.to_string(), T_SRV, srv_rdata(993, &t2))]
            })),
        ),
        rule(
            &target,
            Some(T_A),
            Action::Answer(std::sync::Arc::new(|n: &str| {
                vec![Rr(n.to_string(), T_A, vec![127, 0, 0, 1])]
            })),
        ),
    ])
}

#[test]
fn rfc7646_private_zones_resolve_without_validation() {
    // .internal is a built-in negative trust anchor: not validated against the root.
    let p = split_horizon("corp.internal");
    let f = imaps(&Setup::ns(p.addr), "corp.internal");
    assert_found(&f, DnssecState::Insecure);
}

#[test]
fn rfc7646_added_negative_trust_anchor_for_a_split_horizon_domain() {
    // mail.example.com does not exist in the signed example.com: without the anchor the
    // internal answer fails validation, with it the internal servers are found.
    let p = split_horizon("intra.example.com");
    let f = imaps(&Setup::ns(p.addr), "intra.example.com");
    assert_ne!(f.state, SrvState::Found, "{:?}", f.dnssec);
    let setup = Setup {
        negative_anchors: &["intra.example.com"],
        ..Setup::ns(p.addr)
    };
    let f = imaps(&setup, "intra.example.com");
    assert_found(&f, DnssecState::Insecure);
}

// ------------------------------------------------------------------ the system configuration changes

/// An address of this testbed's own loopback range (the /24 of MAILSRV_TEST_NS) with the
/// last octet `last`. resolv.conf names nameservers without a port, so the forwarders of
/// these tests listen on port 53 there (the tests run as root, like the testbed).
fn testbed_ip(last: u8) -> IpAddr {
    match knot().ip() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], last))
        }
        other => panic!("MAILSRV_TEST_NS is not IPv4: {other}"),
    }
}

/// A context that follows the resolv.conf at `path` (no nameserver configured).
fn system_context(path: &Path) -> Context {
    Setup {
        nameservers: vec![],
        resolv_conf: Some(path.to_path_buf()),
        ..Setup::ns(knot())
    }
    .context()
}

#[test]
fn a_running_context_follows_resolv_conf_to_new_nameservers() {
    // Issue 14: "refreshed ... when the configured nameservers change". The laptop moves:
    // its DHCP client rewrites resolv.conf while the mail client's context runs.
    let dir = scratch("resolvconf-move");
    let path = dir.join("resolv.conf");
    let dead: SocketAddr = env("MAILSRV_TEST_DEAD_NS").parse().unwrap();
    std::fs::write(
        &path,
        format!("nameserver {}\noptions timeout:1 attempts:1\n", dead.ip()),
    )
    .unwrap();
    let live = Proxy::start_at(vec![], knot(), true, SocketAddr::new(testbed_ip(53), 53));
    let ctx = system_context(&path);
    let f = imaps_on(&ctx, "example.com", false);
    assert_eq!(f.state, SrvState::LookupFailed, "{:?}", f.dnssec);
    assert!(f.error.is_some());
    assert!(live.queries().is_empty(), "the new server is not known yet");

    std::fs::write(&path, format!("nameserver {}\n", testbed_ip(53))).unwrap();
    let f = imaps_on(&ctx, "example.com", false);
    assert_found(&f, DnssecState::Secure);
    assert!(
        live.queries()
            .iter()
            .any(|(n, t)| n == "_imaps._tcp.example.com" && *t == T_SRV),
        "the second discovery asked the nameserver resolv.conf names now"
    );

    // An unchanged file keeps the resolver and its caches: a repeat sends nothing.
    let asked = live.queries().len();
    let f = imaps_on(&ctx, "example.com", false);
    assert_found(&f, DnssecState::Secure);
    assert_eq!(live.queries().len(), asked);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rewritten_resolv_conf_drops_the_capability_verdicts() {
    // The same router address on a new network (192.168.1.1 at home and in the hotel):
    // the file is rewritten with the same line, and what was learnt about the old path
    // (a roadblock, answers fetched without DNSSEC) must not outlive the move.
    let dir = scratch("resolvconf-same");
    let path = dir.join("resolv.conf");
    let at = SocketAddr::new(testbed_ip(54), 53);
    let line = format!("nameserver {}\n", at.ip());
    std::fs::write(&path, &line).unwrap();
    let strip = Proxy::start_at(vec![rule("*", None, Action::StripDnssec)], knot(), true, at);
    let ctx = system_context(&path);
    let f = imaps_on(&ctx, "example.com", false);
    assert_found(&f, DnssecState::Unavailable);
    drop(strip);

    let clean = Proxy::start_at(vec![], knot(), true, at);
    std::fs::write(&path, &line).unwrap();
    let f = imaps_on(&ctx, "example.com", false);
    assert_found(&f, DnssecState::Secure);
    assert!(!clean.queries().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------ real daemons

/// A daemon started by a test, stopped by its PID when dropped.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free loopback UDP port (the daemons take TCP on the same one).
fn free_port() -> u16 {
    StdUdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mailsrv-{name}-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until the daemon answers a plain query for the root SOA.
fn wait_ready(d: &mut Daemon) {
    let t0 = Instant::now();
    let q = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1, // . SOA IN, RD
    ];
    let sock = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 1500];
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(status)) = d.child.try_wait() {
            panic!("daemon exited early: {status}");
        }
        let _ = sock.send_to(&q, d.addr);
        if sock.recv(&mut buf).is_ok() {
            return;
        }
    }
    panic!("daemon on {} not ready after 10 s", d.addr);
}

/// dnsmasq as a home router in front of `up`, optionally with `--proxy-dnssec`.
fn dnsmasq(up: SocketAddr, proxy_dnssec: bool) -> Daemon {
    let port = free_port();
    let dir = scratch("dnsmasq");
    let mut cmd = Command::new("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--log-facility=-",
        "--user=root",
        "--pid-file=",
    ])
    .arg(format!("--port={port}"))
    .arg(format!("--server={}#{}", up.ip(), up.port()))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if proxy_dnssec {
        cmd.arg("--proxy-dnssec");
    }
    let mut d = Daemon {
        child: cmd
            .spawn()
            .expect("dnsmasq (testbed/install.sh installs dnsmasq-base)"),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir,
    };
    wait_ready(&mut d);
    d
}

/// unbound with validation off (`module-config: "iterator"`), forwarding to knotd.
fn unbound() -> Daemon {
    let port = free_port();
    let dir = scratch("unbound");
    let up = knot();
    let conf = dir.join("unbound.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  \
             do-not-query-localhost: no\n  module-config: \"iterator\"\n  username: \"\"\n  \
             chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"\"\n  use-syslog: no\n  \
             logfile: \"\"\n  verbosity: 0\n  local-zone: \"test.\" nodefault\n  \
             qname-minimisation: no\n\
             forward-zone:\n  name: \".\"\n  forward-addr: {ip}@{p}\n",
            d = dir.display(),
            ip = up.ip(),
            p = up.port()
        ),
    )
    .unwrap();
    let mut d = Daemon {
        child: Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound (testbed/install.sh installs it)"),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir,
    };
    wait_ready(&mut d);
    d
}

#[test]
fn real_dnsmasq_home_router_passes_dnssec_through() {
    // Measured with Debian's dnsmasq 2.90: RRSIGs, NSEC and DS pass through with and
    // without --proxy-dnssec, so validation works through it (SECURE, INSECURE, BOGUS).
    for proxy_dnssec in [false, true] {
        let d = dnsmasq(knot(), proxy_dnssec);
        let f = imaps(&Setup::ns(d.addr), "example.com");
        assert_found(&f, DnssecState::Secure);
        let f = imaps(&Setup::ns(d.addr), "insecure.test");
        assert_found(&f, DnssecState::Insecure);
        let f = imaps(&Setup::ns(d.addr), "bogus.test");
        assert_eq!(f.state, SrvState::Bogus, "--proxy-dnssec {proxy_dnssec}");
    }
}

#[test]
fn real_dnsmasq_behind_a_stripping_path_is_unavailable() {
    // The home router's upstream strips DNSSEC (an old CPE in front of dnsmasq).
    let strip = Proxy::start(vec![rule("*", None, Action::StripDnssec)]);
    let d = dnsmasq(strip.addr, false);
    let f = imaps(&Setup::ns(d.addr), "example.com");
    assert_found(&f, DnssecState::Unavailable);
    verify_by_probe(d.addr, DnssecState::Unavailable);
}

#[test]
fn real_unbound_without_validation_stays_secure_and_two_round_trips() {
    let u = unbound();
    // 150 ms added to every exchange between mailsrv and unbound: 2 RTT is 300 ms, 3 is 450.
    let slow = Proxy::start_opts(
        vec![rule("*", None, Action::Delay(Duration::from_millis(150)))],
        u.addr,
        true,
    );
    for ds_anchor in [false, true] {
        // Warm unbound's own cache first, so only mailsrv's rounds are measured.
        let _ = imaps(&Setup::ns(u.addr), "example.com");
        let setup = Setup {
            ds_anchor,
            ..Setup::ns(slow.addr)
        };
        let f = imaps(&setup, "example.com");
        assert_found(&f, DnssecState::Secure);
        assert!(
            f.took >= Duration::from_millis(300) && f.took < Duration::from_millis(430),
            "DS anchor {ds_anchor}: cold discovery took {:?}, not 2 RTT",
            f.took
        );
    }
    let f = imaps(&Setup::ns(u.addr), "bogus.test");
    assert_eq!(f.state, SrvState::Bogus);
    verify_by_probe(u.addr, DnssecState::Secure);
}

#[test]
fn unavailable_has_its_own_c_value_and_name() {
    use mailsrv::ffi::discovery::{mailsrv_dnssec, mailsrv_dnssec_name};
    assert_eq!(mailsrv_dnssec::Unavailable as u32, 5);
    assert_eq!(text(mailsrv_dnssec_name(5)), "unavailable");
    assert_eq!(DnssecState::Unavailable.name(), "unavailable");
}
