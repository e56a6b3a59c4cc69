//! The observation history: when each answer (domain, service, target, port) was first and
//! last seen, so an unverified change is offered to the user only once it has persisted, and
//! which source named it at its latest sighting (SRV, provider autoconfig, the ISPDB, the
//! MX's provider, ...).
//!
//! The file is the client's; mailsrv writes it atomically (temp file, fsync, rename, fsync of
//! the folder) under an exclusive lock, merging with what another process saved meanwhile, so
//! a crash never loses or damages it and two writers lose no observation. A damaged file is
//! reported and moved aside (`<file>.corrupt-<unix time>`), never silently replaced.
//!
//! Format, version 2 (text, one record per line, fields separated by single spaces):
//! `mailsrv-history 2` / `obs DOMAIN SERVICE TARGET PORT FIRST_SEEN LAST_SEEN SOURCE` ... /
//! `end COUNT`, where SOURCE is a source name as the CLI prints it (`srv`, `autoconfig`,
//! `autoconfig-wellknown`, `ispdb`, `mx-autoconfig`, `mx-ispdb`, `autoconfig-http`) or `-`
//! when unknown. The trailer makes truncation detectable. Version 1 (the same without
//! SOURCE) is still read, its records with no source; saving writes version 2.
//!
//! An observation is keyed by what was named, not by who named it: an answer persists
//! across sources (a server the ISPDB named yesterday and the provider's document names
//! today has been seen since yesterday). The source is what the client saves as the
//! account's origin when it takes the answer ([`crate::core::policy::Origin::of_source`]).
//!
//! The interruption rule (an answer's first-seen time starts again once another answer was
//! seen for the same domain and service) is kept across merges: a record's first-seen time
//! is never at or before the last sighting of another answer that came before its own last
//! sighting ([`settle`]). Records hold enough for this (each first and last sighting), so
//! the format stays version 1; files written before the rule was kept are repaired on open.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::core::address::normalize_domain;
use crate::core::service::Service;
use crate::core::source::Source;
use crate::core::{Error, Result};

const MAGIC: &str = "mailsrv-history 2";
/// The format before sources were recorded; read, never written.
const MAGIC_V1: &str = "mailsrv-history 1";
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

/// The observations of one history file.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
    records: BTreeMap<ObservationKey, Entry>,
}

impl History {
    /// Opens (or starts) the history kept in `path`. A missing file is an empty history;
    /// a damaged one is moved aside and reported as [`Error::Corrupt`].
    pub fn open(path: &Path) -> Result<Self> {
        let records = settle(read_records(path)?.into_iter().map(sightings));
        Ok(History {
            path: path.to_path_buf(),
            records,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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

    /// The source that named `key` when it was last seen, when recorded.
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
    /// (another process may have saved since we read it), atomically replaced.
    pub fn save(&mut self) -> Result<()> {
        let lock = lock_file(&self.path)?;
        let on_disk = read_records(&self.path)?;
        let mine = std::mem::take(&mut self.records);
        self.records = settle(mine.into_iter().chain(on_disk).map(sightings));
        write_atomically(&self.path, &render(&self.records))?;
        drop(lock);
        Ok(())
    }
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

fn read_records(path: &Path) -> Result<BTreeMap<ObservationKey, Entry>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io(path, "cannot read history", e)),
    };
    parse(&bytes).map_err(|why| {
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

pub(crate) fn parse(bytes: &[u8]) -> std::result::Result<BTreeMap<ObservationKey, Entry>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let mut lines = text.split_terminator('\n');
    let v1 = match lines.next() {
        Some(MAGIC) => false,
        Some(MAGIC_V1) => true,
        _ => return Err("unknown format or version".into()),
    };
    let fields = if v1 { 6 } else { 7 };
    let mut records = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["obs", rest @ ..] if rest.len() == fields => {
                if records.len() >= MAX_RECORDS {
                    return Err("too many records".into());
                }
                let [domain, service, target, port, first, last] = rest[..6] else {
                    unreachable!("six fields checked above")
                };
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
            ["end", count] if count.parse() == Ok(records.len()) && text.ends_with('\n') => {
                return Ok(records);
            }
            _ => {
                return Err(format!(
                    "bad line {:?}",
                    line.chars().take(80).collect::<String>()
                ));
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

pub(crate) fn render(records: &BTreeMap<ObservationKey, Entry>) -> String {
    let mut out = format!("{MAGIC}\n");
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
    out.push_str(&format!("end {}\n", records.len()));
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
                format!("{MAGIC}\nobs example.com imaps a.example.net 993 1 2 srv\n"),
            ),
            ("magic", "something else\n".to_string()),
            ("v3", "mailsrv-history 3\nend 0\n".to_string()),
            (
                "field",
                format!("{MAGIC}\nobs example.com imaps a.example.net 99999 1 2 -\nend 1\n"),
            ),
            (
                "source",
                format!("{MAGIC}\nobs example.com imaps a.example.net 993 1 2 dns\nend 1\n"),
            ),
            (
                "v1 line in v2",
                format!("{MAGIC}\nobs example.com imaps a.example.net 993 1 2\nend 1\n"),
            ),
            (
                "v2 line in v1",
                format!("{MAGIC_V1}\nobs example.com imaps a.example.net 993 1 2 srv\nend 1\n"),
            ),
            ("count", format!("{MAGIC}\nend 3\n")),
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
            format!("{MAGIC}\nobs example.com imaps a.example.net 993 5 9 -\nend 1\n")
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
