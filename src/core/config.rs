//! What a context is built from. Everything tests must steer is a field here (style.md §8.12).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::identity::MatchOptions;
use super::requests::DispatchMode;
use super::{Error, Result};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// No operation may be given more than this.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct Config {
    /// DNS servers, in order; empty means those of /etc/resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    /// DNSSEC trust anchors (DNSKEY or DS lines); `None` means the built-in IANA root keys.
    pub trust_anchor_file: Option<PathBuf>,
    /// PEM CA bundle for certificate checks; `None` means the system store.
    pub ca_file: Option<PathBuf>,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nameservers: Vec::new(),
            trust_anchor_file: None,
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
            dispatch: DispatchMode::Thread,
            require_secure: false,
            rng_seed: None,
            match_options: MatchOptions::default(),
            probe: true,
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
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
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
    fn timeouts() {
        let mut c = Config::default();
        c.set_timeout(Duration::ZERO).unwrap();
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.set_timeout(Duration::from_secs(601)).is_err());
    }
}
