//! POP3 (RFC 1939, RFC 2449): STLS (RFC 2595 §4) and CAPA over TLS.

use tokio::io::{AsyncRead, AsyncWrite};

use super::ServerGreeting;
use super::lines::*;
use crate::core::service::Protocol;
use crate::core::{Error, Result};

pub(super) fn pop3_ok(line: &str) -> Option<bool> {
    let word = line.split(' ').next().unwrap_or("");
    if word.eq_ignore_ascii_case("+OK") {
        Some(true)
    } else if word.eq_ignore_ascii_case("-ERR") {
        Some(false)
    } else {
        None
    }
}

pub(super) fn check_pop3_greeting(line: &str) -> Result<()> {
    match pop3_ok(line) {
        Some(true) => Ok(()),
        Some(false) => Err(Error::ConnectionClosed(format!(
            "the POP3 server refused the connection: {}",
            quote(line)
        ))),
        None => Err(Error::Protocol(format!(
            "not a POP3 greeting: {}",
            quote(line)
        ))),
    }
}

/// `CAPA` (RFC 2449): `Ok(None)` on `-ERR`, else the capability lines (dot-unstuffed).
pub(super) async fn pop3_capa<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
) -> Result<Option<Vec<String>>> {
    r.send("CAPA").await?;
    r.begin("POP3 CAPA");
    let status = r.line().await?;
    match pop3_ok(&status) {
        Some(true) => {}
        Some(false) => return Ok(None),
        None => {
            return Err(Error::Protocol(format!(
                "unexpected POP3 answer to CAPA: {}",
                quote(&status)
            )));
        }
    }
    let mut caps = Vec::new();
    loop {
        let line = r.line().await?;
        if line == "." {
            return Ok(Some(caps));
        }
        let line = line.strip_prefix('.').unwrap_or(&line);
        caps.push(line.to_string());
    }
}

pub(super) fn has_keyword(caps: &[String], keyword: &str) -> bool {
    caps.iter().any(|c| {
        c.split([' ', '\t'])
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    })
}

pub(super) async fn pop3_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
) -> Result<String> {
    r.begin("POP3 greeting");
    let greeting = r.line().await?;
    check_pop3_greeting(&greeting)?;
    let caps = pop3_capa(r).await?.ok_or_else(|| {
        Error::Protocol(
            "the POP3 server does not support CAPA, so STLS cannot be confirmed; not continuing without TLS"
                .into(),
        )
    })?;
    if !has_keyword(&caps, "STLS") {
        return Err(Error::Protocol(format!(
            "the POP3 server does not offer STLS (capabilities: {}); not continuing without TLS",
            caps.join(", ")
        )));
    }
    r.send("STLS").await?;
    r.begin("POP3 STLS");
    let answer = r.line().await?;
    match pop3_ok(&answer) {
        Some(true) => {
            r.ensure_drained(&answer)?;
            Ok(greeting)
        }
        _ => Err(Error::Protocol(format!(
            "the POP3 server refused STLS: {}",
            quote(&answer)
        ))),
    }
}

pub(super) async fn pop3_after<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
    implicit: Option<String>,
) -> Result<ServerGreeting> {
    let greeting = match implicit {
        Some(line) => {
            check_pop3_greeting(&line)?;
            line
        }
        None => String::new(),
    };
    // CAPA is optional in POP3 (RFC 2449): a server without it has no capabilities to show.
    let capabilities = pop3_capa(r).await?.unwrap_or_default();
    Ok(ServerGreeting {
        protocol: Protocol::Pop3,
        greeting,
        capabilities,
        leftover: Vec::new(),
    })
}
