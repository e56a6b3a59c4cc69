//! verify_srv_authenticity through the C entry points against the testbed: knotd (signed,
//! unsigned and bogus zones), dovecot and postfix with SNI-selected certificates from the
//! test CA. T-ids are docs/conformance.md's vectors (groups C and M).

mod common;

use std::os::raw::c_char;
use std::ptr;

use common::*;
use mailsrv::ffi::authenticity::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::status::mailsrv_status;
use mailsrv::ffi::stream::*;

const IMAPS: u32 = 1;
const POP3S: u32 = 4;
const SUBMISSIONS: u32 = 16;
const SUBMISSION: u32 = 32;

/// A context on the testbed DNS that trusts the test CA.
fn ctx() -> *mut mailsrv_ctx {
    let cfg = testbed_config(0, 10_000);
    unsafe { mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()) };
    ctx_from(cfg)
}

struct Verdict {
    verdict: u32,
    evidence: u32,
    target_verified: bool,
    in_domain: bool,
    detail: String,
    probe_status: mailsrv_status,
    target_status: mailsrv_status,
    probe_chain: usize,
    target_chain: usize,
}

fn verify(domain: &str, service: u32, target: &str, port: u16, flags: u32) -> Verdict {
    let ctx = ctx();
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe {
        mailsrv_verify_srv_authenticity(
            ctx,
            c(domain).as_ptr(),
            service,
            c(target).as_ptr(),
            port,
            flags,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    assert_eq!(st, mailsrv_status::Ok, "{domain}: {}", text(err.as_ptr()));
    let v = unsafe {
        Verdict {
            verdict: mailsrv_authenticity_verdict(out),
            evidence: mailsrv_authenticity_evidence(out),
            target_verified: mailsrv_authenticity_target_verified(out),
            in_domain: mailsrv_authenticity_in_domain(out),
            detail: text(mailsrv_authenticity_detail(out)),
            probe_status: mailsrv_authenticity_probe_status(out),
            target_status: mailsrv_authenticity_target_status(out),
            probe_chain: mailsrv_authenticity_chain_len(out, 0),
            target_chain: mailsrv_authenticity_chain_len(out, 1),
        }
    };
    unsafe {
        mailsrv_authenticity_free(out);
        mailsrv_ctx_free(ctx);
    }
    v
}

const AUTHENTIC: u32 = mailsrv_verdict::Authentic as u32;
const UNVERIFIED: u32 = mailsrv_verdict::Unverified as u32;
const REJECTED: u32 = mailsrv_verdict::Rejected as u32;

#[test]
fn t_auth_01_dnssec_secure_answer_is_authentic() {
    let v = verify("example.com", IMAPS, "mail.example.net", port("IMAPS"), 0);
    assert_eq!(v.verdict, AUTHENTIC, "{}", v.detail);
    assert_eq!(v.evidence, mailsrv_evidence::Dnssec as u32);
    // T-SEED-07: the probe is skipped for a secure answer.
    assert_eq!(v.probe_chain, 0);
}

#[test]
fn secure_records_without_the_target_reject_it() {
    let v = verify("example.com", IMAPS, "evil.example.org", port("IMAPS"), 0);
    assert_eq!(v.verdict, REJECTED, "{}", v.detail);
    let v = verify("example.com", IMAPS, "mail.example.net", 443, 0);
    assert_eq!(v.verdict, REJECTED, "the port is part of the answer");
}

#[test]
fn t_auth_03_bogus_is_rejected() {
    let v = verify("bogus.test", IMAPS, "mail.example.net", port("IMAPS"), 0);
    assert_eq!(v.verdict, REJECTED);
    assert!(v.detail.contains("DNSSEC"), "{}", v.detail);
}

#[test]
fn t_auth_09_provider_serving_only_its_own_name_is_unverified() {
    // SNI insecure.test gets the provider's mail.example.net certificate (T-SEED-03).
    let v = verify("insecure.test", IMAPS, "mail.example.net", port("IMAPS"), 0);
    assert_eq!(v.verdict, UNVERIFIED, "{}", v.detail);
    assert_eq!(v.evidence, mailsrv_evidence::None as u32);
    assert_eq!(v.probe_status, mailsrv_status::NameMismatch);
    assert!(v.target_verified, "the target's own certificate is fine");
    assert_eq!(v.target_chain, 2);
    assert!(!v.in_domain);
}

#[test]
fn no_probe_flag_never_connects() {
    let v = verify(
        "insecure.test",
        IMAPS,
        "mail.example.net",
        port("IMAPS"),
        MAILSRV_FLAG_NO_PROBE,
    );
    assert_eq!(v.verdict, UNVERIFIED);
    assert_eq!((v.probe_chain, v.target_chain), (0, 0));
    assert!(!v.target_verified);
}

#[test]
fn t_seed_01_and_t_auth_07_srv_id_probe_and_target_reconnect() {
    for (service, port) in [
        (IMAPS, port("IMAPS")),
        (SUBMISSIONS, port("SUBMISSIONS")),
        (SUBMISSION, port("SUBMISSION")),
    ] {
        let v = verify("hosted.test", service, "mail.example.net", port, 0);
        assert_eq!(v.verdict, AUTHENTIC, "service {service}: {}", v.detail);
        assert_eq!(v.evidence, mailsrv_evidence::ProbeSrvId as u32);
        assert!(v.target_verified);
        assert!(v.probe_chain >= 1 && v.target_chain >= 1);
    }
}

#[test]
fn t_auth_08_dns_id_probe() {
    let v = verify(
        "dnshosted.test",
        IMAPS,
        "mail.example.net",
        port("IMAPS"),
        0,
    );
    assert_eq!(v.verdict, AUTHENTIC, "{}", v.detail);
    assert_eq!(v.evidence, mailsrv_evidence::ProbeDnsId as u32);
}

#[test]
fn t_seed_02_probe_passes_but_target_name_missing() {
    let v = verify(
        "hosted.test",
        POP3S,
        "srvonly.example.net",
        port("POP3S"),
        0,
    );
    assert_eq!(v.verdict, UNVERIFIED, "{}", v.detail);
    assert!(!v.target_verified);
    assert_eq!(v.probe_status, mailsrv_status::Ok);
    assert_eq!(v.target_status, mailsrv_status::NameMismatch);
}

#[test]
fn t_seed_06_each_service_on_its_own() {
    let imaps = verify("half.test", IMAPS, "mail.example.net", port("IMAPS"), 0);
    assert_eq!(imaps.verdict, AUTHENTIC, "{}", imaps.detail);
    let subs = verify(
        "half.test",
        SUBMISSIONS,
        "mail.example.net",
        port("SUBMISSIONS"),
        0,
    );
    assert_eq!(subs.verdict, UNVERIFIED, "{}", subs.detail);
}

#[test]
fn t_auth_10_srv_id_of_another_service_does_not_count() {
    // half.test's certificate holds only _imaps.half.test: the submissions probe fails even
    // where a server would present it.
    let v = verify(
        "half.test",
        SUBMISSIONS,
        "mail.example.net",
        port("SUBMISSIONS"),
        0,
    );
    assert_ne!(v.evidence, mailsrv_evidence::ProbeSrvId as u32);
}

#[test]
fn keep_probe_hands_over_a_verified_stream() {
    let ctx = ctx();
    let mut out = ptr::null_mut();
    let st = unsafe {
        mailsrv_verify_srv_authenticity(
            ctx,
            c("hosted.test").as_ptr(),
            IMAPS,
            c("mail.example.net").as_ptr(),
            port("IMAPS"),
            MAILSRV_FLAG_KEEP_PROBE,
            &mut out,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    let mut s = ptr::null_mut();
    unsafe {
        assert_eq!(
            mailsrv_authenticity_take_probe_stream(out, &mut s),
            mailsrv_status::Ok
        );
        assert_eq!(text(mailsrv_tls_stream_sni(s)), "hosted.test", "T-SNI-06");
        assert_eq!(
            text(mailsrv_tls_stream_matched_identity(s)),
            "SRV-ID _imaps.hosted.test"
        );
        let mut again = ptr::null_mut();
        assert_eq!(
            mailsrv_authenticity_take_probe_stream(out, &mut again),
            mailsrv_status::NotFound
        );
        // The stream works: ask for CAPABILITY over it.
        let cmd = b"a1 CAPABILITY\r\n";
        let mut n = 0;
        assert_eq!(
            mailsrv_tls_stream_write(s, cmd.as_ptr(), cmd.len(), &mut n),
            mailsrv_status::Ok
        );
        let mut buf = [0u8; 4096];
        assert_eq!(
            mailsrv_tls_stream_read(s, buf.as_mut_ptr(), buf.len(), &mut n),
            mailsrv_status::Ok
        );
        assert!(String::from_utf8_lossy(&buf[..n]).contains("CAPABILITY"));
        mailsrv_tls_stream_free(s);
        mailsrv_authenticity_free(out);
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn bad_arguments_fail_before_any_traffic() {
    let ctx = ctx();
    let mut out = ptr::null_mut();
    unsafe {
        for (domain, service, target, port) in [
            ("example.com", 3u32, "mail.example.net", 993u16),
            ("", IMAPS, "mail.example.net", 993),
            ("example.com", IMAPS, "bad..name", 993),
            ("example.com", IMAPS, "mail.example.net", 0),
        ] {
            let st = mailsrv_verify_srv_authenticity(
                ctx,
                c(domain).as_ptr(),
                service,
                c(target).as_ptr(),
                port,
                0,
                &mut out,
                ptr::null_mut(),
                0,
            );
            assert_eq!(
                st,
                mailsrv_status::InvalidArg,
                "{domain} {service} {target} {port}"
            );
            assert!(out.is_null());
        }
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn autoconfigure_gives_every_endpoint_a_verdict() {
    use mailsrv::ffi::autoconfig::*;
    use mailsrv::ffi::discovery::*;
    let ctx = ctx();
    for (address, want) in [
        ("joe@example.com", AUTHENTIC),
        ("ann@insecure.test", UNVERIFIED),
    ] {
        let mut out = ptr::null_mut();
        let mut err = [0 as c_char; 256];
        let st = unsafe {
            mailsrv_autoconfigure(
                ctx,
                c(address).as_ptr(),
                0,
                &mut out,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
        unsafe {
            let d = mailsrv_autoconfig_discovery(out);
            let mut judged = 0;
            for i in 0..mailsrv_discovery_services_len(d) {
                let set = mailsrv_discovery_service_get(d, i);
                for j in 0..mailsrv_srv_set_endpoints_len(set) {
                    let v = mailsrv_autoconfig_verdict(out, i, j);
                    assert!(
                        !v.is_null(),
                        "{address} {i}/{j}: {:?}",
                        mailsrv_autoconfig_verdict_status(out, i, j)
                    );
                    assert_eq!(
                        mailsrv_authenticity_verdict(v),
                        want,
                        "{address}: {}",
                        text(mailsrv_authenticity_detail(v))
                    );
                    judged += 1;
                }
                assert!(mailsrv_autoconfig_verdict(out, i, 99).is_null());
            }
            assert_eq!(
                judged, 5,
                "{address}: five services found, pop3 not offered"
            );
            mailsrv_autoconfig_free(out);
        }
    }
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn t_dane_02_dane_ee_authenticates_a_self_signed_even_expired_key() {
    for domain in ["dane.example.com", "daneexp.example.com"] {
        let target = format!("{}.example.net", domain.split('.').next().unwrap());
        let v = verify(domain, IMAPS, &target, port("IMAPS"), 0);
        assert_eq!(v.verdict, AUTHENTIC, "{domain}: {}", v.detail);
        assert_eq!(
            v.evidence,
            mailsrv_evidence::Dane as u32,
            "{domain}: {}",
            v.detail
        );
        assert!(v.target_verified);
        assert_eq!(v.target_chain, 1);
    }
}

#[test]
fn t_dane_04_secure_tlsa_that_nothing_matches_rejects() {
    let v = verify(
        "danebad.example.com",
        IMAPS,
        "danebad.example.net",
        port("IMAPS"),
        0,
    );
    assert_eq!(v.verdict, REJECTED, "{}", v.detail);
    assert!(v.detail.contains("TLSA"), "{}", v.detail);
}

#[test]
fn t_dane_06_no_tlsa_leaves_dnssec_evidence() {
    let v = verify("example.com", IMAPS, "mail.example.net", port("IMAPS"), 0);
    assert_eq!(v.evidence, mailsrv_evidence::Dnssec as u32, "{}", v.detail);
    assert!(v.detail.contains("TLSA"), "{}", v.detail);
}
