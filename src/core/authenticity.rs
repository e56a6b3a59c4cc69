//! Is an SRV answer authentic? (design.md §1 step 2, standards.md group C and M)
//!
//! In order: the SRV RRset is re-read through the validating resolver. Bogus → REJECTED.
//! DNSSEC-secure and holding the target → AUTHENTIC by DNSSEC; secure without it →
//! REJECTED. Otherwise the TLS probe: connect to the target with SNI = the mail domain and
//! require a chain-valid certificate naming the mail domain (SRV-ID `_service.domain` or
//! DNS-ID `domain`; never the insecure target name, never a CN), and connect again with
//! SNI = the target requiring the target's own DNS-ID, in a fresh handshake. Both →
//! AUTHENTIC; the probe alone → UNVERIFIED (target not verified); the probe failing →
//! UNVERIFIED. The two connections run concurrently: the verdict does not depend on it.

use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

use super::address::{is_in_domain, mail_domain, normalize_domain};
use super::connect::{ConnectRequest, MailConnection, connect};
use super::identity::{MatchOptions, ReferenceIdentity};
use super::policy::Verdict;
use super::resolver::{DnssecState, Outcome, Resolver};
use super::service::Service;
use super::starttls::Security;
use super::trust::TrustStore;
use super::{Error, Result};

/// What proved the answer authentic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The SRV RRset is DNSSEC-secure and holds the target (T-AUTH-01).
    Dnssec,
    /// The probe's certificate carries the SRV-ID `_service.domain` (T-AUTH-07).
    ProbeSrvId,
    /// The probe's certificate carries the DNS-ID of the mail domain (T-AUTH-08).
    ProbeDnsId,
}

/// One service's SRV answer to judge.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The mail domain (or an address; the domain is taken from it).
    pub domain: String,
    pub service: Service,
    pub target: String,
    pub port: u16,
    /// Connect to the target at all (off for clients that confirm with the user first).
    pub probe: bool,
    /// Hand the verified probe connection to the caller (to try the login on it).
    pub keep_probe: bool,
    /// Accept the sibling service's SRV-ID in the probe (`_submission` for `_submissions`).
    pub accept_sibling: bool,
}

impl AuthRequest {
    pub fn new(domain: &str, service: Service, target: &str, port: u16) -> Self {
        AuthRequest {
            domain: domain.into(),
            service,
            target: target.into(),
            port,
            probe: true,
            keep_probe: false,
            accept_sibling: false,
        }
    }
}

/// The verdict with its evidence.
pub struct Authenticity {
    pub verdict: Verdict,
    pub evidence: Option<Evidence>,
    /// The reconnect with SNI = target presented a certificate for the target itself.
    pub target_verified: bool,
    /// The target lies in the mail domain (RFC 8314 §5.1 (b)); reported, never proof.
    pub in_domain: bool,
    /// DNSSEC state of the re-read SRV RRset (`None` when the lookup failed).
    pub srv_dnssec: Option<DnssecState>,
    /// What the probe (SNI = domain) and the reconnect (SNI = target) matched.
    pub probe_matched: Option<String>,
    pub target_matched: Option<String>,
    /// Peer chains (DER, leaf first) of the two connections, when they got that far.
    pub probe_chain: Vec<Vec<u8>>,
    pub target_chain: Vec<Vec<u8>>,
    /// Why the probe or the reconnect failed, if it did.
    pub probe_error: Option<Error>,
    pub target_error: Option<Error>,
    /// A sentence a client can show a user.
    pub detail: String,
    /// The verified probe connection, when asked for and the probe passed.
    pub probe_connection: Option<MailConnection>,
}

impl std::fmt::Debug for Authenticity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticity")
            .field("verdict", &self.verdict)
            .field("evidence", &self.evidence)
            .field("target_verified", &self.target_verified)
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

impl Authenticity {
    fn new(verdict: Verdict, in_domain: bool, srv_dnssec: Option<DnssecState>, detail: String) -> Self {
        Authenticity {
            verdict,
            evidence: None,
            target_verified: false,
            in_domain,
            srv_dnssec,
            probe_matched: None,
            target_matched: None,
            probe_chain: Vec::new(),
            target_chain: Vec::new(),
            probe_error: None,
            target_error: None,
            detail,
            probe_connection: None,
        }
    }
}

/// The security mode each service is reached with.
pub fn security_for(service: Service) -> Security {
    match service {
        Service::Imaps | Service::Pop3s | Service::Submissions => Security::ImplicitTls,
        Service::Imap => Security::StartTlsImap,
        Service::Pop3 => Security::StartTlsPop3,
        Service::Submission => Security::StartTlsSmtp,
    }
}

/// Checks the request's names before anything goes on the wire.
pub fn check(req: &AuthRequest) -> Result<(String, String)> {
    let domain = mail_domain(&req.domain)?;
    let target = normalize_domain(&req.target)?;
    if req.port == 0 {
        return Err(Error::InvalidArg("port 0".into()));
    }
    Ok((domain, target))
}

/// Judges one service's SRV answer (see the module comment).
/// `trust` may be `None` only when `req.probe` is off.
pub async fn verify(
    resolver: &Resolver,
    trust: Option<TrustStore>,
    req: AuthRequest,
    deadline: Instant,
) -> Result<Authenticity> {
    let (domain, target) = check(&req)?;
    let in_domain = is_in_domain(&target, &domain);
    let owner = Name::from_ascii(format!("{}.{domain}.", req.service.srv_prefix()))
        .map_err(|e| Error::InvalidArg(format!("{domain}: {e}")))?;
    let srv = tokio::time::timeout_at(deadline, resolver.query(&owner, RecordType::SRV))
        .await
        .unwrap_or_else(|_| Err(Error::Timeout("SRV re-read: deadline passed".into())));
    let mut lookup_note = String::new();
    let srv_dnssec = match &srv {
        Err(Error::Bogus(d)) => {
            let detail = format!("the SRV answer for {domain} failed DNSSEC validation: {d}");
            return Ok(Authenticity::new(Verdict::Rejected, in_domain, Some(DnssecState::Bogus), detail));
        }
        Err(e) => {
            lookup_note = format!(" (the SRV re-read failed: {e})");
            None
        }
        Ok(Outcome::Records(a)) => {
            if a.dnssec == DnssecState::Secure {
                let holds = a.records.iter().any(|r| match &r.data {
                    RData::SRV(s) => {
                        s.port == req.port
                            && s.target.to_ascii().trim_end_matches('.').eq_ignore_ascii_case(&target)
                    }
                    _ => false,
                });
                let (verdict, detail) = if holds {
                    (Verdict::Authentic, format!("{target}:{} is in {domain}'s DNSSEC-signed SRV records", req.port))
                } else {
                    (Verdict::Rejected, format!("{domain}'s DNSSEC-signed SRV records do not name {target}:{}", req.port))
                };
                let mut a = Authenticity::new(verdict, in_domain, Some(DnssecState::Secure), detail);
                a.evidence = holds.then_some(Evidence::Dnssec);
                return Ok(a);
            }
            Some(a.dnssec)
        }
        Ok(Outcome::NxDomain { dnssec, .. } | Outcome::NoData { dnssec, .. }) => {
            if *dnssec == DnssecState::Secure {
                let detail = format!("{domain} provably has no _{} SRV record (DNSSEC)", req.service.name());
                return Ok(Authenticity::new(Verdict::Rejected, in_domain, Some(*dnssec), detail));
            }
            lookup_note = " (the SRV record is gone now)".into();
            Some(*dnssec)
        }
    };
    let (true, Some(trust)) = (req.probe, trust) else {
        let detail = format!("not DNSSEC-signed and the TLS probe is off: ask the user{lookup_note}");
        return Ok(Authenticity::new(Verdict::Unverified, in_domain, srv_dnssec, detail));
    };
    probe(resolver, trust, &req, &domain, &target, in_domain, srv_dnssec, deadline, &lookup_note).await
}

#[allow(clippy::too_many_arguments)]
async fn probe(
    resolver: &Resolver,
    trust: TrustStore,
    req: &AuthRequest,
    domain: &str,
    target: &str,
    in_domain: bool,
    srv_dnssec: Option<DnssecState>,
    deadline: Instant,
    note: &str,
) -> Result<Authenticity> {
    let security = security_for(req.service);
    // The probe: SNI = the mail domain, proof = a name of the mail domain. The insecure
    // target is never a reference identifier here (T-REF-02, T-AUTH-09); CN never counts.
    let mut probe_id = ReferenceIdentity::new();
    probe_id.add_srv_id(req.service.name(), domain)?;
    probe_id.add_dns_id(domain)?;
    let mut probe_req = ConnectRequest::new(target, req.port, security);
    probe_req.sni = Some(domain.to_string());
    probe_req.identity = Some(probe_id);
    probe_req.options = MatchOptions { legacy_cn: false, accept_sibling_service: req.accept_sibling }.for_probe();
    // The reconnect: SNI = the target, its own DNS-ID, a fresh full handshake (T-SNI-09).
    let target_req = ConnectRequest::new(target, req.port, security);
    let (p, t) = tokio::join!(
        connect(resolver, trust.clone(), probe_req, deadline),
        connect(resolver, trust, target_req, deadline)
    );
    let mut a = Authenticity::new(Verdict::Unverified, in_domain, srv_dnssec, String::new());
    let mut probe_conn = None;
    match p {
        Ok(conn) => {
            let info = conn.info();
            a.probe_matched = Some(info.matched.to_string());
            a.probe_chain = info.peer_chain.clone();
            a.evidence = Some(if info.matched.is_srv_id() { Evidence::ProbeSrvId } else { Evidence::ProbeDnsId });
            probe_conn = Some(conn);
        }
        Err(e) => a.probe_error = Some(e),
    }
    match t {
        Ok(mut conn) => {
            a.target_matched = Some(conn.info().matched.to_string());
            a.target_chain = conn.info().peer_chain.clone();
            a.target_verified = true;
            let _ = conn.close();
        }
        Err(e) => a.target_error = Some(e),
    }
    a.detail = match (&a.probe_error, &a.target_error) {
        (None, None) => {
            a.verdict = Verdict::Authentic;
            format!(
                "{target} proved {domain} ({}) and its own name ({})",
                a.probe_matched.as_deref().unwrap_or(""),
                a.target_matched.as_deref().unwrap_or("")
            )
        }
        (None, Some(e)) => {
            a.evidence = None;
            format!("{target} proved {domain}, but not its own name ({e}): ask the user{note}")
        }
        (Some(e), _) => {
            a.evidence = None;
            format!("{target} did not prove it serves {domain} ({e}): ask the user{note}")
        }
    };
    if a.verdict == Verdict::Authentic && req.keep_probe {
        a.probe_connection = probe_conn;
    } else if let Some(mut c) = probe_conn {
        let _ = c.close();
    }
    Ok(a)
}
