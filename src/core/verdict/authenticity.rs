//! Is an SRV answer authentic? (docs/design.md §2.7; docs/conformance.md groups C, M)
//!
//! In order: the SRV RRset is re-read through the validating resolver. Bogus → REJECTED.
//! DNSSEC-secure and holding the target → AUTHENTIC by DNSSEC; secure without it →
//! REJECTED. Otherwise the TLS probe: connect to the target with SNI = the mail domain and
//! require a chain-valid certificate naming the mail domain (SRV-ID `_service.domain` or
//! DNS-ID `domain`; never the insecure target name, never a CN), and connect again with
//! SNI = the target requiring the target's own DNS-ID, in a fresh handshake. Both →
//! AUTHENTIC; the probe alone → UNVERIFIED (target not verified); the probe failing →
//! UNVERIFIED. The two connections run concurrently: the verdict does not depend on it.
//!
//! Every AUTHENTIC or UNVERIFIED verdict carries its [`Binding`]: how the connection that
//! carries the password must be made for the evidence to hold (see `binding.rs`).
//! `require_secure` turns every answer that is not DNSSEC-secure into UNVERIFIED without a
//! probe: such a client accepts nothing the DNS did not sign.

use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

use crate::core::address::{MailDomain, is_in_domain, normalize_domain};
use crate::core::cert::ca_store::CaStore;
use crate::core::cert::dane::{self, Tlsa, TlsaState};
use crate::core::cert::identity::{MatchOptions, ReferenceIdentity};
use crate::core::cert::verifier::{CertProof, check_names_only, verify_cert};
use crate::core::dns::answer::{DnssecState, Outcome};
use crate::core::dns::resolver::Resolver;
use crate::core::service::Service;
use crate::core::tls::connect::{ConnectRequest, MailConnection, connect, plan};
use crate::core::verdict::Verdict;
use crate::core::verdict::binding::Binding;
use crate::core::{Error, Result};
use rustls_pki_types::{CertificateDer, UnixTime};

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
    /// Account discovery: the mail domain's own configuration document, fetched over HTTPS
    /// on every hop from host names in the mail domain, names the server.
    HttpsDomain,
    /// Account discovery: the ISPDB's entry for the mail domain (over HTTPS) names it.
    Ispdb,
    /// Account discovery: the mail domain's PACC document names it, and the document's
    /// SHA-256 digest is in the domain's DNSSEC-secure `_ua-auto-config` TXT record.
    PaccDnssec,
}

impl Evidence {
    /// The lower-case name used in JSON and the CLI: `dnssec`, `probe_srv_id`, ...
    pub fn name(self) -> &'static str {
        match self {
            Evidence::Dnssec => "dnssec",
            Evidence::ProbeSrvId => "probe_srv_id",
            Evidence::ProbeDnsId => "probe_dns_id",
            Evidence::Dane => "dane",
            Evidence::HttpsDomain => "https_domain",
            Evidence::Ispdb => "ispdb",
            Evidence::PaccDnssec => "pacc_dnssec",
        }
    }
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
    /// Only a DNSSEC-secure answer can be AUTHENTIC; no probe.
    pub require_secure: bool,
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
            require_secure: false,
        }
    }
}

/// The verdict with its evidence.
pub struct Authenticity {
    /// The mail domain judged (A-labels).
    pub domain: String,
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
    /// With `keep_probe`: the verified connection made exactly as the binding says (the
    /// probe's, the reconnect's or the DANE check's), ready for the login.
    pub probe_connection: Option<MailConnection>,
    /// How every credential-carrying connection must be made; `None` when REJECTED.
    pub binding: Option<Binding>,
}

impl std::fmt::Debug for Authenticity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticity")
            .field("verdict", &self.verdict)
            .field("evidence", &self.evidence)
            .field("target_verified", &self.target_verified)
            .field("binding", &self.binding)
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

impl Authenticity {
    pub(crate) fn new(
        verdict: Verdict,
        domain: &str,
        in_domain: bool,
        srv_dnssec: Option<DnssecState>,
        detail: String,
    ) -> Self {
        Authenticity {
            domain: domain.to_string(),
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
            binding: None,
        }
    }

    /// Keeps `conn` for the caller when asked to, else closes it.
    fn keep(&mut self, req: &AuthRequest, mut conn: MailConnection) {
        if req.keep_probe {
            self.probe_connection = Some(conn);
        } else {
            let _ = conn.close();
        }
    }
}

/// Checks the request's names before anything goes on the wire.
pub fn check(req: &AuthRequest) -> Result<(String, String)> {
    let domain = MailDomain::parse(&req.domain)?.into();
    let target = normalize_domain(&req.target)?;
    if req.port == 0 {
        return Err(Error::InvalidArg("port 0".into()));
    }
    Ok((domain, target))
}

/// Where the certificates of the probe (SNI = the mail domain) and of the reconnect (SNI =
/// the target) come from. The verdict rules are the same for both.
#[derive(Debug, Clone)]
pub enum PeerSource {
    /// mailsrv makes both connections itself (its TLS, this CA store).
    Connect(CaStore),
    /// The caller's own TLS stack made both connections and hands over the chains.
    Chains(CallerChains),
}

/// The chains a client with its own TLS stack got: `probe` from its connection to the
/// target with SNI = the mail domain, `target` from its connection with SNI = the target
/// (each DER, leaf first, as the server sent them; `None`: that connection failed or was
/// not made).
#[derive(Debug, Clone, Default)]
pub struct CallerChains {
    pub probe: Option<Vec<Vec<u8>>>,
    pub target: Option<Vec<Vec<u8>>>,
    /// The anchors the chains are validated against; `None` with `names_only`.
    pub store: Option<CaStore>,
    /// The caller's stack validated the paths: check the names of the leaves only.
    pub names_only: bool,
}

/// What one connection (or one caller chain) proved.
struct Side {
    proof: CertProof,
    chain: Vec<Vec<u8>>,
    conn: Option<MailConnection>,
}

impl CallerChains {
    /// Checks one chain against what `req` requires (its identity and matching options),
    /// exactly as mailsrv's verifier checks a connection's certificate.
    fn check(
        &self,
        chain: &Option<Vec<Vec<u8>>>,
        req: &ConnectRequest,
        what: &str,
    ) -> Result<Side> {
        let Some(chain) = chain else {
            return Err(Error::NotFound(format!("no {what} chain was handed over")));
        };
        let plan = plan(req)?;
        let ders: Vec<CertificateDer<'_>> = chain
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let verdict = match (&self.store, self.names_only) {
            (_, true) => check_names_only(&ders, &plan.identity, &req.options)?,
            (Some(store), false) => {
                verify_cert(store, &ders, &plan.identity, &req.options, UnixTime::now())?
            }
            (None, false) => {
                return Err(Error::NoTrustAnchors(
                    "no CA certificates were loaded to check the chains".into(),
                ));
            }
        };
        Ok(Side {
            proof: CertProof::Identity(verdict.matched),
            chain: chain.clone(),
            conn: None,
        })
    }

    /// The reconnect chain against the DNSSEC-signed TLSA records (RFC 7671), as the DANE
    /// verifier checks a connection.
    fn check_tlsa(&self, records: &[Tlsa], req: &ConnectRequest) -> Result<Side> {
        let Some(chain) = &self.target else {
            return Err(Error::NotFound("no reconnect chain was handed over".into()));
        };
        let plan = plan(req)?;
        let ders: Vec<CertificateDer<'_>> = chain
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let proof =
            dane::match_tlsa(records, &ders, &plan.identity, UnixTime::now()).map_err(|why| {
                Error::DaneMismatch(format!("{why} (its TLSA records are DNSSEC-signed)"))
            })?;
        Ok(Side {
            proof,
            chain: chain.clone(),
            conn: None,
        })
    }
}

impl Side {
    fn of(conn: MailConnection) -> Self {
        let info = conn.info();
        Side {
            proof: info.proof.clone(),
            chain: info.peer_chain.clone(),
            conn: Some(conn),
        }
    }
}

/// Judges one service's SRV answer (see the module comment).
/// `trust` may be `None` only when `req.probe` is off.
pub async fn verify(
    resolver: &Resolver,
    trust: Option<CaStore>,
    req: AuthRequest,
    deadline: Instant,
) -> Result<Authenticity> {
    verify_with(resolver, trust.map(PeerSource::Connect), req, deadline).await
}

/// [`verify`] with the probe's and the reconnect's certificates from `peers`: mailsrv's
/// own connections, or the chains a client's own TLS stack got (the same rules either
/// way). `peers` may be `None` only when `req.probe` is off.
pub async fn verify_with(
    resolver: &Resolver,
    peers: Option<PeerSource>,
    req: AuthRequest,
    deadline: Instant,
) -> Result<Authenticity> {
    let (domain, target) = check(&req)?;
    let in_domain = is_in_domain(&target, &domain);
    let verdict = |verdict, dnssec, detail| {
        Ok(Authenticity::new(
            verdict, &domain, in_domain, dnssec, detail,
        ))
    };
    let owner = Name::from_ascii(format!("{}.{domain}.", req.service.srv_prefix()))
        .map_err(|e| Error::InvalidArg(format!("{domain}: {e}")))?;
    let srv = tokio::time::timeout_at(deadline, resolver.query(&owner, RecordType::SRV))
        .await
        .unwrap_or_else(|_| Err(Error::Timeout("SRV re-read: deadline passed".into())));
    let mut lookup_note = String::new();
    let srv_dnssec = match &srv {
        Err(Error::Bogus(d)) => {
            let detail = format!("the SRV answer for {domain} failed DNSSEC validation: {d}");
            return verdict(Verdict::Rejected, Some(DnssecState::Bogus), detail);
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
                    return verdict(Verdict::Rejected, Some(DnssecState::Secure), detail);
                }
                let detail = format!(
                    "{target}:{} is in {domain}'s DNSSEC-signed SRV records",
                    req.port
                );
                let mut a = verdict(Verdict::Authentic, Some(DnssecState::Secure), detail)?;
                a.evidence = Some(Evidence::Dnssec);
                dane_with(resolver, peers.as_ref(), &req, &target, deadline, &mut a).await?;
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
                return verdict(Verdict::Rejected, Some(*dnssec), detail);
            }
            lookup_note = " (the SRV record is gone now)".into();
            Some(*dnssec)
        }
    };
    let unverified = |detail: String| {
        let mut a = verdict(Verdict::Unverified, srv_dnssec, detail)?;
        a.binding = Some(Binding::unverified(req.service, &target, req.port)?);
        Ok(a)
    };
    let unsigned = if srv_dnssec == Some(DnssecState::Unavailable) {
        "DNSSEC is not available on this network"
    } else {
        "the SRV answer is not DNSSEC-signed"
    };
    if req.require_secure {
        return unverified(format!(
            "{unsigned} and only signed answers are accepted (REQUIRE_SECURE){lookup_note}"
        ));
    }
    let (true, Some(peers)) = (req.probe, peers) else {
        return unverified(format!(
            "{unsigned} and the TLS probe is off: ask the user{lookup_note}"
        ));
    };
    probe_with(
        resolver,
        &peers,
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
/// (T-DANE-05, T-DANE-07); provably unsigned or absent ones leave plain DNSSEC evidence
/// (T-DANE-06, T-DANE-08). An answer that cannot be judged (timeout, indeterminate) never
/// counts as "no TLSA": the binding then requires the TLSA check on every connection.
pub(crate) async fn dane(
    resolver: &Resolver,
    trust: Option<CaStore>,
    req: &AuthRequest,
    target: &str,
    deadline: Instant,
    a: &mut Authenticity,
) -> Result<()> {
    let peers = trust.map(PeerSource::Connect);
    dane_with(resolver, peers.as_ref(), req, target, deadline, a).await
}

/// [`dane`] with the reconnect's certificate from `peers`.
pub(crate) async fn dane_with(
    resolver: &Resolver,
    peers: Option<&PeerSource>,
    req: &AuthRequest,
    target: &str,
    deadline: Instant,
    a: &mut Authenticity,
) -> Result<()> {
    let reject = |a: &mut Authenticity, why: String| {
        a.verdict = Verdict::Rejected;
        a.evidence = None;
        a.binding = None;
        a.detail = why;
    };
    let mut binding = Binding::dnssec(req.service, target, req.port, true)?;
    let (addresses, records) = match dane::lookup(resolver, target, req.port, deadline).await {
        Ok(TlsaState::NotApplicable(why)) => {
            binding.dane = false;
            a.binding = Some(binding);
            a.detail.push_str(&format!("; DANE does not apply ({why})"));
            return Ok(());
        }
        Ok(TlsaState::Required { addresses, records }) => (addresses, records),
        Err(Error::Bogus(e)) => {
            reject(
                a,
                format!("{target}'s address or TLSA records are bogus: {e}"),
            );
            return Ok(());
        }
        Err(e) => {
            a.binding = Some(binding);
            a.detail.push_str(&format!(
                "; whether {target} publishes TLSA records could not be determined ({e}): every connection will require the check"
            ));
            return Ok(());
        }
    };
    let mut creq = binding.connect_request();
    let checked = match peers {
        Some(PeerSource::Chains(chains)) => chains.check_tlsa(&records, &creq),
        Some(PeerSource::Connect(trust)) => {
            creq.addresses = addresses;
            creq.tlsa = Some(records);
            connect(resolver, Some(trust.clone()), creq, deadline)
                .await
                .map(Side::of)
        }
        None => {
            creq.addresses = addresses;
            creq.tlsa = Some(records);
            connect(resolver, None, creq, deadline).await.map(Side::of)
        }
    };
    match checked {
        Ok(side) => {
            a.evidence = Some(Evidence::Dane);
            a.target_verified = true;
            a.target_matched = Some(side.proof.to_string());
            a.target_chain = side.chain;
            // The evidence sentence set before (the SRV records, or the document), then the match.
            a.detail = format!("{} and {}", a.detail, side.proof);
            if let Some(conn) = side.conn {
                a.keep(req, conn);
            }
            a.binding = Some(binding);
        }
        Err(Error::DaneMismatch(why)) => reject(
            a,
            format!("{target}'s certificate does not match its DNSSEC-signed TLSA records: {why}"),
        ),
        Err(e) => {
            a.target_error = Some(e.clone());
            a.binding = Some(binding);
            a.detail.push_str(&format!(
                "; DANE could not be checked now ({e}): every connection will enforce the TLSA records"
            ));
        }
    }
    Ok(())
}

/// The probe's connect request: SNI = the mail domain, proof = a name of the mail domain
/// (SRV-ID `_service.domain` or DNS-ID `domain`). The insecure target is never a reference
/// identifier here (T-REF-02, T-AUTH-09); CN never counts.
pub fn probe_request(
    domain: &str,
    service: Service,
    target: &str,
    port: u16,
    accept_sibling: bool,
) -> Result<ConnectRequest> {
    let mut id = ReferenceIdentity::new();
    id.add_srv_id(service.name(), domain)?;
    id.add_dns_id(domain)?;
    let mut req = ConnectRequest::new(target, port, service.security());
    req.sni = Some(domain.to_string());
    req.identity = Some(id);
    req.protocol = Some(service.protocol());
    req.options = MatchOptions {
        legacy_cn: false,
        accept_sibling_service: accept_sibling,
    }
    .for_probe();
    Ok(req)
}

/// The reconnect's request: SNI = the target, its own DNS-ID, a fresh full handshake
/// (T-SNI-09).
pub fn reconnect_request(service: Service, target: &str, port: u16) -> ConnectRequest {
    let mut req = ConnectRequest::new(target, port, service.security());
    req.protocol = Some(service.protocol());
    req
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn probe(
    resolver: &Resolver,
    trust: CaStore,
    req: &AuthRequest,
    domain: &str,
    target: &str,
    in_domain: bool,
    srv_dnssec: Option<DnssecState>,
    deadline: Instant,
    note: &str,
) -> Result<Authenticity> {
    let peers = PeerSource::Connect(trust);
    probe_with(
        resolver, &peers, req, domain, target, in_domain, srv_dnssec, deadline, note,
    )
    .await
}

/// [`probe`] with the two sides' certificates from `peers`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn probe_with(
    resolver: &Resolver,
    peers: &PeerSource,
    req: &AuthRequest,
    domain: &str,
    target: &str,
    in_domain: bool,
    srv_dnssec: Option<DnssecState>,
    deadline: Instant,
    note: &str,
) -> Result<Authenticity> {
    let probe_req = probe_request(domain, req.service, target, req.port, req.accept_sibling)?;
    let target_req = reconnect_request(req.service, target, req.port);
    let (p, t) = match peers {
        PeerSource::Connect(trust) => {
            let (p, t) = tokio::join!(
                connect(resolver, Some(trust.clone()), probe_req, deadline),
                connect(resolver, Some(trust.clone()), target_req, deadline)
            );
            (p.map(Side::of), t.map(Side::of))
        }
        PeerSource::Chains(chains) => (
            chains.check(&chains.probe, &probe_req, "probe"),
            chains.check(&chains.target, &target_req, "reconnect"),
        ),
    };
    let mut a = Authenticity::new(
        Verdict::Unverified,
        domain,
        in_domain,
        srv_dnssec,
        String::new(),
    );
    let mut probe_conn = None;
    let mut target_conn = None;
    let mut probe_matched = None;
    match p {
        Ok(side) => {
            a.probe_matched = Some(side.proof.to_string());
            a.probe_chain = side.chain;
            probe_matched = side.proof.matched().cloned();
            probe_conn = side.conn;
        }
        Err(e) => a.probe_error = Some(e),
    }
    match t {
        Ok(side) => {
            a.target_matched = Some(side.proof.to_string());
            a.target_chain = side.chain;
            a.target_verified = true;
            target_conn = side.conn;
        }
        Err(e) => a.target_error = Some(e),
    }
    a.detail = match (&a.probe_error, &a.target_error, &probe_matched) {
        (None, None, Some(m)) => {
            let binding = Binding::probe(req.service, domain, target, req.port, m)?;
            a.verdict = Verdict::Authentic;
            a.evidence = Some(if m.is_srv_id() {
                Evidence::ProbeSrvId
            } else {
                Evidence::ProbeDnsId
            });
            // Hand over the connection made exactly as the binding says.
            let bound = if binding.sni_is_mail_domain() {
                probe_conn.take()
            } else {
                target_conn.take()
            };
            if let Some(conn) = bound {
                a.keep(req, conn);
            }
            a.binding = Some(binding);
            format!(
                "{target} proved {domain} ({}) and its own name ({})",
                a.probe_matched.as_deref().unwrap_or(""),
                a.target_matched.as_deref().unwrap_or("")
            )
        }
        (None, Some(e), _) => {
            format!("{target} proved {domain}, but not its own name ({e}): ask the user{note}")
        }
        (Some(e), _, _) => {
            format!("{target} did not prove it serves {domain} ({e}): ask the user{note}")
        }
        (None, None, None) => format!(
            "{target} answered the probe without a name proof (DANE-EE): ask the user{note}"
        ),
    };
    if a.verdict != Verdict::Authentic {
        a.binding = Some(Binding::unverified(req.service, target, req.port)?);
    }
    for mut c in [probe_conn, target_conn].into_iter().flatten() {
        let _ = c.close();
    }
    Ok(a)
}
