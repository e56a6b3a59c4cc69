"""Certificate checks (Context.check_cert, Identity, load_pem) with the testbed's test CA and
leaves (testbed/certs.sh): the precise status and reason of every failure."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from mailsrv import (
    CertMatch,
    Context,
    Identity,
    MailsrvError,
    MatchKind,
    Service,
    Status,
    load_pem,
    parse_pem,
)


@pytest.fixture
def chain(certs_dir):
    """chain(NAME): the leaf first, then the chain up to the root, as the server sends it."""

    def load(name: str):
        return load_pem(certs_dir / f"{name}.pem")

    return load


def failure(ctx: Context, certs, **kw) -> MailsrvError:
    with pytest.raises(MailsrvError) as ei:
        ctx.check_cert(certs, **kw)
    e = ei.value
    assert e.detail, "a certificate failure always has a reason"
    return e


# ------------------------------------------------------------------ PEM


def test_load_pem_gives_der_leaf_first(certs_dir):
    pem = load_pem(certs_dir / "dnsid-mail-example-net.pem")  # key, leaf, CA
    assert len(pem) == 2, "the private key block is skipped"
    assert all(isinstance(c, bytes) and c[0] == 0x30 for c in pem)  # DER SEQUENCE
    assert pem[0] == load_pem(certs_dir / "dnsid-mail-example-net.crt")[0]
    assert pem[-1] == load_pem(certs_dir / "ca.crt")[0]
    # the NC intermediate sits between the leaf and the root
    assert len(load_pem(certs_dir / "nc-dns-inside.pem")) == 3


def test_parse_pem_text_and_errors(certs_dir):
    text = (certs_dir / "ca.crt").read_text()
    assert parse_pem(text) == parse_pem(text.encode()) == load_pem(certs_dir / "ca.crt")
    assert parse_pem("no PEM here") == []
    # CRLF line ends and surrounding text are fine
    assert parse_pem("junk\r\n" + text.replace("\n", "\r\n") + "trailer") == parse_pem(text)
    der = parse_pem(text)[0]
    body = base64.b64encode(der).decode()
    assert parse_pem(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n") == [der]
    with pytest.raises(ValueError, match="base64"):
        parse_pem("-----BEGIN CERTIFICATE-----\n!!!notbase64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError, match="unterminated"):
        parse_pem(text + "-----BEGIN CERTIFICATE-----\nMIIB\n")
    with pytest.raises(OSError):
        load_pem(certs_dir / "no-such-file.pem")


# ------------------------------------------------------------------ matches


def test_srv_id_only_certificate(tls_ctx, chain):
    certs = chain("srvid-imaps-example-com")
    m = tls_ctx.check_cert(certs, srv_ids=[("imaps", "example.com")])
    assert isinstance(m, CertMatch)
    assert m == CertMatch("SRV-ID _imaps.example.com", MatchKind.SRV_ID, 1)
    # the same through an Identity, a Service and a leading underscore
    assert tls_ctx.check_cert(certs, Identity().srv_id(Service.IMAPS, "example.com")) == m
    assert tls_ctx.check_cert(certs, Identity.of(srv_ids=[("_imaps", "EXAMPLE.com.")])) == m
    # T-SRVID-13: an SRV-ID answers only SRV-ID references
    e = failure(tls_ctx, certs, dns_ids=["example.com"])
    assert e.status == Status.NAME_MISMATCH
    assert "SRV-ID _imaps.example.com" in e.detail, e.detail
    # T-AUTH-10: another service's SRV-ID proves nothing
    assert failure(tls_ctx, certs, srv_ids=[("submissions", "example.com")]).status == Status.NAME_MISMATCH


def test_sibling_service_needs_the_flag(tls_ctx, chain):
    certs = chain("srvid-imaps-example-com")
    assert failure(tls_ctx, certs, srv_ids=[("imap", "example.com")]).status == Status.NAME_MISMATCH
    m = tls_ctx.check_cert(certs, srv_ids=[("imap", "example.com")], accept_sibling=True)
    assert m.kind == MatchKind.SRV_ID_SIBLING
    assert "_imaps.example.com" in m.matched


@pytest.mark.parametrize("svc", ["imap", "imaps", "pop3", "pop3s", "submission", "submissions"])
def test_multi_srv_id(tls_ctx, chain, svc):
    m = tls_ctx.check_cert(chain("srvid-multi-example-com"), srv_ids=[(svc, "example.com")])
    assert (m.matched, m.kind) == (f"SRV-ID _{svc}.example.com", MatchKind.SRV_ID)


def test_dns_ids_and_wildcards(tls_ctx, chain):
    m = tls_ctx.check_cert(chain("dnsid-mail-example-net"), dns_ids=["MAIL.Example.NET."])
    assert m == CertMatch("DNS-ID mail.example.net", MatchKind.DNS_ID, 1)
    w = tls_ctx.check_cert(chain("wildcard-example-net"), dns_ids=["mail.example.net"])
    assert w.kind == MatchKind.DNS_ID_WILDCARD
    assert w.matched == "DNS-ID mail.example.net via DNS-ID *.example.net"
    for name in ("example.net", "a.b.example.net"):  # one label, left-most only
        assert failure(tls_ctx, chain("wildcard-example-net"), dns_ids=[name]).status == Status.NAME_MISMATCH
    # several reference identifiers: any one is enough (T-AUTH-08), none of them here (T-AUTH-09)
    ident = Identity().srv_id("imaps", "example.com").dns_id("example.com")
    assert tls_ctx.check_cert(chain("dnsid-example-com"), ident).matched == "DNS-ID example.com"
    assert (
        failure(
            tls_ctx, chain("dnsid-mail-example-net"), srv_ids=[("imaps", "example.com")], dns_ids=["example.com"]
        ).status
        == Status.NAME_MISMATCH
    )


@pytest.mark.parametrize(
    "cert,name", [("wildcard-co-uk", "example.co.uk"), ("wildcard-s3-amazonaws-com", "bucket.s3.amazonaws.com")]
)
def test_t_dns_09_no_wildcard_over_a_public_suffix(tls_ctx, chain, cert, name):
    assert failure(tls_ctx, chain(cert), dns_ids=[name]).status == Status.NAME_MISMATCH


@pytest.mark.parametrize("cert,why", [("rsa-1024-mail-example-net", "RSA 1024 bits"), ("dsa-mail-example-net", "DSA")])
def test_weak_and_dsa_leaf_keys_are_bad_certificates(tls_ctx, chain, cert, why):
    e = failure(tls_ctx, chain(cert), dns_ids=["mail.example.net"])
    assert e.status == Status.BAD_CERTIFICATE and why in str(e), e
    assert tls_ctx.check_cert(chain("rsa-2048-mail-example-net"), dns_ids=["mail.example.net"]).kind == MatchKind.DNS_ID


def test_idn_srv_id(tls_ctx, chain):
    m = tls_ctx.check_cert(chain("idn-srvid"), srv_ids=[("imaps", "bücher.example")])
    assert m.matched == "SRV-ID _imaps.xn--bcher-kva.example"


def test_cn_only_needs_legacy_cn(tls_ctx, chain):
    certs = chain("cn-only")
    e = failure(tls_ctx, certs, dns_ids=["mail.example.net"])
    assert e.status == Status.NAME_MISMATCH and "legacy" in e.detail
    m = tls_ctx.check_cert(certs, dns_ids=["mail.example.net"], legacy_cn=True)
    assert m.kind == MatchKind.LEGACY_CN


def test_ip_reference_matches_no_dns_id(tls_ctx, chain):
    e = failure(tls_ctx, chain("dnsid-mail-example-net"), ips=[ipaddress.ip_address("127.0.0.1")])
    assert e.status == Status.NAME_MISMATCH
    assert "IP-ID 127.0.0.1" in e.detail


def test_name_constraints_bind_srv_ids(tls_ctx, chain):
    e = failure(tls_ctx, chain("nc-srvid-outside"), srv_ids=[("imaps", "example.com")])
    assert e.status == Status.NAME_CONSTRAINT
    m = tls_ctx.check_cert(chain("nc-dns-inside"), dns_ids=["mail.example.net"])
    assert m.path_len == 2, "the leaf and the NC intermediate (not the anchor)"


# ------------------------------------------------------------------ precise failures

PRECISE = {
    "expired": Status.CERT_EXPIRED,
    "not-yet-valid": Status.CERT_NOT_YET_VALID,
    "untrusted": Status.UNKNOWN_ISSUER,
    "selfsigned": Status.UNKNOWN_ISSUER,
    "wrong-name": Status.NAME_MISMATCH,
}


@pytest.mark.parametrize("name", sorted(PRECISE))
def test_precise_chain_statuses(tls_ctx, chain, name):
    e = failure(tls_ctx, chain(name), dns_ids=["mail.example.net"])
    assert e.status == PRECISE[name], e
    assert e.status.is_cert_error
    assert str(e).startswith(e.status.name + ": ")


def test_reasons_say_what_failed(tls_ctx, chain):
    assert "expired" in failure(tls_ctx, chain("expired"), dns_ids=["mail.example.net"]).detail
    assert "wrong.example.org" in failure(tls_ctx, chain("wrong-name"), dns_ids=["mail.example.net"]).detail


def test_malformed_certificates(tls_ctx, chain):
    # T-SRVID-15: a NUL inside an SRVName is a malformed certificate
    assert failure(tls_ctx, chain("srvid-nul"), srv_ids=[("imaps", "example.com")]).status == Status.BAD_CERTIFICATE
    # an embedded NUL in a dNSName never matches; a UTF8String SRVName is no SRV-ID
    assert failure(tls_ctx, chain("nul-in-san"), dns_ids=["mail.example.net"]).status != Status.OK
    assert failure(tls_ctx, chain("srvid-utf8"), srv_ids=[("imaps", "example.com")]).status != Status.OK
    assert failure(tls_ctx, [b"\x30\x03\x02\x01"], dns_ids=["mail.example.net"]).status == Status.BAD_CERTIFICATE


def test_trust_comes_from_ca_file(ns, anchor, chain):
    # without the test CA (the system store), the testbed's chain is untrusted
    with Context([ns], trust_anchor_file=anchor) as c:
        e = failure(c, chain("dnsid-mail-example-net"), dns_ids=["mail.example.net"])
    assert e.status == Status.UNKNOWN_ISSUER


def test_leaf_alone_is_enough_when_the_issuer_is_the_anchor(tls_ctx, chain):
    leaf = chain("dnsid-mail-example-net")[0]
    assert tls_ctx.check_cert(leaf, dns_ids=["mail.example.net"]).path_len == 1  # bytes: one certificate
    assert tls_ctx.check_cert([bytearray(leaf)], dns_ids=["mail.example.net"]).kind == MatchKind.DNS_ID


# ------------------------------------------------------------------ identities and bad input


def test_identity_is_an_immutable_value():
    a = Identity().dns_id("mail.example.net")
    b = a.srv_id("imaps", "example.com").ip("::1")
    assert len(a) == 1 and len(b) == 3 and not Identity()
    assert b.refs == (("dns", "mail.example.net"), ("srv", "imaps", "example.com"), ("ip", "::1"))
    assert a == Identity.of(dns_ids=["mail.example.net"])
    assert a + Identity().ip("::1") == Identity.of(dns_ids=["mail.example.net"], ips=["::1"])
    assert hash(a) == hash(Identity().dns_id("mail.example.net"))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Identity().dns_id(""),
        lambda: Identity().dns_id("a..b"),
        lambda: Identity().dns_id("192.0.2.1"),  # IP literals are IP-IDs
        lambda: Identity().dns_id("_imaps.example.com"),
        lambda: Identity().srv_id("sieve", "example.com"),
        lambda: Identity().srv_id(Service.IMAPS | Service.IMAP, "example.com"),
        lambda: Identity().ip("mail.example.net"),
        lambda: Identity().dns_id("mail.example.net\0.evil.org"),
        lambda: Identity(refs=(("dns", "ok.example"), ("cn", "x"))),
    ],
    ids=[
        "empty",
        "empty label",
        "ip literal",
        "srv name",
        "unknown service",
        "service mask",
        "name as ip",
        "nul",
        "kind",
    ],
)
def test_bad_identities_fail_at_once(build):
    with pytest.raises(MailsrvError) as ei:
        build()
    assert ei.value.status == Status.INVALID_ARG
    assert ei.value.detail


def test_bad_check_cert_arguments(tls_ctx, chain):
    certs = chain("dnsid-mail-example-net")
    assert failure(tls_ctx, certs).status == Status.INVALID_ARG  # no reference identifier
    assert failure(tls_ctx, [], dns_ids=["mail.example.net"]).status == Status.INVALID_ARG
    with pytest.raises(TypeError):
        tls_ctx.check_cert(["-----BEGIN CERTIFICATE-----"], dns_ids=["mail.example.net"])
    with pytest.raises(TypeError):
        tls_ctx.check_cert(certs, identity="mail.example.net")
    with pytest.raises(TypeError):
        tls_ctx.check_cert(certs, srv_ids=["imaps.example.com"])
    tls_ctx.close()
    assert failure(tls_ctx, certs, dns_ids=["mail.example.net"]).status == Status.SHUTDOWN
