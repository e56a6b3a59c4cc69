//! SRV discovery from C: `mailsrv_srv_discover` (+ `_async`) and the immutable
//! `mailsrv_discovery` result with its per-service `mailsrv_srv_set` and `mailsrv_endpoint`s.
//! Every getter returns borrowed data valid until mailsrv_discovery_free().

use std::ffi::CString;
use std::os::raw::{c_char, c_void};

use super::boundary::{ffi_boundary, free_box, try_mut, try_ref, try_str};
use super::config::call_flags;
use super::ctx::mailsrv_ctx;
use super::errbuf::{finish, with_errbuf};
use super::request::{UserData, deliver_to_c, mailsrv_request_id, started};
use super::status::mailsrv_status;
use super::stream::{mailsrv_security, security_out};
use super::strings::cstring;
use crate::core::dns::answer::DnssecState;
use crate::core::dns::discover::{Discovery, Endpoint, ServiceAnswer, SrvState};
use crate::core::service::{Purpose, Service};

/// The six mail services. The values are bits, so they also form masks:
/// `MAILSRV_SERVICE_IMAPS | MAILSRV_SERVICE_SUBMISSIONS`; 0 means all six.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum mailsrv_service {
    /// IMAP over implicit TLS (`_imaps._tcp`, port 993).
    Imaps = 1,
    /// IMAP with STARTTLS (`_imap._tcp`, port 143).
    Imap = 2,
    /// POP3 over implicit TLS (`_pop3s._tcp`, port 995).
    Pop3s = 4,
    /// POP3 with STLS (`_pop3._tcp`, port 110).
    Pop3 = 8,
    /// Submission over implicit TLS (`_submissions._tcp`, port 465, RFC 8314).
    Submissions = 16,
    /// Submission with STARTTLS (`_submission._tcp`, port 587).
    Submission = 32,
}

/// What the SRV query of one service found.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum mailsrv_srv_state {
    /// Endpoints, in preference order.
    Found = 1,
    /// The domain says the service is not offered (a "." target).
    NotOffered = 2,
    /// No SRV record (NXDOMAIN or NODATA): other discovery may be tried.
    NoRecord = 3,
    /// SERVFAIL, timeout, indeterminate DNSSEC or policy: unknown, never "no record".
    LookupFailed = 4,
    /// DNSSEC validation failed: do not use this service's answer.
    Bogus = 5,
}

/// The DNSSEC state of an RRset, validated inside mailsrv (never a server's AD bit).
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum mailsrv_dnssec {
    /// No answer to judge (lookup failed before one arrived).
    Unknown = 0,
    /// Signed, with a chain of trust to a trust anchor.
    Secure = 1,
    /// Provably unsigned (no chain of trust exists).
    Insecure = 2,
    /// Should be signed but does not validate: an attack or a broken zone.
    Bogus = 3,
    /// Could not be established (DNSSEC keys could not be fetched).
    Indeterminate = 4,
    /// The network path cannot carry DNSSEC (a forwarder that strips signatures, rejects
    /// EDNS or refuses DNSKEY/DS queries): the answer was fetched without DNSSEC and is used
    /// as unsigned, so authenticity rests on the certificate probe. An error under
    /// MAILSRV_FLAG_REQUIRE_SECURE.
    Unavailable = 5,
    /// Addresses only (mailsrv_endpoint_address_dnssec()): they came from the hosts file
    /// (mailsrv_config_set_hosts_file()), not from DNS, so DNSSEC says nothing about them.
    /// Never secure; DANE does not apply to them.
    HostsFile = 6,
}

/// What a service is for, to pick among competing services.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum mailsrv_purpose {
    /// Reading mail: IMAP or POP3.
    Access = 1,
    /// Sending mail: submission.
    Submission = 2,
}

/// The result of a discovery (opaque, immutable, owned by the caller).
pub struct mailsrv_discovery {
    core: Discovery,
    domain: CString,
    sets: Vec<mailsrv_srv_set>,
}

/// One service's answer within a discovery (opaque, borrowed).
pub struct mailsrv_srv_set {
    service: Service,
    state: SrvState,
    status: mailsrv_status,
    detail: CString,
    dnssec: Option<DnssecState>,
    ttl: u32,
    endpoints: Vec<mailsrv_endpoint>,
    diagnostics: Vec<CString>,
}

/// One SRV target with its addresses (opaque, borrowed).
pub struct mailsrv_endpoint {
    core: Endpoint,
    target: CString,
    addresses: Vec<CString>,
    address_status: mailsrv_status,
    address_detail: CString,
}

impl mailsrv_discovery {
    pub(crate) fn new(d: Discovery) -> Self {
        let sets = d.services.iter().map(srv_set).collect();
        mailsrv_discovery {
            domain: cstring(&d.domain),
            core: d,
            sets,
        }
    }

    fn set_of(&self, s: &ServiceAnswer) -> Option<&mailsrv_srv_set> {
        self.sets.iter().find(|c| c.service == s.service)
    }
}

fn srv_set(s: &ServiceAnswer) -> mailsrv_srv_set {
    mailsrv_srv_set {
        service: s.service,
        state: s.state,
        status: s
            .error
            .as_ref()
            .map_or(mailsrv_status::Ok, mailsrv_status::from_error),
        detail: cstring(s.error.as_ref().map_or("", |e| e.detail())),
        dnssec: s.dnssec,
        ttl: s.ttl,
        endpoints: s.endpoints.iter().map(endpoint).collect(),
        diagnostics: s.diagnostics.iter().map(|d| cstring(d)).collect(),
    }
}

fn endpoint(e: &Endpoint) -> mailsrv_endpoint {
    mailsrv_endpoint {
        target: cstring(&e.target),
        addresses: e
            .addresses
            .iter()
            .map(|a| cstring(&a.to_string()))
            .collect(),
        address_status: e
            .address_error
            .as_ref()
            .map_or(mailsrv_status::Ok, mailsrv_status::from_error),
        address_detail: cstring(e.address_error.as_ref().map_or("", |x| x.detail())),
        core: e.clone(),
    }
}

pub(crate) fn dnssec_out(d: Option<DnssecState>) -> mailsrv_dnssec {
    match d {
        None => mailsrv_dnssec::Unknown,
        Some(DnssecState::Secure) => mailsrv_dnssec::Secure,
        Some(DnssecState::Insecure) => mailsrv_dnssec::Insecure,
        Some(DnssecState::Bogus) => mailsrv_dnssec::Bogus,
        Some(DnssecState::Indeterminate) => mailsrv_dnssec::Indeterminate,
        Some(DnssecState::Unavailable) => mailsrv_dnssec::Unavailable,
        Some(DnssecState::HostsFile) => mailsrv_dnssec::HostsFile,
    }
}

/// Parses the arguments both variants share.
fn discover_args(services: u32, flags: u32) -> Result<(Vec<Service>, bool), mailsrv_status> {
    let list = Service::from_mask(services).ok_or(mailsrv_status::InvalidArg)?;
    let flags = call_flags(flags).ok_or(mailsrv_status::InvalidArg)?;
    Ok((list, flags.require_secure))
}

/// Discovers the mail servers of `address` ("joe@example.com" or "example.com"), blocking.
///
/// Queries `_<service>._tcp.<domain>` SRV for every service in `services` (a mask of
/// mailsrv_service bits; 0 = all six) at once, orders each answer by RFC 2782 (priority,
/// then weighted random), then looks up every target's AAAA and A at once. The domain is
/// the text after the last '@', IDNs converted to A-labels. Per-service failures (SERVFAIL,
/// timeout, bogus) do not fail the call: they are in each mailsrv_srv_set.
/// `ctx` borrowed. `address` borrowed UTF-8. `flags`: MAILSRV_FLAG_REQUIRE_SECURE or 0.
/// `out` (out, not NULL): the owned result, freed with mailsrv_discovery_free(); NULL on error.
/// `errbuf`/`errlen` (may be NULL/0): why the call failed, "" on success.
/// Returns OK, NULL_ARG, INVALID_ARG (malformed address, over-long name, unknown bits),
/// TIMEOUT, IN_CALLBACK (from a thread-mode callback) or PANIC.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `errbuf` NULL or `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_discover(
    ctx: *mut mailsrv_ctx,
    address: *const c_char,
    services: u32,
    flags: u32,
    out: *mut *mut mailsrv_discovery,
    errbuf: *mut c_char,
    errlen: usize,
) -> mailsrv_status {
    ffi_boundary! { with_errbuf(errbuf, errlen, || {
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let ctx = try_ref!(ctx);
        let address = try_str!(address);
        let (list, secure) = match discover_args(services, flags) {
            Ok(a) => a,
            Err(s) => return s,
        };
        finish(ctx.inner.discover(address, &list, secure), errbuf, errlen, |d| {
            *out = Box::into_raw(Box::new(mailsrv_discovery::new(d)));
        })
    })}
}

/// Completion of mailsrv_srv_discover_async(). `result` is owned by the callback (free it
/// with mailsrv_discovery_free()) and NULL unless `status` is OK; `detail` is borrowed for
/// the call and never NULL.
#[allow(non_camel_case_types)]
pub type mailsrv_discover_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        id: mailsrv_request_id,
        status: mailsrv_status,
        result: *mut mailsrv_discovery,
        detail: *const c_char,
    ),
>;

/// mailsrv_srv_discover() without blocking. Same leading arguments; then `cb` (not NULL),
/// `userdata` (passed back untouched), `id_out` (out, may be NULL: the request id, for
/// mailsrv_cancel(); written before this returns, and also passed to the callback).
///
/// Returns OK (the callback will run exactly once, never inside this call: with the result,
/// an error, CANCELLED or SHUTDOWN), or an error (NULL_ARG, INVALID_ARG, SHUTDOWN, ...) and
/// then the callback never runs.
/// Since 0.1.
///
/// # Safety
/// Pointers NULL or valid; `cb` must be safe to call from the dispatch thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_discover_async(
    ctx: *mut mailsrv_ctx,
    address: *const c_char,
    services: u32,
    flags: u32,
    cb: mailsrv_discover_cb,
    userdata: *mut c_void,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    ffi_boundary! {
        let ctx = try_ref!(ctx);
        let Some(cb) = cb else { return mailsrv_status::NullArg };
        let address = try_str!(address);
        let (list, secure) = match discover_args(services, flags) {
            Ok(a) => a,
            Err(s) => return s,
        };
        let deliver = deliver_to_c(cb, UserData(userdata), mailsrv_discovery::new);
        started(ctx.inner.discover_async(address, &list, secure, deliver), id_out)
    }
}

/// Frees a discovery. NULL does nothing.
/// Since 0.1.
///
/// # Safety
/// `d` NULL or owned by the caller, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_discovery_free(d: *mut mailsrv_discovery) {
    ffi_boundary! {
        unsafe { free_box(d) }
    }
}

/// The mail domain that was queried, in A-label form ("xn--bcher-kva.example"). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `d` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_discovery_domain(d: *const mailsrv_discovery) -> *const c_char {
    ffi_boundary! { try_ref!(d).domain.as_ptr() }
}

/// How many services were queried (one mailsrv_srv_set each).
/// Since 0.1.
///
/// # Safety
/// `d` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_discovery_services_len(d: *const mailsrv_discovery) -> usize {
    ffi_boundary! { try_ref!(d).sets.len() }
}

/// The `i`-th service's answer (borrowed), in the order imaps, imap, pop3s, pop3,
/// submissions, submission; NULL when out of range.
/// Since 0.1.
///
/// # Safety
/// `d` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_discovery_service_get(
    d: *const mailsrv_discovery,
    i: usize,
) -> *const mailsrv_srv_set {
    ffi_boundary! { try_ref!(d).sets.get(i).map_or(std::ptr::null(), |s| s as *const _) }
}

/// The answer for one service (a single mailsrv_service value), borrowed; NULL when it was
/// not queried or `service` is not one service.
/// Since 0.1.
///
/// # Safety
/// `d` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_discovery_find(
    d: *const mailsrv_discovery,
    service: u32,
) -> *const mailsrv_srv_set {
    ffi_boundary! {
        let d = try_ref!(d);
        Service::from_bit(service)
            .and_then(|s| d.sets.iter().find(|x| x.service == s))
            .map_or(std::ptr::null(), |s| s as *const _)
    }
}

/// The service to configure for a purpose (a mailsrv_purpose value): among FOUND services,
/// the lowest SRV priority; on a tie implicit TLS first (RFC 8314), then IMAP before POP3.
/// The protocol is chosen before any weight (RFC 6186 §3.4). Borrowed; NULL when none.
/// Since 0.1.
///
/// # Safety
/// `d` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_discovery_preferred(
    d: *const mailsrv_discovery,
    purpose: u32,
) -> *const mailsrv_srv_set {
    ffi_boundary! {
        let d = try_ref!(d);
        let purpose = match purpose {
            1 => Purpose::Access,
            2 => Purpose::Submission,
            _ => return std::ptr::null(),
        };
        d.core.preferred(purpose).and_then(|s| d.set_of(s)).map_or(std::ptr::null(), |s| s as *const _)
    }
}

/// The service of this answer (one mailsrv_service bit); 0 for NULL.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_set_service(s: *const mailsrv_srv_set) -> u32 {
    ffi_boundary! { try_ref!(s).service.bit() }
}

/// What the query found (a mailsrv_srv_state value); 0 for NULL.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_set_state(s: *const mailsrv_srv_set) -> u32 {
    ffi_boundary! {
        (match try_ref!(s).state {
            SrvState::Found => mailsrv_srv_state::Found,
            SrvState::NotOffered => mailsrv_srv_state::NotOffered,
            SrvState::NoRecord => mailsrv_srv_state::NoRecord,
            SrvState::LookupFailed => mailsrv_srv_state::LookupFailed,
            SrvState::Bogus => mailsrv_srv_state::Bogus,
        }) as u32
    }
}

/// Why the lookup failed (LOOKUP_FAILED and BOGUS states): SERVFAIL, TIMEOUT, BOGUS,
/// INDETERMINATE, NO_SECURE_ANSWER, ...; OK otherwise. NULL_ARG for NULL.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_set_status(s: *const mailsrv_srv_set) -> mailsrv_status {
    ffi_boundary! { try_ref!(s).status }
}

/// A readable reason for the status ("" when OK). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_set_detail(s: *const mailsrv_srv_set) -> *const c_char {
    ffi_boundary! { try_ref!(s).detail.as_ptr() }
}

/// DNSSEC state of the SRV RRset or of the negative answer (a mailsrv_dnssec value).
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_set_dnssec(s: *const mailsrv_srv_set) -> u32 {
    ffi_boundary! { dnssec_out(try_ref!(s).dnssec) as u32 }
}

/// TTL in seconds of the SRV RRset (or the negative-caching TTL): when to look again.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_set_ttl(s: *const mailsrv_srv_set) -> u32 {
    ffi_boundary! { try_ref!(s).ttl }
}

/// Number of endpoints (non-zero only for FOUND).
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_set_endpoints_len(s: *const mailsrv_srv_set) -> usize {
    ffi_boundary! { try_ref!(s).endpoints.len() }
}

/// The `i`-th endpoint in preference order (borrowed); NULL when out of range.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_set_endpoint_get(
    s: *const mailsrv_srv_set,
    i: usize,
) -> *const mailsrv_endpoint {
    ffi_boundary! { try_ref!(s).endpoints.get(i).map_or(std::ptr::null(), |e| e as *const _) }
}

/// Number of diagnostics: misconfigurations such as a "." mixed with real targets, or a
/// CNAME where RFC 2782 forbids one.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_set_diagnostics_len(s: *const mailsrv_srv_set) -> usize {
    ffi_boundary! { try_ref!(s).diagnostics.len() }
}

/// The `i`-th diagnostic text (borrowed); NULL when out of range.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_srv_set_diagnostic_get(
    s: *const mailsrv_srv_set,
    i: usize,
) -> *const c_char {
    ffi_boundary! { try_ref!(s).diagnostics.get(i).map_or(std::ptr::null(), |d| d.as_ptr()) }
}

/// The target host: A-labels, lower case, no trailing dot. Borrowed.
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_target(e: *const mailsrv_endpoint) -> *const c_char {
    ffi_boundary! { try_ref!(e).target.as_ptr() }
}

/// The port from the SRV record.
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_port(e: *const mailsrv_endpoint) -> u16 {
    ffi_boundary! { try_ref!(e).core.port }
}

/// The SRV priority (lower is preferred).
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_priority(e: *const mailsrv_endpoint) -> u16 {
    ffi_boundary! { try_ref!(e).core.priority }
}

/// The SRV weight.
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_weight(e: *const mailsrv_endpoint) -> u16 {
    ffi_boundary! { try_ref!(e).core.weight }
}

/// TTL in seconds of the SRV RRset this endpoint came from.
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_ttl(e: *const mailsrv_endpoint) -> u32 {
    ffi_boundary! { try_ref!(e).core.ttl }
}

/// DNSSEC state of the SRV RRset (a mailsrv_dnssec value).
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_dnssec(e: *const mailsrv_endpoint) -> u32 {
    ffi_boundary! { dnssec_out(Some(try_ref!(e).core.dnssec)) as u32 }
}

/// Number of addresses of the target (IPv6 first, then IPv4).
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_addresses_len(e: *const mailsrv_endpoint) -> usize {
    ffi_boundary! { try_ref!(e).addresses.len() }
}

/// The `i`-th address as text ("::1", "127.0.0.1"), borrowed; NULL when out of range.
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_address_get(
    e: *const mailsrv_endpoint,
    i: usize,
) -> *const c_char {
    ffi_boundary! { try_ref!(e).addresses.get(i).map_or(std::ptr::null(), |a| a.as_ptr()) }
}

/// The weakest DNSSEC state over the target's AAAA and A answers (a mailsrv_dnssec value);
/// MAILSRV_DNSSEC_HOSTS_FILE when the hosts file named the target (then its entries are the
/// addresses and DNS was not asked, like getaddrinfo with `hosts: files dns`).
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_address_dnssec(e: *const mailsrv_endpoint) -> u32 {
    ffi_boundary! { dnssec_out(try_ref!(e).core.address_dnssec) as u32 }
}

/// Why addresses are missing or incomplete (NO_RECORD, TIMEOUT, BOGUS, ...); OK otherwise.
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_address_status(
    e: *const mailsrv_endpoint,
) -> mailsrv_status {
    ffi_boundary! { try_ref!(e).address_status }
}

/// A readable reason for the address status ("" when OK). Borrowed.
/// Since 0.1.
///
/// # Safety
/// `e` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_endpoint_address_detail(
    e: *const mailsrv_endpoint,
) -> *const c_char {
    ffi_boundary! { try_ref!(e).address_detail.as_ptr() }
}

/// The name of a service ("imaps", ...) for one mailsrv_service bit; "" otherwise. Static.
/// Since 0.1.
#[unsafe(no_mangle)]
pub extern "C" fn mailsrv_service_name(service: u32) -> *const c_char {
    ffi_boundary! {
        match Service::from_bit(service) {
            Some(Service::Imaps) => c"imaps",
            Some(Service::Imap) => c"imap",
            Some(Service::Pop3s) => c"pop3s",
            Some(Service::Pop3) => c"pop3",
            Some(Service::Submissions) => c"submissions",
            Some(Service::Submission) => c"submission",
            None => c"",
        }.as_ptr()
    }
}

/// The way TLS starts for one mail service by default (RFC 6186, RFC 8314): imaps →
/// MAILSRV_SECURITY_IMPLICIT_TLS_IMAP, imap → MAILSRV_SECURITY_STARTTLS_IMAP, and so on
/// (the implicit-TLS values that also check the greeting's protocol). Writes `*out`.
/// Returns MAILSRV_STATUS_INVALID_ARG when `service` is not exactly one mailsrv_service bit.
/// Since 0.1.
///
/// # Safety
/// `out` NULL or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_service_default_security(
    service: u32,
    out: *mut mailsrv_security,
) -> mailsrv_status {
    ffi_boundary! {
        let out = try_mut!(out);
        match Service::from_bit(service) {
            Some(s) => {
                *out = security_out(s.security(), Some(s.protocol()));
                mailsrv_status::Ok
            }
            None => mailsrv_status::InvalidArg,
        }
    }
}

/// The name of a mailsrv_srv_state value ("found", "not_offered", "no_record",
/// "lookup_failed", "bogus"); "" otherwise. Static.
/// Since 0.1.
#[unsafe(no_mangle)]
pub extern "C" fn mailsrv_srv_state_name(state: u32) -> *const c_char {
    ffi_boundary! {
        match state {
            1 => c"found",
            2 => c"not_offered",
            3 => c"no_record",
            4 => c"lookup_failed",
            5 => c"bogus",
            _ => c"",
        }.as_ptr()
    }
}

/// The name of a mailsrv_dnssec value ("secure", "insecure", "bogus", "indeterminate",
/// "unavailable", "hosts_file", "unknown"); "" otherwise. Static.
/// Since 0.1.
#[unsafe(no_mangle)]
pub extern "C" fn mailsrv_dnssec_name(state: u32) -> *const c_char {
    ffi_boundary! {
        match state {
            0 => c"unknown",
            1 => c"secure",
            2 => c"insecure",
            3 => c"bogus",
            4 => c"indeterminate",
            5 => c"unavailable",
            6 => c"hosts_file",
            _ => c"",
        }.as_ptr()
    }
}
