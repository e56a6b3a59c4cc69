//! Bring-your-own TLS (issue 15, point 1) through the C entry points against the testbed:
//! a real TLS client other than mailsrv (Python's ssl module, i.e. OpenSSL) makes the probe
//! (SNI = mail domain) and the reconnect (SNI = target) and hands mailsrv the chains; the
//! names-only certificate check; in-memory and additive CAs.

mod common;

use std::os::raw::c_char;
use std::path::PathBuf;
use std::process::Command;
use std::ptr;

use common::*;
use mailsrv::ffi::authenticity::*;
use mailsrv::ffi::binding::*;
use mailsrv::ffi::cert::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::identity::*;
use mailsrv::ffi::status::mailsrv_status;

const IMAPS: u32 = 1;
const POP3S: u32 = 4;
const IMAP: u32 = 2;

/// The certificates the server presents to a Python ssl client (OpenSSL) that connects to
/// `addr`:`port` with `sni`, after the IMAP STARTTLS dialogue when `starttls`. With `ca`,
/// Python validates the path against it (no host name check: Python cannot read SRV-IDs);
/// without, it accepts anything and only records what it got. Leaf only (Python < 3.13
/// cannot list the chain); the testbed's leaves hang directly off the test CA.
fn python_chain(
    addr: &str,
    port: u16,
    sni: &str,
    starttls: bool,
    ca: Option<&str>,
) -> Vec<Vec<u8>> {
    let script = r#"
import socket, ssl, sys
addr, port, sni, starttls, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
if ca:
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
else:
    ctx.verify_mode = ssl.CERT_NONE
s = socket.create_connection((addr, port), timeout=10)
if starttls:
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"a STARTTLS\r\n")
    while not f.readline().startswith(b"a "):
        pass
t = ctx.wrap_socket(s, server_hostname=sni)
print(t.getpeercert(binary_form=True).hex())
t.close()
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            addr,
            &port.to_string(),
            sni,
            if starttls { "1" } else { "0" },
            ca.unwrap_or(""),
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python ssl client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.trim();
    vec![
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
    ]
}

fn ctx_with_ca() -> *mut mailsrv_ctx {
    let cfg = testbed_config(0, 10_000);
    unsafe { mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()) };
    ctx_from(cfg)
}

/// A context that trusts nothing but the system store (the test CA is not in it).
fn ctx_system_store() -> *mut mailsrv_ctx {
    ctx_from(testbed_config(0, 10_000))
}

struct Verdict {
    verdict: u32,
    evidence: u32,
    target_verified: bool,
    detail: String,
    probe_status: mailsrv_status,
    target_status: mailsrv_status,
    binding_sni_domain: bool,
    chains: (usize, usize),
}

#[allow(clippy::too_many_arguments)]
fn with_chains(
    ctx: *mut mailsrv_ctx,
    domain: &str,
    service: u32,
    target: &str,
    port: u16,
    flags: u32,
    probe: Option<Vec<Vec<u8>>>,
    reconnect: Option<Vec<Vec<u8>>>,
) -> Result<Verdict, (mailsrv_status, String)> {
    let mut chains = ptr::null_mut();
    unsafe {
        assert_eq!(mailsrv_peer_chains_new(&mut chains), mailsrv_status::Ok);
        for (which, chain) in [(0, &probe), (1, &reconnect)] {
            for cert in chain.iter().flatten() {
                assert_eq!(
                    mailsrv_peer_chains_add_cert(chains, which, cert.as_ptr(), cert.len()),
                    mailsrv_status::Ok
                );
            }
        }
    }
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe {
        mailsrv_verify_srv_authenticity_with_chains(
            ctx,
            c(domain).as_ptr(),
            service,
            c(target).as_ptr(),
            port,
            flags,
            chains,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    unsafe { mailsrv_peer_chains_free(chains) };
    if st != mailsrv_status::Ok {
        assert!(out.is_null());
        return Err((st, text(err.as_ptr())));
    }
    let v = unsafe {
        let b = mailsrv_authenticity_binding(out);
        let sni = if b.is_null() {
            ptr::null()
        } else {
            mailsrv_binding_sni(b)
        };
        Verdict {
            verdict: mailsrv_authenticity_verdict(out),
            evidence: mailsrv_authenticity_evidence(out),
            target_verified: mailsrv_authenticity_target_verified(out),
            detail: text(mailsrv_authenticity_detail(out)),
            probe_status: mailsrv_authenticity_probe_status(out),
            target_status: mailsrv_authenticity_target_status(out),
            binding_sni_domain: !sni.is_null() && text(sni) == domain,
            chains: (
                mailsrv_authenticity_chain_len(out, 0),
                mailsrv_authenticity_chain_len(out, 1),
            ),
        }
    };
    unsafe { mailsrv_authenticity_free(out) };
    Ok(v)
}

/// mailsrv's own probe, for the comparison.
fn own_probe(
    ctx: *mut mailsrv_ctx,
    domain: &str,
    service: u32,
    target: &str,
    port: u16,
) -> (u32, u32, bool) {
    let mut out = ptr::null_mut();
    let st = unsafe {
        mailsrv_verify_srv_authenticity(
            ctx,
            c(domain).as_ptr(),
            service,
            c(target).as_ptr(),
            port,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    let v = unsafe {
        (
            mailsrv_authenticity_verdict(out),
            mailsrv_authenticity_evidence(out),
            mailsrv_authenticity_target_verified(out),
        )
    };
    unsafe { mailsrv_authenticity_free(out) };
    v
}

const AUTHENTIC: u32 = mailsrv_verdict::Authentic as u32;
const UNVERIFIED: u32 = mailsrv_verdict::Unverified as u32;
const REJECTED: u32 = mailsrv_verdict::Rejected as u32;

fn mail() -> String {
    env("MAILSRV_TEST_MAIL_ADDR")
}

#[test]
fn python_probe_and_reconnect_give_the_same_verdict_as_mailsrvs_own() {
    let ctx = ctx_with_ca();
    let port = port("IMAPS");
    // T-SEED-01 with the client's own TLS: SNI hosted.test gets the SRV-ID certificate.
    let probe = python_chain(&mail(), port, "hosted.test", false, None);
    let reconnect = python_chain(&mail(), port, "mail.example.net", false, None);
    let v = with_chains(
        ctx,
        "hosted.test",
        IMAPS,
        "mail.example.net",
        port,
        0,
        Some(probe),
        Some(reconnect),
    )
    .unwrap();
    assert_eq!(v.verdict, AUTHENTIC, "{}", v.detail);
    assert_eq!(v.evidence, mailsrv_evidence::ProbeSrvId as u32);
    assert!(v.target_verified);
    assert!(
        v.binding_sni_domain,
        "bound to SNI = the mail domain, as mailsrv's own probe"
    );
    assert_eq!(v.chains, (1, 1));
    let own = own_probe(ctx, "hosted.test", IMAPS, "mail.example.net", port);
    assert_eq!(own, (v.verdict, v.evidence, v.target_verified));
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn a_probe_chain_without_the_domain_is_unverified_like_the_own_probe() {
    let ctx = ctx_with_ca();
    let port = port("IMAPS");
    // T-AUTH-09: SNI insecure.test gets the provider's own certificate.
    let probe = python_chain(&mail(), port, "insecure.test", false, None);
    let reconnect = python_chain(&mail(), port, "mail.example.net", false, None);
    let v = with_chains(
        ctx,
        "insecure.test",
        IMAPS,
        "mail.example.net",
        port,
        0,
        Some(probe),
        Some(reconnect),
    )
    .unwrap();
    assert_eq!(v.verdict, UNVERIFIED, "{}", v.detail);
    assert_eq!(v.probe_status, mailsrv_status::NameMismatch);
    assert!(v.target_verified);
    let own = own_probe(ctx, "insecure.test", IMAPS, "mail.example.net", port);
    assert_eq!(own, (v.verdict, v.evidence, v.target_verified));
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn t_seed_02_missing_target_certificate_and_missing_chains() {
    let ctx = ctx_with_ca();
    let port = port("POP3S");
    // srvonly.example.net presents an SRV-ID for hosted.test but no DNS-ID of its own.
    let srvonly = "127.0.20.6";
    let probe = python_chain(srvonly, port, "hosted.test", false, None);
    let reconnect = python_chain(srvonly, port, "srvonly.example.net", false, None);
    let v = with_chains(
        ctx,
        "hosted.test",
        POP3S,
        "srvonly.example.net",
        port,
        0,
        Some(probe.clone()),
        Some(reconnect),
    )
    .unwrap();
    assert_eq!(v.verdict, UNVERIFIED, "{}", v.detail);
    assert!(!v.target_verified);
    assert_eq!(v.target_status, mailsrv_status::NameMismatch);
    // A connection the client could not make: no chain handed over.
    let v = with_chains(
        ctx,
        "hosted.test",
        POP3S,
        "srvonly.example.net",
        port,
        0,
        Some(probe),
        None,
    )
    .unwrap();
    assert_eq!(v.verdict, UNVERIFIED);
    assert_eq!(v.target_status, mailsrv_status::NotFound);
    let v = with_chains(
        ctx,
        "hosted.test",
        POP3S,
        "srvonly.example.net",
        port,
        0,
        None,
        None,
    )
    .unwrap();
    assert_eq!(v.probe_status, mailsrv_status::NotFound);
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn starttls_chains_from_the_clients_own_dialogue() {
    let ctx = ctx_with_ca();
    let port = port("IMAP");
    let probe = python_chain(&mail(), port, "hosted.test", true, None);
    let reconnect = python_chain(&mail(), port, "mail.example.net", true, None);
    let v = with_chains(
        ctx,
        "hosted.test",
        IMAP,
        "mail.example.net",
        port,
        0,
        Some(probe),
        Some(reconnect),
    )
    .unwrap();
    assert_eq!(v.verdict, AUTHENTIC, "{}", v.detail);
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn names_only_trusts_the_clients_path_validation() {
    // mailsrv's own store does not know the test CA; the client's stack (Python with the
    // test CA) validated the paths, so names-only gives the verdict; without the flag the
    // chains fail mailsrv's own path check.
    let ctx = ctx_system_store();
    let port = port("IMAPS");
    let ca = env("MAILSRV_TEST_CA");
    let probe = python_chain(&mail(), port, "hosted.test", false, Some(&ca));
    let reconnect = python_chain(&mail(), port, "mail.example.net", false, Some(&ca));
    let v = with_chains(
        ctx,
        "hosted.test",
        IMAPS,
        "mail.example.net",
        port,
        MAILSRV_FLAG_NAMES_ONLY,
        Some(probe.clone()),
        Some(reconnect.clone()),
    )
    .unwrap();
    assert_eq!(v.verdict, AUTHENTIC, "{}", v.detail);
    assert_eq!(v.evidence, mailsrv_evidence::ProbeSrvId as u32);
    let v = with_chains(
        ctx,
        "hosted.test",
        IMAPS,
        "mail.example.net",
        port,
        0,
        Some(probe),
        Some(reconnect),
    );
    match v {
        Ok(v) => {
            assert_eq!(v.verdict, UNVERIFIED);
            assert_eq!(v.probe_status, mailsrv_status::UnknownIssuer);
        }
        // A machine without any system CA store.
        Err((st, _)) => assert_eq!(st, mailsrv_status::NoTrustAnchors),
    }
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn dnssec_and_dane_decide_before_the_chains() {
    let ctx = ctx_with_ca();
    // DNSSEC-secure: AUTHENTIC whatever the chains say (none given).
    let v = with_chains(
        ctx,
        "example.com",
        IMAPS,
        "mail.example.net",
        port("IMAPS"),
        0,
        None,
        None,
    )
    .unwrap();
    assert_eq!(v.verdict, AUTHENTIC, "{}", v.detail);
    assert_eq!(v.evidence, mailsrv_evidence::Dnssec as u32);
    // Bogus: REJECTED.
    let v = with_chains(
        ctx,
        "bogus.test",
        IMAPS,
        "mail.example.net",
        port("IMAPS"),
        0,
        None,
        None,
    )
    .unwrap();
    assert_eq!(v.verdict, REJECTED);
    // DANE: the reconnect chain is matched against the signed TLSA records (T-DANE-02, -04).
    let dane = python_chain("127.0.20.7", port("IMAPS"), "dane.example.net", false, None);
    let v = with_chains(
        ctx,
        "dane.example.com",
        IMAPS,
        "dane.example.net",
        port("IMAPS"),
        0,
        None,
        Some(dane.clone()),
    )
    .unwrap();
    assert_eq!(v.verdict, AUTHENTIC, "{}", v.detail);
    assert_eq!(v.evidence, mailsrv_evidence::Dane as u32);
    let v = with_chains(
        ctx,
        "danebad.example.com",
        IMAPS,
        "danebad.example.net",
        port("IMAPS"),
        0,
        None,
        Some(dane),
    )
    .unwrap();
    assert_eq!(v.verdict, REJECTED, "{}", v.detail);
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn chain_arguments_are_checked() {
    let ctx = ctx_with_ca();
    let mut chains = ptr::null_mut();
    unsafe {
        assert_eq!(mailsrv_peer_chains_new(&mut chains), mailsrv_status::Ok);
        let der = [0x30u8, 0x00];
        assert_eq!(
            mailsrv_peer_chains_add_cert(chains, 2, der.as_ptr(), 2),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_peer_chains_add_cert(chains, 0, der.as_ptr(), 0),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_peer_chains_add_cert(chains, 0, ptr::null(), 2),
            mailsrv_status::NullArg
        );
        for _ in 0..16 {
            assert_eq!(
                mailsrv_peer_chains_add_cert(chains, 0, der.as_ptr(), 2),
                mailsrv_status::Ok
            );
        }
        assert_eq!(
            mailsrv_peer_chains_add_cert(chains, 0, der.as_ptr(), 2),
            mailsrv_status::InvalidArg
        );
        assert_eq!(mailsrv_peer_chains_len(chains, 0), 16);
        assert_eq!(mailsrv_peer_chains_len(chains, 1), 0);
        let mut out = ptr::null_mut();
        // KEEP_PROBE: there is no mailsrv connection to keep.
        let st = mailsrv_verify_srv_authenticity_with_chains(
            ctx,
            c("hosted.test").as_ptr(),
            IMAPS,
            c("mail.example.net").as_ptr(),
            993,
            MAILSRV_FLAG_KEEP_PROBE,
            chains,
            &mut out,
            ptr::null_mut(),
            0,
        );
        assert_eq!(st, mailsrv_status::InvalidArg);
        // NAMES_ONLY belongs to the chains call, not to mailsrv's own probe.
        let st = mailsrv_verify_srv_authenticity(
            ctx,
            c("hosted.test").as_ptr(),
            IMAPS,
            c("mail.example.net").as_ptr(),
            993,
            MAILSRV_FLAG_NAMES_ONLY,
            &mut out,
            ptr::null_mut(),
            0,
        );
        assert_eq!(st, mailsrv_status::InvalidArg);
        let st = mailsrv_verify_srv_authenticity_with_chains(
            ctx,
            c("hosted.test").as_ptr(),
            IMAPS,
            c("mail.example.net").as_ptr(),
            993,
            0,
            ptr::null(),
            &mut out,
            ptr::null_mut(),
            0,
        );
        assert_eq!(st, mailsrv_status::NullArg);
        mailsrv_peer_chains_free(chains);
        mailsrv_ctx_free(ctx);
    }
}

// ------------------------------------------------------------------ names-only cert check

fn pem_chain(name: &str) -> Vec<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let path = PathBuf::from(env("MAILSRV_TEST_CERTS")).join(format!("{name}.pem"));
    CertificateDer::pem_file_iter(&path)
        .unwrap()
        .map(|c| c.unwrap().to_vec())
        .collect()
}

fn cert_check(
    ctx: *mut mailsrv_ctx,
    chain: &[Vec<u8>],
    srv: (&str, &str),
    flags: u32,
) -> (mailsrv_status, usize, String) {
    let mut id = ptr::null_mut();
    unsafe {
        mailsrv_identity_new(&mut id);
        mailsrv_identity_add_srv_id(id, c(srv.0).as_ptr(), c(srv.1).as_ptr());
    }
    let ptrs: Vec<*const u8> = chain.iter().map(|c| c.as_ptr()).collect();
    let lens: Vec<usize> = chain.iter().map(|c| c.len()).collect();
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe {
        mailsrv_cert_check(
            ctx,
            ptrs.as_ptr(),
            lens.as_ptr(),
            chain.len(),
            id,
            flags,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    let path_len = if out.is_null() {
        usize::MAX
    } else {
        unsafe { mailsrv_cert_result_path_len(out) }
    };
    unsafe {
        mailsrv_cert_result_free(out);
        mailsrv_identity_free(id);
    }
    (st, path_len, text(err.as_ptr()))
}

#[test]
fn names_only_cert_check_skips_the_path_but_not_the_names() {
    let ctx = ctx_system_store();
    // The test CA is unknown to the system store: a full check fails on the path...
    let chain = pem_chain("srvid-imaps-example-com");
    let (st, _, _) = cert_check(ctx, &chain, ("imaps", "example.com"), 0);
    assert!(
        matches!(
            st,
            mailsrv_status::UnknownIssuer | mailsrv_status::NoTrustAnchors
        ),
        "{st:?}"
    );
    // ...the names-only check passes, with no path validated.
    let (st, path_len, why) = cert_check(
        ctx,
        &chain,
        ("imaps", "example.com"),
        MAILSRV_FLAG_NAMES_ONLY,
    );
    assert_eq!(st, mailsrv_status::Ok, "{why}");
    assert_eq!(path_len, 0);
    // Names still count: a wrong SRV-ID is a mismatch.
    let (st, _, _) = cert_check(
        ctx,
        &chain,
        ("imaps", "example.org"),
        MAILSRV_FLAG_NAMES_ONLY,
    );
    assert_eq!(st, mailsrv_status::NameMismatch);
    // Expired and self-signed pass names-only (the caller's stack judged dates and path).
    for name in ["expired", "selfsigned"] {
        let mut id = ptr::null_mut();
        unsafe {
            mailsrv_identity_new(&mut id);
            mailsrv_identity_add_dns_id(id, c("mail.example.net").as_ptr());
        }
        let chain = pem_chain(name);
        let ptrs: Vec<*const u8> = chain.iter().map(|c| c.as_ptr()).collect();
        let lens: Vec<usize> = chain.iter().map(|c| c.len()).collect();
        let mut out = ptr::null_mut();
        let st = unsafe {
            mailsrv_cert_check(
                ctx,
                ptrs.as_ptr(),
                lens.as_ptr(),
                chain.len(),
                id,
                MAILSRV_FLAG_NAMES_ONLY,
                &mut out,
                ptr::null_mut(),
                0,
            )
        };
        assert_eq!(st, mailsrv_status::Ok, "{name}");
        unsafe {
            mailsrv_cert_result_free(out);
            mailsrv_identity_free(id);
        }
    }
    // The name constraints of the intermediates given still bind SRV-IDs (webpki's and
    // OpenSSL's checks never read them).
    let chain = pem_chain("nc-srvid-outside");
    let (st, _, why) = cert_check(
        ctx,
        &chain,
        ("imaps", "example.com"),
        MAILSRV_FLAG_NAMES_ONLY,
    );
    assert_eq!(st, mailsrv_status::NameConstraint, "{why}");
    assert!(
        why.contains("NC Intermediate") || why.contains("constraint"),
        "{why}"
    );
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn names_only_is_refused_as_a_context_flag() {
    let mut cfg = ptr::null_mut();
    unsafe {
        mailsrv_config_new(&mut cfg);
        assert_eq!(
            mailsrv_config_set_flags(cfg, MAILSRV_FLAG_NAMES_ONLY),
            mailsrv_status::InvalidArg
        );
        mailsrv_config_free(cfg);
    }
}

// ------------------------------------------------------------------ CA handling

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn in_memory_ca_replaces_or_adds_to_the_system_store() {
    let ca_pem = read(&env("MAILSRV_TEST_CA"));
    let chain = pem_chain("srvid-imaps-example-com");
    for mode in [0u32, 1] {
        let mut cfg = ptr::null_mut();
        let mut err = [0 as c_char; 256];
        unsafe {
            mailsrv_config_new(&mut cfg);
            mailsrv_config_set_nameserver(cfg, c("127.0.0.1").as_ptr());
            assert_eq!(mailsrv_config_set_ca_mode(cfg, mode), mailsrv_status::Ok);
            assert_eq!(
                mailsrv_config_add_ca_pem(
                    cfg,
                    ca_pem.as_ptr(),
                    ca_pem.len(),
                    err.as_mut_ptr(),
                    err.len()
                ),
                mailsrv_status::Ok,
                "{}",
                text(err.as_ptr())
            );
        }
        let ctx = ctx_from(cfg);
        let (st, path_len, why) = cert_check(ctx, &chain, ("imaps", "example.com"), 0);
        assert_eq!(st, mailsrv_status::Ok, "mode {mode}: {why}");
        assert_eq!(path_len, 1);
        unsafe { mailsrv_ctx_free(ctx) };
    }
}

#[test]
fn additive_ca_file_keeps_the_system_store() {
    // The CA file holds "Other CA", which signs `untrusted`; the test CA signs the rest.
    let certs = env("MAILSRV_TEST_CERTS");
    let other = format!("{certs}/other-ca.crt");
    let mut cfg = ptr::null_mut();
    unsafe {
        mailsrv_config_new(&mut cfg);
        mailsrv_config_set_nameserver(cfg, c("127.0.0.1").as_ptr());
        mailsrv_config_set_ca_file(cfg, c(&other).as_ptr());
    }
    // Replace (the default): only Other CA is trusted.
    let ctx = ctx_from(cfg);
    let mut id = ptr::null_mut();
    unsafe {
        mailsrv_identity_new(&mut id);
        mailsrv_identity_add_dns_id(id, c("mail.example.net").as_ptr());
    }
    let check = |ctx, name: &str| {
        let chain = pem_chain(name);
        let ptrs: Vec<*const u8> = chain.iter().map(|c| c.as_ptr()).collect();
        let lens: Vec<usize> = chain.iter().map(|c| c.len()).collect();
        let mut out = ptr::null_mut();
        let st = unsafe {
            mailsrv_cert_check(
                ctx,
                ptrs.as_ptr(),
                lens.as_ptr(),
                chain.len(),
                id,
                0,
                &mut out,
                ptr::null_mut(),
                0,
            )
        };
        unsafe { mailsrv_cert_result_free(out) };
        st
    };
    assert_eq!(check(ctx, "untrusted"), mailsrv_status::Ok);
    assert_eq!(
        check(ctx, "dnsid-mail-example-net"),
        mailsrv_status::UnknownIssuer
    );
    unsafe { mailsrv_ctx_free(ctx) };
    // Add: the file and the in-memory test CA join the system store; all are trusted.
    let ca_pem = read(&env("MAILSRV_TEST_CA"));
    unsafe {
        mailsrv_config_new(&mut cfg);
        mailsrv_config_set_nameserver(cfg, c("127.0.0.1").as_ptr());
        mailsrv_config_set_ca_file(cfg, c(&other).as_ptr());
        mailsrv_config_add_ca_pem(cfg, ca_pem.as_ptr(), ca_pem.len(), ptr::null_mut(), 0);
        assert_eq!(
            mailsrv_config_set_ca_mode(cfg, MAILSRV_CA_MODE_ADD_VALUE),
            mailsrv_status::Ok
        );
    }
    let ctx = ctx_from(cfg);
    assert_eq!(check(ctx, "untrusted"), mailsrv_status::Ok);
    assert_eq!(check(ctx, "dnsid-mail-example-net"), mailsrv_status::Ok);
    unsafe {
        mailsrv_ctx_free(ctx);
        mailsrv_identity_free(id);
    }
}

const MAILSRV_CA_MODE_ADD_VALUE: u32 = mailsrv_ca_mode::Add as u32;

#[test]
fn bad_in_memory_cas_are_refused_at_once() {
    let mut cfg = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    unsafe {
        mailsrv_config_new(&mut cfg);
        for bad in [
            &b"hello"[..],
            b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
        ] {
            assert_eq!(
                mailsrv_config_add_ca_pem(
                    cfg,
                    bad.as_ptr(),
                    bad.len(),
                    err.as_mut_ptr(),
                    err.len()
                ),
                mailsrv_status::InvalidArg
            );
            assert!(!text(err.as_ptr()).is_empty());
        }
        assert_eq!(
            mailsrv_config_add_ca_pem(cfg, ptr::null(), 3, ptr::null_mut(), 0),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_config_set_ca_mode(cfg, 2),
            mailsrv_status::InvalidArg
        );
        mailsrv_config_free(cfg);
    }
}

// ------------------------------------------------------------------ connect options

use mailsrv::ffi::stream::*;

const IMPLICIT_TLS: u32 = 1;
const STARTTLS_IMAP: u32 = 2;

fn spki(der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    assert_eq!(
        unsafe { mailsrv_cert_spki_sha256(der.as_ptr(), der.len(), out.as_mut_ptr()) },
        mailsrv_status::Ok
    );
    out
}

/// Connects with `opts` (freed here); the stream's matched identity, or the status and reason.
fn connect_with(
    ctx: *mut mailsrv_ctx,
    opts: *mut mailsrv_connect_opts,
) -> Result<(String, String), (mailsrv_status, String)> {
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe { mailsrv_connect(ctx, opts, &mut out, err.as_mut_ptr(), err.len()) };
    unsafe { mailsrv_connect_opts_free(opts) };
    if st != mailsrv_status::Ok {
        return Err((st, text(err.as_ptr())));
    }
    let r = unsafe {
        (
            text(mailsrv_tls_stream_matched_identity(out)),
            text(mailsrv_tls_stream_peer_address(out)),
        )
    };
    unsafe { mailsrv_tls_stream_free(out) };
    Ok(r)
}

fn opts(host: &str, port: u16, security: u32, address: Option<&str>) -> *mut mailsrv_connect_opts {
    let mut o = ptr::null_mut();
    unsafe {
        assert_eq!(
            mailsrv_connect_opts_new(c(host).as_ptr(), port, security, &mut o),
            mailsrv_status::Ok
        );
        if let Some(a) = address {
            assert_eq!(
                mailsrv_connect_opts_add_address(o, c(a).as_ptr(), ptr::null_mut(), 0),
                mailsrv_status::Ok
            );
        }
    }
    o
}

#[test]
fn pinned_keys_on_top_of_the_usual_check() {
    let ctx = ctx_with_ca();
    let leaf = &pem_chain("dnsid-mail-example-net")[0];
    let good = spki(leaf);
    let o = opts(
        "mail.example.net",
        port("IMAPS"),
        IMPLICIT_TLS,
        Some(&mail()),
    );
    unsafe {
        assert_eq!(
            mailsrv_connect_opts_add_pin_sha256(o, good.as_ptr(), 32),
            mailsrv_status::Ok
        )
    };
    let (matched, _) = connect_with(ctx, o).unwrap();
    assert!(matched.contains("mail.example.net"), "{matched}");
    // Another key only: the valid certificate is refused.
    let other = [7u8; 32];
    let o = opts(
        "mail.example.net",
        port("IMAPS"),
        IMPLICIT_TLS,
        Some(&mail()),
    );
    unsafe { mailsrv_connect_opts_add_pin_sha256(o, other.as_ptr(), 32) };
    let (st, why) = connect_with(ctx, o).unwrap_err();
    assert_eq!(st, mailsrv_status::PinMismatch, "{why}");
    // Require never loosens: a pinned key with a wrong name still fails on the name.
    let o = opts(
        "wrong.example.org",
        port("IMAPS"),
        IMPLICIT_TLS,
        Some(&mail()),
    );
    unsafe { mailsrv_connect_opts_add_pin_sha256(o, good.as_ptr(), 32) };
    assert_eq!(
        connect_with(ctx, o).unwrap_err().0,
        mailsrv_status::NameMismatch
    );
    unsafe {
        let o = opts("mail.example.net", 993, IMPLICIT_TLS, None);
        assert_eq!(
            mailsrv_connect_opts_add_pin_sha256(o, good.as_ptr(), 31),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_connect_opts_add_pin_sha256(o, ptr::null(), 32),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect_opts_set_pin_mode(o, 2),
            mailsrv_status::InvalidArg
        );
        mailsrv_connect_opts_free(o);
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn a_pinned_key_can_trust_a_self_signed_server() {
    let ctx = ctx_with_ca();
    // 127.0.20.7 serves a self-signed certificate (not from the test CA).
    let o = opts(
        "dane.example.net",
        port("IMAPS"),
        IMPLICIT_TLS,
        Some("127.0.20.7"),
    );
    assert_eq!(
        connect_with(ctx, o).unwrap_err().0,
        mailsrv_status::UnknownIssuer
    );
    let hex = env("MAILSRV_TEST_DANE_TLSA");
    let pin: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    for (mode, want) in [(0u32, Err(mailsrv_status::UnknownIssuer)), (1, Ok(()))] {
        let o = opts(
            "dane.example.net",
            port("IMAPS"),
            IMPLICIT_TLS,
            Some("127.0.20.7"),
        );
        unsafe {
            mailsrv_connect_opts_add_pin_sha256(o, pin.as_ptr(), 32);
            assert_eq!(
                mailsrv_connect_opts_set_pin_mode(o, mode),
                mailsrv_status::Ok
            );
        }
        match (connect_with(ctx, o), want) {
            (Ok((matched, _)), Ok(())) => assert!(matched.contains("pinned"), "{matched}"),
            (Err((st, _)), Err(w)) => assert_eq!(st, w),
            (got, w) => panic!("mode {mode}: {got:?}, wanted {w:?}"),
        }
    }
    // TRUST: another certificate still gets the usual check (and passes it).
    let o = opts(
        "mail.example.net",
        port("IMAPS"),
        IMPLICIT_TLS,
        Some(&mail()),
    );
    unsafe {
        mailsrv_connect_opts_add_pin_sha256(o, pin.as_ptr(), 32);
        mailsrv_connect_opts_set_pin_mode(o, 1);
    }
    assert!(connect_with(ctx, o).is_ok());
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn a_per_connection_ca_replaces_the_contexts() {
    let ctx = ctx_system_store();
    let ca = read(&env("MAILSRV_TEST_CA"));
    let o = opts(
        "mail.example.net",
        port("IMAPS"),
        IMPLICIT_TLS,
        Some(&mail()),
    );
    let mut err = [0 as c_char; 256];
    unsafe {
        assert_eq!(
            mailsrv_connect_opts_add_ca_pem(o, ca.as_ptr(), ca.len(), err.as_mut_ptr(), err.len()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_connect_opts_add_ca_pem(o, b"junk".as_ptr(), 4, err.as_mut_ptr(), err.len()),
            mailsrv_status::InvalidArg
        );
    }
    assert!(connect_with(ctx, o).is_ok());
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn connect_over_a_socket_the_client_opened() {
    let ctx = ctx_with_ca();
    let tcp = std::net::TcpStream::connect((mail().as_str(), port("IMAPS"))).unwrap();
    use std::os::fd::AsRawFd;
    let o = opts("mail.example.net", port("IMAPS"), IMPLICIT_TLS, None);
    unsafe {
        assert_eq!(
            mailsrv_connect_opts_set_fd(o, tcp.as_raw_fd()),
            mailsrv_status::Ok
        )
    };
    let (matched, peer) = connect_with(ctx, o).unwrap();
    assert!(matched.contains("mail.example.net"));
    assert_eq!(peer, format!("{}:{}", mail(), port("IMAPS")));
    drop(tcp);
    // Not a socket; not connected.
    let file = std::fs::File::open("/dev/null").unwrap();
    let o = opts("mail.example.net", port("IMAPS"), IMPLICIT_TLS, None);
    unsafe { mailsrv_connect_opts_set_fd(o, file.as_raw_fd()) };
    let (st, why) = connect_with(ctx, o).unwrap_err();
    assert_eq!(st, mailsrv_status::InvalidArg);
    assert!(why.contains("not a socket"), "{why}");
    let unconnected = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let o = opts("mail.example.net", port("IMAPS"), IMPLICIT_TLS, None);
    unsafe { mailsrv_connect_opts_set_fd(o, unconnected.as_raw_fd()) };
    assert!(connect_with(ctx, o).unwrap_err().1.contains("stream"));
    unsafe {
        let o = opts("mail.example.net", 993, IMPLICIT_TLS, None);
        assert_eq!(
            mailsrv_connect_opts_set_fd(o, -2),
            mailsrv_status::InvalidArg
        );
        assert_eq!(mailsrv_connect_opts_set_fd(o, -1), mailsrv_status::Ok);
        mailsrv_connect_opts_free(o);
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn starttls_to_a_plain_fd_for_the_clients_own_tls() {
    let ctx = ctx_with_ca();
    let o = opts(
        "mail.example.net",
        port("IMAP"),
        STARTTLS_IMAP,
        Some(&mail()),
    );
    let mut plain = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    let st =
        unsafe { mailsrv_connect_starttls_plain(ctx, o, &mut plain, err.as_mut_ptr(), err.len()) };
    assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
    let greeting = unsafe { text(mailsrv_plain_socket_greeting(plain)) };
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let fd = unsafe { mailsrv_plain_socket_take_fd(plain) };
    assert!(fd >= 0);
    assert_eq!(unsafe { mailsrv_plain_socket_take_fd(plain) }, -1);
    unsafe { mailsrv_plain_socket_free(plain) };
    // Python's ssl (OpenSSL) makes the handshake on the handed-over descriptor.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let script = r#"
import socket, ssl, sys
fd, ca = int(sys.argv[1]), sys.argv[2]
s = socket.socket(fileno=fd)
ctx = ssl.create_default_context(cafile=ca)
t = ctx.wrap_socket(s, server_hostname="mail.example.net")
t.sendall(b"a CAPABILITY\r\n")
f = t.makefile("rb")
lines = []
while True:
    l = f.readline()
    lines.append(l.decode().strip())
    if l.startswith(b"a "):
        break
print(t.version(), "|", " ".join(lines))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &fd.to_string(), &env("MAILSRV_TEST_CA")])
        .output()
        .unwrap();
    unsafe { libc::close(fd) };
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("a OK") && said.contains("CAPABILITY"),
        "{said}"
    );
    // Implicit TLS has no STARTTLS to stop at.
    let o = opts(
        "mail.example.net",
        port("IMAPS"),
        IMPLICIT_TLS,
        Some(&mail()),
    );
    let st = unsafe { mailsrv_connect_starttls_plain(ctx, o, &mut plain, ptr::null_mut(), 0) };
    assert_eq!(st, mailsrv_status::InvalidArg);
    assert!(plain.is_null());
    unsafe {
        mailsrv_connect_opts_free(o);
        mailsrv_ctx_free(ctx);
    }
}

/// A TLS server (Python) that requires a client certificate signed by `client_ca` and
/// reports the subject it got; greets like IMAP. Returns (port, child).
fn client_cert_server(
    dir: &std::path::Path,
    client_ca: &std::path::Path,
) -> (u16, std::process::Child) {
    let certs = env("MAILSRV_TEST_CERTS");
    let script = r#"
import socket, ssl, sys
crt, key, ca, report = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(crt, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
print(srv.getsockname()[1], flush=True)
srv.settimeout(30)
for _ in range(2):
    c, _ = srv.accept()
    try:
        t = ctx.wrap_socket(c, server_side=True)
        subject = dict(x[0] for x in t.getpeercert()["subject"])["commonName"]
        open(report, "a").write(subject + "\n")
        t.sendall(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
        t.recv(100)
        t.close()
    except Exception as e:
        open(report, "a").write("refused: %s\n" % e)
        c.close()
"#;
    let mut child = Command::new("python3")
        .args([
            "-c",
            script,
            &format!("{certs}/dnsid-mail-example-net.crt"),
            &format!("{certs}/dnsid-mail-example-net.key"),
            client_ca.to_str().unwrap(),
            dir.join("report").to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (line.trim().parse().unwrap(), child)
}

#[test]
fn a_client_certificate_for_a_server_that_requires_one() {
    let dir = std::env::temp_dir().join(format!("mailsrv-clientcert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = (dir.join("client.crt"), dir.join("client.key"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=mailsrv test client", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let (port, mut server) = client_cert_server(&dir, &crt);
    let ctx = ctx_with_ca();
    // Without a certificate the server refuses the handshake.
    let o = opts("mail.example.net", port, IMPLICIT_TLS, Some("127.0.0.1"));
    assert!(connect_with(ctx, o).is_err());
    // With one, it is presented and accepted.
    let (cert_pem, key_pem) = (read(crt.to_str().unwrap()), read(key.to_str().unwrap()));
    let o = opts("mail.example.net", port, IMPLICIT_TLS, Some("127.0.0.1"));
    let mut err = [0 as c_char; 256];
    unsafe {
        assert_eq!(
            mailsrv_connect_opts_set_client_cert(
                o,
                cert_pem.as_ptr(),
                cert_pem.len(),
                key_pem.as_ptr(),
                key_pem.len(),
                err.as_mut_ptr(),
                err.len()
            ),
            mailsrv_status::Ok,
            "{}",
            text(err.as_ptr())
        );
    }
    connect_with(ctx, o).unwrap();
    let _ = server.wait();
    let report = std::fs::read_to_string(dir.join("report")).unwrap();
    assert!(
        report.lines().any(|l| l == "mailsrv test client"),
        "{report}"
    );
    // A key that does not fit the certificate is refused at once.
    let other_key = read(&format!(
        "{}/dnsid-mail-example-net.key",
        env("MAILSRV_TEST_CERTS")
    ));
    let o = opts("mail.example.net", port, IMPLICIT_TLS, None);
    unsafe {
        let st = mailsrv_connect_opts_set_client_cert(
            o,
            cert_pem.as_ptr(),
            cert_pem.len(),
            other_key.as_ptr(),
            other_key.len(),
            err.as_mut_ptr(),
            err.len(),
        );
        assert_eq!(st, mailsrv_status::InvalidArg, "{}", text(err.as_ptr()));
        assert_eq!(
            mailsrv_connect_opts_set_client_cert(
                o,
                cert_pem.as_ptr(),
                cert_pem.len(),
                ptr::null(),
                0,
                ptr::null_mut(),
                0
            ),
            mailsrv_status::NullArg
        );
        mailsrv_connect_opts_free(o);
        mailsrv_ctx_free(ctx);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------ the async twins

use mailsrv::ffi::request::mailsrv_request_id;
use std::os::raw::c_void;
use std::sync::mpsc;

type Done = mpsc::Sender<(mailsrv_status, usize)>;

unsafe extern "C" fn auth_done(
    ud: *mut c_void,
    _id: mailsrv_request_id,
    st: mailsrv_status,
    a: *mut mailsrv_authenticity,
    _detail: *const c_char,
) {
    let tx = unsafe { Box::from_raw(ud.cast::<Done>()) };
    let verdict = if a.is_null() {
        0
    } else {
        (unsafe { mailsrv_authenticity_verdict(a) }) as usize
    };
    unsafe { mailsrv_authenticity_free(a) };
    let _ = tx.send((st, verdict));
}

unsafe extern "C" fn plain_done(
    ud: *mut c_void,
    _id: mailsrv_request_id,
    st: mailsrv_status,
    p: *mut mailsrv_plain_socket,
    _detail: *const c_char,
) {
    let tx = unsafe { Box::from_raw(ud.cast::<Done>()) };
    let fd = if p.is_null() {
        -1
    } else {
        unsafe { mailsrv_plain_socket_take_fd(p) }
    };
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
    unsafe { mailsrv_plain_socket_free(p) };
    let _ = tx.send((st, fd.max(0) as usize));
}

#[test]
fn async_chains_and_async_plain_starttls() {
    let ctx = ctx_with_ca();
    let port = port("IMAPS");
    let probe = python_chain(&mail(), port, "hosted.test", false, None);
    let reconnect = python_chain(&mail(), port, "mail.example.net", false, None);
    let mut chains = ptr::null_mut();
    unsafe {
        mailsrv_peer_chains_new(&mut chains);
        mailsrv_peer_chains_add_cert(chains, 0, probe[0].as_ptr(), probe[0].len());
        mailsrv_peer_chains_add_cert(chains, 1, reconnect[0].as_ptr(), reconnect[0].len());
    }
    let (tx, rx) = mpsc::channel::<(mailsrv_status, usize)>();
    let ud = Box::into_raw(Box::new(tx.clone())).cast::<c_void>();
    let st = unsafe {
        mailsrv_verify_srv_authenticity_with_chains_async(
            ctx,
            c("hosted.test").as_ptr(),
            IMAPS,
            c("mail.example.net").as_ptr(),
            port,
            0,
            chains,
            Some(auth_done),
            ud,
            ptr::null_mut(),
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    unsafe { mailsrv_peer_chains_free(chains) }; // copied by the call
    let (st, verdict) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(st, mailsrv_status::Ok);
    assert_eq!(verdict as u32, AUTHENTIC);

    let o = opts(
        "mail.example.net",
        common::port("IMAP"),
        STARTTLS_IMAP,
        Some(&mail()),
    );
    let ud = Box::into_raw(Box::new(tx)).cast::<c_void>();
    let st = unsafe {
        mailsrv_connect_starttls_plain_async(ctx, o, Some(plain_done), ud, ptr::null_mut())
    };
    assert_eq!(st, mailsrv_status::Ok);
    unsafe { mailsrv_connect_opts_free(o) };
    let (st, fd) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(st, mailsrv_status::Ok);
    assert!(fd > 0);
    unsafe { mailsrv_ctx_free(ctx) };
}
