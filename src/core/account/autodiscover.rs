//! Exchange Autodiscover, POX (MS-OXDISCO / MS-OXDSCLI, as Thunderbird desktop runs it):
//! the request names the address and asks for the `outlook/responseschema/2006a` answer,
//! POSTed to
//!
//! 1. `https://autodiscover.<domain>/autodiscover/autodiscover.xml`,
//! 2. `https://<domain>/autodiscover/autodiscover.xml`,
//! 3. `http://autodiscover.<domain>/autodiscover/autodiscover.xml`: only a GET without the
//!    address, and only its redirect to an HTTPS URL is used (then POSTed there): no answer
//!    and no credentials ever travel over plain HTTP;
//! 4. the `_autodiscover._tcp.<domain>` SRV target: `https://<target>[:port]/autodiscover/autodiscover.xml`,
//!
//! all at once, taken in that order (a lower one only when every higher one failed). The
//! answer's `IMAP`, `POP3` and `SMTP` protocol entries become the candidates; Exchange-only
//! entries (`EXCH`, `EXPR`, `WEB`, ...) are skipped with a note. `RedirectAddr` (and
//! `RedirectUrl`) are followed at most [`MAX_ACCOUNT_REDIRECTS`] times in all.
//!
//! Rules mailsrv adds: a request never goes to a host outside the registrable domain of the
//! address's domain unless a DNSSEC-signed SRV record named it or the caller's
//! [`AutodiscoverHook`] confirmed it; otherwise the URL is reported
//! ([`super::SourceReport::unfollowed`]), never followed silently. Credentials are never
//! sent unless the hook supplies them after an HTTPS URL answered 401, and then only over
//! HTTPS to a host already allowed. Evidence: `HTTPS_DOMAIN` when the answer came from URL 1
//! or 2 over HTTPS on every hop inside the mail domain; `DNSSEC` when a DNSSEC-secure SRV
//! record named the host that answered (over HTTPS); anything reached through plain HTTP, an
//! unsigned SRV record, a redirect out of the domain or another address is left to the probe.

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex};

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

use super::fetch::{self, FetchError, Fetched, Hop, Method, Request};
use super::source_run::SourceRun;
use super::xml::{self, AddressParts, ClientConfig, Node, ServerEntry, ServerProtocol, SocketType};
use super::{Coverage, Found, Source};
use crate::core::address::{MailDomain, is_in_domain, normalize_domain};
use crate::core::cert::ca_store::CaStore;
use crate::core::dns::answer::{DnssecState, Outcome};
use crate::core::dns::resolver::Resolver;
use crate::core::{Error, Result};

/// Most `RedirectAddr` / `RedirectUrl` answers followed for one discovery (Thunderbird: 2).
pub const MAX_ACCOUNT_REDIRECTS: usize = 2;
/// Most servers kept from one answer.
const MAX_PROTOCOLS: usize = 32;

const REQUEST_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
const RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

/// What Autodiscover asks the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutodiscoverAsk {
    /// May the request for `address` go to `url`, which lies outside the registrable domain
    /// of the address's domain? `why`: how the URL was found (a plain-HTTP redirect, an
    /// unsigned SRV record, a RedirectAddr answer, ...).
    Follow {
        url: String,
        address: String,
        why: String,
    },
    /// `url` (HTTPS, allowed) answered 401: the credentials for `address`, if the caller
    /// wants to send them there.
    Credentials { url: String, address: String },
}

/// The caller's answer.
#[derive(Clone, PartialEq, Eq)]
pub enum AutodiscoverAnswer {
    No,
    /// Follow (for [`AutodiscoverAsk::Follow`]).
    Yes,
    /// Send these (for [`AutodiscoverAsk::Credentials`]; HTTP Basic over HTTPS).
    Credentials {
        user: String,
        password: String,
    },
}

impl std::fmt::Debug for AutodiscoverAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AutodiscoverAnswer::No => f.write_str("No"),
            AutodiscoverAnswer::Yes => f.write_str("Yes"),
            AutodiscoverAnswer::Credentials { user, .. } => {
                write!(f, "Credentials {{ user: {user:?}, password: <hidden> }}")
            }
        }
    }
}

/// Calls in flight, and whether the owner closed the hook.
#[derive(Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    idle: Condvar,
}

/// The caller's Autodiscover function (the C layer wraps mailsrv_autodiscover_cb in it). It
/// runs on a blocking-pool thread, may block, and is never called after [`Self::close`].
#[derive(Clone)]
pub struct AutodiscoverHook {
    f: Arc<dyn Fn(&AutodiscoverAsk) -> AutodiscoverAnswer + Send + Sync>,
    gate: Arc<Gate>,
}

impl std::fmt::Debug for AutodiscoverHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AutodiscoverHook")
    }
}

thread_local! {
    static IN_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl AutodiscoverHook {
    pub fn new(f: impl Fn(&AutodiscoverAsk) -> AutodiscoverAnswer + Send + Sync + 'static) -> Self {
        AutodiscoverHook {
            f: Arc::new(f),
            gate: Arc::new(Gate::default()),
        }
    }

    /// Asks, off the async threads; `No` once the deadline passes or after [`Self::close`].
    pub async fn ask(&self, ask: AutodiscoverAsk, deadline: Instant) -> AutodiscoverAnswer {
        {
            let Ok(mut st) = self.gate.state.lock() else {
                return AutodiscoverAnswer::No;
            };
            if st.1 {
                return AutodiscoverAnswer::No;
            }
            st.0 += 1;
        }
        let f = self.f.clone();
        let gate = self.gate.clone();
        let call = tokio::task::spawn_blocking(move || {
            IN_HOOK.with(|c| c.set(true));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&ask)));
            IN_HOOK.with(|c| c.set(false));
            if let Ok(mut st) = gate.state.lock() {
                st.0 -= 1;
                if st.0 == 0 {
                    gate.idle.notify_all();
                }
            }
            r.unwrap_or(AutodiscoverAnswer::No)
        });
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(a)) => a,
            _ => AutodiscoverAnswer::No,
        }
    }

    /// No call starts after this; returns once the calls in flight returned (at once when
    /// called from inside the hook itself).
    pub fn close(&self) {
        let Ok(mut st) = self.gate.state.lock() else {
            return;
        };
        st.1 = true;
        if IN_HOOK.with(|c| c.get()) {
            return;
        }
        while st.0 > 0 {
            match self.gate.idle.wait(st) {
                Ok(s) => st = s,
                Err(_) => return,
            }
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The POX request for `address`.
pub fn request_body(address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"{REQUEST_SCHEMA}\">\n  <Request>\n    <EMailAddress>{}</EMailAddress>\n    <AcceptableResponseSchema>{RESPONSE_SCHEMA}</AcceptableResponseSchema>\n  </Request>\n</Autodiscover>\n",
        escape(address)
    )
}

/// The three fixed URLs for `domain` (the SRV one depends on the record).
pub fn urls(domain: &str) -> [String; 3] {
    [
        format!("https://autodiscover.{domain}/autodiscover/autodiscover.xml"),
        format!("https://{domain}/autodiscover/autodiscover.xml"),
        format!("http://autodiscover.{domain}/autodiscover/autodiscover.xml"),
    ]
}

/// What an answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Settings(Box<ClientConfig>),
    /// Ask again for this address.
    RedirectAddr(String),
    /// Ask again at this URL.
    RedirectUrl(String),
}

#[derive(Default)]
struct Proto {
    kind: String,
    server: Option<String>,
    port: Option<String>,
    login: Option<String>,
    ssl: Option<String>,
    encryption: Option<String>,
    spa: Option<String>,
}

/// The socket type of an entry: `Encryption` when given (`None` plain, `SSL` implicit TLS,
/// `TLS` STARTTLS), `SSL off` plain, otherwise by port like Thunderbird (143, 110, 25, 587
/// STARTTLS; anything else implicit TLS).
fn socket_of(p: &Proto, port: u16) -> SocketType {
    let lower = |o: &Option<String>| o.as_deref().map(str::to_ascii_lowercase);
    match (lower(&p.encryption).as_deref(), lower(&p.ssl).as_deref()) {
        (Some("none"), _) | (None, Some("off")) => SocketType::Plain,
        (Some("ssl"), _) => SocketType::Tls,
        (Some("tls"), _) => SocketType::StartTls,
        _ => match port {
            143 | 110 | 25 | 587 => SocketType::StartTls,
            _ => SocketType::Tls,
        },
    }
}

/// Parses a POX answer; `login` is the user name when an entry gives no `LoginName`.
/// Hostile XML is [`Error::BadConfig`] (the same rules as the autoconfig XML); an `Error`
/// element is [`Error::BadConfig`] with its code and message.
pub fn parse(body: &[u8], login: &str) -> Result<Answer> {
    let mut out = ClientConfig::default();
    let mut proto: Option<Proto> = None;
    let (mut action, mut redirect_addr, mut redirect_url) = (None, None, None);
    let mut error: Option<String> = None;
    let mut count = 0usize;
    xml::walk(body, "Autodiscover XML", "Autodiscover", |node| {
        match node {
            Node::Open { name, path, .. } => {
                if name == "Protocol" && path.ends_with(&["Response".into(), "Account".into()]) {
                    proto = Some(Proto::default());
                }
            }
            Node::Close { name, path, text } => {
                let at: Vec<&str> = path.iter().skip(1).map(String::as_str).collect();
                let value = || Some(text.to_string());
                match (at.as_slice(), name) {
                    (["Response", "User"], "DisplayName") => out.display_name = value(),
                    (["Response", "Account"], "Action") => action = value(),
                    (["Response", "Account"], "RedirectAddr") => redirect_addr = value(),
                    (["Response", "Account"], "RedirectUrl") => redirect_url = value(),
                    (["Response", "Account"], "Protocol") => {
                        if let Some(p) = proto.take() {
                            count += 1;
                            if count > MAX_PROTOCOLS {
                                return Err(Error::BadConfig(format!(
                                    "Autodiscover XML: more than {MAX_PROTOCOLS} protocols"
                                )));
                            }
                            finish(p, login, &mut out);
                        }
                    }
                    (["Response", "Account", "Protocol"], field) => {
                        if let Some(p) = proto.as_mut() {
                            match field {
                                "Type" => p.kind = text.to_string(),
                                "Server" => p.server = value(),
                                "Port" => p.port = value(),
                                "LoginName" => p.login = value(),
                                "SSL" => p.ssl = value(),
                                "Encryption" => p.encryption = value(),
                                "SPA" => p.spa = value(),
                                _ => {}
                            }
                        }
                    }
                    (["Response", "Error"] | ["Error"], "Message" | "ErrorCode")
                        if !text.is_empty() =>
                    {
                        let e = error.get_or_insert_with(String::new);
                        if !e.is_empty() {
                            e.push_str(", ");
                        }
                        e.push_str(text);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    })?;
    let action = action.map(|a| a.to_ascii_lowercase());
    match (action.as_deref(), redirect_addr, redirect_url) {
        (Some("redirectaddr") | None, Some(a), _) => return Ok(Answer::RedirectAddr(a)),
        (Some("redirecturl"), _, Some(u)) => return Ok(Answer::RedirectUrl(u)),
        _ => {}
    }
    if let Some(e) = error {
        return Err(Error::BadConfig(format!(
            "the Autodiscover server answered with an error: {e}"
        )));
    }
    Ok(Answer::Settings(Box::new(out)))
}

fn finish(p: Proto, login: &str, out: &mut ClientConfig) {
    let protocol = match p.kind.to_ascii_uppercase().as_str() {
        "IMAP" => ServerProtocol::Imap,
        "POP3" => ServerProtocol::Pop3,
        "SMTP" => ServerProtocol::Smtp,
        other => {
            out.notes.push(format!(
                "protocol {other:?} skipped: not a mail protocol mailsrv knows (Exchange-only)"
            ));
            return;
        }
    };
    let Some(host_text) = p.server.as_deref() else {
        out.notes
            .push(format!("{} entry without Server skipped", protocol.name()));
        return;
    };
    let host = match normalize_domain(host_text) {
        Ok(h) => h,
        Err(e) => {
            out.notes.push(format!("Server {host_text:?} skipped: {e}"));
            return;
        }
    };
    let port = match p.port.as_deref().map(str::parse::<u16>) {
        Some(Ok(port)) if port != 0 => port,
        _ => {
            out.notes.push(format!(
                "{} {host}: bad or missing Port {:?}; skipped",
                protocol.name(),
                p.port
            ));
            return;
        }
    };
    let spa = p
        .spa
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("on"));
    out.servers.push(ServerEntry {
        protocol,
        host,
        port,
        socket: socket_of(&p, port),
        username: Some(p.login.clone().unwrap_or_else(|| login.to_string())),
        // SPA: NTLM or Kerberos; otherwise a password over TLS.
        authentication: vec![if spa { "NTLM" } else { "password-cleartext" }.to_string()],
    });
}

/// The registrable domain of `host` (Public Suffix List), or the host itself.
fn registrable(host: &str) -> String {
    psl::domain_str(host).unwrap_or(host).to_ascii_lowercase()
}

/// How the URL that answered was found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lead {
    /// URL 1 or 2: the mail domain's own names.
    Direct,
    /// A plain-HTTP redirect (URL 3).
    PlainHttp,
    /// The `_autodiscover._tcp` SRV target; `true` when DNSSEC-secure.
    Srv { target: String, secure: bool },
    /// A `RedirectUrl` answer.
    AnswerUrl,
}

/// One POST chain's outcome: the body and the hops of the HTTPS requests made.
struct Posted {
    body: Vec<u8>,
    hops: Vec<Hop>,
}

/// The state of one discovery.
struct Run<'a> {
    resolver: &'a Resolver,
    trust: &'a CaStore,
    hook: Option<&'a AutodiscoverHook>,
    /// The original address (the user name) and its domain.
    parts: &'a AddressParts,
    per_fetch: std::time::Duration,
    deadline: Instant,
    /// Registrable domains requests may go to (the address's, and those confirmed).
    allowed: Mutex<BTreeSet<String>>,
    hops: Mutex<Vec<Hop>>,
    notes: Mutex<Vec<String>>,
    unfollowed: Mutex<Vec<String>>,
    record: Mutex<Option<(String, DnssecState)>>,
}

fn push<T>(m: &Mutex<Vec<T>>, x: T) {
    if let Ok(mut v) = m.lock() {
        v.push(x);
    }
}

impl Run<'_> {
    fn fetch_deadline(&self) -> Instant {
        self.deadline.min(Instant::now() + self.per_fetch)
    }

    /// May a request go to `url`'s host? Inside an allowed registrable domain, or named by
    /// a signed record (`signed`), or confirmed by the hook; else reported.
    async fn allow(&self, url: &str, address: &str, why: &str, signed: bool) -> Result<()> {
        let host = url_host(url)?;
        let reg = registrable(&host);
        if self
            .allowed
            .lock()
            .map(|a| a.contains(&reg))
            .unwrap_or(false)
        {
            return Ok(());
        }
        if signed {
            push(
                &self.notes,
                format!(
                    "{url}: outside {}, followed because {why}",
                    self.parts.domain
                ),
            );
            return Ok(());
        }
        let refused = |how: &str| {
            push(&self.unfollowed, url.to_string());
            Err(Error::Http(format!(
                "{url} ({why}) lies outside {}: not followed ({how})",
                registrable(&self.parts.domain)
            )))
        };
        let Some(hook) = self.hook else {
            return refused("no Autodiscover callback confirms it");
        };
        let ask = AutodiscoverAsk::Follow {
            url: url.to_string(),
            address: address.to_string(),
            why: why.to_string(),
        };
        match hook.ask(ask, self.deadline).await {
            AutodiscoverAnswer::Yes => {
                push(
                    &self.notes,
                    format!("{url} ({why}): confirmed by the caller"),
                );
                if let Ok(mut a) = self.allowed.lock() {
                    a.insert(reg);
                }
                Ok(())
            }
            _ => refused("the caller declined"),
        }
    }

    /// POSTs the request for `address` to the HTTPS `url`, following HTTPS redirects to
    /// allowed hosts (at most [`fetch::MAX_REDIRECTS`]) and asking for credentials once on
    /// a 401. The hops go into the run's list as they are made.
    async fn post(&self, url: &str, address: &str, signed: bool) -> Result<Posted> {
        let body = request_body(address);
        let mut next = url.to_string();
        let mut mine: Vec<Hop> = Vec::new();
        let mut credentials: Option<(String, String)> = None;
        let mut asked = false;
        loop {
            if !next.starts_with("https://") {
                return Err(Error::Http(format!(
                    "{next}: Autodiscover requests go over HTTPS only"
                )));
            }
            let req = Request {
                method: Method::Post,
                body: body.as_bytes(),
                content_type: Some("text/xml; charset=utf-8"),
                accept: "text/xml, application/xml, */*",
                basic: credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
                follow: false,
            };
            let r = fetch::fetch(
                self.resolver,
                self.trust,
                &next,
                &req,
                self.fetch_deadline(),
            )
            .await;
            let (hops, outcome) = match r {
                Ok(f) => (f.hops.clone(), Ok(f)),
                Err(FetchError { error, hops }) => (hops, Err(error)),
            };
            for h in &hops {
                push(&self.hops, h.clone());
            }
            mine.extend(hops.iter().cloned());
            let unauthorized = hops.last().and_then(|h| h.status) == Some(401);
            match outcome {
                Ok(Fetched {
                    location: Some(loc),
                    ..
                }) => {
                    if mine.len() > fetch::MAX_REDIRECTS {
                        return Err(Error::Http(format!(
                            "{url}: more than {} redirects",
                            fetch::MAX_REDIRECTS
                        )));
                    }
                    if !loc.starts_with("https://") {
                        return Err(Error::Http(format!(
                            "{next} redirected to {loc}: only HTTPS-to-HTTPS redirects are followed"
                        )));
                    }
                    self.allow(&loc, address, &format!("a redirect from {next}"), signed)
                        .await?;
                    next = loc;
                }
                Ok(f) => {
                    return Ok(Posted {
                        body: f.body,
                        hops: mine,
                    });
                }
                Err(e) if unauthorized && !asked => {
                    asked = true;
                    let Some(hook) = self.hook else {
                        return Err(Error::Http(format!(
                            "{next} asks for credentials (401); mailsrv sends none unless the caller's Autodiscover callback supplies them"
                        )));
                    };
                    let ask = AutodiscoverAsk::Credentials {
                        url: next.clone(),
                        address: address.to_string(),
                    };
                    match hook.ask(ask, self.deadline).await {
                        AutodiscoverAnswer::Credentials { user, password } => {
                            push(&self.notes, format!("{next}: credentials from the caller"));
                            credentials = Some((user, password));
                        }
                        _ => {
                            return Err(Error::Http(format!(
                                "{next} asks for credentials (401) and the caller gave none ({e})"
                            )));
                        }
                    }
                }
                Err(e) if unauthorized => {
                    return Err(Error::Http(format!(
                        "{next} refused the caller's credentials ({e})"
                    )));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// URL 3: a GET without the address, and its redirect to HTTPS.
    async fn plain_http_lead(&self, url: &str) -> Result<String> {
        let r = fetch::fetch(
            self.resolver,
            self.trust,
            url,
            &Request {
                follow: false,
                ..Request::get_xml()
            },
            self.fetch_deadline(),
        )
        .await;
        let hops = match &r {
            Ok(f) => f.hops.clone(),
            Err(e) => e.hops.clone(),
        };
        for h in hops {
            push(&self.hops, h);
        }
        match r.map_err(|e| e.error)? {
            Fetched {
                location: Some(loc),
                ..
            } if loc.starts_with("https://") => Ok(loc),
            Fetched {
                location: Some(loc),
                ..
            } => Err(Error::Http(format!(
                "{url} redirected to {loc}: only a redirect to HTTPS is followed"
            ))),
            Fetched { .. } => Err(Error::Http(format!(
                "{url} answered over plain HTTP: only its redirect to HTTPS would be used"
            ))),
        }
    }

    /// URL 4: the `_autodiscover._tcp` SRV record's URL, and whether it is DNSSEC-secure.
    async fn srv_lead(&self, domain: &str) -> Result<(String, String, bool)> {
        let owner = format!("_autodiscover._tcp.{domain}");
        let name = Name::from_ascii(format!("{owner}."))
            .map_err(|e| Error::InvalidArg(format!("{owner}: {e}")))?;
        let outcome = tokio::time::timeout_at(
            self.fetch_deadline(),
            self.resolver.query(&name, RecordType::SRV),
        )
        .await
        .unwrap_or_else(|_| Err(Error::Timeout(format!("{owner}: deadline passed"))));
        let a = match outcome {
            Err(Error::Bogus(e)) => {
                if let Ok(mut r) = self.record.lock() {
                    *r = Some((owner.clone(), DnssecState::Bogus));
                }
                return Err(Error::Bogus(format!(
                    "the {owner} SRV answer is bogus: {e}"
                )));
            }
            Err(e) => return Err(e),
            Ok(Outcome::Records(a)) => a,
            Ok(Outcome::NoData { dnssec, .. } | Outcome::NxDomain { dnssec, .. }) => {
                return Err(Error::NoRecord(format!(
                    "{domain} has no {owner} SRV record ({})",
                    dnssec.name()
                )));
            }
        };
        if let Ok(mut r) = self.record.lock() {
            *r = Some((owner.clone(), a.dnssec));
        }
        let best = a
            .records
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some((s.priority, s.weight, s.port, s.target.to_ascii())),
                _ => None,
            })
            .min_by(|x, y| {
                x.0.cmp(&y.0)
                    .then_with(|| y.1.cmp(&x.1))
                    .then_with(|| x.3.cmp(&y.3))
            });
        let Some((_, _, port, target)) = best else {
            return Err(Error::NoRecord(format!("{owner} holds no SRV record")));
        };
        if target == "." {
            return Err(Error::NoRecord(format!("{owner}: \".\" (not offered)")));
        }
        let host = normalize_domain(&target)?;
        let url = if port == 443 {
            format!("https://{host}/autodiscover/autodiscover.xml")
        } else {
            format!("https://{host}:{port}/autodiscover/autodiscover.xml")
        };
        Ok((url, host, a.dnssec == DnssecState::Secure))
    }

    /// The four leads of one address, taken in order: the body that answered, its POST hops,
    /// and how its URL was found.
    async fn ask_domain(&self, address: &str, domain: &str) -> Result<(Posted, Lead)> {
        enum Step {
            Done(Posted),
            Url(String),
            Srv(String, String, bool),
        }
        let [u1, u2, u3] = urls(domain);
        let leads: Vec<BoxFuture<'_, Result<Step>>> = vec![
            async { self.post(&u1, address, false).await.map(Step::Done) }.boxed(),
            async { self.post(&u2, address, false).await.map(Step::Done) }.boxed(),
            async { self.plain_http_lead(&u3).await.map(Step::Url) }.boxed(),
            async {
                self.srv_lead(domain)
                    .await
                    .map(|(u, h, s)| Step::Srv(u, h, s))
            }
            .boxed(),
        ];
        let mut results: Vec<Option<Result<Step>>> = (0..leads.len()).map(|_| None).collect();
        let mut pending: FuturesUnordered<_> = leads
            .into_iter()
            .enumerate()
            .map(|(i, f)| f.map(move |r| (i, r)))
            .collect();
        let mut errors: Vec<Error> = Vec::new();
        let mut next = 0;
        while next < results.len() {
            let Some(r) = results[next].take() else {
                match pending.next().await {
                    Some((i, r)) => results[i] = Some(r),
                    None => break,
                }
                continue;
            };
            let step = match r {
                Ok(Step::Done(p)) => return Ok((p, Lead::Direct)),
                Ok(Step::Url(u)) => {
                    let why = format!("the plain-HTTP redirect of {u3}");
                    async {
                        self.allow(&u, address, &why, false).await?;
                        self.post(&u, address, false).await
                    }
                    .await
                    .map(|p| (p, Lead::PlainHttp))
                }
                Ok(Step::Srv(u, target, secure)) => {
                    let why = if secure {
                        format!("{domain}'s DNSSEC-signed _autodiscover._tcp SRV record names it")
                    } else {
                        format!("{domain}'s _autodiscover._tcp SRV record (not DNSSEC-signed)")
                    };
                    async {
                        self.allow(&u, address, &why, secure).await?;
                        self.post(&u, address, secure).await
                    }
                    .await
                    .map(|p| (p, Lead::Srv { target, secure }))
                }
                Err(e) => Err(e),
            };
            match step {
                Ok(found) => return Ok(found),
                Err(e) => errors.push(e),
            }
            next += 1;
        }
        // The report's status: the first lead that got an answer of some kind (a 401, a
        // refused redirect, a broken document), else the first lead's; the text lists all.
        let text = format!(
            "Autodiscover found nothing for {address}: {}",
            errors
                .iter()
                .map(Error::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
        let nothing_there = |e: &Error| {
            matches!(
                e,
                Error::NxDomain(_)
                    | Error::NoRecord(_)
                    | Error::ConnectFailed(_)
                    | Error::LookupFailed(_)
                    | Error::Timeout(_)
            )
        };
        let telling = errors.iter().position(|e| !nothing_there(e)).unwrap_or(0);
        Err(errors
            .into_iter()
            .nth(telling)
            .map_or(Error::NotFound(text.clone()), |e| e.with_detail(text)))
    }
}

fn url_host(url: &str) -> Result<String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| Error::InvalidArg(format!("{url:?} is not a URL")))?;
    let host = uri
        .host()
        .ok_or_else(|| Error::InvalidArg(format!("{url:?} has no host")))?;
    normalize_domain(host)
}

/// The Autodiscover source for the address of `parts` (see the module comment).
pub async fn run(
    resolver: &Resolver,
    trust: &CaStore,
    parts: &AddressParts,
    hook: Option<&AutodiscoverHook>,
    per_fetch: std::time::Duration,
    deadline: Instant,
) -> SourceRun {
    let run = Run {
        resolver,
        trust,
        hook,
        parts,
        per_fetch,
        deadline,
        allowed: Mutex::new(BTreeSet::from([registrable(&parts.domain)])),
        hops: Mutex::new(Vec::new()),
        notes: Mutex::new(Vec::new()),
        unfollowed: Mutex::new(Vec::new()),
        record: Mutex::new(None),
    };
    let found = discover(&run).await;
    let record = run.record.into_inner().unwrap_or_default();
    let hops = run.hops.into_inner().unwrap_or_default();
    let mut notes = run.notes.into_inner().unwrap_or_default();
    let unfollowed = run.unfollowed.into_inner().unwrap_or_default();
    let found = found.map(|(f, extra)| {
        notes.extend(extra);
        f
    });
    SourceRun {
        found,
        hops,
        notes,
        mx: None,
        record,
        unfollowed,
    }
}

async fn discover(run: &Run<'_>) -> Result<(Found, Vec<String>)> {
    let domain = run.parts.domain.clone();
    let mut address = run.parts.address.clone();
    let mut ask_domain = domain.clone();
    let mut redirected: Option<String> = None;
    let mut url_override: Option<String> = None;
    for round in 0..=MAX_ACCOUNT_REDIRECTS {
        let (posted, lead) = match url_override.take() {
            Some(u) => run
                .post(&u, &address, false)
                .await
                .map(|p| (p, Lead::AnswerUrl))?,
            None => run.ask_domain(&address, &ask_domain).await?,
        };
        let answer = parse(&posted.body, &run.parts.address)?;
        let more = round < MAX_ACCOUNT_REDIRECTS;
        match answer {
            Answer::RedirectAddr(a) => {
                let new_domain = MailDomain::parse(&a).map_err(|e| {
                    Error::BadConfig(format!("Autodiscover RedirectAddr {a:?}: {e}"))
                })?;
                if !more {
                    return Err(Error::Http(format!(
                        "Autodiscover: more than {MAX_ACCOUNT_REDIRECTS} RedirectAddr/RedirectUrl answers (the last to {a})"
                    )));
                }
                let first = urls(&new_domain)[0].clone();
                run.allow(&first, &a, &format!("a RedirectAddr answer to {a}"), false)
                    .await?;
                push(&run.notes, format!("RedirectAddr to {a}"));
                redirected = Some(format!("the answer redirected to the address {a}"));
                address = a;
                ask_domain = new_domain;
            }
            Answer::RedirectUrl(u) => {
                if !more {
                    return Err(Error::Http(format!(
                        "Autodiscover: more than {MAX_ACCOUNT_REDIRECTS} RedirectAddr/RedirectUrl answers (the last to {u})"
                    )));
                }
                if !u.starts_with("https://") {
                    return Err(Error::Http(format!(
                        "Autodiscover RedirectUrl {u}: only HTTPS URLs are followed"
                    )));
                }
                run.allow(&u, &address, "a RedirectUrl answer", false)
                    .await?;
                push(&run.notes, format!("RedirectUrl to {u}"));
                redirected = Some(format!("the answer redirected to {u}"));
                url_override = Some(u);
            }
            Answer::Settings(config) => {
                if config.servers.is_empty() {
                    return Err(Error::BadConfig(format!(
                        "the Autodiscover answer names no IMAP, POP3 or SMTP server{}",
                        if config.notes.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", config.notes.join("; "))
                        }
                    )));
                }
                let final_url = posted.hops.last().map(|h| h.url.clone());
                let outside = posted.hops.iter().find(|h| !is_in_domain(&h.host, &domain));
                let coverage = match (&redirected, &lead, outside) {
                    (Some(r), _, _) => Coverage::None(format!("{r}: not {domain}'s own statement")),
                    (
                        None,
                        Lead::Srv {
                            target,
                            secure: true,
                        },
                        _,
                    ) => Coverage::DnssecDelegation(format!(
                        "{domain}'s DNSSEC-signed _autodiscover._tcp SRV record names {target}, which answered Autodiscover over HTTPS"
                    )),
                    (None, Lead::Srv { target, .. }, _) => Coverage::None(format!(
                        "the Autodiscover server {target} comes from an SRV record that is not DNSSEC-signed"
                    )),
                    (None, Lead::PlainHttp, _) => Coverage::None(
                        "the Autodiscover URL came from a plain-HTTP redirect".into(),
                    ),
                    (None, _, Some(h)) => Coverage::None(format!(
                        "the Autodiscover answer came from {}, outside {domain}",
                        h.host
                    )),
                    (None, Lead::Direct | Lead::AnswerUrl, None) => Coverage::HttpsDomain,
                };
                let notes = config.notes.clone();
                return Ok((
                    Found {
                        source: Source::Autodiscover,
                        url: final_url,
                        config: *config,
                        coverage,
                        srv: None,
                        mx_dnssec: None,
                    },
                    notes,
                ));
            }
        }
    }
    Err(Error::Http(format!(
        "Autodiscover: more than {MAX_ACCOUNT_REDIRECTS} redirects"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <User><DisplayName>Joe &amp; Co</DisplayName></User>
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
      <Protocol><Type>EXCH</Type><Server>ex.example.com</Server></Protocol>
      <Protocol><Type>IMAP</Type><Server>IMAP.example.com</Server><Port>993</Port>
        <LoginName>joe.user</LoginName><SSL>on</SSL><SPA>off</SPA></Protocol>
      <Protocol><Type>IMAP</Type><Server>imap.example.com</Server><Port>143</Port>
        <Encryption>TLS</Encryption></Protocol>
      <Protocol><Type>POP3</Type><Server>pop.example.com</Server><Port>995</Port>
        <Encryption>Auto</Encryption><SPA>on</SPA></Protocol>
      <Protocol><Type>SMTP</Type><Server>smtp.example.com</Server><Port>587</Port></Protocol>
      <Protocol><Type>SMTP</Type><Server>smtp.example.com</Server><Port>25</Port><SSL>off</SSL></Protocol>
    </Account>
  </Response>
</Autodiscover>"#;

    #[test]
    fn settings_map_to_entries() {
        let Answer::Settings(c) = parse(ANSWER.as_bytes(), "joe@example.com").unwrap() else {
            panic!("not settings");
        };
        assert_eq!(c.display_name.as_deref(), Some("Joe & Co"));
        let got: Vec<(ServerProtocol, &str, u16, SocketType, &str)> = c
            .servers
            .iter()
            .map(|s| {
                (
                    s.protocol,
                    s.host.as_str(),
                    s.port,
                    s.socket,
                    s.username.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    ServerProtocol::Imap,
                    "imap.example.com",
                    993,
                    SocketType::Tls,
                    "joe.user"
                ),
                (
                    ServerProtocol::Imap,
                    "imap.example.com",
                    143,
                    SocketType::StartTls,
                    "joe@example.com"
                ),
                (
                    ServerProtocol::Pop3,
                    "pop.example.com",
                    995,
                    SocketType::Tls,
                    "joe@example.com"
                ),
                (
                    ServerProtocol::Smtp,
                    "smtp.example.com",
                    587,
                    SocketType::StartTls,
                    "joe@example.com"
                ),
                (
                    ServerProtocol::Smtp,
                    "smtp.example.com",
                    25,
                    SocketType::Plain,
                    "joe@example.com"
                ),
            ]
        );
        assert_eq!(c.servers[2].authentication, ["NTLM"]);
        assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
    }

    #[test]
    fn redirects_and_errors() {
        let addr = r#"<Autodiscover><Response><Account><Action>redirectAddr</Action>
            <RedirectAddr>joe@other.example</RedirectAddr></Account></Response></Autodiscover>"#;
        assert_eq!(
            parse(addr.as_bytes(), "x").unwrap(),
            Answer::RedirectAddr("joe@other.example".into())
        );
        let url = r#"<Autodiscover><Response><Account><Action>redirectUrl</Action>
            <RedirectUrl>https://ad.example/autodiscover/autodiscover.xml</RedirectUrl></Account></Response></Autodiscover>"#;
        assert_eq!(
            parse(url.as_bytes(), "x").unwrap(),
            Answer::RedirectUrl("https://ad.example/autodiscover/autodiscover.xml".into())
        );
        let err = r#"<Autodiscover><Response><Error><ErrorCode>500</ErrorCode>
            <Message>The e-mail address cannot be found.</Message></Error></Response></Autodiscover>"#;
        match parse(err.as_bytes(), "x") {
            Err(Error::BadConfig(m)) => assert!(m.contains("cannot be found"), "{m}"),
            other => panic!("{other:?}"),
        }
        for hostile in [
            r#"<!DOCTYPE a [<!ENTITY x "y">]><Autodiscover>&x;</Autodiscover>"#,
            "<clientConfig/>",
            "<Autodiscover><Response>",
        ] {
            match parse(hostile.as_bytes(), "x") {
                Err(Error::BadConfig(m)) => assert!(m.starts_with("Autodiscover XML"), "{m}"),
                other => panic!("{hostile}: {other:?}"),
            }
        }
    }

    #[test]
    fn request_and_urls() {
        let b = request_body("a&b<c@example.com");
        assert!(b.contains("<EMailAddress>a&amp;b&lt;c@example.com</EMailAddress>"));
        assert!(b.contains(RESPONSE_SCHEMA));
        assert_eq!(
            urls("example.com")[2],
            "http://autodiscover.example.com/autodiscover/autodiscover.xml"
        );
        assert_eq!(registrable("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(registrable("autodiscover.example.com"), "example.com");
    }
}
