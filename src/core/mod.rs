//! The safe core: every DNS, TLS and naming decision lives here. No raw pointers, no C types.
//!
//! The folders follow the data: an email address ([`address`]) becomes a mail domain, [`dns`]
//! finds and validates its SRV records, [`cert`] says what a certificate must name, [`tls`]
//! connects and runs the mail protocols' STARTTLS, [`verdict`] decides whether a server is
//! authentic and whether a saved setup may change, and [`account`] adds the discovery sources
//! beyond SRV. [`context`] ties them to a configuration, a runtime and requests.
#![forbid(unsafe_code)]

pub mod error;

pub use error::{Error, Result};
/// cbindgen:ignore
pub mod account;
pub mod address;
pub mod cert;
pub mod config;
pub mod context;
pub mod dns;
pub mod fuzzing;
pub mod name;
pub mod requests;
pub mod runtime;
pub mod service;
pub mod source;
pub mod tls;
pub mod verdict;
