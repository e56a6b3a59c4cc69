//! The per-context answer cache and the validated-key cache (issue 18), against the testbed's
//! knotd through the counting DNS proxy (tests/common/dns_proxy.rs): a refresh within the TTL
//! sends no query and keeps the DNSSEC state; a change is seen once the TTL has run out;
//! negative answers are kept for their SOA minimum; BOGUS is never kept.
//!
//! Run with `testbed/run.sh cargo test --features test-hooks --test answer_cache`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::dns_proxy::*;
use common::*;
use mailsrv::core::config::Config;
use mailsrv::core::context::Context;
use mailsrv::core::dns::answer::DnssecState;
use mailsrv::core::dns::discover::{Discovery, SrvState};
use mailsrv::core::service::Service;

const SRV: u16 = 33;

fn context(proxy: &Proxy) -> Context {
    let mut cfg = Config::default();
    cfg.add_nameserver(&proxy.addr.to_string()).unwrap();
    cfg.trust_anchor_file = Some(PathBuf::from(env("MAILSRV_TEST_ANCHOR")));
    cfg.ca_file = Some(PathBuf::from(env("MAILSRV_TEST_CA")));
    cfg.set_timeout(Duration::from_secs(10)).unwrap();
    cfg.rng_seed = Some(1);
    Context::new(cfg).expect("context")
}

fn discover(ctx: &Context, domain: &str, services: &[Service]) -> Discovery {
    ctx.discover(domain, services, false).expect("discover")
}

/// What a client compares between two discoveries: per service, the state, the DNSSEC state
/// and the endpoints with their addresses and the addresses' state.
type Summary = Vec<(
    SrvState,
    Option<DnssecState>,
    Vec<(String, u16, Vec<std::net::IpAddr>, Option<DnssecState>)>,
)>;

fn summary(d: &Discovery) -> Summary {
    d.services
        .iter()
        .map(|s| {
            (
                s.state,
                s.dnssec,
                s.endpoints
                    .iter()
                    .map(|e| {
                        (
                            e.target.clone(),
                            e.port,
                            e.addresses.clone(),
                            e.address_dnssec,
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn refresh_within_the_ttl_sends_nothing_and_keeps_the_dnssec_state() {
    let proxy = Proxy::start(vec![]);
    let ctx = context(&proxy);
    for domain in ["example.com", "insecure.test"] {
        proxy.clear_queries();
        let cold = discover(&ctx, domain, &Service::ALL);
        assert!(
            !proxy.queries().is_empty(),
            "{domain}: the cold discovery asks"
        );
        proxy.clear_queries();
        let warm = discover(&ctx, domain, &Service::ALL);
        assert_eq!(
            proxy.queries(),
            Vec::<(String, u16)>::new(),
            "{domain}: a refresh within the TTL costs no query"
        );
        assert_eq!(summary(&warm), summary(&cold), "{domain}: same answer");
        let want = if domain == "example.com" {
            DnssecState::Secure
        } else {
            DnssecState::Insecure
        };
        let imaps = warm.get(Service::Imaps).unwrap();
        assert_eq!(imaps.state, SrvState::Found);
        assert_eq!(imaps.dnssec, Some(want), "{domain}: the state is kept");
        assert_eq!(
            imaps.endpoints[0].address_dnssec,
            Some(DnssecState::Secure),
            "{domain}: the targets' state is kept"
        );
        for (c, w) in cold.services.iter().zip(&warm.services) {
            assert!(w.ttl <= c.ttl, "{domain}: TTLs count down, never up");
        }
    }
}

#[test]
fn negative_answer_kept_for_its_soa_minimum_with_its_proof() {
    let proxy = Proxy::start(vec![]);
    let ctx = context(&proxy);
    let cold = discover(&ctx, "nosrv.example.com", &[Service::Imaps]);
    let c = cold.get(Service::Imaps).unwrap();
    assert_eq!(c.state, SrvState::NoRecord);
    assert_eq!(c.dnssec, Some(DnssecState::Secure), "NSEC-proven");
    // The testbed's SOA: TTL 300, MINIMUM 300 (testbed/dns.sh, zone_head).
    assert!(c.ttl > 0 && c.ttl <= 300, "negative TTL {}", c.ttl);
    proxy.clear_queries();
    let warm = discover(&ctx, "nosrv.example.com", &[Service::Imaps]);
    assert_eq!(proxy.queries(), Vec::<(String, u16)>::new(), "kept");
    let w = warm.get(Service::Imaps).unwrap();
    assert_eq!(w.state, SrvState::NoRecord, "still no record, never found");
    assert_eq!(w.dnssec, Some(DnssecState::Secure), "proof state kept");
    assert!(w.ttl <= c.ttl);
}

#[test]
fn bogus_is_never_kept() {
    let proxy = Proxy::start(vec![]);
    let ctx = context(&proxy);
    for round in 0..2 {
        proxy.clear_queries();
        let d = discover(&ctx, "bogus.test", &[Service::Imaps]);
        let s = d.get(Service::Imaps).unwrap();
        assert_eq!(s.state, SrvState::Bogus, "round {round}");
        assert_eq!(s.dnssec, Some(DnssecState::Bogus), "round {round}");
        assert!(s.endpoints.is_empty());
        assert!(
            proxy
                .queries()
                .contains(&("_imaps._tcp.bogus.test".into(), SRV)),
            "round {round}: a bogus answer is asked again, never served from the cache: {:?}",
            proxy.queries()
        );
    }
}

/// Puts `_imaps._tcp.shortttl.example.com` (TTL 3) back as the testbed has it, even when the
/// test fails.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        set_srv(&format!("0 1 {} mail.example.net.", port("IMAPS")));
    }
}

fn set_srv(rdata: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/dns.sh");
    let st = std::process::Command::new("bash")
        .args([
            script,
            "set-srv",
            &env("MAILSRV_TESTBED_DIR"),
            "example.com",
            "_imaps._tcp.shortttl",
            rdata,
        ])
        .status()
        .unwrap();
    assert!(st.success(), "set-srv {rdata}");
}

fn shortttl_target(ctx: &Context) -> (String, u32, Option<DnssecState>) {
    let d = discover(ctx, "shortttl.example.com", &[Service::Imaps]);
    let s = d.get(Service::Imaps).unwrap().clone();
    assert_eq!(s.state, SrvState::Found, "{:?}", s.error);
    (s.endpoints[0].target.clone(), s.ttl, s.dnssec)
}

#[test]
fn a_change_is_seen_once_the_ttl_has_run_out() {
    let proxy = Proxy::start(vec![]);
    let ctx = context(&proxy);
    let t0 = Instant::now();
    let (target, ttl, dnssec) = shortttl_target(&ctx);
    assert_eq!(target, "mail.example.net");
    assert_eq!(dnssec, Some(DnssecState::Secure));
    assert!(ttl <= 3, "TTL {ttl}");
    let _restore = Restore;
    set_srv(&format!("0 1 {} a.example.net.", port("IMAPS")));
    // Past the TTL of the first answer (counted from before it was asked).
    let expiry = t0 + Duration::from_millis(3100);
    if let Some(wait) = expiry.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    proxy.clear_queries();
    let (target, _, dnssec) = shortttl_target(&ctx);
    assert!(
        proxy
            .queries()
            .contains(&("_imaps._tcp.shortttl.example.com".into(), SRV)),
        "asked again after the TTL"
    );
    assert_eq!(target, "a.example.net", "the change is seen after the TTL");
    assert_eq!(dnssec, Some(DnssecState::Secure));
    // And the new answer is itself kept, for its own TTL.
    proxy.clear_queries();
    let (target, _, _) = shortttl_target(&ctx);
    let asked = proxy.queries();
    assert_eq!(target, "a.example.net");
    assert!(
        asked.is_empty() || Instant::now() > expiry + Duration::from_secs(3),
        "within the new TTL nothing is asked: {asked:?}"
    );
}
