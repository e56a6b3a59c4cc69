//! DNSSEC trust anchors: the built-in IANA root keys, or a file in DNSKEY or DS form.
//!
//! hickory's anchor parser takes DNSKEY lines only, and only with a class
//! (`. IN DNSKEY ...`); keymgr and many tools write `. DNSKEY ...`. DS anchors are matched here:
//! the DS digest pins the key, so the DNSKEY set may be fetched without validation.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use hickory_resolver::proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS};
use hickory_resolver::proto::dnssec::{Algorithm, TrustAnchors};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::proto::serialize::txt::Parser;

use crate::core::{Error, Result};

/// Where validation starts.
#[derive(Clone)]
pub enum AnchorSource {
    /// hickory's compiled-in IANA root keys.
    BuiltIn,
    /// Keys given directly.
    Keys(Arc<TrustAnchors>),
    /// DS records: the matching DNSKEYs are fetched on first use.
    Ds(Vec<(Name, DS)>),
}

impl AnchorSource {
    /// Reads an anchor file: DNSKEY lines (with or without class and TTL) or DS lines.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::BadTrustAnchor(format!("{}: {e}", path.display())))?;
        Self::from_text(&text)
            .map_err(|e| Error::BadTrustAnchor(format!("{}: {}", path.display(), e.detail())))
    }

    pub fn from_text(text: &str) -> Result<Self> {
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| {
                l.split(';')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect()
            })
            .filter(|t: &Vec<&str>| !t.is_empty())
            .collect();
        if lines.is_empty() {
            return Err(Error::BadTrustAnchor("no trust anchor in the file".into()));
        }
        let all_of = |ty: &str| {
            lines.iter().all(|t| {
                t.iter()
                    .skip(1)
                    .find(|w| is_type(w))
                    .is_some_and(|w| w.eq_ignore_ascii_case(ty))
            })
        };
        if all_of("DNSKEY") {
            parse_dnskeys(&lines)
        } else if all_of("DS") {
            parse_ds(text)
        } else {
            Err(Error::BadTrustAnchor(
                "expected only DNSKEY or only DS records".into(),
            ))
        }
    }
}

fn is_type(word: &str) -> bool {
    word.eq_ignore_ascii_case("DNSKEY") || word.eq_ignore_ascii_case("DS")
}

/// Rewrites each line as `OWNER IN DNSKEY ...` (dropping TTL and class) for hickory's parser.
fn parse_dnskeys(lines: &[Vec<&str>]) -> Result<AnchorSource> {
    let mut norm = String::new();
    for t in lines {
        let at = t
            .iter()
            .position(|w| w.eq_ignore_ascii_case("DNSKEY"))
            .unwrap_or(0);
        // hickory asserts (in debug builds) that the algorithm is one it implements: check
        // first, so a key we cannot use is a clear error (found by the `anchor` fuzz target).
        match t.get(at + 3).and_then(|a| a.parse::<u8>().ok()) {
            Some(a) if Algorithm::from_u8(a).is_supported() => {}
            Some(a) => {
                return Err(Error::BadTrustAnchor(format!(
                    "DNSKEY algorithm {a} is not supported"
                )));
            }
            None => return Err(Error::BadTrustAnchor("malformed DNSKEY anchor".into())),
        }
        norm.push_str(&format!("{} IN DNSKEY {}\n", t[0], t[at + 1..].join(" ")));
    }
    let anchors = TrustAnchors::from_str(&norm)
        .map_err(|e| Error::BadTrustAnchor(format!("bad DNSKEY anchor: {e}")))?;
    if anchors.is_empty() {
        return Err(Error::BadTrustAnchor("no usable DNSKEY anchor".into()));
    }
    Ok(AnchorSource::Keys(Arc::new(anchors)))
}

fn parse_ds(text: &str) -> Result<AnchorSource> {
    let (_, sets) = Parser::new(format!("$TTL 3600\n{text}"), None, Some(Name::root()))
        .parse()
        .map_err(|e| Error::BadTrustAnchor(format!("bad DS anchor: {e}")))?;
    let mut out = Vec::new();
    for set in sets.values().filter(|s| s.record_type() == RecordType::DS) {
        for r in set.records_without_rrsigs() {
            if let RData::DNSSEC(DNSSECRData::DS(ds)) = &r.data {
                out.push((r.name.clone(), ds.clone()));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::BadTrustAnchor("no DS record in the file".into()));
    }
    Ok(AnchorSource::Ds(out))
}

/// Keeps the DNSKEYs of `owner` that one of the DS anchors names.
pub fn keys_matching_ds(ds: &[(Name, DS)], owner: &Name, keys: &[DNSKEY]) -> TrustAnchors {
    let mut anchors = TrustAnchors::empty();
    for key in keys {
        let covered = ds
            .iter()
            .any(|(n, d)| n == owner && d.covers(owner, key).unwrap_or(false));
        if covered {
            anchors.insert_with_name(key.public_key(), owner.into());
        }
    }
    anchors
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU=";

    #[test]
    fn dnskey_without_class_is_accepted() {
        for line in [
            format!(". DNSKEY 257 3 8 {KEY}"),
            format!(". 300 DNSKEY 257 3 8 {KEY}"),
            format!(". IN DNSKEY 257 3 8 {KEY}"),
            format!("; comment\n. 172800 IN DNSKEY 257 3 8 {KEY} ; trailing\n"),
        ] {
            match AnchorSource::from_text(&line) {
                Ok(AnchorSource::Keys(k)) => assert_eq!(k.len(), 1, "{line}"),
                _ => panic!("{line} rejected"),
            }
        }
    }

    #[test]
    fn ds_form_is_parsed() {
        let text =
            ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D";
        match AnchorSource::from_text(text) {
            Ok(AnchorSource::Ds(v)) => assert_eq!(v.len(), 1),
            _ => panic!("DS anchor rejected"),
        }
    }

    #[test]
    fn garbage_is_a_bad_anchor() {
        let unsupported = format!(". DNSKEY 257 3 11 {KEY}");
        for bad in [
            "",
            "; only a comment",
            ". IN A 127.0.0.1",
            ". IN DNSKEY 257 3 8 !!!",
            ". IN DNSKEY 257",
            &unsupported,
        ] {
            assert!(
                matches!(AnchorSource::from_text(bad), Err(Error::BadTrustAnchor(_))),
                "{bad:?}"
            );
        }
    }
}
