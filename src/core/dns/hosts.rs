//! The hosts file (hosts(5), `/etc/hosts` by default) consulted for host addresses before
//! DNS, as getaddrinfo does with nsswitch's default `hosts: files dns`: when the file names
//! the host, its entries are the answer (both families) and DNS is not asked for it.
//!
//! Addresses from the file carry no DNSSEC state of their own: they are reported as
//! [`crate::core::dns::answer::DnssecState::HostsFile`], never as secure, and DANE never applies to
//! them (docs/SECURITY.md, "Hosts file"). The file is re-read when its modification time,
//! size or inode changes (one `stat` per lookup, [`FileStamp`]); a missing or unreadable
//! file is empty.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::core::dns::answer::MAX_ADDRESSES_PER_FAMILY;
use crate::core::dns::system::FileStamp;

/// Host name (lower case, no trailing dot) to its addresses.
type Table = HashMap<String, Vec<IpAddr>>;

/// A hosts file, parsed lazily and cached until it changes.
#[derive(Debug)]
pub struct HostsFile {
    path: PathBuf,
    cache: Mutex<Option<(FileStamp, Table)>>,
}

impl HostsFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        HostsFile {
            path: path.into(),
            cache: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The addresses the file gives `host` (a name, any case, trailing dot optional): IPv6
    /// first, then IPv4, each in file order, at most [`MAX_ADDRESSES_PER_FAMILY`] per
    /// family. `None` when the file does not name the host.
    pub fn lookup(&self, host: &str) -> Option<Vec<IpAddr>> {
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        if key.is_empty() {
            return None;
        }
        let stamp = FileStamp::of(&self.path);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match (&*cache, stamp) {
            (Some((old, _)), Some(now)) => *old == now,
            _ => false,
        };
        if !fresh {
            *cache = stamp.map(|s| {
                let text = std::fs::read_to_string(&self.path).unwrap_or_default();
                (s, parse(&text))
            });
        }
        cache.as_ref()?.1.get(&key).cloned()
    }
}

/// Parses hosts(5) text: `address name [aliases...]`, `#` starts a comment. Lines whose
/// address does not parse (including scoped `fe80::1%eth0`) are skipped.
pub fn parse(text: &str) -> Table {
    let mut map = Table::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        for name in words {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            let list = map.entry(name).or_default();
            let same_family = list.iter().filter(|a| a.is_ipv6() == ip.is_ipv6()).count();
            if !list.contains(&ip) && same_family < MAX_ADDRESSES_PER_FAMILY {
                list.push(ip);
            }
        }
    }
    for list in map.values_mut() {
        // Stable: IPv6 first, then IPv4, each in file order (as discovery reports DNS).
        list.sort_by_key(|a| a.is_ipv4());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        let m = parse(
            "# comment\n127.0.0.1 localhost\n::1 localhost ip6-localhost\n\
             192.0.2.7  Mail.Example.NET. mail # trailing comment\n\
             fe80::1%eth0 scoped\nnot-an-ip name\n192.0.2.8 mail.example.net\n",
        );
        assert_eq!(
            m["localhost"],
            vec![
                "::1".parse::<IpAddr>().unwrap(),
                "127.0.0.1".parse().unwrap()
            ]
        );
        assert_eq!(m["mail.example.net"].len(), 2);
        assert!(m.contains_key("mail"));
        assert!(!m.contains_key("scoped"));
        assert!(!m.contains_key("name"));
    }

    #[test]
    fn cap_per_family() {
        let text: String = (0..40).map(|i| format!("10.0.0.{i} many\n")).collect();
        assert_eq!(parse(&text)["many"].len(), MAX_ADDRESSES_PER_FAMILY);
    }

    #[test]
    fn reread_when_changed_and_missing_is_empty() {
        let dir = std::env::temp_dir().join(format!("mailsrv-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts");
        let h = HostsFile::new(&path);
        assert_eq!(h.lookup("a.test"), None);
        std::fs::write(&path, "127.0.0.5 a.test\n").unwrap();
        assert_eq!(
            h.lookup("A.test."),
            Some(vec!["127.0.0.5".parse().unwrap()])
        );
        std::fs::write(&path, "127.0.0.6 a.test b.test\n").unwrap();
        assert_eq!(h.lookup("b.test"), Some(vec!["127.0.0.6".parse().unwrap()]));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(h.lookup("a.test"), None);
        let _ = std::fs::remove_dir(&dir);
    }
}
