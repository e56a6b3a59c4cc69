"""asyncio: loop mode through loop.add_reader(notify_fd), and thread mode through
loop.call_soon_threadsafe."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mailsrv import (
    AsyncContext,
    Context,
    Discovery,
    Dispatch,
    MailsrvError,
    Purpose,
    Service,
    SrvState,
    Status,
)


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("mode", [Dispatch.LOOP, Dispatch.THREAD])
def test_asyncio_discover(mode, ns, anchor):
    async def main():
        async with AsyncContext([ns], trust_anchor_file=anchor, dispatch=mode) as actx:
            d = await actx.discover("joe@example.com")
            assert isinstance(d, Discovery)
            assert d.preferred(Purpose.ACCESS).service == Service.IMAPS
            assert d.preferred(Purpose.SUBMISSION).service == Service.SUBMISSIONS
            return d

    d = run(main())
    assert d.domain == "example.com"


@pytest.mark.parametrize("mode", [Dispatch.LOOP, Dispatch.THREAD])
def test_asyncio_gather_many(mode, ns, anchor):
    addrs = ["example.com", "insecure.test", "bogus.test", "broken.test", "nosrv.example.com", "bücher.example"]
    expected = [
        SrvState.FOUND,
        SrvState.FOUND,
        SrvState.BOGUS,
        SrvState.LOOKUP_FAILED,
        SrvState.NO_RECORD,
        SrvState.FOUND,
    ]

    async def main():
        async with AsyncContext([ns], trust_anchor_file=anchor, dispatch=mode) as actx:
            return await asyncio.gather(*(actx.discover(a, Service.IMAPS) for a in addrs * 3))

    results = run(main())
    assert [r.services[0].state for r in results] == expected * 3


def test_asyncio_loop_mode_runs_callbacks_on_the_loop_thread(ns, anchor):
    seen = {}

    async def main():
        seen["loop_thread"] = threading.get_ident()
        actx = AsyncContext([ns], trust_anchor_file=anchor)
        try:
            assert actx.context.dispatch_mode == Dispatch.LOOP
            loop = asyncio.get_running_loop()
            fut = loop.create_future()

            def cb(rid, outcome):
                seen["cb_thread"] = threading.get_ident()
                fut.set_result(outcome)

            # the reader that AsyncContext installs also serves plain discover_async calls
            await actx.discover("example.com", Service.IMAPS)
            actx.context.discover_async("insecure.test", cb, Service.IMAPS)
            return await asyncio.wait_for(fut, 10)
        finally:
            actx.close()

    d = run(main())
    assert seen["cb_thread"] == seen["loop_thread"]
    assert d.domain == "insecure.test"


def test_asyncio_does_not_block_the_loop(silent_ns):
    async def main():
        async with AsyncContext([silent_ns], timeout_ms=6000) as actx:
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            t = asyncio.ensure_future(ticker())
            t0 = time.monotonic()
            d = await actx.discover("example.com", Service.IMAPS)
            elapsed = time.monotonic() - t0
            t.cancel()
            return d, ticks, elapsed

    d, ticks, elapsed = run(main())
    assert d.services[0].status == Status.TIMEOUT
    assert elapsed > 0.5 and ticks > 0.5 * elapsed / 0.01, (ticks, elapsed)
    assert elapsed < 7


def test_asyncio_errors_raise(ns, anchor):
    async def main():
        async with AsyncContext([ns], trust_anchor_file=anchor) as actx:
            with pytest.raises(MailsrvError) as ei:
                await actx.discover("not-a-domain")
            return ei.value

    assert run(main()).status == Status.INVALID_ARG


@pytest.mark.parametrize("mode", [Dispatch.LOOP, Dispatch.THREAD])
def test_asyncio_task_cancel_cancels_request(mode, silent_ns):
    async def main():
        actx = AsyncContext([silent_ns], timeout_ms=20000, dispatch=mode)
        try:
            task = asyncio.ensure_future(actx.discover("example.com"))
            await asyncio.sleep(0.1)
            assert actx.context.outstanding == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the CANCELLED callback arrives and is absorbed
            for _ in range(200):
                if actx.context.outstanding == 0:
                    break
                await asyncio.sleep(0.01)
            assert actx.context.outstanding == 0
            assert actx.context.callback_errors == []
        finally:
            actx.close()

    t0 = time.monotonic()
    run(main())
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("mode", [Dispatch.LOOP, Dispatch.THREAD])
def test_asyncio_close_fails_waiters_with_shutdown(mode, silent_ns):
    async def main():
        actx = AsyncContext([silent_ns], timeout_ms=20000, dispatch=mode)
        tasks = [asyncio.ensure_future(actx.discover("example.com")) for _ in range(3)]
        await asyncio.sleep(0.1)
        actx.close()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        actx.close()  # idempotent
        return results

    results = run(main())
    assert all(isinstance(r, MailsrvError) and r.status == Status.SHUTDOWN for r in results), results


def test_asyncio_context_moves_to_the_next_loop(ns, anchor):
    """One AsyncContext serves several asyncio.run calls in turn (issue 19)."""
    actx = AsyncContext([ns], trust_anchor_file=anchor)
    try:
        for _ in range(3):
            d = asyncio.run(actx.discover("example.com", Service.IMAPS))
            assert d.domain == "example.com"
    finally:
        actx.close()


def test_asyncio_context_refuses_a_second_running_loop(ns, anchor):
    actx = AsyncContext([ns], trust_anchor_file=anchor)
    started, release = threading.Event(), threading.Event()

    async def hold():
        await actx.discover("example.com", Service.IMAPS)
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)

    t = threading.Thread(target=lambda: asyncio.run(hold()))
    t.start()
    try:
        assert started.wait(10)
        with pytest.raises(RuntimeError, match="another event loop that is still running"):
            asyncio.run(actx.discover("example.com", Service.IMAPS))
    finally:
        release.set()
        t.join(10)
        actx.close()


def test_plain_context_with_add_reader(ns, anchor):
    """The recipe without AsyncContext: add_reader(notify_fd, dispatch) and a Future."""

    async def main():
        loop = asyncio.get_running_loop()
        with Context([ns], trust_anchor_file=anchor, dispatch=Dispatch.LOOP) as c:
            loop.add_reader(c.notify_fd(), c.dispatch)
            try:
                futs = []
                for addr in ("example.com", "bücher.example"):
                    fut = loop.create_future()
                    c.discover_async(addr, lambda rid, o, f=fut: f.set_result(o), Service.IMAPS)
                    futs.append(fut)
                return await asyncio.wait_for(asyncio.gather(*futs), 10)
            finally:
                loop.remove_reader(c.notify_fd())

    a, b = run(main())
    assert (a.domain, b.domain) == ("example.com", "xn--bcher-kva.example")
