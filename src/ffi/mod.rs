//! The C ABI: a thin, mechanical layer over `core`. Each export checks its arguments, calls
//! the core, maps the error to a status and writes its outputs; it decides nothing about DNS,
//! TLS or names. Every body runs inside `ffi_boundary!`.

#![allow(non_camel_case_types)]

pub mod account;
pub mod authenticity;
pub mod autoconfig;
pub mod autodiscover;
pub mod binding;
pub(crate) mod boundary;
pub mod cert;
pub mod config;
pub mod ctx;
pub mod discovery;
pub(crate) mod errbuf;
pub mod history;
pub mod identity;
pub mod request;
pub mod rustls_verifier;
pub mod status;
pub mod stream;
pub(crate) mod strings;
pub use strings::mailsrv_string_free;
pub mod version;
