//! Account discovery beyond SRV (issue 16) through the C entry points, against the testbed:
//! knotd (the ac.test zone, MX records signed and unsigned), dovecot and postfix, and nginx
//! (testbed/web.sh) serving autoconfig documents, redirects, hostile XML and an ISPDB.
//! Every source, every evidence kind, the probe and DANE on autoconfig hosts, ranking,
//! cancellation, timeouts and bad input; blocking and async in both dispatch modes.

mod common;

use std::net::TcpListener;
use std::os::raw::{c_char, c_void};
use std::ptr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use mailsrv::ffi::account::*;
use mailsrv::ffi::authenticity::*;
use mailsrv::ffi::autodiscover::*;
use mailsrv::ffi::binding::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::request::mailsrv_request_id;
use mailsrv::ffi::status::mailsrv_status;
use mailsrv::ffi::stream::*;

const AUTHENTIC: u32 = mailsrv_verdict::Authentic as u32;
const UNVERIFIED: u32 = mailsrv_verdict::Unverified as u32;
const REJECTED: u32 = mailsrv_verdict::Rejected as u32;
const FLAG_NO_PROBE: u32 = 8;

/// The slow-address tests bind the same socket: one at a time.
static SLOW: Mutex<()> = Mutex::new(());

fn ctx_with(dispatch: u32, timeout_ms: u32, fetch_ms: u32) -> *mut mailsrv_ctx {
    let cfg = testbed_config(dispatch, timeout_ms);
    unsafe {
        assert_eq!(
            mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_config_set_ispdb_url(cfg, c(&env("MAILSRV_TEST_ISPDB")).as_ptr()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_config_set_fetch_timeouts_ms(cfg, fetch_ms, fetch_ms),
            mailsrv_status::Ok
        );
    }
    ctx_from(cfg)
}

fn ctx() -> *mut mailsrv_ctx {
    ctx_with(0, 10_000, 0)
}

/// An owned result; freed on drop, with its context.
struct Account {
    a: *mut mailsrv_account,
    ctx: *mut mailsrv_ctx,
}

impl Drop for Account {
    fn drop(&mut self) {
        unsafe {
            mailsrv_account_free(self.a);
            mailsrv_ctx_free(self.ctx);
        }
    }
}

/// One candidate, read through the getters.
#[derive(Debug)]
struct Cand {
    source: u32,
    protocol: String,
    host: String,
    port: u16,
    security: String,
    service: u32,
    username: Option<String>,
    verdict: u32,
    evidence: u32,
    detail: String,
    binding: Option<String>,
}

fn opt(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| text(p))
}

impl Account {
    fn source(&self) -> u32 {
        unsafe { mailsrv_account_source(self.a) }
    }
    fn state(&self, s: mailsrv_source) -> u32 {
        unsafe { mailsrv_account_source_state(self.a, s as u32) }
    }
    fn status(&self, s: mailsrv_source) -> mailsrv_status {
        unsafe { mailsrv_account_source_status(self.a, s as u32) }
    }
    fn detail(&self, s: mailsrv_source) -> String {
        text(unsafe { mailsrv_account_source_detail(self.a, s as u32) })
    }
    fn preferred(&self, purpose: u32) -> Option<usize> {
        let mut i = usize::MAX;
        let p = unsafe { mailsrv_account_preferred(self.a, purpose, &mut i) };
        (!p.is_null()).then_some(i)
    }
    fn binding(&self, i: usize) -> *const mailsrv_binding {
        unsafe {
            let c = mailsrv_account_candidate_get(self.a, i);
            mailsrv_authenticity_binding(mailsrv_candidate_verdict(c))
        }
    }
    fn candidates(&self) -> Vec<Cand> {
        let n = unsafe { mailsrv_account_candidates_len(self.a) };
        (0..n)
            .map(|i| unsafe {
                let c = mailsrv_account_candidate_get(self.a, i);
                assert!(!c.is_null());
                let v = mailsrv_candidate_verdict(c);
                assert!(
                    !v.is_null(),
                    "verdict status {:?}",
                    mailsrv_candidate_verdict_status(c)
                );
                let b = mailsrv_authenticity_binding(v);
                Cand {
                    source: mailsrv_candidate_source(c),
                    protocol: text(mailsrv_candidate_protocol(c)),
                    host: text(mailsrv_candidate_host(c)),
                    port: mailsrv_candidate_port(c),
                    security: text(mailsrv_candidate_security(c)),
                    service: mailsrv_candidate_service(c),
                    username: opt(mailsrv_candidate_username(c)),
                    verdict: mailsrv_authenticity_verdict(v),
                    evidence: mailsrv_authenticity_evidence(v),
                    detail: text(mailsrv_authenticity_detail(v)),
                    binding: (!b.is_null()).then(|| text(mailsrv_binding_text(b))),
                }
            })
            .collect()
    }
}

fn discover_on(ctx: *mut mailsrv_ctx, address: &str, sources: u32, flags: u32) -> Account {
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe {
        mailsrv_account_discover(
            ctx,
            c(address).as_ptr(),
            sources,
            flags,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    assert_eq!(st, mailsrv_status::Ok, "{address}: {}", text(err.as_ptr()));
    Account { a: out, ctx }
}

fn discover(address: &str, sources: u32) -> Account {
    discover_on(ctx(), address, sources, 0)
}

const EV_DNSSEC: u32 = mailsrv_evidence::Dnssec as u32;
const EV_DANE: u32 = mailsrv_evidence::Dane as u32;
const EV_PROBE_SRV_ID: u32 = mailsrv_evidence::ProbeSrvId as u32;
const EV_HTTPS_DOMAIN: u32 = mailsrv_evidence::HttpsDomain as u32;
const EV_ISPDB: u32 = mailsrv_evidence::Ispdb as u32;
const EV_NONE: u32 = mailsrv_evidence::None as u32;
const FOUND: u32 = mailsrv_source_state::Found as u32;
const FAILED: u32 = mailsrv_source_state::Failed as u32;
const CANCELLED: u32 = mailsrv_source_state::Cancelled as u32;

#[test]
fn provider_autoconfig_only_is_authentic_by_https_domain_and_the_binding_connects() {
    let a = discover("joe@ac.test", 0);
    assert_eq!(a.source(), mailsrv_source::Autoconfig as u32);
    let cands = a.candidates();
    assert_eq!(cands.len(), 5, "{cands:#?}");
    let imaps = port("IMAPS");
    assert_eq!(
        (
            cands[0].protocol.as_str(),
            cands[0].host.as_str(),
            cands[0].port,
            cands[0].security.as_str()
        ),
        ("imap", "mail.example.net", imaps, "ssl")
    );
    assert_eq!(cands[0].service, 1);
    assert_eq!(cands[1].security, "starttls");
    assert_eq!(cands[4].username.as_deref(), Some("joe"));
    assert_eq!(cands[0].username.as_deref(), Some("joe@ac.test"));
    for c in &cands {
        assert_eq!(c.source, mailsrv_source::Autoconfig as u32);
        assert_eq!(
            (c.verdict, c.evidence),
            (AUTHENTIC, EV_HTTPS_DOMAIN),
            "{c:?}"
        );
        let b = c.binding.as_deref().unwrap();
        assert!(
            b.contains("host=mail.example.net") && b.contains("sni=mail.example.net"),
            "{b}"
        );
    }
    assert_eq!(a.preferred(1), Some(0));
    assert_eq!(a.preferred(2), Some(3));
    // config-v1.2's oAuth2 element and the display name pass through
    unsafe {
        assert_eq!(text(mailsrv_account_oauth2(a.a, 1)), "auth.example.net");
        assert_eq!(
            text(mailsrv_account_oauth2(a.a, 4)),
            "https://auth.example.net/token"
        );
        assert!(mailsrv_account_oauth2(a.a, 9).is_null());
        assert_eq!(
            text(mailsrv_account_display_name(a.a)),
            "Test provider for ac.test"
        );
        assert_eq!(text(mailsrv_account_domain(a.a)), "ac.test");
    }
    // the lower-ranked sources failed (SRV: no record, ISPDB: 404) or were cancelled
    for s in [mailsrv_source::Srv, mailsrv_source::Ispdb] {
        assert!([FAILED, CANCELLED].contains(&a.state(s)));
    }
    // the login connection, exactly as the binding says
    let mut s = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe {
        mailsrv_connect_with_binding(a.ctx, a.binding(0), 0, &mut s, err.as_mut_ptr(), err.len())
    };
    assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
    unsafe { mailsrv_tls_stream_free(s) };
}

#[test]
fn well_known_document_is_taken_when_the_provider_url_does_not_exist() {
    let a = discover("joe@wk.ac.test", 0);
    assert_eq!(a.source(), mailsrv_source::AutoconfigWellknown as u32);
    assert_eq!(
        a.status(mailsrv_source::Autoconfig),
        mailsrv_status::Nxdomain
    );
    assert!(a.candidates().iter().all(|c| c.evidence == EV_HTTPS_DOMAIN));
}

#[test]
fn ispdb_only_domain_is_authentic_by_ispdb() {
    let a = discover("joe@ispdbonly.ac.test", 0);
    assert_eq!(a.source(), mailsrv_source::Ispdb as u32);
    let cands = a.candidates();
    assert_eq!(cands.len(), 5);
    assert!(
        cands
            .iter()
            .all(|c| (c.verdict, c.evidence) == (AUTHENTIC, EV_ISPDB)),
        "{cands:#?}"
    );
}

#[test]
fn signed_mx_covers_the_providers_hosts_only() {
    let a = discover("joe@mxs.example.com", 0);
    assert_eq!(a.source(), mailsrv_source::MxAutoconfig as u32);
    let cands = a.candidates();
    assert_eq!(cands.len(), 3, "{cands:#?}");
    assert_eq!(
        (cands[0].verdict, cands[0].evidence),
        (AUTHENTIC, EV_DNSSEC),
        "{:?}",
        cands[0]
    );
    assert!(
        cands[0].detail.contains("DNSSEC-signed MX"),
        "{}",
        cands[0].detail
    );
    // mail.example.test lies outside example.net: the probe (SNI mxs.example.com) fails
    assert_eq!(cands[1].host, "mail.example.test");
    assert_eq!(
        (cands[1].verdict, cands[1].evidence),
        (UNVERIFIED, EV_NONE),
        "{:?}",
        cands[1]
    );
    assert!(
        cands[1].detail.contains("outside example.net"),
        "{}",
        cands[1].detail
    );
    assert_eq!(
        (cands[2].protocol.as_str(), cands[2].verdict),
        ("smtp", AUTHENTIC)
    );
}

#[test]
fn unsigned_mx_and_plain_http_are_never_authentic() {
    let a = discover("joe@mxu.ac.test", 0);
    assert_eq!(a.source(), mailsrv_source::MxAutoconfig as u32);
    for c in a.candidates() {
        assert_eq!(c.verdict, UNVERIFIED, "{c:?}");
        assert!(c.detail.contains("not DNSSEC-signed"), "{}", c.detail);
    }
    let p = discover("joe@plain.ac.test", 0);
    assert_eq!(p.source(), mailsrv_source::AutoconfigHttp as u32);
    let cands = p.candidates();
    assert_eq!(cands.len(), 5);
    assert!(
        cands
            .iter()
            .all(|c| c.verdict == UNVERIFIED && c.detail.contains("plain HTTP")),
        "{cands:#?}"
    );
    // the plain-HTTP source left out (as a refresh must): nothing at all
    let all_but_http = 127 & !(mailsrv_source::AutoconfigHttp as u32);
    let n = discover("joe@plain.ac.test", all_but_http);
    assert_eq!(n.source(), 0);
    assert_eq!(n.state(mailsrv_source::AutoconfigHttp), 0);
    assert!(n.candidates().is_empty());
    assert_eq!(n.preferred(1), None);
}

#[test]
fn the_probe_applies_to_a_host_from_plain_http() {
    // hosted.test: its document comes over plain HTTP only; mail.example.net proves
    // _imaps.hosted.test to SNI hosted.test, so the probe makes it AUTHENTIC, bound to it
    let a = discover("joe@hosted.test", mailsrv_source::AutoconfigHttp as u32);
    let cands = a.candidates();
    assert_eq!(
        (cands[0].verdict, cands[0].evidence),
        (AUTHENTIC, EV_PROBE_SRV_ID),
        "{:?}",
        cands[0]
    );
    let b = cands[0].binding.as_deref().unwrap();
    assert!(
        b.contains("sni=hosted.test") && b.contains("identity=srv:imaps:hosted.test"),
        "{b}"
    );
    // without the probe: UNVERIFIED
    let n = discover_on(
        ctx(),
        "joe@hosted.test",
        mailsrv_source::AutoconfigHttp as u32,
        FLAG_NO_PROBE,
    );
    assert!(n.candidates().iter().all(|c| c.verdict == UNVERIFIED));
}

#[test]
fn dane_applies_to_an_autoconfig_host_and_a_mismatch_rejects() {
    let a = discover("joe@dane.ac.test", mailsrv_source::Autoconfig as u32);
    let cands = a.candidates();
    assert_eq!(
        (cands[0].verdict, cands[0].evidence),
        (AUTHENTIC, EV_DANE),
        "{:?}",
        cands[0]
    );
    assert!(cands[0].binding.as_deref().unwrap().ends_with("dane=yes"));
    // the DANE-EE server's self-signed certificate is usable through the binding only
    let mut s = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe {
        mailsrv_connect_with_binding(a.ctx, a.binding(0), 0, &mut s, err.as_mut_ptr(), err.len())
    };
    assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
    unsafe { mailsrv_tls_stream_free(s) };
    let bad = discover("joe@danebad.ac.test", mailsrv_source::Autoconfig as u32);
    let c = &bad.candidates()[0];
    assert_eq!(c.verdict, REJECTED, "{c:?}");
    assert!(c.binding.is_none());
    assert_eq!(bad.preferred(1), None);
}

#[test]
fn redirects_https_to_https_only_and_the_domain_rule() {
    let only = mailsrv_source::Autoconfig as u32;
    // inside the mail domain: still HTTPS_DOMAIN
    let a = discover("joe@hopin.ac.test", only);
    assert!(a.candidates().iter().all(|c| c.evidence == EV_HTTPS_DOMAIN));
    // out of the mail domain: followed, but no longer the domain's own statement
    let h = discover("joe@hop.ac.test", only);
    let cands = h.candidates();
    assert!(!cands.is_empty());
    assert!(
        cands
            .iter()
            .all(|c| c.verdict == UNVERIFIED && c.detail.contains("outside hop.ac.test")),
        "{cands:#?}"
    );
    // HTTPS to HTTP and HTTP to HTTPS are refused; a loop hits the hop limit
    for (addr, src) in [
        ("joe@down.ac.test", mailsrv_source::Autoconfig),
        ("joe@up.ac.test", mailsrv_source::AutoconfigHttp),
        ("joe@loop.ac.test", mailsrv_source::Autoconfig),
    ] {
        let r = discover(addr, src as u32);
        assert_eq!(r.source(), 0, "{addr}");
        assert_eq!(
            r.status(src),
            mailsrv_status::Http,
            "{addr}: {}",
            r.detail(src)
        );
    }
}

#[test]
fn hostile_and_broken_documents_are_clear_errors() {
    let only = mailsrv_source::Autoconfig;
    for (domain, status, words) in [
        ("huge", mailsrv_status::Http, "at most 65536"),
        ("entity", mailsrv_status::BadConfig, "DOCTYPE"),
        ("deep", mailsrv_status::BadConfig, "deeper than"),
        ("latin1", mailsrv_status::BadConfig, "UTF-8"),
        ("broken", mailsrv_status::BadConfig, "autoconfig XML"),
    ] {
        let a = discover(&format!("joe@{domain}.ac.test"), only as u32);
        assert_eq!(a.source(), 0);
        assert_eq!(a.state(only), FAILED);
        assert_eq!(a.status(only), status, "{domain}");
        assert!(
            a.detail(only).contains(words),
            "{domain}: {}",
            a.detail(only)
        );
    }
}

#[test]
fn a_plaintext_server_is_rejected_and_never_preferred() {
    let a = discover("joe@plainsock.ac.test", mailsrv_source::Autoconfig as u32);
    let cands = a.candidates();
    assert_eq!(
        (
            cands[0].security.as_str(),
            cands[0].service,
            cands[0].verdict
        ),
        ("plain", 0, REJECTED)
    );
    assert!(cands[0].binding.is_none());
    assert_eq!(a.preferred(1), Some(1));
}

/// Holds every connection to WEB_SLOW_ADDR:443 open without a byte: a server that hangs.
fn slow_server() -> (TcpListener, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind((env("MAILSRV_TEST_WEB_SLOW_ADDR").as_str(), 443))
        .expect("bind the slow address");
    let l2 = l.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l2.incoming() {
            match s {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
            if held.len() > 64 {
                break;
            }
        }
    });
    (l, t)
}

#[test]
fn ranking_timeouts_and_cancellation() {
    let _one = SLOW.lock().unwrap_or_else(|e| e.into_inner());
    let (_l, _t) = slow_server();
    // the provider URL hangs: the ISPDB (lower rank) is taken only after its 1 s deadline
    let t0 = Instant::now();
    let a = discover_on(ctx_with(0, 10_000, 1_000), "joe@slow.ac.test", 0, 0);
    let took = t0.elapsed();
    assert_eq!(a.source(), mailsrv_source::Ispdb as u32);
    assert_eq!(
        a.status(mailsrv_source::Autoconfig),
        mailsrv_status::Timeout
    );
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // rank.ac.test: the provider answers at once; the MX-derived source hangs on the slow
    // provider and is cancelled, long before its 5 s deadline
    let t0 = Instant::now();
    let r = discover_on(ctx_with(0, 10_000, 5_000), "joe@rank.ac.test", 0, 0);
    let took = t0.elapsed();
    assert_eq!(r.source(), mailsrv_source::Autoconfig as u32);
    assert_eq!(r.state(mailsrv_source::MxAutoconfig), CANCELLED);
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(r.state(mailsrv_source::Autoconfig), FOUND);
}

struct Slot {
    done: Mutex<Option<(mailsrv_status, usize, u32)>>,
}

unsafe extern "C" fn on_account(
    ud: *mut c_void,
    _id: mailsrv_request_id,
    st: mailsrv_status,
    result: *mut mailsrv_account,
    _detail: *const c_char,
) {
    let slot = unsafe { &*(ud as *const Slot) };
    let (n, src) = if result.is_null() {
        (0, 0)
    } else {
        unsafe {
            (
                mailsrv_account_candidates_len(result),
                mailsrv_account_source(result),
            )
        }
    };
    unsafe { mailsrv_account_free(result) };
    *slot.done.lock().unwrap() = Some((st, n, src));
}

/// Waits for the callback, running it from this thread in loop mode (dispatch 1).
fn wait(slot: &Slot, ctx: *mut mailsrv_ctx, dispatch: u32) {
    let t0 = Instant::now();
    while slot.done.lock().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no callback (dispatch {dispatch})"
        );
        if dispatch == 1 {
            let mut ran = 0;
            unsafe { mailsrv_ctx_dispatch(ctx, &mut ran) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn async_in_both_dispatch_modes_and_cancel() {
    for dispatch in [0u32, 1] {
        let ctx = ctx_with(dispatch, 10_000, 0);
        let slot = Slot {
            done: Mutex::new(None),
        };
        let mut id = 0;
        let st = unsafe {
            mailsrv_account_discover_async(
                ctx,
                c("joe@ispdbonly.ac.test").as_ptr(),
                0,
                0,
                Some(on_account),
                &slot as *const Slot as *mut c_void,
                &mut id,
            )
        };
        assert_eq!(st, mailsrv_status::Ok);
        wait(&slot, ctx, dispatch);
        assert_eq!(
            *slot.done.lock().unwrap(),
            Some((mailsrv_status::Ok, 5, mailsrv_source::Ispdb as u32)),
            "dispatch {dispatch}"
        );
        // a cancelled request ends with CANCELLED, exactly once
        let slot2 = Slot {
            done: Mutex::new(None),
        };
        unsafe {
            assert_eq!(
                mailsrv_account_discover_async(
                    ctx,
                    c("joe@ac.test").as_ptr(),
                    0,
                    0,
                    Some(on_account),
                    &slot2 as *const Slot as *mut c_void,
                    &mut id,
                ),
                mailsrv_status::Ok
            );
            mailsrv_cancel(ctx, id);
        }
        wait(&slot2, ctx, dispatch);
        let got = slot2.done.lock().unwrap().unwrap();
        assert!(
            got.0 == mailsrv_status::Cancelled || got.0 == mailsrv_status::Ok,
            "{got:?}"
        );
        unsafe { mailsrv_ctx_free(ctx) };
    }
}

#[test]
fn bad_input_fails_the_call() {
    let ctx = ctx();
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    unsafe {
        for (addr, sources, flags) in [
            ("ac.test", 0, 0),
            ("joe@", 0, 0),
            ("joe@ac.test", 1024, 0),
            ("joe@ac.test", 0, 1 << 30),
        ] {
            let st = mailsrv_account_discover(
                ctx,
                c(addr).as_ptr(),
                sources,
                flags,
                &mut out,
                err.as_mut_ptr(),
                err.len(),
            );
            assert_eq!(st, mailsrv_status::InvalidArg, "{addr} {sources} {flags}");
            assert!(out.is_null());
        }
        assert_eq!(
            mailsrv_account_discover(
                ctx,
                ptr::null(),
                0,
                0,
                &mut out,
                err.as_mut_ptr(),
                err.len()
            ),
            mailsrv_status::NullArg
        );
        assert_eq!(mailsrv_account_candidates_len(ptr::null()), 0);
        assert!(mailsrv_account_candidate_get(ptr::null(), 0).is_null());
        assert_eq!(text(mailsrv_source_name(64)), "srv");
        assert_eq!(text(mailsrv_source_name(128)), "pacc");
        assert_eq!(text(mailsrv_source_name(256)), "autodiscover");
        assert_eq!(text(mailsrv_source_name(512)), "guess");
        assert!(mailsrv_account_web_url(ptr::null(), 1).is_null());
        assert!(mailsrv_account_source_unfollowed(ptr::null(), 256, 0).is_null());
        assert_eq!(text(mailsrv_source_name(3)), "");
        let cfg = testbed_config(0, 1000);
        assert_eq!(
            mailsrv_config_set_ispdb_url(cfg, c("ftp://x.example/").as_ptr()),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_config_set_ispdb_url(cfg, c("https://db.example/v1.1").as_ptr()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_config_set_ispdb_url(cfg, ptr::null()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_config_set_service_port(cfg, 3, 993),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_config_set_service_port(ptr::null_mut(), 1, 993),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_config_set_service_port(cfg, 1, 0),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_config_set_autodiscover_cb(cfg, None, ptr::null_mut()),
            mailsrv_status::Ok
        );
        mailsrv_config_free(cfg);
        mailsrv_ctx_free(ctx);
    }
}

// ---------------------------------------------------------------- issue 17: PACC, Exchange
// Autodiscover, guessing

const PACC: u32 = mailsrv_source::Pacc as u32;
const AUTODISCOVER: u32 = mailsrv_source::Autodiscover as u32;
const GUESS: u32 = mailsrv_source::Guess as u32;
const EV_PACC_DNSSEC: u32 = mailsrv_evidence::PaccDnssec as u32;
const EV_PROBE_DNS_ID: u32 = mailsrv_evidence::ProbeDnsId as u32;
const FLAG_REQUIRE_SECURE: u32 = 1;

/// The testbed's ports for the services PACC and guessing know by host only.
fn set_ports(cfg: *mut mailsrv_config) {
    for (bit, name) in [
        (1, "IMAPS"),
        (2, "IMAP"),
        (4, "POP3S"),
        (8, "POP3"),
        (16, "SUBMISSIONS"),
        (32, "SUBMISSION"),
    ] {
        assert_eq!(
            unsafe { mailsrv_config_set_service_port(cfg, bit, port(name)) },
            mailsrv_status::Ok
        );
    }
}

fn config17() -> *mut mailsrv_config {
    let cfg = testbed_config(0, 15_000);
    unsafe {
        assert_eq!(
            mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_config_set_ispdb_url(cfg, c(&env("MAILSRV_TEST_ISPDB")).as_ptr()),
            mailsrv_status::Ok
        );
    }
    set_ports(cfg);
    cfg
}

fn discover17(address: &str, sources: u32, flags: u32) -> Account {
    discover_on(ctx_from(config17()), address, sources, flags)
}

impl Account {
    fn web(&self, which: mailsrv_web_service) -> Option<String> {
        opt(unsafe { mailsrv_account_web_url(self.a, which as u32) })
    }
    fn unfollowed(&self, s: u32) -> Vec<String> {
        (0..)
            .map_while(|i| opt(unsafe { mailsrv_account_source_unfollowed(self.a, s, i) }))
            .collect()
    }
    fn status17(&self, s: u32) -> mailsrv_status {
        unsafe { mailsrv_account_source_status(self.a, s) }
    }
    fn detail17(&self, s: u32) -> String {
        text(unsafe { mailsrv_account_source_detail(self.a, s) })
    }
    fn connect(&self, i: usize) {
        let mut s = ptr::null_mut();
        let mut err = [0 as c_char; 512];
        let st = unsafe {
            mailsrv_connect_with_binding(
                self.ctx,
                self.binding(i),
                0,
                &mut s,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
        unsafe { mailsrv_tls_stream_free(s) };
    }
}

#[test]
fn pacc_with_a_signed_digest_is_authentic_by_pacc_dnssec() {
    let a = discover17("joe@pacc.example.com", PACC, 0);
    assert_eq!(a.source(), PACC);
    let cands = a.candidates();
    let got: Vec<(&str, &str, u16, &str)> = cands
        .iter()
        .map(|c| {
            (
                c.protocol.as_str(),
                c.host.as_str(),
                c.port,
                c.security.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("imap", "mail.example.net", port("IMAPS"), "ssl"),
            ("pop3", "mail.example.net", port("POP3S"), "ssl"),
            ("smtp", "mail.example.net", port("SUBMISSIONS"), "ssl"),
        ]
    );
    for c in &cands {
        assert_eq!(
            (c.source, c.verdict, c.evidence),
            (PACC, AUTHENTIC, EV_PACC_DNSSEC),
            "{c:?}"
        );
        assert!(
            c.detail.contains("DNSSEC-signed _ua-auto-config"),
            "{}",
            c.detail
        );
        assert_eq!(c.username.as_deref(), Some("joe@pacc.example.com"));
    }
    unsafe {
        let c0 = mailsrv_account_candidate_get(a.a, 0);
        assert_eq!(mailsrv_candidate_authentication_len(c0), 2);
        assert_eq!(text(mailsrv_candidate_authentication_get(c0, 0)), "OAuth2");
        assert_eq!(
            text(mailsrv_account_display_name(a.a)),
            "Test PACC provider"
        );
    }
    // JMAP, CalDAV, CardDAV and the oauth-public issuer pass through
    assert_eq!(
        a.web(mailsrv_web_service::Jmap).as_deref(),
        Some("https://jmap.example.net/session")
    );
    assert_eq!(
        a.web(mailsrv_web_service::Caldav).as_deref(),
        Some("https://dav.example.net/calendars/")
    );
    assert_eq!(
        a.web(mailsrv_web_service::Carddav).as_deref(),
        Some("https://dav.example.net/contacts/")
    );
    assert_eq!(
        a.web(mailsrv_web_service::OauthPublicIssuer).as_deref(),
        Some("https://auth.example.net")
    );
    assert!(unsafe { mailsrv_account_web_url(a.a, 9) }.is_null());
    assert!(
        a.detail17(PACC)
            .contains("_ua-auto-config.pacc.example.com (secure)")
    );
    a.connect(0);
    // a DNSSEC-signed digest is DNSSEC evidence: it counts under REQUIRE_SECURE
    let s = discover17("joe@pacc.example.com", PACC, FLAG_REQUIRE_SECURE);
    assert!(s.candidates().iter().all(|c| c.evidence == EV_PACC_DNSSEC));
    // two records during a rollover: the matching one counts
    let r = discover17("joe@paccroll.example.com", PACC, 0);
    assert!(
        r.candidates()
            .iter()
            .all(|c| (c.verdict, c.evidence) == (AUTHENTIC, EV_PACC_DNSSEC)),
        "{:#?}",
        r.candidates()
    );
}

#[test]
fn a_pacc_document_that_a_signed_digest_does_not_match_is_rejected() {
    for mask in [PACC, 0] {
        let a = discover17("joe@paccbad.example.com", mask, 0);
        assert_eq!(a.source(), 0, "mask {mask}");
        assert!(a.candidates().is_empty());
        assert_eq!(a.state(mailsrv_source::Pacc), FAILED);
        assert_eq!(a.status17(PACC), mailsrv_status::DigestMismatch);
        let d = a.detail17(PACC);
        assert!(d.contains("DNSSEC-signed") && d.contains("rejected"), "{d}");
    }
}

#[test]
fn pacc_with_an_unsigned_digest_is_weaker() {
    // matching: the mail domain's HTTPS document, like autoconfig; not DNSSEC evidence
    let a = discover17("joe@pacc.ac.test", PACC, 0);
    assert!(
        a.candidates()
            .iter()
            .all(|c| (c.verdict, c.evidence) == (AUTHENTIC, EV_HTTPS_DOMAIN)),
        "{:#?}",
        a.candidates()
    );
    assert!(
        a.detail17(PACC).contains("(insecure)"),
        "{}",
        a.detail17(PACC)
    );
    let s = discover17("joe@pacc.ac.test", PACC, FLAG_REQUIRE_SECURE);
    assert!(s.candidates().iter().all(|c| c.verdict == UNVERIFIED));
    // mismatching, missing, hostile, too big: clear errors, nothing taken
    for (domain, status, words) in [
        (
            "paccbad",
            mailsrv_status::DigestMismatch,
            "not DNSSEC-signed",
        ),
        (
            "paccnotxt",
            mailsrv_status::NoRecord,
            "publishes no _ua-auto-config",
        ),
        ("paccdeep", mailsrv_status::BadConfig, "PACC JSON"),
        ("paccbig", mailsrv_status::Http, "at most 65536"),
    ] {
        let a = discover17(&format!("joe@{domain}.ac.test"), PACC, 0);
        assert_eq!(a.source(), 0, "{domain}");
        assert_eq!(a.status17(PACC), status, "{domain}: {}", a.detail17(PACC));
        assert!(
            a.detail17(PACC).contains(words),
            "{domain}: {}",
            a.detail17(PACC)
        );
    }
}

#[test]
fn autodiscover_over_https_in_the_domain_is_https_domain() {
    let a = discover17("joe@adisc.ac.test", AUTODISCOVER, 0);
    assert_eq!(a.source(), AUTODISCOVER);
    let cands = a.candidates();
    assert_eq!(cands.len(), 5, "{cands:#?}");
    for c in &cands[..4] {
        assert_eq!(
            (c.verdict, c.evidence),
            (AUTHENTIC, EV_HTTPS_DOMAIN),
            "{c:?}"
        );
        assert_eq!(c.username.as_deref(), Some("joe@adisc.ac.test"));
    }
    assert_eq!(
        (cands[3].port, cands[3].security.as_str()),
        (port("SUBMISSION"), "starttls")
    );
    // SSL off: a plaintext server, rejected and never preferred
    assert_eq!(
        (cands[4].security.as_str(), cands[4].verdict),
        ("plain", REJECTED)
    );
    assert_eq!((a.preferred(1), a.preferred(2)), (Some(0), Some(2)));
    assert_eq!(
        text(unsafe { mailsrv_account_display_name(a.a) }),
        "Test Autodiscover user"
    );
    assert!(a.detail17(AUTODISCOVER).contains("EXCH"));
    a.connect(0);
}

#[test]
fn autodiscover_evidence_follows_how_the_url_was_found() {
    // a plain-HTTP redirect to HTTPS: followed, but only the probe could prove it
    let a = discover17("joe@adhttp.ac.test", AUTODISCOVER, 0);
    assert_eq!(a.source(), AUTODISCOVER);
    for c in a.candidates().iter().filter(|c| c.verdict != REJECTED) {
        assert_eq!(c.verdict, UNVERIFIED, "{c:?}");
        assert!(c.detail.contains("plain-HTTP redirect"), "{}", c.detail);
    }
    // a DNSSEC-signed _autodiscover._tcp SRV record naming a host in another domain
    let s = discover17("joe@adsrv.example.com", AUTODISCOVER, 0);
    assert_eq!(s.source(), AUTODISCOVER);
    let c0 = &s.candidates()[0];
    assert_eq!((c0.verdict, c0.evidence), (AUTHENTIC, EV_DNSSEC), "{c0:?}");
    assert!(
        c0.detail.contains("DNSSEC-signed _autodiscover._tcp"),
        "{}",
        c0.detail
    );
    // RedirectAddr inside the registrable domain: followed, another address's answer
    let r = discover17("joe@adredir.ac.test", AUTODISCOVER, 0);
    assert_eq!(r.source(), AUTODISCOVER);
    assert!(r.candidates()[0].detail.contains("joe@adisc.ac.test"));
    assert_eq!(r.candidates()[0].verdict, UNVERIFIED);
    // a RedirectAddr loop: at most two
    let l = discover17("joe@adloop.ac.test", AUTODISCOVER, 0);
    assert_eq!(l.source(), 0);
    assert_eq!(l.status17(AUTODISCOVER), mailsrv_status::Http);
    assert!(l.detail17(AUTODISCOVER).contains("more than 2"));
    // an HTTPS redirect loop; hostile XML
    let h = discover17("joe@adhloop.ac.test", AUTODISCOVER, 0);
    assert_eq!(h.status17(AUTODISCOVER), mailsrv_status::Http);
    assert!(h.detail17(AUTODISCOVER).contains("redirects"));
    let x = discover17("joe@adhostile.ac.test", AUTODISCOVER, 0);
    assert_eq!(x.status17(AUTODISCOVER), mailsrv_status::BadConfig);
    assert!(x.detail17(AUTODISCOVER).contains("DOCTYPE"));
}

/// What the test's Autodiscover callback was asked, and what it answers.
struct Hook {
    follow: bool,
    credentials: Option<(&'static str, &'static str)>,
    asked: Mutex<Vec<(u32, String, String)>>,
    sleep: Duration,
    returned: std::sync::atomic::AtomicBool,
}

impl Hook {
    fn new(follow: bool, credentials: Option<(&'static str, &'static str)>) -> Hook {
        Hook {
            follow,
            credentials,
            asked: Mutex::new(Vec::new()),
            sleep: Duration::ZERO,
            returned: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

unsafe extern "C" fn on_autodiscover(
    ud: *mut c_void,
    ask: u32,
    url: *const c_char,
    address: *const c_char,
    why: *const c_char,
    creds: *mut mailsrv_credentials,
) -> bool {
    let h = unsafe { &*(ud as *const Hook) };
    h.asked
        .lock()
        .unwrap()
        .push((ask, text(url), format!("{} / {}", text(address), text(why))));
    std::thread::sleep(h.sleep);
    h.returned.store(true, std::sync::atomic::Ordering::SeqCst);
    if ask == mailsrv_autodiscover_ask::Follow as u32 {
        assert!(creds.is_null());
        return h.follow;
    }
    match h.credentials {
        Some((u, p)) => unsafe {
            assert_eq!(
                mailsrv_credentials_set(creds, c("jo:e").as_ptr(), c(p).as_ptr()),
                mailsrv_status::InvalidArg
            );
            mailsrv_credentials_set(creds, c(u).as_ptr(), c(p).as_ptr()) == mailsrv_status::Ok
        },
        None => false,
    }
}

fn discover_with_hook(address: &str, hook: &Hook) -> Account {
    let cfg = config17();
    assert_eq!(
        unsafe {
            mailsrv_config_set_autodiscover_cb(
                cfg,
                Some(on_autodiscover),
                hook as *const Hook as *mut c_void,
            )
        },
        mailsrv_status::Ok
    );
    discover_on(ctx_from(cfg), address, AUTODISCOVER, 0)
}

#[test]
fn autodiscover_never_follows_a_foreign_target_silently() {
    // an unsigned SRV record naming a host outside ac.test: reported, not followed
    let a = discover17("joe@adsrvu.ac.test", AUTODISCOVER, 0);
    assert_eq!(a.source(), 0);
    let target = "https://autodiscover.adprov.example.net/autodiscover/autodiscover.xml";
    assert_eq!(a.unfollowed(AUTODISCOVER), [target]);
    assert_eq!(a.status17(AUTODISCOVER), mailsrv_status::Http);
    assert!(a.detail17(AUTODISCOVER).contains("not followed"));
    // the same with a RedirectAddr into another domain
    let o = discover17("joe@adout.ac.test", AUTODISCOVER, 0);
    assert_eq!(
        o.unfollowed(AUTODISCOVER),
        ["https://autodiscover.hosted.test/autodiscover/autodiscover.xml"]
    );
    // the callback declines: still not followed, and it was asked once, about that URL
    let no = Hook::new(false, None);
    let d = discover_with_hook("joe@adsrvu.ac.test", &no);
    assert_eq!(d.source(), 0);
    let asked = no.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        (asked[0].0, asked[0].1.as_str()),
        (mailsrv_autodiscover_ask::Follow as u32, target)
    );
    assert!(asked[0].2.contains("joe@adsrvu.ac.test") && asked[0].2.contains("not DNSSEC-signed"));
    // it confirms: followed, and the hosts it names are left to the probe
    let yes = Hook::new(true, None);
    let f = discover_with_hook("joe@adsrvu.ac.test", &yes);
    assert_eq!(f.source(), AUTODISCOVER);
    assert!(f.unfollowed(AUTODISCOVER).is_empty());
    assert!(
        f.candidates()
            .iter()
            .filter(|c| c.verdict != REJECTED)
            .all(|c| c.verdict == UNVERIFIED && c.detail.contains("not DNSSEC-signed")),
        "{:#?}",
        f.candidates()
    );
}

#[test]
fn autodiscover_sends_credentials_only_from_the_callback() {
    // none by default: the 401 is the report
    let a = discover17("joe@adauth.ac.test", AUTODISCOVER, 0);
    assert_eq!(a.source(), 0);
    assert_eq!(a.status17(AUTODISCOVER), mailsrv_status::Http);
    assert!(
        a.detail17(AUTODISCOVER).contains("credentials"),
        "{}",
        a.detail17(AUTODISCOVER)
    );
    // wrong ones are refused; right ones open the answer
    let wrong = Hook::new(false, Some(("joe", "wrong")));
    let w = discover_with_hook("joe@adauth.ac.test", &wrong);
    assert_eq!(w.source(), 0);
    assert!(
        w.detail17(AUTODISCOVER)
            .contains("refused the caller's credentials")
    );
    let right = Hook::new(false, Some(("joe", "secret")));
    let r = discover_with_hook("joe@adauth.ac.test", &right);
    assert_eq!(r.source(), AUTODISCOVER);
    assert_eq!(r.candidates()[0].evidence, EV_HTTPS_DOMAIN);
    let asked = right.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        (asked[0].0, asked[0].1.as_str()),
        (
            mailsrv_autodiscover_ask::Credentials as u32,
            "https://autodiscover.adauth.ac.test/autodiscover/autodiscover.xml"
        )
    );
}

#[test]
fn freeing_the_context_waits_for_the_autodiscover_callback() {
    let mut hook = Hook::new(false, None);
    hook.sleep = Duration::from_millis(500);
    let cfg = config17();
    unsafe {
        mailsrv_config_set_autodiscover_cb(
            cfg,
            Some(on_autodiscover),
            &hook as *const Hook as *mut c_void,
        );
    }
    let ctx = ctx_from(cfg);
    let slot = Slot {
        done: Mutex::new(None),
    };
    let mut id = 0;
    unsafe {
        assert_eq!(
            mailsrv_account_discover_async(
                ctx,
                c("joe@adsrvu.ac.test").as_ptr(),
                AUTODISCOVER,
                0,
                Some(on_account),
                &slot as *const Slot as *mut c_void,
                &mut id,
            ),
            mailsrv_status::Ok
        );
    }
    let t0 = Instant::now();
    while hook.asked.lock().unwrap().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the callback never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe { mailsrv_ctx_free(ctx) };
    assert!(hook.returned.load(std::sync::atomic::Ordering::SeqCst));
    assert!(slot.done.lock().unwrap().is_some());
}

#[test]
fn guessing_is_opt_in_and_proven_only_by_the_probe_or_dane() {
    // not in the default set
    let d = discover17("joe@guess.ac.test", 0, 0);
    assert_eq!(d.source(), 0);
    assert_eq!(d.state(mailsrv_source::Guess), 0);
    // asked: imap.guess.ac.test and smtp.guess.ac.test answer; their certificate also names
    // guess.ac.test, so the probe (SNI guess.ac.test) proves them
    let a = discover17("joe@guess.ac.test", MAILSRV_SOURCES_DEFAULT | GUESS, 0);
    assert_eq!(a.source(), GUESS);
    let cands = a.candidates();
    let got: Vec<(&str, u16, u32)> = cands
        .iter()
        .map(|c| (c.host.as_str(), c.port, c.evidence))
        .collect();
    assert_eq!(
        got,
        [
            ("imap.guess.ac.test", port("IMAPS"), EV_PROBE_DNS_ID),
            ("imap.guess.ac.test", port("IMAP"), EV_PROBE_DNS_ID),
            ("imap.guess.ac.test", port("POP3S"), EV_PROBE_DNS_ID),
            ("imap.guess.ac.test", port("POP3"), EV_PROBE_DNS_ID),
            ("smtp.guess.ac.test", port("SUBMISSIONS"), EV_PROBE_DNS_ID),
            ("smtp.guess.ac.test", port("SUBMISSION"), EV_PROBE_DNS_ID),
        ]
    );
    assert!(a.detail17(GUESS).contains("mail.guess.ac.test"));
    a.connect(0);
    // a certificate for the host alone proves nothing about the mail domain
    let u = discover17("joe@guessu.ac.test", GUESS, 0);
    assert_eq!(u.source(), GUESS);
    assert!(
        u.candidates()
            .iter()
            .all(|c| c.verdict == UNVERIFIED && c.detail.contains("guess")),
        "{:#?}",
        u.candidates()
    );
    let n = discover_on(
        ctx_from(config17()),
        "joe@guess.ac.test",
        GUESS,
        FLAG_NO_PROBE,
    );
    assert!(n.candidates().iter().all(|c| c.verdict == UNVERIFIED));
    // DNSSEC-signed TLSA records of the guessed host: DANE
    let g = discover17("joe@guessdane.example.net", GUESS, 0);
    let c = g.candidates();
    assert_eq!(c.len(), 1, "{c:#?}");
    assert_eq!((c[0].verdict, c[0].evidence), (AUTHENTIC, EV_DANE));
    // nothing answers: a clear failure
    let none = discover17("joe@ac.test", GUESS, 0);
    assert_eq!(none.source(), 0);
    assert_eq!(none.status17(GUESS), mailsrv_status::NotFound);
}
