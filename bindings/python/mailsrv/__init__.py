"""mailsrv: find a user's mail servers through DNS SRV (RFC 6186, RFC 8314), DNSSEC-validated.

Python bindings (ctypes) of libmailsrv. No compiled extension: the library is found at import
time (see :mod:`mailsrv._ffi` for the search order; ``MAILSRV_LIBRARY`` overrides it).

Blocking::

    import mailsrv
    with mailsrv.Context(nameservers=["127.0.10.1:5353"], trust_anchor_file="root.ds") as ctx:
        d = ctx.discover("joe@example.com")
        imap = d.preferred(mailsrv.Purpose.ACCESS)
        if imap:
            print(imap.service.label, imap.endpoints[0].target, imap.endpoints[0].port)

Callbacks (``discover_async``) run on a library thread (``Dispatch.THREAD``, the default) or,
in ``Dispatch.LOOP`` mode, inside :meth:`Context.dispatch` on your thread once
:meth:`Context.notify_fd` is readable. :class:`AsyncContext` wires the latter into asyncio.

Results are plain, immutable Python objects copied out of the C result, which is freed at
once: nothing returned by this module points into library memory.

Errors are :class:`MailsrvError` with a :class:`Status` and a detail text. Exceptions raised
by your callbacks never reach C: they are logged on the ``mailsrv`` logger and kept in
:attr:`Context.callback_errors`.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import operator
import os
import sys
import threading
import weakref
from contextlib import contextmanager
from ctypes import byref, c_size_t, c_uint64, c_void_p
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _ffi
from ._ffi import lib

__version__ = "0.1.0"

__all__ = [
    "ALL_SERVICES",
    "AsyncContext",
    "Context",
    "Discovery",
    "Dispatch",
    "Dnssec",
    "Endpoint",
    "FLAG_ACCEPT_SIBLING_SERVICE",
    "FLAG_LEGACY_CN",
    "FLAG_REQUIRE_SECURE",
    "MatchKind",
    "MailsrvError",
    "Purpose",
    "Service",
    "ServiceAnswer",
    "SrvState",
    "Status",
    "status_str",
    "version",
]

_log = logging.getLogger("mailsrv")
_log.addHandler(logging.NullHandler())

#: MAILSRV_FLAG_REQUIRE_SECURE: only DNSSEC-secure SRV answers count.
FLAG_REQUIRE_SECURE = 1
#: MAILSRV_FLAG_LEGACY_CN: certificate checks accept a subject CN when there are no SANs.
FLAG_LEGACY_CN = 2
#: MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE: an SRV-ID also matches the sibling service's SRV-ID.
FLAG_ACCEPT_SIBLING_SERVICE = 4

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1


# --------------------------------------------------------------------------- enums


class _OpenIntEnum(IntEnum):
    """An IntEnum that maps values it does not know (a newer library) to UNKNOWN_<n>."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member


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
    CONNECT_FAILED = 400
    CONNECTION_CLOSED = 401
    PROTOCOL = 402

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

    ``Service(0)`` (the default everywhere) means all six.
    """

    IMAPS = 1
    IMAP = 2
    POP3S = 4
    POP3 = 8
    SUBMISSIONS = 16
    SUBMISSION = 32

    @property
    def label(self) -> str:
        """The library's name for one service ("imaps", ...); "" for a mask."""
        return _text(lib.mailsrv_service_name(int(self)))


#: The empty mask, which the library reads as "all six services" (the default).
ALL_SERVICES = Service(0)


class SrvState(_OpenIntEnum):
    """mailsrv_srv_state: what the SRV query of one service found."""

    FOUND = 1
    NOT_OFFERED = 2
    NO_RECORD = 3
    LOOKUP_FAILED = 4
    BOGUS = 5

    @property
    def label(self) -> str:
        """The library's name ("found", "not_offered", ...)."""
        return _text(lib.mailsrv_srv_state_name(int(self)))


class Dnssec(_OpenIntEnum):
    """mailsrv_dnssec: the DNSSEC state of an RRset, validated inside the library."""

    UNKNOWN = 0
    SECURE = 1
    INSECURE = 2
    BOGUS = 3
    INDETERMINATE = 4

    @property
    def label(self) -> str:
        """The library's name ("secure", "insecure", ...)."""
        return _text(lib.mailsrv_dnssec_name(int(self)))


class Purpose(_OpenIntEnum):
    """mailsrv_purpose: what a service is for, to pick among competing services."""

    ACCESS = 1
    SUBMISSION = 2


class Dispatch(_OpenIntEnum):
    """mailsrv_dispatch: where callbacks run."""

    #: On a library thread owned by the context (the default).
    THREAD = 0
    #: Inside :meth:`Context.dispatch` on your thread, after :meth:`Context.notify_fd` is readable.
    LOOP = 1


class MatchKind(_OpenIntEnum):
    """mailsrv_match_kind: how a certificate matched its reference identity."""

    DNS_ID = 1
    DNS_ID_WILDCARD = 2
    SRV_ID = 3
    SRV_ID_SIBLING = 4
    IP_ID = 5
    LEGACY_CN = 6


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
    """A libmailsrv call failed. ``status`` is a :class:`Status`, ``detail`` the reason."""

    status: Status
    detail: str

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(int(status), detail)
        self.status = Status(status)
        self.detail = detail or ""

    def __str__(self) -> str:
        return f"{self.status.name}: {self.detail or self.status.text}"

    def __repr__(self) -> str:
        return f"MailsrvError({self.status!r}, {self.detail!r})"


def _check(status: int, detail: Union[bytes, str, None] = None) -> None:
    if status != Status.OK:
        if isinstance(detail, bytes):
            detail = _text(detail)
        raise MailsrvError(status, detail or status_str(status))


def _invalid(detail: str) -> MailsrvError:
    return MailsrvError(Status.INVALID_ARG, detail)


StrOrBytes = Union[str, bytes]
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
    """One SRV target, in preference order, with its addresses."""

    target: str
    port: int
    priority: int
    weight: int
    ttl: int
    dnssec: Dnssec
    #: IPv6 first, then IPv4, as text.
    addresses: Tuple[str, ...]
    #: The weakest DNSSEC state over the target's AAAA and A answers.
    address_dnssec: Dnssec
    #: Why addresses are missing or incomplete; Status.OK otherwise.
    address_status: Status
    address_detail: str


@dataclass(frozen=True)
class ServiceAnswer:
    """What the SRV query of one service found."""

    service: Service
    state: SrvState
    #: Why the lookup failed (LOOKUP_FAILED, BOGUS); Status.OK otherwise.
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
    """The result of a discovery: the domain (A-label form) and one answer per service."""

    domain: str
    #: In the order imaps, imap, pop3s, pop3, submissions, submission (those queried).
    services: Tuple[ServiceAnswer, ...]
    #: The library's choice (mailsrv_discovery_preferred) for Purpose.ACCESS, or None.
    preferred_access: Optional[Service]
    #: The library's choice for Purpose.SUBMISSION, or None.
    preferred_submission: Optional[Service]

    def find(self, service: Union[Service, int]) -> Optional[ServiceAnswer]:
        """The answer for one service, or None when it was not queried."""
        for s in self.services:
            if s.service == service:
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


# --------------------------------------------------------------------------- callbacks
#
# One C trampoline serves every request of every context; it lives as long as the module.
# Each request is a token (a unique integer passed as `userdata`) in _pending, registered
# before mailsrv_srv_discover_async is called, so a callback that arrives on a library
# thread before the call has returned still finds it. The entry keeps the Python callback
# (and its context) alive and is removed when the callback runs: exactly-once delivery makes
# that the last use. A per-request CFUNCTYPE object would have to be released from inside
# its own invocation, which ctypes does not make safe; a single static one avoids that.

#: What a discover_async callback receives: the request id and a Discovery or a MailsrvError.
DiscoverCallback = Callable[[int, Union[Discovery, MailsrvError]], Any]


@dataclass
class _Pending:
    ctx: "Context"
    callback: DiscoverCallback


_pending_lock = threading.Lock()
_pending: Dict[int, _Pending] = {}
_tokens = itertools.count(1)
_tls = threading.local()  # .contexts: the contexts whose callback runs on this thread


def _callback_stack() -> List["Context"]:
    stack = getattr(_tls, "contexts", None)
    if stack is None:
        stack = _tls.contexts = []
    return stack


def _outcome(status: int, result: Optional[int], detail: Optional[bytes]) -> Union[Discovery, MailsrvError]:
    if status == Status.OK:
        try:
            return _take_discovery(result)
        except MailsrvError as e:
            return e
        except Exception as e:  # a bug in the copy: still deliver exactly once
            _log.exception("mailsrv: copying a discovery result failed")
            return MailsrvError(Status.PANIC, f"copying the result failed: {e!r}")
    if result:
        lib.mailsrv_discovery_free(result)  # not expected with an error; never leak it
    return MailsrvError(status, _text(detail) or status_str(status))


def _deliver(
    userdata: Optional[int], request_id: int, status: int, result: Optional[int], detail: Optional[bytes]
) -> None:
    with _pending_lock:
        entry = _pending.pop(userdata or 0, None)
    outcome = _outcome(status, result, detail)
    if entry is None:
        _log.error("mailsrv: callback for an unknown request %d (%s); dropped", request_id, outcome)
        return
    stack = _callback_stack()
    stack.append(entry.ctx)
    try:
        entry.callback(request_id, outcome)
    except BaseException as e:  # noqa: B036 - nothing may reach ctypes, which prints and drops
        entry.ctx._callback_failed(request_id, e)
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


# The one C function pointer handed to mailsrv_srv_discover_async; never released.
_discover_trampoline = _ffi.DISCOVER_CB(_discover_trampoline_py)


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
    :param ca_file: PEM CA certificates instead of the system store.
    :param timeout_ms: the deadline of every operation (None or 0: the library's 10 s).
    :param dispatch: where callbacks run (:class:`Dispatch`).
    :param require_secure: for every call of this context, only DNSSEC-secure SRV answers count.
    :param rng_seed: makes the RFC 2782 weighted order reproducible (tests only).
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
    ) -> None:
        self._handle: Optional[int] = None
        self._cond = threading.Condition()
        self._users = 0  # calls into C in progress on this handle
        self._local = threading.local()  # .uses: such calls on the current thread
        self._closing = False
        self._closed = False
        self._outstanding = 0  # async requests whose callback has not run yet
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
            _live_contexts.discard(self)

    def close(self) -> None:
        """Frees the context. Idempotent.

        Outstanding requests end with :attr:`Status.SHUTDOWN`, delivered exactly once (in loop
        mode on this thread, now). Returns when all callbacks have run, except when called
        from inside one of this context's callbacks or a call on it in progress on this
        thread (then the shutdown completes when that returns). Calls that are in progress
        on other threads finish first; later calls raise MailsrvError(SHUTDOWN).
        """
        inside = getattr(self._local, "uses", 0) > 0 or self in _callback_stack()
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

    def _callback_failed(self, request_id: int, exc: BaseException) -> None:
        with self._cond:
            self._errors.append(exc)
        _log.error("mailsrv: a discover_async callback (request %d) raised", request_id, exc_info=exc)

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
        """Async requests whose callback has not run yet."""
        with self._cond:
            return self._outstanding

    @property
    def dispatch_mode(self) -> Dispatch:
        return self._dispatch

    # ---- discovery

    def discover(
        self,
        address: StrOrBytes,
        services: Union[Service, int] = ALL_SERVICES,
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
        mask = _c_uint(services, "services", _U32_MAX)
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
        services: Union[Service, int] = ALL_SERVICES,
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
        mask = _c_uint(services, "services", _U32_MAX)
        flags = FLAG_REQUIRE_SECURE if require_secure else 0
        token = next(_tokens)
        request_id = c_uint64()
        with _pending_lock:
            _pending[token] = _Pending(self, callback)
        with self._cond:
            self._outstanding += 1
        status = -1
        try:
            with self._use() as h:
                status = lib.mailsrv_srv_discover_async(
                    h, addr, mask, flags, _discover_trampoline, c_void_p(token), byref(request_id)
                )
        finally:
            if status != Status.OK:  # no callback will come
                with _pending_lock:
                    _pending.pop(token, None)
                with self._cond:
                    self._outstanding -= 1
        _check(status)
        return request_id.value

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


def _settle(fut: "asyncio.Future[Discovery]", outcome: Union[Discovery, MailsrvError]) -> None:
    if fut.done():  # the awaiting task was cancelled
        return
    if isinstance(outcome, MailsrvError):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


class AsyncContext:
    """asyncio front end of a :class:`Context`.

    In loop mode (the default here) the context's notify descriptor is watched with
    ``loop.add_reader`` and callbacks run inside ``Context.dispatch`` on the event loop's
    thread. With ``dispatch=Dispatch.THREAD`` callbacks run on a library thread and are
    handed to the loop with ``loop.call_soon_threadsafe`` instead. Bound to the first event
    loop it is used in; create and close it on that loop's thread.

    Takes the keyword arguments of :class:`Context`. The underlying context is
    :attr:`context` (e.g. for blocking calls from other threads).
    """

    def __init__(
        self,
        nameservers: Union[Sequence[str], str] = (),
        *,
        dispatch: Union[Dispatch, int] = Dispatch.LOOP,
        **kwargs: Any,
    ) -> None:
        self.context = Context(nameservers, dispatch=dispatch, **kwargs)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._fd: Optional[int] = None

    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            if self.context.dispatch_mode == Dispatch.LOOP:
                fd = self.context.notify_fd()
                loop.add_reader(fd, self._readable)
                self._fd = fd
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("this AsyncContext is bound to another event loop")
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
            self._loop.remove_reader(self._fd)
        self._fd = None

    async def discover(
        self,
        address: StrOrBytes,
        services: Union[Service, int] = ALL_SERVICES,
        require_secure: bool = False,
    ) -> Discovery:
        """:meth:`Context.discover` as a coroutine. Cancelling the awaiting task cancels the
        request. Raises :class:`MailsrvError` like the blocking call, and for CANCELLED or
        SHUTDOWN outcomes."""
        loop = self._attach()
        fut: asyncio.Future[Discovery] = loop.create_future()
        if self.context.dispatch_mode == Dispatch.LOOP:

            def done(_rid: int, outcome: Union[Discovery, MailsrvError]) -> None:
                _settle(fut, outcome)

        else:

            def done(_rid: int, outcome: Union[Discovery, MailsrvError]) -> None:
                try:
                    loop.call_soon_threadsafe(_settle, fut, outcome)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass

        rid = self.context.discover_async(address, done, services, require_secure)
        try:
            return await fut
        except asyncio.CancelledError:
            self.context.cancel(rid)
            raise

    def close(self) -> None:
        """Stops watching the descriptor and closes the context (outstanding requests end
        with SHUTDOWN). Idempotent."""
        self._detach()
        self.context.close()

    async def __aenter__(self) -> "AsyncContext":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __enter__(self) -> "AsyncContext":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
