//! Where a configuration came from: the account-discovery sources, in rank order. Shared
//! by account discovery, the history (which source named a server) and the change check.

/// Where a configuration came from. [`Source::ALL`] is the rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=...`
    Autoconfig,
    /// `https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=...`
    AutoconfigWellKnown,
    /// RFC 6186 / RFC 8314 SRV records.
    Srv,
    /// `<ISPDB base><domain>`.
    Ispdb,
    /// The highest-priority MX host's parent and registrable domains: their HTTPS autoconfig.
    MxAutoconfig,
    /// The same domains in the ISPDB.
    MxIspdb,
    /// `http://autoconfig.<domain>/mail/config-v1.1.xml` (legacy, plain HTTP; discovery only).
    AutoconfigHttp,
}

impl Source {
    /// Every source, highest rank first: the mail domain's own statements (HTTPS
    /// autoconfig, SRV), then the database, then MX-derived guesses, and plain HTTP last
    /// (anyone on the path can write it).
    pub const ALL: [Source; 7] = [
        Source::Autoconfig,
        Source::AutoconfigWellKnown,
        Source::Srv,
        Source::Ispdb,
        Source::MxAutoconfig,
        Source::MxIspdb,
        Source::AutoconfigHttp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Autoconfig => "autoconfig",
            Source::AutoconfigWellKnown => "autoconfig-wellknown",
            Source::Srv => "srv",
            Source::Ispdb => "ispdb",
            Source::MxAutoconfig => "mx-autoconfig",
            Source::MxIspdb => "mx-ispdb",
            Source::AutoconfigHttp => "autoconfig-http",
        }
    }

    pub fn from_name(name: &str) -> Option<Source> {
        Source::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// The C API's bit (MAILSRV_SOURCE_*).
    pub fn bit(self) -> u32 {
        match self {
            Source::Autoconfig => 1,
            Source::AutoconfigWellKnown => 2,
            Source::AutoconfigHttp => 4,
            Source::Ispdb => 8,
            Source::MxAutoconfig => 16,
            Source::MxIspdb => 32,
            Source::Srv => 64,
        }
    }

    pub fn from_bit(bit: u32) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.bit() == bit)
    }

    /// The sources in `mask` in rank order; 0 means all. Unknown bits: `None`.
    pub fn from_mask(mask: u32) -> Option<Vec<Source>> {
        const ALL_BITS: u32 = 127;
        if mask & !ALL_BITS != 0 {
            return None;
        }
        let mask = if mask == 0 { ALL_BITS } else { mask };
        Some(
            Source::ALL
                .into_iter()
                .filter(|s| mask & s.bit() != 0)
                .collect(),
        )
    }

    /// Its position in [`Source::ALL`] (0 = highest).
    pub fn rank(self) -> usize {
        Source::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or(usize::MAX)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
