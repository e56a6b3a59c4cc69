//! The ASK_USER dialog (issue 15, point 3) through the C entry points on the testbed: the
//! change decision's reason and authenticity object, the user's decline, and the history
//! in memory (export/import), pruned, saved asynchronously, and its format-version policy.

mod common;

use std::os::raw::{c_char, c_void};
use std::ptr;
use std::sync::mpsc;

use common::*;
use mailsrv::ffi::authenticity::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::history::*;
use mailsrv::ffi::mailsrv_string_free;
use mailsrv::ffi::request::mailsrv_request_id;
use mailsrv::ffi::status::mailsrv_status;

const IMAPS: u32 = 1;
const SRV: u32 = mailsrv_origin::Srv as u32;
const DAY: u64 = 86_400;
const NOW: u64 = 1_800_000_000;

fn ctx() -> *mut mailsrv_ctx {
    let cfg = testbed_config(0, 10_000);
    unsafe { mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()) };
    ctx_from(cfg)
}

/// What a dialog needs from one change decision.
#[derive(Debug)]
struct Change {
    decision: u32,
    reason: u32,
    /// (verdict, evidence, probe status, reconnect chain length) of the authenticity object.
    authenticity: Option<(u32, u32, mailsrv_status, usize)>,
    detail: String,
}

fn check(domain: &str, host: &str, port: u16, history: *mut mailsrv_history, now: u64) -> Change {
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
            SRV,
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
        let a = mailsrv_change_authenticity(out);
        Change {
            decision: mailsrv_change_decision(out),
            reason: mailsrv_change_reason(out),
            authenticity: (!a.is_null()).then(|| {
                (
                    mailsrv_authenticity_verdict(a),
                    mailsrv_authenticity_evidence(a),
                    mailsrv_authenticity_probe_status(a),
                    mailsrv_authenticity_chain_len(a, 1),
                )
            }),
            detail: text(mailsrv_change_detail(out)),
        }
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

fn reason(r: mailsrv_reason) -> u32 {
    r as u32
}

fn memory_history() -> *mut mailsrv_history {
    let mut h = ptr::null_mut();
    let st = unsafe { mailsrv_history_import(ptr::null(), 0, &mut h, ptr::null_mut(), 0) };
    assert_eq!(st, mailsrv_status::Ok);
    h
}

#[test]
fn ask_user_carries_the_authenticity_and_a_decline_silences_it() {
    let h = memory_history();
    let port = port("IMAPS");
    // Seen eight days ago already: unverified (the provider's certificate does not name
    // insecure.test), persisted: ASK_USER.
    unsafe {
        assert_eq!(
            mailsrv_history_observe(
                h,
                c("insecure.test").as_ptr(),
                IMAPS,
                c("mail.example.net").as_ptr(),
                port,
                NOW - 8 * DAY
            ),
            mailsrv_status::Ok
        );
    }
    let ch = check("insecure.test", "old.example.net", 993, h, NOW);
    assert_eq!(ch.decision, ASK_USER, "{}", ch.detail);
    assert_eq!(ch.reason, reason(mailsrv_reason::UnverifiedPersisted));
    let (verdict, evidence, probe, target_chain) =
        ch.authenticity.expect("the fresh answer was judged");
    assert_eq!(verdict, mailsrv_verdict::Unverified as u32);
    assert_eq!(evidence, mailsrv_evidence::None as u32);
    assert_eq!(
        probe,
        mailsrv_status::NameMismatch,
        "what the dialog tells the user"
    );
    assert!(target_chain > 0, "the certificate to show");
    // The user says no: not asked again while the answer persists.
    unsafe {
        assert_eq!(
            mailsrv_history_decline(
                h,
                c("insecure.test").as_ptr(),
                IMAPS,
                c("mail.example.net").as_ptr(),
                port,
                NOW + 60
            ),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_history_decline(
                h,
                c("insecure.test").as_ptr(),
                IMAPS,
                c("never.example.net").as_ptr(),
                port,
                NOW
            ),
            mailsrv_status::NotFound
        );
    }
    let ch = check("insecure.test", "old.example.net", 993, h, NOW + DAY);
    assert_eq!(ch.decision, NO_CHANGE, "{}", ch.detail);
    assert_eq!(ch.reason, reason(mailsrv_reason::Declined));
    // The same answer, never seen before, on a fresh history: WAIT, reason UNVERIFIED_NEW.
    let fresh = memory_history();
    let ch = check("insecure.test", "old.example.net", 993, fresh, NOW);
    assert_eq!(ch.decision, WAIT);
    assert_eq!(ch.reason, reason(mailsrv_reason::UnverifiedNew));
    unsafe {
        mailsrv_history_free(h);
        mailsrv_history_free(fresh);
    }
}

#[test]
fn reject_for_bogus_is_not_reject_for_a_wrong_target() {
    let ch = check("bogus.test", "old.example.net", 993, ptr::null_mut(), NOW);
    assert_eq!(ch.decision, REJECT, "{}", ch.detail);
    assert_eq!(ch.reason, reason(mailsrv_reason::Bogus));
    // A DNSSEC-signed SRV target whose certificate fails its signed TLSA records.
    let ch = check(
        "danebad.example.com",
        "old.example.net",
        993,
        ptr::null_mut(),
        NOW,
    );
    assert_eq!(ch.decision, REJECT, "{}", ch.detail);
    assert_eq!(ch.reason, reason(mailsrv_reason::WrongTarget));
    assert_eq!(ch.authenticity.unwrap().0, mailsrv_verdict::Rejected as u32);
}

#[test]
fn no_change_after_a_failed_lookup_is_visible() {
    let ch = check("broken.test", "old.example.net", 993, ptr::null_mut(), NOW);
    assert_eq!(ch.decision, NO_CHANGE);
    assert_eq!(
        ch.reason,
        reason(mailsrv_reason::LookupFailed),
        "{}",
        ch.detail
    );
    assert!(ch.authenticity.is_none());
    let ch = check(
        "example.com",
        "mail.example.net",
        port("IMAPS"),
        ptr::null_mut(),
        NOW,
    );
    assert_eq!(
        (ch.decision, ch.reason),
        (NO_CHANGE, reason(mailsrv_reason::Unchanged))
    );
    let ch = check("example.com", "old.example.net", 993, ptr::null_mut(), NOW);
    assert_eq!(
        (ch.decision, ch.reason),
        (UPDATE, reason(mailsrv_reason::Authenticated))
    );
    assert_eq!(ch.authenticity.unwrap().1, mailsrv_evidence::Dnssec as u32);
}

// ------------------------------------------------------------------ the history itself

fn export(h: *const mailsrv_history) -> String {
    let mut s = ptr::null_mut();
    assert_eq!(
        unsafe { mailsrv_history_export(h, &mut s) },
        mailsrv_status::Ok
    );
    let t = text(s);
    unsafe { mailsrv_string_free(s) };
    t
}

fn import(bytes: &[u8]) -> Result<*mut mailsrv_history, (mailsrv_status, String)> {
    let mut h = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    let st = unsafe {
        mailsrv_history_import(
            bytes.as_ptr(),
            bytes.len(),
            &mut h,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if st == mailsrv_status::Ok {
        Ok(h)
    } else {
        Err((st, text(err.as_ptr())))
    }
}

fn observe(h: *mut mailsrv_history, target: &str, when: u64) {
    let st = unsafe {
        mailsrv_history_observe(
            h,
            c("example.com").as_ptr(),
            IMAPS,
            c(target).as_ptr(),
            993,
            when,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
}

#[test]
fn export_import_round_trip_and_prune() {
    let h = memory_history();
    observe(h, "old.example.net", DAY);
    observe(h, "new.example.net", 400 * DAY);
    unsafe {
        mailsrv_history_decline(
            h,
            c("example.com").as_ptr(),
            IMAPS,
            c("new.example.net").as_ptr(),
            993,
            401 * DAY,
        )
    };
    let text1 = export(h);
    assert!(text1.starts_with("mailsrv-history 2\n"), "{text1}");
    let copy = import(text1.as_bytes()).unwrap();
    assert_eq!(export(copy), text1);
    assert_eq!(unsafe { mailsrv_history_len(copy) }, 2);
    let mut removed = 0;
    assert_eq!(
        unsafe { mailsrv_history_prune(copy, 100 * DAY, &mut removed) },
        mailsrv_status::Ok
    );
    assert_eq!(removed, 1);
    assert_eq!(unsafe { mailsrv_history_len(copy) }, 1);
    // An imported history has no file to save.
    assert_eq!(
        unsafe { mailsrv_history_save(copy, ptr::null_mut(), 0) },
        mailsrv_status::InvalidArg
    );
    // Damaged and newer bytes.
    assert_eq!(import(b"hello").unwrap_err().0, mailsrv_status::Corrupt);
    let (st, why) = import(b"mailsrv-history 9\nend 0\n").unwrap_err();
    assert_eq!(st, mailsrv_status::UnsupportedVersion);
    assert!(why.contains("version 9"), "{why}");
    unsafe {
        mailsrv_history_free(h);
        mailsrv_history_free(copy);
    }
}

#[test]
fn a_newer_history_file_is_refused_and_left_untouched() {
    let dir = std::env::temp_dir().join(format!("mailsrv-dialog-{}-newer", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history");
    let body = "mailsrv-history 7\nwhatever mailsrv 7 writes\n";
    std::fs::write(&path, body).unwrap();
    let mut h = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    let st = unsafe {
        mailsrv_history_open(
            c(path.to_str().unwrap()).as_ptr(),
            &mut h,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    assert_eq!(
        st,
        mailsrv_status::UnsupportedVersion,
        "{}",
        text(err.as_ptr())
    );
    assert!(h.is_null());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), body);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "nothing moved aside"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

unsafe extern "C" fn saved_cb(
    ud: *mut c_void,
    _id: mailsrv_request_id,
    status: mailsrv_status,
    detail: *const c_char,
) {
    let tx = unsafe { Box::from_raw(ud.cast::<mpsc::Sender<(mailsrv_status, String)>>()) };
    let _ = tx.send((status, text(detail)));
}

#[test]
fn async_save_keeps_what_was_observed_meanwhile() {
    let dir = std::env::temp_dir().join(format!("mailsrv-dialog-{}-async", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history");
    let path_c = c(path.to_str().unwrap());
    let mut h = ptr::null_mut();
    assert_eq!(
        unsafe { mailsrv_history_open(path_c.as_ptr(), &mut h, ptr::null_mut(), 0) },
        mailsrv_status::Ok
    );
    observe(h, "a.example.net", 100);
    let ctx = ctx();
    let (tx, rx) = mpsc::channel::<(mailsrv_status, String)>();
    let ud = Box::into_raw(Box::new(tx)).cast::<c_void>();
    let mut id = 0;
    let st = unsafe { mailsrv_history_save_async(ctx, h, Some(saved_cb), ud, &mut id) };
    assert_eq!(st, mailsrv_status::Ok);
    observe(h, "a.example.net", 200);
    // The history may be freed before the callback: the save holds its own reference.
    unsafe { mailsrv_history_free(h) };
    let (st, detail) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(st, mailsrv_status::Ok, "{detail}");
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(
        on_disk.contains("obs example.com imaps a.example.net 993 100 "),
        "{on_disk}"
    );
    // A file a newer mailsrv wrote meanwhile: the async save refuses it too, and leaves it.
    let mut h = ptr::null_mut();
    assert_eq!(
        unsafe { mailsrv_history_open(path_c.as_ptr(), &mut h, ptr::null_mut(), 0) },
        mailsrv_status::Ok
    );
    std::fs::write(&path, "mailsrv-history 3\n").unwrap();
    let (tx, rx) = mpsc::channel::<(mailsrv_status, String)>();
    let ud = Box::into_raw(Box::new(tx)).cast::<c_void>();
    assert_eq!(
        unsafe { mailsrv_history_save_async(ctx, h, Some(saved_cb), ud, ptr::null_mut()) },
        mailsrv_status::Ok
    );
    let (st, _) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(st, mailsrv_status::UnsupportedVersion);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "mailsrv-history 3\n"
    );
    unsafe {
        assert_eq!(
            mailsrv_history_save_async(ctx, h, None, ptr::null_mut(), ptr::null_mut()),
            mailsrv_status::NullArg
        );
        mailsrv_history_free(h);
        mailsrv_ctx_free(ctx);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
