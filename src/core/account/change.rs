//! The multi-source change decision: a saved configuration set up by account discovery
//! against a fresh discovery, under the same rules as the SRV decision
//! (crate::core::verdict::change).

use crate::core::account::AccountDiscovery;
use crate::core::source::Source;
use crate::core::verdict::Verdict;
use crate::core::verdict::binding::Binding;
use crate::core::verdict::change::{Advice, Decision, Origin, Reason, Saved, advice, decide_moved};
use crate::core::verdict::history::Seen;

/// The multi-source change decision and what it was based on.
#[derive(Debug)]
pub struct AccountChangeOutcome {
    pub advice: Advice,
    /// The verdict on the candidate the decision is about (as judged, before the policy
    /// discounted ISPDB or plain-HTTP evidence), when there is one.
    pub verdict: Option<Verdict>,
    /// The index of that candidate in `account.candidates`.
    pub candidate: Option<usize>,
    /// The fresh account discovery.
    pub account: AccountDiscovery,
}

impl AccountChangeOutcome {
    /// The source that named the candidate the decision is about (also recorded in the
    /// history with it).
    pub fn source(&self) -> Option<Source> {
        Some(self.account.candidates.get(self.candidate?)?.source)
    }

    /// The origin to save with that candidate when the change is taken.
    pub fn origin(&self) -> Option<Origin> {
        self.source().map(Origin::of_source)
    }
}

/// What the multi-source change check ([`decide_account`]) knows about one fresh candidate of
/// the saved service.
#[derive(Debug, Clone)]
pub struct FreshCandidate {
    pub host: String,
    pub port: u16,
    /// Its verdict; `None` when the check itself failed.
    pub verdict: Option<Verdict>,
    /// May it drive an UPDATE (docs/account-discovery.md, the policy table)? False for the
    /// ISPDB's and plain HTTP's word, which only the user may accept.
    pub tamper_proof: bool,
    pub binding: Option<Binding>,
}

/// The multi-source change decision (the successor of [`decide`] for configurations set
/// up by account discovery). `fresh` is `None` when no source found a configuration, else
/// the candidates of the saved service only, in document order (a protocol never changes
/// without the user). Returns the advice and the index of the candidate it is about.
/// Same rules as for SRV: a user-typed configuration never changes; the saved server
/// still named is NO_CHANGE; UPDATE only for an AUTHENTIC candidate whose evidence may
/// drive it, and always with its binding; otherwise the user is asked once the answer has
/// persisted.
pub fn decide_account(
    saved: &Saved,
    fresh: Option<&[FreshCandidate]>,
    seen: Option<Seen>,
    now: u64,
    min_age: u64,
) -> (Advice, Option<usize>) {
    let Some(fresh) = fresh else {
        return (
            advice(
                Decision::NoChange,
                None,
                "no source found a configuration; the saved configuration stays",
            )
            .because(Reason::LookupFailed),
            None,
        );
    };
    if fresh.is_empty() {
        return (
            advice(
                Decision::NoChange,
                None,
                format!(
                    "the fresh configuration offers no {}; a protocol never changes without the user",
                    saved.service
                ),
            )
            .because(Reason::NotOffered),
            None,
        );
    }
    let same = |c: &FreshCandidate| {
        c.host
            .eq_ignore_ascii_case(saved.host.trim_end_matches('.'))
            && c.port == saved.port
    };
    if fresh.iter().any(same) {
        return (
            advice(Decision::NoChange, None, "the saved server is still named"),
            None,
        );
    }
    let of = |v| fresh.iter().position(|c| c.verdict == Some(v));
    let Some(i) = of(Verdict::Authentic).or_else(|| of(Verdict::Unverified)) else {
        let (decision, reason, detail) = if of(Verdict::Rejected).is_some() {
            (
                Decision::Reject,
                Reason::WrongTarget,
                "every new server was proven not to be authentic",
            )
        } else {
            (
                Decision::NoChange,
                Reason::NotJudged,
                "the new servers could not be judged; the saved configuration stays",
            )
        };
        let c = &fresh[0];
        return (
            advice(decision, Some((c.host.clone(), c.port)), detail).because(reason),
            Some(0),
        );
    };
    let c = &fresh[i];
    // AUTHENTIC on evidence that may not drive an UPDATE counts as unverified here: the
    // user is asked (with the binding), once the answer has persisted.
    let downgraded = c.verdict == Some(Verdict::Authentic) && !c.tamper_proof;
    let verdict = match (c.verdict, &c.binding) {
        (Some(Verdict::Authentic), Some(_)) if c.tamper_proof => Some(Verdict::Authentic),
        (Some(Verdict::Authentic), _) => Some(Verdict::Unverified),
        (v, _) => v,
    };
    let mut a = decide_moved(saved, (c.host.clone(), c.port), verdict, seen, now, min_age);
    if matches!(
        a.decision,
        Decision::Update | Decision::AskUser | Decision::Wait
    ) {
        a.binding = c.binding.clone();
    }
    if downgraded && a.decision != Decision::NoChange {
        a.detail.push_str(
            " (authentic only on the ISPDB's or plain HTTP's word, which may not change an account without the user)",
        );
    }
    (a, Some(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::service::Service;
    use crate::core::verdict::change::{DEFAULT_MIN_AGE, Origin};

    fn saved(origin: Origin) -> Saved {
        Saved {
            service: Service::Imaps,
            host: "a.provider.net".into(),
            port: 993,
            origin,
        }
    }

    const DAY: u64 = 86400;

    fn bound() -> Binding {
        Binding::dnssec(Service::Imaps, "b.provider.net", 993, false).unwrap()
    }

    fn fresh(verdict: Verdict, tamper_proof: bool) -> FreshCandidate {
        FreshCandidate {
            host: "b.provider.net".into(),
            port: 993,
            verdict: Some(verdict),
            tamper_proof,
            binding: Some(bound()),
        }
    }

    #[test]
    fn account_update_needs_tamper_proof_evidence_and_a_binding() {
        let s = saved(Origin::Autoconfig);
        let ok = [fresh(Verdict::Authentic, true)];
        let (a, i) = decide_account(&s, Some(&ok), None, 0, DEFAULT_MIN_AGE);
        assert_eq!((a.decision, i), (Decision::Update, Some(0)));
        assert_eq!(a.binding, Some(bound()));
        // the ISPDB's word: wait, then ask, never update
        let ispdb = [fresh(Verdict::Authentic, false)];
        let (a, _) = decide_account(&s, Some(&ispdb), None, 0, DEFAULT_MIN_AGE);
        assert_eq!(a.decision, Decision::Wait);
        let seen = Some(Seen { first: 0, last: 0 });
        let (a, _) = decide_account(&s, Some(&ispdb), seen, 8 * DAY, DEFAULT_MIN_AGE);
        assert_eq!(a.decision, Decision::AskUser);
        assert_eq!(a.binding, Some(bound()));
        // no binding: never UPDATE
        let mut unbound = fresh(Verdict::Authentic, true);
        unbound.binding = None;
        let (a, _) = decide_account(&s, Some(&[unbound]), None, 0, DEFAULT_MIN_AGE);
        assert_eq!(a.decision, Decision::Wait);
    }

    #[test]
    fn account_rules_shared_with_srv() {
        let ok = [fresh(Verdict::Authentic, true)];
        let (a, _) = decide_account(&saved(Origin::User), Some(&ok), None, 0, DEFAULT_MIN_AGE);
        assert_eq!(a.decision, Decision::NoChange);
        let (a, _) = decide_account(&saved(Origin::Mx), Some(&[]), None, 0, DEFAULT_MIN_AGE);
        assert_eq!((a.decision, a.target), (Decision::NoChange, None));
        let (a, _) = decide_account(&saved(Origin::Mx), None, None, 0, DEFAULT_MIN_AGE);
        assert_eq!(a.decision, Decision::NoChange);
        let rejected = [fresh(Verdict::Rejected, true)];
        let (a, _) = decide_account(
            &saved(Origin::Mx),
            Some(&rejected),
            None,
            0,
            DEFAULT_MIN_AGE,
        );
        assert_eq!(a.decision, Decision::Reject);
        let mut same = fresh(Verdict::Unverified, false);
        same.host = "A.Provider.NET".into();
        let (a, _) = decide_account(
            &saved(Origin::Ispdb),
            Some(&[fresh(Verdict::Authentic, true), same]),
            None,
            0,
            DEFAULT_MIN_AGE,
        );
        assert_eq!(a.decision, Decision::NoChange);
    }
}
