//! `mailsrv audit` against the testbed: per-service results and flags of the scenario
//! domains, the key-reuse detector on real certificates, and 1000 lines with bounded memory.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{env, port};
use mailsrv::audit::{cert_facts, find_key_reuse};
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mailsrv-audit-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn common_args() -> Vec<String> {
    vec![
        "--nameserver".into(),
        env("MAILSRV_TEST_NS"),
        "--trust-anchor".into(),
        env("MAILSRV_TEST_ANCHOR"),
        "--ca-file".into(),
        env("MAILSRV_TEST_CA"),
    ]
}

/// Runs `mailsrv audit FILE ARGS...`: (exit ok, stdout, stderr).
fn audit(file: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailsrv"))
        .arg("audit")
        .arg(file)
        .args(args)
        .args(common_args())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn service<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

const SCENARIOS: &str = "# provider's domains
example.com

hosted.test
   # indented comment
half.test
insecure.test
bogus.test
not a domain!!
";

#[test]
fn scenario_domains_json() {
    let dir = scratch("json");
    let file = dir.join("domains.txt");
    std::fs::write(&file, SCENARIOS).unwrap();
    let (ok, out, err) = audit(&file, &["--json"]);
    assert!(!ok, "flagged domains make the exit status non-zero");
    assert_eq!(err.trim(), "mailsrv: audit: 5 of 6 domains flagged");
    assert!(
        !err.contains('\r'),
        "no progress bar when stderr is not a terminal"
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7, "{out}");
    let domains: Vec<&str> = lines[..6]
        .iter()
        .map(|l| l["domain"].as_str().unwrap())
        .collect();
    assert_eq!(
        domains,
        [
            "example.com",
            "hosted.test",
            "half.test",
            "insecure.test",
            "bogus.test",
            "not a domain!!"
        ],
        "reports come in input order"
    );
    let line_numbers: Vec<u64> = lines[..6]
        .iter()
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    assert_eq!(line_numbers, [2, 4, 6, 7, 8, 9]);
    for l in &lines[..6] {
        for key in [
            "line",
            "domain",
            "error",
            "states",
            "services",
            "flags",
            "key_reuse",
        ] {
            assert!(l.get(key).is_some(), "key {key} in {l}");
        }
        assert_eq!(l["key_reuse"].as_array().unwrap().len(), 0);
    }

    // example.com: five services (pop3 is "."), each passes by SRV-ID and the target's DNS-ID.
    let ex = &lines[0];
    assert_eq!(names(&ex["flags"]), Vec::<String>::new());
    assert_eq!(ex["states"]["pop3"], "not_offered");
    assert_eq!(ex["services"].as_array().unwrap().len(), 5);
    for (svc, p) in [
        ("imaps", "IMAPS"),
        ("imap", "IMAP"),
        ("pop3s", "POP3S"),
        ("submissions", "SUBMISSIONS"),
        ("submission", "SUBMISSION"),
    ] {
        let s = service(ex, svc);
        assert_eq!(s["target"], "mail.example.net");
        assert_eq!(s["port"], port(p));
        assert_eq!(s["dnssec"], "secure");
        assert_eq!(s["ok"], true, "{s}");
        assert_eq!(s["probe"]["sni"], "example.com");
        assert_eq!(
            s["probe"]["matched"],
            format!("SRV-ID _{svc}.example.com").as_str()
        );
        assert!(s["probe"]["error"].is_null());
        assert_eq!(s["reconnect"]["sni"], "mail.example.net");
        assert_eq!(s["reconnect"]["matched"], "DNS-ID mail.example.net");
    }

    // hosted.test: four services pass by SRV-ID; pop3s's target proves the domain but not
    // its own name (T-SEED-02), so the domain is mixed.
    let hosted = &lines[1];
    assert_eq!(names(&hosted["flags"]), ["mixed"]);
    for svc in ["imaps", "imap", "submissions", "submission"] {
        let s = service(hosted, svc);
        assert_eq!(s["ok"], true, "{s}");
        assert_eq!(
            s["probe"]["matched"],
            format!("SRV-ID _{svc}.hosted.test").as_str()
        );
    }
    let pop3s = service(hosted, "pop3s");
    assert_eq!(pop3s["target"], "srvonly.example.net");
    assert_eq!(pop3s["ok"], false);
    assert_eq!(pop3s["probe"]["ok"], true);
    assert_eq!(pop3s["probe"]["matched"], "SRV-ID _pop3s.hosted.test");
    assert_eq!(pop3s["reconnect"]["ok"], false);
    assert_eq!(pop3s["reconnect"]["sni"], "srvonly.example.net");
    assert!(
        pop3s["reconnect"]["error"]
            .as_str()
            .unwrap()
            .contains("srvonly.example.net")
    );

    // half.test: imaps passes, submissions presents the provider's default certificate.
    let half = &lines[2];
    assert_eq!(names(&half["flags"]), ["mixed"]);
    assert_eq!(half["services"].as_array().unwrap().len(), 2);
    let imaps = service(half, "imaps");
    assert_eq!(imaps["ok"], true);
    assert_eq!(imaps["probe"]["matched"], "SRV-ID _imaps.half.test");
    let subs = service(half, "submissions");
    assert_eq!(subs["ok"], false);
    assert_eq!(subs["probe"]["ok"], false);
    assert!(
        subs["probe"]["error"]
            .as_str()
            .unwrap()
            .contains("_submissions.half.test")
    );
    assert_eq!(subs["reconnect"]["ok"], true);

    // insecure.test: the targets prove only the provider's name: no service passes.
    let insecure = &lines[3];
    assert_eq!(names(&insecure["flags"]), ["none_pass"]);
    for s in insecure["services"].as_array().unwrap() {
        assert_eq!(s["probe"]["ok"], false, "{s}");
        assert_eq!(s["reconnect"]["ok"], true, "{s}");
        assert_eq!(s["dnssec"], "insecure");
    }

    // bogus.test: nothing is used, so nothing is connected to.
    let bogus = &lines[4];
    assert_eq!(names(&bogus["flags"]), ["bogus"]);
    assert_eq!(bogus["services"].as_array().unwrap().len(), 0);
    assert_eq!(bogus["states"]["imaps"], "bogus");
    assert_eq!(bogus["states"]["submissions"], "bogus");

    // The malformed line is an error report, not a crash.
    let bad = &lines[5];
    assert_eq!(names(&bad["flags"]), ["error"]);
    assert!(bad["error"].as_str().unwrap().contains("white space"));

    let s = &lines[6]["summary"];
    assert_eq!(s["domains"], 6);
    assert_eq!(s["clean"], 1);
    assert_eq!(s["flagged"], 5);
    assert_eq!(s["flags"]["mixed"], 2);
    assert_eq!(s["flags"]["none_pass"], 1);
    assert_eq!(s["flags"]["bogus"], 1);
    assert_eq!(s["flags"]["error"], 1);
    assert_eq!(s["flags"]["key_reuse"], 0);
    assert_eq!(s["services"]["submissions"]["found"], 4);
    assert_eq!(s["services"]["submissions"]["passed"], 2);
    assert_eq!(s["services"]["pop3s"]["reconnect_failed"], 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn text_mode_and_clean_exit() {
    let dir = scratch("text");
    let file = dir.join("domains.txt");
    std::fs::write(&file, SCENARIOS).unwrap();
    let (ok, out, _) = audit(&file, &["--concurrency", "2"]);
    assert!(!ok);
    assert!(
        out.contains("example.com: ok, 5 of 5 services pass"),
        "{out}"
    );
    assert!(out.contains("half.test: FLAGGED, 1 of 2 services pass [mixed]"));
    assert!(out.contains("probe (SNI half.test): FAILED"));
    assert!(out.contains("not a domain!!: error (line 9)"));
    assert!(out.contains("summary: 6 domains"));
    assert!(out.contains("reconnect fail"));

    // Only clean domains: exit status 0.
    std::fs::write(&file, "example.com\n# only the signed one\n").unwrap();
    let (ok, out, err) = audit(&file, &["--json"]);
    assert!(ok, "{out}{err}");
    assert!(err.is_empty(), "{err}");

    // Bad option values are usage errors.
    let (ok, _, err) = audit(&file, &["--concurrency", "0"]);
    assert!(!ok);
    assert!(err.contains("--concurrency"), "{err}");
    let (ok, _, err) = audit(&dir.join("missing.txt"), &[]);
    assert!(!ok);
    assert!(err.contains("missing.txt"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// DER of the first certificate in a PEM file.
fn der(path: &Path) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The testbed's certificates each have their own key, so the detector is shown a real
/// shared-key case made here: a self-signed DNS-ID certificate for hosted.test on the key of
/// srvid-multi-hosted-test (what a provider holding that key could issue itself).
#[test]
fn key_reuse_on_real_certificates() {
    let certs = PathBuf::from(env("MAILSRV_TEST_CERTS"));
    let srv = cert_facts(
        &der(&certs.join("srvid-multi-hosted-test.crt")),
        "hosted.test",
    )
    .unwrap();
    assert_eq!(srv.srv_ids.len(), 6, "{srv:?}");
    assert!(
        srv.srv_ids
            .contains(&"_submissions.hosted.test".to_string())
    );
    assert!(srv.dns_ids.is_empty());
    let dns = cert_facts(
        &der(&certs.join("dnsid-dnshosted-test.crt")),
        "dnshosted.test",
    )
    .unwrap();
    assert_eq!(dns.dns_ids, ["dnshosted.test"]);
    assert!(dns.srv_ids.is_empty());
    // The provider's own certificate names neither domain.
    let provider = cert_facts(
        &der(&certs.join("dnsid-mail-example-net.crt")),
        "hosted.test",
    )
    .unwrap();
    assert!(provider.srv_ids.is_empty() && provider.dns_ids.is_empty());
    // A wildcard DNS-ID counts for a name one label below it, never for the apex.
    let wild = der(&certs.join("wildcard-example-net.crt"));
    assert_eq!(
        cert_facts(&wild, "mail.example.net").unwrap().dns_ids,
        ["*.example.net"]
    );
    assert!(cert_facts(&wild, "example.net").unwrap().dns_ids.is_empty());

    // Distinct keys: no warning.
    assert!(find_key_reuse(&[srv.clone(), provider.clone()]).is_empty());

    let dir = scratch("keyreuse");
    let key = certs.join("srvid-multi-hosted-test.key");
    let out = dir.join("dnsid-hosted-test-same-key.crt");
    openssl(&[
        "req",
        "-new",
        "-x509",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/CN=hosted.test",
        "-addext",
        "subjectAltName=DNS:hosted.test",
        "-days",
        "2",
        "-out",
        out.to_str().unwrap(),
    ]);
    let same_key = cert_facts(&der(&out), "hosted.test").unwrap();
    assert_eq!(same_key.dns_ids, ["hosted.test"]);
    assert_eq!(same_key.spki_sha256, srv.spki_sha256);
    let reuse = find_key_reuse(&[srv.clone(), provider, same_key]);
    assert_eq!(reuse.len(), 1, "{reuse:?}");
    // The SPKI hash is the one openssl computes (the TLSA 3 1 1 form).
    let spki = openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(reuse[0].spki_sha256, hex);
    assert_eq!(reuse[0].dns_ids, ["hosted.test"]);
    assert_eq!(reuse[0].srv_ids.len(), 6);
    assert_eq!(reuse[0].certificates.len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs the CLI with stdout and stderr in files and returns (exit status, max RSS in KiB,
/// wall time), measured by wait4 on this very child.
fn run_measured(file: &Path, out: &Path) -> (i32, i64, Duration) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_mailsrv"))
        .arg("audit")
        .arg(file)
        .arg("--json")
        .args(common_args())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid);
    drop(child); // already reaped; dropping a Child never waits
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss, started.elapsed())
}

#[test]
fn thousand_lines_bounded_memory() {
    let dir = scratch("thousand");
    // The scenario domains, weighted towards those that cost the mail servers little (the
    // servers, not the audit, bound the rate on a loaded two-core machine): six TLS
    // connections per five lines.
    let domains = [
        "half.test",
        "bogus.test",
        "broken.test",
        "nosrv.example.com",
        "dnshosted.test",
    ];
    let write = |n: usize| {
        let path = dir.join(format!("{n}.txt"));
        let mut f = std::fs::File::create(&path).unwrap();
        for i in 0..n {
            if i % 100 == 99 {
                writeln!(f, "bad..name").unwrap();
            } else {
                writeln!(f, "{}", domains[i % domains.len()]).unwrap();
            }
        }
        path
    };
    let small = write(100);
    let big = write(1000);
    let (code, rss_small, t_small) = run_measured(&small, &dir.join("small.out"));
    assert_eq!(code, 1, "flagged domains: exit status 1");
    let (code, rss_big, t_big) = run_measured(&big, &dir.join("big.out"));
    assert_eq!(code, 1);
    let out = std::fs::read_to_string(dir.join("big.out")).unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1001, "one report per line plus the summary");
    let s = &lines[1000]["summary"];
    assert_eq!(s["domains"], 1000);
    assert_eq!(s["flags"]["error"], 10);
    // The same domain always gets the same verdict, whatever else runs at the same time.
    // Every 100th line (a dnshosted.test slot) is malformed.
    assert_eq!(s["clean"], 190, "{s}");
    assert_eq!(s["flags"]["mixed"], 200);
    assert_eq!(s["flags"]["bogus"], 200);
    assert_eq!(s["flags"]["lookup_failed"], 200);
    assert_eq!(s["flags"]["no_srv"], 200);
    eprintln!(
        "audit: 100 lines in {t_small:?} (max RSS {rss_small} KiB), \
         1000 lines in {t_big:?} (max RSS {rss_big} KiB)"
    );
    // Flat: ten times the domains may not cost more than a few MiB more (allocator noise).
    assert!(
        rss_big < rss_small + 8 * 1024,
        "max RSS grew from {rss_small} KiB to {rss_big} KiB"
    );
    assert!(rss_big < 128 * 1024, "max RSS {rss_big} KiB");
    let _ = std::fs::remove_dir_all(dir);
}

/// The progress bar is drawn on stderr when it is a terminal (here a pty from script(1)),
/// and the reports on a redirected stdout stay clean.
#[test]
fn progress_bar_on_a_terminal_only() {
    if Command::new("script").arg("--version").output().is_err() {
        panic!("script(1) (util-linux) is needed for this test");
    }
    let dir = scratch("tty");
    let file = dir.join("domains.txt");
    std::fs::write(&file, "half.test\nbogus.test\n").unwrap();
    let out = dir.join("out.json");
    let cmd = format!(
        "{} audit {} --json {} > {}",
        env!("CARGO_BIN_EXE_mailsrv"),
        file.display(),
        common_args().join(" "),
        out.display()
    );
    let tty = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("\r\x1b[Kaudit ["), "{shown:?}");
    assert!(shown.contains("2/2"), "{shown:?}");
    let json = std::fs::read_to_string(&out).unwrap();
    assert!(!json.contains('\x1b') && !json.contains('\r'));
    assert_eq!(json.lines().count(), 3);
    let _ = std::fs::remove_dir_all(dir);
}
