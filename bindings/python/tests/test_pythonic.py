"""Issue 19: bindings that feel native to a Python developer. asyncio streams (a Transport
following the poll rule, also for a kept probe), the exception hierarchy, lazy loading,
aclose(), enums, docstrings, reprs, service names, argument errors, full duplex from two
threads, account setup, packaging, and the examples."""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
import pydoc
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import mailsrv
from mailsrv import (
    AsyncContext,
    Context,
    Dispatch,
    History,
    MailsrvError,
    Purpose,
    Security,
    Service,
    Status,
    Verdict,
)

from conftest import BINDINGS, REPO

HOST = "mail.example.net"
TARGET = "mail.example.net"
PKG = BINDINGS / "mailsrv"


def actx_for(ns, anchor, ca_file, **kw) -> AsyncContext:
    return AsyncContext([ns], trust_anchor_file=anchor, ca_file=ca_file, timeout_ms=10000, **kw)


# ------------------------------------------------------------------ asyncio streams


async def imap_cmd(reader, writer, tag: str, cmd: str) -> list:
    writer.write(f"{tag} {cmd}\r\n".encode())
    await writer.drain()
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        assert line, f"EOF during {cmd}"
        lines.append(line.decode())
        if line.startswith(tag.encode()):
            return lines


@pytest.mark.parametrize("dispatch", [Dispatch.LOOP, Dispatch.THREAD])
@pytest.mark.parametrize("label,security", [("imaps", Security.IMPLICIT_TLS), ("imap", Security.STARTTLS_IMAP)])
def test_open_connection_runs_an_imap_session(ns, anchor, ca_file, mail, dispatch, label, security):
    async def main():
        async with actx_for(ns, anchor, ca_file, dispatch=dispatch) as actx:
            reader, writer = await actx.open_connection(HOST, mail[label], security)
            stream = writer.get_extra_info("mailsrv_stream")
            assert isinstance(stream, mailsrv.TlsStream) and stream.greeting.startswith("* OK")
            assert writer.get_extra_info("tls_version") in ("TLSv1.3", "TLSv1.2")
            assert isinstance(writer.transport, mailsrv.TlsTransport)
            login = await imap_cmd(reader, writer, "a1", 'LOGIN "joe@example.com" "test"')
            assert login[-1].startswith("a1 OK"), login
            sel = await imap_cmd(reader, writer, "a2", "SELECT INBOX")
            assert any(" EXISTS" in x for x in sel) and sel[-1].startswith("a2 OK")
            # a large write goes through flow control (drain) and the poll rule on reads
            big = b"".join(b"a%d NOOP\r\n" % i for i in range(3, 3003))
            writer.write(big)
            await writer.drain()
            for _ in range(3000):
                line = await asyncio.wait_for(reader.readline(), 10)
                while not line.startswith(b"a"):
                    line = await asyncio.wait_for(reader.readline(), 10)
                assert b" OK" in line
            logout = await imap_cmd(reader, writer, "z", "LOGOUT")
            assert logout[-1].startswith("z OK")
            assert await asyncio.wait_for(reader.read(), 10) == b""  # server closed (close_notify)
            writer.close()
            await writer.wait_closed()
            assert stream.closed
            assert actx.context.outstanding == 0

    asyncio.run(main())


def test_open_stream_on_a_kept_probe(ns, anchor, ca_file, mail):
    async def main():
        async with actx_for(ns, anchor, ca_file) as actx:
            a = await actx.verify_srv_authenticity("hosted.test", "imaps", TARGET, mail["imaps"], keep_probe=True)
            assert a.verdict == Verdict.AUTHENTIC and a.probe_stream is not None
            assert a.probe_stream.sni == "hosted.test"
            reader, writer = await mailsrv.open_stream(a.probe_stream)
            reply = await imap_cmd(reader, writer, "p1", "CAPABILITY")
            assert reply[-1].startswith("p1 OK")
            writer.close()
            await writer.wait_closed()
            assert a.probe_stream.closed

    asyncio.run(main())


def test_open_connection_errors_are_builtin_exceptions(ns, anchor, ca_file, mail):
    async def main():
        async with actx_for(ns, anchor, ca_file) as actx:
            with pytest.raises(ValueError, match="port"):
                await actx.open_connection(HOST, 70000)
            with pytest.raises(mailsrv.NameMismatch) as e:
                await actx.open_connection(HOST, mail["imaps"], identity=mailsrv.Identity().dns_id("other.example"))
            assert isinstance(e.value, mailsrv.CertificateError)
            assert isinstance(e.value, ConnectionError) and isinstance(e.value, ValueError)
            assert e.value.status == Status.NAME_MISMATCH
            with pytest.raises(ConnectionError):
                await actx.open_connection("127.0.0.1", 1)  # nothing listens
            assert actx.context.outstanding == 0

    asyncio.run(main())


def test_cancelling_open_connection_leaves_nothing(ns, anchor, ca_file, mail):
    async def main():
        async with actx_for(ns, anchor, ca_file) as actx:
            t = asyncio.ensure_future(actx.open_connection(HOST, mail["imaps"]))
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            for _ in range(100):
                if actx.context.outstanding == 0:
                    break
                await asyncio.sleep(0.02)
            assert actx.context.outstanding == 0

    asyncio.run(main())


# ------------------------------------------------------------------ exceptions


def test_exception_hierarchy():
    cases = {
        Status.INVALID_ARG: (mailsrv.InvalidArgument, ValueError),
        Status.NULL_ARG: (mailsrv.InvalidArgument, ValueError),
        Status.TIMEOUT: (mailsrv.Timeout, TimeoutError),
        Status.CONNECT_FAILED: (mailsrv.ConnectFailed, ConnectionError),
        Status.CONNECTION_CLOSED: (mailsrv.ConnectionClosed, ConnectionResetError),
        Status.PROTOCOL: (mailsrv.ProtocolError, ConnectionError),
        Status.HANDSHAKE: (mailsrv.TlsError, ConnectionError),
        Status.CERT_EXPIRED: (mailsrv.CertificateExpired, mailsrv.CertificateError),
        Status.UNKNOWN_ISSUER: (mailsrv.UnknownIssuer, ValueError),
        Status.NAME_MISMATCH: (mailsrv.NameMismatch, ConnectionError),
        Status.NXDOMAIN: (mailsrv.DnsError, OSError),
        Status.BOGUS: (mailsrv.DnssecError, mailsrv.DnsError),
        Status.SHUTDOWN: (mailsrv.ContextClosed, RuntimeError),
        Status.IO: (mailsrv.FileError, OSError),
        Status.CORRUPT: (mailsrv.HistoryCorrupt, ValueError),
        Status.NOT_FOUND: (mailsrv.NotFound, LookupError),
        Status.PANIC: (mailsrv.InternalError, RuntimeError),
        Status.WOULD_BLOCK: (mailsrv.WouldBlock, BlockingIOError),
    }
    for status, (cls, builtin) in cases.items():
        e = MailsrvError(status, "why")
        assert type(e) is cls and isinstance(e, MailsrvError) and isinstance(e, builtin), status
        assert e.status == status and e.detail == "why" and e.args == (int(status), "why")
        assert str(e) == f"{status.name}: why"
        assert repr(e) == f"{cls.__name__}(Status.{status.name}, 'why')"
        if isinstance(e, OSError):
            assert e.errno is None  # never an errno made from a mailsrv status
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is cls and back.status == status and back.detail == "why"
    # every status has a class; an unknown one stays a plain MailsrvError
    for s in Status:
        assert isinstance(MailsrvError(s), MailsrvError)
    assert type(MailsrvError(99)) is MailsrvError


def test_errors_from_real_calls(ctx, tls_ctx, mail):
    with pytest.raises(ValueError, match="address"):
        ctx.discover("not an address")
    with pytest.raises(ValueError, match="address 'not an address' is not"):
        ctx.discover_async("not an address", lambda rid, o: None)
    assert ctx.outstanding == 0
    s = tls_ctx.connect(HOST, mail["imaps"])
    with s:
        s.set_timeout_ms(200)
        with pytest.raises(TimeoutError):
            s.read(10)
    closed = Context()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        closed.discover("example.com")


# ------------------------------------------------------------------ loading


def test_import_and_help_without_the_library(tmp_path):
    code = (
        "import mailsrv, pydoc\n"
        "assert issubclass(mailsrv.LibraryNotFound, ImportError)\n"
        "text = pydoc.render_doc(mailsrv)\n"
        "assert 'open_connection' in text, 'help(mailsrv) is incomplete'\n"
        "str(mailsrv.Verdict.AUTHENTIC); mailsrv.Service.parse('imaps')\n"
        "try:\n"
        "    mailsrv.version()\n"
        "except ImportError as e:\n"
        "    assert isinstance(e, mailsrv.LibraryNotFound), type(e)\n"
        "    assert '/nonexistent/libmailsrv.so' in str(e)\n"
        "    print('ok')\n"
    )
    env = dict(os.environ, MAILSRV_LIBRARY="/nonexistent/libmailsrv.so", PYTHONPATH=str(BINDINGS))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ------------------------------------------------------------------ aclose, loops


def test_aclose_never_blocks_the_loop(ns, anchor, dead_ns):
    """A blocking call on another thread holds the context for ~1.5 s; aclose() returns to
    the loop at once and completes when that call ends."""
    actx = AsyncContext([dead_ns], trust_anchor_file=anchor, timeout_ms=1500)
    started = threading.Event()
    results = []

    def blocking():
        started.set()
        try:
            results.append(actx.context.discover("example.com", Service.IMAPS))
        except MailsrvError as e:
            results.append(e)

    async def main():
        t = threading.Thread(target=blocking)
        t.start()
        started.wait(5)
        await asyncio.sleep(0.1)  # the call is inside C now
        stalls = []

        async def ticker():
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                stalls.append(now - last)
                last = now

        tick = asyncio.ensure_future(ticker())
        t0 = time.monotonic()
        close = asyncio.ensure_future(actx.aclose())
        await asyncio.sleep(0.3)
        assert not close.done()  # waits for the blocking call, without blocking the loop
        await asyncio.wait_for(close, 10)
        elapsed = time.monotonic() - t0
        tick.cancel()
        t.join(10)
        return max(stalls), elapsed

    worst, elapsed = asyncio.run(main())
    print(f"aclose: longest loop stall {worst * 1000:.1f} ms, closed after {elapsed * 1000:.0f} ms")
    assert worst < 0.1, worst
    assert results and actx.closed


def test_aclose_with_requests_in_flight(ns, anchor, dead_ns):
    async def main():
        actx = AsyncContext([dead_ns], trust_anchor_file=anchor, timeout_ms=5000)
        tasks = [asyncio.ensure_future(actx.discover("example.com")) for _ in range(3)]
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await actx.aclose()
        took = time.monotonic() - t0
        res = await asyncio.gather(*tasks, return_exceptions=True)
        await actx.aclose()  # idempotent
        return took, res

    took, res = asyncio.run(main())
    assert took < 0.2, took
    assert all(isinstance(r, mailsrv.ContextClosed) for r in res), res


def test_async_context_signature_is_explicit():
    for obj in (AsyncContext.__init__, Context.__init__):
        params = inspect.signature(obj).parameters.values()
        assert not [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD], obj
    with pytest.raises(TypeError):
        AsyncContext(ca_flie="x")  # type: ignore[call-arg]


# ------------------------------------------------------------------ enums, docs, reprs


def test_every_enum_has_label_and_readable_str():
    enums = [v for v in vars(mailsrv).values() if isinstance(v, type) and issubclass(v, (mailsrv.Status.__mro__[1], Service))]
    enums = [e for e in enums if e not in (mailsrv._OpenIntEnum,) and e.__module__ == "mailsrv"]
    assert len(enums) >= 12
    for e in enums:
        for m in e:
            assert m.label == m.name.lower(), m
            assert str(m) == f"{m}" == m.label, m
    assert f"{Verdict.AUTHENTIC}" == "authentic"
    assert str(Service.IMAPS | Service.SUBMISSIONS) == "imaps|submissions"
    assert str(Service(0)) == "all"
    assert Status(777).label == "unknown_777"
    # labels agree with the library's own names
    for s in Service:
        assert s.label == mailsrv._text(mailsrv.lib.mailsrv_service_name(int(s)))
    for st in mailsrv.SrvState:
        assert st.label == mailsrv._text(mailsrv.lib.mailsrv_srv_state_name(int(st)))
    for d in mailsrv.Dnssec:
        assert d.label == mailsrv._text(mailsrv.lib.mailsrv_dnssec_name(int(d)))


def test_docs_are_docstrings_help_shows():
    for path in PKG.glob("*.py"):
        assert "#:" not in path.read_text(encoding="utf-8"), f"{path.name}: use docstrings, not #: comments"
    text = pydoc.render_doc(mailsrv.Endpoint)
    assert "IPv6 first, then IPv4" in text
    assert "probe_stream: With keep_probe" in pydoc.render_doc(mailsrv.Authenticity)
    assert "LOOP: Inside" in pydoc.render_doc(Dispatch)
    for name in mailsrv.__all__:
        obj = getattr(mailsrv, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"mailsrv.{name} has no docstring"


def test_authenticity_repr_is_short(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("hosted.test", Service.IMAPS, TARGET, mail["imaps"])
    assert a.probe_chain and len(repr(a)) < 800, repr(a)
    assert "probe_chain" not in repr(a)


def test_service_names_everywhere(tls_ctx, mail, tmp_path):
    d = tls_ctx.discover("example.com", "imaps")
    assert [s.service for s in d.services] == [Service.IMAPS]
    d = tls_ctx.discover("example.com", "imaps|submission")
    assert {s.service for s in d.services} == {Service.IMAPS, Service.SUBMISSION}
    assert d.find("_imaps") is d.find(Service.IMAPS) is not None
    assert Security.for_service("imap") == Security.STARTTLS_IMAP
    a = tls_ctx.verify_srv_authenticity("example.com", "imaps", TARGET, mail["imaps"], probe=False)
    assert a.verdict == Verdict.AUTHENTIC
    with History.open(tmp_path / "h") as h:
        h.observe("example.com", "imaps", TARGET, 993, now=1000)
        assert h.seen("example.com", b"imaps", TARGET, 993) == (1000, 1000)
    c = tls_ctx.srv_change_check("example.com", "imaps", TARGET, mail["imaps"], probe=False)
    assert c.decision == mailsrv.Decision.NO_CHANGE
    with pytest.raises(ValueError, match="one mail service"):
        tls_ctx.verify_srv_authenticity("example.com", "imaps|imap", TARGET, 993)
    with pytest.raises(ValueError, match="'imapx' is not a mail service"):
        Security.for_service("imapx")


# ------------------------------------------------------------------ full duplex


def test_full_duplex_read_and_write_from_two_threads(tls_ctx, mail):
    """IMAP IDLE on a reader thread, DONE from another: a blocking read never blocks a write."""
    s = tls_ctx.connect(HOST, mail["imaps"])
    s.set_timeout_ms(0)
    lines: list = []
    buf = bytearray()

    def readline() -> bytes:
        while b"\n" not in buf:
            chunk = s.read(4096)
            if not chunk:
                return b""
            buf.extend(chunk)
        i = buf.index(b"\n") + 1
        line = bytes(buf[:i])
        del buf[:i]
        return line

    s.write(b'a1 LOGIN "joe@example.com" "test"\r\na2 SELECT INBOX\r\na3 IDLE\r\n')

    def reader():
        while True:
            line = readline()
            lines.append((time.monotonic(), line))
            if not line or line.startswith(b"a3 "):
                return

    t = threading.Thread(target=reader)
    t.start()
    deadline = time.monotonic() + 10
    while not any(line.startswith(b"+ idling") or line.startswith(b"+ ") for _, line in lines):
        assert time.monotonic() < deadline, lines
        time.sleep(0.01)
    time.sleep(0.3)  # the reader is blocked in read() now, with no timeout
    t0 = time.monotonic()
    assert s.write(b"DONE\r\n") == 6
    took = time.monotonic() - t0
    t.join(10)
    assert not t.is_alive()
    assert took < 0.2, f"the write waited {took:.3f} s for the blocked read"
    assert lines[-1][1].startswith(b"a3 OK"), lines
    s.close()


# ------------------------------------------------------------------ account setup


def test_autoconfigure(tls_ctx):
    setup = tls_ctx.autoconfigure("joe@example.com")
    assert setup.discovery == tls_ctx.discover("joe@example.com") or setup.discovery.domain == "example.com"
    assert setup.checks
    imaps = setup.check("imaps")
    assert imaps is not None and imaps.status == Status.OK and imaps.authentic
    assert imaps.authenticity.evidence == mailsrv.Evidence.DNSSEC
    pref = setup.preferred(Purpose.ACCESS)
    assert pref is not None and pref.service == setup.discovery.preferred(Purpose.ACCESS).service
    with pytest.raises(ValueError):
        tls_ctx.autoconfigure("@@")

    async def main(ns, anchor, ca):
        async with AsyncContext([ns], trust_anchor_file=anchor, ca_file=ca) as actx:
            return await actx.autoconfigure("example.com", probe=False)

    s2 = asyncio.run(main(os.environ["MAILSRV_TEST_NS"], os.environ["MAILSRV_TEST_ANCHOR"], os.environ["MAILSRV_TEST_CA"]))
    assert s2.check(Service.IMAPS).authentic


# ------------------------------------------------------------------ examples, packaging


def _example(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(BINDINGS))
    common = [
        "--nameserver", os.environ["MAILSRV_TEST_NS"],
        "--trust-anchor", os.environ["MAILSRV_TEST_ANCHOR"],
        "--ca-file", os.environ["MAILSRV_TEST_CA"],
    ]
    return subprocess.run(
        [sys.executable, str(BINDINGS / "examples" / name), *args, *common],
        env=env, capture_output=True, text=True, timeout=120,
    )


def test_example_imap_session(mail):
    out = _example("imap_session.py", "joe@example.com", "test")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "INBOX:" in out.stdout and "DNS-ID mail.example.net" in out.stdout


def test_example_three_accounts(mail):
    out = _example("three_accounts.py", "test", "joe@example.com", "ann@example.com", "bob@hosted.test")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(": OK ") == 3
    assert len((BINDINGS / "examples" / "three_accounts.py").read_text().splitlines()) < 60


def test_pip_install_leaves_the_tree_clean(tmp_path):
    git = shutil.which("git")
    assert git, "git is needed"
    probe = (
        "import ensurepip, venv, setuptools\n"
        "v = tuple(int(x) for x in setuptools.__version__.split('.')[:2])\n"
        "if v < (70, 1):\n    import wheel\n"
    )
    pythons = [p for p in (sys.executable, "/usr/bin/python3") if shutil.which(p)]
    usable = [p for p in pythons if subprocess.run([p, "-c", probe], capture_output=True).returncode == 0]
    assert usable, "no Python with venv, setuptools and wheel (as scripts/py-install-check.sh)"
    venv = tmp_path / "venv"
    subprocess.run([usable[0], "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    def untracked() -> set:
        out = subprocess.run(
            [git, "-C", str(REPO), "status", "--porcelain", "--untracked-files=all", "--", "bindings/python"],
            capture_output=True, text=True, check=True,
        ).stdout
        return {line for line in out.splitlines() if line.startswith("??")}

    before = untracked()
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", "--no-deps",
         str(BINDINGS)],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    assert (BINDINGS / "build").exists() or list(BINDINGS.glob("*.egg-info")), "pip built out of tree?"
    assert untracked() == before, "pip install left files git does not ignore"
