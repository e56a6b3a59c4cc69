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
use super::dane;
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
    /// DNSSEC-secure SRV, addresses and TLSA records, and the server's certificate matches
    /// them (RFC 7673, T-DANE-02).
    Dane,
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
    fn new(
        verdict: Verdict,
        in_domain: bool,
        srv_dnssec: Option<DnssecState>,
        detail: String,
    ) -> Self {
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
            return Ok(Authenticity::new(
                Verdict::Rejected,
                in_domain,
                Some(DnssecState::Bogus),
                detail,
            ));
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
                            && s.target
                                .to_ascii()
                                .trim_end_matches('.')
                                .eq_ignore_ascii_case(&target)
                    }
                    _ => false,
                });
                if !holds {
                    let detail = format!(
                        "{domain}'s DNSSEC-signed SRV records do not name {target}:{}",
                        req.port
                    );
                    return Ok(Authenticity::new(
                        Verdict::Rejected,
                        in_domain,
                        Some(DnssecState::Secure),
                        detail,
                    ));
                }
                let detail = format!(
                    "{target}:{} is in {domain}'s DNSSEC-signed SRV records",
                    req.port
                );
                let mut a = Authenticity::new(
                    Verdict::Authentic,
                    in_domain,
                    Some(DnssecState::Secure),
                    detail,
                );
                a.evidence = Some(Evidence::Dnssec);
                dane(resolver, &req, &domain, &target, deadline, &mut a).await;
                return Ok(a);
            }
            Some(a.dnssec)
        }
        Ok(Outcome::NxDomain { dnssec, .. } | Outcome::NoData { dnssec, .. }) => {
            if *dnssec == DnssecState::Secure {
                let detail = format!(
                    "{domain} provably has no _{} SRV record (DNSSEC)",
                    req.service.name()
                );
                return Ok(Authenticity::new(
                    Verdict::Rejected,
                    in_domain,
                    Some(*dnssec),
                    detail,
                ));
            }
            lookup_note = " (the SRV record is gone now)".into();
            Some(*dnssec)
        }
    };
    let (true, Some(trust)) = (req.probe, trust) else {
        let detail =
            format!("not DNSSEC-signed and the TLS probe is off: ask the user{lookup_note}");
        return Ok(Authenticity::new(
            Verdict::Unverified,
            in_domain,
            srv_dnssec,
            detail,
        ));
    };
    probe(
        resolver,
        trust,
        &req,
        &domain,
        &target,
        in_domain,
        srv_dnssec,
        deadline,
        &lookup_note,
    )
    .await
}

/// RFC 7673 on a DNSSEC-authentic SRV target: with secure addresses and a secure, usable
/// TLSA set at `_port._tcp.target`, the server's certificate must match it (then evidence
/// DANE) or the answer is REJECTED (T-DANE-04). Bogus addresses or TLSA reject the target
/// (T-DANE-05, T-DANE-07); insecure ones leave plain DNSSEC evidence (T-DANE-06, T-DANE-08).
async fn dane(
    resolver: &Resolver,
    req: &AuthRequest,
    domain: &str,
    target: &str,
    deadline: Instant,
    a: &mut Authenticity,
) {
    let reject = |a: &mut Authenticity, why: String| {
        a.verdict = Verdict::Rejected;
        a.evidence = None;
        a.detail = why;
    };
    let Ok(host) = Name::from_ascii(format!("{target}.")) else {
        return;
    };
    let host = &host;
    let lookup = |rtype| async move {
        tokio::time::timeout_at(deadline, resolver.query(host, rtype))
            .await
            .unwrap_or_else(|_| Err(Error::Timeout("deadline passed".into())))
    };
    let (v6, v4) = tokio::join!(lookup(RecordType::AAAA), lookup(RecordType::A));
    let mut addresses = Vec::new();
    for r in [v6, v4] {
        match r {
            Ok(Outcome::Records(ans)) if ans.dnssec == DnssecState::Secure => {
                addresses.extend(ans.records.iter().filter_map(|r| match &r.data {
                    RData::A(ip) => Some(std::net::IpAddr::V4(ip.0)),
                    RData::AAAA(ip) => Some(std::net::IpAddr::V6(ip.0)),
                    _ => None,
                }))
            }
            Ok(Outcome::NoData {
                dnssec: DnssecState::Secure,
                ..
            }) => {}
            Err(Error::Bogus(e)) => {
                return reject(a, format!("{target}'s address records are bogus: {e}"));
            }
            _ => {
                a.detail
                    .push_str("; its addresses are not DNSSEC-signed, so DANE does not apply");
                return;
            }
        }
    }
    let Ok(owner) = Name::from_ascii(format!("_{}._tcp.{target}.", req.port)) else {
        return;
    };
    let tlsa = tokio::time::timeout_at(deadline, resolver.query(&owner, RecordType::TLSA))
        .await
        .unwrap_or_else(|_| Err(Error::Timeout("deadline passed".into())));
    let records = match tlsa {
        Ok(Outcome::Records(ans)) if ans.dnssec == DnssecState::Secure => ans
            .records
            .iter()
            .filter_map(|r| match &r.data {
                RData::TLSA(t) => Some(t.clone()),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Ok(_) => {
            a.detail.push_str("; no DNSSEC-signed TLSA records");
            return;
        }
        Err(e) => {
            return reject(
                a,
                format!("the TLSA records of {target} cannot be used ({e}): not connecting"),
            );
        }
    };
    let usable = dane::usable(&records);
    if usable.is_empty() {
        a.detail
            .push_str("; its TLSA records are not usable (RFC 7671)");
        return;
    }
    let mut identity = ReferenceIdentity::new();
    let _ = identity.add_srv_id(req.service.name(), domain);
    let _ = identity.add_dns_id(domain);
    let _ = identity.add_dns_id(target); // a secure SRV target is a valid reference (T-REF-03)
    match dane_handshake(
        resolver, req, target, &addresses, usable, identity, deadline,
    )
    .await
    {
        Ok((what, chain)) => {
            a.evidence = Some(Evidence::Dane);
            a.target_verified = true;
            a.target_matched = Some(what.clone());
            a.target_chain = chain;
            a.detail = format!(
                "{target}:{} is in {domain}'s DNSSEC-signed SRV records and {what}",
                req.port
            );
        }
        Err(Some(why)) => reject(
            a,
            format!("{target}'s certificate does not match its DNSSEC-signed TLSA records: {why}"),
        ),
        Err(None) => a
            .detail
            .push_str("; DANE could not be checked (no TLS connection)"),
    }
}

/// TCP, STARTTLS if the service needs it, and a handshake that only the TLSA records can
/// accept. `Err(Some(why))`: the certificate did not match; `Err(None)`: no handshake.
async fn dane_handshake(
    resolver: &Resolver,
    req: &AuthRequest,
    target: &str,
    addresses: &[std::net::IpAddr],
    records: Vec<dane::Tlsa>,
    identity: ReferenceIdentity,
    deadline: Instant,
) -> std::result::Result<(String, Vec<Vec<u8>>), Option<String>> {
    let security = security_for(req.service);
    let timing = super::happy_eyeballs::Timing::default();
    let (mut tcp, _) =
        super::happy_eyeballs::connect_tcp(resolver, target, addresses, req.port, timing, deadline)
            .await
            .map_err(|_| None)?;
    let local = tcp.local_addr().map_err(|_| None)?;
    let client = super::starttls::address_literal(local.ip());
    super::starttls::upgrade(&mut tcp, security, &client, deadline)
        .await
        .map_err(|_| None)?;
    let verifier = std::sync::Arc::new(dane::DaneVerifier::new(records, identity));
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| None)?
    .dangerous()
    .with_custom_certificate_verifier(verifier.clone())
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(target.to_string()).map_err(|_| None)?;
    let handshake =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp);
    let result = tokio::time::timeout_at(deadline, handshake).await;
    let outcome = verifier.outcome.lock().ok().and_then(|mut o| o.take());
    match (result, outcome) {
        (Ok(Ok(mut tls)), Some((Ok(what), chain))) => {
            use tokio::io::AsyncWriteExt;
            let _ = tls.shutdown().await; // close_notify
            Ok((what, chain))
        }
        (_, Some((Err(why), _))) => Err(Some(why)),
        _ => Err(None),
    }
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
    probe_req.options = MatchOptions {
        legacy_cn: false,
        accept_sibling_service: req.accept_sibling,
    }
    .for_probe();
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
            a.evidence = Some(if info.matched.is_srv_id() {
                Evidence::ProbeSrvId
            } else {
                Evidence::ProbeDnsId
            });
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
