//! Verdicts: whether a server is authentic (and the binding its password connection must
//! use), and whether a saved setup may change given the observation history.

pub mod authenticity;
pub mod binding;
pub mod change;
pub mod history;

/// What the authenticity check said about the fresh answer's first endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// DNSSEC, DANE, or the probe and the reconnect both proved it.
    Authentic,
    /// Not proven: only the user may accept it, and only once it has persisted.
    Unverified,
    /// Proven wrong (bogus DNSSEC, a secure TLSA set no certificate matches).
    Rejected,
}

impl Verdict {
    /// The lower-case name used in JSON and the CLI: `authentic`, `unverified`, `rejected`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Authentic => "authentic",
            Verdict::Unverified => "unverified",
            Verdict::Rejected => "rejected",
        }
    }
}
