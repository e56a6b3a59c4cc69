//! The change decision (docs/design.md §2.12): given a saved account configuration, a fresh
//! discovery, the authenticity verdict on the fresh answer and how long that answer has been
//! observed, what may the client do? Pure logic: no I/O, no clock.

use crate::core::dns::discover::{ServiceAnswer, SrvState};
use crate::core::service::Service;
use crate::core::source::Source;
use crate::core::verdict::Verdict;
use crate::core::verdict::binding::Binding;
use crate::core::verdict::history::Seen;

/// Default time an unverified answer must persist before the user is asked: 7 days.
pub const DEFAULT_MIN_AGE: u64 = 7 * 24 * 3600;

/// Where the saved configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Set up from SRV records: a later authenticated SRV answer may replace it.
    Srv,
    /// Typed by the user: never changed automatically.
    User,
    /// Set up from the mail domain's autoconfig document over HTTPS (the provider URL or
    /// `.well-known`).
    Autoconfig,
    /// Set up from the ISPDB's entry for the mail domain.
    Ispdb,
    /// Set up from the provider named by the MX (its autoconfig document or ISPDB entry).
    Mx,
    /// Set up from the legacy plain-HTTP autoconfig document.
    AutoconfigHttp,
    /// Set up from the mail domain's PACC document (draft-ietf-mailmaint-pacc).
    Pacc,
    /// Set up from Exchange Autodiscover.
    Autodiscover,
    /// Set up by guessing host names (a change check guesses again).
    Guess,
}

impl Origin {
    pub const ALL: [Origin; 9] = [
        Origin::Srv,
        Origin::User,
        Origin::Autoconfig,
        Origin::Ispdb,
        Origin::Mx,
        Origin::AutoconfigHttp,
        Origin::Pacc,
        Origin::Autodiscover,
        Origin::Guess,
    ];

    /// Set up by discovery (anything but typed by the user): a later discovery may change
    /// it under the rules of [`decide`] / [`decide_account`].
    pub fn automatic(self) -> bool {
        self != Origin::User
    }

    /// The origin to save with a configuration `source` named.
    pub fn of_source(source: Source) -> Origin {
        match source {
            Source::Srv => Origin::Srv,
            Source::Autoconfig | Source::AutoconfigWellKnown => Origin::Autoconfig,
            Source::Ispdb => Origin::Ispdb,
            Source::MxAutoconfig | Source::MxIspdb => Origin::Mx,
            Source::AutoconfigHttp => Origin::AutoconfigHttp,
            Source::Pacc => Origin::Pacc,
            Source::Autodiscover => Origin::Autodiscover,
            Source::Guess => Origin::Guess,
        }
    }

    /// The lower-case name used in JSON and the CLI: `srv`, `user`, `autoconfig`, `ispdb`,
    /// `mx`, `autoconfig-http`, `pacc`, `autodiscover`, `guess`.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Srv => "srv",
            Origin::User => "user",
            Origin::Autoconfig => "autoconfig",
            Origin::Ispdb => "ispdb",
            Origin::Mx => "mx",
            Origin::AutoconfigHttp => "autoconfig-http",
            Origin::Pacc => "pacc",
            Origin::Autodiscover => "autodiscover",
            Origin::Guess => "guess",
        }
    }

    /// An origin by its [`Origin::name`] or by the name of a source that gives it (the
    /// `source` names of account discovery: `autoconfig-wellknown`, `mx-autoconfig`, ...),
    /// any case.
    pub fn from_name(name: &str) -> Option<Origin> {
        Origin::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
            .or_else(|| Source::from_name(name).map(Origin::of_source))
    }
}

/// The account's configuration for one service.
#[derive(Debug, Clone)]
pub struct Saved {
    pub service: Service,
    pub host: String,
    pub port: u16,
    pub origin: Origin,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep the saved configuration; nothing to tell the user.
    NoChange,
    /// Switch to the new endpoint: it is authenticated.
    Update,
    /// Offer the change to the user (no click-through on a certificate failure): it is not
    /// verified but has been seen consistently for at least the minimum age.
    AskUser,
    /// Not verified and too new: look again later (`wait_until`).
    Wait,
    /// Do not use the new answer; keep the saved configuration and warn.
    Reject,
}

/// Why the decision is what it is: one per distinct situation a client's dialog tells
/// apart (REJECT for a bogus answer is not REJECT for a wrong target; NO_CHANGE after a
/// failed lookup is not NO_CHANGE for an unchanged answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// NO_CHANGE: the saved server is still advertised (or named).
    Unchanged,
    /// NO_CHANGE: the configuration was typed by the user and never changes on its own.
    UserConfigured,
    /// NO_CHANGE: the lookup failed (timeout, SERVFAIL, no source answered): nothing is
    /// known, the saved configuration stays; look again later.
    LookupFailed,
    /// NO_CHANGE: the domain no longer offers the service (no record, "." target, or no
    /// such server in the fresh configuration).
    NotOffered,
    /// NO_CHANGE: the fresh answer is for another service (a protocol never changes
    /// without the user).
    OtherService,
    /// NO_CHANGE: the new servers could not be judged (every check failed).
    NotJudged,
    /// NO_CHANGE: the user declined this very answer before (see `History::decline`).
    Declined,
    /// UPDATE: the new server is authenticated.
    Authenticated,
    /// WAIT: not verified and not seen for long enough yet.
    UnverifiedNew,
    /// ASK_USER: not verified, but seen consistently for the minimum age.
    UnverifiedPersisted,
    /// REJECT: the SRV answer failed DNSSEC validation (bogus).
    Bogus,
    /// REJECT: the new server was proven not to be the domain's (signed records that do not
    /// hold it, a certificate that does not match its signed TLSA records, ...).
    WrongTarget,
}

impl Reason {
    /// The reason a decision has unless a more precise one is known.
    fn of(decision: Decision) -> Self {
        match decision {
            Decision::NoChange => Reason::Unchanged,
            Decision::Update => Reason::Authenticated,
            Decision::AskUser => Reason::UnverifiedPersisted,
            Decision::Wait => Reason::UnverifiedNew,
            Decision::Reject => Reason::WrongTarget,
        }
    }
}

/// The decision with what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub decision: Decision,
    /// Why (see [`Reason`]).
    pub reason: Reason,
    /// The endpoint the decision is about (the fresh first endpoint), when there is one.
    pub target: Option<(String, u16)>,
    /// For `Wait`: when the answer will have persisted long enough (Unix seconds).
    pub wait_until: Option<u64>,
    /// Why, in words a client can show.
    pub detail: String,
    /// How the account must connect to the new endpoint (see `binding.rs`): always set for
    /// `Update`; for `AskUser` and `Wait` the plain binding to use once the user accepted.
    pub binding: Option<Binding>,
}

/// What `srv_change_check` needs besides the history.
#[derive(Debug, Clone)]
pub struct ChangeRequest {
    /// The mail domain (or the address).
    pub domain: String,
    pub saved: Saved,
    /// Unix seconds.
    pub now: u64,
    /// Seconds an unverified answer must persist (DEFAULT_MIN_AGE by default).
    pub min_age: u64,
    /// Whether the authenticity check may probe the new target.
    pub probe: bool,
    /// Only a DNSSEC-secure answer may lead to UPDATE (no probe).
    pub require_secure: bool,
}

/// The decision and what it was based on.
#[derive(Debug)]
pub struct ChangeOutcome {
    pub advice: Advice,
    /// The fresh answer for the saved service.
    pub fresh: crate::core::dns::discover::ServiceAnswer,
    /// The authenticity of the fresh first endpoint, when it differs from the saved one
    /// and the configuration came from SRV.
    pub authenticity: Option<crate::core::verdict::authenticity::Authenticity>,
}

impl ChangeOutcome {
    /// The origin to save with the endpoint the decision is about (SRV named it).
    pub fn origin(&self) -> Option<Origin> {
        self.advice.target.as_ref().map(|_| Origin::Srv)
    }
}

pub(crate) fn advice(
    decision: Decision,
    target: Option<(String, u16)>,
    detail: impl Into<String>,
) -> Advice {
    Advice {
        decision,
        reason: Reason::of(decision),
        target,
        wait_until: None,
        detail: detail.into(),
        binding: None,
    }
}

impl Advice {
    /// The same advice with a more precise reason.
    pub(crate) fn because(self, reason: Reason) -> Self {
        Advice { reason, ..self }
    }
}

/// The decision once the history knows the user declined the answer it is about: an
/// ASK_USER or WAIT becomes NO_CHANGE (reason DECLINED, no binding); UPDATE, REJECT and
/// NO_CHANGE stay as they are.
pub fn apply_decline(advice: Advice, declined: bool) -> Advice {
    if !declined || !matches!(advice.decision, Decision::AskUser | Decision::Wait) {
        return advice;
    }
    Advice {
        decision: Decision::NoChange,
        reason: Reason::Declined,
        wait_until: None,
        binding: None,
        detail: format!(
            "the user declined this answer; it is not offered again while it persists ({})",
            advice.detail
        ),
        target: advice.target,
    }
}

/// Decides for one service. `fresh` must be the answer for `saved.service` itself: RFC 6186
/// §4 forbids switching IMAP to POP3 (or back) without the user, so a client passes the same
/// service it has saved, and a different protocol's priority never matters here.
/// `verdict` and `binding` come from the authenticity check of the fresh first endpoint; an
/// authentic verdict without a binding is treated as unverified (UPDATE always has one).
pub fn decide(
    saved: &Saved,
    fresh: &ServiceAnswer,
    verdict: Option<Verdict>,
    binding: Option<&Binding>,
    seen: Option<Seen>,
    now: u64,
    min_age: u64,
) -> Advice {
    let verdict = match (verdict, binding) {
        (Some(Verdict::Authentic), None) => Some(Verdict::Unverified),
        (v, _) => v,
    };
    let mut advice = decide_unbound(saved, fresh, verdict, seen, now, min_age);
    if matches!(
        advice.decision,
        Decision::Update | Decision::AskUser | Decision::Wait
    ) {
        advice.binding = binding.cloned();
    }
    advice
}

fn decide_unbound(
    saved: &Saved,
    fresh: &ServiceAnswer,
    verdict: Option<Verdict>,
    seen: Option<Seen>,
    now: u64,
    min_age: u64,
) -> Advice {
    if fresh.service != saved.service {
        return advice(
            Decision::NoChange,
            None,
            format!(
                "the fresh answer is for {} but the account uses {}: a protocol never changes without the user",
                fresh.service, saved.service
            ),
        )
        .because(Reason::OtherService);
    }
    match fresh.state {
        SrvState::Bogus => {
            return advice(
                Decision::Reject,
                None,
                "the SRV answer failed DNSSEC validation (bogus)",
            )
            .because(Reason::Bogus);
        }
        SrvState::LookupFailed => {
            return advice(
                Decision::NoChange,
                None,
                "the SRV lookup failed; the saved configuration stays",
            )
            .because(Reason::LookupFailed);
        }
        SrvState::NoRecord | SrvState::NotOffered => {
            return advice(
                Decision::NoChange,
                None,
                format!(
                    "the domain now says {}; the saved configuration stays",
                    fresh.state.name()
                ),
            )
            .because(Reason::NotOffered);
        }
        SrvState::Found => {}
    }
    let same = |e: &crate::core::dns::discover::Endpoint| {
        e.target
            .eq_ignore_ascii_case(saved.host.trim_end_matches('.'))
            && e.port == saved.port
    };
    if fresh.endpoints.iter().any(same) {
        return advice(
            Decision::NoChange,
            None,
            "the saved server is still advertised",
        );
    }
    let Some(first) = fresh.endpoints.first() else {
        return advice(Decision::NoChange, None, "no endpoint").because(Reason::NotOffered);
    };
    decide_moved(
        saved,
        (first.target.clone(), first.port),
        verdict,
        seen,
        now,
        min_age,
    )
}

/// The decision once the fresh server differs from the saved one (shared by the SRV and
/// the multi-source change check).
pub(crate) fn decide_moved(
    saved: &Saved,
    target: (String, u16),
    verdict: Option<Verdict>,
    seen: Option<Seen>,
    now: u64,
    min_age: u64,
) -> Advice {
    let target = Some(target);
    if saved.origin == Origin::User {
        return advice(
            Decision::NoChange,
            target,
            "the configuration was typed by the user and is never changed automatically",
        )
        .because(Reason::UserConfigured);
    }
    match verdict {
        Some(Verdict::Rejected) => advice(
            Decision::Reject,
            target,
            "the new server was proven not to be authentic",
        ),
        Some(Verdict::Authentic) => {
            advice(Decision::Update, target, "the new server is authenticated")
        }
        None | Some(Verdict::Unverified) => {
            let since = seen.map_or(now, |s| s.first);
            let ready_at = since.saturating_add(min_age);
            if now >= ready_at {
                advice(
                    Decision::AskUser,
                    target,
                    format!(
                        "unverified, but advertised consistently for {} days",
                        (now - since) / 86400
                    ),
                )
            } else {
                Advice {
                    wait_until: Some(ready_at),
                    ..advice(
                        Decision::Wait,
                        target,
                        "unverified and new: wait until it has persisted",
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dns::answer::DnssecState;
    use crate::core::dns::discover::Endpoint;

    fn answer(service: Service, state: SrvState, targets: &[(&str, u16)]) -> ServiceAnswer {
        ServiceAnswer {
            service,
            state,
            error: None,
            dnssec: Some(DnssecState::Insecure),
            ttl: 300,
            endpoints: targets
                .iter()
                .map(|(t, p)| Endpoint {
                    target: t.to_string(),
                    port: *p,
                    priority: 0,
                    weight: 1,
                    ttl: 300,
                    dnssec: DnssecState::Insecure,
                    addresses: vec![],
                    address_dnssec: None,
                    address_error: None,
                })
                .collect(),
            diagnostics: vec![],
        }
    }

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

    #[test]
    fn unchanged_answer_is_no_change() {
        let a = answer(Service::Imaps, SrvState::Found, &[("A.Provider.NET", 993)]);
        assert_eq!(
            decide(
                &saved(Origin::Srv),
                &a,
                None,
                None,
                None,
                0,
                DEFAULT_MIN_AGE
            )
            .decision,
            Decision::NoChange
        );
    }

    #[test]
    fn t_seed_01_authenticated_change_updates() {
        let a = answer(Service::Imaps, SrvState::Found, &[("b.provider.net", 993)]);
        let d = decide(
            &saved(Origin::Srv),
            &a,
            Some(Verdict::Authentic),
            Some(&bound()),
            None,
            0,
            DEFAULT_MIN_AGE,
        );
        assert_eq!(d.decision, Decision::Update);
        assert_eq!(d.target, Some(("b.provider.net".into(), 993)));
        assert_eq!(d.binding, Some(bound()));
    }

    #[test]
    fn update_needs_a_binding() {
        let a = answer(Service::Imaps, SrvState::Found, &[("b.provider.net", 993)]);
        let d = decide(
            &saved(Origin::Srv),
            &a,
            Some(Verdict::Authentic),
            None,
            None,
            0,
            DEFAULT_MIN_AGE,
        );
        assert_eq!(d.decision, Decision::Wait);
    }

    #[test]
    fn t_seed_05_unverified_change_waits_then_asks() {
        let a = answer(Service::Imaps, SrvState::Found, &[("b.provider.net", 993)]);
        let seen = Seen {
            first: 10 * DAY,
            last: 12 * DAY,
        };
        let d = decide(
            &saved(Origin::Srv),
            &a,
            Some(Verdict::Unverified),
            None,
            Some(seen),
            12 * DAY,
            DEFAULT_MIN_AGE,
        );
        assert_eq!(d.decision, Decision::Wait);
        assert_eq!(d.wait_until, Some(17 * DAY));
        let d = decide(
            &saved(Origin::Srv),
            &a,
            Some(Verdict::Unverified),
            None,
            Some(seen),
            17 * DAY,
            DEFAULT_MIN_AGE,
        );
        assert_eq!(d.decision, Decision::AskUser);
        let d = decide(
            &saved(Origin::Srv),
            &a,
            Some(Verdict::Unverified),
            None,
            None,
            17 * DAY,
            DEFAULT_MIN_AGE,
        );
        assert_eq!(
            d.decision,
            Decision::Wait,
            "never seen before: the clock starts now"
        );
    }

    #[test]
    fn user_typed_configuration_never_changes() {
        let a = answer(Service::Imaps, SrvState::Found, &[("b.provider.net", 993)]);
        let d = decide(
            &saved(Origin::User),
            &a,
            Some(Verdict::Authentic),
            Some(&bound()),
            None,
            0,
            DEFAULT_MIN_AGE,
        );
        assert_eq!(d.decision, Decision::NoChange);
    }

    #[test]
    fn t_auth_03_bogus_and_rejected_are_rejected() {
        let a = answer(Service::Imaps, SrvState::Bogus, &[]);
        assert_eq!(
            decide(&saved(Origin::Srv), &a, None, None, None, 0, 1).decision,
            Decision::Reject
        );
        let a = answer(Service::Imaps, SrvState::Found, &[("b.provider.net", 993)]);
        assert_eq!(
            decide(
                &saved(Origin::Srv),
                &a,
                Some(Verdict::Rejected),
                None,
                None,
                0,
                1
            )
            .decision,
            Decision::Reject
        );
    }

    #[test]
    fn failures_and_absence_keep_the_saved_configuration() {
        for st in [
            SrvState::LookupFailed,
            SrvState::NoRecord,
            SrvState::NotOffered,
        ] {
            let a = answer(Service::Imaps, st, &[]);
            assert_eq!(
                decide(&saved(Origin::Srv), &a, None, None, None, 0, 1).decision,
                Decision::NoChange
            );
        }
    }

    #[test]
    fn t_sel_07_never_switches_protocol() {
        let a = answer(Service::Pop3s, SrvState::Found, &[("b.provider.net", 995)]);
        let d = decide(
            &saved(Origin::Srv),
            &a,
            Some(Verdict::Authentic),
            Some(&bound()),
            None,
            0,
            1,
        );
        assert_eq!(d.decision, Decision::NoChange);
    }

    #[test]
    fn origin_names_and_sources() {
        for o in Origin::ALL {
            assert_eq!(Origin::from_name(o.name()), Some(o));
        }
        for src in Source::ALL {
            let o = Origin::of_source(src);
            assert_eq!(Origin::from_name(src.name()), Some(o), "{}", src.name());
            assert!(o.automatic());
        }
        assert_eq!(Origin::from_name("MX-ISPDB"), Some(Origin::Mx));
        assert_eq!(
            Origin::from_name("autoconfig-wellknown"),
            Some(Origin::Autoconfig)
        );
        assert_eq!(Origin::from_name("dns"), None);
    }

    #[test]
    fn reasons_tell_the_situations_apart() {
        let r = |a: &ServiceAnswer, origin, verdict| {
            decide(&saved(origin), a, verdict, None, None, 0, 1).reason
        };
        let moved = answer(Service::Imaps, SrvState::Found, &[("b.provider.net", 993)]);
        let same = answer(Service::Imaps, SrvState::Found, &[("a.provider.net", 993)]);
        assert_eq!(r(&same, Origin::Srv, None), Reason::Unchanged);
        assert_eq!(r(&moved, Origin::User, None), Reason::UserConfigured);
        assert_eq!(
            r(
                &answer(Service::Imaps, SrvState::LookupFailed, &[]),
                Origin::Srv,
                None
            ),
            Reason::LookupFailed
        );
        assert_eq!(
            r(
                &answer(Service::Imaps, SrvState::NoRecord, &[]),
                Origin::Srv,
                None
            ),
            Reason::NotOffered
        );
        assert_eq!(
            r(
                &answer(Service::Imaps, SrvState::Bogus, &[]),
                Origin::Srv,
                None
            ),
            Reason::Bogus
        );
        assert_eq!(
            r(
                &answer(Service::Pop3s, SrvState::Found, &[("b.provider.net", 995)]),
                Origin::Srv,
                None
            ),
            Reason::OtherService
        );
        assert_eq!(
            r(&moved, Origin::Srv, Some(Verdict::Rejected)),
            Reason::WrongTarget
        );
        let d = decide(
            &saved(Origin::Srv),
            &moved,
            Some(Verdict::Unverified),
            None,
            None,
            0,
            0,
        );
        assert_eq!(d.reason, Reason::UnverifiedPersisted);
        let d = decide(
            &saved(Origin::Srv),
            &moved,
            Some(Verdict::Unverified),
            None,
            None,
            0,
            DEFAULT_MIN_AGE,
        );
        assert_eq!(d.reason, Reason::UnverifiedNew);
        let d = decide(
            &saved(Origin::Srv),
            &moved,
            Some(Verdict::Authentic),
            Some(&bound()),
            None,
            0,
            1,
        );
        assert_eq!(d.reason, Reason::Authenticated);
    }

    #[test]
    fn a_decline_silences_ask_user_and_wait_only() {
        let moved = answer(Service::Imaps, SrvState::Found, &[("b.provider.net", 993)]);
        let ask = decide(
            &saved(Origin::Srv),
            &moved,
            Some(Verdict::Unverified),
            Some(&bound()),
            None,
            0,
            0,
        );
        assert_eq!(ask.decision, Decision::AskUser);
        let d = apply_decline(ask.clone(), true);
        assert_eq!(
            (d.decision, d.reason),
            (Decision::NoChange, Reason::Declined)
        );
        assert_eq!(d.binding, None);
        assert_eq!(d.target, ask.target);
        assert_eq!(apply_decline(ask.clone(), false), ask);
        let update = decide(
            &saved(Origin::Srv),
            &moved,
            Some(Verdict::Authentic),
            Some(&bound()),
            None,
            0,
            0,
        );
        assert_eq!(apply_decline(update.clone(), true), update);
        let reject = decide(
            &saved(Origin::Srv),
            &moved,
            Some(Verdict::Rejected),
            None,
            None,
            0,
            0,
        );
        assert_eq!(apply_decline(reject.clone(), true), reject);
    }
}
