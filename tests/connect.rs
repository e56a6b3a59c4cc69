//! `connect_with_sni` end to end: scripted hostile servers (plain TCP and rustls) for the
//! cases no real server shows, and the testbed's real dovecot and postfix for the rest.
//! Test names cite the T-ids of docs/conformance.md (groups H, J, K, L).
//!
//! Run with `bash testbed/run.sh cargo test --features test-hooks --test connect`. Tests
//! that need the testbed panic when its variables are missing (never a silent skip); the
//! plain-TCP hostile-server tests need nothing.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{env, port};
use mailsrv::core::Error;
use mailsrv::core::cert::identity::{MatchOptions, ReferenceIdentity};
use mailsrv::core::config::Config;
use mailsrv::core::context::Context;
use mailsrv::core::service::Security;
use mailsrv::core::tls::connect::{ConnectRequest, MailConnection, plan};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

// ------------------------------------------------------------------ contexts

/// A context on the testbed: its DNS, its root anchor, its CA.
fn testbed_ctx(timeout: Duration) -> Context {
    let mut cfg = Config::default();
    cfg.add_nameserver(&env("MAILSRV_TEST_NS")).unwrap();
    cfg.trust_anchor_file = Some(env("MAILSRV_TEST_ANCHOR").into());
    cfg.ca_file = Some(env("MAILSRV_TEST_CA").into());
    cfg.timeout = timeout;
    Context::new(cfg).expect("testbed context")
}

/// A context for scripted servers reached by IP address: the nameserver is never asked;
/// the testbed CA when present (TLS tests), else the system store (the plain-TCP tests
/// fail before any certificate is seen).
fn scripted_ctx(timeout: Duration) -> Context {
    let mut cfg = Config::default();
    cfg.add_nameserver("127.0.0.1:9").unwrap();
    cfg.ca_file = std::env::var_os("MAILSRV_TEST_CA").map(PathBuf::from);
    cfg.timeout = timeout;
    Context::new(cfg).expect("scripted context")
}

/// The testbed's mail addresses (127.0.0.1 and ::1 by default).
fn mail_addr() -> IpAddr {
    ip(&env("MAILSRV_TEST_MAIL_ADDR"))
}

fn mail_addr6() -> IpAddr {
    ip(&env("MAILSRV_TEST_MAIL_ADDR6"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ------------------------------------------------------------------ plain-TCP scripts

enum Step {
    /// Read one line from the client and check it.
    Expect(&'static str),
    /// Send bytes; consecutive sends travel together (one segment on loopback).
    Send(&'static str),
    /// Read the start of a TLS ClientHello (content type 22, version 3.x).
    ExpectTlsHello,
    /// Go silent until the client hangs up.
    Hang,
    /// Close (FIN) after reading what arrived.
    Close,
    /// Close with unread data pending, which makes the kernel send RST.
    Reset,
}
use Step::*;

/// What a scripted server saw.
#[derive(Debug, Default)]
struct Transcript {
    lines: Vec<String>,
    tls_hello: bool,
    /// Bytes the client sent after the script ended (until it hung up).
    after: Vec<u8>,
    failed: Option<String>,
}

fn read_line(s: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&line)
        .trim_end_matches('\r')
        .to_string();
    Some(text)
}

/// A one-connection server on 127.0.0.1 running `steps`.
fn script(steps: Vec<Step>) -> (u16, JoinHandle<Transcript>) {
    script_on("127.0.0.1", steps)
}

/// A one-connection server on `addr` (a loopback address) running `steps`.
fn script_on(addr: &str, steps: Vec<Step>) -> (u16, JoinHandle<Transcript>) {
    let listener = TcpListener::bind((addr, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let mut t = Transcript::default();
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for step in steps {
            match step {
                Expect(want) => match read_line(&mut s) {
                    Some(l) if l == want => t.lines.push(l),
                    Some(l) => {
                        t.failed = Some(format!("expected {want:?}, got {l:?}"));
                        t.lines.push(l);
                        return t;
                    }
                    None => {
                        t.failed = Some(format!("expected {want:?}, got EOF"));
                        return t;
                    }
                },
                Send(text) => {
                    if s.write_all(text.as_bytes()).is_err() {
                        t.failed = Some("send failed".into());
                        return t;
                    }
                }
                ExpectTlsHello => {
                    let mut h = [0u8; 3];
                    t.tls_hello = s.read_exact(&mut h).is_ok() && h[0] == 22 && h[1] == 3;
                }
                Hang => break,
                Close => {
                    let _ = s.shutdown(Shutdown::Write);
                    let _ = s.read_to_end(&mut t.after);
                    return t;
                }
                Reset => {
                    thread::sleep(Duration::from_millis(100));
                    drop(s);
                    return t;
                }
            }
        }
        let _ = s.read_to_end(&mut t.after);
        t
    });
    (port, handle)
}

/// Connects to a script through the blocking context API.
fn run_script(
    security: Security,
    steps: Vec<Step>,
    timeout: Duration,
) -> (std::result::Result<MailConnection, Error>, Transcript) {
    let (port, server) = script(steps);
    let ctx = scripted_ctx(timeout);
    let mut req = ConnectRequest::new("127.0.0.1", port, security);
    req.client_name = Some("client.example".into());
    let res = ctx.connect(req);
    let t = server.join().unwrap();
    (res, t)
}

fn assert_protocol(res: &std::result::Result<MailConnection, Error>, needle: &str) {
    match res {
        Err(Error::Protocol(d)) => assert!(d.contains(needle), "{d}"),
        other => panic!("expected Protocol({needle}), got {other:?}"),
    }
}

fn no_credentials(t: &Transcript) {
    let all = format!("{:?} {}", t.lines, String::from_utf8_lossy(&t.after)).to_ascii_uppercase();
    for word in ["LOGIN", "AUTH", "USER", "PASS"] {
        assert!(!all.contains(word), "client sent {word}: {t:?}");
    }
}

const IMAP_CAPS: &str = "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n";

#[test]
fn t_stl_05_injection_after_go_ahead_imap() {
    let (res, t) = run_script(
        Security::StartTlsImap,
        vec![
            Send(IMAP_CAPS),
            Expect("a2 STARTTLS"),
            Send("a2 OK Begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"),
        ],
        Duration::from_secs(5),
    );
    assert_protocol(&res, "injection");
    // The injected bytes never reached TLS: no ClientHello was sent.
    assert!(t.after.is_empty(), "client sent {:?}", t.after);
    assert!(t.failed.is_none(), "{t:?}");
}

#[test]
fn t_stl_05_injection_after_go_ahead_pop3() {
    let (res, t) = run_script(
        Security::StartTlsPop3,
        vec![
            Send("+OK ready\r\n"),
            Expect("CAPA"),
            Send("+OK\r\nSTLS\r\n.\r\n"),
            Expect("STLS"),
            Send("+OK go\r\n+OK injected\r\n"),
        ],
        Duration::from_secs(5),
    );
    assert_protocol(&res, "injection");
    assert!(t.after.is_empty(), "client sent {:?}", t.after);
}

#[test]
fn t_stl_05_injection_after_go_ahead_smtp() {
    let (res, t) = run_script(
        Security::StartTlsSmtp,
        vec![
            Send("220 mx ESMTP\r\n"),
            Expect("EHLO client.example"),
            Send("250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"),
            Expect("STARTTLS"),
            Send("220 go ahead\r\n250-injected\r\n"),
        ],
        Duration::from_secs(5),
    );
    assert_protocol(&res, "injection");
    assert!(t.after.is_empty(), "client sent {:?}", t.after);
}

/// Without a client name, EHLO carries a fixed literal, never the local end's address (the
/// LAN address would end up in the server's logs and `Received:` headers). On loopback the
/// local end of a connection to 127.0.0.77 is 127.0.0.77 itself.
#[test]
fn ehlo_default_does_not_reveal_the_local_address() {
    let (port, server) = script_on(
        "127.0.0.77",
        vec![
            Send("220 mx ESMTP\r\n"),
            Expect("EHLO [127.0.0.1]"),
            Send("250-mx\r\n250 AUTH PLAIN\r\n"),
        ],
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    let res = ctx.connect(ConnectRequest::new(
        "127.0.0.77",
        port,
        Security::StartTlsSmtp,
    ));
    let t = server.join().unwrap();
    assert!(t.failed.is_none(), "{t:?}");
    assert_eq!(t.lines, vec!["EHLO [127.0.0.1]"]);
    assert_protocol(&res, "STARTTLS");
}

#[test]
fn t_stl_02_imap_without_starttls() {
    let (res, t) = run_script(
        Security::StartTlsImap,
        vec![
            Send("* OK ready\r\n"),
            Expect("a1 CAPABILITY"),
            Send("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na1 OK done\r\n"),
        ],
        Duration::from_secs(5),
    );
    assert_protocol(&res, "STARTTLS");
    no_credentials(&t);
}

#[test]
fn t_stl_13_smtp_without_starttls() {
    let (res, t) = run_script(
        Security::StartTlsSmtp,
        vec![
            Send("220 mx ESMTP\r\n"),
            Expect("EHLO client.example"),
            Send("250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"),
        ],
        Duration::from_secs(5),
    );
    assert_protocol(&res, "STARTTLS");
    no_credentials(&t);
}

#[test]
fn t_stl_09_pop3_without_stls() {
    let (res, t) = run_script(
        Security::StartTlsPop3,
        vec![
            Send("+OK ready\r\n"),
            Expect("CAPA"),
            Send("+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"),
        ],
        Duration::from_secs(5),
    );
    assert_protocol(&res, "STLS");
    no_credentials(&t);
}

#[test]
fn t_stl_03_imap_no_and_bad() {
    for answer in ["a2 NO [UNAVAILABLE] no TLS today\r\n", "a2 BAD what\r\n"] {
        let (res, t) = run_script(
            Security::StartTlsImap,
            vec![Send(IMAP_CAPS), Expect("a2 STARTTLS"), Send(answer)],
            Duration::from_secs(5),
        );
        assert_protocol(&res, "refused STARTTLS");
        no_credentials(&t);
    }
}

#[test]
fn t_stl_10_pop3_err_to_stls() {
    let (res, _) = run_script(
        Security::StartTlsPop3,
        vec![
            Send("+OK ready\r\n"),
            Expect("CAPA"),
            Send("+OK\r\nSTLS\r\n.\r\n"),
            Expect("STLS"),
            Send("-ERR TLS not available\r\n"),
        ],
        Duration::from_secs(5),
    );
    assert_protocol(&res, "refused STLS");
}

#[test]
fn t_stl_12_smtp_454() {
    let (res, _) = run_script(
        Security::StartTlsSmtp,
        vec![
            Send("220 mx ESMTP\r\n"),
            Expect("EHLO client.example"),
            Send("250-mx\r\n250 STARTTLS\r\n"),
            Expect("STARTTLS"),
            Send("454 4.7.0 TLS not available due to local problem\r\n"),
        ],
        Duration::from_secs(5),
    );
    assert_protocol(&res, "454");
}

#[test]
fn t_stl_04_preauth_on_plain_port_closes() {
    let (res, t) = run_script(
        Security::StartTlsImap,
        vec![Send(
            "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in\r\n",
        )],
        Duration::from_secs(5),
    );
    assert_protocol(&res, "PREAUTH");
    // The client sent nothing and hung up (read_to_end returned).
    assert!(t.lines.is_empty() && t.after.is_empty(), "{t:?}");
}

#[test]
fn garbage_greeting() {
    for (sec, greeting) in [
        (Security::StartTlsImap, "SSH-2.0-OpenSSH_9.2\r\n"),
        (Security::StartTlsPop3, "HTTP/1.1 400 Bad Request\r\n"),
        (Security::StartTlsSmtp, "hello there\r\n"),
        (Security::StartTlsSmtp, "220 nul\0inside\r\n"),
    ] {
        let (res, t) = run_script(sec, vec![Send(greeting)], Duration::from_secs(5));
        assert!(
            matches!(res, Err(Error::Protocol(_))),
            "{greeting:?}: {res:?}"
        );
        no_credentials(&t);
    }
}

#[test]
fn over_long_line() {
    let long: &'static str = Box::leak(format!("* OK {}\r\n", "x".repeat(20_000)).into_boxed_str());
    let (res, _) = run_script(
        Security::StartTlsImap,
        vec![Send(long)],
        Duration::from_secs(5),
    );
    assert_protocol(&res, "longer than");
}

#[test]
fn hanging_server_times_out_within_the_deadline() {
    let t0 = Instant::now();
    let (res, _) = run_script(
        Security::StartTlsSmtp,
        vec![
            Send("220 mx ESMTP\r\n"),
            Expect("EHLO client.example"),
            Hang,
        ],
        Duration::from_millis(800),
    );
    let took = t0.elapsed();
    match res {
        Err(Error::Timeout(d)) => assert!(d.contains("EHLO"), "{d}"),
        other => panic!("{other:?}"),
    }
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn t_stl_17_close_during_handshake_after_starttls() {
    let (res, t) = run_script(
        Security::StartTlsImap,
        vec![
            Send(IMAP_CAPS),
            Expect("a2 STARTTLS"),
            Send("a2 OK go\r\n"),
            ExpectTlsHello,
            Close,
        ],
        Duration::from_secs(5),
    );
    assert!(t.tls_hello, "{t:?}");
    assert!(matches!(res, Err(Error::ConnectionClosed(_))), "{res:?}");
}

#[test]
fn t_stl_17_reset_during_handshake_after_starttls() {
    let (res, _) = run_script(
        Security::StartTlsSmtp,
        vec![
            Send("220 mx\r\n"),
            Expect("EHLO client.example"),
            Send("250-mx\r\n250 STARTTLS\r\n"),
            Expect("STARTTLS"),
            Send("220 go\r\n"),
            Reset,
        ],
        Duration::from_secs(5),
    );
    assert!(matches!(res, Err(Error::ConnectionClosed(_))), "{res:?}");
}

#[test]
fn t_stl_08_untagged_noise_before_starttls_ok() {
    let (res, t) = run_script(
        Security::StartTlsImap,
        vec![
            Send("* OK ready\r\n"),
            Expect("a1 CAPABILITY"),
            Send(
                "* OK [ALERT] maintenance tonight\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\n* 3 EXISTS\r\na1 OK\r\n",
            ),
            Expect("a2 STARTTLS"),
            Send("* LIST () \"/\" {5}\r\nINBOX\r\n* OK [ALERT] still here\r\na2 OK go\r\n"),
            ExpectTlsHello,
            Close,
        ],
        Duration::from_secs(5),
    );
    // The noise was ignored and the client went on to TLS (the server then hung up).
    assert!(t.tls_hello, "{t:?}");
    assert!(matches!(res, Err(Error::ConnectionClosed(_))), "{res:?}");
}

#[test]
fn t_stl_16_multiline_ehlo_then_tls() {
    let (res, t) = run_script(
        Security::StartTlsSmtp,
        vec![
            Send("220-mx ESMTP\r\n220-more text\r\n220 last\r\n"),
            Expect("EHLO client.example"),
            Send(
                "250-mx greets you\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
            ),
            Expect("STARTTLS"),
            Send("220 2.0.0 Ready to start TLS\r\n"),
            ExpectTlsHello,
            Close,
        ],
        Duration::from_secs(5),
    );
    assert!(t.tls_hello, "{t:?}");
    assert!(matches!(res, Err(Error::ConnectionClosed(_))), "{res:?}");
}

#[test]
fn refused_connection_is_connect_failed() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctx = scripted_ctx(Duration::from_secs(5));
    let res = ctx.connect(ConnectRequest::new(
        "127.0.0.1",
        port,
        Security::ImplicitTls,
    ));
    match res {
        Err(Error::ConnectFailed(d)) => assert!(d.contains(&format!("127.0.0.1:{port}")), "{d}"),
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------------ group H without network

#[test]
fn t_sni_01_02_05_sni_from_host() {
    let p = plan(&ConnectRequest::new(
        "mail.example.com",
        993,
        Security::ImplicitTls,
    ))
    .unwrap();
    assert_eq!(p.sni.as_deref(), Some("mail.example.com"));
    let p = plan(&ConnectRequest::new(
        "Mail.Example.COM.",
        993,
        Security::ImplicitTls,
    ))
    .unwrap();
    assert_eq!(p.sni.as_deref(), Some("mail.example.com"));
    assert_eq!(p.host, "mail.example.com");
    assert_eq!(p.identity.to_string(), "[DNS-ID mail.example.com]");
    let p = plan(&ConnectRequest::new(
        "bücher.example",
        993,
        Security::ImplicitTls,
    ))
    .unwrap();
    assert_eq!(p.sni.as_deref(), Some("xn--bcher-kva.example"));
}

#[test]
fn t_sni_03_04_no_sni_for_ip_literals() {
    for host in ["192.0.2.1", "2001:db8::1", "[2001:db8::1]"] {
        let p = plan(&ConnectRequest::new(host, 993, Security::ImplicitTls)).unwrap();
        assert_eq!(p.sni, None, "{host}");
        assert!(!p.enable_sni);
        assert!(
            p.identity.to_string().starts_with("[IP-ID "),
            "{}",
            p.identity
        );
    }
}

#[test]
fn t_sni_06_07_probe_and_normal_sni() {
    let mut req = ConnectRequest::new("mail.provider.net", 993, Security::ImplicitTls);
    req.sni = Some("example.com".into());
    let p = plan(&req).unwrap();
    assert_eq!(p.host, "mail.provider.net");
    assert_eq!(p.sni.as_deref(), Some("example.com"));
    let p = plan(&ConnectRequest::new(
        "mail.provider.net",
        993,
        Security::ImplicitTls,
    ))
    .unwrap();
    assert_eq!(p.sni.as_deref(), Some("mail.provider.net"));
}

#[test]
fn t_sni_08_10_bad_names_fail_before_connecting() {
    let ctx = scripted_ctx(Duration::from_secs(5));
    // Port 9 on 127.0.0.1: nothing listens, so any attempt would be a ConnectFailed.
    let mut req = ConnectRequest::new("mail.example.net", 9, Security::ImplicitTls);
    req.sni = Some("_imaps.example.com".into());
    assert!(matches!(ctx.connect(req), Err(Error::InvalidArg(_))));
    let long_label = format!("{}.example", "a".repeat(64));
    let long_name = format!("{}example", "abcdefghi.".repeat(25));
    for host in [
        "",
        long_label.as_str(),
        long_name.as_str(),
        "_imaps.example.com",
    ] {
        let res = ctx.connect(ConnectRequest::new(host, 9, Security::ImplicitTls));
        assert!(
            matches!(res, Err(Error::InvalidArg(_))),
            "{host:?}: {res:?}"
        );
    }
    let mut req = ConnectRequest::new("mail.example.net", 9, Security::StartTlsSmtp);
    req.client_name = Some("bad name\r\nRCPT TO:<x>".into());
    assert!(matches!(ctx.connect(req), Err(Error::InvalidArg(_))));
    assert!(matches!(
        ctx.connect(ConnectRequest::new(
            "mail.example.net",
            0,
            Security::ImplicitTls
        )),
        Err(Error::InvalidArg(_))
    ));
    let mut req = ConnectRequest::new("mail.example.net", 9, Security::ImplicitTls);
    req.identity = Some(ReferenceIdentity::new());
    assert!(matches!(ctx.connect(req), Err(Error::InvalidArg(_))));
}

// ------------------------------------------------------------------ scripted TLS server

fn certs_dir() -> PathBuf {
    PathBuf::from(env("MAILSRV_TEST_CERTS"))
}

fn server_config(name: &str, request_client_cert: bool, tls12_only: bool) -> Arc<ServerConfig> {
    let pem = certs_dir().join(format!("{name}.pem"));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pem)
        .unwrap()
        .collect::<std::result::Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pem).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = if request_client_cert {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(env("MAILSRV_TEST_CA")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(builder.with_single_cert(chain, key).unwrap())
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

/// What the scripted TLS server saw.
#[derive(Debug)]
struct TlsReport {
    sni: Option<String>,
    client_cert: bool,
    outcome: String,
}

/// Reads until the client ends the session: "close_notify" or "eof" (no close_notify).
fn read_to_close(s: &mut Tls) -> String {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return "close_notify".into(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return "eof".into(),
            Err(e) => return format!("error: {e}"),
        }
    }
}

/// An implicit-TLS IMAP-ish server on `bind` for one connection: handshake, greeting with a
/// CAPABILITY code, then `then`.
fn tls_server(
    bind: &str,
    config: Arc<ServerConfig>,
    then: impl FnOnce(&mut Tls) -> String + std::marker::Send + 'static,
) -> (u16, JoinHandle<TlsReport>) {
    let listener = TcpListener::bind(bind).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = ServerConnection::new(config).unwrap();
        let mut s = StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            if let Err(e) = s.conn.complete_io(&mut s.sock) {
                return TlsReport {
                    sni: s.conn.server_name().map(str::to_string),
                    client_cert: false,
                    outcome: format!("handshake failed: {e}"),
                };
            }
        }
        let sni = s.conn.server_name().map(str::to_string);
        let client_cert = s.conn.peer_certificates().is_some_and(|c| !c.is_empty());
        s.write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] scripted ready\r\n")
            .unwrap();
        s.flush().unwrap();
        let outcome = then(&mut s);
        TlsReport {
            sni,
            client_cert,
            outcome,
        }
    });
    (port, handle)
}

fn tls_req(port: u16) -> ConnectRequest {
    // Reached by address, checked by name: SNI and identity come from the host.
    let mut req = ConnectRequest::new("mail.example.net", port, Security::ImplicitTls);
    req.addresses = vec![ip("127.0.0.1")];
    req
}

#[test]
fn t_tls_07_close_sends_close_notify() {
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", false, false),
        read_to_close,
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    let mut conn = ctx.connect(tls_req(port)).expect("connect");
    assert_eq!(
        conn.info().greeting,
        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] scripted ready"
    );
    assert_eq!(conn.info().capabilities, vec!["IMAP4rev1", "AUTH=PLAIN"]);
    conn.close().unwrap();
    // A second close does nothing; I/O after close is refused.
    conn.close().unwrap();
    assert!(matches!(conn.write(b"x"), Err(Error::ConnectionClosed(_))));
    let report = server.join().unwrap();
    assert_eq!(report.outcome, "close_notify");
    assert_eq!(report.sni.as_deref(), Some("mail.example.net"));
}

#[test]
fn t_tls_07_drop_sends_close_notify_too() {
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", false, false),
        read_to_close,
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    drop(ctx.connect(tls_req(port)).expect("connect"));
    assert_eq!(server.join().unwrap().outcome, "close_notify");
}

#[test]
fn t_tls_09_client_certificate_request_gets_none() {
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", true, false),
        read_to_close,
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    let conn = ctx.connect(tls_req(port)).expect("connect");
    assert_eq!(conn.info().tls_version, "TLSv1.3");
    drop(conn);
    let report = server.join().unwrap();
    assert!(!report.client_cert, "{report:?}");
    assert_eq!(report.outcome, "close_notify");
}

#[test]
fn tls12_only_server_is_accepted_as_tls12() {
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", false, true),
        read_to_close,
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    let conn = ctx.connect(tls_req(port)).expect("connect");
    assert_eq!(conn.info().tls_version, "TLSv1.2");
    assert!(
        conn.info().cipher.starts_with("TLS_ECDHE_"),
        "{}",
        conn.info().cipher
    );
    drop(conn);
    server.join().unwrap();
}

#[test]
fn read_reports_clean_close_and_truncation() {
    // close_notify after the data: Some(0).
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", false, false),
        |s| {
            s.write_all(b"* BYE bye\r\n").unwrap();
            s.conn.send_close_notify();
            s.flush().unwrap();
            read_to_close(s)
        },
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    let mut conn = ctx.connect(tls_req(port)).expect("connect");
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match conn.read(&mut buf).unwrap() {
            Some(0) => break,
            Some(n) => got.extend_from_slice(&buf[..n]),
            None => panic!("blocking read returned would-block"),
        }
    }
    assert_eq!(got, b"* BYE bye\r\n");
    conn.close().unwrap();
    server.join().unwrap();

    // TCP close without close_notify: an error, never a silent EOF.
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", false, false),
        |s| {
            s.write_all(b"* OK partial\r\n").unwrap();
            s.flush().unwrap();
            let _ = s.sock.shutdown(Shutdown::Both);
            "dropped".into()
        },
    );
    let mut conn = ctx.connect(tls_req(port)).expect("connect");
    let mut got = Vec::new();
    let err = loop {
        match conn.read(&mut buf) {
            Ok(Some(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => break other,
        }
    };
    assert_eq!(got, b"* OK partial\r\n");
    assert!(matches!(err, Err(Error::ConnectionClosed(_))), "{err:?}");
    server.join().unwrap();
}

/// poll(2) on one descriptor; true when `events` are signalled within `ms`.
fn poll_fd(fd: i32, events: i16, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n == 1 && p.revents & events != 0
}

#[test]
fn nonblocking_read_write_and_poll_rule() {
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", false, false),
        |s| {
            let mut line = [0u8; 6];
            s.read_exact(&mut line).unwrap();
            assert_eq!(&line, b"PING\r\n");
            // Two records in one go: the second is decrypted while the first is read.
            s.write_all(b"PONG1\r\n").unwrap();
            s.write_all(b"PONG2\r\n").unwrap();
            s.conn.send_close_notify();
            s.flush().unwrap();
            read_to_close(s)
        },
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    let mut conn = ctx.connect(tls_req(port)).expect("connect");
    conn.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 3];
    assert_eq!(conn.read(&mut buf).unwrap(), None, "nothing sent yet");
    assert!(!conn.has_buffered_plaintext());
    assert_eq!(conn.write(b"PING\r\n").unwrap(), Some(6));
    if conn.wants_write() {
        assert!(poll_fd(conn.raw_fd(), libc::POLLOUT, 5000));
        conn.flush().unwrap();
    }
    // The poll rule: drain until would-block, then poll the descriptor.
    let mut got = Vec::new();
    let mut closed = false;
    let t0 = Instant::now();
    while !closed && t0.elapsed() < Duration::from_secs(5) {
        match conn.read(&mut buf).unwrap() {
            Some(0) => closed = true,
            // A 3-byte buffer leaves plaintext behind that poll() would not show: the
            // loop keeps reading until would-block before it polls.
            Some(n) => got.extend_from_slice(&buf[..n]),
            None => {
                assert!(!conn.has_buffered_plaintext());
                poll_fd(conn.raw_fd(), libc::POLLIN, 1000);
            }
        }
    }
    assert!(closed, "no close_notify; got {got:?}");
    assert_eq!(got, b"PONG1\r\nPONG2\r\n");
    conn.close().unwrap();
    assert_eq!(server.join().unwrap().outcome, "close_notify");
}

#[test]
fn has_buffered_plaintext_sees_data_the_socket_does_not() {
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", false, false),
        |s| {
            s.write_all(b"0123456789").unwrap();
            s.flush().unwrap();
            read_to_close(s)
        },
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    let mut conn = ctx.connect(tls_req(port)).expect("connect");
    let mut one = [0u8; 1];
    assert_eq!(conn.read(&mut one).unwrap(), Some(1));
    // The rest of the record is decrypted and buffered; the socket has nothing left.
    assert!(conn.has_buffered_plaintext());
    conn.set_nonblocking(true).unwrap();
    assert!(!poll_fd(conn.raw_fd(), libc::POLLIN, 100));
    let mut rest = [0u8; 16];
    assert_eq!(conn.read(&mut rest).unwrap(), Some(9));
    assert!(!conn.has_buffered_plaintext());
    conn.close().unwrap();
    server.join().unwrap();
}

#[test]
fn t_he_07_ipv6_refused_ipv4_wins_names_unchanged() {
    // Only 127.0.0.1 listens on this port: [::1] is refused, IPv4 wins; SNI and the
    // verified identity still come from the host name.
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", false, false),
        read_to_close,
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    let mut req = ConnectRequest::new("mail.example.net", port, Security::ImplicitTls);
    req.addresses = vec![ip("::1"), ip("127.0.0.1")];
    let conn = ctx.connect(req).expect("connect");
    assert_eq!(
        conn.info().peer_addr,
        SocketAddr::new(ip("127.0.0.1"), port)
    );
    assert_eq!(conn.info().sni.as_deref(), Some("mail.example.net"));
    assert_eq!(conn.info().proof.to_string(), "DNS-ID mail.example.net");
    drop(conn);
    assert_eq!(
        server.join().unwrap().sni.as_deref(),
        Some("mail.example.net")
    );
}

#[test]
fn t_sni_03_04_no_server_name_extension_for_ip_hosts() {
    for (bind, host) in [
        ("127.0.0.1:0", "127.0.0.1"),
        ("[::1]:0", "[::1]"),
        ("[::1]:0", "::1"),
    ] {
        let (port, server) = tls_server(
            bind,
            server_config("dnsid-mail-example-net", false, false),
            read_to_close,
        );
        let ctx = scripted_ctx(Duration::from_secs(5));
        let mut req = ConnectRequest::new(host, port, Security::ImplicitTls);
        req.identity = Some(ReferenceIdentity::for_dns("mail.example.net").unwrap());
        let conn = ctx.connect(req).expect("connect");
        assert_eq!(conn.info().sni, None);
        drop(conn);
        let report = server.join().unwrap();
        assert_eq!(report.sni, None, "{host}");
    }
}

#[test]
fn t_sni_02_normalised_sni_on_the_wire() {
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", false, false),
        read_to_close,
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    let mut req = ConnectRequest::new("MAIL.Example.NET.", port, Security::ImplicitTls);
    req.addresses = vec![ip("127.0.0.1")];
    let conn = ctx.connect(req).expect("connect");
    assert_eq!(conn.info().host, "mail.example.net");
    drop(conn);
    assert_eq!(
        server.join().unwrap().sni.as_deref(),
        Some("mail.example.net")
    );
}

#[test]
fn async_connect_delivers_once() {
    let (port, server) = tls_server(
        "127.0.0.1:0",
        server_config("dnsid-mail-example-net", false, false),
        read_to_close,
    );
    let ctx = scripted_ctx(Duration::from_secs(5));
    let (tx, rx) = mpsc::channel();
    ctx.connect_async(
        tls_req(port),
        Box::new(move |_, res| {
            let _ = tx.send(res);
        }),
    )
    .unwrap();
    let conn = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("connect");
    assert_eq!(conn.info().sni.as_deref(), Some("mail.example.net"));
    drop(conn);
    server.join().unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
}

/// `openssl s_server` speaking TLS 1.1 only.
struct OpenSsl(Child);

impl Drop for OpenSsl {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn t_tls_01_tls11_server_is_refused() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = certs_dir();
    let mut child = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-tls1_1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(dir.join("dnsid-mail-example-net.crt"))
        .arg("-key")
        .arg(dir.join("dnsid-mail-example-net.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let _stdin = child.stdin.take();
    let _server = OpenSsl(child);
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "s_server did not start"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let ctx = scripted_ctx(Duration::from_secs(5));
    let res = ctx.connect(tls_req(port));
    assert!(matches!(res, Err(Error::Handshake(_))), "{res:?}");
}

// ------------------------------------------------------------------ the real servers

/// (service, security, port variable).
const SERVICES: &[(&str, Security, &str)] = &[
    ("imap", Security::StartTlsImap, "IMAP"),
    ("imaps", Security::ImplicitTls, "IMAPS"),
    ("pop3", Security::StartTlsPop3, "POP3"),
    ("pop3s", Security::ImplicitTls, "POP3S"),
    ("submission", Security::StartTlsSmtp, "SUBMISSION"),
    ("submissions", Security::ImplicitTls, "SUBMISSIONS"),
];

/// Sends `line` and reads until a line starting with `until` (or an error).
fn exchange(conn: &mut MailConnection, line: &str, until: &str) -> String {
    assert_eq!(
        conn.write(format!("{line}\r\n").as_bytes()).unwrap(),
        Some(line.len() + 2)
    );
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(l) = text.lines().find(|l| l.starts_with(until)) {
            return l.to_string();
        }
        match conn.read(&mut buf).unwrap() {
            Some(0) | None => panic!("connection ended before {until:?}: {text}"),
            Some(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Logs in (IMAP, POP3) or says hello (SMTP: the testbed's postfix has no AUTH) over the
/// verified stream, then ends the session politely.
fn use_stream(service: &str, conn: &mut MailConnection) {
    match service {
        "imap" | "imaps" => {
            let ok = exchange(conn, "t1 LOGIN joe test", "t1 ");
            assert!(ok.starts_with("t1 OK"), "{ok}");
            exchange(conn, "t2 LOGOUT", "t2 ");
        }
        "pop3" | "pop3s" => {
            assert!(exchange(conn, "USER joe", "+OK").starts_with("+OK"));
            assert!(exchange(conn, "PASS test", "+OK").starts_with("+OK"));
            exchange(conn, "QUIT", "+OK");
        }
        _ => {
            assert!(exchange(conn, "NOOP", "250").starts_with("250"));
            exchange(conn, "QUIT", "221");
        }
    }
    conn.close().unwrap();
}

fn check_greeting(service: &str, security: Security, conn: &MailConnection) {
    let info = conn.info();
    let caps = info.capabilities.join(" ").to_ascii_uppercase();
    match service {
        "imap" | "imaps" => {
            assert!(info.greeting.starts_with("* OK"), "{}", info.greeting);
            assert!(caps.contains("IMAP4REV1"), "{caps}");
            // Dovecot stops offering STARTTLS once TLS is up: the post-TLS list is used.
            assert!(
                !caps.contains("STARTTLS") && !caps.contains("LOGINDISABLED"),
                "{caps}"
            );
        }
        "pop3" | "pop3s" => {
            assert!(info.greeting.starts_with("+OK"), "{}", info.greeting);
            assert!(!info.capabilities.is_empty());
            assert!(
                !info
                    .capabilities
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case("STLS")),
                "{caps}"
            );
        }
        _ => {
            assert!(info.greeting.starts_with("220"), "{}", info.greeting);
            assert!(!info.capabilities.is_empty());
            assert!(!caps.contains("STARTTLS"), "{caps}");
        }
    }
    assert_eq!(info.greeting_over_tls, security == Security::ImplicitTls);
}

#[test]
fn t_tls_02_every_service_through_testbed_dns() {
    let ctx = testbed_ctx(Duration::from_secs(10));
    let mut times = Vec::new();
    for &(service, security, var) in SERVICES {
        let port = port(var);
        let mut conn = ctx
            .connect(ConnectRequest::new("mail.example.net", port, security))
            .unwrap_or_else(|e| panic!("{service} ({port}): {e:?}"));
        let info = conn.info().clone();
        assert_eq!(info.tls_version, "TLSv1.3", "{service}");
        assert_eq!(info.sni.as_deref(), Some("mail.example.net"));
        assert_eq!(info.proof.to_string(), "DNS-ID mail.example.net");
        assert!(info.full_handshake);
        assert!(info.peer_chain.len() >= 2, "leaf and issuer expected");
        assert!(info.cipher.starts_with("TLS13_"), "{}", info.cipher);
        // RFC 8305: ::1 (AAAA) is tried first and answers at once.
        assert_eq!(info.peer_addr, SocketAddr::new(mail_addr6(), port));
        check_greeting(service, security, &conn);
        use_stream(service, &mut conn);
        times.push((service, info.elapsed));
    }
    for (service, t) in times {
        assert!(t < Duration::from_secs(3), "{service}: {t:?}");
    }
}

#[test]
fn t_he_07_each_family_by_address_same_names() {
    let ctx = testbed_ctx(Duration::from_secs(10));
    for addr in [mail_addr(), mail_addr6()] {
        for &(service, security, var) in SERVICES {
            let port = port(var);
            let mut req = ConnectRequest::new("mail.example.net", port, security);
            req.addresses = vec![addr];
            let mut conn = ctx
                .connect(req)
                .unwrap_or_else(|e| panic!("{service} via {addr}: {e:?}"));
            assert_eq!(conn.info().peer_addr.ip(), addr);
            assert_eq!(conn.info().sni.as_deref(), Some("mail.example.net"));
            assert_eq!(conn.info().proof.to_string(), "DNS-ID mail.example.net");
            check_greeting(service, security, &conn);
            use_stream(service, &mut conn);
        }
    }
}

#[test]
fn t_sni_06_probe_sni_example_com_srv_id_per_service() {
    let ctx = testbed_ctx(Duration::from_secs(10));
    for &(service, security, var) in SERVICES {
        let port = port(var);
        let mut req = ConnectRequest::new("mail.example.net", port, security);
        req.sni = Some("example.com".into());
        req.identity = Some(ReferenceIdentity::for_srv(service, "example.com").unwrap());
        let conn = ctx
            .connect(req.clone())
            .unwrap_or_else(|e| panic!("{service}: {e:?}"));
        assert_eq!(conn.info().sni.as_deref(), Some("example.com"));
        assert_eq!(
            conn.info().proof.to_string(),
            format!("SRV-ID _{service}.example.com")
        );
        drop(conn);
        // The multi cert has no DNS-ID example.com.
        req.identity = Some(ReferenceIdentity::for_dns("example.com").unwrap());
        let res = ctx.connect(req);
        assert!(
            matches!(res, Err(Error::NameMismatch(_))),
            "{service}: {res:?}"
        );
    }
}

#[test]
fn t_sni_09_different_sni_means_a_fresh_full_handshake() {
    let ctx = testbed_ctx(Duration::from_secs(10));
    let p = port("IMAPS");
    let mut probe = ConnectRequest::new("mail.example.net", p, Security::ImplicitTls);
    probe.sni = Some("example.com".into());
    probe.identity = Some(ReferenceIdentity::for_srv("imaps", "example.com").unwrap());
    let a = ctx.connect(probe).unwrap();
    let b = ctx
        .connect(ConnectRequest::new(
            "mail.example.net",
            p,
            Security::ImplicitTls,
        ))
        .unwrap();
    assert!(a.info().full_handshake && b.info().full_handshake);
    assert_eq!(a.info().proof.to_string(), "SRV-ID _imaps.example.com");
    assert_eq!(b.info().proof.to_string(), "DNS-ID mail.example.net");
    // Different certificates were presented (the SNI-selected ones).
    assert_ne!(a.info().peer_chain[0], b.info().peer_chain[0]);
    // And the same name twice is still two full handshakes (no resumption at all).
    let c = ctx
        .connect(ConnectRequest::new(
            "mail.example.net",
            p,
            Security::ImplicitTls,
        ))
        .unwrap();
    assert!(c.info().full_handshake);
}

/// Connects to a per-address certificate of the testbed (127.0.20.x) as mail.example.net.
fn per_address(
    ctx: &Context,
    addr: &str,
    var: &str,
    security: Security,
    identity: Option<ReferenceIdentity>,
    options: MatchOptions,
) -> std::result::Result<MailConnection, Error> {
    let mut req = ConnectRequest::new("mail.example.net", port(var), security);
    req.addresses = vec![ip(addr)];
    req.identity = identity;
    req.options = options;
    ctx.connect(req)
}

#[test]
fn t_tls_03_expired_is_cert_expired() {
    let ctx = testbed_ctx(Duration::from_secs(10));
    for &(_, security, var) in SERVICES {
        let res = per_address(
            &ctx,
            "127.0.20.1",
            var,
            security,
            None,
            MatchOptions::default(),
        );
        match res {
            Err(Error::CertExpired(d)) => assert!(d.contains("2020-02-01"), "{d}"),
            other => panic!("{var}: {other:?}"),
        }
    }
}

#[test]
fn untrusted_wrong_name_and_cn_only() {
    let ctx = testbed_ctx(Duration::from_secs(10));
    let strict = MatchOptions::default();
    for &(_, security, var) in SERVICES {
        let res = per_address(&ctx, "127.0.20.3", var, security, None, strict);
        assert!(
            matches!(res, Err(Error::UnknownIssuer(_))),
            "{var}: {res:?}"
        );
        let res = per_address(&ctx, "127.0.20.2", var, security, None, strict);
        match res {
            Err(Error::NameMismatch(d)) => assert!(d.contains("wrong.example.org"), "{d}"),
            other => panic!("{var}: {other:?}"),
        }
        // No CN fallback by default (RFC 9525).
        let res = per_address(&ctx, "127.0.20.5", var, security, None, strict);
        assert!(matches!(res, Err(Error::NameMismatch(_))), "{var}: {res:?}");
    }
    // The legacy flag is honoured when asked for.
    let legacy = MatchOptions {
        legacy_cn: true,
        ..MatchOptions::default()
    };
    let conn = per_address(
        &ctx,
        "127.0.20.5",
        "IMAPS",
        Security::ImplicitTls,
        None,
        legacy,
    )
    .unwrap();
    assert!(conn.info().proof.matched().unwrap().is_legacy_cn());
}

#[test]
fn srv_id_only_certificate() {
    let ctx = testbed_ctx(Duration::from_secs(10));
    let imaps = ReferenceIdentity::for_srv("imaps", "example.com").unwrap();
    let conn = per_address(
        &ctx,
        "127.0.20.4",
        "IMAPS",
        Security::ImplicitTls,
        Some(imaps.clone()),
        MatchOptions::default(),
    )
    .unwrap();
    assert_eq!(conn.info().proof.to_string(), "SRV-ID _imaps.example.com");
    // Over STARTTLS (port 10143) the same cert: _imaps is not _imap unless siblings are allowed.
    let res = per_address(
        &ctx,
        "127.0.20.4",
        "IMAP",
        Security::StartTlsImap,
        Some(ReferenceIdentity::for_srv("imap", "example.com").unwrap()),
        MatchOptions::default(),
    );
    assert!(matches!(res, Err(Error::NameMismatch(_))), "{res:?}");
    // The default DNS-ID mail.example.net is not in it.
    let res = per_address(
        &ctx,
        "127.0.20.4",
        "IMAPS",
        Security::ImplicitTls,
        None,
        MatchOptions::default(),
    );
    assert!(matches!(res, Err(Error::NameMismatch(_))), "{res:?}");
}

#[test]
fn t_sni_03_t_ref_08_ip_literal_host_gets_the_default_cert() {
    let ctx = testbed_ctx(Duration::from_secs(10));
    let p = port("IMAPS");
    let (v4, v6) = (mail_addr().to_string(), mail_addr6().to_string());
    for host in [v4, v6.clone(), format!("[{v6}]")] {
        let host = host.as_str();
        // Default reference: IP-ID, and the default cert has no iPAddress SAN.
        let res = ctx.connect(ConnectRequest::new(host, p, Security::ImplicitTls));
        match res {
            Err(Error::NameMismatch(d)) => assert!(d.contains("mail.example.net"), "{d}"),
            other => panic!("{host}: {other:?}"),
        }
        // No SNI ⇒ the default certificate (DNS-ID mail.example.net).
        let mut req = ConnectRequest::new(host, p, Security::ImplicitTls);
        req.identity = Some(ReferenceIdentity::for_dns("mail.example.net").unwrap());
        let conn = ctx.connect(req).unwrap();
        assert_eq!(conn.info().sni, None);
        assert_eq!(conn.info().proof.to_string(), "DNS-ID mail.example.net");
    }
}

#[test]
fn t_sni_02_trailing_dot_and_case_against_dovecot() {
    let ctx = testbed_ctx(Duration::from_secs(10));
    let conn = ctx
        .connect(ConnectRequest::new(
            "MAIL.Example.NET.",
            port("IMAPS"),
            Security::ImplicitTls,
        ))
        .unwrap();
    assert_eq!(conn.info().host, "mail.example.net");
    assert_eq!(conn.info().sni.as_deref(), Some("mail.example.net"));
}

#[test]
fn unknown_host_is_a_dns_error() {
    let ctx = testbed_ctx(Duration::from_secs(10));
    let res = ctx.connect(ConnectRequest::new(
        "nosuchhost.example.net",
        port("IMAPS"),
        Security::ImplicitTls,
    ));
    assert!(matches!(res, Err(Error::NxDomain(_))), "{res:?}");
    // AAAA-only host: HE connects over IPv6 (nobody else is asked).
    let conn = ctx
        .connect({
            let mut r =
                ConnectRequest::new("v6only.example.net", port("IMAPS"), Security::ImplicitTls);
            r.identity = Some(ReferenceIdentity::for_dns("mail.example.net").unwrap());
            r
        })
        .unwrap();
    assert_eq!(conn.info().peer_addr.ip(), mail_addr6());
    assert_eq!(conn.info().sni.as_deref(), Some("v6only.example.net"));
}
