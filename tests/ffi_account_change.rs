//! The multi-source refresh check (`mailsrv_account_change_check`, issue 16) through the C
//! entry points, against the testbed: nginx (autoconfig documents, the ISPDB), knotd (the
//! signed MX of mxs.example.com) and the mail servers. The policy of
//! docs/account-discovery.md: UPDATE only with tamper-proof evidence and a binding, never on
//! the ISPDB's or plain HTTP's word; user-typed never changes; no protocol switch; the
//! history decides between WAIT and ASK_USER.

mod common;

use std::os::raw::{c_char, c_void};
use std::ptr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use mailsrv::ffi::authenticity::mailsrv_verdict;
use mailsrv::ffi::binding::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::history::*;
use mailsrv::ffi::request::mailsrv_request_id;
use mailsrv::ffi::status::mailsrv_status;

const IMAPS: u32 = 1;
const POP3S: u32 = 4;
const NO_CHANGE: u32 = 1;
const UPDATE: u32 = 2;
const ASK_USER: u32 = 3;
const WAIT: u32 = 4;
const DAY: u64 = 86_400;

fn ctx(dispatch: u32) -> *mut mailsrv_ctx {
    let cfg = testbed_config(dispatch, 10_000);
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
    ctx_from(cfg)
}

#[derive(Debug)]
struct Got {
    decision: u32,
    target: Option<String>,
    port: u16,
    wait_until: u64,
    verdict: u32,
    binding: Option<String>,
    detail: String,
    origin: u32,
}

unsafe fn read(ch: *mut mailsrv_change) -> Got {
    unsafe {
        let t = mailsrv_change_target(ch);
        let b = mailsrv_change_binding(ch);
        let g = Got {
            decision: mailsrv_change_decision(ch),
            target: (!t.is_null()).then(|| text(t)),
            port: mailsrv_change_port(ch),
            wait_until: mailsrv_change_wait_until(ch),
            verdict: mailsrv_change_verdict(ch),
            binding: (!b.is_null()).then(|| text(mailsrv_binding_text(b))),
            detail: text(mailsrv_change_detail(ch)),
            origin: mailsrv_change_origin(ch),
        };
        mailsrv_change_free(ch);
        g
    }
}

#[allow(clippy::too_many_arguments)]
fn check_with(
    ctx: *mut mailsrv_ctx,
    address: &str,
    service: u32,
    saved: (&str, u16),
    origin: mailsrv_origin,
    history: *mut mailsrv_history,
    now: u64,
) -> Got {
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe {
        mailsrv_account_change_check(
            ctx,
            c(address).as_ptr(),
            service,
            c(saved.0).as_ptr(),
            saved.1,
            origin as u32,
            history,
            now,
            0,
            0,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    assert_eq!(st, mailsrv_status::Ok, "{address}: {}", text(err.as_ptr()));
    unsafe { read(out) }
}

fn open_history(path: &std::path::Path) -> *mut mailsrv_history {
    let mut h = ptr::null_mut();
    let st = unsafe {
        mailsrv_history_open(
            c(path.to_str().unwrap()).as_ptr(),
            &mut h,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    h
}

fn check(address: &str, service: u32, saved: (&str, u16), origin: mailsrv_origin) -> Got {
    let ctx = ctx(0);
    let g = check_with(ctx, address, service, saved, origin, ptr::null_mut(), 0);
    unsafe { mailsrv_ctx_free(ctx) };
    g
}

#[test]
fn the_saved_server_still_named_is_no_change() {
    let g = check(
        "joe@ac.test",
        IMAPS,
        ("mail.example.net", port("IMAPS")),
        mailsrv_origin::Autoconfig,
    );
    assert_eq!(g.decision, NO_CHANGE, "{g:?}");
    assert!(g.binding.is_none());
}

#[test]
fn the_domains_own_https_document_updates_with_its_binding() {
    let g = check(
        "joe@ac.test",
        IMAPS,
        ("old.example.net", 993),
        mailsrv_origin::Autoconfig,
    );
    assert_eq!(g.decision, UPDATE, "{g:?}");
    assert_eq!(
        (g.target.as_deref(), g.port),
        (Some("mail.example.net"), port("IMAPS"))
    );
    assert_eq!(g.verdict, mailsrv_verdict::Authentic as u32);
    let b = g.binding.unwrap();
    assert!(
        b.contains("host=mail.example.net") && b.contains("sni=mail.example.net"),
        "{b}"
    );
    assert_eq!(g.origin, mailsrv_origin::Autoconfig as u32);
}

#[test]
fn a_signed_mx_into_the_provider_updates() {
    let g = check(
        "joe@mxs.example.com",
        IMAPS,
        ("old.example.net", 993),
        mailsrv_origin::Mx,
    );
    assert_eq!(g.decision, UPDATE, "{g:?}");
    assert_eq!(g.target.as_deref(), Some("mail.example.net"));
    assert!(g.binding.is_some());
    assert_eq!(g.origin, mailsrv_origin::Mx as u32);
}

#[test]
fn the_ispdb_never_updates_it_waits_then_asks_with_the_binding() {
    let path = std::env::temp_dir().join(format!("mailsrv-acct-change-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let h = open_history(&path);
    let ctx = ctx(0);
    let now = 1_900_000_000;
    let saved = ("old.example.net", 993);
    let first = check_with(
        ctx,
        "joe@ispdbonly.ac.test",
        IMAPS,
        saved,
        mailsrv_origin::Ispdb,
        h,
        now,
    );
    // authentic as judged, but the ISPDB's word may not change the account by itself
    assert_eq!(first.verdict, mailsrv_verdict::Authentic as u32);
    assert_eq!(first.decision, WAIT, "{first:?}");
    assert_eq!(first.wait_until, now + 7 * DAY);
    assert!(first.detail.contains("ISPDB"), "{}", first.detail);
    assert!(first.binding.is_some());
    assert_eq!(unsafe { mailsrv_history_len(h) }, 1);
    let later = check_with(
        ctx,
        "joe@ispdbonly.ac.test",
        IMAPS,
        saved,
        mailsrv_origin::Ispdb,
        h,
        now + 8 * DAY,
    );
    assert_eq!(later.decision, ASK_USER, "{later:?}");
    assert!(later.binding.unwrap().contains("host=mail.example.net"));
    // what the client saves once the user accepts: the ISPDB named it
    assert_eq!(later.origin, mailsrv_origin::Ispdb as u32);
    unsafe {
        assert_eq!(
            mailsrv_history_save(h, ptr::null_mut(), 0),
            mailsrv_status::Ok
        );
        mailsrv_history_free(h);
    }
    // The history file records who named the server (format version 2) ...
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("mailsrv-history 2\n"), "{text}");
    assert!(
        text.contains(&format!(
            "obs ispdbonly.ac.test imaps mail.example.net {} {now} {} ispdb\n",
            port("IMAPS"),
            now + 8 * DAY
        )),
        "{text}"
    );
    // ... and gives it back after a restart, with the times the next check relies on.
    let h = open_history(&path);
    let mut source = 99;
    unsafe {
        assert_eq!(
            mailsrv_history_source(
                h,
                c("ispdbonly.ac.test").as_ptr(),
                IMAPS,
                c("mail.example.net").as_ptr(),
                port("IMAPS"),
                &mut source
            ),
            mailsrv_status::Ok
        );
    }
    assert_eq!(source, mailsrv::ffi::account::mailsrv_source::Ispdb as u32);
    let again = check_with(
        ctx,
        "joe@ispdbonly.ac.test",
        IMAPS,
        saved,
        mailsrv_origin::Ispdb,
        h,
        now + 9 * DAY,
    );
    assert_eq!(again.decision, ASK_USER, "{again:?}");
    assert_eq!(again.origin, mailsrv_origin::Ispdb as u32);
    // The user accepted: the account is saved with the new server and that origin, and
    // the next check is NO_CHANGE.
    let taken = check_with(
        ctx,
        "joe@ispdbonly.ac.test",
        IMAPS,
        ("mail.example.net", port("IMAPS")),
        mailsrv_origin::Ispdb,
        h,
        now + 10 * DAY,
    );
    assert_eq!(taken.decision, NO_CHANGE, "{taken:?}");
    unsafe {
        mailsrv_history_free(h);
        mailsrv_ctx_free(ctx);
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn user_typed_never_changes() {
    let g = check(
        "joe@ac.test",
        IMAPS,
        ("old.example.net", 993),
        mailsrv_origin::User,
    );
    assert_eq!(g.decision, NO_CHANGE, "{g:?}");
    assert!(g.detail.contains("typed by the user"), "{}", g.detail);
    assert!(g.binding.is_none());
}

#[test]
fn no_protocol_switch() {
    // mxs.example.com's provider offers IMAP and SMTP only: a POP3 account stays as it is
    let g = check(
        "joe@mxs.example.com",
        POP3S,
        ("old.example.net", 995),
        mailsrv_origin::Mx,
    );
    assert_eq!(g.decision, NO_CHANGE, "{g:?}");
    assert!(g.target.is_none());
    assert!(g.detail.contains("protocol"), "{}", g.detail);
}

#[test]
fn plain_http_is_left_out_of_a_refresh() {
    let g = check(
        "joe@plain.ac.test",
        IMAPS,
        ("old.example.net", 993),
        mailsrv_origin::AutoconfigHttp,
    );
    assert_eq!(g.decision, NO_CHANGE, "{g:?}");
    assert!(g.target.is_none());
    assert!(g.detail.contains("no source"), "{}", g.detail);
}

struct Slot(Mutex<Option<(mailsrv_status, Option<Got>)>>);

unsafe extern "C" fn on_change(
    ud: *mut c_void,
    _id: mailsrv_request_id,
    st: mailsrv_status,
    result: *mut mailsrv_change,
    _detail: *const c_char,
) {
    let slot = unsafe { &*(ud as *const Slot) };
    let got = (!result.is_null()).then(|| unsafe { read(result) });
    let mut s = slot.0.lock().unwrap();
    assert!(s.is_none(), "a second callback");
    *s = Some((st, got));
}

#[test]
fn async_in_both_dispatch_modes() {
    for dispatch in [0u32, 1] {
        let ctx = ctx(dispatch);
        let slot = Slot(Mutex::new(None));
        let mut id = 0;
        let st = unsafe {
            mailsrv_account_change_check_async(
                ctx,
                c("joe@ac.test").as_ptr(),
                IMAPS,
                c("old.example.net").as_ptr(),
                993,
                mailsrv_origin::Autoconfig as u32,
                ptr::null_mut(),
                0,
                0,
                0,
                Some(on_change),
                &slot as *const Slot as *mut c_void,
                &mut id,
            )
        };
        assert_eq!(st, mailsrv_status::Ok);
        let t0 = Instant::now();
        while slot.0.lock().unwrap().is_none() {
            assert!(t0.elapsed() < Duration::from_secs(15), "no callback");
            if dispatch == 1 {
                unsafe { mailsrv_ctx_dispatch(ctx, ptr::null_mut()) };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let (st, got) = slot.0.lock().unwrap().take().unwrap();
        assert_eq!(st, mailsrv_status::Ok);
        assert_eq!(got.unwrap().decision, UPDATE);
        unsafe { mailsrv_ctx_free(ctx) };
    }
}

#[test]
fn bad_input_fails_the_call() {
    let ctx = ctx(0);
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    for (addr, service, origin) in [
        ("ac.test", IMAPS, 3), // no local part: the documents need it
        ("joe@ac.test", 3, 3), // not one service
        ("joe@ac.test", IMAPS, 10),
        ("joe@ac.test", IMAPS, 0),
    ] {
        let st = unsafe {
            mailsrv_account_change_check(
                ctx,
                c(addr).as_ptr(),
                service,
                c("old.example.net").as_ptr(),
                993,
                origin,
                ptr::null_mut(),
                0,
                0,
                0,
                &mut out,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        assert_eq!(st, mailsrv_status::InvalidArg, "{addr} {service} {origin}");
        assert!(out.is_null());
    }
    unsafe { mailsrv_ctx_free(ctx) };
}

// ---------------------------------------------------------------- issue 17: the new origins

/// A context whose PACC and guessing use the testbed's ports, with an Autodiscover callback
/// that counts its calls and would follow anything.
fn ctx17(calls: &std::sync::atomic::AtomicUsize) -> *mut mailsrv_ctx {
    let cfg = testbed_config(0, 15_000);
    unsafe {
        assert_eq!(
            mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()),
            mailsrv_status::Ok
        );
        for (bit, name) in [
            (1, "IMAPS"),
            (2, "IMAP"),
            (4, "POP3S"),
            (8, "POP3"),
            (16, "SUBMISSIONS"),
            (32, "SUBMISSION"),
        ] {
            assert_eq!(
                mailsrv_config_set_service_port(cfg, bit, port(name)),
                mailsrv_status::Ok
            );
        }
        assert_eq!(
            mailsrv_config_set_autodiscover_cb(
                cfg,
                Some(count_and_follow),
                calls as *const std::sync::atomic::AtomicUsize as *mut c_void
            ),
            mailsrv_status::Ok
        );
    }
    ctx_from(cfg)
}

unsafe extern "C" fn count_and_follow(
    ud: *mut c_void,
    _ask: u32,
    _url: *const c_char,
    _address: *const c_char,
    _why: *const c_char,
    _creds: *mut mailsrv::ffi::autodiscover::mailsrv_credentials,
) -> bool {
    let n = unsafe { &*(ud as *const std::sync::atomic::AtomicUsize) };
    n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    true
}

fn check17(address: &str, saved: (&str, u16), origin: mailsrv_origin) -> (Got, usize) {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let ctx = ctx17(&calls);
    let g = check_with(ctx, address, IMAPS, saved, origin, ptr::null_mut(), 0);
    unsafe { mailsrv_ctx_free(ctx) };
    (g, calls.load(std::sync::atomic::Ordering::SeqCst))
}

#[test]
fn pacc_with_a_signed_digest_updates() {
    let (g, _) = check17(
        "joe@pacc.example.com",
        ("old.example.net", 993),
        mailsrv_origin::Pacc,
    );
    assert_eq!(g.decision, UPDATE, "{g:?}");
    assert_eq!(
        (g.target.as_deref(), g.port),
        (Some("mail.example.net"), port("IMAPS"))
    );
    assert!(g.binding.unwrap().contains("sni=mail.example.net"));
    // a document its signed digest does not match: no source, nothing changes
    let (g, _) = check17(
        "joe@paccbad.example.com",
        ("old.example.net", 993),
        mailsrv_origin::Pacc,
    );
    assert_eq!(g.decision, NO_CHANGE, "{g:?}");
    assert!(g.target.is_none());
}

#[test]
fn a_guessed_account_is_guessed_again_and_the_probe_may_update_it() {
    let (g, _) = check17(
        "joe@guess.ac.test",
        ("old.example.net", 993),
        mailsrv_origin::Guess,
    );
    assert_eq!(g.decision, UPDATE, "{g:?}");
    assert_eq!(g.target.as_deref(), Some("imap.guess.ac.test"));
    // an account from any other source is never refreshed by guessing
    let (g, _) = check17(
        "joe@guess.ac.test",
        ("old.example.net", 993),
        mailsrv_origin::Autoconfig,
    );
    assert_eq!(g.decision, NO_CHANGE, "{g:?}");
    // a guess nothing proves: wait, never update
    let (g, _) = check17(
        "joe@guessu.ac.test",
        ("old.example.net", 993),
        mailsrv_origin::Guess,
    );
    assert_eq!(g.decision, WAIT, "{g:?}");
}

#[test]
fn a_refresh_never_asks_the_autodiscover_callback() {
    // adsrvu.ac.test is reachable only through a host outside its domain, which a
    // discovery follows when the callback says so; a refresh never asks
    let (g, calls) = check17(
        "joe@adsrvu.ac.test",
        ("old.example.net", 993),
        mailsrv_origin::Autodiscover,
    );
    assert_eq!(calls, 0);
    assert_eq!(g.decision, NO_CHANGE, "{g:?}");
    // the domain's own Autodiscover answer over HTTPS updates
    let (g, _) = check17(
        "joe@adisc.ac.test",
        ("old.example.net", 993),
        mailsrv_origin::Autodiscover,
    );
    assert_eq!(g.decision, UPDATE, "{g:?}");
}
