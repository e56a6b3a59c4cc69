"""Shared fixtures. The tests run against the project's DNS testbed (testbed/up.sh), whose
settings arrive in environment variables; without them the whole run fails (a skipped
suite must never look like a passed one).

    cd /work/main && bash testbed/run.sh python3 -m pytest -q bindings/python/tests
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Iterator

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
    for var in ("MAILSRV_TEST_ANCHOR", "MAILSRV_TEST_ANCHOR_DS"):
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
