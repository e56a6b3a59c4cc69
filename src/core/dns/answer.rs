//! What one DNS query gives: the records (with the CNAMEs followed), or a proven negative,
//! each with its DNSSEC state.

use std::net::IpAddr;

use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::rr::{Name, RData, Record};

/// The most addresses of one family used for a host: thousands of records must not mean
/// thousands of connection attempts.
pub const MAX_ADDRESSES_PER_FAMILY: usize = 16;

/// The DNSSEC state of one RRset (or of a negative answer), RFC 4033 §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnssecState {
    Secure,
    Insecure,
    Bogus,
    Indeterminate,
    /// The path to the nameservers cannot carry DNSSEC (RFC 8027 roadblock): the answer was
    /// fetched without it and is used as unsigned (docs/design.md §2.2).
    Unavailable,
    /// Addresses only: they came from the hosts file, not from DNS, so DNSSEC says nothing
    /// about them (never secure; DANE does not apply to them).
    HostsFile,
}

impl DnssecState {
    pub fn name(self) -> &'static str {
        match self {
            DnssecState::Secure => "secure",
            DnssecState::Insecure => "insecure",
            DnssecState::Bogus => "bogus",
            DnssecState::Indeterminate => "indeterminate",
            DnssecState::Unavailable => "unavailable",
            DnssecState::HostsFile => "hosts_file",
        }
    }

    pub(crate) fn from_proof(p: Proof) -> Self {
        match p {
            Proof::Secure => DnssecState::Secure,
            Proof::Insecure => DnssecState::Insecure,
            Proof::Bogus => DnssecState::Bogus,
            _ => DnssecState::Indeterminate,
        }
    }

    /// The weaker of two states: a chain is only as strong as its weakest link.
    pub fn and(self, other: Self) -> Self {
        fn rank(s: DnssecState) -> u8 {
            match s {
                DnssecState::Secure => 0,
                DnssecState::Insecure => 1,
                DnssecState::HostsFile => 2,
                DnssecState::Unavailable => 3,
                DnssecState::Indeterminate => 4,
                DnssecState::Bogus => 5,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// A positive answer: the records of the asked type at the end of any CNAME chain.
#[derive(Debug, Clone)]
pub struct Answer {
    pub records: Vec<Record>,
    /// The weakest state over the RRset and every CNAME on the way to it.
    pub dnssec: DnssecState,
    /// The smallest TTL over the RRset and the CNAMEs (hickory clamps secure TTLs to the RRSIG).
    pub ttl: u32,
    /// CNAMEs followed from the asked name (empty when it had none).
    pub cnames: Vec<Name>,
    /// The additional section, with its own proofs.
    pub additionals: Vec<Record>,
}

/// The outcome of one query that the server answered authoritatively.
#[derive(Debug, Clone)]
pub enum Outcome {
    Records(Answer),
    /// The name does not exist.
    NxDomain {
        dnssec: DnssecState,
        ttl: u32,
    },
    /// The name exists without records of this type.
    NoData {
        dnssec: DnssecState,
        ttl: u32,
    },
}

impl Answer {
    /// The A and AAAA addresses of the answer in order, at most [`MAX_ADDRESSES_PER_FAMILY`],
    /// and how many there were.
    pub fn addresses(&self) -> (Vec<IpAddr>, usize) {
        let all = self.records.iter().filter_map(|r| match &r.data {
            RData::A(ip) => Some(IpAddr::V4(ip.0)),
            RData::AAAA(ip) => Some(IpAddr::V6(ip.0)),
            _ => None,
        });
        let total = all.clone().count();
        (all.take(MAX_ADDRESSES_PER_FAMILY).collect(), total)
    }
}
