use mailsrv::core::config::Config;
use mailsrv::core::connect::ConnectRequest;
use mailsrv::core::context::Context;
use mailsrv::core::starttls::Security;
use std::time::{Duration, Instant};
fn env(n: &str) -> String {
    std::env::var(n).unwrap()
}
#[test]
fn measure() {
    let mut cfg = Config::default();
    cfg.add_nameserver(&env("MAILSRV_TEST_NS")).unwrap();
    cfg.trust_anchor_file = Some(env("MAILSRV_TEST_ANCHOR").into());
    cfg.ca_file = Some(env("MAILSRV_TEST_CA").into());
    let ctx = Context::new(cfg).unwrap();
    for (svc, sec, var) in [
        ("imap", Security::StartTlsImap, "MAILSRV_TEST_IMAP_PORT"),
        ("imaps", Security::ImplicitTls, "MAILSRV_TEST_IMAPS_PORT"),
        ("pop3", Security::StartTlsPop3, "MAILSRV_TEST_POP3_PORT"),
        ("pop3s", Security::ImplicitTls, "MAILSRV_TEST_POP3S_PORT"),
        (
            "submission",
            Security::StartTlsSmtp,
            "MAILSRV_TEST_SUBMISSION_PORT",
        ),
        (
            "submissions",
            Security::ImplicitTls,
            "MAILSRV_TEST_SUBMISSIONS_PORT",
        ),
    ] {
        let port: u16 = env(var).parse().unwrap();
        for dns in [true, false] {
            let mut v: Vec<Duration> = Vec::new();
            for _ in 0..21 {
                let mut r = ConnectRequest::new("mail.example.net", port, sec);
                if !dns {
                    r.addresses = vec!["::1".parse().unwrap()];
                }
                let t0 = Instant::now();
                let mut c = ctx.connect(r).unwrap();
                v.push(t0.elapsed());
                c.close().unwrap();
            }
            v.sort();
            eprintln!(
                "MEASURE {svc:12} dns={dns:5} min={:?} median={:?} max={:?}",
                v[0], v[10], v[20]
            );
        }
    }
}
