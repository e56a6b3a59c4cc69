//! The priority-parallel runner: every source starts at once; the configuration of a source
//! is taken only when every higher-ranked source has failed or timed out; when one is
//! taken, the lower-ranked sources still running are cancelled (their futures dropped).
//! Each fetch has its own deadline (PACC, provider, MX-derived and each Autodiscover
//! request: `fetch_timeout`; ISPDB and each guess: `ispdb_timeout`), never past the call's.

use std::pin::Pin;

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::{Instant, timeout_at};

use super::source_run::SourceRun;
use super::sources;
use super::xml::AddressParts;
use super::{AccountOptions, Found, Source, SourceReport, SourceState};
use super::{autodiscover, guess, pacc};
use crate::core::Error;
use crate::core::cert::ca_store::CaStore;
use crate::core::dns::resolver::Resolver;

/// A source running: its index in the run list and its outcome.
type Running<'a> = Pin<Box<dyn Future<Output = (usize, SourceRun)> + Send + 'a>>;

/// Runs the sources of `opts`; returns the winner's configuration (if any) and a report
/// for every source in rank order.
pub async fn run(
    resolver: &Resolver,
    trust: &CaStore,
    parts: &AddressParts,
    opts: &AccountOptions,
    deadline: Instant,
) -> (Option<Found>, Vec<SourceReport>) {
    let started = Instant::now();
    let ispdb = opts.ispdb_url.as_deref();
    let mut list: Vec<Source> = Source::ALL
        .into_iter()
        .filter(|s| opts.sources.contains(s))
        .filter(|s| ispdb.is_some() || !matches!(s, Source::Ispdb | Source::MxIspdb))
        .collect();
    list.dedup();
    let needs_mx = list
        .iter()
        .any(|s| matches!(s, Source::MxAutoconfig | Source::MxIspdb));
    // One MX lookup shared by both MX sources.
    let mx = async move {
        if needs_mx {
            sources::mx(resolver, &parts.domain).await
        } else {
            Err(Error::NotFound("no MX source".into()))
        }
    }
    .boxed()
    .shared();
    let fetch_deadline = deadline.min(started + opts.fetch_timeout);
    let ispdb_deadline = deadline.min(started + opts.ispdb_timeout);
    let mut futs: Vec<BoxFuture<'_, SourceRun>> = Vec::new();
    for &s in &list {
        let mx = mx.clone();
        let f: BoxFuture<'_, SourceRun> = match s {
            Source::Autoconfig | Source::AutoconfigWellKnown | Source::AutoconfigHttp => {
                sources::provider(s, resolver, trust, parts, fetch_deadline).boxed()
            }
            Source::Ispdb => sources::ispdb(
                resolver,
                trust,
                parts,
                ispdb.unwrap_or_default(),
                ispdb_deadline,
            )
            .boxed(),
            Source::MxAutoconfig | Source::MxIspdb => {
                let (per_fetch, end) = if s == Source::MxIspdb {
                    (
                        opts.ispdb_timeout,
                        deadline.min(started + opts.ispdb_timeout * 2),
                    )
                } else {
                    (
                        opts.fetch_timeout,
                        deadline.min(started + opts.fetch_timeout * 2),
                    )
                };
                async move {
                    let mx = timeout_at(end, mx).await.unwrap_or_else(|_| {
                        Err(Error::Timeout("the MX lookup: deadline passed".into()))
                    });
                    sources::mx_derived(s, resolver, trust, parts, mx, ispdb, per_fetch, end).await
                }
                .boxed()
            }
            Source::Srv => sources::srv(resolver, parts, opts, deadline).boxed(),
            Source::Pacc => pacc::run(resolver, trust, parts, &opts.ports, fetch_deadline).boxed(),
            Source::Autodiscover => {
                // The four URLs at once, then at most two RedirectAddr rounds.
                let end = deadline.min(started + opts.fetch_timeout * 3);
                autodiscover::run(
                    resolver,
                    trust,
                    parts,
                    opts.autodiscover_hook.as_ref(),
                    opts.fetch_timeout,
                    end,
                )
                .boxed()
            }
            Source::Guess => {
                guess::run(resolver, trust, parts, &opts.ports, ispdb_deadline).boxed()
            }
        };
        futs.push(f);
    }
    let n = list.len();
    let mut results: Vec<Option<(SourceRun, std::time::Duration)>> = (0..n).map(|_| None).collect();
    let mut pending: FuturesUnordered<Running<'_>> = FuturesUnordered::new();
    for (i, f) in futs.into_iter().enumerate() {
        let src = list[i];
        pending.push(Box::pin(async move {
            let r = timeout_at(deadline, f).await.unwrap_or_else(|_| SourceRun {
                found: Err(Error::Timeout(format!("{src}: deadline passed"))),
                hops: Vec::new(),
                notes: Vec::new(),
                mx: None,
                record: None,
                unfollowed: Vec::new(),
            });
            (i, r)
        }));
    }
    let winner = loop {
        let mut decided = None;
        let mut waiting = false;
        for (i, r) in results.iter().enumerate() {
            match r {
                None => {
                    waiting = true;
                    break;
                }
                Some((run, _)) if run.found.is_ok() => {
                    decided = Some(i);
                    break;
                }
                Some(_) => {}
            }
        }
        if decided.is_some() || !waiting {
            break decided;
        }
        match pending.next().await {
            Some((i, r)) => results[i] = Some((r, started.elapsed())),
            None => break None,
        }
    };
    // Cancels every source still running.
    drop(pending);
    let mut found = None;
    let mut reports = Vec::new();
    for s in Source::ALL {
        let Some(i) = list.iter().position(|x| *x == s) else {
            reports.push(SourceReport {
                source: s,
                state: SourceState::Skipped,
                error: None,
                hops: Vec::new(),
                mx: None,
                record: None,
                unfollowed: Vec::new(),
                notes: Vec::new(),
                elapsed: std::time::Duration::ZERO,
            });
            continue;
        };
        let report = match results[i].take() {
            None => SourceReport {
                source: s,
                state: SourceState::Cancelled,
                error: None,
                hops: Vec::new(),
                mx: None,
                record: None,
                unfollowed: Vec::new(),
                notes: vec!["cancelled: a higher-ranked source was taken".into()],
                elapsed: started.elapsed(),
            },
            Some((run, elapsed)) => {
                let (state, error) = match run.found {
                    Ok(f) => {
                        if Some(i) == winner {
                            found = Some(f);
                        }
                        (SourceState::Found, None)
                    }
                    Err(e) => (SourceState::Failed, Some(e)),
                };
                SourceReport {
                    source: s,
                    state,
                    error,
                    hops: run.hops,
                    mx: run.mx,
                    record: run.record,
                    unfollowed: run.unfollowed,
                    notes: run.notes,
                    elapsed,
                }
            }
        };
        reports.push(report);
    }
    (found, reports)
}
