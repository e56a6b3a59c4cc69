//! `mailsrv_verify_srv_authenticity` (+ `_async`): may this SRV answer change an account?
//! The result object `mailsrv_authenticity` carries the verdict, its evidence, both peer
//! chains and a sentence for the user.

use std::ffi::CString;
use std::os::raw::{c_char, c_void};

use super::binding::mailsrv_binding;
use super::boundary::{ffi_boundary, free_box, try_mut, try_ref, try_str};
use super::config::call_flags;
use super::ctx::mailsrv_ctx;
use super::discovery::dnssec_out;
use super::errbuf::{finish, with_errbuf};
use super::request::{UserData, deliver_to_c, mailsrv_request_id, started};
use super::status::mailsrv_status;
use super::stream::mailsrv_tls_stream;
use super::strings::cstring;
use crate::core::dns::answer::DnssecState;
use crate::core::service::Service;
use crate::core::tls::connect::MailConnection;
use crate::core::verdict::Verdict;
use crate::core::verdict::authenticity::{AuthRequest, Authenticity, CallerChains, Evidence};

/// Whether an SRV answer may be used without asking the user.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub enum mailsrv_verdict {
    /// Proven: the client may update the account.
    Authentic = 1,
    /// Not proven: only the user may accept it (no click-through), and only once the answer
    /// has persisted (see mailsrv_srv_change_check).
    Unverified = 2,
    /// Proven wrong (bogus DNSSEC, or signed records that do not hold the target).
    Rejected = 3,
}

/// What proved an AUTHENTIC verdict.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub enum mailsrv_evidence {
    /// Nothing (UNVERIFIED or REJECTED).
    None = 0,
    /// The SRV RRset is DNSSEC-secure and holds the target.
    Dnssec = 1,
    /// DNSSEC-secure SRV, addresses and TLSA records, and the server's certificate matches
    /// the TLSA records (RFC 7673; TLSA usages 2 and 3).
    Dane = 2,
    /// The target, asked with SNI = the mail domain, proved the SRV-ID `_service.domain`.
    ProbeSrvId = 3,
    /// The target, asked with SNI = the mail domain, proved the DNS-ID of the mail domain.
    ProbeDnsId = 4,
    /// Account discovery: the mail domain's own configuration document, fetched over HTTPS
    /// on every hop from host names in the mail domain, names the server. Since 0.1.
    HttpsDomain = 5,
    /// Account discovery: the ISPDB's entry for the mail domain (HTTPS) names the server.
    /// Since 0.1.
    Ispdb = 6,
    /// Account discovery: the mail domain's PACC document names the server, and the
    /// document's SHA-256 digest is in the domain's DNSSEC-secure `_ua-auto-config` TXT
    /// record. Since 0.1.
    PaccDnssec = 7,
}

/// An authenticity verdict (opaque, owned by the caller; immutable except for taking the
/// probe stream).
pub struct mailsrv_authenticity {
    verdict: mailsrv_verdict,
    evidence: mailsrv_evidence,
    target_verified: bool,
    in_domain: bool,
    srv_dnssec: Option<DnssecState>,
    detail: CString,
    probe_matched: Option<CString>,
    target_matched: Option<CString>,
    probe_status: mailsrv_status,
    target_status: mailsrv_status,
    probe_chain: Vec<Vec<u8>>,
    target_chain: Vec<Vec<u8>>,
    probe_stream: Option<MailConnection>,
    binding: Option<mailsrv_binding>,
}

impl mailsrv_authenticity {
    pub(crate) fn new(a: Authenticity) -> Self {
        let status = |e: &Option<crate::core::Error>| {
            e.as_ref()
                .map_or(mailsrv_status::Ok, mailsrv_status::from_error)
        };
        mailsrv_authenticity {
            verdict: match a.verdict {
                Verdict::Authentic => mailsrv_verdict::Authentic,
                Verdict::Unverified => mailsrv_verdict::Unverified,
                Verdict::Rejected => mailsrv_verdict::Rejected,
            },
            evidence: match a.evidence {
                None => mailsrv_evidence::None,
                Some(Evidence::Dnssec) => mailsrv_evidence::Dnssec,
                Some(Evidence::ProbeSrvId) => mailsrv_evidence::ProbeSrvId,
                Some(Evidence::ProbeDnsId) => mailsrv_evidence::ProbeDnsId,
                Some(Evidence::Dane) => mailsrv_evidence::Dane,
                Some(Evidence::HttpsDomain) => mailsrv_evidence::HttpsDomain,
                Some(Evidence::Ispdb) => mailsrv_evidence::Ispdb,
                Some(Evidence::PaccDnssec) => mailsrv_evidence::PaccDnssec,
            },
            target_verified: a.target_verified,
            in_domain: a.in_domain,
            srv_dnssec: a.srv_dnssec,
            detail: cstring(&a.detail),
            probe_matched: a.probe_matched.as_deref().map(cstring),
            target_matched: a.target_matched.as_deref().map(cstring),
            probe_status: status(&a.probe_error),
            target_status: status(&a.target_error),
            probe_chain: a.probe_chain,
            target_chain: a.target_chain,
            probe_stream: a.probe_connection,
            binding: a.binding.map(mailsrv_binding::new),
        }
    }
}

fn auth_request(
    domain: &str,
    service: u32,
    target: &str,
    port: u16,
    flags: u32,
) -> Result<AuthRequest, mailsrv_status> {
    let service = Service::from_bit(service).ok_or(mailsrv_status::InvalidArg)?;
    let flags = call_flags(flags).ok_or(mailsrv_status::InvalidArg)?;
    if flags.names_only {
        return Err(mailsrv_status::InvalidArg); // only with the caller's chains
    }
    let mut req = AuthRequest::new(domain, service, target, port);
    req.probe = !flags.no_probe;
    req.keep_probe = flags.keep_probe;
    req.accept_sibling = flags.match_options.accept_sibling_service;
    req.require_secure = flags.require_secure;
    Ok(req)
}

/// Judges one service's SRV answer (`_service._tcp.mail_domain` → `target`:`port`), blocking.
///
/// The SRV RRset is re-read through the context's validating resolver: bogus → REJECTED;
/// DNSSEC-secure and holding the target → AUTHENTIC (evidence DNSSEC); secure without it →
/// REJECTED. Otherwise the TLS probe: mailsrv connects to the target with SNI = the mail
/// domain and requires a chain-valid certificate carrying the SRV-ID `_service.domain` or
/// the DNS-ID `domain` (never the insecure target name, never a CN), and, concurrently,
/// connects with SNI = the target requiring the target's own DNS-ID (a fresh handshake).
/// Both → AUTHENTIC; the probe alone → UNVERIFIED with target_verified false; the probe
/// failing → UNVERIFIED. No credentials are ever sent. Each service is judged on its own.
///
/// `mail_domain`: the domain (or the address). `service`: one mailsrv_service value.
/// `target`, `port`: the answer to judge. `flags`: MAILSRV_FLAG_NO_PROBE,
/// MAILSRV_FLAG_KEEP_PROBE, MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE.
/// `out` (out, not NULL): owned verdict, freed with mailsrv_authenticity_free().
/// Returns OK (whatever the verdict), or NULL_ARG, INVALID_ARG, TIMEOUT, NO_TRUST_ANCHORS.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_verify_srv_authenticity(
    ctx: *mut mailsrv_ctx,
    mail_domain: *const c_char,
    service: u32,
    target: *const c_char,
    port: u16,
    flags: u32,
    out: *mut *mut mailsrv_authenticity,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let domain = try_str!(mail_domain);
        let target = try_str!(target);
        let req = match auth_request(domain, service, target, port, flags) {
            Ok(r) => r,
            Err(s) => return s,
        };
        finish(ctx.inner.verify_srv_authenticity(req), errbuf, errlen, |a| {
            *out = Box::into_raw(Box::new(mailsrv_authenticity::new(a)));
        })
    })}
}

/// Completion of mailsrv_verify_srv_authenticity_async(): `result` owned by the callback,
/// NULL unless OK; `detail` borrowed, never NULL.
#[allow(non_camel_case_types)]
pub type mailsrv_authenticity_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        id: mailsrv_request_id,
        status: mailsrv_status,
        result: *mut mailsrv_authenticity,
        detail: *const c_char,
    ),
>;

/// mailsrv_verify_srv_authenticity() without blocking: same leading arguments, then `cb`
/// (not NULL), `userdata`, `id_out` (may be NULL). The callback runs exactly once.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_verify_srv_authenticity_async(
    ctx: *mut mailsrv_ctx,
    mail_domain: *const c_char,
    service: u32,
    target: *const c_char,
    port: u16,
    flags: u32,
    cb: mailsrv_authenticity_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let Some(cb) = cb else { return mailsrv_status::NullArg };
        let domain = try_str!(mail_domain);
        let target = try_str!(target);
        let req = match auth_request(domain, service, target, port, flags) {
            Ok(r) => r,
            Err(s) => return s,
        };
        let deliver = deliver_to_c(cb, UserData(userdata), mailsrv_authenticity::new);
        started(ctx.inner.verify_srv_authenticity_async(req, deliver), id_out)
    }
}

/// Most certificates one chain of a mailsrv_peer_chains may hold.
const MAX_CHAIN: usize = 16;

/// The two certificate chains a client with its own TLS stack got (opaque, owned by the
/// caller, single-threaded; copied by each call that takes it): chain 0 from its
/// connection to the target with SNI = the mail domain (the probe), chain 1 from its
/// connection to the target with SNI = the target (the reconnect, a fresh full handshake).
pub struct mailsrv_peer_chains {
    probe: Option<Vec<Vec<u8>>>,
    target: Option<Vec<Vec<u8>>>,
}

/// Creates an empty pair of chains. `out` (out, not NULL): owned, freed with
/// mailsrv_peer_chains_free(). Returns OK or NULL_ARG.
/// Since 0.1.
///
/// # Safety
/// `out` NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_peer_chains_new(
    out: *mut *mut mailsrv_peer_chains,
) -> mailsrv_status {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = Box::into_raw(Box::new(mailsrv_peer_chains { probe: None, target: None }));
        mailsrv_status::Ok
    }
}

/// Frees the chains. NULL does nothing.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_peer_chains_free(c: *mut mailsrv_peer_chains) {
    ffi_boundary! {
        unsafe { free_box(c) }
    }
}

/// Appends one certificate (DER, `len` bytes, copied) to chain `which`: 0 = the probe (your
/// connection to the target with SNI = the mail domain), 1 = the reconnect (SNI = the
/// target). Add them as the server sent them, the leaf first; at most 16 per chain. A
/// chain you add nothing to counts as "that connection failed or was not made": the
/// verdict's mailsrv_authenticity_probe_status() / _target_status() is then NOT_FOUND.
/// Hand over what the server presented even when your stack refused it: mailsrv checks it
/// itself (unless MAILSRV_FLAG_NAMES_ONLY says your stack validated it).
///
/// Returns OK, NULL_ARG or INVALID_ARG (unknown `which`, empty certificate, more than 16).
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid; `der` NULL or `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_peer_chains_add_cert(
    c: *mut mailsrv_peer_chains,
    which: u32,
    der: *const u8,
    len: usize,
) -> mailsrv_status {
    ffi_boundary! {
        let c = try_mut!(c);
        if der.is_null() {
            return mailsrv_status::NullArg;
        }
        let chain = match which {
            0 => &mut c.probe,
            1 => &mut c.target,
            _ => return mailsrv_status::InvalidArg,
        };
        if len == 0 || chain.as_ref().is_some_and(|v| v.len() >= MAX_CHAIN) {
            return mailsrv_status::InvalidArg;
        }
        let bytes = unsafe { std::slice::from_raw_parts(der, len) }.to_vec();
        chain.get_or_insert_with(Vec::new).push(bytes);
        mailsrv_status::Ok
    }
}

/// Number of certificates in chain `which` (0 probe, 1 reconnect); 0 for NULL or unknown.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_peer_chains_len(
    c: *const mailsrv_peer_chains,
    which: u32,
) -> usize {
    ffi_boundary! {
        let c = try_ref!(c);
        match which {
            0 => c.probe.as_ref().map_or(0, Vec::len),
            1 => c.target.as_ref().map_or(0, Vec::len),
            _ => 0,
        }
    }
}

fn caller_chains(c: &mailsrv_peer_chains, flags: u32) -> CallerChains {
    CallerChains {
        probe: c.probe.clone(),
        target: c.target.clone(),
        store: None,
        names_only: flags & super::config::MAILSRV_FLAG_NAMES_ONLY != 0,
    }
}

fn chains_request(
    domain: &str,
    service: u32,
    target: &str,
    port: u16,
    flags: u32,
) -> Result<AuthRequest, mailsrv_status> {
    auth_request(
        domain,
        service,
        target,
        port,
        flags & !super::config::MAILSRV_FLAG_NAMES_ONLY,
    )
}

/// mailsrv_verify_srv_authenticity() for a client that keeps its own TLS stack (OpenSSL,
/// GnuTLS, NSS) and made the two connections itself: the same verdict, evidence, binding,
/// chains and detail from the same rules, with `chains` in place of mailsrv's probe and
/// reconnect. The SRV RRset is still re-read through the context's validating resolver
/// (bogus → REJECTED, DNSSEC-secure → AUTHENTIC without looking at the probe); when DANE
/// applies to a DNSSEC-secure target, chain 1 is matched against the target's
/// DNSSEC-signed TLSA records (evidence DANE; no match → REJECTED). mailsrv opens no
/// connection.
///
/// What to hand over (mailsrv_peer_chains_add_cert()): chain 0 from a connection to
/// `target`:`port` with SNI = the mail domain, chain 1 from a separate full handshake with
/// SNI = `target` (no session resumption between them). STARTTLS services: the chains of
/// the TLS sessions after STARTTLS. Without MAILSRV_FLAG_NAMES_ONLY each chain is
/// validated against the context's trust anchors exactly as mailsrv's verifier would; with
/// it, your stack's path validation is trusted and only the names are checked (chain 0:
/// SRV-ID `_service.domain` or DNS-ID `domain`; chain 1: DNS-ID `target`). An AUTHENTIC
/// verdict's binding (mailsrv_authenticity_binding()) says how your login connections must
/// be made for the evidence to hold: keep to its SNI and identity (and enforce TLSA when
/// mailsrv_binding_dane() is true).
///
/// `flags`: MAILSRV_FLAG_NAMES_ONLY, MAILSRV_FLAG_NO_PROBE (the chains are ignored),
/// MAILSRV_FLAG_REQUIRE_SECURE, MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE; KEEP_PROBE is
/// INVALID_ARG (there is no mailsrv connection to keep). `chains` borrowed, not NULL,
/// copied. `out` (out, not NULL): owned verdict, freed with mailsrv_authenticity_free().
/// Returns OK (whatever the verdict), NULL_ARG, INVALID_ARG, TIMEOUT, NO_TRUST_ANCHORS.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_verify_srv_authenticity_with_chains(
    ctx: *mut mailsrv_ctx,
    mail_domain: *const c_char,
    service: u32,
    target: *const c_char,
    port: u16,
    flags: u32,
    chains: *const mailsrv_peer_chains,
    out: *mut *mut mailsrv_authenticity,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let chains = try_ref!(chains);
        let domain = try_str!(mail_domain);
        let target = try_str!(target);
        let req = match chains_request(domain, service, target, port, flags) {
            Ok(r) => r,
            Err(s) => return s,
        };
        let result = ctx.inner.verify_srv_authenticity_with_chains(req, caller_chains(chains, flags));
        finish(result, errbuf, errlen, |a| {
            *out = Box::into_raw(Box::new(mailsrv_authenticity::new(a)));
        })
    })}
}

/// mailsrv_verify_srv_authenticity_with_chains() without blocking: same leading arguments,
/// then `cb` (not NULL), `userdata`, `id_out` (may be NULL). `chains` is copied before this
/// returns. The callback runs exactly once.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mailsrv_verify_srv_authenticity_with_chains_async(
    ctx: *mut mailsrv_ctx,
    mail_domain: *const c_char,
    service: u32,
    target: *const c_char,
    port: u16,
    flags: u32,
    chains: *const mailsrv_peer_chains,
    cb: mailsrv_authenticity_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let chains = try_ref!(chains);
        let Some(cb) = cb else { return mailsrv_status::NullArg };
        let domain = try_str!(mail_domain);
        let target = try_str!(target);
        let req = match chains_request(domain, service, target, port, flags) {
            Ok(r) => r,
            Err(s) => return s,
        };
        let deliver = deliver_to_c(cb, UserData(userdata), mailsrv_authenticity::new);
        started(
            ctx.inner.verify_srv_authenticity_with_chains_async(req, caller_chains(chains, flags), deliver),
            id_out,
        )
    }
}

/// Frees a verdict (and closes a probe stream that was kept but not taken). NULL does nothing.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_free(a: *mut mailsrv_authenticity) {
    ffi_boundary! {
        unsafe { free_box(a) }
    }
}

/// The verdict (a mailsrv_verdict value); 0 for NULL.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_verdict(a: *const mailsrv_authenticity) -> u32 {
    ffi_boundary! { try_ref!(a).verdict as u32 }
}

/// What proved it (a mailsrv_evidence value; NONE unless AUTHENTIC).
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_evidence(a: *const mailsrv_authenticity) -> u32 {
    ffi_boundary! { try_ref!(a).evidence as u32 }
}

/// True when the reconnect with SNI = target got a certificate for the target itself.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_target_verified(
    a: *const mailsrv_authenticity,
) -> bool {
    ffi_boundary! { try_ref!(a).target_verified }
}

/// True when the target lies inside the mail domain (RFC 8314 §5.1 (b)): reported for the
/// client's information, never counted as proof.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_in_domain(a: *const mailsrv_authenticity) -> bool {
    ffi_boundary! { try_ref!(a).in_domain }
}

/// DNSSEC state of the re-read SRV answer (a mailsrv_dnssec value; UNKNOWN if the lookup failed).
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_srv_dnssec(a: *const mailsrv_authenticity) -> u32 {
    ffi_boundary! { dnssec_out(try_ref!(a).srv_dnssec) as u32 }
}

/// How every connection that carries the user's credentials to this server must be made
/// (host, port, security, SNI, identity, TLSA; see mailsrv_binding_*): connect with
/// mailsrv_connect_with_binding() and store mailsrv_binding_text() with the account.
/// Borrowed (valid until the verdict is freed; mailsrv_binding_clone() keeps it longer);
/// NULL when the verdict is REJECTED. For UNVERIFIED it is the plain binding to the target,
/// to use only after the user accepted the server.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_binding(
    a: *const mailsrv_authenticity,
) -> *const mailsrv_binding {
    ffi_boundary! { mailsrv_binding::ptr(&try_ref!(a).binding) }
}

/// A sentence explaining the verdict, for the user. Borrowed.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_detail(
    a: *const mailsrv_authenticity,
) -> *const c_char {
    ffi_boundary! { try_ref!(a).detail.as_ptr() }
}

/// What the probe's certificate matched ("SRV-ID _imaps.example.com"); NULL if it did not.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_probe_matched(
    a: *const mailsrv_authenticity,
) -> *const c_char {
    ffi_boundary! { try_ref!(a).probe_matched.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()) }
}

/// What the reconnect's certificate matched ("DNS-ID mail.example.net"); NULL if it did not.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_target_matched(
    a: *const mailsrv_authenticity,
) -> *const c_char {
    ffi_boundary! { try_ref!(a).target_matched.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()) }
}

/// Why the probe failed (NAME_MISMATCH, UNKNOWN_ISSUER, CONNECT_FAILED, ...); OK if it
/// passed or did not run.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_probe_status(
    a: *const mailsrv_authenticity,
) -> mailsrv_status {
    ffi_boundary! { try_ref!(a).probe_status }
}

/// Why the reconnect with SNI = target failed; OK if it passed or did not run.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_target_status(
    a: *const mailsrv_authenticity,
) -> mailsrv_status {
    ffi_boundary! { try_ref!(a).target_status }
}

/// Number of certificates in the probe's (`which` = 0) or the reconnect's (`which` = 1)
/// peer chain, when the handshake got that far with a valid certificate.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_chain_len(
    a: *const mailsrv_authenticity,
    which: u32,
) -> usize {
    ffi_boundary! {
        let a = try_ref!(a);
        match which {
            0 => a.probe_chain.len(),
            1 => a.target_chain.len(),
            _ => 0,
        }
    }
}

/// The `i`-th certificate (DER, borrowed) of chain `which` (0 probe, 1 reconnect).
/// Returns OK, NULL_ARG or NOT_FOUND.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid; `data`, `len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_cert_get(
    a: *const mailsrv_authenticity,
    which: u32,
    i: usize,
    data: *mut *const u8,
    len: *mut usize,
) -> mailsrv_status {
    ffi_boundary! {
        let a = try_ref!(a);
        let data = try_mut!(data);
        let len = try_mut!(len);
        let chain = match which {
            0 => &a.probe_chain,
            1 => &a.target_chain,
            _ => return mailsrv_status::InvalidArg,
        };
        match chain.get(i) {
            Some(c) => {
                *data = c.as_ptr();
                *len = c.len();
                mailsrv_status::Ok
            }
            None => mailsrv_status::NotFound,
        }
    }
}

/// With MAILSRV_FLAG_KEEP_PROBE and an AUTHENTIC verdict by probe: hands over the verified
/// probe connection (SNI = the mail domain), so the client can try the user's login before
/// saving the account. `out` (out): the owned stream, or NULL. Returns OK, NULL_ARG or
/// NOT_FOUND (no kept stream, or already taken).
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_authenticity_take_probe_stream(
    a: *mut mailsrv_authenticity,
    out: *mut *mut mailsrv_tls_stream,
) -> mailsrv_status {
    ffi_boundary! {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let a = try_mut!(a);
        match a.probe_stream.take() {
            Some(c) => {
                *out = Box::into_raw(Box::new(mailsrv_tls_stream::from_connection(c)));
                mailsrv_status::Ok
            }
            None => mailsrv_status::NotFound,
        }
    }
}
