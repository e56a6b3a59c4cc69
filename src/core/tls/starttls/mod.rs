//! What a mail client says before and right after TLS (docs/design.md §2.10): the strict,
//! injection-safe STARTTLS dialogues of IMAP (RFC 9051 §6.2.1), POP3 (RFC 2595 §4) and SMTP
//! submission (RFC 3207), and the first exchange over TLS (greeting, capabilities).
//!
//! Rules enforced here:
//! * A missing STARTTLS/STLS capability, a refusal (NO, BAD, -ERR, 454, ...), a PREAUTH
//!   greeting on a plain port (RFC 9051 §7.1.4) or an early close is an error: there is no
//!   way to continue in plaintext (docs/design.md §6).
//! * Input is read line by line from a buffer; once the go-ahead line (tagged OK, `+OK`,
//!   `220`) is parsed, any byte already received after it is attacker-controlled plaintext
//!   (docs/design.md §2.10) and the upgrade fails with [`Error::Protocol`]; those bytes are
//!   never handed to TLS.
//! * Lines are bounded ([`MAX_LINE`]) and so is each reply ([`MAX_REPLY`]); bytes other
//!   than printable UTF-8 and TAB, or a CR inside a line, are a protocol error.
//! * Every read and write runs under the caller's deadline ([`Error::Timeout`]).
//! * Only fixed commands and a validated EHLO name are ever sent; never credentials.
//!   Pre-TLS capabilities are discarded: [`after_tls`] asks again over TLS.

mod imap;
mod lines;
mod pop3;
mod smtp;
#[cfg(test)]
mod tests;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::core::service::{Protocol, Security};
use crate::core::{Error, Result};
use imap::{imap_after, imap_upgrade};
use lines::{Lines, quote};
use pop3::{pop3_after, pop3_ok, pop3_upgrade};
use smtp::{smtp_after, smtp_line, smtp_upgrade};

/// Longest line accepted from a server, terminator included.
pub const MAX_LINE: usize = 8 * 1024;
/// Most bytes accepted for one reply (a greeting, a capability list, an EHLO answer).
pub const MAX_REPLY: usize = 64 * 1024;
/// Read granularity. Over-reading is harmless: leftovers are checked, never dropped.
const CHUNK: usize = 4096;

/// What the server said over TLS, before the application takes over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerGreeting {
    /// The protocol spoken (for implicit TLS: recognised from the greeting).
    pub protocol: Protocol,
    /// The greeting read over TLS (implicit TLS; SMTP multi-line greetings joined with
    /// `\n`). Empty after STARTTLS: there the only greeting came before TLS.
    pub greeting: String,
    /// The post-TLS capabilities: IMAP `CAPABILITY` atoms, POP3 `CAPA` lines, or the SMTP
    /// EHLO keyword lines (without the first, domain line). Pre-TLS ones are never here.
    pub capabilities: Vec<String>,
    /// Application bytes the server sent after the capability reply, already read from
    /// TLS. They belong to the application and come first in its stream.
    pub leftover: Vec<u8>,
}

/// The EHLO argument: a domain or an address literal such as `[192.0.2.1]` or
/// `[IPv6:2001:db8::1]`. Checked only for what could break the command line: 1 to 255
/// printable ASCII characters without spaces.
pub fn check_client_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidArg(format!(
            "client name {name:?} is not usable in EHLO (1 to 255 printable ASCII characters, no spaces)"
        )));
    }
    Ok(())
}

/// The EHLO argument when the caller names none: a fixed address literal, as Thunderbird
/// sends. The local end's own address would tell every submission server (and anyone who
/// reads its logs or `Received:` headers) the client's LAN address.
pub const DEFAULT_CLIENT_NAME: &str = "[127.0.0.1]";

/// Runs the pre-TLS dialogue of a STARTTLS mode on a fresh plaintext connection, up to and
/// including the server's go-ahead (IMAP tagged OK, POP3 `+OK`, SMTP `220`). On success
/// the next bytes on `stream` belong to the TLS handshake; nothing beyond the go-ahead was
/// consumed and nothing was left unread (a leftover byte is an error, T-STL-05).
///
/// Returns the plaintext greeting (unauthenticated: informational only). Implicit TLS has
/// no pre-TLS dialogue and returns an empty string at once.
///
/// `client_name` is the SMTP EHLO argument (see [`check_client_name`]); IMAP and POP3
/// ignore it. Errors: [`Error::Protocol`] (no STARTTLS capability, refusal, PREAUTH on a
/// plain port, garbage, over-long lines, injection), [`Error::ConnectionClosed`] (early
/// close, BYE/-ERR/554 greetings), [`Error::Timeout`] (deadline), [`Error::InvalidArg`]
/// (bad client name).
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    security: Security,
    client_name: &str,
    deadline: Instant,
) -> Result<String> {
    let mut r = Lines::new(stream, deadline);
    match security {
        Security::ImplicitTls => Ok(String::new()),
        Security::StartTlsImap => imap_upgrade(&mut r).await,
        Security::StartTlsPop3 => pop3_upgrade(&mut r).await,
        Security::StartTlsSmtp => {
            check_client_name(client_name)?;
            smtp_upgrade(&mut r, client_name).await
        }
    }
}

/// The first exchange over TLS. Implicit TLS reads the greeting first (T-STL-07,
/// T-STL-15) and recognises the protocol from it (`* ` IMAP, `+OK`/`-ERR` POP3, a
/// three-digit code SMTP); then capabilities are asked again: IMAP `CAPABILITY` (skipped
/// when the greeting over TLS carried a CAPABILITY code), POP3 `CAPA`, SMTP `EHLO`
/// (T-STL-06, T-STL-11). Never STARTTLS, never credentials.
/// `expected`: for implicit TLS, the protocol the greeting must be in (a server of another
/// protocol is an error before anything is sent); `None` accepts any of the three.
pub async fn after_tls<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    security: Security,
    expected: Option<Protocol>,
    client_name: &str,
    deadline: Instant,
) -> Result<ServerGreeting> {
    let mut r = Lines::new(stream, deadline);
    let (protocol, implicit) = match security.protocol() {
        Some(p) => (p, None),
        None => {
            r.begin("greeting over TLS");
            let first = r.line().await?;
            let found = detect(&first)?;
            if let Some(want) = expected.filter(|&w| w != found) {
                return Err(Error::Protocol(format!(
                    "expected a {want} server, but the greeting over TLS is {found}: {}",
                    quote(&first)
                )));
            }
            (found, Some(first))
        }
    };
    let mut greeting = match protocol {
        Protocol::Imap => imap_after(&mut r, implicit).await?,
        Protocol::Pop3 => pop3_after(&mut r, implicit).await?,
        Protocol::Smtp => {
            check_client_name(client_name)?;
            smtp_after(&mut r, implicit, client_name).await?
        }
    };
    greeting.leftover = std::mem::take(&mut r.buf);
    Ok(greeting)
}

/// The protocol of an implicit-TLS greeting line.
fn detect(first: &str) -> Result<Protocol> {
    if first.starts_with("* ") {
        Ok(Protocol::Imap)
    } else if pop3_ok(first).is_some() {
        Ok(Protocol::Pop3)
    } else if smtp_line(first).is_some() {
        Ok(Protocol::Smtp)
    } else {
        Err(Error::Protocol(format!(
            "the greeting over TLS is neither IMAP, POP3 nor SMTP: {}",
            quote(first)
        )))
    }
}
