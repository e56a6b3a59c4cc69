//! What one source run gives the runner, found or not.

use super::fetch::{Fetched, Hop};
use super::{Coverage, Found, Source, xml};
use crate::core::dns::answer::DnssecState;
use crate::core::{Error, Result};

/// What one source run produced, found or not.
#[derive(Debug)]
pub struct SourceRun {
    pub found: Result<Found>,
    pub hops: Vec<Hop>,
    pub notes: Vec<String>,
    pub mx: Option<(String, DnssecState)>,
    /// See [`super::SourceReport::record`].
    pub record: Option<(String, DnssecState)>,
    /// See [`super::SourceReport::unfollowed`].
    pub unfollowed: Vec<String>,
}

impl SourceRun {
    /// A document of the mail domain (no MX involved) with its coverage.
    pub(crate) fn found(
        source: Source,
        config: xml::ClientConfig,
        fetched: &Fetched,
        coverage: Coverage,
    ) -> Self {
        SourceRun {
            notes: config.notes.clone(),
            found: Ok(Found {
                source,
                url: Some(fetched.final_url().to_string()),
                config,
                coverage,
                srv: None,
                mx_dnssec: None,
            }),
            hops: fetched.hops.clone(),
            mx: None,
            record: None,
            unfollowed: Vec::new(),
        }
    }

    pub(crate) fn failed(error: Error, hops: Vec<Hop>) -> Self {
        SourceRun {
            found: Err(error),
            hops,
            notes: Vec::new(),
            mx: None,
            record: None,
            unfollowed: Vec::new(),
        }
    }
}
