//! The process-wide tokio runtime: built on first use, never dropped (dropping it from a
//! library destructor could block the host). Two named workers are plenty for DNS and TLS.

use std::cell::Cell;

use once_cell::sync::OnceCell;
use tokio::runtime::{Builder, Runtime};

use super::{Error, Result};

static RUNTIME: OnceCell<Runtime> = OnceCell::new();

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread runs a mailsrv callback.
pub fn in_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

/// Runs `f` marked as a mailsrv callback, so that [`block_on`] refuses inside it.
pub fn as_callback<R>(f: impl FnOnce() -> R) -> R {
    IN_CALLBACK.with(|c| c.set(true));
    let r = f();
    IN_CALLBACK.with(|c| c.set(false));
    r
}

/// The shared runtime; a failure to build it is an error, never a panic.
pub fn runtime() -> Result<&'static Runtime> {
    RUNTIME.get_or_try_init(|| {
        // Every runtime thread blocks all signals: those started now inherit the blocked
        // mask, those started later (the blocking pool) block them first thing.
        crate::sys::with_signals_blocked(|| {
            Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("mailsrv-worker")
                .on_thread_start(|| {
                    crate::sys::block_all_signals();
                })
                .enable_all()
                .build()
        })
        .map_err(|e| Error::Runtime(format!("cannot start the async runtime: {e}")))
    })
}

/// Runs `fut` to completion on the calling thread. Refused inside a mailsrv callback (it would
/// stall every other callback of the context) and on a tokio thread (tokio would panic).
pub fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output> {
    if in_callback() {
        return Err(Error::InCallback);
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::InCallback);
    }
    Ok(runtime()?.block_on(fut))
}
