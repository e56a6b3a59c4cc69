//! Asynchronous requests and how their completions reach the caller (docs/design.md §3, §4).
//!
//! Every request is a tokio task plus one pending entry. Whoever removes the entry from the
//! pending map delivers: the task (its result), `cancel` (CANCELLED) or `shutdown`
//! (SHUTDOWN). The map's lock makes that choice, so each callback runs exactly once.
//! Deliveries go through one queue per dispatcher, drained either by a dedicated thread
//! (thread mode) or by the caller's loop (loop mode, with a descriptor that is readable
//! while anything is queued), so callbacks of one context never run concurrently.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, ThreadId};

use futures_util::FutureExt;
use tokio::task::AbortHandle;

use super::runtime::{as_callback, in_callback, runtime};
use super::{Error, Result};

/// Request ids are never reused within a dispatcher.
pub type RequestId = u64;

/// A completion, ready to run.
type Job = Box<dyn FnOnce() + Send>;

/// The receiver of a request's outcome, with the request's id; called exactly once.
pub type Deliver<T> = Box<dyn FnOnce(RequestId, Result<T>) + Send>;

/// Where callbacks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchMode {
    /// On a library thread, one per context.
    Thread,
    /// On the caller's thread, inside [`Dispatcher::dispatch`].
    Loop,
}

/// Takes the outcome of one request, once.
struct Slot<T> {
    id: RequestId,
    deliver: Mutex<Option<Deliver<T>>>,
}

impl<T: Send + 'static> Slot<T> {
    fn job(&self, outcome: Result<T>) -> Option<Job> {
        let deliver = lock(&self.deliver).take()?;
        let id = self.id;
        Some(Box::new(move || deliver(id, outcome)))
    }
}

/// The type-erased side of a slot, for cancel and shutdown.
trait Fail: Send + Sync {
    fn fail(&self, e: Error) -> Option<Job>;
}

impl<T: Send + 'static> Fail for Slot<T> {
    fn fail(&self, e: Error) -> Option<Job> {
        self.job(Err(e))
    }
}

struct Entry {
    abort: Option<AbortHandle>,
    slot: Arc<dyn Fail>,
}

#[derive(Default)]
struct Pending {
    map: HashMap<RequestId, Entry>,
    closed: bool,
}

struct Queue {
    jobs: VecDeque<Job>,
    stop: bool,
}

struct Shared {
    mode: DispatchMode,
    next_id: AtomicU64,
    pending: Mutex<Pending>,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Loop mode: (read end handed to the caller, write end we signal on).
    notify: Option<(UnixStream, UnixStream)>,
    /// Held while loop-mode callbacks run, so two dispatching threads never overlap.
    dispatching: Mutex<()>,
}

/// One context's request table and delivery queue.
pub struct Dispatcher {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    worker_id: Option<ThreadId>,
}

/// Locks, recovering from poison: a panicking callback must not wedge the context.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Dispatcher {
    pub fn new(mode: DispatchMode) -> Result<Self> {
        let notify = match mode {
            DispatchMode::Thread => None,
            DispatchMode::Loop => {
                let (rx, tx) = UnixStream::pair()
                    .map_err(|e| Error::Runtime(format!("cannot create the notify socket: {e}")))?;
                for s in [&rx, &tx] {
                    s.set_nonblocking(true)
                        .map_err(|e| Error::Runtime(format!("notify socket: {e}")))?;
                }
                Some((rx, tx))
            }
        };
        let shared = Arc::new(Shared {
            mode,
            next_id: AtomicU64::new(1),
            pending: Mutex::default(),
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            notify,
            dispatching: Mutex::new(()),
        });
        let (worker, worker_id) = match mode {
            DispatchMode::Loop => (None, None),
            DispatchMode::Thread => {
                let s = shared.clone();
                // Started with every signal blocked (the caller's signals stay the caller's).
                let handle = crate::sys::with_signals_blocked(|| {
                    thread::Builder::new()
                        .name("mailsrv-callbacks".into())
                        .spawn(move || s.worker())
                })
                .map_err(|e| Error::Runtime(format!("cannot start the callback thread: {e}")))?;
                let id = handle.thread().id();
                (Some(handle), Some(id))
            }
        };
        Ok(Dispatcher {
            shared,
            worker: Mutex::new(worker),
            worker_id,
        })
    }

    pub fn mode(&self) -> DispatchMode {
        self.shared.mode
    }

    /// The descriptor that is readable while completions wait (loop mode only).
    pub fn notify_fd(&self) -> Option<RawFd> {
        self.shared.notify.as_ref().map(|(rx, _)| rx.as_raw_fd())
    }

    /// Starts `fut` on the runtime; `deliver` gets its outcome (or CANCELLED / SHUTDOWN)
    /// exactly once, never on the calling thread before this returns.
    pub fn submit<T, F>(&self, fut: F, deliver: Deliver<T>) -> Result<RequestId>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let rt = runtime()?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            id,
            deliver: Mutex::new(Some(deliver)),
        });
        {
            let mut p = lock(&self.shared.pending);
            if p.closed {
                return Err(Error::Shutdown);
            }
            p.map.insert(
                id,
                Entry {
                    abort: None,
                    slot: slot.clone(),
                },
            );
        }
        let shared = self.shared.clone();
        let task = rt.spawn(async move {
            let outcome = AssertUnwindSafe(fut)
                .catch_unwind()
                .await
                .unwrap_or_else(|p| Err(Error::Panic(panic_text(&*p))));
            shared.complete(id, || slot.job(outcome));
        });
        if let Some(e) = lock(&self.shared.pending).map.get_mut(&id) {
            e.abort = Some(task.abort_handle());
        }
        Ok(id)
    }

    /// Cancels a request whose callback has not been queued yet; it will get CANCELLED.
    pub fn cancel(&self, id: RequestId) -> Result<()> {
        let mut p = lock(&self.shared.pending);
        let entry = p
            .map
            .remove(&id)
            .ok_or_else(|| Error::NotFound(format!("no pending request {id}")))?;
        if let Some(a) = entry.abort {
            a.abort();
        }
        if let Some(job) = entry.slot.fail(Error::Cancelled) {
            self.shared.enqueue(job);
        }
        Ok(())
    }

    /// Runs every queued callback on this thread (loop mode); returns how many ran.
    pub fn dispatch(&self) -> Result<usize> {
        if in_callback() {
            return Err(Error::InCallback);
        }
        if self.shared.mode != DispatchMode::Loop {
            return Err(Error::InvalidArg(
                "the context is not in loop dispatch mode".into(),
            ));
        }
        Ok(self.shared.drain())
    }

    /// How many requests are still pending (not yet queued for delivery).
    pub fn pending(&self) -> usize {
        lock(&self.shared.pending).map.len()
    }

    /// Cancels everything with SHUTDOWN and delivers it. From inside a callback it only
    /// starts the shutdown: the running dispatch (or the callback thread) finishes it.
    pub fn shutdown(&self) {
        {
            let mut p = lock(&self.shared.pending);
            p.closed = true;
            for (_, e) in p.map.drain() {
                if let Some(a) = e.abort {
                    a.abort();
                }
                if let Some(job) = e.slot.fail(Error::Shutdown) {
                    self.shared.enqueue(job);
                }
            }
        }
        match self.shared.mode {
            DispatchMode::Thread => {
                lock(&self.shared.queue).stop = true;
                self.shared.wake.notify_all();
                let on_worker = Some(thread::current().id()) == self.worker_id;
                if let Some(h) = lock(&self.worker).take()
                    && !on_worker
                {
                    let _ = h.join();
                }
            }
            DispatchMode::Loop => {
                if !in_callback() {
                    self.shared.drain();
                }
            }
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    /// Called by a finished task: delivers unless cancel or shutdown got there first.
    fn complete(&self, id: RequestId, job: impl FnOnce() -> Option<Job>) {
        let mut p = lock(&self.pending);
        if p.map.remove(&id).is_some()
            && let Some(job) = job()
        {
            // Still under the pending lock: shutdown cannot slip between remove and enqueue.
            self.enqueue(job);
        }
    }

    fn enqueue(&self, job: Job) {
        let mut q = lock(&self.queue);
        let was_empty = q.jobs.is_empty();
        q.jobs.push_back(job);
        match &self.notify {
            Some((_, tx)) if was_empty => {
                let _ = (&*tx).write(&[1]);
            }
            Some(_) => {}
            None => self.wake.notify_one(),
        }
    }

    /// Takes every queued job and empties the descriptor, under one lock.
    fn take_jobs(&self) -> VecDeque<Job> {
        let mut q = lock(&self.queue);
        let jobs = std::mem::take(&mut q.jobs);
        if let Some((rx, _)) = &self.notify {
            let mut buf = [0u8; 64];
            while matches!((&*rx).read(&mut buf), Ok(n) if n > 0) {}
        }
        jobs
    }

    /// Loop mode: runs queued callbacks until none is left.
    fn drain(&self) -> usize {
        let _one_at_a_time = lock(&self.dispatching);
        let mut ran = 0;
        loop {
            let jobs = self.take_jobs();
            if jobs.is_empty() {
                return ran;
            }
            ran += jobs.len();
            run_jobs(jobs);
        }
    }

    /// Thread mode: the callback thread's loop; leaves once stopped and empty.
    fn worker(&self) {
        loop {
            let jobs = {
                let mut q = lock(&self.queue);
                while q.jobs.is_empty() && !q.stop {
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                if q.jobs.is_empty() {
                    return;
                }
                std::mem::take(&mut q.jobs)
            };
            run_jobs(jobs);
        }
    }
}

fn run_jobs(jobs: VecDeque<Job>) {
    as_callback(|| {
        for job in jobs {
            // A Rust-side panic in a completion must not take the thread down with it.
            let _ = catch_unwind(AssertUnwindSafe(job));
        }
    });
}

/// The message of a caught panic, for the PANIC detail text.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error (panic): {msg}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn collect<T: Send + 'static>(tx: mpsc::Sender<(u64, Result<T>)>, tag: u64) -> Deliver<T> {
        Box::new(move |_id, r| {
            let _ = tx.send((tag, r));
        })
    }

    #[test]
    fn thread_mode_delivers_once_and_cancel_wins_over_slow_work() {
        let d = Dispatcher::new(DispatchMode::Thread).unwrap();
        let (tx, rx) = mpsc::channel();
        d.submit(async { Ok(7) }, collect(tx.clone(), 1)).unwrap();
        let slow = d
            .submit(
                async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(8)
                },
                collect(tx.clone(), 2),
            )
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().1, Ok(7));
        d.cancel(slow).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            (2, Err(Error::Cancelled))
        );
        assert!(matches!(d.cancel(slow), Err(Error::NotFound(_))));
        drop(d);
        assert!(rx.try_recv().is_err(), "a second delivery");
    }

    #[test]
    fn shutdown_delivers_shutdown_to_pending_work() {
        let d = Dispatcher::new(DispatchMode::Loop).unwrap();
        let (tx, rx) = mpsc::channel();
        for tag in 0..10 {
            d.submit(
                async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(())
                },
                collect(tx.clone(), tag),
            )
            .unwrap();
        }
        d.shutdown();
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|(_, r)| *r == Err(Error::Shutdown)));
        assert!(matches!(
            d.submit(async { Ok(()) }, collect(tx, 99)),
            Err(Error::Shutdown)
        ));
    }

    #[test]
    fn panics_in_tasks_become_panic_errors() {
        let d = Dispatcher::new(DispatchMode::Thread).unwrap();
        let (tx, rx) = mpsc::channel();
        d.submit::<(), _>(async { panic!("boom") }, collect(tx, 1))
            .unwrap();
        let (_, r) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(r, Err(Error::Panic(m)) if m.contains("boom")));
    }
}
