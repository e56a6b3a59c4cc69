//! `mailsrv_account_discover` (+ `_async`): account discovery beyond SRV (issues 16, 17).
//! From an email address, every source at once (PACC, provider autoconfig, .well-known,
//! SRV, ISPDB, MX-derived, Exchange Autodiscover, plain HTTP; guessing when asked), the
//! best-ranked configuration, and a verdict with its evidence and binding for every server
//! it names (docs/account-discovery.md).

use std::ffi::CString;
use std::os::raw::{c_char, c_void};

use super::authenticity::mailsrv_authenticity;
use super::boundary::{ffi_boundary, free_box, try_mut, try_ref, try_str};
use super::config::call_flags;
use super::ctx::mailsrv_ctx;
use super::errbuf::{finish, with_errbuf};
use super::request::{UserData, deliver_to_c, mailsrv_request_id, started};
use super::status::mailsrv_status;
use super::strings::cstring;
use crate::core::account::{AccountDiscovery, Candidate, Source, SourceReport, SourceState};
use crate::core::service::Purpose;

/// A source of account configurations; the values are bits for masks.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub enum mailsrv_source {
    /// `https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=...`
    Autoconfig = 1,
    /// `https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=...`
    AutoconfigWellknown = 2,
    /// `http://autoconfig.<domain>/mail/config-v1.1.xml` (legacy plain HTTP; never proof).
    AutoconfigHttp = 4,
    /// The ISPDB (mailsrv_config_set_ispdb_url()).
    Ispdb = 8,
    /// HTTPS autoconfig of the highest-priority MX host's parent and registrable domains.
    MxAutoconfig = 16,
    /// The ISPDB entries of those domains.
    MxIspdb = 32,
    /// RFC 6186 / RFC 8314 SRV records (mailsrv_srv_discover()).
    Srv = 64,
    /// PACC (draft-ietf-mailmaint-pacc):
    /// `https://ua-auto-config.<domain>/.well-known/user-agent-configuration.json`, checked
    /// against the SHA-256 digests of the `_ua-auto-config.<domain>` TXT records. Since 0.1.
    Pacc = 128,
    /// Exchange Autodiscover (POX): `autodiscover.<domain>`, `<domain>`, the plain-HTTP
    /// redirect to HTTPS and the `_autodiscover._tcp` SRV record
    /// (mailsrv_config_set_autodiscover_cb()). Since 0.1.
    Autodiscover = 256,
    /// Guessing `imap.`, `mail.`, the bare domain and `smtp.`, `mail.`, each checked by
    /// connecting (greeting and TLS); never in the default set. Since 0.1.
    Guess = 512,
}

/// The sources a discovery asks when its mask is 0: every source but MAILSRV_SOURCE_GUESS.
/// Add guessing with `MAILSRV_SOURCES_DEFAULT | MAILSRV_SOURCE_GUESS`. Since 0.1.
pub const MAILSRV_SOURCES_DEFAULT: u32 = 511;

/// What an account's configuration passes through beyond mail servers (PACC).
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub enum mailsrv_web_service {
    /// The JMAP session URL.
    Jmap = 1,
    /// The CalDAV URL.
    Caldav = 2,
    /// The CardDAV URL.
    Carddav = 3,
    /// The `oauth-public` issuer (draft-ietf-mailmaint-oauth-public).
    OauthPublicIssuer = 4,
}

/// What became of one source.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub enum mailsrv_source_state {
    /// Not asked (not in the mask, or no ISPDB configured).
    Skipped = 0,
    /// It found a configuration.
    Found = 1,
    /// It failed: see mailsrv_account_source_status() and _detail().
    Failed = 2,
    /// A higher-ranked source was taken first: it was cancelled.
    Cancelled = 3,
}

/// A field of the configuration's `oAuth2` element.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy)]
pub enum mailsrv_oauth2_field {
    Issuer = 1,
    Scope = 2,
    AuthUrl = 3,
    TokenUrl = 4,
}

/// One candidate server (opaque, borrowed from its mailsrv_account).
pub struct mailsrv_candidate {
    source: Source,
    url: Option<CString>,
    protocol: CString,
    service: u32,
    host: CString,
    port: u16,
    security: CString,
    username: Option<CString>,
    authentication: Vec<CString>,
    verdict: Result<mailsrv_authenticity, mailsrv_status>,
}

impl mailsrv_candidate {
    fn new(c: Candidate) -> Self {
        mailsrv_candidate {
            source: c.source,
            url: c.url.as_deref().map(cstring),
            protocol: cstring(c.protocol.name()),
            service: c.service.map_or(0, |s| s.bit()),
            host: cstring(&c.host),
            port: c.port,
            security: cstring(c.socket.name()),
            username: c.username.as_deref().map(cstring),
            authentication: c.authentication.iter().map(|a| cstring(a)).collect(),
            verdict: c
                .verdict
                .map(mailsrv_authenticity::new)
                .map_err(|e| mailsrv_status::from_error(&e)),
        }
    }
}

struct Report {
    state: mailsrv_source_state,
    status: mailsrv_status,
    detail: CString,
    unfollowed: Vec<CString>,
}

/// The report's sentence: the error (or the notes), then the DNS record the source rests on
/// and what it did not follow.
fn report_detail(r: &SourceReport) -> String {
    let mut parts = vec![match &r.error {
        Some(e) => e.to_string(),
        None => r.notes.join("; "),
    }];
    if let (Some((name, st)), Some(_)) = (&r.record, &r.error) {
        parts.push(format!("{name}: {}", st.name()));
    }
    if !r.unfollowed.is_empty() && r.error.is_none() {
        parts.push(format!("not followed: {}", r.unfollowed.join(", ")));
    }
    parts.retain(|p| !p.is_empty());
    parts.join("; ")
}

impl Report {
    fn new(r: &SourceReport) -> Self {
        Report {
            state: match r.state {
                SourceState::Skipped => mailsrv_source_state::Skipped,
                SourceState::Found => mailsrv_source_state::Found,
                SourceState::Failed => mailsrv_source_state::Failed,
                SourceState::Cancelled => mailsrv_source_state::Cancelled,
            },
            status: r
                .error
                .as_ref()
                .map_or(mailsrv_status::Ok, mailsrv_status::from_error),
            detail: cstring(&report_detail(r)),
            unfollowed: r.unfollowed.iter().map(|u| cstring(u)).collect(),
        }
    }
}

/// An account-discovery result (opaque, immutable except for taking probe streams, owned by
/// the caller).
pub struct mailsrv_account {
    address: CString,
    domain: CString,
    source: u32,
    candidates: Vec<mailsrv_candidate>,
    reports: Vec<(Source, Report)>,
    preferred: [Option<usize>; 2],
    display_name: Option<CString>,
    oauth2: [Option<CString>; 4],
    web: [Option<CString>; 4],
}

impl mailsrv_account {
    fn new(a: AccountDiscovery) -> Self {
        let reports = a
            .sources
            .iter()
            .map(|r| (r.source, Report::new(r)))
            .collect();
        let o = a.oauth2.clone().unwrap_or_default();
        let c = |s: &Option<String>| s.as_deref().map(cstring);
        mailsrv_account {
            address: cstring(&a.address),
            domain: cstring(&a.domain),
            source: a.source.map_or(0, Source::bit),
            preferred: [a.preferred_access, a.preferred_submission],
            display_name: c(&a.display_name),
            oauth2: [c(&o.issuer), c(&o.scope), c(&o.auth_url), c(&o.token_url)],
            web: [
                c(&a.web.jmap),
                c(&a.web.caldav),
                c(&a.web.carddav),
                c(&a.web.oauth_public_issuer),
            ],
            candidates: a
                .candidates
                .into_iter()
                .map(mailsrv_candidate::new)
                .collect(),
            reports,
        }
    }

    fn report(&self, source: u32) -> Option<&Report> {
        let s = Source::from_bit(source)?;
        self.reports.iter().find(|(x, _)| *x == s).map(|(_, r)| r)
    }
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// Discovers the account of `address` (`user@domain`: the local part is needed for the
/// documents), blocking: every source in `sources` (a mask of mailsrv_source values; 0 =
/// MAILSRV_SOURCES_DEFAULT, every source but GUESS) at once; the configuration of a source
/// is taken only when every higher-ranked one failed or timed out (rank: PACC, AUTOCONFIG,
/// AUTOCONFIG_WELLKNOWN, SRV, ISPDB, MX_AUTOCONFIG, MX_ISPDB, AUTODISCOVER, AUTOCONFIG_HTTP,
/// GUESS), and lower-ranked ones still running are cancelled. Then every server of that
/// configuration gets a verdict, evidence and binding (mailsrv_candidate_verdict()):
/// DNSSEC (SRV, a signed MX for hosts in the provider's domain, a signed Autodiscover SRV),
/// PACC_DNSSEC, HTTPS_DOMAIN, ISPDB, DANE, or the TLS probe; nothing else is AUTHENTIC.
/// A change check (re-discovery of a saved account) must leave out AUTOCONFIG_HTTP.
///
/// `flags`: MAILSRV_FLAG_NO_PROBE, MAILSRV_FLAG_REQUIRE_SECURE (only DNSSEC and DANE count).
/// `out` (out, not NULL): owned, freed with mailsrv_account_free(). Returns OK also when no
/// source found anything (then no candidate; see mailsrv_account_source_status()), or
/// NULL_ARG, INVALID_ARG (bad address, unknown bits), TIMEOUT, NO_TRUST_ANCHORS.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_discover(
    ctx: *mut mailsrv_ctx,
    address: *const c_char,
    sources: u32,
    flags: u32,
    out: *mut *mut mailsrv_account,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let address = try_str!(address);
        let Some(flags) = call_flags(flags) else { return mailsrv_status::InvalidArg };
        let Some(sources) = Source::from_mask(sources) else { return mailsrv_status::InvalidArg };
        finish(ctx.inner.discover_account(address, &sources, flags.autoconfig()), errbuf, errlen, |a| {
            *out = Box::into_raw(Box::new(mailsrv_account::new(a)));
        })
    })}
}

/// Completion of mailsrv_account_discover_async(): `result` owned by the callback, NULL
/// unless OK; `detail` borrowed, never NULL.
#[allow(non_camel_case_types)]
pub type mailsrv_account_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        id: mailsrv_request_id,
        status: mailsrv_status,
        result: *mut mailsrv_account,
        detail: *const c_char,
    ),
>;

/// mailsrv_account_discover() without blocking: same leading arguments, then `cb` (not
/// NULL), `userdata`, `id_out` (may be NULL). The callback runs exactly once (CANCELLED
/// after mailsrv_cancel(), SHUTDOWN when the context is freed), in either dispatch mode.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` callable from the dispatch thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_discover_async(
    ctx: *mut mailsrv_ctx,
    address: *const c_char,
    sources: u32,
    flags: u32,
    cb: mailsrv_account_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let Some(cb) = cb else { return mailsrv_status::NullArg };
        let address = try_str!(address);
        let Some(flags) = call_flags(flags) else { return mailsrv_status::InvalidArg };
        let Some(sources) = Source::from_mask(sources) else { return mailsrv_status::InvalidArg };
        let deliver = deliver_to_c(cb, UserData(userdata), mailsrv_account::new);
        started(ctx.inner.discover_account_async(address, &sources, flags.autoconfig(), deliver), id_out)
    }
}

/// Frees an account-discovery result and its candidates. NULL does nothing.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_free(a: *mut mailsrv_account) {
    ffi_boundary! {
        unsafe { free_box(a) }
    }
}

/// The address asked about, with its domain in A-labels. Borrowed.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_address(a: *const mailsrv_account) -> *const c_char {
    ffi_boundary! { try_ref!(a).address.as_ptr() }
}

/// The mail domain (A-labels). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_domain(a: *const mailsrv_account) -> *const c_char {
    ffi_boundary! { try_ref!(a).domain.as_ptr() }
}

/// The mailsrv_source whose configuration was taken; 0 when no source found one.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_source(a: *const mailsrv_account) -> u32 {
    ffi_boundary! { try_ref!(a).source }
}

/// How many candidate servers the configuration names (0 when nothing was found).
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_candidates_len(a: *const mailsrv_account) -> usize {
    ffi_boundary! { try_ref!(a).candidates.len() }
}

/// Candidate `i` in the document's order (borrowed, valid until the result is freed); NULL
/// when out of range.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_candidate_get(
    a: *const mailsrv_account,
    i: usize,
) -> *const mailsrv_candidate {
    ffi_boundary! {
        try_ref!(a).candidates.get(i).map_or(std::ptr::null(), |c| c as *const _)
    }
}

/// The candidate to configure for `purpose` (a mailsrv_purpose value): the first AUTHENTIC
/// one of that purpose, else the first UNVERIFIED one (ask the user); never a REJECTED one.
/// Borrowed; NULL when there is none. `index_out` (may be NULL) gets its index.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid; `index_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_preferred(
    a: *const mailsrv_account,
    purpose: u32,
    index_out: *mut usize,
) -> *const mailsrv_candidate {
    ffi_boundary! {
        let a = try_ref!(a);
        let p = match purpose {
            1 => Purpose::Access,
            2 => Purpose::Submission,
            _ => return std::ptr::null(),
        };
        let slot = if p == Purpose::Access { 0 } else { 1 };
        match a.preferred[slot] {
            Some(i) => {
                if !index_out.is_null() {
                    unsafe { *index_out = i };
                }
                &a.candidates[i] as *const _
            }
            None => std::ptr::null(),
        }
    }
}

/// What became of `source` (one mailsrv_source value) in this discovery: a
/// mailsrv_source_state value; SKIPPED (0) for an unknown source or NULL.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_source_state(
    a: *const mailsrv_account,
    source: u32,
) -> u32 {
    ffi_boundary! {
        try_ref!(a).report(source).map_or(mailsrv_source_state::Skipped, |r| r.state) as u32
    }
}

/// Why `source` failed (NXDOMAIN, HTTP, BAD_CONFIG, TIMEOUT, a certificate status, ...);
/// OK when it did not fail; INVALID_ARG for an unknown value.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_source_status(
    a: *const mailsrv_account,
    source: u32,
) -> mailsrv_status {
    ffi_boundary! {
        try_ref!(a).report(source).map_or(mailsrv_status::InvalidArg, |r| r.status)
    }
}

/// A sentence about `source`: its error, or notes (entries skipped, domains asked).
/// Borrowed, never NULL for a known source; NULL for an unknown value.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_source_detail(
    a: *const mailsrv_account,
    source: u32,
) -> *const c_char {
    ffi_boundary! {
        try_ref!(a).report(source).map_or(std::ptr::null(), |r| r.detail.as_ptr())
    }
}

/// The configuration's `displayName`. Borrowed; NULL when absent.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_display_name(a: *const mailsrv_account) -> *const c_char {
    ffi_boundary! { opt_ptr(&try_ref!(a).display_name) }
}

/// A field (mailsrv_oauth2_field) of the configuration's `oAuth2` element, passed through
/// as written. Borrowed; NULL when absent or unknown.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_oauth2(
    a: *const mailsrv_account,
    field: u32,
) -> *const c_char {
    ffi_boundary! {
        let a = try_ref!(a);
        match field {
            1..=4 => opt_ptr(&a.oauth2[field as usize - 1]),
            _ => std::ptr::null(),
        }
    }
}

/// A URL (or the issuer) of `service` (a mailsrv_web_service value) the configuration passes
/// through (PACC: JMAP, CalDAV, CardDAV, the `oauth-public` issuer), as written; HTTPS URLs
/// only. They carry the configuration's evidence (see the candidates' verdicts); mailsrv
/// connects to none of them. Borrowed; NULL when absent or unknown.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_web_url(
    a: *const mailsrv_account,
    service: u32,
) -> *const c_char {
    ffi_boundary! {
        let a = try_ref!(a);
        match service {
            1..=4 => opt_ptr(&a.web[service as usize - 1]),
            _ => std::ptr::null(),
        }
    }
}

/// URL `i` that `source` did not follow because it lies outside the registrable domain of
/// the address's domain and nothing confirmed it (Autodiscover: a plain-HTTP redirect, an
/// unsigned SRV record, a RedirectAddr answer; see mailsrv_config_set_autodiscover_cb()).
/// Borrowed; NULL when out of range or for an unknown source.
/// Since 0.1.
///
/// # Safety
/// `a` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_account_source_unfollowed(
    a: *const mailsrv_account,
    source: u32,
    i: usize,
) -> *const c_char {
    ffi_boundary! {
        try_ref!(a)
            .report(source)
            .and_then(|r| r.unfollowed.get(i))
            .map_or(std::ptr::null(), |u| u.as_ptr())
    }
}

/// The mailsrv_source that named this candidate.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_source(c: *const mailsrv_candidate) -> u32 {
    ffi_boundary! { try_ref!(c).source.bit() }
}

/// The URL of the document that named it (after redirects); NULL for SRV. Borrowed.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_url(c: *const mailsrv_candidate) -> *const c_char {
    ffi_boundary! { opt_ptr(&try_ref!(c).url) }
}

/// "imap", "pop3" or "smtp". Borrowed.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_protocol(c: *const mailsrv_candidate) -> *const c_char {
    ffi_boundary! { try_ref!(c).protocol.as_ptr() }
}

/// The mailsrv_service (protocol and TLS mode); 0 for a server offered without TLS.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_service(c: *const mailsrv_candidate) -> u32 {
    ffi_boundary! { try_ref!(c).service }
}

/// The host (A-labels). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_host(c: *const mailsrv_candidate) -> *const c_char {
    ffi_boundary! { try_ref!(c).host.as_ptr() }
}

/// The port.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_port(c: *const mailsrv_candidate) -> u16 {
    ffi_boundary! { try_ref!(c).port }
}

/// The document's `socketType`: "ssl", "starttls" or "plain". Borrowed.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_security(c: *const mailsrv_candidate) -> *const c_char {
    ffi_boundary! { try_ref!(c).security.as_ptr() }
}

/// The user name to log in with (placeholders substituted); NULL when the source gives
/// none (SRV: use the address). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_username(c: *const mailsrv_candidate) -> *const c_char {
    ffi_boundary! { opt_ptr(&try_ref!(c).username) }
}

/// How many `authentication` methods the document lists.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_authentication_len(
    c: *const mailsrv_candidate,
) -> usize {
    ffi_boundary! { try_ref!(c).authentication.len() }
}

/// Authentication method `i` in preference order, as written ("OAuth2",
/// "password-cleartext", ...). Borrowed; NULL when out of range.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_authentication_get(
    c: *const mailsrv_candidate,
    i: usize,
) -> *const c_char {
    ffi_boundary! {
        try_ref!(c).authentication.get(i).map_or(std::ptr::null(), |s| s.as_ptr())
    }
}

/// The candidate's verdict, evidence and binding (read it with the mailsrv_authenticity_*
/// getters; mailsrv_authenticity_binding() is how every login must connect). Borrowed,
/// valid until the result is freed; NULL when the check itself failed
/// (mailsrv_candidate_verdict_status()). Never free it.
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_verdict(
    c: *const mailsrv_candidate,
) -> *const mailsrv_authenticity {
    ffi_boundary! {
        match &try_ref!(c).verdict {
            Ok(v) => v as *const _,
            Err(_) => std::ptr::null(),
        }
    }
}

/// OK when a verdict exists; else why the check failed (TIMEOUT, ...).
/// Since 0.1.
///
/// # Safety
/// `c` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_candidate_verdict_status(
    c: *const mailsrv_candidate,
) -> mailsrv_status {
    ffi_boundary! {
        match &try_ref!(c).verdict {
            Ok(_) => mailsrv_status::Ok,
            Err(s) => *s,
        }
    }
}

/// The name of a mailsrv_source ("pacc", "autoconfig", "autoconfig-wellknown",
/// "autoconfig-http", "ispdb", "mx-autoconfig", "mx-ispdb", "srv", "autodiscover",
/// "guess"); static, never NULL ("" if unknown).
/// Since 0.1.
#[unsafe(no_mangle)]
pub extern "C" fn mailsrv_source_name(source: u32) -> *const c_char {
    ffi_boundary! {
        match Source::from_bit(source) {
            Some(Source::Autoconfig) => c"autoconfig".as_ptr(),
            Some(Source::AutoconfigWellKnown) => c"autoconfig-wellknown".as_ptr(),
            Some(Source::AutoconfigHttp) => c"autoconfig-http".as_ptr(),
            Some(Source::Ispdb) => c"ispdb".as_ptr(),
            Some(Source::MxAutoconfig) => c"mx-autoconfig".as_ptr(),
            Some(Source::MxIspdb) => c"mx-ispdb".as_ptr(),
            Some(Source::Srv) => c"srv".as_ptr(),
            Some(Source::Pacc) => c"pacc".as_ptr(),
            Some(Source::Autodiscover) => c"autodiscover".as_ptr(),
            Some(Source::Guess) => c"guess".as_ptr(),
            None => c"".as_ptr(),
        }
    }
}
