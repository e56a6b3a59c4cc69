"""Callbacks: thread mode (library threads), loop mode (notify fd + dispatch), cancel,
close with requests in flight, exceptions in callbacks."""

from __future__ import annotations

import gc
import logging
import os
import select
import threading
import time
from typing import List, Tuple

import pytest

import mailsrv
from mailsrv import (
    Context,
    Discovery,
    Dispatch,
    MailsrvError,
    Service,
    SrvState,
    Status,
)


class Collector:
    """Records every callback (thread, id, outcome) and wakes waiters."""

    def __init__(self) -> None:
        self.calls: List[Tuple[int, int, object]] = []
        self.cond = threading.Condition()

    def __call__(self, rid: int, outcome: object) -> None:
        with self.cond:
            self.calls.append((threading.get_ident(), rid, outcome))
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 15) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.calls) >= n, timeout), f"{len(self.calls)}/{n} callbacks"

    def by_id(self):
        out = {}
        for _, rid, outcome in self.calls:
            assert rid not in out, f"request {rid} called back twice"
            out[rid] = outcome
        return out


def wait_readable(fd: int, timeout: float) -> bool:
    r, _, _ = select.select([fd], [], [], timeout)
    return bool(r)


def pump(ctx: Context, until, timeout: float = 15) -> None:
    """A minimal poll loop: wait for the notify fd, dispatch, until `until()`."""
    p = select.poll()
    p.register(ctx.notify_fd(), select.POLLIN)
    deadline = time.monotonic() + timeout
    while not until():
        left = deadline - time.monotonic()
        assert left > 0, "timed out waiting for callbacks"
        if p.poll(left * 1000):
            ctx.dispatch()


# ------------------------------------------------------------------ thread mode


def test_thread_mode_callback_on_a_library_thread(ctx):
    got = {}
    done = threading.Event()

    def cb(rid, outcome):
        got["thread"] = threading.get_ident()
        got["name"] = threading.current_thread().name
        got["rid"] = rid
        got["outcome"] = outcome
        done.set()

    rid = ctx.discover_async("joe@example.com", cb)
    assert isinstance(rid, int) and rid > 0
    assert done.wait(15)
    assert got["thread"] != threading.main_thread().ident
    assert got["rid"] == rid
    d = got["outcome"]
    assert isinstance(d, Discovery)
    assert d.domain == "example.com"
    assert d.preferred_access == Service.IMAPS and d.preferred_submission == Service.SUBMISSIONS
    assert ctx.outstanding == 0


def test_thread_mode_many_requests_exactly_once(ctx):
    col = Collector()
    addrs = ["example.com", "insecure.test", "bogus.test", "broken.test", "nosrv.example.com", "bücher.example"] * 5
    ids = [ctx.discover_async(a, col, Service.IMAPS) for a in addrs]
    assert len(set(ids)) == len(ids)  # never reused
    col.wait(len(ids))
    time.sleep(0.1)  # nothing more may arrive
    by_id = col.by_id()
    assert set(by_id) == set(ids)
    expected = {
        "example.com": SrvState.FOUND,
        "insecure.test": SrvState.FOUND,
        "bogus.test": SrvState.BOGUS,
        "broken.test": SrvState.LOOKUP_FAILED,
        "nosrv.example.com": SrvState.NO_RECORD,
        "bücher.example": SrvState.FOUND,
    }
    for rid, addr in zip(ids, addrs):
        d = by_id[rid]
        assert isinstance(d, Discovery), d
        assert d.services[0].state == expected[addr], (addr, d)
    # callbacks of one context never run concurrently, and all on library threads
    assert threading.main_thread().ident not in {t for t, _, _ in col.calls}
    assert ctx.outstanding == 0 and not any(p.ctx is ctx for p in mailsrv._pending.values())


def test_async_matches_blocking(ctx):
    col = Collector()
    ctx.discover_async("multi.example.com", col, Service.IMAPS | Service.IMAP)
    col.wait(1)
    d = col.calls[0][2]
    assert d.domain == "multi.example.com"
    assert [s.state for s in d.services] == [SrvState.FOUND, SrvState.NO_RECORD]
    assert {e.target for e in d.services[0].endpoints} == {"a.example.net", "b.example.net", "c.example.net"}


def test_blocking_call_inside_thread_callback_is_in_callback(ctx):
    got = {}
    done = threading.Event()

    def cb(rid, outcome):
        try:
            ctx.discover("example.com")
        except MailsrvError as e:
            got["err"] = e

        # starting another async request from a callback is allowed
        def inner(r, o):
            got["inner"] = o
            done.set()

        got["second"] = ctx.discover_async("example.com", inner, Service.IMAPS)

    ctx.discover_async("example.com", cb, Service.IMAPS)
    assert done.wait(15)
    assert got["err"].status == Status.IN_CALLBACK
    assert isinstance(got["inner"], Discovery)


def test_callback_gets_error_outcomes_as_exceptions(dead_ns):
    col = Collector()
    with Context([dead_ns], timeout_ms=1500) as c:
        c.discover_async("example.com", col)
        col.wait(1)
    d = col.calls[0][2]
    # per-service failures are in the result, not an error of the call
    assert isinstance(d, Discovery)
    assert all(s.state == SrvState.LOOKUP_FAILED for s in d.services)


# ------------------------------------------------------------------ loop mode


def test_loop_mode_poll_and_dispatch(loop_ctx):
    fd = loop_ctx.notify_fd()
    assert fd >= 0
    assert not wait_readable(fd, 0)  # nothing queued yet
    assert loop_ctx.dispatch() == 0
    col = Collector()
    ids = [loop_ctx.discover_async(a, col, Service.IMAPS) for a in ("example.com", "insecure.test", "bogus.test")]
    # nothing runs until we dispatch, however long we wait
    time.sleep(0.5)
    assert col.calls == []
    assert wait_readable(fd, 10)
    ran = 0
    while len(col.calls) < 3:
        assert wait_readable(fd, 10)
        ran += loop_ctx.dispatch()
    assert ran == 3
    # all on this thread, inside dispatch()
    assert {t for t, _, _ in col.calls} == {threading.get_ident()}
    by_id = col.by_id()
    assert [by_id[i].services[0].state for i in ids] == [SrvState.FOUND, SrvState.FOUND, SrvState.BOGUS]
    # drained
    assert not wait_readable(fd, 0.1)
    assert loop_ctx.dispatch() == 0


def test_loop_mode_with_poll_helper(loop_ctx):
    col = Collector()
    n = 8
    for _ in range(n):
        loop_ctx.discover_async("bücher.example", col)
    pump(loop_ctx, lambda: len(col.calls) >= n)
    assert all(o.domain == "xn--bcher-kva.example" for _, _, o in col.calls)
    assert loop_ctx.outstanding == 0


def test_dispatch_inside_loop_callback_is_in_callback(loop_ctx):
    got = {}

    def cb(rid, outcome):
        with pytest.raises(MailsrvError) as ei:
            loop_ctx.dispatch()
        got["status"] = ei.value.status

    loop_ctx.discover_async("example.com", cb, Service.IMAPS)
    pump(loop_ctx, lambda: "status" in got)
    assert got["status"] == Status.IN_CALLBACK


def test_thread_mode_has_no_notify_fd(ctx):
    with pytest.raises(MailsrvError) as ei:
        ctx.notify_fd()
    assert ei.value.status == Status.INVALID_ARG
    with pytest.raises(MailsrvError) as ei:
        ctx.dispatch()
    assert ei.value.status == Status.INVALID_ARG


def test_notify_fd_is_stable_and_borrowed(loop_ctx):
    fd = loop_ctx.notify_fd()
    assert loop_ctx.notify_fd() == fd
    os.fstat(fd)  # open


# ------------------------------------------------------------------ cancel


@pytest.mark.parametrize("which", ["dead", "silent"])
def test_cancel_delivers_cancelled_once(which, dead_ns, silent_ns):
    server = dead_ns if which == "dead" else silent_ns
    col = Collector()
    with Context([server], timeout_ms=5000) as c:
        rid = c.discover_async("example.com", col)
        assert c.cancel(rid) is True
        col.wait(1)
        # a second cancel finds nothing: the callback ran
        assert c.cancel(rid) is False
        time.sleep(0.3)
    assert len(col.calls) == 1
    _, got_id, outcome = col.calls[0]
    assert got_id == rid
    assert isinstance(outcome, MailsrvError) and outcome.status == Status.CANCELLED


def test_cancel_after_completion_is_false(ctx):
    col = Collector()
    rid = ctx.discover_async("example.com", col, Service.IMAPS)
    col.wait(1)
    assert ctx.cancel(rid) is False
    assert isinstance(col.calls[0][2], Discovery)


def test_cancel_in_loop_mode(silent_ns):
    col = Collector()
    with Context([silent_ns], timeout_ms=10000, dispatch=Dispatch.LOOP) as c:
        keep = c.discover_async("example.com", col)
        rid = c.discover_async("example.com", col)
        assert c.cancel(rid)
        pump(c, lambda: len(col.calls) >= 1, timeout=5)
        assert [(i, o.status) for _, i, o in col.calls] == [(rid, Status.CANCELLED)]
    # close() delivered SHUTDOWN to the other one, on this thread
    assert [(i, o.status) for _, i, o in col.calls[1:]] == [(keep, Status.SHUTDOWN)]
    assert col.calls[1][0] == threading.get_ident()


# ------------------------------------------------------------------ close with requests in flight


@pytest.mark.parametrize("mode", [Dispatch.THREAD, Dispatch.LOOP])
def test_close_delivers_shutdown_exactly_once(mode, silent_ns):
    col = Collector()
    c = Context([silent_ns], timeout_ms=20000, dispatch=mode)
    ids = [c.discover_async(f"user{i}@example.com", col) for i in range(10)]
    assert c.outstanding == 10
    t0 = time.monotonic()
    c.close()
    assert time.monotonic() - t0 < 5  # does not wait for the 20 s deadline
    # close() returns after every callback ran
    assert len(col.calls) == 10
    by_id = col.by_id()
    assert set(by_id) == set(ids)
    assert all(isinstance(o, MailsrvError) and o.status == Status.SHUTDOWN for o in by_id.values())
    if mode == Dispatch.LOOP:
        assert {t for t, _, _ in col.calls} == {threading.get_ident()}
    assert c.outstanding == 0
    c.close()  # idempotent
    assert c.closed
    time.sleep(0.2)
    assert len(col.calls) == 10
    with pytest.raises(MailsrvError) as ei:
        c.discover_async("example.com", col)
    assert ei.value.status == Status.SHUTDOWN
    assert c.cancel(ids[0]) is False


def test_close_from_inside_a_thread_callback(silent_ns, ns, anchor):
    col = Collector()
    c = Context([ns], trust_anchor_file=anchor, timeout_ms=20000)
    # requests to a nameserver that never answers stay in flight on a second context
    slow = Context([silent_ns], timeout_ms=20000)
    slow_ids = [slow.discover_async("example.com", col) for _ in range(3)]
    closed_inside = threading.Event()

    def cb(rid, outcome):
        slow.close()  # inside a callback of another context: a normal close
        c.close()  # inside its own callback: starts the shutdown, must not deadlock
        closed_inside.set()

    c.discover_async("example.com", cb, Service.IMAPS)
    assert closed_inside.wait(15)
    c.close()  # from outside: waits until done
    assert c.closed
    col.wait(3)
    assert {i for _, i, _ in col.calls} == set(slow_ids)
    assert all(o.status == Status.SHUTDOWN for _, _, o in col.calls)


def test_close_from_inside_a_loop_callback(silent_ns):
    col = Collector()
    c = Context([silent_ns], timeout_ms=20000, dispatch=Dispatch.LOOP)
    pending = [c.discover_async("example.com", col) for _ in range(3)]
    fired = []

    def cb(rid, outcome):
        fired.append(outcome)
        c.close()

    # a request that completes quickly: cancel one to get a callback into dispatch()
    rid = c.discover_async("example.com", cb)
    assert c.cancel(rid)
    pump(c, lambda: bool(fired), timeout=5)
    assert fired[0].status == Status.CANCELLED
    # the shutdown completed when dispatch() returned, on this thread
    assert c.closed
    assert sorted(i for _, i, _ in col.calls) == sorted(pending)
    assert all(o.status == Status.SHUTDOWN for _, _, o in col.calls)


def test_close_concurrently_with_blocking_calls(silent_ns):
    c = Context([silent_ns], timeout_ms=3000)
    errors = []

    def run():
        try:
            c.discover("example.com", Service.IMAPS)
        except MailsrvError as e:
            errors.append(e.status)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    c.close()  # waits for the calls in progress, then frees: no use after free
    for t in threads:
        t.join()
    assert all(s == Status.SHUTDOWN for s in errors)


def test_garbage_collected_context_is_freed(ns, anchor):
    c = Context([ns], trust_anchor_file=anchor)
    assert c in mailsrv._live_contexts
    ref_count_before = len(mailsrv._live_contexts)
    del c
    gc.collect()
    assert len(mailsrv._live_contexts) == ref_count_before - 1


def test_pending_request_keeps_context_alive(silent_ns):
    col = Collector()
    c = Context([silent_ns], timeout_ms=1000)
    c.discover_async("example.com", col, Service.IMAPS)
    del c
    gc.collect()
    col.wait(1, timeout=10)
    # it ran to its deadline instead of being shut down by the garbage collector
    outcome = col.calls[0][2]
    assert isinstance(outcome, Discovery) and outcome.services[0].status == Status.TIMEOUT


# ------------------------------------------------------------------ exceptions in callbacks


@pytest.mark.parametrize("mode", [Dispatch.THREAD, Dispatch.LOOP])
def test_exception_in_callback_is_contained(mode, ns, anchor, caplog):
    caplog.set_level(logging.ERROR, logger="mailsrv")
    col = Collector()

    def bad(rid, outcome):
        col(rid, outcome)
        raise RuntimeError(f"boom {rid}")

    with Context([ns], trust_anchor_file=anchor, dispatch=mode) as c:
        ids = [c.discover_async("example.com", bad, Service.IMAPS) for _ in range(3)]
        if mode == Dispatch.LOOP:
            pump(c, lambda: len(col.calls) >= 3)
        col.wait(3)
        # the context still works
        assert c.discover("example.com", Service.IMAPS).services[0].found
        errs = c.callback_errors
    assert len(errs) == 3
    assert all(isinstance(e, RuntimeError) for e in errs)
    assert {str(e) for e in errs} == {f"boom {i}" for i in ids}
    logged = [r for r in caplog.records if r.name == "mailsrv" and r.exc_info]
    assert len(logged) == 3
    assert "boom" in caplog.text


def test_system_exit_in_callback_is_contained(ns, anchor):
    done = threading.Event()

    def cb(rid, outcome):
        done.set()
        raise SystemExit(3)

    with Context([ns], trust_anchor_file=anchor) as c:
        c.discover_async("example.com", cb, Service.IMAPS)
        assert done.wait(15)
        time.sleep(0.1)
        errs = c.callback_errors
    assert len(errs) == 1 and isinstance(errs[0], SystemExit)


# ------------------------------------------------------------------ panic boundary


def test_test_panic_becomes_status_panic():
    from mailsrv import _ffi

    if not _ffi.HAS_TEST_HOOKS:
        if os.environ.get("MAILSRV_TEST_NO_HOOKS") == "1":
            pytest.skip("library built without test-hooks (MAILSRV_TEST_NO_HOOKS=1)")
        pytest.fail(
            f"{_ffi.LIBRARY_PATH} lacks mailsrv_test_panic: build with `cargo build --features test-hooks` "
            "(or set MAILSRV_TEST_NO_HOOKS=1 to skip this test)"
        )
    for _ in range(3):  # the process survives, repeatedly
        assert Status(_ffi.lib.mailsrv_test_panic()) == Status.PANIC
    assert Status.PANIC.text
    assert mailsrv.version()
