//! HTTP(S) requests for config documents, on mailsrv's own TLS: the host is resolved through
//! the context's validating resolver (Happy Eyeballs), the certificate is checked by
//! [`MailVerifier`] against the context's trust store with the DNS-ID of the URL's host
//! (no resumption, TLS 1.2+), and HTTP/1.1 is spoken by hyper. No OpenSSL, no system
//! resolver.
//!
//! Rules: redirects are followed only from HTTPS to HTTPS, at most [`MAX_REDIRECTS`] of
//! them; every hop is recorded (URL, status, host, scheme); the body is capped at
//! [`MAX_BODY`] bytes; everything runs under the caller's deadline. A redirect from or to
//! plain HTTP is refused ([`Error::Http`]), so a plain-HTTP document is only ever the
//! first URL's. A caller with its own redirect rules (Exchange Autodiscover) asks for no
//! redirect at all ([`Request::follow`] false) and gets the `Location` back. Credentials
//! (Basic) go over HTTPS only.

use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use crate::core::cert::ca_store::CaStore;
use crate::core::cert::identity::{DnsName, MatchOptions, ReferenceIdentity};
use crate::core::cert::verifier::{MailVerifier, client_config, from_rustls_error};
use crate::core::dns::resolver::Resolver;
use crate::core::tls::happy_eyeballs::{self, Timing};
use crate::core::{Error, Result};

/// Most redirects followed for one document.
pub const MAX_REDIRECTS: usize = 3;
/// Largest body accepted (a real config is a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// One request of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub url: String,
    /// The URL's host (A-labels).
    pub host: String,
    pub https: bool,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
}

/// A fetched document with the way it came.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// Every request, the first URL first, the one that answered 200 last.
    pub hops: Vec<Hop>,
    /// Without [`Request::follow`]: the absolute `Location` of a redirect that ended the
    /// fetch (then `body` is empty).
    pub location: Option<String>,
}

/// The HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One request's shape (see the module comment).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: Method,
    /// The body of a POST (sent again after a redirect).
    pub body: &'a [u8],
    pub content_type: Option<&'a str>,
    pub accept: &'a str,
    /// `(user, password)` for HTTP Basic; sent over HTTPS only, never over plain HTTP.
    pub basic: Option<(&'a str, &'a str)>,
    /// Follow HTTPS-to-HTTPS redirects; false: a redirect ends the fetch with its Location.
    pub follow: bool,
}

impl Request<'_> {
    /// A GET of an XML document, following HTTPS-to-HTTPS redirects.
    pub fn get_xml() -> Request<'static> {
        Request {
            method: Method::Get,
            body: b"",
            content_type: None,
            accept: "application/xml, text/xml, */*",
            basic: None,
            follow: true,
        }
    }
}

impl Fetched {
    /// Every hop was HTTPS.
    pub fn all_https(&self) -> bool {
        self.hops.iter().all(|h| h.https)
    }

    /// The URL that answered.
    pub fn final_url(&self) -> &str {
        self.hops.last().map_or("", |h| h.url.as_str())
    }
}

/// A fetch failure with the hops made so far.
#[derive(Debug, Clone)]
pub struct FetchError {
    pub error: Error,
    pub hops: Vec<Hop>,
}

struct Url {
    https: bool,
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    target: String,
}

fn parse_url(text: &str) -> Result<Url> {
    let bad = |why: &str| Error::InvalidArg(format!("URL {text:?}: {why}"));
    let uri: http::Uri = text.parse().map_err(|_| bad("not a URL"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("only http and https URLs")),
    };
    let auth = uri.authority().ok_or_else(|| bad("no host"))?;
    if auth.as_str().contains('@') {
        return Err(bad("user information in a URL is not accepted"));
    }
    let host = DnsName::new(auth.host())
        .map_err(|e| bad(&format!("the host is not a DNS name: {e}")))?
        .as_str()
        .to_string();
    let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
    if port == 0 {
        return Err(bad("port 0"));
    }
    let target = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    Ok(Url {
        https,
        host,
        port,
        target,
    })
}

/// Resolves a `Location` header against the URL it answered.
fn resolve_location(base: &Url, location: &str) -> String {
    if location.starts_with("https://") || location.starts_with("http://") {
        return location.to_string();
    }
    let scheme = if base.https { "https" } else { "http" };
    let default = if base.https { 443 } else { 80 };
    let authority = if base.port == default {
        base.host.clone()
    } else {
        format!("{}:{}", base.host, base.port)
    };
    if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let dir = base.target.split('?').next().unwrap_or("/");
        let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
        format!("{scheme}://{authority}{dir}{location}")
    }
}

/// GETs the XML document at `url` (see the module comment). `trust` checks every HTTPS hop.
pub async fn get(
    resolver: &Resolver,
    trust: &CaStore,
    url: &str,
    deadline: Instant,
) -> std::result::Result<Fetched, FetchError> {
    fetch(resolver, trust, url, &Request::get_xml(), deadline).await
}

/// Makes `req` to `url` (see the module comment). `trust` checks every HTTPS hop.
pub async fn fetch(
    resolver: &Resolver,
    trust: &CaStore,
    url: &str,
    req: &Request<'_>,
    deadline: Instant,
) -> std::result::Result<Fetched, FetchError> {
    let mut hops: Vec<Hop> = Vec::new();
    let mut next = url.to_string();
    loop {
        let u = match parse_url(&next) {
            Ok(u) => u,
            Err(error) => return Err(FetchError { error, hops }),
        };
        if let Some(prev) = hops.last()
            && (!prev.https || !u.https)
        {
            {
                let error = Error::Http(format!(
                    "{} redirected to {next}: only HTTPS-to-HTTPS redirects are followed",
                    prev.url
                ));
                hops.push(Hop {
                    url: next,
                    host: u.host,
                    https: u.https,
                    status: None,
                });
                return Err(FetchError { error, hops });
            }
        }
        hops.push(Hop {
            url: next.clone(),
            host: u.host.clone(),
            https: u.https,
            status: None,
        });
        let one = timeout_at(deadline, request(resolver, trust, &u, req, deadline)).await;
        let (status, location, body) = match one {
            Err(_) => {
                let error = Error::Timeout(format!("GET {next}: deadline passed"));
                return Err(FetchError { error, hops });
            }
            Ok(Err(error)) => return Err(FetchError { error, hops }),
            Ok(Ok(r)) => r,
        };
        if let Some(h) = hops.last_mut() {
            h.status = Some(status);
        }
        let verb = match req.method {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        match status {
            200 => {
                return Ok(Fetched {
                    body,
                    hops,
                    location: None,
                });
            }
            301 | 302 | 303 | 307 | 308 => {
                let Some(loc) = location else {
                    let error = Error::Http(format!("{verb} {next}: {status} without Location"));
                    return Err(FetchError { error, hops });
                };
                if !req.follow {
                    return Ok(Fetched {
                        body: Vec::new(),
                        hops,
                        location: Some(resolve_location(&u, &loc)),
                    });
                }
                if hops.len() > MAX_REDIRECTS {
                    let error =
                        Error::Http(format!("GET {url}: more than {MAX_REDIRECTS} redirects"));
                    return Err(FetchError { error, hops });
                }
                next = resolve_location(&u, &loc);
            }
            _ => {
                let error = Error::Http(format!("{verb} {next}: HTTP status {status}"));
                return Err(FetchError { error, hops });
            }
        }
    }
}

/// One request: (status, Location, body).
async fn request(
    resolver: &Resolver,
    trust: &CaStore,
    u: &Url,
    req: &Request<'_>,
    deadline: Instant,
) -> Result<(u16, Option<String>, Vec<u8>)> {
    let (tcp, peer) =
        happy_eyeballs::connect_tcp(resolver, &u.host, &[], u.port, Timing::default(), deadline)
            .await?;
    let _ = tcp.set_nodelay(true);
    if u.https {
        let mut id = ReferenceIdentity::new();
        id.add_dns_id(&u.host)?;
        let verifier = Arc::new(MailVerifier::new(
            trust.clone(),
            id,
            MatchOptions::default(),
        )?);
        let mut config = client_config(verifier.clone())?;
        Arc::make_mut(&mut config).alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(u.host.clone())
            .map_err(|e| Error::InvalidArg(format!("{}: {e}", u.host)))?;
        let tls = match TlsConnector::from(config).connect(name, tcp).await {
            Ok(s) => s,
            Err(e) => {
                if let Some(v) = verifier.last_error() {
                    return Err(v);
                }
                let err = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .map(from_rustls_error);
                return Err(err.unwrap_or_else(|| {
                    Error::Handshake(format!("TLS with {} ({peer}): {e}", u.host))
                }));
            }
        };
        exchange(TokioIo::new(tls), u, req).await
    } else {
        exchange(TokioIo::new(tcp), u, req).await
    }
}

/// The `Authorization` value of HTTP Basic (RFC 7617).
fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{user}:{password}").as_bytes())
    )
}

async fn exchange<T>(io: T, u: &Url, r: &Request<'_>) -> Result<(u16, Option<String>, Vec<u8>)>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io)
        .await
        .map_err(|e| Error::Http(format!("{}: {e}", u.host)))?;
    // The connection task ends with the exchange (or when the caller gives up).
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let default = if u.https { 443 } else { 80 };
        let host = if u.port == default {
            u.host.clone()
        } else {
            format!("{}:{}", u.host, u.port)
        };
        let method = match r.method {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
        };
        let mut b = http::Request::builder()
            .method(method.clone())
            .uri(u.target.as_str())
            .header(http::header::HOST, host)
            .header(
                http::header::USER_AGENT,
                concat!("mailsrv/", env!("CARGO_PKG_VERSION")),
            )
            .header(http::header::ACCEPT, r.accept)
            .header(http::header::CONNECTION, "close");
        if let Some(ct) = r.content_type {
            b = b.header(http::header::CONTENT_TYPE, ct);
        }
        // Credentials never travel in the clear.
        if let (Some((user, password)), true) = (r.basic, u.https) {
            b = b.header(http::header::AUTHORIZATION, basic_auth(user, password));
        }
        let body = match r.method {
            Method::Get => Bytes::new(),
            Method::Post => Bytes::copy_from_slice(r.body),
        };
        let req = b
            .body(Full::new(body))
            .map_err(|e| Error::InvalidArg(format!("request: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Error::Http(format!("{method} {}: {e}", u.host)))?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(len) = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > MAX_BODY as u64
        {
            return Err(Error::Http(format!(
                "{}: a body of {len} bytes (at most {MAX_BODY} are read)",
                u.host
            )));
        }
        if status != 200 {
            return Ok((status, location, Vec::new()));
        }
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Error::Http(format!("{}: the body exceeds {MAX_BODY} bytes", u.host))
                } else {
                    Error::Http(format!("{}: reading the body: {e}", u.host))
                }
            })?
            .to_bytes()
            .to_vec();
        Ok((status, location, body))
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_locations() {
        let u = parse_url("https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=a%40b")
            .unwrap();
        assert!(u.https);
        assert_eq!(u.port, 443);
        assert_eq!(u.target, "/mail/config-v1.1.xml?emailaddress=a%40b");
        assert_eq!(
            resolve_location(&u, "/x.xml"),
            "https://autoconfig.example.com/x.xml"
        );
        assert_eq!(
            resolve_location(&u, "y.xml"),
            "https://autoconfig.example.com/mail/y.xml"
        );
        assert_eq!(
            resolve_location(&u, "http://a.example/"),
            "http://a.example/"
        );
        for bad in [
            "ftp://a.example/",
            "https://user@a.example/",
            "https:///x",
            "https://a..b/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_url("http://a.example:8080/").unwrap().port, 8080);
    }

    #[test]
    fn basic_auth_is_rfc_7617() {
        assert_eq!(
            basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_auth("a", "b"), "Basic YTpi");
        assert_eq!(basic_auth("ab", "c"), "Basic YWI6Yw==");
    }
}
