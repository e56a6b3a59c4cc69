//! `mailsrv_ctx`: one client's resolver, settings and request table.

use std::os::raw::{c_char, c_int};

use super::boundary::{ffi_boundary, free_box, try_mut, try_ref};
use super::config::mailsrv_config;
use super::errbuf::{finish, with_errbuf};
use super::request::mailsrv_request_id;
use super::status::mailsrv_status;
use crate::core::config::Config;
use crate::core::context::Context;

/// A mailsrv context (opaque). Safe to use from several threads at once.
pub struct mailsrv_ctx {
    pub(crate) inner: Context,
}

/// Creates a context from `cfg` (borrowed and copied; NULL means all defaults).
///
/// Builds the resolver, reads the trust anchor file and starts the callback thread (thread
/// mode) or the notify descriptor (loop mode). No network traffic happens yet.
/// `out` (out, not NULL): the owned context, freed with mailsrv_ctx_free(); NULL on failure.
/// `errbuf`/`errlen` (out, may be NULL/0): the reason on failure, "" on success.
/// Returns OK, NULL_ARG, INVALID_ARG (no nameserver), BAD_TRUST_ANCHOR or RUNTIME.
/// Since 0.1.
///
/// # Safety
/// `cfg` NULL or valid; `out` valid for writing; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_ctx_new(
    cfg: *const mailsrv_config,
    out: *mut *mut mailsrv_ctx,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let config = unsafe { cfg.as_ref() }.map(|c| c.inner.clone()).unwrap_or_else(Config::default);
        finish(Context::new(config), errbuf, errlen, |inner| {
            *out = Box::into_raw(Box::new(mailsrv_ctx { inner }));
        })
    })}
}

/// Frees a context: cancels every outstanding request, delivers MAILSRV_STATUS_SHUTDOWN to
/// each one's callback (loop mode: on this thread, now) and returns after all have run.
/// Called from inside one of its own callbacks, it only starts the shutdown; the rest
/// happens when that callback returns. Must be the last call on `ctx`. NULL does nothing.
/// Results, streams and histories obtained through `ctx` stay valid until their own
/// `_free` (docs/threads.md, "What outlives a context"). Every thread the library starts
/// blocks all signals, so the caller's signals stay the caller's (docs/threads.md).
/// Since 0.1.
///
/// # Safety
/// `ctx` NULL or from mailsrv_ctx_new(), not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_ctx_free(ctx: *mut mailsrv_ctx) {
    ffi_boundary! {
        unsafe { free_box(ctx) }
    }
}

/// The descriptor to watch for readability in loop mode (GLib g_unix_fd_add, poll,
/// asyncio add_reader): readable while completions wait; then call mailsrv_ctx_dispatch().
/// Borrowed: do not close it or read from it. -1 in thread mode or for NULL.
/// Since 0.1.
///
/// # Safety
/// `ctx` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_ctx_notify_fd(ctx: *const mailsrv_ctx) -> c_int {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        ctx.inner.dispatcher().notify_fd().unwrap_or(-1)
    }
}

/// Loop mode: runs every waiting callback on this thread and drains the notify descriptor.
/// `ran_out` (out, may be NULL): how many callbacks ran.
/// Returns OK, NULL_ARG, INVALID_ARG (thread mode) or IN_CALLBACK (called from a callback).
/// Since 0.1.
///
/// # Safety
/// `ctx` valid; `ran_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_ctx_dispatch(
    ctx: *mut mailsrv_ctx,
    ran_out: *mut usize,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        match ctx.inner.dispatcher().dispatch() {
            Ok(n) => {
                if let Some(r) = unsafe { ran_out.as_mut() } {
                    *r = n;
                }
                mailsrv_status::Ok
            }
            Err(e) => mailsrv_status::from_error(&e),
        }
    }
}

/// Cancels an async request. OK: its callback will still run, once, with
/// MAILSRV_STATUS_CANCELLED. NOT_FOUND: the id is unknown, or its callback already ran or
/// is about to run with its real result. Never waits. Free userdata in the callback.
/// Since 0.1.
///
/// # Safety
/// `ctx` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_cancel(
    ctx: *mut mailsrv_ctx,
    id: mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        match ctx.inner.dispatcher().cancel(id) {
            Ok(()) => mailsrv_status::Ok,
            Err(e) => mailsrv_status::from_error(&e),
        }
    }
}
