//! mailsrv_cert_check and mailsrv_identity through the C entry points, with the testbed's
//! test CA and leaves (testbed/certs.sh). T-ids are docs/conformance.md's vectors.

mod common;

use std::os::raw::c_char;
use std::path::PathBuf;
use std::ptr;

use common::*;
use mailsrv::ffi::cert::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::identity::*;
use mailsrv::ffi::status::mailsrv_status;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Leaf first, then the chain the server would send (from NAME.pem).
fn chain(name: &str) -> Vec<Vec<u8>> {
    let path = PathBuf::from(env("MAILSRV_TEST_CERTS")).join(format!("{name}.pem"));
    CertificateDer::pem_file_iter(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|c| c.unwrap().to_vec())
        .collect()
}

/// A context trusting only the test CA.
fn ctx() -> *mut mailsrv_ctx {
    let mut cfg = ptr::null_mut();
    unsafe {
        mailsrv_config_new(&mut cfg);
        mailsrv_config_set_nameserver(cfg, c("127.0.0.1").as_ptr());
        mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr());
    }
    ctx_from(cfg)
}

enum Ref<'a> {
    Dns(&'a str),
    Srv(&'a str, &'a str),
    Ip(&'a str),
}

fn identity(refs: &[Ref]) -> *mut mailsrv_identity {
    let mut id = ptr::null_mut();
    unsafe {
        assert_eq!(mailsrv_identity_new(&mut id), mailsrv_status::Ok);
        for r in refs {
            let st = match r {
                Ref::Dns(n) => mailsrv_identity_add_dns_id(id, c(n).as_ptr()),
                Ref::Srv(s, d) => mailsrv_identity_add_srv_id(id, c(s).as_ptr(), c(d).as_ptr()),
                Ref::Ip(a) => mailsrv_identity_add_ip(id, c(a).as_ptr()),
            };
            assert_eq!(st, mailsrv_status::Ok);
        }
    }
    id
}

/// (status, matched text or error detail, match kind)
fn check(cert: &str, refs: &[Ref], flags: u32) -> (mailsrv_status, String, u32) {
    let ctx = ctx();
    let id = identity(refs);
    let der = chain(cert);
    let ptrs: Vec<*const u8> = der.iter().map(|d| d.as_ptr()).collect();
    let lens: Vec<usize> = der.iter().map(|d| d.len()).collect();
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe {
        mailsrv_cert_check(
            ctx,
            ptrs.as_ptr(),
            lens.as_ptr(),
            der.len(),
            id,
            flags,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    let res = if st == mailsrv_status::Ok {
        assert!(!out.is_null());
        let r = unsafe {
            (
                text(mailsrv_cert_result_matched(out)),
                mailsrv_cert_result_kind(out),
            )
        };
        assert!(unsafe { mailsrv_cert_result_path_len(out) } >= 1);
        unsafe { mailsrv_cert_result_free(out) };
        (st, r.0, r.1)
    } else {
        assert!(out.is_null());
        (st, text(err.as_ptr()), 0)
    };
    unsafe {
        mailsrv_identity_free(id);
        mailsrv_ctx_free(ctx);
    }
    res
}

#[test]
fn t_auth_07_srv_id_only_certificate() {
    let (st, matched, kind) = check(
        "srvid-imaps-example-com",
        &[Ref::Srv("imaps", "example.com")],
        0,
    );
    assert_eq!(st, mailsrv_status::Ok);
    assert_eq!(matched, "SRV-ID _imaps.example.com");
    assert_eq!(kind, mailsrv_match_kind::SrvId as u32);
    // T-SRVID-13: an SRV-ID answers only SRV-ID references.
    let (st, detail, _) = check("srvid-imaps-example-com", &[Ref::Dns("example.com")], 0);
    assert_eq!(st, mailsrv_status::NameMismatch, "{detail}");
    // T-AUTH-10: the submissions SRV-ID does not prove imaps, and vice versa.
    let (st, _, _) = check(
        "srvid-imaps-example-com",
        &[Ref::Srv("submissions", "example.com")],
        0,
    );
    assert_eq!(st, mailsrv_status::NameMismatch);
}

#[test]
fn multi_srv_id_and_sibling_flag() {
    for svc in [
        "imap",
        "imaps",
        "pop3",
        "pop3s",
        "submission",
        "submissions",
    ] {
        let (st, m, _) = check(
            "srvid-multi-example-com",
            &[Ref::Srv(svc, "example.com")],
            0,
        );
        assert_eq!(st, mailsrv_status::Ok, "{svc}");
        assert_eq!(m, format!("SRV-ID _{svc}.example.com"));
    }
    // Only _imaps is in this certificate: _imap matches it only under the sibling flag.
    let (st, _, _) = check(
        "srvid-imaps-example-com",
        &[Ref::Srv("imap", "example.com")],
        0,
    );
    assert_eq!(st, mailsrv_status::NameMismatch, "T-SRVID-04");
    let (st, _, kind) = check(
        "srvid-imaps-example-com",
        &[Ref::Srv("imap", "example.com")],
        MAILSRV_FLAG_ACCEPT_SIBLING_SERVICE,
    );
    assert_eq!(st, mailsrv_status::Ok);
    assert_eq!(kind, mailsrv_match_kind::SrvIdSibling as u32);
}

#[test]
fn dns_ids_and_wildcards() {
    let (st, m, kind) = check(
        "dnsid-mail-example-net",
        &[Ref::Dns("MAIL.Example.NET.")],
        0,
    );
    assert_eq!(
        (st, m.as_str(), kind),
        (mailsrv_status::Ok, "DNS-ID mail.example.net", 1),
        "T-DNS-02, T-DNS-13"
    );
    let (st, _, kind) = check("wildcard-example-net", &[Ref::Dns("mail.example.net")], 0);
    assert_eq!(
        (st, kind),
        (mailsrv_status::Ok, mailsrv_match_kind::DnsIdWildcard as u32),
        "T-DNS-03"
    );
    let (st, _, _) = check("wildcard-example-net", &[Ref::Dns("example.net")], 0);
    assert_eq!(st, mailsrv_status::NameMismatch, "T-DNS-04");
    let (st, _, _) = check("wildcard-example-net", &[Ref::Dns("a.b.example.net")], 0);
    assert_eq!(st, mailsrv_status::NameMismatch, "T-DNS-05");
    // T-AUTH-09: a provider-only certificate does not prove the mail domain.
    let (st, _, _) = check(
        "dnsid-mail-example-net",
        &[Ref::Srv("imaps", "example.com"), Ref::Dns("example.com")],
        0,
    );
    assert_eq!(st, mailsrv_status::NameMismatch);
    let (st, _, _) = check(
        "dnsid-example-com",
        &[Ref::Srv("imaps", "example.com"), Ref::Dns("example.com")],
        0,
    );
    assert_eq!(st, mailsrv_status::Ok, "T-AUTH-08");
}

/// T-DNS-09 through the C entry point: `*.co.uk` (ICANN) and `*.s3.amazonaws.com`
/// (PRIVATE) are public suffixes, so these wildcards match nothing.
#[test]
fn t_dns_09_no_wildcard_over_a_public_suffix() {
    for (cert, name) in [
        ("wildcard-co-uk", "example.co.uk"),
        ("wildcard-s3-amazonaws-com", "bucket.s3.amazonaws.com"),
    ] {
        let (st, detail, _) = check(cert, &[Ref::Dns(name)], 0);
        assert_eq!(st, mailsrv_status::NameMismatch, "{cert}: {detail}");
    }
}

/// Leaf keys mailsrv's own TLS would refuse are BAD_CERTIFICATE here too, with the reason.
#[test]
fn weak_and_dsa_leaf_keys_are_bad_certificates() {
    for (cert, why) in [
        ("rsa-1024-mail-example-net", "RSA 1024 bits"),
        ("dsa-mail-example-net", "DSA"),
    ] {
        let (st, detail, _) = check(cert, &[Ref::Dns("mail.example.net")], 0);
        assert_eq!(st, mailsrv_status::BadCertificate, "{cert}: {detail}");
        assert!(detail.contains(why), "{cert}: {detail}");
    }
    let (st, detail, _) = check(
        "rsa-2048-mail-example-net",
        &[Ref::Dns("mail.example.net")],
        0,
    );
    assert_eq!(st, mailsrv_status::Ok, "{detail}");
}

#[test]
fn t_cn_02_cn_only_needs_the_legacy_flag() {
    let (st, _, _) = check("cn-only", &[Ref::Dns("mail.example.net")], 0);
    assert_eq!(st, mailsrv_status::NameMismatch);
    let (st, _, kind) = check(
        "cn-only",
        &[Ref::Dns("mail.example.net")],
        MAILSRV_FLAG_LEGACY_CN,
    );
    assert_eq!(
        (st, kind),
        (mailsrv_status::Ok, mailsrv_match_kind::LegacyCn as u32)
    );
}

#[test]
fn precise_chain_errors() {
    let want = [Ref::Dns("mail.example.net")];
    assert_eq!(
        check("expired", &want, 0).0,
        mailsrv_status::CertExpired,
        "T-TLS-03"
    );
    assert_eq!(
        check("not-yet-valid", &want, 0).0,
        mailsrv_status::CertNotYetValid
    );
    assert_eq!(
        check("untrusted", &want, 0).0,
        mailsrv_status::UnknownIssuer,
        "T-AUTH-11"
    );
    assert_eq!(
        check("selfsigned", &want, 0).0,
        mailsrv_status::UnknownIssuer
    );
    assert_eq!(
        check("wrong-name", &want, 0).0,
        mailsrv_status::NameMismatch
    );
    // Path validation comes before names: an untrusted chain with the right name fails as untrusted.
    let (st, detail, _) = check("untrusted", &want, 0);
    assert!(!detail.is_empty());
    assert_eq!(st, mailsrv_status::UnknownIssuer);
}

#[test]
fn hostile_sans_never_match() {
    // An embedded NUL in a dNSName never matches the prefix (T-DNS-16 family).
    let (st, _, _) = check("nul-in-san", &[Ref::Dns("mail.example.net")], 0);
    assert_ne!(st, mailsrv_status::Ok);
    // T-SRVID-09: a UTF8String SRVName is not an SRV-ID.
    let (st, _, _) = check("srvid-utf8", &[Ref::Srv("imaps", "example.com")], 0);
    assert_ne!(st, mailsrv_status::Ok);
    // T-SRVID-15: a NUL inside an SRVName is a malformed certificate.
    let (st, _, _) = check("srvid-nul", &[Ref::Srv("imaps", "example.com")], 0);
    assert_eq!(st, mailsrv_status::BadCertificate);
}

#[test]
fn name_constraints_bind_srv_ids() {
    // The CA may only vouch for example.net: its SRV-ID for example.com must not count.
    let (st, _, _) = check("nc-srvid-outside", &[Ref::Srv("imaps", "example.com")], 0);
    assert_eq!(st, mailsrv_status::NameConstraint);
    let (st, _, _) = check("nc-dns-inside", &[Ref::Dns("mail.example.net")], 0);
    assert_eq!(st, mailsrv_status::Ok);
}

#[test]
fn t_srvid_10_idn_srv_id() {
    let (st, m, _) = check("idn-srvid", &[Ref::Srv("imaps", "bücher.example")], 0);
    assert_eq!(st, mailsrv_status::Ok);
    assert_eq!(m, "SRV-ID _imaps.xn--bcher-kva.example");
}

#[test]
fn bad_arguments() {
    let ctx = ctx();
    let id = identity(&[]);
    let der = chain("dnsid-mail-example-net");
    let p = [der[0].as_ptr()];
    let l = [der[0].len()];
    let mut out = ptr::null_mut();
    unsafe {
        assert_eq!(
            mailsrv_cert_check(
                ctx,
                p.as_ptr(),
                l.as_ptr(),
                1,
                id,
                0,
                &mut out,
                ptr::null_mut(),
                0
            ),
            mailsrv_status::InvalidArg,
            "empty identity"
        );
        assert_eq!(
            mailsrv_identity_add_dns_id(id, c("mail.example.net").as_ptr()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_cert_check(
                ctx,
                p.as_ptr(),
                l.as_ptr(),
                0,
                id,
                0,
                &mut out,
                ptr::null_mut(),
                0
            ),
            mailsrv_status::InvalidArg,
            "no certificate"
        );
        assert_eq!(
            mailsrv_cert_check(
                ctx,
                p.as_ptr(),
                l.as_ptr(),
                1,
                id,
                64,
                &mut out,
                ptr::null_mut(),
                0
            ),
            mailsrv_status::InvalidArg,
            "unknown flag"
        );
        assert_eq!(
            mailsrv_cert_check(
                ctx,
                ptr::null(),
                l.as_ptr(),
                1,
                id,
                0,
                &mut out,
                ptr::null_mut(),
                0
            ),
            mailsrv_status::NullArg
        );
        let junk = [0x30u8, 0x03, 0x02, 0x01];
        let jp = [junk.as_ptr()];
        let jl = [junk.len()];
        assert_eq!(
            mailsrv_cert_check(
                ctx,
                jp.as_ptr(),
                jl.as_ptr(),
                1,
                id,
                0,
                &mut out,
                ptr::null_mut(),
                0
            ),
            mailsrv_status::BadCertificate,
            "bad DER"
        );
        assert!(out.is_null());
        // Identity builders refuse what is not a name.
        for bad in ["", "a..b", "_imaps.example.com", "192.0.2.1"] {
            assert_eq!(
                mailsrv_identity_add_dns_id(id, c(bad).as_ptr()),
                mailsrv_status::InvalidArg,
                "{bad}"
            );
        }
        assert_eq!(
            mailsrv_identity_add_srv_id(id, c("sieve").as_ptr(), c("example.com").as_ptr()),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_identity_add_ip(id, c("mail.example.net").as_ptr()),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_identity_add_ip(id, c("[::1]").as_ptr()),
            mailsrv_status::Ok
        );
        assert_eq!(mailsrv_identity_len(id), 2);
        mailsrv_identity_free(id);
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn t_ref_08_ip_reference_matches_no_dns_id() {
    let (st, _, _) = check("dnsid-mail-example-net", &[Ref::Ip("127.0.0.1")], 0);
    assert_eq!(st, mailsrv_status::NameMismatch);
}
