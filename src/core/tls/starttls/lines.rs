//! The bounded line reader every dialogue uses, with the injection check after a go-ahead.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use super::{CHUNK, MAX_LINE, MAX_REPLY};
use crate::core::{Error, Result};

/// `used + n` when it stays within [`MAX_REPLY`]. Checked, so that a huge count (an IMAP
/// literal of 4 GB announced to a 32-bit client) cannot wrap around the budget.
pub(super) fn within_budget(used: usize, n: usize) -> Option<usize> {
    used.checked_add(n).filter(|&total| total <= MAX_REPLY)
}

/// Buffered, bounded line reading under a deadline. Bytes are only ever consumed from
/// `buf`, so whatever the server sent beyond the last parsed line stays visible.
pub(super) struct Lines<'a, S> {
    pub(super) io: &'a mut S,
    pub(super) buf: Vec<u8>,
    pub(super) deadline: Instant,
    /// Bytes consumed since the current reply began.
    pub(super) reply_bytes: usize,
    /// What is being done, for messages ("IMAP greeting", "SMTP EHLO reply").
    pub(super) step: String,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Lines<'a, S> {
    pub(super) fn new(io: &'a mut S, deadline: Instant) -> Self {
        Lines {
            io,
            buf: Vec::new(),
            deadline,
            reply_bytes: 0,
            step: String::new(),
        }
    }

    /// Starts a new reply: sets the step name and resets the reply budget.
    pub(super) fn begin(&mut self, step: impl Into<String>) {
        self.step = step.into();
        self.reply_bytes = 0;
    }

    pub(super) fn charge(&mut self, n: usize) -> Result<()> {
        self.reply_bytes = within_budget(self.reply_bytes, n).ok_or_else(|| {
            Error::Protocol(format!(
                "{}: reply longer than {MAX_REPLY} bytes",
                self.step
            ))
        })?;
        Ok(())
    }

    /// Reads more bytes into the buffer; EOF is [`Error::ConnectionClosed`].
    pub(super) async fn fill(&mut self) -> Result<()> {
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
    pub(super) async fn line(&mut self) -> Result<String> {
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
    pub(super) async fn skip(&mut self, n: usize) -> Result<()> {
        self.charge(n)?;
        while self.buf.len() < n {
            self.fill().await?;
            // Literals are counted against the reply budget, so the buffer stays bounded.
        }
        self.buf.drain(..n);
        Ok(())
    }

    /// Sends one command line (CRLF added).
    pub(super) async fn send(&mut self, command: &str) -> Result<()> {
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
    pub(super) fn ensure_drained(&self, go_ahead: &str) -> Result<()> {
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
pub(super) fn verb(command: &str) -> &str {
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

pub(super) fn io_error(step: &str, e: &std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
            Error::ConnectionClosed(format!("{step}: {e}"))
        }
        _ => Error::Io(format!("{step}: {e}")),
    }
}

/// Shortens server text for messages.
pub(super) fn quote(line: &str) -> String {
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
