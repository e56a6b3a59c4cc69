//! srv_change_check and the observation history through the C entry points, on the testbed.
//! T-ids: docs/conformance.md groups C, M (T-SEED-*) and B (T-SEL-07).

mod common;

use std::os::raw::c_char;
use std::ptr;

use common::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::history::*;
use mailsrv::ffi::status::mailsrv_status;

const IMAPS: u32 = 1;
const SRV: u32 = mailsrv_origin::Srv as u32;
const USER: u32 = mailsrv_origin::User as u32;
const DAY: u64 = 86_400;
const NOW: u64 = 1_800_000_000;

fn ctx() -> *mut mailsrv_ctx {
    let cfg = testbed_config(0, 10_000);
    unsafe { mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()) };
    ctx_from(cfg)
}

fn temp_history(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("mailsrv-change-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("history").to_str().unwrap().to_owned()
}

/// (decision, target, verdict, wait_until, detail)
fn check(
    domain: &str,
    host: &str,
    port: u16,
    origin: u32,
    history: *mut mailsrv_history,
    now: u64,
) -> (u32, Option<String>, u32, u64, String) {
    let ctx = ctx();
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    let st = unsafe {
        mailsrv_srv_change_check(
            ctx,
            c(domain).as_ptr(),
            IMAPS,
            c(host).as_ptr(),
            port,
            origin,
            history,
            now,
            0,
            0,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
    let r = unsafe {
        let t = mailsrv_change_target(out);
        (
            mailsrv_change_decision(out),
            (!t.is_null()).then(|| text(t)),
            mailsrv_change_verdict(out),
            mailsrv_change_wait_until(out),
            text(mailsrv_change_detail(out)),
        )
    };
    unsafe {
        mailsrv_change_free(out);
        mailsrv_ctx_free(ctx);
    }
    r
}

const NO_CHANGE: u32 = mailsrv_decision::NoChange as u32;
const UPDATE: u32 = mailsrv_decision::Update as u32;
const ASK_USER: u32 = mailsrv_decision::AskUser as u32;
const WAIT: u32 = mailsrv_decision::Wait as u32;
const REJECT: u32 = mailsrv_decision::Reject as u32;

#[test]
fn unchanged_answer_is_no_change() {
    let (d, _, verdict, _, _) = check(
        "example.com",
        "mail.example.net",
        port("IMAPS"),
        SRV,
        ptr::null_mut(),
        NOW,
    );
    assert_eq!(d, NO_CHANGE);
    assert_eq!(verdict, 0, "nothing to judge");
}

#[test]
fn t_seed_07_dnssec_secure_change_updates() {
    let (d, target, verdict, _, detail) = check(
        "example.com",
        "old.example.net",
        993,
        SRV,
        ptr::null_mut(),
        NOW,
    );
    assert_eq!(d, UPDATE, "{detail}");
    assert_eq!(target.as_deref(), Some("mail.example.net"));
    assert_eq!(verdict, 1);
}

#[test]
fn user_typed_configuration_never_changes() {
    let (d, _, verdict, _, _) = check(
        "example.com",
        "old.example.net",
        993,
        USER,
        ptr::null_mut(),
        NOW,
    );
    assert_eq!(d, NO_CHANGE);
    assert_eq!(verdict, 0, "not even judged");
}

#[test]
fn bogus_answer_is_rejected() {
    let (d, _, _, _, _) = check(
        "bogus.test",
        "old.example.net",
        993,
        SRV,
        ptr::null_mut(),
        NOW,
    );
    assert_eq!(d, REJECT);
}

#[test]
fn t_seed_03_and_05_unverified_change_waits_then_asks_the_user() {
    let path = temp_history("wait");
    let mut h = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    unsafe {
        assert_eq!(
            mailsrv_history_open(c(&path).as_ptr(), &mut h, err.as_mut_ptr(), err.len()),
            mailsrv_status::Ok
        );
    }
    // First sighting: unverified (the provider only proves its own name) and new.
    let (d, target, verdict, wait_until, detail) =
        check("insecure.test", "old.example.net", 993, SRV, h, NOW);
    assert_eq!(d, WAIT, "{detail}");
    assert_eq!(target.as_deref(), Some("mail.example.net"));
    assert_eq!(verdict, 2);
    assert_eq!(wait_until, NOW + 7 * DAY);
    unsafe {
        assert_eq!(
            mailsrv_history_save(h, err.as_mut_ptr(), err.len()),
            mailsrv_status::Ok,
            "{}",
            text(err.as_ptr())
        );
        mailsrv_history_free(h);
        // Reopened from disk, eight days later: it persisted, so the user may be asked.
        assert_eq!(
            mailsrv_history_open(c(&path).as_ptr(), &mut h, ptr::null_mut(), 0),
            mailsrv_status::Ok
        );
        assert_eq!(mailsrv_history_len(h), 1);
        let (mut first, mut last) = (0, 0);
        assert_eq!(
            mailsrv_history_seen(
                h,
                c("insecure.test").as_ptr(),
                IMAPS,
                c("mail.example.net").as_ptr(),
                port("IMAPS"),
                &mut first,
                &mut last
            ),
            mailsrv_status::Ok
        );
        assert_eq!((first, last), (NOW, NOW));
    }
    let (d, _, _, _, detail) = check(
        "insecure.test",
        "old.example.net",
        993,
        SRV,
        h,
        NOW + 8 * DAY,
    );
    assert_eq!(d, ASK_USER, "{detail}");
    unsafe { mailsrv_history_free(h) };
}

#[test]
fn damaged_history_is_reported_and_kept() {
    let path = temp_history("damaged");
    std::fs::write(
        &path,
        "mailsrv-history 1\nobs example.com imaps a.example.net 993 1 2\n",
    )
    .unwrap();
    let mut h = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    unsafe {
        assert_eq!(
            mailsrv_history_open(c(&path).as_ptr(), &mut h, err.as_mut_ptr(), err.len()),
            mailsrv_status::Corrupt
        );
        assert!(h.is_null());
        assert!(
            text(err.as_ptr()).contains("corrupt-"),
            "{}",
            text(err.as_ptr())
        );
        // The damaged file was moved aside, so opening again starts empty.
        assert_eq!(
            mailsrv_history_open(c(&path).as_ptr(), &mut h, ptr::null_mut(), 0),
            mailsrv_status::Ok
        );
        assert_eq!(mailsrv_history_len(h), 0);
        mailsrv_history_free(h);
    }
}

#[test]
fn bad_arguments() {
    let ctx = ctx();
    let mut out = ptr::null_mut();
    unsafe {
        let st = mailsrv_srv_change_check(
            ctx,
            c("example.com").as_ptr(),
            IMAPS,
            c("h.example.net").as_ptr(),
            993,
            10,
            ptr::null_mut(),
            0,
            0,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        );
        assert_eq!(st, mailsrv_status::InvalidArg, "unknown origin");
        let st = mailsrv_srv_change_check(
            ctx,
            c("example.com").as_ptr(),
            3,
            c("h.example.net").as_ptr(),
            993,
            SRV,
            ptr::null_mut(),
            0,
            0,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        );
        assert_eq!(st, mailsrv_status::InvalidArg, "two services");
        let st = mailsrv_srv_change_check(
            ctx,
            ptr::null(),
            IMAPS,
            c("h.example.net").as_ptr(),
            993,
            SRV,
            ptr::null_mut(),
            0,
            0,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        );
        assert_eq!(st, mailsrv_status::NullArg);
        mailsrv_ctx_free(ctx);
    }
}

/// Replaces the SRV RRset of `owner` in `zone` on the running knotd.
fn set_srv(zone: &str, owner: &str, rdata: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/dns.sh");
    let st = std::process::Command::new("bash")
        .args([
            script,
            "set-srv",
            &env("MAILSRV_TESTBED_DIR"),
            zone,
            owner,
            rdata,
        ])
        .status()
        .unwrap();
    assert!(st.success(), "set-srv {zone} {owner} {rdata}");
}

#[test]
fn t_seed_05_a_target_changed_between_two_runs() {
    let path = temp_history("moved");
    let mut h = ptr::null_mut();
    unsafe {
        assert_eq!(
            mailsrv_history_open(c(&path).as_ptr(), &mut h, ptr::null_mut(), 0),
            mailsrv_status::Ok
        )
    };
    let imaps = port("IMAPS");
    let (d, _, _, _, _) = check("moved.test", "mail.example.net", imaps, SRV, h, NOW);
    assert_eq!(d, NO_CHANGE, "first run: the saved server is advertised");
    // The (unsigned) record now points elsewhere, at a host that cannot prove anything.
    set_srv(
        "moved.test",
        "_imaps._tcp",
        &format!("0 1 {imaps} a.example.net."),
    );
    let (d, target, verdict, _, detail) =
        check("moved.test", "mail.example.net", imaps, SRV, h, NOW + DAY);
    set_srv(
        "moved.test",
        "_imaps._tcp",
        &format!("0 1 {imaps} mail.example.net."),
    );
    assert_eq!(d, WAIT, "no silent switch: {detail}");
    assert_eq!(target.as_deref(), Some("a.example.net"));
    assert_eq!(verdict, 2, "unverified");
    unsafe { mailsrv_history_free(h) };
}

fn open_history(path: &str) -> *mut mailsrv_history {
    let mut h = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    let st = unsafe { mailsrv_history_open(c(path).as_ptr(), &mut h, err.as_mut_ptr(), err.len()) };
    assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
    h
}

fn save_history(h: *mut mailsrv_history) {
    let mut err = [0 as c_char; 256];
    let st = unsafe { mailsrv_history_save(h, err.as_mut_ptr(), err.len()) };
    assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
}

/// insecure.test's answer is mail.example.net (unverified); b.example.net stands for another
/// answer seen on day 3 (an attacker's, or a provider's short-lived change).
fn observe_other(h: *mut mailsrv_history, now: u64) {
    let st = unsafe {
        mailsrv_history_observe(
            h,
            c("insecure.test").as_ptr(),
            IMAPS,
            c("b.example.net").as_ptr(),
            993,
            now,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
}

/// The refresh check of insecure.test (unverified answer A = mail.example.net) on `day`; it
/// must say WAIT, so the decision and its wait_until are returned with the detail.
fn waits_on_day(h: *mut mailsrv_history, day: u64) -> u64 {
    let (d, _, _, wait_until, detail) = check(
        "insecure.test",
        "old.example.net",
        993,
        SRV,
        h,
        NOW + day * DAY,
    );
    assert_eq!(d, WAIT, "day {day}: {detail}");
    wait_until
}

/// Day 7, from a fresh handle on the file: A has persisted since day 6 only.
fn waits_on_day_7(path: &str) {
    let h = open_history(path);
    assert_eq!(
        waits_on_day(h, 7),
        NOW + 13 * DAY,
        "A's run started on day 6"
    );
    unsafe { mailsrv_history_free(h) };
}

/// Issue 12: seen A (day 0), B (day 3), A again (day 6): A has persisted one day on day 7,
/// so the decision is WAIT. The merge in mailsrv_history_save used to restore day 0 (ASK_USER).
#[test]
fn interruption_survives_saving_and_reopening() {
    let path = temp_history("days");
    for day in [0, 3, 6] {
        let h = open_history(&path);
        if day == 3 {
            observe_other(h, NOW + 3 * DAY);
        } else {
            waits_on_day(h, day);
        }
        save_history(h);
        unsafe { mailsrv_history_free(h) };
    }
    waits_on_day_7(&path);
}

/// The same sequence with two writers on one file (two processes): writer 1 sees A on days 0
/// and 6, writer 2 sees B on day 3; neither ever holds both in memory before saving.
#[test]
fn interruption_survives_two_writers() {
    let path = temp_history("writers");
    let w1 = open_history(&path);
    let w2 = open_history(&path);
    waits_on_day(w1, 0);
    save_history(w1);
    observe_other(w2, NOW + 3 * DAY);
    save_history(w2);
    waits_on_day(w1, 6);
    save_history(w1);
    save_history(w2); // saving the other writer again changes nothing
    unsafe {
        mailsrv_history_free(w1);
        mailsrv_history_free(w2);
    }
    waits_on_day_7(&path);
}
