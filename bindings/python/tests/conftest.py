"""Shared fixtures. The tests run against the project's testbed (testbed/up.sh: knotd, and
dovecot + postfix for the TLS tests), whose settings arrive in environment variables;
without them the whole run fails (a skipped suite must never look like a passed one).
Tests that need the mail servers fail, never skip, when the testbed runs without them.

    cd /work/main && bash testbed/run.sh python3 -m pytest -q bindings/python/tests
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest

HERE = Path(__file__).resolve().parent
BINDINGS = HERE.parent
REPO = BINDINGS.parent.parent
HEADER = REPO / "include" / "mailsrv.h"

# Test the package in this tree, whether or not some mailsrv is installed.
sys.path.insert(0, str(BINDINGS))

REQUIRED_ENV = {
    "MAILSRV_TEST_NS": "the testbed's DNS server, IP:PORT",
    "MAILSRV_TEST_ANCHOR": "the testbed's root trust anchor (DNSKEY) file",
    "MAILSRV_TEST_ANCHOR_DS": "the testbed's root trust anchor (DS) file",
    "MAILSRV_TEST_DEAD_NS": "an IP:PORT where no DNS server listens",
    "MAILSRV_TEST_CA": "the testbed's TLS trust anchor (PEM)",
    "MAILSRV_TEST_CERTS": "the testbed's certificate directory",
}
#: The mail servers' ports (testbed/README.md), by service label.
PORT_VARS = {
    "imap": "MAILSRV_TEST_IMAP_PORT",
    "imaps": "MAILSRV_TEST_IMAPS_PORT",
    "pop3": "MAILSRV_TEST_POP3_PORT",
    "pop3s": "MAILSRV_TEST_POP3S_PORT",
    "submission": "MAILSRV_TEST_SUBMISSION_PORT",
    "submissions": "MAILSRV_TEST_SUBMISSIONS_PORT",
}


def pytest_configure(config: pytest.Config) -> None:
    missing = [f"  {k}: {v}" for k, v in REQUIRED_ENV.items() if not os.environ.get(k)]
    if missing:
        raise pytest.UsageError(
            "the mailsrv Python tests need the DNS testbed, and these variables are unset:\n"
            + "\n".join(missing)
            + "\nRun them through the testbed, e.g.\n"
            "  bash testbed/run.sh python3 -m pytest -q bindings/python/tests\n"
            "or source DIR/testbed.env after testbed/up.sh DIR."
        )
    for var in ("MAILSRV_TEST_ANCHOR", "MAILSRV_TEST_ANCHOR_DS", "MAILSRV_TEST_CA"):
        if not Path(os.environ[var]).is_file():
            raise pytest.UsageError(f"{var}={os.environ[var]} is not a file: is the testbed up?")


@pytest.fixture(scope="session")
def ns() -> str:
    return os.environ["MAILSRV_TEST_NS"]


@pytest.fixture(scope="session")
def anchor() -> str:
    return os.environ["MAILSRV_TEST_ANCHOR"]


@pytest.fixture(scope="session")
def anchor_ds() -> str:
    return os.environ["MAILSRV_TEST_ANCHOR_DS"]


@pytest.fixture(scope="session")
def dead_ns() -> str:
    return os.environ["MAILSRV_TEST_DEAD_NS"]


@pytest.fixture
def silent_ns() -> Iterator[str]:
    """A UDP 'nameserver' that receives queries and never answers: requests to it stay in
    flight until their deadline (the dead nameserver, by contrast, may fail fast through
    ICMP port-unreachable)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


@pytest.fixture
def ctx(ns: str, anchor: str):
    """A thread-mode context on the testbed."""
    import mailsrv

    c = mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor, timeout_ms=10000)
    try:
        yield c
    finally:
        c.close()
        assert c.callback_errors == [], c.callback_errors


@pytest.fixture
def loop_ctx(ns: str, anchor: str):
    """A loop-mode context on the testbed."""
    import mailsrv

    c = mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor, timeout_ms=10000, dispatch=mailsrv.Dispatch.LOOP)
    try:
        yield c
    finally:
        c.close()
        assert c.callback_errors == [], c.callback_errors


# ------------------------------------------------------------------ TLS: certificates, mail servers


@pytest.fixture(scope="session")
def ca_file() -> str:
    return os.environ["MAILSRV_TEST_CA"]


@pytest.fixture(scope="session")
def certs_dir() -> Path:
    return Path(os.environ["MAILSRV_TEST_CERTS"])


@pytest.fixture(scope="session")
def mail() -> Dict[str, object]:
    """The mail servers: {"addr", "addr6", "imap", "imaps", ...: port}. Fails (not skips)
    when the testbed runs without them (TESTBED_PARTS=dns)."""
    if not os.environ.get("MAILSRV_TEST_MAIL_ADDR"):
        pytest.fail(
            "this test needs the testbed's mail servers (dovecot, postfix): MAILSRV_TEST_MAIL_ADDR "
            "is unset. Run the full testbed: testbed/run.sh make py-tests"
        )
    out: Dict[str, object] = {
        "addr": os.environ["MAILSRV_TEST_MAIL_ADDR"],
        "addr6": os.environ.get("MAILSRV_TEST_MAIL_ADDR6", ""),
    }
    for label, var in PORT_VARS.items():
        if not os.environ.get(var):
            pytest.fail(f"{var} is unset: is the testbed's environment complete?")
        out[label] = int(os.environ[var])
    return out


@pytest.fixture
def tls_ctx(ns: str, anchor: str, ca_file: str):
    """A thread-mode context on the testbed that trusts the test CA."""
    import mailsrv

    c = mailsrv.Context(nameservers=[ns], trust_anchor_file=anchor, ca_file=ca_file, timeout_ms=10000)
    try:
        yield c
    finally:
        c.close()
        assert c.callback_errors == [], c.callback_errors


@pytest.fixture
def tls_loop_ctx(ns: str, anchor: str, ca_file: str):
    """A loop-mode context on the testbed that trusts the test CA."""
    import mailsrv

    c = mailsrv.Context(
        nameservers=[ns], trust_anchor_file=anchor, ca_file=ca_file, timeout_ms=10000, dispatch=mailsrv.Dispatch.LOOP
    )
    try:
        yield c
    finally:
        c.close()
        assert c.callback_errors == [], c.callback_errors
