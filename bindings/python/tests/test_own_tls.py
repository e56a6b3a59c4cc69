"""Bring-your-own TLS and the ASK_USER dialog (issue 15, points 1 and 3), on the testbed:
Python's ssl module (OpenSSL) makes the probe and the reconnect and hands mailsrv the
chains; mailsrv runs STARTTLS to the go-ahead and ssl takes the socket over; connections
over a socket Python opened, with pinned keys; in-memory CAs; the change decision's reason
and authenticity; declines; the history in memory, pruned, saved asynchronously."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Dict, Optional

import pytest

import mailsrv
from mailsrv import Decision, Evidence, Reason, Security, Service, Status, Verdict

NOW = 1_800_000_000
DAY = 86_400


def leaf(addr: str, port: int, sni: str, ca: Optional[str] = None, starttls: bool = False) -> bytes:
    """The certificate the server presents to Python's ssl with `sni` (validated against
    `ca` when given; no name check: ssl cannot read SRV-IDs)."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    if ca:
        c.load_verify_locations(ca)
    else:
        c.verify_mode = ssl.CERT_NONE
    with socket.create_connection((addr, port), timeout=10) as s:
        if starttls:
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"a STARTTLS\r\n")
            while not f.readline().startswith(b"a "):
                pass
        with c.wrap_socket(s, server_hostname=sni) as t:
            der = t.getpeercert(binary_form=True)
            assert der
            return der


def test_python_probe_and_reconnect_give_mailsrvs_verdict(tls_ctx: mailsrv.Context, mail: Dict[str, object]) -> None:
    addr, port = str(mail["addr"]), int(mail["imaps"])  # type: ignore[call-overload]
    probe = leaf(addr, port, "hosted.test")
    reconnect = leaf(addr, port, "mail.example.net")
    a = tls_ctx.verify_srv_authenticity_with_chains("hosted.test", Service.IMAPS, "mail.example.net", port, [probe], [reconnect])
    assert a.verdict == Verdict.AUTHENTIC, a.detail
    assert a.evidence == Evidence.PROBE_SRV_ID
    assert a.binding is not None and a.binding.sni == "hosted.test"
    own = tls_ctx.verify_srv_authenticity("hosted.test", Service.IMAPS, "mail.example.net", port)
    assert (own.verdict, own.evidence, own.target_verified) == (a.verdict, a.evidence, a.target_verified)
    # The provider's own certificate for SNI insecure.test: UNVERIFIED, as mailsrv's probe says.
    a = tls_ctx.verify_srv_authenticity_with_chains(
        "insecure.test", Service.IMAPS, "mail.example.net", port, [leaf(addr, port, "insecure.test")], [reconnect]
    )
    assert a.verdict == Verdict.UNVERIFIED
    assert a.probe_status == Status.NAME_MISMATCH
    # A connection the client could not make: no chain.
    a = tls_ctx.verify_srv_authenticity_with_chains("hosted.test", Service.IMAPS, "mail.example.net", port, None, None)
    assert a.probe_status == Status.NOT_FOUND


def test_names_only_trusts_pythons_path_validation(ns: str, anchor: str, ca_file: str, mail: Dict[str, object]) -> None:
    addr, port = str(mail["addr"]), int(mail["imaps"])  # type: ignore[call-overload]
    with mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor, timeout_ms=10000) as c:
        probe = leaf(addr, port, "hosted.test", ca=ca_file)
        reconnect = leaf(addr, port, "mail.example.net", ca=ca_file)
        a = c.verify_srv_authenticity_with_chains(
            "hosted.test", Service.IMAPS, "mail.example.net", port, [probe], [reconnect], names_only=True
        )
        assert a.verdict == Verdict.AUTHENTIC, a.detail
        m = c.check_cert([probe], srv_ids=[("imaps", "hosted.test")], names_only=True)
        assert m.path_len == 0
        with pytest.raises(mailsrv.NameMismatch):
            c.check_cert([probe], srv_ids=[("imaps", "other.test")], names_only=True)


def test_starttls_plain_socket_for_pythons_ssl(tls_ctx: mailsrv.Context, mail: Dict[str, object], ca_file: str) -> None:
    p = tls_ctx.starttls_plain("mail.example.net", int(mail["imap"]), Security.STARTTLS_IMAP, addresses=[str(mail["addr"])])  # type: ignore[call-overload]
    assert p.greeting.startswith("* OK")
    c = ssl.create_default_context(cafile=ca_file)
    with c.wrap_socket(p.sock, server_hostname="mail.example.net") as t:
        t.sendall(b"a CAPABILITY\r\n")
        f = t.makefile("rb")
        lines = []
        while True:
            line = f.readline()
            lines.append(line)
            if line.startswith(b"a "):
                break
    assert lines[-1].startswith(b"a OK"), lines
    with pytest.raises(mailsrv.InvalidArgument):
        tls_ctx.starttls_plain("mail.example.net", int(mail["imaps"]), Security.IMPLICIT_TLS)  # type: ignore[call-overload]


def test_connect_over_own_socket_with_pins(tls_ctx: mailsrv.Context, mail: Dict[str, object]) -> None:
    addr, port = str(mail["addr"]), int(mail["imaps"])  # type: ignore[call-overload]
    pin = mailsrv.spki_sha256(leaf(addr, port, "mail.example.net"))
    with socket.create_connection((addr, port)) as s:
        with tls_ctx.connect("mail.example.net", port, fd=s.fileno(), pins=[pin]) as stream:
            assert stream.peer_address == f"{addr}:{port}"
    with pytest.raises(mailsrv.PinMismatch):
        tls_ctx.connect("mail.example.net", port, addresses=[addr], pins=[bytes(32)])
    # TRUST: the self-signed DANE server, accepted on its key alone.
    tlsa = bytes.fromhex(os.environ["MAILSRV_TEST_DANE_TLSA"])
    with pytest.raises(mailsrv.UnknownIssuer):
        tls_ctx.connect("dane.example.net", port, addresses=["127.0.20.7"])
    with tls_ctx.connect(
        "dane.example.net", port, addresses=["127.0.20.7"], pins=[tlsa], pin_mode=mailsrv.PinMode.TRUST
    ) as stream:
        assert "pinned" in stream.matched_identity


def test_in_memory_and_per_connection_cas(ns: str, anchor: str, ca_file: str, mail: Dict[str, object]) -> None:
    addr, port = str(mail["addr"]), int(mail["imaps"])  # type: ignore[call-overload]
    pem = Path(ca_file).read_bytes()
    for mode in (mailsrv.CaMode.REPLACE, mailsrv.CaMode.ADD):
        with mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor, ca_pem=pem, ca_mode=mode) as c:
            c.connect("mail.example.net", port, addresses=[addr]).close()
    with mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor) as c:
        c.connect("mail.example.net", port, addresses=[addr], ca_pem=pem).close()
    with pytest.raises(mailsrv.InvalidArgument):
        mailsrv.Context(nameservers=[ns], ca_pem=b"not a certificate")


def test_ask_user_dialog_reason_authenticity_and_decline(tls_ctx: mailsrv.Context, mail: Dict[str, object]) -> None:
    port = int(mail["imaps"])  # type: ignore[call-overload]
    h = mailsrv.History.from_bytes()
    h.observe("insecure.test", Service.IMAPS, "mail.example.net", port, NOW - 8 * DAY)
    ch = tls_ctx.srv_change_check("insecure.test", Service.IMAPS, "old.example.net", 993, history=h, now=NOW)
    assert ch.decision == Decision.ASK_USER, ch.detail
    assert ch.reason == Reason.UNVERIFIED_PERSISTED
    assert ch.authenticity is not None
    assert ch.authenticity.probe_status == Status.NAME_MISMATCH
    assert ch.authenticity.target_chain
    h.decline("insecure.test", Service.IMAPS, "mail.example.net", port, NOW + 1)
    with pytest.raises(mailsrv.NotFound):
        h.decline("insecure.test", Service.IMAPS, "never.example.net", port, NOW)
    kept = h.export()
    assert kept.startswith(b"mailsrv-history 2\n")
    back = mailsrv.History.from_bytes(kept)
    ch = tls_ctx.srv_change_check("insecure.test", Service.IMAPS, "old.example.net", 993, history=back, now=NOW + DAY)
    assert (ch.decision, ch.reason) == (Decision.NO_CHANGE, Reason.DECLINED)
    ch = tls_ctx.srv_change_check("bogus.test", Service.IMAPS, "old.example.net", 993, now=NOW)
    assert (ch.decision, ch.reason) == (Decision.REJECT, Reason.BOGUS)
    ch = tls_ctx.srv_change_check("broken.test", Service.IMAPS, "old.example.net", 993, now=NOW)
    assert (ch.decision, ch.reason) == (Decision.NO_CHANGE, Reason.LOOKUP_FAILED)
    assert back.prune(NOW + 400 * DAY) == 1
    assert len(back) == 0
    with pytest.raises(mailsrv.InvalidArgument):
        back.save()
    h.close()
    back.close()


def test_history_versions_and_async_save(tls_loop_ctx: mailsrv.Context, tmp_path: Path) -> None:
    with pytest.raises(mailsrv.UnsupportedVersion):
        mailsrv.History.from_bytes(b"mailsrv-history 9\nend 0\n")
    with pytest.raises(mailsrv.HistoryCorrupt):
        mailsrv.History.from_bytes(b"junk")
    path = tmp_path / "history"
    path.write_bytes(b"mailsrv-history 4\n")
    with pytest.raises(mailsrv.UnsupportedVersion):
        mailsrv.History.open(path)
    assert path.read_bytes() == b"mailsrv-history 4\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history"]
    path.unlink()
    results = []
    with mailsrv.History.open(path) as h:
        h.observe("example.com", Service.IMAPS, "mail.example.net", 993, NOW)
        h.save_async(tls_loop_ctx, results.append)
    done = threading.Event()
    for _ in range(100):
        tls_loop_ctx.dispatch()
        if results:
            done.set()
            break
        done.wait(0.05)
    assert results == [None]
    assert b"obs example.com imaps mail.example.net 993" in path.read_bytes()
