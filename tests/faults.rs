//! Fault injection (issue 7) through the C entry points, against the testbed's knotd.
//!
//! A user-space DNS proxy (tokio, UDP and TCP on one port; this kernel has no netem) sits
//! between the library and knotd and, for chosen query names and types, delays, drops,
//! truncates (TC=1 over UDP), answers SERVFAIL or answers with synthesised records (CNAME
//! loops and chains, a huge SRV RRset, all in the unsigned insecure.test so that the
//! validator proves them insecure rather than bogus). Scripted TCP servers reset or stall
//! in the middle of a TLS handshake or a STARTTLS dialogue. Every case asserts a precise
//! status and an upper bound on the time it took.
//!
//! Run with `testbed/run.sh cargo test --features test-hooks --test faults`.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::os::raw::c_char;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use common::dns_proxy::*;
use common::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::discovery::*;
use mailsrv::ffi::status::mailsrv_status;
use mailsrv::ffi::stream::*;

const FOUND: u32 = 1;
const LOOKUP_FAILED: u32 = 4;
const SECURE: u32 = 1;
const INSECURE: u32 = 2;

const T_SRV: u16 = 33;
const T_CNAME: u16 = 5;
const T_DNSKEY: u16 = 48;

// ------------------------------------------------------------------ DNS faults

#[test]
fn proxy_passes_through_unchanged() {
    let p = Proxy::start(vec![]);
    let r = discover_imaps(&p, "example.com", 5000);
    assert_eq!(
        (r.state, r.status, r.dnssec),
        (FOUND, mailsrv_status::Ok, SECURE),
        "{}",
        r.detail
    );
    assert!(p.stats.udp.load(Ordering::SeqCst) > 0);
}

#[test]
fn dropped_srv_queries_time_out_within_the_deadline() {
    let p = Proxy::start(vec![rule(
        "_imaps._tcp.example.com",
        Some(T_SRV),
        Action::Drop,
    )]);
    let r = discover_imaps(&p, "example.com", 1500);
    assert_eq!(r.state, LOOKUP_FAILED, "{}", r.detail);
    assert_eq!(r.status, mailsrv_status::Timeout, "{}", r.detail);
    assert!(p.hits(0) >= 1);
    within(r.took, 1500);
}

#[test]
fn a_dead_path_for_everything_is_timeout_not_no_record() {
    let p = Proxy::start(vec![rule("*", None, Action::Drop)]);
    let r = discover_imaps(&p, "example.com", 1200);
    assert_eq!(r.state, LOOKUP_FAILED, "{}", r.detail);
    assert_eq!(r.status, mailsrv_status::Timeout, "{}", r.detail);
    within(r.took, 1200);
}

#[test]
fn slow_path_within_budget_still_validates() {
    // 150 ms on every exchange (the chain of trust included): slow, but well inside 6 s.
    let p = Proxy::start(vec![rule(
        "*",
        None,
        Action::Delay(Duration::from_millis(150)),
    )]);
    let r = discover_imaps(&p, "example.com", 6000);
    assert_eq!(
        (r.state, r.status, r.dnssec),
        (FOUND, mailsrv_status::Ok, SECURE),
        "{}",
        r.detail
    );
    assert_eq!(r.endpoints, 1);
    assert!(r.took >= Duration::from_millis(150), "{:?}", r.took);
    within(r.took, 6000);
}

#[test]
fn slow_path_beyond_the_deadline_is_timeout() {
    let p = Proxy::start(vec![rule(
        "_imaps._tcp.example.com",
        Some(T_SRV),
        Action::Delay(Duration::from_secs(4)),
    )]);
    let r = discover_imaps(&p, "example.com", 1000);
    assert_eq!(
        (r.state, r.status),
        (LOOKUP_FAILED, mailsrv_status::Timeout),
        "{}",
        r.detail
    );
    within(r.took, 1000);
}

#[test]
fn servfail_is_servfail_never_no_record() {
    let p = Proxy::start(vec![rule(
        "_imaps._tcp.example.com",
        Some(T_SRV),
        Action::ServFail,
    )]);
    let r = discover_imaps(&p, "example.com", 3000);
    assert_eq!(
        (r.state, r.status),
        (LOOKUP_FAILED, mailsrv_status::Servfail),
        "{}",
        r.detail
    );
    within(r.took, 3000);
}

#[test]
fn dropped_dnskey_queries_are_indeterminate_not_bogus() {
    // The SRV answer arrives, but example.com's keys cannot be fetched: the state of the
    // answer is unknown (RFC 4033 §5 "indeterminate"), which is not proof of an attack.
    let p = Proxy::start(vec![rule("example.com", Some(T_DNSKEY), Action::Drop)]);
    let r = discover_imaps(&p, "example.com", 2500);
    assert_eq!(r.state, LOOKUP_FAILED, "{}", r.detail);
    assert_eq!(r.status, mailsrv_status::Indeterminate, "{}", r.detail);
    assert_ne!(r.dnssec, 5, "never BOGUS for a network failure");
    assert!(p.hits(0) >= 1);
    within(r.took, 2500);
}

#[test]
fn truncated_udp_answer_falls_back_to_tcp() {
    let p = Proxy::start(vec![rule(
        "_imaps._tcp.example.com",
        Some(T_SRV),
        Action::Truncate,
    )]);
    let r = discover_imaps(&p, "example.com", 5000);
    assert_eq!(
        (r.state, r.status, r.dnssec),
        (FOUND, mailsrv_status::Ok, SECURE),
        "{}",
        r.detail
    );
    assert!(
        p.hits(0) >= 2,
        "one truncated UDP answer, then the TCP query"
    );
    assert!(
        p.tcp_queries("_imaps._tcp.example.com", T_SRV) >= 1,
        "no TCP retry seen"
    );
    within(r.took, 5000);
}

// ------------------------------------------------------------------ resource bounds

fn cname(target: &str) -> Vec<u8> {
    encode_name(target)
}

fn srv(prio: u16, weight: u16, port: u16, target: &str) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(prio.to_be_bytes());
    v.extend(weight.to_be_bytes());
    v.extend(port.to_be_bytes());
    v.extend(encode_name(target));
    v
}

#[test]
fn cname_loop_is_capped() {
    // _imaps._tcp.loop.insecure.test -> x.loop.insecure.test -> _imaps._tcp.loop... (unsigned zone)
    let p = Proxy::start(vec![rule(
        "*.loop.insecure.test",
        None,
        Action::Answer(Arc::new(|name: &str| {
            let next = if name.starts_with("_imaps") {
                "x.loop.insecure.test"
            } else {
                "_imaps._tcp.loop.insecure.test"
            };
            vec![Rr(name.to_string(), T_CNAME, cname(next))]
        })),
    )]);
    let r = discover_imaps(&p, "loop.insecure.test", 3000);
    assert_eq!(
        (r.state, r.status),
        (LOOKUP_FAILED, mailsrv_status::LookupFailed),
        "{}",
        r.detail
    );
    assert!(r.detail.contains("CNAME"), "{}", r.detail);
    assert!(p.hits(0) <= 40, "the loop was followed {} times", p.hits(0));
    within(r.took, 3000);
}

#[test]
fn long_cname_chain_is_capped() {
    // c0 -> c1 -> ... -> c49, one hop per answer, each a fresh name.
    let p = Proxy::start(vec![rule(
        "*.chain.insecure.test",
        None,
        Action::Answer(Arc::new(|name: &str| {
            let n: u32 = name
                .strip_prefix("_imaps._tcp.")
                .map(|_| 0)
                .or_else(|| name.split('.').next()?.strip_prefix('c')?.parse().ok())
                .unwrap_or(0);
            vec![Rr(
                name.to_string(),
                T_CNAME,
                cname(&format!("c{}.chain.insecure.test", n + 1)),
            )]
        })),
    )]);
    let r = discover_imaps(&p, "chain.insecure.test", 3000);
    assert_eq!(
        (r.state, r.status),
        (LOOKUP_FAILED, mailsrv_status::LookupFailed),
        "{}",
        r.detail
    );
    assert!(r.detail.contains("CNAME"), "{}", r.detail);
    assert!(p.hits(0) <= 40, "followed {} hops", p.hits(0));
    within(r.took, 3000);
}

#[test]
fn huge_srv_rrset_over_tcp_is_bounded() {
    // 1500 SRV records (about 40 KB, so TC over UDP and the full set over TCP), every target
    // the same real host: the RRset is handled and ordered without a hang.
    let p = Proxy::start(vec![rule(
        "_imaps._tcp.huge.insecure.test",
        Some(T_SRV),
        Action::Answer(Arc::new(|name: &str| {
            (0..1500u16)
                .map(|i| {
                    Rr(
                        name.to_string(),
                        T_SRV,
                        srv(i % 7, i % 13, 993, "mail.example.net"),
                    )
                })
                .collect()
        })),
    )]);
    let r = discover_imaps(&p, "huge.insecure.test", 5000);
    assert_eq!(
        (r.state, r.status, r.dnssec),
        (FOUND, mailsrv_status::Ok, INSECURE),
        "{}",
        r.detail
    );
    assert!(r.endpoints >= 1 && r.endpoints <= 1500, "{}", r.endpoints);
    assert!(p.tcp_queries("_imaps._tcp.huge.insecure.test", T_SRV) >= 1);
    within(r.took, 5000);
}

#[test]
fn huge_srv_rrset_of_distinct_targets_is_bounded() {
    // 1000 distinct targets, none of which exists: the address lookups must not run away.
    let p = Proxy::start(vec![rule(
        "_imaps._tcp.wide.insecure.test",
        Some(T_SRV),
        Action::Answer(Arc::new(|name: &str| {
            (0..1000u16)
                .map(|i| {
                    Rr(
                        name.to_string(),
                        T_SRV,
                        srv(0, 1, 993, &format!("h{i}.wide.insecure.test")),
                    )
                })
                .collect()
        })),
    )]);
    let r = discover_imaps(&p, "wide.insecure.test", 4000);
    assert_eq!(
        (r.state, r.status),
        (FOUND, mailsrv_status::Ok),
        "{}",
        r.detail
    );
    within(r.took, 4000);
    // Every query sent (the SRV query, the chain of trust, A and AAAA per kept target), over
    // both transports: without the cap this was over 3000.
    let sent = p.stats.udp.load(Ordering::SeqCst) + p.stats.tcp.load(Ordering::SeqCst);
    assert!(sent <= 1000, "{sent} queries for one discovery");
    assert_eq!(r.endpoints, 64, "capped to the first 64 in RFC 2782 order");
}

#[test]
fn longest_valid_domain_is_answered_and_one_more_byte_is_refused() {
    let p = Proxy::start(vec![]);
    // 253 bytes: four labels of 63/63/63/61 (with the dots), under insecure.test.
    let base = "insecure.test";
    let mut labels = Vec::new();
    let mut len = base.len();
    while len + 64 <= 253 {
        labels.push("a".repeat(63));
        len += 64;
    }
    labels.push("b".repeat(253 - len - 1));
    let long = format!("{}.{base}", labels.join("."));
    assert_eq!(long.len(), 253);
    // With the 12-byte "_imaps._tcp." prefix the SRV owner is over 255 bytes: refused
    // before any packet, as a precise status, not a hang.
    let ctx = ctx_for(&p.addr.to_string(), 3000);
    let mut out = ptr::null_mut();
    let t0 = Instant::now();
    let st = unsafe {
        mailsrv_srv_discover(
            ctx,
            c(&long).as_ptr(),
            IMAPS,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        )
    };
    assert!(t0.elapsed() < Duration::from_secs(3));
    if st == mailsrv_status::Ok {
        let s = unsafe { mailsrv_discovery_find(out, IMAPS) };
        let state = unsafe { mailsrv_srv_set_state(s) };
        assert!(state == LOOKUP_FAILED || state == 3, "state {state}");
        unsafe { mailsrv_discovery_free(out) };
    } else {
        assert_eq!(st, mailsrv_status::InvalidArg);
    }
    let longer = format!("c{long}");
    let st = unsafe {
        mailsrv_srv_discover(
            ctx,
            c(&longer).as_ptr(),
            IMAPS,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::InvalidArg);
    assert!(out.is_null());
    unsafe { mailsrv_ctx_free(ctx) };
}

// ------------------------------------------------------------------ servers that misbehave

/// What a scripted server does after accepting.
enum Server {
    /// Accept, read nothing, send nothing, hold the connection.
    Stall,
    /// Read the TLS ClientHello, then reset (SO_LINGER 0).
    ResetAfterHello,
    /// Read the ClientHello, send the first bytes of a ServerHello, then stall.
    HalfServerHello,
    /// Send an IMAP greeting, read the CAPABILITY command, then stall.
    StallAfterCapability,
    /// Accept and reset at once.
    ResetAtOnce,
}

fn scripted(server: Server) -> (u16, thread::JoinHandle<()>) {
    let l = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let reset = |s: StdTcpStream| {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
            let lg = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &lg as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            drop(s);
        };
        let mut buf = [0u8; 4096];
        match server {
            Server::Stall => {
                let _ = s.read(&mut buf);
                thread::sleep(Duration::from_secs(4));
            }
            Server::ResetAfterHello => {
                let n = s.read(&mut buf).unwrap_or(0);
                assert!(n > 0 && buf[0] == 0x16, "a TLS handshake record");
                reset(s);
            }
            Server::HalfServerHello => {
                let _ = s.read(&mut buf);
                // A handshake record header announcing 80 bytes, then 6 of them.
                let _ = s.write_all(&[
                    0x16, 0x03, 0x03, 0x00, 0x50, 0x02, 0x00, 0x00, 0x4c, 0x03, 0x03,
                ]);
                thread::sleep(Duration::from_secs(4));
            }
            Server::StallAfterCapability => {
                let _ = s.write_all(b"* OK IMAP ready\r\n");
                let _ = s.read(&mut buf);
                thread::sleep(Duration::from_secs(4));
            }
            Server::ResetAtOnce => reset(s),
        }
    });
    (port, h)
}

fn connect_status(port: u16, security: u32, timeout_ms: u32) -> (mailsrv_status, String, Duration) {
    let ctx = ctx_for("127.0.0.1:9", timeout_ms);
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let t0 = Instant::now();
    let st = unsafe {
        mailsrv_connect_with_sni(
            ctx,
            c("127.0.0.1").as_ptr(),
            port,
            security,
            c("mail.example.net").as_ptr(),
            ptr::null(),
            0,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    let took = t0.elapsed();
    assert!(out.is_null());
    unsafe { mailsrv_ctx_free(ctx) };
    (st, text(err.as_ptr()), took)
}

const IMPLICIT_TLS: u32 = 1;
const STARTTLS_IMAP: u32 = 2;

#[test]
fn server_silent_before_the_handshake_times_out() {
    let (port, _h) = scripted(Server::Stall);
    let (st, detail, took) = connect_status(port, IMPLICIT_TLS, 1000);
    assert_eq!(st, mailsrv_status::Timeout, "{detail}");
    within(took, 1000);
}

#[test]
fn server_stalling_mid_handshake_times_out() {
    let (port, _h) = scripted(Server::HalfServerHello);
    let (st, detail, took) = connect_status(port, IMPLICIT_TLS, 1000);
    assert_eq!(st, mailsrv_status::Timeout, "{detail}");
    within(took, 1000);
}

#[test]
fn server_resetting_mid_handshake_is_connection_closed() {
    let (port, h) = scripted(Server::ResetAfterHello);
    let (st, detail, took) = connect_status(port, IMPLICIT_TLS, 3000);
    assert_eq!(st, mailsrv_status::ConnectionClosed, "{detail}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    h.join().unwrap();
}

#[test]
fn server_resetting_at_once_is_connection_closed() {
    let (port, h) = scripted(Server::ResetAtOnce);
    let (st, detail, took) = connect_status(port, STARTTLS_IMAP, 3000);
    // The reset can reach the client before its connect() has completed (CONNECT_FAILED) or
    // after (CONNECTION_CLOSED while waiting for the greeting): both are precise, fast errors.
    assert!(
        st == mailsrv_status::ConnectionClosed || st == mailsrv_status::ConnectFailed,
        "{st:?}: {detail}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    h.join().unwrap();
}

#[test]
fn server_stalling_in_the_starttls_dialogue_times_out() {
    let (port, _h) = scripted(Server::StallAfterCapability);
    let (st, detail, took) = connect_status(port, STARTTLS_IMAP, 1000);
    assert_eq!(st, mailsrv_status::Timeout, "{detail}");
    within(took, 1000);
}

#[test]
fn forged_unsigned_srv_in_a_signed_zone_is_bogus_not_insecure() {
    // SRV hijack with a DNSSEC downgrade: an on-path attacker answers the signed example.com's
    // SRV query with an unsigned record pointing at its own host. The chain of trust says
    // example.com is signed, so the missing signature is BOGUS: never INSECURE, never used.
    let p = Proxy::start(vec![rule(
        "_imaps._tcp.example.com",
        Some(T_SRV),
        Action::Answer(Arc::new(|name: &str| {
            vec![Rr(
                name.to_string(),
                T_SRV,
                srv(0, 1, 993, "evil.example.org"),
            )]
        })),
    )]);
    let r = discover_imaps(&p, "example.com", 3000);
    assert_eq!(r.state, 5, "BOGUS: {}", r.detail);
    assert_eq!(r.status, mailsrv_status::Bogus, "{}", r.detail);
    assert_eq!(r.endpoints, 0, "the forged target is never handed out");
    within(r.took, 3000);
}

#[test]
fn thousands_of_addresses_are_capped() {
    // One target with 3000 A records: discovery keeps 16 (with a diagnostic), so a client
    // that connects to them never makes thousands of attempts.
    let p = Proxy::start(vec![
        rule(
            "_imaps._tcp.many.insecure.test",
            Some(T_SRV),
            Action::Answer(Arc::new(|name: &str| {
                vec![Rr(
                    name.to_string(),
                    T_SRV,
                    srv(0, 1, 993, "many.insecure.test"),
                )]
            })),
        ),
        rule(
            "many.insecure.test",
            Some(1),
            Action::Answer(Arc::new(|name: &str| {
                (0..3000u32)
                    .map(|i| Rr(name.to_string(), 1, vec![127, 1, (i >> 8) as u8, i as u8]))
                    .collect()
            })),
        ),
    ]);
    let ctx = ctx_for(&p.addr.to_string(), 5000);
    let mut out = ptr::null_mut();
    let t0 = Instant::now();
    let st = unsafe {
        mailsrv_srv_discover(
            ctx,
            c("many.insecure.test").as_ptr(),
            IMAPS,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    unsafe {
        let s = mailsrv_discovery_find(out, IMAPS);
        assert_eq!(mailsrv_srv_set_state(s), FOUND);
        let e = mailsrv_srv_set_endpoint_get(s, 0);
        assert_eq!(mailsrv_endpoint_addresses_len(e), 16);
        let notes: Vec<String> = (0..mailsrv_srv_set_diagnostics_len(s))
            .map(|i| text(mailsrv_srv_set_diagnostic_get(s, i)))
            .collect();
        assert!(
            notes.iter().any(|n| n.contains("3000 addresses")),
            "{notes:?}"
        );
        mailsrv_discovery_free(out);
        mailsrv_ctx_free(ctx);
    }
    within(t0.elapsed(), 5000);
}

/// Serves a different certificate chain by SNI: the mail domain gets `for_domain`, every other
/// name (the reconnect's SNI = target) gets `otherwise`.
#[derive(Debug)]
struct BySni {
    domain: String,
    for_domain: Arc<rustls::sign::CertifiedKey>,
    otherwise: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for BySni {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(if hello.server_name() == Some(self.domain.as_str()) {
            self.for_domain.clone()
        } else {
            self.otherwise.clone()
        })
    }
}

fn certified_key(name: &str) -> Arc<rustls::sign::CertifiedKey> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let pem = format!("{}/{name}.pem", env("MAILSRV_TEST_CERTS"));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pem)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pem).unwrap();
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
    Arc::new(rustls::sign::CertifiedKey::new(chain, signer))
}

#[test]
fn certificate_changes_between_probe_and_reconnect() {
    // A server that proves hosted.test to the probe (SNI = hosted.test) but presents an
    // expired certificate to the reconnect (SNI = the target): never AUTHENTIC.
    let resolver = BySni {
        domain: "hosted.test".into(),
        for_domain: certified_key("srvid-multi-hosted-test"),
        otherwise: certified_key("expired"),
    };
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver)),
    );
    let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let mut handlers = Vec::new();
        // Two connections expected (probe and reconnect); never wait forever for them.
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while handlers.len() < 2 && Instant::now() < until {
            let sock = match listener.accept() {
                Ok((sock, _)) => sock,
                Err(_) => {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            sock.set_nonblocking(false).unwrap();
            let config = config.clone();
            handlers.push(thread::spawn(move || {
                let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut s = rustls::StreamOwned::new(conn, sock);
                if s.write_all(b"* OK [CAPABILITY IMAP4rev1] scripted\r\n")
                    .is_ok()
                {
                    let _ = s.flush();
                    let mut buf = [0u8; 256];
                    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                }
            }));
        }
        for h in handlers {
            let _ = h.join();
        }
    });
    let cfg = testbed_config(0, 5000);
    unsafe { mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()) };
    let ctx = ctx_from(cfg);
    let mut out = ptr::null_mut();
    let st = unsafe {
        mailsrv::ffi::authenticity::mailsrv_verify_srv_authenticity(
            ctx,
            c("hosted.test").as_ptr(),
            IMAPS,
            c("mail.example.net").as_ptr(),
            port,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    unsafe {
        use mailsrv::ffi::authenticity::*;
        let detail = text(mailsrv_authenticity_detail(out));
        assert_eq!(
            mailsrv_authenticity_verdict(out),
            mailsrv_verdict::Unverified as u32,
            "{detail}"
        );
        assert_eq!(
            mailsrv_authenticity_probe_status(out),
            mailsrv_status::Ok,
            "{detail}"
        );
        assert_eq!(
            mailsrv_authenticity_target_status(out),
            mailsrv_status::CertExpired,
            "{detail}"
        );
        assert!(!mailsrv_authenticity_target_verified(out));
        mailsrv_authenticity_free(out);
        mailsrv_ctx_free(ctx);
    }
    server.join().unwrap();
}

// ------------------------------------------------------------------ DANE fails closed

const T_TLSA: u16 = 52;

/// A binding of dane.example.net that requires the TLSA check, through the proxy.
fn dane_binding() -> *mut mailsrv::ffi::binding::mailsrv_binding {
    let text = format!(
        "mailsrv-binding-1 service=imaps host=dane.example.net port={} sni=dane.example.net identity=dns:dane.example.net dane=yes",
        port("IMAPS")
    );
    let mut b = ptr::null_mut();
    let st = unsafe {
        mailsrv::ffi::binding::mailsrv_binding_from_text(
            c(&text).as_ptr(),
            &mut b,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    b
}

#[test]
fn unanswered_tlsa_never_counts_as_no_tlsa() {
    // The TLSA query of a DANE-bound server is dropped: the connection is refused (an
    // attacker who blocks TLSA must not turn DANE into PKIX), and the verdict keeps the
    // binding's TLSA requirement instead of reporting "no TLSA".
    let owner = format!("_{}._tcp.dane.example.net", port("IMAPS"));
    let p = Proxy::start(vec![rule(&owner, Some(T_TLSA), Action::Drop)]);
    let ctx = ctx_for(&p.addr.to_string(), 2500);
    let b = dane_binding();
    let mut s = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    let started = Instant::now();
    let st = unsafe {
        mailsrv::ffi::binding::mailsrv_connect_with_binding(
            ctx,
            b,
            0,
            &mut s,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    assert!(
        matches!(st, mailsrv_status::Indeterminate | mailsrv_status::Timeout),
        "{st:?}: {}",
        text(err.as_ptr())
    );
    assert!(s.is_null());
    within(started.elapsed(), 2500);
    assert!(p.hits(0) >= 1, "the TLSA query was asked");

    let mut out = ptr::null_mut();
    let st = unsafe {
        mailsrv::ffi::authenticity::mailsrv_verify_srv_authenticity(
            ctx,
            c("dane.example.com").as_ptr(),
            IMAPS,
            c("dane.example.net").as_ptr(),
            port("IMAPS"),
            0,
            &mut out,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    unsafe {
        use mailsrv::ffi::authenticity::*;
        let detail = text(mailsrv_authenticity_detail(out));
        assert_ne!(
            mailsrv_authenticity_evidence(out),
            mailsrv_evidence::Dane as u32,
            "{detail}"
        );
        let bound = mailsrv_authenticity_binding(out);
        assert!(!bound.is_null(), "{detail}");
        assert!(
            mailsrv::ffi::binding::mailsrv_binding_dane(bound),
            "an unanswered TLSA query keeps the TLSA requirement: {detail}"
        );
        mailsrv_authenticity_free(out);
        mailsrv::ffi::binding::mailsrv_binding_free(b);
        mailsrv_ctx_free(ctx);
    }
}

// ------------------------------------------------------------------ ALPN

/// An implicit-TLS IMAP server for one connection, with mail.example.net's certificate and
/// the given ALPN protocols. Returns its port.
fn alpn_server(protocols: &[&[u8]]) -> (u16, thread::JoinHandle<()>) {
    let key = certified_key("dnsid-mail-example-net");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(BySni {
        domain: String::new(),
        for_domain: key.clone(),
        otherwise: key,
    }));
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    let config = Arc::new(config);
    let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let Ok((sock, _)) = listener.accept() else {
            return;
        };
        let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        if s.write_all(b"* OK [CAPABILITY IMAP4rev1] scripted\r\n")
            .is_ok()
        {
            let _ = s.flush();
            let mut buf = [0u8; 256];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    (port, server)
}

#[test]
fn alpn_imap_is_offered_and_a_mismatch_fails_closed() {
    let ctx = ctx_for("127.0.0.1:9", 5000);
    let mut id = ptr::null_mut();
    unsafe {
        use mailsrv::ffi::identity::*;
        assert_eq!(mailsrv_identity_new(&mut id), mailsrv_status::Ok);
        assert_eq!(
            mailsrv_identity_add_dns_id(id, c("mail.example.net").as_ptr()),
            mailsrv_status::Ok
        );
    }
    // A server that speaks only "imap", one without ALPN, and one that only speaks "pop3".
    for (protocols, want) in [
        (&[b"imap".as_slice()][..], mailsrv_status::Ok),
        (&[][..], mailsrv_status::Ok),
        (&[b"pop3".as_slice()][..], mailsrv_status::Handshake),
    ] {
        let (port, server) = alpn_server(protocols);
        let mut out = ptr::null_mut();
        let mut err = [0 as c_char; 256];
        let st = unsafe {
            mailsrv_connect_with_sni(
                ctx,
                c("127.0.0.1").as_ptr(),
                port,
                mailsrv_security::ImplicitTlsImap as u32,
                c("mail.example.net").as_ptr(),
                id,
                0,
                &mut out,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        assert_eq!(st, want, "{protocols:?}: {}", text(err.as_ptr()));
        unsafe { mailsrv_tls_stream_free(out) };
        server.join().unwrap();
    }
    unsafe {
        mailsrv::ffi::identity::mailsrv_identity_free(id);
        mailsrv_ctx_free(ctx);
    }
}
