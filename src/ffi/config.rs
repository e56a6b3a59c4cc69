//! `mailsrv_config`: the settings a context is built from. Single-threaded; copied by
//! `mailsrv_ctx_new`, so it may be freed or reused right after.

use std::os::raw::c_char;
use std::path::PathBuf;
use std::time::Duration;

use super::boundary::{ffi_boundary, free_box, try_mut, try_str};
use super::status::mailsrv_status;
use super::strings::read_str;
use crate::core::cert::ca_store::parse_anchor_certs;
use crate::core::cert::identity::MatchOptions;
use crate::core::config::{CaMode, Config};
use crate::core::requests::DispatchMode;

/// Settings for a context (opaque).
pub struct mailsrv_config {
    pub(crate) inner: Config,
}

/// How callbacks are delivered; see the overview.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum mailsrv_dispatch {
    /// Callbacks run on a library thread (one per context). The default.
    Thread = 0,
    /// Callbacks run inside mailsrv_ctx_dispatch() on the caller's thread, after
    /// mailsrv_ctx_notify_fd() becomes readable.
    Loop = 1,
}

/// Flag: only DNSSEC-secure SRV answers count; an insecure or indeterminate one becomes
/// an error for that service (MAILSRV_STATUS_NO_SECURE_ANSWER).
pub const MAILSRV_FLAG_REQUIRE_SECURE: u32 = 1;

/// Flag: certificate checks accept a subject CN as a DNS-ID when the certificate has no SAN
/// identifiers (RFC 7817 allows it, RFC 9525 forbids it). Off by default; never used for
/// SRV authenticity decisions.
pub const MAILSRV_FLAG_LEGACY_CN: u32 = 2;

/// Flag: an SRV-ID reference also accepts the certificate's SRV-ID for the sibling service
/// (`_submission` for `_submissions` and back; likewise imap/imaps, pop3/pop3s).
pub const MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE: u32 = 4;

/// Flag for mailsrv_verify_srv_authenticity(): never connect to the target; an answer that
/// DNSSEC does not prove is UNVERIFIED (for clients that ask the user before any
/// connection, the strict reading of RFC 8314 §5.1).
pub const MAILSRV_FLAG_NO_PROBE: u32 = 8;

/// Flag for mailsrv_verify_srv_authenticity(): keep the verified probe connection (SNI =
/// the mail domain) for the caller, who may try the user's login on it before committing
/// (mailsrv_authenticity_take_probe_stream()).
pub const MAILSRV_FLAG_KEEP_PROBE: u32 = 16;

/// Flag for mailsrv_cert_check() and mailsrv_verify_srv_authenticity_with_chains(): the
/// caller's own TLS stack (OpenSSL, GnuTLS, NSS) already validated the path to its trust
/// store, so mailsrv skips path validation, dates and the leaf key check and checks only
/// the RFC 7817 / RFC 9525 identity of the leaf (the name constraints of the other
/// certificates given still apply to SRV-IDs). Per call only; other calls refuse it
/// (INVALID_ARG). Since 0.1.
pub const MAILSRV_FLAG_NAMES_ONLY: u32 = 32;

/// Every flag this version knows.
const KNOWN_FLAGS: u32 = MAILSRV_FLAG_REQUIRE_SECURE
    | MAILSRV_FLAG_LEGACY_CN
    | MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE
    | MAILSRV_FLAG_NO_PROBE
    | MAILSRV_FLAG_KEEP_PROBE
    | MAILSRV_FLAG_NAMES_ONLY;

fn status_of(r: crate::core::Result<()>) -> mailsrv_status {
    match r {
        Ok(()) => mailsrv_status::Ok,
        Err(e) => mailsrv_status::from_error(&e),
    }
}

/// Creates a configuration with the defaults: the system's nameservers, the built-in IANA
/// root trust anchors, the system CA store, a 10 s deadline, thread dispatch, no flags.
///
/// `out` (out, not NULL) receives an owned config, freed with mailsrv_config_free(); it is
/// set to NULL on failure. Returns OK or NULL_ARG.
/// Since 0.1.
///
/// # Safety
/// `out` must be NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_new(out: *mut *mut mailsrv_config) -> mailsrv_status {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = Box::into_raw(Box::new(mailsrv_config { inner: Config::default() }));
        mailsrv_status::Ok
    }
}

/// Frees a configuration. NULL does nothing.
/// Since 0.1.
///
/// # Safety
/// `cfg` must be NULL or come from mailsrv_config_new() and not be used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_free(cfg: *mut mailsrv_config) {
    ffi_boundary! {
        unsafe { free_box(cfg) }
    }
}

/// Adds a DNS server to ask, as "IP", "IP:PORT", "[IPv6]" or "[IPv6]:PORT" (port 53 when
/// absent). Repeatable; servers are asked in the order added. Once any is set, the system's
/// are not used. Without any, a context uses /etc/resolv.conf's `nameserver` lines and
/// follows the file: when it changes, the next operation uses the new nameservers and
/// drops what was learnt about the old ones (DNSSEC capability, cached keys and answers).
/// No host names: a resolver cannot be found by name.
///
/// `cfg` borrowed, not NULL. `addr` borrowed UTF-8, not NULL.
/// Returns OK, NULL_ARG or INVALID_ARG.
/// Since 0.1.
///
/// # Safety
/// `cfg` valid; `addr` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_nameserver(
    cfg: *mut mailsrv_config,
    addr: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        let addr = try_str!(addr);
        status_of(cfg.inner.add_nameserver(addr))
    }
}

/// Adds a resolver asked only when every nameserver is a DNSSEC roadblock (it strips
/// signatures, rejects EDNS or refuses DNSKEY/DS queries), same forms as
/// mailsrv_config_set_nameserver(). None by default; mailsrv never adds a public resolver of
/// its own. When none is set or none carries DNSSEC, answers on a roadblock are used as
/// unsigned (MAILSRV_DNSSEC_UNAVAILABLE).
///
/// `cfg` borrowed, not NULL. `addr` borrowed UTF-8, not NULL.
/// Returns OK, NULL_ARG or INVALID_ARG.
/// Since 0.1.
///
/// # Safety
/// `cfg` valid; `addr` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_add_fallback_nameserver(
    cfg: *mut mailsrv_config,
    addr: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        let addr = try_str!(addr);
        status_of(cfg.inner.add_fallback_nameserver(addr))
    }
}

/// Adds a negative trust anchor (RFC 7646): `zone` and every name under it are not
/// validated, and their answers are INSECURE instead of BOGUS. For split-horizon internal
/// domains that the public DNS does not know. The special-use and private zones (`local`,
/// `home.arpa`, `internal`, `lan`, `home`, `corp`, `localhost`, `invalid`, the private
/// reverse zones; `test` and `example` with the built-in root anchors) are built in.
/// Repeatable.
///
/// `cfg` borrowed, not NULL. `zone` borrowed UTF-8 A-labels, not NULL.
/// Returns OK, NULL_ARG or INVALID_ARG.
/// Since 0.1.
///
/// # Safety
/// `cfg` valid; `zone` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_add_negative_trust_anchor(
    cfg: *mut mailsrv_config,
    zone: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        let zone = try_str!(zone);
        status_of(cfg.inner.add_negative_trust_anchor(zone))
    }
}

/// Uses the DNSSEC trust anchors in `path` (DNSKEY or DS records in zone-file form, e.g.
/// `. IN DS 20326 8 2 E06D...`) instead of the built-in IANA root keys. NULL restores the
/// built-in keys. The file is read by mailsrv_ctx_new(), which fails with BAD_TRUST_ANCHOR
/// if it is unusable.
///
/// Returns OK, NULL_ARG or INVALID_ARG (non-UTF-8 path).
/// Since 0.1.
///
/// # Safety
/// `cfg` valid; `path` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_trust_anchor_file(
    cfg: *mut mailsrv_config,
    path: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        status_of(optional_path(path).map(|p| cfg.inner.trust_anchor_file = p))
    }
}

/// Trusts the CA certificates in the PEM file `path` (used for certificate checks): by
/// default instead of the system store; with MAILSRV_CA_MODE_ADD
/// (mailsrv_config_set_ca_mode()) in addition to it. NULL removes the file (the system
/// store, plus any in-memory CAs).
///
/// Returns OK, NULL_ARG or INVALID_ARG (non-UTF-8 path).
/// Since 0.1.
///
/// # Safety
/// `cfg` valid; `path` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_ca_file(
    cfg: *mut mailsrv_config,
    path: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        status_of(optional_path(path).map(|p| cfg.inner.ca_file = p))
    }
}

/// How the configured CA certificates (mailsrv_config_set_ca_file(),
/// mailsrv_config_add_ca_pem()) relate to the system store.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum mailsrv_ca_mode {
    /// They replace the system store: only they are trusted. The default.
    Replace = 0,
    /// They are trusted in addition to the system store (a company CA beside the public
    /// ones). When the system store is empty or unreadable, they are used alone.
    Add = 1,
}

/// Chooses whether the CA file and the in-memory CAs replace the system store
/// (MAILSRV_CA_MODE_REPLACE, the default) or are added to it (MAILSRV_CA_MODE_ADD). Without
/// a CA file or in-memory CAs the mode does not matter: the system store is used.
///
/// `cfg` borrowed, not NULL. `mode`: a mailsrv_ca_mode value.
/// Returns OK, NULL_ARG or INVALID_ARG (unknown mode).
/// Since 0.1.
///
/// # Safety
/// `cfg` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_ca_mode(
    cfg: *mut mailsrv_config,
    mode: u32,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        cfg.inner.ca_mode = match mode {
            0 => CaMode::Replace,
            1 => CaMode::Add,
            _ => return mailsrv_status::InvalidArg,
        };
        mailsrv_status::Ok
    }
}

/// Trusts the CA certificates in `pem` (`len` bytes: any number of PEM CERTIFICATE blocks,
/// other blocks skipped, or one DER certificate), for clients that keep their CAs in their
/// own account store rather than in a file. Repeatable; the certificates are checked and
/// copied now (the buffer may be freed right after). They join the CA file, if any, and
/// replace or join the system store as mailsrv_config_set_ca_mode() says.
///
/// `cfg` borrowed, not NULL. `pem` borrowed, `len` > 0. `errbuf` (may be NULL) receives the
/// reason when not OK.
/// Returns OK, NULL_ARG or INVALID_ARG (no certificate, malformed PEM, a certificate that
/// cannot be a trust anchor; the config is unchanged).
/// Since 0.1.
///
/// # Safety
/// `cfg` NULL or valid; `pem` NULL or `len` readable bytes; `errbuf` NULL or `errlen`
/// writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_add_ca_pem(
    cfg: *mut mailsrv_config,
    pem: *const u8,
    len: usize,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { super::errbuf::with_errbuf(errbuf, errlen, || {
        let cfg = try_mut!(cfg);
        if pem.is_null() {
            return mailsrv_status::NullArg;
        }
        let bytes = unsafe { std::slice::from_raw_parts(pem, len) };
        let result = parse_anchor_certs(bytes, "in-memory CA");
        super::errbuf::finish(result, errbuf, errlen, |certs| cfg.inner.ca_certs.extend(certs))
    })}
}

/// Reads host addresses from the hosts(5) file `path` before DNS, as getaddrinfo does with
/// nsswitch's default `hosts: files dns`: when the file names an SRV target or a host to
/// connect to, its entries are the addresses (both families) and DNS is not asked for
/// them. Default "/etc/hosts"; NULL turns the hosts file off. A missing file is empty; the
/// file is re-read when it changes. Such addresses are reported as
/// MAILSRV_DNSSEC_HOSTS_FILE (mailsrv_endpoint_address_dnssec()), never as secure, and DANE
/// never applies to them: a connection with TLSA records enforced goes to DNSSEC-secure
/// addresses only. Caller-given addresses (mailsrv_connect_opts_add_address()) come first.
///
/// `cfg` borrowed, not NULL. `path` borrowed UTF-8, or NULL.
/// Returns OK, NULL_ARG or INVALID_ARG (non-UTF-8 path).
/// Since 0.1.
///
/// # Safety
/// `cfg` valid; `path` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_hosts_file(
    cfg: *mut mailsrv_config,
    path: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        status_of(optional_path(path).map(|p| cfg.inner.hosts_file = p))
    }
}

fn optional_path(path: *const c_char) -> crate::core::Result<Option<PathBuf>> {
    if path.is_null() {
        return Ok(None);
    }
    unsafe { read_str(path, "path") }.map(|p| Some(PathBuf::from(p)))
}

/// Sets the deadline of every operation, in milliseconds (0 = the default, 10000; at most
/// 600000). An operation that runs out of time ends with MAILSRV_STATUS_TIMEOUT, or, for
/// discovery, with the services that were not answered marked LOOKUP_FAILED.
///
/// Returns OK, NULL_ARG or INVALID_ARG.
/// Since 0.1.
///
/// # Safety
/// `cfg` must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_timeout_ms(
    cfg: *mut mailsrv_config,
    ms: u32,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        status_of(cfg.inner.set_timeout(Duration::from_millis(u64::from(ms))))
    }
}

/// Sets the ISPDB base URL of account discovery (mailsrv_account_discover()): the entry of
/// a domain is `<url><domain>`. Default: the draft's `https://v1.ispdb.net/`. A missing
/// final `/` is added; NULL or "" turns the ISPDB sources off.
///
/// Returns OK, NULL_ARG or INVALID_ARG (not an http(s) URL, or with a query).
/// Since 0.1.
///
/// # Safety
/// `cfg` valid; `url` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_ispdb_url(
    cfg: *mut mailsrv_config,
    url: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        if url.is_null() {
            cfg.inner.ispdb_url = None;
            return mailsrv_status::Ok;
        }
        let url = try_str!(url);
        status_of(cfg.inner.set_ispdb_url(url))
    }
}

/// Sets the per-fetch deadlines of account discovery, in milliseconds: `fetch_ms` for each
/// PACC, provider, MX-derived and Autodiscover fetch (default 5000), `ispdb_ms` for each
/// ISPDB lookup and each guess (default 10000); 0 keeps a default. Both stay inside the operation's deadline
/// (mailsrv_config_set_timeout_ms()).
///
/// Returns OK, NULL_ARG or INVALID_ARG.
/// Since 0.1.
///
/// # Safety
/// `cfg` must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_fetch_timeouts_ms(
    cfg: *mut mailsrv_config,
    fetch_ms: u32,
    ispdb_ms: u32,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        status_of(cfg.inner.set_fetch_timeouts(
            Duration::from_millis(u64::from(fetch_ms)),
            Duration::from_millis(u64::from(ispdb_ms)),
        ))
    }
}

/// Sets the port account discovery assumes for `service` (one mailsrv_service value) where a
/// source names a host without a port: PACC (IMAP, POP3 and submission on implicit TLS)
/// and guessing. Defaults: 993, 143, 995, 110, 465, 587; `port` 0 restores the default.
/// For tests and private deployments.
///
/// Returns OK, NULL_ARG or INVALID_ARG (not one service).
/// Since 0.1.
///
/// # Safety
/// `cfg` must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_service_port(
    cfg: *mut mailsrv_config,
    service: u32,
    port: u16,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        let Some(service) = crate::core::service::Service::from_bit(service) else {
            return mailsrv_status::InvalidArg;
        };
        cfg.inner.service_ports.set(service, port);
        mailsrv_status::Ok
    }
}

/// Sets the function Exchange Autodiscover (MAILSRV_SOURCE_AUTODISCOVER) asks before it
/// follows a URL outside the registrable domain of the address's domain, and when an HTTPS
/// URL asks for credentials (see mailsrv_autodiscover_cb, mailsrv_autodiscover_ask). Without
/// one (the default; `cb` NULL removes it) such URLs are reported
/// (mailsrv_account_source_unfollowed()) and never followed, and no credentials are ever
/// sent. A change check (mailsrv_account_change_check()) never calls it. `userdata` is passed
/// back as is; the context keeps both until mailsrv_ctx_free(), which waits for a call in
/// flight.
///
/// Returns OK or NULL_ARG.
/// Since 0.1.
///
/// # Safety
/// `cfg` valid; `cb` NULL or callable from any thread with `userdata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_autodiscover_cb(
    cfg: *mut mailsrv_config,
    cb: super::autodiscover::mailsrv_autodiscover_cb,
    userdata: *mut std::os::raw::c_void,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        cfg.inner.autodiscover_hook = cb.map(|cb| super::autodiscover::hook(cb, userdata));
        mailsrv_status::Ok
    }
}

/// Chooses how callbacks are delivered: a mailsrv_dispatch value.
///
/// Returns OK, NULL_ARG or INVALID_ARG (unknown value).
/// Since 0.1.
///
/// # Safety
/// `cfg` must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_dispatch(
    cfg: *mut mailsrv_config,
    mode: u32,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        cfg.inner.dispatch = match mode {
            0 => DispatchMode::Thread,
            1 => DispatchMode::Loop,
            _ => return mailsrv_status::InvalidArg,
        };
        mailsrv_status::Ok
    }
}

/// Sets context-wide MAILSRV_FLAG_* bits: defaults OR'ed into every call of the context.
///
/// Returns OK, NULL_ARG or INVALID_ARG (unknown bits).
/// Since 0.1.
///
/// # Safety
/// `cfg` must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_flags(
    cfg: *mut mailsrv_config,
    flags: u32,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        if flags & !KNOWN_FLAGS != 0 {
            return mailsrv_status::InvalidArg;
        }
        if flags & MAILSRV_FLAG_KEEP_PROBE != 0 {
            return mailsrv_status::InvalidArg; // per call only: a kept stream has one owner
        }
        if flags & MAILSRV_FLAG_NAMES_ONLY != 0 {
            return mailsrv_status::InvalidArg; // per call only: it trusts the caller's own check
        }
        let f = Flags::from_bits(flags);
        cfg.inner.require_secure = f.require_secure;
        cfg.inner.match_options = f.match_options;
        cfg.inner.probe = !f.no_probe;
        mailsrv_status::Ok
    }
}

/// Makes the RFC 2782 weighted-random order reproducible: every discovery of the context
/// draws from this seed. For tests; production code should leave it unset.
///
/// Returns OK or NULL_ARG.
/// Since 0.1.
///
/// # Safety
/// `cfg` must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_config_set_rng_seed(
    cfg: *mut mailsrv_config,
    seed: u64,
) -> mailsrv_status {
    ffi_boundary! {
        let cfg = try_mut!(cfg);
        cfg.inner.rng_seed = Some(seed);
        mailsrv_status::Ok
    }
}

/// MAILSRV_FLAG_* bits, decoded.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    pub require_secure: bool,
    pub match_options: MatchOptions,
    pub no_probe: bool,
    pub keep_probe: bool,
    /// MAILSRV_FLAG_NAMES_ONLY: the caller's TLS stack validated the path.
    pub names_only: bool,
}

impl Flags {
    fn from_bits(flags: u32) -> Self {
        Flags {
            require_secure: flags & MAILSRV_FLAG_REQUIRE_SECURE != 0,
            match_options: MatchOptions {
                legacy_cn: flags & MAILSRV_FLAG_LEGACY_CN != 0,
                accept_sibling_service: flags & MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE != 0,
            },
            no_probe: flags & MAILSRV_FLAG_NO_PROBE != 0,
            keep_probe: flags & MAILSRV_FLAG_KEEP_PROBE != 0,
            names_only: flags & MAILSRV_FLAG_NAMES_ONLY != 0,
        }
    }
}

impl Flags {
    /// The flags `autoconfigure` uses.
    pub(crate) fn autoconfig(self) -> crate::core::context::AutoconfigFlags {
        crate::core::context::AutoconfigFlags {
            probe: !self.no_probe,
            require_secure: self.require_secure,
        }
    }
}

/// Parses the flags of a single call: unknown bits are an error.
pub(crate) fn call_flags(flags: u32) -> Option<Flags> {
    (flags & !KNOWN_FLAGS == 0).then(|| Flags::from_bits(flags))
}
