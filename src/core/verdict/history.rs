//! The observation history: when each SRV answer (domain, service, target, port) was first
//! and last seen, so an unverified change is offered to the user only once it has persisted.
//!
//! The file is the client's; mailsrv writes it atomically (temp file, fsync, rename, fsync of
//! the folder) under an exclusive lock, merging with what another process saved meanwhile, so
//! a crash never loses or damages it and two writers lose no observation. A damaged file is
//! reported and moved aside (`<file>.corrupt-<unix time>`), never silently replaced.
//!
//! Format, version 1 (text, one record per line, fields separated by single spaces):
//! `mailsrv-history 1` / `obs DOMAIN SERVICE TARGET PORT FIRST_SEEN LAST_SEEN` ... /
//! `end COUNT`. The trailer makes truncation detectable.
//!
//! Version 2 (written now) adds a last field to `obs` lines, SOURCE: the account-discovery
//! source that named the answer at its latest sighting whose source is known (`srv`,
//! `ispdb`, `mx-autoconfig`, ...; `-` when unknown), and one line kind, `declined DOMAIN
//! SERVICE TARGET PORT AT` (the user declined that answer at AT; see
//! [`History::decline`]); COUNT counts both kinds.
//!
//! Version policy: every older version is read (and written back in the current one); a
//! newer version is refused with [`Error::UnsupportedVersion`] and the file is left
//! exactly as it is (never moved aside as damaged, never overwritten): a downgrade must not
//! lose what a newer mailsrv saved. Only a file that is not a history of any version, or
//! a damaged one of a known version, is moved aside as corrupt.
//!
//! The interruption rule (an answer's first-seen time starts again once another answer was
//! seen for the same domain and service) is kept across merges: a record's first-seen time
//! is never at or before the last sighting of another answer that came before its own last
//! sighting ([`settle`]). Records hold enough for this (each first and last sighting); files
//! written before the rule was kept are repaired on open.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::core::address::normalize_domain;
use crate::core::service::Service;
use crate::core::source::Source;
use crate::core::{Error, Result};

/// The first line's word; the format version follows it.
const MAGIC_WORD: &str = "mailsrv-history";
/// The newest format version this library reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// More records than any client has accounts for; a bigger file is treated as damaged.
const MAX_RECORDS: usize = 100_000;

/// Which SRV answer an observation is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObservationKey {
    pub domain: String,
    pub service: Service,
    pub target: String,
    pub port: u16,
}

/// When an answer was seen, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub first: u64,
    pub last: u64,
}

/// One record: when the answer was seen, and the source that named it at its latest
/// sighting whose source is known (`None`: never recorded, as in version-1 files and for
/// observations the client made itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub seen: Seen,
    pub source: Option<Source>,
}

/// What a history holds: the observations and the user's declines.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    pub records: BTreeMap<ObservationKey, Entry>,
    /// When the user declined each answer (Unix seconds).
    pub declined: BTreeMap<ObservationKey, u64>,
}

/// The observations of one history (a file, or memory only).
#[derive(Debug, Clone)]
pub struct History {
    /// `None`: in memory only ([`History::import`]); [`History::export`] gives the bytes.
    path: Option<PathBuf>,
    records: BTreeMap<ObservationKey, Entry>,
    declined: BTreeMap<ObservationKey, u64>,
    /// [`History::prune`]'s cut-off, applied again to what a save merges from the file.
    pruned_before: Option<u64>,
}

impl History {
    /// Opens (or starts) the history kept in `path`. A missing file is an empty history;
    /// a damaged one is moved aside and reported as [`Error::Corrupt`]; one written by a
    /// newer mailsrv is [`Error::UnsupportedVersion`] and left untouched.
    pub fn open(path: &Path) -> Result<Self> {
        let parsed = read_records(path)?;
        Ok(History {
            path: Some(path.to_path_buf()),
            records: settle(parsed.records.into_iter().map(sightings)),
            declined: parsed.declined,
            pruned_before: None,
        })
    }

    /// A history held in memory only, from bytes [`History::export`] (or a history file)
    /// gave; empty bytes start an empty history. Errors: [`Error::UnsupportedVersion`]
    /// (a newer format), [`Error::Corrupt`] (not a history, or damaged).
    pub fn import(bytes: &[u8]) -> Result<Self> {
        let parsed = if bytes.is_empty() {
            Parsed::default()
        } else {
            parse_full(bytes).map_err(|e| match e {
                ParseError::Newer(v) => newer(v, "the history given"),
                ParseError::Bad(why) => {
                    Error::Corrupt(format!("the history given is damaged ({why})"))
                }
            })?
        };
        Ok(History {
            path: None,
            records: settle(parsed.records.into_iter().map(sightings)),
            declined: parsed.declined,
            pruned_before: None,
        })
    }

    /// The history in the file format (see the module comment), for a client that keeps it
    /// in its own store; [`History::import`] reads it back.
    pub fn export(&self) -> String {
        render(&self.records, &self.declined)
    }

    /// The file, or `None` for a history in memory only.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Records that the user declined the answer `key` (the ASK_USER dialog was answered
    /// "no") at `now`. The decline holds for as long as the answer persists without
    /// interruption: while it does, a change check returns NO_CHANGE (reason DECLINED)
    /// instead of asking again. Once another answer is seen for the same domain and service,
    /// the declined answer's run ends; if it comes back, it is a new answer and is judged
    /// (and, after the minimum age, offered) again. A decline never blocks an UPDATE of an
    /// authenticated answer, nor a REJECT. [`History::prune`] removes it with its record.
    /// Errors: [`Error::NotFound`] when that answer was never observed.
    pub fn decline(&mut self, key: ObservationKey, now: u64) -> Result<()> {
        let key = normalized(key)?;
        if !self.records.contains_key(&key) {
            return Err(Error::NotFound(format!(
                "{} {} {}:{} was never observed: nothing to decline",
                key.domain, key.service, key.target, key.port
            )));
        }
        let at = self.declined.entry(key).or_insert(now);
        *at = (*at).max(now);
        Ok(())
    }

    /// True when the user declined `key` during its current uninterrupted run.
    pub fn is_declined(&self, key: &ObservationKey) -> bool {
        let Ok(key) = normalized(key.clone()) else {
            return false;
        };
        match (self.declined.get(&key), self.records.get(&key)) {
            (Some(at), Some(e)) => *at >= e.seen.first,
            _ => false,
        }
    }

    /// Forgets every answer last seen before `older_than` (Unix seconds), with its decline;
    /// returns how many were removed. A later save does not bring them back from the file.
    pub fn prune(&mut self, older_than: u64) -> usize {
        let before = self.records.len();
        self.records.retain(|_, e| e.seen.last >= older_than);
        let records = &self.records;
        self.declined.retain(|k, _| records.contains_key(k));
        self.pruned_before = Some(self.pruned_before.map_or(older_than, |p| p.max(older_than)));
        before - self.records.len()
    }

    /// Merges `other` (a copy of this history that was saved meanwhile, with what it merged
    /// from the file) into this one, so observations made during an asynchronous save are
    /// kept.
    pub fn absorb(&mut self, other: History) {
        let mine = std::mem::take(&mut self.records);
        self.records = settle(mine.into_iter().chain(other.records).map(sightings));
        for (k, at) in other.declined {
            let e = self.declined.entry(k).or_insert(at);
            *e = (*e).max(at);
        }
        self.apply_prune();
    }

    fn apply_prune(&mut self) {
        if let Some(cut) = self.pruned_before {
            self.records.retain(|_, e| e.seen.last >= cut);
        }
        let records = &self.records;
        self.declined.retain(|k, _| records.contains_key(k));
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn get(&self, key: &ObservationKey) -> Option<Seen> {
        self.records.get(key).map(|e| e.seen)
    }

    /// The source that named `key` at its latest sighting with a known source.
    pub fn source(&self, key: &ObservationKey) -> Option<Source> {
        self.records.get(key)?.source
    }

    /// Records that `key` is the answer for its (domain, service) at `now`, its source not
    /// known (see [`History::observe_by`]).
    pub fn observe(&mut self, key: ObservationKey, now: u64) -> Result<Seen> {
        self.observe_by(key, now, None)
    }

    /// Records that `source` named `key` as the answer for its (domain, service) at `now`
    /// (`None`: unknown, which keeps the source recorded before). When another answer was
    /// seen for the same (domain, service) since `key` was last seen, the answer did not
    /// persist: its first-seen time starts again.
    pub fn observe_by(
        &mut self,
        key: ObservationKey,
        now: u64,
        source: Option<Source>,
    ) -> Result<Seen> {
        let key = normalized(key)?;
        let interrupted = |seen: &Seen| {
            self.records.iter().any(|(k, e)| {
                k.domain == key.domain
                    && k.service == key.service
                    && k != &key
                    && e.seen.last > seen.last
            })
        };
        let before = self.records.get(&key);
        let seen = match before {
            Some(e) if !interrupted(&e.seen) => Seen {
                first: e.seen.first.min(now),
                last: e.seen.last.max(now),
            },
            _ => Seen {
                first: now,
                last: now,
            },
        };
        let source = source.or(before.and_then(|e| e.source));
        self.records.insert(key, Entry { seen, source });
        Ok(seen)
    }

    /// Writes the history: under an exclusive lock, merged with the file's current content
    /// (another process may have saved since we read it), atomically replaced. A file a
    /// newer mailsrv wrote meanwhile is [`Error::UnsupportedVersion`] and left alone; an
    /// in-memory history has no file ([`Error::InvalidArg`]: use [`History::export`]).
    pub fn save(&mut self) -> Result<()> {
        let Some(path) = self.path.clone() else {
            return Err(Error::InvalidArg(
                "this history lives in memory (imported): export it instead of saving".into(),
            ));
        };
        let lock = lock_file(&path)?;
        let on_disk = read_records(&path)?;
        let mine = std::mem::take(&mut self.records);
        self.records = settle(mine.into_iter().chain(on_disk.records).map(sightings));
        for (k, at) in on_disk.declined {
            let e = self.declined.entry(k).or_insert(at);
            *e = (*e).max(at);
        }
        self.apply_prune();
        write_atomically(&path, &render(&self.records, &self.declined))?;
        drop(lock);
        Ok(())
    }
}

/// The error for a history in a newer format than this library's.
fn newer(version: u32, what: &str) -> Error {
    Error::UnsupportedVersion(format!(
        "{what} is in history format version {version}, newer than this mailsrv reads (up to {FORMAT_VERSION}); it was left untouched: use a newer mailsrv, or another file"
    ))
}

/// One record as a sighting for [`settle`]: (key, [first, last], source).
type Sighting = (ObservationKey, [u64; 2], Option<Source>);

fn sightings((key, e): (ObservationKey, Entry)) -> Sighting {
    (key, [e.seen.first, e.seen.last], e.source)
}

/// Merges sightings (records of this history and of the file, possibly several per answer)
/// and applies the interruption rule to the result. For each answer, `cutoff` is the latest
/// last-seen time of another answer for the same (domain, service) before the answer's own
/// last sighting: the answer was interrupted then, so its first-seen time is its earliest
/// known sighting after `cutoff` (never earlier: a later first-seen only means waiting
/// longer). Without this a merge by the earliest first-seen would undo a reset
/// (docs/SECURITY.md: an answer seen on day 0, another on day 3, the first again on day 6
/// has persisted since day 6, not day 0). The source kept is that of the latest sighting
/// with a known source (the first given, so this history's, on a tie).
fn settle(sightings: impl IntoIterator<Item = Sighting>) -> BTreeMap<ObservationKey, Entry> {
    type Times = (Vec<u64>, Option<(u64, Source)>);
    let mut times: BTreeMap<ObservationKey, Times> = BTreeMap::new();
    for (key, seen, source) in sightings {
        let (t, named) = times.entry(key).or_default();
        t.extend(seen);
        if let Some(s) = source
            && named.is_none_or(|(at, _)| seen[1] > at)
        {
            *named = Some((seen[1], s));
        }
    }
    let entries: Vec<(ObservationKey, Vec<u64>, u64, Option<Source>)> = times
        .into_iter()
        .map(|(k, (t, named))| {
            let last = t.iter().copied().max().unwrap_or(0);
            (k, t, last, named.map(|(_, s)| s))
        })
        .collect();
    let mut out = BTreeMap::new();
    // Sorted by domain, then service: one group per (domain, service).
    for group in entries.chunk_by(|a, b| a.0.domain == b.0.domain && a.0.service == b.0.service) {
        for (key, times, last, source) in group {
            let cutoff = group
                .iter()
                .filter(|(other, _, other_last, _)| other != key && other_last < last)
                .map(|(_, _, other_last, _)| *other_last)
                .max();
            let first = times
                .iter()
                .copied()
                .filter(|&t| cutoff.is_none_or(|c| t > c))
                .min()
                .unwrap_or(*last);
            let seen = Seen { first, last: *last };
            out.insert(
                key.clone(),
                Entry {
                    seen,
                    source: *source,
                },
            );
        }
    }
    out
}

fn normalized(mut key: ObservationKey) -> Result<ObservationKey> {
    key.domain = normalize_domain(&key.domain)?;
    key.target = normalize_domain(&key.target)?;
    Ok(key)
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Io(format!("{what} {}: {e}", path.display()))
}

/// An exclusive advisory lock on `<path>.lock`, held until dropped.
fn lock_file(path: &Path) -> Result<File> {
    let lock_path = sibling(path, ".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io(&lock_path, "cannot open lock", e))?;
    f.lock().map_err(|e| io(&lock_path, "cannot lock", e))?;
    Ok(f)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read_records(path: &Path) -> Result<Parsed> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Parsed::default()),
        Err(e) => return Err(io(path, "cannot read history", e)),
    };
    parse_full(&bytes).map_err(|e| {
        let why = match e {
            // A newer mailsrv's file: refused, never moved aside or replaced.
            ParseError::Newer(v) => return newer(v, &format!("history {}", path.display())),
            ParseError::Bad(why) => why,
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let kept = sibling(path, &format!(".corrupt-{stamp}-{}", std::process::id()));
        let kept_note = match fs::rename(path, &kept) {
            Ok(()) => format!("kept aside as {}", kept.display()),
            Err(e) => format!("could not be moved aside: {e}"),
        };
        Error::Corrupt(format!(
            "history {} is damaged ({why}); {kept_note}",
            path.display()
        ))
    })
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why bytes are not a history this library can use.
pub(crate) enum ParseError {
    /// A history of a newer format version.
    Newer(u32),
    /// Not a history, or a damaged one.
    Bad(String),
}

impl From<String> for ParseError {
    fn from(s: String) -> Self {
        ParseError::Bad(s)
    }
}

impl From<&str> for ParseError {
    fn from(s: &str) -> Self {
        ParseError::Bad(s.into())
    }
}

/// The observations of a history (the fuzz target's entry point).
pub(crate) fn parse(bytes: &[u8]) -> std::result::Result<BTreeMap<ObservationKey, Entry>, String> {
    match parse_full(bytes) {
        Ok(p) => Ok(p.records),
        Err(ParseError::Newer(v)) => Err(format!("format version {v}")),
        Err(ParseError::Bad(why)) => Err(why),
    }
}

pub(crate) fn parse_full(bytes: &[u8]) -> std::result::Result<Parsed, ParseError> {
    // The version first, from the first line alone: a newer file is recognised as such
    // even when the rest of it is something this version cannot read.
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let version = match std::str::from_utf8(first)
        .ok()
        .and_then(|l| l.strip_prefix(MAGIC_WORD))
        .and_then(|v| v.strip_prefix(' '))
    {
        Some(v) if !v.is_empty() && v.len() <= 9 && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse::<u32>().map_err(|_| "bad format version")?
        }
        _ => return Err("unknown format (no mailsrv-history line)".into()),
    };
    if version > FORMAT_VERSION {
        return Err(ParseError::Newer(version));
    }
    if version == 0 {
        return Err("format version 0".into());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let mut lines = text.split_terminator('\n');
    lines.next();
    let mut records = BTreeMap::new();
    let mut declined = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["declined", domain, service, target, port, at] if version >= 2 => {
                if records.len() + declined.len() >= MAX_RECORDS {
                    return Err("too many records".into());
                }
                let key = ObservationKey {
                    domain: check_name(domain)?,
                    service: Service::from_name(service).ok_or("unknown service")?,
                    target: check_name(target)?,
                    port: port.parse().map_err(|_| "bad port")?,
                };
                declined.insert(key, at.parse().map_err(|_| "bad time")?);
            }
            ["obs", rest @ ..] if rest.len() == if version >= 2 { 7 } else { 6 } => {
                let [domain, service, target, port, first, last] = rest[..6] else {
                    unreachable!("six fields checked above")
                };
                if records.len() + declined.len() >= MAX_RECORDS {
                    return Err("too many records".into());
                }
                let key = ObservationKey {
                    domain: check_name(domain)?,
                    service: Service::from_name(service).ok_or("unknown service")?,
                    target: check_name(target)?,
                    port: port.parse().map_err(|_| "bad port")?,
                };
                let seen = Seen {
                    first: first.parse().map_err(|_| "bad time")?,
                    last: last.parse().map_err(|_| "bad time")?,
                };
                if seen.first > seen.last {
                    return Err("first seen after last seen".into());
                }
                let source = match rest.get(6) {
                    None | Some(&"-") => None,
                    Some(name) => Some(Source::from_name(name).ok_or("unknown source")?),
                };
                records.insert(key, Entry { seen, source });
            }
            ["end", count]
                if count.parse() == Ok(records.len() + declined.len()) && text.ends_with('\n') =>
            {
                return Ok(Parsed { records, declined });
            }
            _ => {
                return Err(
                    format!("bad line {:?}", line.chars().take(80).collect::<String>()).into(),
                );
            }
        }
    }
    Err("truncated (no end line)".into())
}

fn check_name(s: &str) -> std::result::Result<String, String> {
    normalize_domain(s)
        .map_err(|e| e.to_string())
        .and_then(|n| {
            if n == s {
                Ok(n)
            } else {
                Err(format!("name {s:?} is not normalised"))
            }
        })
}

pub(crate) fn render(
    records: &BTreeMap<ObservationKey, Entry>,
    declined: &BTreeMap<ObservationKey, u64>,
) -> String {
    let mut out = format!("{MAGIC_WORD} {FORMAT_VERSION}\n");
    for (k, e) in records {
        out.push_str(&format!(
            "obs {} {} {} {} {} {} {}\n",
            k.domain,
            k.service.name(),
            k.target,
            k.port,
            e.seen.first,
            e.seen.last,
            e.source.map_or("-", Source::name)
        ));
    }
    for (k, at) in declined {
        out.push_str(&format!(
            "declined {} {} {} {} {at}\n",
            k.domain,
            k.service.name(),
            k.target,
            k.port
        ));
    }
    out.push_str(&format!("end {}\n", records.len() + declined.len()));
    out
}

/// temp file in the same folder, fsync, rename over the target, fsync of the folder.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = sibling(path, &format!(".tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| io(path, "cannot save history", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC_V1: &str = "mailsrv-history 1";
    const MAGIC_V2: &str = "mailsrv-history 2";

    fn key(target: &str) -> ObservationKey {
        ObservationKey {
            domain: "example.com".into(),
            service: Service::Imaps,
            target: target.into(),
            port: 993,
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mailsrv-hist-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("history")
    }

    #[test]
    fn round_trip_and_persistence() {
        let path = temp("rt");
        let mut h = History::open(&path).unwrap();
        assert!(h.is_empty());
        h.observe(key("a.example.net"), 100).unwrap();
        h.observe(key("A.Example.NET."), 200).unwrap();
        h.save().unwrap();
        let h2 = History::open(&path).unwrap();
        assert_eq!(
            h2.get(&key("a.example.net")),
            Some(Seen {
                first: 100,
                last: 200
            })
        );
    }

    #[test]
    fn an_interruption_restarts_first_seen() {
        let path = temp("int");
        let mut h = History::open(&path).unwrap();
        h.observe(key("a.example.net"), 100).unwrap();
        h.observe(key("b.example.net"), 150).unwrap();
        assert_eq!(
            h.observe(key("a.example.net"), 200).unwrap(),
            Seen {
                first: 200,
                last: 200
            }
        );
        assert_eq!(
            h.observe(key("a.example.net"), 300).unwrap(),
            Seen {
                first: 200,
                last: 300
            }
        );
    }

    #[test]
    fn damaged_files_are_kept_aside_and_reported() {
        for (name, junk) in [
            (
                "trunc",
                format!("{MAGIC_V2}\nobs example.com imaps a.example.net 993 1 2 srv\n"),
            ),
            ("magic", "something else\n".to_string()),
            (
                "field",
                format!("{MAGIC_V2}\nobs example.com imaps a.example.net 99999 1 2 -\nend 1\n"),
            ),
            (
                "source",
                format!("{MAGIC_V2}\nobs example.com imaps a.example.net 993 1 2 dns\nend 1\n"),
            ),
            (
                "v1 line in v2",
                format!("{MAGIC_V2}\nobs example.com imaps a.example.net 993 1 2\nend 1\n"),
            ),
            (
                "v2 line in v1",
                format!("{MAGIC_V1}\nobs example.com imaps a.example.net 993 1 2 srv\nend 1\n"),
            ),
            ("count", format!("{MAGIC_V2}\nend 3\n")),
        ] {
            let path = temp(name);
            fs::write(&path, &junk).unwrap();
            let err = History::open(&path).unwrap_err();
            assert!(matches!(err, Error::Corrupt(_)), "{name}: {err:?}");
            assert!(!path.exists(), "{name}: moved aside");
            let kept: Vec<_> = fs::read_dir(path.parent().unwrap())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
                .collect();
            assert_eq!(kept.len(), 1, "{name}");
            assert_eq!(
                fs::read_to_string(kept[0].path()).unwrap(),
                junk,
                "{name}: content kept"
            );
        }
    }

    #[test]
    fn concurrent_saves_merge() {
        let path = temp("merge");
        let mut a = History::open(&path).unwrap();
        let mut b = History::open(&path).unwrap();
        a.observe(key("a.example.net"), 100).unwrap();
        b.observe(key("b.example.net"), 110).unwrap();
        a.save().unwrap();
        b.save().unwrap();
        let h = History::open(&path).unwrap();
        assert_eq!(h.len(), 2, "neither observation lost");
    }

    const DAY: u64 = 86_400;

    /// Seven days after day 0; the answer must not look seven days old (policy's default age).
    fn first_seen_on_day_7(path: &Path) -> u64 {
        let mut h = History::open(path).unwrap();
        h.observe(key("a.example.net"), 7 * DAY).unwrap().first
    }

    #[test]
    fn an_interruption_survives_save_and_reopen() {
        let path = temp("days");
        for (day, target) in [
            (0, "a.example.net"),
            (3, "b.example.net"),
            (6, "a.example.net"),
        ] {
            let mut h = History::open(&path).unwrap();
            h.observe(key(target), day * DAY).unwrap();
            h.save().unwrap();
        }
        let h = History::open(&path).unwrap();
        assert_eq!(
            h.get(&key("a.example.net")),
            Some(Seen {
                first: 6 * DAY,
                last: 6 * DAY
            }),
            "the merge kept the reset"
        );
        assert_eq!(first_seen_on_day_7(&path), 6 * DAY);
    }

    /// Two writers on one file, each saving after its own observations.
    fn two_writers(name: &str, steps: &[(usize, &str, u64)]) -> PathBuf {
        let path = temp(name);
        let mut w = [History::open(&path).unwrap(), History::open(&path).unwrap()];
        for &(writer, target, day) in steps {
            if target == "save" {
                w[writer].save().unwrap();
            } else {
                w[writer].observe(key(target), day * DAY).unwrap();
            }
        }
        path
    }

    #[test]
    fn an_interruption_seen_by_another_writer_survives_the_merge() {
        // Writer 0 never sees B; writer 1 never sees A: only the file knows both.
        let path = two_writers(
            "writers",
            &[
                (0, "a.example.net", 0),
                (0, "save", 0),
                (1, "b.example.net", 3),
                (1, "save", 0),
                (0, "a.example.net", 6),
                (0, "save", 0),
            ],
        );
        assert_eq!(first_seen_on_day_7(&path), 6 * DAY);

        // The other order: the writer that saw B saves last, over an older first-seen of A.
        let path = two_writers(
            "writers2",
            &[
                (0, "a.example.net", 0),
                (0, "save", 0),
                (1, "b.example.net", 3),
                (1, "a.example.net", 6),
                (0, "a.example.net", 5),
                (0, "save", 0),
                (1, "save", 0),
            ],
        );
        assert_eq!(first_seen_on_day_7(&path), 5 * DAY, "A's run since day 5");
    }

    #[test]
    fn a_file_saved_by_the_old_merge_is_repaired_on_open() {
        let path = temp("v1");
        fs::write(
            &path,
            format!(
                "{MAGIC_V1}\nobs example.com imaps a.example.net 993 0 {}\n\
                 obs example.com imaps b.example.net 993 {} {}\nend 2\n",
                6 * DAY,
                3 * DAY,
                3 * DAY
            ),
        )
        .unwrap();
        assert_eq!(first_seen_on_day_7(&path), 6 * DAY);
    }

    #[test]
    fn uninterrupted_answers_keep_their_first_seen_across_writers() {
        let path = temp("keep");
        let mut w1 = History::open(&path).unwrap();
        let mut w2 = History::open(&path).unwrap();
        w1.observe(key("a.example.net"), 0).unwrap();
        w1.save().unwrap();
        w2.observe(key("a.example.net"), 2 * DAY).unwrap();
        w2.observe(key("b.example.net"), 9 * DAY).unwrap(); // a later switch, not in between
        w2.save().unwrap();
        let h = History::open(&path).unwrap();
        assert_eq!(h.get(&key("a.example.net")).unwrap().first, 0);
        assert_eq!(h.get(&key("b.example.net")).unwrap().first, 9 * DAY);
    }

    #[test]
    fn a_newer_format_is_refused_and_left_untouched() {
        let path = temp("newer");
        let body = "mailsrv-history 3\nsomething a later mailsrv writes\nend 1\n";
        fs::write(&path, body).unwrap();
        let err = History::open(&path).unwrap_err();
        assert!(matches!(err, Error::UnsupportedVersion(_)), "{err:?}");
        assert!(err.detail().contains("version 3"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), body, "not moved aside");
        let moved = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
        assert!(!moved);
        // A save over a file that became newer meanwhile writes nothing.
        let other = temp("newer-save");
        let mut h = History::open(&other).unwrap();
        h.observe(key("a.example.net"), 100).unwrap();
        fs::write(&other, body).unwrap();
        assert!(matches!(h.save(), Err(Error::UnsupportedVersion(_))));
        assert_eq!(fs::read_to_string(&other).unwrap(), body);
        // Import: the same refusal.
        assert!(matches!(
            History::import(body.as_bytes()),
            Err(Error::UnsupportedVersion(_))
        ));
        // Not a history at all, or version 0: damaged.
        for junk in [
            "mailsrv-history x\nend 0\n",
            "mailsrv-history 0\nend 0\n",
            "mailsrv-history\n",
        ] {
            assert!(
                matches!(History::import(junk.as_bytes()), Err(Error::Corrupt(_))),
                "{junk}"
            );
        }
    }

    #[test]
    fn declines_hold_until_the_answer_is_interrupted() {
        let mut h = History::import(b"").unwrap();
        assert!(matches!(
            h.decline(key("a.example.net"), 10),
            Err(Error::NotFound(_))
        ));
        h.observe(key("a.example.net"), 0).unwrap();
        h.decline(key("A.Example.NET."), 10 * DAY).unwrap();
        assert!(h.is_declined(&key("a.example.net")));
        h.observe(key("a.example.net"), 20 * DAY).unwrap();
        assert!(h.is_declined(&key("a.example.net")), "still the same run");
        // Another answer, then the declined one again: a new run, offered again later.
        h.observe(key("b.example.net"), 21 * DAY).unwrap();
        h.observe(key("a.example.net"), 22 * DAY).unwrap();
        assert!(!h.is_declined(&key("a.example.net")));
    }

    #[test]
    fn declines_survive_save_export_and_import_in_version_2() {
        let path = temp("decl");
        let mut h = History::open(&path).unwrap();
        h.observe(key("a.example.net"), 100).unwrap();
        h.save().unwrap();
        assert!(
            fs::read_to_string(&path)
                .unwrap()
                .starts_with("mailsrv-history 2\n")
        );
        h.decline(key("a.example.net"), 200).unwrap();
        h.save().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("mailsrv-history 2\n"), "{text}");
        assert!(
            text.contains("declined example.com imaps a.example.net 993 200\n"),
            "{text}"
        );
        assert!(text.ends_with("end 2\n"), "{text}");
        let h2 = History::open(&path).unwrap();
        assert!(h2.is_declined(&key("a.example.net")));
        let copy = History::import(h2.export().as_bytes()).unwrap();
        assert!(copy.is_declined(&key("a.example.net")));
        assert_eq!(copy.export(), h2.export());
        assert!(copy.path().is_none());
        let mut copy = copy;
        assert!(matches!(copy.save(), Err(Error::InvalidArg(_))));
        // A version-1 reader's file is read as such.
        let v1 = format!("{MAGIC_V1}\nobs example.com imaps a.example.net 993 1 2\nend 1\n");
        assert_eq!(History::import(v1.as_bytes()).unwrap().len(), 1);
        // A declined line in a version-1 file is damage.
        let bad = format!(
            "{MAGIC_V1}\nobs example.com imaps a.example.net 993 1 2\ndeclined example.com imaps a.example.net 993 5\nend 2\n"
        );
        assert!(matches!(
            History::import(bad.as_bytes()),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn prune_forgets_old_answers_and_a_save_does_not_bring_them_back() {
        let path = temp("prune");
        let mut h = History::open(&path).unwrap();
        h.observe(key("old.example.net"), DAY).unwrap();
        h.observe(key("new.example.net"), 400 * DAY).unwrap();
        h.decline(key("old.example.net"), 2 * DAY).unwrap();
        h.save().unwrap();
        let mut h = History::open(&path).unwrap();
        assert_eq!(h.prune(100 * DAY), 1);
        assert_eq!(h.prune(100 * DAY), 0);
        h.save().unwrap();
        let h = History::open(&path).unwrap();
        assert_eq!(h.len(), 1);
        assert!(h.get(&key("old.example.net")).is_none());
        assert!(
            fs::read_to_string(&path)
                .unwrap()
                .starts_with("mailsrv-history 2\n"),
            "the decline went with its record"
        );
    }

    #[test]
    fn absorb_keeps_observations_made_during_a_save() {
        let path = temp("absorb");
        let mut h = History::open(&path).unwrap();
        h.observe(key("a.example.net"), 100).unwrap();
        let mut copy = h.clone();
        h.observe(key("a.example.net"), 300).unwrap();
        copy.save().unwrap();
        h.absorb(copy);
        assert_eq!(
            h.get(&key("a.example.net")),
            Some(Seen {
                first: 100,
                last: 300
            })
        );
    }

    #[test]
    fn the_source_that_named_an_answer_round_trips() {
        let path = temp("source");
        let mut h = History::open(&path).unwrap();
        h.observe_by(key("a.example.net"), 100, Some(Source::Ispdb))
            .unwrap();
        h.observe_by(key("b.example.net"), 110, Some(Source::MxAutoconfig))
            .unwrap();
        // Seen again without a known source: the recorded one stays.
        h.observe(key("b.example.net"), 120).unwrap();
        h.save().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("mailsrv-history 2\n"), "{text}");
        assert!(
            text.contains("obs example.com imaps a.example.net 993 100 100 ispdb\n"),
            "{text}"
        );
        let mut h = History::open(&path).unwrap();
        assert_eq!(h.source(&key("a.example.net")), Some(Source::Ispdb));
        assert_eq!(h.source(&key("b.example.net")), Some(Source::MxAutoconfig));
        // The same server named by another source: still one record (it persists across
        // sources), now with the new source.
        let seen = h
            .observe_by(key("b.example.net"), 130, Some(Source::Autoconfig))
            .unwrap();
        assert_eq!(seen.first, 110);
        assert_eq!(h.source(&key("b.example.net")), Some(Source::Autoconfig));
    }

    #[test]
    fn version_1_files_are_read_without_sources_and_saved_as_version_2() {
        let path = temp("v1-read");
        fs::write(
            &path,
            format!("{MAGIC_V1}\nobs example.com imaps a.example.net 993 5 9\nend 1\n"),
        )
        .unwrap();
        let mut h = History::open(&path).unwrap();
        assert_eq!(
            h.get(&key("a.example.net")),
            Some(Seen { first: 5, last: 9 })
        );
        assert_eq!(h.source(&key("a.example.net")), None);
        h.save().unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{MAGIC_V2}\nobs example.com imaps a.example.net 993 5 9 -\nend 1\n")
        );
    }

    #[test]
    fn a_merge_keeps_the_source_of_the_latest_sighting() {
        let path = temp("source-merge");
        let mut w1 = History::open(&path).unwrap();
        let mut w2 = History::open(&path).unwrap();
        w1.observe_by(key("a.example.net"), 200, Some(Source::Srv))
            .unwrap();
        w2.observe_by(key("a.example.net"), 100, Some(Source::Ispdb))
            .unwrap();
        w1.save().unwrap();
        w2.save().unwrap(); // the older sighting is saved last
        let h = History::open(&path).unwrap();
        assert_eq!(h.source(&key("a.example.net")), Some(Source::Srv));
        assert_eq!(
            h.get(&key("a.example.net")),
            Some(Seen {
                first: 100,
                last: 200
            })
        );
    }
}
