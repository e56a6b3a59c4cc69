"""Low-level ctypes binding of libmailsrv: loading the library and declaring every function.

This module mirrors ``include/mailsrv.h`` one to one and adds nothing: the typed API is in
:mod:`mailsrv`. Every exported function is declared in :data:`FUNCTIONS` (name -> restype,
argtypes), and a test compares that table with the header and with the library's symbols.

Conventions (the ownership rules of docs/design.md §4, applied to ctypes):

* owned pointers (handles, results) are ``c_void_p``: ``c_char_p`` would copy into ``bytes``
  and lose the pointer that must be freed;
* borrowed ``const char *`` getters and static strings are ``c_char_p`` (a copy is wanted);
* ``mailsrv_status`` is a C enum and therefore ``c_int``;
* ``mailsrv_test_panic`` exists only in builds with the ``test-hooks`` feature and is bound
  only when the loaded library has it (:data:`HAS_TEST_HOOKS`).

The library is loaded lazily, on the first use of :data:`lib` (so ``import mailsrv`` and
``help(mailsrv)`` work without it), and looked up, in this order: the path in the environment variable
``MAILSRV_LIBRARY``; ``ctypes.util.find_library("mailsrv")``; the in-tree builds
``target/debug/libmailsrv.so`` and ``target/release/libmailsrv.so`` of the repository this
package sits in. When none works, that first use raises :class:`LibraryNotFound`, an
:class:`ImportError` whose message lists every place tried.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_bool,
    c_char_p,
    c_int,
    c_size_t,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "AUTHENTICITY_CB",
    "AUTOCONFIG_CB",
    "AUTODISCOVER_CB",
    "CHANGE_CB",
    "CONNECT_CB",
    "DISCOVER_CB",
    "HISTORY_SAVE_CB",
    "PLAIN_SOCKET_CB",
    "FUNCTIONS",
    "HAS_TEST_HOOKS",
    "LIBRARY_PATH",
    "LibraryNotFound",
    "OPTIONAL_FUNCTIONS",
    "lib",
]

ENV_VAR = "MAILSRV_LIBRARY"

# typedef uint64_t mailsrv_request_id;
mailsrv_request_id = c_uint64
# typedef enum {...} mailsrv_status;  (a C enum: int-sized)
mailsrv_status = c_int

# typedef void (*mailsrv_discover_cb)(void *userdata, mailsrv_request_id id,
#     mailsrv_status status, mailsrv_discovery *result /* owned */, const char *detail);
# `result` is owned by the callback, hence c_void_p; `detail` is borrowed, c_char_p copies it.
DISCOVER_CB = CFUNCTYPE(None, c_void_p, mailsrv_request_id, mailsrv_status, c_void_p, c_char_p)
# mailsrv_connect_cb (result: mailsrv_tls_stream *), mailsrv_authenticity_cb (mailsrv_authenticity *)
# and mailsrv_change_cb (mailsrv_change *) have the same C signature: owned result, borrowed
# detail. ctypes caches function types, so these are the very same class as DISCOVER_CB, and
# the typed API hands one trampoline to every _async function.
CONNECT_CB = CFUNCTYPE(None, c_void_p, mailsrv_request_id, mailsrv_status, c_void_p, c_char_p)
AUTHENTICITY_CB = CFUNCTYPE(None, c_void_p, mailsrv_request_id, mailsrv_status, c_void_p, c_char_p)
CHANGE_CB = CFUNCTYPE(None, c_void_p, mailsrv_request_id, mailsrv_status, c_void_p, c_char_p)
AUTOCONFIG_CB = CFUNCTYPE(None, c_void_p, mailsrv_request_id, mailsrv_status, c_void_p, c_char_p)
# mailsrv_plain_socket_cb: the same shape (owned mailsrv_plain_socket *).
PLAIN_SOCKET_CB = CFUNCTYPE(None, c_void_p, mailsrv_request_id, mailsrv_status, c_void_p, c_char_p)
# typedef void (*mailsrv_history_save_cb)(void *userdata, mailsrv_request_id id,
#     mailsrv_status status, const char *detail);  -- no result object
HISTORY_SAVE_CB = CFUNCTYPE(None, c_void_p, mailsrv_request_id, mailsrv_status, c_char_p)
ACCOUNT_CB = CFUNCTYPE(None, c_void_p, mailsrv_request_id, mailsrv_status, c_void_p, c_char_p)
# typedef bool (*mailsrv_autodiscover_cb)(void *userdata, uint32_t ask, const char *url,
#     const char *address, const char *why, mailsrv_credentials *credentials);
AUTODISCOVER_CB = CFUNCTYPE(c_bool, c_void_p, c_uint32, c_char_p, c_char_p, c_char_p, c_void_p)

_P = c_void_p  # any opaque handle (mailsrv_config *, mailsrv_ctx *, ...)

# name -> (restype, argtypes), grouped by topic. Keep in step with include/mailsrv.h.
FUNCTIONS: Dict[str, Tuple[Any, List[Any]]] = {
    # config
    "mailsrv_config_new": (mailsrv_status, [POINTER(c_void_p)]),
    "mailsrv_config_free": (None, [_P]),
    "mailsrv_config_set_nameserver": (mailsrv_status, [_P, c_char_p]),
    "mailsrv_config_add_fallback_nameserver": (mailsrv_status, [_P, c_char_p]),
    "mailsrv_config_add_negative_trust_anchor": (mailsrv_status, [_P, c_char_p]),
    "mailsrv_config_set_trust_anchor_file": (mailsrv_status, [_P, c_char_p]),
    "mailsrv_config_set_ca_file": (mailsrv_status, [_P, c_char_p]),
    "mailsrv_config_set_ca_mode": (mailsrv_status, [_P, c_uint32]),
    "mailsrv_config_add_ca_pem": (mailsrv_status, [_P, c_void_p, c_size_t, c_char_p, c_size_t]),
    "mailsrv_config_set_hosts_file": (mailsrv_status, [_P, c_char_p]),
    "mailsrv_config_set_timeout_ms": (mailsrv_status, [_P, c_uint32]),
    "mailsrv_config_set_dispatch": (mailsrv_status, [_P, c_uint32]),
    "mailsrv_config_set_flags": (mailsrv_status, [_P, c_uint32]),
    "mailsrv_config_set_rng_seed": (mailsrv_status, [_P, c_uint64]),
    # context
    "mailsrv_ctx_new": (mailsrv_status, [_P, POINTER(c_void_p), c_char_p, c_size_t]),
    "mailsrv_ctx_free": (None, [_P]),
    "mailsrv_ctx_notify_fd": (c_int, [_P]),
    "mailsrv_ctx_dispatch": (mailsrv_status, [_P, POINTER(c_size_t)]),
    "mailsrv_cancel": (mailsrv_status, [_P, mailsrv_request_id]),
    # discovery
    "mailsrv_srv_discover": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_uint32, POINTER(c_void_p), c_char_p, c_size_t],
    ),
    "mailsrv_srv_discover_async": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_uint32, DISCOVER_CB, c_void_p, POINTER(mailsrv_request_id)],
    ),
    "mailsrv_discovery_free": (None, [_P]),
    "mailsrv_discovery_domain": (c_char_p, [_P]),
    "mailsrv_discovery_services_len": (c_size_t, [_P]),
    "mailsrv_discovery_service_get": (_P, [_P, c_size_t]),
    "mailsrv_discovery_find": (_P, [_P, c_uint32]),
    "mailsrv_discovery_preferred": (_P, [_P, c_uint32]),
    "mailsrv_srv_set_service": (c_uint32, [_P]),
    "mailsrv_srv_set_state": (c_uint32, [_P]),
    "mailsrv_srv_set_status": (mailsrv_status, [_P]),
    "mailsrv_srv_set_detail": (c_char_p, [_P]),
    "mailsrv_srv_set_dnssec": (c_uint32, [_P]),
    "mailsrv_srv_set_ttl": (c_uint32, [_P]),
    "mailsrv_srv_set_endpoints_len": (c_size_t, [_P]),
    "mailsrv_srv_set_endpoint_get": (_P, [_P, c_size_t]),
    "mailsrv_srv_set_diagnostics_len": (c_size_t, [_P]),
    "mailsrv_srv_set_diagnostic_get": (c_char_p, [_P, c_size_t]),
    "mailsrv_endpoint_target": (c_char_p, [_P]),
    "mailsrv_endpoint_port": (c_uint16, [_P]),
    "mailsrv_endpoint_priority": (c_uint16, [_P]),
    "mailsrv_endpoint_weight": (c_uint16, [_P]),
    "mailsrv_endpoint_ttl": (c_uint32, [_P]),
    "mailsrv_endpoint_dnssec": (c_uint32, [_P]),
    "mailsrv_endpoint_addresses_len": (c_size_t, [_P]),
    "mailsrv_endpoint_address_get": (c_char_p, [_P, c_size_t]),
    "mailsrv_endpoint_address_dnssec": (c_uint32, [_P]),
    "mailsrv_endpoint_address_status": (mailsrv_status, [_P]),
    "mailsrv_endpoint_address_detail": (c_char_p, [_P]),
    # certificate checks
    "mailsrv_cert_check": (
        mailsrv_status,
        [_P, POINTER(c_void_p), POINTER(c_size_t), c_size_t, _P, c_uint32, POINTER(c_void_p), c_char_p, c_size_t],
    ),
    "mailsrv_cert_result_free": (None, [_P]),
    "mailsrv_cert_result_matched": (c_char_p, [_P]),
    "mailsrv_cert_result_kind": (c_uint32, [_P]),
    "mailsrv_cert_result_path_len": (c_size_t, [_P]),
    "mailsrv_cert_spki_sha256": (mailsrv_status, [c_void_p, c_size_t, c_void_p]),
    "mailsrv_identity_new": (mailsrv_status, [POINTER(c_void_p)]),
    "mailsrv_identity_free": (None, [_P]),
    "mailsrv_identity_add_dns_id": (mailsrv_status, [_P, c_char_p]),
    "mailsrv_identity_add_srv_id": (mailsrv_status, [_P, c_char_p, c_char_p]),
    "mailsrv_identity_add_ip": (mailsrv_status, [_P, c_char_p]),
    "mailsrv_identity_len": (c_size_t, [_P]),
    # mailsrv's certificate policy as a rustls-ffi verifier (raw bindings; no typed wrapper:
    # it serves C clients that link rustls-ffi). `params` is rustls-ffi's struct, opaque here.
    "mailsrv_rustls_verifier_new": (mailsrv_status, [_P, _P, c_uint32, POINTER(c_void_p), c_char_p, c_size_t]),
    "mailsrv_rustls_verifier_free": (None, [_P]),
    "mailsrv_rustls_verify_server_cert": (c_uint32, [c_void_p, _P]),
    "mailsrv_rustls_verifier_last_verdict": (mailsrv_status, [_P, c_char_p, c_size_t]),
    # connections: `buf` arguments are c_void_p (an address from a ctypes array over the
    # caller's buffer); `host`, `sni` are c_char_p; `identity` is borrowed (c_void_p)
    "mailsrv_connect_with_sni": (
        mailsrv_status,
        [_P, c_char_p, c_uint16, c_uint32, c_char_p, _P, c_uint32, POINTER(c_void_p), c_char_p, c_size_t],
    ),
    "mailsrv_connect_with_sni_async": (
        mailsrv_status,
        [_P, c_char_p, c_uint16, c_uint32, c_char_p, _P, c_uint32, CONNECT_CB, c_void_p, POINTER(mailsrv_request_id)],
    ),
    # connect options (caller-resolved addresses); `opts` is borrowed by the two calls
    "mailsrv_connect_opts_new": (mailsrv_status, [c_char_p, c_uint16, c_uint32, POINTER(c_void_p)]),
    "mailsrv_connect_opts_free": (None, [_P]),
    "mailsrv_connect_opts_set_sni": (mailsrv_status, [_P, c_char_p]),
    "mailsrv_connect_opts_set_identity": (mailsrv_status, [_P, _P]),
    "mailsrv_connect_opts_set_flags": (mailsrv_status, [_P, c_uint32]),
    "mailsrv_connect_opts_add_address": (mailsrv_status, [_P, c_char_p, c_char_p, c_size_t]),
    "mailsrv_connect": (mailsrv_status, [_P, _P, POINTER(c_void_p), c_char_p, c_size_t]),
    "mailsrv_connect_async": (mailsrv_status, [_P, _P, CONNECT_CB, c_void_p, POINTER(mailsrv_request_id)]),
    # bring-your-own TLS: the caller's socket, pinned keys, a per-connection CA, a client
    # certificate, and STARTTLS to the go-ahead with the plain socket handed back
    "mailsrv_connect_opts_set_fd": (mailsrv_status, [_P, c_int]),
    "mailsrv_connect_opts_add_pin_sha256": (mailsrv_status, [_P, c_void_p, c_size_t]),
    "mailsrv_connect_opts_set_pin_mode": (mailsrv_status, [_P, c_uint32]),
    "mailsrv_connect_opts_add_ca_pem": (mailsrv_status, [_P, c_void_p, c_size_t, c_char_p, c_size_t]),
    "mailsrv_connect_opts_set_client_cert": (
        mailsrv_status,
        [_P, c_void_p, c_size_t, c_void_p, c_size_t, c_char_p, c_size_t],
    ),
    "mailsrv_connect_starttls_plain": (mailsrv_status, [_P, _P, POINTER(c_void_p), c_char_p, c_size_t]),
    "mailsrv_connect_starttls_plain_async": (
        mailsrv_status,
        [_P, _P, PLAIN_SOCKET_CB, c_void_p, POINTER(mailsrv_request_id)],
    ),
    "mailsrv_plain_socket_take_fd": (c_int, [_P]),
    "mailsrv_plain_socket_greeting": (c_char_p, [_P]),
    "mailsrv_plain_socket_peer_address": (c_char_p, [_P]),
    "mailsrv_plain_socket_free": (None, [_P]),
    "mailsrv_tls_stream_read": (mailsrv_status, [_P, c_void_p, c_size_t, POINTER(c_size_t)]),
    "mailsrv_tls_stream_write": (mailsrv_status, [_P, c_void_p, c_size_t, POINTER(c_size_t)]),
    "mailsrv_tls_stream_flush": (mailsrv_status, [_P]),
    "mailsrv_tls_stream_close": (mailsrv_status, [_P]),
    "mailsrv_tls_stream_free": (None, [_P]),
    "mailsrv_tls_stream_set_nonblocking": (mailsrv_status, [_P, c_bool]),
    "mailsrv_tls_stream_set_timeout_ms": (mailsrv_status, [_P, c_uint32]),
    "mailsrv_tls_stream_fd": (c_int, [_P]),
    "mailsrv_tls_stream_has_buffered_data": (c_bool, [_P]),
    "mailsrv_tls_stream_wants_write": (c_bool, [_P]),
    "mailsrv_tls_stream_tls_version": (c_char_p, [_P]),
    "mailsrv_tls_stream_cipher": (c_char_p, [_P]),
    "mailsrv_tls_stream_sni": (c_char_p, [_P]),
    "mailsrv_tls_stream_host": (c_char_p, [_P]),
    "mailsrv_tls_stream_peer_address": (c_char_p, [_P]),
    "mailsrv_tls_stream_matched_identity": (c_char_p, [_P]),
    "mailsrv_tls_stream_greeting": (c_char_p, [_P]),
    "mailsrv_tls_stream_capabilities_len": (c_size_t, [_P]),
    "mailsrv_tls_stream_capability_get": (c_char_p, [_P, c_size_t]),
    "mailsrv_tls_stream_peer_chain_len": (c_size_t, [_P]),
    "mailsrv_tls_stream_peer_cert_get": (mailsrv_status, [_P, c_size_t, POINTER(c_void_p), POINTER(c_size_t)]),
    # authenticity of an SRV answer
    "mailsrv_verify_srv_authenticity": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_char_p, c_uint16, c_uint32, POINTER(c_void_p), c_char_p, c_size_t],
    ),
    "mailsrv_verify_srv_authenticity_async": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_char_p, c_uint16, c_uint32, AUTHENTICITY_CB, c_void_p, POINTER(mailsrv_request_id)],
    ),
    "mailsrv_peer_chains_new": (mailsrv_status, [POINTER(c_void_p)]),
    "mailsrv_peer_chains_free": (None, [_P]),
    "mailsrv_peer_chains_add_cert": (mailsrv_status, [_P, c_uint32, c_void_p, c_size_t]),
    "mailsrv_peer_chains_len": (c_size_t, [_P, c_uint32]),
    "mailsrv_verify_srv_authenticity_with_chains": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_char_p, c_uint16, c_uint32, _P, POINTER(c_void_p), c_char_p, c_size_t],
    ),
    "mailsrv_verify_srv_authenticity_with_chains_async": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_char_p, c_uint16, c_uint32, _P, AUTHENTICITY_CB, c_void_p,
         POINTER(mailsrv_request_id)],
    ),
    "mailsrv_authenticity_free": (None, [_P]),
    "mailsrv_authenticity_verdict": (c_uint32, [_P]),
    "mailsrv_authenticity_evidence": (c_uint32, [_P]),
    "mailsrv_authenticity_target_verified": (c_bool, [_P]),
    "mailsrv_authenticity_in_domain": (c_bool, [_P]),
    "mailsrv_authenticity_srv_dnssec": (c_uint32, [_P]),
    "mailsrv_authenticity_detail": (c_char_p, [_P]),
    "mailsrv_authenticity_probe_matched": (c_char_p, [_P]),
    "mailsrv_authenticity_target_matched": (c_char_p, [_P]),
    "mailsrv_authenticity_probe_status": (mailsrv_status, [_P]),
    "mailsrv_authenticity_target_status": (mailsrv_status, [_P]),
    "mailsrv_authenticity_chain_len": (c_size_t, [_P, c_uint32]),
    "mailsrv_authenticity_cert_get": (mailsrv_status, [_P, c_uint32, c_size_t, POINTER(c_void_p), POINTER(c_size_t)]),
    "mailsrv_authenticity_take_probe_stream": (mailsrv_status, [_P, POINTER(c_void_p)]),
    "mailsrv_authenticity_binding": (c_void_p, [_P]),
    # the binding: how the connection that carries the credentials must be made
    "mailsrv_binding_from_text": (mailsrv_status, [c_char_p, POINTER(c_void_p), c_char_p, c_size_t]),
    "mailsrv_binding_clone": (mailsrv_status, [_P, POINTER(c_void_p)]),
    "mailsrv_binding_free": (None, [_P]),
    "mailsrv_binding_text": (c_char_p, [_P]),
    "mailsrv_binding_service": (c_uint32, [_P]),
    "mailsrv_binding_host": (c_char_p, [_P]),
    "mailsrv_binding_port": (c_uint16, [_P]),
    "mailsrv_binding_security": (c_uint32, [_P]),
    "mailsrv_binding_sni": (c_char_p, [_P]),
    "mailsrv_binding_identity": (c_char_p, [_P]),
    "mailsrv_binding_dane": (c_bool, [_P]),
    "mailsrv_connect_with_binding": (mailsrv_status, [_P, _P, c_uint32, POINTER(c_void_p), c_char_p, c_size_t]),
    "mailsrv_connect_with_binding_async": (
        mailsrv_status,
        [_P, _P, c_uint32, CONNECT_CB, c_void_p, POINTER(mailsrv_request_id)],
    ),
    # account setup: discovery plus a verdict per endpoint (raw bindings; no typed wrapper yet)
    "mailsrv_autoconfigure": (mailsrv_status, [_P, c_char_p, c_uint32, POINTER(c_void_p), c_char_p, c_size_t]),
    "mailsrv_autoconfigure_async": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, AUTOCONFIG_CB, c_void_p, POINTER(mailsrv_request_id)],
    ),
    "mailsrv_autoconfig_free": (None, [_P]),
    "mailsrv_autoconfig_discovery": (_P, [_P]),
    "mailsrv_autoconfig_verdict": (_P, [_P, c_size_t, c_size_t]),
    "mailsrv_autoconfig_verdict_status": (mailsrv_status, [_P, c_size_t, c_size_t]),
    # account discovery beyond SRV (issue 16): autoconfig, ISPDB, MX, SRV; verdict per candidate
    "mailsrv_config_set_ispdb_url": (mailsrv_status, [_P, c_char_p]),
    "mailsrv_config_set_fetch_timeouts_ms": (mailsrv_status, [_P, c_uint32, c_uint32]),
    # issue 17: PACC, Exchange Autodiscover, guessing
    "mailsrv_config_set_service_port": (mailsrv_status, [_P, c_uint32, c_uint16]),
    "mailsrv_config_set_autodiscover_cb": (mailsrv_status, [_P, AUTODISCOVER_CB, c_void_p]),
    "mailsrv_credentials_set": (mailsrv_status, [_P, c_char_p, c_char_p]),
    "mailsrv_account_web_url": (c_char_p, [_P, c_uint32]),
    "mailsrv_account_source_unfollowed": (c_char_p, [_P, c_uint32, c_size_t]),
    "mailsrv_account_discover": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_uint32, POINTER(c_void_p), c_char_p, c_size_t],
    ),
    "mailsrv_account_discover_async": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_uint32, ACCOUNT_CB, c_void_p, POINTER(mailsrv_request_id)],
    ),
    "mailsrv_account_free": (None, [_P]),
    "mailsrv_account_address": (c_char_p, [_P]),
    "mailsrv_account_domain": (c_char_p, [_P]),
    "mailsrv_account_source": (c_uint32, [_P]),
    "mailsrv_account_candidates_len": (c_size_t, [_P]),
    "mailsrv_account_candidate_get": (_P, [_P, c_size_t]),
    "mailsrv_account_preferred": (_P, [_P, c_uint32, POINTER(c_size_t)]),
    "mailsrv_account_source_state": (c_uint32, [_P, c_uint32]),
    "mailsrv_account_source_status": (mailsrv_status, [_P, c_uint32]),
    "mailsrv_account_source_detail": (c_char_p, [_P, c_uint32]),
    "mailsrv_account_display_name": (c_char_p, [_P]),
    "mailsrv_account_oauth2": (c_char_p, [_P, c_uint32]),
    "mailsrv_candidate_source": (c_uint32, [_P]),
    "mailsrv_candidate_url": (c_char_p, [_P]),
    "mailsrv_candidate_protocol": (c_char_p, [_P]),
    "mailsrv_candidate_service": (c_uint32, [_P]),
    "mailsrv_candidate_host": (c_char_p, [_P]),
    "mailsrv_candidate_port": (c_uint16, [_P]),
    "mailsrv_candidate_security": (c_char_p, [_P]),
    "mailsrv_candidate_username": (c_char_p, [_P]),
    "mailsrv_candidate_authentication_len": (c_size_t, [_P]),
    "mailsrv_candidate_authentication_get": (c_char_p, [_P, c_size_t]),
    "mailsrv_candidate_verdict": (_P, [_P]),
    "mailsrv_candidate_verdict_status": (mailsrv_status, [_P]),
    "mailsrv_source_name": (c_char_p, [c_uint32]),
    # observation history and the change decision
    "mailsrv_history_open": (mailsrv_status, [c_char_p, POINTER(c_void_p), c_char_p, c_size_t]),
    "mailsrv_history_save": (mailsrv_status, [_P, c_char_p, c_size_t]),
    "mailsrv_history_free": (None, [_P]),
    "mailsrv_history_save_async": (mailsrv_status, [_P, _P, HISTORY_SAVE_CB, c_void_p, POINTER(mailsrv_request_id)]),
    "mailsrv_history_decline": (mailsrv_status, [_P, c_char_p, c_uint32, c_char_p, c_uint16, c_uint64]),
    "mailsrv_history_prune": (mailsrv_status, [_P, c_uint64, POINTER(c_size_t)]),
    "mailsrv_history_export": (mailsrv_status, [_P, POINTER(c_void_p)]),
    "mailsrv_history_import": (mailsrv_status, [c_void_p, c_size_t, POINTER(c_void_p), c_char_p, c_size_t]),
    "mailsrv_string_free": (None, [c_void_p]),
    "mailsrv_history_len": (c_size_t, [_P]),
    "mailsrv_history_observe": (mailsrv_status, [_P, c_char_p, c_uint32, c_char_p, c_uint16, c_uint64]),
    "mailsrv_history_seen": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_char_p, c_uint16, POINTER(c_uint64), POINTER(c_uint64)],
    ),
    "mailsrv_history_source": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_char_p, c_uint16, POINTER(c_uint32)],
    ),
    "mailsrv_srv_change_check": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_char_p, c_uint16, c_uint32, _P, c_uint64, c_uint64, c_uint32,
         POINTER(c_void_p), c_char_p, c_size_t],
    ),
    "mailsrv_srv_change_check_async": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_char_p, c_uint16, c_uint32, _P, c_uint64, c_uint64, c_uint32,
         CHANGE_CB, c_void_p, POINTER(mailsrv_request_id)],
    ),
    "mailsrv_account_change_check": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_char_p, c_uint16, c_uint32, _P, c_uint64, c_uint64, c_uint32,
         POINTER(c_void_p), c_char_p, c_size_t],
    ),
    "mailsrv_account_change_check_async": (
        mailsrv_status,
        [_P, c_char_p, c_uint32, c_char_p, c_uint16, c_uint32, _P, c_uint64, c_uint64, c_uint32,
         CHANGE_CB, c_void_p, POINTER(mailsrv_request_id)],
    ),
    "mailsrv_change_free": (None, [_P]),
    "mailsrv_change_decision": (c_uint32, [_P]),
    "mailsrv_change_target": (c_char_p, [_P]),
    "mailsrv_change_port": (c_uint16, [_P]),
    "mailsrv_change_wait_until": (c_uint64, [_P]),
    "mailsrv_change_verdict": (c_uint32, [_P]),
    "mailsrv_change_origin": (c_uint32, [_P]),
    "mailsrv_change_detail": (c_char_p, [_P]),
    "mailsrv_change_binding": (c_void_p, [_P]),
    "mailsrv_change_reason": (c_uint32, [_P]),
    "mailsrv_change_authenticity": (c_void_p, [_P]),
    # names, statuses, version
    "mailsrv_service_default_security": (mailsrv_status, [c_uint32, POINTER(c_int)]),
    "mailsrv_service_name": (c_char_p, [c_uint32]),
    "mailsrv_srv_state_name": (c_char_p, [c_uint32]),
    "mailsrv_dnssec_name": (c_char_p, [c_uint32]),
    "mailsrv_status_str": (c_char_p, [c_int]),
    "mailsrv_status_is_dns_error": (c_bool, [c_int]),
    "mailsrv_status_is_cert_error": (c_bool, [c_int]),
    "mailsrv_version": (c_char_p, []),
    # test builds only (feature "test-hooks"); see OPTIONAL_FUNCTIONS
    "mailsrv_test_panic": (mailsrv_status, []),
}

# Functions that only some builds export; bound when present.
OPTIONAL_FUNCTIONS = frozenset({"mailsrv_test_panic"})


class LibraryNotFound(ImportError):
    """libmailsrv could not be found or loaded (an :class:`ImportError`, raised by the first
    call that needs the library, not by ``import mailsrv``); the message lists every place
    tried. Set ``MAILSRV_LIBRARY`` to the ``.so`` to choose one.
    """


def _in_tree_candidates() -> List[Path]:
    """target/{debug,release}/libmailsrv.so of the source tree, when this package is the
    one in <repo>/bindings/python/mailsrv (not an installed copy)."""
    pkg = Path(__file__).resolve().parent
    if pkg.parent.name != "python" or pkg.parent.parent.name != "bindings":
        return []
    root = pkg.parent.parent.parent
    name = "libmailsrv.dylib" if sys.platform == "darwin" else "libmailsrv.so"
    return [root / "target" / kind / name for kind in ("debug", "release")]


def _load() -> Tuple[ctypes.CDLL, str]:
    tried: List[str] = []
    env = os.environ.get(ENV_VAR)
    if env:
        try:
            return ctypes.CDLL(env), env
        except OSError as e:
            # an explicit choice that fails is an error, not a reason to pick another library
            raise LibraryNotFound(f"{ENV_VAR}={env!r} could not be loaded: {e}") from e
    tried.append(f"${ENV_VAR} (not set)")

    found = ctypes.util.find_library("mailsrv")
    if found:
        try:
            return ctypes.CDLL(found), found
        except OSError as e:
            tried.append(f"find_library('mailsrv') -> {found!r}: {e}")
    else:
        tried.append("ctypes.util.find_library('mailsrv') (nothing found)")

    candidates = _in_tree_candidates()
    if not candidates:
        tried.append("in-tree build (this package is not in a mailsrv source tree)")
    for cand in candidates:
        if cand.is_file():
            try:
                return ctypes.CDLL(str(cand)), str(cand)
            except OSError as e:
                tried.append(f"{cand}: {e}")
        else:
            tried.append(f"{cand} (missing)")
    raise LibraryNotFound(
        "libmailsrv not found. Set MAILSRV_LIBRARY to the .so, install it where the dynamic "
        "linker finds it, or build it in-tree (cargo build). Tried:\n  " + "\n  ".join(tried)
    )


def _declare(library: ctypes.CDLL, path: str, table: Mapping[str, Tuple[Any, Sequence[Any]]]) -> Dict[str, Any]:
    """Sets restype/argtypes of every function; returns them by name (optional ones only
    when the library has them)."""
    fns: Dict[str, Any] = {}
    for name, (restype, argtypes) in table.items():
        try:
            fn = getattr(library, name)
        except AttributeError:
            if name in OPTIONAL_FUNCTIONS:
                continue
            raise LibraryNotFound(f"{path} does not export {name}: an incompatible libmailsrv?") from None
        fn.restype = restype
        fn.argtypes = list(argtypes)
        fns[name] = fn
    return fns


class _Library:
    """The ``ctypes.CDLL`` of libmailsrv, loaded on first attribute access.

    After loading, every function of :data:`FUNCTIONS` is an attribute of this object
    (later accesses cost a plain attribute lookup); :attr:`cdll` is the CDLL itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cdll: Optional[ctypes.CDLL] = None
        self.path: Optional[str] = None
        self.has_test_hooks = False

    def load(self) -> ctypes.CDLL:
        """Loads and declares the library (once); raises :class:`LibraryNotFound`."""
        with self._lock:
            if self.cdll is None:
                cdll, path = _load()
                fns = _declare(cdll, path, FUNCTIONS)
                self.__dict__.update(fns)
                self.has_test_hooks = all(n in fns for n in OPTIONAL_FUNCTIONS)
                self.path = path
                self.cdll = cdll
            return self.cdll

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set yet: the functions before loading, or unknown ones.
        if name.startswith("__") or name not in FUNCTIONS:
            raise AttributeError(name)
        self.load()
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(f"the loaded libmailsrv ({self.path}) has no {name}") from None

    def __repr__(self) -> str:
        return f"<mailsrv._ffi.lib {self.path or 'not loaded yet'}>"


# The library (loaded on first use). ``lib.mailsrv_version()`` etc.
lib: Any = _Library()


def __getattr__(name: str) -> Any:
    # LIBRARY_PATH and HAS_TEST_HOOKS load the library when first asked for.
    if name == "LIBRARY_PATH":
        lib.load()
        return lib.path
    if name == "HAS_TEST_HOOKS":
        lib.load()
        return lib.has_test_hooks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def errbuf(size: int = 512) -> "ctypes.Array[ctypes.c_char]":
    """A fresh error buffer for the (errbuf, errlen) pair of blocking calls."""
    return ctypes.create_string_buffer(size)
