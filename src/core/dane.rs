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

use super::identity::{MatchOptions, ReferenceIdentity};
use super::trust::TrustStore;
use super::verifier::verify_cert;

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
pub fn check_chain(
    records: &[Tlsa],
    chain: &[CertificateDer<'_>],
    identity: &ReferenceIdentity,
    now: UnixTime,
) -> Result<String, String> {
    let Some(leaf) = chain.first() else {
        return Err("no certificate".into());
    };
    if records
        .iter()
        .any(|t| t.usage == 3 && matches(t, leaf.as_ref()))
    {
        return Ok("DANE-EE TLSA record matches the server's key".into());
    }
    let mut last_err = String::from("no TLSA record matches the server's certificates");
    for t in records.iter().filter(|t| t.usage == 2) {
        for ta in chain.iter().skip(1).filter(|c| matches(t, c.as_ref())) {
            let store = match TrustStore::from_der_certs(
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
                Ok(v) => {
                    return Ok(format!(
                        "DANE-TA TLSA record matches the issuing CA; {}",
                        v.matched
                    ));
                }
                Err(e) => last_err = format!("DANE-TA: {e}"),
            }
        }
    }
    Err(last_err)
}

/// What a DANE verification concluded (what matched, or why nothing did) and the chain seen.
pub type DaneOutcome = (Result<String, String>, Vec<Vec<u8>>);

/// A rustls verifier that accepts exactly what the TLSA records accept.
#[derive(Debug)]
pub struct DaneVerifier {
    records: Vec<Tlsa>,
    identity: ReferenceIdentity,
    provider: Arc<CryptoProvider>,
    /// What the last verification concluded, and the chain it saw.
    pub outcome: Mutex<Option<DaneOutcome>>,
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
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain: Vec<CertificateDer<'_>> = std::iter::once(end_entity.clone())
            .chain(intermediates.iter().cloned())
            .collect();
        let result = check_chain(&self.records, &chain, &self.identity, now);
        let ok = result.is_ok();
        let der = chain.iter().map(|c| c.to_vec()).collect();
        if let Ok(mut o) = self.outcome.lock() {
            *o = Some((result, der));
        }
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
