//! SMTP submission (RFC 5321, RFC 6409): STARTTLS (RFC 3207) and EHLO over TLS.

use tokio::io::{AsyncRead, AsyncWrite};

use super::ServerGreeting;
use super::lines::*;
use super::pop3::has_keyword;
use crate::core::service::Protocol;
use crate::core::{Error, Result};

/// One SMTP reply (RFC 5321 §4.2): the code and each line's text.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines
            .iter()
            .map(|l| format!("{} {l}", self.code))
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

/// Splits `250-TEXT` / `250 TEXT` / `250`: (code, last line?, text).
pub(super) fn smtp_line(line: &str) -> Option<(u16, bool, &str)> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&b[0]) {
        return None;
    }
    let code = line[..3].parse().ok()?;
    match b.get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

/// Reads one (possibly multi-line) reply: it ends at the first line whose code is followed
/// by a space or nothing (T-STL-16). All lines must carry the same code.
pub(super) async fn smtp_reply<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
    step: &str,
) -> Result<Reply> {
    r.begin(step);
    let mut reply: Option<Reply> = None;
    loop {
        let line = r.line().await?;
        let Some((code, last, text)) = smtp_line(&line) else {
            return Err(Error::Protocol(format!(
                "{step}: not an SMTP reply line: {}",
                quote(&line)
            )));
        };
        let reply = reply.get_or_insert_with(|| Reply {
            code,
            lines: Vec::new(),
        });
        if reply.code != code {
            return Err(Error::Protocol(format!(
                "{step}: reply code changes from {} to {code} inside one reply",
                reply.code
            )));
        }
        reply.lines.push(text.to_string());
        if last {
            break;
        }
    }
    Ok(reply.unwrap_or(Reply {
        code: 0,
        lines: Vec::new(),
    }))
}

pub(super) fn check_smtp_greeting(reply: &Reply) -> Result<()> {
    match reply.code {
        220 => Ok(()),
        // 554: "no SMTP service here" (RFC 5321 §3.1); 421: closing.
        421 | 554 => Err(Error::ConnectionClosed(format!(
            "the SMTP server refused the connection: {}",
            quote(&reply.text())
        ))),
        _ => Err(Error::Protocol(format!(
            "not an SMTP greeting: {}",
            quote(&reply.text())
        ))),
    }
}

pub(super) async fn smtp_ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
    client_name: &str,
) -> Result<Vec<String>> {
    r.send(&format!("EHLO {client_name}")).await?;
    let reply = smtp_reply(r, "SMTP EHLO").await?;
    if reply.code != 250 {
        return Err(Error::Protocol(format!(
            "the SMTP server refused EHLO: {}",
            quote(&reply.text())
        )));
    }
    // The first line is the server's domain and greeting text, not an extension.
    Ok(reply.lines.into_iter().skip(1).collect())
}

pub(super) async fn smtp_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
    client_name: &str,
) -> Result<String> {
    let greeting = smtp_reply(r, "SMTP greeting").await?;
    check_smtp_greeting(&greeting)?;
    let caps = smtp_ehlo(r, client_name).await?;
    if !has_keyword(&caps, "STARTTLS") {
        return Err(Error::Protocol(format!(
            "the SMTP server does not offer STARTTLS (extensions: {}); not continuing without TLS (RFC 3207 §6)",
            caps.join(", ")
        )));
    }
    r.send("STARTTLS").await?;
    let answer = smtp_reply(r, "SMTP STARTTLS").await?;
    if answer.code != 220 {
        return Err(Error::Protocol(format!(
            "the SMTP server refused STARTTLS: {}",
            quote(&answer.text())
        )));
    }
    r.ensure_drained(&answer.text())?;
    Ok(greeting
        .lines
        .iter()
        .map(|l| format!("220 {l}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

pub(super) async fn smtp_after<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
    implicit: Option<String>,
    client_name: &str,
) -> Result<ServerGreeting> {
    let greeting = match implicit {
        Some(first) => {
            // Finish a multi-line greeting whose first line is already read.
            let (code, mut last, text) = smtp_line(&first).ok_or_else(|| {
                Error::Protocol(format!("not an SMTP greeting: {}", quote(&first)))
            })?;
            let mut reply = Reply {
                code,
                lines: vec![text.to_string()],
            };
            while !last {
                let line = r.line().await?;
                let (_, l, t) = smtp_line(&line)
                    .filter(|(c, ..)| *c == code)
                    .ok_or_else(|| {
                        Error::Protocol(format!(
                            "SMTP greeting: bad continuation line {}",
                            quote(&line)
                        ))
                    })?;
                reply.lines.push(t.to_string());
                last = l;
            }
            check_smtp_greeting(&reply)?;
            reply
                .lines
                .iter()
                .map(|l| format!("{code} {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        None => String::new(),
    };
    // All pre-TLS knowledge is discarded (RFC 3207 §4.2); STARTTLS is never sent again
    // even if listed (T-STL-14).
    let capabilities = smtp_ehlo(r, client_name).await?;
    Ok(ServerGreeting {
        protocol: Protocol::Smtp,
        greeting,
        capabilities,
        leftover: Vec::new(),
    })
}
