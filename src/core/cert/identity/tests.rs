//! The identity tests (docs/conformance.md, groups D–H), over all three parts.

use super::reference::DnsName;
use super::*;
use x509_parser::asn1_rs::FromDer as _;
use x509_parser::extensions::GeneralName;

use crate::core::Error;
use crate::core::service::Service;

fn dns_ref(n: &str) -> ReferenceIdentity {
    ReferenceIdentity::for_dns(n).unwrap()
}
fn srv_ref(s: &str, d: &str) -> ReferenceIdentity {
    ReferenceIdentity::for_srv(s, d).unwrap()
}
fn dns_pres(names: &[&str]) -> PresentedIds {
    let mut p = PresentedIds::new();
    for n in names {
        p.add_dns_san(n);
    }
    p
}
fn srv_pres(names: &[&str]) -> PresentedIds {
    let mut p = PresentedIds::new();
    for n in names {
        p.add_srv_san(n);
    }
    p
}
fn strict() -> MatchOptions {
    MatchOptions::strict()
}
fn matches(r: &ReferenceIdentity, p: &PresentedIds) -> bool {
    match_identity(r, p, &strict()).is_ok()
}
fn mismatch(r: &ReferenceIdentity, p: &PresentedIds) -> bool {
    matches!(match_identity(r, p, &strict()), Err(Error::NameMismatch(_)))
}
/// DER of an SRVName otherName value: `[0] EXPLICIT <tag> <text>`.
fn srv_der(tag: u8, text: &[u8]) -> Vec<u8> {
    let mut inner = vec![tag, text.len() as u8];
    inner.extend_from_slice(text);
    let mut v = vec![0xa0, inner.len() as u8];
    v.extend(inner);
    v
}

// ---- D. reference identifiers

#[test]
fn t_ref_01_manual_host_and_domain() {
    let mut r = ReferenceIdentity::new();
    r.add_host("mail.example.net").unwrap();
    r.add_dns_id("example.org").unwrap();
    assert_eq!(
        r.to_string(),
        "[DNS-ID mail.example.net, DNS-ID example.org]"
    );
}

#[test]
fn t_ref_02_03_probe_references() {
    let mut r = ReferenceIdentity::new();
    r.add_srv_id("imaps", "example.org").unwrap();
    r.add_dns_id("example.org").unwrap();
    assert_eq!(r.len(), 2);
    let target = dns_pres(&["mail.host.net"]);
    assert!(mismatch(&r, &target), "insecure target is not a reference");
    // T-REF-03: with a secure SRV the caller adds the target.
    r.add_dns_id("mail.host.net").unwrap();
    assert!(matches(&r, &target));
}

#[test]
fn t_ref_04_no_cname_canonicalisation() {
    let r = dns_ref("imap.example.com");
    assert!(mismatch(&r, &dns_pres(&["imap.cdn.net"])));
}

#[test]
fn t_ref_05_submissions_strict_unless_flag() {
    let r = srv_ref("submissions", "example.org");
    assert_eq!(r.to_string(), "[SRV-ID _submissions.example.org]");
    let p = srv_pres(&["_submission.example.org"]);
    assert!(mismatch(&r, &p));
    let sib = MatchOptions {
        accept_sibling_service: true,
        ..MatchOptions::default()
    };
    let m = match_identity(&r, &p, &sib).unwrap();
    assert_eq!(m.kind, MatchKind::SiblingService);
    assert_eq!(
        m.to_string(),
        "SRV-ID _submissions.example.org via SRV-ID _submission.example.org (sibling service)"
    );
    // and the other siblings, both directions
    for (a, b) in [
        ("imap", "imaps"),
        ("pop3s", "pop3"),
        ("submission", "submissions"),
    ] {
        let r = srv_ref(a, "example.org");
        let p = srv_pres(&[&format!("_{b}.example.org")]);
        assert!(mismatch(&r, &p));
        assert!(match_identity(&r, &p, &sib).is_ok());
    }
    // the flag never crosses protocols
    let r = srv_ref("imaps", "example.org");
    assert!(match_identity(&r, &srv_pres(&["_pop3s.example.org"]), &sib).is_err());
}

#[test]
fn t_ref_07_uri_id_never() {
    let mut p = PresentedIds::new();
    p.add_uri_san("imaps://example.org");
    assert_eq!(p.sans().len(), 1);
    assert!(mismatch(&dns_ref("example.org"), &p));
    assert!(mismatch(&srv_ref("imaps", "example.org"), &p));
}

#[test]
fn t_ref_08_ip_reference() {
    let r = ReferenceId::from_host("192.0.2.10").unwrap();
    assert_eq!(r, ReferenceId::IpId("192.0.2.10".parse().unwrap()));
    assert!(ReferenceId::dns("192.0.2.10").is_err());
    let mut refs = ReferenceIdentity::new();
    refs.push(r);
    // a dNSName spelling the address does not match
    assert!(mismatch(&refs, &dns_pres(&["192.0.2.10"])));
    let mut p = PresentedIds::new();
    p.add_ip_san(&[192, 0, 2, 10]);
    assert_eq!(
        match_identity(&refs, &p, &strict()).unwrap().to_string(),
        "IP-ID 192.0.2.10"
    );
    let mut p = PresentedIds::new();
    p.add_ip_san(&[192, 0, 2, 11]);
    assert!(mismatch(&refs, &p));
    // IPv6, bracketed
    let mut refs = ReferenceIdentity::new();
    refs.add_host("[2001:db8::1]").unwrap();
    let mut p = PresentedIds::new();
    let mut v6 = [0u8; 16];
    v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    v6[15] = 1;
    p.add_ip_san(&v6);
    assert!(matches(&refs, &p));
    // an IP-ID never matches a DNS-ID reference and vice versa
    assert!(mismatch(&dns_ref("example.com"), &p));
}

/// T-REF-06: the reference list is built from the caller's input alone; presenting any
/// certificate leaves it unchanged, and rebuilding it gives the same list.
#[test]
fn t_ref_06_reference_list_independent_of_certificate() {
    fn build() -> ReferenceIdentity {
        let mut r = ReferenceIdentity::new();
        r.add_srv_id("_IMAPS", "Example.COM.").unwrap();
        r.add_dns_id("example.com").unwrap();
        r.add_host("mail.provider.net").unwrap();
        r
    }
    let before = build();
    let snapshot = before.clone();
    const POOL: &[&str] = &[
        "example.com",
        "*.example.com",
        "mail.provider.net",
        "*.provider.net",
        "evil.org",
        "*.com",
        "mail..example.com",
        "xn--bcher-kva.example",
        "EXAMPLE.COM",
        "m\u{e4}il.example.net",
    ];
    const SRV_POOL: &[&str] = &[
        "_imaps.example.com",
        "_submissions.example.com",
        "_imaps.mail.provider.net",
        "_imap.example.com",
        "imaps.example.com",
        "_imaps.*.com",
    ];
    // A fixed LCG: deterministic, no crates.
    let mut state: u64 = 0x5eed_1234_abcd_0001;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n
    };
    let mut outcomes = std::collections::HashSet::new();
    for _ in 0..2000 {
        let mut p = PresentedIds::new();
        for _ in 0..next(4) {
            p.add_dns_san(POOL[next(POOL.len())]);
        }
        for _ in 0..next(3) {
            p.add_srv_san(SRV_POOL[next(SRV_POOL.len())]);
        }
        if next(2) == 0 {
            p.add_subject_cn(POOL[next(POOL.len())]);
        }
        let opts = MatchOptions {
            accept_sibling_service: next(2) == 0,
            legacy_cn: next(2) == 0,
        };
        let first = match_identity(&before, &p, &opts);
        // pure: same answer again
        assert_eq!(first, match_identity(&before, &p, &opts));
        outcomes.insert(first.is_ok());
        // unchanged, and a fresh build (after seeing the cert) is identical
        assert_eq!(before, snapshot);
        assert_eq!(build(), snapshot);
    }
    assert_eq!(
        outcomes.len(),
        2,
        "generator must produce matches and mismatches"
    );
}

// ---- E. DNS-ID matching

#[test]
fn t_dns_01_02_exact_and_case() {
    assert!(matches(
        &dns_ref("mail.example.com"),
        &dns_pres(&["mail.example.com"])
    ));
    assert!(matches(
        &dns_ref("MAIL.Example.COM"),
        &dns_pres(&["mail.example.com"])
    ));
    assert!(matches(
        &dns_ref("mail.example.com"),
        &dns_pres(&["MAIL.EXAMPLE.com"])
    ));
}

#[test]
fn t_dns_03_to_05_wildcard_one_label() {
    let p = dns_pres(&["*.example.com"]);
    let m = match_identity(&dns_ref("mail.example.com"), &p, &strict()).unwrap();
    assert_eq!(m.kind, MatchKind::Wildcard);
    assert_eq!(
        m.to_string(),
        "DNS-ID mail.example.com via DNS-ID *.example.com"
    );
    assert!(mismatch(&dns_ref("example.com"), &p)); // T-DNS-04
    assert!(mismatch(&dns_ref("a.b.example.com"), &p)); // T-DNS-05
}

#[test]
fn t_dns_06_partial_wildcards_ignored() {
    for w in ["f*o.example.com", "*oo.example.com", "foo*.example.com"] {
        let p = dns_pres(&[w]);
        assert!(p.sans().is_empty(), "{w} must be ignored");
        assert_eq!(p.ignored().len(), 1);
        assert!(mismatch(&dns_ref("foo.example.com"), &p));
    }
}

#[test]
fn t_dns_07_08_non_left_most_wildcards() {
    assert!(mismatch(
        &dns_ref("mail.example.com"),
        &dns_pres(&["mail.*.com"])
    ));
    assert!(mismatch(
        &dns_ref("a.b.example.com"),
        &dns_pres(&["*.*.example.com"])
    ));
    assert!(
        dns_pres(&["mail.*.com", "*.*.example.com"])
            .sans()
            .is_empty()
    );
}

#[test]
fn t_dns_09_no_wildcard_over_tld() {
    assert!(mismatch(&dns_ref("example.com"), &dns_pres(&["*.com"])));
}

#[test]
fn t_dns_09_no_wildcard_over_a_public_suffix() {
    for (reference, wildcard) in [
        ("example.co.uk", "*.co.uk"),                      // ICANN section
        ("bucket.s3.amazonaws.com", "*.s3.amazonaws.com"), // PRIVATE section
        ("evil.github.io", "*.github.io"),                 // PRIVATE section
        ("foo.bar.ck", "*.bar.ck"),                        // wildcard rule `*.ck`
    ] {
        assert!(
            mismatch(&dns_ref(reference), &dns_pres(&[wildcard])),
            "{wildcard}"
        );
    }
    // Registrable domains under those suffixes still take wildcards.
    for (reference, wildcard) in [
        ("mail.example.co.uk", "*.example.co.uk"),
        ("a.bucket.s3.amazonaws.com", "*.bucket.s3.amazonaws.com"),
        ("mail.example.net", "*.example.net"),
        ("mail.hosted.test", "*.hosted.test"), // unknown TLD: only `test` is a suffix
    ] {
        assert!(
            matches(&dns_ref(reference), &dns_pres(&[wildcard])),
            "{wildcard}"
        );
    }
}

#[test]
fn t_dns_10_11_idn_reference() {
    let r = dns_ref("bücher.example");
    assert_eq!(
        r.ids()[0],
        ReferenceId::DnsId(DnsName("xn--bcher-kva.example".into()))
    );
    assert!(matches(&r, &dns_pres(&["xn--bcher-kva.example"])));
    assert!(matches(
        &dns_ref("mail.bücher.example"),
        &dns_pres(&["*.xn--bcher-kva.example"])
    ));
}

#[test]
fn t_dns_12_wildcard_inside_a_label() {
    let p = dns_pres(&["xn--bcher*.example"]);
    assert!(p.sans().is_empty());
    assert!(mismatch(&dns_ref("xn--bcher-kva.example"), &p));
}

#[test]
fn t_dns_13_reference_trailing_dot() {
    assert_eq!(
        DnsName::new("mail.example.com.").unwrap().as_str(),
        "mail.example.com"
    );
    assert!(matches(
        &dns_ref("mail.example.com."),
        &dns_pres(&["mail.example.com"])
    ));
    assert!(
        DnsName::new("mail.example.com..").is_err(),
        "only one dot is stripped"
    );
}

#[test]
fn t_dns_14_presented_trailing_dot_ignored() {
    let p = dns_pres(&["mail.example.com."]);
    assert!(p.sans().is_empty());
    assert!(mismatch(&dns_ref("mail.example.com"), &p));
}

#[test]
fn t_dns_15_any_san_suffices() {
    let p = dns_pres(&["other.example.com", "mail.example.com"]);
    assert!(matches(&dns_ref("mail.example.com"), &p));
}

#[test]
fn t_dns_16_empty_labels_ignored() {
    let p = dns_pres(&["mail..example.com", "", ".example.com"]);
    assert!(p.sans().is_empty());
    assert_eq!(p.ignored().len(), 3);
    assert!(mismatch(&dns_ref("mail.example.com"), &p));
}

#[test]
fn t_dns_17_raw_utf8_presented_ignored() {
    let p = dns_pres(&["bücher.example"]);
    assert!(p.sans().is_empty());
    assert!(mismatch(&dns_ref("bücher.example"), &p));
}

#[test]
fn t_dns_18_bare_wildcard() {
    let p = dns_pres(&["*"]);
    assert!(p.sans().is_empty());
    assert!(mismatch(&dns_ref("mail.example.com"), &p));
}

#[test]
fn t_dns_19_a_labels_case_insensitive() {
    assert!(matches(
        &dns_ref("xn--bcher-kva.example"),
        &dns_pres(&["XN--BCHER-KVA.EXAMPLE"])
    ));
}

#[test]
fn presented_dns_nul_ignored() {
    // NUL-in-SAN (the certificate trick against C string APIs) never matches.
    let p = dns_pres(&["mail.example.net\0.evil.org"]);
    assert!(p.sans().is_empty());
    assert!(p.ignored()[0].contains("NUL"));
    assert!(mismatch(&dns_ref("mail.example.net"), &p));
}

// ---- F. SRV-IDs

#[test]
fn t_srvid_01_03_match_and_case() {
    let r = srv_ref("imaps", "example.com");
    let m = match_identity(&r, &srv_pres(&["_imaps.example.com"]), &strict()).unwrap();
    assert_eq!(m.to_string(), "SRV-ID _imaps.example.com");
    assert!(m.is_srv_id());
    assert!(matches(&r, &srv_pres(&["_IMAPS.EXAMPLE.COM"]))); // T-SRVID-03
    assert!(matches(
        &srv_ref("_IMAPS", "EXAMPLE.com."),
        &srv_pres(&["_imaps.example.com"])
    ));
}

#[test]
fn t_srvid_02_04_strict_service() {
    assert!(mismatch(
        &srv_ref("submissions", "example.com"),
        &srv_pres(&["_imaps.example.com"])
    ));
    assert!(mismatch(
        &srv_ref("imap", "example.com"),
        &srv_pres(&["_imaps.example.com"])
    ));
}

#[test]
fn t_srvid_05_other_domain() {
    assert!(mismatch(
        &srv_ref("imaps", "example.com"),
        &srv_pres(&["_imaps.mail.example.com"])
    ));
}

#[test]
fn t_srvid_06_07_08_invalid_forms_ignored() {
    let p = srv_pres(&[
        "_imaps._tcp.example.com",
        "imaps.example.com",
        "_imaps.*.com",
        "_imaps.*.example.com",
        "_.example.com",
        "_imaps",
        "_imaps.example.com.",
    ]);
    assert!(p.sans().is_empty(), "{:?}", p.sans());
    assert_eq!(p.ignored().len(), 7);
    assert!(mismatch(&srv_ref("imaps", "example.com"), &p));
}

#[test]
fn t_srvid_09_utf8string_ignored() {
    let mut p = PresentedIds::new();
    p.add_srv_san_der(&srv_der(0x0c, b"_imaps.example.com"))
        .unwrap();
    assert!(p.sans().is_empty());
    assert!(p.ignored()[0].contains("UTF8String"), "{:?}", p.ignored());
    assert!(mismatch(&srv_ref("imaps", "example.com"), &p));
    // but it still counts as an SRV SAN for the CN rule
    assert!(!p.cn_eligible());
}

#[test]
fn t_srvid_10_idn_domain() {
    let r = srv_ref("imaps", "bücher.example");
    assert_eq!(r.to_string(), "[SRV-ID _imaps.xn--bcher-kva.example]");
    assert!(matches(&r, &srv_pres(&["_imaps.xn--bcher-kva.example"])));
}

#[test]
fn t_srvid_11_xmpp_other_name_is_not_srv() {
    // XmppAddr otherName: not an SRV-ID; handled in add_general_name.
    let oid = x509_parser::der_parser::oid!(1.3.6.1.5.5.7.8.5);
    let value = srv_der(0x0c, b"_imaps.example.com");
    let gn = GeneralName::OtherName(oid, &value);
    let mut p = PresentedIds::new();
    p.add_general_name(&gn).unwrap();
    assert!(p.sans().is_empty());
    assert!(p.ignored()[0].contains("1.3.6.1.5.5.7.8.5"));
    assert!(mismatch(&srv_ref("imaps", "example.com"), &p));
}

#[test]
fn t_srvid_12_parse_general_name_der() {
    let der: &[u8] = &[
        0xa0, 0x20, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07, 0xa0, 0x14, 0x16,
        0x12, 0x5f, 0x69, 0x6d, 0x61, 0x70, 0x73, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65,
        0x2e, 0x63, 0x6f, 0x6d,
    ];
    let (rest, gn) = GeneralName::from_der(der).unwrap();
    assert!(rest.is_empty());
    let mut p = PresentedIds::new();
    p.add_general_name(&gn).unwrap();
    assert_eq!(
        p.sans(),
        &[PresentedId::SrvId {
            service: "imaps".into(),
            domain: "example.com".into()
        }]
    );
}

#[test]
fn t_srvid_13_srv_id_answers_only_srv_references() {
    assert!(mismatch(
        &dns_ref("example.com"),
        &srv_pres(&["_imaps.example.com"])
    ));
}

#[test]
fn t_srvid_14_no_cross_combination() {
    let mut r = ReferenceIdentity::new();
    r.add_srv_id("imaps", "example.org").unwrap();
    r.add_dns_id("mail.host.net").unwrap();
    assert!(mismatch(&r, &srv_pres(&["_imaps.mail.host.net"])));
}

#[test]
fn t_srvid_15_malformed_encoding_rejects_certificate() {
    let bad: Vec<Vec<u8>> = vec![
        srv_der(0x16, b"_imaps.example.com\0.evil.org"), // embedded NUL
        srv_der(0x16, b"_imaps.ex\xe4mple.com"),         // non-ASCII
        srv_der(0x16, b"_imaps.example.com\n"),          // control
        srv_der(0x16, b""),                              // SIZE (1..MAX)
        {
            let mut v = srv_der(0x16, b"_imaps.example.com");
            v[3] += 1; // inner length overruns the outer
            v
        },
        {
            let mut v = srv_der(0x16, b"_imaps.example.com");
            v.push(0); // trailing byte
            v
        },
        {
            let mut v = srv_der(0x16, b"_imaps.example.com");
            v[0] = 0x80; // [0] IMPLICIT (primitive) instead of EXPLICIT
            v
        },
        vec![],
        vec![0xa0],
    ];
    for v in bad {
        let mut p = PresentedIds::new();
        let e = p.add_srv_san_der(&v);
        assert!(
            matches!(e, Err(Error::BadCertificate(_))),
            "{v:02x?}: {e:?}"
        );
    }
    // the well-formed one is fine
    let mut p = PresentedIds::new();
    p.add_srv_san_der(&srv_der(0x16, b"_imaps.example.com"))
        .unwrap();
    assert!(matches(&srv_ref("imaps", "example.com"), &p));
}

#[test]
fn srv_wildcard_reference_impossible() {
    assert!(ReferenceId::srv("imaps", "*.example.com").is_err());
}

// ---- G. CN-IDs

fn legacy() -> MatchOptions {
    MatchOptions {
        legacy_cn: true,
        ..MatchOptions::default()
    }
}

#[test]
fn t_cn_01_cn_ignored_when_san_present() {
    let mut p = dns_pres(&["a.example.com"]);
    p.add_subject_cn("mail.example.com");
    assert!(match_identity(&dns_ref("mail.example.com"), &p, &legacy()).is_err());
}

#[test]
fn t_cn_02_cn_only_with_legacy_flag() {
    let mut p = PresentedIds::new();
    p.add_subject_cn("mail.example.com");
    let r = dns_ref("mail.example.com");
    assert!(mismatch(&r, &p));
    let m = match_identity(&r, &p, &legacy()).unwrap();
    assert!(m.is_legacy_cn());
    assert_eq!(
        m.to_string(),
        "DNS-ID mail.example.com via CN-ID mail.example.com (legacy)"
    );
    // a CN never answers an SRV-ID reference
    assert!(match_identity(&srv_ref("imaps", "mail.example.com"), &p, &legacy()).is_err());
}

#[test]
fn t_cn_03_srv_id_disables_cn() {
    let mut p = srv_pres(&["_imaps.example.com"]);
    p.add_subject_cn("example.com");
    assert!(match_identity(&dns_ref("example.com"), &p, &legacy()).is_err());
}

#[test]
fn t_cn_04_non_name_cn_never() {
    let mut p = PresentedIds::new();
    p.add_subject_cn("Example Mail Server");
    assert!(p.cn_ids().is_empty());
    assert!(match_identity(&dns_ref("example.com"), &p, &legacy()).is_err());
}

#[test]
fn t_cn_05_probe_never_uses_cn() {
    let mut p = PresentedIds::new();
    p.add_subject_cn("mail.example.com");
    let probe = legacy().for_probe();
    assert!(!probe.legacy_cn);
    assert!(match_identity(&dns_ref("mail.example.com"), &p, &probe).is_err());
}

// ---- H. SNI

#[test]
fn t_sni_01_02_05_names() {
    assert_eq!(
        sni_for_host("mail.example.com").unwrap().as_deref(),
        Some("mail.example.com")
    );
    assert_eq!(
        sni_for_host("Mail.Example.COM.").unwrap().as_deref(),
        Some("mail.example.com")
    );
    assert_eq!(
        sni_for_host("bücher.example").unwrap().as_deref(),
        Some("xn--bcher-kva.example")
    );
    assert_eq!(
        sni_for_host("BÜCHER.example").unwrap().as_deref(),
        Some("xn--bcher-kva.example")
    );
}

#[test]
fn t_sni_03_04_ip_literals() {
    for h in ["192.0.2.1", "2001:db8::1", "[2001:db8::1]", "::1", "[::1]"] {
        assert_eq!(sni_for_host(h).unwrap(), None, "{h}");
    }
    assert!(sni_for_host("[mail.example.com]").is_err());
    assert!(sni_for_host("[192.0.2.1]").is_err());
}

#[test]
fn t_sni_08_srv_form_rejected() {
    assert!(matches!(
        sni_for_host("_imaps.example.com"),
        Err(Error::InvalidArg(_))
    ));
    assert!(ReferenceId::dns("_imaps.example.com").is_err());
}

#[test]
fn t_sni_10_bad_lengths() {
    assert!(sni_for_host("").is_err());
    assert!(sni_for_host(".").is_err());
    let long_label = format!("{}.example.com", "a".repeat(64));
    assert!(sni_for_host(&long_label).is_err());
    let ok_label = format!("{}.example.com", "a".repeat(63));
    assert!(sni_for_host(&ok_label).unwrap().is_some());
    // 4 × 63 + 3 dots = 255 > 253
    let long_name = vec!["a".repeat(63); 4].join(".");
    assert!(sni_for_host(&long_name).is_err());
    let name_253 = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(61));
    assert_eq!(name_253.len(), 253);
    assert!(sni_for_host(&name_253).unwrap().is_some());
    assert!(sni_for_host(&"a".repeat(5000)).is_err());
}

#[test]
fn reference_name_validation() {
    for bad in [
        "a..b",
        "-a.example",
        "a-.example",
        "a b.example",
        "*.example.com",
        "mail.example.com/x",
        "127.1",
        "mail.123",
        "xn--zz.example",
        "a\0b.example",
    ] {
        assert!(DnsName::new(bad).is_err(), "{bad:?} must be rejected");
    }
    assert_eq!(DnsName::new("localhost").unwrap().as_str(), "localhost");
    assert_eq!(
        DnsName::new("r3---sn-abc.example").unwrap().as_str(),
        "r3---sn-abc.example"
    );
}

#[test]
fn service_names() {
    for (s, want) in [
        ("imaps", Service::Imaps),
        ("_IMAP", Service::Imap),
        ("Pop3S", Service::Pop3s),
        ("_submission", Service::Submission),
    ] {
        assert_eq!(parse_service(s).unwrap(), want);
    }
    for s in ["sieve", "xmpp-client", "", "_", "__imaps", "imaps."] {
        assert!(parse_service(s).is_err(), "{s:?}");
    }
}

#[test]
fn hostile_text_is_escaped_in_details() {
    let mut p = dns_pres(&["evil\u{1b}[31m.example"]);
    p.add_uri_san("imaps://x\ny");
    let e = match_identity(&dns_ref("mail.example.net"), &p, &strict()).unwrap_err();
    let d = e.detail();
    assert!(!d.contains('\u{1b}') && !d.contains('\n'), "{d}");
}

#[test]
fn mismatch_detail_lists_both_sides() {
    let e = match_identity(
        &srv_ref("imaps", "example.com"),
        &dns_pres(&["mail.example.net", "bad..name"]),
        &strict(),
    )
    .unwrap_err();
    let d = e.detail();
    assert!(d.contains("SRV-ID _imaps.example.com"), "{d}");
    assert!(d.contains("DNS-ID mail.example.net"), "{d}");
    assert!(d.contains("ignored dNSName \"bad..name\""), "{d}");
}

#[test]
fn restrict_names_reports_name_constraint() {
    let mut p = srv_pres(&["_imaps.example.com", "_imaps.example.net"]);
    p.restrict_names(|d| (d != "example.net").then(|| format!("{d} outside example.net")));
    assert_eq!(p.constrained().len(), 1);
    let e = match_identity(&srv_ref("imaps", "example.com"), &p, &strict()).unwrap_err();
    assert!(matches!(e, Error::NameConstraint(_)), "{e:?}");
    assert!(matches(&srv_ref("imaps", "example.net"), &p));
    // nothing that would have matched: a plain mismatch
    let e = match_identity(&srv_ref("pop3s", "example.com"), &p, &strict()).unwrap_err();
    assert!(matches!(e, Error::NameMismatch(_)));
}

#[test]
fn empty_reference_never_matches() {
    let r = ReferenceIdentity::new();
    assert!(r.is_empty());
    assert!(mismatch(&r, &dns_pres(&["mail.example.com"])));
}

#[test]
fn garbage_der_is_an_error_not_a_panic() {
    for bytes in [&b""[..], b"\x30", b"\x30\x03\x02\x01", &[0xff; 64]] {
        assert!(matches!(
            PresentedIds::from_der(bytes),
            Err(Error::BadCertificate(_))
        ));
    }
}
