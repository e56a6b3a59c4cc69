//! Server identity for mail: reference identifiers (what the client expects), presented
//! identifiers (what the certificate says) and their matching, per RFC 7817, RFC 9525 and
//! RFC 4985 (docs/conformance.md, groups D–H).
//!
//! The reference list is built from the caller's input alone, never from a certificate
//! (RFC 9525 §6.1.1, T-REF-06). Presented identifiers are read with x509-parser and checked
//! here, because x509-parser only checks UTF-8 and webpki never reads otherName contents.
//!
//! Decisions on the questions the RFCs leave open:
//! * Services: the six RFC 6186 / RFC 8314 services of [`Service`]. `sieve` (RFC 7817 §3,
//!   ManageSieve) is rejected: mailsrv neither discovers nor connects to ManageSieve, and one
//!   service type for discovery and identity keeps the two from drifting apart.
//! * The implicit-TLS / STARTTLS sibling (`_submission` for `_submissions`, `_imap` for
//!   `_imaps`, `_pop3` for `_pop3s`, both ways) only with
//!   [`MatchOptions::accept_sibling_service`] (docs/design.md §2.6, T-REF-05).
//! * Malformed SRVNames: the wrong string type (UTF8String, ...) is ignored (T-SRVID-09); a
//!   broken encoding (length mismatch, trailing bytes, not `[0] EXPLICIT`, empty) or a byte
//!   that no host name can hold (NUL, other control characters, non-ASCII) rejects the whole
//!   certificate (T-SRVID-15: NUL-style truncation tricks must not reach C callers). A
//!   well-encoded value with bad syntax (`imaps.example.com`, `_imaps._tcp.example.com`,
//!   wildcards) is ignored (T-SRVID-06/07/08).
//! * Malformed dNSNames (NUL, non-ASCII, empty labels, trailing dot, partial wildcards) are
//!   ignored and kept as diagnostics (T-DNS-06/14/16/17).
//! * CN-IDs: only with [`MatchOptions::legacy_cn`], only for DNS-ID references, and only when
//!   the certificate has no dNSName, otherName, URI or iPAddress SAN at all (T-CN-01..05;
//!   iPAddress is stricter than RFC 6125 and costs nothing now that RFC 9525 drops CN).
//! * Wildcards: the whole left-most label only, one label, at least two labels after it
//!   (so never `*.tld`, T-DNS-09) and never a public suffix after it (`*.co.uk`,
//!   `*.s3.amazonaws.com`: the Public Suffix List, ICANN and PRIVATE sections), never in
//!   SRV-IDs.

mod matching;
mod presented;
mod reference;
#[cfg(test)]
mod tests;

pub use matching::{MatchKind, MatchOptions, MatchedId, match_identity};
pub use presented::{PresentedId, PresentedIds, SRV_NAME_OID};
pub use reference::{DnsName, ReferenceId, ReferenceIdentity, parse_service, sni_for_host};
