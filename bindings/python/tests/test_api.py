"""The small parts of the API: version, statuses, errors, enums, context lifecycle."""

from __future__ import annotations

import pickle
import re

import pytest

import mailsrv
from mailsrv import Context, Dnssec, MailsrvError, Service, SrvState, Status


def test_version_names_the_engines():
    v = mailsrv.version()
    assert re.match(r"^mailsrv \d+\.\d+\.\d+ ", v), v
    assert "rustls" in v
    assert "hickory" in v


def test_every_status_has_text():
    texts = {s: s.text for s in Status}
    unknown = mailsrv.status_str(9999)
    assert unknown == "unknown status"
    for s, t in texts.items():
        assert t and t != unknown, s


def test_status_categories():
    assert Status.SERVFAIL.is_dns_error and Status.BOGUS.is_dns_error
    assert not Status.INVALID_ARG.is_dns_error
    assert Status.NAME_MISMATCH.is_cert_error and not Status.BOGUS.is_cert_error


def test_unknown_values_do_not_crash():
    s = Status(4242)
    assert int(s) == 4242 and s.name == "UNKNOWN_4242"
    e = MailsrvError(4242, "future")
    assert e.status == 4242 and "future" in str(e)
    assert SrvState(99).name == "UNKNOWN_99"


def test_enum_labels_come_from_the_library():
    assert [s.label for s in Service] == ["imaps", "imap", "pop3s", "pop3", "submissions", "submission"]
    assert (Service.IMAPS | Service.IMAP).label == ""
    assert [s.label for s in SrvState] == ["found", "not_offered", "no_record", "lookup_failed", "bogus"]
    assert Dnssec.SECURE.label == "secure" and Dnssec.UNKNOWN.label == "unknown"


def test_error_shape():
    e = MailsrvError(Status.INVALID_ARG, "empty address")
    assert isinstance(e, Exception)
    assert e.status is Status.INVALID_ARG and e.detail == "empty address"
    assert str(e) == "INVALID_ARG: empty address"
    again = pickle.loads(pickle.dumps(e))
    assert (again.status, again.detail) == (e.status, e.detail)
    assert str(MailsrvError(Status.TIMEOUT)) == f"TIMEOUT: {Status.TIMEOUT.text}"


def test_context_lifecycle(ns, anchor):
    c = Context([ns], trust_anchor_file=anchor)
    assert not c.closed and "open" in repr(c)
    with c:
        pass
    assert c.closed and "closed" in repr(c)
    c.close()
    c.close()


def test_context_manager_closes_on_error(ns, anchor):
    with pytest.raises(ZeroDivisionError):
        with Context([ns], trust_anchor_file=anchor) as c:
            raise ZeroDivisionError
    assert c.closed


def test_many_contexts(ns, anchor):
    for _ in range(20):
        with Context([ns], trust_anchor_file=anchor, dispatch=mailsrv.Dispatch.LOOP) as c:
            c.notify_fd()


def test_nameserver_forms(ns, anchor):
    ip, port = ns.rsplit(":", 1)
    with Context([f"{ip}:{port}", f"{ip}:{port}"], trust_anchor_file=anchor, timeout_ms=0) as c:
        assert c.discover("example.com", Service.IMAPS).services[0].found
    # IPv6 form is accepted by the config (not asked here)
    with Context(["[::1]:5353", "[::1]", "127.0.0.1"], trust_anchor_file=anchor):
        pass
