//! Connections: Happy Eyeballs, the TLS handshake with a pluggable certificate check, and
//! the STARTTLS dialogues of IMAP, POP3 and SMTP.

pub mod connect;
pub mod happy_eyeballs;
pub mod starttls;
