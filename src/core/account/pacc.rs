//! PACC (draft-ietf-mailmaint-pacc): the JSON configuration at
//! `https://ua-auto-config.<domain>/.well-known/user-agent-configuration.json`, whose
//! SHA-256 digest the domain publishes in TXT records at `_ua-auto-config.<domain>`:
//! `v=UAAC1; a=sha256; d=<base64 digest>` (several during a rollover; any one matching is
//! enough).
//!
//! The fetch and the TXT lookup run at once. A body whose digest matches no record is
//! rejected ([`Error::DigestMismatch`]) and never parsed; without any UAAC1 record the
//! document cannot be checked and is not used. The TXT answer's DNSSEC state decides the
//! evidence: DNSSEC-secure makes every host the document names AUTHENTIC by
//! [`Coverage::PaccDnssec`]; an unsigned record leaves the document as strong as any HTTPS
//! document of the mail domain (`HTTPS_DOMAIN` when every hop stayed in the domain); a bogus
//! answer fails the source.
//!
//! The JSON (read with serde_json, after the digest matched): `protocols` maps `imap`,
//! `pop3` and `submit` (draft -03 on; `smtp` in -02) to `{"host": ...}` on their implicit-TLS
//! ports (993, 995, 465, or [`ServicePorts`]); `jmap`, `caldav`, `carddav` to `{"url":
//! ...}`, passed through; `authentication` has `password` (bool) and `oauth-public`
//! (`{"issuer": ...}`), passed through; `info.provider.name` is the display name. Unknown
//! members are ignored (the draft forbids rejecting a file for them). Hostile JSON is
//! [`Error::BadConfig`]: not UTF-8, not an object, nesting deeper than [`MAX_DEPTH`], a
//! text over [`MAX_TEXT`] bytes, wrong types; the body is capped by the fetch (64 KiB).

use hickory_resolver::proto::rr::{Name, RData, RecordType};
use serde_json::Value;
use tokio::time::Instant;

use super::fetch::{self, Method, Request};
use super::source_run::SourceRun;
use super::xml::{AddressParts, ClientConfig, ServerEntry, ServerProtocol, SocketType};
use super::{Coverage, Found, ServicePorts, Source};
use crate::core::address::{is_in_domain, normalize_domain};
use crate::core::cert::ca_store::CaStore;
use crate::core::dns::answer::{DnssecState, Outcome};
use crate::core::dns::resolver::Resolver;
use crate::core::service::Service;
use crate::core::{Error, Result};

/// Deepest JSON nesting accepted (a real document nests 4 deep).
pub const MAX_DEPTH: usize = 16;
/// Longest JSON string accepted.
pub const MAX_TEXT: usize = 2048;
/// Most TXT records read at the digest name.
const MAX_RECORDS: usize = 16;

/// The document's URL for `domain`.
pub fn url(domain: &str) -> String {
    format!("https://ua-auto-config.{domain}/.well-known/user-agent-configuration.json")
}

/// The TXT owner of the digests.
pub fn txt_owner(domain: &str) -> String {
    format!("_ua-auto-config.{domain}")
}

/// One TXT record's text: `Ok(digest)` for a usable UAAC1 record, `Err(why)` for a UAAC1
/// record mailsrv cannot use (another algorithm, a bad digest), `None` for any other text.
pub fn parse_record(text: &str) -> Option<std::result::Result<[u8; 32], String>> {
    let mut tags = text.split(';').map(str::trim).filter(|t| !t.is_empty());
    let (k, v) = tags.next()?.split_once('=')?;
    if !k.trim().eq_ignore_ascii_case("v") || v.trim() != "UAAC1" {
        return None;
    }
    let (mut alg, mut digest) = (None, None);
    for t in tags {
        let Some((k, v)) = t.split_once('=') else {
            return Some(Err(format!("{text:?}: a tag without '='")));
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "a" => alg = Some(v.trim()),
            "d" => digest = Some(v.trim()),
            _ => {}
        }
    }
    match alg {
        Some(a) if a.eq_ignore_ascii_case("sha256") => {}
        Some(a) => return Some(Err(format!("{text:?}: algorithm {a:?} is not sha256"))),
        None => return Some(Err(format!("{text:?}: no a= tag"))),
    }
    let Some(d) = digest else {
        return Some(Err(format!("{text:?}: no d= tag")));
    };
    let bytes = match data_encoding::BASE64.decode(d.as_bytes()) {
        Ok(b) => b,
        Err(e) => return Some(Err(format!("{text:?}: the digest is not base64 ({e})"))),
    };
    match <[u8; 32]>::try_from(bytes.as_slice()) {
        Ok(b) => Some(Ok(b)),
        Err(_) => Some(Err(format!(
            "{text:?}: the digest has {} bytes, not 32",
            bytes.len()
        ))),
    }
}

/// The published digests of `domain` with the DNSSEC state of their answer, and the notes on
/// records that were not usable.
#[derive(Debug, Clone)]
pub struct Digests {
    pub digests: Vec<[u8; 32]>,
    pub dnssec: DnssecState,
    pub notes: Vec<String>,
}

/// Reads the `_ua-auto-config` TXT RRset of `domain`. No usable UAAC1 record is
/// [`Error::NoRecord`]; a bogus answer [`Error::Bogus`].
pub async fn digests(resolver: &Resolver, domain: &str) -> Result<Digests> {
    let owner = txt_owner(domain);
    let name = Name::from_ascii(format!("{owner}."))
        .map_err(|e| Error::InvalidArg(format!("{owner}: {e}")))?;
    let none = |dnssec: DnssecState| {
        Error::NoRecord(format!(
            "{domain} publishes no _ua-auto-config TXT record ({}): a PACC configuration cannot be checked without one",
            dnssec.name()
        ))
    };
    let answer = match resolver.query(&name, RecordType::TXT).await {
        Err(Error::Bogus(e)) => {
            return Err(Error::Bogus(format!(
                "the _ua-auto-config TXT answer of {domain} is bogus: {e}"
            )));
        }
        Err(e) => return Err(e),
        Ok(Outcome::Records(a)) => a,
        Ok(Outcome::NoData { dnssec, .. } | Outcome::NxDomain { dnssec, .. }) => {
            return Err(none(dnssec));
        }
    };
    let mut out = Digests {
        digests: Vec::new(),
        dnssec: answer.dnssec,
        notes: Vec::new(),
    };
    for r in answer.records.iter().take(MAX_RECORDS) {
        let RData::TXT(txt) = &r.data else { continue };
        // A TXT record is a sequence of strings; a long value is split across them.
        let bytes: Vec<u8> = txt
            .txt_data
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            out.notes
                .push(format!("{owner}: a TXT record that is not UTF-8, ignored"));
            continue;
        };
        match parse_record(text) {
            None => {}
            Some(Ok(d)) => out.digests.push(d),
            Some(Err(why)) => out.notes.push(format!("{owner}: {why}; ignored")),
        }
    }
    if out.digests.is_empty() {
        let mut e = none(out.dnssec);
        if !out.notes.is_empty()
            && let Error::NoRecord(s) = &mut e
        {
            s.push_str(&format!(" ({})", out.notes.join("; ")));
        }
        return Err(e);
    }
    Ok(out)
}

/// SHA-256 of `body`.
pub fn sha256(body: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether `digest` is one of `published` (compared in constant time).
pub fn matches(digest: &[u8; 32], published: &[[u8; 32]]) -> bool {
    published.iter().fold(false, |found, p| {
        let diff = p.iter().zip(digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        found | (diff == 0)
    })
}

fn bad(why: impl Into<String>) -> Error {
    Error::BadConfig(format!("PACC JSON: {}", why.into()))
}

/// Rejects nesting deeper than [`MAX_DEPTH`] and strings over [`MAX_TEXT`] anywhere.
fn check_limits(v: &Value, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(bad(format!("nested deeper than {MAX_DEPTH}")));
    }
    match v {
        Value::String(s) if s.len() > MAX_TEXT => {
            Err(bad(format!("a string is longer than {MAX_TEXT} bytes")))
        }
        Value::Array(a) => a.iter().try_for_each(|x| check_limits(x, depth + 1)),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            if k.len() > MAX_TEXT {
                return Err(bad(format!(
                    "a member name is longer than {MAX_TEXT} bytes"
                )));
            }
            check_limits(x, depth + 1)
        }),
        _ => Ok(()),
    }
}

/// An `https` URL without user information, as written (for the pass-through).
fn https_url(text: &str) -> std::result::Result<String, String> {
    let uri: http::Uri = text.parse().map_err(|_| format!("{text:?} is not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("{text:?} is not an https URL"));
    }
    match uri.authority() {
        Some(a) if !a.as_str().contains('@') && !a.host().is_empty() => Ok(text.to_string()),
        _ => Err(format!("{text:?} has no host, or user information")),
    }
}

/// Parses a PACC document (see the module comment). `ports` gives the implicit-TLS port of
/// each mail protocol.
pub fn parse(body: &[u8], parts: &AddressParts, ports: &ServicePorts) -> Result<ClientConfig> {
    let text =
        std::str::from_utf8(body).map_err(|e| bad(format!("the document is not UTF-8 ({e})")))?;
    // serde_json stops at 128 levels of nesting by itself, so the stack is safe before ours.
    let v: Value = serde_json::from_str(text.strip_prefix('\u{feff}').unwrap_or(text))
        .map_err(|e| bad(format!("not valid JSON ({e})")))?;
    check_limits(&v, 0)?;
    let Value::Object(top) = &v else {
        return Err(bad("the document is not a JSON object"));
    };
    let Some(Value::Object(protocols)) = top.get("protocols") else {
        return Err(bad("no \"protocols\" object"));
    };
    let mut out = ClientConfig {
        version: top
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..ClientConfig::default()
    };
    let obj = |name: &str, what: &str| -> std::result::Result<Option<&str>, String> {
        match protocols.get(name) {
            None => Ok(None),
            Some(Value::Object(o)) => match o.get(what) {
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                _ => Err(format!(
                    "protocols.{name} has no string \"{what}\"; skipped"
                )),
            },
            Some(_) => Err(format!("protocols.{name} is not an object; skipped")),
        }
    };
    // submission: "submit" since draft -03, "smtp" in -02; the newer name wins
    let submit = match (obj("submit", "host"), obj("smtp", "host")) {
        (Ok(Some(h)), Ok(Some(old))) if !h.eq_ignore_ascii_case(old) => {
            out.notes.push(format!(
                "protocols.smtp ({old}) ignored: protocols.submit ({h}) is the draft's name"
            ));
            Ok(Some(h))
        }
        (Ok(Some(h)), _) => Ok(Some(h)),
        (Ok(None), old) => old,
        (Err(e), _) => Err(e),
    };
    for (label, protocol, service, host) in [
        (
            "imap",
            ServerProtocol::Imap,
            Service::Imaps,
            obj("imap", "host"),
        ),
        (
            "pop3",
            ServerProtocol::Pop3,
            Service::Pop3s,
            obj("pop3", "host"),
        ),
        ("submit", ServerProtocol::Smtp, Service::Submissions, submit),
    ] {
        let host = match host {
            Ok(Some(h)) => h,
            Ok(None) => continue,
            Err(e) => {
                out.notes.push(e);
                continue;
            }
        };
        match normalize_domain(host) {
            Ok(host) => out.servers.push(ServerEntry {
                protocol,
                host,
                port: ports.get(service),
                socket: SocketType::Tls,
                // The draft: the address the user entered is the user name everywhere.
                username: Some(parts.address.clone()),
                authentication: Vec::new(),
            }),
            Err(e) => out
                .notes
                .push(format!("protocols.{label} host {host:?} skipped: {e}")),
        }
    }
    let mut web = |name: &str| match obj(name, "url") {
        Ok(Some(u)) => match https_url(u) {
            Ok(u) => Some(u),
            Err(e) => {
                out.notes.push(format!("protocols.{name}: {e}; skipped"));
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            out.notes.push(e);
            None
        }
    };
    out.web.jmap = web("jmap");
    out.web.caldav = web("caldav");
    out.web.carddav = web("carddav");
    let known = [
        "imap", "pop3", "submit", "smtp", "jmap", "caldav", "carddav",
    ];
    for k in protocols.keys().filter(|k| !known.contains(&k.as_str())) {
        out.notes.push(format!(
            "protocols.{k}: not a protocol mailsrv reports; ignored"
        ));
    }
    let mut methods = Vec::new();
    if let Some(auth) = top.get("authentication") {
        let Value::Object(auth) = auth else {
            return Err(bad("\"authentication\" is not an object"));
        };
        match auth.get("oauth-public") {
            None => {}
            Some(Value::Object(o)) => {
                match o.get("issuer").and_then(Value::as_str).map(https_url) {
                    Some(Ok(i)) => {
                        out.web.oauth_public_issuer = Some(i);
                        methods.push("OAuth2".to_string());
                    }
                    Some(Err(e)) => out
                        .notes
                        .push(format!("authentication.oauth-public issuer: {e}; ignored")),
                    None => out
                        .notes
                        .push("authentication.oauth-public has no issuer; ignored".into()),
                }
            }
            Some(_) => out
                .notes
                .push("authentication.oauth-public is not an object; ignored".into()),
        }
        match auth.get("password") {
            Some(Value::Bool(true)) => methods.push("password-cleartext".to_string()),
            None | Some(Value::Bool(false)) => {}
            Some(_) => out
                .notes
                .push("authentication.password is not a boolean; ignored".into()),
        }
    }
    for s in &mut out.servers {
        s.authentication = methods.clone();
    }
    out.display_name = top
        .get("info")
        .and_then(|i| i.get("provider"))
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(out)
}

/// The PACC source for the mail domain of `parts` (see the module comment).
pub async fn run(
    resolver: &Resolver,
    trust: &CaStore,
    parts: &AddressParts,
    ports: &ServicePorts,
    deadline: Instant,
) -> SourceRun {
    let domain = &parts.domain;
    let url = url(domain);
    let req = Request {
        method: Method::Get,
        body: b"",
        content_type: None,
        accept: "application/json",
        basic: None,
        follow: true,
    };
    let (fetched, digests) = tokio::join!(
        fetch::fetch(resolver, trust, &url, &req, deadline),
        tokio::time::timeout_at(deadline, digests(resolver, domain))
    );
    let digests = digests.unwrap_or_else(|_| {
        Err(Error::Timeout(format!(
            "the _ua-auto-config TXT lookup of {domain}: deadline passed"
        )))
    });
    let owner = txt_owner(domain);
    let (fetched, hops) = match fetched {
        Ok(f) => {
            let h = f.hops.clone();
            (f, h)
        }
        Err(e) => {
            let mut r = SourceRun::failed(e.error, e.hops);
            if let Ok(d) = &digests {
                r.record = Some((owner, d.dnssec));
            }
            return r;
        }
    };
    let d = match digests {
        Ok(d) => d,
        Err(e) => return SourceRun::failed(e, hops),
    };
    let mut notes = d.notes.clone();
    let record = Some((owner.clone(), d.dnssec));
    let fail = |error: Error, notes: Vec<String>| SourceRun {
        found: Err(error),
        hops: hops.clone(),
        notes,
        mx: None,
        record: record.clone(),
        unfollowed: Vec::new(),
    };
    if !matches(&sha256(&fetched.body), &d.digests) {
        let n = d.digests.len();
        let error = if d.dnssec == DnssecState::Secure {
            Error::DigestMismatch(format!(
                "{}: the document's SHA-256 digest matches none of the {n} digest(s) in {domain}'s DNSSEC-signed {owner} record: it is not the configuration {domain} published, and is rejected",
                fetched.final_url()
            ))
        } else {
            Error::DigestMismatch(format!(
                "{}: the document's SHA-256 digest matches none of the {n} digest(s) in {owner} (not DNSSEC-signed: {}): the document or the record was changed on the way, or the provider published a stale digest; not used",
                fetched.final_url(),
                d.dnssec.name()
            ))
        };
        return fail(error, notes);
    }
    let config = match parse(&fetched.body, parts, ports) {
        Ok(c) => c,
        Err(e) => return fail(e, notes),
    };
    notes.extend(config.notes.iter().cloned());
    if config.servers.is_empty() {
        return fail(
            Error::BadConfig(format!(
                "{}: the PACC document names no IMAP, POP3 or submission server{}",
                fetched.final_url(),
                if config.notes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", config.notes.join("; "))
                }
            )),
            notes,
        );
    }
    let coverage = if d.dnssec == DnssecState::Secure {
        Coverage::PaccDnssec
    } else if !fetched.all_https() {
        Coverage::None(format!(
            "the PACC configuration came over plain HTTP ({url})"
        ))
    } else if let Some(out) = fetched.hops.iter().find(|h| !is_in_domain(&h.host, domain)) {
        Coverage::None(format!(
            "the PACC configuration was redirected to {}, outside {domain}, and its digest is not DNSSEC-signed",
            out.host
        ))
    } else {
        Coverage::HttpsDomain
    };
    notes.push(format!(
        "{owner} ({}) holds the document's digest",
        d.dnssec.name()
    ));
    SourceRun {
        found: Ok(Found {
            source: Source::Pacc,
            url: Some(fetched.final_url().to_string()),
            config,
            coverage,
            srv: None,
            mx_dnssec: None,
        }),
        hops,
        notes,
        mx: None,
        record,
        unfollowed: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::address::MailDomain;

    fn parts() -> AddressParts {
        AddressParts {
            address: "joe@example.com".into(),
            local: "joe".into(),
            domain: MailDomain::parse("example.com").unwrap(),
        }
    }

    #[test]
    fn records_are_parsed_strictly() {
        let d = sha256(b"x");
        let b64 = data_encoding::BASE64.encode(&d);
        assert_eq!(
            parse_record(&format!("v=UAAC1; a=sha256; d={b64}")),
            Some(Ok(d))
        );
        assert_eq!(
            parse_record(&format!("v=UAAC1;a=SHA256;d={b64};x=future")),
            Some(Ok(d))
        );
        assert_eq!(parse_record("v=spf1 -all"), None);
        assert_eq!(parse_record("google-site-verification=abc"), None);
        for bad in [
            format!("v=UAAC1; a=sha512; d={b64}"),
            "v=UAAC1; a=sha256; d=!!!".to_string(),
            "v=UAAC1; a=sha256; d=YWJj".to_string(),
            "v=UAAC1; a=sha256".to_string(),
            format!("v=UAAC1; d={b64}"),
        ] {
            assert!(matches!(parse_record(&bad), Some(Err(_))), "{bad}");
        }
        assert!(matches(&d, &[[0; 32], d]));
        assert!(!matches(&d, &[[0; 32]]));
        assert!(!matches(&d, &[]));
        assert_eq!(
            url("example.com"),
            "https://ua-auto-config.example.com/.well-known/user-agent-configuration.json"
        );
    }

    const DOC: &str = r#"{
      "protocols": {
        "imap": {"host": "IMAP.Example.NET"},
        "pop3": {"host": "pop.example.net"},
        "smtp": {"host": "old.example.net"},
        "submit": {"host": "smtp.example.net"},
        "jmap": {"url": "https://jmap.example.net/session"},
        "caldav": {"url": "https://dav.example.net/cal/"},
        "carddav": {"url": "http://dav.example.net/card/"},
        "managesieve": {"host": "sieve.example.net"}
      },
      "authentication": {"password": true, "oauth-public": {"issuer": "https://auth.example.net"}},
      "info": {"provider": {"name": "Example Mail", "shortName": "Ex"}},
      "future": [1, 2, {"x": null}]
    }"#;

    #[test]
    fn protocols_map_to_servers_and_the_rest_passes_through() {
        let c = parse(DOC.as_bytes(), &parts(), &ServicePorts::default()).unwrap();
        let got: Vec<(ServerProtocol, &str, u16)> = c
            .servers
            .iter()
            .map(|s| (s.protocol, s.host.as_str(), s.port))
            .collect();
        assert_eq!(
            got,
            [
                (ServerProtocol::Imap, "imap.example.net", 993),
                (ServerProtocol::Pop3, "pop.example.net", 995),
                (ServerProtocol::Smtp, "smtp.example.net", 465),
            ]
        );
        assert!(c.servers.iter().all(|s| s.socket == SocketType::Tls
            && s.username.as_deref() == Some("joe@example.com")
            && s.authentication == ["OAuth2", "password-cleartext"]));
        assert_eq!(
            c.web.jmap.as_deref(),
            Some("https://jmap.example.net/session")
        );
        assert_eq!(
            c.web.caldav.as_deref(),
            Some("https://dav.example.net/cal/")
        );
        assert_eq!(c.web.carddav, None, "plain http is not passed through");
        assert_eq!(
            c.web.oauth_public_issuer.as_deref(),
            Some("https://auth.example.net")
        );
        assert_eq!(c.display_name.as_deref(), Some("Example Mail"));
        assert_eq!(c.notes.len(), 3, "{:?}", c.notes);
        // draft -02's "smtp" alone still works; ports follow the table
        let mut ports = ServicePorts::default();
        ports.set(Service::Submissions, 10465);
        let old = r#"{"protocols": {"smtp": {"host": "smtp.example.net"}}}"#;
        let c = parse(old.as_bytes(), &parts(), &ports).unwrap();
        assert_eq!(
            (c.servers[0].protocol, c.servers[0].port),
            (ServerProtocol::Smtp, 10465)
        );
    }

    #[test]
    fn hostile_json_is_a_clear_error() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let very_deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let long = format!(r#"{{"protocols": {{}}, "x": "{}"}}"#, "a".repeat(5000));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("not JSON", b"<clientConfig/>".to_vec()),
            (
                "not UTF-8",
                b"{\"protocols\": {\"imap\": {\"host\": \"\xe9\"}}}".to_vec(),
            ),
            ("array", b"[]".to_vec()),
            ("no protocols", br#"{"info": {}}"#.to_vec()),
            ("protocols not an object", br#"{"protocols": []}"#.to_vec()),
            ("deep", deep.into_bytes()),
            ("very deep", very_deep.into_bytes()),
            ("long string", long.into_bytes()),
            ("trailing", br#"{"protocols": {}} x"#.to_vec()),
            (
                "authentication type",
                br#"{"protocols": {}, "authentication": 1}"#.to_vec(),
            ),
        ];
        for (what, doc) in cases {
            match parse(&doc, &parts(), &ServicePorts::default()) {
                Err(Error::BadConfig(m)) => assert!(m.starts_with("PACC JSON"), "{what}: {m}"),
                other => panic!("{what}: {other:?}"),
            }
        }
        // wrong types inside protocols are skipped with a note, not fatal
        let c = parse(
            br#"{"protocols": {"imap": "x", "pop3": {"host": 7}, "submit": {"host": "bad..host"}}}"#,
            &parts(),
            &ServicePorts::default(),
        )
        .unwrap();
        assert!(c.servers.is_empty());
        assert_eq!(c.notes.len(), 3, "{:?}", c.notes);
    }
}
