//! What the repository's WAL archive can recover: for each physical base backup, the WAL it
//! needs, the timeline path recovery follows, how far the archive reaches without a gap, and
//! which WAL no kept base backup needs any more.
//!
//! WAL is named as PostgreSQL names it: `TTTTTTTTXXXXXXXXYYYYYYYY` (timeline, then the segment
//! number split in two), `TTTTTTTT.history` (the timeline's ancestry: `parent switch-LSN reason`
//! lines), `<segment>.<offset>.backup` (a base backup's label) and `<segment>.partial` (the
//! unfinished last segment of a timeline that was left, or of a stream).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use dbbackup_core::{Error, ErrorKind, LogArchive, Manifest, Result};
use time::OffsetDateTime;

use crate::config::ENGINE;
use crate::entry::{EntryMeta, Format};

/// The WAL archive's kind in a repository (`logs/wal/`).
pub const WAL_ARCHIVE: &str = "wal";

/// A WAL location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl std::str::FromStr for Lsn {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{s:?} is not a WAL location (LSN): use PostgreSQL's form, e.g. 0/16B3748"),
            )
        };
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// A WAL segment: its timeline and number (at one segment size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    /// The timeline.
    pub timeline: u32,
    /// The segment number (LSN / segment size).
    pub number: u64,
}

impl Segment {
    /// The segment file name at `size` bytes per segment.
    pub fn name(&self, size: u64) -> String {
        let per_id = 0x1_0000_0000 / size;
        format!(
            "{:08X}{:08X}{:08X}",
            self.timeline,
            self.number / per_id,
            self.number % per_id
        )
    }

    /// The segment a file name names (`TTTTTTTTXXXXXXXXYYYYYYYY`, nothing else).
    pub fn parse(name: &str, size: u64) -> Option<Segment> {
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let timeline = u32::from_str_radix(&name[0..8], 16).ok()?;
        let log = u64::from_str_radix(&name[8..16], 16).ok()?;
        let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
        let per_id = 0x1_0000_0000 / size;
        (seg < per_id).then_some(Segment {
            timeline,
            number: log * per_id + seg,
        })
    }
}

fn history_name(timeline: u32) -> String {
    format!("{timeline:08X}.history")
}

/// A physical base backup, as the WAL archive sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysicalBackup {
    /// Its id.
    pub backup_id: String,
    /// When it was committed.
    pub finished_at: OffsetDateTime,
    /// The timeline it starts on.
    pub start_timeline: u32,
    /// Where its WAL starts (the checkpoint's redo location).
    pub start_lsn: Lsn,
    /// The timeline it ends on.
    pub timeline: u32,
    /// Where it becomes consistent: recovery must replay at least to here.
    pub end_lsn: Lsn,
    /// The cluster's WAL segment size.
    pub segment_size: u64,
}

impl PhysicalBackup {
    /// The base backup a manifest describes; `None` for any other backup.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] for a physical backup whose manifest lacks its WAL range.
    pub fn of(m: &Manifest) -> Result<Option<PhysicalBackup>> {
        let physical = m.source.engine == ENGINE
            && m.entries
                .iter()
                .any(|e| EntryMeta::read(e).is_ok_and(|x| x.format == Format::BaseTar));
        if !physical {
            return Ok(None);
        }
        let p = &m.source.position;
        let missing = |what: &str| {
            Error::new(
                ErrorKind::Corrupt,
                format!(
                    "base backup {} does not record its {what} (made by an older build?): the \
                     WAL it needs is unknown",
                    m.backup_id
                ),
            )
            .with_backup(m.backup_id.clone())
        };
        let get = |k: &str| p.get(k).ok_or_else(|| missing(k));
        let num = |k: &str| -> Result<u64> { get(k)?.parse().map_err(|_| missing(k)) };
        let segment_size = num("wal_segment_size")?;
        if !segment_size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&segment_size) {
            return Err(missing("WAL segment size"));
        }
        Ok(Some(PhysicalBackup {
            backup_id: m.backup_id.clone(),
            finished_at: m.finished_at,
            start_timeline: num("start_timeline")? as u32,
            start_lsn: get("start_lsn")?
                .parse()
                .map_err(|_| missing("start_lsn"))?,
            timeline: num("timeline")? as u32,
            end_lsn: get("end_lsn")?.parse().map_err(|_| missing("end_lsn"))?,
            segment_size,
        }))
    }

    fn segment_of(&self, lsn: Lsn) -> u64 {
        lsn.0 / self.segment_size
    }
}

/// The names in a WAL archive and the timelines' histories.
#[derive(Debug, Clone, Default)]
pub struct WalArchive {
    names: BTreeSet<String>,
    /// Per timeline, its ancestry: `(timeline, the LSN it was left at)`, oldest first.
    histories: BTreeMap<u32, Vec<(u32, Lsn)>>,
}

/// One stretch of a timeline path: WAL of `timeline` from `from` up to `until` (the switch to
/// the next timeline; `None` on the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPart {
    /// The timeline.
    pub timeline: u32,
    /// Where this stretch starts.
    pub from: Lsn,
    /// Where recovery leaves it for the next timeline.
    pub until: Option<Lsn>,
}

/// What the archive can recover from one base backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The timeline recovery ends on.
    pub timeline: u32,
    /// The timelines recovery follows from the backup.
    pub path: Vec<PathPart>,
    /// The first WAL segment the backup needs.
    pub first: String,
    /// The last segment present without a gap from `first`, if any.
    pub last: Option<String>,
    /// Recovery reaches (at most) this LSN: the end of `last`.
    pub reaches: Lsn,
    /// The first missing segment after `first`, when more WAL follows it (a gap, not the
    /// archive's end).
    pub gap: Option<String>,
    /// The first segment the backup cannot do without (before its end LSN) that is missing: the
    /// backup cannot be restored at all.
    pub missing_needed: Option<String>,
    /// A history file the path needs that is missing.
    pub missing_history: Option<String>,
    /// The segments recovery replays, `first` to `last`, in order.
    pub segments: Vec<String>,
}

impl Window {
    /// Whether the backup can be restored (to at least its end LSN).
    pub fn restorable(&self) -> bool {
        self.missing_needed.is_none() && self.missing_history.is_none()
    }
}

/// Parses a `.history` file: the `parent-timeline switch-LSN reason` lines.
///
/// # Errors
/// [`ErrorKind::Corrupt`] for a line that is not of that form.
pub fn parse_history(text: &str) -> Result<Vec<(u32, Lsn)>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(tli), Some(lsn)) = (f.next(), f.next()) else {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("history line {line:?} is unreadable"),
            ));
        };
        let tli: u32 = tli.parse().map_err(|_| {
            Error::new(
                ErrorKind::Corrupt,
                format!("history line {line:?} is unreadable"),
            )
        })?;
        out.push((
            tli,
            lsn.parse().map_err(|_| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!("history line {line:?} is unreadable"),
                )
            })?,
        ));
    }
    Ok(out)
}

impl WalArchive {
    /// The archive from its names and history files' contents.
    pub fn from_parts(
        names: impl IntoIterator<Item = String>,
        histories: BTreeMap<u32, Vec<(u32, Lsn)>>,
    ) -> Self {
        WalArchive {
            names: names.into_iter().collect(),
            histories,
        }
    }

    /// Reads the names of `archive` and every history file in it.
    ///
    /// # Errors
    /// Storage errors; a history file that cannot be read or trusted.
    pub async fn read(archive: &LogArchive) -> Result<Self> {
        let names = archive.names().await?;
        let mut histories = BTreeMap::new();
        for n in &names {
            if let Some(t) = n.strip_suffix(".history") {
                let Ok(tli) = u32::from_str_radix(t, 16) else {
                    continue;
                };
                let text = archive.fetch(n).await?;
                histories.insert(tli, parse_history(&String::from_utf8_lossy(&text))?);
            }
        }
        Ok(WalArchive::from_parts(names, histories))
    }

    /// The archived names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    fn has(&self, s: Segment, size: u64) -> bool {
        self.names.contains(&s.name(size))
    }

    /// The newest timeline recovery from `b` can follow (`recovery_target_timeline = latest`):
    /// the highest one whose history passes through `b`'s timeline after `b` ends.
    pub fn latest_timeline(&self, b: &PhysicalBackup) -> u32 {
        self.histories
            .iter()
            .filter(|(_, h)| {
                h.iter()
                    .any(|&(t, switch)| t == b.timeline && switch >= b.end_lsn)
            })
            .map(|(&t, _)| t)
            .max()
            .unwrap_or(b.timeline)
            .max(b.timeline)
    }

    /// What can be recovered from `b` onto `timeline` (default: the latest).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when `timeline` does not descend from the backup's.
    pub fn window(&self, b: &PhysicalBackup, timeline: Option<u32>) -> Result<Window> {
        let target = timeline.unwrap_or_else(|| self.latest_timeline(b));
        let mut missing_history = None;
        // The stretches: the backup's timeline up to its switch, each later one up to its own.
        let mut path = Vec::new();
        if target == b.timeline {
            path.push(PathPart {
                timeline: b.timeline,
                from: b.start_lsn,
                until: None,
            });
        } else {
            let Some(h) = self.histories.get(&target) else {
                missing_history = Some(history_name(target));
                return Ok(self.walk(b, target, Vec::new(), missing_history));
            };
            let Some(i) = h.iter().position(|&(t, _)| t == b.timeline) else {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "timeline {target} does not descend from timeline {} of base backup {}",
                        b.timeline, b.backup_id
                    ),
                ));
            };
            if h[i].1 < b.end_lsn {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "timeline {target} left timeline {} at {}, before base backup {} became \
                     consistent ({}): it cannot be recovered from this backup",
                        b.timeline, h[i].1, b.backup_id, b.end_lsn
                    ),
                ));
            }
            let mut from = b.start_lsn;
            for (j, &(t, switch)) in h.iter().enumerate().skip(i) {
                path.push(PathPart {
                    timeline: t,
                    from,
                    until: Some(switch),
                });
                from = switch;
                let next = h.get(j + 1).map_or(target, |x| x.0);
                if next != target && !self.histories.contains_key(&next) {
                    missing_history.get_or_insert_with(|| history_name(next));
                }
            }
            path.push(PathPart {
                timeline: target,
                from,
                until: None,
            });
        }
        Ok(self.walk(b, target, path, missing_history))
    }

    fn walk(
        &self,
        b: &PhysicalBackup,
        target: u32,
        path: Vec<PathPart>,
        missing_history: Option<String>,
    ) -> Window {
        let size = b.segment_size;
        let first = Segment {
            timeline: path.first().map_or(b.timeline, |p| p.timeline),
            number: b.segment_of(b.start_lsn),
        };
        let needed_through = b.segment_of(Lsn(b.end_lsn.0.saturating_sub(1)));
        let mut last: Option<Segment> = None;
        let mut segments = Vec::new();
        let mut gap = None;
        let mut missing_needed = None;
        // The end of the WAL: a complete segment's end, or a streamed partial's.
        let mut partial: Option<(String, Lsn)> = None;
        'parts: for part in &path {
            let start = b.segment_of(part.from);
            // A switch inside a segment: that segment is read from the next timeline.
            let stop = part.until.map(|u| b.segment_of(u));
            let mut n = start;
            loop {
                if stop.is_some_and(|s| n >= s) {
                    break;
                }
                let s = Segment {
                    timeline: part.timeline,
                    number: n,
                };
                if !self.has(s, size) {
                    let name = s.name(size);
                    if let Some(p) = crate::stream::newest_partial(self.names(), &name) {
                        let bytes = u64::from_str_radix(&p[25..33], 16).unwrap_or(0);
                        let upto = Lsn(n * size + bytes);
                        segments.push(p.clone());
                        if n < needed_through || upto < b.end_lsn {
                            missing_needed = Some(name);
                        }
                        partial = Some((p, upto));
                        break 'parts;
                    }
                    if n <= needed_through {
                        missing_needed = Some(s.name(size));
                    }
                    if self.anything_after(s, size) {
                        gap = Some(s.name(size));
                    }
                    break 'parts;
                }
                last = Some(s);
                segments.push(s.name(size));
                n += 1;
            }
        }
        if missing_needed.is_none()
            && partial.is_none()
            && last.is_none_or(|l| l.number < needed_through)
        {
            let n = last.map_or(first.number, |l| l.number + 1);
            missing_needed = Some(
                Segment {
                    timeline: target,
                    number: n,
                }
                .name(size),
            );
        }
        Window {
            timeline: target,
            path,
            first: first.name(size),
            reaches: match &partial {
                Some((_, upto)) => *upto,
                None => last.map_or(b.start_lsn, |l| Lsn((l.number + 1) * size)),
            },
            last: match partial {
                Some((p, _)) => Some(p),
                None => last.map(|l| l.name(size)),
            },
            gap,
            missing_needed,
            missing_history,
            segments,
        }
    }

    /// Whether any segment later than `s` is archived (on any timeline): then `s` missing is a
    /// gap, not the end of the archive.
    fn anything_after(&self, s: Segment, size: u64) -> bool {
        self.names
            .iter()
            .filter_map(|n| Segment::parse(n, size))
            .any(|x| x.number > s.number && x.timeline >= s.timeline)
    }

    /// The pieces no base backup in `kept` needs: segments (and their `.backup` and
    /// `.partial` files) before the oldest kept backup's first segment. History files are
    /// always kept (they are tiny, and later timelines need them). With no kept base backup
    /// nothing is returned: the WAL is left as it is.
    pub fn unneeded(&self, kept: &[PhysicalBackup]) -> Vec<String> {
        let Some(oldest) = kept.iter().min_by_key(|b| b.start_lsn) else {
            return Vec::new();
        };
        let size = oldest.segment_size;
        let floor = oldest.segment_of(oldest.start_lsn);
        self.names
            .iter()
            .filter(|n| {
                let stem = n.get(..24).unwrap_or("");
                let rest = n.get(24..).unwrap_or("");
                let kind_ok = rest.is_empty()
                    || (rest.starts_with('.')
                        && (rest.ends_with(".backup") || rest.ends_with(".partial")));
                kind_ok && Segment::parse(stem, size).is_some_and(|s| s.number < floor)
            })
            .cloned()
            .collect()
    }
}

/// A recovery target time: RFC 3339 (`2026-12-01T17:55:03.5+00:00`) or PostgreSQL's timestamptz
/// text (`2026-12-01 17:55:03.5+00`), always with an offset (a time without one would be read in
/// the restored server's time zone).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] naming the forms that are understood.
pub fn parse_target_time(text: &str) -> Result<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let t = text.trim();
    if let Ok(v) = OffsetDateTime::parse(t, &Rfc3339) {
        return Ok(v);
    }
    let pg = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]][optional [ ]][offset_hour sign:mandatory][optional [:[offset_minute]]]"
    );
    OffsetDateTime::parse(t, pg).map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{text:?} is not a time with an offset: use RFC 3339 \
                 (2026-12-01T17:55:03.5+00:00) or PostgreSQL's form (2026-12-01 17:55:03.5+00)"
            ),
        )
    })
}

/// The base backup `latest` means for a restore to `target`: the newest one that ends before
/// the target time (or LSN), among `backups`. Without a time or LSN target: the newest.
pub fn choose_backup<'a>(
    backups: &'a [PhysicalBackup],
    target: Option<&crate::RecoveryTarget>,
) -> Result<Option<&'a PhysicalBackup>> {
    use crate::RecoveryTarget as T;
    let newest = |it: Vec<&'a PhysicalBackup>| {
        it.into_iter()
            .max_by_key(|b| (b.finished_at, b.backup_id.clone()))
    };
    Ok(match target {
        Some(T::Time(t)) => {
            let t = parse_target_time(t)?;
            newest(backups.iter().filter(|b| b.finished_at <= t).collect())
        }
        Some(T::Lsn(l)) => {
            let l: Lsn = l.parse()?;
            newest(backups.iter().filter(|b| b.end_lsn <= l).collect())
        }
        _ => newest(backups.iter().collect()),
    })
}

/// Checks that the archive holds the WAL a restore of `b` to `target` replays, before anything
/// is written: the backup's own WAL, and no gap before the target (none at all without a
/// target, or recovery would stop at the gap and look complete). Returns warnings for what
/// cannot be told in advance (a gap with a restore point or transaction id as the target).
///
/// # Errors
/// [`ErrorKind::NotFound`] naming the first missing segment or history file.
pub async fn check_restore(
    archive: &LogArchive,
    b: &PhysicalBackup,
    target: Option<&crate::RecoveryTarget>,
    timeline: Option<&str>,
) -> Result<Vec<String>> {
    use crate::RecoveryTarget as T;
    let wal = WalArchive::read(archive).await?;
    let timeline = match timeline.map(str::trim) {
        None | Some("latest") => None,
        Some("current") => Some(b.timeline),
        Some(t) => Some(t.parse::<u32>().map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("timeline {t:?} is not latest, current or a number"),
            )
        })?),
    };
    let w = wal.window(b, timeline)?;
    let id = &b.backup_id;
    if let Some(h) = &w.missing_history {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "the WAL archive lacks {h}, the history of timeline {}: recovery from base \
                 backup {id} cannot follow it (give --timeline with an older timeline)",
                w.timeline
            ),
        ));
    }
    if let Some(m) = &w.missing_needed {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "base backup {id} cannot be restored: WAL segment {m}, which it needs to become \
                 consistent (up to {}), is not in the archive (is archive_command running? \
                 `dbbackup verify` checks the archive)",
                b.end_lsn
            ),
        ));
    }
    let Some(gap) = &w.gap else {
        return Ok(Vec::new());
    };
    let short = |to: &str| {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "the WAL archive has a gap: segment {gap} is missing, so recovery from base \
                 backup {id} stops at {} {to}; restore to a point before the gap (--to-lsn {}) \
                 or from a later base backup",
                w.reaches, w.reaches
            ),
        )
    };
    match target {
        None => Err(short("instead of the end of the archive")),
        Some(T::Lsn(l)) => {
            if l.parse::<Lsn>()? > w.reaches {
                Err(short(&format!("before the target {l}")))
            } else {
                Ok(Vec::new())
            }
        }
        Some(T::Time(t)) => {
            let t = parse_target_time(t)?;
            // The last segment before the gap was archived after the target: the target lies
            // before the gap.
            let archived = match &w.last {
                Some(l) => Some(archive.record(l).await?.archived_at),
                None => None,
            };
            if archived.is_some_and(|a| a >= t) {
                Ok(Vec::new())
            } else {
                Err(short("before the target time"))
            }
        }
        Some(_) => Ok(vec![format!(
            "the WAL archive has a gap: segment {gap} is missing, so recovery stops at {} at \
             the latest; if the target lies after it, the server refuses to start \
             (\"recovery ended before configured recovery target was reached\")",
            w.reaches
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB16: u64 = 16 << 20;

    fn seg(tli: u32, n: u64) -> String {
        Segment {
            timeline: tli,
            number: n,
        }
        .name(MB16)
    }

    fn backup(start: u64, end: u64) -> PhysicalBackup {
        PhysicalBackup {
            backup_id: "b".into(),
            finished_at: OffsetDateTime::UNIX_EPOCH,
            start_timeline: 1,
            start_lsn: Lsn(start * MB16 + 40),
            timeline: 1,
            end_lsn: Lsn(end * MB16 + 256),
            segment_size: MB16,
        }
    }

    #[test]
    fn target_times_need_an_offset() {
        let a = parse_target_time("2026-12-01T17:55:03.5+00:00").unwrap();
        let b = parse_target_time("2026-12-01 17:55:03.5+00").unwrap();
        let c = parse_target_time("2026-12-01 18:55:03.5+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert!(parse_target_time("2026-12-01 17:55:03").is_err());
        assert!(parse_target_time("yesterday").is_err());
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(seg(1, 3), "000000010000000000000003");
        assert_eq!(seg(2, 0x100), "000000020000000100000000");
        let s = Segment::parse("000000020000000100000000", MB16).unwrap();
        assert_eq!((s.timeline, s.number), (2, 0x100));
        assert_eq!("0/16B3748".parse::<Lsn>().unwrap(), Lsn(0x16B3748));
        assert_eq!(Lsn(0x1_0000_0028).to_string(), "1/28");
        assert!(Segment::parse("00000001.history", MB16).is_none());
    }

    #[test]
    fn a_contiguous_archive_reaches_its_last_segment() {
        let a = WalArchive::from_parts((2..=6).map(|n| seg(1, n)), BTreeMap::new());
        let w = a.window(&backup(2, 3), None).unwrap();
        assert!(w.restorable());
        assert_eq!(w.last.as_deref(), Some(seg(1, 6).as_str()));
        assert_eq!(w.reaches, Lsn(7 * MB16));
        assert_eq!(w.gap, None);
    }

    #[test]
    fn a_gap_is_named_and_one_before_the_end_lsn_makes_the_backup_unrestorable() {
        let names = [2, 3, 5, 6].map(|n| seg(1, n));
        let a = WalArchive::from_parts(names, BTreeMap::new());
        let w = a.window(&backup(2, 3), None).unwrap();
        assert!(w.restorable());
        assert_eq!(w.gap.as_deref(), Some(seg(1, 4).as_str()));
        assert_eq!(w.last.as_deref(), Some(seg(1, 3).as_str()));
        let w = a.window(&backup(2, 4), None).unwrap();
        assert!(!w.restorable());
        assert_eq!(w.missing_needed.as_deref(), Some(seg(1, 4).as_str()));
        // The archive's end is not a gap, but a backup whose WAL is not there yet is not
        // restorable.
        let a = WalArchive::from_parts([seg(1, 2)], BTreeMap::new());
        let w = a.window(&backup(2, 3), None).unwrap();
        assert_eq!(w.gap, None);
        assert_eq!(w.missing_needed.as_deref(), Some(seg(1, 3).as_str()));
    }

    #[test]
    fn a_streamed_partial_ends_the_window_where_its_wal_ends() {
        let mut names: Vec<String> = (2..=4).map(|n| seg(1, n)).collect();
        names.push(format!("{}.00001000.partial", seg(1, 5)));
        names.push(format!("{}.00A00000.partial", seg(1, 5)));
        let a = WalArchive::from_parts(names, BTreeMap::new());
        let w = a.window(&backup(2, 3), None).unwrap();
        assert!(w.restorable());
        assert_eq!(w.reaches, Lsn(5 * MB16 + 0xA0_0000));
        assert_eq!(
            w.last.as_deref(),
            Some(format!("{}.00A00000.partial", seg(1, 5)).as_str())
        );
        // A backup that ends in the partial's segment, before its end, is restorable; after
        // it, not yet.
        let mut b = backup(2, 5);
        b.end_lsn = Lsn(5 * MB16 + 0x1000);
        assert!(a.window(&b, None).unwrap().restorable());
        b.end_lsn = Lsn(5 * MB16 + 0xB0_0000);
        assert!(!a.window(&b, None).unwrap().restorable());
    }

    #[test]
    fn recovery_follows_the_latest_timeline_through_its_history() {
        // Timeline 2 left timeline 1 inside segment 5.
        let mut h = BTreeMap::new();
        h.insert(2, vec![(1, Lsn(5 * MB16 + 1000))]);
        let mut names: Vec<String> = (2..=5).map(|n| seg(1, n)).collect();
        names.extend((5..=8).map(|n| seg(2, n)));
        names.push("00000002.history".into());
        let a = WalArchive::from_parts(names, h);
        let b = backup(2, 3);
        assert_eq!(a.latest_timeline(&b), 2);
        let w = a.window(&b, None).unwrap();
        assert_eq!(w.timeline, 2);
        assert_eq!(w.last.as_deref(), Some(seg(2, 8).as_str()));
        assert_eq!(w.gap, None);
        // Timeline 1 alone ends at its segment 5.
        let w1 = a.window(&b, Some(1)).unwrap();
        assert_eq!(w1.last.as_deref(), Some(seg(1, 5).as_str()));
        // A backup that ends after the switch cannot follow timeline 2.
        assert!(a.window(&backup(2, 6), Some(2)).is_err());
    }

    #[test]
    fn only_wal_before_the_oldest_kept_backup_is_unneeded() {
        let mut names: Vec<String> = (1..=6).map(|n| seg(1, n)).collect();
        names.push(format!("{}.00000028.backup", seg(1, 2)));
        names.push(format!("{}.00000028.backup", seg(1, 4)));
        names.push("00000002.history".into());
        names.push(format!("{}.partial", seg(1, 1)));
        let a = WalArchive::from_parts(names, BTreeMap::new());
        let mut gone = a.unneeded(&[backup(4, 4), backup(6, 6)]);
        gone.sort();
        let mut want = vec![
            seg(1, 1),
            seg(1, 2),
            seg(1, 3),
            format!("{}.00000028.backup", seg(1, 2)),
            format!("{}.partial", seg(1, 1)),
        ];
        want.sort();
        assert_eq!(gone, want);
        assert!(a.unneeded(&[]).is_empty());
    }
}
