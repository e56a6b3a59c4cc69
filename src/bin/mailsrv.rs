//! `mailsrv`: the command-line face of the library (docs/design.md §5).

use std::process::ExitCode;
use std::time::Duration;

use mailsrv::core::config::Config;
use mailsrv::core::context::Context;
use mailsrv::core::dns::discover::{Discovery, SrvState};
use mailsrv::core::service::{Purpose, Service};
use mailsrv::core::tls::connect::MailConnection;
use mailsrv::core::verdict::binding::Binding;
use serde_json::{Value, json};

const USAGE: &str = "usage:
  mailsrv discover ADDRESS [--service NAME]... [--require-secure] [COMMON]
  mailsrv verify ADDRESS [--service NAME]... [--no-probe] [--require-secure] [COMMON]
  mailsrv connect HOST:PORT [--starttls imap|pop3|smtp] [--sni NAME]
                  [--expect-srv-id SERVICE:DOMAIN]... [--expect-dns-id NAME]... [COMMON]
  mailsrv connect --binding TEXT [COMMON]
  mailsrv change DOMAIN|ADDRESS --service NAME --saved HOST:PORT [--origin NAME]
                  [--history FILE] [--now UNIX] [--ispdb URL] [--no-probe]
                  [--require-secure] [COMMON]
  mailsrv check-cert CERT.pem (--dns-id NAME | --srv-id SERVICE:DOMAIN | --ip ADDR)...
                     [--legacy-cn] [--accept-sibling] [COMMON]
  mailsrv autoconfig ADDRESS [--ispdb URL] [--source NAME]... [--no-http] [--no-probe]
                     [--require-secure] [--service-port SERVICE:PORT]...
                     [--autodiscover-follow] [--autodiscover-user USER] [COMMON]
  mailsrv audit FILE|- [--concurrency N] [COMMON]
  mailsrv version
COMMON: [--json] [--nameserver IP:PORT]... [--trust-anchor FILE] [--ca-file FILE]
        [--timeout-ms N] [--seed N]";

/// Subcommand options that take no value.
const FLAG_OPTIONS: [&str; 6] = [
    "--no-http",
    "--require-secure",
    "--legacy-cn",
    "--accept-sibling",
    "--no-probe",
    "--autodiscover-follow",
];

/// Options every subcommand takes.
struct Common {
    json: bool,
    config: Config,
}

/// Exit status of `discover` and `verify` when the command worked but found nothing usable:
/// no service found (discover), or no service found that is not rejected (verify). 1 stays
/// for usage and operational errors (docs/man/mailsrv.1).
const EXIT_NOTHING_USABLE: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            eprintln!("mailsrv: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &[String]) -> Result<u8, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    match cmd.as_str() {
        "discover" => discover(rest),
        "check-cert" => check_cert(rest).map(|()| 0),
        "verify" => verify(rest),
        "autoconfig" => autoconfig(rest),
        "connect" => connect(rest).map(|()| 0),
        "change" => change(rest).map(|()| 0),
        "audit" => audit(rest).map(|()| 0),
        "version" => {
            println!("mailsrv {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

/// A subcommand's arguments: positional ones, its own `--flag [value]` pairs, the common ones.
struct Args {
    positional: Vec<String>,
    options: Vec<(String, String)>,
    common: Common,
}

/// Splits `args` into positional arguments and `--flag [value]` pairs, filling `Common`.
fn parse(args: &[String], extra: &[&str]) -> Result<Args, String> {
    let mut pos = Vec::new();
    let mut opts = Vec::new();
    let mut common = Common {
        json: false,
        config: Config::default(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--json" => common.json = true,
            "--nameserver" => common
                .config
                .add_nameserver(&value(a)?)
                .map_err(|e| e.to_string())?,
            "--trust-anchor" => common.config.trust_anchor_file = Some(value(a)?.into()),
            "--ca-file" => common.config.ca_file = Some(value(a)?.into()),
            "--timeout-ms" => {
                let ms: u64 = value(a)?
                    .parse()
                    .map_err(|_| "--timeout-ms takes milliseconds")?;
                common
                    .config
                    .set_timeout(Duration::from_millis(ms))
                    .map_err(|e| e.to_string())?;
            }
            "--seed" => {
                common.config.rng_seed =
                    Some(value(a)?.parse().map_err(|_| "--seed takes a number")?)
            }
            f if extra.contains(&f) && FLAG_OPTIONS.contains(&f) => {
                opts.push((f.to_string(), String::new()))
            }
            f if extra.contains(&f) => opts.push((f.to_string(), value(f)?)),
            f if f.starts_with("--") => return Err(format!("unknown option {f}\n{USAGE}")),
            _ => pos.push(a.clone()),
        }
    }
    Ok(Args {
        positional: pos,
        options: opts,
        common,
    })
}

/// The services named by `--service` options; all six when none is.
fn services_from(options: &[(String, String)]) -> Result<Vec<Service>, String> {
    let named: Vec<Service> = options
        .iter()
        .filter(|(k, _)| k == "--service")
        .map(|(_, v)| Service::from_name(v).ok_or(format!("unknown service {v:?}")))
        .collect::<Result<_, _>>()?;
    Ok(if named.is_empty() {
        Service::ALL.to_vec()
    } else {
        named
    })
}

fn discover(args: &[String]) -> Result<u8, String> {
    let Args {
        positional: pos,
        options: opts,
        common,
    } = parse(args, &["--service", "--require-secure"])?;
    let [address] = pos.as_slice() else {
        return Err(format!("discover takes one ADDRESS\n{USAGE}"));
    };
    let services = services_from(&opts)?;
    let secure = opts.iter().any(|(k, _)| k == "--require-secure");
    let ctx = Context::new(common.config).map_err(|e| e.to_string())?;
    let d = ctx
        .discover(address, &services, secure)
        .map_err(|e| e.to_string())?;
    if common.json {
        emit(&format!("{}\n", discovery_json(&d)));
    } else {
        emit(&discovery_text(&d));
    }
    Ok(usable(
        d.services.iter().any(|s| s.state == SrvState::Found),
    ))
}

fn usable(any: bool) -> u8 {
    if any { 0 } else { EXIT_NOTHING_USABLE }
}

/// `check-cert`: mailsrv's chain and name check on a PEM file (leaf first, then its chain).
fn check_cert(args: &[String]) -> Result<(), String> {
    use mailsrv::core::cert::identity::{MatchOptions, ReferenceId, ReferenceIdentity};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let Args {
        positional,
        options,
        common,
    } = parse(
        args,
        &[
            "--dns-id",
            "--srv-id",
            "--ip",
            "--legacy-cn",
            "--accept-sibling",
        ],
    )?;
    let [file] = positional.as_slice() else {
        return Err(format!("check-cert takes one PEM file\n{USAGE}"));
    };
    let mut identity = ReferenceIdentity::new();
    let mut match_options = MatchOptions::default();
    for (k, v) in &options {
        match k.as_str() {
            "--dns-id" => identity.add_dns_id(v).map_err(|e| e.to_string())?,
            "--srv-id" => {
                let (svc, domain) = v.split_once(':').ok_or("--srv-id takes SERVICE:DOMAIN")?;
                identity
                    .add_srv_id(svc, domain)
                    .map_err(|e| e.to_string())?;
            }
            "--ip" => match ReferenceId::from_host(v) {
                Ok(r @ ReferenceId::IpId(_)) => identity.push(r),
                _ => return Err(format!("{v:?} is not an IP address")),
            },
            "--legacy-cn" => match_options.legacy_cn = true,
            _ => match_options.accept_sibling_service = true,
        }
    }
    if identity.is_empty() {
        return Err("give at least one --dns-id, --srv-id or --ip".into());
    }
    let chain: Vec<Vec<u8>> = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("{file}: {e}"))?
        .map(|c| c.map(|c| c.to_vec()).map_err(|e| format!("{file}: {e}")))
        .collect::<Result<_, _>>()?;
    if chain.is_empty() {
        return Err(format!("{file}: no certificate"));
    }
    let mut config = common.config;
    if config.nameservers.is_empty() {
        // No DNS is needed; avoid depending on resolv.conf.
        config
            .add_nameserver("127.0.0.1")
            .map_err(|e| e.to_string())?;
    }
    let ctx = Context::new(config).map_err(|e| e.to_string())?;
    let verdict = ctx.check_cert(&chain, &identity, match_options);
    let (matched, reason) = match &verdict {
        Ok(v) => (Some(v.matched.to_string()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    if common.json {
        let j = json!({"match": verdict.is_ok(), "matched_identity": matched, "reason": reason});
        emit(&format!("{j}\n"));
    } else {
        match (&matched, &reason) {
            (Some(m), _) => emit(&format!("match: {m}\n")),
            (_, Some(r)) => emit(&format!("no match: {r}\n")),
            _ => {}
        }
    }
    if verdict.is_ok() {
        Ok(())
    } else {
        Err(reason.unwrap_or_default())
    }
}

/// `verify`: discovery, then the authenticity verdict for each found service's first endpoint.
fn verify(args: &[String]) -> Result<u8, String> {
    use mailsrv::core::verdict::Verdict;
    use mailsrv::core::verdict::authenticity::{AuthRequest, Evidence};

    let Args {
        positional,
        options,
        common,
    } = parse(args, &["--service", "--no-probe", "--require-secure"])?;
    let [address] = positional.as_slice() else {
        return Err(format!("verify takes one ADDRESS\n{USAGE}"));
    };
    let services = services_from(&options)?;
    let probe = !options.iter().any(|(k, _)| k == "--no-probe");
    let require_secure = options.iter().any(|(k, _)| k == "--require-secure");
    let ctx = Context::new(common.config).map_err(|e| e.to_string())?;
    let d = ctx
        .discover(address, &services, false)
        .map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    let mut text = format!("mail domain {}\n", d.domain);
    let mut any_usable = false;
    // Every service asked is shown: the ones not found with their state and reason (a bogus
    // answer is REJECTED with the DNSSEC reason), never silently left out.
    for s in d.services.iter().filter(|s| s.state != SrvState::Found) {
        let verdict = (s.state == SrvState::Bogus).then_some("rejected");
        let why = s
            .error
            .as_ref()
            .map_or_else(|| s.state.name().to_string(), |e| e.to_string());
        text.push_str(&format!(
            "  {:<12} {}  {}\n      {why}\n",
            s.service.name(),
            s.state.name(),
            verdict.unwrap_or("-"),
        ));
        results.push(json!({
            "service": s.service.name(), "state": s.state.name(), "verdict": verdict,
            "dnssec": s.dnssec.map(|x| x.name()), "detail": why,
        }));
    }
    for s in d.services.iter().filter(|s| s.state == SrvState::Found) {
        let e = &s.endpoints[0];
        let mut req = AuthRequest::new(&d.domain, s.service, &e.target, e.port);
        req.probe = probe;
        req.require_secure = require_secure;
        let a = ctx
            .verify_srv_authenticity(req)
            .map_err(|e| e.to_string())?;
        any_usable |= a.verdict != Verdict::Rejected;
        let verdict = a.verdict.name();
        let evidence = a.evidence.map(Evidence::name);
        text.push_str(&format!(
            "  {:<12} {}:{}  {verdict}{}\n      {}\n{}",
            s.service.name(),
            e.target,
            e.port,
            evidence.map(|x| format!(" ({x})")).unwrap_or_default(),
            a.detail,
            binding_text(a.binding.as_ref()),
        ));
        results.push(json!({
            "service": s.service.name(), "target": e.target, "port": e.port, "verdict": verdict,
            "evidence": evidence, "target_verified": a.target_verified, "in_domain": a.in_domain,
            "detail": a.detail, "state": s.state.name(), "dnssec": s.dnssec.map(|x| x.name()),
            "connect": binding_json(a.binding.as_ref()),
        }));
    }
    if common.json {
        emit(&format!(
            "{}\n",
            json!({"domain": d.domain, "results": results})
        ));
    } else {
        emit(&text);
    }
    Ok(usable(any_usable))
}

/// `autoconfig`: account discovery from every source (PACC, provider autoconfig, SRV, ISPDB,
/// MX, Exchange Autodiscover, plain HTTP; guessing with `--source guess`), each candidate
/// server with its verdict, evidence and binding. Autodiscover follows a URL outside the mail
/// domain only with `--autodiscover-follow`, and sends credentials only with
/// `--autodiscover-user` (the password from MAILSRV_AUTODISCOVER_PASSWORD, never from argv).
fn autoconfig(args: &[String]) -> Result<u8, String> {
    use mailsrv::core::account::{AutodiscoverAnswer, AutodiscoverAsk, AutodiscoverHook, Source};
    use mailsrv::core::context::AutoconfigFlags;
    use mailsrv::core::verdict::Verdict;
    use mailsrv::core::verdict::authenticity::Evidence;

    let Args {
        positional,
        options,
        mut common,
    } = parse(
        args,
        &[
            "--ispdb",
            "--source",
            "--no-http",
            "--no-probe",
            "--require-secure",
            "--service-port",
            "--autodiscover-follow",
            "--autodiscover-user",
        ],
    )?;
    let [address] = positional.as_slice() else {
        return Err(format!("autoconfig takes one ADDRESS\n{USAGE}"));
    };
    let has = |k: &str| options.iter().any(|(o, _)| o == k);
    let mut sources: Vec<Source> = Vec::new();
    for (k, v) in &options {
        match k.as_str() {
            "--source" => sources.push(Source::from_name(v).ok_or_else(|| {
                let names: Vec<&str> = Source::ALL.iter().map(|s| s.name()).collect();
                format!("unknown source {v:?} (one of {})", names.join(", "))
            })?),
            "--ispdb" => common.config.set_ispdb_url(v).map_err(|e| e.to_string())?,
            "--service-port" => {
                let bad = || format!("--service-port takes SERVICE:PORT (imaps:993), not {v:?}");
                let (name, port) = v.split_once(':').ok_or_else(bad)?;
                let service = Service::from_name(name).ok_or_else(bad)?;
                let port: u16 = port.parse().map_err(|_| bad())?;
                common.config.service_ports.set(service, port);
            }
            _ => {}
        }
    }
    let follow = has("--autodiscover-follow");
    let user = options
        .iter()
        .find(|(k, _)| k == "--autodiscover-user")
        .map(|(_, v)| v.clone());
    if follow || user.is_some() {
        let password = match &user {
            Some(_) => Some(std::env::var("MAILSRV_AUTODISCOVER_PASSWORD").map_err(|_| {
                "--autodiscover-user needs the password in MAILSRV_AUTODISCOVER_PASSWORD"
                    .to_string()
            })?),
            None => None,
        };
        common.config.autodiscover_hook = Some(AutodiscoverHook::new(move |ask| match ask {
            AutodiscoverAsk::Follow { url, why, .. } => {
                eprintln!(
                    "mailsrv: Autodiscover {} {url} ({why})",
                    if follow { "follows" } else { "does not follow" }
                );
                if follow {
                    AutodiscoverAnswer::Yes
                } else {
                    AutodiscoverAnswer::No
                }
            }
            AutodiscoverAsk::Credentials { url, .. } => match (&user, &password) {
                (Some(u), Some(p)) => {
                    eprintln!("mailsrv: Autodiscover sends the credentials of {u} to {url}");
                    AutodiscoverAnswer::Credentials {
                        user: u.clone(),
                        password: p.clone(),
                    }
                }
                _ => AutodiscoverAnswer::No,
            },
        }));
    }
    if sources.is_empty() {
        sources = Source::defaults();
    }
    if has("--no-http") {
        sources.retain(|s| *s != Source::AutoconfigHttp);
    }
    if sources.is_empty() {
        return Err("no source left to ask".into());
    }
    let flags = AutoconfigFlags {
        probe: !has("--no-probe"),
        require_secure: has("--require-secure"),
    };
    let ctx = Context::new(common.config).map_err(|e| e.to_string())?;
    let d = ctx
        .discover_account(address, &sources, flags)
        .map_err(|e| e.to_string())?;
    let mut candidates = Vec::new();
    let mut text = format!(
        "{} (mail domain {}): {}\n",
        d.address,
        d.domain,
        d.source
            .map_or("no source found a configuration".to_string(), |s| format!(
                "configuration from {s}"
            ))
    );
    for c in &d.candidates {
        let (verdict, evidence, detail, binding, status) = match &c.verdict {
            Ok(a) => (
                Some(Verdict::name(a.verdict)),
                a.evidence.map(Evidence::name),
                a.detail.clone(),
                a.binding.as_ref(),
                None,
            ),
            Err(e) => (None, None, e.to_string(), None, Some(e.to_string())),
        };
        text.push_str(&format!(
            "  {:<5} {}:{} {}  {}{}\n      {detail}\n{}",
            c.protocol.name(),
            c.host,
            c.port,
            c.socket.name(),
            verdict.unwrap_or("error"),
            evidence.map(|x| format!(" ({x})")).unwrap_or_default(),
            binding_text(binding),
        ));
        candidates.push(json!({
            "source": c.source.name(), "url": c.url, "protocol": c.protocol.name(),
            "host": c.host, "port": c.port, "security": c.socket.name(),
            "service": c.service.map(|s| s.name()), "username": c.username,
            "authentication": c.authentication, "verdict": verdict, "evidence": evidence,
            "detail": detail, "error": status, "connect": binding_json(binding),
        }));
    }
    let reports: Vec<Value> = d
        .sources
        .iter()
        .map(|r| {
            json!({
                "source": r.source.name(), "state": r.state.name(),
                "error": r.error.as_ref().map(|e| e.to_string()),
                "hops": r.hops.iter().map(|h| json!({"url": h.url, "status": h.status})).collect::<Vec<_>>(),
                "mx": r.mx.as_ref().map(|(h, s)| json!({"host": h, "dnssec": s.name()})),
                "dns": r.record.as_ref().map(|(n, s)| json!({"name": n, "dnssec": s.name()})),
                "unfollowed": r.unfollowed,
                "notes": r.notes, "elapsed_ms": r.elapsed.as_millis() as u64,
            })
        })
        .collect();
    for r in &d.sources {
        if r.state != mailsrv::core::account::SourceState::Skipped {
            text.push_str(&format!(
                "  source {:<22} {}{}\n",
                r.source.name(),
                r.state.name(),
                r.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
            for u in &r.unfollowed {
                text.push_str(&format!(
                    "         not followed: {u} (outside the mail domain; --autodiscover-follow)\n"
                ));
            }
        }
    }
    let w = &d.web;
    for (name, url) in [
        ("jmap", &w.jmap),
        ("caldav", &w.caldav),
        ("carddav", &w.carddav),
        ("oauth-public issuer", &w.oauth_public_issuer),
    ] {
        if let Some(u) = url {
            text.push_str(&format!("  {name}: {u}\n"));
        }
    }
    if common.json {
        let j = json!({
            "address": d.address, "domain": d.domain,
            "source": d.source.map(|s| s.name()),
            "candidates": candidates,
            "preferred": {"access": d.preferred_access, "submission": d.preferred_submission},
            "display_name": d.display_name,
            "oauth2": d.oauth2.as_ref().map(|o| json!({
                "issuer": o.issuer, "scope": o.scope, "auth_url": o.auth_url, "token_url": o.token_url,
            })),
            "web": {
                "jmap": w.jmap, "caldav": w.caldav, "carddav": w.carddav,
                "oauth_public_issuer": w.oauth_public_issuer,
            },
            "sources": reports,
        });
        emit(&format!("{j}\n"));
    } else {
        emit(&text);
    }
    Ok(usable(
        d.preferred_access.is_some() || d.preferred_submission.is_some(),
    ))
}

/// `change`: the change check for one saved service, with an optional history file:
/// srv_change_check for a configuration from SRV (or typed by the user), the multi-source
/// account_change_check for one from any other source (`--origin` takes the origin names
/// and the `source` names of `autoconfig`).
fn change(args: &[String]) -> Result<(), String> {
    use mailsrv::core::verdict::change::{ChangeRequest, DEFAULT_MIN_AGE, Decision, Origin, Saved};
    use mailsrv::core::verdict::history::History;
    use std::sync::{Arc, Mutex};

    let Args {
        positional,
        options,
        mut common,
    } = parse(
        args,
        &[
            "--service",
            "--saved",
            "--origin",
            "--history",
            "--now",
            "--ispdb",
            "--no-probe",
            "--require-secure",
        ],
    )?;
    let [domain] = positional.as_slice() else {
        return Err(format!("change takes one DOMAIN or ADDRESS\n{USAGE}"));
    };
    let get = |k: &str| {
        options
            .iter()
            .find(|(o, _)| o == k)
            .map(|(_, v)| v.as_str())
    };
    let service = get("--service")
        .and_then(Service::from_name)
        .ok_or("--service NAME is required")?;
    let saved = get("--saved").ok_or("--saved HOST:PORT is required")?;
    let (host, port) = saved.rsplit_once(':').ok_or("--saved takes HOST:PORT")?;
    let port: u16 = port.parse().map_err(|_| format!("bad port in {saved:?}"))?;
    let origin_name = get("--origin").unwrap_or("srv");
    let origin = Origin::from_name(origin_name).ok_or_else(|| {
        let mut names: Vec<&str> = Origin::ALL.iter().map(|o| o.name()).collect();
        for s in mailsrv::core::source::Source::ALL {
            if !names.contains(&s.name()) {
                names.push(s.name());
            }
        }
        format!(
            "--origin takes one of {}, not {origin_name:?}",
            names.join(", ")
        )
    })?;
    // SRV's own check for SRV (and user-typed: never changed either way); every other
    // source's configuration is re-discovered from all sources, which needs the address.
    let account = !matches!(origin, Origin::Srv | Origin::User);
    if account && !domain.contains('@') {
        return Err(format!(
            "--origin {origin_name} re-discovers the account from every source: give the \
             ADDRESS (user@domain), not {domain:?}"
        ));
    }
    if let Some(url) = get("--ispdb") {
        common
            .config
            .set_ispdb_url(url)
            .map_err(|e| e.to_string())?;
    }
    let now = match get("--now") {
        Some(n) => n.parse().map_err(|_| "--now takes Unix seconds")?,
        None => mailsrv::core::verdict::history::unix_now(),
    };
    let history = match get("--history") {
        Some(p) => Some(Arc::new(Mutex::new(
            History::open(std::path::Path::new(p)).map_err(|e| e.to_string())?,
        ))),
        None => None,
    };
    let req = ChangeRequest {
        domain: domain.clone(),
        saved: Saved {
            service,
            host: host.to_string(),
            port,
            origin,
        },
        now,
        min_age: DEFAULT_MIN_AGE,
        probe: get("--no-probe").is_none(),
        require_secure: get("--require-secure").is_some(),
    };
    let ctx = Context::new(common.config).map_err(|e| e.to_string())?;
    // (advice, verdict, the source that named the target, the origin to save with it)
    let (a, verdict, source, new_origin) = if account {
        let out = ctx
            .account_change_check(req, history.clone())
            .map_err(|e| e.to_string())?;
        let (source, new_origin) = (out.source().map(|s| s.name()), out.origin());
        (out.advice, out.verdict, source, new_origin)
    } else {
        let out = ctx
            .srv_change_check(req, history.clone())
            .map_err(|e| e.to_string())?;
        let new_origin = out.origin();
        let verdict = out.authenticity.as_ref().map(|x| x.verdict);
        (out.advice, verdict, new_origin.map(|_| "srv"), new_origin)
    };
    if let Some(h) = history {
        h.lock()
            .map_err(|_| "history lock")?
            .save()
            .map_err(|e| e.to_string())?;
    }
    let decision = match a.decision {
        Decision::NoChange => "no_change",
        Decision::Update => "update",
        Decision::AskUser => "ask_user",
        Decision::Wait => "wait",
        Decision::Reject => "reject",
    };
    let target = a.target.as_ref().map(|(t, p)| format!("{t}:{p}"));
    let check = if account { "account" } else { "srv" };
    if common.json {
        let j = json!({"domain": domain, "service": service.name(), "saved_origin": origin.name(),
                       "check": check, "decision": decision, "target": target,
                       "verdict": verdict.map(|v| v.name()), "source": source,
                       "origin": new_origin.map(|o| o.name()), "wait_until": a.wait_until,
                       "detail": a.detail, "connect": binding_json(a.binding.as_ref())});
        emit(&format!("{j}\n"));
    } else {
        let named = match (source, new_origin) {
            (Some(s), Some(o)) => format!("  named by {s}; save it with --origin {}\n", o.name()),
            _ => String::new(),
        };
        emit(&format!(
            "{} {} ({check} check, saved from {}): {decision}{}\n  {}\n{named}{}",
            domain,
            service.name(),
            origin.name(),
            target.map(|t| format!(" ({t})")).unwrap_or_default(),
            a.detail,
            binding_text(a.binding.as_ref()),
        ));
    }
    Ok(())
}

/// `connect`: connect_with_sni and print what the connection proved.
fn connect(args: &[String]) -> Result<(), String> {
    use mailsrv::core::cert::identity::ReferenceIdentity;
    use mailsrv::core::service::Security;
    use mailsrv::core::tls::connect::ConnectRequest;

    let Args {
        positional,
        options,
        common,
    } = parse(
        args,
        &[
            "--starttls",
            "--sni",
            "--expect-srv-id",
            "--expect-dns-id",
            "--legacy-cn",
            "--binding",
        ],
    )?;
    if let Some((_, text)) = options.iter().find(|(k, _)| k == "--binding") {
        if !positional.is_empty() || options.len() > 1 {
            return Err("--binding TEXT takes no HOST:PORT and no other connect option".into());
        }
        let binding = Binding::from_text(text).map_err(|e| e.to_string())?;
        let ctx = Context::new(common.config).map_err(|e| e.to_string())?;
        let conn = ctx.connect_bound(&binding).map_err(|e| e.to_string())?;
        return print_connection(conn, common.json);
    }
    let [target] = positional.as_slice() else {
        return Err(format!("connect takes one HOST:PORT\n{USAGE}"));
    };
    let (host, port) = target.rsplit_once(':').ok_or("connect takes HOST:PORT")?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("bad port in {target:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut req = ConnectRequest::new(host, port, Security::ImplicitTls);
    let mut identity = ReferenceIdentity::new();
    for (k, v) in &options {
        match k.as_str() {
            "--starttls" => {
                req.security = match v.as_str() {
                    "imap" => Security::StartTlsImap,
                    "pop3" => Security::StartTlsPop3,
                    "smtp" => Security::StartTlsSmtp,
                    _ => return Err(format!("--starttls takes imap, pop3 or smtp, not {v:?}")),
                }
            }
            "--sni" => req.sni = Some(v.clone()),
            "--expect-srv-id" => {
                let (svc, domain) = v
                    .split_once(':')
                    .ok_or("--expect-srv-id takes SERVICE:DOMAIN")?;
                identity
                    .add_srv_id(svc, domain)
                    .map_err(|e| e.to_string())?;
            }
            "--expect-dns-id" => identity.add_dns_id(v).map_err(|e| e.to_string())?,
            _ => req.options.legacy_cn = true,
        }
    }
    if !identity.is_empty() {
        req.identity = Some(identity);
    }
    let ctx = Context::new(common.config).map_err(|e| e.to_string())?;
    let conn = ctx.connect(req).map_err(|e| e.to_string())?;
    print_connection(conn, common.json)
}

/// Prints what a connection proved, then closes it.
fn print_connection(mut conn: MailConnection, json: bool) -> Result<(), String> {
    let i = conn.info().clone();
    let _ = conn.close();
    if json {
        let j = json!({
            "host": i.host, "port": i.port, "sni": i.sni, "tls_version": i.tls_version,
            "cipher": i.cipher, "matched_identity": i.proof.to_string(), "greeting": i.greeting,
            "capabilities": i.capabilities, "peer": i.peer_addr.to_string(), "alpn": i.alpn,
        });
        emit(&format!("{j}\n"));
    } else {
        emit(&format!(
            "connected to {} ({}) {} {}\n  SNI {}\n  certificate proves {}\n  greeting: {}\n  capabilities: {}\n",
            i.host,
            i.peer_addr,
            i.tls_version,
            i.cipher,
            i.sni.as_deref().unwrap_or("(none)"),
            i.proof,
            i.greeting,
            i.capabilities.join(" ")
        ));
    }
    Ok(())
}

/// The `"connect"` object of `verify` and `change`: how the account must connect.
fn binding_json(b: Option<&Binding>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => json!({
            "host": b.host, "port": b.port, "security": b.security().name(), "sni": b.sni,
            "identity": b.identity.ids().iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "dane": b.dane, "binding": b.to_text(),
        }),
    }
}

fn binding_text(b: Option<&Binding>) -> String {
    match b {
        None => String::new(),
        Some(b) => format!(
            "      connect: {}:{} {} SNI {} proving {}{}\n",
            b.host,
            b.port,
            b.security().name(),
            b.sni.as_deref().unwrap_or("(none)"),
            b.identity,
            if b.dane { ", TLSA enforced" } else { "" }
        ),
    }
}

pub fn discovery_json(d: &Discovery) -> Value {
    let services: Vec<Value> = d
        .services
        .iter()
        .map(|s| {
            json!({
                "service": s.service.name(),
                "state": s.state.name(),
                "dnssec": s.dnssec.map(|x| x.name()),
                "ttl": s.ttl,
                "error": s.error.as_ref().map(|e| e.detail()),
                "diagnostics": s.diagnostics,
                "endpoints": s.endpoints.iter().map(|e| json!({
                    "target": e.target,
                    "port": e.port,
                    "priority": e.priority,
                    "weight": e.weight,
                    "ttl": e.ttl,
                    "dnssec": e.dnssec.name(),
                    "addresses": e.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "address_dnssec": e.address_dnssec.map(|x| x.name()),
                    "address_error": e.address_error.as_ref().map(|x| x.detail()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let pick = |p| d.preferred(p).map(|s| s.service.name());
    json!({
        "domain": d.domain,
        "services": services,
        "preferred": { "access": pick(Purpose::Access), "submission": pick(Purpose::Submission) },
    })
}

/// Writes to stdout, ignoring a closed pipe (`mailsrv discover ... | head`).
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn discovery_text(d: &Discovery) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "mail domain {}", d.domain);
    for s in &d.services {
        let dnssec = s.dnssec.map_or("-", |x| x.name());
        match s.state {
            SrvState::Found => {
                let _ = writeln!(
                    o,
                    "  {:<12} found      (DNSSEC {dnssec}, TTL {}s)",
                    s.service.name(),
                    s.ttl
                );
                for e in &s.endpoints {
                    let addrs: Vec<String> = e.addresses.iter().map(|a| a.to_string()).collect();
                    let addrs = if addrs.is_empty() {
                        e.address_error
                            .as_ref()
                            .map_or("no address".into(), |x| x.to_string())
                    } else {
                        addrs.join(" ")
                    };
                    let _ = writeln!(
                        o,
                        "      {}:{}  priority {} weight {}  [{}]",
                        e.target, e.port, e.priority, e.weight, addrs
                    );
                }
            }
            state => {
                let why = s
                    .error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "  {:<12} {}{why} (DNSSEC {dnssec})",
                    s.service.name(),
                    state.name()
                );
            }
        }
        for n in &s.diagnostics {
            let _ = writeln!(o, "      note: {n}");
        }
    }
    for (label, p) in [
        ("reading", Purpose::Access),
        ("sending", Purpose::Submission),
    ] {
        if let Some(s) = d.preferred(p) {
            let _ = writeln!(o, "  preferred for {label}: {}", s.service.name());
        }
    }
    o
}

/// `audit`: the provider's view of many domains (src/audit.rs). One report per domain
/// on stdout as it completes (input order), a progress line on stderr only when stderr is a
/// terminal, the summary table (or a `{"summary": ...}` line) at the end. Exit status 1 when
/// any domain is flagged.
fn audit(args: &[String]) -> Result<(), String> {
    use mailsrv::audit::{self, Auditor, Summary};
    use std::io::{BufRead, BufReader, IsTerminal, Write};
    use std::time::Instant;
    use tokio::sync::mpsc;

    let Args {
        positional,
        options,
        common,
    } = parse(args, &["--concurrency"])?;
    let [file] = positional.as_slice() else {
        return Err(format!("audit takes one FILE (- for stdin)\n{USAGE}"));
    };
    let concurrency = match options.iter().find(|(k, _)| k == "--concurrency") {
        Some((_, v)) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=audit::MAX_CONCURRENCY).contains(n))
            .ok_or(format!(
                "--concurrency takes 1 to {}",
                audit::MAX_CONCURRENCY
            ))?,
        None => audit::DEFAULT_CONCURRENCY,
    };
    let open = || -> Result<Box<dyn BufRead + Send>, String> {
        if file == "-" {
            return Ok(Box::new(BufReader::new(std::io::stdin())));
        }
        let f = std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?;
        Ok(Box::new(BufReader::new(f)))
    };
    let input = open()?;
    let show_progress = std::io::stderr().is_terminal();
    // The total, for the bar: one cheap pass over a file (never over stdin).
    let total = if show_progress && file != "-" {
        let mut n = 0usize;
        for l in open()?.split(b'\n') {
            let l = l.map_err(|e| format!("{file}: {e}"))?;
            n += usize::from(audit::parse_line(&String::from_utf8_lossy(&l)).is_some());
        }
        Some(n)
    } else {
        None
    };
    let ctx = Context::new(common.config).map_err(|e| e.to_string())?;
    let auditor = std::sync::Arc::new(Auditor::from_context(&ctx).map_err(|e| e.to_string())?);
    let rt = mailsrv::core::runtime::runtime().map_err(|e| e.to_string())?;
    let (line_tx, line_rx) = mpsc::channel(concurrency);
    let (out_tx, mut out_rx) = mpsc::channel(concurrency);
    let reader = std::thread::spawn(move || audit_read_lines(input, line_tx));
    rt.spawn(audit::run(auditor, line_rx, concurrency, out_tx));

    let started = Instant::now();
    let stdout_tty = std::io::stdout().is_terminal();
    let mut summary = Summary::default();
    let mut last_draw: Option<Instant> = None;
    let draw = |s: &Summary, last: &mut Option<Instant>, force: bool| {
        if !show_progress || (!force && last.is_some_and(|t| t.elapsed().as_millis() < 100)) {
            return;
        }
        *last = Some(Instant::now());
        let rate = s.domains as f64 / started.elapsed().as_secs_f64().max(0.001);
        let bar = match total {
            Some(t) if t > 0 => {
                let filled = (s.domains * 30 / t).min(30);
                format!(
                    "[{}{}] {}/{t}",
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    s.domains
                )
            }
            _ => format!("{} domains", s.domains),
        };
        eprint!("\r\x1b[Kaudit {bar}  {rate:.0}/s  {} flagged", s.flagged());
    };
    while let Some(report) = out_rx.blocking_recv() {
        summary.add(&report);
        let text = if common.json {
            format!("{}\n", report.to_json())
        } else {
            report.text()
        };
        if show_progress && stdout_tty {
            eprint!("\r\x1b[K");
            last_draw = None;
        }
        if std::io::stdout().write_all(text.as_bytes()).is_err() {
            break; // stdout closed (`| head`): stop auditing
        }
        draw(&summary, &mut last_draw, false);
    }
    drop(out_rx);
    if show_progress {
        draw(&summary, &mut last_draw, true);
        eprintln!();
    }
    let read = reader
        .join()
        .map_err(|_| "the input reader died".to_string())?;
    read.map_err(|e| format!("{file}: {e}"))?;
    let elapsed = started.elapsed();
    if common.json {
        emit(&format!("{}\n", summary.to_json(elapsed)));
    } else {
        emit(&summary.table(elapsed));
    }
    if summary.flagged() > 0 {
        return Err(format!(
            "audit: {} of {} domains flagged",
            summary.flagged(),
            summary.domains
        ));
    }
    Ok(())
}

/// Feeds `(line number, text)` to the audit; a line longer than the audit's limit is cut
/// (the domain check then reports it) and the rest of it skipped, so no line can take
/// unbounded memory. Ends quietly when the audit stops listening.
fn audit_read_lines(
    mut input: Box<dyn std::io::BufRead + Send>,
    tx: tokio::sync::mpsc::Sender<(usize, String)>,
) -> std::io::Result<()> {
    use mailsrv::audit::MAX_LINE;
    use std::io::{BufRead, Read};
    let mut n = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let got = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if got == 0 {
            return Ok(());
        }
        n += 1;
        if !buf.ends_with(b"\n") && buf.len() > MAX_LINE {
            loop {
                let avail = input.fill_buf()?;
                if avail.is_empty() {
                    break;
                }
                match avail.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        input.consume(i + 1);
                        break;
                    }
                    None => {
                        let len = avail.len();
                        input.consume(len);
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        if tx.blocking_send((n, text)).is_err() {
            return Ok(());
        }
    }
}
