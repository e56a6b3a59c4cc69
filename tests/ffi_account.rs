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
            ("joe@ac.test", 128, 0),
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
        mailsrv_config_free(cfg);
        mailsrv_ctx_free(ctx);
    }
}
