//! Concurrency stress (issue 7) through the C entry points, against the testbed's knotd.
//!
//! Thousands of asynchronous discoveries in both dispatch modes, with random cancels from the
//! submitting thread and from inside callbacks, callbacks that start new requests and try
//! forbidden blocking calls, and `mailsrv_ctx_free` while work is in flight. Checked: every
//! request whose `_async` call returned OK gets exactly one callback, none arrives after
//! `mailsrv_ctx_free` returned, a refused submission gets none, and nothing deadlocks (the
//! whole round runs under a watchdog).
//!
//! Run with `testbed/run.sh cargo test --features test-hooks --test stress`.

mod common;

use std::collections::HashMap;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::discovery::*;
use mailsrv::ffi::status::mailsrv_status;

const IMAPS: u32 = 1;
const THREAD: u32 = 0;
const LOOP: u32 = 1;

/// The domains asked: secure, insecure, NXDOMAIN, bogus, SERVFAIL, with a "." record.
const DOMAINS: [&str; 6] = [
    "example.com",
    "insecure.test",
    "nosrv.example.com",
    "bogus.test",
    "broken.test",
    "mixed.example.com",
];

/// A small xorshift generator; the seed is printed so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Shared by the test and its callbacks (userdata points at it).
struct Book {
    ctx: AtomicPtr<mailsrv_ctx>,
    /// Callbacks per request id.
    calls: Mutex<HashMap<u64, u32>>,
    /// Ids whose `_async` returned OK.
    accepted: Mutex<Vec<u64>>,
    /// Set once mailsrv_ctx_free has returned: a callback after that is a bug.
    freed: AtomicBool,
    late: AtomicUsize,
    statuses: Mutex<HashMap<i32, usize>>,
    /// Follow-up requests started from inside callbacks (budget, so the run ends).
    followups_left: AtomicUsize,
    in_callback_refusals: AtomicUsize,
    seed: AtomicU64,
}

impl Book {
    fn new(seed: u64, followups: usize) -> Arc<Book> {
        Arc::new(Book {
            ctx: AtomicPtr::new(ptr::null_mut()),
            calls: Mutex::default(),
            accepted: Mutex::default(),
            freed: AtomicBool::new(false),
            late: AtomicUsize::new(0),
            statuses: Mutex::default(),
            followups_left: AtomicUsize::new(followups),
            in_callback_refusals: AtomicUsize::new(0),
            seed: AtomicU64::new(seed),
        })
    }

    fn submit(self: &Arc<Book>, domain: &str) -> Option<u64> {
        let ctx = self.ctx.load(Ordering::SeqCst);
        let mut id = 0;
        let st = unsafe {
            mailsrv_srv_discover_async(
                ctx,
                c(domain).as_ptr(),
                IMAPS,
                0,
                Some(on_done),
                Arc::as_ptr(self) as *mut c_void,
                &mut id,
            )
        };
        match st {
            mailsrv_status::Ok => {
                self.accepted.lock().unwrap().push(id);
                Some(id)
            }
            // Refused (the context is shutting down): no callback may come for it.
            mailsrv_status::Shutdown => None,
            other => panic!("submit {domain}: {other:?}"),
        }
    }

    fn rng(&self) -> Rng {
        // A per-call generator derived from a shared counter (callbacks run on other threads).
        let s = self.seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::SeqCst);
        Rng(s | 1)
    }
}

unsafe extern "C" fn on_done(
    ud: *mut c_void,
    id: u64,
    status: mailsrv_status,
    result: *mut mailsrv_discovery,
    detail: *const c_char,
) {
    let book = unsafe { &*(ud as *const Book) };
    assert!(!detail.is_null(), "detail is never NULL");
    assert_eq!(
        result.is_null(),
        status != mailsrv_status::Ok,
        "a result exactly with OK"
    );
    if book.freed.load(Ordering::SeqCst) {
        book.late.fetch_add(1, Ordering::SeqCst);
    }
    *book.calls.lock().unwrap().entry(id).or_default() += 1;
    *book
        .statuses
        .lock()
        .unwrap()
        .entry(status as i32)
        .or_default() += 1;
    if !result.is_null() {
        // Read the result from the callback, then free it (ownership passed to us).
        unsafe {
            let s = mailsrv_discovery_find(result, IMAPS);
            assert!(!s.is_null());
            let _ = mailsrv_srv_set_state(s);
            mailsrv_discovery_free(result);
        }
    }
    // Call back into the library: a blocking call is refused, async calls and cancels work.
    let ctx = book.ctx.load(Ordering::SeqCst);
    let mut rng = book.rng();
    match rng.below(8) {
        0 => {
            let mut out = ptr::null_mut();
            let st = unsafe {
                mailsrv_srv_discover(
                    ctx,
                    c("example.com").as_ptr(),
                    IMAPS,
                    0,
                    &mut out,
                    ptr::null_mut(),
                    0,
                )
            };
            assert!(
                st == mailsrv_status::InCallback,
                "blocking call inside a callback: {st:?}"
            );
            assert!(out.is_null());
            book.in_callback_refusals.fetch_add(1, Ordering::SeqCst);
        }
        1 | 2 => {
            let take = book
                .followups_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if take {
                // `book` lives in an Arc the test holds until after mailsrv_ctx_free.
                let arc = unsafe {
                    Arc::increment_strong_count(ud as *const Book);
                    Arc::from_raw(ud as *const Book)
                };
                let dom = DOMAINS[rng.below(DOMAINS.len() as u64) as usize];
                if let Some(new) = arc.submit(dom)
                    && rng.below(2) == 0
                {
                    let st = unsafe { mailsrv_cancel(ctx, new) };
                    assert!(
                        st == mailsrv_status::Ok || st == mailsrv_status::NotFound,
                        "{st:?}"
                    );
                }
            }
        }
        3 => {
            // Cancel some other (maybe finished, maybe unknown) id.
            let victim = id.saturating_sub(rng.below(20));
            let st = unsafe { mailsrv_cancel(ctx, victim) };
            assert!(
                st == mailsrv_status::Ok || st == mailsrv_status::NotFound,
                "{st:?}"
            );
        }
        _ => {}
    }
}

/// One context's run: `n` requests with random cancels; then, with `free_after` = MAX, waits
/// for every callback before mailsrv_ctx_free, else frees after `free_after` submissions (and
/// a random pause) with work in flight. Returns (accepted, callbacks).
fn round(mode: u32, n: usize, free_after: usize, seed: u64) -> (usize, usize) {
    let book = Book::new(seed, n / 4);
    let ctx = testbed_ctx(mode, 10_000);
    book.ctx.store(ctx, Ordering::SeqCst);
    let mut rng = Rng(seed | 1);

    // Loop mode: a dispatcher thread drives the descriptor until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let dispatcher = (mode == LOOP).then(|| {
        let fd = unsafe { mailsrv_ctx_notify_fd(ctx) };
        assert!(fd >= 0);
        let ctx_addr = ctx as usize;
        let stop = stop.clone();
        thread::spawn(move || {
            let ctx = ctx_addr as *mut mailsrv_ctx;
            while !stop.load(Ordering::SeqCst) {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                if unsafe { libc::poll(&mut p, 1, 20) } == 1 {
                    let mut ran = 0usize;
                    assert_eq!(
                        unsafe { mailsrv_ctx_dispatch(ctx, &mut ran) },
                        mailsrv_status::Ok
                    );
                }
            }
        })
    });

    let mut mine = Vec::new();
    for i in 0..n {
        if i == free_after {
            break;
        }
        let dom = DOMAINS[rng.below(DOMAINS.len() as u64) as usize];
        if let Some(id) = book.submit(dom) {
            mine.push(id);
        }
        if rng.below(4) == 0 && !mine.is_empty() {
            let victim = mine[rng.below(mine.len() as u64) as usize];
            let st = unsafe { mailsrv_cancel(ctx, victim) };
            assert!(
                st == mailsrv_status::Ok || st == mailsrv_status::NotFound,
                "{st:?}"
            );
        }
        if i % 64 == 0 {
            thread::yield_now();
        }
    }
    if free_after == usize::MAX {
        // Let everything finish (the callbacks' follow-ups included) before the free.
        let t0 = Instant::now();
        loop {
            let done = book.calls.lock().unwrap().len();
            let acc = book.accepted.lock().unwrap().len();
            if done == acc || t0.elapsed() > Duration::from_secs(20) {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
    } else {
        // Free while work is queued, running and done.
        thread::sleep(Duration::from_millis(rng.below(150)));
    }
    if let Some(d) = dispatcher {
        stop.store(true, Ordering::SeqCst);
        d.join().unwrap();
    }
    unsafe { mailsrv_ctx_free(ctx) };
    book.freed.store(true, Ordering::SeqCst);
    book.ctx.store(ptr::null_mut(), Ordering::SeqCst);
    // Nothing may arrive after mailsrv_ctx_free returned.
    thread::sleep(Duration::from_millis(50));
    assert_eq!(
        book.late.load(Ordering::SeqCst),
        0,
        "callbacks after ctx_free returned"
    );

    let accepted = book.accepted.lock().unwrap().clone();
    let calls = book.calls.lock().unwrap();
    for id in &accepted {
        assert_eq!(
            calls.get(id).copied(),
            Some(1),
            "request {id}: callbacks != 1 (seed {seed})"
        );
    }
    assert_eq!(
        calls.len(),
        accepted.len(),
        "callbacks for ids never accepted (seed {seed})"
    );
    let total: u32 = calls.values().sum();
    let statuses = book.statuses.lock().unwrap();
    eprintln!(
        "mode {mode}: {} accepted, {total} callbacks, {} in-callback refusals, statuses {statuses:?}",
        accepted.len(),
        book.in_callback_refusals.load(Ordering::SeqCst)
    );
    (accepted.len(), total as usize)
}

/// Runs `f` on its own thread; a deadlock shows up as a timeout, not as a hung test run.
fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            h.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The worker panicked: re-raise its panic here.
            match h.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => unreachable!(),
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("no progress in {limit:?}: deadlock?"),
    }
}

fn seed() -> u64 {
    let s = std::env::var("MAILSRV_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("stress seed {s} (MAILSRV_STRESS_SEED replays it)");
    s
}

#[test]
fn thousands_of_requests_exactly_once_in_thread_mode() {
    let seed = seed();
    let t0 = Instant::now();
    let (accepted, total) = watchdog(Duration::from_secs(60), move || {
        let mut acc = (0, 0);
        for (k, (n, free_after)) in [(1200, usize::MAX), (1500, 700), (600, 300)]
            .into_iter()
            .enumerate()
        {
            let (a, t) = round(THREAD, n, free_after, seed.wrapping_add(k as u64 * 7919));
            acc = (acc.0 + a, acc.1 + t);
        }
        acc
    });
    assert!(accepted >= 2000, "{accepted}");
    assert_eq!(accepted, total);
    eprintln!("thread mode: {accepted} requests in {:?}", t0.elapsed());
}

#[test]
fn thousands_of_requests_exactly_once_in_loop_mode() {
    let seed = seed();
    let t0 = Instant::now();
    let (accepted, total) = watchdog(Duration::from_secs(60), move || {
        let mut acc = (0, 0);
        for (k, (n, free_after)) in [(1200, usize::MAX), (1500, 700), (600, 300)]
            .into_iter()
            .enumerate()
        {
            let (a, t) = round(LOOP, n, free_after, seed.wrapping_add(k as u64 * 104_729));
            acc = (acc.0 + a, acc.1 + t);
        }
        acc
    });
    assert!(accepted >= 2000, "{accepted}");
    assert_eq!(accepted, total);
    eprintln!("loop mode: {accepted} requests in {:?}", t0.elapsed());
}

#[test]
fn ctx_free_from_many_threads_racing_with_submitters() {
    // Submitters on four threads while the main thread frees the context: a submission either
    // is refused with SHUTDOWN (no callback) or gets exactly one callback.
    let seed = seed();
    watchdog(Duration::from_secs(60), move || {
        for round_no in 0..5u64 {
            let book = Book::new(seed ^ round_no, 0);
            let ctx = testbed_ctx(THREAD, 10_000);
            book.ctx.store(ctx, Ordering::SeqCst);
            let go = Arc::new(AtomicBool::new(true));
            let mut threads = Vec::new();
            for t in 0..4u64 {
                let (book, go) = (book.clone(), go.clone());
                threads.push(thread::spawn(move || {
                    let mut rng = Rng((seed ^ (t << 32) ^ round_no) | 1);
                    let mut n = 0;
                    while go.load(Ordering::SeqCst) && n < 300 {
                        book.submit(DOMAINS[rng.below(DOMAINS.len() as u64) as usize]);
                        n += 1;
                    }
                }));
            }
            thread::sleep(Duration::from_millis(30));
            // The submitters stop before the free: mailsrv_ctx_free must be the last call.
            go.store(false, Ordering::SeqCst);
            for t in threads {
                t.join().unwrap();
            }
            unsafe { mailsrv_ctx_free(ctx) };
            book.freed.store(true, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(20));
            assert_eq!(book.late.load(Ordering::SeqCst), 0);
            let accepted = book.accepted.lock().unwrap().clone();
            let calls = book.calls.lock().unwrap();
            for id in &accepted {
                assert_eq!(calls.get(id).copied(), Some(1), "request {id}");
            }
            assert_eq!(calls.len(), accepted.len());
        }
    });
}
