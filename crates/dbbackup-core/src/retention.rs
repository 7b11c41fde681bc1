//! Retention: which backups to keep. A policy is a pure function of the committed backups and
//! `now`; the clock is a parameter, never read inside.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::Result;
use crate::manifest::Manifest;

/// What a policy sees of one committed backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSummary {
    /// Backup id.
    pub backup_id: String,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it finished.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Engine name.
    pub engine: String,
    /// Database name.
    pub database: Option<String>,
    /// The server (host:port, or a file), without credentials.
    pub server: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Parent backup, if any.
    pub parent: Option<String>,
    /// Plaintext bytes.
    pub raw_size: u64,
    /// Stored bytes.
    pub stored_size: u64,
    /// Number of entries.
    pub entries: usize,
}

impl From<&Manifest> for BackupSummary {
    fn from(m: &Manifest) -> Self {
        BackupSummary {
            backup_id: m.backup_id.clone(),
            started_at: m.started_at,
            finished_at: m.finished_at,
            engine: m.source.engine.clone(),
            database: m.source.database.clone(),
            server: m.source.server.clone(),
            labels: m.labels.clone(),
            parent: m.parent.clone(),
            raw_size: m.raw_size(),
            stored_size: m.stored_size(),
            entries: m.entries.len(),
        }
    }
}

/// Which backups a retention policy is applied to together, so one database's backups never
/// decide another's fate (as restic groups by host and paths).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// Engine, server and database (the default).
    #[default]
    Source,
    /// Engine only.
    Engine,
    /// Database name only.
    Database,
    /// The value of one label.
    Label(String),
    /// One group for every backup.
    None,
}

impl std::str::FromStr for GroupBy {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "source" => GroupBy::Source,
            "engine" => GroupBy::Engine,
            "database" => GroupBy::Database,
            "none" => GroupBy::None,
            _ => match s.strip_prefix("label:") {
                Some(k) if !k.is_empty() => GroupBy::Label(k.to_owned()),
                _ => {
                    return Err(crate::Error::invalid(format!(
                        "group {s:?}: use source, engine, database, label:KEY or none"
                    )))
                }
            },
        })
    }
}

impl GroupBy {
    /// The group `b` belongs to, as shown to the user.
    pub fn group_of(&self, b: &BackupSummary) -> String {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        match self {
            GroupBy::Source => format!(
                "{} {} {}",
                b.engine,
                or_dash(&b.server),
                or_dash(&b.database)
            ),
            GroupBy::Engine => b.engine.clone(),
            GroupBy::Database => or_dash(&b.database),
            GroupBy::Label(k) => format!("{k}={}", or_dash(&b.labels.get(k).cloned())),
            GroupBy::None => "all".into(),
        }
    }
}

/// Applies `policy` to each group of `backups` on its own (each group keeps its own newest
/// backup); decisions come back in the order given, each naming its group.
///
/// # Errors
/// As the policy's [`plan`](RetentionPolicy::plan).
pub fn plan_grouped(
    policy: &dyn RetentionPolicy,
    backups: &[BackupSummary],
    group_by: &GroupBy,
    now: OffsetDateTime,
) -> Result<RetentionPlan> {
    let mut groups: BTreeMap<String, Vec<BackupSummary>> = BTreeMap::new();
    for b in backups {
        groups
            .entry(group_by.group_of(b))
            .or_default()
            .push(b.clone());
    }
    let mut by_id: BTreeMap<String, Decision> = BTreeMap::new();
    for (group, members) in groups {
        for mut d in policy.plan(&members, now)?.decisions {
            d.group = group.clone();
            by_id.insert(d.backup_id.clone(), d);
        }
    }
    Ok(RetentionPlan {
        decisions: backups
            .iter()
            .filter_map(|b| by_id.remove(&b.backup_id))
            .collect(),
    })
}

/// Keep or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The backup stays.
    Keep,
    /// The backup is removed when the plan is applied.
    Delete,
}

/// The decision about one backup, with every reason for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Backup id.
    pub backup_id: String,
    /// Keep or delete.
    pub action: Action,
    /// Why: every rule that keeps it (e.g. `keep-daily 7: 2026-11-20`), or why it goes.
    pub reasons: Vec<String>,
    /// The group the policy was applied in ([`plan_grouped`]; empty for an ungrouped plan).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
}

/// A policy's output: one decision per backup given, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    /// The decisions.
    pub decisions: Vec<Decision>,
}

impl RetentionPlan {
    /// Ids of backups the plan deletes.
    pub fn to_delete(&self) -> impl Iterator<Item = &str> {
        self.decisions
            .iter()
            .filter(|d| d.action == Action::Delete)
            .map(|d| d.backup_id.as_str())
    }

    /// Ids of backups the plan keeps.
    pub fn to_keep(&self) -> impl Iterator<Item = &str> {
        self.decisions
            .iter()
            .filter(|d| d.action == Action::Keep)
            .map(|d| d.backup_id.as_str())
    }
}

/// Decides which backups to keep.
pub trait RetentionPolicy: Send + Sync {
    /// Plans keep/delete for `backups` (committed backups, any order) as of `now`. Must be
    /// deterministic: the same input gives the same plan.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a policy that cannot be
    /// applied (e.g. one with no rule at all).
    fn plan(&self, backups: &[BackupSummary], now: OffsetDateTime) -> Result<RetentionPlan>;
}

/// The built-in policy: keep-last, keep-within, GFS calendar buckets and keep-label rules,
/// combined (a backup kept by any rule is kept, and its decision lists every rule that keeps it).
///
/// Safety rules apply whatever the rules say: the newest backup is always kept, and so is every
/// backup a kept backup depends on (its parent chain). A policy without any rule is refused.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepPolicy {
    /// Keep the newest N.
    pub keep_last: Option<usize>,
    /// Keep everything that started within this long before `now`.
    #[serde(with = "opt_secs")]
    pub keep_within: Option<std::time::Duration>,
    /// Keep the newest backup of each of the last N hours that have backups.
    pub keep_hourly: Option<usize>,
    /// ... of each of the last N days.
    pub keep_daily: Option<usize>,
    /// ... of each of the last N ISO weeks.
    pub keep_weekly: Option<usize>,
    /// ... of each of the last N months.
    pub keep_monthly: Option<usize>,
    /// ... of each of the last N years.
    pub keep_yearly: Option<usize>,
    /// Keep every backup carrying one of these `key=value` labels.
    pub keep_labels: Vec<(String, String)>,
    /// The UTC offset calendar buckets are computed in, in seconds (default 0 = UTC).
    pub utc_offset_seconds: i32,
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

/// Parses a retention duration (`7d`, `36h`, `2w`, `1y`, `1d12h`): [`parse_duration`], kept under
/// this name for the retention options.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the text (a bare number
/// too: it would be ambiguous).
///
/// [`parse_duration`]: crate::parse_duration
pub fn parse_keep_within(text: &str) -> Result<std::time::Duration> {
    crate::pattern::parse_duration(text)
}

impl KeepPolicy {
    /// Whether at least one rule is set (a count of 0 counts as unset).
    pub fn has_rules(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(|n| n.unwrap_or(0) > 0)
            || self.keep_within.is_some_and(|d| !d.is_zero())
            || !self.keep_labels.is_empty()
    }
}

fn format_within(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else {
        format!("{s}s")
    }
}

impl RetentionPolicy for KeepPolicy {
    fn plan(&self, backups: &[BackupSummary], now: OffsetDateTime) -> Result<RetentionPlan> {
        if !self.has_rules() {
            return Err(crate::Error::invalid(
                "a retention policy with no rule would delete every backup; give at least one \
                 keep rule (e.g. --keep-last 7 or --keep-within 7d)",
            ));
        }
        let offset =
            time::UtcOffset::from_whole_seconds(self.utc_offset_seconds).map_err(|_| {
                crate::Error::invalid(format!("invalid UTC offset {}s", self.utc_offset_seconds))
            })?;
        // Newest first; ties broken by id so the plan never depends on input order.
        let mut order: Vec<&BackupSummary> = backups.iter().collect();
        order.sort_by(|a, b| (b.started_at, &b.backup_id).cmp(&(a.started_at, &a.backup_id)));
        let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut add = |b: &&BackupSummary, why: String| {
            reasons.entry(b.backup_id.clone()).or_default().push(why);
        };

        if let Some(n) = self.keep_last.filter(|&n| n > 0) {
            for (i, b) in order.iter().take(n).enumerate() {
                add(b, format!("keep-last {n} (#{})", i + 1));
            }
        }
        if let Some(d) = self.keep_within.filter(|d| !d.is_zero()) {
            let cutoff = now - d;
            for b in &order {
                if b.started_at > cutoff {
                    add(b, format!("keep-within {}", format_within(d)));
                }
            }
        }
        type BucketFn = fn(OffsetDateTime) -> String;
        let rules: [(&str, Option<usize>, BucketFn); 5] = [
            ("keep-hourly", self.keep_hourly, |t| {
                format!("{} {:02}h", t.date(), t.hour())
            }),
            ("keep-daily", self.keep_daily, |t| t.date().to_string()),
            ("keep-weekly", self.keep_weekly, |t| {
                let (y, w, _) = t.to_iso_week_date();
                format!("{y}-W{w:02}")
            }),
            ("keep-monthly", self.keep_monthly, |t| {
                format!("{}-{:02}", t.year(), u8::from(t.month()))
            }),
            ("keep-yearly", self.keep_yearly, |t| t.year().to_string()),
        ];
        for (name, n, bucket) in rules {
            let Some(n) = n.filter(|&n| n > 0) else {
                continue;
            };
            let mut last: Option<String> = None;
            let mut used = 0;
            for b in &order {
                if used == n {
                    break;
                }
                let key = bucket(b.started_at.to_offset(offset));
                if last.as_deref() != Some(key.as_str()) {
                    used += 1;
                    add(b, format!("{name} {n}: {key}"));
                    last = Some(key);
                }
            }
        }
        for (k, v) in &self.keep_labels {
            for b in &order {
                if b.labels.get(k) == Some(v) {
                    add(b, format!("keep-label {k}={v}"));
                }
            }
        }
        if let Some(newest) = order.first() {
            add(newest, "newest backup (never deleted)".into());
        }
        // Every backup a kept backup depends on stays, transitively.
        let by_id: BTreeMap<&str, &BackupSummary> =
            order.iter().map(|b| (b.backup_id.as_str(), *b)).collect();
        let kept: Vec<String> = reasons.keys().cloned().collect();
        for id in &kept {
            let mut child = id.as_str();
            while let Some(parent) = by_id[child].parent.as_deref().and_then(|p| by_id.get(p)) {
                let why = format!("parent of {child}");
                let entry = reasons.entry(parent.backup_id.clone()).or_default();
                if entry.contains(&why) {
                    break;
                }
                entry.push(why);
                child = parent.backup_id.as_str();
            }
        }
        Ok(RetentionPlan {
            decisions: backups
                .iter()
                .map(|b| match reasons.get(&b.backup_id) {
                    Some(r) => Decision {
                        backup_id: b.backup_id.clone(),
                        action: Action::Keep,
                        reasons: r.clone(),
                        group: String::new(),
                    },
                    None => Decision {
                        backup_id: b.backup_id.clone(),
                        action: Action::Delete,
                        reasons: vec!["no rule keeps it".into()],
                        group: String::new(),
                    },
                })
                .collect(),
        })
    }
}
