"""The ctypes table against the contract: include/mailsrv.h and the library's exports."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from conftest import BINDINGS, HEADER

import mailsrv
from mailsrv import _ffi

OPTIONAL = {"mailsrv_test_panic"}  # inside #if defined(MAILSRV_TEST_HOOKS)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _header_text() -> str:
    assert HEADER.is_file(), f"{HEADER} is missing"
    return _strip_comments(HEADER.read_text(encoding="utf-8"))


def _split_params(params: str) -> List[str]:
    params = params.strip()
    if params in ("", "void"):
        return []
    return [p.strip() for p in params.split(",")]


def header_functions() -> Dict[str, Tuple[str, List[str]]]:
    """name -> (return type, [parameter declarations]) for every prototype in the header."""
    text = _header_text()
    # drop typedefs (the callback typedef looks like a prototype) and preprocessor lines
    text = re.sub(r"typedef[^;]*;", " ", text, flags=re.S)
    text = re.sub(r"^\s*#[^\n]*", " ", text, flags=re.M)
    text = text.replace('extern "C" {', " ").replace("}", " ")
    protos = {}
    for m in re.finditer(r"([A-Za-z_][\w\s\*]*?)\b(mailsrv_\w+)\s*\(([^;{}()]*)\)\s*;", text):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        protos[name] = (" ".join(ret.split()), _split_params(params))
    return protos


def header_enums() -> Dict[str, Dict[str, int]]:
    """enum type name -> {constant suffix: value}, e.g. mailsrv_status -> {"OK": 0, ...}."""
    enums = {}
    for m in re.finditer(r"typedef\s+enum\s*\{(.*?)\}\s*(\w+)\s*;", _header_text(), flags=re.S):
        body, name = m.group(1), m.group(2)
        prefix = name.upper() + "_"
        values = {}
        for c in re.finditer(r"(\w+)\s*=\s*(-?\d+)", body):
            assert c.group(1).startswith(prefix), (name, c.group(1))
            values[c.group(1)[len(prefix) :]] = int(c.group(2))
        enums[name] = values
    return enums


def header_defines() -> Dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#define\s+(MAILSRV_\w+)\s+(\d+)\b", _header_text())}


# ------------------------------------------------------------------ C type -> ctypes

_INT_TYPES = {
    "uint16_t": ctypes.c_uint16,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "mailsrv_request_id": ctypes.c_uint64,
    "size_t": ctypes.c_size_t,
    "int": ctypes.c_int,
    "bool": ctypes.c_bool,
    "mailsrv_status": ctypes.c_int,  # a C enum
    "mailsrv_security": ctypes.c_int,  # a C enum
}


# callback typedef -> its ctypes function type
CALLBACK_TYPES = {
    "mailsrv_discover_cb": _ffi.DISCOVER_CB,
    "mailsrv_connect_cb": _ffi.CONNECT_CB,
    "mailsrv_authenticity_cb": _ffi.AUTHENTICITY_CB,
    "mailsrv_change_cb": _ffi.CHANGE_CB,
    "mailsrv_autoconfig_cb": _ffi.AUTOCONFIG_CB,
    "mailsrv_account_cb": _ffi.ACCOUNT_CB,
    "mailsrv_autodiscover_cb": _ffi.AUTODISCOVER_CB,
    "mailsrv_plain_socket_cb": _ffi.PLAIN_SOCKET_CB,
    "mailsrv_history_save_cb": _ffi.HISTORY_SAVE_CB,
}


def header_callbacks() -> Dict[str, List[str]]:
    """callback typedef name -> [parameter declarations]."""
    return {name: params for name, (_ret, params) in header_callback_types().items()}


def header_callback_types() -> Dict[str, Tuple[str, List[str]]]:
    """callback typedef name -> (return type, [parameter declarations])."""
    text = _header_text()
    out = {}
    for m in re.finditer(r"typedef\s+(\w+)\s*\(\s*\*\s*(\w+)\s*\)\s*\(([^;]*?)\)\s*;", text, flags=re.S):
        out[m.group(2)] = (m.group(1), _split_params(" ".join(m.group(3).split())))
    return out


def _base_type(decl: str, name: str = "") -> Tuple[str, int]:
    """('const char', 1) for 'const char *detail' -> base type and pointer depth."""
    decl = decl.strip()
    depth = decl.count("*")
    words = decl.replace("*", " ").split()
    if name and words and words[-1] == name:
        words = words[:-1]
    elif len(words) > 1 and not decl.endswith("*"):
        words = words[:-1]  # the parameter name
    return " ".join(words), depth


def _check_type(where: str, decl: str, ctype: object, is_return: bool) -> None:
    base, depth = _base_type(decl) if not is_return else (" ".join(decl.replace("*", " ").split()), decl.count("*"))
    if depth == 0:
        if base == "void":
            assert ctype is None, f"{where}: void must have restype None, got {ctype}"
            return
        if base.endswith("_cb"):  # a callback typedef
            expected_cb = CALLBACK_TYPES.get(base)
            assert expected_cb is not None, f"{where}: unknown callback type {base!r}, extend the test"
            assert ctype is expected_cb, f"{where}: {base} must be {expected_cb.__name__}"
            return
        expected = _INT_TYPES.get(base.replace("const ", ""))
        assert expected is not None, f"{where}: unknown C type {base!r}, extend the test"
        assert ctype is expected, f"{where}: {decl!r} must be {expected.__name__}, got {ctype}"
        return
    # pointers: never an integer type
    assert ctype is not None, f"{where}: pointer {decl!r} has no ctypes type"
    if depth == 1 and base in ("char", "const char"):
        # strings: char* out-buffers and borrowed const char* may be c_char_p
        assert ctype in (ctypes.c_char_p, ctypes.c_void_p), f"{where}: {decl!r} got {ctype}"
        return
    if depth == 1 and base.replace("const ", "") == "uint8_t":
        # byte buffers: an address (of a ctypes array over the caller's buffer)
        assert ctype is ctypes.c_void_p, f"{where}: {decl!r} must be c_void_p"
        return
    if depth == 1 and base.replace("const ", "") in _INT_TYPES:
        target = _INT_TYPES[base.replace("const ", "")]
        assert ctype is ctypes.POINTER(target), f"{where}: {decl!r} must be POINTER({target.__name__})"
        return
    if depth == 2:
        assert ctype is ctypes.POINTER(ctypes.c_void_p), f"{where}: {decl!r} must be POINTER(c_void_p)"
        return
    if is_return:
        # returned handles and borrowed objects: c_void_p keeps the pointer value
        assert ctype is ctypes.c_void_p, f"{where}: returned {decl!r} must be c_void_p"
        return
    assert ctype in (ctypes.c_void_p,), f"{where}: {decl!r} must be c_void_p, got {ctype}"


def test_header_parses_to_the_known_api():
    protos = header_functions()
    assert len(protos) >= 40, sorted(protos)
    for must in ("mailsrv_ctx_new", "mailsrv_srv_discover_async", "mailsrv_version", "mailsrv_test_panic"):
        assert must in protos
    assert protos["mailsrv_srv_discover"][1][-1] == "size_t errlen"
    assert protos["mailsrv_version"] == ("const char *", [])


def test_table_has_exactly_the_header_functions():
    protos = header_functions()
    table = _ffi.FUNCTIONS
    assert set(table) == set(protos), (
        f"only in header: {sorted(set(protos) - set(table))}; only in table: {sorted(set(table) - set(protos))}"
    )
    assert _ffi.OPTIONAL_FUNCTIONS == OPTIONAL


@pytest.mark.parametrize("name", sorted(header_functions()))
def test_table_entry_matches_prototype(name):
    ret_decl, params = header_functions()[name]
    restype, argtypes = _ffi.FUNCTIONS[name]
    assert len(argtypes) == len(params), f"{name}: header has {len(params)} parameters, table {len(argtypes)}"
    _check_type(f"{name} return", ret_decl, restype, is_return=True)
    for i, (decl, ctype) in enumerate(zip(params, argtypes)):
        _check_type(f"{name} parameter {i} ({decl})", decl, ctype, is_return=False)


def test_owned_pointers_are_never_c_char_p():
    # Everything returned through an out-parameter or to the callback as owned is c_void_p.
    for name, (_restype, argtypes) in _ffi.FUNCTIONS.items():
        for t in argtypes:
            assert t is not ctypes.POINTER(ctypes.c_char_p), name
    for name, cb in CALLBACK_TYPES.items():
        if header_callback_types()[name][0] != "void":
            continue  # not a completion (mailsrv_autodiscover_cb): it receives nothing owned
        if len(cb._argtypes_) == 5:  # (userdata, id, status, result, detail)
            assert cb._argtypes_[3] is ctypes.c_void_p  # the owned result
        else:  # no result object (mailsrv_history_save_cb): (userdata, id, status, detail)
            assert cb._argtypes_[3] is ctypes.c_char_p
        assert cb._restype_ is None


def test_every_callback_typedef_is_bound():
    callbacks = header_callbacks()
    assert set(callbacks) == set(CALLBACK_TYPES), "bind the new callback typedef in mailsrv/_ffi.py"
    for name, params in callbacks.items():
        cb = CALLBACK_TYPES[name]
        ret = header_callback_types()[name][0]
        assert cb._restype_ is ({"void": None, "bool": ctypes.c_bool}[ret]), name
        assert len(cb._argtypes_) == len(params), name
        for i, (decl, ctype) in enumerate(zip(params, cb._argtypes_)):
            _check_type(f"{name} parameter {i} ({decl})", decl, ctype, is_return=False)


def test_loaded_functions_carry_the_table():
    for name, (restype, argtypes) in _ffi.FUNCTIONS.items():
        if name in OPTIONAL and not _ffi.HAS_TEST_HOOKS:
            continue
        fn = getattr(_ffi.lib, name)
        assert fn.restype is restype, name
        assert list(fn.argtypes) == list(argtypes), name


def _exported_symbols(path: str) -> set:
    nm = shutil.which("nm")
    if nm is None:
        pytest.fail("nm (binutils) is needed to list the library's exports")
    out = subprocess.run([nm, "-D", "--defined-only", path], check=True, capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("T", "t", "W", "i"):
            syms.add(parts[2].split("@")[0])
    return syms


def test_library_exports_every_header_function():
    exported = _exported_symbols(_ffi.LIBRARY_PATH)
    protos = set(header_functions())
    missing = {n for n in protos - exported if n not in OPTIONAL}
    assert not missing, f"{_ffi.LIBRARY_PATH} lacks {sorted(missing)}"
    extra = {s for s in exported if s.startswith("mailsrv_")} - protos
    assert not extra, f"exported but not in the header: {sorted(extra)}"
    # ctypes agrees
    for n in protos - OPTIONAL:
        assert hasattr(_ffi.lib, n), n
    assert _ffi.HAS_TEST_HOOKS == ("mailsrv_test_panic" in exported)


# ------------------------------------------------------------------ constants


ENUMS = {
    "mailsrv_status": mailsrv.Status,
    "mailsrv_service": mailsrv.Service,
    "mailsrv_srv_state": mailsrv.SrvState,
    "mailsrv_dnssec": mailsrv.Dnssec,
    "mailsrv_purpose": mailsrv.Purpose,
    "mailsrv_dispatch": mailsrv.Dispatch,
    "mailsrv_source": mailsrv.Source,
    "mailsrv_source_state": mailsrv.SourceState,
    "mailsrv_oauth2_field": mailsrv.OAuth2Field,
    "mailsrv_match_kind": mailsrv.MatchKind,
    "mailsrv_security": mailsrv.Security,
    "mailsrv_verdict": mailsrv.Verdict,
    "mailsrv_evidence": mailsrv.Evidence,
    "mailsrv_origin": mailsrv.Origin,
    "mailsrv_decision": mailsrv.Decision,
    "mailsrv_web_service": mailsrv.WebService,
    "mailsrv_autodiscover_ask": mailsrv.AutodiscoverAsk,
    "mailsrv_reason": mailsrv.Reason,
    "mailsrv_pin_mode": mailsrv.PinMode,
    "mailsrv_ca_mode": mailsrv.CaMode,
}


def test_every_header_enum_is_bound():
    assert set(header_enums()) == set(ENUMS), "bind the new C enum in mailsrv/__init__.py"


@pytest.mark.parametrize("c_enum", sorted(ENUMS))
def test_enum_matches_header(c_enum):
    header = header_enums()[c_enum]
    python = {m.name: int(m.value) for m in ENUMS[c_enum].__members__.values()}
    assert python == header


def test_every_flag_is_bound():
    flags = {k[len("MAILSRV_") :]: v for k, v in header_defines().items() if k.startswith("MAILSRV_FLAG_")}
    assert flags, "no MAILSRV_FLAG_* in the header?"
    for name, value in flags.items():
        assert getattr(mailsrv, name, None) == value, f"mailsrv.{name} should be {value}"


def test_defines_match():
    d = header_defines()
    header_version = f"{d['MAILSRV_VERSION_MAJOR']}.{d['MAILSRV_VERSION_MINOR']}.{d['MAILSRV_VERSION_PATCH']}"
    assert mailsrv.__version__ == header_version
    pyproject = (BINDINGS / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^version\s*=\s*"' + re.escape(header_version) + '"', pyproject, flags=re.M)
    assert mailsrv.version().startswith(f"mailsrv {header_version} ")


def test_library_path_is_reported():
    assert Path(_ffi.LIBRARY_PATH).exists() or "/" not in _ffi.LIBRARY_PATH
