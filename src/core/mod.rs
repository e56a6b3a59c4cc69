//! The safe core: every DNS, TLS and naming decision lives here. No raw pointers, no C types.

pub mod error;
pub mod identity;
pub mod trust;
pub mod verifier;

pub use error::{Error, Result};
pub mod address;
pub mod anchors;
pub mod answer_cache;
/// cbindgen:ignore
pub mod audit;
pub mod authenticity;
/// cbindgen:ignore
pub mod autoconfig;
pub mod binding;
pub mod config;
pub mod connect;
pub mod context;
pub mod dane;
pub mod discover;
pub mod fuzzing;
pub mod happy_eyeballs;
pub mod history;
pub mod hosts;
pub mod order;
pub mod policy;
pub mod requests;
pub mod resolver;
pub mod runtime;
pub mod service;
pub mod starttls;
