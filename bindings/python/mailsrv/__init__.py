"""mailsrv: find a user's mail servers through DNS SRV (RFC 6186, RFC 8314), DNSSEC-validated;
check their certificates (DNS-ID, SRV-ID), connect to them over verified TLS, tell whether an
SRV answer is authentic, and decide about changed answers with an observation history.

Python bindings (ctypes) of libmailsrv. No compiled extension: the library is found at import
time (see :mod:`mailsrv._ffi` for the search order; ``MAILSRV_LIBRARY`` overrides it).

Blocking::

    import mailsrv
    with mailsrv.Context(nameservers=["127.0.10.1:5353"], trust_anchor_file="root.ds") as ctx:
        d = ctx.discover("joe@example.com")
        imap = d.preferred(mailsrv.Purpose.ACCESS)
        if imap:
            print(imap.service.label, imap.endpoints[0].target, imap.endpoints[0].port)

Certificates, connections, authenticity, history::

    m = ctx.check_cert(load_pem("chain.pem"), srv_ids=[("imaps", "example.com")])
    with ctx.connect("mail.example.net", 993, Security.IMPLICIT_TLS) as stream:   # a raw file
        stream.write(b"a1 CAPABILITY\r\n")
    a = ctx.verify_srv_authenticity("example.com", Service.IMAPS, "mail.example.net", 993)
    with History.open(path) as h:
        change = ctx.srv_change_check("example.com", Service.IMAPS, "old.example.net", 993, history=h)
        h.save()

Callbacks (``discover_async``, ``connect_async``, ...) run on a library thread
(``Dispatch.THREAD``, the default) or, in ``Dispatch.LOOP`` mode, inside
:meth:`Context.dispatch` on your thread once :meth:`Context.notify_fd` is readable.
:class:`AsyncContext` wires the latter into asyncio.

Results are plain, immutable Python objects copied out of the C result, which is freed at
once: nothing returned by this module points into library memory, except the handles that
own a resource: :class:`TlsStream` (a connection) and :class:`History` (close them).

Errors are :class:`MailsrvError` with a :class:`Status` and a detail text. Exceptions raised
by your callbacks never reach C: they are logged on the ``mailsrv`` logger and kept in
:attr:`Context.callback_errors`.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import contextlib
import ctypes
import io
import itertools
import logging
import operator
import os
import re
import socket
import sys
import threading
import weakref
from contextlib import contextmanager
from ctypes import byref, c_size_t, c_uint32, c_uint64, c_void_p
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import (
    Any,
    Callable,
    cast,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _ffi
from ._ffi import LibraryNotFound, lib

__version__ = "0.1.0"

__all__ = [
    "ALL_SERVICES",
    "Account",
    "AccountSetup",
    "AsyncContext",
    "Authenticity",
    "AutodiscoverAsk",
    "BadCertificate",
    "Binding",
    "Cancelled",
    "Candidate",
    "CertMatch",
    "CertificateError",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificatePurpose",
    "Change",
    "ConnectFailed",
    "ConnectionClosed",
    "Context",
    "ContextClosed",
    "Decision",
    "Discovery",
    "Dispatch",
    "DnsError",
    "Dnssec",
    "DnssecError",
    "Endpoint",
    "EndpointCheck",
    "CaMode",
    "Evidence",
    "FLAG_ACCEPT_SIBLING_SERVICE",
    "FLAG_KEEP_PROBE",
    "FLAG_LEGACY_CN",
    "FLAG_NAMES_ONLY",
    "FLAG_NO_PROBE",
    "FLAG_REQUIRE_SECURE",
    "FileError",
    "History",
    "HistoryCorrupt",
    "Identity",
    "InCallback",
    "InternalError",
    "InvalidArgument",
    "LibraryNotFound",
    "MailsrvError",
    "MatchKind",
    "NameConstraint",
    "NameMismatch",
    "NoTrustAnchors",
    "NotFound",
    "OAuth2",
    "OAuth2Field",
    "Origin",
    "PinMismatch",
    "PinMode",
    "PlainSocket",
    "ProtocolError",
    "Purpose",
    "Reason",
    "Security",
    "Service",
    "ServiceAnswer",
    "Source",
    "SourceReport",
    "SourceState",
    "SrvState",
    "Status",
    "Timeout",
    "TlsError",
    "TlsStream",
    "TlsTransport",
    "UnknownIssuer",
    "UnsupportedVersion",
    "Verdict",
    "WebService",
    "WebServices",
    "WouldBlock",
    "load_pem",
    "open_stream",
    "parse_pem",
    "spki_sha256",
    "status_str",
    "version",
]

_log = logging.getLogger("mailsrv")
_log.addHandler(logging.NullHandler())

# MAILSRV_FLAG_REQUIRE_SECURE: only DNSSEC-secure SRV answers count.
FLAG_REQUIRE_SECURE = 1
# MAILSRV_FLAG_LEGACY_CN: certificate checks accept a subject CN when there are no SANs.
FLAG_LEGACY_CN = 2
# MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE: an SRV-ID also matches the sibling service's SRV-ID.
FLAG_ACCEPT_SIBLING_SERVICE = 4
# MAILSRV_FLAG_NO_PROBE: authenticity checks never connect (``probe=False``).
FLAG_NO_PROBE = 8
# MAILSRV_FLAG_KEEP_PROBE: keep the verified probe connection (``keep_probe=True``).
FLAG_KEEP_PROBE = 16
# MAILSRV_FLAG_NAMES_ONLY: the caller's own TLS stack validated the path; check names only
# (``names_only=True`` of check_cert and verify_srv_authenticity_with_chains).
FLAG_NAMES_ONLY = 32

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1


# --------------------------------------------------------------------------- enums


class _OpenIntEnum(IntEnum):
    """An IntEnum that maps values it does not know (a newer library) to UNKNOWN_<n>.

    ``str()`` and ``format()`` give the :attr:`label` (``f"{Verdict.AUTHENTIC}"`` is
    ``"authentic"``, not ``"1"``); ``int()`` gives the C value.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member

    @property
    def label(self) -> str:
        """A short lower-case name for display and logs ("authentic", "starttls_imap")."""
        return str(self._name_).lower()

    def __str__(self) -> str:
        return self.label

    def __format__(self, spec: str) -> str:
        return format(self.label, spec)


class Status(_OpenIntEnum):
    """mailsrv_status: the outcome of every fallible call (numbers as in mailsrv.h)."""

    OK = 0
    NULL_ARG = 1
    INVALID_ARG = 2
    NO_MEMORY = 3
    PANIC = 4
    CANCELLED = 5
    TIMEOUT = 6
    SHUTDOWN = 7
    IN_CALLBACK = 8
    NOT_FOUND = 9
    RUNTIME = 10
    IO = 11
    CORRUPT = 12
    UNSUPPORTED_VERSION = 20
    NXDOMAIN = 100
    NO_RECORD = 101
    SERVFAIL = 102
    NO_SECURE_ANSWER = 103
    LOOKUP_FAILED = 104
    BOGUS = 200
    INDETERMINATE = 201
    BAD_TRUST_ANCHOR = 202
    CERT_EXPIRED = 300
    CERT_NOT_YET_VALID = 301
    UNKNOWN_ISSUER = 302
    NAME_MISMATCH = 303
    BAD_CERTIFICATE = 304
    CERT_PURPOSE = 305
    NAME_CONSTRAINT = 306
    NO_TRUST_ANCHORS = 307
    HANDSHAKE = 308
    DANE_MISMATCH = 320
    PIN_MISMATCH = 321
    CONNECT_FAILED = 400
    CONNECTION_CLOSED = 401
    PROTOCOL = 402
    WOULD_BLOCK = 403
    HTTP = 404
    BAD_CONFIG = 405
    DIGEST_MISMATCH = 406

    @property
    def text(self) -> str:
        """The library's human-readable text for this status (mailsrv_status_str)."""
        return status_str(self)

    @property
    def is_dns_error(self) -> bool:
        """True for the DNS and DNSSEC statuses (100-299)."""
        return bool(lib.mailsrv_status_is_dns_error(int(self)))

    @property
    def is_cert_error(self) -> bool:
        """True for the certificate and TLS statuses (300-399)."""
        return bool(lib.mailsrv_status_is_cert_error(int(self)))


class Service(IntFlag):
    """mailsrv_service: the six mail services; bits, so they combine into masks.

    ``Service(0)`` (the default everywhere) means all six. Every call that takes a service
    also takes its name: "imaps", "_imaps", b"imaps" (see :meth:`parse`). ``str()`` gives
    the name ("imaps"; "imaps|submissions" for a mask, "all" for 0).

    Members: IMAPS (``_imaps._tcp``, 993), IMAP (``_imap._tcp``, STARTTLS, 143), POP3S
    (995), POP3 (STLS, 110), SUBMISSIONS (465, RFC 8314), SUBMISSION (STARTTLS, 587).
    """

    IMAPS = 1
    IMAP = 2
    POP3S = 4
    POP3 = 8
    SUBMISSIONS = 16
    SUBMISSION = 32

    @property
    def label(self) -> str:
        """The name of one service ("imaps", ... as mailsrv_service_name); "" for a mask."""
        name = self._name_ if int(self) in _SERVICE_BITS else None
        return name.lower() if name else ""

    def __str__(self) -> str:
        if int(self) == 0:
            return "all"
        return "|".join(Service(b).label for b in _SERVICE_BITS if int(self) & b) or str(int(self))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    @classmethod
    def parse(cls, value: Union["Service", int, str, bytes], what: str = "service") -> "Service":
        """A :class:`Service` (or mask) from a member, an int, or a name: "imaps", "_imaps",
        "IMAPS", b"imaps"; several names may be joined with "|" or ",".

        :raises ValueError: (:class:`InvalidArgument`) an unknown name or bit.
        :raises TypeError: another type.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, (bytes, bytearray)):
            try:
                value = bytes(value).decode("ascii")
            except UnicodeDecodeError:
                raise _invalid(f"{what} {value!r} is not a service name") from None
        if isinstance(value, str):
            mask = 0
            for part in re.split(r"[|,]", value):
                key = part.strip().lstrip("_").upper()
                if key not in cls.__members__:
                    raise _invalid(
                        f"{what} {value!r} is not a mail service: use one of "
                        "imaps, imap, pop3s, pop3, submissions, submission"
                    )
                mask |= int(cls.__members__[key])
            return cls(mask)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{what} must be a mailsrv.Service, its name or an int, not {type(value).__name__}")
        if not 0 <= int(value) <= 63:
            raise _invalid(f"{what} {int(value)} has bits that are no mail service (valid: a mask of 1..32)")
        return cls(int(value))


_SERVICE_BITS = (1, 2, 4, 8, 16, 32)


# The empty mask, which the library reads as "all six services" (the default).
ALL_SERVICES = Service(0)


class SrvState(_OpenIntEnum):
    """mailsrv_srv_state: what the SRV query of one service found."""

    FOUND = 1
    NOT_OFFERED = 2
    NO_RECORD = 3
    LOOKUP_FAILED = 4
    BOGUS = 5



class Dnssec(_OpenIntEnum):
    """mailsrv_dnssec: the DNSSEC state of an RRset, validated inside the library.

    Members:
        UNAVAILABLE: The network path cannot carry DNSSEC (RFC 8027 roadblock): the answer
            was fetched without it and is used as unsigned (the certificate probe decides
            authenticity).
        HOSTS_FILE: Addresses only: they came from the hosts file, not from DNS (never
            secure; DANE does not apply to them).
    """

    UNKNOWN = 0
    SECURE = 1
    INSECURE = 2
    BOGUS = 3
    INDETERMINATE = 4
    UNAVAILABLE = 5
    HOSTS_FILE = 6



class Purpose(_OpenIntEnum):
    """mailsrv_purpose: what a service is for, to pick among competing services."""

    ACCESS = 1
    SUBMISSION = 2


class Dispatch(_OpenIntEnum):
    """mailsrv_dispatch: where callbacks run.

    Members:
        THREAD: On a library thread owned by the context (the default).
        LOOP: Inside :meth:`Context.dispatch` on your thread, after
            :meth:`Context.notify_fd` is readable.
    """

    THREAD = 0
    LOOP = 1


class MatchKind(_OpenIntEnum):
    """mailsrv_match_kind: how a certificate matched its reference identity."""

    DNS_ID = 1
    DNS_ID_WILDCARD = 2
    SRV_ID = 3
    SRV_ID_SIBLING = 4
    IP_ID = 5
    LEGACY_CN = 6


class Security(_OpenIntEnum):
    """mailsrv_security: how TLS starts on a connection.

    Members:
        IMPLICIT_TLS: TLS from the first byte (IMAPS 993, POP3S 995, submissions 465).
        STARTTLS_IMAP: IMAP STARTTLS (143).
        STARTTLS_POP3: POP3 STLS (110).
        STARTTLS_SMTP: SMTP STARTTLS (submission 587).
        IMPLICIT_TLS_IMAP: Implicit TLS to an IMAP server: ALPN ``imap`` offered, the
            greeting must be IMAP's.
        IMPLICIT_TLS_POP3: Implicit TLS to a POP3 server: ALPN ``pop3`` offered, the
            greeting must be POP3's.
        IMPLICIT_TLS_SMTP: Implicit TLS to an SMTP submission server: the greeting must
            be SMTP's.
    """

    IMPLICIT_TLS = 1
    STARTTLS_IMAP = 2
    STARTTLS_POP3 = 3
    STARTTLS_SMTP = 4
    IMPLICIT_TLS_IMAP = 5
    IMPLICIT_TLS_POP3 = 6
    IMPLICIT_TLS_SMTP = 7

    @classmethod
    def for_service(cls, service: "ServiceArg") -> "Security":
        """The way TLS starts for one mail service by default, as the library says
        (mailsrv_service_default_security): IMAPS -> IMPLICIT_TLS_IMAP, "imap" ->
        STARTTLS_IMAP, ..."""
        out = ctypes.c_int()
        _check(lib.mailsrv_service_default_security(_one_service(service), byref(out)))
        return cls(out.value)


class Source(_OpenIntEnum):
    """mailsrv_source: where an account configuration came from (bits for masks), in
    rank order: PACC, AUTOCONFIG, AUTOCONFIG_WELLKNOWN, SRV, ISPDB, MX_AUTOCONFIG, MX_ISPDB,
    AUTODISCOVER, AUTOCONFIG_HTTP, GUESS (docs/account-discovery.md). Every source but GUESS
    is asked by default.

    ``str()`` gives the :attr:`label` like every enum (``"mx_ispdb"``); :attr:`cli_name`
    is the CLI's spelling (``"mx-ispdb"``). :meth:`parse` reads either.

    Members:
        AUTOCONFIG: The mail domain's ``https://autoconfig.<domain>/`` document.
        AUTOCONFIG_WELLKNOWN: The mail domain's ``/.well-known/autoconfig/`` document.
        AUTOCONFIG_HTTP: The legacy plain-HTTP document (never AUTHENTIC by itself; a
            a change check leaves it out).
        ISPDB: The ISPDB's entry for the mail domain.
        MX_AUTOCONFIG: The autoconfig document of the provider named by the MX.
        MX_ISPDB: The ISPDB entry of the provider named by the MX.
        SRV: RFC 6186 / RFC 8314 SRV records.
        PACC: ``https://ua-auto-config.<domain>/.well-known/user-agent-configuration.json``,
            checked against the SHA-256 digests in the ``_ua-auto-config`` TXT records.
        AUTODISCOVER: Exchange Autodiscover (POX); see the ``autodiscover`` callback of
            :class:`Context`.
        GUESS: ``imap.``, ``mail.``, the bare domain; ``smtp.``, ``mail.``, each checked by
            connecting; only when asked (``guess=True``).
    """

    AUTOCONFIG = 1
    AUTOCONFIG_WELLKNOWN = 2
    AUTOCONFIG_HTTP = 4
    ISPDB = 8
    MX_AUTOCONFIG = 16
    MX_ISPDB = 32
    SRV = 64
    PACC = 128
    AUTODISCOVER = 256
    GUESS = 512

    @property
    def cli_name(self) -> str:
        """The CLI's and mailsrv_source_name()'s name: words joined by ``-``
        ("mx-autoconfig"); :meth:`parse` reads it back."""
        return self.label.replace("_", "-")

    @classmethod
    def parse(cls, value: Union["Source", int, str, bytes], what: str = "source") -> "Source":
        """One source from a Source, its C value or its name ("ispdb", "mx-autoconfig",
        "MX_AUTOCONFIG"). :raises InvalidArgument: anything else."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            key = value.strip().upper().replace("-", "_")
            if key not in cls.__members__:
                names = ", ".join(m.cli_name for m in _SOURCE_RANK)
                raise _invalid(f"{what} {value!r} is not an account source: use one of {names}")
            return cls.__members__[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{what} must be a mailsrv.Source, its name or an int, not {type(value).__name__}")
        if int(value) not in cls._value2member_map_:
            raise _invalid(f"{what} {int(value)} is not one account source (1, 2, 4, ..., 512)")
        return cls(int(value))


# The sources in rank order (docs/account-discovery.md, "Sources and their rank").
_SOURCE_RANK = (
    Source.PACC,
    Source.AUTOCONFIG,
    Source.AUTOCONFIG_WELLKNOWN,
    Source.SRV,
    Source.ISPDB,
    Source.MX_AUTOCONFIG,
    Source.MX_ISPDB,
    Source.AUTODISCOVER,
    Source.AUTOCONFIG_HTTP,
    Source.GUESS,
)


class WebService(_OpenIntEnum):
    """mailsrv_web_service: what an account's configuration passes through beyond mail
    servers (PACC)."""

    JMAP = 1
    CALDAV = 2
    CARDDAV = 3
    OAUTH_PUBLIC_ISSUER = 4


class AutodiscoverAsk(_OpenIntEnum):
    """mailsrv_autodiscover_ask: what Exchange Autodiscover asks the ``autodiscover``
    callback of :class:`Context`.

    Members:
        FOLLOW: May the request (it carries the address) go to this URL, outside the
            registrable domain of the address's domain? Return True to follow it.
        CREDENTIALS: This HTTPS URL answered 401: return ``(user, password)`` to send them
            there (HTTP Basic over TLS), or None.
    """

    FOLLOW = 1
    CREDENTIALS = 2


class SourceState(_OpenIntEnum):
    """mailsrv_source_state: what became of one source in an account discovery."""

    SKIPPED = 0
    FOUND = 1
    FAILED = 2
    CANCELLED = 3


class OAuth2Field(_OpenIntEnum):
    """mailsrv_oauth2_field: a field of the configuration's oAuth2 element."""

    ISSUER = 1
    SCOPE = 2
    AUTH_URL = 3
    TOKEN_URL = 4


class Verdict(_OpenIntEnum):
    """mailsrv_verdict: whether an SRV answer may be used without asking the user.

    Members:
        AUTHENTIC: Proven: the client may update the account.
        UNVERIFIED: Not proven: only the user may accept it, once it has persisted (see
            srv_change_check).
        REJECTED: Proven wrong (bogus DNSSEC, or signed records that do not hold the
            target).
    """

    AUTHENTIC = 1
    UNVERIFIED = 2
    REJECTED = 3


class Evidence(_OpenIntEnum):
    """mailsrv_evidence: what proved an AUTHENTIC verdict.

    Members:
        DNSSEC: The SRV RRset is DNSSEC-secure and holds the target.
        DANE: DNSSEC-secure SRV, addresses and TLSA records, and the server's
            certificate matches the TLSA records (RFC 7673; TLSA usages 2 and 3).
        PROBE_SRV_ID: The target, asked with SNI = the mail domain, proved the SRV-ID
            ``_service.domain``.
        PROBE_DNS_ID: The target, asked with SNI = the mail domain, proved the DNS-ID of
            the mail domain.
        HTTPS_DOMAIN: Account discovery: the mail domain's own document over HTTPS names it.
        ISPDB: Account discovery: the ISPDB's entry for the mail domain names it.
        PACC_DNSSEC: Account discovery: the mail domain's PACC document names it, and the
            document's SHA-256 digest is in the domain's DNSSEC-signed TXT record.
    """

    NONE = 0
    DNSSEC = 1
    DANE = 2
    PROBE_SRV_ID = 3
    PROBE_DNS_ID = 4
    HTTPS_DOMAIN = 5
    ISPDB = 6
    PACC_DNSSEC = 7


class Origin(_OpenIntEnum):
    """mailsrv_origin: where a saved configuration came from.

    Members:
        SRV: Set up from SRV records.
        USER: Typed by the user: never changed automatically.
        AUTOCONFIG: Set up from the mail domain's autoconfig document over HTTPS
            (:attr:`Source.AUTOCONFIG` or :attr:`Source.AUTOCONFIG_WELLKNOWN`).
        ISPDB: Set up from the ISPDB's entry for the mail domain (never updated without
            the user).
        MX: Set up from the provider named by the MX (:attr:`Source.MX_AUTOCONFIG` or
            :attr:`Source.MX_ISPDB`).
        AUTOCONFIG_HTTP: Set up from the legacy plain-HTTP document (never updated
            without the user).
        PACC: Set up from the mail domain's PACC document.
        AUTODISCOVER: Set up from Exchange Autodiscover.
        GUESS: Set up by guessing (a change check guesses again).
    """

    SRV = 1
    USER = 2
    AUTOCONFIG = 3
    ISPDB = 4
    MX = 5
    AUTOCONFIG_HTTP = 6
    PACC = 7
    AUTODISCOVER = 8
    GUESS = 9

    @classmethod
    def of_source(cls, source: Union["Source", int, str]) -> "Origin":
        """The origin to save with an account set up from ``source`` (the
        :attr:`Account.source` of :meth:`Context.discover_account`)."""
        return _ORIGIN_OF_SOURCE[Source.parse(source)]


_ORIGIN_OF_SOURCE = {
    Source.AUTOCONFIG: Origin.AUTOCONFIG,
    Source.AUTOCONFIG_WELLKNOWN: Origin.AUTOCONFIG,
    Source.AUTOCONFIG_HTTP: Origin.AUTOCONFIG_HTTP,
    Source.ISPDB: Origin.ISPDB,
    Source.MX_AUTOCONFIG: Origin.MX,
    Source.MX_ISPDB: Origin.MX,
    Source.SRV: Origin.SRV,
    Source.PACC: Origin.PACC,
    Source.AUTODISCOVER: Origin.AUTODISCOVER,
    Source.GUESS: Origin.GUESS,
}


class Decision(_OpenIntEnum):
    """mailsrv_decision: what a client may do about a saved service configuration.

    Members:
        NO_CHANGE: Keep it; nothing to tell the user.
        UPDATE: Switch to the new endpoint: it is authenticated.
        ASK_USER: Offer the change to the user (unverified, but seen consistently long
            enough).
        WAIT: Unverified and too new: check again after ``Change.wait_until``.
        REJECT: Do not use the new answer; keep the saved configuration and warn.
    """

    NO_CHANGE = 1
    UPDATE = 2
    ASK_USER = 3
    WAIT = 4
    REJECT = 5


class Reason(_OpenIntEnum):
    """mailsrv_reason: why a refresh decision is what it is (``Change.reason``).

    Members:
        UNCHANGED: NO_CHANGE: the saved server is still advertised (or named).
        USER_CONFIGURED: NO_CHANGE: the configuration was typed by the user.
        LOOKUP_FAILED: NO_CHANGE: the lookup failed; nothing is known, look again later.
        NOT_OFFERED: NO_CHANGE: the domain no longer offers the service.
        OTHER_SERVICE: NO_CHANGE: the fresh answer is for another service.
        NOT_JUDGED: NO_CHANGE: the new servers could not be judged.
        DECLINED: NO_CHANGE: the user declined this very answer (``History.decline``).
        AUTHENTICATED: UPDATE: the new server is authenticated.
        UNVERIFIED_NEW: WAIT: not verified and not seen for the minimum age yet.
        UNVERIFIED_PERSISTED: ASK_USER: not verified, seen consistently long enough.
        BOGUS: REJECT: the SRV answer failed DNSSEC validation.
        WRONG_TARGET: REJECT: the new server was proven not to be the domain's.
    """

    UNCHANGED = 1
    USER_CONFIGURED = 2
    LOOKUP_FAILED = 3
    NOT_OFFERED = 4
    OTHER_SERVICE = 5
    NOT_JUDGED = 6
    DECLINED = 7
    AUTHENTICATED = 8
    UNVERIFIED_NEW = 9
    UNVERIFIED_PERSISTED = 10
    BOGUS = 11
    WRONG_TARGET = 12


class PinMode(_OpenIntEnum):
    """mailsrv_pin_mode: what the pinned keys of a connection mean.

    Members:
        REQUIRE: On top of the usual check: it must pass and the key must be pinned.
        TRUST: Instead of it: a pinned key is accepted whatever its issuer, names and
            dates (a self-signed server the user accepted); others get the usual check.
    """

    REQUIRE = 0
    TRUST = 1


class CaMode(_OpenIntEnum):
    """mailsrv_ca_mode: whether the configured CAs replace the system store or join it.

    Members:
        REPLACE: Only the CA file and the in-memory CAs are trusted (the default).
        ADD: They are trusted in addition to the system store.
    """

    REPLACE = 0
    ADD = 1




# --------------------------------------------------------------------------- errors, helpers


def _text(b: Optional[bytes]) -> str:
    return b.decode("utf-8", "replace") if b else ""


def status_str(code: int) -> str:
    """The library's static text for a status code ("unknown status" for unknown codes)."""
    return _text(lib.mailsrv_status_str(int(code)))


def version() -> str:
    """The library's version string, naming its rustls and hickory-resolver versions too."""
    return _text(lib.mailsrv_version())


class MailsrvError(Exception):
    """A libmailsrv call failed. ``status`` is a :class:`Status`, ``detail`` the reason.

    ``MailsrvError(status, detail)`` builds the subclass for that status, and each subclass
    also derives from the built-in exception a Python program expects, so both styles work::

        except TimeoutError: ...                  # Timeout, status TIMEOUT
        except mailsrv.MailsrvError as e:
            if e.status == mailsrv.Status.TIMEOUT: ...

    ========================  ==========================================  =====================
    class                     statuses                                    also a
    ========================  ==========================================  =====================
    InvalidArgument           NULL_ARG, INVALID_ARG                       ValueError
    Timeout                   TIMEOUT                                     TimeoutError
    Cancelled                 CANCELLED                                   (asyncio: CancelledError is raised instead)
    ContextClosed             SHUTDOWN                                    RuntimeError
    InCallback                IN_CALLBACK                                 RuntimeError
    NotFound                  NOT_FOUND                                   LookupError
    InternalError             NO_MEMORY, PANIC, RUNTIME                   RuntimeError
    FileError                 IO                                          OSError
    HistoryCorrupt            CORRUPT                                     ValueError
    DnsError                  NXDOMAIN .. LOOKUP_FAILED (100-199)         OSError
    DnssecError               BOGUS, INDETERMINATE, BAD_TRUST_ANCHOR      (a DnsError)
    TlsError                  HANDSHAKE; base of the certificate errors   ConnectionError
    CertificateError          300-307 (each has its own subclass below)   TlsError, ValueError
    ConnectFailed             CONNECT_FAILED                              ConnectionRefusedError
    ConnectionClosed          CONNECTION_CLOSED                           ConnectionResetError
    ProtocolError             PROTOCOL                                    ConnectionError
    WouldBlock                WOULD_BLOCK                                 BlockingIOError
    ========================  ==========================================  =====================

    Certificate subclasses: CertificateExpired, CertificateNotYetValid, UnknownIssuer,
    NameMismatch, NameConstraint, BadCertificate, CertificatePurpose, NoTrustAnchors.
    OSError subclasses leave ``errno`` None: ``status`` is the library's code.
    """

    status: Status
    detail: str

    def __new__(cls, status: int, detail: str = "", *args: Any, **kwargs: Any) -> "MailsrvError":
        if cls is MailsrvError:
            cls = _ERROR_CLASS.get(int(status), MailsrvError)
        return super().__new__(cls)

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(int(status), detail)
        self.args = (int(status), detail)
        self.status = Status(status)
        self.detail = detail or ""

    def __str__(self) -> str:
        return f"{self.status.name}: {self.detail or self.status.text}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(Status.{self.status.name}, {self.detail!r})"

    def __reduce__(self) -> Any:
        return (type(self), (int(self.status), self.detail))


class InvalidArgument(MailsrvError, ValueError):
    """NULL_ARG, INVALID_ARG: an argument was wrong; the message says which and why."""


class Timeout(MailsrvError, TimeoutError):
    """TIMEOUT: the operation's deadline (``timeout_ms``) or the stream's timeout passed."""


class Cancelled(MailsrvError):
    """CANCELLED: the request was cancelled (:meth:`Context.cancel`). Awaiting coroutines
    raise :class:`asyncio.CancelledError` instead when their task is cancelled.
    """


class ContextClosed(MailsrvError, RuntimeError):
    """SHUTDOWN: the context (or history) is closed or closing."""


class InCallback(MailsrvError, RuntimeError):
    """IN_CALLBACK: a blocking call or dispatch() inside a mailsrv callback."""


class NotFound(MailsrvError, LookupError):
    """NOT_FOUND: the thing asked for does not exist."""


class InternalError(MailsrvError, RuntimeError):
    """NO_MEMORY, PANIC (a bug in mailsrv, caught), RUNTIME (threads could not start)."""


class FileError(MailsrvError, OSError):
    """IO: a file (CA file, trust anchors, history) could not be read or written."""


class DnsError(MailsrvError, OSError):
    """DNS statuses (100-199): NXDOMAIN, NO_RECORD, SERVFAIL, NO_SECURE_ANSWER, LOOKUP_FAILED."""


class DnssecError(DnsError):
    """DNSSEC statuses (200-299): BOGUS, INDETERMINATE, BAD_TRUST_ANCHOR."""


class TlsError(MailsrvError, ConnectionError):
    """HANDSHAKE (TLS failed for a reason other than the certificate); the base of
    :class:`CertificateError`.
    """


class CertificateError(TlsError, ValueError):
    """A certificate was refused (statuses 300-307); like :class:`ssl.SSLCertVerificationError`
    it is both a connection error and a ValueError. ``detail`` is the precise reason.
    """


class CertificateExpired(CertificateError):
    """CERT_EXPIRED: a certificate on the path has expired."""


class CertificateNotYetValid(CertificateError):
    """CERT_NOT_YET_VALID: a certificate on the path is not valid yet."""


class UnknownIssuer(CertificateError):
    """UNKNOWN_ISSUER: the chain does not lead to a trusted CA."""


class NameMismatch(CertificateError):
    """NAME_MISMATCH: a valid chain, but no identifier matches the reference identity."""


class NameConstraint(CertificateError):
    """NAME_CONSTRAINT: a CA's name constraints exclude the name."""


class BadCertificate(CertificateError):
    """BAD_CERTIFICATE: malformed, badly signed or otherwise unusable."""


class CertificatePurpose(CertificateError):
    """CERT_PURPOSE: not valid for TLS server authentication."""


class NoTrustAnchors(CertificateError):
    """NO_TRUST_ANCHORS: no trusted CA certificate could be loaded."""


class PinMismatch(CertificateError):
    """PIN_MISMATCH: the server's key is none of the pinned ones."""


class UnsupportedVersion(MailsrvError, ValueError):
    """UNSUPPORTED_VERSION: a history written by a newer mailsrv; it was left untouched."""


class ConnectFailed(MailsrvError, ConnectionRefusedError):
    """CONNECT_FAILED: no TCP connection could be made."""


class ConnectionClosed(MailsrvError, ConnectionResetError):
    """CONNECTION_CLOSED: the peer closed the connection unexpectedly (for TLS: without
    close_notify).
    """


class ProtocolError(MailsrvError, ConnectionError):
    """PROTOCOL: STARTTLS missing or refused, plaintext injection, garbage from the server."""


class WouldBlock(MailsrvError, BlockingIOError):
    """WOULD_BLOCK: a non-blocking stream cannot proceed now (the stream methods return None
    instead of raising it).
    """


def _check(status: int, detail: Union[bytes, str, None] = None) -> None:
    if status != Status.OK:
        if isinstance(detail, bytes):
            detail = _text(detail)
        raise MailsrvError(status, detail or status_str(status))


def _invalid(detail: str) -> MailsrvError:
    return MailsrvError(Status.INVALID_ARG, detail)


StrOrBytes = Union[str, bytes]
# A service: a :class:`Service`, its C value, or its name ("imaps", "_imaps", b"imaps").
ServiceArg = Union["Service", int, str, bytes]
PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def _c_text(value: object, what: str) -> bytes:
    """UTF-8 bytes for a `const char *` argument; refuses what C would silently truncate."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)  # passed as is: C rejects non-UTF-8 with INVALID_ARG
    elif isinstance(value, str):
        try:
            b = value.encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid(f"{what} is not valid Unicode (lone surrogate)") from None
    else:
        raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")
    if b"\0" in b:
        # C would see only the text before the NUL: never pass a different string on.
        raise _invalid(f"{what} contains a NUL character")
    return b


def _shown(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters, for error messages."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _one_service(value: object, what: str = "service") -> int:
    """The C value of exactly one service, from a Service, an int or a name."""
    svc = Service.parse(value, what)  # type: ignore[arg-type]
    if int(svc) not in _SERVICE_BITS:
        raise _invalid(
            f"{what} must be one mail service, not {str(svc)!r} "
            "(imaps, imap, pop3s, pop3, submissions or submission)"
        )
    return int(svc)


def _c_path(value: PathArg, what: str) -> bytes:
    return _c_text(os.fspath(value), what)


def _c_uint(value: object, what: str, maximum: int) -> int:
    """An unsigned C integer; ctypes would wrap a negative or too large value silently."""
    try:
        v = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None
    if not 0 <= v <= maximum:
        raise _invalid(f"{what} {v} is out of range (0..{maximum})")
    return v


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Endpoint:
    """One SRV target, in preference order, with its addresses.

    Attributes:
        target: The SRV target host name (A-label form).
        port, priority, weight, ttl: As in the SRV record.
        dnssec: The DNSSEC state of the SRV answer.
        addresses: IPv6 first, then IPv4, as text.
        address_dnssec: The weakest DNSSEC state over the target's AAAA and A answers.
        address_status: Why addresses are missing or incomplete; Status.OK otherwise.
        address_detail: The reason in words ("" when OK).
    """

    target: str
    port: int
    priority: int
    weight: int
    ttl: int
    dnssec: Dnssec
    addresses: Tuple[str, ...]
    address_dnssec: Dnssec
    address_status: Status
    address_detail: str


@dataclass(frozen=True)
class ServiceAnswer:
    """What the SRV query of one service found.

    Attributes:
        service: Which service (:class:`Service`).
        state: FOUND, NOT_OFFERED, NO_RECORD, LOOKUP_FAILED or BOGUS (:class:`SrvState`).
        status: Why the lookup failed (LOOKUP_FAILED, BOGUS); Status.OK otherwise.
        detail: The reason in words.
        dnssec: The DNSSEC state of the SRV RRset (validated inside the library).
        ttl: The SRV RRset's TTL in seconds.
        endpoints: The targets in RFC 2782 order (:class:`Endpoint`).
        diagnostics: Notes about the answer (duplicates dropped, ...).
    """

    service: Service
    state: SrvState
    status: Status
    detail: str
    dnssec: Dnssec
    ttl: int
    endpoints: Tuple[Endpoint, ...]
    diagnostics: Tuple[str, ...]

    @property
    def found(self) -> bool:
        return self.state == SrvState.FOUND


@dataclass(frozen=True)
class Discovery:
    """The result of a discovery: the domain (A-label form) and one answer per service.

    Attributes:
        domain: The mail domain, A-label form.
        services: In the order imaps, imap, pop3s, pop3, submissions, submission (those
            queried).
        preferred_access: The library's choice (mailsrv_discovery_preferred) for
            Purpose.ACCESS, or None.
        preferred_submission: The library's choice for Purpose.SUBMISSION, or None.
    """

    domain: str
    services: Tuple[ServiceAnswer, ...]
    preferred_access: Optional[Service]
    preferred_submission: Optional[Service]

    def find(self, service: ServiceArg) -> Optional[ServiceAnswer]:
        """The answer for one service, or None when it was not queried."""
        want = _one_service(service)
        for s in self.services:
            if s.service == want:
                return s
        return None

    def preferred(self, purpose: Union[Purpose, int]) -> Optional[ServiceAnswer]:
        """The service to configure for a purpose, as chosen by the library: among FOUND
        services the lowest SRV priority; on a tie implicit TLS first, then IMAP before POP3.
        None when no service fits."""
        p = Purpose(purpose)
        if p == Purpose.ACCESS:
            chosen = self.preferred_access
        elif p == Purpose.SUBMISSION:
            chosen = self.preferred_submission
        else:
            raise _invalid(f"unknown purpose {int(purpose)}")
        return None if chosen is None else self.find(chosen)


def _copy_endpoint(e: int) -> Endpoint:
    n = lib.mailsrv_endpoint_addresses_len(e)
    return Endpoint(
        target=_text(lib.mailsrv_endpoint_target(e)),
        port=lib.mailsrv_endpoint_port(e),
        priority=lib.mailsrv_endpoint_priority(e),
        weight=lib.mailsrv_endpoint_weight(e),
        ttl=lib.mailsrv_endpoint_ttl(e),
        dnssec=Dnssec(lib.mailsrv_endpoint_dnssec(e)),
        addresses=tuple(_text(lib.mailsrv_endpoint_address_get(e, i)) for i in range(n)),
        address_dnssec=Dnssec(lib.mailsrv_endpoint_address_dnssec(e)),
        address_status=Status(lib.mailsrv_endpoint_address_status(e)),
        address_detail=_text(lib.mailsrv_endpoint_address_detail(e)),
    )


def _copy_set(s: int) -> ServiceAnswer:
    n_end = lib.mailsrv_srv_set_endpoints_len(s)
    n_diag = lib.mailsrv_srv_set_diagnostics_len(s)
    endpoints = []
    for i in range(n_end):
        e = lib.mailsrv_srv_set_endpoint_get(s, i)
        if e:
            endpoints.append(_copy_endpoint(e))
    return ServiceAnswer(
        service=Service(lib.mailsrv_srv_set_service(s)),
        state=SrvState(lib.mailsrv_srv_set_state(s)),
        status=Status(lib.mailsrv_srv_set_status(s)),
        detail=_text(lib.mailsrv_srv_set_detail(s)),
        dnssec=Dnssec(lib.mailsrv_srv_set_dnssec(s)),
        ttl=lib.mailsrv_srv_set_ttl(s),
        endpoints=tuple(endpoints),
        diagnostics=tuple(_text(lib.mailsrv_srv_set_diagnostic_get(s, i)) for i in range(n_diag)),
    )


def _copy_discovery(d: int) -> Discovery:
    """Copies a mailsrv_discovery into Python objects. Does not free it."""
    sets = []
    for i in range(lib.mailsrv_discovery_services_len(d)):
        s = lib.mailsrv_discovery_service_get(d, i)
        if s:
            sets.append(_copy_set(s))

    def pick(purpose: Purpose) -> Optional[Service]:
        s = lib.mailsrv_discovery_preferred(d, int(purpose))
        return Service(lib.mailsrv_srv_set_service(s)) if s else None

    return Discovery(
        domain=_text(lib.mailsrv_discovery_domain(d)),
        services=tuple(sets),
        preferred_access=pick(Purpose.ACCESS),
        preferred_submission=pick(Purpose.SUBMISSION),
    )


def _take_discovery(d: Optional[int]) -> Discovery:
    """Copies and frees an owned mailsrv_discovery."""
    try:
        return _copy_discovery(d) if d else _raise_no_result()
    finally:
        lib.mailsrv_discovery_free(d)


def _raise_no_result() -> Discovery:
    raise MailsrvError(Status.PANIC, "the library reported OK without a result")


# --------------------------------------------------------------------------- owned handles


class _Guard:
    """Owns one C handle that several threads may call into.

    ``use()`` holds the handle for one call; ``close()`` frees it at once when no call is in
    progress, else the last call in progress frees it on its way out (never a use after
    free); ``close(interrupt)`` then also calls ``interrupt(handle)`` while it still holds
    the handle (a TLS stream's close, which wakes a blocked read). With ``serialize`` the
    calls also run one at a time (C objects that must be used from one thread at a time).
    """

    def __init__(
        self,
        handle: int,
        finish: Callable[[int], None],
        closed_error: Callable[[], BaseException],
        serialize: bool = False,
    ) -> None:
        self._handle: Optional[int] = handle
        self._finish = finish
        self._closed_error = closed_error
        self._serial = threading.Lock() if serialize else None
        self._cond = threading.Lock()
        self._users = 0
        self._closing = False

    @property
    def closing(self) -> bool:
        return self._closing

    @contextmanager
    def use(self) -> Iterator[int]:
        with self._cond:
            if self._closing or self._handle is None:
                raise self._closed_error()
            self._users += 1
            handle = self._handle
        try:
            if self._serial is None:
                yield handle
            else:
                with self._serial:
                    yield handle
        finally:
            self._release()

    def _release(self) -> None:
        handle_to_free: Optional[int] = None
        with self._cond:
            self._users -= 1
            if self._closing and self._users == 0:
                handle_to_free, self._handle = self._handle, None
        if handle_to_free is not None:
            self._finish(handle_to_free)

    def close(self, interrupt: Optional[Callable[[int], Any]] = None) -> None:
        """Idempotent. Frees now, or after the calls in progress (see the class)."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            busy = self._users > 0 and self._handle is not None
            if busy:
                self._users += 1  # hold the handle for `interrupt`
                handle = self._handle
            else:
                handle, self._handle = self._handle, None
        if busy:
            try:
                if interrupt is not None and handle is not None:
                    interrupt(handle)
            finally:
                self._release()
        elif handle is not None:
            self._finish(handle)


def _borrowed_bytes(data: c_void_p, size: c_size_t) -> bytes:
    return ctypes.string_at(data.value, size.value) if data.value and size.value else b""


def _match_flags(legacy_cn: bool, accept_sibling: bool) -> int:
    return (FLAG_LEGACY_CN if legacy_cn else 0) | (FLAG_ACCEPT_SIBLING_SERVICE if accept_sibling else 0)


# --------------------------------------------------------------------------- identities, certificates

_SRV_ID_SERVICES = ("imap", "imaps", "pop3", "pop3s", "submission", "submissions")
# One reference identifier: ("dns", name), ("srv", service, domain) or ("ip", address).
RefId = Tuple[Union[str, bytes], ...]


def _add_ref(handle: int, ref: RefId) -> None:
    """Adds one reference identifier to a C identity; MailsrvError(INVALID_ARG) with a reason."""
    kind = ref[0] if ref else None
    if kind == "dns" and len(ref) == 2:
        status = lib.mailsrv_identity_add_dns_id(handle, _c_text(ref[1], "DNS-ID"))
        why = f"bad DNS-ID {ref[1]!r}: not a host or domain name (IP addresses go in ips / Identity.ip)"
    elif kind == "srv" and len(ref) == 3:
        status = lib.mailsrv_identity_add_srv_id(
            handle, _c_text(ref[1], "SRV-ID service"), _c_text(ref[2], "SRV-ID domain")
        )
        why = (
            f"bad SRV-ID ({ref[1]!r}, {ref[2]!r}): the service must be one of "
            f"{', '.join(_SRV_ID_SERVICES)} and the domain a mail domain"
        )
    elif kind == "ip" and len(ref) == 2:
        status = lib.mailsrv_identity_add_ip(handle, _c_text(ref[1], "IP-ID"))
        why = f"bad IP-ID {ref[1]!r}: not an IPv4 or IPv6 address"
    else:
        raise _invalid(f"malformed reference identifier {ref!r}")
    if status == Status.INVALID_ARG:
        raise _invalid(why)
    _check(status)


def _new_identity(refs: Sequence[RefId]) -> int:
    """An owned mailsrv_identity holding `refs` (free with mailsrv_identity_free)."""
    out = c_void_p()
    _check(lib.mailsrv_identity_new(byref(out)), "mailsrv_identity_new")
    handle = out.value
    if not handle:
        raise MailsrvError(Status.PANIC, "mailsrv_identity_new returned no identity")
    try:
        for ref in refs:
            _add_ref(handle, ref)
        if lib.mailsrv_identity_len(handle) != len(refs):
            raise MailsrvError(Status.PANIC, "the identity does not hold every reference identifier")
    except BaseException:
        lib.mailsrv_identity_free(handle)
        raise
    return handle


@contextmanager
def _c_identity(identity: Optional["Identity"]) -> Iterator[Optional[int]]:
    """A C identity for the duration of one call (the library copies what it needs)."""
    if identity is None:
        yield None
        return
    handle = _new_identity(identity.refs)
    try:
        yield handle
    finally:
        lib.mailsrv_identity_free(handle)


@contextmanager
def _c_connect_opts(
    host: bytes,
    port: int,
    security: int,
    sni: Optional[bytes],
    identity: Optional[int],
    flags: int,
    addresses: Sequence[StrOrBytes],
    extras: Optional["ConnectExtras"] = None,
) -> Iterator[int]:
    """C connect options (mailsrv_connect_opts) for one call (the library copies them)."""
    opts = c_void_p()
    _check(lib.mailsrv_connect_opts_new(host, port, security, byref(opts)), "bad host, port or security")
    try:
        if sni is not None:
            _check(lib.mailsrv_connect_opts_set_sni(opts, sni), "bad sni")
        if identity is not None:
            _check(lib.mailsrv_connect_opts_set_identity(opts, identity), "mailsrv_connect_opts_set_identity")
        _check(lib.mailsrv_connect_opts_set_flags(opts, flags), "bad flags")
        for a in addresses:
            buf = _ffi.errbuf()
            _check(lib.mailsrv_connect_opts_add_address(opts, _c_text(a, "address"), buf, len(buf)), buf.value)
        assert opts.value is not None  # OK from _new means a handle
        if extras is not None:
            extras.apply(opts.value)
        yield opts.value
    finally:
        lib.mailsrv_connect_opts_free(opts)


def _pem_list(value: Union[None, bytes, str, Sequence[Union[bytes, str]]]) -> List[bytes]:
    """PEM (or DER) blobs: one, several, or none."""
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray, str)):
        value = [value]
    out = []
    for v in value:
        b = v.encode() if isinstance(v, str) else bytes(v)
        if not b:
            raise _invalid("an empty CA certificate blob")
        out.append(b)
    return out


def _bytes_arg(data: Union[bytes, bytearray, memoryview]) -> Tuple["ctypes.Array[ctypes.c_char]", int]:
    raw = bytes(data)
    return (ctypes.c_char * max(len(raw), 1)).from_buffer_copy(raw or b"\0"), len(raw)


@dataclass(frozen=True)
class ConnectExtras:
    """The bring-your-own-TLS options of one connection (see :meth:`Context.connect`)."""

    fd: Optional[int] = None
    pins: Sequence[bytes] = ()
    pin_mode: Union[PinMode, int] = PinMode.REQUIRE
    ca_pem: Union[None, bytes, str, Sequence[Union[bytes, str]]] = None
    client_cert: Optional[Tuple[Union[bytes, str], Union[bytes, str]]] = None

    def any(self) -> bool:
        return self.fd is not None or bool(self.pins) or self.ca_pem is not None or self.client_cert is not None

    def apply(self, opts: int) -> None:
        if self.fd is not None:
            _check(lib.mailsrv_connect_opts_set_fd(opts, int(self.fd)), f"bad descriptor {self.fd!r}")
        for pin in self.pins:
            arr, n = _bytes_arg(pin)
            _check(lib.mailsrv_connect_opts_add_pin_sha256(opts, ctypes.addressof(arr), n), "a pin is 32 bytes (SHA-256)")
        _check(lib.mailsrv_connect_opts_set_pin_mode(opts, _c_uint(self.pin_mode, "pin_mode", _U32_MAX)), "bad pin mode")
        for pem in _pem_list(self.ca_pem):
            arr, n = _bytes_arg(pem)
            buf = _ffi.errbuf()
            _check(lib.mailsrv_connect_opts_add_ca_pem(opts, ctypes.addressof(arr), n, buf, len(buf)), buf.value)
        if self.client_cert is not None:
            cert, key = (_pem_list(x)[0] for x in self.client_cert)
            carr, cn = _bytes_arg(cert)
            karr, kn = _bytes_arg(key)
            buf = _ffi.errbuf()
            _check(
                lib.mailsrv_connect_opts_set_client_cert(
                    opts, ctypes.addressof(carr), cn, ctypes.addressof(karr), kn, buf, len(buf)
                ),
                buf.value,
            )


def spki_sha256(der: bytes) -> bytes:
    """The SHA-256 of a certificate's SubjectPublicKeyInfo: the pin of ``Context.connect``."""
    arr, n = _bytes_arg(der)
    out = (ctypes.c_char * 32)()
    _check(lib.mailsrv_cert_spki_sha256(ctypes.addressof(arr), n, ctypes.addressof(out)), "not a DER certificate")
    return bytes(out)


@dataclass
class PlainSocket:
    """A plain connection at the STARTTLS go-ahead (:meth:`Context.starttls_plain`): your
    own TLS stack makes the handshake on ``sock`` (``ssl.SSLContext.wrap_socket``).

    Attributes:
        sock: The connected socket (yours to close); the next byte on it is your ClientHello.
        greeting: The server's greeting before TLS (unauthenticated: display only).
        peer_address: The server's address.
    """

    sock: socket.socket
    greeting: str
    peer_address: str


def _text_arg(value: object, what: str) -> Union[str, bytes]:
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Identity:
    """The reference identity a server certificate must prove (RFC 9525): DNS-IDs, SRV-IDs
    (RFC 4985) and IP-IDs; any one match is enough.

    An immutable value; the builder methods return a new Identity and check the identifier
    at once (MailsrvError(INVALID_ARG) with the reason)::

        ident = Identity().srv_id("imaps", "example.com").dns_id("example.com")
        ident = Identity.of(dns_ids=["mail.example.net"], srv_ids=[("imaps", "example.com")])

    DNS-IDs: IDNs become A-labels, case is folded, one trailing dot is dropped, a ``*.`` in
    the certificate matches one left-most label. SRV-IDs match only the SRVName
    ``_service.domain`` of the same service (the sibling service with ``accept_sibling``),
    never a dNSName. IP-IDs match only iPAddress SANs.
    """

    refs: Tuple[RefId, ...] = ()

    def __post_init__(self) -> None:
        refs = tuple(tuple(r) for r in self.refs)
        object.__setattr__(self, "refs", refs)
        if refs:
            lib.mailsrv_identity_free(_new_identity(refs))  # checks every identifier

    @classmethod
    def of(
        cls,
        dns_ids: Sequence[StrOrBytes] = (),
        srv_ids: Sequence[Tuple[Union["Service", str, bytes], StrOrBytes]] = (),
        ips: Sequence[Union[str, bytes, Any]] = (),
    ) -> "Identity":
        """An identity from lists: ``srv_ids`` holds (service, domain) pairs."""
        ident = cls()
        if isinstance(dns_ids, (str, bytes)):
            dns_ids = [dns_ids]
        if isinstance(ips, (str, bytes)):
            ips = [ips]
        for name in dns_ids:
            ident = ident.dns_id(name)
        for pair in srv_ids:
            if isinstance(pair, (str, bytes)) or len(pair) != 2:
                raise TypeError(f"srv_ids holds (service, domain) pairs, not {pair!r}")
            ident = ident.srv_id(pair[0], pair[1])
        for ip in ips:
            ident = ident.ip(ip)
        return ident

    def dns_id(self, name: StrOrBytes) -> "Identity":
        """Adds a DNS-ID (a host or domain name, IDN allowed; no IP literal)."""
        ref: RefId = ("dns", _text_arg(name, "DNS-ID"))
        return Identity(self.refs + (ref,))

    def srv_id(self, service: Union["Service", str, bytes], domain: StrOrBytes) -> "Identity":
        """Adds an SRV-ID: ``service`` is a :class:`Service` or one of "imap", "imaps",
        "pop3", "pop3s", "submission", "submissions" (a leading "_" is allowed), ``domain``
        the mail domain."""
        if isinstance(service, Service):
            label = service.label
            if not label:
                raise _invalid(f"{service!r} is not one mail service")
            service = label
        ref: RefId = ("srv", _text_arg(service, "SRV-ID service"), _text_arg(domain, "SRV-ID domain"))
        return Identity(self.refs + (ref,))

    def ip(self, address: Union[str, bytes, Any]) -> "Identity":
        """Adds an IP-ID: "192.0.2.1", "2001:db8::1", "[2001:db8::1]" or an
        :mod:`ipaddress` object."""
        if not isinstance(address, (str, bytes, bytearray, memoryview)):
            address = str(address)  # ipaddress.IPv4Address / IPv6Address
        ref: RefId = ("ip", _text_arg(address, "IP-ID"))
        return Identity(self.refs + (ref,))

    def __add__(self, other: "Identity") -> "Identity":
        if not isinstance(other, Identity):
            return NotImplemented
        return Identity(self.refs + other.refs)

    def __len__(self) -> int:
        return len(self.refs)

    def __bool__(self) -> bool:
        return bool(self.refs)


def _merge_identity(
    identity: Optional[Identity],
    dns_ids: Sequence[StrOrBytes],
    srv_ids: Sequence[Tuple[Union["Service", str, bytes], StrOrBytes]],
    ips: Sequence[Union[str, bytes, Any]],
) -> Identity:
    if identity is not None and not isinstance(identity, Identity):
        raise TypeError(f"identity must be a mailsrv.Identity, not {type(identity).__name__}")
    extra = Identity.of(dns_ids, srv_ids, ips)
    return extra if identity is None else identity + extra


@dataclass(frozen=True)
class CertMatch:
    """A certificate chain that passed :meth:`Context.check_cert`.

    Attributes:
        matched: The reference identifier that matched, as text: "SRV-ID
            _imaps.example.com", "DNS-ID mail.example.net via DNS-ID *.example.net",
            "IP-ID 192.0.2.1".
        path_len: The validated path: the leaf and the intermediates used (not the trust
            anchor).
    """

    matched: str
    kind: MatchKind
    path_len: int


_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*?\n(.*?)-----END CERTIFICATE-----",
    re.S,
)


def parse_pem(data: Union[str, bytes]) -> List[bytes]:
    """The DER bytes of every ``CERTIFICATE`` block in PEM text, in order (other blocks, such
    as private keys, are skipped). Pure Python (base64).

    :raises ValueError: an unterminated certificate block or bad base64 in one.
    """
    raw = data.encode("ascii", "strict") if isinstance(data, str) else bytes(data)
    out: List[bytes] = []
    for m in _PEM_CERT.finditer(raw):
        body = b"".join(m.group(1).split())
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"PEM certificate block {len(out) + 1}: bad base64 ({e})") from None
        if not der:
            raise ValueError(f"PEM certificate block {len(out) + 1} is empty")
        out.append(der)
    if raw.count(b"-----BEGIN CERTIFICATE-----") != len(out):
        raise ValueError("unterminated PEM certificate block")
    return out


def load_pem(path: PathArg) -> List[bytes]:
    """The certificates of a PEM file as a list of DER bytes, in file order (leaf first for a
    server's chain file). See :func:`parse_pem`.

    :raises OSError: the file cannot be read. ValueError: malformed PEM.
    """
    with open(path, "rb") as f:
        return parse_pem(f.read())


def _der_list(chain: Union[bytes, Sequence[bytes]]) -> List[bytes]:
    if isinstance(chain, (bytes, bytearray, memoryview)):
        return [bytes(chain)]
    certs = []
    for i, c in enumerate(chain):
        if not isinstance(c, (bytes, bytearray, memoryview)):
            raise TypeError(f"certificate {i} must be DER bytes, not {type(c).__name__} (use load_pem for PEM)")
        certs.append(bytes(c))
    return certs


# --------------------------------------------------------------------------- TLS streams

_PRIVATE = object()


class TlsStream(io.RawIOBase):
    """A verified TLS connection to a mail server (from :meth:`Context.connect` or a kept
    authenticity probe), as a raw binary file: ``read``, ``readinto``, ``write``,
    ``fileno``, ``close``, ``with``. Wrap it in :class:`io.BufferedReader` (or
    ``io.BufferedRWPair(s, s)``) for ``readline``.

    The greeting and the capabilities announced over TLS were read by the library already;
    the first read returns what the server sends next. The connection information
    (``tls_version``, ``peer_chain``, ...) is copied when the stream is made and stays
    readable after ``close()``. A stream does not depend on its context: it stays usable
    after the context is closed.

    Errors: reads and writes raise :class:`MailsrvError` (CONNECTION_CLOSED for a TCP close
    without TLS close_notify, TIMEOUT after ``set_timeout_ms`` in blocking mode, PROTOCOL,
    ...); ``read`` returns ``b""`` (``readinto`` 0) when the server closed cleanly with
    close_notify. Operations on a closed stream raise ValueError, like any closed file.

    Non-blocking mode (``set_nonblocking(True)``): ``readinto``/``read`` return None and
    ``write`` returns None when nothing can be done now (the :class:`io.RawIOBase`
    convention); ``write`` may take fewer bytes than given.

    **Poll rule.** Decrypted data can wait inside the stream while the socket is not
    readable, so an unreadable ``fileno()`` does not mean "no data": read until ``read``
    returns None (or check ``has_buffered_data()``) before you poll for readability. Poll for
    writability while ``wants_write()`` is true and call ``flush_tls()`` then. Never read,
    write or close the descriptor yourself.

    Threads: full duplex, like :class:`ssl.SSLSocket`: one thread may block in ``read``
    while another writes (IMAP IDLE on a reader thread, ``DONE`` written from another); a
    blocking read never holds up a write. ``close()`` from another thread sends close_notify
    at once and wakes a blocked ``read``, which then returns ``b""`` (end of stream, as after
    ``socket.shutdown``); the stream is freed when the last call in progress returns.

    asyncio: :meth:`AsyncContext.open_connection` (or :func:`open_stream` for a stream you
    have, such as a kept probe) gives an ``asyncio.StreamReader``/``StreamWriter`` pair.
    """

    def __init__(self, _handle: int, _key: object = None) -> None:
        if _key is not _PRIVATE:
            raise TypeError("TlsStream objects come from Context.connect() or a kept authenticity probe")
        super().__init__()
        h = _handle
        self._tls_version = _text(lib.mailsrv_tls_stream_tls_version(h))
        self._cipher = _text(lib.mailsrv_tls_stream_cipher(h))
        sni = lib.mailsrv_tls_stream_sni(h)
        self._sni: Optional[str] = None if sni is None else _text(sni)
        self._host = _text(lib.mailsrv_tls_stream_host(h))
        self._peer = _text(lib.mailsrv_tls_stream_peer_address(h))
        self._matched = _text(lib.mailsrv_tls_stream_matched_identity(h))
        self._greeting = _text(lib.mailsrv_tls_stream_greeting(h))
        n = lib.mailsrv_tls_stream_capabilities_len(h)
        self._capabilities = tuple(_text(lib.mailsrv_tls_stream_capability_get(h, i)) for i in range(n))
        chain = []
        for i in range(lib.mailsrv_tls_stream_peer_chain_len(h)):
            data, size = c_void_p(), c_size_t()
            if lib.mailsrv_tls_stream_peer_cert_get(h, i, byref(data), byref(size)) == Status.OK:
                chain.append(_borrowed_bytes(data, size))
        self._chain = tuple(chain)
        self._fd = int(lib.mailsrv_tls_stream_fd(h))
        self._nonblocking = False
        self._close_status = Status.OK
        self._guard = _Guard(h, self._finish, self._closed_error)

    @classmethod
    def _wrap(cls, handle: Optional[int]) -> "TlsStream":
        """Takes ownership of a mailsrv_tls_stream (freed here if wrapping fails)."""
        if not handle:
            raise MailsrvError(Status.PANIC, "the library reported OK without a stream")
        try:
            return cls(handle, _PRIVATE)
        except BaseException:
            lib.mailsrv_tls_stream_free(handle)
            raise

    @staticmethod
    def _closed_error() -> BaseException:
        return ValueError("I/O operation on a closed TlsStream")

    def _finish(self, handle: int) -> None:
        try:
            self._close_status = Status(lib.mailsrv_tls_stream_close(handle))  # close_notify
        finally:
            lib.mailsrv_tls_stream_free(handle)

    # ---- connection information (copied at creation; readable after close)

    @property
    def tls_version(self) -> str:
        """"TLSv1.3" or "TLSv1.2"."""
        return self._tls_version

    @property
    def cipher(self) -> str:
        """The negotiated cipher suite, e.g. "TLS13_AES_256_GCM_SHA384"."""
        return self._cipher

    @property
    def sni(self) -> Optional[str]:
        """The SNI that was sent; None when none was (an IP literal host)."""
        return self._sni

    @property
    def host(self) -> str:
        """The host asked for, normalised (A-labels; the address text for an IP literal)."""
        return self._host

    @property
    def peer_address(self) -> str:
        """The address that won the Happy Eyeballs race, e.g. "[::1]:993"."""
        return self._peer

    @property
    def matched_identity(self) -> str:
        """What the certificate proved, e.g. "DNS-ID mail.example.net", "SRV-ID _imaps.example.com"."""
        return self._matched

    @property
    def greeting(self) -> str:
        """The server's greeting ("* OK ...", "+OK ...", "220 ..."). With STARTTLS this is
        the greeting sent before TLS (unauthenticated; for display only)."""
        return self._greeting

    @property
    def capabilities(self) -> Tuple[str, ...]:
        """The capabilities announced over TLS (IMAP CAPABILITY, POP3 CAPA, SMTP EHLO)."""
        return self._capabilities

    @property
    def peer_chain(self) -> List[bytes]:
        """The certificates the server sent, DER, leaf first (a fresh list)."""
        return list(self._chain)

    @property
    def nonblocking(self) -> bool:
        return self._nonblocking

    @property
    def close_status(self) -> Status:
        """How sending close_notify went when the stream was closed (OK before then)."""
        return self._close_status

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("non-blocking" if self._nonblocking else "open")
        sni = f" sni={self._sni}" if self._sni else ""
        return f"<mailsrv.TlsStream {self._host} at {self._peer}{sni} {self._tls_version} {state}>"

    # ---- io.RawIOBase

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        """The socket descriptor, for select/poll only (see the poll rule in the class doc)."""
        if self._guard.closing:
            raise self._closed_error()
        return self._fd

    def _io_result(self, status: int, n: int) -> Optional[int]:
        if status == Status.OK:
            return n
        if status == Status.WOULD_BLOCK:
            return None
        if status == Status.CONNECTION_CLOSED and self._guard.closing:
            return 0  # closed by close() from another thread: end of stream
        if status == Status.TIMEOUT:
            raise MailsrvError(status, "nothing could be done within the stream's timeout (set_timeout_ms)")
        _check(status)
        return None  # pragma: no cover

    def readinto(self, buffer: Any) -> Optional[int]:
        """Reads decrypted data into a writable buffer. Returns the number of bytes, 0 when
        the server closed cleanly (close_notify), None in non-blocking mode when nothing is
        available."""
        with memoryview(buffer) as view:
            mv = view if (view.format == "B" and view.ndim == 1) else view.cast("B")
            try:
                size = mv.nbytes
                if size == 0:
                    with self._guard.use():
                        return 0
                arr = (ctypes.c_char * size).from_buffer(mv)
                got = c_size_t()
                try:
                    with self._guard.use() as h:
                        status = lib.mailsrv_tls_stream_read(h, ctypes.addressof(arr), size, byref(got))
                finally:
                    del arr  # the export of `mv` ends here
            finally:
                if mv is not view:
                    mv.release()
        return self._io_result(status, got.value)

    def write(self, data: Any) -> Optional[int]:
        """Encrypts and sends ``data``. Blocking mode: all of it (returns its length) or an
        error. Non-blocking mode: returns how much was taken (possibly less), or None when
        nothing could be taken; then poll for writability and call :meth:`flush_tls`."""
        with memoryview(data) as view:
            mv = view if (view.format == "B" and view.ndim == 1) else view.cast("B")
            try:
                size = mv.nbytes
                if size == 0:
                    with self._guard.use():
                        return 0
                arr = (
                    (ctypes.c_char * size).from_buffer_copy(mv)
                    if mv.readonly
                    else (ctypes.c_char * size).from_buffer(mv)
                )
                got = c_size_t()
                try:
                    with self._guard.use() as h:
                        status = lib.mailsrv_tls_stream_write(h, ctypes.addressof(arr), size, byref(got))
                finally:
                    del arr
            finally:
                if mv is not view:
                    mv.release()
        return self._io_result(status, got.value)

    def close(self) -> None:
        """Sends TLS close_notify (RFC 8314 §3.4), shuts the connection down and frees it.
        Idempotent; never raises for a failed close_notify (see :attr:`close_status`)."""
        if self.closed:
            return
        try:
            super().close()
        finally:
            guard = getattr(self, "_guard", None)
            if guard is not None:
                # A read or write in progress on another thread: send close_notify and shut
                # the socket down now, which ends its wait; that call frees the stream.
                guard.close(interrupt=lib.mailsrv_tls_stream_close)

    # ---- mailsrv specifics

    def set_nonblocking(self, on: bool = True) -> None:
        """Switches between blocking (the default) and non-blocking mode."""
        with self._guard.use() as h:
            status = lib.mailsrv_tls_stream_set_nonblocking(h, bool(on))
        _check(status)
        self._nonblocking = bool(on)

    def set_timeout_ms(self, ms: int) -> None:
        """Blocking mode: the longest one read or write waits (0 = no limit, e.g. for IMAP
        IDLE). The default is the context's timeout."""
        v = _c_uint(ms, "timeout_ms", _U32_MAX)
        with self._guard.use() as h:
            status = lib.mailsrv_tls_stream_set_timeout_ms(h, v)
        _check(status)

    def has_buffered_data(self) -> bool:
        """True when a read can return data without waiting for the socket."""
        with self._guard.use() as h:
            return bool(lib.mailsrv_tls_stream_has_buffered_data(h))

    def wants_write(self) -> bool:
        """True while encrypted data waits to be sent (non-blocking mode: poll for
        writability, then :meth:`flush_tls`)."""
        with self._guard.use() as h:
            return bool(lib.mailsrv_tls_stream_wants_write(h))

    def flush_tls(self) -> bool:
        """Sends queued TLS records (non-blocking mode). True when nothing is left, False
        when the socket would block."""
        with self._guard.use() as h:
            status = lib.mailsrv_tls_stream_flush(h)
        if status == Status.WOULD_BLOCK:
            return False
        _check(status)
        return True


# --------------------------------------------------------------------------- the binding


@dataclass(frozen=True)
class Binding:
    """How every connection that carries the user's credentials to one server must be made
    (docs/SECURITY.md, "The binding"): the host and port, the security mode, the TLS server
    name, the reference identity the certificate must prove, and whether DNSSEC-signed TLSA
    records are enforced. When a verdict rests on the TLS probe and the server lies outside
    the mail domain, ``sni`` is the mail domain: only that session reaches the provider the
    probe proved, so an SNI relay can never read the login.

    Store :attr:`text` with the account, read it back with :meth:`from_text`, and connect
    with :meth:`Context.connect_binding`.

    Attributes:
        service: The service, which fixes the protocol.
        host: The host to connect to.
        port: The port.
        security: How TLS starts (IMPLICIT_TLS_IMAP/_POP3/_SMTP or a STARTTLS mode).
        sni: The TLS server name sent; None when none is sent.
        identity: The reference identity as text ("SRV-ID _imaps.example.com", several
            joined by ", ").
        dane: TLSA records are looked up and enforced on every connection (DANE).
        text: The one-line form an account stores (``mailsrv-binding-1 service=imaps
            ...``).
    """

    service: Service
    host: str
    port: int
    security: Security
    sni: Optional[str]
    identity: str
    dane: bool
    text: str

    @classmethod
    def from_text(cls, text: StrOrBytes) -> "Binding":
        """Reads a stored binding back, checking every field.

        :raises MailsrvError: INVALID_ARG with the reason (unknown format, bad field).
        """
        out = c_void_p()
        buf = _ffi.errbuf()
        status = lib.mailsrv_binding_from_text(_c_text(text, "binding text"), byref(out), buf, len(buf))
        _check(status, buf.value)
        try:
            copied = _copy_binding(out.value)
        finally:
            lib.mailsrv_binding_free(out)
        assert copied is not None
        return copied

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Binding({self.text!r})"


def _copy_binding(b: Optional[int]) -> Optional[Binding]:
    """Copies a borrowed mailsrv_binding (None for NULL)."""
    if not b:
        return None
    sni = lib.mailsrv_binding_sni(b)
    return Binding(
        service=Service(lib.mailsrv_binding_service(b)),
        host=_text(lib.mailsrv_binding_host(b)),
        port=int(lib.mailsrv_binding_port(b)),
        security=Security(lib.mailsrv_binding_security(b)),
        sni=None if sni is None else _text(sni),
        identity=_text(lib.mailsrv_binding_identity(b)),
        dane=bool(lib.mailsrv_binding_dane(b)),
        text=_text(lib.mailsrv_binding_text(b)),
    )


@contextlib.contextmanager
def _c_binding(binding: Union[Binding, StrOrBytes]) -> Iterator[int]:
    """An owned C binding for the duration of a call, from a Binding or its text."""
    text = binding.text if isinstance(binding, Binding) else binding
    out = c_void_p()
    buf = _ffi.errbuf()
    status = lib.mailsrv_binding_from_text(_c_text(text, "binding"), byref(out), buf, len(buf))
    _check(status, buf.value)
    assert out.value is not None  # OK from _from_text means a handle
    try:
        yield out.value
    finally:
        lib.mailsrv_binding_free(out)


# --------------------------------------------------------------------------- authenticity, change check


@dataclass(frozen=True)
class Authenticity:
    """The verdict on one service's SRV answer (:meth:`Context.verify_srv_authenticity`).
    Its repr is short (no certificate chains).

    Attributes:
        verdict: AUTHENTIC, UNVERIFIED or REJECTED (never an exception).
        evidence: What proved an AUTHENTIC verdict (NONE otherwise).
        target_verified: The reconnect with SNI = the target got a certificate for the
            target itself.
        in_domain: The target lies inside the mail domain (information only, never
            proof).
        srv_dnssec: The DNSSEC state of the re-read SRV answer (UNKNOWN if the lookup
            failed).
        detail: A sentence explaining the verdict, for the user.
        probe_matched: What the probe's certificate matched ("SRV-ID
            _imaps.example.com"), or None.
        target_matched: What the reconnect's certificate matched ("DNS-ID
            mail.example.net"), or None.
        probe_status: Why the probe failed (NAME_MISMATCH, UNKNOWN_ISSUER, ...); OK if
            it passed or did not run.
        target_status: Why the reconnect with SNI = target failed; OK if it passed or
            did not run.
        probe_chain: The probe's peer chain (DER, leaf first), when the handshake got
            that far.
        target_chain: The reconnect's peer chain.
        binding: How the connection that carries the credentials must be made (None
            when REJECTED; for UNVERIFIED the plain binding, only after the user accepted
            the server). Store ``binding.text`` with the account and log in with
            :meth:`Context.connect_binding`.
        probe_stream: With keep_probe and an AUTHENTIC verdict: the verified connection
            made exactly as the binding says, yours to use and close; else None.
    """

    verdict: Verdict
    evidence: Evidence
    target_verified: bool
    in_domain: bool
    srv_dnssec: Dnssec
    detail: str
    probe_matched: Optional[str]
    target_matched: Optional[str]
    probe_status: Status
    target_status: Status
    probe_chain: Tuple[bytes, ...] = field(repr=False)
    target_chain: Tuple[bytes, ...] = field(repr=False)
    binding: Optional["Binding"] = None
    probe_stream: Optional[TlsStream] = field(default=None, compare=False)

    @property
    def authentic(self) -> bool:
        return self.verdict == Verdict.AUTHENTIC

    def close(self) -> None:
        """Closes the kept probe stream, if any."""
        if self.probe_stream is not None:
            self.probe_stream.close()

    def __enter__(self) -> "Authenticity":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _auth_chain(a: int, which: int) -> Tuple[bytes, ...]:
    certs = []
    for i in range(lib.mailsrv_authenticity_chain_len(a, which)):
        data, size = c_void_p(), c_size_t()
        if lib.mailsrv_authenticity_cert_get(a, which, i, byref(data), byref(size)) == Status.OK:
            certs.append(_borrowed_bytes(data, size))
    return tuple(certs)


def _optional_text(b: Optional[bytes]) -> Optional[str]:
    return None if b is None else _text(b)


def _authenticity_fields(a: int) -> Dict[str, Any]:
    return dict(
            verdict=Verdict(lib.mailsrv_authenticity_verdict(a)),
            evidence=Evidence(lib.mailsrv_authenticity_evidence(a)),
            target_verified=bool(lib.mailsrv_authenticity_target_verified(a)),
            in_domain=bool(lib.mailsrv_authenticity_in_domain(a)),
            srv_dnssec=Dnssec(lib.mailsrv_authenticity_srv_dnssec(a)),
            detail=_text(lib.mailsrv_authenticity_detail(a)),
            probe_matched=_optional_text(lib.mailsrv_authenticity_probe_matched(a)),
            target_matched=_optional_text(lib.mailsrv_authenticity_target_matched(a)),
            probe_status=Status(lib.mailsrv_authenticity_probe_status(a)),
            target_status=Status(lib.mailsrv_authenticity_target_status(a)),
            probe_chain=_auth_chain(a, 0),
            target_chain=_auth_chain(a, 1),
            binding=_copy_binding(lib.mailsrv_authenticity_binding(a)),
        )


def _take_authenticity(a: Optional[int]) -> Authenticity:
    """Copies and frees an owned mailsrv_authenticity (taking its kept probe stream)."""
    if not a:
        raise MailsrvError(Status.PANIC, "the library reported OK without a result")
    try:
        fields = _authenticity_fields(a)
        stream = c_void_p()
        status = lib.mailsrv_authenticity_take_probe_stream(a, byref(stream))
        probe = TlsStream._wrap(stream.value) if status == Status.OK and stream.value else None
        return Authenticity(probe_stream=probe, **fields)
    finally:
        lib.mailsrv_authenticity_free(a)


@dataclass(frozen=True)
class EndpointCheck:
    """The verdict on one endpoint found by :meth:`Context.autoconfigure`.

    Attributes:
        service: The service the endpoint was found for.
        endpoint: The :class:`Endpoint` (as in ``discovery``).
        authenticity: Its :class:`Authenticity` (no probe stream); None when the check
            itself failed (see ``status``).
        status: Why the check failed (TIMEOUT, ...); Status.OK when there is a verdict.
    """

    service: Service
    endpoint: Endpoint
    authenticity: Optional[Authenticity]
    status: Status

    @property
    def authentic(self) -> bool:
        """True when the endpoint's answer is proven (AUTHENTIC)."""
        return self.authenticity is not None and self.authenticity.authentic


@dataclass(frozen=True)
class AccountSetup:
    """The result of :meth:`Context.autoconfigure` (mailsrv_autoconfigure): a discovery and
    a verdict on every endpoint it found.

    Attributes:
        discovery: The :class:`Discovery`, exactly as :meth:`Context.discover` gives it.
        checks: One :class:`EndpointCheck` per endpoint found, services in discovery order,
            endpoints in preference order.
    """

    discovery: Discovery
    checks: Tuple[EndpointCheck, ...]

    def check(self, service: ServiceArg, index: int = 0) -> Optional[EndpointCheck]:
        """The check of endpoint ``index`` (0: the preferred one) of ``service``, or None."""
        want = _one_service(service)
        found = [c for c in self.checks if c.service == want]
        return found[index] if 0 <= index < len(found) else None

    def preferred(self, purpose: Union[Purpose, int]) -> Optional[EndpointCheck]:
        """The check of the first endpoint of the library's preferred service for
        ``purpose`` (see :meth:`Discovery.preferred`), or None."""
        answer = self.discovery.preferred(purpose)
        return None if answer is None else self.check(answer.service)


def _take_autoconfig(a: Optional[int]) -> AccountSetup:
    """Copies and frees an owned mailsrv_autoconfig."""
    if not a:
        raise MailsrvError(Status.PANIC, "the library reported OK without a result")
    try:
        d = lib.mailsrv_autoconfig_discovery(a)
        if not d:
            raise MailsrvError(Status.PANIC, "the account-setup result has no discovery")
        discovery = _copy_discovery(d)
        checks = []
        for si, answer in enumerate(discovery.services):
            for ei, endpoint in enumerate(answer.endpoints):
                status = Status(lib.mailsrv_autoconfig_verdict_status(a, si, ei))
                v = lib.mailsrv_autoconfig_verdict(a, si, ei)
                auth = Authenticity(**_authenticity_fields(v)) if v else None
                checks.append(EndpointCheck(answer.service, endpoint, auth, status))
        return AccountSetup(discovery, tuple(checks))
    finally:
        lib.mailsrv_autoconfig_free(a)


@dataclass(frozen=True)
class OAuth2:
    """The ``oAuth2`` element of an account configuration (config-v1.2), passed through
    as written; mailsrv does not use it.

    Attributes:
        issuer: The OAuth2 issuer (a host name), or None.
        scope: The scopes to request, space-separated, or None.
        auth_url: The authorization endpoint, or None.
        token_url: The token endpoint, or None.
    """

    issuer: Optional[str]
    scope: Optional[str]
    auth_url: Optional[str]
    token_url: Optional[str]


@dataclass(frozen=True)
class Candidate:
    """One server named by an account configuration (:meth:`Context.discover_account`),
    with the same verdict, evidence and binding as an SRV target.

    Attributes:
        index: Its position in :attr:`Account.candidates` (document order).
        source: The :class:`Source` that named it.
        url: The URL of the document that named it (after redirects); None for SRV.
        protocol: ``"imap"``, ``"pop3"`` or ``"smtp"``.
        service: The :class:`Service` (protocol and TLS mode); ``Service(0)`` for a
            server offered without TLS (always REJECTED).
        host: The host name (A-labels).
        port: The port.
        security: The document's ``socketType``: ``"ssl"``, ``"starttls"`` or ``"plain"``.
        username: The user name with the placeholders substituted, or None.
        authentication: The document's ``authentication`` values, in order.
        oauth2: The configuration's :class:`OAuth2` settings when this server offers
            ``OAuth2`` authentication, else None.
        verdict: Its :class:`Authenticity` (verdict, evidence, ``binding``); None when the
            check itself failed (see ``verdict_status``).
        verdict_status: Why the check failed (TIMEOUT, ...); Status.OK when there is a
            verdict.
    """

    index: int
    source: Source
    url: Optional[str]
    protocol: str
    service: Service
    host: str
    port: int
    security: str
    username: Optional[str]
    authentication: Tuple[str, ...]
    oauth2: Optional[OAuth2]
    verdict: Optional[Authenticity]
    verdict_status: Status

    @property
    def authentic(self) -> bool:
        """True when the server is proven (AUTHENTIC)."""
        return self.verdict is not None and self.verdict.authentic

    @property
    def binding(self) -> Optional[Binding]:
        """The verdict's :class:`Binding` (how the login connection must be made), or None."""
        return None if self.verdict is None else self.verdict.binding

    @property
    def purpose(self) -> Purpose:
        """ACCESS for IMAP and POP3, SUBMISSION for SMTP."""
        return Purpose.SUBMISSION if self.protocol == "smtp" else Purpose.ACCESS


@dataclass(frozen=True)
class SourceReport:
    """What became of one source in an account discovery.

    Attributes:
        source: The :class:`Source`.
        state: FOUND, FAILED, CANCELLED (a higher-ranked source was taken first) or
            SKIPPED (not asked).
        status: Why it failed (NXDOMAIN, HTTP, BAD_CONFIG, DIGEST_MISMATCH, TIMEOUT, ...);
            Status.OK otherwise.
        detail: A sentence on the outcome (every HTTP hop of a fetch), or "".
        unfollowed: URLs the source did not follow because they lie outside the mail
            domain's registrable domain and nothing confirmed them (Autodiscover).
    """

    source: Source
    state: SourceState
    status: Status
    detail: str
    unfollowed: Tuple[str, ...] = ()


@dataclass(frozen=True)
class WebServices:
    """What a configuration passes through beyond mail servers (PACC), as written; HTTPS
    URLs only. They carry the configuration's evidence; mailsrv connects to none of them.

    Attributes:
        jmap: The JMAP session URL, or None.
        caldav: The CalDAV URL, or None.
        carddav: The CardDAV URL, or None.
        oauth_public_issuer: The ``oauth-public`` issuer, or None.
    """

    jmap: Optional[str] = None
    caldav: Optional[str] = None
    carddav: Optional[str] = None
    oauth_public_issuer: Optional[str] = None


@dataclass(frozen=True)
class Account:
    """The result of :meth:`Context.discover_account` (mailsrv_account_discover).

    Attributes:
        address: The address asked about.
        domain: Its mail domain.
        source: The :class:`Source` whose configuration was taken; None when no source
            found one (then there are no candidates: see ``sources``).
        display_name: The configuration's display name, or None.
        oauth2: The configuration's :class:`OAuth2` element, or None.
        candidates: Every server the configuration names, in document order, each with
            its verdict.
        access: The candidate to configure for reading mail: the first AUTHENTIC IMAP or
            POP3 one, else the first UNVERIFIED one (ask the user); never a REJECTED one.
        submission: The same for sending mail (SMTP).
        sources: One :class:`SourceReport` per source, in rank order.
        web: The :class:`WebServices` the configuration passes through (PACC).
    """

    address: str
    domain: str
    source: Optional[Source]
    display_name: Optional[str]
    oauth2: Optional[OAuth2]
    candidates: Tuple[Candidate, ...]
    access: Optional[Candidate]
    submission: Optional[Candidate]
    sources: Tuple[SourceReport, ...]
    web: WebServices = WebServices()

    @property
    def found(self) -> bool:
        """True when some source gave a configuration."""
        return self.source is not None

    def preferred(self, purpose: Union[Purpose, int]) -> Optional[Candidate]:
        """:attr:`access` or :attr:`submission`, by :class:`Purpose`."""
        p = Purpose(_c_uint(purpose, "purpose", _U32_MAX))
        return self.access if p == Purpose.ACCESS else self.submission if p == Purpose.SUBMISSION else None

    def report(self, source: Union[Source, int, str]) -> SourceReport:
        """The :class:`SourceReport` of one source."""
        want = Source.parse(source)
        return next(r for r in self.sources if r.source == want)


def _copy_candidate(c: int, index: int, oauth2: Optional[OAuth2]) -> Candidate:
    auth = tuple(
        _text(lib.mailsrv_candidate_authentication_get(c, i))
        for i in range(lib.mailsrv_candidate_authentication_len(c))
    )
    v = lib.mailsrv_candidate_verdict(c)
    return Candidate(
        index=index,
        source=Source(lib.mailsrv_candidate_source(c)),
        url=_optional_text(lib.mailsrv_candidate_url(c)),
        protocol=_text(lib.mailsrv_candidate_protocol(c)),
        service=Service(lib.mailsrv_candidate_service(c)),
        host=_text(lib.mailsrv_candidate_host(c)),
        port=int(lib.mailsrv_candidate_port(c)),
        security=_text(lib.mailsrv_candidate_security(c)),
        username=_optional_text(lib.mailsrv_candidate_username(c)),
        authentication=auth,
        oauth2=oauth2 if any(m.lower() == "oauth2" for m in auth) else None,
        verdict=Authenticity(**_authenticity_fields(v)) if v else None,
        verdict_status=Status(lib.mailsrv_candidate_verdict_status(c)),
    )


def _take_account(a: Optional[int]) -> Account:
    """Copies and frees an owned mailsrv_account."""
    if not a:
        raise MailsrvError(Status.PANIC, "the library reported OK without a result")
    try:
        fields = [_optional_text(lib.mailsrv_account_oauth2(a, int(f))) for f in OAuth2Field]
        oauth2 = OAuth2(*fields) if any(x is not None for x in fields) else None
        candidates = tuple(
            _copy_candidate(lib.mailsrv_account_candidate_get(a, i), i, oauth2)
            for i in range(lib.mailsrv_account_candidates_len(a))
        )

        def pick(purpose: Purpose) -> Optional[Candidate]:
            index = c_size_t()
            found = lib.mailsrv_account_preferred(a, int(purpose), byref(index))
            return candidates[index.value] if found and index.value < len(candidates) else None

        def unfollowed(s: Source) -> Tuple[str, ...]:
            out: List[str] = []
            while True:
                u = _optional_text(lib.mailsrv_account_source_unfollowed(a, int(s), len(out)))
                if u is None:
                    return tuple(out)
                out.append(u)

        reports = tuple(
            SourceReport(
                source=s,
                state=SourceState(lib.mailsrv_account_source_state(a, int(s))),
                status=Status(lib.mailsrv_account_source_status(a, int(s))),
                detail=_text(lib.mailsrv_account_source_detail(a, int(s))),
                unfollowed=unfollowed(s),
            )
            for s in _SOURCE_RANK
        )
        web = WebServices(*(_optional_text(lib.mailsrv_account_web_url(a, int(w))) for w in WebService))
        taken = int(lib.mailsrv_account_source(a))
        return Account(
            address=_text(lib.mailsrv_account_address(a)),
            domain=_text(lib.mailsrv_account_domain(a)),
            source=Source(taken) if taken else None,
            display_name=_optional_text(lib.mailsrv_account_display_name(a)),
            oauth2=oauth2,
            candidates=candidates,
            access=pick(Purpose.ACCESS),
            submission=pick(Purpose.SUBMISSION),
            sources=reports,
            web=web,
        )
    finally:
        lib.mailsrv_account_free(a)


def _source_mask(
    sources: Optional[Iterable[Union[Source, int, str]]], plain_http: bool, guess: bool = False
) -> int:
    """The C mask of ``sources`` (None: every source but GUESS); ``guess`` adds GUESS;
    without ``plain_http`` AUTOCONFIG_HTTP is left out (as a change check must)."""
    if isinstance(sources, (str, bytes, int)):
        raise TypeError("sources must be an iterable of mailsrv.Source values or names, not one value")
    mask = 0
    for s in [x for x in _SOURCE_RANK if x != Source.GUESS] if sources is None else sources:
        mask |= int(Source.parse(s, "source"))
    if guess:
        mask |= int(Source.GUESS)
    if not plain_http:
        mask &= ~int(Source.AUTOCONFIG_HTTP)
        if mask == 0:
            raise _invalid("sources: nothing left once plain HTTP is left out")
    return mask


@dataclass(frozen=True)
class Change:
    """The change decision for one saved service (:meth:`Context.srv_change_check`).

    Attributes:
        decision: NO_CHANGE, UPDATE, ASK_USER, WAIT or REJECT (:class:`Decision`).
        target: The endpoint the decision is about (the fresh first endpoint), or None.
        port: Its port; 0 when there is none.
        wait_until: For WAIT: when the answer will have persisted long enough (Unix
            seconds); else 0.
        verdict: The authenticity verdict on the new endpoint; None when it was not
            judged (unchanged, typed by the user, or no answer).
        detail: Why, in words a client can show.
        binding: How the account must connect to the new endpoint: always set for
            UPDATE; for ASK_USER and WAIT the plain binding to use once the user
            accepted; else None.
        origin: The origin to save with the new endpoint when the change is taken (pass
            it as ``origin`` to the next check): SRV from :meth:`Context.srv_change_check`,
            the naming source's (:meth:`Origin.of_source`) from
            :meth:`Context.account_change_check`; None when there is no endpoint.
        reason: Why (:class:`Reason`): BOGUS and WRONG_TARGET are different REJECTs;
            LOOKUP_FAILED, UNCHANGED and DECLINED are different NO_CHANGEs.
        authenticity: The :class:`Authenticity` of the fresh answer (verdict, evidence,
            both chains, the probe's status, a sentence): what an ASK_USER dialog shows;
            None when it was not judged.
    """

    decision: Decision
    target: Optional[str]
    port: int
    wait_until: int
    verdict: Optional[Verdict]
    detail: str
    binding: Optional["Binding"] = None
    origin: Optional["Origin"] = None
    reason: Reason = Reason.UNCHANGED
    authenticity: Optional["Authenticity"] = field(default=None, repr=False)


def _take_change(c: Optional[int]) -> Change:
    """Copies and frees an owned mailsrv_change."""
    if not c:
        raise MailsrvError(Status.PANIC, "the library reported OK without a result")
    try:
        verdict = lib.mailsrv_change_verdict(c)
        origin = lib.mailsrv_change_origin(c)
        a = lib.mailsrv_change_authenticity(c)
        return Change(
            reason=Reason(lib.mailsrv_change_reason(c)),
            authenticity=Authenticity(**_authenticity_fields(a)) if a else None,
            decision=Decision(lib.mailsrv_change_decision(c)),
            target=_optional_text(lib.mailsrv_change_target(c)),
            port=int(lib.mailsrv_change_port(c)),
            wait_until=int(lib.mailsrv_change_wait_until(c)),
            verdict=Verdict(verdict) if verdict else None,
            detail=_text(lib.mailsrv_change_detail(c)),
            binding=_copy_binding(lib.mailsrv_change_binding(c)),
            origin=Origin(origin) if origin else None,
        )
    finally:
        lib.mailsrv_change_free(c)


# --------------------------------------------------------------------------- history

_KEPT_ASIDE = re.compile(r"kept aside as (.+?)\s*$")


class HistoryCorrupt(MailsrvError, ValueError):
    """MailsrvError(CORRUPT): a history file was damaged. The library moved it aside (never
    replaced it); ``detail`` says why and where, ``kept_aside`` is that path (None if it
    could not be moved).
    """

    kept_aside: Optional[str]

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(status, detail)
        m = _KEPT_ASIDE.search(self.detail)
        self.kept_aside = m.group(1) if m else None


def _history_check(status: int, detail: bytes) -> None:
    if status == Status.CORRUPT:
        raise HistoryCorrupt(status, _text(detail) or status_str(status))
    _check(status, detail)


class History:
    """The observation history: when each answer (domain, service, target, port) was first
    and last seen, and which source named it, kept in a file the client chooses.
    :meth:`Context.srv_change_check` and :meth:`Context.account_change_check` use it so
    that an unverified change is offered to the user only once it has persisted.

    ``History.open(path)`` (or ``History(path)``) reads the file, which need not exist. A
    damaged file is moved aside and :class:`HistoryCorrupt` (a MailsrvError with status
    CORRUPT) is raised; opening again then starts empty. Observations live in memory until
    :meth:`save`, which merges with what other processes saved meanwhile (under a file
    lock) and replaces the file atomically, so a crash never damages it.

    Safe to use from several threads. Close it with :meth:`close` or a ``with`` block
    (unsaved observations are lost); a running async change check keeps its own reference.
    """

    def __init__(self, path: PathArg) -> None:
        self._guard: Optional[_Guard] = None
        self.path: Optional[Union[str, bytes]] = os.fspath(path)
        p = _c_path(path, "path")
        out = c_void_p()
        buf = _ffi.errbuf(4096)
        status = lib.mailsrv_history_open(p, byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_history_free(out)  # NULL on failure
            _history_check(status, buf.value)
        if not out.value:
            raise MailsrvError(Status.PANIC, "mailsrv_history_open returned no history")
        self._guard = _Guard(out.value, lib.mailsrv_history_free, self._closed_error)

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview, str] = b"") -> "History":
        """A history held in memory only, from what :meth:`export` gave (or a history
        file's bytes), for clients that keep their state in their own account store; empty
        data starts an empty one. It works like an opened one, except that :meth:`save` has
        no file (INVALID_ARG): :meth:`export` it instead.

        :raises UnsupportedVersion: a newer mailsrv's format (keep the bytes).
        :raises HistoryCorrupt: not a history, or damaged.
        """
        raw = data.encode() if isinstance(data, str) else bytes(data)
        arr = (ctypes.c_char * max(len(raw), 1)).from_buffer_copy(raw or b"\0")
        out = c_void_p()
        buf = _ffi.errbuf(4096)
        status = lib.mailsrv_history_import(ctypes.addressof(arr), len(raw), byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_history_free(out)
            _history_check(status, buf.value)
        if not out.value:
            raise MailsrvError(Status.PANIC, "mailsrv_history_import returned no history")
        self = cls.__new__(cls)
        self.path = None
        self._guard = _Guard(out.value, lib.mailsrv_history_free, self._closed_error)
        return self

    def export(self) -> bytes:
        """The history in the file format (UTF-8 text), for :meth:`from_bytes`."""
        out = c_void_p()
        with self._use() as h:
            _check(lib.mailsrv_history_export(h, byref(out)), "mailsrv_history_export")
        try:
            return ctypes.string_at(out.value) if out.value else b""
        finally:
            lib.mailsrv_string_free(out)

    def decline(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        target: StrOrBytes,
        port: int,
        now: int = 0,
    ) -> None:
        """Records that the user declined the change to ``target``:``port`` (the ASK_USER
        dialog was answered "no"): while that answer persists without interruption, the
        change checks return NO_CHANGE with reason DECLINED for it. Once another answer is
        seen for the domain and service, the decline ends with the run; if it comes back it
        is offered again after the minimum age. Never blocks an UPDATE or a REJECT.

        :raises NotFound: that answer was never observed.
        """
        d = _c_text(domain, "domain")
        svc = _one_service(service)
        t = _c_text(target, "target")
        p = _c_uint(port, "port", 0xFFFF)
        n = _c_uint(now, "now", _U64_MAX)
        with self._use() as h:
            status = lib.mailsrv_history_decline(h, d, svc, t, p, n)
        if status == Status.NOT_FOUND:
            raise NotFound(status, f"{_shown(target)}:{port} was never observed for {_shown(domain)}")
        _check(status)

    def prune(self, older_than: int) -> int:
        """Forgets the answers last seen before ``older_than`` (Unix seconds), with their
        declines; returns how many. A later save does not bring them back."""
        n = c_size_t()
        cut = _c_uint(older_than, "older_than", _U64_MAX)
        with self._use() as h:
            _check(lib.mailsrv_history_prune(h, cut, byref(n)))
        return int(n.value)

    def save_async(self, ctx: "Context", callback: Callable[[Optional[MailsrvError]], Any]) -> int:
        """:meth:`save` on a library thread: ``callback(None)`` when saved, else
        ``callback(error)``, exactly once, where ``ctx`` delivers callbacks (its thread, or
        :meth:`Context.dispatch` in loop mode). Returns the request id."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        token = next(_save_tokens)
        with _save_lock:
            _save_pending[token] = callback
        rid = c_uint64()
        try:
            with self._use() as h, ctx._use() as c:
                status = lib.mailsrv_history_save_async(c, h, _HISTORY_SAVED, token, byref(rid))
        except BaseException:
            with _save_lock:
                _save_pending.pop(token, None)
            raise
        if status != Status.OK:
            with _save_lock:
                _save_pending.pop(token, None)
            _check(status)
        return int(rid.value)

    @classmethod
    def open(cls, path: PathArg) -> "History":
        """Opens (or starts) the history kept in ``path``.

        :raises HistoryCorrupt: the file was damaged (kept aside; ``.detail`` names where).
        :raises UnsupportedVersion: a newer mailsrv wrote the file; it was left untouched.
        :raises MailsrvError: IO, INVALID_ARG.
        """
        return cls(path)

    @staticmethod
    def _closed_error() -> BaseException:
        return MailsrvError(Status.SHUTDOWN, "the history is closed")

    def _use(self) -> "contextlib.AbstractContextManager[int]":
        if self._guard is None:
            raise self._closed_error()
        return self._guard.use()

    def observe(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        target: StrOrBytes,
        port: int,
        now: int = 0,
    ) -> None:
        """Records that ``target``:``port`` is the answer for (``domain``, ``service``) at
        ``now`` (Unix seconds; 0 = the current time). In memory until :meth:`save`."""
        d = _c_text(domain, "domain")
        svc = _one_service(service)
        t = _c_text(target, "target")
        p = _c_uint(port, "port", 0xFFFF)
        n = _c_uint(now, "now", _U64_MAX)
        with self._use() as h:
            status = lib.mailsrv_history_observe(h, d, svc, t, p, n)
        if status == Status.INVALID_ARG:
            raise _invalid(f"bad observation ({domain!r}, {service!r}, {target!r}, {port!r}): names and one service")
        _check(status)

    def seen(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        target: StrOrBytes,
        port: int,
    ) -> Optional[Tuple[int, int]]:
        """(first, last): when ``target``:``port`` was first and last seen for (``domain``,
        ``service``) without interruption, in Unix seconds; None if never."""
        d = _c_text(domain, "domain")
        svc = _one_service(service)
        t = _c_text(target, "target")
        p = _c_uint(port, "port", 0xFFFF)
        first, last = c_uint64(), c_uint64()
        with self._use() as h:
            status = lib.mailsrv_history_seen(h, d, svc, t, p, byref(first), byref(last))
        if status == Status.NOT_FOUND:
            return None
        if status == Status.INVALID_ARG:
            raise _invalid(f"bad observation key ({domain!r}, {service!r}, {target!r}, {port!r})")
        _check(status)
        return int(first.value), int(last.value)

    def source(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        target: StrOrBytes,
        port: int,
    ) -> Optional["Source"]:
        """The :class:`Source` that named ``target``:``port`` for (``domain``, ``service``)
        when it was last seen (SRV for :meth:`Context.srv_change_check`, the candidate's for
        :meth:`Context.account_change_check`); None if not recorded or never seen."""
        d = _c_text(domain, "domain")
        svc = _one_service(service)
        t = _c_text(target, "target")
        p = _c_uint(port, "port", 0xFFFF)
        src = c_uint32()
        with self._use() as h:
            status = lib.mailsrv_history_source(h, d, svc, t, p, byref(src))
        if status == Status.NOT_FOUND:
            return None
        if status == Status.INVALID_ARG:
            raise _invalid(f"bad observation key ({domain!r}, {service!r}, {target!r}, {port!r})")
        _check(status)
        return Source(src.value) if src.value else None

    def save(self) -> None:
        """Writes the history: under an exclusive lock, merged with what another process
        saved meanwhile, atomically (temp file, fsync, rename, fsync of the folder).

        :raises HistoryCorrupt: the file on disk was damaged (it was kept aside).
        :raises MailsrvError: IO.
        """
        buf = _ffi.errbuf(4096)
        with self._use() as h:
            status = lib.mailsrv_history_save(h, buf, len(buf))
        _history_check(status, buf.value)

    def __len__(self) -> int:
        """Number of observations held."""
        with self._use() as h:
            return int(lib.mailsrv_history_len(h))

    def close(self) -> None:
        """Frees the history (unsaved observations are lost). Idempotent."""
        if self._guard is not None:
            self._guard.close()

    @property
    def closed(self) -> bool:
        return self._guard is None or self._guard.closing

    def __enter__(self) -> "History":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        guard = getattr(self, "_guard", None)
        if guard is not None:
            try:
                guard.close()
            except Exception:  # pragma: no cover
                pass

    def __repr__(self) -> str:
        return f"<mailsrv.History {self.path!r} {'closed' if self.closed else 'open'}>"


# History.save_async: one trampoline; each request is a token in _save_pending.
_save_pending: Dict[int, Callable[[Optional[MailsrvError]], Any]] = {}
_save_tokens = itertools.count(1)
_save_lock = threading.Lock()


def _history_saved_py(userdata: Optional[int], request_id: int, status: int, detail: Optional[bytes]) -> None:
    with _save_lock:
        callback = _save_pending.pop(userdata or 0, None)
    if callback is None:  # pragma: no cover
        return
    error = None if status == Status.OK else MailsrvError(status, _text(detail) or status_str(status))
    try:
        callback(error)
    except Exception:  # a callback must not raise into C
        _log.exception("mailsrv: History.save_async callback of request %d raised", request_id)


_HISTORY_SAVED = _ffi.HISTORY_SAVE_CB(_history_saved_py)


_ERROR_CLASS: Dict[int, type] = {
    Status.NULL_ARG: InvalidArgument,
    Status.INVALID_ARG: InvalidArgument,
    Status.NO_MEMORY: InternalError,
    Status.PANIC: InternalError,
    Status.CANCELLED: Cancelled,
    Status.TIMEOUT: Timeout,
    Status.SHUTDOWN: ContextClosed,
    Status.IN_CALLBACK: InCallback,
    Status.NOT_FOUND: NotFound,
    Status.RUNTIME: InternalError,
    Status.IO: FileError,
    Status.CORRUPT: HistoryCorrupt,
    Status.UNSUPPORTED_VERSION: UnsupportedVersion,
    Status.PIN_MISMATCH: PinMismatch,
    Status.NXDOMAIN: DnsError,
    Status.NO_RECORD: DnsError,
    Status.SERVFAIL: DnsError,
    Status.NO_SECURE_ANSWER: DnsError,
    Status.LOOKUP_FAILED: DnsError,
    Status.BOGUS: DnssecError,
    Status.INDETERMINATE: DnssecError,
    Status.BAD_TRUST_ANCHOR: DnssecError,
    Status.CERT_EXPIRED: CertificateExpired,
    Status.CERT_NOT_YET_VALID: CertificateNotYetValid,
    Status.UNKNOWN_ISSUER: UnknownIssuer,
    Status.NAME_MISMATCH: NameMismatch,
    Status.BAD_CERTIFICATE: BadCertificate,
    Status.CERT_PURPOSE: CertificatePurpose,
    Status.NAME_CONSTRAINT: NameConstraint,
    Status.NO_TRUST_ANCHORS: NoTrustAnchors,
    Status.HANDSHAKE: TlsError,
    Status.CONNECT_FAILED: ConnectFailed,
    Status.CONNECTION_CLOSED: ConnectionClosed,
    Status.PROTOCOL: ProtocolError,
    Status.WOULD_BLOCK: WouldBlock,
}
for _code in range(100, 200):
    _ERROR_CLASS.setdefault(_code, DnsError)
for _code in range(200, 300):
    _ERROR_CLASS.setdefault(_code, DnssecError)
for _code in range(300, 400):
    _ERROR_CLASS.setdefault(_code, CertificateError)


# --------------------------------------------------------------------------- callbacks
#
# One C trampoline serves every request of every context; it lives as long as the module.
# Each request is a token (a unique integer passed as `userdata`) in _pending, registered
# before mailsrv_srv_discover_async is called, so a callback that arrives on a library
# thread before the call has returned still finds it. The entry keeps the Python callback
# (and its context) alive and is removed when the callback runs: exactly-once delivery makes
# that the last use. A per-request CFUNCTYPE object would have to be released from inside
# its own invocation, which ctypes does not make safe; a single static one avoids that.

# What a discover_async callback receives: the request id and a Discovery or a MailsrvError.
DiscoverCallback = Callable[[int, Union[Discovery, MailsrvError]], Any]
# connect_async: the request id and a TlsStream (yours to close) or a MailsrvError.
ConnectCallback = Callable[[int, Union[TlsStream, MailsrvError]], Any]
# verify_srv_authenticity_async: the request id and an Authenticity or a MailsrvError.
AuthenticityCallback = Callable[[int, Union[Authenticity, MailsrvError]], Any]
# srv_change_check_async: the request id and a Change or a MailsrvError.
ChangeCallback = Callable[[int, Union[Change, MailsrvError]], Any]
# discover_account_async: the request id and an Account or a MailsrvError.
AccountCallback = Callable[[int, Union[Account, MailsrvError]], Any]
# autodiscover(ask, url, address, why) -> True/False (FOLLOW), (user, password) or None (CREDENTIALS)
AutodiscoverCallback = Callable[[AutodiscoverAsk, str, str, str], Union[bool, Tuple[str, str], None]]


@dataclass(frozen=True)
class _Kind:
    """What an async request delivers: how to turn its owned C result into Python.

    Attributes:
        take: Copies the owned result into Python objects and frees it (or wraps it: a
            stream).
    """

    what: str
    take: Callable[[Optional[int]], Any]


_DISCOVERY = _Kind("discover_async", lambda r: _take_discovery(r))
_STREAM = _Kind("connect_async", lambda r: TlsStream._wrap(r))
_AUTHENTICITY = _Kind("verify_srv_authenticity_async", lambda r: _take_authenticity(r))
_CHANGE = _Kind("srv_change_check_async", lambda r: _take_change(r))
_AUTOCONFIG = _Kind("autoconfigure_async", lambda r: _take_autoconfig(r))
_ACCOUNT = _Kind("discover_account_async", lambda r: _take_account(r))


@dataclass
class _Pending:
    ctx: "Context"
    callback: Callable[[int, Any], Any]
    kind: _Kind = _DISCOVERY


_pending_lock = threading.Lock()
_pending: Dict[int, _Pending] = {}
_tokens = itertools.count(1)
_tls = threading.local()  # .contexts: the contexts whose callback runs on this thread


def _callback_stack() -> List["Context"]:
    stack = getattr(_tls, "contexts", None)
    if stack is None:
        stack = _tls.contexts = []
    return stack


def _outcome(kind: _Kind, status: int, result: Optional[int], detail: Optional[bytes]) -> Any:
    """The Python outcome of a completion: the copied result, or a MailsrvError."""
    if status == Status.OK:
        try:
            return kind.take(result)  # takes ownership of `result`, even when it fails
        except MailsrvError as e:
            return e
        except Exception as e:  # a bug in the copy: still deliver exactly once
            _log.exception("mailsrv: copying a %s result failed", kind.what)
            return MailsrvError(Status.PANIC, f"copying the result failed: {e!r}")
    if result:  # not expected with an error; never leak it
        try:
            outcome = kind.take(result)
            close = getattr(outcome, "close", None)
            if close is not None:
                close()
        except Exception:
            pass
    return MailsrvError(status, _text(detail) or status_str(status))


def _deliver(
    userdata: Optional[int], request_id: int, status: int, result: Optional[int], detail: Optional[bytes]
) -> None:
    with _pending_lock:
        entry = _pending.pop(userdata or 0, None)
    if entry is None:
        # Cannot happen: every token is registered before its request starts. The type of
        # `result` is unknown here, so it is leaked rather than freed wrongly.
        _log.error("mailsrv: callback for an unknown request %d (status %d); dropped", request_id, status)
        return
    outcome = _outcome(entry.kind, status, result, detail)
    stack = _callback_stack()
    stack.append(entry.ctx)
    try:
        entry.callback(request_id, outcome)
    except BaseException as e:  # noqa: B036 - nothing may reach ctypes, which prints and drops
        entry.ctx._callback_failed(request_id, e, entry.kind.what)
    finally:
        stack.pop()
        entry.ctx._request_done()


def _discover_trampoline_py(
    userdata: Optional[int], request_id: int, status: int, result: Optional[int], detail: Optional[bytes]
) -> None:
    try:
        _deliver(userdata, request_id, status, result, detail)
    except BaseException:  # noqa: B036 - last resort, see _deliver
        try:
            _log.exception("mailsrv: internal error in the callback trampoline")
        except BaseException:  # noqa: B036
            pass


# The one C function pointer handed to every _async function (discover, connect,
# authenticity, change check: their callback types have the same C signature, and the
# request's _Kind says what its result is); never released.
_discover_trampoline = _ffi.DISCOVER_CB(_discover_trampoline_py)
_trampoline = _discover_trampoline


# --------------------------------------------------------------------------- context

_live_contexts: "weakref.WeakSet[Context]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Before interpreter finalization library threads can still take the GIL, so pending
    # thread-mode callbacks can run; after it they could not, and mailsrv_ctx_free would hang.
    for ctx in list(_live_contexts):
        try:
            ctx.close()
        except Exception:  # pragma: no cover
            _log.exception("mailsrv: closing a context at exit failed")


class Context:
    """A mailsrv context: resolver settings, trust anchors and outstanding requests.

    Safe to use from several threads at once. Close it with :meth:`close` (or use it as a
    context manager); the garbage collector closes a forgotten one as a fallback.

    :param nameservers: DNS servers as "IP", "IP:PORT", "[IPv6]" or "[IPv6]:PORT", asked in
        order; empty means the system's (resolv.conf). A single string is one server.
    :param trust_anchor_file: DNSSEC trust anchors (DNSKEY or DS records in zone-file form)
        instead of the built-in IANA root keys.
    :param ca_file: PEM CA certificates instead of the system store (certificate checks,
        connections, authenticity probes).
    :param timeout_ms: the deadline of every operation (None or 0: the library's 10 s).
    :param dispatch: where callbacks run (:class:`Dispatch`).
    :param require_secure: for every call of this context, only DNSSEC-secure SRV answers count.
    :param rng_seed: makes the RFC 2782 weighted order reproducible (tests only).
    :param fallback_nameservers: resolvers asked only when every nameserver is a DNSSEC
        roadblock (none by default; mailsrv never adds a public one).
    :param negative_trust_anchors: zones not validated (RFC 7646), e.g. a split-horizon
        internal mail domain; the special-use and private zones are built in.
    :param hosts_file: the hosts(5) file consulted for host addresses before DNS, like
        getaddrinfo (its entries replace DNS for the names it lists and are reported as
        :attr:`Dnssec.HOSTS_FILE`); None turns it off.
    :param ispdb_url: the ISPDB base URL of :meth:`discover_account` (HTTPS; the mail
        domain is appended); None: the library's ``https://v1.ispdb.net/``.
    :param fetch_timeout_ms: the deadline of each autoconfig fetch of
        :meth:`discover_account` (None or 0: 5 s).
    :param ispdb_timeout_ms: the deadline of each ISPDB lookup and each guess (None or 0:
        10 s).
    :param service_ports: the port :meth:`discover_account` assumes for a service where a
        source names a host only (PACC, guessing), e.g. ``{"imaps": 10993}``; the others
        keep 993, 143, 995, 110, 465, 587.
    :param autodiscover: ``autodiscover(ask, url, address, why)``, asked by Exchange
        Autodiscover on a library thread (it may block, e.g. to ask the user): for
        :attr:`AutodiscoverAsk.FOLLOW` return True to let the request go to ``url``,
        outside the address's registrable domain; for :attr:`AutodiscoverAsk.CREDENTIALS`
        return ``(user, password)`` to send them to the HTTPS ``url``, or None. Without it
        such URLs are only reported (:attr:`SourceReport.unfollowed`) and no credentials are
        ever sent. Exceptions it raises count as "no" and are kept in
        :attr:`callback_errors`. A change check never calls it.
    :raises MailsrvError: INVALID_ARG (bad nameserver or value), BAD_TRUST_ANCHOR, RUNTIME.
    """

    def __init__(
        self,
        nameservers: Union[Sequence[str], str] = (),
        trust_anchor_file: Optional[PathArg] = None,
        ca_file: Optional[PathArg] = None,
        timeout_ms: Optional[int] = None,
        dispatch: Union[Dispatch, int] = Dispatch.THREAD,
        require_secure: bool = False,
        rng_seed: Optional[int] = None,
        fallback_nameservers: Sequence[str] = (),
        negative_trust_anchors: Sequence[str] = (),
        hosts_file: Optional[PathArg] = "/etc/hosts",
        ispdb_url: Optional[StrOrBytes] = None,
        fetch_timeout_ms: Optional[int] = None,
        ispdb_timeout_ms: Optional[int] = None,
        service_ports: Optional[Mapping[ServiceArg, int]] = None,
        autodiscover: Optional[AutodiscoverCallback] = None,
        ca_pem: Union[None, bytes, str, Sequence[Union[bytes, str]]] = None,
        ca_mode: Union[CaMode, int] = CaMode.REPLACE,
    ) -> None:
        self._handle: Optional[int] = None
        self._cond = threading.Condition()
        self._users = 0  # calls into C in progress on this handle
        self._local = threading.local()  # .uses: such calls on the current thread
        self._closing = False
        self._closed = False
        self._outstanding = 0  # async requests whose callback has not run yet
        self._closed_hooks: List[Callable[[], None]] = []
        self._errors: List[BaseException] = []
        self._dispatch = Dispatch(_c_uint(dispatch, "dispatch", _U32_MAX))

        if isinstance(nameservers, (str, bytes)):
            nameservers = [nameservers]
        cfg = c_void_p()
        _check(lib.mailsrv_config_new(byref(cfg)), "mailsrv_config_new")
        try:
            for ns in nameservers:
                _check(
                    lib.mailsrv_config_set_nameserver(cfg, _c_text(ns, "nameserver")),
                    f"bad nameserver {ns!r} (IP, IP:PORT, [IPv6] or [IPv6]:PORT)",
                )
            for ns in fallback_nameservers:
                _check(
                    lib.mailsrv_config_add_fallback_nameserver(cfg, _c_text(ns, "fallback nameserver")),
                    f"bad fallback nameserver {ns!r} (IP, IP:PORT, [IPv6] or [IPv6]:PORT)",
                )
            for zone in negative_trust_anchors:
                _check(
                    lib.mailsrv_config_add_negative_trust_anchor(cfg, _c_text(zone, "negative trust anchor")),
                    f"bad negative trust anchor {zone!r}",
                )
            if trust_anchor_file is not None:
                _check(
                    lib.mailsrv_config_set_trust_anchor_file(cfg, _c_path(trust_anchor_file, "trust_anchor_file")),
                    f"bad trust anchor path {trust_anchor_file!r}",
                )
            if ca_file is not None:
                _check(
                    lib.mailsrv_config_set_ca_file(cfg, _c_path(ca_file, "ca_file")),
                    f"bad CA file path {ca_file!r}",
                )
            for pem in _pem_list(ca_pem):
                arr = (ctypes.c_char * len(pem)).from_buffer_copy(pem)
                buf = _ffi.errbuf()
                _check(lib.mailsrv_config_add_ca_pem(cfg, ctypes.addressof(arr), len(pem), buf, len(buf)), buf.value)
            _check(
                lib.mailsrv_config_set_ca_mode(cfg, _c_uint(ca_mode, "ca_mode", _U32_MAX)),
                f"unknown CA mode {ca_mode!r}",
            )
            _check(
                lib.mailsrv_config_set_hosts_file(
                    cfg, None if hosts_file is None else _c_path(hosts_file, "hosts_file")
                ),
                f"bad hosts file path {hosts_file!r}",
            )
            if timeout_ms is not None:
                ms = _c_uint(timeout_ms, "timeout_ms", _U32_MAX)
                _check(lib.mailsrv_config_set_timeout_ms(cfg, ms), f"timeout_ms {ms} out of range (0..600000)")
            _check(
                lib.mailsrv_config_set_dispatch(cfg, int(self._dispatch)),
                f"unknown dispatch mode {int(self._dispatch)}",
            )
            if require_secure:
                _check(lib.mailsrv_config_set_flags(cfg, FLAG_REQUIRE_SECURE), "mailsrv_config_set_flags")
            if rng_seed is not None:
                _check(lib.mailsrv_config_set_rng_seed(cfg, _c_uint(rng_seed, "rng_seed", _U64_MAX)), "rng_seed")
            if ispdb_url is not None:
                _check(
                    lib.mailsrv_config_set_ispdb_url(cfg, _c_text(ispdb_url, "ispdb_url")),
                    f"ispdb_url {_shown(ispdb_url)} is not an https:// URL",
                )
            if fetch_timeout_ms is not None or ispdb_timeout_ms is not None:
                fetch = _c_uint(fetch_timeout_ms or 0, "fetch_timeout_ms", _U32_MAX)
                ispdb = _c_uint(ispdb_timeout_ms or 0, "ispdb_timeout_ms", _U32_MAX)
                _check(
                    lib.mailsrv_config_set_fetch_timeouts_ms(cfg, fetch, ispdb),
                    f"fetch_timeout_ms {fetch} or ispdb_timeout_ms {ispdb} out of range",
                )
            for service, port in (service_ports or {}).items():
                bit = _one_service(service)
                _check(
                    lib.mailsrv_config_set_service_port(cfg, bit, _c_uint(port, "port", 65535)),
                    f"service_ports: {service!r} is not one service",
                )
            if autodiscover is not None:
                if not callable(autodiscover):
                    raise TypeError("autodiscover must be callable")
                # Kept with the context: the library calls it until the context is freed.
                self._autodiscover = _ffi.AUTODISCOVER_CB(self._autodiscover_trampoline(autodiscover))
                _check(
                    lib.mailsrv_config_set_autodiscover_cb(cfg, self._autodiscover, None),
                    "mailsrv_config_set_autodiscover_cb",
                )
            handle = c_void_p()
            buf = _ffi.errbuf()
            _check(lib.mailsrv_ctx_new(cfg, byref(handle), buf, len(buf)), buf.value)
        finally:
            lib.mailsrv_config_free(cfg)
        self._handle = handle.value
        _live_contexts.add(self)

    # ---- lifetime

    @contextmanager
    def _use(self) -> Iterator[int]:
        """Holds the handle for one call into C; close() frees it only when none are left."""
        with self._cond:
            if self._closing or self._handle is None:
                raise MailsrvError(Status.SHUTDOWN, "the context is closed")
            self._users += 1
            handle = self._handle
        self._local.uses = getattr(self._local, "uses", 0) + 1
        try:
            yield handle
        finally:
            self._local.uses -= 1
            with self._cond:
                self._users -= 1
                last = self._closing and self._users == 0
                if last:
                    handle_to_free, self._handle = self._handle, None
            if last and handle_to_free is not None:
                self._free(handle_to_free)

    def _free(self, handle: int) -> None:
        try:
            lib.mailsrv_ctx_free(handle)  # delivers SHUTDOWN to every outstanding request
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
                hooks, self._closed_hooks = self._closed_hooks, []
            _live_contexts.discard(self)
            for hook in hooks:
                hook()

    def _when_closed(self, hook: Callable[[], None]) -> None:
        """Runs ``hook()`` once the context is freed (now, if it is already), on the thread
        that frees it."""
        with self._cond:
            if not self._closed:
                self._closed_hooks.append(hook)
                return
        hook()

    def _start_close(self) -> None:
        """Starts closing without waiting: frees now when no call is in progress, else the
        last call in progress frees on its way out."""
        handle: Optional[int] = None
        with self._cond:
            if not self._closing:
                self._closing = True
                if self._users == 0:
                    handle, self._handle = self._handle, None
                    if handle is None:
                        self._closed = True
        if handle is not None:
            self._free(handle)

    def close(self) -> None:
        """Frees the context. Idempotent.

        Outstanding requests end with :attr:`Status.SHUTDOWN`, delivered exactly once (in loop
        mode on this thread, now). Returns when all callbacks have run, except when called
        from inside one of this context's callbacks or a call on it in progress on this
        thread (then the shutdown completes when that returns). Calls that are in progress
        on other threads finish first; later calls raise MailsrvError(SHUTDOWN).
        """
        inside = getattr(self._local, "uses", 0) > 0 or self in _callback_stack()
        self._start_close()
        if not inside:
            with self._cond:
                while not self._closed:
                    self._cond.wait()

    @property
    def closed(self) -> bool:
        """True once close() has started."""
        return self._closing

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Fallback only. During interpreter finalization library threads can no longer take
        # the GIL, so freeing could hang: leak instead (the atexit hook normally ran first).
        if getattr(self, "_closing", True) or sys.is_finalizing():
            return
        try:
            self.close()
        except Exception:  # pragma: no cover
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closing else "open"
        return f"<mailsrv.Context {self._dispatch.name.lower()} {state}>"

    # ---- callback bookkeeping

    def _autodiscover_trampoline(
        self, hook: "AutodiscoverCallback"
    ) -> Callable[[Optional[int], int, Optional[bytes], Optional[bytes], Optional[bytes], Optional[int]], bool]:
        """The C side of the ``autodiscover`` callback: never lets an exception into C."""

        def call(
            _ud: Optional[int],
            ask: int,
            url: Optional[bytes],
            address: Optional[bytes],
            why: Optional[bytes],
            creds: Optional[int],
        ) -> bool:
            try:
                kind = AutodiscoverAsk(ask)
                text = [(b or b"").decode("utf-8", "replace") for b in (url, address, why)]
                answer = hook(kind, text[0], text[1], text[2])
                if kind == AutodiscoverAsk.CREDENTIALS:
                    if not answer or not creds:
                        return False
                    user, password = answer  # type: ignore[misc]
                    status = lib.mailsrv_credentials_set(
                        creds, _c_text(user, "user"), _c_text(password, "password")
                    )
                    return bool(status == Status.OK)
                return answer is True
            except BaseException as exc:  # noqa: BLE001 -- nothing may propagate into C
                self._callback_failed(0, exc, "autodiscover")
                return False

        return call

    def _callback_failed(self, request_id: int, exc: BaseException, what: str = "discover_async") -> None:
        with self._cond:
            self._errors.append(exc)
        _log.error("mailsrv: a %s callback (request %d) raised", what, request_id, exc_info=exc)

    def _request_done(self) -> None:
        with self._cond:
            self._outstanding -= 1

    @property
    def callback_errors(self) -> List[BaseException]:
        """Exceptions raised by this context's callbacks (they cannot propagate into C), oldest
        first. Each is also logged on the ``mailsrv`` logger."""
        with self._cond:
            return list(self._errors)

    @property
    def outstanding(self) -> int:
        """How many async requests (``*_async`` calls, and :class:`AsyncContext` coroutines)
        have started and not had their callback yet. 0 once :meth:`close` returned: every
        request gets its callback (SHUTDOWN at the latest). Useful to wait for quiescence
        or to spot leaks in tests."""
        with self._cond:
            return self._outstanding

    @property
    def dispatch_mode(self) -> Dispatch:
        return self._dispatch

    # ---- discovery

    def discover(
        self,
        address: StrOrBytes,
        services: ServiceArg = ALL_SERVICES,
        require_secure: bool = False,
    ) -> Discovery:
        """Discovers the mail servers of ``address`` ("joe@example.com" or "example.com").

        Blocks (the GIL is released meanwhile). ``services`` is a mask of :class:`Service`
        bits, 0 for all six. Per-service failures (SERVFAIL, timeout, bogus) do not raise:
        they are in each :class:`ServiceAnswer`.

        :raises MailsrvError: INVALID_ARG (malformed address, over-long name, NUL character,
            unknown bits), TIMEOUT, IN_CALLBACK (inside a thread-mode callback), SHUTDOWN
            (closed context).
        """
        addr = _c_text(address, "address")
        mask = int(Service.parse(services, "services"))
        flags = FLAG_REQUIRE_SECURE if require_secure else 0
        out = c_void_p()
        buf = _ffi.errbuf()
        with self._use() as h:
            status = lib.mailsrv_srv_discover(h, addr, mask, flags, byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_discovery_free(out)  # NULL on failure; harmless
            _check(status, buf.value)
        return _take_discovery(out.value)

    def discover_async(
        self,
        address: StrOrBytes,
        callback: DiscoverCallback,
        services: ServiceArg = ALL_SERVICES,
        require_secure: bool = False,
    ) -> int:
        """Starts a discovery; returns its request id (for :meth:`cancel`).

        ``callback(request_id, outcome)`` runs exactly once, never inside this call:
        ``outcome`` is a :class:`Discovery` or a :class:`MailsrvError` (an error, CANCELLED,
        SHUTDOWN). It runs on a library thread (thread mode) or inside :meth:`dispatch`
        (loop mode). Exceptions it raises are logged and kept in :attr:`callback_errors`.

        :raises MailsrvError: when the request could not start (then no callback runs).
        """
        if not callable(callback):
            raise TypeError("callback must be callable")
        addr = _c_text(address, "address")
        mask = int(Service.parse(services, "services"))
        flags = FLAG_REQUIRE_SECURE if require_secure else 0
        return self._start_async(
            _DISCOVERY,
            callback,
            lambda h, token, rid: lib.mailsrv_srv_discover_async(h, addr, mask, flags, _trampoline, token, rid),
            f"address {_shown(address)} is not an e-mail address or mail domain",
        )

    def _start_async(
        self,
        kind: _Kind,
        callback: Callable[[int, Any], Any],
        start: Callable[..., Any],
        refused: str = "",
    ) -> int:
        """Registers the request's token, then calls ``start(ctx_handle, userdata, id_out)``
        (an _async function with the trampoline). Arguments are converted before this, so
        bad input never leaves a registration behind. ``refused`` names the arguments for
        the message of an INVALID_ARG (the _async functions have no error buffer)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        token = next(_tokens)
        request_id = c_uint64()
        with _pending_lock:
            _pending[token] = _Pending(self, callback, kind)
        with self._cond:
            self._outstanding += 1
        status = -1
        try:
            with self._use() as h:
                status = start(h, c_void_p(token), byref(request_id))
        finally:
            if status != Status.OK:  # no callback will come
                with _pending_lock:
                    _pending.pop(token, None)
                with self._cond:
                    self._outstanding -= 1
        if status == Status.INVALID_ARG and refused:
            raise _invalid(f"{kind.what}: {refused}")
        _check(status)
        return int(request_id.value)

    def cancel(self, request_id: int) -> bool:
        """Cancels an async request. True: its callback will still run, once, with
        Status.CANCELLED. False: the id is unknown, or its callback already ran or is about
        to run with its real result (or the context is closed). Never waits."""
        rid = _c_uint(request_id, "request_id", _U64_MAX)
        try:
            with self._use() as h:
                status = lib.mailsrv_cancel(h, rid)
        except MailsrvError as e:
            if e.status == Status.SHUTDOWN:
                return False
            raise
        if status == Status.OK:
            return True
        if status == Status.NOT_FOUND:
            return False
        _check(status)
        return False  # pragma: no cover

    # ---- certificates

    def check_cert(
        self,
        chain: Union[bytes, Sequence[bytes]],
        identity: Optional[Identity] = None,
        *,
        dns_ids: Sequence[StrOrBytes] = (),
        srv_ids: Sequence[Tuple[Union[Service, str, bytes], StrOrBytes]] = (),
        ips: Sequence[Union[str, bytes, Any]] = (),
        legacy_cn: bool = False,
        accept_sibling: bool = False,
        names_only: bool = False,
    ) -> CertMatch:
        """Checks a server's certificate chain the way mailsrv's own connections do, for
        clients with their own TLS stack: path validation to a trusted CA (``ca_file``, else
        the system store) with server-auth usage and validity dates, then name matching
        against the reference identity, with CA name constraints applied to SRV-IDs too.
        Blocking, no network.

        ``chain``: DER certificates, the leaf first, then the intermediates the server sent
        (:func:`load_pem` reads a PEM file). The reference identity is ``identity`` plus
        ``dns_ids``, ``srv_ids`` ((service, domain) pairs) and ``ips``; at least one is
        needed. ``legacy_cn``: accept a subject CN as DNS-ID when there are no SANs.
        ``accept_sibling``: an SRV-ID also matches the sibling service's.
        ``names_only``: your own TLS stack already validated the path: skip path
        validation, dates and the key check, match the leaf's names only (``path_len`` 0).

        :raises MailsrvError: with the precise status and reason: CERT_EXPIRED,
            CERT_NOT_YET_VALID, UNKNOWN_ISSUER, NAME_MISMATCH, NAME_CONSTRAINT, CERT_PURPOSE,
            BAD_CERTIFICATE, NO_TRUST_ANCHORS, IO (CA file), INVALID_ARG.
        """
        certs = _der_list(chain)
        ident = _merge_identity(identity, dns_ids, srv_ids, ips)
        if not certs:
            raise _invalid("no certificate: the chain is empty")
        if not ident:
            raise _invalid("no reference identifier: give an Identity, dns_ids, srv_ids or ips")
        n = len(certs)
        arrays = [(ctypes.c_char * len(c)).from_buffer_copy(c) for c in certs]
        ptrs = (c_void_p * n)(*[ctypes.addressof(a) for a in arrays])
        lens = (c_size_t * n)(*[len(c) for c in certs])
        flags = _match_flags(legacy_cn, accept_sibling) | (FLAG_NAMES_ONLY if names_only else 0)
        out = c_void_p()
        buf = _ffi.errbuf()
        with _c_identity(ident) as idh, self._use() as h:
            status = lib.mailsrv_cert_check(h, ptrs, lens, n, idh, flags, byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_cert_result_free(out)  # NULL on failure
            _check(status, buf.value)
        if not out.value:
            raise MailsrvError(Status.PANIC, "the library reported OK without a result")
        try:
            return CertMatch(
                matched=_text(lib.mailsrv_cert_result_matched(out)),
                kind=MatchKind(lib.mailsrv_cert_result_kind(out)),
                path_len=int(lib.mailsrv_cert_result_path_len(out)),
            )
        finally:
            lib.mailsrv_cert_result_free(out)

    # ---- connections

    def _connect_args(
        self,
        host: StrOrBytes,
        port: int,
        security: Union[Security, int],
        sni: Optional[StrOrBytes],
        identity: Optional[Identity],
        legacy_cn: bool,
        accept_sibling: bool,
    ) -> Tuple[bytes, int, int, Optional[bytes], Optional[Identity], int]:
        if identity is not None and not isinstance(identity, Identity):
            raise TypeError(f"identity must be a mailsrv.Identity, not {type(identity).__name__}")
        if identity is not None and not identity:
            raise _invalid("the identity is empty")
        return (
            _c_text(host, "host"),
            _c_uint(port, "port", 0xFFFF),
            _c_uint(security, "security", _U32_MAX),
            None if sni is None else _c_text(sni, "sni"),
            identity,
            _match_flags(legacy_cn, accept_sibling),
        )

    def connect(
        self,
        host: StrOrBytes,
        port: int,
        security: Union[Security, int] = Security.IMPLICIT_TLS,
        sni: Optional[StrOrBytes] = None,
        identity: Optional[Identity] = None,
        *,
        legacy_cn: bool = False,
        accept_sibling: bool = False,
        addresses: Optional[Sequence[StrOrBytes]] = None,
        fd: Optional[int] = None,
        pins: Sequence[bytes] = (),
        pin_mode: Union[PinMode, int] = PinMode.REQUIRE,
        ca_pem: Union[None, bytes, str, Sequence[Union[bytes, str]]] = None,
        client_cert: Optional[Tuple[Union[bytes, str], Union[bytes, str]]] = None,
    ) -> TlsStream:
        """Connects to a mail server and returns a verified :class:`TlsStream`, blocking
        (the GIL is released meanwhile).

        Bring-your-own-TLS options: ``fd``, a stream socket you already connected (through
        a SOCKS or HTTP proxy, Tor): nothing is resolved, mailsrv works on a duplicate (keep
        or close yours). ``pins``: SHA-256 digests of SubjectPublicKeyInfos
        (:func:`spki_sha256`); ``pin_mode`` REQUIRE (the usual check and a pinned key) or
        TRUST (a pinned key alone suffices: a self-signed server the user accepted).
        ``ca_pem``: CA certificates for this connection only, instead of the context's.
        ``client_cert``: (certificate PEM, key PEM) for a server that requires one.

        ``addresses``: IP addresses the caller resolved ("192.0.2.1", "2001:db8::1"): the
        connection goes to these (Happy Eyeballs) and nothing is resolved; SNI and the
        certificate check still use ``host``. A bad one raises INVALID_ARG with the reason.

        ``host``: a host name (IDN allowed) or an IP literal, resolved through the context's
        resolver, then TCP with Happy Eyeballs. ``security``: implicit TLS or the protocol's
        STARTTLS, run strictly (no plaintext fallback). ``sni``: the TLS server name; None
        means the host's own name (none for an IP literal). ``identity``: what the
        certificate must prove; None means DNS-ID = host (IP-ID for an IP literal). TLS 1.2
        at least; always a full handshake.

        :raises MailsrvError: INVALID_ARG (before any traffic), DNS errors, CONNECT_FAILED,
            TIMEOUT, PROTOCOL, CONNECTION_CLOSED, the precise certificate status
            (CERT_EXPIRED, UNKNOWN_ISSUER, NAME_MISMATCH, ...), HANDSHAKE.
        """
        h_host, h_port, sec, h_sni, ident, flags = self._connect_args(
            host, port, security, sni, identity, legacy_cn, accept_sibling
        )
        out = c_void_p()
        buf = _ffi.errbuf()
        extras = ConnectExtras(fd, pins, pin_mode, ca_pem, client_cert)
        if addresses is not None or extras.any():
            if addresses is None:
                addresses = []
            if isinstance(addresses, (str, bytes)):
                addresses = [addresses]
            with _c_identity(ident) as idh, _c_connect_opts(
                h_host, h_port, sec, h_sni, idh, flags, addresses, extras
            ) as opts, self._use() as h:
                status = lib.mailsrv_connect(h, opts, byref(out), buf, len(buf))
            if status != Status.OK:
                lib.mailsrv_tls_stream_free(out)  # NULL on failure
                _check(status, buf.value)
            return TlsStream._wrap(out.value)
        with _c_identity(ident) as idh, self._use() as h:
            status = lib.mailsrv_connect_with_sni(h, h_host, h_port, sec, h_sni, idh, flags, byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_tls_stream_free(out)  # NULL on failure
            _check(status, buf.value)
        return TlsStream._wrap(out.value)

    def starttls_plain(
        self,
        host: StrOrBytes,
        port: int,
        security: Union[Security, int],
        *,
        addresses: Optional[Sequence[StrOrBytes]] = None,
        fd: Optional[int] = None,
    ) -> PlainSocket:
        """Runs the STARTTLS dialogue of ``security`` (STARTTLS_IMAP, _POP3 or _SMTP) to the
        server's go-ahead, strictly (no plaintext fallback), and hands the plain socket back
        for your own TLS stack: wrap ``result.sock`` with ``ssl.SSLContext.wrap_socket``
        (SNI and identity as the binding says), then ask for the capabilities again.
        ``addresses``/``fd`` as in :meth:`connect`.

        :raises MailsrvError: INVALID_ARG (not a STARTTLS mode), DNS errors, CONNECT_FAILED,
            TIMEOUT, PROTOCOL, CONNECTION_CLOSED.
        """
        h_host, h_port, sec, _sni, _ident, flags = self._connect_args(host, port, security, None, None, False, False)
        if isinstance(addresses, (str, bytes)):
            addresses = [addresses]
        out = c_void_p()
        buf = _ffi.errbuf()
        with _c_connect_opts(
            h_host, h_port, sec, None, None, flags, addresses or [], ConnectExtras(fd=fd)
        ) as opts, self._use() as h:
            status = lib.mailsrv_connect_starttls_plain(h, opts, byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_plain_socket_free(out)
            _check(status, buf.value)
        try:
            greeting = _text(lib.mailsrv_plain_socket_greeting(out))
            peer = _text(lib.mailsrv_plain_socket_peer_address(out))
            taken = int(lib.mailsrv_plain_socket_take_fd(out))
        finally:
            lib.mailsrv_plain_socket_free(out)
        if taken < 0:
            raise MailsrvError(Status.PANIC, "the plain socket had no descriptor")
        return PlainSocket(sock=socket.socket(fileno=taken), greeting=greeting, peer_address=peer)

    def verify_srv_authenticity_with_chains(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        target: StrOrBytes,
        port: int,
        probe_chain: Optional[Sequence[bytes]],
        target_chain: Optional[Sequence[bytes]],
        *,
        names_only: bool = False,
        probe: bool = True,
        accept_sibling: bool = False,
        require_secure: bool = False,
    ) -> Authenticity:
        """:meth:`verify_srv_authenticity` for a client with its own TLS stack that made the
        probe (SNI = the mail domain) and the reconnect (SNI = the target) itself: the same
        verdict, evidence and binding from the same rules, with these chains (DER, leaf
        first; None: that connection failed). ``names_only``: your stack validated the paths,
        mailsrv checks only the names. DNSSEC and DANE are judged as always (DANE against
        ``target_chain``); mailsrv opens no connection.

        :raises MailsrvError: INVALID_ARG, TIMEOUT, NO_TRUST_ANCHORS.
        """
        args = self._auth_args(domain, service, target, port, probe, False, accept_sibling, require_secure)
        flags = args[4] | (FLAG_NAMES_ONLY if names_only else 0)
        chains = c_void_p()
        _check(lib.mailsrv_peer_chains_new(byref(chains)), "mailsrv_peer_chains_new")
        out = c_void_p()
        buf = _ffi.errbuf()
        try:
            for which, chain in ((0, probe_chain), (1, target_chain)):
                for der in _der_list(list(chain)) if chain else []:
                    arr, n = _bytes_arg(der)
                    _check(lib.mailsrv_peer_chains_add_cert(chains, which, ctypes.addressof(arr), n), "bad certificate")
            with self._use() as h:
                status = lib.mailsrv_verify_srv_authenticity_with_chains(
                    h, args[0], args[1], args[2], args[3], flags, chains, byref(out), buf, len(buf)
                )
        finally:
            lib.mailsrv_peer_chains_free(chains)
        if status != Status.OK:
            lib.mailsrv_authenticity_free(out)
            _check(status, buf.value)
        return _take_authenticity(out.value)

    def connect_async(
        self,
        host: StrOrBytes,
        port: int,
        callback: ConnectCallback,
        security: Union[Security, int] = Security.IMPLICIT_TLS,
        sni: Optional[StrOrBytes] = None,
        identity: Optional[Identity] = None,
        *,
        legacy_cn: bool = False,
        accept_sibling: bool = False,
        addresses: Optional[Sequence[StrOrBytes]] = None,
    ) -> int:
        """:meth:`connect` without blocking; returns the request id (for :meth:`cancel`,
        which drops a half-open connection). ``callback(request_id, outcome)`` runs exactly
        once, like discover_async's: ``outcome`` is a :class:`TlsStream` (yours to close) or
        a :class:`MailsrvError`. ``addresses`` as for :meth:`connect`.

        :raises MailsrvError: when the request could not start (then no callback runs).
        """
        if not callable(callback):
            raise TypeError("callback must be callable")
        h_host, h_port, sec, h_sni, ident, flags = self._connect_args(
            host, port, security, sni, identity, legacy_cn, accept_sibling
        )
        if addresses is not None:
            if isinstance(addresses, (str, bytes)):
                addresses = [addresses]
            with _c_identity(ident) as idh, _c_connect_opts(
                h_host, h_port, sec, h_sni, idh, flags, addresses
            ) as opts:
                return self._start_async(
                    _STREAM,
                    callback,
                    lambda h, token, rid: lib.mailsrv_connect_async(h, opts, _trampoline, token, rid),
                )
        with _c_identity(ident) as idh:
            return self._start_async(
                _STREAM,
                callback,
                lambda h, token, rid: lib.mailsrv_connect_with_sni_async(
                    h, h_host, h_port, sec, h_sni, idh, flags, _trampoline, token, rid
                ),
                f"host {_shown(host)}, port {port!r}, security {security!r} or sni {_shown(sni)} is malformed "
                "(host: a host name or IP literal; port: 1..65535; sni: a host name)",
            )

    def connect_binding(self, binding: Union[Binding, StrOrBytes]) -> TlsStream:
        """Connects exactly as ``binding`` says (a :class:`Binding` or its stored text) and
        returns a verified :class:`TlsStream`, blocking: the connection to send the user's
        credentials on. DANE TLSA records are enforced when the binding says so; a TLSA
        state that cannot be judged refuses the connection.

        :raises MailsrvError: INVALID_ARG (bad binding text), DNS errors, CONNECT_FAILED,
            TIMEOUT, PROTOCOL, DANE_MISMATCH, the precise certificate status, HANDSHAKE.
        """
        out = c_void_p()
        buf = _ffi.errbuf()
        with _c_binding(binding) as bh, self._use() as h:
            status = lib.mailsrv_connect_with_binding(h, bh, 0, byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_tls_stream_free(out)  # NULL on failure
            _check(status, buf.value)
        return TlsStream._wrap(out.value)

    def connect_binding_async(self, binding: Union[Binding, StrOrBytes], callback: ConnectCallback) -> int:
        """:meth:`connect_binding` without blocking; ``callback(request_id, outcome)`` runs
        exactly once with a :class:`TlsStream` or a :class:`MailsrvError`. Returns the
        request id."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        with _c_binding(binding) as bh:
            return self._start_async(
                _STREAM,
                callback,
                lambda h, token, rid: lib.mailsrv_connect_with_binding_async(h, bh, 0, _trampoline, token, rid),
            )

    # ---- authenticity of an SRV answer

    @staticmethod
    def _auth_args(
        domain: StrOrBytes,
        service: ServiceArg,
        target: StrOrBytes,
        port: int,
        probe: bool,
        keep_probe: bool,
        accept_sibling: bool,
        require_secure: bool = False,
    ) -> Tuple[bytes, int, bytes, int, int]:
        flags = (
            (0 if probe else FLAG_NO_PROBE)
            | (FLAG_KEEP_PROBE if keep_probe else 0)
            | (FLAG_ACCEPT_SIBLING_SERVICE if accept_sibling else 0)
            | (FLAG_REQUIRE_SECURE if require_secure else 0)
        )
        return (
            _c_text(domain, "domain"),
            _one_service(service),
            _c_text(target, "target"),
            _c_uint(port, "port", 0xFFFF),
            flags,
        )

    def verify_srv_authenticity(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        target: StrOrBytes,
        port: int,
        probe: bool = True,
        keep_probe: bool = False,
        accept_sibling: bool = False,
        *,
        require_secure: bool = False,
    ) -> Authenticity:
        """Judges one service's SRV answer (``_service._tcp.domain`` -> ``target``:``port``),
        blocking: may it change an account without asking the user?

        The SRV RRset is re-read through the validating resolver: bogus -> REJECTED;
        DNSSEC-secure and holding the target -> AUTHENTIC (evidence DNSSEC); secure without
        it -> REJECTED. Otherwise (``probe``) the target is asked with SNI = the mail domain
        and must prove the SRV-ID ``_service.domain`` or the DNS-ID ``domain``, and,
        concurrently, with SNI = the target, its own DNS-ID. Both -> AUTHENTIC; the probe
        alone -> UNVERIFIED with target_verified False; the probe failing -> UNVERIFIED. No
        credentials are ever sent. ``probe=False``: never connect (unproven answers are
        UNVERIFIED). ``require_secure``: only a DNSSEC-secure answer can be AUTHENTIC (no
        probe). ``keep_probe``: keep the verified probe connection as
        ``probe_stream`` (to try the user's login before saving the account).

        :raises MailsrvError: INVALID_ARG, TIMEOUT, NO_TRUST_ANCHORS (the verdict itself is
            never an exception).
        """
        args = self._auth_args(domain, service, target, port, probe, keep_probe, accept_sibling, require_secure)
        out = c_void_p()
        buf = _ffi.errbuf()
        with self._use() as h:
            status = lib.mailsrv_verify_srv_authenticity(h, *args, byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_authenticity_free(out)
            _check(status, buf.value)
        return _take_authenticity(out.value)

    def verify_srv_authenticity_async(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        target: StrOrBytes,
        port: int,
        callback: AuthenticityCallback,
        probe: bool = True,
        keep_probe: bool = False,
        accept_sibling: bool = False,
        *,
        require_secure: bool = False,
    ) -> int:
        """:meth:`verify_srv_authenticity` without blocking; returns the request id.
        ``callback(request_id, outcome)`` gets an :class:`Authenticity` or a MailsrvError,
        exactly once."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        args = self._auth_args(domain, service, target, port, probe, keep_probe, accept_sibling, require_secure)
        return self._start_async(
            _AUTHENTICITY,
            callback,
            lambda h, token, rid: lib.mailsrv_verify_srv_authenticity_async(h, *args, _trampoline, token, rid),
            f"domain {_shown(domain)} or target {_shown(target)} is not a domain name, or port {port!r} is 0",
        )

    # ---- account setup

    def autoconfigure(self, address: StrOrBytes, probe: bool = True) -> AccountSetup:
        """Account setup in one call (mailsrv_autoconfigure): discovers every service of
        ``address`` and judges every endpoint found (DNSSEC, else the TLS probe, as
        :meth:`verify_srv_authenticity`), all at once, blocking. ``probe=False``: never
        connect (unproven answers are UNVERIFIED).

        :raises InvalidArgument: a malformed address. :raises Timeout: the deadline passed.
        :raises NoTrustAnchors: no CA could be loaded.
        """
        addr = _c_text(address, "address")
        flags = 0 if probe else FLAG_NO_PROBE
        out = c_void_p()
        buf = _ffi.errbuf()
        with self._use() as h:
            status = lib.mailsrv_autoconfigure(h, addr, flags, byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_autoconfig_free(out)
            _check(status, buf.value)
        return _take_autoconfig(out.value)

    def autoconfigure_async(
        self,
        address: StrOrBytes,
        callback: Callable[[int, Union[AccountSetup, MailsrvError]], Any],
        probe: bool = True,
    ) -> int:
        """:meth:`autoconfigure` without blocking; returns the request id.
        ``callback(request_id, outcome)`` gets an :class:`AccountSetup` or a MailsrvError,
        exactly once."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        addr = _c_text(address, "address")
        flags = 0 if probe else FLAG_NO_PROBE
        return self._start_async(
            _AUTOCONFIG,
            callback,
            lambda h, token, rid: lib.mailsrv_autoconfigure_async(h, addr, flags, _trampoline, token, rid),
            f"address {_shown(address)} is not an e-mail address or mail domain",
        )

    @staticmethod
    def _account_args(
        address: StrOrBytes,
        sources: Optional[Iterable[Union[Source, int, str]]],
        plain_http: bool,
        probe: bool,
        require_secure: bool,
        guess: bool = False,
    ) -> Tuple[bytes, int, int]:
        addr = _c_text(address, "address")
        mask = _source_mask(sources, plain_http, guess)
        flags = (0 if probe else FLAG_NO_PROBE) | (FLAG_REQUIRE_SECURE if require_secure else 0)
        return addr, mask, flags

    def discover_account(
        self,
        address: StrOrBytes,
        *,
        sources: Optional[Iterable[Union[Source, int, str]]] = None,
        plain_http: bool = True,
        probe: bool = True,
        require_secure: bool = False,
        guess: bool = False,
    ) -> Account:
        """Finds the servers of ``address`` ("joe@example.com": the local part is needed for
        the documents) from every source mail clients use -- PACC, provider autoconfig, SRV,
        the ISPDB, the MX's provider, Exchange Autodiscover, plain HTTP, and guessing when
        asked -- and judges every server found like an SRV target
        (docs/account-discovery.md). Blocks (the GIL is released meanwhile).

        A source's failure does not raise: see :attr:`Account.sources`; when no source
        found anything the :class:`Account` has no candidates.

        :param sources: the sources to ask (:class:`Source` values or names); None: every
            source but GUESS.
        :param plain_http: ask the legacy plain-HTTP URL; a change check of a saved account must
            pass False.
        :param guess: also guess host names (last, opt-in).
        :param probe: judge servers that no tamper-proof evidence covers with the TLS probe;
            False: they are UNVERIFIED.
        :param require_secure: only DNSSEC and DANE count as evidence.
        :raises InvalidArgument: a malformed address, an unknown source.
        :raises Timeout: the deadline passed. :raises ContextClosed: the context is closed.
        """
        addr, mask, flags = self._account_args(address, sources, plain_http, probe, require_secure, guess)
        out = c_void_p()
        buf = _ffi.errbuf()
        with self._use() as h:
            status = lib.mailsrv_account_discover(h, addr, mask, flags, byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_account_free(out)
            _check(status, buf.value)
        return _take_account(out.value)

    def discover_account_async(
        self,
        address: StrOrBytes,
        callback: AccountCallback,
        *,
        sources: Optional[Iterable[Union[Source, int, str]]] = None,
        plain_http: bool = True,
        probe: bool = True,
        require_secure: bool = False,
        guess: bool = False,
    ) -> int:
        """:meth:`discover_account` without blocking; returns the request id (for
        :meth:`cancel`). ``callback(request_id, outcome)`` gets an :class:`Account` or a
        :class:`MailsrvError` (CANCELLED, SHUTDOWN, ...), exactly once, never inside this
        call."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        addr, mask, flags = self._account_args(address, sources, plain_http, probe, require_secure, guess)
        return self._start_async(
            _ACCOUNT,
            callback,
            lambda h, token, rid: lib.mailsrv_account_discover_async(
                h, addr, mask, flags, _trampoline, token, rid
            ),
            f"address {_shown(address)} is not an e-mail address (user@domain)",
        )

    # ---- change decision

    @staticmethod
    def _change_args(
        domain: StrOrBytes,
        service: ServiceArg,
        saved_host: StrOrBytes,
        saved_port: int,
        origin: Union[Origin, int],
        history: Optional[History],
        now: int,
        min_age_s: int,
        probe: bool,
        require_secure: bool = False,
    ) -> Tuple[Tuple[bytes, int, bytes, int, int], Tuple[int, int, int]]:
        if history is not None and not isinstance(history, History):
            raise TypeError(f"history must be a mailsrv.History, not {type(history).__name__}")
        leading = (
            _c_text(domain, "domain"),
            _one_service(service),
            _c_text(saved_host, "saved_host"),
            _c_uint(saved_port, "saved_port", 0xFFFF),
            _c_uint(origin, "origin", _U32_MAX),
        )
        trailing = (
            _c_uint(now, "now", _U64_MAX),
            _c_uint(min_age_s, "min_age_s", _U64_MAX),
            (0 if probe else FLAG_NO_PROBE) | (FLAG_REQUIRE_SECURE if require_secure else 0),
        )
        return leading, trailing

    def srv_change_check(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        saved_host: StrOrBytes,
        saved_port: int,
        origin: Union[Origin, int] = Origin.SRV,
        history: Optional[History] = None,
        now: int = 0,
        min_age_s: int = 0,
        probe: bool = True,
        *,
        require_secure: bool = False,
    ) -> Change:
        """The change check for one saved service, blocking: re-discovers ``service`` for
        ``domain``; when its first endpoint differs from ``saved_host``:``saved_port`` (and
        the configuration came from SRV), judges it like :meth:`verify_srv_authenticity`;
        records the answer in ``history`` (in memory: call ``history.save()``); then decides
        NO_CHANGE, UPDATE (authenticated), ASK_USER (unverified but seen consistently for
        ``min_age_s``, 0 = 7 days), WAIT (unverified and newer: see ``wait_until``) or
        REJECT. ``origin=Origin.USER`` (typed by the user) never changes. ``now``: Unix
        seconds, 0 = the current time. ``probe=False``: never connect.

        :raises MailsrvError: INVALID_ARG, TIMEOUT, NO_TRUST_ANCHORS; SHUTDOWN for a closed
            context or history.
        """
        leading, trailing = self._change_args(
            domain, service, saved_host, saved_port, origin, history, now, min_age_s, probe, require_secure
        )
        return self._change_blocking(lib.mailsrv_srv_change_check, leading, history, trailing)

    def _change_blocking(
        self, fn: Callable[..., int], leading: Tuple[Any, ...], history: Optional[History], trailing: Tuple[Any, ...]
    ) -> Change:
        """Runs a blocking change check ``fn`` (srv or account) with the history in use."""
        out = c_void_p()
        buf = _ffi.errbuf()
        with contextlib.ExitStack() as stack:
            hh = stack.enter_context(history._use()) if history is not None else None
            h = stack.enter_context(self._use())
            status = fn(h, *leading, hh, *trailing, byref(out), buf, len(buf))
        if status != Status.OK:
            lib.mailsrv_change_free(out)
            _check(status, buf.value)
        return _take_change(out.value)

    def _change_async(
        self,
        fn: Callable[..., int],
        leading: Tuple[Any, ...],
        history: Optional[History],
        trailing: Tuple[Any, ...],
        callback: ChangeCallback,
        refused: str = "",
    ) -> int:
        """Starts an async change check ``fn`` (srv or account) with the history in use."""
        with contextlib.ExitStack() as stack:
            hh = stack.enter_context(history._use()) if history is not None else None
            rid = self._start_async(
                _CHANGE,
                callback,
                lambda h, token, rid: fn(h, *leading, hh, *trailing, _trampoline, token, rid),
                refused,
            )
        return rid

    def srv_change_check_async(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        saved_host: StrOrBytes,
        saved_port: int,
        callback: ChangeCallback,
        origin: Union[Origin, int] = Origin.SRV,
        history: Optional[History] = None,
        now: int = 0,
        min_age_s: int = 0,
        probe: bool = True,
        *,
        require_secure: bool = False,
    ) -> int:
        """:meth:`srv_change_check` without blocking; returns the request id.
        ``callback(request_id, outcome)`` gets a :class:`Change` or a MailsrvError, exactly
        once. The history may be closed before the callback runs (the check keeps its own
        reference to it)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        leading, trailing = self._change_args(
            domain, service, saved_host, saved_port, origin, history, now, min_age_s, probe, require_secure
        )
        return self._change_async(lib.mailsrv_srv_change_check_async, leading, history, trailing, callback)

    def account_change_check(
        self,
        address: StrOrBytes,
        service: ServiceArg,
        saved_host: StrOrBytes,
        saved_port: int,
        *,
        origin: Union[Origin, int],
        history: Optional[History] = None,
        now: int = 0,
        min_age_s: int = 0,
        probe: bool = True,
        require_secure: bool = False,
    ) -> Change:
        """The change check of an account set up by :meth:`discover_account` (the
        multi-source successor of :meth:`srv_change_check`; mailsrv_account_change_check),
        blocking: re-discovers ``address`` from every source but plain HTTP, looks only at
        the candidates of the saved ``service`` (IMAP never turns into POP3), records the
        server they name in ``history``, then decides under the SRV check's rules.
        ``origin`` (required: :meth:`Origin.of_source` of the setup's source, or
        ``Origin.USER``): a user-typed configuration never changes. UPDATE only for an
        AUTHENTIC candidate with tamper-proof evidence, always with ``binding``; a server
        only the ISPDB or plain HTTP names gives WAIT, then ASK_USER, never UPDATE.

        :raises InvalidArgument: not ``user@domain``, not one service, an unknown origin.
        :raises MailsrvError: TIMEOUT, NO_TRUST_ANCHORS; SHUTDOWN for a closed context or
            history.
        """
        leading, trailing = self._change_args(
            address, service, saved_host, saved_port, origin, history, now, min_age_s, probe, require_secure
        )
        return self._change_blocking(lib.mailsrv_account_change_check, leading, history, trailing)

    def account_change_check_async(
        self,
        address: StrOrBytes,
        service: ServiceArg,
        saved_host: StrOrBytes,
        saved_port: int,
        callback: ChangeCallback,
        *,
        origin: Union[Origin, int],
        history: Optional[History] = None,
        now: int = 0,
        min_age_s: int = 0,
        probe: bool = True,
        require_secure: bool = False,
    ) -> int:
        """:meth:`account_change_check` without blocking; returns the request id.
        ``callback(request_id, outcome)`` gets a :class:`Change` or a MailsrvError, exactly
        once."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        leading, trailing = self._change_args(
            address, service, saved_host, saved_port, origin, history, now, min_age_s, probe, require_secure
        )
        return self._change_async(
            lib.mailsrv_account_change_check_async,
            leading,
            history,
            trailing,
            callback,
            f"address {_shown(address)} is not user@domain, or service or origin is unknown",
        )

    # ---- loop mode

    def notify_fd(self) -> int:
        """Loop mode: the descriptor to watch for readability (poll, select, asyncio
        add_reader); then call :meth:`dispatch`. Borrowed: do not read from or close it.

        :raises MailsrvError: INVALID_ARG in thread mode.
        """
        with self._use() as h:
            fd = int(lib.mailsrv_ctx_notify_fd(h))
        if fd < 0:
            raise _invalid("no notify descriptor: the context is not in loop dispatch mode")
        return fd

    def dispatch(self) -> int:
        """Loop mode: runs every waiting callback on this thread; returns how many ran.

        :raises MailsrvError: INVALID_ARG (thread mode), IN_CALLBACK (from a callback),
            SHUTDOWN (closed context).
        """
        ran = c_size_t()
        with self._use() as h:
            status = lib.mailsrv_ctx_dispatch(h, byref(ran))
        if status == Status.INVALID_ARG:
            raise _invalid("the context is not in loop dispatch mode")
        _check(status)
        return int(ran.value)


# --------------------------------------------------------------------------- asyncio


def _dispose(outcome: Any) -> None:
    """Closes what nobody will receive (a stream, a kept probe): the awaiting task is gone."""
    close = getattr(outcome, "close", None)
    if close is not None and not isinstance(outcome, BaseException):
        try:
            close()
        except Exception:  # pragma: no cover
            _log.exception("mailsrv: closing an unclaimed result failed")


def _settle(fut: "asyncio.Future[Any]", outcome: Any) -> None:
    if fut.done():  # the awaiting task was cancelled
        _dispose(outcome)
        return
    if isinstance(outcome, MailsrvError):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


def _settle_from_anywhere(loop: asyncio.AbstractEventLoop, fut: "asyncio.Future[Any]", outcome: Any) -> None:
    """Settles ``fut`` on its loop, from the loop's thread (directly) or any other."""
    try:
        running: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        _settle(fut, outcome)
        return
    try:
        loop.call_soon_threadsafe(_settle, fut, outcome)
    except RuntimeError:  # the loop is closed: nobody waits any more
        _dispose(outcome)


# The StreamReader buffer limit of AsyncContext.open_connection (as asyncio's).
STREAM_LIMIT = 2**16


class TlsTransport(asyncio.Transport):
    """An :class:`asyncio.Transport` over a non-blocking :class:`TlsStream`.

    Made by :meth:`AsyncContext.open_connection` and :func:`open_stream`; it owns the
    stream and closes it (close_notify) when the transport closes. It follows the stream's
    poll rule: it reads until the stream says "would block" before it waits for the
    descriptor to become readable (decrypted data can wait inside the stream), and it
    watches for writability while encrypted records are queued (``wants_write``).

    ``get_extra_info``: ``"peername"`` (the peer address text), ``"mailsrv_stream"`` (the
    :class:`TlsStream`, for ``tls_version``, ``matched_identity``, ``greeting``,
    ``capabilities``, ``peer_chain``), ``"peercert_chain"`` (DER list), ``"cipher"``,
    ``"tls_version"``, ``"sni"``.
    """

    _READ_SIZE = 65536

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: TlsStream, protocol: asyncio.BaseProtocol) -> None:
        super().__init__()
        self._loop = loop
        self._stream = stream
        self._protocol = protocol
        self._fd = stream.fileno()
        self._buffer = bytearray()
        self._closing = False
        self._lost = False
        self._reading = False
        self._reader_added = False
        self._writer_added = False
        self._protocol_paused = False
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._extra = {
            "peername": stream.peer_address,
            "mailsrv_stream": stream,
            "peercert_chain": stream.peer_chain,
            "cipher": stream.cipher,
            "tls_version": stream.tls_version,
            "sni": stream.sni,
        }
        stream.set_nonblocking(True)

    def _start(self) -> None:
        self._protocol.connection_made(self)
        self.resume_reading()

    def __repr__(self) -> str:
        state = "closed" if self._lost else ("closing" if self._closing else "open")
        return f"<mailsrv.TlsTransport {self._stream.host} at {self._stream.peer_address} {state}>"

    # ---- BaseTransport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def close(self) -> None:
        """Stops reading; sends what is buffered, then close_notify; then connection_lost(None)."""
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        self._write_ready()  # finishes at once when nothing is queued

    def abort(self) -> None:
        """Closes at once, dropping buffered data."""
        self._closing = True
        self._buffer.clear()
        self._lose(None)

    # ---- reading

    def is_reading(self) -> bool:
        return self._reading

    def pause_reading(self) -> None:
        self._stop_reading()

    def resume_reading(self) -> None:
        if self._closing or self._reading:
            return
        self._reading = True
        # Poll rule: data may already wait inside the stream; drain it before the fd.
        self._loop.call_soon(self._read_ready)

    def _stop_reading(self) -> None:
        self._reading = False
        if self._reader_added:
            self._loop.remove_reader(self._fd)
            self._reader_added = False

    def _read_ready(self) -> None:
        if not self._reading or self._lost:
            return
        proto = cast(asyncio.Protocol, self._protocol)
        while self._reading:
            try:
                data = self._stream.read(self._READ_SIZE)
            except (MailsrvError, ValueError) as e:
                self._lose(e)
                return
            if data is None:  # nothing buffered, socket empty: now wait for the fd
                if not self._reader_added:
                    self._loop.add_reader(self._fd, self._read_ready)
                    self._reader_added = True
                return
            if not data:  # close_notify: clean end of stream
                self._stop_reading()
                keep_open = proto.eof_received()
                if not keep_open:
                    self.close()
                return
            proto.data_received(data)

    # ---- writing

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    def can_write_eof(self) -> bool:
        return False  # TLS has no half close: close() sends close_notify

    def write_eof(self) -> None:
        raise NotImplementedError("TLS has no half close; close() sends close_notify")

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, bytearray or memoryview, not {type(data).__name__}")
        if self._closing or self._lost:
            raise RuntimeError("write() on a closing mailsrv TlsTransport")
        if not data:
            return
        self._buffer += data
        self._write_ready()
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        if self._lost:
            return
        try:
            while self._buffer:
                n = self._stream.write(self._buffer)
                if not n:
                    break
                del self._buffer[:n]
            flushed = self._stream.flush_tls() if self._stream.wants_write() else True
        except (MailsrvError, ValueError) as e:
            self._lose(e)
            return
        if self._buffer or not flushed:
            if not self._writer_added:
                self._loop.add_writer(self._fd, self._write_ready)
                self._writer_added = True
            return
        if self._writer_added:
            self._loop.remove_writer(self._fd)
            self._writer_added = False
        self._maybe_resume_protocol()
        if self._closing:
            self._lose(None)

    def _maybe_pause_protocol(self) -> None:
        if not self._protocol_paused and len(self._buffer) > self._high:
            self._protocol_paused = True
            cast(asyncio.Protocol, self._protocol).pause_writing()

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and len(self._buffer) <= self._low:
            self._protocol_paused = False
            cast(asyncio.Protocol, self._protocol).resume_writing()

    # ---- the end

    def _lose(self, exc: Optional[BaseException]) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._stop_reading()
        if self._writer_added:
            self._loop.remove_writer(self._fd)
            self._writer_added = False
        self._stream.close()  # close_notify; the queue is empty (or given up), so it is quick
        self._loop.call_soon(self._protocol.connection_lost, exc)


async def open_stream(
    stream: TlsStream, *, limit: int = STREAM_LIMIT
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Wraps a :class:`TlsStream` you already have (a kept authenticity probe,
    ``Authenticity.probe_stream``, or one from :meth:`Context.connect`) into an
    ``(asyncio.StreamReader, asyncio.StreamWriter)`` pair on the running loop. The stream
    becomes non-blocking and belongs to the transport from now on: close the writer
    (``writer.close(); await writer.wait_closed()``), not the stream.

    :raises ValueError: the stream is closed.
    """
    if not isinstance(stream, TlsStream):
        raise TypeError(f"stream must be a mailsrv.TlsStream, not {type(stream).__name__}")
    if stream.closed:
        raise ValueError("the TlsStream is closed")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = TlsTransport(loop, stream, protocol)
    transport._start()
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


class AsyncContext:
    """asyncio front end of a :class:`Context`.

    In loop mode (the default here) the context's notify descriptor is watched with
    ``loop.add_reader`` and callbacks run inside ``Context.dispatch`` on the event loop's
    thread. With ``dispatch=Dispatch.THREAD`` callbacks run on a library thread and are
    handed to the loop with ``loop.call_soon_threadsafe`` instead.

    One event loop at a time: it binds to the loop of its first coroutine and moves to a
    new loop once the old one has stopped, so it can serve several ``asyncio.run`` calls in
    turn; using it from a second loop while the first still runs raises RuntimeError.

    Close it with ``await actx.aclose()`` or ``async with``: that never blocks the loop,
    even while blocking calls on :attr:`context` run in other threads (the context is then
    freed by the last of them). ``close()`` is the blocking variant, for use outside a loop.

    :param nameservers: as :class:`Context`.
    :param trust_anchor_file: as :class:`Context`.
    :param ca_file: as :class:`Context`.
    :param timeout_ms: as :class:`Context`.
    :param dispatch: ``Dispatch.LOOP`` (default) or ``Dispatch.THREAD``.
    :param require_secure: as :class:`Context`.
    :param rng_seed: as :class:`Context`.
    :param ispdb_url: as :class:`Context`.
    :param fetch_timeout_ms: as :class:`Context`.
    :param ispdb_timeout_ms: as :class:`Context`.
    :param service_ports: as :class:`Context`.
    :param autodiscover: as :class:`Context` (it runs on a library thread, not in the loop).

    :attr:`context` is the underlying :class:`Context` (e.g. for blocking calls from
    other threads).
    """

    def __init__(
        self,
        nameservers: Union[Sequence[str], str] = (),
        *,
        trust_anchor_file: Optional[PathArg] = None,
        ca_file: Optional[PathArg] = None,
        timeout_ms: Optional[int] = None,
        dispatch: Union[Dispatch, int] = Dispatch.LOOP,
        require_secure: bool = False,
        rng_seed: Optional[int] = None,
        ispdb_url: Optional[StrOrBytes] = None,
        fetch_timeout_ms: Optional[int] = None,
        ispdb_timeout_ms: Optional[int] = None,
        service_ports: Optional[Mapping[ServiceArg, int]] = None,
        autodiscover: Optional[AutodiscoverCallback] = None,
    ) -> None:
        self.context = Context(
            nameservers,
            trust_anchor_file=trust_anchor_file,
            ca_file=ca_file,
            timeout_ms=timeout_ms,
            dispatch=dispatch,
            require_secure=require_secure,
            rng_seed=rng_seed,
            ispdb_url=ispdb_url,
            fetch_timeout_ms=fetch_timeout_ms,
            ispdb_timeout_ms=ispdb_timeout_ms,
            service_ports=service_ports,
            autodiscover=autodiscover,
        )
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._fd: Optional[int] = None

    def __repr__(self) -> str:
        state = "closed" if self.context.closed else "open"
        return f"<mailsrv.AsyncContext {self.context.dispatch_mode.label} {state}>"

    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        old = self._loop
        if old is not None:
            if old.is_running():
                raise RuntimeError(
                    "this AsyncContext is in use by another event loop that is still running; "
                    "use one AsyncContext per event loop"
                )
            self._detach()  # the old loop has stopped (asyncio.run returned): move over
        if self.context.closed:
            raise ContextClosed(Status.SHUTDOWN, "the AsyncContext is closed")
        if self.context.dispatch_mode == Dispatch.LOOP:
            fd = self.context.notify_fd()
            loop.add_reader(fd, self._readable)
            self._fd = fd
        self._loop = loop
        # Completions that arrived while no loop watched the descriptor.
        if self.context.dispatch_mode == Dispatch.LOOP:
            loop.call_soon(self._readable)
        return loop

    def _readable(self) -> None:
        try:
            self.context.dispatch()
        except MailsrvError as e:
            if e.status == Status.SHUTDOWN:
                self._detach()
            else:  # pragma: no cover
                _log.error("mailsrv: dispatch failed: %s", e)

    def _detach(self) -> None:
        if self._fd is not None and self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.remove_reader(self._fd)
            except (RuntimeError, ValueError):  # pragma: no cover - a loop shutting down
                pass
        self._fd = None

    async def _run(self, start: Callable[[Callable[[int, Any], None]], int]) -> Any:
        """Starts an async request with a callback that settles a future on the loop, and
        awaits it; cancelling the awaiting task cancels the request."""
        loop = self._attach()
        fut: asyncio.Future[Any] = loop.create_future()

        def done(_rid: int, outcome: Any) -> None:
            _settle_from_anywhere(loop, fut, outcome)

        rid = start(done)
        try:
            return await fut
        except asyncio.CancelledError:
            self.context.cancel(rid)
            raise

    async def discover(
        self,
        address: StrOrBytes,
        services: ServiceArg = ALL_SERVICES,
        require_secure: bool = False,
    ) -> Discovery:
        """:meth:`Context.discover` as a coroutine. Cancelling the awaiting task cancels the
        request. Raises like the blocking call (:class:`InvalidArgument`, :class:`Timeout`,
        ...), and :class:`ContextClosed` when the context is closed meanwhile."""
        result: Discovery = await self._run(
            lambda done: self.context.discover_async(address, done, services, require_secure)
        )
        return result

    async def connect(
        self,
        host: StrOrBytes,
        port: int,
        security: Union[Security, int] = Security.IMPLICIT_TLS,
        sni: Optional[StrOrBytes] = None,
        identity: Optional[Identity] = None,
        *,
        legacy_cn: bool = False,
        accept_sibling: bool = False,
        addresses: Optional[Sequence[StrOrBytes]] = None,
    ) -> TlsStream:
        """:meth:`Context.connect` as a coroutine, returning a blocking :class:`TlsStream`
        (for a thread). For asyncio I/O use :meth:`open_connection`. Cancelling the awaiting
        task drops the half-open connection."""
        stream: TlsStream = await self._run(
            lambda done: self.context.connect_async(
                host,
                port,
                done,
                security,
                sni,
                identity,
                legacy_cn=legacy_cn,
                accept_sibling=accept_sibling,
                addresses=addresses,
            )
        )
        return stream

    async def connect_binding(self, binding: Union[Binding, StrOrBytes]) -> TlsStream:
        """:meth:`Context.connect_binding` as a coroutine."""
        stream: TlsStream = await self._run(lambda done: self.context.connect_binding_async(binding, done))
        return stream

    async def open_connection(
        self,
        host: StrOrBytes,
        port: int,
        security: Union[Security, int] = Security.IMPLICIT_TLS,
        sni: Optional[StrOrBytes] = None,
        identity: Optional[Identity] = None,
        *,
        legacy_cn: bool = False,
        accept_sibling: bool = False,
        limit: int = STREAM_LIMIT,
    ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connects like :meth:`Context.connect` (verified TLS, implicit or STARTTLS) and
        returns ``(reader, writer)``, as :func:`asyncio.open_connection` does::

            reader, writer = await actx.open_connection("mail.example.net", 993)
            writer.write(b"a1 CAPABILITY\r\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()     # close_notify sent

        The greeting and capabilities were read by the library already:
        ``writer.get_extra_info("mailsrv_stream").greeting``. ``reader`` sees what the
        server sends next. ``reader`` returns EOF after the server's close_notify; a TCP
        close without it raises :class:`ConnectionClosed` (a ConnectionResetError).

        :raises InvalidArgument: (ValueError) before any traffic.
        :raises Timeout: (TimeoutError).
        :raises CertificateError: (ConnectionError and ValueError) with the precise subclass.
        :raises ConnectFailed, ProtocolError, DnsError: as :meth:`Context.connect`.
        """
        stream = await self.connect(
            host, port, security, sni, identity, legacy_cn=legacy_cn, accept_sibling=accept_sibling
        )
        try:
            return await open_stream(stream, limit=limit)
        except BaseException:
            stream.close()
            raise

    async def verify_srv_authenticity(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        target: StrOrBytes,
        port: int,
        probe: bool = True,
        keep_probe: bool = False,
        accept_sibling: bool = False,
        *,
        require_secure: bool = False,
    ) -> Authenticity:
        """:meth:`Context.verify_srv_authenticity` as a coroutine. With ``keep_probe``,
        ``await open_stream(a.probe_stream)`` turns the verified probe connection into an
        asyncio reader/writer pair."""
        result: Authenticity = await self._run(
            lambda done: self.context.verify_srv_authenticity_async(
                domain, service, target, port, done, probe, keep_probe, accept_sibling, require_secure=require_secure
            )
        )
        return result

    async def autoconfigure(self, address: StrOrBytes, probe: bool = True) -> "AccountSetup":
        """:meth:`Context.autoconfigure` (account setup in one call) as a coroutine."""
        result: AccountSetup = await self._run(lambda done: self.context.autoconfigure_async(address, done, probe))
        return result

    async def discover_account(
        self,
        address: StrOrBytes,
        *,
        sources: Optional[Iterable[Union[Source, int, str]]] = None,
        plain_http: bool = True,
        probe: bool = True,
        require_secure: bool = False,
        guess: bool = False,
    ) -> Account:
        """:meth:`Context.discover_account` as a coroutine. Cancelling the awaiting task
        cancels the request."""
        result: Account = await self._run(
            lambda done: self.context.discover_account_async(
                address,
                done,
                sources=sources,
                plain_http=plain_http,
                probe=probe,
                require_secure=require_secure,
                guess=guess,
            )
        )
        return result

    async def srv_change_check(
        self,
        domain: StrOrBytes,
        service: ServiceArg,
        saved_host: StrOrBytes,
        saved_port: int,
        origin: Union[Origin, int] = Origin.SRV,
        history: Optional[History] = None,
        now: int = 0,
        min_age_s: int = 0,
        probe: bool = True,
        *,
        require_secure: bool = False,
    ) -> Change:
        """:meth:`Context.srv_change_check` as a coroutine."""
        result: Change = await self._run(
            lambda done: self.context.srv_change_check_async(
                domain,
                service,
                saved_host,
                saved_port,
                done,
                origin,
                history,
                now,
                min_age_s,
                probe,
                require_secure=require_secure,
            )
        )
        return result

    async def account_change_check(
        self,
        address: StrOrBytes,
        service: ServiceArg,
        saved_host: StrOrBytes,
        saved_port: int,
        *,
        origin: Union[Origin, int],
        history: Optional[History] = None,
        now: int = 0,
        min_age_s: int = 0,
        probe: bool = True,
        require_secure: bool = False,
    ) -> Change:
        """:meth:`Context.account_change_check` as a coroutine."""
        result: Change = await self._run(
            lambda done: self.context.account_change_check_async(
                address,
                service,
                saved_host,
                saved_port,
                done,
                origin=origin,
                history=history,
                now=now,
                min_age_s=min_age_s,
                probe=probe,
                require_secure=require_secure,
            )
        )
        return result

    async def aclose(self) -> None:
        """Closes the context without blocking the event loop: outstanding requests end
        (their awaiting coroutines get :class:`ContextClosed`), and when blocking calls on
        :attr:`context` are still running in other threads, this awaits the last of them
        instead of blocking. Idempotent."""
        self._detach()
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()

        def mark() -> None:
            if not closed.done():
                closed.set_result(None)

        def hook() -> None:
            try:
                running: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                mark()
            else:
                try:
                    loop.call_soon_threadsafe(mark)
                except RuntimeError:  # pragma: no cover - the loop is gone
                    pass

        self.context._when_closed(hook)
        self.context._start_close()
        await closed

    def close(self) -> None:
        """Blocking close (for code outside the event loop): stops watching the descriptor
        and closes the context, waiting for calls in progress on other threads. Inside a
        coroutine use ``await aclose()``. Idempotent."""
        self._detach()
        self.context.close()

    @property
    def closed(self) -> bool:
        """True once closing has started."""
        return self.context.closed

    async def __aenter__(self) -> "AsyncContext":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> "AsyncContext":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
