//! Scripted servers over an in-memory pipe. Each script is a list of steps: expect a
//! client line, or send bytes (several `Send`s before an `Expect` arrive together,
//! like one TCP segment).

use super::imap::literal_len;
use super::lines::within_budget;
use super::*;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, duplex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

enum Step {
    Expect(&'static str),
    Send(&'static str),
    /// Stop answering but keep the connection open until the client closes it.
    Hang,
    Close,
}
use Step::*;

/// Runs `script` on the server end; returns what the client sent and whether the
/// script ran to its end.
async fn serve(io: DuplexStream, script: Vec<Step>) -> (Vec<String>, bool) {
    let (rd, mut wr) = tokio::io::split(io);
    let mut rd = BufReader::new(rd);
    let mut seen = Vec::new();
    for step in script {
        match step {
            Expect(want) => {
                let mut line = String::new();
                if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return (seen, false);
                }
                let line = line.trim_end_matches("\r\n").to_string();
                let ok = line == want;
                seen.push(line);
                if !ok {
                    return (seen, false);
                }
            }
            Send(s) => {
                if wr.write_all(s.as_bytes()).await.is_err() {
                    return (seen, false);
                }
            }
            Hang => {
                // Say nothing more; return once the client hangs up.
                let mut sink = Vec::new();
                let _ = rd.read_to_end(&mut sink).await;
                return (seen, true);
            }
            Close => return (seen, true),
        }
    }
    // Anything else the client sends after the script is recorded too.
    let mut rest = String::new();
    let _ = tokio::time::timeout(Duration::from_millis(50), rd.read_line(&mut rest)).await;
    if !rest.is_empty() {
        seen.push(rest.trim_end().to_string());
    }
    (seen, true)
}

async fn run_upgrade(sec: Security, script: Vec<Step>) -> (Result<String>, Vec<String>) {
    let (mut client, server) = duplex(1 << 20);
    let srv = tokio::spawn(serve(server, script));
    let deadline = Instant::now() + Duration::from_secs(2);
    let res = upgrade(&mut client, sec, "[127.0.0.1]", deadline).await;
    drop(client);
    let (seen, _) = srv.await.unwrap();
    (res, seen)
}

async fn run_after(sec: Security, script: Vec<Step>) -> (Result<ServerGreeting>, Vec<String>) {
    let (mut client, server) = duplex(1 << 20);
    let srv = tokio::spawn(serve(server, script));
    let deadline = Instant::now() + Duration::from_secs(2);
    let res = after_tls(&mut client, sec, None, "client.example", deadline).await;
    drop(client);
    let (seen, _) = srv.await.unwrap();
    (res, seen)
}

fn never_sent_credentials(seen: &[String]) {
    for l in seen {
        let u = l.to_ascii_uppercase();
        assert!(
            !u.contains("LOGIN") && !u.contains("AUTH") && !u.starts_with("USER"),
            "credential-like command sent: {l}"
        );
    }
}

#[tokio::test]
async fn t_stl_01_imap_greeting_capability_code() {
    let (res, seen) = run_upgrade(
        Security::StartTlsImap,
        vec![
            Send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n"),
            Expect("a2 STARTTLS"),
            Send("a2 OK Begin TLS negotiation now\r\n"),
        ],
    )
    .await;
    assert_eq!(
        res.unwrap(),
        "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready"
    );
    assert_eq!(seen, vec!["a2 STARTTLS"]);
}

#[tokio::test]
async fn t_stl_01_imap_capability_command_when_greeting_lacks_it() {
    let (res, seen) = run_upgrade(
        Security::StartTlsImap,
        vec![
            Send("* OK ready\r\n"),
            Expect("a1 CAPABILITY"),
            Send("* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n"),
            Expect("a2 STARTTLS"),
            Send("a2 OK go\r\n"),
        ],
    )
    .await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(seen, vec!["a1 CAPABILITY", "a2 STARTTLS"]);
}

#[tokio::test]
async fn t_stl_02_imap_without_starttls() {
    let (res, seen) = run_upgrade(
        Security::StartTlsImap,
        vec![
            Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"),
            Close,
        ],
    )
    .await;
    assert!(
        matches!(&res, Err(Error::Protocol(d)) if d.contains("STARTTLS")),
        "{res:?}"
    );
    assert!(seen.is_empty(), "sent {seen:?}");
    never_sent_credentials(&seen);
}

#[tokio::test]
async fn t_stl_03_imap_no_and_bad() {
    for answer in ["a2 NO [UNAVAILABLE] TLS broken\r\n", "a2 BAD no\r\n"] {
        let (res, _) = run_upgrade(
            Security::StartTlsImap,
            vec![
                Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
                Expect("a2 STARTTLS"),
                Send(answer),
            ],
        )
        .await;
        assert!(matches!(res, Err(Error::Protocol(_))), "{answer}: {res:?}");
    }
}

#[tokio::test]
async fn t_stl_04_imap_preauth_on_plain_port() {
    let (res, seen) = run_upgrade(
        Security::StartTlsImap,
        vec![Send("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n")],
    )
    .await;
    assert!(
        matches!(&res, Err(Error::Protocol(d)) if d.contains("PREAUTH")),
        "{res:?}"
    );
    assert!(seen.is_empty(), "sent {seen:?}");
}

#[tokio::test]
async fn t_stl_05_injection_after_go_ahead() {
    let cases: Vec<(Security, Vec<Step>)> = vec![
        (
            Security::StartTlsImap,
            vec![
                Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
                Expect("a2 STARTTLS"),
                Send("a2 OK go\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"),
            ],
        ),
        (
            Security::StartTlsPop3,
            vec![
                Send("+OK hi\r\n"),
                Expect("CAPA"),
                Send("+OK\r\nSTLS\r\n.\r\n"),
                Expect("STLS"),
                Send("+OK go\r\n+OK injected\r\n"),
            ],
        ),
        (
            Security::StartTlsSmtp,
            vec![
                Send("220 mx ESMTP\r\n"),
                Expect("EHLO [127.0.0.1]"),
                Send("250-mx\r\n250 STARTTLS\r\n"),
                Expect("STARTTLS"),
                Send("220 go\r\n250 injected"),
            ],
        ),
    ];
    for (sec, script) in cases {
        let (res, _) = run_upgrade(sec, script).await;
        assert!(
            matches!(&res, Err(Error::Protocol(d)) if d.contains("injection")),
            "{sec:?}: {res:?}"
        );
    }
}

/// Issue 12: `a2 OK Begin TLS {5}` used to be read as announcing a literal, and the five
/// plaintext bytes after it were swallowed before the handshake.
#[tokio::test]
async fn literal_on_the_go_ahead_is_refused() {
    for go_ahead in [
        "a2 OK Begin TLS {5}\r\nHELLO",
        "a2 OK Begin TLS {5+}\r\nHELLO\r\n",
        "a2 OK Begin TLS {5}\r\n",
    ] {
        let (res, seen) = run_upgrade(
            Security::StartTlsImap,
            vec![
                Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
                Expect("a2 STARTTLS"),
                Send(go_ahead),
            ],
        )
        .await;
        assert!(
            matches!(&res, Err(Error::Protocol(d)) if d.contains("injection")),
            "{go_ahead:?}: {res:?}"
        );
        never_sent_credentials(&seen);
    }
}

#[test]
fn reply_budget_cannot_wrap() {
    assert_eq!(within_budget(10, 20), Some(30));
    assert_eq!(within_budget(0, MAX_REPLY), Some(MAX_REPLY));
    assert_eq!(within_budget(1, MAX_REPLY), None);
    assert_eq!(within_budget(10, usize::MAX), None);
    assert_eq!(within_budget(usize::MAX, 1), None);
    assert_eq!(within_budget(MAX_REPLY, usize::MAX - MAX_REPLY + 1), None);
    // u32 limits: what a 32-bit usize would wrap at.
    assert_eq!(within_budget(16, u32::MAX as usize - 15), None);
    assert_eq!(within_budget(u32::MAX as usize, 1), None);
    // A literal bigger than usize on any target still counts as the largest one.
    assert_eq!(
        literal_len("* X {9999999999}"),
        usize::try_from(9_999_999_999u64).ok().or(Some(usize::MAX))
    );
    assert_eq!(literal_len("* X {4294967295}"), Some(u32::MAX as usize));
}

#[tokio::test]
async fn literal_near_the_budget_limit_is_refused() {
    // 10 bytes already read in this reply, then a literal that would wrap a 32-bit sum.
    let (mut client, mut server) = duplex(1 << 16);
    server.write_all(b"0123456789").await.unwrap();
    let mut r = Lines::new(&mut client, Instant::now() + Duration::from_secs(2));
    r.begin("test");
    r.charge(10).unwrap();
    for n in [usize::MAX, usize::MAX - 9, u32::MAX as usize - 9] {
        assert!(
            matches!(r.skip(n).await, Err(Error::Protocol(d)) if d.contains("reply longer")),
            "{n}"
        );
    }
}

#[tokio::test]
async fn t_stl_08_untagged_noise_is_ignored() {
    let (res, _) = run_upgrade(
        Security::StartTlsImap,
        vec![
            Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
            Expect("a2 STARTTLS"),
            Send(
                "* OK [ALERT] system going down\r\n* LIST () \"/\" {5}\r\nINBOX\r\n* 3 EXISTS\r\na2 OK go\r\n",
            ),
        ],
    )
    .await;
    assert!(res.is_ok(), "{res:?}");
}

#[tokio::test]
async fn t_stl_09_10_pop3() {
    let (res, seen) = run_upgrade(
        Security::StartTlsPop3,
        vec![
            Send("+OK POP3 ready\r\n"),
            Expect("CAPA"),
            Send("+OK\r\nTOP\r\nSTLS\r\nSASL PLAIN\r\n.\r\n"),
            Expect("STLS"),
            Send("+OK Begin TLS\r\n"),
        ],
    )
    .await;
    assert_eq!(res.unwrap(), "+OK POP3 ready");
    assert_eq!(seen, vec!["CAPA", "STLS"]);

    let (res, _) = run_upgrade(
        Security::StartTlsPop3,
        vec![
            Send("+OK POP3 ready\r\n"),
            Expect("CAPA"),
            Send("+OK\r\nSTLS\r\n.\r\n"),
            Expect("STLS"),
            Send("-ERR TLS already active\r\n"),
        ],
    )
    .await;
    assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");

    // No STLS in CAPA, and no CAPA at all.
    for capa in ["+OK\r\nTOP\r\n.\r\n", "-ERR unknown command\r\n"] {
        let (res, seen) = run_upgrade(
            Security::StartTlsPop3,
            vec![Send("+OK hi\r\n"), Expect("CAPA"), Send(capa)],
        )
        .await;
        assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");
        assert_eq!(seen, vec!["CAPA"]);
    }
}

#[tokio::test]
async fn t_stl_11_16_smtp_multiline() {
    let (res, seen) = run_upgrade(
        Security::StartTlsSmtp,
        vec![
            Send("220-mail.example.net ESMTP\r\n220 second line\r\n"),
            Expect("EHLO [127.0.0.1]"),
            Send("250-mail.example.net\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"),
            Expect("STARTTLS"),
            Send("220 2.0.0 Ready to start TLS\r\n"),
        ],
    )
    .await;
    assert_eq!(res.unwrap(), "220 mail.example.net ESMTP\n220 second line");
    assert_eq!(seen, vec!["EHLO [127.0.0.1]", "STARTTLS"]);
}

#[tokio::test]
async fn t_stl_12_13_smtp_refusals() {
    let (res, _) = run_upgrade(
        Security::StartTlsSmtp,
        vec![
            Send("220 mx\r\n"),
            Expect("EHLO [127.0.0.1]"),
            Send("250-mx\r\n250 STARTTLS\r\n"),
            Expect("STARTTLS"),
            Send("454 4.7.0 TLS not available\r\n"),
        ],
    )
    .await;
    assert!(
        matches!(&res, Err(Error::Protocol(d)) if d.contains("454")),
        "{res:?}"
    );
    let (res, seen) = run_upgrade(
        Security::StartTlsSmtp,
        vec![
            Send("220 mx\r\n"),
            Expect("EHLO [127.0.0.1]"),
            Send("250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"),
        ],
    )
    .await;
    assert!(
        matches!(&res, Err(Error::Protocol(d)) if d.contains("STARTTLS")),
        "{res:?}"
    );
    assert_eq!(seen, vec!["EHLO [127.0.0.1]"]);
    never_sent_credentials(&seen);
}

#[tokio::test]
async fn smtp_reply_code_must_not_change() {
    let (res, _) = run_upgrade(
        Security::StartTlsSmtp,
        vec![
            Send("220 mx\r\n"),
            Expect("EHLO [127.0.0.1]"),
            Send("250-mx\r\n251 STARTTLS\r\n"),
        ],
    )
    .await;
    assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");
}

#[tokio::test]
async fn garbage_and_overlong_and_closed() {
    let (res, _) = run_upgrade(Security::StartTlsImap, vec![Send("HTTP/1.1 200 OK\r\n")]).await;
    assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");
    let (res, _) = run_upgrade(
        Security::StartTlsSmtp,
        vec![Send("\x16\x03\x01\x00\x05hello\n")],
    )
    .await;
    assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");
    let long: &'static str =
        Box::leak(format!("* OK {}\r\n", "x".repeat(MAX_LINE)).into_boxed_str());
    let (res, _) = run_upgrade(Security::StartTlsImap, vec![Send(long)]).await;
    assert!(
        matches!(&res, Err(Error::Protocol(d)) if d.contains("longer")),
        "{res:?}"
    );
    // A line without end: bounded too.
    let endless: &'static str = Box::leak("* OK ".repeat(MAX_LINE).into_boxed_str());
    let (res, _) = run_upgrade(Security::StartTlsImap, vec![Send(endless), Hang]).await;
    assert!(
        matches!(&res, Err(Error::Protocol(d)) if d.contains("longer")),
        "{res:?}"
    );
    let (res, _) = run_upgrade(Security::StartTlsPop3, vec![Send("+OK hi\r\n"), Close]).await;
    assert!(matches!(res, Err(Error::ConnectionClosed(_))), "{res:?}");
    let (res, _) = run_upgrade(Security::StartTlsImap, vec![Send("* BYE too many\r\n")]).await;
    assert!(matches!(res, Err(Error::ConnectionClosed(_))), "{res:?}");
    // A bare CR inside a line.
    let (res, _) = run_upgrade(Security::StartTlsPop3, vec![Send("+OK a\rb\r\n")]).await;
    assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");
}

#[tokio::test]
async fn reply_budget_bounds_many_lines() {
    let many: &'static str = Box::leak(
        format!("+OK\r\n{}", "X-CAPABILITY-PADDING-LINE\r\n".repeat(4000)).into_boxed_str(),
    );
    let (res, _) = run_upgrade(
        Security::StartTlsPop3,
        vec![Send("+OK hi\r\n"), Expect("CAPA"), Send(many), Hang],
    )
    .await;
    assert!(
        matches!(&res, Err(Error::Protocol(d)) if d.contains("reply longer")),
        "{res:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn hanging_server_hits_the_deadline() {
    let (res, _) = run_upgrade(Security::StartTlsSmtp, vec![Send("220 mx\r\n"), Hang]).await;
    assert!(matches!(res, Err(Error::Timeout(_))), "{res:?}");
}

#[tokio::test]
async fn bad_client_name_is_refused_before_sending() {
    let (mut client, _server) = duplex(1024);
    let deadline = Instant::now() + Duration::from_secs(1);
    let res = upgrade(
        &mut client,
        Security::StartTlsSmtp,
        "evil\r\nMAIL FROM:<x>",
        deadline,
    )
    .await;
    assert!(matches!(res, Err(Error::InvalidArg(_))), "{res:?}");
}

#[tokio::test]
async fn t_stl_06_imap_capabilities_after_starttls() {
    let (res, seen) = run_after(
        Security::StartTlsImap,
        vec![
            Expect("a3 CAPABILITY"),
            Send("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na3 OK done\r\n"),
        ],
    )
    .await;
    let g = res.unwrap();
    assert_eq!(g.protocol, Protocol::Imap);
    assert_eq!(g.greeting, "");
    assert_eq!(g.capabilities, vec!["IMAP4rev1", "AUTH=PLAIN"]);
    assert_eq!(seen, vec!["a3 CAPABILITY"]);
}

#[tokio::test]
async fn t_stl_07_imap_implicit_reads_greeting_first() {
    // The capability code over TLS is used as is: no command at all.
    let (res, seen) = run_after(
        Security::ImplicitTls,
        vec![Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")],
    )
    .await;
    let g = res.unwrap();
    assert_eq!(g.protocol, Protocol::Imap);
    assert_eq!(g.capabilities, vec!["IMAP4rev1", "AUTH=PLAIN"]);
    assert!(seen.is_empty(), "{seen:?}");
    // PREAUTH is legitimate over TLS.
    let (res, seen) = run_after(
        Security::ImplicitTls,
        vec![
            Send("* PREAUTH hi\r\n"),
            Expect("a1 CAPABILITY"),
            Send("* CAPABILITY IMAP4rev1\r\na1 OK\r\n"),
        ],
    )
    .await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(seen, vec!["a1 CAPABILITY"]);
}

#[tokio::test]
async fn t_stl_09_pop3_after_tls() {
    let (res, seen) = run_after(
        Security::ImplicitTls,
        vec![
            Send("+OK Dovecot ready.\r\n"),
            Expect("CAPA"),
            Send("+OK\r\nUSER\r\nSASL PLAIN\r\n..dot\r\n.\r\n"),
        ],
    )
    .await;
    let g = res.unwrap();
    assert_eq!(g.protocol, Protocol::Pop3);
    assert_eq!(g.greeting, "+OK Dovecot ready.");
    assert_eq!(g.capabilities, vec!["USER", "SASL PLAIN", ".dot"]);
    assert_eq!(seen, vec!["CAPA"]);
}

#[tokio::test]
async fn t_stl_14_15_smtp_after_tls() {
    let (res, seen) = run_after(
        Security::ImplicitTls,
        vec![
            Send("220-mx ESMTP\r\n220 ok\r\n"),
            Expect("EHLO client.example"),
            Send("250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"),
        ],
    )
    .await;
    let g = res.unwrap();
    assert_eq!(g.protocol, Protocol::Smtp);
    assert_eq!(g.greeting, "220 mx ESMTP\n220 ok");
    assert_eq!(g.capabilities, vec!["STARTTLS", "AUTH PLAIN"]);
    // T-STL-14: STARTTLS still listed, but never sent again.
    assert_eq!(seen, vec!["EHLO client.example"]);
}

#[tokio::test]
async fn leftover_application_bytes_are_kept() {
    let (res, _) = run_after(
        Security::StartTlsPop3,
        vec![Expect("CAPA"), Send("+OK\r\nSTLS\r\n.\r\n+OK extra")],
    )
    .await;
    let g = res.unwrap();
    assert_eq!(g.leftover, b"+OK extra");
}

#[test]
fn parsing_helpers() {
    assert_eq!(literal_len("* LIST () \"/\" {5}"), Some(5));
    assert_eq!(literal_len("* LIST () \"/\" {5+}"), Some(5));
    assert_eq!(literal_len("* OK {x}"), None);
    assert_eq!(smtp_line("250"), Some((250, true, "")));
    assert_eq!(smtp_line("250-A"), Some((250, false, "A")));
    assert_eq!(smtp_line("250 B"), Some((250, true, "B")));
    assert_eq!(smtp_line("25"), None);
    assert_eq!(smtp_line("250xB"), None);
    assert_eq!(detect("* OK hi").unwrap(), Protocol::Imap);
    assert_eq!(detect("+OK").unwrap(), Protocol::Pop3);
    assert_eq!(detect("220-x").unwrap(), Protocol::Smtp);
    assert!(detect("SSH-2.0-OpenSSH").is_err());
    assert!(check_client_name(DEFAULT_CLIENT_NAME).is_ok());
    assert!(check_client_name("a b").is_err());
    assert!(check_client_name("").is_err());
    assert!(check_client_name("client.example").is_ok());
}
