"""History (the observation file) and Context.srv_change_check: round trips, damaged files
kept aside, crash safety (writers killed with SIGKILL mid-save lose nothing), concurrent
writers, and the refresh decisions of tests/ffi_change.rs."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Set, Tuple

import pytest
from conftest import BINDINGS
from test_async import Collector, pump

from mailsrv import (
    AsyncContext,
    Change,
    Decision,
    Dispatch,
    History,
    HistoryCorrupt,
    MailsrvError,
    Origin,
    Service,
    Status,
    Verdict,
)

DAY = 86_400
NOW = 1_800_000_000
TARGET = "mail.example.net"


@pytest.fixture
def hpath(tmp_path) -> Path:
    return tmp_path / "history"


def corrupt_files(path: Path) -> List[Path]:
    return sorted(p for p in path.parent.iterdir() if ".corrupt-" in p.name)


# ------------------------------------------------------------------ round trip


def test_round_trip(hpath):
    with History.open(hpath) as h:  # the file need not exist
        assert len(h) == 0 and not hpath.exists()
        assert h.path == os.fspath(hpath)
        h.observe("example.com", Service.IMAPS, "a.example.net", 993, now=100)
        h.observe("Example.COM.", Service.IMAPS, "A.Example.NET.", 993, now=200)  # the same answer
        h.observe("example.com", Service.SUBMISSIONS, "a.example.net", 465, now=150)
        h.observe("bücher.example", Service.IMAPS, "mail.example.net", 993, now=300)
        assert len(h) == 3
        assert h.seen("example.com", Service.IMAPS, "a.example.net", 993) == (100, 200)
        assert h.seen("EXAMPLE.com", Service.IMAPS, "a.example.net.", 993) == (100, 200)
        assert h.seen("example.com", Service.IMAPS, "a.example.net", 994) is None
        assert h.seen("example.com", Service.IMAP, "a.example.net", 993) is None
        # observe() does not know who named the answer (the change checks record it)
        assert h.source("example.com", Service.IMAPS, "a.example.net", 993) is None
        h.save()
    assert hpath.read_text().startswith("mailsrv-history 2\n")
    with History(hpath) as h2:
        assert len(h2) == 3
        assert h2.seen("example.com", Service.IMAPS, "a.example.net", 993) == (100, 200)
        assert h2.seen("example.com", Service.SUBMISSIONS, "a.example.net", 465) == (150, 150)
        assert h2.seen("xn--bcher-kva.example", Service.IMAPS, TARGET, 993) == (300, 300)


def test_now_zero_is_the_current_time(hpath):
    with History.open(hpath) as h:
        t0 = int(time.time())
        h.observe("example.com", Service.IMAPS, TARGET, 993)
        first, last = h.seen("example.com", Service.IMAPS, TARGET, 993)
        assert first == last and t0 - 1 <= first <= int(time.time()) + 1


def test_another_answer_in_between_restarts_first_seen(hpath):
    with History.open(hpath) as h:
        h.observe("example.com", Service.IMAPS, "a.example.net", 993, now=100)
        h.observe("example.com", Service.IMAPS, "b.example.net", 993, now=150)
        h.observe("example.com", Service.IMAPS, "a.example.net", 993, now=200)
        assert h.seen("example.com", Service.IMAPS, "a.example.net", 993) == (200, 200)


def test_unsaved_observations_are_lost(hpath):
    with History.open(hpath) as h:
        h.observe("example.com", Service.IMAPS, TARGET, 993, now=100)
    with History.open(hpath) as h:
        assert len(h) == 0


def test_closed_history(hpath):
    h = History.open(hpath)
    h.close()
    h.close()  # idempotent
    assert h.closed and "closed" in repr(h)
    for call in (
        lambda: h.observe("example.com", Service.IMAPS, TARGET, 993),
        lambda: h.seen("example.com", Service.IMAPS, TARGET, 993),
        h.save,
        lambda: len(h),
    ):
        with pytest.raises(MailsrvError) as ei:
            call()
        assert ei.value.status == Status.SHUTDOWN


def test_bad_arguments(hpath, tmp_path):
    with History.open(hpath) as h:
        for args in [
            ("example.com", Service.IMAPS | Service.IMAP, TARGET, 993),
            ("example.com", 0, TARGET, 993),
            ("exa mple.com", Service.IMAPS, TARGET, 993),
            ("example.com", Service.IMAPS, "bad..name", 993),
            ("example.com\0x", Service.IMAPS, TARGET, 993),
            ("example.com", Service.IMAPS, TARGET, 65536),
        ]:
            with pytest.raises(MailsrvError) as ei:
                h.observe(*args)
            assert ei.value.status == Status.INVALID_ARG, args
        with pytest.raises(MailsrvError) as ei:
            h.observe("example.com", Service.IMAPS, TARGET, 993, now=-1)
        assert ei.value.status == Status.INVALID_ARG
        assert len(h) == 0
    # a history in a folder that does not exist opens empty, and saving it fails with IO
    with History.open(tmp_path / "missing" / "history") as h:
        h.observe("example.com", Service.IMAPS, TARGET, 993)
        with pytest.raises(MailsrvError) as ei:
            h.save()
        assert ei.value.status == Status.IO and "missing" in ei.value.detail


# ------------------------------------------------------------------ damaged files

DAMAGED = {
    "truncated": "mailsrv-history 1\nobs example.com imaps a.example.net 993 1 2\n",
    "magic": "something else\n",
    "bad port": "mailsrv-history 1\nobs example.com imaps a.example.net 99999 1 2\nend 1\n",
    "count": "mailsrv-history 1\nend 3\n",
    "binary": "\x00\xff garbage",
    "empty": "",
}


@pytest.mark.parametrize("content", list(DAMAGED.values()), ids=list(DAMAGED))
def test_damaged_file_is_reported_and_kept_aside(hpath, content):
    hpath.write_bytes(content.encode("latin-1"))
    with pytest.raises(HistoryCorrupt) as ei:
        History.open(hpath)
    e = ei.value
    assert isinstance(e, MailsrvError) and e.status == Status.CORRUPT
    assert ".corrupt-" in e.detail
    assert e.kept_aside is not None and e.kept_aside in e.detail
    kept = Path(e.kept_aside)
    assert kept.read_bytes() == content.encode("latin-1"), "the damaged content is kept as it was"
    assert corrupt_files(hpath) == [kept]
    assert not hpath.exists()
    # opening again starts an empty history
    with History.open(hpath) as h:
        assert len(h) == 0


def test_save_over_a_file_damaged_meanwhile(hpath):
    with History.open(hpath) as h:
        h.observe("example.com", Service.IMAPS, "a.example.net", 993, now=100)
        h.save()
        hpath.write_text("damaged by someone else\n")
        h.observe("example.com", Service.IMAPS, "b.example.net", 993, now=200)
        with pytest.raises(HistoryCorrupt) as ei:
            h.save()
        assert Path(ei.value.kept_aside).read_text() == "damaged by someone else\n"
        # nothing of this history is lost: the next save writes all of it
        h.save()
    with History.open(hpath) as h:
        assert h.seen("example.com", Service.IMAPS, "a.example.net", 993) == (100, 100)
        assert h.seen("example.com", Service.IMAPS, "b.example.net", 993) == (200, 200)


# ------------------------------------------------------------------ several processes

# A writer: one History for its whole life; observe a new key, save, then report the key on
# stdout. Keys are "<tag>-<i>.test". argv: bindings dir, path, tag, count (0 = forever).
WRITER = r"""
import sys
sys.path.insert(0, sys.argv[1])
import mailsrv
path, tag, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
h = mailsrv.History.open(path)
print("ready", flush=True)
if sys.stdin.readline() != "go\n":
    sys.exit(3)
i = 0
while count == 0 or i < count:
    key = f"{tag}-{i}.test"
    h.observe(key, mailsrv.Service.IMAPS, "mail.example.net", 993, now=1_700_000_000 + i)
    # every writer also observes one shared key, at its own times
    h.observe("shared.test", mailsrv.Service.IMAPS, "mail.example.net", 993, now=1_700_000_000 + i)
    h.save()
    print("saved", key, flush=True)
    i += 1
"""


def start_writer(path: Path, tag: str, count: int) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(BINDINGS), str(path), tag, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = p.stdout.readline()
    if line != "ready\n":
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"writer {tag} did not start: {line!r}{out!r}\n{err}")
    return p


def go(procs: List[subprocess.Popen]) -> None:
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


def saved_keys(out: str) -> Set[str]:
    return {line.split()[1] for line in out.splitlines() if line.startswith("saved ")}


def missing(path: Path, keys: Set[str]) -> Set[str]:
    with History.open(path) as h:  # raises HistoryCorrupt if a crash damaged the file
        return {k for k in keys if h.seen(k, Service.IMAPS, TARGET, 993) is None}


def test_writers_killed_mid_save_lose_nothing(hpath):
    seed = int(time.time() * 1000) & 0xFFFFFFFF
    rng = random.Random(seed)
    reported: Set[str] = set()
    tmp_left = 0
    for rnd in range(6):
        procs = [start_writer(hpath, f"r{rnd}w{k}", 0) for k in range(3)]
        go(procs)
        time.sleep(rng.uniform(0.1, 0.5))
        for p in procs:  # at random moments, most likely inside save() (write, fsync, rename)
            time.sleep(rng.uniform(0, 0.03))
            os.kill(p.pid, signal.SIGKILL)
        for p in procs:
            out, err = p.communicate(timeout=30)
            assert p.returncode == -signal.SIGKILL, (p.returncode, err)
            reported |= saved_keys(out)
        tmp_left += sum(1 for f in hpath.parent.iterdir() if ".tmp-" in f.name)
        # after every round the file opens cleanly and holds every reported observation
        lost = missing(hpath, reported)
        assert not lost, f"seed {seed}: round {rnd} lost {len(lost)} of {len(reported)}: {sorted(lost)[:5]}"
    assert corrupt_files(hpath) == [], f"seed {seed}"
    assert len(reported) >= 50, f"seed {seed}: only {len(reported)} saves completed: too few to mean anything"
    print(f"seed {seed}: {len(reported)} reported saves kept; temp files left by killed writers: {tmp_left}")


def test_two_writers_at_once_lose_no_observation(hpath):
    n = 60
    procs = [start_writer(hpath, tag, n) for tag in ("a", "b")]
    go(procs)  # both are ready: they save concurrently
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out)
    want = {f"{tag}-{i}.test" for tag in ("a", "b") for i in range(n)}
    assert saved_keys(outs[0]) | saved_keys(outs[1]) == want
    assert not missing(hpath, want)
    with History.open(hpath) as h:
        assert len(h) == 2 * n + 1
        # the shared key: the earliest first-seen and the latest last-seen of both
        assert h.seen("shared.test", Service.IMAPS, TARGET, 993) == (1_700_000_000, 1_700_000_000 + n - 1)


def test_threads_share_one_history(hpath):
    with History.open(hpath) as h:

        def work(tag: str) -> None:
            for i in range(50):
                h.observe(f"{tag}-{i}.test", Service.IMAPS, TARGET, 993, now=NOW)
                if i % 10 == 0:
                    h.save()

        threads = [threading.Thread(target=work, args=(t,)) for t in "abcd"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        h.save()
    with History.open(hpath) as h:
        assert len(h) == 200


# ------------------------------------------------------------------ srv_change_check


def check(ctx, domain: str, host: str, port: int, **kw) -> Change:
    c = ctx.srv_change_check(domain, Service.IMAPS, host, port, **kw)
    assert isinstance(c, Change)
    assert c.detail
    return c


def test_unchanged_answer_is_no_change(tls_ctx, mail):
    c = check(tls_ctx, "example.com", TARGET, mail["imaps"], now=NOW)
    assert c.decision == Decision.NO_CHANGE
    assert c.verdict is None, "nothing to judge"
    assert c.wait_until == 0


def test_dnssec_secure_change_updates(tls_ctx, mail):
    c = check(tls_ctx, "example.com", "old.example.net", 993, now=NOW)
    assert c.decision == Decision.UPDATE, c.detail
    assert (c.target, c.port) == (TARGET, mail["imaps"])
    assert c.verdict == Verdict.AUTHENTIC


def test_user_typed_configuration_never_changes(tls_ctx):
    c = check(tls_ctx, "example.com", "old.example.net", 993, origin=Origin.USER, now=NOW)
    assert c.decision == Decision.NO_CHANGE
    assert c.verdict is None, "not even judged"


def test_bogus_answer_is_rejected(tls_ctx):
    c = check(tls_ctx, "bogus.test", "old.example.net", 993, now=NOW)
    assert c.decision == Decision.REJECT
    assert "DNSSEC" in c.detail
    # the bogus discovery yields no endpoint, so there is nothing to judge
    assert (c.target, c.port, c.verdict) == (None, 0, None)


def test_probe_proven_change_updates(tls_ctx, mail):
    c = check(tls_ctx, "hosted.test", "old.example.net", 993, now=NOW)
    assert c.decision == Decision.UPDATE, c.detail
    assert c.verdict == Verdict.AUTHENTIC


def test_unverified_change_waits_then_asks_the_user(tls_ctx, mail, hpath):
    with History.open(hpath) as h:
        c = check(tls_ctx, "insecure.test", "old.example.net", 993, history=h, now=NOW)
        assert c.decision == Decision.WAIT, c.detail
        assert (c.target, c.port) == (TARGET, mail["imaps"])
        assert c.verdict == Verdict.UNVERIFIED
        assert c.wait_until == NOW + 7 * DAY
        assert len(h) == 1
        h.save()
    # reopened from disk, eight days later: it persisted, so the user may be asked
    with History.open(hpath) as h:
        assert len(h) == 1
        assert h.seen("insecure.test", Service.IMAPS, TARGET, mail["imaps"]) == (NOW, NOW)
        c = check(tls_ctx, "insecure.test", "old.example.net", 993, history=h, now=NOW + 8 * DAY)
        assert c.decision == Decision.ASK_USER, c.detail
        assert c.verdict == Verdict.UNVERIFIED
        assert h.seen("insecure.test", Service.IMAPS, TARGET, mail["imaps"]) == (NOW, NOW + 8 * DAY)


def test_interruption_survives_two_writers(tls_ctx, mail, hpath):
    """Issue 12: the answer (TARGET) is seen on day 0 and day 6 by one writer, another answer
    on day 3 by a second writer on the same file. On day 7 the answer has persisted one day:
    WAIT, not ASK_USER (the save merge used to restore day 0)."""
    w1, w2 = History.open(hpath), History.open(hpath)
    try:
        assert check(tls_ctx, "insecure.test", "old.example.net", 993, history=w1, now=NOW).decision == Decision.WAIT
        w1.save()
        w2.observe("insecure.test", Service.IMAPS, "b.example.net", 993, now=NOW + 3 * DAY)
        w2.save()
        c = check(tls_ctx, "insecure.test", "old.example.net", 993, history=w1, now=NOW + 6 * DAY)
        assert c.decision == Decision.WAIT, c.detail
        w1.save()
        assert w1.seen("insecure.test", Service.IMAPS, TARGET, mail["imaps"]) == (NOW + 6 * DAY,) * 2
        w2.save()  # the second writer saving again changes nothing
    finally:
        w1.close()
        w2.close()
    with History.open(hpath) as h:
        c = check(tls_ctx, "insecure.test", "old.example.net", 993, history=h, now=NOW + 7 * DAY)
        assert c.decision == Decision.WAIT, c.detail
        assert c.wait_until == NOW + 13 * DAY


def test_min_age_and_no_probe(tls_ctx, hpath):
    with History.open(hpath) as h:
        c = check(tls_ctx, "insecure.test", "old.example.net", 993, history=h, now=NOW, min_age_s=3600, probe=False)
        assert c.decision == Decision.WAIT and c.wait_until == NOW + 3600
        c = check(tls_ctx, "insecure.test", "old.example.net", 993, history=h, now=NOW + 3600, min_age_s=3600)
        assert c.decision == Decision.ASK_USER, c.detail
    # without a history nothing has persisted
    c = check(tls_ctx, "insecure.test", "old.example.net", 993, now=NOW + 30 * DAY)
    assert c.decision == Decision.WAIT


def test_change_check_bad_arguments(tls_ctx, hpath):
    for kw, status in [
        (dict(origin=10), Status.INVALID_ARG),
        (dict(now=-1), Status.INVALID_ARG),
    ]:
        with pytest.raises(MailsrvError) as ei:
            tls_ctx.srv_change_check("example.com", Service.IMAPS, "h.example.net", 993, **kw)
        assert ei.value.status == status, kw
    with pytest.raises(MailsrvError) as ei:
        tls_ctx.srv_change_check("example.com", Service.IMAPS | Service.IMAP, "h.example.net", 993)
    assert ei.value.status == Status.INVALID_ARG
    with pytest.raises(TypeError):
        tls_ctx.srv_change_check("example.com", Service.IMAPS, "h.example.net", 993, history=str(hpath))
    h = History.open(hpath)
    h.close()
    with pytest.raises(MailsrvError) as ei:
        tls_ctx.srv_change_check("example.com", Service.IMAPS, "h.example.net", 993, history=h)
    assert ei.value.status == Status.SHUTDOWN


def test_change_check_async_keeps_its_history(tls_ctx, hpath):
    col = Collector()
    h = History.open(hpath)
    rid = tls_ctx.srv_change_check_async(
        "insecure.test", Service.IMAPS, "old.example.net", 993, col, history=h, now=NOW
    )
    h.close()  # the running check keeps its own reference
    col.wait(1)
    ((_, got, c),) = col.calls
    assert got == rid
    assert isinstance(c, Change) and c.decision == Decision.WAIT


def test_change_check_loop_mode(tls_loop_ctx):
    col = Collector()
    a = tls_loop_ctx.srv_change_check_async("example.com", Service.IMAPS, "old.example.net", 993, col, now=NOW)
    b = tls_loop_ctx.srv_change_check_async("bogus.test", Service.IMAPS, "old.example.net", 993, col, now=NOW)
    pump(tls_loop_ctx, lambda: len(col.calls) >= 2)
    by_id = col.by_id()
    assert (by_id[a].decision, by_id[b].decision) == (Decision.UPDATE, Decision.REJECT)


@pytest.mark.parametrize("mode", [Dispatch.LOOP, Dispatch.THREAD])
def test_asyncio_change_check(mode, ns, anchor, ca_file, mail, hpath):
    async def main() -> Tuple[Change, ...]:
        async with AsyncContext([ns], trust_anchor_file=anchor, ca_file=ca_file, dispatch=mode) as actx:
            with History.open(hpath) as h:
                return await asyncio.gather(
                    actx.srv_change_check("example.com", Service.IMAPS, TARGET, mail["imaps"], now=NOW),
                    actx.srv_change_check("example.com", Service.IMAPS, "old.example.net", 993, now=NOW),
                    actx.srv_change_check("insecure.test", Service.IMAPS, "old.example.net", 993, history=h, now=NOW),
                    actx.srv_change_check("example.com", Service.IMAPS, "old.example.net", 993, origin=Origin.USER),
                )

    got = asyncio.run(main())
    assert [c.decision for c in got] == [Decision.NO_CHANGE, Decision.UPDATE, Decision.WAIT, Decision.NO_CHANGE]
