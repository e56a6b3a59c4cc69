//! Entry points shared by the cargo-fuzz targets (fuzz/) and the corpus replay test
//! (tests/fuzz_corpus.rs), so both exercise exactly the same code. Each must return
//! normally for every input: an error is fine, a panic or a hang is a bug.

use super::address::mail_domain;
use super::anchors::AnchorSource;
use super::identity::{MatchOptions, PresentedIds, ReferenceIdentity, match_identity};

/// SAN / SRVName extraction, then matching against fixed references.
pub fn san(data: &[u8]) {
    if let Ok(ids) = PresentedIds::from_der(data) {
        let _ = ids.describe();
        let mut refs = ReferenceIdentity::new();
        let _ = refs.add_srv_id("imaps", "example.com");
        let _ = refs.add_dns_id("mail.example.net");
        let legacy = MatchOptions {
            legacy_cn: true,
            accept_sibling_service: true,
        };
        let _ = match_identity(&refs, &ids, &MatchOptions::default());
        let _ = match_identity(&refs, &ids, &legacy);
    }
}

/// Address parsing: the result is either an error or a normalised, bounded name.
pub fn address(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(domain) = mail_domain(text)
    {
        assert!(domain.len() <= 253 && domain.is_ascii() && !domain.ends_with('.'));
        assert_eq!(
            mail_domain(&domain).as_deref(),
            Ok(domain.as_str()),
            "idempotent"
        );
    }
}

/// Trust anchor parsing.
pub fn anchor(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = AnchorSource::from_text(text);
    }
}
