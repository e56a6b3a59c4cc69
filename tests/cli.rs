//! The `mailsrv` command line: its JSON keys are a stable contract (docs/design.md §5).

mod common;

use std::process::Command;

use common::{env, port};
use serde_json::Value;

fn run(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailsrv"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn discover_json_shape() {
    let ns = env("MAILSRV_TEST_NS");
    let anchor = env("MAILSRV_TEST_ANCHOR");
    let (ok, j, err) = run(&[
        "discover",
        "joe@example.com",
        "--json",
        "--nameserver",
        &ns,
        "--trust-anchor",
        &anchor,
    ]);
    assert!(ok, "{err}");
    assert_eq!(j["domain"], "example.com");
    let services = j["services"].as_array().unwrap();
    assert_eq!(services.len(), 6);
    let imaps = &services[0];
    assert_eq!(imaps["service"], "imaps");
    assert_eq!(imaps["state"], "found");
    let e = &imaps["endpoints"][0];
    for key in [
        "target",
        "port",
        "priority",
        "weight",
        "ttl",
        "dnssec",
        "addresses",
    ] {
        assert!(!e[key].is_null(), "endpoint key {key}");
    }
    assert_eq!(e["target"], "mail.example.net");
    assert_eq!(e["port"], port("IMAPS"));
    assert_eq!(e["dnssec"], "secure");
    assert_eq!(services[3]["state"], "not_offered");
    assert_eq!(j["preferred"]["submission"], "submissions");
}

#[test]
fn bad_address_is_a_one_line_error() {
    let (ok, _, err) = run(&["discover", "not an address", "--nameserver", "127.0.0.1:9"]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("mailsrv: "));
}

#[test]
fn check_cert_json_shape() {
    let certs = env("MAILSRV_TEST_CERTS");
    let ca = env("MAILSRV_TEST_CA");
    let pem = format!("{certs}/srvid-imaps-example-com.pem");
    let (ok, j, _) = run(&[
        "check-cert",
        &pem,
        "--srv-id",
        "imaps:example.com",
        "--ca-file",
        &ca,
        "--json",
    ]);
    assert!(ok);
    assert_eq!(j["match"], true);
    assert_eq!(j["matched_identity"], "SRV-ID _imaps.example.com");
    assert!(j["reason"].is_null());
    let (ok, j, _) = run(&[
        "check-cert",
        &pem,
        "--dns-id",
        "example.com",
        "--ca-file",
        &ca,
        "--json",
    ]);
    assert!(!ok);
    assert_eq!(j["match"], false);
    assert!(j["reason"].as_str().unwrap().contains("_imaps.example.com"));
}

/// The verdicts the CLI prints are those of the C API tests (tests/ffi_authenticity.rs).
#[test]
fn verify_json_verdicts() {
    let ns = env("MAILSRV_TEST_NS");
    let anchor = env("MAILSRV_TEST_ANCHOR");
    let ca = env("MAILSRV_TEST_CA");
    for (address, verdict, evidence) in [
        ("joe@example.com", "authentic", Some("dnssec")),
        ("ann@hosted.test", "authentic", Some("probe_srv_id")),
        ("ann@dnshosted.test", "authentic", Some("probe_dns_id")),
        ("ann@insecure.test", "unverified", None),
        ("ann@dane.example.com", "authentic", Some("dane")),
    ] {
        let (ok, j, err) = run(&[
            "verify",
            address,
            "--service",
            "imaps",
            "--json",
            "--nameserver",
            &ns,
            "--trust-anchor",
            &anchor,
            "--ca-file",
            &ca,
        ]);
        assert!(ok, "{address}: {err}");
        let r = &j["results"][0];
        assert_eq!(r["service"], "imaps");
        assert_eq!(r["verdict"], verdict, "{address}: {}", r["detail"]);
        assert_eq!(r["evidence"].as_str(), evidence, "{address}");
        for key in ["target", "port", "target_verified", "detail"] {
            assert!(!r[key].is_null(), "{address}: key {key}");
        }
    }
}

#[test]
fn connect_json_shape() {
    let ns = env("MAILSRV_TEST_NS");
    let anchor = env("MAILSRV_TEST_ANCHOR");
    let ca = env("MAILSRV_TEST_CA");
    let target = format!("mail.example.net:{}", port("IMAP"));
    let (ok, j, err) = run(&[
        "connect",
        &target,
        "--starttls",
        "imap",
        "--json",
        "--nameserver",
        &ns,
        "--trust-anchor",
        &anchor,
        "--ca-file",
        &ca,
    ]);
    assert!(ok, "{err}");
    assert_eq!(j["host"], "mail.example.net");
    assert_eq!(j["sni"], "mail.example.net");
    assert_eq!(j["tls_version"], "TLSv1.3");
    assert_eq!(j["matched_identity"], "DNS-ID mail.example.net");
    assert!(j["greeting"].as_str().unwrap().starts_with("* OK"));
}

/// `verify` and `change` say how the account must connect (`"connect"`), and `connect
/// --binding` makes that connection: the SNI relay at relay.example.net gets SNI = the mail
/// domain and must prove its SRV-ID (docs/SECURITY.md, "SNI relay").
#[test]
fn verify_and_change_json_carry_the_binding() {
    let ns = env("MAILSRV_TEST_NS");
    let anchor = env("MAILSRV_TEST_ANCHOR");
    let ca = env("MAILSRV_TEST_CA");
    let common = [
        "--json",
        "--nameserver",
        ns.as_str(),
        "--trust-anchor",
        anchor.as_str(),
        "--ca-file",
        ca.as_str(),
    ];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(common.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let argv = with(&["verify", "ann@relayed.hosted.test", "--service", "imaps"]);
    let (ok, j, err) = run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let r = &j["results"][0];
    assert_eq!(r["verdict"], "authentic", "{}", r["detail"]);
    let c = &r["connect"];
    assert_eq!(c["host"], "relay.example.net");
    assert_eq!(c["port"], port("IMAPS"));
    assert_eq!(c["security"], "implicit-tls");
    assert_eq!(c["sni"], "relayed.hosted.test");
    assert_eq!(c["identity"][0], "SRV-ID _imaps.relayed.hosted.test");
    assert_eq!(c["dane"], false);
    let binding = c["binding"].as_str().unwrap().to_string();

    let saved = format!("mail.example.net:{}", port("IMAPS"));
    let argv = with(&[
        "change",
        "relayed.hosted.test",
        "--service",
        "imaps",
        "--saved",
        &saved,
    ]);
    let (ok, j, err) = run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert_eq!(j["decision"], "update", "{}", j["detail"]);
    assert_eq!(
        (&j["check"], &j["saved_origin"], &j["source"], &j["origin"]),
        (
            &Value::from("srv"),
            &Value::from("srv"),
            &Value::from("srv"),
            &Value::from("srv")
        )
    );
    assert_eq!(j["connect"]["sni"], "relayed.hosted.test");
    assert_eq!(j["connect"]["binding"], binding.as_str());

    let argv = with(&["connect", "--binding", &binding]);
    let (ok, j, err) = run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert_eq!(j["sni"], "relayed.hosted.test");
    assert_eq!(j["matched_identity"], "SRV-ID _imaps.relayed.hosted.test");
    assert!(j["greeting"].as_str().unwrap().contains("Dovecot"), "{j}");

    // A rejected answer has nothing to connect to.
    let argv = with(&["verify", "ann@danebad.example.com", "--service", "imaps"]);
    let (_, j, err) = run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(j["results"][0]["verdict"], "rejected", "{err}");
    assert!(j["results"][0]["connect"].is_null());
}

/// Exit status and stdout of one run.
fn run_status(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailsrv"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn nothing_usable_is_never_silent_and_exits_2() {
    // T-AUTH-03: a bogus domain's services are shown REJECTED with the DNSSEC reason.
    let ns = env("MAILSRV_TEST_NS");
    let anchor = env("MAILSRV_TEST_ANCHOR");
    let common = ["--nameserver", &ns, "--trust-anchor", &anchor];
    let (code, out) = run_status(&[&["verify", "bogus.test", "--no-probe"][..], &common].concat());
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("imaps") && out.contains("bogus") && out.contains("rejected"),
        "{out}"
    );
    assert!(out.contains("DNSSEC validation failed"), "{out}");
    let (code, out) = run_status(&[&["discover", "nosuch.example.com"][..], &common].concat());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no_record"), "{out}");
    let (code, out) = run_status(&[&["discover", "example.com"][..], &common].concat());
    assert_eq!(code, Some(0), "{out}");
}

/// `change --origin` takes every origin, by its own name or by the `source` names of
/// `autoconfig`; a configuration from any source but SRV is re-discovered from every
/// source (the multi-source account check), and the JSON says which source named the new
/// server and which origin to save with it (issue 16).
#[test]
fn change_handles_every_origin() {
    let ns = env("MAILSRV_TEST_NS");
    let anchor = env("MAILSRV_TEST_ANCHOR");
    let ca = env("MAILSRV_TEST_CA");
    let ispdb = env("MAILSRV_TEST_ISPDB");
    let change = |address: &str, origin: &str, extra: &[&str]| {
        let mut argv = vec![
            "change",
            address,
            "--service",
            "imaps",
            "--saved",
            "old.example.net:993",
            "--origin",
            origin,
            "--json",
            "--nameserver",
            &ns,
            "--trust-anchor",
            &anchor,
            "--ca-file",
            &ca,
            "--ispdb",
            &ispdb,
        ];
        argv.extend_from_slice(extra);
        run(&argv)
    };
    let imaps = format!("mail.example.net:{}", port("IMAPS"));

    // The mail domain's own HTTPS document (provider URL or .well-known): UPDATE.
    for origin in ["autoconfig", "autoconfig-wellknown"] {
        let (ok, j, err) = change("joe@ac.test", origin, &[]);
        assert!(ok, "{origin}: {err}");
        assert_eq!(j["check"], "account", "{j}");
        assert_eq!(j["saved_origin"], "autoconfig");
        assert_eq!(j["decision"], "update", "{}", j["detail"]);
        assert_eq!(j["target"], imaps.as_str());
        assert_eq!(
            (&j["source"], &j["origin"]),
            (&"autoconfig".into(), &"autoconfig".into())
        );
        assert_eq!(j["verdict"], "authentic");
        assert!(j["connect"]["binding"].is_string());
    }
    // A signed MX into the provider.
    for origin in ["mx", "mx-autoconfig", "mx-ispdb"] {
        let (ok, j, err) = change("joe@mxs.example.com", origin, &[]);
        assert!(ok, "{origin}: {err}");
        assert_eq!(
            (&j["check"], &j["saved_origin"]),
            (&"account".into(), &"mx".into())
        );
        assert_eq!(j["decision"], "update", "{}", j["detail"]);
        assert_eq!(
            (&j["source"], &j["origin"]),
            (&"mx-autoconfig".into(), &"mx".into())
        );
    }
    // The ISPDB's word never updates: WAIT, then ASK_USER once it persisted; the history
    // file records that the ISPDB named the server.
    let hist = std::env::temp_dir().join(format!("mailsrv-cli-change-{}", std::process::id()));
    let _ = std::fs::remove_file(&hist);
    let hist_arg = hist.to_str().unwrap();
    let now = 1_900_000_000u64;
    for (at, want) in [(now, "wait"), (now + 8 * 86_400, "ask_user")] {
        let at = at.to_string();
        let (ok, j, err) = change(
            "joe@ispdbonly.ac.test",
            "ispdb",
            &["--history", hist_arg, "--now", &at],
        );
        assert!(ok, "{err}");
        assert_eq!(j["decision"], want, "{}", j["detail"]);
        assert_eq!(
            (&j["source"], &j["origin"]),
            (&"ispdb".into(), &"ispdb".into())
        );
    }
    let text = std::fs::read_to_string(&hist).unwrap();
    assert!(
        text.contains(&format!(
            "obs ispdbonly.ac.test imaps mail.example.net {} ",
            port("IMAPS")
        )) && text.contains(" ispdb\n"),
        "{text}"
    );
    let _ = std::fs::remove_file(&hist);
    // Plain HTTP is never asked by a change check; user-typed never changes (the SRV check).
    let (ok, j, err) = change("joe@plain.ac.test", "autoconfig-http", &[]);
    assert!(ok, "{err}");
    assert_eq!(
        (&j["check"], &j["decision"]),
        (&"account".into(), &"no_change".into())
    );
    let (ok, j, err) = change("joe@ac.test", "user", &[]);
    assert!(ok, "{err}");
    assert_eq!(
        (&j["check"], &j["decision"]),
        (&"srv".into(), &"no_change".into())
    );
    assert!(j["origin"].is_null());

    // Bad input: an unknown origin, and a domain where the documents need the address.
    let (ok, _, err) = change("joe@ac.test", "dns", &[]);
    assert!(!ok && err.contains("--origin takes one of"), "{err}");
    for name in [
        "srv",
        "user",
        "autoconfig",
        "autoconfig-wellknown",
        "autoconfig-http",
        "ispdb",
        "mx-autoconfig",
        "mx-ispdb",
        "mx",
    ] {
        assert!(err.contains(name), "{name} missing from {err}");
    }
    let (ok, _, err) = change("ac.test", "autoconfig", &[]);
    assert!(!ok && err.contains("ADDRESS (user@domain)"), "{err}");
}

/// `mailsrv autoconfig` on the testbed, with PACC and guessing on the testbed's ports.
fn autoconfig(extra: &[&str]) -> (Option<i32>, Value) {
    let ns = env("MAILSRV_TEST_NS");
    let anchor = env("MAILSRV_TEST_ANCHOR");
    let ca = env("MAILSRV_TEST_CA");
    let ispdb = env("MAILSRV_TEST_ISPDB");
    let ports: Vec<String> = [
        ("imaps", "IMAPS"),
        ("imap", "IMAP"),
        ("pop3s", "POP3S"),
        ("pop3", "POP3"),
        ("submissions", "SUBMISSIONS"),
        ("submission", "SUBMISSION"),
    ]
    .iter()
    .map(|(s, p)| format!("{s}:{}", port(p)))
    .collect();
    let mut args = vec![
        "autoconfig",
        "--json",
        "--nameserver",
        &ns,
        "--trust-anchor",
        &anchor,
        "--ca-file",
        &ca,
        "--ispdb",
        &ispdb,
        "--timeout-ms",
        "15000",
    ];
    for p in &ports {
        args.extend(["--service-port", p.as_str()]);
    }
    args.extend(extra);
    let (code, out) = run_status(&args);
    (
        code,
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}")),
    )
}

fn source<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == name)
        .unwrap()
}

#[test]
fn autoconfig_sets_up_a_domain_reachable_only_through_pacc_autodiscover_or_guessing() {
    // PACC only, its digest in a DNSSEC-signed TXT record
    let (code, j) = autoconfig(&["joe@pacc.example.com"]);
    assert_eq!(code, Some(0), "{j}");
    assert_eq!(j["source"], "pacc");
    let c = j["candidates"].as_array().unwrap();
    assert_eq!(c.len(), 3, "{j}");
    assert!(
        c.iter()
            .all(|c| c["verdict"] == "authentic" && c["evidence"] == "pacc_dnssec")
    );
    assert_eq!(j["web"]["jmap"], "https://jmap.example.net/session");
    assert_eq!(j["web"]["oauth_public_issuer"], "https://auth.example.net");
    assert_eq!(source(&j, "pacc")["dns"]["dnssec"], "secure");
    // Autodiscover only
    let (code, j) = autoconfig(&["joe@adisc.ac.test"]);
    assert_eq!(code, Some(0), "{j}");
    assert_eq!(j["source"], "autodiscover");
    let access = &j["candidates"][j["preferred"]["access"].as_u64().unwrap() as usize];
    assert_eq!(
        (&access["verdict"], &access["evidence"]),
        (&Value::from("authentic"), &Value::from("https_domain"))
    );
    // guessing only: opt-in
    let (code, j) = autoconfig(&["joe@guess.ac.test"]);
    assert_eq!(code, Some(2), "{j}");
    assert_eq!(source(&j, "guess")["state"], "skipped");
    let (code, j) = autoconfig(&["joe@guess.ac.test", "--source", "guess"]);
    assert_eq!(code, Some(0), "{j}");
    assert_eq!(j["source"], "guess");
    assert_eq!(j["candidates"][0]["host"], "imap.guess.ac.test");
    assert_eq!(j["candidates"][0]["evidence"], "probe_dns_id");
}

#[test]
fn autoconfig_rejects_pacc_that_its_signed_digest_does_not_match() {
    let (code, j) = autoconfig(&["joe@paccbad.example.com", "--source", "pacc"]);
    assert_eq!(code, Some(2), "{j}");
    assert!(j["source"].is_null());
    let p = source(&j, "pacc");
    assert_eq!(p["state"], "failed");
    let e = p["error"].as_str().unwrap();
    assert!(e.contains("DNSSEC-signed") && e.contains("rejected"), "{e}");
}

#[test]
fn autoconfig_reports_what_autodiscover_did_not_follow() {
    let (code, j) = autoconfig(&["joe@adsrvu.ac.test", "--source", "autodiscover"]);
    assert_eq!(code, Some(2), "{j}");
    assert_eq!(
        source(&j, "autodiscover")["unfollowed"][0],
        "https://autodiscover.adprov.example.net/autodiscover/autodiscover.xml"
    );
    let (code, j) = autoconfig(&[
        "joe@adsrvu.ac.test",
        "--source",
        "autodiscover",
        "--autodiscover-follow",
    ]);
    assert_eq!(code, Some(0), "{j}");
    assert_eq!(j["candidates"][0]["verdict"], "unverified");
}
