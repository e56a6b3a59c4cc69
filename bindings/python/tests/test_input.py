"""Bad input: every way in ends in MailsrvError(INVALID_ARG) (or TypeError for wrong types),
whether Python or C rejects it, and a rejected async call never calls back."""

from __future__ import annotations

import threading

import pytest

import mailsrv
from mailsrv import Context, MailsrvError, Service, Status

BAD_ADDRESSES = {
    "empty": "",
    "nul byte": "example.com\0evil.example",
    "nul byte at end": "joe@example.com\0",
    "not fully qualified": "localhost",
    "user at single label": "joe@localhost",
    "label over 63": "joe@" + "a" * 64 + ".com",
    "name over 253": "joe@" + ("a" * 60 + ".") * 5 + "com",
    "input over 1024": "x" * 1100 + ".com",
    "local part over 64": "a" * 65 + "@example.com",
    "empty local part": "@example.com",
    "white space": "exa mple.com",
    "control character": "example.com\n",
    "address literal": "joe@[127.0.0.1]",
    "empty label": "example..com",
    "bad idn": "joe@xn--zz-.example",
    "lone surrogate": "joe@ex\udcffample.com",
    "non-utf-8 bytes": b"joe@\xff\xfe.example",
    "nul in bytes": b"example.com\0",
    "dot only": ".",
}


@pytest.mark.parametrize("address", list(BAD_ADDRESSES.values()), ids=list(BAD_ADDRESSES))
def test_bad_address_blocking(ctx, address):
    with pytest.raises(MailsrvError) as ei:
        ctx.discover(address)
    assert ei.value.status == Status.INVALID_ARG
    assert ei.value.detail
    assert "INVALID_ARG" in str(ei.value)


@pytest.mark.parametrize("address", list(BAD_ADDRESSES.values()), ids=list(BAD_ADDRESSES))
def test_bad_address_async_has_no_callback(ctx, address):
    called = []
    with pytest.raises(MailsrvError) as ei:
        ctx.discover_async(address, lambda rid, r: called.append(r))
    assert ei.value.status == Status.INVALID_ARG
    assert ctx.outstanding == 0
    assert not mailsrv._pending or all(p.ctx is not ctx for p in mailsrv._pending.values())
    # a valid request afterwards works, and only its callback comes
    done = threading.Event()
    ctx.discover_async("example.com", lambda rid, r: (called.append(r), done.set()), Service.IMAPS)
    assert done.wait(10)
    assert len(called) == 1 and isinstance(called[0], mailsrv.Discovery)


def test_nul_never_reaches_c_truncated(ctx):
    # "example.com\0..." would look like "example.com" to C: it must fail, not succeed
    with pytest.raises(MailsrvError, match="NUL"):
        ctx.discover("example.com\0.evil")


@pytest.mark.parametrize("services", [1 << 6, 1 << 31, 0xFFFFFFFF, -1, 1 << 32])
def test_bad_service_mask(ctx, services):
    with pytest.raises(MailsrvError) as ei:
        ctx.discover("example.com", services)
    assert ei.value.status == Status.INVALID_ARG


@pytest.mark.parametrize("value", [None, 1.5, ["example.com"], object()])
def test_wrong_types(ctx, value):
    with pytest.raises(TypeError):
        ctx.discover(value)  # type: ignore[arg-type]


def test_services_must_be_a_service_a_name_or_int(ctx):
    with pytest.raises(TypeError, match="services must be"):
        ctx.discover("example.com", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a mail service"):
        ctx.discover("example.com", "imapz")


def test_callback_must_be_callable(ctx):
    with pytest.raises(TypeError):
        ctx.discover_async("example.com", None)  # type: ignore[arg-type]
    assert ctx.outstanding == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nameservers": ["not an address"]},
        {"nameservers": ["ns1.example.com"]},  # no host names
        {"nameservers": ["127.0.0.1:99999"]},
        {"nameservers": ["127.0.0.1\0:53"]},
        {"timeout_ms": 600001},
        {"timeout_ms": -1},
        {"dispatch": 7},
        {"rng_seed": -1},
        {"rng_seed": 1 << 64},
        {"trust_anchor_file": "anchor\0.ds"},
    ],
    ids=lambda kw: repr(kw),
)
def test_bad_config(ns, kwargs):
    kwargs.setdefault("nameservers", [ns])
    with pytest.raises(MailsrvError) as ei:
        Context(**kwargs)
    assert ei.value.status == Status.INVALID_ARG, ei.value


def test_missing_trust_anchor_file(ns, tmp_path):
    with pytest.raises(MailsrvError) as ei:
        Context([ns], trust_anchor_file=tmp_path / "nope.ds")
    assert ei.value.status == Status.BAD_TRUST_ANCHOR
    assert ei.value.detail  # from the error buffer of mailsrv_ctx_new


def test_garbage_trust_anchor_file(ns, tmp_path):
    f = tmp_path / "garbage.ds"
    f.write_text("this is not a zone file\n")
    with pytest.raises(MailsrvError) as ei:
        Context([ns], trust_anchor_file=f)
    assert ei.value.status == Status.BAD_TRUST_ANCHOR


def test_single_nameserver_string_and_pathlike(ns, anchor):
    import pathlib

    with Context(ns, trust_anchor_file=pathlib.Path(anchor)) as c:
        assert c.discover("example.com", Service.IMAPS).services[0].found


def test_cancel_bad_ids(ctx):
    assert ctx.cancel(123456789) is False  # never issued
    with pytest.raises(MailsrvError):
        ctx.cancel(-1)
