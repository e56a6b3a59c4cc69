"""Account discovery beyond SRV (Context.discover_account, issues 16 and 17) against the
testbed's nginx (testbed/web.sh), knotd and dovecot: the same domains as tests/ffi_account.rs --
ac.test (provider autoconfig only), ispdbonly.ac.test (the ISPDB only), mxs.example.com (a
DNSSEC-signed MX into example.net), plain.ac.test (plain HTTP only), pacc.example.com (PACC
with a DNSSEC-signed digest), paccbad.example.com (a signed digest the document does not
match), adisc.ac.test (Exchange Autodiscover only), adauth.ac.test and adsrvu.ac.test (the
Autodiscover callback), guess.ac.test (guessing only). Blocking, async in both dispatch modes,
asyncio, cancel, bad input; and the multi-source refresh check (Context.account_change_check)."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from mailsrv import (
    Account,
    AsyncContext,
    AutodiscoverAsk,
    Cancelled,
    Context,
    Decision,
    Dispatch,
    Evidence,
    History,
    InvalidArgument,
    MailsrvError,
    OAuth2,
    Origin,
    Purpose,
    Security,
    Service,
    Source,
    SourceState,
    Status,
    Verdict,
    WebServices,
)


@pytest.fixture(scope="session")
def ispdb() -> str:
    url = os.environ.get("MAILSRV_TEST_ISPDB")
    if not url:
        pytest.fail("MAILSRV_TEST_ISPDB is unset: these tests need the testbed's web part (testbed/web.sh)")
    return url


def ports() -> dict:
    """The testbed's mail ports, for the sources that name hosts only (PACC, guessing)."""
    return {s: int(os.environ[f"MAILSRV_TEST_{s.upper()}_PORT"]) for s in ("imaps", "imap", "pop3s", "pop3", "submissions", "submission")}


def make(
    ns: str, anchor: str, ca_file: str, ispdb: str, dispatch: Dispatch = Dispatch.THREAD, autodiscover=None
) -> Context:
    return Context(
        nameservers=[ns],
        trust_anchor_file=anchor,
        ca_file=ca_file,
        timeout_ms=20000,
        dispatch=dispatch,
        ispdb_url=ispdb,
        service_ports=ports(),
        autodiscover=autodiscover,
    )


@pytest.fixture
def actx(ns, anchor, ca_file, ispdb, mail):
    c = make(ns, anchor, ca_file, ispdb)
    try:
        yield c
    finally:
        c.close()
        assert c.callback_errors == [], c.callback_errors


# (address, source taken, evidence of the preferred candidates); every preferred host is
# mail.example.net, served by the testbed's dovecot and postfix.
DOMAINS = [
    ("joe@ac.test", Source.AUTOCONFIG, Evidence.HTTPS_DOMAIN),
    ("joe@ispdbonly.ac.test", Source.ISPDB, Evidence.ISPDB),
    ("joe@mxs.example.com", Source.MX_AUTOCONFIG, Evidence.DNSSEC),
    ("joe@pacc.example.com", Source.PACC, Evidence.PACC_DNSSEC),
    ("joe@adisc.ac.test", Source.AUTODISCOVER, Evidence.HTTPS_DOMAIN),
]


def login(ctx: Context, account: Account, user: str) -> None:
    b = account.access.binding
    assert b is not None
    with ctx.connect_binding(b.text) as s:
        assert "Dovecot" in s.greeting
        assert s.sni == "mail.example.net"
        s.write(f"a1 LOGIN {user} test\r\n".encode())
        reply = b""
        while b"a1 " not in reply:
            chunk = s.read(4096)
            assert chunk, reply
            reply += chunk
        assert b"a1 OK" in reply, reply


def check(account: Account, source: Source, evidence: Evidence) -> None:
    assert isinstance(account, Account)
    assert account.found and account.source == source
    assert account.report(source).state == SourceState.FOUND
    assert [r.source for r in account.sources][0] == Source.PACC and len(account.sources) == 10
    assert account.sources[-1].source == Source.GUESS and account.sources[-1].state == SourceState.SKIPPED
    for purpose, protocol in ((Purpose.ACCESS, "imap"), (Purpose.SUBMISSION, "smtp")):
        c = account.preferred(purpose)
        assert c is not None and c is account.candidates[c.index]
        assert (c.source, c.protocol, c.host, c.purpose) == (source, protocol, "mail.example.net", purpose)
        assert c.verdict is not None and c.verdict_status == Status.OK
        assert (c.verdict.verdict, c.verdict.evidence) == (Verdict.AUTHENTIC, evidence), c.verdict.detail
        assert c.authentic
        b = c.binding
        assert b is not None and (b.host, b.sni, b.port) == ("mail.example.net", "mail.example.net", c.port)
    assert account.access is not None and account.access.service == Service.IMAPS
    assert account.access.binding is not None and account.access.binding.security == Security.IMPLICIT_TLS_IMAP


@pytest.mark.parametrize("address,source,evidence", DOMAINS, ids=["autoconfig", "ispdb", "mx", "pacc", "autodiscover"])
def test_blocking_each_source_alone(actx, address, source, evidence):
    a = actx.discover_account(address)
    check(a, source, evidence)
    login(actx, a, f"py-account-{source.label}-{os.getpid()}")


def test_autoconfig_document_details(actx):
    a = actx.discover_account("joe@ac.test")
    assert a.domain == "ac.test" and a.address == "joe@ac.test"
    assert a.display_name == "Test provider for ac.test"
    assert a.oauth2 is not None and a.oauth2.issuer == "auth.example.net"
    assert a.oauth2.token_url == "https://auth.example.net/token"
    assert len(a.candidates) == 5
    first = a.candidates[0]
    assert (first.security, first.username) == ("ssl", "joe@ac.test")
    assert first.url is not None and first.url.startswith("https://autoconfig.ac.test/")
    assert a.candidates[1].security == "starttls"
    assert a.candidates[4].username == "joe"
    assert all(isinstance(m, str) for c in a.candidates for m in c.authentication)
    assert all(c.oauth2 in (None, a.oauth2) for c in a.candidates)
    for s in (Source.SRV, Source.ISPDB):
        assert a.report(s).state in (SourceState.FAILED, SourceState.CANCELLED)
    # readable labels, as the CLI names them
    assert str(Source.MX_AUTOCONFIG) == "mx_autoconfig" and f"{Source.AUTOCONFIG_WELLKNOWN}" == "autoconfig_wellknown"
    assert Source.AUTOCONFIG_WELLKNOWN.cli_name == "autoconfig-wellknown"
    assert Source.parse("mx-ispdb") == Source.MX_ISPDB and Source.parse("ISPDB") == Source.ISPDB
    assert str(a.report("srv").state) in ("failed", "cancelled")


def test_plain_http_is_unverified_and_left_out_on_refresh(actx):
    a = actx.discover_account("joe@plain.ac.test")
    assert a.source == Source.AUTOCONFIG_HTTP
    assert all(c.verdict is not None and c.verdict.verdict == Verdict.UNVERIFIED for c in a.candidates)
    n = actx.discover_account("joe@plain.ac.test", plain_http=False)
    assert not n.found and n.candidates == () and n.access is None and n.submission is None
    assert n.report(Source.AUTOCONFIG_HTTP).state == SourceState.SKIPPED


def test_only_the_sources_asked(actx):
    a = actx.discover_account("joe@ac.test", sources=[Source.ISPDB, "srv"])
    assert not a.found
    assert a.report(Source.AUTOCONFIG).state == SourceState.SKIPPED
    assert a.report(Source.ISPDB).state == SourceState.FAILED
    assert a.report(Source.ISPDB).status != Status.OK


@pytest.mark.parametrize("mode", [Dispatch.THREAD, Dispatch.LOOP])
def test_async_both_modes(ns, anchor, ca_file, ispdb, mail, mode):
    with make(ns, anchor, ca_file, ispdb, mode) as c:
        for address, source, evidence in DOMAINS:
            got = []
            done = threading.Event()

            def cb(rid, outcome):
                got.append((rid, outcome))
                done.set()

            rid = c.discover_account_async(address, cb)
            for _ in range(800):
                if done.is_set():
                    break
                if mode == Dispatch.LOOP:
                    c.dispatch()
                done.wait(0.025)
            assert len(got) == 1 and got[0][0] == rid
            check(got[0][1], source, evidence)
        assert c.callback_errors == []


def test_cancel_gives_one_cancelled(ns, anchor, ca_file, ispdb, mail):
    with make(ns, anchor, ca_file, ispdb, Dispatch.LOOP) as c:
        got = []
        rid = c.discover_account_async("joe@ac.test", lambda r, o: got.append(o))
        if c.cancel(rid):  # else it had already finished
            for _ in range(200):
                c.dispatch()
                if got:
                    break
                threading.Event().wait(0.02)
            assert len(got) == 1 and isinstance(got[0], Cancelled) and got[0].status == Status.CANCELLED


@pytest.mark.parametrize("mode", [Dispatch.LOOP, Dispatch.THREAD])
def test_asyncio(ns, anchor, ca_file, ispdb, mail, mode):
    async def main():
        async with AsyncContext(
            [ns], trust_anchor_file=anchor, ca_file=ca_file, dispatch=mode, timeout_ms=20000, ispdb_url=ispdb
        ) as actx:
            return await asyncio.gather(*(actx.discover_account(a) for a, _, _ in DOMAINS))

    for account, (_, source, evidence) in zip(asyncio.run(main()), DOMAINS):
        check(account, source, evidence)


def test_bad_input(actx):
    for bad in ("ac.test", "joe@", ""):
        with pytest.raises(InvalidArgument):
            actx.discover_account(bad)
    with pytest.raises(InvalidArgument, match="not an account source"):
        actx.discover_account("joe@ac.test", sources=["gopher"])
    with pytest.raises(InvalidArgument):
        actx.discover_account("joe@ac.test", sources=[3])
    with pytest.raises(TypeError):
        actx.discover_account("joe@ac.test", sources=Source.ISPDB)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="plain HTTP"):
        actx.discover_account("joe@ac.test", sources=["autoconfig-http"], plain_http=False)
    with pytest.raises(InvalidArgument):
        actx.discover_account_async("ac.test", lambda r, o: None)
    with pytest.raises(MailsrvError):
        Context(ispdb_url="ftp://x.example/")
    assert OAuth2(None, None, None, None) == OAuth2(None, None, None, None)


# ------------------------------------------------------------------ refresh (account_change_check)


def test_origin_of_source():
    assert Origin.of_source(Source.PACC) == Origin.PACC
    assert Origin.of_source("autodiscover") == Origin.AUTODISCOVER
    assert Origin.of_source(Source.GUESS) == Origin.GUESS
    assert Origin.of_source(Source.MX_ISPDB) == Origin.MX
    assert Origin.of_source("autoconfig-wellknown") == Origin.AUTOCONFIG
    assert Origin.of_source(Source.ISPDB) == Origin.ISPDB
    assert str(Origin.AUTOCONFIG_HTTP) == "autoconfig_http"


def test_refresh_updates_on_the_domains_own_document_with_a_binding(actx):
    a = actx.discover_account("joe@ac.test")
    origin = Origin.of_source(a.source)
    same = actx.account_change_check("joe@ac.test", "imaps", a.access.host, a.access.port, origin=origin)
    assert same.decision == Decision.NO_CHANGE
    moved = actx.account_change_check("joe@ac.test", Service.IMAPS, "old.example.net", 993, origin=origin)
    assert moved.decision == Decision.UPDATE, moved.detail
    assert (moved.target, moved.port) == ("mail.example.net", a.access.port)
    assert moved.binding is not None and moved.binding.host == "mail.example.net"
    assert moved.origin == Origin.AUTOCONFIG
    user = actx.account_change_check("joe@ac.test", "imaps", "old.example.net", 993, origin=Origin.USER)
    assert user.decision == Decision.NO_CHANGE and user.binding is None


def test_refresh_never_updates_on_the_ispdbs_word(actx, tmp_path):
    with History.open(tmp_path / "history") as h:
        kw = dict(origin=Origin.ISPDB, history=h)
        first = actx.account_change_check("joe@ispdbonly.ac.test", "imaps", "old.example.net", 993, now=10**9, **kw)
        assert first.decision == Decision.WAIT and first.wait_until == 10**9 + 7 * 86400, first.detail
        assert first.verdict == Verdict.AUTHENTIC and first.binding is not None
        later = actx.account_change_check(
            "joe@ispdbonly.ac.test", "imaps", "old.example.net", 993, now=10**9 + 8 * 86400, **kw
        )
        assert later.decision == Decision.ASK_USER
        assert later.origin == Origin.ISPDB
        h.save()
    text = (tmp_path / "history").read_text()
    assert text.startswith("mailsrv-history 2\n") and " ispdb\n" in text, text
    # The source round-trips through the file: the origin to save once the user accepts.
    with History.open(tmp_path / "history") as h:
        src = h.source("ispdbonly.ac.test", "imaps", later.target, later.port)
        assert src == Source.ISPDB and Origin.of_source(src) == later.origin
        assert h.source("ispdbonly.ac.test", "imaps", "old.example.net", 993) is None


def test_refresh_no_protocol_switch_and_bad_input(actx):
    c = actx.account_change_check("joe@mxs.example.com", "pop3s", "old.example.net", 995, origin=Origin.MX)
    assert c.decision == Decision.NO_CHANGE and c.target is None
    with pytest.raises(InvalidArgument):
        actx.account_change_check("ac.test", "imaps", "old.example.net", 993, origin=Origin.AUTOCONFIG)
    with pytest.raises(InvalidArgument):
        actx.account_change_check("joe@ac.test", "imaps", "old.example.net", 993, origin=99)


@pytest.mark.parametrize("mode", [Dispatch.LOOP, Dispatch.THREAD])
def test_refresh_asyncio(ns, anchor, ca_file, ispdb, mail, mode):
    async def main():
        async with AsyncContext(
            [ns], trust_anchor_file=anchor, ca_file=ca_file, dispatch=mode, timeout_ms=20000, ispdb_url=ispdb
        ) as actx:
            return await actx.account_change_check(
                "joe@mxs.example.com", "imaps", "old.example.net", 993, origin=Origin.MX
            )

    c = asyncio.run(main())
    assert c.decision == Decision.UPDATE and c.binding is not None


# ------------------------------------------------------------------ issue 17


def test_pacc_passes_web_services_through_and_a_mismatch_is_rejected(actx):
    a = actx.discover_account("joe@pacc.example.com", sources=["pacc"])
    assert a.web == WebServices(
        jmap="https://jmap.example.net/session",
        caldav="https://dav.example.net/calendars/",
        carddav="https://dav.example.net/contacts/",
        oauth_public_issuer="https://auth.example.net",
    )
    assert all(c.verdict.evidence == Evidence.PACC_DNSSEC for c in a.candidates)
    assert a.access.authentication == ("OAuth2", "password-cleartext")
    bad = actx.discover_account("joe@paccbad.example.com")
    assert not bad.found
    r = bad.report(Source.PACC)
    assert r.state == SourceState.FAILED and r.status == Status.DIGEST_MISMATCH
    assert "DNSSEC-signed" in r.detail and "rejected" in r.detail
    assert "digest" in Status.DIGEST_MISMATCH.text


def test_guessing_is_opt_in(actx):
    assert not actx.discover_account("joe@guess.ac.test").found
    a = actx.discover_account("joe@guess.ac.test", guess=True)
    assert a.source == Source.GUESS
    assert a.access.host == "imap.guess.ac.test" and a.access.verdict.evidence == Evidence.PROBE_DNS_ID
    assert a.submission.host == "smtp.guess.ac.test"
    u = actx.discover_account("joe@guessu.ac.test", sources=[Source.GUESS])
    assert u.found and all(c.verdict.verdict == Verdict.UNVERIFIED for c in u.candidates)


def test_autodiscover_reports_what_it_does_not_follow(actx):
    a = actx.discover_account("joe@adsrvu.ac.test", sources=[Source.AUTODISCOVER])
    assert not a.found
    assert a.report("autodiscover").unfollowed == (
        "https://autodiscover.adprov.example.net/autodiscover/autodiscover.xml",
    )


def test_autodiscover_callback_follows_and_gives_credentials(ns, anchor, ca_file, ispdb, mail):
    asked = []

    def hook(ask, url, address, why):
        asked.append((ask, url, address))
        if ask == AutodiscoverAsk.CREDENTIALS:
            return ("joe", "secret")
        return True

    with make(ns, anchor, ca_file, ispdb, autodiscover=hook) as c:
        a = c.discover_account("joe@adauth.ac.test", sources=[Source.AUTODISCOVER])
        assert a.source == Source.AUTODISCOVER and a.access.verdict.evidence == Evidence.HTTPS_DOMAIN
        assert asked == [
            (
                AutodiscoverAsk.CREDENTIALS,
                "https://autodiscover.adauth.ac.test/autodiscover/autodiscover.xml",
                "joe@adauth.ac.test",
            )
        ]
        f = c.discover_account("joe@adsrvu.ac.test", sources=[Source.AUTODISCOVER])
        assert f.found and f.report(Source.AUTODISCOVER).unfollowed == ()
        assert asked[-1][0] == AutodiscoverAsk.FOLLOW
        assert c.callback_errors == []

    def broken(ask, url, address, why):
        raise RuntimeError("boom")

    with make(ns, anchor, ca_file, ispdb, autodiscover=broken) as c:
        a = c.discover_account("joe@adauth.ac.test", sources=[Source.AUTODISCOVER])
        assert not a.found
        assert [str(e) for e in c.callback_errors] == ["boom"]


def test_refresh_of_a_pacc_account_updates(actx):
    moved = actx.account_change_check("joe@pacc.example.com", "imaps", "old.example.net", 993, origin=Origin.PACC)
    assert moved.decision == Decision.UPDATE, moved.detail
    assert moved.target == "mail.example.net"
