//! Certificates: what a server's certificate must name (reference identities), what it does
//! name (presented identities) and the match, the certificate verifier, the CA store, and
//! DANE.

pub mod ca_store;
pub mod dane;
pub mod identity;
pub mod verifier;
