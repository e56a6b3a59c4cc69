//! The autoconfig XML (draft-ietf-mailmaint-autoconfig §3; Thunderbird's config-v1.1, and
//! 1.2 with `oAuth2`): `clientConfig` → `emailProvider` → `incomingServer` /
//! `outgoingServer`. Unknown elements and attributes are ignored; several servers of one
//! type are kept in document order; `%EMAILADDRESS%`, `%EMAILLOCALPART%` and
//! `%EMAILDOMAIN%` are substituted in `username`.
//!
//! Hostile input is a clear [`Error::BadConfig`]: a body that is not UTF-8 or declares
//! another encoding, a DOCTYPE (so no entity definitions at all: nothing to expand), an
//! unknown entity reference, nesting deeper than [`MAX_DEPTH`], more than
//! [`MAX_SERVERS`] servers, over-long text. The body size is capped by the fetch.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::core::address::{MailDomain, normalize_domain};
use crate::core::{Error, Result};

/// Deepest element nesting accepted (a real config nests 4 deep).
pub const MAX_DEPTH: usize = 16;
/// Most servers (incoming and outgoing together) kept from one document.
pub const MAX_SERVERS: usize = 32;
/// Longest text of one element.
pub const MAX_TEXT: usize = 2048;

/// The protocol a server entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerProtocol {
    Imap,
    Pop3,
    Smtp,
}

impl ServerProtocol {
    pub fn name(self) -> &'static str {
        match self {
            ServerProtocol::Imap => "imap",
            ServerProtocol::Pop3 => "pop3",
            ServerProtocol::Smtp => "smtp",
        }
    }
}

/// `socketType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketType {
    /// `SSL` (also `TLS`): implicit TLS.
    Tls,
    /// `STARTTLS`.
    StartTls,
    /// `plain`: no TLS at all; mailsrv never connects so.
    Plain,
}

impl SocketType {
    pub fn name(self) -> &'static str {
        match self {
            SocketType::Tls => "ssl",
            SocketType::StartTls => "starttls",
            SocketType::Plain => "plain",
        }
    }
}

/// One `incomingServer` or `outgoingServer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    pub protocol: ServerProtocol,
    /// A-label host name, validated.
    pub host: String,
    pub port: u16,
    pub socket: SocketType,
    /// With the placeholders substituted.
    pub username: Option<String>,
    /// `authentication` values in document (preference) order, as written.
    pub authentication: Vec<String>,
}

/// The `oAuth2` element (config-v1.2), passed through as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuth2 {
    pub issuer: Option<String>,
    pub scope: Option<String>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
}

/// What a configuration passes through beyond mail servers (PACC): JMAP, CalDAV and
/// CardDAV URLs and the `oauth-public` issuer, as written (HTTPS URLs only). They carry the
/// document's own evidence; mailsrv connects to none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebServices {
    pub jmap: Option<String>,
    pub caldav: Option<String>,
    pub carddav: Option<String>,
    /// draft-ietf-mailmaint-oauth-public: the OAuth issuer for public clients.
    pub oauth_public_issuer: Option<String>,
}

/// A parsed document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    /// The `version` attribute of `clientConfig` (`1.1`, `1.2`, ...), if any.
    pub version: Option<String>,
    /// The provider's `id` attribute.
    pub provider_id: Option<String>,
    /// The `domain` elements.
    pub domains: Vec<String>,
    pub display_name: Option<String>,
    pub servers: Vec<ServerEntry>,
    pub oauth2: Option<OAuth2>,
    /// Passed through (PACC only).
    pub web: WebServices,
    /// Entries skipped and why (bad host or port, unknown type), for diagnostics.
    pub notes: Vec<String>,
}

/// The address parts substituted into `username`.
#[derive(Debug, Clone)]
pub struct AddressParts {
    pub address: String,
    pub local: String,
    pub domain: MailDomain,
}

impl AddressParts {
    pub fn substitute(&self, s: &str) -> String {
        s.replace("%EMAILADDRESS%", &self.address)
            .replace("%EMAILLOCALPART%", &self.local)
            .replace("%EMAILDOMAIN%", &self.domain)
    }
}

fn bad(why: impl Into<String>) -> Error {
    Error::BadConfig(format!("autoconfig XML: {}", why.into()))
}

/// A server entry under construction.
#[derive(Default)]
struct Pending {
    incoming: bool,
    kind: String,
    host: Option<String>,
    port: Option<String>,
    socket: Option<String>,
    username: Option<String>,
    authentication: Vec<String>,
}

/// One element event of [`walk`]. `path` holds the names of the enclosing elements, the
/// root first (not the element itself).
pub(crate) enum Node<'a, 'b> {
    /// An element opened, with its attributes.
    Open {
        name: &'a str,
        path: &'a [String],
        element: &'a BytesStart<'b>,
    },
    /// An element closed, with its text (entity and character references resolved,
    /// trimmed).
    Close {
        name: &'a str,
        path: &'a [String],
        text: &'a str,
    },
}

/// Reads `body` as an XML document whose root element is `root`, with every hostile-input
/// rule of the module comment, and hands each element to `on`. `what` names the kind of
/// document in errors ("autoconfig XML", "Autodiscover XML").
pub(crate) fn walk(
    body: &[u8],
    what: &str,
    root: &str,
    mut on: impl FnMut(Node<'_, '_>) -> Result<()>,
) -> Result<()> {
    let bad = |why: String| Error::BadConfig(format!("{what}: {why}"));
    let text =
        std::str::from_utf8(body).map_err(|e| bad(format!("the document is not UTF-8 ({e})")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    // Not trimmed per event: text is split at entity references; the close trims the whole.
    reader.config_mut().trim_text(false);
    // Element names from the root down (local names, as written).
    let mut path: Vec<String> = Vec::new();
    let mut text_buf = String::new();
    let mut seen_root = false;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| bad(format!("at byte {}: {e}", reader.buffer_position())))?;
        match ev {
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|e| bad(e.to_string()))?;
                    let enc = enc.to_ascii_lowercase();
                    if enc != "utf-8" && enc != "utf8" {
                        return Err(bad(format!(
                            "the document declares the encoding {enc:?}; only UTF-8 is accepted"
                        )));
                    }
                }
            }
            Event::DocType(_) => {
                return Err(bad(
                    "a DOCTYPE (entity definitions) is not accepted in a config file".into(),
                ));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                if path.len() >= MAX_DEPTH {
                    return Err(bad(format!("elements nested deeper than {MAX_DEPTH}")));
                }
                let name = local(e);
                let empty = matches!(ev, Event::Empty(_));
                if path.is_empty() {
                    if seen_root || empty {
                        return Err(bad(if empty {
                            format!("the root element is an empty {name:?}")
                        } else {
                            "more than one root element".into()
                        }));
                    }
                    seen_root = true;
                    if name != root {
                        return Err(bad(format!("the root element is {name:?}, not {root}")));
                    }
                }
                on(Node::Open {
                    name: &name,
                    path: &path,
                    element: e,
                })?;
                text_buf.clear();
                if empty {
                    on(Node::Close {
                        name: &name,
                        path: &path,
                        text: "",
                    })?;
                } else {
                    path.push(name);
                }
            }
            Event::Text(t) => push_text(&mut text_buf, &t.xml10_content(), &bad)?,
            Event::CData(c) => push_text(&mut text_buf, &c, &bad)?,
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref().map_err(|e| bad(e.to_string()))? {
                    Some(c) => c,
                    None => match &*r {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => {
                            return Err(bad(format!("unknown entity reference &{other};")));
                        }
                    },
                };
                push_text(&mut text_buf, ch.encode_utf8(&mut [0; 4]), &bad)?;
            }
            Event::End(_) => {
                let t = std::mem::take(&mut text_buf);
                let name = path.pop().unwrap_or_default();
                on(Node::Close {
                    name: &name,
                    path: &path,
                    text: t.trim(),
                })?;
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !seen_root {
        return Err(bad(format!("no {root} element")));
    }
    if !path.is_empty() {
        return Err(bad("the document ends inside an element".into()));
    }
    Ok(())
}

/// Parses one document (see the module comment).
pub fn parse(body: &[u8], parts: &AddressParts) -> Result<ClientConfig> {
    let mut out = ClientConfig::default();
    let mut server: Option<Pending> = None;
    let mut oauth: Option<OAuth2> = None;
    walk(body, "autoconfig XML", "clientConfig", |node| match node {
        Node::Open {
            name,
            path,
            element,
        } => {
            if path.is_empty() {
                out.version = attr(element, "version")?;
            }
            start(element, name, path, &mut out, &mut server, &mut oauth)
        }
        Node::Close { name, path, text } => {
            end(name, path, text, parts, &mut out, &mut server, &mut oauth)
        }
    })?;
    out.oauth2 = oauth;
    Ok(out)
}

fn push_text(buf: &mut String, s: &str, bad: &impl Fn(String) -> Error) -> Result<()> {
    if buf.len() + s.len() > MAX_TEXT {
        return Err(bad(format!(
            "an element's text is longer than {MAX_TEXT} bytes"
        )));
    }
    buf.push_str(s);
    Ok(())
}

pub(crate) fn local(e: &BytesStart<'_>) -> String {
    e.local_name().as_ref().to_string()
}

pub(crate) fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>> {
    match e.try_get_attribute(name) {
        Ok(Some(a)) => Ok(Some(
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| bad(format!("attribute {name}: {e}")))?
                .into_owned(),
        )),
        Ok(None) => Ok(None),
        Err(e) => Err(bad(format!("attributes: {e}"))),
    }
}

/// The element path without the root: `["emailProvider", "incomingServer"]` etc.
fn under(path: &[String]) -> Vec<&str> {
    path.iter().skip(1).map(String::as_str).collect()
}

fn start(
    e: &BytesStart<'_>,
    name: &str,
    path: &[String],
    out: &mut ClientConfig,
    server: &mut Option<Pending>,
    oauth: &mut Option<OAuth2>,
) -> Result<()> {
    let at = under(path);
    match (at.as_slice(), name) {
        ([], "emailProvider") => out.provider_id = attr(e, "id")?,
        (["emailProvider"], "incomingServer" | "outgoingServer") => {
            *server = Some(Pending {
                incoming: name == "incomingServer",
                kind: attr(e, "type")?.unwrap_or_default(),
                ..Pending::default()
            });
        }
        ([] | ["emailProvider"], "oAuth2") => *oauth = Some(OAuth2::default()),
        _ => {}
    }
    Ok(())
}

fn end(
    name: &str,
    path: &[String],
    text: &str,
    parts: &AddressParts,
    out: &mut ClientConfig,
    server: &mut Option<Pending>,
    oauth: &mut Option<OAuth2>,
) -> Result<()> {
    let at = under(path);
    let value = || Some(text.to_string());
    match (at.as_slice(), name) {
        (["emailProvider"], "domain") if !text.is_empty() && out.domains.len() < 64 => {
            out.domains.push(text.to_ascii_lowercase());
        }
        (["emailProvider"], "displayName") => out.display_name = value(),
        (["emailProvider", "incomingServer" | "outgoingServer"], field) => {
            if let Some(s) = server.as_mut() {
                match field {
                    "hostname" => s.host = value(),
                    "port" => s.port = value(),
                    "socketType" => s.socket = value(),
                    "username" => s.username = Some(parts.substitute(text)),
                    "authentication" if !text.is_empty() && s.authentication.len() < 16 => {
                        s.authentication.push(text.to_string())
                    }
                    _ => {}
                }
            }
        }
        (["emailProvider"], "incomingServer" | "outgoingServer") => {
            if let Some(p) = server.take() {
                finish_server(p, out)?;
            }
        }
        ([] | ["emailProvider"], "oAuth2") => {}
        ([.., "oAuth2"], field) => {
            if let Some(o) = oauth.as_mut() {
                match field {
                    "issuer" => o.issuer = value(),
                    "scope" => o.scope = value(),
                    "authURL" => o.auth_url = value(),
                    "tokenURL" => o.token_url = value(),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn finish_server(p: Pending, out: &mut ClientConfig) -> Result<()> {
    let which = if p.incoming {
        "incomingServer"
    } else {
        "outgoingServer"
    };
    let protocol = match (p.incoming, p.kind.to_ascii_lowercase().as_str()) {
        (true, "imap") => ServerProtocol::Imap,
        (true, "pop3") => ServerProtocol::Pop3,
        (false, "smtp") => ServerProtocol::Smtp,
        (_, other) => {
            out.notes.push(format!(
                "{which} of type {other:?} skipped: not a mail protocol mailsrv knows"
            ));
            return Ok(());
        }
    };
    let Some(host_text) = p.host else {
        out.notes.push(format!(
            "{which} {} without hostname skipped",
            protocol.name()
        ));
        return Ok(());
    };
    let host = match normalize_domain(&host_text) {
        Ok(h) => h,
        Err(e) => {
            out.notes
                .push(format!("{which} hostname {host_text:?} skipped: {e}"));
            return Ok(());
        }
    };
    let port = match p.port.as_deref().map(str::parse::<u16>) {
        Some(Ok(port)) if port != 0 => port,
        _ => {
            out.notes.push(format!(
                "{which} {host}: bad or missing port {:?}; skipped",
                p.port
            ));
            return Ok(());
        }
    };
    let socket = match p.socket.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("SSL" | "TLS") => SocketType::Tls,
        Some("STARTTLS") => SocketType::StartTls,
        Some("PLAIN") => SocketType::Plain,
        other => {
            out.notes.push(format!(
                "{which} {host}: unknown socketType {other:?}; skipped"
            ));
            return Ok(());
        }
    };
    if out.servers.len() >= MAX_SERVERS {
        return Err(bad(format!("more than {MAX_SERVERS} servers")));
    }
    out.servers.push(ServerEntry {
        protocol,
        host,
        port,
        socket,
        username: p.username,
        authentication: p.authentication,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> AddressParts {
        AddressParts {
            address: "joe@example.com".into(),
            local: "joe".into(),
            domain: MailDomain::parse("example.com").unwrap(),
        }
    }

    const GOOD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.com">
    <domain>example.com</domain>
    <displayName>Example &amp; Co</displayName>
    <incomingServer type="imap">
      <hostname>IMAP.Example.NET.</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username>
      <authentication>OAuth2</authentication><authentication>password-cleartext</authentication>
      <futureElement>ignored</futureElement>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap2.example.net</hostname><port>143</port><socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%@%EMAILDOMAIN%</username>
    </incomingServer>
    <incomingServer type="exchange"><hostname>x.example.net</hostname></incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.net</hostname><port>465</port><socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
    </outgoingServer>
  </emailProvider>
  <oAuth2><issuer>accounts.example.net</issuer><scope>mail</scope>
    <authURL>https://a.example.net/auth</authURL><tokenURL>https://a.example.net/token</tokenURL></oAuth2>
</clientConfig>"#;

    #[test]
    fn parses_servers_in_order_with_substitution_and_oauth() {
        let c = parse(GOOD.as_bytes(), &parts()).unwrap();
        assert_eq!(c.version.as_deref(), Some("1.1"));
        assert_eq!(c.display_name.as_deref(), Some("Example & Co"));
        assert_eq!(c.servers.len(), 3);
        assert_eq!(c.servers[0].host, "imap.example.net");
        assert_eq!(c.servers[0].socket, SocketType::Tls);
        assert_eq!(c.servers[0].username.as_deref(), Some("joe@example.com"));
        assert_eq!(
            c.servers[0].authentication,
            ["OAuth2", "password-cleartext"]
        );
        assert_eq!(c.servers[1].port, 143);
        assert_eq!(c.servers[1].username.as_deref(), Some("joe@example.com"));
        assert_eq!(c.servers[2].protocol, ServerProtocol::Smtp);
        assert_eq!(c.servers[2].username.as_deref(), Some("joe"));
        assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
        let o = c.oauth2.unwrap();
        assert_eq!(o.issuer.as_deref(), Some("accounts.example.net"));
        assert_eq!(o.token_url.as_deref(), Some("https://a.example.net/token"));
    }

    #[test]
    fn version_1_2_is_read_too() {
        let doc = GOOD.replace("version=\"1.1\"", "version=\"1.2\"");
        assert_eq!(
            parse(doc.as_bytes(), &parts()).unwrap().version.as_deref(),
            Some("1.2")
        );
    }

    #[test]
    fn hostile_documents_are_clear_errors() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><clientConfig>&b;</clientConfig>"#;
        let deep = format!(
            "<clientConfig>{}{}</clientConfig>",
            "<x>".repeat(40),
            "</x>".repeat(40)
        );
        let latin1 =
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><clientConfig>\xe9</clientConfig>"
                .to_vec();
        let declared = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><clientConfig/>";
        let many = format!(
            "<clientConfig><emailProvider>{}</emailProvider></clientConfig>",
            "<incomingServer type=\"imap\"><hostname>a.example</hostname><port>1</port><socketType>SSL</socketType></incomingServer>".repeat(40)
        );
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("entities", laughs.as_bytes().to_vec()),
            ("deep", deep.into_bytes()),
            ("non-UTF-8", latin1),
            ("declared encoding", declared.as_bytes().to_vec()),
            (
                "broken",
                b"<clientConfig><emailProvider></clientConfig>".to_vec(),
            ),
            ("other root", b"<html><body>404</body></html>".to_vec()),
            ("empty", Vec::new()),
            (
                "unknown entity",
                b"<clientConfig>&nbsp;</clientConfig>".to_vec(),
            ),
            ("too many servers", many.into_bytes()),
            (
                "long text",
                format!("<clientConfig><x>{}</x></clientConfig>", "a".repeat(5000)).into_bytes(),
            ),
        ];
        for (what, doc) in cases {
            match parse(&doc, &parts()) {
                Err(Error::BadConfig(m)) => assert!(m.starts_with("autoconfig XML"), "{what}: {m}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_entries_are_skipped_with_a_note() {
        let doc = r#"<clientConfig><emailProvider>
          <incomingServer type="imap"><hostname>bad..host</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
          <incomingServer type="imap"><hostname>ok.example</hostname><port>0</port><socketType>SSL</socketType></incomingServer>
          <incomingServer type="pop3"><hostname>ok.example</hostname><port>995</port><socketType>weird</socketType></incomingServer>
          <outgoingServer type="smtp"><hostname>ok.example</hostname><port>25</port><socketType>plain</socketType></outgoingServer>
        </emailProvider></clientConfig>"#;
        let c = parse(doc.as_bytes(), &parts()).unwrap();
        assert_eq!(c.servers.len(), 1);
        assert_eq!(c.servers[0].socket, SocketType::Plain);
        assert_eq!(c.notes.len(), 3);
    }
}
