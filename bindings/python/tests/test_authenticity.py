"""Context.verify_srv_authenticity against the testbed: DNSSEC-signed (example.com), unsigned
(insecure.test, hosted.test, dnshosted.test, half.test) and bogus (bogus.test) zones, and
the TLS probe against dovecot and postfix (the verdicts of tests/ffi_authenticity.rs)."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest
from test_async import Collector, pump

from mailsrv import (
    AsyncContext,
    Authenticity,
    Dispatch,
    Dnssec,
    Evidence,
    MailsrvError,
    MatchKind,
    Service,
    Status,
    TlsStream,
    Verdict,
)

TARGET = "mail.example.net"


def port_of(mail, service: Service) -> int:
    return mail[service.label]


def test_dnssec_secure_answer_is_authentic(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("example.com", Service.IMAPS, TARGET, mail["imaps"])
    assert isinstance(a, Authenticity)
    assert a.verdict == Verdict.AUTHENTIC and a.authentic
    assert a.evidence == Evidence.DNSSEC
    assert a.srv_dnssec == Dnssec.SECURE
    assert "DNSSEC" in a.detail
    # T-SEED-07: no probe for a secure answer
    assert a.probe_chain == () and a.target_chain == ()
    assert a.probe_status == Status.OK and a.probe_matched is None
    assert a.probe_stream is None


@pytest.mark.parametrize("name", ["dane", "daneexp"])
def test_dane_ee_authenticates_a_self_signed_key(tls_ctx, mail, name):
    # DNSSEC-secure SRV, addresses and TLSA 3 1 1: the key is pinned, even expired and nameless
    a = tls_ctx.verify_srv_authenticity(f"{name}.example.com", Service.IMAPS, f"{name}.example.net", mail["imaps"])
    assert (a.verdict, a.evidence) == (Verdict.AUTHENTIC, Evidence.DANE), a.detail
    assert a.target_verified and len(a.target_chain) == 1


def test_secure_tlsa_that_nothing_matches_rejects(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("danebad.example.com", Service.IMAPS, "danebad.example.net", mail["imaps"])
    assert a.verdict == Verdict.REJECTED
    assert "TLSA" in a.detail


def test_an_address_works_as_the_domain(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("joe@example.com", Service.SUBMISSIONS, TARGET, mail["submissions"])
    assert (a.verdict, a.evidence) == (Verdict.AUTHENTIC, Evidence.DNSSEC)


@pytest.mark.parametrize("target,port", [("evil.example.org", None), (TARGET, 443)], ids=["target", "port"])
def test_secure_records_without_the_answer_reject_it(tls_ctx, mail, target, port):
    a = tls_ctx.verify_srv_authenticity("example.com", Service.IMAPS, target, port or mail["imaps"])
    assert a.verdict == Verdict.REJECTED and not a.authentic
    assert a.evidence == Evidence.NONE


def test_bogus_is_rejected(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("bogus.test", Service.IMAPS, TARGET, mail["imaps"])
    assert a.verdict == Verdict.REJECTED
    assert a.srv_dnssec == Dnssec.BOGUS
    assert "DNSSEC" in a.detail
    assert a.probe_chain == () and a.target_chain == (), "never connect for a bogus answer"


def test_insecure_provider_serving_only_its_own_name_is_unverified(tls_ctx, mail, certs_dir):
    a = tls_ctx.verify_srv_authenticity("insecure.test", Service.IMAPS, TARGET, mail["imaps"])
    assert a.verdict == Verdict.UNVERIFIED
    assert a.evidence == Evidence.NONE
    assert a.srv_dnssec == Dnssec.INSECURE
    assert a.probe_status == Status.NAME_MISMATCH and a.probe_matched is None
    assert a.target_verified and a.target_status == Status.OK
    assert a.target_matched == f"DNS-ID {TARGET}"
    assert len(a.target_chain) == 2 and not a.in_domain
    assert "insecure.test" in a.detail
    # the reconnect's chain is the provider's certificate
    assert tls_ctx.check_cert(a.target_chain, dns_ids=[TARGET]).kind == MatchKind.DNS_ID


def test_no_probe_never_connects(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("insecure.test", Service.IMAPS, TARGET, mail["imaps"], probe=False)
    assert a.verdict == Verdict.UNVERIFIED
    assert (a.probe_chain, a.target_chain) == ((), ())
    assert not a.target_verified
    assert a.probe_status == a.target_status == Status.OK


@pytest.mark.parametrize(
    "service", [Service.IMAPS, Service.SUBMISSIONS, Service.SUBMISSION, Service.IMAP], ids=lambda s: s.label
)
def test_srv_id_probe_and_target_reconnect(tls_ctx, mail, service):
    a = tls_ctx.verify_srv_authenticity("hosted.test", service, TARGET, port_of(mail, service))
    assert a.verdict == Verdict.AUTHENTIC, a.detail
    assert a.evidence == Evidence.PROBE_SRV_ID
    assert a.probe_matched == f"SRV-ID _{service.label}.hosted.test"
    assert a.target_verified and a.target_matched == f"DNS-ID {TARGET}"
    assert a.srv_dnssec == Dnssec.INSECURE
    assert a.probe_chain and a.target_chain
    # the probe's chain really carries the SRV-ID
    m = tls_ctx.check_cert(a.probe_chain, srv_ids=[(service, "hosted.test")])
    assert m.kind == MatchKind.SRV_ID
    assert a.probe_stream is None, "not kept unless asked"


def test_dns_id_probe(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("dnshosted.test", Service.IMAPS, TARGET, mail["imaps"])
    assert a.verdict == Verdict.AUTHENTIC, a.detail
    assert a.evidence == Evidence.PROBE_DNS_ID
    assert a.probe_matched == "DNS-ID dnshosted.test"


def test_probe_passes_but_target_name_missing(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("hosted.test", Service.POP3S, "srvonly.example.net", mail["pop3s"])
    assert a.verdict == Verdict.UNVERIFIED, a.detail
    assert not a.target_verified
    assert a.probe_status == Status.OK
    assert a.target_status == Status.NAME_MISMATCH


def test_each_service_is_judged_on_its_own(tls_ctx, mail):
    imaps = tls_ctx.verify_srv_authenticity("half.test", Service.IMAPS, TARGET, mail["imaps"])
    assert imaps.verdict == Verdict.AUTHENTIC, imaps.detail
    subs = tls_ctx.verify_srv_authenticity("half.test", Service.SUBMISSIONS, TARGET, mail["submissions"])
    assert subs.verdict == Verdict.UNVERIFIED, subs.detail
    assert subs.evidence != Evidence.PROBE_SRV_ID


def test_keep_probe_hands_over_a_verified_stream(tls_ctx, mail):
    with tls_ctx.verify_srv_authenticity("hosted.test", Service.IMAPS, TARGET, mail["imaps"], keep_probe=True) as a:
        assert a.evidence == Evidence.PROBE_SRV_ID
        s = a.probe_stream
        assert isinstance(s, TlsStream)
        assert s.sni == "hosted.test"
        assert s.matched_identity == "SRV-ID _imaps.hosted.test"
        assert s.greeting.startswith("* OK")
        # the stream works: CAPABILITY, then LOGOUT
        s.write(b"a1 CAPABILITY\r\n")
        r = io.BufferedReader(s)
        line = r.readline()
        assert line.startswith(b"* CAPABILITY"), line
        assert r.readline().startswith(b"a1 OK")
        s.write(b"a2 LOGOUT\r\n")
        assert r.readline().startswith(b"* BYE")
    assert s.closed, "closing the Authenticity closes the kept stream"
    # equality ignores the stream
    assert a == tls_ctx.verify_srv_authenticity("hosted.test", Service.IMAPS, TARGET, mail["imaps"])


def test_keep_probe_without_a_probe_verdict_keeps_nothing(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("example.com", Service.IMAPS, TARGET, mail["imaps"], keep_probe=True)
    assert a.evidence == Evidence.DNSSEC and a.probe_stream is None
    b = tls_ctx.verify_srv_authenticity("insecure.test", Service.IMAPS, TARGET, mail["imaps"], keep_probe=True)
    assert b.verdict == Verdict.UNVERIFIED and b.probe_stream is None


def test_sibling_flag_is_accepted(tls_ctx, mail):
    a = tls_ctx.verify_srv_authenticity("hosted.test", Service.IMAPS, TARGET, mail["imaps"], accept_sibling=True)
    assert a.verdict == Verdict.AUTHENTIC


@pytest.mark.parametrize(
    "domain,service,target,port",
    [
        ("example.com", Service.IMAPS | Service.IMAP, TARGET, 993),
        ("", Service.IMAPS, TARGET, 993),
        ("example.com", Service.IMAPS, "bad..name", 993),
        ("example.com", Service.IMAPS, TARGET, 0),
        ("example.com", 0, TARGET, 993),
    ],
    ids=["two services", "empty domain", "bad target", "port 0", "no service"],
)
def test_bad_arguments(tls_ctx, domain, service, target, port):
    with pytest.raises(MailsrvError) as ei:
        tls_ctx.verify_srv_authenticity(domain, service, target, port)
    assert ei.value.status == Status.INVALID_ARG
    with pytest.raises(MailsrvError) as ei:
        tls_ctx.verify_srv_authenticity_async(domain, service, target, port, lambda rid, o: None)
    assert ei.value.status == Status.INVALID_ARG
    assert tls_ctx.outstanding == 0


# ------------------------------------------------------------------ async


CASES = [
    ("example.com", Service.IMAPS, TARGET, Verdict.AUTHENTIC),
    ("insecure.test", Service.IMAPS, TARGET, Verdict.UNVERIFIED),
    ("bogus.test", Service.IMAPS, TARGET, Verdict.REJECTED),
    ("hosted.test", Service.SUBMISSIONS, TARGET, Verdict.AUTHENTIC),
]


def test_async_thread_mode(tls_ctx, mail):
    col = Collector()
    ids = [tls_ctx.verify_srv_authenticity_async(d, s, t, port_of(mail, s), col) for d, s, t, _ in CASES]
    col.wait(len(ids))
    by_id = col.by_id()
    assert [by_id[i].verdict for i in ids] == [v for *_, v in CASES]
    assert threading.main_thread().ident not in {t for t, _, _ in col.calls}


def test_async_loop_mode_with_kept_probe(tls_loop_ctx, mail):
    col = Collector()
    rid = tls_loop_ctx.verify_srv_authenticity_async(
        "hosted.test", Service.IMAPS, TARGET, mail["imaps"], col, keep_probe=True
    )
    pump(tls_loop_ctx, lambda: len(col.calls) >= 1)
    ((thread, got_id, a),) = col.calls
    assert (thread, got_id) == (threading.get_ident(), rid)
    with a:
        a.probe_stream.write(b"a1 NOOP\r\n")
        assert a.probe_stream.read(100).startswith(b"a1 OK")


@pytest.mark.parametrize("mode", [Dispatch.LOOP, Dispatch.THREAD])
def test_asyncio_verdicts(mode, ns, anchor, ca_file, mail):
    async def main():
        async with AsyncContext([ns], trust_anchor_file=anchor, ca_file=ca_file, dispatch=mode) as actx:
            return await asyncio.gather(
                *(actx.verify_srv_authenticity(d, s, t, port_of(mail, s)) for d, s, t, _ in CASES)
            )

    results = asyncio.run(main())
    assert [r.verdict for r in results] == [v for *_, v in CASES]
    assert results[3].evidence == Evidence.PROBE_SRV_ID
