//! Matching reference against presented identifiers (RFC 6125 §6 as updated by RFC 9525,
//! RFC 7817 for mail, RFC 4985 for SRV-IDs).

use std::fmt;

use super::presented::{PresentedId, PresentedIds};
use super::reference::{ReferenceId, ReferenceIdentity};
use crate::core::{Error, Result};

/// Policy switches for matching. The default is strict: no sibling service, no CN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MatchOptions {
    /// Accept the implicit-TLS / STARTTLS sibling service in SRV-IDs (`_submission` for
    /// an `_submissions` reference and vice versa; likewise imap/imaps, pop3/pop3s).
    pub accept_sibling_service: bool,
    /// Accept a subject CN as a DNS-ID when the certificate has no SAN identifiers
    /// (RFC 7817 MAY; RFC 9525 forbids). Never set it for the SRV authenticity probe.
    pub legacy_cn: bool,
}

impl MatchOptions {
    /// The strict policy (the default).
    pub fn strict() -> Self {
        Self::default()
    }

    /// Both policies together: a switch is on when either has it on (the context's
    /// policy combined with a call's).
    pub fn union(self, other: MatchOptions) -> MatchOptions {
        MatchOptions {
            accept_sibling_service: self.accept_sibling_service || other.accept_sibling_service,
            legacy_cn: self.legacy_cn || other.legacy_cn,
        }
    }

    /// The policy for the SRV authenticity probe: strict, and CN never (T-CN-05). The
    /// sibling flag is kept from `self`, CN is forced off.
    pub fn for_probe(self) -> Self {
        Self {
            legacy_cn: false,
            ..self
        }
    }
}

/// How a reference identifier was matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// Equal names (ASCII case-insensitive) or equal addresses.
    Exact,
    /// A `*.parent` DNS-ID covered the reference's left-most label.
    Wildcard,
    /// An SRV-ID for the sibling service (only with `accept_sibling_service`).
    SiblingService,
    /// A subject CN (only with `legacy_cn`).
    LegacyCn,
}

/// Which reference identifier matched, and through which presented identifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MatchedId {
    /// The reference identifier that matched.
    pub reference: ReferenceId,
    /// The certificate's identifier that matched it.
    pub presented: PresentedId,
    /// How they matched.
    pub kind: MatchKind,
}

impl MatchedId {
    /// True when the match rests on an SRV-ID.
    pub fn is_srv_id(&self) -> bool {
        matches!(self.reference, ReferenceId::SrvId { .. })
    }

    /// True when the match rests on a subject CN (never acceptable as probe evidence).
    pub fn is_legacy_cn(&self) -> bool {
        self.kind == MatchKind::LegacyCn
    }
}

impl fmt::Display for MatchedId {
    /// `SRV-ID _imaps.example.com`, or with the presented form when it differs:
    /// `DNS-ID mail.example.net via DNS-ID *.example.net`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            MatchKind::Exact => write!(f, "{}", self.reference),
            MatchKind::Wildcard => write!(f, "{} via {}", self.reference, self.presented),
            MatchKind::SiblingService => write!(
                f,
                "{} via {} (sibling service)",
                self.reference, self.presented
            ),
            MatchKind::LegacyCn => {
                write!(f, "{} via {} (legacy)", self.reference, self.presented)
            }
        }
    }
}

/// Label-wise ASCII case-insensitive DNS-ID match, with the strict wildcard rule.
/// Both sides are already syntax-checked and lower case.
fn dns_matches(reference: &str, presented: &str) -> Option<MatchKind> {
    if reference.eq_ignore_ascii_case(presented) {
        return Some(MatchKind::Exact);
    }
    let parent = presented.strip_prefix("*.")?;
    // At least two labels after `*` (no `*.com`, T-DNS-09), and never a public suffix.
    if !parent.contains('.') || is_public_suffix(parent) {
        return None;
    }
    let (first, rest) = reference.split_once('.')?;
    if !first.is_empty() && rest.eq_ignore_ascii_case(parent) {
        Some(MatchKind::Wildcard)
    } else {
        None
    }
}

/// Whether `name` (lower case) is a public suffix: a rule of the Public Suffix List, ICANN
/// or PRIVATE section (`co.uk`, `s3.amazonaws.com`), from the `psl` crate. A wildcard over
/// it would cover names of unrelated registrants (T-DNS-09). The list is compiled in: it is
/// updated by bumping `psl` in Cargo.toml (docs/SECURITY.md, "Public Suffix List").
fn is_public_suffix(name: &str) -> bool {
    psl::suffix(name.as_bytes()).is_some_and(|s| s.as_bytes().len() == name.len())
}

fn match_one(r: &ReferenceId, p: &PresentedId, opts: &MatchOptions) -> Option<MatchKind> {
    match (r, p) {
        (ReferenceId::DnsId(name), PresentedId::DnsId(pres)) => dns_matches(name.as_str(), pres),
        (
            ReferenceId::SrvId { service, domain },
            PresentedId::SrvId {
                service: psvc,
                domain: pdom,
            },
        ) => {
            // Same domain exactly (no wildcards, no cross-combination, T-SRVID-14).
            if !domain.as_str().eq_ignore_ascii_case(pdom) {
                return None;
            }
            if service.name().eq_ignore_ascii_case(psvc) {
                Some(MatchKind::Exact)
            } else if opts.accept_sibling_service
                && service.sibling().name().eq_ignore_ascii_case(psvc)
            {
                Some(MatchKind::SiblingService)
            } else {
                None
            }
        }
        (ReferenceId::IpId(ip), PresentedId::IpId(pip)) => (ip == pip).then_some(MatchKind::Exact),
        (ReferenceId::DnsId(name), PresentedId::CnId(cn)) if opts.legacy_cn => {
            dns_matches(name.as_str(), cn).map(|_| MatchKind::LegacyCn)
        }
        // URI-IDs never (T-REF-07); no type crosses to another (T-SRVID-13, T-REF-08).
        _ => None,
    }
}

/// Matches the reference identifiers against the presented ones (RFC 9525 §6.3–§6.5,
/// RFC 7817 §3). Reference identifiers are tried in the caller's order; SAN identifiers
/// first, the CN only as a last resort under [`MatchOptions::legacy_cn`].
///
/// Errors: [`Error::NameMismatch`] listing what was wanted and what was presented, or
/// [`Error::NameConstraint`] when the only identifier that would have matched was dropped
/// because a CA's name constraints do not cover it.
pub fn match_identity(
    reference: &ReferenceIdentity,
    presented: &PresentedIds,
    options: &MatchOptions,
) -> Result<MatchedId> {
    for r in reference.ids() {
        for p in &presented.sans {
            if let Some(kind) = match_one(r, p, options) {
                return Ok(MatchedId {
                    reference: r.clone(),
                    presented: p.clone(),
                    kind,
                });
            }
        }
    }
    let cn_usable = options.legacy_cn && presented.cn_eligible();
    if cn_usable {
        for r in reference.ids() {
            for cn in &presented.cns {
                let p = PresentedId::CnId(cn.clone());
                if let Some(kind) = match_one(r, &p, options) {
                    return Ok(MatchedId {
                        reference: r.clone(),
                        presented: p,
                        kind,
                    });
                }
            }
        }
    }
    for (p, why) in &presented.constrained {
        if matches!(p, PresentedId::CnId(_)) && !cn_usable {
            continue;
        }
        for r in reference.ids() {
            if match_one(r, p, options).is_some() {
                return Err(Error::NameConstraint(format!(
                    "{p} would match {r}, but {why}"
                )));
            }
        }
    }
    Err(Error::NameMismatch(format!(
        "no presented identifier matches; wanted {reference}; presented: {}",
        presented.describe()
    )))
}
