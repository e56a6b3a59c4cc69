//! DS/DNSKEY only for zone cuts (issue 18), counted through the DNS proxy
//! (tests/common/dns_proxy.rs): a cold six-service discovery no longer asks the keys of a
//! target host name (`mail.example.net`, not a zone cut) nor the NS of public suffixes
//! (`com`, `net`, `test`), and finds the same answers with the same DNSSEC states.
//!
//! Run with `testbed/run.sh cargo test --features test-hooks --test zone_cuts`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::dns_proxy::*;
use common::*;
use mailsrv::core::config::Config;
use mailsrv::core::context::Context;
use mailsrv::core::dns::answer::DnssecState;
use mailsrv::core::dns::discover::SrvState;
use mailsrv::core::service::Service;

const NS: u16 = 2;
const DS: u16 = 43;
const DNSKEY: u16 = 48;

fn context(proxy: &Proxy) -> Context {
    let mut cfg = Config::default();
    cfg.add_nameserver(&proxy.addr.to_string()).unwrap();
    cfg.trust_anchor_file = Some(PathBuf::from(env("MAILSRV_TEST_ANCHOR")));
    cfg.ca_file = Some(PathBuf::from(env("MAILSRV_TEST_CA")));
    cfg.set_timeout(Duration::from_secs(10)).unwrap();
    cfg.rng_seed = Some(1);
    Context::new(cfg).expect("context")
}

fn cold(domain: &str, state: DnssecState) -> Vec<(String, u16)> {
    let proxy = Proxy::start(vec![]);
    let ctx = context(&proxy);
    let d = ctx.discover(domain, &Service::ALL, false).unwrap();
    for svc in [Service::Imaps, Service::Submissions] {
        let s = d.get(svc).unwrap();
        assert_eq!(s.state, SrvState::Found, "{domain} {svc:?}: {:?}", s.error);
        assert_eq!(s.dnssec, Some(state), "{domain} {svc:?}");
        let e = &s.endpoints[0];
        assert_eq!(e.target, "mail.example.net");
        assert!(!e.addresses.is_empty(), "{domain}: addresses found");
        assert_eq!(e.address_dnssec, Some(DnssecState::Secure), "{domain}");
    }
    let q = proxy.queries();
    eprintln!("{domain}: {} queries cold", q.len());
    for (name, rtype) in [
        ("mail.example.net", DS),
        ("mail.example.net", DNSKEY),
        ("com", NS),
        ("net", NS),
        ("test", NS),
    ] {
        assert!(
            !q.contains(&(name.to_string(), rtype)),
            "{domain}: {name} {rtype} is not a zone cut's question: {q:?}"
        );
    }
    q
}

#[test]
fn signed_domain_asks_keys_of_zone_cuts_only() {
    let q = cold("example.com", DnssecState::Secure);
    // 31 before issue 18 (docs/BENCHMARKS.md); UDP retries on a loaded machine may add some.
    assert!(q.len() <= 27, "{} queries: {q:?}", q.len());
}

#[test]
fn unsigned_domain_asks_keys_of_zone_cuts_only() {
    let q = cold("insecure.test", DnssecState::Insecure);
    assert!(
        q.contains(&("insecure.test".to_string(), NS)),
        "the insecurity proof's walk still finds the cut: {q:?}"
    );
    assert!(q.len() <= 27, "{} queries: {q:?}", q.len());
}
