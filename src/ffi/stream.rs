//! `mailsrv_connect_with_sni` (+ `_async`) and the `mailsrv_tls_stream` it returns: a TCP
//! connection (Happy Eyeballs), the STARTTLS dialogue if any, TLS with the chosen SNI and
//! the reference identity checked by mailsrv's verifier. Never plaintext.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::boundary::{ffi_boundary, free_box, try_mut, try_ref, try_str};
use super::config::call_flags;
use super::ctx::mailsrv_ctx;
use super::errbuf::{finish, with_errbuf};
use super::identity::mailsrv_identity;
use super::request::{UserData, deliver_to_c, mailsrv_request_id, started};
use super::status::mailsrv_status;
use super::strings::cstring;
use crate::core::cert::ca_store::CaStore;
use crate::core::cert::verifier::ClientAuth;
use crate::core::service::{Protocol, Security};
use crate::core::tls::connect::{ConnectRequest, MailConnection, PinMode};

/// How TLS starts.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum mailsrv_security {
    /// TLS from the first byte (ports 993, 995, 465).
    ImplicitTls = 1,
    /// IMAP STARTTLS (port 143).
    StarttlsImap = 2,
    /// POP3 STLS (port 110).
    StarttlsPop3 = 3,
    /// SMTP STARTTLS (port 587).
    StarttlsSmtp = 4,
    /// Implicit TLS to an IMAP server (993): ALPN `imap` is offered and the greeting over
    /// TLS must be IMAP's, else PROTOCOL.
    ImplicitTlsImap = 5,
    /// Implicit TLS to a POP3 server (995): ALPN `pop3` is offered and the greeting must be
    /// POP3's.
    ImplicitTlsPop3 = 6,
    /// Implicit TLS to an SMTP submission server (465): the greeting must be SMTP's (SMTP
    /// has no registered ALPN id).
    ImplicitTlsSmtp = 7,
}

/// A verified TLS connection to a mail server (opaque, owned by the caller). Full duplex,
/// like a socket: one thread may read while another writes (IMAP IDLE and DONE); every call
/// except mailsrv_tls_stream_free() may come from any thread at any time.
pub struct mailsrv_tls_stream {
    /// Held only while rustls and the socket are touched, never while waiting for the
    /// socket: a blocking read polls without it, so a write from another thread proceeds.
    conn: Mutex<MailConnection>,
    fd: c_int,
    nonblocking: AtomicBool,
    /// Blocking mode: the longest one read or write waits, in ms; 0 = no limit.
    timeout_ms: AtomicU64,
    peer_chain: Vec<Vec<u8>>,
    sni: Option<CString>,
    host: CString,
    peer: CString,
    tls_version: CString,
    cipher: CString,
    matched: CString,
    greeting: CString,
    capabilities: Vec<CString>,
}

impl mailsrv_tls_stream {
    fn new(conn: MailConnection) -> Self {
        let i = conn.info();
        mailsrv_tls_stream {
            sni: i.sni.as_deref().map(cstring),
            host: cstring(&i.host),
            peer: cstring(&i.peer_addr.to_string()),
            tls_version: cstring(&i.tls_version),
            cipher: cstring(&i.cipher),
            matched: cstring(&i.proof.to_string()),
            greeting: cstring(&i.greeting),
            capabilities: i.capabilities.iter().map(|c| cstring(c)).collect(),
            peer_chain: i.peer_chain.clone(),
            fd: conn.raw_fd(),
            nonblocking: AtomicBool::new(false),
            timeout_ms: AtomicU64::new(conn.timeout().map_or(0, |t| {
                u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
            })),
            conn: Mutex::new(conn),
        }
    }

    /// The connection, for one step that never waits for the socket.
    fn lock(&self) -> MutexGuard<'_, MailConnection> {
        // A panic inside a step is reported as PANIC by the boundary; the connection
        // itself stays consistent enough to be closed and freed.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    /// When a blocking read or write started now must give up; None: never.
    fn deadline(&self) -> Option<Instant> {
        match self.timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Instant::now() + Duration::from_millis(ms)),
        }
    }

    /// Waits, without holding the lock, until the socket is ready for `events` (or has an
    /// error or hang-up, which the next step reports). False when `deadline` passed.
    fn wait(
        &self,
        events: libc::c_short,
        deadline: Option<Instant>,
    ) -> Result<bool, mailsrv_status> {
        loop {
            let ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    // round up, so the wait never ends just before the deadline
                    c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX)
                }
            };
            let mut p = libc::pollfd {
                fd: self.fd,
                events,
                revents: 0,
            };
            // SAFETY: one valid pollfd; the descriptor stays open while `self` lives.
            match unsafe { libc::poll(&mut p, 1, ms) } {
                n if n > 0 => return Ok(true),
                0 => {}
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
                _ => return Err(mailsrv_status::Io),
            }
        }
    }

    /// Wraps a connection the core made (the SRV probe's, handed over by authenticity).
    pub(crate) fn from_connection(conn: MailConnection) -> Self {
        Self::new(conn)
    }
}

/// A mailsrv_security value as the core's security mode and expected protocol.
fn security_in(v: u32) -> Option<(Security, Option<Protocol>)> {
    Some(match v {
        1 => (Security::ImplicitTls, None),
        2 => (Security::StartTlsImap, None),
        3 => (Security::StartTlsPop3, None),
        4 => (Security::StartTlsSmtp, None),
        5 => (Security::ImplicitTls, Some(Protocol::Imap)),
        6 => (Security::ImplicitTls, Some(Protocol::Pop3)),
        7 => (Security::ImplicitTls, Some(Protocol::Smtp)),
        _ => return None,
    })
}

/// The mailsrv_security value of a security mode and expected protocol.
pub(crate) fn security_out(s: Security, protocol: Option<Protocol>) -> mailsrv_security {
    match (s, protocol) {
        (Security::ImplicitTls, None) => mailsrv_security::ImplicitTls,
        (Security::ImplicitTls, Some(Protocol::Imap)) => mailsrv_security::ImplicitTlsImap,
        (Security::ImplicitTls, Some(Protocol::Pop3)) => mailsrv_security::ImplicitTlsPop3,
        (Security::ImplicitTls, Some(Protocol::Smtp)) => mailsrv_security::ImplicitTlsSmtp,
        (Security::StartTlsImap, _) => mailsrv_security::StarttlsImap,
        (Security::StartTlsPop3, _) => mailsrv_security::StarttlsPop3,
        (Security::StartTlsSmtp, _) => mailsrv_security::StarttlsSmtp,
    }
}

/// Builds the core request from C arguments (they are checked again, fully, by the core).
unsafe fn request(
    host: &str,
    port: u16,
    security: u32,
    sni: *const c_char,
    identity: *const mailsrv_identity,
    flags: u32,
) -> Result<ConnectRequest, mailsrv_status> {
    let (security, protocol) = security_in(security).ok_or(mailsrv_status::InvalidArg)?;
    let flags = call_flags(flags).ok_or(mailsrv_status::InvalidArg)?;
    let mut req = ConnectRequest::new(host, port, security);
    req.protocol = protocol;
    if !sni.is_null() {
        let s = unsafe { super::strings::read_str(sni, "sni") }
            .map_err(|_| mailsrv_status::InvalidArg)?;
        req.sni = Some(s.to_owned());
    }
    if let Some(id) = unsafe { identity.as_ref() } {
        req.identity = Some(id.inner.clone());
    }
    req.options = flags.match_options;
    Ok(req)
}

/// Connects to a mail server and returns a verified TLS stream, blocking.
///
/// `host`: a host name (IDN allowed) or an IP literal; resolved through the context's
/// resolver, then TCP with Happy Eyeballs (RFC 8305). `security`: a mailsrv_security value;
/// STARTTLS modes run the protocol's pre-TLS dialogue strictly (a missing or refused
/// STARTTLS, PREAUTH on a plain port, or any byte after the go-ahead is an error: there is
/// no plaintext fallback). `sni` (may be NULL): the TLS server name; NULL means the host's
/// own name (none for an IP literal). `identity` (borrowed, may be NULL): what the
/// certificate must prove; NULL means DNS-ID = host (IP-ID for an IP literal). `flags`:
/// MAILSRV_FLAG_LEGACY_CN, MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE. TLS 1.2 at least, 1.3
/// preferred; every connection is a full handshake (no session is resumed under another
/// name or identity).
/// `out` (out, not NULL): owned stream, freed with mailsrv_tls_stream_free(); NULL on error.
/// Returns OK; INVALID_ARG (bad host, SNI, port, enum, flags) before any traffic; DNS
/// errors; CONNECT_FAILED; TIMEOUT; PROTOCOL; CONNECTION_CLOSED; the precise certificate
/// status (CERT_EXPIRED, UNKNOWN_ISSUER, NAME_MISMATCH, ...); HANDSHAKE.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_connect_with_sni(
    ctx: *mut mailsrv_ctx,
    host: *const c_char,
    port: u16,
    security: u32,
    sni: *const c_char,
    identity: *const mailsrv_identity,
    flags: u32,
    out: *mut *mut mailsrv_tls_stream,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let host = try_str!(host);
        let req = unsafe { request(host, port, security, sni, identity, flags) };
        connect_now(ctx, req, out, errbuf, errlen)
    })}
}

/// The blocking connect both C entry points share: the stream into `out`, or the status.
fn connect_now(
    ctx: &mailsrv_ctx,
    req: Result<ConnectRequest, mailsrv_status>,
    out: &mut *mut mailsrv_tls_stream,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    let req = match req {
        Ok(r) => r,
        Err(s) => return s,
    };
    finish(ctx.inner.connect(req), errbuf, errlen, |c| {
        *out = Box::into_raw(Box::new(mailsrv_tls_stream::new(c)));
    })
}

/// The asynchronous connect both C entry points share.
fn connect_later(
    ctx: &mailsrv_ctx,
    req: Result<ConnectRequest, mailsrv_status>,
    cb: unsafe extern "C" fn(
        *mut c_void,
        mailsrv_request_id,
        mailsrv_status,
        *mut mailsrv_tls_stream,
        *const c_char,
    ),
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    let req = match req {
        Ok(r) => r,
        Err(s) => return s,
    };
    let deliver = deliver_to_c(cb, UserData(userdata), mailsrv_tls_stream::new);
    started(ctx.inner.connect_async(req, deliver), id_out)
}

/// Completion of mailsrv_connect_with_sni_async(): `result` owned by the callback (free with
/// mailsrv_tls_stream_free()), NULL unless OK; `detail` borrowed, never NULL.
#[allow(non_camel_case_types)]
pub type mailsrv_connect_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        id: mailsrv_request_id,
        status: mailsrv_status,
        result: *mut mailsrv_tls_stream,
        detail: *const c_char,
    ),
>;

/// mailsrv_connect_with_sni() without blocking: same leading arguments, then `cb` (not
/// NULL), `userdata`, `id_out` (may be NULL). The callback runs exactly once; cancelling
/// drops the half-open connection.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_connect_with_sni_async(
    ctx: *mut mailsrv_ctx,
    host: *const c_char,
    port: u16,
    security: u32,
    sni: *const c_char,
    identity: *const mailsrv_identity,
    flags: u32,
    cb: mailsrv_connect_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let Some(cb) = cb else { return mailsrv_status::NullArg };
        let host = try_str!(host);
        let req = unsafe { request(host, port, security, sni, identity, flags) };
        connect_later(ctx, req, cb, userdata, id_out)
    }
}

/// Addresses one mailsrv_connect_opts may carry: the per-family cap of discovery, twice.
const MAX_CALLER_ADDRESSES: usize = 2 * crate::core::dns::answer::MAX_ADDRESSES_PER_FAMILY;

/// What mailsrv_connect() connects to and checks (opaque, owned by the caller): the host,
/// port and security of mailsrv_connect_with_sni(), plus optional SNI, identity, flags and
/// caller-resolved addresses. Single-threaded; copied by each call that takes it.
pub struct mailsrv_connect_opts {
    host: String,
    port: u16,
    security: u32,
    sni: Option<String>,
    identity: Option<crate::core::cert::identity::ReferenceIdentity>,
    flags: u32,
    addresses: Vec<std::net::IpAddr>,
    pins: Vec<[u8; 32]>,
    pin_mode: PinMode,
    client_auth: Option<std::sync::Arc<ClientAuth>>,
    ca_certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// The caller's connected socket (borrowed: each call works on a duplicate); -1: none.
    fd: c_int,
}

impl mailsrv_connect_opts {
    /// The core request (checked again, fully, by the core before any traffic).
    fn request(&self) -> Result<ConnectRequest, mailsrv_status> {
        let (security, protocol) = security_in(self.security).ok_or(mailsrv_status::InvalidArg)?;
        let flags = call_flags(self.flags).ok_or(mailsrv_status::InvalidArg)?;
        let mut req = ConnectRequest::new(self.host.clone(), self.port, security);
        req.protocol = protocol;
        req.sni = self.sni.clone();
        req.identity = self.identity.clone();
        req.options = flags.match_options;
        req.addresses = self.addresses.clone();
        req.pins = self.pins.clone();
        req.pin_mode = self.pin_mode;
        req.client_auth = self.client_auth.clone();
        if !self.ca_certs.is_empty() {
            req.trust = Some(
                CaStore::from_der_certs(self.ca_certs.clone(), "per-connection CA certificates")
                    .map_err(|_| mailsrv_status::InvalidArg)?,
            );
        }
        Ok(req)
    }

    /// A duplicate of the caller's socket for one call, or None without one.
    fn socket(&self) -> Result<Option<std::net::TcpStream>, (mailsrv_status, String)> {
        if self.fd < 0 {
            return Ok(None);
        }
        crate::sys::dup_stream_socket(self.fd)
            .map(Some)
            .map_err(|why| (mailsrv_status::InvalidArg, why))
    }
}

/// An address given by the caller: "192.0.2.1", "2001:db8::1" or "[2001:db8::1]"; no port,
/// no zone index, no name, nothing that cannot be connected to.
fn caller_address(text: &str) -> Result<std::net::IpAddr, String> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let ip: std::net::IpAddr = bare.parse().map_err(|_| {
        format!("{text:?} is not an IPv4 or IPv6 address (no port, zone index or host name)")
    })?;
    let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_unspecified() || ip.is_multicast() || broadcast {
        return Err(format!(
            "{text:?} cannot be connected to (unspecified, multicast or broadcast)"
        ));
    }
    Ok(ip)
}

/// Creates connect options for `host` (a host name, IDN allowed, or an IP literal; it gives
/// the default SNI and the certificate's reference identity, as in
/// mailsrv_connect_with_sni()), `port` and `security` (a mailsrv_security value). Without
/// mailsrv_connect_opts_add_address() the host is resolved (hosts file, then DNS); with it,
/// the given addresses are used and nothing is resolved.
///
/// `host` borrowed UTF-8, not NULL. `out` (out, not NULL) receives owned options, freed with
/// mailsrv_connect_opts_free(); NULL on failure.
/// Returns OK, NULL_ARG or INVALID_ARG (non-UTF-8 host, port 0, unknown security); the host
/// itself is checked by mailsrv_connect().
/// Since 0.1.
///
/// # Safety
/// `host` NULL or a NUL-terminated string; `out` NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_new(
    host: *const c_char,
    port: u16,
    security: u32,
    out: *mut *mut mailsrv_connect_opts,
) -> mailsrv_status {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let host = try_str!(host);
        if port == 0 || security_in(security).is_none() {
            return mailsrv_status::InvalidArg;
        }
        *out = Box::into_raw(Box::new(mailsrv_connect_opts {
            host: host.to_owned(),
            port,
            security,
            sni: None,
            identity: None,
            flags: 0,
            addresses: Vec::new(),
            pins: Vec::new(),
            pin_mode: PinMode::Require,
            client_auth: None,
            ca_certs: Vec::new(),
            fd: -1,
        }));
        mailsrv_status::Ok
    }
}

/// Frees connect options. NULL does nothing. Calls that took them keep their own copy.
/// Since 0.1.
///
/// # Safety
/// `opts` NULL or from mailsrv_connect_opts_new(), not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_free(opts: *mut mailsrv_connect_opts) {
    ffi_boundary! {
        unsafe { free_box(opts) }
    }
}

/// Sets the TLS server name (SNI), as the `sni` argument of mailsrv_connect_with_sni(): an
/// IP literal means "send no SNI"; NULL restores the default (the host's own name, none for
/// an IP literal). Checked by mailsrv_connect().
///
/// `opts` borrowed, not NULL. `sni` borrowed UTF-8, or NULL.
/// Returns OK, NULL_ARG or INVALID_ARG (non-UTF-8).
/// Since 0.1.
///
/// # Safety
/// `opts` valid; `sni` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_set_sni(
    opts: *mut mailsrv_connect_opts,
    sni: *const c_char,
) -> mailsrv_status {
    ffi_boundary! {
        let opts = try_mut!(opts);
        if sni.is_null() {
            opts.sni = None;
            return mailsrv_status::Ok;
        }
        let sni = try_str!(sni);
        opts.sni = Some(sni.to_owned());
        mailsrv_status::Ok
    }
}

/// Sets what the certificate must prove (copied: `identity` may be freed afterwards); NULL
/// restores the default (DNS-ID = host, IP-ID for an IP literal).
///
/// `opts` borrowed, not NULL. `identity` borrowed, or NULL.
/// Returns OK or NULL_ARG.
/// Since 0.1.
///
/// # Safety
/// `opts` valid; `identity` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_set_identity(
    opts: *mut mailsrv_connect_opts,
    identity: *const mailsrv_identity,
) -> mailsrv_status {
    ffi_boundary! {
        let opts = try_mut!(opts);
        opts.identity = unsafe { identity.as_ref() }.map(|id| id.inner.clone());
        mailsrv_status::Ok
    }
}

/// Sets the call's flags, as mailsrv_connect_with_sni() takes them
/// (MAILSRV_FLAG_LEGACY_CN, MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE). Replaces earlier flags.
///
/// `opts` borrowed, not NULL.
/// Returns OK, NULL_ARG or INVALID_ARG (unknown bits; the options are unchanged).
/// Since 0.1.
///
/// # Safety
/// `opts` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_set_flags(
    opts: *mut mailsrv_connect_opts,
    flags: u32,
) -> mailsrv_status {
    ffi_boundary! {
        let opts = try_mut!(opts);
        if call_flags(flags).is_none() {
            return mailsrv_status::InvalidArg;
        }
        opts.flags = flags;
        mailsrv_status::Ok
    }
}

/// Adds an address the caller resolved itself: "192.0.2.1", "2001:db8::1" or
/// "[2001:db8::1]" (no port: the options' port is used; no zone index; no host name).
/// Repeatable, at most 32; a repeated address is ignored. Once any is added,
/// mailsrv_connect() connects to these (Happy Eyeballs, IPv6 and IPv4 interleaved, IPv6
/// first, each family in the order added) and resolves nothing: neither the hosts file nor
/// DNS is asked. SNI and the certificate check still use the host name, never the address.
///
/// `opts` borrowed, not NULL. `addr` borrowed UTF-8, not NULL. `errbuf` (may be NULL)
/// receives the reason when not OK, "" on success, truncated to `errlen` bytes.
/// Returns OK, NULL_ARG, or INVALID_ARG (not an IP address, unspecified, multicast or
/// broadcast, more than 32; the options are unchanged).
/// Since 0.1.
///
/// # Safety
/// `opts` valid; `addr` NULL or a NUL-terminated string; `errbuf` NULL or `errlen` writable
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_add_address(
    opts: *mut mailsrv_connect_opts,
    addr: *const c_char,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let opts = try_mut!(opts);
        let addr = try_str!(addr);
        let fail = |why: &str| {
            unsafe { super::strings::write_errbuf(errbuf, errlen, why) };
            mailsrv_status::InvalidArg
        };
        let ip = match caller_address(addr) {
            Ok(ip) => ip,
            Err(why) => return fail(&why),
        };
        if opts.addresses.contains(&ip) {
            return mailsrv_status::Ok;
        }
        if opts.addresses.len() >= MAX_CALLER_ADDRESSES {
            return fail(&format!("more than {MAX_CALLER_ADDRESSES} addresses"));
        }
        opts.addresses.push(ip);
        mailsrv_status::Ok
    })}
}

/// Connects as `opts` say and returns a verified TLS stream, blocking: everything
/// mailsrv_connect_with_sni() does, plus the caller's addresses when given
/// (mailsrv_connect_opts_add_address()).
///
/// `ctx` borrowed, not NULL. `opts` borrowed, not NULL (copied: it may be freed or changed
/// right after). `out` (out, not NULL): owned stream, freed with mailsrv_tls_stream_free();
/// NULL on error. `errbuf` (may be NULL) receives the reason when not OK.
/// Returns OK; NULL_ARG; INVALID_ARG (bad host, SNI, identity, flags) before any traffic;
/// DNS errors (only when no address was given); CONNECT_FAILED; TIMEOUT; PROTOCOL;
/// CONNECTION_CLOSED; the precise certificate status; HANDSHAKE.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect(
    ctx: *mut mailsrv_ctx,
    opts: *const mailsrv_connect_opts,
    out: *mut *mut mailsrv_tls_stream,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let opts = try_ref!(opts);
        let req = match opts.request() {
            Ok(r) => r,
            Err(s) => return s,
        };
        let socket = match opts.socket() {
            Ok(s) => s,
            Err((st, why)) => {
                unsafe { super::strings::write_errbuf(errbuf, errlen, &why) };
                return st;
            }
        };
        finish(ctx.inner.connect_over(req, socket), errbuf, errlen, |c| {
            *out = Box::into_raw(Box::new(mailsrv_tls_stream::new(c)));
        })
    })}
}

/// mailsrv_connect() without blocking: `ctx`, `opts` (borrowed, copied before this
/// returns), then `cb` (not NULL; the mailsrv_connect_cb of mailsrv_connect_with_sni_async(),
/// run exactly once), `userdata`, `id_out` (may be NULL). Cancelling drops the half-open
/// connection.
/// Returns OK (the callback will run), NULL_ARG, INVALID_ARG, SHUTDOWN (then no callback).
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_async(
    ctx: *mut mailsrv_ctx,
    opts: *const mailsrv_connect_opts,
    cb: mailsrv_connect_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let opts = try_ref!(opts);
        let Some(cb) = cb else { return mailsrv_status::NullArg };
        let req = match opts.request() {
            Ok(r) => r,
            Err(s) => return s,
        };
        let socket = match opts.socket() {
            Ok(s) => s,
            Err((st, _)) => return st,
        };
        let deliver = deliver_to_c(cb, UserData(userdata), mailsrv_tls_stream::new);
        started(ctx.inner.connect_over_async(req, socket, deliver), id_out)
    }
}

/// Connects over `fd`, a stream socket the caller already connected (to the server, or
/// through a SOCKS or HTTP CONNECT proxy, or Tor, with the proxy's handshake done): then
/// nothing is resolved and no address is tried; STARTTLS (if any), TLS and the checks run
/// on it exactly as on mailsrv's own connection, and the host still gives the SNI and the
/// certificate's reference identity. -1 removes it.
///
/// The descriptor stays yours: each mailsrv_connect(), _async() or
/// mailsrv_connect_starttls_plain() with these options works on its own duplicate (dup,
/// close-on-exec), closed when the stream (or the plain socket) is freed, so close yours
/// when you like. A duplicate shares the socket and its O_NONBLOCK flag with yours: do not
/// read or write yours while mailsrv's stream lives.
///
/// `opts` borrowed, not NULL. Returns OK, NULL_ARG or INVALID_ARG (`fd` below -1). Whether
/// `fd` is a connected stream socket is checked by each call (INVALID_ARG, with the
/// reason).
/// Since 0.1.
///
/// # Safety
/// `opts` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_set_fd(
    opts: *mut mailsrv_connect_opts,
    fd: c_int,
) -> mailsrv_status {
    ffi_boundary! {
        let opts = try_mut!(opts);
        if fd < -1 {
            return mailsrv_status::InvalidArg;
        }
        opts.fd = fd;
        mailsrv_status::Ok
    }
}

/// Most keys one mailsrv_connect_opts may pin.
const MAX_PINS: usize = 16;

/// What the pinned keys of a mailsrv_connect_opts mean.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum mailsrv_pin_mode {
    /// On top of the usual check (the default): the certificate must pass it and its key
    /// must be pinned, else PIN_MISMATCH. Key pinning for a known provider.
    Require = 0,
    /// Instead of it: a certificate whose key is pinned is accepted whatever its issuer,
    /// names and dates (like DANE-EE); any other certificate gets the usual check. For the
    /// key of a self-signed server the user accepted once.
    Trust = 1,
}

/// Pins a server key: `digest` is the SHA-256 of a certificate's DER SubjectPublicKeyInfo
/// (`len` must be 32; mailsrv_cert_spki_sha256() computes it; it is the data of a TLSA
/// `x 1 1` record and of `openssl x509 -pubkey | openssl pkey -pubin -outform DER | openssl
/// dgst -sha256`). Repeatable, at most 16 (any of them matches; pin the next key too before
/// a key change). What a pin means: mailsrv_connect_opts_set_pin_mode().
///
/// `opts` borrowed, not NULL. `digest` borrowed.
/// Returns OK, NULL_ARG or INVALID_ARG (`len` not 32, more than 16).
/// Since 0.1.
///
/// # Safety
/// `opts` NULL or valid; `digest` NULL or `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_add_pin_sha256(
    opts: *mut mailsrv_connect_opts,
    digest: *const u8,
    len: usize,
) -> mailsrv_status {
    ffi_boundary! {
        let opts = try_mut!(opts);
        if digest.is_null() {
            return mailsrv_status::NullArg;
        }
        if len != 32 || opts.pins.len() >= MAX_PINS {
            return mailsrv_status::InvalidArg;
        }
        let mut pin = [0u8; 32];
        pin.copy_from_slice(unsafe { std::slice::from_raw_parts(digest, 32) });
        if !opts.pins.contains(&pin) {
            opts.pins.push(pin);
        }
        mailsrv_status::Ok
    }
}

/// Sets what the pinned keys mean: a mailsrv_pin_mode value (REQUIRE by default).
///
/// Returns OK, NULL_ARG or INVALID_ARG (unknown mode).
/// Since 0.1.
///
/// # Safety
/// `opts` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_set_pin_mode(
    opts: *mut mailsrv_connect_opts,
    mode: u32,
) -> mailsrv_status {
    ffi_boundary! {
        let opts = try_mut!(opts);
        opts.pin_mode = match mode {
            0 => PinMode::Require,
            1 => PinMode::Trust,
            _ => return mailsrv_status::InvalidArg,
        };
        mailsrv_status::Ok
    }
}

/// Trusts the CA certificates in `pem` (PEM CERTIFICATE blocks, or one DER certificate)
/// for connections made with these options only, instead of the context's trust anchors:
/// a per-account CA (a company server). Repeatable (the certificates accumulate); checked
/// and copied now.
///
/// `opts` borrowed, not NULL. `pem` borrowed, `len` bytes. `errbuf` (may be NULL): the
/// reason when not OK.
/// Returns OK, NULL_ARG or INVALID_ARG (no certificate, malformed PEM, not usable as a
/// trust anchor; the options are unchanged).
/// Since 0.1.
///
/// # Safety
/// `opts` NULL or valid; `pem` NULL or `len` readable bytes; `errbuf` NULL or `errlen`
/// writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_add_ca_pem(
    opts: *mut mailsrv_connect_opts,
    pem: *const u8,
    len: usize,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let opts = try_mut!(opts);
        if pem.is_null() {
            return mailsrv_status::NullArg;
        }
        let bytes = unsafe { std::slice::from_raw_parts(pem, len) };
        let certs = crate::core::cert::ca_store::parse_anchor_certs(bytes, "per-connection CA");
        finish(certs, errbuf, errlen, |c| opts.ca_certs.extend(c))
    })}
}

/// Presents a client certificate when the server asks for one (a server that requires
/// one; never offered otherwise): `cert_pem` holds the certificate and any intermediates
/// (PEM, leaf first), `key_pem` its private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
/// Checked and copied now; the key must fit the certificate. NULL `cert_pem` removes it.
///
/// `opts` borrowed, not NULL. `errbuf` (may be NULL): the reason when not OK.
/// Returns OK, NULL_ARG (key missing) or INVALID_ARG (no certificate, no key, a key that
/// does not match or that mailsrv's TLS cannot sign with; the options are unchanged).
/// Since 0.1.
///
/// # Safety
/// `opts` NULL or valid; `cert_pem`/`key_pem` NULL or `cert_len`/`key_len` readable bytes;
/// `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_opts_set_client_cert(
    opts: *mut mailsrv_connect_opts,
    cert_pem: *const u8,
    cert_len: usize,
    key_pem: *const u8,
    key_len: usize,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let opts = try_mut!(opts);
        if cert_pem.is_null() {
            opts.client_auth = None;
            return mailsrv_status::Ok;
        }
        if key_pem.is_null() {
            return mailsrv_status::NullArg;
        }
        let cert = unsafe { std::slice::from_raw_parts(cert_pem, cert_len) };
        let key = unsafe { std::slice::from_raw_parts(key_pem, key_len) };
        finish(client_auth(cert, key), errbuf, errlen, |a| {
            opts.client_auth = Some(std::sync::Arc::new(a));
        })
    })}
}

/// Parses a client certificate chain and key, and checks that they fit together.
fn client_auth(cert: &[u8], key: &[u8]) -> crate::core::Result<ClientAuth> {
    use crate::core::Error;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::InvalidArg(format!("client certificate: malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidArg(
            "client certificate: no CERTIFICATE block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| Error::InvalidArg(format!("client key: {e}")))?;
    let auth = ClientAuth { certs, key };
    // Builds the configuration once: rustls checks that the key fits the certificate.
    let probe = std::sync::Arc::new(NoVerify);
    crate::core::cert::verifier::client_config_with_auth(probe, Some(&auth))?;
    Ok(auth)
}

/// A verifier that is never called: only for building a configuration to check a key.
#[derive(Debug)]
struct NoVerify;

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General("not a verifier".into()))
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not a verifier".into()))
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not a verifier".into()))
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        Vec::new()
    }
}

/// A plain connection handed over at the STARTTLS go-ahead (opaque, owned by the caller):
/// the socket on which the caller's own TLS stack starts its handshake.
pub struct mailsrv_plain_socket {
    tcp: Option<std::net::TcpStream>,
    greeting: CString,
    peer: CString,
}

impl mailsrv_plain_socket {
    fn new(p: crate::core::tls::connect::PlainConnection) -> Self {
        mailsrv_plain_socket {
            greeting: cstring(&p.greeting),
            peer: cstring(&p.peer_addr.to_string()),
            tcp: Some(p.tcp),
        }
    }
}

/// Runs the STARTTLS dialogue of `opts` (security MAILSRV_SECURITY_STARTTLS_IMAP, _POP3 or
/// _SMTP) to the server's go-ahead and hands the plain socket back, for a client whose own
/// TLS stack (OpenSSL, GnuTLS, NSS) makes the handshake: the next byte on it must be your
/// ClientHello. The dialogue is mailsrv's strict one (a missing or refused STARTTLS, PREAUTH,
/// or any byte after the go-ahead is an error; never a plaintext fallback; SMTP: EHLO, then
/// STARTTLS). Over the caller's socket when mailsrv_connect_opts_set_fd() gave one, else
/// mailsrv connects (hosts file, DNS, Happy Eyeballs, or the given addresses). The SNI,
/// identity, pin, CA and client-certificate options do not apply: your TLS does that part
/// (send SNI and check the identity as the binding says), then ask for the greeting and
/// capabilities again over TLS (RFC 3207, RFC 9051: pre-TLS ones are not trustworthy).
///
/// `ctx` borrowed, not NULL. `opts` borrowed, copied. `out` (out, not NULL): owned, freed
/// with mailsrv_plain_socket_free(); NULL on error. `errbuf` (may be NULL): the reason.
/// Returns OK; NULL_ARG; INVALID_ARG (not a STARTTLS mode, bad host, bad fd); DNS errors;
/// CONNECT_FAILED; TIMEOUT; PROTOCOL; CONNECTION_CLOSED.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_starttls_plain(
    ctx: *mut mailsrv_ctx,
    opts: *const mailsrv_connect_opts,
    out: *mut *mut mailsrv_plain_socket,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let opts = try_ref!(opts);
        let req = match opts.request() {
            Ok(r) => r,
            Err(s) => return s,
        };
        let socket = match opts.socket() {
            Ok(s) => s,
            Err((st, why)) => {
                unsafe { super::strings::write_errbuf(errbuf, errlen, &why) };
                return st;
            }
        };
        finish(ctx.inner.starttls_plain(req, socket), errbuf, errlen, |p| {
            *out = Box::into_raw(Box::new(mailsrv_plain_socket::new(p)));
        })
    })}
}

/// Completion of mailsrv_connect_starttls_plain_async(): `result` owned by the callback
/// (free with mailsrv_plain_socket_free()), NULL unless OK; `detail` borrowed, never NULL.
#[allow(non_camel_case_types)]
pub type mailsrv_plain_socket_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        id: mailsrv_request_id,
        status: mailsrv_status,
        result: *mut mailsrv_plain_socket,
        detail: *const c_char,
    ),
>;

/// mailsrv_connect_starttls_plain() without blocking: `ctx`, `opts` (copied before this
/// returns), then `cb` (not NULL, run exactly once), `userdata`, `id_out` (may be NULL).
/// Cancelling closes the half-open connection (mailsrv's duplicate of a caller's socket).
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_connect_starttls_plain_async(
    ctx: *mut mailsrv_ctx,
    opts: *const mailsrv_connect_opts,
    cb: mailsrv_plain_socket_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let opts = try_ref!(opts);
        let Some(cb) = cb else { return mailsrv_status::NullArg };
        let req = match opts.request() {
            Ok(r) => r,
            Err(s) => return s,
        };
        let socket = match opts.socket() {
            Ok(s) => s,
            Err((st, _)) => return st,
        };
        let deliver = deliver_to_c(cb, UserData(userdata), mailsrv_plain_socket::new);
        started(ctx.inner.starttls_plain_async(req, socket, deliver), id_out)
    }
}

/// Takes the socket out: the descriptor (blocking mode, close-on-exec) is yours from now
/// on, to hand to your TLS stack and to close. -1 when NULL or already taken.
/// Since 0.1.
///
/// # Safety
/// `p` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_plain_socket_take_fd(p: *mut mailsrv_plain_socket) -> c_int {
    ffi_boundary! {
        let p = try_mut!(p);
        match p.tcp.take() {
            Some(t) => std::os::fd::IntoRawFd::into_raw_fd(t),
            None => -1,
        }
    }
}

/// The greeting the server sent before TLS (unauthenticated: show it, never trust it).
/// Borrowed.
/// Since 0.1.
///
/// # Safety
/// `p` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_plain_socket_greeting(
    p: *const mailsrv_plain_socket,
) -> *const c_char {
    ffi_boundary! { try_ref!(p).greeting.as_ptr() }
}

/// The server's address ("192.0.2.1:143", "[2001:db8::1]:143"; "0.0.0.0:0" over a caller's
/// socket that has no IP peer). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `p` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_plain_socket_peer_address(
    p: *const mailsrv_plain_socket,
) -> *const c_char {
    ffi_boundary! { try_ref!(p).peer.as_ptr() }
}

/// Frees the object, closing the socket unless mailsrv_plain_socket_take_fd() took it. NULL
/// does nothing.
/// Since 0.1.
///
/// # Safety
/// `p` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_plain_socket_free(p: *mut mailsrv_plain_socket) {
    ffi_boundary! {
        unsafe { free_box(p) }
    }
}

fn io_status(
    r: crate::core::Result<Option<usize>>,
    nonblocking: bool,
    n_out: *mut usize,
) -> mailsrv_status {
    match r {
        Ok(Some(n)) => {
            if let Some(o) = unsafe { n_out.as_mut() } {
                *o = n;
            }
            mailsrv_status::Ok
        }
        // A blocking socket only "would block" when its I/O timeout passed.
        Ok(None) if nonblocking => mailsrv_status::WouldBlock,
        Ok(None) => mailsrv_status::Timeout,
        Err(e) => mailsrv_status::from_error(&e),
    }
}

/// Reads decrypted data into `buf` (`len` bytes). `n_out` (out, may be NULL): bytes read.
/// OK with *n_out == 0 means the server closed cleanly (TLS close_notify); a TCP close
/// without close_notify is CONNECTION_CLOSED (truncation is never silent). Non-blocking
/// mode: WOULD_BLOCK when nothing is available. Blocking mode: TIMEOUT after the stream's
/// timeout (mailsrv_tls_stream_set_timeout_ms). A blocking read waits for the socket without
/// holding the stream, so another thread may write meanwhile (full duplex, e.g. IMAP IDLE
/// read on one thread, DONE written from another); mailsrv_tls_stream_close() from another
/// thread ends the wait with CONNECTION_CLOSED.
/// Since 0.1.
///
/// # Safety
/// `s` valid; `buf` NULL or `len` writable bytes; `n_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_read(
    s: *mut mailsrv_tls_stream,
    buf: *mut u8,
    len: usize,
    n_out: *mut usize,
) -> mailsrv_status {
    ffi_boundary! {
        let s = try_ref!(s);
        if let Some(o) = unsafe { n_out.as_mut() } {
            *o = 0;
        }
        if buf.is_null() && len > 0 {
            return mailsrv_status::NullArg;
        }
        let buf: &mut [u8] = if len == 0 { &mut [] } else { unsafe { std::slice::from_raw_parts_mut(buf, len) } };
        if s.is_nonblocking() {
            return io_status(s.lock().try_read(buf), true, n_out);
        }
        let deadline = s.deadline();
        loop {
            match s.lock().try_read(buf) {
                Ok(None) => {}
                r => return io_status(r, false, n_out),
            }
            // Nothing buffered, nothing on the socket: wait for it without the lock.
            match s.wait(libc::POLLIN, deadline) {
                Ok(true) => {}
                Ok(false) => return mailsrv_status::Timeout,
                Err(status) => return status,
            }
        }
    }
}

/// Encrypts and sends `len` bytes of `buf`. `n_out` (out, may be NULL): bytes taken.
/// Blocking mode: all of it, or an error. Non-blocking mode: possibly fewer (then poll for
/// writability while mailsrv_tls_stream_wants_write() and call mailsrv_tls_stream_flush()),
/// or WOULD_BLOCK when nothing could be taken. May run while another thread reads; a
/// blocking write, like a blocking read, waits for the socket without holding the stream.
/// Blocking mode: TIMEOUT when not all of it was sent within the stream's timeout (`n_out`
/// then says how much was taken).
/// Since 0.1.
///
/// # Safety
/// `s` valid; `buf` NULL or `len` readable bytes; `n_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_write(
    s: *mut mailsrv_tls_stream,
    buf: *const u8,
    len: usize,
    n_out: *mut usize,
) -> mailsrv_status {
    ffi_boundary! {
        let s = try_ref!(s);
        if let Some(o) = unsafe { n_out.as_mut() } {
            *o = 0;
        }
        if buf.is_null() && len > 0 {
            return mailsrv_status::NullArg;
        }
        let buf: &[u8] = if len == 0 { &[] } else { unsafe { std::slice::from_raw_parts(buf, len) } };
        if s.is_nonblocking() {
            return io_status(s.lock().try_write(buf), true, n_out);
        }
        // Blocking: all of it on the socket, waiting for writability without the lock.
        let deadline = s.deadline();
        let mut taken = 0;
        loop {
            let done = {
                let mut c = s.lock();
                match c.try_write(&buf[taken..]) {
                    Ok(n) => taken += n.unwrap_or(0),
                    Err(e) => return mailsrv_status::from_error(&e),
                }
                taken == buf.len() && !c.wants_write()
            };
            if let Some(o) = unsafe { n_out.as_mut() } {
                *o = taken;
            }
            if done {
                return mailsrv_status::Ok;
            }
            match s.wait(libc::POLLOUT, deadline) {
                Ok(true) => {}
                Ok(false) => return mailsrv_status::Timeout,
                Err(status) => return status,
            }
        }
    }
}

/// Sends queued TLS records (non-blocking mode). OK when nothing is left; WOULD_BLOCK
/// otherwise.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_flush(s: *mut mailsrv_tls_stream) -> mailsrv_status {
    ffi_boundary! {
        let s = try_ref!(s);
        match s.lock().try_flush() {
            Ok(Some(())) => mailsrv_status::Ok,
            Ok(None) => mailsrv_status::WouldBlock,
            Err(e) => mailsrv_status::from_error(&e),
        }
    }
}

/// Sends TLS close_notify and shuts the connection down (RFC 8314 §3.4). Later reads and
/// writes fail with CONNECTION_CLOSED; the stream must still be freed. May be called while
/// another thread waits in a blocking read or write: that call returns CONNECTION_CLOSED
/// (the way to stop a reader thread before mailsrv_tls_stream_free()).
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_close(s: *mut mailsrv_tls_stream) -> mailsrv_status {
    ffi_boundary! {
        let s = try_ref!(s);
        match s.lock().close() {
            Ok(()) => mailsrv_status::Ok,
            Err(e) => mailsrv_status::from_error(&e),
        }
    }
}

/// Frees a stream, closing it first (close_notify) if that was not done. NULL does nothing.
/// No other call on the stream may be in progress or follow (close it first to stop a
/// reader thread, then join that thread, then free).
/// Since 0.1.
///
/// # Safety
/// `s` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_free(s: *mut mailsrv_tls_stream) {
    ffi_boundary! {
        unsafe { free_box(s) }
    }
}

/// Switches between blocking (the default) and non-blocking mode.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_set_nonblocking(
    s: *mut mailsrv_tls_stream,
    on: bool,
) -> mailsrv_status {
    ffi_boundary! {
        let s = try_ref!(s);
        match s.lock().set_nonblocking(on) {
            Ok(()) => {
                s.nonblocking.store(on, Ordering::Relaxed);
                mailsrv_status::Ok
            }
            Err(e) => mailsrv_status::from_error(&e),
        }
    }
}

/// Blocking mode: the longest a read or write waits, in milliseconds (0 = no limit, for
/// long IMAP IDLE waits). The default is the context's timeout.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_set_timeout_ms(
    s: *mut mailsrv_tls_stream,
    ms: u32,
) -> mailsrv_status {
    ffi_boundary! {
        let s = try_ref!(s);
        let t = (ms > 0).then(|| Duration::from_millis(u64::from(ms)));
        match s.lock().set_timeout(t) {
            Ok(()) => {
                s.timeout_ms.store(u64::from(ms), Ordering::Relaxed);
                mailsrv_status::Ok
            }
            Err(e) => mailsrv_status::from_error(&e),
        }
    }
}

/// The socket descriptor, for poll loops only; never read, write or close it. Rule: decrypted
/// data can wait inside the stream while the socket is not readable, so read until
/// WOULD_BLOCK (or check mailsrv_tls_stream_has_buffered_data()) before polling for
/// readability. -1 for NULL.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_fd(s: *const mailsrv_tls_stream) -> c_int {
    ffi_boundary! { try_ref!(s).fd }
}

/// True when a read can return data without waiting for the socket.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_has_buffered_data(s: *mut mailsrv_tls_stream) -> bool {
    ffi_boundary! { try_ref!(s).lock().has_buffered_plaintext() }
}

/// True while encrypted data waits to be sent (non-blocking mode: poll for writability and
/// call mailsrv_tls_stream_flush()).
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_wants_write(s: *const mailsrv_tls_stream) -> bool {
    ffi_boundary! { try_ref!(s).lock().wants_write() }
}

/// The negotiated protocol version: "TLSv1.3" or "TLSv1.2". Borrowed.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_tls_version(
    s: *const mailsrv_tls_stream,
) -> *const c_char {
    ffi_boundary! { try_ref!(s).tls_version.as_ptr() }
}

/// The negotiated cipher suite, e.g. "TLS13_AES_256_GCM_SHA384". Borrowed.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_cipher(s: *const mailsrv_tls_stream) -> *const c_char {
    ffi_boundary! { try_ref!(s).cipher.as_ptr() }
}

/// The SNI that was sent; NULL when none was (IP literal). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_sni(s: *const mailsrv_tls_stream) -> *const c_char {
    ffi_boundary! { try_ref!(s).sni.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()) }
}

/// The host connected to, normalised (A-labels, lower case, no trailing dot). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_host(s: *const mailsrv_tls_stream) -> *const c_char {
    ffi_boundary! { try_ref!(s).host.as_ptr() }
}

/// The peer address that won the Happy Eyeballs race, e.g. "[::1]:993". Borrowed.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_peer_address(
    s: *const mailsrv_tls_stream,
) -> *const c_char {
    ffi_boundary! { try_ref!(s).peer.as_ptr() }
}

/// The reference identifier the certificate matched, e.g. "DNS-ID mail.example.net" or
/// "SRV-ID _imaps.example.com". Borrowed.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_matched_identity(
    s: *const mailsrv_tls_stream,
) -> *const c_char {
    ffi_boundary! { try_ref!(s).matched.as_ptr() }
}

/// The server's greeting ("* OK ...", "+OK ...", "220 ..."). With implicit TLS it was read
/// over TLS; with STARTTLS it is the plaintext greeting from before TLS (unauthenticated:
/// show it, never act on it). The capabilities, by contrast, are always those announced
/// over TLS. Borrowed.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_greeting(
    s: *const mailsrv_tls_stream,
) -> *const c_char {
    ffi_boundary! { try_ref!(s).greeting.as_ptr() }
}

/// Number of capabilities the server announced over TLS (IMAP CAPABILITY, POP3 CAPA, SMTP
/// EHLO); what it said before TLS is discarded.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_capabilities_len(
    s: *const mailsrv_tls_stream,
) -> usize {
    ffi_boundary! { try_ref!(s).capabilities.len() }
}

/// The `i`-th capability (borrowed); NULL when out of range.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_capability_get(
    s: *const mailsrv_tls_stream,
    i: usize,
) -> *const c_char {
    ffi_boundary! { try_ref!(s).capabilities.get(i).map_or(std::ptr::null(), |c| c.as_ptr()) }
}

/// Number of certificates the server sent (leaf first).
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_peer_chain_len(s: *const mailsrv_tls_stream) -> usize {
    ffi_boundary! { try_ref!(s).peer_chain.len() }
}

/// The `i`-th peer certificate as DER: `*data` (borrowed) and `*len`. Returns OK, NULL_ARG
/// or NOT_FOUND (out of range).
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid; `data` and `len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_tls_stream_peer_cert_get(
    s: *const mailsrv_tls_stream,
    i: usize,
    data: *mut *const u8,
    len: *mut usize,
) -> mailsrv_status {
    ffi_boundary! {
        let s = try_ref!(s);
        let data = try_mut!(data);
        let len = try_mut!(len);
        match s.peer_chain.get(i) {
            Some(c) => {
                *data = c.as_ptr();
                *len = c.len();
                mailsrv_status::Ok
            }
            None => mailsrv_status::NotFound,
        }
    }
}
