//! Verdicts bound to the connection that carries the password (docs/SECURITY.md, "SNI
//! relay"), through the C entry points against the testbed: knotd, dovecot, postfix and the
//! scripted SNI relay (testbed/sni-relay.py). The relay sits at relay.example.net, named by
//! the unsigned (so forgeable) `_imaps._tcp.relayed.hosted.test` SRV record; it pipes SNI =
//! relayed.hosted.test to dovecot and answers any other SNI with a valid *.example.net
//! certificate and a fake IMAP server that logs every command line.

mod common;

use std::io::Read;
use std::os::raw::c_char;
use std::ptr;
use std::time::Duration;

use common::*;
use mailsrv::ffi::authenticity::*;
use mailsrv::ffi::binding::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::history::*;
use mailsrv::ffi::status::mailsrv_status;
use mailsrv::ffi::stream::*;

const IMAPS: u32 = 1;
const AUTHENTIC: u32 = mailsrv_verdict::Authentic as u32;
const UNVERIFIED: u32 = mailsrv_verdict::Unverified as u32;
const VICTIM: &str = "relayed.hosted.test";

fn ctx() -> *mut mailsrv_ctx {
    let cfg = testbed_config(0, 10_000);
    unsafe { mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()) };
    ctx_from(cfg)
}

/// An owned verdict; freed on drop.
struct Verdict(*mut mailsrv_authenticity);

impl Drop for Verdict {
    fn drop(&mut self) {
        unsafe { mailsrv_authenticity_free(self.0) }
    }
}

impl Verdict {
    fn verdict(&self) -> u32 {
        unsafe { mailsrv_authenticity_verdict(self.0) }
    }
    fn detail(&self) -> String {
        text(unsafe { mailsrv_authenticity_detail(self.0) })
    }
    fn binding(&self) -> *const mailsrv_binding {
        unsafe { mailsrv_authenticity_binding(self.0) }
    }
}

fn verify(ctx: *mut mailsrv_ctx, domain: &str, target: &str, port: u16, flags: u32) -> Verdict {
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe {
        mailsrv_verify_srv_authenticity(
            ctx,
            c(domain).as_ptr(),
            IMAPS,
            c(target).as_ptr(),
            port,
            flags,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    assert_eq!(st, mailsrv_status::Ok, "{domain}: {}", text(err.as_ptr()));
    Verdict(out)
}

/// The binding's fields, as C reads them.
#[derive(Debug, PartialEq)]
struct Fields {
    host: String,
    port: u16,
    security: u32,
    sni: Option<String>,
    identity: String,
    dane: bool,
}

fn fields(b: *const mailsrv_binding) -> Fields {
    assert!(!b.is_null(), "no binding");
    unsafe {
        let sni = mailsrv_binding_sni(b);
        Fields {
            host: text(mailsrv_binding_host(b)),
            port: mailsrv_binding_port(b),
            security: mailsrv_binding_security(b),
            sni: (!sni.is_null()).then(|| text(sni)),
            identity: text(mailsrv_binding_identity(b)),
            dane: mailsrv_binding_dane(b),
        }
    }
}

fn connect_bound(
    ctx: *mut mailsrv_ctx,
    b: *const mailsrv_binding,
) -> Result<*mut mailsrv_tls_stream, (mailsrv_status, String)> {
    let mut s = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st =
        unsafe { mailsrv_connect_with_binding(ctx, b, 0, &mut s, err.as_mut_ptr(), err.len()) };
    if st == mailsrv_status::Ok {
        assert!(!s.is_null());
        Ok(s)
    } else {
        assert!(s.is_null());
        Err((st, text(err.as_ptr())))
    }
}

fn send_line(s: *mut mailsrv_tls_stream, line: &str) {
    let bytes = format!("{line}\r\n");
    let mut n = 0;
    let st = unsafe { mailsrv_tls_stream_write(s, bytes.as_ptr(), bytes.len(), &mut n) };
    assert_eq!((st, n), (mailsrv_status::Ok, bytes.len()), "write");
}

/// Reads until a line starting with `tag ` arrives; returns everything read.
fn read_reply(s: *mut mailsrv_tls_stream, tag: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..50 {
        let mut n = 0;
        let st = unsafe { mailsrv_tls_stream_read(s, buf.as_mut_ptr(), buf.len(), &mut n) };
        assert!(st == mailsrv_status::Ok && n > 0, "read: {st:?} {n}");
        got.extend_from_slice(&buf[..n]);
        let t = String::from_utf8_lossy(&got);
        if t.lines().any(|l| l.starts_with(&format!("{tag} "))) {
            return t.into_owned();
        }
    }
    panic!("no tagged reply: {}", String::from_utf8_lossy(&got));
}

fn relay_log() -> String {
    let mut text = String::new();
    std::fs::File::open(env("MAILSRV_TEST_RELAY_LOG"))
        .expect("the relay's command log")
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The relay's log once it holds `canary`, or after a second (its handler runs on a thread
/// of its own, so a line may land a moment after the reply).
fn relay_log_after(canary: &str) -> String {
    for _ in 0..40 {
        let log = relay_log();
        if log.contains(canary) {
            return log;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    relay_log()
}

#[test]
fn sni_relay_gets_no_password_through_verify_then_connect_with_the_binding() {
    let ctx = ctx();
    let port = port("IMAPS");
    // The forged SRV answer names the relay; the probe passes (the relay pipes SNI =
    // relayed.hosted.test to the genuine provider) and so does the reconnect (its own
    // *.example.net certificate): AUTHENTIC, exactly as before the binding existed.
    let v = verify(ctx, VICTIM, "relay.example.net", port, 0);
    assert_eq!(v.verdict(), AUTHENTIC, "{}", v.detail());
    assert_eq!(
        unsafe { mailsrv_authenticity_evidence(v.0) },
        mailsrv_evidence::ProbeSrvId as u32
    );
    // ...but the binding sends the login to a session that starts with SNI = the mail
    // domain and must prove its SRV-ID: only the genuine provider can finish that.
    let b = fields(v.binding());
    assert_eq!(
        b,
        Fields {
            host: "relay.example.net".into(),
            port,
            security: mailsrv_security::ImplicitTlsImap as u32,
            sni: Some(VICTIM.into()),
            identity: format!("SRV-ID _imaps.{VICTIM}"),
            dane: false,
        }
    );
    let canary = format!("bound-{}", std::process::id());
    let s = connect_bound(ctx, v.binding()).expect("the bound login connection");
    let greeting = text(unsafe { mailsrv_tls_stream_greeting(s) });
    assert!(
        greeting.contains("Dovecot"),
        "the genuine server: {greeting}"
    );
    // The testbed's dovecot takes any user with the password "test" (failed logins would
    // earn an auth penalty that slows later tests down).
    send_line(s, &format!("a1 LOGIN {canary} test"));
    let reply = read_reply(s, "a1");
    assert!(
        reply.contains("a1 OK"),
        "the genuine server logged in: {reply}"
    );
    unsafe { mailsrv_tls_stream_free(s) };
    assert!(
        !relay_log_after(&canary).contains(&canary),
        "the relay saw the bound login"
    );

    // The control: the pre-binding flow (connect to the SRV target under its own name)
    // hands the password to the relay. This proves the relay really is an attacker.
    let unbound = format!("unbound-{}", std::process::id());
    let mut s = ptr::null_mut();
    let st = unsafe {
        mailsrv_connect_with_sni(
            ctx,
            c("relay.example.net").as_ptr(),
            port,
            mailsrv_security::ImplicitTls as u32,
            ptr::null(),
            ptr::null(),
            0,
            &mut s,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    send_line(s, &format!("a1 LOGIN {unbound} test"));
    read_reply(s, "a1");
    unsafe { mailsrv_tls_stream_free(s) };
    assert!(
        relay_log_after(&unbound).contains(&format!("a1 LOGIN {unbound} test")),
        "the unbound connection reached the relay's fake IMAP"
    );
    unsafe { mailsrv_ctx_free(ctx) };
}

/// The refresh of the relayed domain, saved as mail.example.net (SRV origin).
fn change_check(ctx: *mut mailsrv_ctx, flags: u32) -> *mut mailsrv_change {
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe {
        mailsrv_srv_change_check(
            ctx,
            c(VICTIM).as_ptr(),
            IMAPS,
            c("mail.example.net").as_ptr(),
            port("IMAPS"),
            mailsrv_origin::Srv as u32,
            ptr::null_mut(),
            0,
            0,
            flags,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
    out
}

#[test]
fn refresh_update_to_the_relay_comes_with_the_relay_proof_binding() {
    let ctx = ctx();
    let out = change_check(ctx, 0);
    let detail = text(unsafe { mailsrv_change_detail(out) });
    assert_eq!(
        unsafe { mailsrv_change_decision(out) },
        mailsrv_decision::Update as u32,
        "{detail}"
    );
    let b = unsafe { mailsrv_change_binding(out) };
    let f = fields(b);
    assert_eq!(f.sni.as_deref(), Some(VICTIM));
    assert_eq!(f.identity, format!("SRV-ID _imaps.{VICTIM}"));
    // The account stores the text; a later session reads it back and logs in with it.
    let stored = text(unsafe { mailsrv_binding_text(b) });
    unsafe { mailsrv_change_free(out) };
    let mut again = ptr::null_mut();
    let st =
        unsafe { mailsrv_binding_from_text(c(&stored).as_ptr(), &mut again, ptr::null_mut(), 0) };
    assert_eq!(st, mailsrv_status::Ok);
    assert_eq!(fields(again), f);
    let s = connect_bound(ctx, again).expect("login connection from the stored binding");
    assert!(text(unsafe { mailsrv_tls_stream_greeting(s) }).contains("Dovecot"));
    unsafe {
        mailsrv_tls_stream_free(s);
        mailsrv_binding_free(again);
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn genuine_dnssec_and_probe_verified_domains_still_log_in() {
    let ctx = ctx();
    let port = port("IMAPS");
    // DNSSEC: the target's own name.
    let v = verify(ctx, "example.com", "mail.example.net", port, 0);
    assert_eq!(v.verdict(), AUTHENTIC, "{}", v.detail());
    let f = fields(v.binding());
    assert_eq!(f.sni.as_deref(), Some("mail.example.net"));
    assert_eq!(f.identity, "DNS-ID mail.example.net");
    assert!(!f.dane, "example.com's target publishes no TLSA");
    let s = connect_bound(ctx, v.binding()).expect("DNSSEC binding");
    unsafe { mailsrv_tls_stream_free(s) };
    // Probe, target outside the mail domain: SNI = the domain, its SRV-ID.
    let v = verify(ctx, "hosted.test", "mail.example.net", port, 0);
    assert_eq!(v.verdict(), AUTHENTIC, "{}", v.detail());
    let f = fields(v.binding());
    assert_eq!(f.sni.as_deref(), Some("hosted.test"));
    assert_eq!(f.identity, "SRV-ID _imaps.hosted.test");
    let s = connect_bound(ctx, v.binding()).expect("probe binding");
    let matched = text(unsafe { mailsrv_tls_stream_matched_identity(s) });
    assert_eq!(matched, "SRV-ID _imaps.hosted.test");
    unsafe { mailsrv_tls_stream_free(s) };
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn dane_binding_makes_a_dane_ee_server_usable_and_refuses_a_pkix_impostor() {
    let ctx = ctx();
    let port = port("IMAPS");
    let v = verify(ctx, "dane.example.com", "dane.example.net", port, 0);
    assert_eq!(v.verdict(), AUTHENTIC, "{}", v.detail());
    let f = fields(v.binding());
    assert!(f.dane, "secure TLSA: the binding enforces it");
    // The DANE-EE server's certificate is self-signed: PKIX alone refuses it...
    let mut s = ptr::null_mut();
    let st = unsafe {
        mailsrv_connect_with_sni(
            ctx,
            c("dane.example.net").as_ptr(),
            port,
            mailsrv_security::ImplicitTls as u32,
            ptr::null(),
            ptr::null(),
            0,
            &mut s,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::UnknownIssuer);
    // ...the binding logs in (T-DANE-02).
    let s = connect_bound(ctx, v.binding()).expect("DANE-EE login connection");
    let matched = text(unsafe { mailsrv_tls_stream_matched_identity(s) });
    assert!(matched.contains("DANE-EE"), "{matched}");
    unsafe { mailsrv_tls_stream_free(s) };

    // danepkix.example.net publishes a secure TLSA record that the server there (the
    // relay, with a valid *.example.net certificate) does not match: PKIX says yes, the
    // DANE binding says no (T-DANE-04).
    let text_form = format!(
        "mailsrv-binding-1 service=imaps host=danepkix.example.net port={port} sni=danepkix.example.net identity=dns:danepkix.example.net dane=yes"
    );
    let mut b = ptr::null_mut();
    assert_eq!(
        unsafe { mailsrv_binding_from_text(c(&text_form).as_ptr(), &mut b, ptr::null_mut(), 0) },
        mailsrv_status::Ok
    );
    let err = connect_bound(ctx, b).expect_err("the PKIX-valid impostor");
    assert_eq!(err.0, mailsrv_status::DaneMismatch, "{}", err.1);
    let plain = text_form.replace("dane=yes", "dane=no");
    let mut p = ptr::null_mut();
    assert_eq!(
        unsafe { mailsrv_binding_from_text(c(&plain).as_ptr(), &mut p, ptr::null_mut(), 0) },
        mailsrv_status::Ok
    );
    let s = connect_bound(ctx, p).expect("the same server under PKIX alone");
    unsafe {
        mailsrv_tls_stream_free(s);
        mailsrv_binding_free(p);
        mailsrv_binding_free(b);
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn keep_probe_hands_over_the_bound_connection_for_dane_and_probe() {
    let ctx = ctx();
    let port = port("IMAPS");
    for (domain, target, sni) in [
        ("dane.example.com", "dane.example.net", "dane.example.net"),
        ("hosted.test", "mail.example.net", "hosted.test"),
    ] {
        let v = verify(ctx, domain, target, port, MAILSRV_FLAG_KEEP_PROBE);
        assert_eq!(v.verdict(), AUTHENTIC, "{domain}: {}", v.detail());
        let mut s = ptr::null_mut();
        let st = unsafe { mailsrv_authenticity_take_probe_stream(v.0, &mut s) };
        assert_eq!(st, mailsrv_status::Ok, "{domain}");
        assert!(!s.is_null(), "{domain}: the verified connection is kept");
        assert_eq!(text(unsafe { mailsrv_tls_stream_sni(s) }), sni, "{domain}");
        unsafe { mailsrv_tls_stream_free(s) };
    }
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn require_secure_never_probes_and_never_updates() {
    let ctx = ctx();
    let port = port("IMAPS");
    let v = verify(
        ctx,
        "hosted.test",
        "mail.example.net",
        port,
        MAILSRV_FLAG_REQUIRE_SECURE,
    );
    assert_eq!(v.verdict(), UNVERIFIED, "{}", v.detail());
    assert!(v.detail().contains("REQUIRE_SECURE"), "{}", v.detail());
    assert_eq!(
        unsafe { mailsrv_authenticity_chain_len(v.0, 0) },
        0,
        "no probe"
    );
    // A signed answer still passes.
    let v = verify(
        ctx,
        "example.com",
        "mail.example.net",
        port,
        MAILSRV_FLAG_REQUIRE_SECURE,
    );
    assert_eq!(v.verdict(), AUTHENTIC, "{}", v.detail());
    // The refresh of the relayed domain (an UPDATE without the flag) waits instead.
    let out = change_check(ctx, MAILSRV_FLAG_REQUIRE_SECURE);
    assert_eq!(
        unsafe { mailsrv_change_decision(out) },
        mailsrv_decision::Wait as u32,
        "{}",
        text(unsafe { mailsrv_change_detail(out) })
    );
    unsafe {
        mailsrv_change_free(out);
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn imaps_probe_against_a_submission_server_is_not_proof() {
    // postfix on the submissions port holds hosted.test's certificate with the SRV-ID
    // _imaps.hosted.test: the certificate proves the name, but the server is SMTP.
    let ctx = ctx();
    let v = verify(
        ctx,
        "hosted.test",
        "mail.example.net",
        port("SUBMISSIONS"),
        0,
    );
    assert_eq!(v.verdict(), UNVERIFIED, "{}", v.detail());
    assert_eq!(
        unsafe { mailsrv_authenticity_probe_status(v.0) },
        mailsrv_status::Protocol,
        "{}",
        v.detail()
    );
    // The same port through connect_with_sni: the generic mode accepts any protocol, the
    // IMAP one refuses SMTP.
    for (security, want) in [
        (mailsrv_security::ImplicitTls, mailsrv_status::Ok),
        (mailsrv_security::ImplicitTlsImap, mailsrv_status::Protocol),
        (mailsrv_security::ImplicitTlsSmtp, mailsrv_status::Ok),
    ] {
        let mut s = ptr::null_mut();
        let st = unsafe {
            mailsrv_connect_with_sni(
                ctx,
                c("mail.example.net").as_ptr(),
                port("SUBMISSIONS"),
                security as u32,
                ptr::null(),
                ptr::null(),
                0,
                &mut s,
                ptr::null_mut(),
                0,
            )
        };
        assert_eq!(st, want);
        unsafe { mailsrv_tls_stream_free(s) };
    }
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn binding_text_and_arguments_are_checked() {
    let mut b = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    for bad in [
        "",
        "mailsrv-binding-9 service=imaps",
        "mailsrv-binding-1 service=imaps host=a.example port=993 sni=a.example identity=dns:a.example",
    ] {
        let st = unsafe {
            mailsrv_binding_from_text(c(bad).as_ptr(), &mut b, err.as_mut_ptr(), err.len())
        };
        assert_eq!(st, mailsrv_status::InvalidArg, "{bad}");
        assert!(b.is_null());
        assert!(
            text(err.as_ptr()).starts_with("binding text"),
            "{}",
            text(err.as_ptr())
        );
    }
    assert_eq!(
        unsafe { mailsrv_binding_from_text(ptr::null(), &mut b, ptr::null_mut(), 0) },
        mailsrv_status::NullArg
    );
    let ctx = ctx();
    let mut s = ptr::null_mut();
    assert_eq!(
        unsafe { mailsrv_connect_with_binding(ctx, ptr::null(), 0, &mut s, ptr::null_mut(), 0) },
        mailsrv_status::NullArg
    );
    let good = "mailsrv-binding-1 service=imaps host=mail.example.net port=993 sni=mail.example.net identity=dns:mail.example.net dane=no";
    assert_eq!(
        unsafe { mailsrv_binding_from_text(c(good).as_ptr(), &mut b, ptr::null_mut(), 0) },
        mailsrv_status::Ok
    );
    assert_eq!(text(unsafe { mailsrv_binding_text(b) }), good);
    let mut copy = ptr::null_mut();
    assert_eq!(
        unsafe { mailsrv_binding_clone(b, &mut copy) },
        mailsrv_status::Ok
    );
    assert_eq!(fields(copy), fields(b));
    assert_eq!(
        unsafe { mailsrv_connect_with_binding(ctx, b, 1, &mut s, ptr::null_mut(), 0) },
        mailsrv_status::InvalidArg,
        "flags are reserved"
    );
    unsafe {
        mailsrv_binding_free(copy);
        mailsrv_binding_free(b);
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn autoconfigure_verdicts_carry_bindings_and_honour_require_secure() {
    use mailsrv::ffi::autoconfig::*;
    use mailsrv::ffi::discovery::*;
    let ctx = ctx();
    for (flags, want_found) in [(0, true), (MAILSRV_FLAG_REQUIRE_SECURE, false)] {
        let mut out = ptr::null_mut();
        let mut err = [0 as c_char; 256];
        let st = unsafe {
            mailsrv_autoconfigure(
                ctx,
                c("ann@relayed.hosted.test").as_ptr(),
                flags,
                &mut out,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
        let d = unsafe { mailsrv_autoconfig_discovery(out) };
        let imaps = unsafe { mailsrv_discovery_find(d, IMAPS) };
        assert!(!imaps.is_null());
        let found = unsafe { mailsrv_srv_set_endpoints_len(imaps) } > 0;
        assert_eq!(found, want_found, "flags {flags}");
        if want_found {
            let index = (0..unsafe { mailsrv_discovery_services_len(d) })
                .find(|&i| unsafe { mailsrv_discovery_service_get(d, i) } == imaps)
                .unwrap();
            let v = unsafe { mailsrv_autoconfig_verdict(out, index, 0) };
            assert_eq!(unsafe { mailsrv_authenticity_verdict(v) }, AUTHENTIC);
            let f = fields(unsafe { mailsrv_authenticity_binding(v) });
            assert_eq!(f.sni.as_deref(), Some(VICTIM));
        } else {
            // The unsigned answer is an error under REQUIRE_SECURE: nothing to judge.
            assert_eq!(
                unsafe { mailsrv_srv_set_status(imaps) },
                mailsrv_status::NoSecureAnswer
            );
        }
        unsafe { mailsrv_autoconfig_free(out) };
    }
    unsafe { mailsrv_ctx_free(ctx) };
}
