//! Where a configuration came from: the account-discovery sources, in rank order. Shared
//! by account discovery, the history (which source named a server) and the change check.

/// Where a configuration came from. [`Source::ALL`] is the rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `https://ua-auto-config.<domain>/.well-known/user-agent-configuration.json`, checked
    /// against the `_ua-auto-config.<domain>` TXT digest (draft-ietf-mailmaint-pacc).
    Pacc,
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
    /// Exchange Autodiscover (POX): `autodiscover.<domain>`, `<domain>`, the plain-HTTP
    /// redirect and `_autodiscover._tcp.<domain>` SRV.
    Autodiscover,
    /// `http://autoconfig.<domain>/mail/config-v1.1.xml` (legacy, plain HTTP; discovery only).
    AutoconfigHttp,
    /// Guessing (`imap.`, `mail.`, the bare domain; `smtp.`, `mail.`): opt-in, last.
    Guess,
}

impl Source {
    /// Every source, highest rank first: the mail domain's own statements (PACC, whose
    /// digest can be DNSSEC-signed; HTTPS autoconfig; SRV), then the database, then
    /// MX-derived guesses and Exchange Autodiscover (Thunderbird's order), plain HTTP (anyone
    /// on the path can write it) and guessing last.
    pub const ALL: [Source; 10] = [
        Source::Pacc,
        Source::Autoconfig,
        Source::AutoconfigWellKnown,
        Source::Srv,
        Source::Ispdb,
        Source::MxAutoconfig,
        Source::MxIspdb,
        Source::Autodiscover,
        Source::AutoconfigHttp,
        Source::Guess,
    ];

    /// What a discovery asks when the caller names no source: every source but guessing,
    /// which is opt-in.
    pub fn defaults() -> Vec<Source> {
        Source::ALL
            .into_iter()
            .filter(|s| *s != Source::Guess)
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Source::Pacc => "pacc",
            Source::Autoconfig => "autoconfig",
            Source::AutoconfigWellKnown => "autoconfig-wellknown",
            Source::Srv => "srv",
            Source::Ispdb => "ispdb",
            Source::MxAutoconfig => "mx-autoconfig",
            Source::MxIspdb => "mx-ispdb",
            Source::Autodiscover => "autodiscover",
            Source::AutoconfigHttp => "autoconfig-http",
            Source::Guess => "guess",
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
            Source::Pacc => 128,
            Source::Autodiscover => 256,
            Source::Guess => 512,
        }
    }

    pub fn from_bit(bit: u32) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.bit() == bit)
    }

    /// The sources in `mask` in rank order; 0 means [`Source::defaults`] (all but guessing).
    /// Unknown bits: `None`.
    pub fn from_mask(mask: u32) -> Option<Vec<Source>> {
        let all_bits: u32 = Source::ALL.iter().map(|s| s.bit()).sum();
        if mask & !all_bits != 0 {
            return None;
        }
        if mask == 0 {
            return Some(Source::defaults());
        }
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
