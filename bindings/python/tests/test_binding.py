"""The binding from Python (docs/SECURITY.md, "The binding"): the documented flow against the
testbed's SNI relay (testbed/sni-relay.py at relay.example.net, named by the unsigned SRV
record of relayed.hosted.test), DANE through the binding, and the binding text."""

from __future__ import annotations

import asyncio
import io
import os
import time

import pytest
from test_async import Collector, pump

from mailsrv import (
    AsyncContext,
    Binding,
    Decision,
    Evidence,
    MailsrvError,
    Origin,
    Purpose,
    Security,
    Service,
    Status,
    Verdict,
)

VICTIM = "relayed.hosted.test"


def relay_log() -> str:
    path = os.environ.get("MAILSRV_TEST_RELAY_LOG")
    if not path:
        pytest.fail("MAILSRV_TEST_RELAY_LOG is unset: run the full testbed (testbed/run.sh make py-tests)")
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def login(stream, user: str) -> bytes:
    # The testbed's dovecot takes any user with the password "test" (failed logins would
    # earn an auth penalty that slows later tests down).
    stream.write(f"p1 LOGIN {user} test\r\n".encode())
    r = io.BufferedReader(stream)
    while True:
        line = r.readline()
        assert line, "connection closed before the tagged reply"
        if line.startswith(b"p1 "):
            return line


def test_relay_gets_no_password_through_the_documented_flow(tls_ctx, mail):
    d = tls_ctx.discover(f"ann@{VICTIM}")
    best = d.preferred(Purpose.ACCESS)
    assert best is not None and best.endpoints[0].target == "relay.example.net"
    e = best.endpoints[0]
    a = tls_ctx.verify_srv_authenticity(VICTIM, best.service, e.target, e.port)
    # The relay passes the probe and the reconnect...
    assert a.verdict == Verdict.AUTHENTIC, a.detail
    assert a.evidence == Evidence.PROBE_SRV_ID
    # ...but the binding keeps the login on the mail domain's session.
    b = a.binding
    assert isinstance(b, Binding)
    assert (b.host, b.port, b.sni, b.identity, b.dane) == (
        "relay.example.net",
        mail["imaps"],
        VICTIM,
        f"SRV-ID _imaps.{VICTIM}",
        False,
    )
    assert b.security == Security.IMPLICIT_TLS_IMAP and b.service == Service.IMAPS
    stored = b.text  # what the account keeps
    assert Binding.from_text(stored) == b
    user = f"py-bound-{os.getpid()}"
    with tls_ctx.connect_binding(stored) as s:
        assert "Dovecot" in s.greeting
        assert s.matched_identity == f"SRV-ID _imaps.{VICTIM}"
        assert login(s, user).startswith(b"p1 OK")
    time.sleep(0.2)
    assert user not in relay_log()
    # The control: a login under the target's own name reaches the relay.
    unbound = f"py-unbound-{os.getpid()}"
    with tls_ctx.connect("relay.example.net", mail["imaps"]) as s:
        login(s, unbound)
    for _ in range(40):
        if unbound in relay_log():
            break
        time.sleep(0.025)
    assert f"p1 LOGIN {unbound} test" in relay_log()


def test_refresh_update_carries_the_binding(tls_ctx, mail):
    c = tls_ctx.srv_change_check(VICTIM, Service.IMAPS, "mail.example.net", mail["imaps"], Origin.SRV)
    assert c.decision == Decision.UPDATE, c.detail
    assert c.binding is not None and c.binding.sni == VICTIM
    # REQUIRE_SECURE: never an update on an unsigned answer.
    c = tls_ctx.srv_change_check(
        VICTIM, Service.IMAPS, "mail.example.net", mail["imaps"], Origin.SRV, require_secure=True
    )
    assert c.decision == Decision.WAIT, c.detail


def test_dane_binding_and_the_pkix_impostor(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("dane.example.com", Service.IMAPS, "dane.example.net", mail["imaps"])
    assert a.evidence == Evidence.DANE and a.binding is not None and a.binding.dane
    with tls_ctx.connect_binding(a.binding) as s:
        assert "DANE-EE" in s.matched_identity
    impostor = (
        f"mailsrv-binding-1 service=imaps host=danepkix.example.net port={mail['imaps']} "
        "sni=danepkix.example.net identity=dns:danepkix.example.net dane=yes"
    )
    with pytest.raises(MailsrvError) as e:
        tls_ctx.connect_binding(impostor)
    assert e.value.status == Status.DANE_MISMATCH
    # A rejected verdict has no binding.
    r = tls_ctx.verify_srv_authenticity("danebad.example.com", Service.IMAPS, "danebad.example.net", mail["imaps"])
    assert r.verdict == Verdict.REJECTED and r.binding is None


@pytest.mark.parametrize(
    "text",
    ["", "mailsrv-binding-9 service=imaps", "mailsrv-binding-1 service=imaps host=a.example port=993"],
)
def test_bad_binding_text_says_why(text):
    with pytest.raises(MailsrvError) as e:
        Binding.from_text(text)
    assert e.value.status == Status.INVALID_ARG
    assert "binding text" in str(e.value)


def test_connect_binding_async_in_loop_mode(tls_loop_ctx, tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("hosted.test", Service.IMAPS, "mail.example.net", mail["imaps"])
    got = Collector()
    rid = tls_loop_ctx.connect_binding_async(a.binding, got)
    pump(tls_loop_ctx, lambda: len(got.calls) == 1)
    outcome = got.by_id()[rid]
    assert not isinstance(outcome, BaseException), outcome
    with outcome as s:
        assert s.sni == "hosted.test"


def test_asyncio_connect_binding(ns, anchor, ca_file, mail):
    async def main() -> str:
        async with AsyncContext(nameservers=[ns], trust_anchor_file=anchor, ca_file=ca_file) as actx:
            a = await actx.verify_srv_authenticity(VICTIM, Service.IMAPS, "relay.example.net", mail["imaps"])
            s = await actx.connect_binding(a.binding)
            try:
                return s.greeting
            finally:
                s.close()

    assert "Dovecot" in asyncio.run(main())
