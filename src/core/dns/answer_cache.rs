//! The answer cache of one context (issue 18): positive and negative outcomes of
//! [`Resolver::query`](crate::core::dns::resolver::Resolver::query) kept with their DNSSEC state for their
//! TTL, so that a client refreshing an account within the TTL sends no query.
//!
//! What is kept, and for how long:
//! - SECURE and INSECURE answers, and UNAVAILABLE ones (fetched without DNSSEC on a roadblock)
//!   for at most [`MAX_UNAVAILABLE`], the time a roadblock verdict is trusted;
//! - NXDOMAIN and NODATA for their negative TTL, the smaller of the SOA's TTL and its
//!   MINIMUM field (RFC 2308 §5), with the state of their proof;
//! - never an error: BOGUS, INDETERMINATE, SERVFAIL and timeouts go to the network again;
//! - never an INDETERMINATE answer, nor one with TTL 0.
//!
//! An entry is served with its TTLs counted down and is gone once its TTL has run out, so a
//! change made at the server is seen by the first query after the TTL (RFC 1035 §3.2.1).
//! Memory is bounded: at most [`MAX_ENTRIES`] questions, expired entries dropped first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::{Name, RecordType};

use crate::core::dns::answer::{DnssecState, Outcome};

/// Questions kept per context.
const MAX_ENTRIES: usize = 4096;
/// Longest time any answer is kept, whatever its TTL.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// Longest time an answer fetched without DNSSEC (roadblock) is kept.
const MAX_UNAVAILABLE: Duration = Duration::from_secs(60);

struct Entry {
    outcome: Outcome,
    until: Instant,
}

/// Outcomes by (lower-case name, type).
#[derive(Default)]
pub struct AnswerCache {
    map: Mutex<HashMap<(Name, RecordType), Entry>>,
}

/// The state and TTL of an outcome.
fn state_ttl(o: &Outcome) -> (DnssecState, u32) {
    match o {
        Outcome::Records(a) => (a.dnssec, a.ttl),
        Outcome::NxDomain { dnssec, ttl } | Outcome::NoData { dnssec, ttl } => (*dnssec, *ttl),
    }
}

/// How long `o` may be kept, if at all.
fn keep_for(o: &Outcome) -> Option<Duration> {
    let (state, ttl) = state_ttl(o);
    let cap = match state {
        DnssecState::Secure | DnssecState::Insecure => MAX_TTL,
        DnssecState::Unavailable => MAX_UNAVAILABLE,
        // Hosts-file addresses never come through the resolver; never keep them as DNS.
        DnssecState::Bogus | DnssecState::Indeterminate | DnssecState::HostsFile => return None,
    };
    let keep = Duration::from_secs(u64::from(ttl)).min(cap);
    (!keep.is_zero()).then_some(keep)
}

/// `o` with every TTL lowered to the `left` seconds that remain.
fn counted_down(mut o: Outcome, left: u32) -> Outcome {
    match &mut o {
        Outcome::Records(a) => {
            a.ttl = a.ttl.min(left);
            for r in a.records.iter_mut().chain(a.additionals.iter_mut()) {
                r.ttl = r.ttl.min(left);
            }
        }
        Outcome::NxDomain { ttl, .. } | Outcome::NoData { ttl, .. } => *ttl = (*ttl).min(left),
    }
    o
}

impl AnswerCache {
    fn key(name: &Name, rtype: RecordType) -> (Name, RecordType) {
        (name.to_lowercase(), rtype)
    }

    /// The kept outcome of `name rtype`, if its TTL has not run out at `now`.
    pub fn get(&self, name: &Name, rtype: RecordType, now: Instant) -> Option<Outcome> {
        let mut map = self.map.lock().ok()?;
        let key = Self::key(name, rtype);
        let e = map.get(&key)?;
        if e.until <= now {
            map.remove(&key);
            return None;
        }
        // Whole seconds left, rounded up so that a TTL of 1 is not served as 0.
        let left = e.until - now;
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some(counted_down(
            e.outcome.clone(),
            u32::try_from(secs).unwrap_or(u32::MAX),
        ))
    }

    /// Keeps `o` as the outcome of `name rtype` from `now`, when it may be kept.
    pub fn put(&self, name: &Name, rtype: RecordType, o: &Outcome, now: Instant) {
        let Some(keep) = keep_for(o) else {
            return;
        };
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.until > now);
        }
        if map.len() >= MAX_ENTRIES {
            // Still full of live answers: drop half, in the map's arbitrary order (amortised
            // O(1) per insert; a dropped answer is asked again, nothing more).
            let mut n = 0;
            map.retain(|_, _| {
                n += 1;
                n % 2 == 0
            });
        }
        map.insert(
            Self::key(name, rtype),
            Entry {
                outcome: o.clone(),
                until: now + keep,
            },
        );
    }

    /// Number of questions kept (live or not yet purged).
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dns::answer::Answer;
    use hickory_resolver::proto::rr::{RData, Record, rdata::A};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn records(state: DnssecState, ttl: u32) -> Outcome {
        let n = name("mail.example.net.");
        Outcome::Records(Answer {
            records: vec![Record::from_rdata(n, ttl, RData::A(A::new(127, 0, 0, 1)))],
            dnssec: state,
            ttl,
            cnames: Vec::new(),
            additionals: Vec::new(),
        })
    }

    #[test]
    fn served_within_ttl_counted_down_and_gone_after() {
        let c = AnswerCache::default();
        let t0 = Instant::now();
        let n = name("Mail.Example.NET.");
        c.put(&n, RecordType::A, &records(DnssecState::Secure, 5), t0);
        let got = c
            .get(
                &name("mail.example.net."),
                RecordType::A,
                t0 + Duration::from_secs(2),
            )
            .expect("within the TTL");
        match got {
            Outcome::Records(a) => {
                assert_eq!(a.dnssec, DnssecState::Secure, "the state is kept");
                assert_eq!(a.ttl, 3, "TTL counted down");
                assert_eq!(a.records[0].ttl, 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(c.get(&n, RecordType::AAAA, t0).is_none(), "per type");
        assert!(
            c.get(&n, RecordType::A, t0 + Duration::from_secs(5))
                .is_none(),
            "expired at the TTL"
        );
        assert!(c.is_empty(), "expired entry dropped");
    }

    #[test]
    fn negative_answers_kept_for_their_negative_ttl() {
        let c = AnswerCache::default();
        let t0 = Instant::now();
        let n = name("_pop3s._tcp.example.com.");
        let nx = Outcome::NxDomain {
            dnssec: DnssecState::Secure,
            ttl: 300,
        };
        c.put(&n, RecordType::SRV, &nx, t0);
        match c.get(&n, RecordType::SRV, t0 + Duration::from_secs(299)) {
            Some(Outcome::NxDomain { dnssec, ttl }) => {
                assert_eq!(dnssec, DnssecState::Secure);
                assert_eq!(ttl, 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            c.get(&n, RecordType::SRV, t0 + Duration::from_secs(300))
                .is_none()
        );
    }

    #[test]
    fn bogus_indeterminate_and_zero_ttl_never_kept() {
        let c = AnswerCache::default();
        let t0 = Instant::now();
        let n = name("mail.example.net.");
        for o in [
            records(DnssecState::Bogus, 300),
            records(DnssecState::Indeterminate, 300),
            records(DnssecState::Secure, 0),
            Outcome::NoData {
                dnssec: DnssecState::Bogus,
                ttl: 300,
            },
        ] {
            c.put(&n, RecordType::A, &o, t0);
            assert!(c.get(&n, RecordType::A, t0).is_none(), "{o:?}");
        }
    }

    #[test]
    fn unavailable_kept_briefly_and_ttl_capped() {
        let c = AnswerCache::default();
        let t0 = Instant::now();
        let n = name("mail.example.net.");
        c.put(
            &n,
            RecordType::A,
            &records(DnssecState::Unavailable, 3000),
            t0,
        );
        assert!(c.get(&n, RecordType::A, t0 + MAX_UNAVAILABLE).is_none());
        c.put(
            &n,
            RecordType::A,
            &records(DnssecState::Insecure, u32::MAX),
            t0,
        );
        assert!(c.get(&n, RecordType::A, t0 + MAX_TTL).is_none());
    }

    #[test]
    fn bounded() {
        let c = AnswerCache::default();
        let t0 = Instant::now();
        for i in 0..3 * MAX_ENTRIES {
            let n = name(&format!("h{i}.example.net."));
            c.put(&n, RecordType::A, &records(DnssecState::Secure, 300), t0);
        }
        assert!(c.len() <= MAX_ENTRIES);
    }
}
