//! IMAP (RFC 9051): STARTTLS (§6.2.1) and CAPABILITY over TLS.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout_at;

use super::ServerGreeting;
use super::lines::*;
use crate::core::service::Protocol;
use crate::core::{Error, Result};

/// The parts of an IMAP response line that matter before login.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ImapLine {
    /// `* OK|PREAUTH|BYE|NO|BAD ...`, with the response code's CAPABILITY list if any.
    Status {
        kind: String,
        capabilities: Option<Vec<String>>,
    },
    /// `* CAPABILITY ...`
    Capability(Vec<String>),
    /// Any other untagged response (`* LIST`, `* 3 EXISTS`, ...).
    OtherUntagged,
    /// `+ ...`
    Continuation,
    /// `<tag> OK|NO|BAD ...`
    Tagged {
        tag: String,
        kind: String,
        capabilities: Option<Vec<String>>,
    },
}

/// `[CAPABILITY a b c] text` → `[a, b, c]`.
pub(super) fn capability_code(rest: &str) -> Option<Vec<String>> {
    let inner = rest.strip_prefix('[')?;
    let end = inner.find(']')?;
    let mut words = inner[..end].split(' ').filter(|w| !w.is_empty());
    let first = words.next()?;
    first
        .eq_ignore_ascii_case("CAPABILITY")
        .then(|| words.map(str::to_string).collect())
}

pub(super) fn parse_imap(line: &str) -> Option<ImapLine> {
    if line == "+" || line.starts_with("+ ") {
        return Some(ImapLine::Continuation);
    }
    let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
    if head.is_empty() {
        return None;
    }
    let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
    let upper = word.to_ascii_uppercase();
    if head == "*" {
        return Some(match upper.as_str() {
            "OK" | "NO" | "BAD" | "BYE" | "PREAUTH" => ImapLine::Status {
                capabilities: if upper == "OK" || upper == "PREAUTH" {
                    capability_code(after)
                } else {
                    None
                },
                kind: upper,
            },
            "CAPABILITY" => ImapLine::Capability(
                after
                    .split(' ')
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            "" => return None,
            _ => ImapLine::OtherUntagged,
        });
    }
    // A tag is an astring without `+` (RFC 9051 §9); ours are `a1`..`a3`.
    if !head
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b))
    {
        return None;
    }
    match upper.as_str() {
        "OK" | "NO" | "BAD" => Some(ImapLine::Tagged {
            tag: head.to_string(),
            capabilities: (upper == "OK").then(|| capability_code(after)).flatten(),
            kind: upper,
        }),
        _ => None,
    }
}

/// `... {12}` or `... {12+}` at the end of a line: the byte count of a literal that follows.
pub(super) fn literal_len(line: &str) -> Option<usize> {
    let open = line.rfind('{')?;
    let inner = line[open + 1..].strip_suffix('}')?;
    let digits = inner.strip_suffix('+').unwrap_or(inner);
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Ten digits always fit in a u64; a count beyond usize (32-bit targets) is still a
    // literal, just one bigger than any reply budget.
    let n: u64 = digits.parse().ok()?;
    Some(usize::try_from(n).unwrap_or(usize::MAX))
}

/// One IMAP response: a line, plus any literals it carries (skipped, counted against the
/// reply budget). Returns the first line only: literals matter to no pre-login decision.
/// A tagged completion never carries a literal (RFC 9051 §7.1: resp-text is plain text):
/// its `{n}` is not skipped here, and [`imap_command`] refuses it.
pub(super) async fn imap_response<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
) -> Result<String> {
    let first = r.line().await?;
    if matches!(parse_imap(&first), Some(ImapLine::Tagged { .. })) {
        return Ok(first);
    }
    let mut line = first.clone();
    while let Some(n) = literal_len(&line) {
        r.skip(n).await?;
        line = r.line().await?;
    }
    Ok(first)
}

pub(super) fn has_atom(caps: &[String], atom: &str) -> bool {
    caps.iter().any(|c| c.eq_ignore_ascii_case(atom))
}

/// Judges an IMAP greeting line; returns its CAPABILITY code, if any. PREAUTH is only
/// legitimate over TLS (`protected`).
pub(super) fn imap_greeting(line: &str, protected: bool) -> Result<Option<Vec<String>>> {
    match parse_imap(line) {
        Some(ImapLine::Status { kind, capabilities }) => match kind.as_str() {
            "OK" => Ok(capabilities),
            "PREAUTH" if protected => Ok(capabilities),
            "PREAUTH" => Err(Error::Protocol(format!(
                "IMAP PREAUTH greeting on a connection without TLS; closing (RFC 9051 §7.1.4): {}",
                quote(line)
            ))),
            "BYE" => Err(Error::ConnectionClosed(format!(
                "the IMAP server refused the connection: {}",
                quote(line)
            ))),
            _ => Err(Error::Protocol(format!(
                "not an IMAP greeting: {}",
                quote(line)
            ))),
        },
        _ => Err(Error::Protocol(format!(
            "not an IMAP greeting: {}",
            quote(line)
        ))),
    }
}

/// Sends `<tag> <command>` and reads up to the tagged completion. Untagged responses other
/// than CAPABILITY and BYE are ignored (RFC 9051 §11.3, T-STL-08). Returns the capability
/// list seen (untagged or in the OK's response code) and the completion line.
pub(super) async fn imap_command<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
    tag: &str,
    command: &str,
) -> Result<(Option<Vec<String>>, String)> {
    r.send(&format!("{tag} {command}")).await?;
    r.begin(format!("IMAP {command}"));
    let mut caps = None;
    loop {
        let line = imap_response(r).await?;
        match parse_imap(&line) {
            Some(ImapLine::Capability(c)) => caps = Some(c),
            Some(ImapLine::Status { kind, .. }) if kind == "BYE" => {
                return Err(Error::ConnectionClosed(format!(
                    "the IMAP server is closing the connection during {command}: {}",
                    quote(&line)
                )));
            }
            Some(ImapLine::Status { .. } | ImapLine::OtherUntagged) => {}
            Some(ImapLine::Tagged {
                tag: t,
                kind,
                capabilities,
            }) if t == tag => {
                if kind != "OK" {
                    return Err(Error::Protocol(format!(
                        "the IMAP server refused {command}: {}",
                        quote(&line)
                    )));
                }
                if literal_len(&line).is_some() {
                    // On the STARTTLS go-ahead, the literal's bytes would be plaintext read
                    // as if they were part of the dialogue: refused like any injection.
                    return Err(Error::Protocol(format!(
                        "possible command injection: the IMAP completion of {command} announces a literal: {}",
                        quote(&line)
                    )));
                }
                return Ok((capabilities.or(caps), line));
            }
            Some(ImapLine::Tagged { .. } | ImapLine::Continuation) | None => {
                return Err(Error::Protocol(format!(
                    "unexpected IMAP response to {command}: {}",
                    quote(&line)
                )));
            }
        }
    }
}

pub(super) async fn imap_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
) -> Result<String> {
    r.begin("IMAP greeting");
    let greeting = imap_response(r).await?;
    let caps = match imap_greeting(&greeting, false) {
        Ok(caps) => caps,
        Err(e) => {
            // RFC 9051 §7.1.4 (PREAUTH): close; for the other cases closing is just tidy.
            let _ = timeout_at(r.deadline, r.io.shutdown()).await;
            return Err(e);
        }
    };
    let caps = match caps {
        Some(c) => c,
        None => imap_command(r, "a1", "CAPABILITY")
            .await?
            .0
            .unwrap_or_default(),
    };
    if !has_atom(&caps, "STARTTLS") {
        return Err(Error::Protocol(format!(
            "the IMAP server does not offer STARTTLS (capabilities: {}); not continuing without TLS",
            caps.join(" ")
        )));
    }
    let (_, ok) = imap_command(r, "a2", "STARTTLS").await?;
    r.ensure_drained(&ok)?;
    Ok(greeting)
}

pub(super) async fn imap_after<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut Lines<'_, S>,
    implicit: Option<String>,
) -> Result<ServerGreeting> {
    let (greeting, caps, tag) = match implicit {
        Some(first) => {
            // The greeting line is already read; skip any literal it announces.
            let mut line = first.clone();
            while let Some(n) = literal_len(&line) {
                r.skip(n).await?;
                line = r.line().await?;
            }
            let caps = imap_greeting(&first, true)?;
            (first, caps, "a1")
        }
        None => (String::new(), None, "a3"),
    };
    let capabilities = match caps {
        // A CAPABILITY code received over TLS is authentic: no round trip needed.
        Some(c) => c,
        None => imap_command(r, tag, "CAPABILITY")
            .await?
            .0
            .unwrap_or_default(),
    };
    Ok(ServerGreeting {
        protocol: Protocol::Imap,
        greeting,
        capabilities,
        leftover: Vec::new(),
    })
}
