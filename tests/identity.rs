//! Certificate identity with real certificates: the testbed's test CA (`testbed/certs.sh`,
//! or `MAILSRV_TEST_CERTS`) plus a small extra PKI made here with the openssl CLI for the
//! cases the testbed does not cover (EKU, name-constraint violations, a constrained root).
//! Test names and comments cite the T-ids of docs/conformance.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mailsrv::core::Error;
use mailsrv::core::cert::ca_store::CaStore;
use mailsrv::core::cert::identity::{
    MatchKind, MatchOptions, PresentedId, PresentedIds, ReferenceIdentity,
};
use mailsrv::core::cert::verifier::{
    CertVerdict, MailVerifier, check_chain, client_config, from_rustls_error, verify_cert,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

// ------------------------------------------------------------------ fixtures

const TESTBED_NAMES: &[&str] = &[
    "dnsid-mail-example-net",
    "srvid-imaps-example-com",
    "srvid-multi-example-com",
    "dnsid-example-com",
    "wildcard-example-net",
    "cn-only",
    "expired",
    "not-yet-valid",
    "wrong-name",
    "untrusted",
    "srvid-utf8",
    "nul-in-san",
    "srvid-nul",
    "idn-srvid",
    "nc-srvid-outside",
    "nc-dns-inside",
    "selfsigned",
    "rsa-1024-mail-example-net",
    "rsa-2048-mail-example-net",
    "dsa-mail-example-net",
    "wildcard-co-uk",
    "wildcard-s3-amazonaws-com",
];

fn complete(dir: &Path, names: &[&str]) -> bool {
    dir.join("ca.crt").is_file() && names.iter().all(|n| dir.join(format!("{n}.pem")).is_file())
}

/// A per-process scratch directory under cargo's target tmp dir (per process, so that
/// concurrent test runs never write into each other's files). Leftovers of earlier runs
/// older than an hour are removed.
fn scratch(name: &str) -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(entries) = std::fs::read_dir(base) {
        for e in entries.flatten() {
            let stale = e
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
                && e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(3600));
            if stale {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let d = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// The testbed certificates: `MAILSRV_TEST_CERTS` if set, else `testbed/certs.sh` into a
/// scratch directory, once per test binary.
fn certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os("MAILSRV_TEST_CERTS") {
            Some(d) => PathBuf::from(d),
            None => scratch("identity-certs"),
        };
        if !complete(&dir, TESTBED_NAMES) {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/certs.sh");
            let out = Command::new("bash")
                .arg(&script)
                .arg(&dir)
                .output()
                .expect("run testbed/certs.sh");
            assert!(
                out.status.success(),
                "testbed/certs.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            complete(&dir, TESTBED_NAMES),
            "certificates missing in {dir:?}"
        );
        dir
    })
}

const EXTRA_SCRIPT: &str = r#"
set -euo pipefail
cd "$1"
cat >x.cnf <<'EOF'
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ nc_root ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
nameConstraints = critical, permitted;DNS:example.net
[ nc ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
nameConstraints = critical, permitted;DNS:example.net
[ eku_client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:mail.example.net
[ dns_outside ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:mail.example.com
[ no_san ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
[ srv_com ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_imaps.example.com
[ dns_a ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:a.example.com
[ srv_net ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_imaps.example.net
EOF
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
root() {  # NAME SUBJECT EXT
    key "$1"
    openssl req -x509 -new -key "$1.key" -subj "$2" -config x.cnf -extensions "$3" \
        -days 3650 -out "$1.crt" 2>/dev/null
}
leaf() {  # NAME SUBJECT ISSUER EXT
    key "$1"
    openssl req -new -key "$1.key" -subj "$2" -config x.cnf -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial \
        -days 365 -extfile x.cnf -extensions "$4" -out "$1.crt" 2>/dev/null
}
root extra-ca "/CN=Extra Test CA" ca
root nc-root "/CN=NC Root" nc_root
leaf nc-int "/CN=Extra NC Intermediate" extra-ca nc
leaf eku-client "/CN=client only" extra-ca eku_client
leaf nc-dns-outside "/CN=NC DNS-ID outside" nc-int dns_outside
leaf nc-cn-outside "/CN=mail.example.com" nc-int no_san
leaf nc-cn-inside "/CN=mail.example.net" nc-int no_san
leaf san-dns-with-cn "/CN=mail.example.com" extra-ca dns_a
leaf san-srv-with-cn "/CN=example.com" extra-ca srv_com
leaf nc-root-srv-com "/CN=NC root SRV com" nc-root srv_com
leaf nc-root-srv-net "/CN=NC root SRV net" nc-root srv_net
"#;

/// Extra certificates made here with the openssl CLI (once per test binary).
fn extra() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("identity-extra");
        let out = Command::new("bash")
            .arg("-c")
            .arg(EXTRA_SCRIPT)
            .arg("extra")
            .arg(&dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "extra PKI failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn read_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Leaf + chain of a testbed certificate (NAME.pem is key + leaf + issuers).
fn chain(name: &str) -> Vec<CertificateDer<'static>> {
    let c = read_certs(&certs().join(format!("{name}.pem")));
    assert!(!c.is_empty(), "{name}.pem holds no certificate");
    c
}

fn test_ca() -> CaStore {
    CaStore::from_pem_file(&certs().join("ca.crt")).expect("test CA")
}

fn extra_chain(names: &[&str]) -> Vec<CertificateDer<'static>> {
    names
        .iter()
        .flat_map(|n| read_certs(&extra().join(format!("{n}.crt"))))
        .collect()
}

fn extra_ca(name: &str) -> CaStore {
    CaStore::from_pem_file(&extra().join(format!("{name}.crt"))).expect("extra CA")
}

fn dns(name: &str) -> ReferenceIdentity {
    ReferenceIdentity::for_dns(name).unwrap()
}

fn srv(service: &str, domain: &str) -> ReferenceIdentity {
    ReferenceIdentity::for_srv(service, domain).unwrap()
}

fn strict() -> MatchOptions {
    MatchOptions::strict()
}

fn legacy() -> MatchOptions {
    MatchOptions {
        legacy_cn: true,
        ..MatchOptions::default()
    }
}

fn check(name: &str, refs: &ReferenceIdentity, opts: MatchOptions) -> Result<CertVerdict, Error> {
    verify_cert(&test_ca(), &chain(name), refs, &opts, UnixTime::now())
}

fn ok(name: &str, refs: &ReferenceIdentity, opts: MatchOptions) -> CertVerdict {
    check(name, refs, opts).unwrap_or_else(|e| panic!("{name} vs {refs}: {e:?}"))
}

#[track_caller]
fn assert_variant(r: Result<CertVerdict, Error>, want: fn(&Error) -> bool, what: &str) {
    match r {
        Ok(v) => panic!("{what}: expected an error, matched {}", v.matched),
        Err(e) => assert!(want(&e), "{what}: wrong error {e:?}"),
    }
}

fn is_mismatch(e: &Error) -> bool {
    matches!(e, Error::NameMismatch(_))
}

// ------------------------------------------------------------------ names

#[test]
fn dnsid_mail_example_net() {
    // T-REF-01, T-DNS-01/02, T-SNI-07/T-SEED-08 (normal operation: DNS-ID = target)
    let v = ok("dnsid-mail-example-net", &dns("mail.example.net"), strict());
    assert_eq!(v.matched.to_string(), "DNS-ID mail.example.net");
    assert_eq!(v.matched.kind, MatchKind::Exact);
    assert_eq!(v.chain.anchor_subject(), "CN=mailsrv Test CA");
    ok(
        "dnsid-mail-example-net",
        &dns("MAIL.Example.NET."),
        strict(),
    );
    assert_variant(
        check("dnsid-mail-example-net", &dns("example.net"), strict()),
        is_mismatch,
        "parent domain",
    );
    // T-SRVID-13 in reverse: a DNS-ID never answers an SRV-ID reference
    assert_variant(
        check(
            "dnsid-mail-example-net",
            &srv("imaps", "mail.example.net"),
            strict(),
        ),
        is_mismatch,
        "SRV reference vs DNS-ID",
    );
}

#[test]
fn srvid_only_certificate() {
    // T-AUTH-07, T-SRVID-01: an SRV-ID-only certificate passes for (imaps, example.com)
    let v = ok(
        "srvid-imaps-example-com",
        &srv("imaps", "example.com"),
        strict(),
    );
    assert_eq!(v.matched.to_string(), "SRV-ID _imaps.example.com");
    assert!(v.matched.is_srv_id());
    // T-SRVID-13: ... and not for DNS-ID example.com
    assert_variant(
        check("srvid-imaps-example-com", &dns("example.com"), strict()),
        is_mismatch,
        "DNS-ID example.com",
    );
    // T-AUTH-10 / T-SRVID-02: nor for (submissions, example.com)
    assert_variant(
        check(
            "srvid-imaps-example-com",
            &srv("submissions", "example.com"),
            strict(),
        ),
        is_mismatch,
        "submissions",
    );
    // T-SRVID-04: imap is not imaps unless the sibling flag is set
    assert_variant(
        check(
            "srvid-imaps-example-com",
            &srv("imap", "example.com"),
            strict(),
        ),
        is_mismatch,
        "imap strict",
    );
    let sibling = MatchOptions {
        accept_sibling_service: true,
        ..MatchOptions::default()
    };
    let v = ok(
        "srvid-imaps-example-com",
        &srv("imap", "example.com"),
        sibling,
    );
    assert_eq!(v.matched.kind, MatchKind::SiblingService);
    // T-SRVID-05: other domain
    assert_variant(
        check(
            "srvid-imaps-example-com",
            &srv("imaps", "mail.example.com"),
            strict(),
        ),
        is_mismatch,
        "subdomain",
    );
    // T-REF-02 probe list: SRV-ID and DNS-ID of the mail domain; the SRV-ID answers
    let mut probe = ReferenceIdentity::new();
    probe.add_dns_id("example.com").unwrap();
    probe.add_srv_id("imaps", "example.com").unwrap();
    let v = ok("srvid-imaps-example-com", &probe, strict().for_probe());
    assert_eq!(v.matched.to_string(), "SRV-ID _imaps.example.com");
}

#[test]
fn srvid_multi_certificate() {
    for s in [
        "imap",
        "imaps",
        "pop3",
        "pop3s",
        "submission",
        "submissions",
    ] {
        let v = ok("srvid-multi-example-com", &srv(s, "example.com"), strict());
        assert_eq!(v.matched.to_string(), format!("SRV-ID _{s}.example.com"));
    }
    assert_eq!(
        PresentedIds::from_der(&chain("srvid-multi-example-com")[0])
            .unwrap()
            .sans()
            .len(),
        6
    );
    assert_variant(
        check(
            "srvid-multi-example-com",
            &srv("imaps", "example.net"),
            strict(),
        ),
        is_mismatch,
        "other domain",
    );
    assert_variant(
        check("srvid-multi-example-com", &dns("example.com"), strict()),
        is_mismatch,
        "DNS-ID",
    );
}

#[test]
fn dnsid_example_com() {
    // T-AUTH-08: a DNS-ID for the mail domain answers the probe
    let mut probe = ReferenceIdentity::new();
    probe.add_srv_id("imaps", "example.com").unwrap();
    probe.add_dns_id("example.com").unwrap();
    let v = ok("dnsid-example-com", &probe, strict().for_probe());
    assert_eq!(v.matched.to_string(), "DNS-ID example.com");
    assert_variant(
        check("dnsid-example-com", &dns("mail.example.com"), strict()),
        is_mismatch,
        "subdomain",
    );
    assert_variant(
        check("dnsid-example-com", &srv("imaps", "example.com"), strict()),
        is_mismatch,
        "SRV-ID only",
    );
}

#[test]
fn wildcard_example_net() {
    // T-DNS-03/04/05
    let v = ok("wildcard-example-net", &dns("mail.example.net"), strict());
    assert_eq!(v.matched.kind, MatchKind::Wildcard);
    assert_eq!(
        v.matched.to_string(),
        "DNS-ID mail.example.net via DNS-ID *.example.net"
    );
    for r in ["example.net", "a.b.example.net", "mail.example.com"] {
        assert_variant(
            check("wildcard-example-net", &dns(r), strict()),
            is_mismatch,
            r,
        );
    }
    // never in SRV-IDs (T-SRVID-08 in spirit)
    assert_variant(
        check(
            "wildcard-example-net",
            &srv("imaps", "mail.example.net"),
            strict(),
        ),
        is_mismatch,
        "SRV via wildcard",
    );
}

/// T-DNS-09: a wildcard never covers a public suffix (the Public Suffix List, ICANN and
/// PRIVATE sections), so `*.co.uk` and `*.s3.amazonaws.com` match nothing, whatever the CA.
#[test]
fn t_dns_09_wildcard_over_a_public_suffix_never_matches() {
    for (cert, name) in [
        ("wildcard-co-uk", "example.co.uk"),
        ("wildcard-s3-amazonaws-com", "bucket.s3.amazonaws.com"),
    ] {
        assert_variant(check(cert, &dns(name), strict()), is_mismatch, name);
        assert_variant(check(cert, &dns(name), legacy()), is_mismatch, name);
    }
}

/// A leaf key that mailsrv's TLS cannot use (RSA under 2048 bits, DSA) is refused by the
/// certificate check too, as BadCertificate, after path validation; RSA 2048 is accepted.
#[test]
fn weak_and_unsupported_leaf_keys_are_bad_certificates() {
    for (cert, why) in [
        ("rsa-1024-mail-example-net", "RSA 1024 bits"),
        ("dsa-mail-example-net", "DSA"),
    ] {
        match check(cert, &dns("mail.example.net"), strict()) {
            Err(Error::BadCertificate(d)) => assert!(d.contains(why), "{cert}: {d}"),
            other => panic!("{cert}: {other:?}"),
        }
    }
    let v = ok(
        "rsa-2048-mail-example-net",
        &dns("mail.example.net"),
        strict(),
    );
    assert_eq!(v.matched.kind, MatchKind::Exact);
}

#[test]
fn cn_only_certificate() {
    // T-CN-02: no match by default, match with the legacy flag
    assert_variant(
        check("cn-only", &dns("mail.example.net"), strict()),
        is_mismatch,
        "default",
    );
    let v = ok("cn-only", &dns("mail.example.net"), legacy());
    assert!(v.matched.is_legacy_cn());
    assert_eq!(
        v.matched.to_string(),
        "DNS-ID mail.example.net via CN-ID mail.example.net (legacy)"
    );
    // T-CN-05: the probe never accepts a CN
    assert_variant(
        check("cn-only", &dns("mail.example.net"), legacy().for_probe()),
        is_mismatch,
        "probe",
    );
    // T-CN-01 / T-CN-03: the CN is ignored when SAN identifiers exist, even with the flag
    let store = extra_ca("extra-ca");
    for (leaf, want) in [
        ("san-dns-with-cn", "mail.example.com"),
        ("san-srv-with-cn", "example.com"),
    ] {
        let r = verify_cert(
            &store,
            &extra_chain(&[leaf]),
            &dns(want),
            &legacy(),
            UnixTime::now(),
        );
        assert_variant(r, is_mismatch, leaf);
    }
}

#[test]
fn wrong_name() {
    // T-AUTH-09: a certificate for another name fails with a detail listing both sides
    let e = check("wrong-name", &dns("mail.example.net"), strict()).unwrap_err();
    let Error::NameMismatch(d) = e else {
        panic!("{e:?}")
    };
    assert!(d.contains("DNS-ID mail.example.net"), "{d}");
    assert!(d.contains("DNS-ID wrong.example.org"), "{d}");
}

#[test]
fn idn_srvid() {
    // T-SRVID-10, T-DNS-10: U-label references against A-label SANs
    let v = ok("idn-srvid", &srv("imaps", "bücher.example"), strict());
    assert_eq!(v.matched.to_string(), "SRV-ID _imaps.xn--bcher-kva.example");
    ok("idn-srvid", &dns("BÜCHER.example"), strict());
}

// ------------------------------------------------------------------ malformed SANs

#[test]
fn srvid_utf8string_is_ignored() {
    // T-SRVID-09: a SRVName encoded as UTF8String is non-conformant and ignored
    let e = check("srvid-utf8", &srv("imaps", "example.com"), strict()).unwrap_err();
    let Error::NameMismatch(d) = e else {
        panic!("{e:?}")
    };
    assert!(d.contains("UTF8String"), "{d}");
}

#[test]
fn nul_in_dnsname_never_matches() {
    // A dNSName "mail.example.net\0.evil.org" must never match mail.example.net (nor the
    // names around the NUL); it is ignored as invalid.
    for r in ["mail.example.net", "evil.org", "example.net"] {
        for opts in [strict(), legacy()] {
            assert_variant(check("nul-in-san", &dns(r), opts), is_mismatch, r);
        }
    }
    let p = PresentedIds::from_der(&chain("nul-in-san")[0]).unwrap();
    assert!(p.sans().is_empty());
    assert!(p.ignored()[0].contains("NUL"), "{:?}", p.ignored());
    assert!(!p.cn_eligible());
}

#[test]
fn srvid_with_nul_rejects_the_certificate() {
    // T-SRVID-15: an embedded NUL in a SRVName is a malformed SAN: reject
    assert_variant(
        check("srvid-nul", &srv("imaps", "example.com"), strict()),
        |e| matches!(e, Error::BadCertificate(d) if d.contains("NUL")),
        "srvid-nul",
    );
}

#[test]
fn every_certificate_parses_without_panic() {
    for n in TESTBED_NAMES {
        let c = chain(n);
        let r = PresentedIds::from_der(&c[0]);
        if *n == "srvid-nul" {
            assert!(r.is_err());
        } else {
            r.unwrap_or_else(|e| panic!("{n}: {e:?}"));
        }
        // truncations of a real certificate never panic
        for cut in (0..c[0].len()).step_by(37) {
            let _ = PresentedIds::from_der(&c[0][..cut]);
        }
    }
}

// ------------------------------------------------------------------ chain errors

#[test]
fn expired_and_not_yet_valid() {
    assert_variant(
        check("expired", &dns("mail.example.net"), strict()),
        |e| matches!(e, Error::CertExpired(d) if d.contains("2020-02-01")),
        "expired",
    );
    assert_variant(
        check("not-yet-valid", &dns("mail.example.net"), strict()),
        |e| matches!(e, Error::CertNotYetValid(d) if d.contains("2099-01-01")),
        "not yet valid",
    );
}

#[test]
fn untrusted_and_unknown_issuer() {
    let is_unknown = |e: &Error| matches!(e, Error::UnknownIssuer(_));
    // issued by other-ca, which is not trusted (T-TLS-04 without pinning)
    assert_variant(
        check("untrusted", &dns("mail.example.net"), strict()),
        is_unknown,
        "untrusted",
    );
    // ... and it is otherwise fine: trusting other-ca makes it pass
    let other = CaStore::from_pem_file(&certs().join("other-ca.crt")).unwrap();
    verify_cert(
        &other,
        &chain("untrusted"),
        &dns("mail.example.net"),
        &strict(),
        UnixTime::now(),
    )
    .unwrap();
    assert_variant(
        check("selfsigned", &dns("mail.example.net"), strict()),
        is_unknown,
        "self-signed",
    );
    // the intermediate not sent: unknown issuer
    let leaf_only = &chain("nc-dns-inside")[..1];
    assert_variant(
        verify_cert(
            &test_ca(),
            leaf_only,
            &dns("mail.example.net"),
            &strict(),
            UnixTime::now(),
        ),
        is_unknown,
        "missing intermediate",
    );
}

#[test]
fn path_validation_precedes_name_matching() {
    // T-AUTH-11 / T-SEED-10: right name, untrusted chain → the chain error, and a wrong
    // name on a bad chain still reports the chain
    assert_variant(
        check("untrusted", &dns("mail.example.net"), strict()),
        |e| matches!(e, Error::UnknownIssuer(_)),
        "untrusted, right name",
    );
    assert_variant(
        check("expired", &dns("nothing.example.org"), strict()),
        |e| matches!(e, Error::CertExpired(_)),
        "expired, wrong name",
    );
}

#[test]
fn eku_client_only_is_cert_purpose() {
    let e = verify_cert(
        &extra_ca("extra-ca"),
        &extra_chain(&["eku-client"]),
        &dns("mail.example.net"),
        &strict(),
        UnixTime::now(),
    )
    .unwrap_err();
    let Error::CertPurpose(d) = e else {
        panic!("{e:?}")
    };
    assert!(d.contains("clientAuth"), "{d}");
}

// ------------------------------------------------------------------ name constraints

#[test]
fn name_constrained_ca_cannot_vouch_for_outside_srv_id() {
    // The gap: webpki accepts the chain (it never reads SRVNames) ...
    let c = chain("nc-srvid-outside");
    let vc = check_chain(&test_ca(), &c[0], &c[1..], UnixTime::now()).unwrap();
    assert!(!vc.dns_constraints().is_empty());
    assert_eq!(vc.path().len(), 2, "leaf + NC intermediate");
    // ... but the SRV-ID outside example.net must not match
    let e = check("nc-srvid-outside", &srv("imaps", "example.com"), strict()).unwrap_err();
    let Error::NameConstraint(d) = e else {
        panic!("{e:?}")
    };
    assert!(
        d.contains("_imaps.example.com") && d.contains("example.net"),
        "{d}"
    );
    // the same SRV-ID under the unconstrained CA passes (control)
    ok(
        "srvid-imaps-example-com",
        &srv("imaps", "example.com"),
        strict(),
    );
    // a DNS-ID inside the constraint passes through the constrained intermediate
    let v = ok("nc-dns-inside", &dns("mail.example.net"), strict());
    assert_eq!(v.chain.path().len(), 2);
}

#[test]
fn name_constraint_violation_by_dns_id() {
    // webpki's own check: DNS:mail.example.com under a CA permitted only example.net
    let e = verify_cert(
        &extra_ca("extra-ca"),
        &extra_chain(&["nc-dns-outside", "nc-int"]),
        &dns("mail.example.com"),
        &strict(),
        UnixTime::now(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::NameConstraint(_)), "{e:?}");
}

#[test]
fn name_constraints_apply_to_legacy_cn() {
    // webpki never treats the CN as a name, so the constraint fix covers CN-IDs too
    let store = extra_ca("extra-ca");
    let e = verify_cert(
        &store,
        &extra_chain(&["nc-cn-outside", "nc-int"]),
        &dns("mail.example.com"),
        &legacy(),
        UnixTime::now(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::NameConstraint(_)), "{e:?}");
    let v = verify_cert(
        &store,
        &extra_chain(&["nc-cn-inside", "nc-int"]),
        &dns("mail.example.net"),
        &legacy(),
        UnixTime::now(),
    )
    .unwrap();
    assert!(v.matched.is_legacy_cn());
}

#[test]
fn name_constrained_trust_anchor() {
    // The constraint sits on the root itself (TrustAnchor::name_constraints).
    let store = extra_ca("nc-root");
    let e = verify_cert(
        &store,
        &extra_chain(&["nc-root-srv-com"]),
        &srv("imaps", "example.com"),
        &strict(),
        UnixTime::now(),
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::NameConstraint(ref d) if d.contains("CN=NC Root")),
        "{e:?}"
    );
    let v = verify_cert(
        &store,
        &extra_chain(&["nc-root-srv-net"]),
        &srv("imaps", "example.net"),
        &strict(),
        UnixTime::now(),
    )
    .unwrap();
    assert_eq!(v.matched.to_string(), "SRV-ID _imaps.example.net");
    assert!(matches!(v.presented.sans()[0], PresentedId::SrvId { .. }));
}

// ------------------------------------------------------------------ trust store

#[test]
fn trust_store_files() {
    let s = test_ca();
    assert_eq!(s.len(), 1);
    assert!(s.source().ends_with("ca.crt"));
    let bundle = CaStore::from_pem_file(&certs().join("ca-bundle.pem")).unwrap();
    assert_eq!(bundle.len(), 1);
    // a key file holds no certificate
    let e = CaStore::from_pem_file(&certs().join("cn-only.key")).unwrap_err();
    assert!(matches!(e, Error::NoTrustAnchors(_)), "{e:?}");
    let e = CaStore::from_pem_file(&certs().join("no-such-file.crt")).unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e:?}");
}

// ------------------------------------------------------------------ rustls handshake

/// `openssl s_server` on 127.0.0.1, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(name: &str, extra_args: &[&str]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = certs();
        let mut child = Command::new("openssl")
            .arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(dir.join(format!("{name}.crt")))
            .arg("-key")
            .arg(dir.join(format!("{name}.key")))
            .arg("-www")
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        // s_server prints ACCEPT once it listens.
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.any(|l| l.map(|l| l.contains("ACCEPT")).unwrap_or(false));
        assert!(ready, "s_server did not start");
        // keep draining so the server never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking TLS handshake with `config` to 127.0.0.1:`port`, SNI `sni`.
fn connect(
    config: Arc<rustls::ClientConfig>,
    port: u16,
    sni: &str,
) -> Result<(rustls::ClientConnection, TcpStream), rustls::Error> {
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            return Err(e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned()
                .unwrap_or_else(|| panic!("I/O error, not a TLS error: {e}")));
        }
    }
    Ok((conn, sock))
}

/// A fresh verifier + config for `refs`, and one handshake.
fn handshake(
    port: u16,
    sni: &str,
    refs: ReferenceIdentity,
) -> (
    Arc<MailVerifier>,
    Result<rustls::ClientConnection, rustls::Error>,
) {
    let verifier = Arc::new(MailVerifier::new(test_ca(), refs, MatchOptions::strict()).unwrap());
    let config = client_config(verifier.clone()).unwrap();
    let conn = connect(config, port, sni).map(|(c, _)| c);
    (verifier, conn)
}

#[test]
fn handshake_with_srv_id_only_server() {
    for (version, args) in [
        (rustls::ProtocolVersion::TLSv1_3, &[][..]),
        (rustls::ProtocolVersion::TLSv1_2, &["-tls1_2"][..]),
    ] {
        let server = Server::start("srvid-imaps-example-com", args);
        // SNI example.com, refs {SRV-ID _imaps.example.com}: passes, reports the SRV-ID
        let (v, conn) = handshake(server.port, "example.com", srv("imaps", "example.com"));
        let conn = conn.unwrap_or_else(|e| panic!("{version:?}: {e}"));
        assert_eq!(conn.protocol_version(), Some(version));
        let m = v.last_match().expect("a recorded match");
        assert_eq!(m.to_string(), "SRV-ID _imaps.example.com");
        assert!(v.last_error().is_none());

        // refs {DNS-ID example.com}: fails with NameMismatch
        let (v, conn) = handshake(server.port, "example.com", dns("example.com"));
        let err = conn.expect_err("handshake must fail");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{err:?}"
        );
        let mapped = from_rustls_error(&err);
        assert!(matches!(mapped, Error::NameMismatch(_)), "{mapped:?}");
        let precise = v.last_error().expect("a recorded error");
        assert!(
            matches!(precise, Error::NameMismatch(ref d) if d.contains("SRV-ID _imaps.example.com")),
            "{precise:?}"
        );
        assert!(v.last_match().is_none());
    }
}

#[test]
fn handshake_reports_chain_errors() {
    let server = Server::start("expired", &[]);
    let (v, conn) = handshake(server.port, "mail.example.net", dns("mail.example.net"));
    let err = conn.expect_err("handshake must fail");
    assert!(
        matches!(from_rustls_error(&err), Error::CertExpired(_)),
        "{err:?}"
    );
    assert!(matches!(v.last_error(), Some(Error::CertExpired(_))));
}

#[test]
fn no_session_resumption_between_connections() {
    // T-SNI-09: a session from one connection (the probe) is never resumed by the next;
    // every connection runs the verifier in a full handshake.
    let server = Server::start("srvid-imaps-example-com", &[]);
    let verifier = Arc::new(
        MailVerifier::new(
            test_ca(),
            srv("imaps", "example.com"),
            MatchOptions::strict(),
        )
        .unwrap(),
    );
    let config = client_config(verifier.clone()).unwrap();
    for _ in 0..2 {
        let (mut conn, mut sock) = connect(config.clone(), server.port, "example.com").unwrap();
        assert_eq!(conn.handshake_kind(), Some(rustls::HandshakeKind::Full));
        // Read the reply so that any session ticket the server sends is processed.
        conn.writer().write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        assert!(
            reply.starts_with(b"HTTP/1.0 200"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        assert!(verifier.last_match().is_some());
    }
}
