//! The system's DNS configuration: resolv.conf(5), and the stamp that tells a file's
//! versions apart (resolv.conf and the hosts file are re-read only when it changes).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// What tells a file's versions apart without reading it (as glibc does for resolv.conf):
/// inode, size, modification and change times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    ino: u64,
    dev: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    /// The stamp of the file at `path` now; `None` when it cannot be read (missing).
    pub fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            ino: m.ino(),
            dev: m.dev(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// What mailsrv takes from resolv.conf(5): the nameservers and `options timeout:N
/// attempts:N rotate` (the glibc defaults, 5 s and 2 attempts, apply when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<SocketAddr>,
    pub timeout: Option<Duration>,
    /// Tries per nameserver (glibc's `attempts`, capped at 5 like glibc).
    pub attempts: Option<usize>,
    pub rotate: bool,
}

impl ResolvConf {
    pub fn read(path: &Path) -> Self {
        Self::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    pub fn parse(text: &str) -> Self {
        let mut out = ResolvConf::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words
                        .next()
                        .and_then(|w| w.split('%').next())
                        .and_then(|w| w.parse::<IpAddr>().ok())
                    {
                        out.nameservers.push(SocketAddr::new(ip, 53));
                    }
                }
                Some("options") => {
                    for opt in words {
                        if let Some(n) = opt.strip_prefix("timeout:").and_then(|n| n.parse().ok()) {
                            out.timeout = Some(Duration::from_secs(u64::min(n, 30)));
                        } else if let Some(n) =
                            opt.strip_prefix("attempts:").and_then(|n| n.parse().ok())
                        {
                            out.attempts = Some(usize::clamp(n, 1, 5));
                        } else if opt == "rotate" {
                            out.rotate = true;
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}
