//! The C layer's contract (docs/design.md §4) through the exported functions: NULL and bad
//! arguments, status texts, the panic boundary, async delivery in both dispatch modes,
//! exactly-once callbacks under cancel races and mailsrv_ctx_free with work in flight.

mod common;

use std::collections::HashMap;
use std::os::raw::{c_char, c_void};
use std::ptr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::discovery::*;
use mailsrv::ffi::request::mailsrv_request_id;
use mailsrv::ffi::status::*;
use mailsrv::ffi::version::*;

const THREAD: u32 = 0;
const LOOP: u32 = 1;

#[test]
fn every_status_has_text_and_unknown_codes_are_named() {
    let codes = [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100, 101, 102, 103, 104, 200, 201, 202, 300, 301,
        302, 303, 304, 305, 306, 307, 308, 400, 401, 402, 403,
    ];
    for code in codes {
        let t = text(mailsrv_status_str(code));
        assert!(!t.is_empty() && t != "unknown status", "{code}");
    }
    for code in [-1, 13, 99, 105, 999, i32::MAX] {
        assert_eq!(text(mailsrv_status_str(code)), "unknown status");
    }
    assert!(mailsrv_status_is_dns_error(102) && !mailsrv_status_is_dns_error(303));
    assert!(mailsrv_status_is_cert_error(303) && !mailsrv_status_is_cert_error(0));
}

#[test]
fn version_names_the_engines() {
    let v = text(mailsrv_version());
    assert!(
        v.starts_with(&format!("mailsrv {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(
        v.contains("rustls 0.23") && v.contains("hickory-resolver 0.26"),
        "{v}"
    );
}

#[cfg(feature = "test-hooks")]
#[test]
fn a_panic_becomes_a_status() {
    assert_eq!(mailsrv_test_panic(), mailsrv_status::Panic);
    assert_eq!(
        mailsrv_test_panic(),
        mailsrv_status::Panic,
        "and the process goes on"
    );
}

#[test]
fn null_arguments_never_crash() {
    unsafe {
        assert_eq!(mailsrv_config_new(ptr::null_mut()), mailsrv_status::NullArg);
        assert_eq!(
            mailsrv_config_set_nameserver(ptr::null_mut(), c("::1").as_ptr()),
            mailsrv_status::NullArg
        );
        let mut cfg = ptr::null_mut();
        mailsrv_config_new(&mut cfg);
        assert_eq!(
            mailsrv_config_set_nameserver(cfg, ptr::null()),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_config_set_trust_anchor_file(cfg, ptr::null()),
            mailsrv_status::Ok,
            "NULL resets"
        );
        assert_eq!(
            mailsrv_ctx_new(cfg, ptr::null_mut(), ptr::null_mut(), 0),
            mailsrv_status::NullArg
        );
        mailsrv_config_free(cfg);
        mailsrv_config_free(ptr::null_mut());
        mailsrv_ctx_free(ptr::null_mut());
        mailsrv_discovery_free(ptr::null_mut());
        assert_eq!(mailsrv_ctx_notify_fd(ptr::null()), -1);
        assert_eq!(
            mailsrv_ctx_dispatch(ptr::null_mut(), ptr::null_mut()),
            mailsrv_status::NullArg
        );
        assert_eq!(mailsrv_cancel(ptr::null_mut(), 1), mailsrv_status::NullArg);
        let mut out = ptr::null_mut();
        assert_eq!(
            mailsrv_srv_discover(
                ptr::null_mut(),
                c("example.com").as_ptr(),
                0,
                0,
                &mut out,
                ptr::null_mut(),
                0
            ),
            mailsrv_status::NullArg
        );
        assert!(mailsrv_discovery_domain(ptr::null()).is_null());
        assert_eq!(mailsrv_discovery_services_len(ptr::null()), 0);
        assert!(mailsrv_srv_set_endpoint_get(ptr::null(), 0).is_null());
        assert_eq!(mailsrv_srv_set_status(ptr::null()), mailsrv_status::NullArg);
        assert_eq!(mailsrv_endpoint_port(ptr::null()), 0);
        assert!(mailsrv_endpoint_target(ptr::null()).is_null());
        assert_eq!(text(mailsrv_service_name(3)), "");
        assert_eq!(text(mailsrv_service_name(16)), "submissions");
    }
}

/// One table of default security modes, in the library (Python and C ask it).
#[test]
fn service_default_security_is_the_library_table() {
    use mailsrv::ffi::stream::mailsrv_security as S;
    let cases = [
        (1, S::ImplicitTlsImap),
        (2, S::StarttlsImap),
        (4, S::ImplicitTlsPop3),
        (8, S::StarttlsPop3),
        (16, S::ImplicitTlsSmtp),
        (32, S::StarttlsSmtp),
    ];
    unsafe {
        for (bit, want) in cases {
            let mut out = S::ImplicitTls;
            assert_eq!(
                mailsrv_service_default_security(bit, &mut out),
                mailsrv_status::Ok
            );
            assert_eq!(out as u32, want as u32, "service bit {bit}");
        }
        let mut out = S::ImplicitTls;
        for bad in [0, 3, 64, u32::MAX] {
            assert_eq!(
                mailsrv_service_default_security(bad, &mut out),
                mailsrv_status::InvalidArg
            );
        }
        assert_eq!(
            mailsrv_service_default_security(1, ptr::null_mut()),
            mailsrv_status::NullArg
        );
    }
}

#[test]
fn unknown_enum_values_and_bad_text_are_invalid() {
    unsafe {
        let mut cfg = ptr::null_mut();
        mailsrv_config_new(&mut cfg);
        assert_eq!(
            mailsrv_config_set_dispatch(cfg, 2),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_config_set_flags(cfg, 0x100),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_config_set_timeout_ms(cfg, 600_001),
            mailsrv_status::InvalidArg
        );
        for bad in ["", "mail.example.net", "127.0.0.1:70000", "1.2.3"] {
            assert_eq!(
                mailsrv_config_set_nameserver(cfg, c(bad).as_ptr()),
                mailsrv_status::InvalidArg,
                "{bad}"
            );
        }
        let latin1 = b"127.0.0.\xff\0";
        assert_eq!(
            mailsrv_config_set_nameserver(cfg, latin1.as_ptr().cast()),
            mailsrv_status::InvalidArg
        );
        // A trust anchor that is not one fails the context, with a reason.
        let dir = std::env::temp_dir().join(format!("mailsrv-anchor-{}", std::process::id()));
        std::fs::write(&dir, "not a trust anchor\n").unwrap();
        mailsrv_config_set_nameserver(cfg, c("127.0.0.1:5353").as_ptr());
        mailsrv_config_set_trust_anchor_file(cfg, c(dir.to_str().unwrap()).as_ptr());
        let mut ctx = ptr::null_mut();
        let mut err = [0 as c_char; 200];
        assert_eq!(
            mailsrv_ctx_new(cfg, &mut ctx, err.as_mut_ptr(), err.len()),
            mailsrv_status::BadTrustAnchor
        );
        assert!(ctx.is_null());
        assert!(
            text(err.as_ptr()).contains("mailsrv-anchor"),
            "{}",
            text(err.as_ptr())
        );
        mailsrv_config_set_trust_anchor_file(cfg, c("/nonexistent/anchor").as_ptr());
        assert_eq!(
            mailsrv_ctx_new(cfg, &mut ctx, ptr::null_mut(), 0),
            mailsrv_status::BadTrustAnchor
        );
        let _ = std::fs::remove_file(dir);
        mailsrv_config_free(cfg);
    }
}

/// What the callbacks saw: (id, status, result present), in order, plus a wake-up.
#[derive(Default)]
struct Seen {
    calls: Mutex<Vec<(mailsrv_request_id, mailsrv_status, bool)>>,
    cv: Condvar,
}

impl Seen {
    fn wait_for(
        &self,
        n: usize,
        limit: Duration,
    ) -> Vec<(mailsrv_request_id, mailsrv_status, bool)> {
        let deadline = Instant::now() + limit;
        let mut calls = self.calls.lock().unwrap();
        while calls.len() < n && Instant::now() < deadline {
            calls = self
                .cv
                .wait_timeout(calls, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        calls.clone()
    }
}

unsafe extern "C" fn record(
    ud: *mut c_void,
    id: mailsrv_request_id,
    status: mailsrv_status,
    result: *mut mailsrv_discovery,
    detail: *const c_char,
) {
    let seen = unsafe { &*(ud as *const Seen) };
    assert!(!detail.is_null());
    let ok = !result.is_null();
    assert_eq!(ok, status == mailsrv_status::Ok, "result iff OK");
    unsafe { mailsrv_discovery_free(result) };
    seen.calls.lock().unwrap().push((id, status, ok));
    seen.cv.notify_all();
}

fn start(ctx: *mut mailsrv_ctx, address: &str, seen: &Arc<Seen>) -> mailsrv_request_id {
    let mut id = 0;
    let st = unsafe {
        mailsrv_srv_discover_async(
            ctx,
            c(address).as_ptr(),
            0,
            0,
            Some(record),
            Arc::as_ptr(seen) as *mut c_void,
            &mut id,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    assert_ne!(id, 0);
    id
}

/// A context whose nameserver never answers: its requests stay pending until cancelled.
fn dead_ctx(dispatch: u32) -> *mut mailsrv_ctx {
    let mut cfg = ptr::null_mut();
    unsafe {
        mailsrv_config_new(&mut cfg);
        mailsrv_config_set_nameserver(cfg, c(&env("MAILSRV_TEST_DEAD_NS")).as_ptr());
        mailsrv_config_set_trust_anchor_file(cfg, c(&env("MAILSRV_TEST_ANCHOR")).as_ptr());
        mailsrv_config_set_dispatch(cfg, dispatch);
        mailsrv_config_set_timeout_ms(cfg, 60_000);
    }
    ctx_from(cfg)
}

#[test]
fn thread_mode_callback_runs_once_with_the_result() {
    let ctx = testbed_ctx(THREAD, 10_000);
    assert_eq!(unsafe { mailsrv_ctx_notify_fd(ctx) }, -1);
    assert_eq!(
        unsafe { mailsrv_ctx_dispatch(ctx, ptr::null_mut()) },
        mailsrv_status::InvalidArg
    );
    let seen = Arc::new(Seen::default());
    let ids: Vec<_> = (0..5).map(|_| start(ctx, "example.com", &seen)).collect();
    let calls = seen.wait_for(5, Duration::from_secs(10));
    assert_eq!(calls.len(), 5);
    let mut got: Vec<_> = calls.iter().map(|c| c.0).collect();
    got.sort();
    assert_eq!(got, ids, "each id exactly once");
    assert!(calls.iter().all(|c| c.1 == mailsrv_status::Ok && c.2));
    unsafe { mailsrv_ctx_free(ctx) };
    assert_eq!(seen.calls.lock().unwrap().len(), 5, "nothing after free");
}

#[test]
fn async_bad_input_fails_at_once_without_callback() {
    let ctx = testbed_ctx(THREAD, 10_000);
    let seen = Arc::new(Seen::default());
    let mut id = 0;
    unsafe {
        let st = mailsrv_srv_discover_async(
            ctx,
            c("no-dot").as_ptr(),
            0,
            0,
            Some(record),
            ptr::null_mut(),
            &mut id,
        );
        assert_eq!(st, mailsrv_status::InvalidArg);
        let st = mailsrv_srv_discover_async(
            ctx,
            c("example.com").as_ptr(),
            0,
            0,
            None,
            ptr::null_mut(),
            &mut id,
        );
        assert_eq!(st, mailsrv_status::NullArg);
        mailsrv_ctx_free(ctx);
    }
    assert!(seen.calls.lock().unwrap().is_empty());
}

fn readable(fd: i32, wait_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    unsafe { libc::poll(&mut p, 1, wait_ms) == 1 && p.revents & libc::POLLIN != 0 }
}

#[test]
fn loop_mode_delivers_only_inside_dispatch_and_the_fd_tracks_the_queue() {
    let ctx = testbed_ctx(LOOP, 10_000);
    let fd = unsafe { mailsrv_ctx_notify_fd(ctx) };
    assert!(fd >= 0);
    assert!(!readable(fd, 0), "nothing queued yet");
    let seen = Arc::new(Seen::default());
    let id = start(ctx, "example.com", &seen);
    assert!(readable(fd, 10_000), "completion signalled");
    assert!(
        seen.calls.lock().unwrap().is_empty(),
        "no callback outside dispatch"
    );
    let mut ran = 0;
    assert_eq!(
        unsafe { mailsrv_ctx_dispatch(ctx, &mut ran) },
        mailsrv_status::Ok
    );
    assert_eq!(ran, 1);
    assert_eq!(
        *seen.calls.lock().unwrap(),
        [(id, mailsrv_status::Ok, true)]
    );
    assert!(!readable(fd, 0), "drained");
    assert_eq!(
        unsafe { mailsrv_ctx_dispatch(ctx, &mut ran) },
        mailsrv_status::Ok
    );
    assert_eq!(ran, 0);
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn cancel_delivers_cancelled_once_and_then_not_found() {
    for mode in [THREAD, LOOP] {
        let ctx = dead_ctx(mode);
        let seen = Arc::new(Seen::default());
        let id = start(ctx, "example.com", &seen);
        assert_eq!(unsafe { mailsrv_cancel(ctx, id) }, mailsrv_status::Ok);
        assert_eq!(unsafe { mailsrv_cancel(ctx, id) }, mailsrv_status::NotFound);
        assert_eq!(
            unsafe { mailsrv_cancel(ctx, 999_999) },
            mailsrv_status::NotFound
        );
        if mode == LOOP {
            assert!(readable(unsafe { mailsrv_ctx_notify_fd(ctx) }, 5_000));
            unsafe { mailsrv_ctx_dispatch(ctx, ptr::null_mut()) };
        }
        let calls = seen.wait_for(1, Duration::from_secs(5));
        assert_eq!(calls, [(id, mailsrv_status::Cancelled, false)]);
        unsafe { mailsrv_ctx_free(ctx) };
        assert_eq!(seen.calls.lock().unwrap().len(), 1);
    }
}

#[test]
fn ctx_free_with_pending_work_delivers_shutdown_to_each_once() {
    for mode in [THREAD, LOOP] {
        let ctx = dead_ctx(mode);
        let seen = Arc::new(Seen::default());
        let ids: Vec<_> = (0..20).map(|_| start(ctx, "example.com", &seen)).collect();
        unsafe { mailsrv_ctx_free(ctx) };
        // ctx_free returns after every callback ran, in both modes.
        let calls = seen.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 20, "mode {mode}");
        let mut got: Vec<_> = calls.iter().map(|c| c.0).collect();
        got.sort();
        assert_eq!(got, ids);
        assert!(calls.iter().all(|c| c.1 == mailsrv_status::Shutdown));
    }
}

#[test]
fn random_cancels_under_load_keep_exactly_once() {
    for mode in [THREAD, LOOP] {
        let ctx = testbed_ctx(mode, 10_000);
        let seen = Arc::new(Seen::default());
        let mut ids = Vec::new();
        let mut cancelled = 0;
        for i in 0..200u64 {
            let address = if i % 3 == 0 {
                "insecure.test"
            } else {
                "example.com"
            };
            let id = start(ctx, address, &seen);
            ids.push(id);
            if i % 4 == 1 && unsafe { mailsrv_cancel(ctx, id) } == mailsrv_status::Ok {
                cancelled += 1;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.calls.lock().unwrap().len() < ids.len() && Instant::now() < deadline {
            if mode == LOOP {
                readable(unsafe { mailsrv_ctx_notify_fd(ctx) }, 100);
                unsafe { mailsrv_ctx_dispatch(ctx, ptr::null_mut()) };
            } else {
                seen.wait_for(ids.len(), Duration::from_millis(100));
            }
        }
        unsafe { mailsrv_ctx_free(ctx) };
        let calls = seen.calls.lock().unwrap().clone();
        let mut per_id: HashMap<u64, usize> = HashMap::new();
        for c in &calls {
            *per_id.entry(c.0).or_default() += 1;
        }
        assert_eq!(
            per_id.len(),
            ids.len(),
            "mode {mode}: every request answered"
        );
        assert!(
            per_id.values().all(|&n| n == 1),
            "mode {mode}: exactly once"
        );
        let n_cancelled = calls
            .iter()
            .filter(|c| c.1 == mailsrv_status::Cancelled)
            .count();
        assert_eq!(n_cancelled, cancelled, "mode {mode}");
        assert!(
            calls
                .iter()
                .all(|c| matches!(c.1, mailsrv_status::Ok | mailsrv_status::Cancelled))
        );
    }
}

/// State for callbacks that call back into the library.
struct Reentry {
    ctx: *mut mailsrv_ctx,
    seen: Arc<Seen>,
    inner: Mutex<Vec<mailsrv_status>>,
}

unsafe extern "C" fn reenter(
    ud: *mut c_void,
    id: mailsrv_request_id,
    status: mailsrv_status,
    result: *mut mailsrv_discovery,
    detail: *const c_char,
) {
    let r = unsafe { &*(ud as *const Reentry) };
    let mut out = ptr::null_mut();
    let mut inner = r.inner.lock().unwrap();
    // Blocking calls and dispatch are refused here; async calls and cancel are fine.
    inner.push(unsafe {
        mailsrv_srv_discover(
            r.ctx,
            c("example.com").as_ptr(),
            1,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        )
    });
    inner.push(unsafe { mailsrv_ctx_dispatch(r.ctx, ptr::null_mut()) });
    let mut next = 0;
    // A domain this context has not asked yet: example.com's answers are in the context's
    // answer cache by now, and a discovery served from it may finish before the cancel.
    inner.push(unsafe {
        mailsrv_srv_discover_async(
            r.ctx,
            c("example.test").as_ptr(),
            1,
            0,
            Some(record),
            Arc::as_ptr(&r.seen) as *mut c_void,
            &mut next,
        )
    });
    inner.push(unsafe { mailsrv_cancel(r.ctx, next) });
    drop(inner);
    unsafe {
        record(
            Arc::as_ptr(&r.seen) as *mut c_void,
            id,
            status,
            result,
            detail,
        )
    };
}

#[test]
fn callbacks_may_call_back_into_the_library() {
    for mode in [THREAD, LOOP] {
        let ctx = testbed_ctx(mode, 10_000);
        let r = Box::new(Reentry {
            ctx,
            seen: Arc::new(Seen::default()),
            inner: Mutex::new(Vec::new()),
        });
        let mut id = 0;
        let st = unsafe {
            mailsrv_srv_discover_async(
                ctx,
                c("example.com").as_ptr(),
                1,
                0,
                Some(reenter),
                &*r as *const Reentry as *mut c_void,
                &mut id,
            )
        };
        assert_eq!(st, mailsrv_status::Ok);
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.seen.calls.lock().unwrap().len() < 2 && Instant::now() < deadline {
            if mode == LOOP {
                readable(unsafe { mailsrv_ctx_notify_fd(ctx) }, 100);
                unsafe { mailsrv_ctx_dispatch(ctx, ptr::null_mut()) };
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        assert_eq!(
            *r.inner.lock().unwrap(),
            [
                mailsrv_status::InCallback,
                mailsrv_status::InCallback,
                mailsrv_status::Ok,
                mailsrv_status::Ok
            ],
            "mode {mode}"
        );
        let calls = r.seen.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 2, "mode {mode}");
        assert!(calls.contains(&(id, mailsrv_status::Ok, true)));
        assert!(calls.iter().any(|c| c.1 == mailsrv_status::Cancelled));
        unsafe { mailsrv_ctx_free(ctx) };
    }
}

/// Frees its own context from inside the callback.
unsafe extern "C" fn free_ctx_inside(
    ud: *mut c_void,
    _id: mailsrv_request_id,
    status: mailsrv_status,
    result: *mut mailsrv_discovery,
    _detail: *const c_char,
) {
    let slot = unsafe { &*(ud as *const (Mutex<usize>, Mutex<*mut mailsrv_ctx>)) };
    unsafe { mailsrv_discovery_free(result) };
    let mut n = slot.0.lock().unwrap();
    *n += 1;
    if status == mailsrv_status::Ok {
        let ctx = std::mem::replace(&mut *slot.1.lock().unwrap(), ptr::null_mut());
        unsafe { mailsrv_ctx_free(ctx) };
    }
}

#[test]
fn ctx_free_inside_a_callback_finishes_after_it() {
    let ctx = testbed_ctx(THREAD, 10_000);
    let state = Box::new((Mutex::new(0usize), Mutex::new(ctx)));
    let ud = &*state as *const _ as *mut c_void;
    let mut id = 0;
    unsafe {
        assert_eq!(
            mailsrv_srv_discover_async(
                ctx,
                c("example.com").as_ptr(),
                1,
                0,
                Some(free_ctx_inside),
                ud,
                &mut id
            ),
            mailsrv_status::Ok
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state.1.lock().unwrap().is_null() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(*state.0.lock().unwrap(), 1);
    assert!(
        state.1.lock().unwrap().is_null(),
        "the callback freed the context"
    );
}

/// Signal bits (`SigBlk:` in /proc/<tid>/status) of every thread of this process whose name
/// starts with `prefix`.
fn blocked_signals_of_threads(prefix: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let comm = comm.trim().to_string();
        if !comm.starts_with(prefix) {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
            .unwrap();
        out.push((comm, mask));
    }
    out
}

/// A terminal client's SIGINT and SIGWINCH must reach its own threads: every thread the
/// library starts (runtime workers, the callback thread) blocks all signals, and the
/// caller's own mask is left as it was (issue 15, process hygiene).
#[test]
fn library_threads_block_every_signal() {
    let bit = |sig: i32| 1u64 << (sig - 1);
    let ctx = testbed_ctx(THREAD, 10_000);
    let seen = Arc::new(Seen::default());
    start(ctx, "example.com", &seen);
    assert_eq!(seen.wait_for(1, Duration::from_secs(10)).len(), 1);
    let threads = blocked_signals_of_threads("mailsrv-");
    assert!(
        threads.iter().any(|(n, _)| n == "mailsrv-worker"),
        "{threads:?}"
    );
    assert!(
        threads
            .iter()
            .any(|(n, _)| n.starts_with("mailsrv-callbac")),
        "{threads:?}"
    );
    for (name, mask) in &threads {
        for sig in [
            libc::SIGINT,
            libc::SIGWINCH,
            libc::SIGTERM,
            libc::SIGCHLD,
            libc::SIGPIPE,
        ] {
            assert_ne!(
                mask & bit(sig),
                0,
                "{name} does not block signal {sig}: {mask:x}"
            );
        }
    }
    // The calling thread's mask is untouched.
    let mine = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let mine = mine
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .unwrap()
        .trim();
    assert_eq!(
        u64::from_str_radix(mine, 16).unwrap() & bit(libc::SIGINT),
        0
    );
    unsafe { mailsrv_ctx_free(ctx) };
}
