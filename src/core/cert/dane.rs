//! DANE for SRV targets (RFC 6698, RFC 7671, RFC 7673): TLSA usages 2 (DANE-TA) and 3
//! (DANE-EE) only, as RFC 7671 §4 recommends. A secure, usable TLSA set replaces PKIX for
//! that target: DANE-EE authenticates the leaf key whatever its names and dates say (RFC
//! 7671 §5.1); DANE-TA makes the matching certificate the only trust anchor and still needs
//! the names (§5.2). Usable records that none of the server's certificates match abort the
//! connection (T-DANE-04): the handshake itself fails, so nothing unverified is ever used.

use std::sync::{Arc, Mutex};

use hickory_resolver::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector, TLSA};
use ring::digest;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

use std::net::IpAddr;

use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::time::{Instant, timeout_at};

use crate::core::cert::ca_store::CaStore;
use crate::core::cert::identity::{MatchOptions, ReferenceIdentity};
use crate::core::cert::verifier::{CertProof, verify_cert};
use crate::core::dns::answer::{DnssecState, Outcome};
use crate::core::dns::discover::lookup_target_dns;
use crate::core::dns::resolver::Resolver;
use crate::core::{Error, Result};

/// One usable TLSA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// 2 (DANE-TA) or 3 (DANE-EE).
    pub usage: u8,
    /// 0 (full certificate) or 1 (SubjectPublicKeyInfo).
    pub selector: u8,
    /// 0 (exact), 1 (SHA-256) or 2 (SHA-512).
    pub matching: u8,
    pub data: Vec<u8>,
}

/// The records of a TLSA RRset that can be used: usages 2 and 3 with known selectors and
/// matching types and digests of the right length; the rest are ignored (T-DANE-09,
/// T-DANE-10). An empty result means "as if there were no TLSA records".
pub fn usable(records: &[TLSA]) -> Vec<Tlsa> {
    records
        .iter()
        .filter_map(|r| {
            let usage = match r.cert_usage {
                CertUsage::DaneTa => 2,
                CertUsage::DaneEe => 3,
                _ => return None,
            };
            let selector = match r.selector {
                Selector::Full => 0,
                Selector::Spki => 1,
                _ => return None,
            };
            let (matching, len) = match r.matching {
                Matching::Raw => (0, None),
                Matching::Sha256 => (1, Some(32)),
                Matching::Sha512 => (2, Some(64)),
                _ => return None,
            };
            if len.is_some_and(|n| r.cert_data.len() != n) || r.cert_data.is_empty() {
                return None;
            }
            Some(Tlsa {
                usage,
                selector,
                matching,
                data: r.cert_data.clone(),
            })
        })
        .collect()
}

/// Does `cert` match `t`'s selector, matching type and data?
fn matches(t: &Tlsa, cert: &[u8]) -> bool {
    let selected: Vec<u8> = match t.selector {
        0 => cert.to_vec(),
        _ => match X509Certificate::from_der(cert) {
            Ok((_, c)) => c.tbs_certificate.subject_pki.raw.to_vec(),
            Err(_) => return false,
        },
    };
    let value = match t.matching {
        0 => selected,
        1 => digest::digest(&digest::SHA256, &selected).as_ref().to_vec(),
        _ => digest::digest(&digest::SHA512, &selected).as_ref().to_vec(),
    };
    value == t.data
}

/// Checks a presented chain (leaf first) against the usable records: `Ok(what matched)` or
/// `Err(why not)`.
pub fn match_tlsa(
    records: &[Tlsa],
    chain: &[CertificateDer<'_>],
    identity: &ReferenceIdentity,
    now: UnixTime,
) -> std::result::Result<CertProof, String> {
    let Some(leaf) = chain.first() else {
        return Err("no certificate".into());
    };
    if records
        .iter()
        .any(|t| t.usage == 3 && matches(t, leaf.as_ref()))
    {
        return Ok(CertProof::DaneEe);
    }
    let mut last_err = String::from("no TLSA record matches the server's certificates");
    for t in records.iter().filter(|t| t.usage == 2) {
        for ta in chain.iter().skip(1).filter(|c| matches(t, c.as_ref())) {
            let store = match CaStore::from_der_certs(
                std::iter::once(ta.clone().into_owned()),
                "DANE-TA",
            ) {
                Ok(s) => s,
                Err(e) => {
                    last_err = format!("DANE-TA certificate unusable: {e}");
                    continue;
                }
            };
            match verify_cert(&store, chain, identity, &MatchOptions::default(), now) {
                Ok(v) => return Ok(CertProof::DaneTa(v.matched)),
                Err(e) => last_err = format!("DANE-TA: {e}"),
            }
        }
    }
    Err(last_err)
}

/// A rustls verifier that accepts exactly what the TLSA records accept.
#[derive(Debug)]
pub struct DaneVerifier {
    records: Vec<Tlsa>,
    identity: ReferenceIdentity,
    provider: Arc<CryptoProvider>,
    /// What the last verification concluded.
    outcome: Mutex<Option<Result<CertProof>>>,
}

impl DaneVerifier {
    pub fn new(records: Vec<Tlsa>, identity: ReferenceIdentity) -> Self {
        DaneVerifier {
            records,
            identity,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            outcome: Mutex::new(None),
        }
    }

    /// What the last verification proved, or why it failed (`None` before any).
    pub fn last_outcome(&self) -> Option<Result<CertProof>> {
        self.outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let chain: Vec<CertificateDer<'_>> = std::iter::once(end_entity.clone())
            .chain(intermediates.iter().cloned())
            .collect();
        let result = match_tlsa(&self.records, &chain, &self.identity, now).map_err(|why| {
            Error::DaneMismatch(format!("{why} (its TLSA records are DNSSEC-signed)"))
        });
        let ok = result.is_ok();
        *self
            .outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
        if ok {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(CertificateError::ApplicationVerificationFailure.into())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What DNSSEC says about DANE for one target and port (RFC 7673 §3).
#[derive(Debug, Clone)]
pub enum TlsaState {
    /// Secure addresses and a secure, usable TLSA set: the certificate must match it.
    Required {
        addresses: Vec<IpAddr>,
        records: Vec<Tlsa>,
    },
    /// DANE does not apply: the addresses or the TLSA records are provably unsigned, the
    /// TLSA set provably does not exist, or none of its records is usable. PKIX decides.
    NotApplicable(String),
}

/// Looks up the target's addresses and `_port._tcp.target` TLSA records through the
/// validating resolver, DNS only: the hosts file is not consulted, so the addresses a TLSA
/// check is enforced on are always DNSSEC-secure ones (docs/SECURITY.md, "Hosts file"). Anything that is neither a secure answer nor a provably unsigned or
/// absent one (bogus, indeterminate, SERVFAIL, timeout) is an error: an answer that cannot
/// be judged never counts as "no TLSA" (fail closed).
pub async fn lookup(
    resolver: &Resolver,
    target: &str,
    port: u16,
    deadline: Instant,
) -> Result<TlsaState> {
    let addrs = lookup_target_dns(resolver, target, deadline).await;
    match (addrs.dnssec, addrs.error) {
        (_, Some(e @ (Error::Bogus(_) | Error::NoRecord(_)))) => return Err(e),
        (_, Some(e)) => {
            return Err(Error::Indeterminate(format!(
                "the addresses of {target} could not be looked up, so DANE cannot be ruled out: {e}"
            )));
        }
        (Some(DnssecState::Secure), None) => {}
        (Some(DnssecState::Insecure), None) => {
            return Ok(TlsaState::NotApplicable(format!(
                "the addresses of {target} are not DNSSEC-signed"
            )));
        }
        (state, None) => {
            return Err(Error::Indeterminate(format!(
                "the addresses of {target} are {}",
                state.map_or("unknown", DnssecState::name)
            )));
        }
    }
    let owner = Name::from_ascii(format!("_{port}._tcp.{target}."))
        .map_err(|e| Error::InvalidArg(format!("{target}: {e}")))?;
    let tlsa = timeout_at(deadline, resolver.query(&owner, RecordType::TLSA))
        .await
        .unwrap_or_else(|_| Err(Error::Timeout(format!("{owner} TLSA: deadline passed"))));
    let records: Vec<TLSA> = match tlsa {
        Ok(Outcome::Records(a)) if a.dnssec == DnssecState::Secure => a
            .records
            .iter()
            .filter_map(|r| match &r.data {
                RData::TLSA(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        Ok(Outcome::Records(a)) if a.dnssec == DnssecState::Insecure => {
            return Ok(TlsaState::NotApplicable(format!(
                "the TLSA records of {target} are not DNSSEC-signed"
            )));
        }
        Ok(Outcome::NxDomain { dnssec, .. } | Outcome::NoData { dnssec, .. })
            if matches!(dnssec, DnssecState::Secure | DnssecState::Insecure) =>
        {
            return Ok(TlsaState::NotApplicable(format!(
                "{target} publishes no TLSA records for port {port}"
            )));
        }
        Ok(other) => {
            return Err(Error::Indeterminate(format!(
                "the TLSA answer for {target} cannot be judged ({})",
                outcome_state(&other).name()
            )));
        }
        Err(e @ (Error::Bogus(_) | Error::Indeterminate(_))) => return Err(e),
        Err(e) => {
            return Err(Error::Indeterminate(format!(
                "the TLSA records of {target} could not be looked up: {e}"
            )));
        }
    };
    let usable = usable(&records);
    if usable.is_empty() {
        return Ok(TlsaState::NotApplicable(format!(
            "the TLSA records of {target} are not usable (RFC 7671)"
        )));
    }
    Ok(TlsaState::Required {
        addresses: addrs.addresses,
        records: usable,
    })
}

fn outcome_state(o: &Outcome) -> DnssecState {
    match o {
        Outcome::Records(a) => a.dnssec,
        Outcome::NxDomain { dnssec, .. } | Outcome::NoData { dnssec, .. } => *dnssec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(usage: CertUsage, selector: Selector, matching: Matching, data: Vec<u8>) -> TLSA {
        TLSA::new(usage, selector, matching, data)
    }

    #[test]
    fn t_dane_09_and_10_unusable_records_are_ignored() {
        let ok = rec(
            CertUsage::DaneEe,
            Selector::Spki,
            Matching::Sha256,
            vec![0; 32],
        );
        let short = rec(
            CertUsage::DaneEe,
            Selector::Spki,
            Matching::Sha256,
            vec![0; 31],
        );
        let pkix = rec(
            CertUsage::PkixEe,
            Selector::Spki,
            Matching::Sha256,
            vec![0; 32],
        );
        let odd = rec(
            CertUsage::Unassigned(4),
            Selector::Spki,
            Matching::Sha256,
            vec![0; 32],
        );
        assert_eq!(usable(&[ok.clone(), short, pkix, odd]).len(), 1);
        assert_eq!(usable(&[ok])[0].usage, 3);
    }
}
