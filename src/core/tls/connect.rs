//! `connect_with_sni`: Happy Eyeballs TCP, the STARTTLS dialogue if any, the rustls
//! handshake with a fresh [`MailVerifier`], the first exchange over TLS, and then a
//! blocking-or-non-blocking stream object ([`MailConnection`]) for the C layer.
//!
//! The three inputs of a TLS connect stay independent (docs/design.md §2.15): `host` is what
//! is resolved (or the given addresses are used), `sni` is what the ClientHello carries,
//! and `identity` is what the certificate must prove. None of them ever comes from the
//! address that won the race (T-HE-07).
//!
//! Sessions: resumption is disabled ([`client_config`]), so there is no session cache at
//! all and every connection is a full handshake verified by its own verifier. That is the
//! strongest form of "a session cache keyed by SNI": the probe's session (SNI
//! `example.com`) can never be resumed under another name or identity (T-SNI-09,
//! docs/design.md §2.9). Mail sessions are long-lived; one extra full handshake per
//! connection is cheap.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConnection, HandshakeKind, ProtocolVersion};
use rustls_pki_types::ServerName;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use crate::core::cert::ca_store::CaStore;
use crate::core::cert::dane::{DaneVerifier, Tlsa};
use crate::core::cert::identity::{
    DnsName, MatchOptions, ReferenceId, ReferenceIdentity, sni_for_host,
};
use crate::core::cert::verifier::{
    CertProof, ClientAuth, MailVerifier, client_config_with_auth, from_rustls_error,
};
use crate::core::dns::resolver::Resolver;
use crate::core::service::{Protocol, Security};
use crate::core::tls::happy_eyeballs::{self, Timing};
use crate::core::tls::starttls;
use crate::core::{Error, Result};
use crate::sys::NoWait;

/// How long [`MailConnection::close`] waits for the close_notify to leave.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// What to connect to and what to check.
#[derive(Clone, Debug)]
pub struct ConnectRequest {
    /// Host name (U-labels allowed, trailing dot and case normalised) or IP literal
    /// (`192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`).
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// `None`: derived from `host` (its own name; no SNI for an IP literal). `Some(name)`:
    /// the caller's choice (the probe sends the mail domain), validated the same way; an IP
    /// literal here means "send no SNI".
    pub sni: Option<String>,
    /// `None`: DNS-ID `host` (IP-ID for an IP literal).
    pub identity: Option<ReferenceIdentity>,
    pub options: MatchOptions,
    /// RFC 8305 connection attempt delay; `None` = 250 ms; clamped to 10 ms ..= 2 s.
    pub attempt_delay: Option<Duration>,
    /// Addresses to use instead of resolving `host` (e.g. from discovery); empty = DNS.
    pub addresses: Vec<IpAddr>,
    /// SMTP EHLO argument; `None` = [`starttls::DEFAULT_CLIENT_NAME`].
    pub client_name: Option<String>,
    /// The protocol the server must speak. Implicit TLS: the greeting must be in it (`None`
    /// accepts any of the three); STARTTLS modes imply it. Where IANA registered an ALPN id
    /// for it (`imap`, `pop3`), the ClientHello offers it and any other answer fails.
    pub protocol: Option<Protocol>,
    /// DNSSEC-secure, usable TLSA records: when given, they replace PKIX (RFC 7671) and a
    /// certificate they do not match is refused ([`Error::DaneMismatch`]).
    pub tlsa: Option<Vec<Tlsa>>,
    /// SHA-256 digests of SubjectPublicKeyInfos the caller pinned; empty: no pinning.
    pub pins: Vec<[u8; 32]>,
    /// What a pin means (see [`PinMode`]).
    pub pin_mode: PinMode,
    /// A client certificate to present when the server asks for one.
    pub client_auth: Option<Arc<ClientAuth>>,
    /// A per-connection CA store that replaces the context's.
    pub trust: Option<CaStore>,
}

/// What the pinned keys of a [`ConnectRequest`] mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PinMode {
    /// On top of the usual check: the certificate must pass it *and* its key must be pinned
    /// ([`Error::PinMismatch`] otherwise).
    #[default]
    Require,
    /// Instead of it, for a key the user accepted (a self-signed server): a pinned key is
    /// trusted whatever the names and dates say (like DANE-EE); any other certificate gets
    /// the usual check.
    Trust,
}

impl ConnectRequest {
    /// A request with the defaults: SNI and identity from `host`, strict matching.
    pub fn new(host: impl Into<String>, port: u16, security: Security) -> Self {
        ConnectRequest {
            host: host.into(),
            port,
            security,
            sni: None,
            identity: None,
            options: MatchOptions::default(),
            attempt_delay: None,
            addresses: Vec::new(),
            client_name: None,
            protocol: None,
            tlsa: None,
            pins: Vec::new(),
            pin_mode: PinMode::Require,
            client_auth: None,
            trust: None,
        }
    }

    /// The protocol the server must speak: the STARTTLS mode's, else `protocol`.
    pub fn expected_protocol(&self) -> Option<Protocol> {
        self.security.protocol().or(self.protocol)
    }
}

/// A request checked and resolved into what the connection uses; computed before any
/// network traffic, so bad input never touches the network.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The normalised host: an A-label name, or the IP address text.
    pub host: String,
    /// The IP when `host` is a literal (then no DNS).
    pub ip: Option<IpAddr>,
    /// The ClientHello server_name (`None`: no extension).
    pub sni: Option<String>,
    pub identity: ReferenceIdentity,
    /// What rustls is given: the SNI name, else the host (DNS name with SNI disabled, or
    /// the IP). The verifier ignores it; it only decides SNI.
    pub server_name: ServerName<'static>,
    pub enable_sni: bool,
    /// The ALPN protocol id offered, if any.
    pub alpn: Option<&'static [u8]>,
}

/// Validates `req` (T-SNI-01..05, T-SNI-08, T-SNI-10): the host, the SNI override, the
/// client name, the port.
pub fn plan(req: &ConnectRequest) -> Result<Plan> {
    if req.port == 0 {
        return Err(Error::InvalidArg("port 0".into()));
    }
    if let Some(name) = &req.client_name {
        starttls::check_client_name(name)?;
    }
    if let (Some(mode), Some(want)) = (req.security.protocol(), req.protocol)
        && mode != want
    {
        return Err(Error::InvalidArg(format!(
            "STARTTLS for {mode} cannot reach a {want} server"
        )));
    }
    if req.tlsa.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::InvalidArg("an empty TLSA record set".into()));
    }
    let (host, ip) = match ReferenceId::from_host(&req.host)? {
        ReferenceId::IpId(ip) => (ip.to_string(), Some(ip)),
        ReferenceId::DnsId(name) => (name.as_str().to_string(), None),
        ReferenceId::SrvId { .. } => return Err(Error::InvalidArg("not a host name".into())),
    };
    let sni = match &req.sni {
        None => sni_for_host(&req.host)?,
        Some(name) => sni_for_host(name)?,
    };
    let identity = match &req.identity {
        Some(id) if id.is_empty() => {
            return Err(Error::InvalidArg("no reference identifiers".into()));
        }
        Some(id) => id.clone(),
        None => {
            let mut id = ReferenceIdentity::new();
            id.add_host(&req.host)?;
            id
        }
    };
    let (server_name, enable_sni) = match (&sni, ip) {
        (Some(name), _) => (dns_server_name(name)?, true),
        (None, Some(ip)) => (ServerName::IpAddress(ip.into()), false),
        (None, None) => (dns_server_name(&host)?, false),
    };
    Ok(Plan {
        host,
        ip,
        sni,
        identity,
        server_name,
        enable_sni,
        alpn: req.expected_protocol().and_then(Protocol::alpn_id),
    })
}

fn dns_server_name(name: &str) -> Result<ServerName<'static>> {
    // Already validated by DnsName; rustls' own check is a second opinion.
    let name = DnsName::new(name)?;
    ServerName::try_from(name.as_str().to_string())
        .map_err(|e| Error::InvalidArg(format!("{name} is not usable as a TLS server name: {e}")))
}

/// What a connection is, for display and for the caller's decisions.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The normalised host asked for (not the address that won).
    pub host: String,
    pub port: u16,
    /// The address the TCP connection went to.
    pub peer_addr: SocketAddr,
    /// The SNI sent, if any.
    pub sni: Option<String>,
    /// `"TLSv1.3"` or `"TLSv1.2"`.
    pub tls_version: String,
    /// The IANA name of the cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The server's certificates as sent, DER, leaf first.
    pub peer_chain: Vec<Vec<u8>>,
    /// What the certificate check proved: the reference identifier matched (PKIX,
    /// DANE-TA) or the DANE-EE key match (Display gives the text).
    pub proof: CertProof,
    /// The ALPN protocol the server selected, if it selected one.
    pub alpn: Option<String>,
    /// True when this was a full handshake (always, as resumption is disabled; T-SNI-09).
    pub full_handshake: bool,
    /// Implicit TLS: the greeting read over TLS. STARTTLS: the greeting read before TLS,
    /// which is unauthenticated and for display only (see `greeting_over_tls`).
    pub greeting: String,
    pub greeting_over_tls: bool,
    /// The capabilities read over TLS (IMAP CAPABILITY, POP3 CAPA, SMTP EHLO keywords).
    pub capabilities: Vec<String>,
    /// How long TCP, STARTTLS, the handshake and the post-TLS exchange took in total.
    pub elapsed: Duration,
}

/// Connects per `req`, everything bounded by `deadline`.
///
/// Errors: [`Error::InvalidArg`] (bad host, SNI, identity, port, client name; before any
/// traffic), DNS errors, [`Error::ConnectFailed`], [`Error::Timeout`], the STARTTLS errors
/// of [`starttls::upgrade`], the precise certificate error of the verifier
/// ([`Error::CertExpired`], [`Error::UnknownIssuer`], [`Error::NameMismatch`], ...),
/// [`Error::Handshake`] for other TLS failures, [`Error::ConnectionClosed`] when the server
/// hangs up during the handshake (T-STL-17).
/// `trust` is needed unless `req.tlsa` replaces PKIX.
pub async fn connect(
    resolver: &Resolver,
    trust: Option<CaStore>,
    req: ConnectRequest,
    deadline: Instant,
) -> Result<MailConnection> {
    connect_over(resolver, trust, req, None, deadline).await
}

/// The TCP connection of `req`: over `socket` when the caller gave one (already
/// connected: through a SOCKS or HTTP proxy, Tor, ...), else Happy Eyeballs to the
/// request's addresses or the host's.
async fn open_tcp(
    resolver: &Resolver,
    plan: &Plan,
    req: &ConnectRequest,
    socket: Option<std::net::TcpStream>,
    deadline: Instant,
) -> Result<(tokio::net::TcpStream, SocketAddr)> {
    if let Some(sock) = socket {
        // A Unix-domain socket to a proxy has no IP peer: shown as 0.0.0.0:0.
        let peer = sock
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let tcp = sock
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpStream::from_std(sock))
            .map_err(|e| Error::Io(format!("the caller's socket: {e}")))?;
        return Ok((tcp, peer));
    }
    let addresses = match plan.ip {
        Some(ip) if req.addresses.is_empty() => vec![ip],
        _ => req.addresses.clone(),
    };
    let timing = Timing {
        attempt_delay: happy_eyeballs::attempt_delay(req.attempt_delay),
        ..Timing::default()
    };
    happy_eyeballs::connect_tcp(resolver, &plan.host, &addresses, req.port, timing, deadline).await
}

/// [`connect`] over `socket` when given: a stream socket the caller already connected
/// (nothing is resolved and no address is tried), else as [`connect`].
pub async fn connect_over(
    resolver: &Resolver,
    trust: Option<CaStore>,
    req: ConnectRequest,
    socket: Option<std::net::TcpStream>,
    deadline: Instant,
) -> Result<MailConnection> {
    let started = Instant::now();
    let plan = plan(&req)?;
    let trust = req.trust.clone().or(trust);
    let checker = Checker::new(trust, &plan, &req)?;
    let mut config = client_config_with_auth(checker.verifier(), req.client_auth.as_deref())?;
    {
        let config = Arc::make_mut(&mut config);
        config.enable_sni = plan.enable_sni;
        config.alpn_protocols = plan.alpn.map(|id| vec![id.to_vec()]).unwrap_or_default();
    }

    let (mut tcp, peer_addr) = open_tcp(resolver, &plan, &req, socket, deadline).await?;
    let _ = tcp.set_nodelay(true);

    let client_name = req
        .client_name
        .clone()
        .unwrap_or_else(|| starttls::DEFAULT_CLIENT_NAME.to_string());
    let plain_greeting = starttls::upgrade(&mut tcp, req.security, &client_name, deadline).await?;

    let handshake = TlsConnector::from(config).connect(plan.server_name.clone(), tcp);
    let mut tls = match timeout_at(deadline, handshake).await {
        Err(_) => {
            return Err(Error::Timeout(format!(
                "TLS handshake with {} ({peer_addr}): deadline passed",
                plan.host
            )));
        }
        Ok(Err(e)) => return Err(handshake_error(&checker, &e)),
        Ok(Ok(s)) => s,
    };
    let proof = match checker.outcome() {
        Some(Ok(proof)) => proof,
        // Cannot happen without resumption; refuse rather than report an unverified peer.
        _ => {
            return Err(Error::Handshake(
                "the handshake completed without a certificate verification".into(),
            ));
        }
    };
    // rustls refuses a protocol it did not offer; this keeps the rule visible here.
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.is_some() && alpn.as_deref() != plan.alpn {
        return Err(Error::Protocol(format!(
            "the server selected the ALPN protocol {:?}, which was not offered",
            String::from_utf8_lossy(alpn.as_deref().unwrap_or_default())
        )));
    }

    let after =
        starttls::after_tls(&mut tls, req.security, req.protocol, &client_name, deadline).await?;

    let (tcp, conn) = tls.into_inner();
    let info = ConnectionInfo {
        host: plan.host,
        port: req.port,
        peer_addr,
        sni: plan.sni,
        tls_version: version_text(conn.protocol_version()),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|s| {
                let suite = s.suite();
                suite
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{suite:?}"))
            })
            .unwrap_or_default(),
        peer_chain: conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect(),
        proof,
        alpn: alpn.map(|a| String::from_utf8_lossy(&a).into_owned()),
        full_handshake: !matches!(conn.handshake_kind(), Some(HandshakeKind::Resumed)),
        greeting: if req.security.is_starttls() {
            plain_greeting
        } else {
            after.greeting
        },
        greeting_over_tls: !req.security.is_starttls(),
        capabilities: after.capabilities,
        elapsed: started.elapsed(),
    };
    let tcp = tcp
        .into_std()
        .and_then(|s| s.set_nonblocking(false).map(|()| s))
        .map_err(|e| Error::Io(format!("socket: {e}")))?;
    Ok(MailConnection {
        tcp,
        tls: conn,
        info,
        pending: after.leftover,
        nonblocking: false,
        closed: false,
    })
}

fn version_text(v: Option<ProtocolVersion>) -> String {
    match v {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// A plain connection at the STARTTLS go-ahead, for a client whose own TLS stack takes
/// over (see [`starttls_plain`]).
#[derive(Debug)]
pub struct PlainConnection {
    /// Blocking mode; the next byte on it is the client's ClientHello.
    pub tcp: std::net::TcpStream,
    /// The address the TCP connection went to (0.0.0.0:0 for a caller's non-IP socket).
    pub peer_addr: SocketAddr,
    /// The greeting read before TLS: unauthenticated, for display only.
    pub greeting: String,
}

/// Runs the STARTTLS dialogue of `req.security` (a STARTTLS mode) up to the server's
/// go-ahead, with the same strict rules as [`connect`] (no plaintext fallback; bytes after
/// the go-ahead are an injection and fail the call), and hands back the plain socket: the
/// caller's own TLS stack makes the handshake. Over `socket` when given.
pub async fn starttls_plain(
    resolver: &Resolver,
    req: ConnectRequest,
    socket: Option<std::net::TcpStream>,
    deadline: Instant,
) -> Result<PlainConnection> {
    if !req.security.is_starttls() {
        return Err(Error::InvalidArg(
            "the plain hand-over needs a STARTTLS security mode".into(),
        ));
    }
    let plan = plan(&req)?;
    let (mut tcp, peer_addr) = open_tcp(resolver, &plan, &req, socket, deadline).await?;
    let _ = tcp.set_nodelay(true);
    let client_name = req
        .client_name
        .clone()
        .unwrap_or_else(|| starttls::DEFAULT_CLIENT_NAME.to_string());
    let greeting = starttls::upgrade(&mut tcp, req.security, &client_name, deadline).await?;
    let tcp = tcp
        .into_std()
        .and_then(|s| s.set_nonblocking(false).map(|()| s))
        .map_err(|e| Error::Io(format!("socket: {e}")))?;
    Ok(PlainConnection {
        tcp,
        peer_addr,
        greeting,
    })
}

/// The certificate verifier of one connection: PKIX and names, or the TLSA records, with
/// the caller's pinned keys on top.
enum Checker {
    Pkix(Arc<MailVerifier>),
    Dane(Arc<DaneVerifier>),
    Pinned(Arc<PinVerifier>),
}

/// The pinned keys of a connection around its usual verifier (see [`PinMode`]).
struct PinVerifier {
    inner: Option<Checker>,
    pins: Vec<[u8; 32]>,
    mode: PinMode,
    provider: Arc<rustls::crypto::CryptoProvider>,
    outcome: std::sync::Mutex<Option<Result<CertProof>>>,
}

impl std::fmt::Debug for PinVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinVerifier")
            .field("pins", &self.pins.len())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a certificate's DER SubjectPublicKeyInfo (the data of a TLSA x 1 1 record).
pub fn spki_sha256(cert: &[u8]) -> Result<[u8; 32]> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, c) = X509Certificate::from_der(cert)
        .map_err(|e| Error::BadCertificate(format!("certificate: {e}")))?;
    let d = ring::digest::digest(&ring::digest::SHA256, c.tbs_certificate.subject_pki.raw);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Ok(out)
}

impl PinVerifier {
    fn record(&self, r: Result<CertProof>) {
        *self
            .outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
    }
}

impl rustls::client::danger::ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::client::danger::ServerCertVerified;
        let pinned = spki_sha256(end_entity.as_ref()).is_ok_and(|h| self.pins.contains(&h));
        if pinned && self.mode == PinMode::Trust {
            self.record(Ok(CertProof::Pinned));
            return Ok(ServerCertVerified::assertion());
        }
        let Some(inner) = &self.inner else {
            let e = Error::UnknownIssuer(
                "the key is not pinned and no CA certificates were loaded".into(),
            );
            self.record(Err(e.clone()));
            return Err(crate::core::cert::verifier::to_rustls_error(&e));
        };
        let checked =
            inner
                .verifier()
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        let outcome = inner.outcome();
        match (checked, outcome) {
            (Err(e), outcome) => {
                self.record(outcome.unwrap_or_else(|| Err(from_rustls_error(&e))));
                Err(e)
            }
            (Ok(v), Some(Ok(proof))) if pinned || self.mode == PinMode::Trust => {
                self.record(Ok(proof));
                Ok(v)
            }
            (Ok(_), Some(Ok(_))) => {
                let e = Error::PinMismatch(
                    "the server's certificate is valid, but its key is none of the pinned ones"
                        .into(),
                );
                self.record(Err(e.clone()));
                Err(crate::core::cert::verifier::to_rustls_error(&e))
            }
            (Ok(_), other) => {
                let e = other.and_then(Result::err).unwrap_or_else(|| {
                    Error::Handshake("the certificate check left no outcome".into())
                });
                self.record(Err(e.clone()));
                Err(crate::core::cert::verifier::to_rustls_error(&e))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl Checker {
    fn new(trust: Option<CaStore>, plan: &Plan, req: &ConnectRequest) -> Result<Self> {
        if !req.pins.is_empty() {
            let inner = match (req.pin_mode, Self::unpinned(trust, plan, req)) {
                (_, Ok(c)) => Some(c),
                // A pinned key is trusted on its own: no CA store is needed for it.
                (PinMode::Trust, Err(Error::NoTrustAnchors(_))) => None,
                (_, Err(e)) => return Err(e),
            };
            return Ok(Checker::Pinned(Arc::new(PinVerifier {
                inner,
                pins: req.pins.clone(),
                mode: req.pin_mode,
                provider: Arc::new(rustls::crypto::ring::default_provider()),
                outcome: std::sync::Mutex::new(None),
            })));
        }
        Self::unpinned(trust, plan, req)
    }

    fn unpinned(trust: Option<CaStore>, plan: &Plan, req: &ConnectRequest) -> Result<Self> {
        Ok(match (&req.tlsa, trust) {
            (Some(records), _) => Checker::Dane(Arc::new(DaneVerifier::new(
                records.clone(),
                plan.identity.clone(),
            ))),
            (None, Some(trust)) => Checker::Pkix(Arc::new(MailVerifier::new(
                trust,
                plan.identity.clone(),
                req.options,
            )?)),
            (None, None) => {
                return Err(Error::NoTrustAnchors(
                    "no CA certificates were loaded for this connection".into(),
                ));
            }
        })
    }

    fn verifier(&self) -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
        match self {
            Checker::Pkix(v) => v.clone(),
            Checker::Dane(v) => v.clone(),
            Checker::Pinned(v) => v.clone(),
        }
    }

    /// What the handshake's certificate check concluded (`None` before it ran).
    fn outcome(&self) -> Option<Result<CertProof>> {
        match self {
            Checker::Pkix(v) => v
                .last_match()
                .map(|m| Ok(CertProof::Identity(m)))
                .or_else(|| v.last_error().map(Err)),
            Checker::Dane(v) => v.last_outcome(),
            Checker::Pinned(v) => v
                .outcome
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

/// The precise reason a handshake failed: the verifier's own verdict first (it knows the
/// certificate error exactly), then rustls' error, then the socket's.
fn handshake_error(checker: &Checker, e: &io::Error) -> Error {
    if let Some(Err(cert)) = checker.outcome() {
        return cert;
    }
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return from_rustls_error(tls);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Error::ConnectionClosed(format!(
            "the server closed the connection during the TLS handshake: {e}"
        )),
        _ => Error::Handshake(format!("TLS handshake: {e}")),
    }
}

// ------------------------------------------------------------------ the stream

/// A verified TLS connection to a mail server, after the greeting and capabilities.
///
/// Blocking by default. With [`MailConnection::set_nonblocking`]`(true)`, `read`, `write`
/// and `flush` return `Ok(None)` instead of waiting ("would block").
///
/// Poll rule for event loops: decrypted data can sit in this object while the socket has
/// nothing to read, so a descriptor that is not readable does not mean "no data". Call
/// `read` until it returns `Ok(None)` (or check [`MailConnection::has_buffered_plaintext`])
/// before polling [`MailConnection::raw_fd`] for readability; poll for writability while
/// [`MailConnection::wants_write`] is true and call `flush` then.
pub struct MailConnection {
    tcp: std::net::TcpStream,
    tls: ClientConnection,
    info: ConnectionInfo,
    /// Application bytes read over TLS before the caller took over.
    pending: Vec<u8>,
    nonblocking: bool,
    closed: bool,
}

impl std::fmt::Debug for MailConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConnection")
            .field("info", &self.info)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn socket_error(what: &str, e: &io::Error) -> Error {
    use io::ErrorKind as K;
    match e.kind() {
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
            Error::ConnectionClosed(format!("{what}: {e}"))
        }
        _ => Error::Io(format!("{what}: {e}")),
    }
}

impl MailConnection {
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::ConnectionClosed("the connection was closed".into()));
        }
        Ok(())
    }

    /// Reads decrypted application data. `Ok(Some(0))`: the server closed cleanly
    /// (close_notify). `Ok(None)`: non-blocking mode and nothing to read yet. A TCP close
    /// without close_notify is [`Error::ConnectionClosed`] (truncation is never silent).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.read_from(buf, false)
    }

    /// [`MailConnection::read`] that never waits for the socket, whatever the mode:
    /// `Ok(None)` when no plaintext is buffered and the socket has nothing to read. For
    /// callers that wait for readiness themselves (the C stream polls without holding its
    /// lock, so another thread can write meanwhile).
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.read_from(buf, true)
    }

    fn read_from(&mut self, buf: &mut [u8], nowait: bool) -> Result<Option<usize>> {
        self.check_open()?;
        if buf.is_empty() {
            return Ok(Some(0));
        }
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(Some(n));
        }
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(Error::ConnectionClosed(
                        "the server closed the connection without TLS close_notify".into(),
                    ));
                }
                Err(e) => return Err(socket_error("TLS read", &e)),
            }
            let got = if nowait {
                self.tls.read_tls(&mut NoWait(&self.tcp))
            } else {
                self.tls.read_tls(&mut self.tcp)
            };
            match got {
                // EOF is recorded by rustls; the next reader() call reports it.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(socket_error("socket read", &e)),
            }
            let state = self.tls.process_new_packets();
            // Alerts, key-update answers: send what rustls queued, without waiting.
            let _ = self.write_pending(false, nowait);
            if let Err(e) = state {
                return Err(Error::Protocol(format!("TLS: {e}")));
            }
        }
    }

    /// Encrypts and sends `buf`. Blocking mode: returns `Some(buf.len())` once all of it
    /// is on the socket. Non-blocking mode: returns how much was taken (its TLS records may
    /// still be queued: see [`MailConnection::wants_write`]), or `Ok(None)` when nothing
    /// could be taken because the queue is full.
    pub fn write(&mut self, buf: &[u8]) -> Result<Option<usize>> {
        self.write_to(buf, false)
    }

    /// [`MailConnection::write`] that never waits for the socket, whatever the mode: takes
    /// what rustls accepts and sends what the socket takes now (see
    /// [`MailConnection::try_read`]).
    pub fn try_write(&mut self, buf: &[u8]) -> Result<Option<usize>> {
        self.write_to(buf, true)
    }

    fn write_to(&mut self, buf: &[u8], nowait: bool) -> Result<Option<usize>> {
        self.check_open()?;
        let mut taken = 0;
        loop {
            // Queued records first, so rustls' buffer limit frees up.
            self.write_pending(true, nowait)?;
            let n = self
                .tls
                .writer()
                .write(&buf[taken..])
                .map_err(|e| socket_error("TLS write", &e))?;
            taken += n;
            if taken == buf.len() || self.nonblocking || nowait {
                break;
            }
        }
        self.write_pending(true, nowait)?;
        if taken == 0 && !buf.is_empty() {
            return Ok(None);
        }
        Ok(Some(taken))
    }

    /// Sends queued TLS records. `Ok(Some(()))` when nothing is left queued, `Ok(None)`
    /// when the socket would block (non-blocking mode).
    pub fn flush(&mut self) -> Result<Option<()>> {
        self.check_open()?;
        Ok(self.write_pending(true, false)?.then_some(()))
    }

    /// [`MailConnection::flush`] that never waits for the socket, whatever the mode.
    pub fn try_flush(&mut self) -> Result<Option<()>> {
        self.check_open()?;
        Ok(self.write_pending(true, true)?.then_some(()))
    }

    /// Writes queued TLS records until none are left (true) or the socket would block
    /// (false). `fail`: whether socket errors are errors or ignored (best effort).
    /// `nowait`: never wait for the socket, whatever its mode.
    fn write_pending(&mut self, fail: bool, nowait: bool) -> Result<bool> {
        while self.tls.wants_write() {
            let sent = if nowait {
                self.tls.write_tls(&mut NoWait(&self.tcp))
            } else {
                self.tls.write_tls(&mut self.tcp)
            };
            match sent {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if fail => return Err(socket_error("socket write", &e)),
                Err(_) => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Sends close_notify (RFC 8314 §3.4, T-TLS-07), then shuts the socket down. Waits at
    /// most a couple of seconds for the alert to leave, even in non-blocking mode. Later
    /// calls do nothing.
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.tls.send_close_notify();
        let _ = self.tcp.set_nonblocking(false);
        let _ = self.tcp.set_write_timeout(Some(CLOSE_WRITE_TIMEOUT));
        let sent = self.write_pending(true, false);
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
        sent.map(|_| ())
    }

    /// Switches the socket between blocking (the default) and non-blocking mode.
    pub fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        self.tcp
            .set_nonblocking(on)
            .map_err(|e| Error::Io(format!("socket: {e}")))?;
        self.nonblocking = on;
        Ok(())
    }

    /// Blocking mode: the longest one read or write waits (`None`: no limit). A read that
    /// times out returns `Ok(None)` like a non-blocking one.
    pub fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.tcp
            .set_read_timeout(t)
            .and_then(|()| self.tcp.set_write_timeout(t))
            .map_err(|e| Error::Io(format!("socket: {e}")))
    }

    /// The I/O timeout of blocking mode (`None`: no limit), as last set.
    pub fn timeout(&self) -> Option<Duration> {
        self.tcp.read_timeout().ok().flatten()
    }

    /// The socket descriptor, for poll loops only (see the poll rule above): never read
    /// or write it directly. Valid until the connection is dropped.
    pub fn raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// True when TLS needs more bytes from the socket to make progress.
    pub fn wants_read(&self) -> bool {
        self.tls.wants_read()
    }

    /// True while encrypted records are queued for the socket (poll for writability, then
    /// call [`MailConnection::flush`]).
    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// True when `read` can return data without touching the socket.
    pub fn has_buffered_plaintext(&mut self) -> bool {
        !self.pending.is_empty()
            || matches!(self.tls.reader().into_first_chunk(), Ok(c) if !c.is_empty())
    }
}

impl Drop for MailConnection {
    fn drop(&mut self) {
        // A connection dropped without close() still says goodbye properly.
        let _ = self.close();
    }
}
