//! mailsrv: find a user's mail servers through DNS SRV (RFC 6186, RFC 8314), judge whether the
//! answer is authentic, and connect with the right SNI and certificate identity checks.
//!
//! `core` is safe Rust and makes every decision; `ffi` is the thin C layer over it.

/// cbindgen:ignore
pub mod audit;
pub mod core;
pub mod ffi;
pub mod sys;
