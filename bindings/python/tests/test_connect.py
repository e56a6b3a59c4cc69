"""Context.connect and TlsStream against the testbed's dovecot (IMAP, POP3) and postfix
(submission), on implicit TLS and STARTTLS, with SNI-selected certificates
(testbed/README.md, "Mail servers")."""

from __future__ import annotations

import array
import asyncio
import io
import select
import socket
import threading
import time

import pytest
from test_async import Collector, pump

from mailsrv import (
    AsyncContext,
    Context,
    Dispatch,
    Identity,
    MailsrvError,
    MatchKind,
    Security,
    Service,
    Status,
    TlsStream,
    load_pem,
)

HOST = "mail.example.net"  # A 127.0.0.1, AAAA ::1 in the signed example.net zone

MODES = [
    # (service label, security, greeting prefix, a capability announced over TLS)
    ("imaps", Security.IMPLICIT_TLS_IMAP, "* OK", "IMAP4rev1"),
    ("imap", Security.STARTTLS_IMAP, "* OK", "IMAP4rev1"),
    ("pop3s", Security.IMPLICIT_TLS_POP3, "+OK", "UIDL"),
    ("pop3", Security.STARTTLS_POP3, "+OK", "UIDL"),
    ("submissions", Security.IMPLICIT_TLS_SMTP, "220 ", "PIPELINING"),
    ("submission", Security.STARTTLS_SMTP, "220 ", "PIPELINING"),
]


def lines_until(reader: io.BufferedReader, prefix: bytes) -> list:
    out = []
    while True:
        line = reader.readline()
        assert line, f"connection ended before {prefix!r}: {out}"
        out.append(line)
        if line.startswith(prefix):
            return out


def connect_error(ctx: Context, *args, **kw) -> MailsrvError:
    with pytest.raises(MailsrvError) as ei:
        ctx.connect(*args, **kw)
    assert ei.value.detail
    return ei.value


# ------------------------------------------------------------------ the six modes


@pytest.mark.parametrize("label,security,greeting,capability", MODES, ids=[m[0] for m in MODES])
def test_six_modes(tls_ctx, mail, certs_dir, label, security, greeting, capability):
    port = mail[label]
    assert Security.for_service(Service[label.upper()]) == security
    with tls_ctx.connect(HOST, port, security) as s:
        assert isinstance(s, TlsStream) and isinstance(s, io.RawIOBase)
        assert s.greeting.startswith(greeting), s.greeting
        assert capability in s.capabilities, s.capabilities
        if label == "imap":
            # announced over TLS: the pre-TLS STARTTLS is gone
            assert "STARTTLS" not in s.capabilities
        assert s.tls_version in ("TLSv1.3", "TLSv1.2")
        assert s.cipher.startswith("TLS"), s.cipher
        assert s.sni == HOST and s.host == HOST
        assert s.peer_address in (f"[::1]:{port}", f"127.0.0.1:{port}")
        assert s.matched_identity == f"DNS-ID {HOST}"
        chain = s.peer_chain
        assert chain[0] == load_pem(certs_dir / "dnsid-mail-example-net.crt")[0]
        assert s.fileno() >= 0
        assert s.readable() and s.writable() and not s.seekable()
        assert not s.closed
    assert s.closed
    assert s.close_status == Status.OK  # close_notify went out


def test_peer_chain_passes_check_cert(tls_ctx, mail):
    with tls_ctx.connect(HOST, mail["imaps"]) as s:
        chain = s.peer_chain
    m = tls_ctx.check_cert(chain, dns_ids=[HOST])
    assert (m.matched, m.kind) == (f"DNS-ID {HOST}", MatchKind.DNS_ID)
    assert s.peer_chain == chain and s.peer_chain is not s.peer_chain  # fresh lists


# ------------------------------------------------------------------ SNI and identity


@pytest.mark.parametrize("label", ["imaps", "imap", "submissions", "submission"])
def test_sni_example_com_proves_srv_id(tls_ctx, mail, label):
    security = Security.for_service(Service[label.upper()])
    ident = Identity().srv_id(label, "example.com")
    with tls_ctx.connect(HOST, mail[label], security, sni="example.com", identity=ident) as s:
        assert s.sni == "example.com"
        assert s.host == HOST
        assert s.matched_identity == f"SRV-ID _{label}.example.com"


def test_sni_example_com_without_its_identity_is_a_mismatch(tls_ctx, mail):
    # the certificate for SNI example.com carries SRV-IDs only: the default DNS-ID = host fails
    e = connect_error(tls_ctx, HOST, mail["imaps"], sni="example.com")
    assert e.status == Status.NAME_MISMATCH
    assert "SRV-ID _imaps.example.com" in e.detail


@pytest.mark.parametrize(
    "addr,identity,status",
    [
        ("127.0.20.1", Identity().dns_id(HOST), Status.CERT_EXPIRED),
        ("127.0.20.2", Identity().dns_id(HOST), Status.NAME_MISMATCH),
        ("127.0.20.3", Identity().dns_id(HOST), Status.UNKNOWN_ISSUER),
        ("127.0.20.5", Identity().dns_id(HOST), Status.NAME_MISMATCH),  # CN only
    ],
    ids=["expired", "wrong-name", "untrusted", "cn-only"],
)
def test_certificate_failures_have_precise_statuses(tls_ctx, mail, addr, identity, status):
    for label, security in (("imaps", Security.IMPLICIT_TLS), ("submission", Security.STARTTLS_SMTP)):
        e = connect_error(tls_ctx, addr, mail[label], security, identity=identity)
        assert e.status == status, (label, e)
        assert e.status.is_cert_error


def test_expired_by_name_and_sni(tls_ctx, mail):
    e = connect_error(tls_ctx, "127.0.20.1", mail["imaps"], sni=HOST, identity=Identity().dns_id(HOST))
    assert e.status == Status.CERT_EXPIRED
    assert "expired" in e.detail


def test_srv_id_certificate_by_address(tls_ctx, mail):
    with tls_ctx.connect("127.0.20.4", mail["imaps"], identity=Identity().srv_id("imaps", "example.com")) as s:
        assert s.matched_identity == "SRV-ID _imaps.example.com"
    # imap (STARTTLS) proves only through the sibling flag
    ident = Identity().srv_id("imap", "example.com")
    e = connect_error(tls_ctx, "127.0.20.4", mail["imap"], Security.STARTTLS_IMAP, identity=ident)
    assert e.status == Status.NAME_MISMATCH
    with tls_ctx.connect("127.0.20.4", mail["imap"], Security.STARTTLS_IMAP, identity=ident, accept_sibling=True) as s:
        assert s.matched_identity == "SRV-ID _imap.example.com via SRV-ID _imaps.example.com (sibling service)"


def test_legacy_cn(tls_ctx, mail):
    with tls_ctx.connect("127.0.20.5", mail["imaps"], identity=Identity().dns_id(HOST), legacy_cn=True) as s:
        assert "CN-ID" in s.matched_identity


@pytest.mark.parametrize("family", ["addr", "addr6"])
def test_ip_literal_sends_no_sni(tls_ctx, mail, family):
    ip = mail[family]
    assert ip, "the testbed serves IPv6 too"
    port = mail["imaps"]
    # the default identity of an IP literal is its IP-ID, which the certificate lacks
    e = connect_error(tls_ctx, ip, port)
    assert e.status == Status.NAME_MISMATCH
    assert f"IP-ID {ip}" in e.detail
    with tls_ctx.connect(ip, port, identity=Identity().dns_id(HOST)) as s:
        assert s.sni is None
        assert s.host == ip
        want = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        assert s.peer_address == want
        assert s.matched_identity == f"DNS-ID {HOST}"
        # no SNI: the server's default certificate
        assert "sni=" not in repr(s)


# ------------------------------------------------------------------ the stream as a file


def test_stream_as_a_file_imap(tls_ctx, mail):
    with tls_ctx.connect(HOST, mail["imaps"]) as s:
        assert s.write(b"a1 CAPABILITY\r\n") == 15
        r = io.BufferedReader(s)
        got = lines_until(r, b"a1 ")
        assert got[0].startswith(b"* CAPABILITY ") and b"IMAP4rev1" in got[0]
        assert got[-1].startswith(b"a1 OK")
        assert s.write(memoryview(b"a2 LOGOUT\r\n")) == 11
        got = lines_until(r, b"a2 ")
        assert got[0].startswith(b"* BYE")
        assert got[-1].startswith(b"a2 OK")
        # dovecot ends with TLS close_notify: a clean end of file
        assert r.read() == b""
        assert s.read(10) == b""
        assert s.readinto(bytearray(10)) == 0
    assert s.closed
    with pytest.raises(ValueError):
        s.read(1)
    with pytest.raises(ValueError):
        s.write(b"x")
    with pytest.raises(ValueError):
        s.fileno()
    with pytest.raises(ValueError):
        s.set_nonblocking(True)
    # the connection information outlives the stream
    assert s.matched_identity == f"DNS-ID {HOST}" and s.peer_chain
    s.close()  # idempotent


def test_stream_as_a_file_smtp_and_pop3(tls_ctx, mail):
    with tls_ctx.connect(HOST, mail["submission"], Security.STARTTLS_SMTP) as s:
        r = io.BufferedReader(s)
        s.write(b"NOOP\r\n")
        assert r.readline().startswith(b"250")
        s.write(b"QUIT\r\n")
        assert r.readline().startswith(b"221")
    with tls_ctx.connect(HOST, mail["pop3s"]) as s:
        r = io.BufferedReader(s)
        s.write(b"CAPA\r\n")
        lines = lines_until(r, b".\r\n")
        assert lines[0].startswith(b"+OK") and b"UIDL\r\n" in lines
        s.write(b"QUIT\r\n")
        assert r.readline().startswith(b"+OK")


def test_readinto_any_writable_buffer(tls_ctx, mail):
    with tls_ctx.connect(HOST, mail["imaps"]) as s:
        s.write(bytearray(b"a1 NOOP\r\n"))
        buf = array.array("I", [0] * 64)  # not bytes: cast to a byte view
        n = s.readinto(buf)
        assert n and buf.tobytes()[:n].startswith(b"a1 OK")
        assert s.write(b"") == 0 and s.readinto(bytearray()) == 0


def test_non_blocking_with_select(tls_ctx, mail):
    with tls_ctx.connect(HOST, mail["imaps"]) as s:
        s.set_nonblocking(True)
        assert s.nonblocking
        assert s.read(100) is None, "the greeting was consumed by connect; nothing else came yet"
        assert not s.has_buffered_data()
        assert s.write(b"a1 CAPABILITY\r\n") == 15
        while s.wants_write():
            select.select([], [s], [], 5)
            s.flush_tls()
        assert s.flush_tls() is True
        got = b""
        deadline = time.monotonic() + 10
        while b"\r\na1 OK" not in got:
            # the poll rule: read until nothing is left, only then wait for the descriptor
            chunk = s.read(7)  # small reads leave decrypted data buffered in the stream
            if chunk is None:
                assert not s.has_buffered_data()
                assert time.monotonic() < deadline, got
                select.select([s], [], [], 1)
                continue
            assert chunk, "unexpected end of file"
            got += chunk
        assert got.startswith(b"* CAPABILITY")
        s.set_nonblocking(False)
        assert not s.nonblocking
        s.write(b"a2 LOGOUT\r\n")
        assert lines_until(io.BufferedReader(s), b"a2 ")[-1].startswith(b"a2 OK")


def test_buffered_data_is_seen_before_the_socket(tls_ctx, mail):
    with tls_ctx.connect(HOST, mail["imaps"]) as s:
        s.write(b"a1 CAPABILITY\r\n")
        first = s.read(1)  # blocking: waits for the answer's first record
        assert first == b"*"
        assert s.has_buffered_data()
        s.set_nonblocking(True)
        rest = s.read(4096)
        assert rest and rest.startswith(b" CAPABILITY")


def test_blocking_read_times_out(tls_ctx, mail):
    with tls_ctx.connect(HOST, mail["imaps"]) as s:
        s.set_timeout_ms(300)
        t0 = time.monotonic()
        with pytest.raises(MailsrvError) as ei:
            s.read(100)
        assert ei.value.status == Status.TIMEOUT
        assert time.monotonic() - t0 < 3
        # still usable afterwards
        s.set_timeout_ms(5000)
        s.write(b"a1 NOOP\r\n")
        assert s.read(100).startswith(b"a1 OK")
        with pytest.raises(MailsrvError) as ei:
            s.set_timeout_ms(-1)
        assert ei.value.status == Status.INVALID_ARG


def test_stream_outlives_its_context(ns, anchor, ca_file, mail):
    c = Context([ns], trust_anchor_file=anchor, ca_file=ca_file)
    s = c.connect(HOST, mail["imaps"])
    c.close()
    with s:
        s.write(b"a1 NOOP\r\n")
        assert s.read(100).startswith(b"a1 OK")


def test_close_from_another_thread_during_a_read(tls_ctx, mail):
    """close() from another thread wakes a blocked read at once (as socket.shutdown does):
    the read returns b"" instead of waiting for its timeout."""
    s = tls_ctx.connect(HOST, mail["imaps"])
    s.set_timeout_ms(0)  # no limit: only the close can end this read
    got = []

    def reader():
        got.append(s.read(100))

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    s.close()
    assert s.closed
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 1.0
    assert got == [b""]
    with pytest.raises(ValueError):
        s.read(1)


def test_garbage_collected_stream_is_closed(tls_ctx, mail):
    import gc
    import weakref

    s = tls_ctx.connect(HOST, mail["imaps"])
    ref = weakref.ref(s)
    del s
    gc.collect()
    assert ref() is None


# ------------------------------------------------------------------ errors before and during connecting


def test_refused_port_is_connect_failed(tls_ctx):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    e = connect_error(tls_ctx, "127.0.0.1", port, identity=Identity().dns_id(HOST))
    assert e.status == Status.CONNECT_FAILED


def test_starttls_mode_against_an_implicit_tls_port_times_out(ns, anchor, ca_file, mail):
    # the server waits for a ClientHello, the client for a plaintext greeting: no fallback,
    # the deadline ends it
    with Context([ns], trust_anchor_file=anchor, ca_file=ca_file, timeout_ms=1500) as c:
        t0 = time.monotonic()
        e = connect_error(c, HOST, mail["imaps"], Security.STARTTLS_IMAP)
        assert e.status == Status.TIMEOUT
        assert time.monotonic() - t0 < 5


def test_implicit_tls_against_a_starttls_port_is_an_error(tls_ctx, mail):
    # the plaintext greeting is no TLS record
    for label in ("imap", "pop3", "submission"):
        e = connect_error(tls_ctx, HOST, mail[label], Security.IMPLICIT_TLS)
        assert e.status == Status.HANDSHAKE, (label, e)


@pytest.mark.parametrize(
    "args,kw",
    [
        ((HOST, 0), {}),
        (("bad..name", 993), {}),
        ((HOST, 993, 9), {}),
        ((HOST, 993), {"sni": "bad name"}),
        ((HOST, 70000), {}),
        ((HOST + "\0x", 993), {}),
    ],
    ids=["port 0", "bad host", "bad security", "bad sni", "port range", "nul"],
)
def test_bad_arguments_fail_before_any_traffic(tls_ctx, args, kw):
    assert connect_error(tls_ctx, *args, **kw).status == Status.INVALID_ARG


def test_wrong_identity_type(tls_ctx):
    with pytest.raises(TypeError):
        tls_ctx.connect(HOST, 993, identity="mail.example.net")


def test_tls_stream_is_not_constructible():
    with pytest.raises(TypeError):
        TlsStream(1)


# ------------------------------------------------------------------ async


def test_connect_async_thread_mode(tls_ctx, mail):
    col = Collector()
    rid = tls_ctx.connect_async(HOST, mail["submissions"], col, Security.IMPLICIT_TLS)
    bad = tls_ctx.connect_async("127.0.20.1", mail["imaps"], col, identity=Identity().dns_id(HOST))
    col.wait(2)
    by_id = col.by_id()
    assert threading.main_thread().ident not in {t for t, _, _ in col.calls}
    with by_id[rid] as s:
        assert isinstance(s, TlsStream)
        assert s.greeting.startswith("220 ")
        s.write(b"QUIT\r\n")
        assert s.read(100).startswith(b"221")
    assert isinstance(by_id[bad], MailsrvError) and by_id[bad].status == Status.CERT_EXPIRED
    assert "expired" in by_id[bad].detail


def test_connect_async_loop_mode(tls_loop_ctx, mail):
    col = Collector()
    ids = [
        tls_loop_ctx.connect_async(HOST, mail["imap"], col, Security.STARTTLS_IMAP),
        tls_loop_ctx.connect_async(
            HOST, mail["imaps"], col, sni="example.com", identity=Identity().srv_id("imaps", "example.com")
        ),
    ]
    time.sleep(0.3)
    assert col.calls == [], "nothing runs outside dispatch()"
    pump(tls_loop_ctx, lambda: len(col.calls) >= 2)
    assert {t for t, _, _ in col.calls} == {threading.get_ident()}
    by_id = col.by_id()
    with by_id[ids[0]] as a, by_id[ids[1]] as b:
        assert a.matched_identity == f"DNS-ID {HOST}"
        assert b.matched_identity == "SRV-ID _imaps.example.com" and b.sni == "example.com"


@pytest.fixture
def silent_tls_server():
    """A TCP server that accepts and never says anything: connects to it hang until cancelled."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()


def test_cancel_and_close_drop_half_open_connections(ns, anchor, ca_file, silent_tls_server):
    col = Collector()
    c = Context([ns], trust_anchor_file=anchor, ca_file=ca_file, timeout_ms=20000)
    ident = Identity().dns_id(HOST)
    rid = c.connect_async("127.0.0.1", silent_tls_server, col, identity=ident)
    keep = c.connect_async("127.0.0.1", silent_tls_server, col, identity=ident)
    time.sleep(0.2)
    assert c.cancel(rid) is True
    col.wait(1)
    t0 = time.monotonic()
    c.close()
    assert time.monotonic() - t0 < 5
    by_id = col.by_id()
    assert by_id[rid].status == Status.CANCELLED
    assert by_id[keep].status == Status.SHUTDOWN


def test_connect_async_bad_input_has_no_callback(tls_ctx):
    called = []
    with pytest.raises(MailsrvError) as ei:
        tls_ctx.connect_async(HOST, 0, lambda rid, o: called.append(o))
    assert ei.value.status == Status.INVALID_ARG
    assert tls_ctx.outstanding == 0 and called == []
    with pytest.raises(TypeError):
        tls_ctx.connect_async(HOST, 993, None)


@pytest.mark.parametrize("mode", [Dispatch.LOOP, Dispatch.THREAD])
def test_asyncio_connect(mode, ns, anchor, ca_file, mail):
    async def main():
        async with AsyncContext([ns], trust_anchor_file=anchor, ca_file=ca_file, dispatch=mode) as actx:
            streams = await asyncio.gather(
                actx.connect(HOST, mail["imaps"]),
                actx.connect(HOST, mail["pop3"], Security.STARTTLS_POP3),
                actx.connect(
                    HOST,
                    mail["submissions"],
                    sni="example.com",
                    identity=Identity().srv_id("submissions", "example.com"),
                ),
            )
            with pytest.raises(MailsrvError) as ei:
                await actx.connect("127.0.20.3", mail["imaps"], identity=Identity().dns_id(HOST))
            assert ei.value.status == Status.UNKNOWN_ISSUER
            return streams

    imaps, pop3, subs = asyncio.run(main())
    with imaps, pop3, subs:
        assert imaps.greeting.startswith("* OK") and pop3.greeting.startswith("+OK")
        assert subs.matched_identity == "SRV-ID _submissions.example.com"
        imaps.write(b"a1 NOOP\r\n")
        assert imaps.read(100).startswith(b"a1 OK")


def test_asyncio_cancel_drops_the_connection(ns, anchor, ca_file, silent_tls_server):
    async def main():
        async with AsyncContext([ns], trust_anchor_file=anchor, ca_file=ca_file, timeout_ms=20000) as actx:
            task = asyncio.ensure_future(actx.connect("127.0.0.1", silent_tls_server, identity=Identity().dns_id(HOST)))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.1)
            return actx.context.outstanding

    assert asyncio.run(main()) == 0
