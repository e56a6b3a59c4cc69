//! What a context is built from. Everything tests must steer is a field here (docs/design.md §4).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_resolver::proto::rr::Name;

use super::cert::identity::MatchOptions;
use super::dns::anchors::AnchorSource;
use super::dns::resolver::ResolverConfig;
use super::dns::system::ResolvConf;
use super::requests::DispatchMode;
use super::{Error, Result};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// No operation may be given more than this.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct Config {
    /// DNS servers, in order; empty means those of [`Config::resolv_conf`] (with its
    /// `options timeout/attempts/rotate`), followed while the context runs.
    pub nameservers: Vec<SocketAddr>,
    /// The system resolver configuration read when `nameservers` is empty (resolv.conf(5),
    /// default [`DEFAULT_RESOLV_CONF`]). A context re-reads it when it changes.
    pub resolv_conf: PathBuf,
    /// Resolvers asked only when every nameserver above is a DNSSEC roadblock; none by
    /// default, and mailsrv never adds one of its own.
    pub fallback_nameservers: Vec<SocketAddr>,
    /// Zones added to the built-in negative trust anchors (RFC 7646): not validated.
    pub negative_trust_anchors: Vec<String>,
    /// DNSSEC trust anchors (DNSKEY or DS lines); `None` means the built-in IANA root keys.
    pub trust_anchor_file: Option<PathBuf>,
    /// PEM CA bundle for certificate checks; `None` means the system store.
    pub ca_file: Option<PathBuf>,
    /// CA certificates given in memory (`mailsrv_config_add_ca_pem`), checked when added.
    pub ca_certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// Whether the CA file and the in-memory CAs replace the system store (the default) or
    /// are added to it.
    pub ca_mode: CaMode,
    /// Deadline of every operation.
    pub timeout: Duration,
    pub dispatch: DispatchMode,
    /// Only DNSSEC-secure SRV answers count (MAILSRV_FLAG_REQUIRE_SECURE).
    pub require_secure: bool,
    /// Seed for the RFC 2782 weighted order (tests); random when `None`.
    pub rng_seed: Option<u64>,
    /// Whether SRV authenticity checks may connect to the target (the TLS probe).
    pub probe: bool,
    /// Default certificate matching policy (legacy CN, sibling SRV-IDs); strict by default.
    pub match_options: MatchOptions,
    /// Consulted for host addresses before DNS, like getaddrinfo with `hosts: files dns`
    /// (src/core/dns/hosts.rs); `None` turns it off. Default [`DEFAULT_HOSTS_FILE`].
    pub hosts_file: Option<PathBuf>,
    /// ISPDB base URL for account discovery (ends with `/`); `None` turns the ISPDB off.
    pub ispdb_url: Option<String>,
    /// Per-fetch deadline of provider and MX-derived autoconfig fetches.
    pub fetch_timeout: Duration,
    /// Per-fetch deadline of ISPDB lookups, and of each guess.
    pub ispdb_timeout: Duration,
    /// The port of each service where account discovery knows a host only (PACC, guessing).
    pub service_ports: crate::core::account::ServicePorts,
    /// Asked by Exchange Autodiscover to follow a URL outside the mail domain or for
    /// credentials; `None`: never followed, never sent.
    pub autodiscover_hook: Option<crate::core::account::AutodiscoverHook>,
}

/// How configured CA certificates (the CA file, in-memory CAs) relate to the system store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaMode {
    /// They are the only trust anchors (the default; the behaviour before the mode existed).
    #[default]
    Replace,
    /// They are trusted in addition to the system store.
    Add,
}

/// The hosts file used unless the caller sets another or none.
pub const DEFAULT_HOSTS_FILE: &str = "/etc/hosts";
/// The system resolver configuration used unless the caller sets another.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";

impl Default for Config {
    fn default() -> Self {
        Config {
            nameservers: Vec::new(),
            resolv_conf: PathBuf::from(DEFAULT_RESOLV_CONF),
            fallback_nameservers: Vec::new(),
            negative_trust_anchors: Vec::new(),
            trust_anchor_file: None,
            ca_file: None,
            ca_certs: Vec::new(),
            ca_mode: CaMode::Replace,
            timeout: DEFAULT_TIMEOUT,
            dispatch: DispatchMode::Thread,
            require_secure: false,
            rng_seed: None,
            match_options: MatchOptions::default(),
            probe: true,
            hosts_file: Some(PathBuf::from(DEFAULT_HOSTS_FILE)),
            ispdb_url: Some(crate::core::account::DEFAULT_ISPDB_URL.into()),
            fetch_timeout: crate::core::account::DEFAULT_FETCH_TIMEOUT,
            ispdb_timeout: crate::core::account::DEFAULT_ISPDB_TIMEOUT,
            service_ports: crate::core::account::ServicePorts::default(),
            autodiscover_hook: None,
        }
    }
}

impl Config {
    /// Adds a nameserver given as `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT` (port 53 if absent).
    pub fn add_nameserver(&mut self, text: &str) -> Result<()> {
        let addr = parse_nameserver(text)?;
        if !self.nameservers.contains(&addr) {
            self.nameservers.push(addr);
        }
        Ok(())
    }

    /// Adds a resolver tried when the nameservers cannot carry DNSSEC (same forms as above).
    pub fn add_fallback_nameserver(&mut self, text: &str) -> Result<()> {
        let addr = parse_nameserver(text)?;
        if !self.fallback_nameservers.contains(&addr) {
            self.fallback_nameservers.push(addr);
        }
        Ok(())
    }

    /// Adds a negative trust anchor: `zone` and every name under it are not validated.
    pub fn add_negative_trust_anchor(&mut self, zone: &str) -> Result<()> {
        let z = zone.trim_end_matches('.').to_ascii_lowercase();
        let bad = || Error::InvalidArg(format!("{zone:?} is not a DNS zone name"));
        if z.is_empty() || z.len() > 253 || z.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(bad());
        }
        Name::from_ascii(format!("{z}.")).map_err(|_| bad())?;
        if !self.negative_trust_anchors.contains(&z) {
            self.negative_trust_anchors.push(z);
        }
        Ok(())
    }

    /// Whether the nameservers come from the system configuration ([`Config::resolv_conf`]),
    /// which may change while a context runs.
    pub fn follows_system(&self) -> bool {
        self.nameservers.is_empty()
    }

    /// What the resolver is built from: the configured nameservers or resolv.conf's, the
    /// built-in and added negative trust anchors, and the per-exchange budget.
    pub fn resolver_config(&self, anchors: AnchorSource) -> Result<ResolverConfig> {
        let sys = if self.follows_system() {
            ResolvConf::read(&self.resolv_conf)
        } else {
            ResolvConf::default()
        };
        self.resolver_config_with(anchors, &sys)
    }

    /// [`Config::resolver_config`] with `sys` as the system configuration (what
    /// [`Config::resolv_conf`] says; its nameservers count only when none is configured).
    pub fn resolver_config_with(
        &self,
        anchors: AnchorSource,
        sys: &ResolvConf,
    ) -> Result<ResolverConfig> {
        let nameservers = if self.follows_system() {
            sys.nameservers.clone()
        } else {
            self.nameservers.clone()
        };
        if nameservers.is_empty() {
            return Err(Error::InvalidArg(format!(
                "no nameserver configured and none found in {}",
                self.resolv_conf.display()
            )));
        }
        // One exchange may use a third of the budget, so a retry still fits; resolv.conf's
        // `timeout` lowers it further when smaller.
        let mut query_timeout =
            (self.timeout / 3).clamp(Duration::from_millis(100), Duration::from_secs(5));
        if let Some(t) = sys.timeout {
            query_timeout = query_timeout.min(t.max(Duration::from_millis(100)));
        }
        let mut rc = ResolverConfig::simple(nameservers, anchors, query_timeout);
        rc.fallback_nameservers = self.fallback_nameservers.clone();
        rc.attempts = sys.attempts.map_or(2, |a| a.saturating_sub(1).min(4));
        rc.rotate = sys.rotate;
        rc.hosts_file = self.hosts_file.clone();
        for z in &self.negative_trust_anchors {
            if let Ok(n) = Name::from_ascii(format!("{z}.")) {
                rc.negative_anchors.push(n);
            }
        }
        Ok(rc)
    }

    /// Sets the ISPDB base URL: an `https://` (or, for tests, `http://`) URL; a missing
    /// final `/` is added. An empty text turns the ISPDB sources off.
    pub fn set_ispdb_url(&mut self, url: &str) -> Result<()> {
        if url.is_empty() {
            self.ispdb_url = None;
            return Ok(());
        }
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= 1024
            && !url.contains(['?', '#', ' '])
            && url.parse::<http::Uri>().is_ok();
        if !ok {
            return Err(Error::InvalidArg(format!(
                "{url:?} is not an http(s) URL without query"
            )));
        }
        let mut u = url.to_string();
        if !u.ends_with('/') {
            u.push('/');
        }
        self.ispdb_url = Some(u);
        Ok(())
    }

    /// Sets the per-fetch deadlines of account discovery (provider/MX fetches, ISPDB);
    /// 0 restores a default.
    pub fn set_fetch_timeouts(&mut self, fetch: Duration, ispdb: Duration) -> Result<()> {
        if fetch > MAX_TIMEOUT || ispdb > MAX_TIMEOUT {
            return Err(Error::InvalidArg(format!(
                "fetch timeout above {} s",
                MAX_TIMEOUT.as_secs()
            )));
        }
        self.fetch_timeout = if fetch.is_zero() {
            crate::core::account::DEFAULT_FETCH_TIMEOUT
        } else {
            fetch
        };
        self.ispdb_timeout = if ispdb.is_zero() {
            crate::core::account::DEFAULT_ISPDB_TIMEOUT
        } else {
            ispdb
        };
        Ok(())
    }

    /// Sets the deadline; 0 restores the default.
    pub fn set_timeout(&mut self, t: Duration) -> Result<()> {
        if t > MAX_TIMEOUT {
            return Err(Error::InvalidArg(format!(
                "timeout above {} s",
                MAX_TIMEOUT.as_secs()
            )));
        }
        self.timeout = if t.is_zero() { DEFAULT_TIMEOUT } else { t };
        Ok(())
    }
}

pub fn parse_nameserver(text: &str) -> Result<SocketAddr> {
    let bad = || Error::InvalidArg(format!("{text:?} is not IP, IP:PORT or [IPv6]:PORT"));
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| bad())
}

/// The `nameserver` lines of /etc/resolv.conf (the default when none is configured).
pub fn system_nameservers() -> Vec<SocketAddr> {
    ResolvConf::read(Path::new(DEFAULT_RESOLV_CONF)).nameservers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_forms() {
        assert_eq!(parse_nameserver("127.0.10.1:5353").unwrap().port(), 5353);
        assert_eq!(parse_nameserver("127.0.10.1").unwrap().port(), 53);
        assert_eq!(parse_nameserver("[::1]:5353").unwrap().port(), 5353);
        assert_eq!(parse_nameserver("::1").unwrap().port(), 53);
        assert_eq!(parse_nameserver("[::1]").unwrap().port(), 53);
        for bad in ["", "localhost:53", "127.0.0.1:99999", "1.2.3", "[::1]:x"] {
            assert!(parse_nameserver(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolv_conf_options() {
        let r = ResolvConf::parse(
            "# comment\nnameserver 127.0.0.2\nnameserver fe80::1%eth0\nsearch x\n\
             options ndots:2 timeout:1 attempts:3 rotate\n",
        );
        assert_eq!(r.nameservers.len(), 2);
        assert_eq!(r.timeout, Some(Duration::from_secs(1)));
        assert_eq!(r.attempts, Some(3));
        assert!(r.rotate);
        assert_eq!(ResolvConf::parse("options attempts:99").attempts, Some(5));
    }

    #[test]
    fn negative_anchor_names() {
        let mut c = Config::default();
        c.add_negative_trust_anchor("Corp.Example.").unwrap();
        c.add_negative_trust_anchor("corp.example").unwrap();
        assert_eq!(c.negative_trust_anchors, vec!["corp.example".to_string()]);
        for bad in ["", ".", "a..b", &"x".repeat(64)] {
            assert!(c.add_negative_trust_anchor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts() {
        let mut c = Config::default();
        c.set_timeout(Duration::ZERO).unwrap();
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.set_timeout(Duration::from_secs(601)).is_err());
    }
}
