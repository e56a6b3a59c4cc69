//! `mailsrv_history` (first/last-seen times of answers and the source that named them, in
//! a file the client chooses) and `mailsrv_srv_change_check` /
//! `mailsrv_account_change_check` (the change decision for one saved service).

use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::authenticity::{mailsrv_authenticity, mailsrv_verdict};
use super::binding::mailsrv_binding;
use super::boundary::{ffi_boundary, free_box, try_mut, try_ref, try_str};
use super::config::call_flags;
use super::ctx::mailsrv_ctx;
use super::errbuf::{finish, with_errbuf};
use super::request::{UserData, deliver_to_c, mailsrv_request_id, started};
use super::status::mailsrv_status;
use super::strings::cstring;
use crate::core::account::change::AccountChangeOutcome;
use crate::core::context::Context;
use crate::core::requests::{Deliver, RequestId};
use crate::core::service::Service;
use crate::core::verdict::Verdict;
use crate::core::verdict::change::{
    Advice, ChangeOutcome, ChangeRequest, DEFAULT_MIN_AGE, Decision, Origin, Reason, Saved,
};
use crate::core::verdict::history::{History, ObservationKey, unix_now};

/// An observation history (opaque). Shared with running checks, so it may be freed while an
/// async change check still runs; its own calls may come from any thread.
pub struct mailsrv_history {
    inner: Arc<Mutex<History>>,
}

/// Where a saved configuration came from.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum mailsrv_origin {
    /// Set up from SRV records.
    Srv = 1,
    /// Typed by the user: never changed automatically.
    User = 2,
    /// Set up from the mail domain's autoconfig document over HTTPS
    /// (MAILSRV_SOURCE_AUTOCONFIG or _AUTOCONFIG_WELLKNOWN).
    Autoconfig = 3,
    /// Set up from the ISPDB's entry for the mail domain (MAILSRV_SOURCE_ISPDB).
    Ispdb = 4,
    /// Set up from the provider named by the MX (MAILSRV_SOURCE_MX_AUTOCONFIG or _MX_ISPDB).
    Mx = 5,
    /// Set up from the legacy plain-HTTP document (MAILSRV_SOURCE_AUTOCONFIG_HTTP).
    AutoconfigHttp = 6,
    /// Set up from the mail domain's PACC document (MAILSRV_SOURCE_PACC). Since 0.1.
    Pacc = 7,
    /// Set up from Exchange Autodiscover (MAILSRV_SOURCE_AUTODISCOVER). Since 0.1.
    Autodiscover = 8,
    /// Set up by guessing (MAILSRV_SOURCE_GUESS): a change check guesses again. Since 0.1.
    Guess = 9,
}

/// What the client may do about a saved service configuration.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub enum mailsrv_decision {
    /// Keep it; nothing to tell the user.
    NoChange = 1,
    /// Switch to the new endpoint: it is authenticated.
    Update = 2,
    /// Offer the change to the user (unverified, but seen consistently long enough).
    AskUser = 3,
    /// Unverified and too new: check again after mailsrv_change_wait_until().
    Wait = 4,
    /// Do not use the new answer; keep the saved configuration and warn.
    Reject = 5,
}

/// Why a change decision is what it is (mailsrv_change_reason()): the dialog a client
/// shows depends on it, not only on the decision. New reasons may be added; treat an
/// unknown one by its decision.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub enum mailsrv_reason {
    /// NO_CHANGE: the saved server is still advertised (or named).
    Unchanged = 1,
    /// NO_CHANGE: the configuration was typed by the user (MAILSRV_ORIGIN_USER).
    UserConfigured = 2,
    /// NO_CHANGE: the lookup failed (timeout, SERVFAIL, no source answered); nothing is
    /// known about the current answer. Look again later; do not tell the user "unchanged".
    LookupFailed = 3,
    /// NO_CHANGE: the domain no longer offers the service (no SRV record, a "." target, or
    /// no such server in the fresh configuration). The saved configuration stays.
    NotOffered = 4,
    /// NO_CHANGE: the fresh answer is for another service (never switched automatically).
    OtherService = 5,
    /// NO_CHANGE: the new servers could not be judged (every check failed).
    NotJudged = 6,
    /// NO_CHANGE: the user declined this very answer (mailsrv_history_decline()) and it has
    /// persisted since: it is not offered again.
    Declined = 7,
    /// UPDATE: the new server is authenticated (see mailsrv_change_authenticity()).
    Authenticated = 8,
    /// WAIT: not verified, and not seen for the minimum age yet.
    UnverifiedNew = 9,
    /// ASK_USER: not verified, but seen consistently for the minimum age.
    UnverifiedPersisted = 10,
    /// REJECT: the SRV answer failed DNSSEC validation (bogus): an attack or a broken
    /// zone; warn, keep the saved configuration.
    Bogus = 11,
    /// REJECT: the new server was proven not to be the domain's (DNSSEC-signed records that
    /// do not hold it, a certificate that does not match its signed TLSA records).
    WrongTarget = 12,
}

/// A refresh decision (opaque, immutable, owned by the caller).
pub struct mailsrv_change {
    decision: mailsrv_decision,
    reason: mailsrv_reason,
    target: Option<CString>,
    port: u16,
    wait_until: u64,
    detail: CString,
    verdict: u32,
    binding: Option<mailsrv_binding>,
    origin: u32,
    authenticity: Option<mailsrv_authenticity>,
}

/// The mailsrv_origin value of `o`.
fn origin_value(o: Origin) -> u32 {
    (match o {
        Origin::Srv => mailsrv_origin::Srv,
        Origin::User => mailsrv_origin::User,
        Origin::Autoconfig => mailsrv_origin::Autoconfig,
        Origin::Ispdb => mailsrv_origin::Ispdb,
        Origin::Mx => mailsrv_origin::Mx,
        Origin::AutoconfigHttp => mailsrv_origin::AutoconfigHttp,
        Origin::Pacc => mailsrv_origin::Pacc,
        Origin::Autodiscover => mailsrv_origin::Autodiscover,
        Origin::Guess => mailsrv_origin::Guess,
    }) as u32
}

/// The origin of a mailsrv_origin value.
fn origin_of(value: u32) -> Option<Origin> {
    Origin::ALL.into_iter().find(|o| origin_value(*o) == value)
}

impl mailsrv_change {
    fn new(o: ChangeOutcome) -> Self {
        let origin = o.origin();
        let verdict = o.authenticity.as_ref().map(|a| a.verdict);
        let mut c = Self::of(o.advice, verdict, origin);
        c.authenticity = o.authenticity.map(mailsrv_authenticity::new);
        c
    }

    fn of_account(o: AccountChangeOutcome) -> Self {
        let origin = o.origin();
        let mut c = Self::of(o.advice, o.verdict, origin);
        c.authenticity = o
            .candidate
            .and_then(|i| o.account.candidates.into_iter().nth(i))
            .and_then(|cand| cand.verdict.ok())
            .map(mailsrv_authenticity::new);
        c
    }

    fn of(advice: Advice, verdict: Option<Verdict>, origin: Option<Origin>) -> Self {
        let (target, port) = match &advice.target {
            Some((t, p)) => (Some(cstring(t)), *p),
            None => (None, 0),
        };
        mailsrv_change {
            decision: match advice.decision {
                Decision::NoChange => mailsrv_decision::NoChange,
                Decision::Update => mailsrv_decision::Update,
                Decision::AskUser => mailsrv_decision::AskUser,
                Decision::Wait => mailsrv_decision::Wait,
                Decision::Reject => mailsrv_decision::Reject,
            },
            target,
            port,
            reason: match advice.reason {
                Reason::Unchanged => mailsrv_reason::Unchanged,
                Reason::UserConfigured => mailsrv_reason::UserConfigured,
                Reason::LookupFailed => mailsrv_reason::LookupFailed,
                Reason::NotOffered => mailsrv_reason::NotOffered,
                Reason::OtherService => mailsrv_reason::OtherService,
                Reason::NotJudged => mailsrv_reason::NotJudged,
                Reason::Declined => mailsrv_reason::Declined,
                Reason::Authenticated => mailsrv_reason::Authenticated,
                Reason::UnverifiedNew => mailsrv_reason::UnverifiedNew,
                Reason::UnverifiedPersisted => mailsrv_reason::UnverifiedPersisted,
                Reason::Bogus => mailsrv_reason::Bogus,
                Reason::WrongTarget => mailsrv_reason::WrongTarget,
            },
            authenticity: None,
            wait_until: advice.wait_until.unwrap_or(0),
            detail: cstring(&advice.detail),
            binding: advice.binding.map(mailsrv_binding::new),
            origin: origin.map_or(0, origin_value),
            verdict: match verdict {
                None => 0,
                Some(Verdict::Authentic) => mailsrv_verdict::Authentic as u32,
                Some(Verdict::Unverified) => mailsrv_verdict::Unverified as u32,
                Some(Verdict::Rejected) => mailsrv_verdict::Rejected as u32,
            },
        }
    }
}

fn status_of(r: crate::core::Result<()>) -> mailsrv_status {
    r.map_or_else(|e| mailsrv_status::from_error(&e), |()| mailsrv_status::Ok)
}

/// Opens the history kept in the file `path` (it need not exist yet). A damaged file is
/// moved aside (`<path>.corrupt-<time>`, named in errbuf) and CORRUPT is returned; opening
/// again then starts an empty history. `out` (out, not NULL): owned, freed with
/// mailsrv_history_free(). Returns OK, NULL_ARG, INVALID_ARG, IO, CORRUPT or
/// UNSUPPORTED_VERSION.
///
/// Format versions: the file starts with `mailsrv-history N`. This mailsrv writes version
/// 2 (each observation with the source that named it, and the user's declines) and reads
/// versions 1 and 2. A file of a newer version (written by a newer mailsrv) is
/// UNSUPPORTED_VERSION and left exactly as it is: never moved aside as damaged, never
/// overwritten by a save; use the newer mailsrv or another file. Only a file that is no
/// history at all, or a damaged one, is CORRUPT.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_open(
    path: *const c_char,
    out: *mut *mut mailsrv_history,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let path = try_str!(path);
        finish(History::open(Path::new(path)), errbuf, errlen, |h| {
            *out = Box::into_raw(Box::new(mailsrv_history { inner: Arc::new(Mutex::new(h)) }));
        })
    })}
}

/// Saves the history: under an exclusive file lock, merged with what another process saved
/// meanwhile, written atomically (temp file, fsync, rename, fsync of the folder). Blocks
/// on the lock and two fsyncs: a client with an event loop uses
/// mailsrv_history_save_async(). Returns OK, NULL_ARG, IO, CORRUPT (the file on disk was
/// damaged since it was opened: it was moved aside and nothing was written; saving again
/// writes this history), UNSUPPORTED_VERSION (a newer mailsrv wrote the file meanwhile:
/// nothing was written) or INVALID_ARG (an imported history has no file: export it).
/// Since 0.1.
///
/// # Safety
/// `h` NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_save(
    h: *mut mailsrv_history,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let h = try_ref!(h);
        let mut guard = h.inner.lock().unwrap_or_else(|p| p.into_inner());
        finish(guard.save(), errbuf, errlen, |()| {})
    })}
}

/// Completion of mailsrv_history_save_async(): the status (OK, IO, CORRUPT,
/// UNSUPPORTED_VERSION, CANCELLED, SHUTDOWN, ...) and `detail` (borrowed, never NULL; the
/// reason when not OK). There is no result object.
#[allow(non_camel_case_types)]
pub type mailsrv_history_save_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        id: mailsrv_request_id,
        status: mailsrv_status,
        detail: *const c_char,
    ),
>;

/// mailsrv_history_save() without blocking the caller: the lock, the merge and the two
/// fsyncs run on a library thread (never a context worker), on a copy of the history
/// taken now; observations made meanwhile are kept (merged back when the save ends). The
/// callback runs exactly once, as every _async callback of `ctx` does (thread or loop
/// mode). The history may be freed before the callback runs (the save keeps its own
/// reference). Returns OK (the callback will run), NULL_ARG, SHUTDOWN.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_save_async(
    ctx: *mut mailsrv_ctx,
    h: *mut mailsrv_history,
    cb: mailsrv_history_save_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let h = try_ref!(h);
        let Some(cb) = cb else { return mailsrv_status::NullArg };
        let shared = h.inner.clone();
        let ud = UserData(userdata);
        let deliver: Deliver<()> = Box::new(move |id, outcome: crate::core::Result<()>| {
            let ud = ud;
            match outcome {
                Ok(()) => unsafe { cb(ud.0, id, mailsrv_status::Ok, c"".as_ptr()) },
                Err(e) => {
                    let detail = cstring(e.detail());
                    unsafe { cb(ud.0, id, mailsrv_status::from_error(&e), detail.as_ptr()) }
                }
            }
        });
        let fut = async move {
            tokio::task::spawn_blocking(move || {
                let mut copy = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
                copy.save()?;
                shared.lock().unwrap_or_else(|p| p.into_inner()).absorb(copy);
                Ok(())
            })
            .await
            .unwrap_or_else(|e| Err(crate::core::Error::Runtime(format!("history save: {e}"))))
        };
        started(ctx.inner.spawn(fut, deliver), id_out)
    }
}

/// Records that the user declined the change to `target`:`port` for (`domain`,
/// `service`) at `now` (Unix seconds; 0 = the current time): the answer of an ASK_USER (or
/// WAIT) decision the user said no to. While that answer persists without interruption,
/// the change checks return NO_CHANGE with reason DECLINED for it instead of ASK_USER, so
/// the dialog is not shown on every refresh. It holds until the answer changes: once
/// another answer is seen for the same domain and service, the declined one's run ends;
/// if it comes back later it is a new answer, judged and (after the minimum age) offered
/// again. There is no time limit otherwise; mailsrv_history_prune() removes it with the
/// observation. A decline never stops an UPDATE (an authenticated answer) or a REJECT. In
/// memory: save (or export) the history to keep it. A history with a decline is saved in
/// format version 2 (see mailsrv_history_open()).
/// Returns OK, NULL_ARG, INVALID_ARG, or NOT_FOUND (that answer was never observed).
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_decline(
    h: *mut mailsrv_history,
    domain: *const c_char,
    service: u32,
    target: *const c_char,
    port: u16,
    now: u64,
) -> mailsrv_status {
    ffi_boundary! {
        let h = try_ref!(h);
        if port == 0 {
            return mailsrv_status::InvalidArg;
        }
        let key = match unsafe { key(domain, service, target, port) } {
            Ok(k) => k,
            Err(s) => return s,
        };
        let now = if now == 0 { unix_now() } else { now };
        let mut g = h.inner.lock().unwrap_or_else(|p| p.into_inner());
        status_of(g.decline(key, now))
    }
}

/// Forgets every answer last seen before `older_than` (Unix seconds), with any decline of
/// it, so a long-lived client's history does not grow without end (a year without
/// sightings is a good cut-off: an answer that comes back starts over). In memory; a later
/// save does not bring them back from the file. `removed_out` (out, may be NULL): how many
/// were removed. Returns OK or NULL_ARG.
/// Since 0.1.
///
/// # Safety
/// `h` NULL or valid; `removed_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_prune(
    h: *mut mailsrv_history,
    older_than: u64,
    removed_out: *mut usize,
) -> mailsrv_status {
    ffi_boundary! {
        let h = try_ref!(h);
        let n = h.inner.lock().unwrap_or_else(|p| p.into_inner()).prune(older_than);
        if let Some(o) = unsafe { removed_out.as_mut() } {
            *o = n;
        }
        mailsrv_status::Ok
    }
}

/// The history as text in the file format (UTF-8, lines; see mailsrv_history_open()), for
/// a client that keeps its state in its own account store instead of a file:
/// mailsrv_history_import() reads it back. `out` (out, not NULL): owned NUL-terminated
/// string, freed with mailsrv_string_free(); NULL on failure. Returns OK or NULL_ARG.
/// Since 0.1.
///
/// # Safety
/// `h` NULL or valid; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_export(
    h: *const mailsrv_history,
    out: *mut *mut c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let h = try_ref!(h);
        let text = h.inner.lock().unwrap_or_else(|p| p.into_inner()).export();
        *out = cstring(&text).into_raw();
        mailsrv_status::Ok
    }
}

/// A history held in memory only, from `len` bytes that mailsrv_history_export() (or a
/// history file) gave; `len` 0 starts an empty one (`data` may then be NULL). It works like
/// an opened one (observe, change checks, decline, prune, export), except that
/// mailsrv_history_save() has no file to write (INVALID_ARG). Every older format version is
/// read; a newer one is UNSUPPORTED_VERSION (keep the bytes: a newer mailsrv reads them).
/// `out` (out, not NULL): owned, freed with mailsrv_history_free(); NULL on failure.
/// Returns OK, NULL_ARG, UNSUPPORTED_VERSION or CORRUPT (not a history, or damaged).
/// Since 0.1.
///
/// # Safety
/// `data` NULL or `len` readable bytes; `out` NULL or writable; `errbuf` NULL or `errlen`
/// writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_import(
    data: *const u8,
    len: usize,
    out: *mut *mut mailsrv_history,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        if data.is_null() && len > 0 {
            return mailsrv_status::NullArg;
        }
        let bytes: &[u8] = if len == 0 { &[] } else { unsafe { std::slice::from_raw_parts(data, len) } };
        finish(History::import(bytes), errbuf, errlen, |h| {
            *out = Box::into_raw(Box::new(mailsrv_history { inner: Arc::new(Mutex::new(h)) }));
        })
    })}
}

/// Frees the history (unsaved observations are lost). NULL does nothing.
/// Since 0.1.
///
/// # Safety
/// `h` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_free(h: *mut mailsrv_history) {
    ffi_boundary! {
        unsafe { free_box(h) }
    }
}

/// Number of observations held.
/// Since 0.1.
///
/// # Safety
/// `h` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_len(h: *const mailsrv_history) -> usize {
    ffi_boundary! { try_ref!(h).inner.lock().map_or(0, |g| g.len()) }
}

unsafe fn key(
    domain: *const c_char,
    service: u32,
    target: *const c_char,
    port: u16,
) -> Result<ObservationKey, mailsrv_status> {
    let read = |p| match unsafe { super::strings::read_str(p, "name") } {
        _ if p.is_null() => Err(mailsrv_status::NullArg),
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(mailsrv_status::InvalidArg),
    };
    Ok(ObservationKey {
        domain: read(domain)?,
        service: Service::from_bit(service).ok_or(mailsrv_status::InvalidArg)?,
        target: read(target)?,
        port,
    })
}

/// Records that `target`:`port` is the answer for (`domain`, `service`) at `now` (Unix
/// seconds; 0 = the current time), its source not known (a source recorded before stays:
/// mailsrv_history_source()). Returns OK, NULL_ARG or INVALID_ARG.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_observe(
    h: *mut mailsrv_history,
    domain: *const c_char,
    service: u32,
    target: *const c_char,
    port: u16,
    now: u64,
) -> mailsrv_status {
    ffi_boundary! {
        let h = try_ref!(h);
        if port == 0 {
            return mailsrv_status::InvalidArg;
        }
        let key = match unsafe { key(domain, service, target, port) } {
            Ok(k) => k,
            Err(s) => return s,
        };
        let now = if now == 0 { unix_now() } else { now };
        let mut g = h.inner.lock().unwrap_or_else(|p| p.into_inner());
        status_of(g.observe(key, now).map(|_| ()))
    }
}

/// When `target`:`port` was first and last seen for (`domain`, `service`) without
/// interruption. `first_out`, `last_out` (out, may be NULL). Returns OK, NULL_ARG,
/// INVALID_ARG or NOT_FOUND.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_seen(
    h: *const mailsrv_history,
    domain: *const c_char,
    service: u32,
    target: *const c_char,
    port: u16,
    first_out: *mut u64,
    last_out: *mut u64,
) -> mailsrv_status {
    ffi_boundary! {
        let h = try_ref!(h);
        let key = match unsafe { key(domain, service, target, port) } {
            Ok(k) => k,
            Err(s) => return s,
        };
        let Some(key) = normalized_key(key) else {
            return mailsrv_status::InvalidArg;
        };
        let g = h.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.get(&key) {
            Some(s) => {
                if let Some(f) = unsafe { first_out.as_mut() } {
                    *f = s.first;
                }
                if let Some(l) = unsafe { last_out.as_mut() } {
                    *l = s.last;
                }
                mailsrv_status::Ok
            }
            None => mailsrv_status::NotFound,
        }
    }
}

/// Which source named `target`:`port` for (`domain`, `service`) when it was last seen: a
/// MAILSRV_SOURCE_* bit (MAILSRV_SOURCE_SRV for mailsrv_srv_change_check(), the chosen
/// candidate's source for mailsrv_account_change_check()), or 0 when not recorded
/// (mailsrv_history_observe(), a version-1 history file). Saved with the history and read
/// back by mailsrv_history_open(). `source_out` (out, not NULL).
/// Returns OK, NULL_ARG, INVALID_ARG or NOT_FOUND (no such observation; `*source_out` is
/// then 0).
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_history_source(
    h: *const mailsrv_history,
    domain: *const c_char,
    service: u32,
    target: *const c_char,
    port: u16,
    source_out: *mut u32,
) -> mailsrv_status {
    ffi_boundary! {
        let source_out = try_mut!(source_out);
        *source_out = 0;
        let h = try_ref!(h);
        let key = match unsafe { key(domain, service, target, port) } {
            Ok(k) => k,
            Err(s) => return s,
        };
        let key = match normalized_key(key) {
            Some(k) => k,
            None => return mailsrv_status::InvalidArg,
        };
        let g = h.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.get(&key).is_none() {
            return mailsrv_status::NotFound;
        }
        *source_out = g.source(&key).map_or(0, |s| s.bit());
        mailsrv_status::Ok
    }
}

/// `key` with its names normalised as the history keeps them; `None` when one is not a
/// valid name.
fn normalized_key(mut key: ObservationKey) -> Option<ObservationKey> {
    use crate::core::address::normalize_domain;
    key.domain = normalize_domain(&key.domain).ok()?;
    key.target = normalize_domain(&key.target).ok()?;
    Some(key)
}

#[allow(clippy::too_many_arguments)]
unsafe fn change_request(
    domain: *const c_char,
    service: u32,
    saved_host: *const c_char,
    saved_port: u16,
    saved_origin: u32,
    now: u64,
    min_age: u64,
    flags: u32,
) -> Result<ChangeRequest, mailsrv_status> {
    if domain.is_null() || saved_host.is_null() {
        return Err(mailsrv_status::NullArg);
    }
    let text = |p| {
        unsafe { super::strings::read_str(p, "text") }
            .map(str::to_owned)
            .map_err(|_| mailsrv_status::InvalidArg)
    };
    let flags = call_flags(flags).ok_or(mailsrv_status::InvalidArg)?;
    Ok(ChangeRequest {
        domain: text(domain)?,
        saved: Saved {
            service: Service::from_bit(service).ok_or(mailsrv_status::InvalidArg)?,
            host: text(saved_host)?,
            port: saved_port,
            origin: origin_of(saved_origin).ok_or(mailsrv_status::InvalidArg)?,
        },
        now: if now == 0 { unix_now() } else { now },
        min_age: if min_age == 0 {
            DEFAULT_MIN_AGE
        } else {
            min_age
        },
        probe: !flags.no_probe,
        require_secure: flags.require_secure,
    })
}

/// The raw arguments the change checks share.
struct ChangeArgs {
    domain: *const c_char,
    service: u32,
    saved_host: *const c_char,
    saved_port: u16,
    saved_origin: u32,
    history: *mut mailsrv_history,
    now: u64,
    min_age_s: u64,
    flags: u32,
}

type SharedHistory = Option<Arc<Mutex<History>>>;

impl ChangeArgs {
    /// The request and the history, read and checked.
    unsafe fn read(&self) -> Result<(ChangeRequest, SharedHistory), mailsrv_status> {
        let req = unsafe {
            change_request(
                self.domain,
                self.service,
                self.saved_host,
                self.saved_port,
                self.saved_origin,
                self.now,
                self.min_age_s,
                self.flags,
            )
        }?;
        Ok((
            req,
            unsafe { self.history.as_ref() }.map(|h| h.inner.clone()),
        ))
    }
}

/// The body of a blocking change check: `check` runs it, `wrap` makes the C result.
unsafe fn change_blocking<O>(
    ctx: *mut mailsrv_ctx,
    args: ChangeArgs,
    out: *mut *mut mailsrv_change,
    errbuf: *mut c_char,
    errlen: usize,
    check: fn(&Context, ChangeRequest, SharedHistory) -> crate::core::Result<O>,
    wrap: fn(O) -> mailsrv_change,
) -> mailsrv_status {
    with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let (req, history) = match unsafe { args.read() } {
            Ok(r) => r,
            Err(s) => return s,
        };
        finish(check(&ctx.inner, req, history), errbuf, errlen, |o| {
            *out = Box::into_raw(Box::new(wrap(o)));
        })
    })
}

/// The body of an async change check: `start` starts it, `wrap` makes the C result.
unsafe fn change_async<O: Send + 'static>(
    ctx: *mut mailsrv_ctx,
    args: ChangeArgs,
    cb: mailsrv_change_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
    start: fn(&Context, ChangeRequest, SharedHistory, Deliver<O>) -> crate::core::Result<RequestId>,
    wrap: fn(O) -> mailsrv_change,
) -> mailsrv_status {
    let ctx = try_ref!(ctx);
    let Some(cb) = cb else {
        return mailsrv_status::NullArg;
    };
    let (req, history) = match unsafe { args.read() } {
        Ok(r) => r,
        Err(s) => return s,
    };
    let deliver = deliver_to_c(cb, UserData(userdata), wrap);
    started(start(&ctx.inner, req, history, deliver), id_out)
}

/// The change check for one saved service, blocking: re-discovers `service` for
/// `mail_domain`; when its first endpoint differs from the saved `saved_host`:`saved_port`
/// (and the configuration was not typed by the user), judges it with mailsrv_verify_srv_authenticity();
/// records the answer in `history` (may be NULL; in memory: call mailsrv_history_save());
/// then decides: NO_CHANGE, UPDATE (authenticated), ASK_USER (unverified but seen
/// consistently for `min_age_s`, 0 = 7 days), WAIT (unverified and newer) or REJECT. A
/// configuration typed by the user (`saved_origin` = MAILSRV_ORIGIN_USER) never changes;
/// only the saved service itself is looked at, so IMAP never turns into POP3 (RFC 6186 §4).
/// `now`: Unix seconds, 0 = the current time. `flags`: MAILSRV_FLAG_NO_PROBE.
/// `out` (out, not NULL): owned, freed with mailsrv_change_free().
/// Returns OK, NULL_ARG, INVALID_ARG, TIMEOUT, NO_TRUST_ANCHORS.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_srv_change_check(
    ctx: *mut mailsrv_ctx,
    mail_domain: *const c_char,
    service: u32,
    saved_host: *const c_char,
    saved_port: u16,
    saved_origin: u32,
    history: *mut mailsrv_history,
    now: u64,
    min_age_s: u64,
    flags: u32,
    out: *mut *mut mailsrv_change,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    let args = ChangeArgs {
        domain: mail_domain,
        service,
        saved_host,
        saved_port,
        saved_origin,
        history,
        now,
        min_age_s,
        flags,
    };
    ffi_boundary! {
        unsafe { change_blocking(ctx, args, out, errbuf, errlen, Context::srv_change_check, mailsrv_change::new) }
    }
}

/// Completion of mailsrv_srv_change_check_async(): `result` owned, NULL unless OK.
#[allow(non_camel_case_types)]
pub type mailsrv_change_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        id: mailsrv_request_id,
        status: mailsrv_status,
        result: *mut mailsrv_change,
        detail: *const c_char,
    ),
>;

/// mailsrv_srv_change_check() without blocking: same leading arguments, then `cb`,
/// `userdata`, `id_out`. The history may be freed before the callback runs (the check
/// keeps its own reference).
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_srv_change_check_async(
    ctx: *mut mailsrv_ctx,
    mail_domain: *const c_char,
    service: u32,
    saved_host: *const c_char,
    saved_port: u16,
    saved_origin: u32,
    history: *mut mailsrv_history,
    now: u64,
    min_age_s: u64,
    flags: u32,
    cb: mailsrv_change_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    let args = ChangeArgs {
        domain: mail_domain,
        service,
        saved_host,
        saved_port,
        saved_origin,
        history,
        now,
        min_age_s,
        flags,
    };
    ffi_boundary! {
        unsafe { change_async(ctx, args, cb, userdata, id_out, Context::srv_change_check_async, mailsrv_change::new) }
    }
}

/// The multi-source change check (the successor of mailsrv_srv_change_check() for an
/// account set up by mailsrv_account_discover()), blocking: re-discovers `address`
/// (`user@domain`) from every source but plain HTTP (MAILSRV_SOURCE_AUTOCONFIG_HTTP is
/// always left out), looks only at the candidates of the saved `service` (IMAP never turns
/// into POP3), records the server they name in `history` (may be NULL; in memory: call
/// mailsrv_history_save()), then decides under the SRV check's rules: NO_CHANGE while the
/// saved server is still named, when no source answers, or when the saved service is no
/// longer offered; a configuration typed by the user (MAILSRV_ORIGIN_USER) never changes;
/// UPDATE only for an AUTHENTIC candidate whose evidence is tamper-proof (DNSSEC, DANE,
/// the mail domain's own HTTPS document, the probe) and always with a binding. A candidate
/// the ISPDB (MAILSRV_SOURCE_ISPDB, MAILSRV_EVIDENCE_ISPDB) or plain HTTP named never
/// drives UPDATE: ASK_USER once it has been seen for `min_age_s` (0 = 7 days), WAIT before,
/// with the binding. REJECT when every new candidate was proven wrong.
/// mailsrv_change_verdict() is the chosen candidate's verdict as judged.
/// `saved_origin`: a mailsrv_origin value. `now`: Unix seconds, 0 = the current time.
/// `flags`: MAILSRV_FLAG_NO_PROBE, MAILSRV_FLAG_REQUIRE_SECURE.
/// `out` (out, not NULL): owned, freed with mailsrv_change_free().
/// Returns OK, NULL_ARG, INVALID_ARG, TIMEOUT, NO_TRUST_ANCHORS.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_account_change_check(
    ctx: *mut mailsrv_ctx,
    address: *const c_char,
    service: u32,
    saved_host: *const c_char,
    saved_port: u16,
    saved_origin: u32,
    history: *mut mailsrv_history,
    now: u64,
    min_age_s: u64,
    flags: u32,
    out: *mut *mut mailsrv_change,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    let args = ChangeArgs {
        domain: address,
        service,
        saved_host,
        saved_port,
        saved_origin,
        history,
        now,
        min_age_s,
        flags,
    };
    ffi_boundary! {
        unsafe { change_blocking(ctx, args, out, errbuf, errlen, Context::account_change_check, mailsrv_change::of_account) }
    }
}

/// mailsrv_account_change_check() without blocking: same leading arguments, then `cb`,
/// `userdata`, `id_out` (CANCELLED after mailsrv_cancel(), SHUTDOWN when the context is
/// freed). The history may be freed before the callback runs.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_account_change_check_async(
    ctx: *mut mailsrv_ctx,
    address: *const c_char,
    service: u32,
    saved_host: *const c_char,
    saved_port: u16,
    saved_origin: u32,
    history: *mut mailsrv_history,
    now: u64,
    min_age_s: u64,
    flags: u32,
    cb: mailsrv_change_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    let args = ChangeArgs {
        domain: address,
        service,
        saved_host,
        saved_port,
        saved_origin,
        history,
        now,
        min_age_s,
        flags,
    };
    ffi_boundary! {
        unsafe { change_async(ctx, args, cb, userdata, id_out, Context::account_change_check_async, mailsrv_change::of_account) }
    }
}

/// Frees a decision. NULL does nothing.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_free(c: *mut mailsrv_change) {
    ffi_boundary! {
        unsafe { free_box(c) }
    }
}

/// The decision (a mailsrv_decision value); 0 for NULL.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_decision(c: *const mailsrv_change) -> u32 {
    ffi_boundary! { try_ref!(c).decision as u32 }
}

/// The endpoint the decision is about (the fresh first endpoint); NULL when none. Borrowed.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_target(c: *const mailsrv_change) -> *const c_char {
    ffi_boundary! { try_ref!(c).target.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()) }
}

/// The port of that endpoint; 0 when none.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_port(c: *const mailsrv_change) -> u16 {
    ffi_boundary! { try_ref!(c).port }
}

/// For WAIT: when the answer will have persisted long enough (Unix seconds); 0 otherwise.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_wait_until(c: *const mailsrv_change) -> u64 {
    ffi_boundary! { try_ref!(c).wait_until }
}

/// The authenticity verdict on the new endpoint (a mailsrv_verdict value); 0 when it was
/// not judged (unchanged, typed by the user, or no answer).
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_verdict(c: *const mailsrv_change) -> u32 {
    ffi_boundary! { try_ref!(c).verdict }
}

/// The origin (a mailsrv_origin value) to save with the endpoint the decision is about
/// when the client takes it (UPDATE, or ASK_USER once the user accepted): MAILSRV_ORIGIN_SRV
/// from mailsrv_srv_change_check(); from mailsrv_account_change_check() the origin of the
/// source that named the candidate (MAILSRV_ORIGIN_AUTOCONFIG, _ISPDB, _MX, _SRV), which is
/// also recorded in the history (mailsrv_history_source()). Pass it as `saved_origin` to
/// the next check. 0 when the decision is about no endpoint.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_origin(c: *const mailsrv_change) -> u32 {
    ffi_boundary! { try_ref!(c).origin }
}

/// How the account must connect to the new endpoint: always set for UPDATE (store its
/// mailsrv_binding_text() with the account and log in with mailsrv_connect_with_binding());
/// for ASK_USER and WAIT the plain binding to use once the user accepted; NULL otherwise.
/// Borrowed (mailsrv_binding_clone() keeps it after the decision is freed).
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_binding(
    c: *const mailsrv_change,
) -> *const mailsrv_binding {
    ffi_boundary! { mailsrv_binding::ptr(&try_ref!(c).binding) }
}

/// Why, in words a client can show. Borrowed.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_detail(c: *const mailsrv_change) -> *const c_char {
    ffi_boundary! { try_ref!(c).detail.as_ptr() }
}

/// Why the decision is what it is (a mailsrv_reason value; 0 for NULL): REJECT for a
/// bogus answer (BOGUS) differs from REJECT for a wrong target (WRONG_TARGET); NO_CHANGE
/// after a failed lookup (LOOKUP_FAILED) differs from an unchanged answer (UNCHANGED) and
/// from an answer the user declined (DECLINED).
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_reason(c: *const mailsrv_change) -> u32 {
    ffi_boundary! { try_ref!(c).reason as u32 }
}

/// The authenticity verdict on the fresh answer the decision is about, with its evidence,
/// both peer chains, the probe's and reconnect's statuses and a sentence for the user (see
/// mailsrv_authenticity_*): what an ASK_USER dialog shows ("this server did not prove it
/// serves example.com: NAME_MISMATCH"), and the certificates to display. Borrowed, valid
/// until the decision is freed; NULL when the fresh answer was not judged (unchanged,
/// typed by the user, a failed or empty lookup, a bogus answer). For
/// mailsrv_account_change_check(): the chosen candidate's verdict, as judged.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_change_authenticity(
    c: *const mailsrv_change,
) -> *const mailsrv_authenticity {
    ffi_boundary! {
        try_ref!(c).authenticity.as_ref().map_or(std::ptr::null(), |a| a as *const _)
    }
}
