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

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use crate::core::{Error, Result};

/// Longest line accepted from a server, terminator included.
pub const MAX_LINE: usize = 8 * 1024;
/// Most bytes accepted for one reply (a greeting, a capability list, an EHLO answer).
pub const MAX_REPLY: usize = 64 * 1024;
/// Read granularity. Over-reading is harmless: leftovers are checked, never dropped.
const CHUNK: usize = 4096;

/// How TLS is reached on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Security {
    /// TLS from the first byte (993, 995, 465; RFC 8314 §3). The protocol (IMAP, POP3,
    /// SMTP) is recognised from the greeting read over TLS.
    ImplicitTls,
    /// IMAP `STARTTLS` (RFC 9051 §6.2.1).
    StartTlsImap,
    /// POP3 `STLS` (RFC 2595 §4).
    StartTlsPop3,
    /// SMTP `STARTTLS` (RFC 3207).
    StartTlsSmtp,
}

impl Security {
    /// The protocol a STARTTLS mode speaks; `None` for implicit TLS.
    pub fn protocol(self) -> Option<MailProtocol> {
        match self {
            Security::ImplicitTls => None,
            Security::StartTlsImap => Some(MailProtocol::Imap),
            Security::StartTlsPop3 => Some(MailProtocol::Pop3),
            Security::StartTlsSmtp => Some(MailProtocol::Smtp),
        }
    }

    /// True for the three STARTTLS modes.
    pub fn is_starttls(self) -> bool {
        self != Security::ImplicitTls
    }

    /// The stable text name used in JSON and binding texts: `implicit-tls`,
    /// `starttls-imap`, `starttls-pop3`, `starttls-smtp`.
    pub fn name(self) -> &'static str {
        match self {
            Security::ImplicitTls => "implicit-tls",
            Security::StartTlsImap => "starttls-imap",
            Security::StartTlsPop3 => "starttls-pop3",
            Security::StartTlsSmtp => "starttls-smtp",
        }
    }
}

/// The application protocol on a mail connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MailProtocol {
    Imap,
    Pop3,
    Smtp,
}

impl MailProtocol {
    pub fn name(self) -> &'static str {
        match self {
            MailProtocol::Imap => "IMAP",
            MailProtocol::Pop3 => "POP3",
            MailProtocol::Smtp => "SMTP",
        }
    }

    /// The IANA-registered TLS ALPN protocol id (RFC 7301), where one exists: `imap` and
    /// `pop3` are registered, SMTP has none.
    pub fn alpn_id(self) -> Option<&'static [u8]> {
        match self {
            MailProtocol::Imap => Some(b"imap"),
            MailProtocol::Pop3 => Some(b"pop3"),
            MailProtocol::Smtp => None,
        }
    }
}

impl fmt::Display for MailProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server said over TLS, before the application takes over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerGreeting {
    /// The protocol spoken (for implicit TLS: recognised from the greeting).
    pub protocol: MailProtocol,
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

/// The default EHLO argument: the address literal of the local end (RFC 5321 §4.1.4).
pub fn address_literal(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => format!("[{v4}]"),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("[{v4}]"),
            None => format!("[IPv6:{v6}]"),
        },
    }
}

// ------------------------------------------------------------------ line reader

/// `used + n` when it stays within [`MAX_REPLY`]. Checked, so that a huge count (an IMAP
/// literal of 4 GB announced to a 32-bit client) cannot wrap around the budget.
fn within_budget(used: usize, n: usize) -> Option<usize> {
    used.checked_add(n).filter(|&total| total <= MAX_REPLY)
}

/// Buffered, bounded line reading under a deadline. Bytes are only ever consumed from
/// `buf`, so whatever the server sent beyond the last parsed line stays visible.
struct Lines<'a, S> {
    io: &'a mut S,
    buf: Vec<u8>,
    deadline: Instant,
    /// Bytes consumed since the current reply began.
    reply_bytes: usize,
    /// What is being done, for messages ("IMAP greeting", "SMTP EHLO reply").
    step: String,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Lines<'a, S> {
    fn new(io: &'a mut S, deadline: Instant) -> Self {
        Lines {
            io,
            buf: Vec::new(),
            deadline,
            reply_bytes: 0,
            step: String::new(),
        }
    }

    /// Starts a new reply: sets the step name and resets the reply budget.
    fn begin(&mut self, step: impl Into<String>) {
        self.step = step.into();
        self.reply_bytes = 0;
    }

    fn charge(&mut self, n: usize) -> Result<()> {
        self.reply_bytes = within_budget(self.reply_bytes, n).ok_or_else(|| {
            Error::Protocol(format!(
                "{}: reply longer than {MAX_REPLY} bytes",
                self.step
            ))
        })?;
        Ok(())
    }

    /// Reads more bytes into the buffer; EOF is [`Error::ConnectionClosed`].
    async fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; CHUNK];
        let n = match timeout_at(self.deadline, self.io.read(&mut chunk)).await {
            Err(_) => {
                return Err(Error::Timeout(format!(
                    "{}: no answer from the server before the deadline",
                    self.step
                )));
            }
            Ok(Err(e)) => return Err(io_error(&self.step, &e)),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return Err(Error::ConnectionClosed(format!(
                "{}: the server closed the connection",
                self.step
            )));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// One line without its terminator (LF, optionally preceded by CR).
    async fn line(&mut self) -> Result<String> {
        let mut scanned = 0;
        let end = loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                break scanned + i;
            }
            scanned = self.buf.len();
            if scanned >= MAX_LINE {
                return Err(Error::Protocol(format!(
                    "{}: line longer than {MAX_LINE} bytes",
                    self.step
                )));
            }
            self.fill().await?;
        };
        if end + 1 > MAX_LINE {
            return Err(Error::Protocol(format!(
                "{}: line longer than {MAX_LINE} bytes",
                self.step
            )));
        }
        self.charge(end + 1)?;
        let raw: Vec<u8> = self.buf.drain(..=end).collect();
        let body = &raw[..end];
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let text = std::str::from_utf8(body)
            .map_err(|_| Error::Protocol(format!("{}: line is not valid UTF-8", self.step)))?;
        if let Some(c) = text.chars().find(|&c| c.is_control() && c != '\t') {
            return Err(Error::Protocol(format!(
                "{}: control character U+{:04X} in a line",
                self.step, c as u32
            )));
        }
        Ok(text.to_string())
    }

    /// Skips `n` raw bytes (an IMAP literal).
    async fn skip(&mut self, n: usize) -> Result<()> {
        self.charge(n)?;
        while self.buf.len() < n {
            self.fill().await?;
            // Literals are counted against the reply budget, so the buffer stays bounded.
        }
        self.buf.drain(..n);
        Ok(())
    }

    /// Sends one command line (CRLF added).
    async fn send(&mut self, command: &str) -> Result<()> {
        let mut line = Vec::with_capacity(command.len() + 2);
        line.extend_from_slice(command.as_bytes());
        line.extend_from_slice(b"\r\n");
        let write = async {
            self.io.write_all(&line).await?;
            self.io.flush().await
        };
        match timeout_at(self.deadline, write).await {
            Err(_) => Err(Error::Timeout(format!(
                "sending {}: the server did not accept data before the deadline",
                verb(command)
            ))),
            Ok(Err(e)) => Err(io_error(&format!("sending {}", verb(command)), &e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// The go-ahead was the last thing the server may send before the handshake.
    fn ensure_drained(&self, go_ahead: &str) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        Err(Error::Protocol(format!(
            "the server sent {} byte(s) after {go_ahead:?} and before the TLS handshake: \
             possible plaintext injection; not starting TLS",
            self.buf.len()
        )))
    }
}

/// The command verb of a line we send (`a2 STARTTLS` → `STARTTLS`), for messages.
fn verb(command: &str) -> &str {
    let mut words = command.split(' ');
    let first = words.next().unwrap_or(command);
    let tagged =
        first.len() > 1 && first.starts_with('a') && first[1..].bytes().all(|b| b.is_ascii_digit());
    if tagged {
        words.next().unwrap_or(first)
    } else {
        first
    }
}

fn io_error(step: &str, e: &std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
            Error::ConnectionClosed(format!("{step}: {e}"))
        }
        _ => Error::Io(format!("{step}: {e}")),
    }
}

/// Shortens server text for messages.
fn quote(line: &str) -> String {
    const MAX: usize = 200;
    if line.len() <= MAX {
        return format!("{line:?}");
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &line[..end])
}

// ------------------------------------------------------------------ IMAP

/// The parts of an IMAP response line that matter before login.
#[derive(Debug, PartialEq, Eq)]
enum ImapLine {
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
fn capability_code(rest: &str) -> Option<Vec<String>> {
    let inner = rest.strip_prefix('[')?;
    let end = inner.find(']')?;
    let mut words = inner[..end].split(' ').filter(|w| !w.is_empty());
    let first = words.next()?;
    first
        .eq_ignore_ascii_case("CAPABILITY")
        .then(|| words.map(str::to_string).collect())
}

fn parse_imap(line: &str) -> Option<ImapLine> {
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
fn literal_len(line: &str) -> Option<usize> {
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
async fn imap_response<S: AsyncRead + AsyncWrite + Unpin>(r: &mut Lines<'_, S>) -> Result<String> {
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

fn has_atom(caps: &[String], atom: &str) -> bool {
    caps.iter().any(|c| c.eq_ignore_ascii_case(atom))
}

/// Judges an IMAP greeting line; returns its CAPABILITY code, if any. PREAUTH is only
/// legitimate over TLS (`protected`).
fn imap_greeting(line: &str, protected: bool) -> Result<Option<Vec<String>>> {
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
async fn imap_command<S: AsyncRead + AsyncWrite + Unpin>(
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

async fn imap_upgrade<S: AsyncRead + AsyncWrite + Unpin>(r: &mut Lines<'_, S>) -> Result<String> {
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

async fn imap_after<S: AsyncRead + AsyncWrite + Unpin>(
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
        protocol: MailProtocol::Imap,
        greeting,
        capabilities,
        leftover: Vec::new(),
    })
}

// ------------------------------------------------------------------ POP3

fn pop3_ok(line: &str) -> Option<bool> {
    let word = line.split(' ').next().unwrap_or("");
    if word.eq_ignore_ascii_case("+OK") {
        Some(true)
    } else if word.eq_ignore_ascii_case("-ERR") {
        Some(false)
    } else {
        None
    }
}

fn check_pop3_greeting(line: &str) -> Result<()> {
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
async fn pop3_capa<S: AsyncRead + AsyncWrite + Unpin>(
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

fn has_keyword(caps: &[String], keyword: &str) -> bool {
    caps.iter().any(|c| {
        c.split([' ', '\t'])
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    })
}

async fn pop3_upgrade<S: AsyncRead + AsyncWrite + Unpin>(r: &mut Lines<'_, S>) -> Result<String> {
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

async fn pop3_after<S: AsyncRead + AsyncWrite + Unpin>(
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
        protocol: MailProtocol::Pop3,
        greeting,
        capabilities,
        leftover: Vec::new(),
    })
}

// ------------------------------------------------------------------ SMTP

/// One SMTP reply (RFC 5321 §4.2): the code and each line's text.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
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
fn smtp_line(line: &str) -> Option<(u16, bool, &str)> {
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
async fn smtp_reply<S: AsyncRead + AsyncWrite + Unpin>(
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

fn check_smtp_greeting(reply: &Reply) -> Result<()> {
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

async fn smtp_ehlo<S: AsyncRead + AsyncWrite + Unpin>(
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

async fn smtp_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
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

async fn smtp_after<S: AsyncRead + AsyncWrite + Unpin>(
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
        protocol: MailProtocol::Smtp,
        greeting,
        capabilities,
        leftover: Vec::new(),
    })
}

// ------------------------------------------------------------------ entry points

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
    expected: Option<MailProtocol>,
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
        MailProtocol::Imap => imap_after(&mut r, implicit).await?,
        MailProtocol::Pop3 => pop3_after(&mut r, implicit).await?,
        MailProtocol::Smtp => {
            check_client_name(client_name)?;
            smtp_after(&mut r, implicit, client_name).await?
        }
    };
    greeting.leftover = std::mem::take(&mut r.buf);
    Ok(greeting)
}

/// The protocol of an implicit-TLS greeting line.
fn detect(first: &str) -> Result<MailProtocol> {
    if first.starts_with("* ") {
        Ok(MailProtocol::Imap)
    } else if pop3_ok(first).is_some() {
        Ok(MailProtocol::Pop3)
    } else if smtp_line(first).is_some() {
        Ok(MailProtocol::Smtp)
    } else {
        Err(Error::Protocol(format!(
            "the greeting over TLS is neither IMAP, POP3 nor SMTP: {}",
            quote(first)
        )))
    }
}

// ------------------------------------------------------------------ tests

#[cfg(test)]
mod tests {
    //! Scripted servers over an in-memory pipe. Each script is a list of steps: expect a
    //! client line, or send bytes (several `Send`s before an `Expect` arrive together,
    //! like one TCP segment).

    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, duplex};

    enum Step {
        Expect(&'static str),
        Send(&'static str),
        /// Stop answering but keep the connection open until the client closes it.
        Hang,
        Close,
    }
    use Step::*;

    /// Runs `script` on the server end; returns what the client sent and whether the
    /// script ran to its end.
    async fn serve(io: DuplexStream, script: Vec<Step>) -> (Vec<String>, bool) {
        let (rd, mut wr) = tokio::io::split(io);
        let mut rd = BufReader::new(rd);
        let mut seen = Vec::new();
        for step in script {
            match step {
                Expect(want) => {
                    let mut line = String::new();
                    if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return (seen, false);
                    }
                    let line = line.trim_end_matches("\r\n").to_string();
                    let ok = line == want;
                    seen.push(line);
                    if !ok {
                        return (seen, false);
                    }
                }
                Send(s) => {
                    if wr.write_all(s.as_bytes()).await.is_err() {
                        return (seen, false);
                    }
                }
                Hang => {
                    // Say nothing more; return once the client hangs up.
                    let mut sink = Vec::new();
                    let _ = rd.read_to_end(&mut sink).await;
                    return (seen, true);
                }
                Close => return (seen, true),
            }
        }
        // Anything else the client sends after the script is recorded too.
        let mut rest = String::new();
        let _ = tokio::time::timeout(Duration::from_millis(50), rd.read_line(&mut rest)).await;
        if !rest.is_empty() {
            seen.push(rest.trim_end().to_string());
        }
        (seen, true)
    }

    async fn run_upgrade(sec: Security, script: Vec<Step>) -> (Result<String>, Vec<String>) {
        let (mut client, server) = duplex(1 << 20);
        let srv = tokio::spawn(serve(server, script));
        let deadline = Instant::now() + Duration::from_secs(2);
        let res = upgrade(&mut client, sec, "[127.0.0.1]", deadline).await;
        drop(client);
        let (seen, _) = srv.await.unwrap();
        (res, seen)
    }

    async fn run_after(sec: Security, script: Vec<Step>) -> (Result<ServerGreeting>, Vec<String>) {
        let (mut client, server) = duplex(1 << 20);
        let srv = tokio::spawn(serve(server, script));
        let deadline = Instant::now() + Duration::from_secs(2);
        let res = after_tls(&mut client, sec, None, "client.example", deadline).await;
        drop(client);
        let (seen, _) = srv.await.unwrap();
        (res, seen)
    }

    fn never_sent_credentials(seen: &[String]) {
        for l in seen {
            let u = l.to_ascii_uppercase();
            assert!(
                !u.contains("LOGIN") && !u.contains("AUTH") && !u.starts_with("USER"),
                "credential-like command sent: {l}"
            );
        }
    }

    #[tokio::test]
    async fn t_stl_01_imap_greeting_capability_code() {
        let (res, seen) = run_upgrade(
            Security::StartTlsImap,
            vec![
                Send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n"),
                Expect("a2 STARTTLS"),
                Send("a2 OK Begin TLS negotiation now\r\n"),
            ],
        )
        .await;
        assert_eq!(
            res.unwrap(),
            "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready"
        );
        assert_eq!(seen, vec!["a2 STARTTLS"]);
    }

    #[tokio::test]
    async fn t_stl_01_imap_capability_command_when_greeting_lacks_it() {
        let (res, seen) = run_upgrade(
            Security::StartTlsImap,
            vec![
                Send("* OK ready\r\n"),
                Expect("a1 CAPABILITY"),
                Send("* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n"),
                Expect("a2 STARTTLS"),
                Send("a2 OK go\r\n"),
            ],
        )
        .await;
        assert!(res.is_ok(), "{res:?}");
        assert_eq!(seen, vec!["a1 CAPABILITY", "a2 STARTTLS"]);
    }

    #[tokio::test]
    async fn t_stl_02_imap_without_starttls() {
        let (res, seen) = run_upgrade(
            Security::StartTlsImap,
            vec![
                Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"),
                Close,
            ],
        )
        .await;
        assert!(
            matches!(&res, Err(Error::Protocol(d)) if d.contains("STARTTLS")),
            "{res:?}"
        );
        assert!(seen.is_empty(), "sent {seen:?}");
        never_sent_credentials(&seen);
    }

    #[tokio::test]
    async fn t_stl_03_imap_no_and_bad() {
        for answer in ["a2 NO [UNAVAILABLE] TLS broken\r\n", "a2 BAD no\r\n"] {
            let (res, _) = run_upgrade(
                Security::StartTlsImap,
                vec![
                    Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
                    Expect("a2 STARTTLS"),
                    Send(answer),
                ],
            )
            .await;
            assert!(matches!(res, Err(Error::Protocol(_))), "{answer}: {res:?}");
        }
    }

    #[tokio::test]
    async fn t_stl_04_imap_preauth_on_plain_port() {
        let (res, seen) = run_upgrade(
            Security::StartTlsImap,
            vec![Send("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n")],
        )
        .await;
        assert!(
            matches!(&res, Err(Error::Protocol(d)) if d.contains("PREAUTH")),
            "{res:?}"
        );
        assert!(seen.is_empty(), "sent {seen:?}");
    }

    #[tokio::test]
    async fn t_stl_05_injection_after_go_ahead() {
        let cases: Vec<(Security, Vec<Step>)> = vec![
            (
                Security::StartTlsImap,
                vec![
                    Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
                    Expect("a2 STARTTLS"),
                    Send("a2 OK go\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"),
                ],
            ),
            (
                Security::StartTlsPop3,
                vec![
                    Send("+OK hi\r\n"),
                    Expect("CAPA"),
                    Send("+OK\r\nSTLS\r\n.\r\n"),
                    Expect("STLS"),
                    Send("+OK go\r\n+OK injected\r\n"),
                ],
            ),
            (
                Security::StartTlsSmtp,
                vec![
                    Send("220 mx ESMTP\r\n"),
                    Expect("EHLO [127.0.0.1]"),
                    Send("250-mx\r\n250 STARTTLS\r\n"),
                    Expect("STARTTLS"),
                    Send("220 go\r\n250 injected"),
                ],
            ),
        ];
        for (sec, script) in cases {
            let (res, _) = run_upgrade(sec, script).await;
            assert!(
                matches!(&res, Err(Error::Protocol(d)) if d.contains("injection")),
                "{sec:?}: {res:?}"
            );
        }
    }

    /// Issue 12: `a2 OK Begin TLS {5}` used to be read as announcing a literal, and the five
    /// plaintext bytes after it were swallowed before the handshake.
    #[tokio::test]
    async fn literal_on_the_go_ahead_is_refused() {
        for go_ahead in [
            "a2 OK Begin TLS {5}\r\nHELLO",
            "a2 OK Begin TLS {5+}\r\nHELLO\r\n",
            "a2 OK Begin TLS {5}\r\n",
        ] {
            let (res, seen) = run_upgrade(
                Security::StartTlsImap,
                vec![
                    Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
                    Expect("a2 STARTTLS"),
                    Send(go_ahead),
                ],
            )
            .await;
            assert!(
                matches!(&res, Err(Error::Protocol(d)) if d.contains("injection")),
                "{go_ahead:?}: {res:?}"
            );
            never_sent_credentials(&seen);
        }
    }

    #[test]
    fn reply_budget_cannot_wrap() {
        assert_eq!(within_budget(10, 20), Some(30));
        assert_eq!(within_budget(0, MAX_REPLY), Some(MAX_REPLY));
        assert_eq!(within_budget(1, MAX_REPLY), None);
        assert_eq!(within_budget(10, usize::MAX), None);
        assert_eq!(within_budget(usize::MAX, 1), None);
        assert_eq!(within_budget(MAX_REPLY, usize::MAX - MAX_REPLY + 1), None);
        // u32 limits: what a 32-bit usize would wrap at.
        assert_eq!(within_budget(16, u32::MAX as usize - 15), None);
        assert_eq!(within_budget(u32::MAX as usize, 1), None);
        // A literal bigger than usize on any target still counts as the largest one.
        assert_eq!(
            literal_len("* X {9999999999}"),
            usize::try_from(9_999_999_999u64).ok().or(Some(usize::MAX))
        );
        assert_eq!(literal_len("* X {4294967295}"), Some(u32::MAX as usize));
    }

    #[tokio::test]
    async fn literal_near_the_budget_limit_is_refused() {
        // 10 bytes already read in this reply, then a literal that would wrap a 32-bit sum.
        let (mut client, mut server) = duplex(1 << 16);
        server.write_all(b"0123456789").await.unwrap();
        let mut r = Lines::new(&mut client, Instant::now() + Duration::from_secs(2));
        r.begin("test");
        r.charge(10).unwrap();
        for n in [usize::MAX, usize::MAX - 9, u32::MAX as usize - 9] {
            assert!(
                matches!(r.skip(n).await, Err(Error::Protocol(d)) if d.contains("reply longer")),
                "{n}"
            );
        }
    }

    #[tokio::test]
    async fn t_stl_08_untagged_noise_is_ignored() {
        let (res, _) = run_upgrade(
            Security::StartTlsImap,
            vec![
                Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
                Expect("a2 STARTTLS"),
                Send(
                    "* OK [ALERT] system going down\r\n* LIST () \"/\" {5}\r\nINBOX\r\n* 3 EXISTS\r\na2 OK go\r\n",
                ),
            ],
        )
        .await;
        assert!(res.is_ok(), "{res:?}");
    }

    #[tokio::test]
    async fn t_stl_09_10_pop3() {
        let (res, seen) = run_upgrade(
            Security::StartTlsPop3,
            vec![
                Send("+OK POP3 ready\r\n"),
                Expect("CAPA"),
                Send("+OK\r\nTOP\r\nSTLS\r\nSASL PLAIN\r\n.\r\n"),
                Expect("STLS"),
                Send("+OK Begin TLS\r\n"),
            ],
        )
        .await;
        assert_eq!(res.unwrap(), "+OK POP3 ready");
        assert_eq!(seen, vec!["CAPA", "STLS"]);

        let (res, _) = run_upgrade(
            Security::StartTlsPop3,
            vec![
                Send("+OK POP3 ready\r\n"),
                Expect("CAPA"),
                Send("+OK\r\nSTLS\r\n.\r\n"),
                Expect("STLS"),
                Send("-ERR TLS already active\r\n"),
            ],
        )
        .await;
        assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");

        // No STLS in CAPA, and no CAPA at all.
        for capa in ["+OK\r\nTOP\r\n.\r\n", "-ERR unknown command\r\n"] {
            let (res, seen) = run_upgrade(
                Security::StartTlsPop3,
                vec![Send("+OK hi\r\n"), Expect("CAPA"), Send(capa)],
            )
            .await;
            assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");
            assert_eq!(seen, vec!["CAPA"]);
        }
    }

    #[tokio::test]
    async fn t_stl_11_16_smtp_multiline() {
        let (res, seen) = run_upgrade(
            Security::StartTlsSmtp,
            vec![
                Send("220-mail.example.net ESMTP\r\n220 second line\r\n"),
                Expect("EHLO [127.0.0.1]"),
                Send(
                    "250-mail.example.net\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n",
                ),
                Expect("STARTTLS"),
                Send("220 2.0.0 Ready to start TLS\r\n"),
            ],
        )
        .await;
        assert_eq!(res.unwrap(), "220 mail.example.net ESMTP\n220 second line");
        assert_eq!(seen, vec!["EHLO [127.0.0.1]", "STARTTLS"]);
    }

    #[tokio::test]
    async fn t_stl_12_13_smtp_refusals() {
        let (res, _) = run_upgrade(
            Security::StartTlsSmtp,
            vec![
                Send("220 mx\r\n"),
                Expect("EHLO [127.0.0.1]"),
                Send("250-mx\r\n250 STARTTLS\r\n"),
                Expect("STARTTLS"),
                Send("454 4.7.0 TLS not available\r\n"),
            ],
        )
        .await;
        assert!(
            matches!(&res, Err(Error::Protocol(d)) if d.contains("454")),
            "{res:?}"
        );
        let (res, seen) = run_upgrade(
            Security::StartTlsSmtp,
            vec![
                Send("220 mx\r\n"),
                Expect("EHLO [127.0.0.1]"),
                Send("250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"),
            ],
        )
        .await;
        assert!(
            matches!(&res, Err(Error::Protocol(d)) if d.contains("STARTTLS")),
            "{res:?}"
        );
        assert_eq!(seen, vec!["EHLO [127.0.0.1]"]);
        never_sent_credentials(&seen);
    }

    #[tokio::test]
    async fn smtp_reply_code_must_not_change() {
        let (res, _) = run_upgrade(
            Security::StartTlsSmtp,
            vec![
                Send("220 mx\r\n"),
                Expect("EHLO [127.0.0.1]"),
                Send("250-mx\r\n251 STARTTLS\r\n"),
            ],
        )
        .await;
        assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");
    }

    #[tokio::test]
    async fn garbage_and_overlong_and_closed() {
        let (res, _) = run_upgrade(Security::StartTlsImap, vec![Send("HTTP/1.1 200 OK\r\n")]).await;
        assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");
        let (res, _) = run_upgrade(
            Security::StartTlsSmtp,
            vec![Send("\x16\x03\x01\x00\x05hello\n")],
        )
        .await;
        assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");
        let long: &'static str =
            Box::leak(format!("* OK {}\r\n", "x".repeat(MAX_LINE)).into_boxed_str());
        let (res, _) = run_upgrade(Security::StartTlsImap, vec![Send(long)]).await;
        assert!(
            matches!(&res, Err(Error::Protocol(d)) if d.contains("longer")),
            "{res:?}"
        );
        // A line without end: bounded too.
        let endless: &'static str = Box::leak("* OK ".repeat(MAX_LINE).into_boxed_str());
        let (res, _) = run_upgrade(Security::StartTlsImap, vec![Send(endless), Hang]).await;
        assert!(
            matches!(&res, Err(Error::Protocol(d)) if d.contains("longer")),
            "{res:?}"
        );
        let (res, _) = run_upgrade(Security::StartTlsPop3, vec![Send("+OK hi\r\n"), Close]).await;
        assert!(matches!(res, Err(Error::ConnectionClosed(_))), "{res:?}");
        let (res, _) = run_upgrade(Security::StartTlsImap, vec![Send("* BYE too many\r\n")]).await;
        assert!(matches!(res, Err(Error::ConnectionClosed(_))), "{res:?}");
        // A bare CR inside a line.
        let (res, _) = run_upgrade(Security::StartTlsPop3, vec![Send("+OK a\rb\r\n")]).await;
        assert!(matches!(res, Err(Error::Protocol(_))), "{res:?}");
    }

    #[tokio::test]
    async fn reply_budget_bounds_many_lines() {
        let many: &'static str = Box::leak(
            format!("+OK\r\n{}", "X-CAPABILITY-PADDING-LINE\r\n".repeat(4000)).into_boxed_str(),
        );
        let (res, _) = run_upgrade(
            Security::StartTlsPop3,
            vec![Send("+OK hi\r\n"), Expect("CAPA"), Send(many), Hang],
        )
        .await;
        assert!(
            matches!(&res, Err(Error::Protocol(d)) if d.contains("reply longer")),
            "{res:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn hanging_server_hits_the_deadline() {
        let (res, _) = run_upgrade(Security::StartTlsSmtp, vec![Send("220 mx\r\n"), Hang]).await;
        assert!(matches!(res, Err(Error::Timeout(_))), "{res:?}");
    }

    #[tokio::test]
    async fn bad_client_name_is_refused_before_sending() {
        let (mut client, _server) = duplex(1024);
        let deadline = Instant::now() + Duration::from_secs(1);
        let res = upgrade(
            &mut client,
            Security::StartTlsSmtp,
            "evil\r\nMAIL FROM:<x>",
            deadline,
        )
        .await;
        assert!(matches!(res, Err(Error::InvalidArg(_))), "{res:?}");
    }

    #[tokio::test]
    async fn t_stl_06_imap_capabilities_after_starttls() {
        let (res, seen) = run_after(
            Security::StartTlsImap,
            vec![
                Expect("a3 CAPABILITY"),
                Send("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na3 OK done\r\n"),
            ],
        )
        .await;
        let g = res.unwrap();
        assert_eq!(g.protocol, MailProtocol::Imap);
        assert_eq!(g.greeting, "");
        assert_eq!(g.capabilities, vec!["IMAP4rev1", "AUTH=PLAIN"]);
        assert_eq!(seen, vec!["a3 CAPABILITY"]);
    }

    #[tokio::test]
    async fn t_stl_07_imap_implicit_reads_greeting_first() {
        // The capability code over TLS is used as is: no command at all.
        let (res, seen) = run_after(
            Security::ImplicitTls,
            vec![Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")],
        )
        .await;
        let g = res.unwrap();
        assert_eq!(g.protocol, MailProtocol::Imap);
        assert_eq!(g.capabilities, vec!["IMAP4rev1", "AUTH=PLAIN"]);
        assert!(seen.is_empty(), "{seen:?}");
        // PREAUTH is legitimate over TLS.
        let (res, seen) = run_after(
            Security::ImplicitTls,
            vec![
                Send("* PREAUTH hi\r\n"),
                Expect("a1 CAPABILITY"),
                Send("* CAPABILITY IMAP4rev1\r\na1 OK\r\n"),
            ],
        )
        .await;
        assert!(res.is_ok(), "{res:?}");
        assert_eq!(seen, vec!["a1 CAPABILITY"]);
    }

    #[tokio::test]
    async fn t_stl_09_pop3_after_tls() {
        let (res, seen) = run_after(
            Security::ImplicitTls,
            vec![
                Send("+OK Dovecot ready.\r\n"),
                Expect("CAPA"),
                Send("+OK\r\nUSER\r\nSASL PLAIN\r\n..dot\r\n.\r\n"),
            ],
        )
        .await;
        let g = res.unwrap();
        assert_eq!(g.protocol, MailProtocol::Pop3);
        assert_eq!(g.greeting, "+OK Dovecot ready.");
        assert_eq!(g.capabilities, vec!["USER", "SASL PLAIN", ".dot"]);
        assert_eq!(seen, vec!["CAPA"]);
    }

    #[tokio::test]
    async fn t_stl_14_15_smtp_after_tls() {
        let (res, seen) = run_after(
            Security::ImplicitTls,
            vec![
                Send("220-mx ESMTP\r\n220 ok\r\n"),
                Expect("EHLO client.example"),
                Send("250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"),
            ],
        )
        .await;
        let g = res.unwrap();
        assert_eq!(g.protocol, MailProtocol::Smtp);
        assert_eq!(g.greeting, "220 mx ESMTP\n220 ok");
        assert_eq!(g.capabilities, vec!["STARTTLS", "AUTH PLAIN"]);
        // T-STL-14: STARTTLS still listed, but never sent again.
        assert_eq!(seen, vec!["EHLO client.example"]);
    }

    #[tokio::test]
    async fn leftover_application_bytes_are_kept() {
        let (res, _) = run_after(
            Security::StartTlsPop3,
            vec![Expect("CAPA"), Send("+OK\r\nSTLS\r\n.\r\n+OK extra")],
        )
        .await;
        let g = res.unwrap();
        assert_eq!(g.leftover, b"+OK extra");
    }

    #[test]
    fn parsing_helpers() {
        assert_eq!(literal_len("* LIST () \"/\" {5}"), Some(5));
        assert_eq!(literal_len("* LIST () \"/\" {5+}"), Some(5));
        assert_eq!(literal_len("* OK {x}"), None);
        assert_eq!(smtp_line("250"), Some((250, true, "")));
        assert_eq!(smtp_line("250-A"), Some((250, false, "A")));
        assert_eq!(smtp_line("250 B"), Some((250, true, "B")));
        assert_eq!(smtp_line("25"), None);
        assert_eq!(smtp_line("250xB"), None);
        assert_eq!(detect("* OK hi").unwrap(), MailProtocol::Imap);
        assert_eq!(detect("+OK").unwrap(), MailProtocol::Pop3);
        assert_eq!(detect("220-x").unwrap(), MailProtocol::Smtp);
        assert!(detect("SSH-2.0-OpenSSH").is_err());
        assert_eq!(address_literal("::1".parse().unwrap()), "[IPv6:::1]");
        assert_eq!(address_literal("127.0.0.1".parse().unwrap()), "[127.0.0.1]");
        assert!(check_client_name("a b").is_err());
        assert!(check_client_name("").is_err());
        assert!(check_client_name("client.example").is_ok());
    }
}
