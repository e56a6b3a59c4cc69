"""Addresses like the system: the hosts file (a temp file, never the real /etc/hosts) for
SRV targets and connections, reported as Dnssec.HOSTS_FILE, and Context.connect with
caller-resolved ``addresses=`` to the testbed's dovecot."""

from __future__ import annotations

import pytest

from mailsrv import Context, Dnssec, Identity, MailsrvError, Security, Service, Status

#: No record at all in the signed example.net zone (NXDOMAIN).
NO_DNS_HOST = "nodns-hosts-test.example.net"


def test_hosts_file_target_addresses(ns, anchor, mail, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text(f"{mail['addr']} noaddr.example.net\n127.0.0.77 mail.example.net\n")
    with Context(nameservers=[ns], trust_anchor_file=anchor, hosts_file=str(hosts)) as ctx:
        d = ctx.discover("joe@noaddr.example.com", services=Service.IMAPS)
        e = d.find(Service.IMAPS).endpoints[0]
        assert list(e.addresses) == [mail["addr"]]
        assert e.address_dnssec == Dnssec.HOSTS_FILE
        assert e.dnssec == Dnssec.SECURE
        e = ctx.discover("joe@example.com", services=Service.IMAPS).find(Service.IMAPS).endpoints[0]
        assert list(e.addresses) == ["127.0.0.77"], "the hosts file comes before DNS"
        assert e.address_dnssec == Dnssec.HOSTS_FILE
    with Context(nameservers=[ns], trust_anchor_file=anchor, hosts_file=None) as ctx:
        e = ctx.discover("joe@example.com", services=Service.IMAPS).find(Service.IMAPS).endpoints[0]
        assert e.address_dnssec == Dnssec.SECURE


def test_connect_with_addresses(tls_ctx, mail):
    ident = Identity.of(dns_ids=["mail.example.net"])
    with pytest.raises(MailsrvError) as ei:
        tls_ctx.connect(NO_DNS_HOST, mail["imaps"], Security.IMPLICIT_TLS, identity=ident)
    assert ei.value.status == Status.NXDOMAIN
    with tls_ctx.connect(
        NO_DNS_HOST, mail["imaps"], Security.IMPLICIT_TLS, identity=ident, addresses=[mail["addr"]]
    ) as s:
        assert s.peer_address.startswith(mail["addr"])
        assert s.greeting.startswith("* OK")


def test_bad_addresses_are_invalid_arg_with_reason(tls_ctx, mail):
    for bad in ["mail.example.net", "127.0.0.1:993", "0.0.0.0", ""]:
        with pytest.raises(MailsrvError) as ei:
            tls_ctx.connect(NO_DNS_HOST, mail["imaps"], addresses=[bad])
        assert ei.value.status == Status.INVALID_ARG
        assert repr(bad).replace("'", '"') in ei.value.detail, ei.value.detail
