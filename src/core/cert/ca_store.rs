//! Trust anchors: the system CA store (rustls-native-certs, which honours `SSL_CERT_FILE`
//! and `SSL_CERT_DIR`) or an explicit PEM CA file. An empty store is always an error: the
//! native loader reports an empty file as "0 certificates, 0 errors" (docs/design.md §2.15).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::core::{Error, Result};

/// A set of trusted CA certificates. Cheap to clone (the roots sit behind an `Arc`).
/// Load it once per context: the system store takes milliseconds to read.
#[derive(Clone)]
pub struct CaStore {
    roots: Arc<RootCertStore>,
    source: String,
    warnings: Arc<Vec<String>>,
}

impl fmt::Debug for CaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaStore")
            .field("source", &self.source)
            .field("anchors", &self.roots.len())
            .field("warnings", &self.warnings.len())
            .finish()
    }
}

impl CaStore {
    /// The system store: `SSL_CERT_FILE` / `SSL_CERT_DIR` when set, else the platform's
    /// bundle and directories. Unreadable parts become [`CaStore::warnings`] as long as
    /// at least one anchor loads; with none it is [`Error::NoTrustAnchors`].
    pub fn system() -> Result<Self> {
        let loaded = rustls_native_certs::load_native_certs();
        let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
        let mut roots = RootCertStore::empty();
        let (added, skipped) = roots.add_parsable_certificates(loaded.certs);
        let mut warnings = errors.clone();
        if skipped > 0 {
            warnings.push(format!(
                "{skipped} system certificates are not usable as anchors"
            ));
        }
        if added == 0 {
            let why = if errors.is_empty() {
                "the system CA store is empty".to_string()
            } else {
                format!(
                    "no system CA certificate could be loaded: {}",
                    errors.join("; ")
                )
            };
            return Err(Error::NoTrustAnchors(why));
        }
        Ok(CaStore {
            roots: Arc::new(roots),
            source: "system CA store".into(),
            warnings: Arc::new(warnings),
        })
    }

    /// The CA certificates of one file: PEM (any number of `CERTIFICATE` blocks; other
    /// blocks are skipped) or a single DER certificate.
    ///
    /// Errors: [`Error::Io`] if the file cannot be read, [`Error::NoTrustAnchors`] if it
    /// holds no certificate, a malformed PEM block, or a certificate that cannot be an
    /// anchor (an explicitly configured file is taken as a whole or not at all).
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Io(format!("cannot read CA file {}: {e}", path.display())))?;
        Self::from_pem_bytes(&bytes, &path.display().to_string())
    }

    /// Like [`CaStore::from_pem_file`] for bytes already in memory; `source` names them
    /// in messages.
    pub fn from_pem_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let certs = parse_cert_file(bytes)
            .map_err(|why| Error::NoTrustAnchors(format!("CA file {source}: {why}")))?;
        Self::from_der_certs(certs, source)
    }

    /// Trust exactly these DER certificates.
    /// Errors: [`Error::NoTrustAnchors`] if the list is empty or one is unusable.
    pub fn from_der_certs(
        certs: impl IntoIterator<Item = CertificateDer<'static>>,
        source: &str,
    ) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                Error::NoTrustAnchors(format!(
                    "{source}: certificate #{} is not usable as a trust anchor: {e}",
                    i + 1
                ))
            })?;
        }
        if roots.is_empty() {
            return Err(Error::NoTrustAnchors(format!("{source}: no certificate")));
        }
        Ok(CaStore {
            roots: Arc::new(roots),
            source: source.to_string(),
            warnings: Arc::new(Vec::new()),
        })
    }

    /// These anchors plus `extra` (the additive CA mode: a CA file or in-memory CAs on top
    /// of the system store). `source` names the result in messages.
    /// Errors: [`Error::NoTrustAnchors`] if one of `extra` cannot be an anchor.
    pub fn with_extra(&self, extra: &[CertificateDer<'static>], source: &str) -> Result<Self> {
        let mut roots = (*self.roots).clone();
        for (i, cert) in extra.iter().enumerate() {
            roots.add(cert.clone()).map_err(|e| {
                Error::NoTrustAnchors(format!(
                    "{source}: certificate #{} is not usable as a trust anchor: {e}",
                    i + 1
                ))
            })?;
        }
        Ok(CaStore {
            roots: Arc::new(roots),
            source: format!("{} + {source}", self.source),
            warnings: self.warnings.clone(),
        })
    }

    /// The anchors, for rustls and webpki.
    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    /// Number of anchors (never 0).
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Always false: an empty store cannot be built. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Where the anchors came from ("system CA store" or the file name).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Problems met while loading that did not make the store unusable.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The CA certificates of PEM (or one DER certificate) held in memory, each checked to be
/// usable as a trust anchor: for `mailsrv_config_add_ca_pem`, which takes them at once.
/// Errors: [`Error::InvalidArg`] with the reason (no certificate, malformed PEM, a
/// certificate that cannot be an anchor).
pub fn parse_anchor_certs(bytes: &[u8], source: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs =
        parse_cert_file(bytes).map_err(|why| Error::InvalidArg(format!("{source}: {why}")))?;
    let mut check = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        check.add(cert.clone()).map_err(|e| {
            Error::InvalidArg(format!(
                "{source}: certificate #{} is not usable as a trust anchor: {e}",
                i + 1
            ))
        })?;
    }
    Ok(certs)
}

/// Reads the certificates out of a PEM or DER file.
fn parse_cert_file(bytes: &[u8]) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    if bytes.first() == Some(&0x30) {
        // Binary: one DER certificate. RootCertStore::add checks it.
        return Ok(vec![CertificateDer::from(bytes.to_vec())]);
    }
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(bytes) {
        match item {
            Ok(c) => certs.push(c),
            Err(e) => return Err(format!("malformed PEM: {e}")),
        }
    }
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `contents` through a temporary file, removed afterwards.
    fn load_tmp(name: &str, contents: &[u8]) -> Result<CaStore> {
        let p = std::env::temp_dir().join(format!("mailsrv-trust-{}-{name}", std::process::id()));
        std::fs::write(&p, contents).unwrap();
        let r = CaStore::from_pem_file(&p);
        let _ = std::fs::remove_file(&p);
        r
    }

    #[test]
    fn missing_file_is_io() {
        let e = CaStore::from_pem_file(Path::new("/nonexistent/mailsrv/ca.pem")).unwrap_err();
        assert!(matches!(e, Error::Io(_)), "{e:?}");
    }

    #[test]
    fn empty_or_certless_file_is_no_anchors() {
        for (name, body) in [
            ("empty.pem", &b""[..]),
            ("text.pem", b"hello\n"),
            (
                "key.pem",
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
        ] {
            let e = load_tmp(name, body).unwrap_err();
            assert!(matches!(e, Error::NoTrustAnchors(_)), "{name}: {e:?}");
        }
    }

    #[test]
    fn garbage_certificate_is_no_anchors() {
        let pem = b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
        let e = load_tmp("garbage.pem", pem).unwrap_err();
        assert!(matches!(e, Error::NoTrustAnchors(_)), "{e:?}");
        let e = load_tmp("garbage.der", b"\x30\x03\x02\x01\x00").unwrap_err();
        assert!(matches!(e, Error::NoTrustAnchors(_)), "{e:?}");
        let e = CaStore::from_der_certs(Vec::new(), "nothing").unwrap_err();
        assert!(matches!(e, Error::NoTrustAnchors(_)), "{e:?}");
    }

    #[test]
    fn system_store_loads_when_present() {
        // The CI image sets SSL_CERT_FILE to the Debian bundle; elsewhere an empty store
        // must be the NoTrustAnchors error, never an empty CaStore.
        match CaStore::system() {
            Ok(s) => {
                assert!(!s.is_empty());
                let c = s.clone();
                assert!(Arc::ptr_eq(c.roots(), s.roots()));
            }
            Err(e) => assert!(matches!(e, Error::NoTrustAnchors(_)), "{e:?}"),
        }
    }
}
