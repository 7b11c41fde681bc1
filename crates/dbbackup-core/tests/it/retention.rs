use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use dbbackup_core::{
    parse_keep_within, Action, BackupSummary, ErrorKind, KeepPolicy, MemorySink, Repository,
    RetentionPolicy,
};
use proptest::prelude::*;
use time::macros::datetime;
use time::OffsetDateTime;

/// 100 daily backups at 12:00 UTC, 2026-01-01 ..= 2026-04-10. Every 10th carries env=prod;
/// the 04-09 backup has 03-01 as its parent.
fn fixture() -> Vec<BackupSummary> {
    let start = datetime!(2026-01-01 12:00 UTC);
    let mut out: Vec<BackupSummary> = (0..100)
        .map(|i| {
            let t = start + Duration::from_secs(86_400 * i);
            let mut labels = BTreeMap::new();
            if i % 10 == 0 {
                labels.insert("env".to_owned(), "prod".to_owned());
            }
            summary(t, labels, None)
        })
        .collect();
    let parent = out
        .iter()
        .find(|b| md(b) == "03-01")
        .unwrap()
        .backup_id
        .clone();
    out.iter_mut().find(|b| md(b) == "04-09").unwrap().parent = Some(parent);
    out
}

fn summary(
    t: OffsetDateTime,
    labels: BTreeMap<String, String>,
    parent: Option<String>,
) -> BackupSummary {
    BackupSummary {
        backup_id: format!(
            "{:04}{:02}{:02}T{:02}{:02}00.000Z-000000",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        started_at: t,
        finished_at: t + Duration::from_secs(60),
        engine: "scripted".into(),
        database: None,
        server: None,
        labels,
        parent,
        raw_size: 1,
        stored_size: 1,
        entries: 1,
    }
}

fn md(b: &BackupSummary) -> String {
    format!(
        "{:02}-{:02}",
        u8::from(b.started_at.month()),
        b.started_at.day()
    )
}

fn kept(policy: &KeepPolicy, backups: &[BackupSummary], now: OffsetDateTime) -> BTreeSet<String> {
    let plan = policy.plan(backups, now).unwrap();
    assert_eq!(plan.decisions.len(), backups.len());
    plan.decisions
        .iter()
        .zip(backups)
        .filter(|(d, _)| d.action == Action::Keep)
        .map(|(_, b)| md(b))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn policy_table_against_the_fixture_at_two_moments() {
    let backups = fixture();
    let now1 = datetime!(2026-04-10 18:00 UTC);
    let now2 = datetime!(2026-04-12 00:00 UTC);
    let labelled = [
        "01-01", "01-11", "01-21", "01-31", "02-10", "02-20", "03-02", "03-12", "03-22", "04-01",
    ];
    let p = KeepPolicy::default;
    let table: Vec<(&str, KeepPolicy, BTreeSet<String>, BTreeSet<String>)> = vec![
        (
            "keep-last 5",
            KeepPolicy {
                keep_last: Some(5),
                ..p()
            },
            set(&["04-06", "04-07", "04-08", "04-09", "04-10", "03-01"]),
            set(&["04-06", "04-07", "04-08", "04-09", "04-10", "03-01"]),
        ),
        (
            "keep-daily 3 (04-09 pulls in its parent 03-01)",
            KeepPolicy {
                keep_daily: Some(3),
                ..p()
            },
            set(&["04-08", "04-09", "04-10", "03-01"]),
            set(&["04-08", "04-09", "04-10", "03-01"]),
        ),
        (
            "keep-weekly 2 (ISO weeks 15 and 14)",
            KeepPolicy {
                keep_weekly: Some(2),
                ..p()
            },
            set(&["04-10", "04-05"]),
            set(&["04-10", "04-05"]),
        ),
        (
            "keep-monthly 3",
            KeepPolicy {
                keep_monthly: Some(3),
                ..p()
            },
            set(&["04-10", "03-31", "02-28"]),
            set(&["04-10", "03-31", "02-28"]),
        ),
        (
            "keep-yearly 5",
            KeepPolicy {
                keep_yearly: Some(5),
                ..p()
            },
            set(&["04-10"]),
            set(&["04-10"]),
        ),
        (
            "keep-within 3d",
            KeepPolicy {
                keep_within: Some(parse_keep_within("3d").unwrap()),
                ..p()
            },
            set(&["04-08", "04-09", "04-10", "03-01"]),
            set(&["04-09", "04-10", "03-01"]),
        ),
        (
            "keep-label env=prod (the newest is kept regardless)",
            KeepPolicy {
                keep_labels: vec![("env".into(), "prod".into())],
                ..p()
            },
            labelled
                .iter()
                .copied()
                .chain(["04-10"])
                .map(String::from)
                .collect(),
            labelled
                .iter()
                .copied()
                .chain(["04-10"])
                .map(String::from)
                .collect(),
        ),
        (
            "keep-daily 2 + keep-monthly 2",
            KeepPolicy {
                keep_daily: Some(2),
                keep_monthly: Some(2),
                ..p()
            },
            set(&["04-10", "04-09", "03-31", "03-01"]),
            set(&["04-10", "04-09", "03-31", "03-01"]),
        ),
        (
            "keep-hourly 2",
            KeepPolicy {
                keep_hourly: Some(2),
                ..p()
            },
            set(&["04-10", "04-09", "03-01"]),
            set(&["04-10", "04-09", "03-01"]),
        ),
        (
            "keep-within 36h + keep-weekly 1 + keep-yearly 1",
            KeepPolicy {
                keep_within: Some(parse_keep_within("1d12h").unwrap()),
                keep_weekly: Some(1),
                keep_yearly: Some(1),
                ..p()
            },
            set(&["04-09", "04-10", "03-01"]),
            set(&["04-10"]),
        ),
    ];
    for (name, policy, at_now1, at_now2) in table {
        assert_eq!(kept(&policy, &backups, now1), at_now1, "{name} at {now1}");
        assert_eq!(kept(&policy, &backups, now2), at_now2, "{name} at {now2}");
    }
}

#[test]
fn decisions_list_every_rule_that_keeps_a_backup() {
    let backups = fixture();
    let policy = KeepPolicy {
        keep_daily: Some(2),
        keep_monthly: Some(2),
        ..Default::default()
    };
    let plan = policy
        .plan(&backups, datetime!(2026-04-10 18:00 UTC))
        .unwrap();
    let newest = plan.decisions.last().unwrap();
    assert_eq!(
        newest.reasons,
        vec![
            "keep-daily 2: 2026-04-10".to_owned(),
            "keep-monthly 2: 2026-04".to_owned(),
            "newest backup (never deleted)".to_owned()
        ]
    );
    let parent = plan
        .decisions
        .iter()
        .zip(&backups)
        .find(|(_, b)| md(b) == "03-01")
        .unwrap()
        .0;
    assert_eq!(parent.action, Action::Keep);
    assert!(
        parent.reasons[0].starts_with("parent of 20260409"),
        "{:?}",
        parent.reasons
    );
    let gone = plan.decisions.first().unwrap();
    assert_eq!(
        (gone.action, gone.reasons.clone()),
        (Action::Delete, vec!["no rule keeps it".to_owned()])
    );
    // Plans serialize for `--json` and dry runs.
    assert!(serde_json::to_string(&plan)
        .unwrap()
        .contains("\"action\":\"keep\""));
}

#[test]
fn calendar_buckets_follow_the_given_offset() {
    let a = summary(datetime!(2026-04-10 23:30 UTC), BTreeMap::new(), None);
    let b = summary(datetime!(2026-04-11 00:30 UTC), BTreeMap::new(), None);
    let c = summary(datetime!(2026-04-09 12:00 UTC), BTreeMap::new(), None);
    let all = vec![c, a, b];
    let now = datetime!(2026-04-12 00:00 UTC);
    let utc = KeepPolicy {
        keep_daily: Some(2),
        ..Default::default()
    };
    assert_eq!(kept(&utc, &all, now), set(&["04-10", "04-11"]));
    // At +02:00 both late backups fall on 04-11 local; the second bucket is 04-09.
    let plus2 = KeepPolicy {
        keep_daily: Some(2),
        utc_offset_seconds: 7200,
        ..Default::default()
    };
    assert_eq!(kept(&plus2, &all, now), set(&["04-11", "04-09"]));
}

#[test]
fn a_policy_without_rules_is_refused() {
    let e = KeepPolicy::default()
        .plan(&fixture(), OffsetDateTime::now_utc())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("no rule"), "{e}");
    let zero = KeepPolicy {
        keep_last: Some(0),
        ..Default::default()
    };
    assert!(zero.plan(&fixture(), OffsetDateTime::now_utc()).is_err());
    assert!(parse_keep_within("7 dayz").is_err());
    assert_eq!(
        parse_keep_within("2w").unwrap(),
        Duration::from_secs(14 * 86_400)
    );
    // A bare number could be days or seconds: refused everywhere, never guessed.
    let e = parse_keep_within("10").unwrap_err();
    assert!(e.to_string().contains("10d"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_a_plan_to_a_repository() {
    let sink = MemorySink::new();
    let repo = Repository::new(Arc::new(sink.clone()));
    for _ in 0..4 {
        crate::backup(&sink, crate::sample_source(), None)
            .await
            .unwrap();
    }
    let policy = KeepPolicy {
        keep_last: Some(2),
        ..Default::default()
    };
    let summaries = repo.summaries().await.unwrap();
    let plan = policy.plan(&summaries, OffsetDateTime::now_utc()).unwrap();
    let deleted = repo.apply(&plan).await.unwrap();
    assert_eq!(deleted.len(), 2);
    let left: Vec<String> = repo
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.backup_id)
        .collect();
    assert_eq!(
        left,
        summaries[2..]
            .iter()
            .map(|s| s.backup_id.clone())
            .collect::<Vec<_>>()
    );
    for id in &deleted {
        assert!(
            sink.keys().iter().all(|k| !k.contains(id.as_str())),
            "objects of {id} remain"
        );
    }
}

fn arb_backups() -> impl Strategy<Value = Vec<BackupSummary>> {
    proptest::collection::vec(
        (
            0u64..400 * 24 * 60,
            any::<bool>(),
            proptest::option::of(0usize..40),
        ),
        1..60,
    )
    .prop_map(|items| {
        let base = datetime!(2025-01-01 00:00 UTC);
        let mut out: Vec<BackupSummary> = items
            .iter()
            .enumerate()
            .map(|(i, (minutes, prod, _))| {
                let mut labels = BTreeMap::new();
                if *prod {
                    labels.insert("env".into(), "prod".into());
                }
                let mut s = summary(base + Duration::from_secs(minutes * 60), labels, None);
                s.backup_id = format!("{}-{i:03}", s.backup_id);
                s
            })
            .collect();
        let ids: Vec<String> = out.iter().map(|b| b.backup_id.clone()).collect();
        for (i, (_, _, parent)) in items.iter().enumerate() {
            if let Some(p) = parent {
                if *p < ids.len() && *p != i {
                    out[i].parent = Some(ids[*p].clone());
                }
            }
        }
        out
    })
}

fn arb_policy() -> impl Strategy<Value = KeepPolicy> {
    let n = || proptest::option::of(0usize..6);
    (
        n(),
        proptest::option::of(0u64..90),
        n(),
        n(),
        n(),
        n(),
        n(),
        any::<bool>(),
        -12i32..14,
    )
        .prop_map(|(last, within, h, d, w, m, y, label, off)| KeepPolicy {
            keep_last: last,
            keep_within: within.map(|days| Duration::from_secs(days * 86_400)),
            keep_hourly: h,
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: m,
            keep_yearly: y,
            keep_labels: if label {
                vec![("env".into(), "prod".into())]
            } else {
                vec![]
            },
            utc_offset_seconds: off * 3600,
        })
        .prop_filter("needs a rule", |p| p.has_rules())
}

proptest! {
    #[test]
    fn never_deletes_the_newest_is_deterministic_and_idempotent(
        backups in arb_backups(),
        policy in arb_policy(),
        now_minutes in 0u64..500 * 24 * 60,
    ) {
        let now = datetime!(2025-01-01 00:00 UTC) + Duration::from_secs(now_minutes * 60);
        let plan = policy.plan(&backups, now).unwrap();
        let newest = backups.iter().max_by_key(|b| (b.started_at, b.backup_id.clone())).unwrap();
        let d = plan.decisions.iter().find(|d| d.backup_id == newest.backup_id).unwrap();
        prop_assert_eq!(d.action, Action::Keep);

        // Deterministic, whatever the input order.
        let mut reversed = backups.clone();
        reversed.reverse();
        let again = policy.plan(&reversed, now).unwrap();
        let a: BTreeMap<_, _> = plan.decisions.iter().map(|d| (d.backup_id.clone(), (d.action, d.reasons.clone()))).collect();
        let b: BTreeMap<_, _> = again.decisions.iter().map(|d| (d.backup_id.clone(), (d.action, d.reasons.clone()))).collect();
        prop_assert_eq!(a, b);

        // Parents of kept backups are kept.
        let keep: BTreeSet<&str> = plan.to_keep().collect();
        for b in &backups {
            if keep.contains(b.backup_id.as_str()) {
                if let Some(p) = &b.parent {
                    prop_assert!(keep.contains(p.as_str()), "parent {} of kept {} deleted", p, b.backup_id);
                }
            }
        }

        // Idempotent: planning again over what is left deletes nothing more.
        let left: Vec<BackupSummary> = backups.iter().filter(|b| keep.contains(b.backup_id.as_str())).cloned().collect();
        let second = policy.plan(&left, now).unwrap();
        prop_assert_eq!(second.to_delete().count(), 0);
    }
}

#[test]
fn one_databases_backups_never_decide_anothers() {
    use dbbackup_core::{plan_grouped, GroupBy};
    let now = datetime!(2026-06-01 12:00 UTC);
    let mut pg = summary(datetime!(2026-05-30 01:00 UTC), BTreeMap::new(), None);
    pg.engine = "postgres".into();
    pg.server = Some("db1:5432".into());
    pg.database = Some("app".into());
    let mut pg2 = summary(datetime!(2026-05-31 01:00 UTC), BTreeMap::new(), None);
    pg2.engine = "postgres".into();
    pg2.server = Some("db1:5432".into());
    pg2.database = Some("app".into());
    let mut my = summary(datetime!(2026-05-29 01:00 UTC), BTreeMap::new(), None);
    my.engine = "mysql".into();
    my.server = Some("db2:3306".into());
    my.database = Some("shop".into());
    let all = vec![my.clone(), pg.clone(), pg2.clone()];
    let keep_last = KeepPolicy {
        keep_last: Some(1),
        ..Default::default()
    };
    for at in [now, now + Duration::from_secs(86400 * 30)] {
        let plan = plan_grouped(&keep_last, &all, &GroupBy::default(), at).unwrap();
        let kept: BTreeSet<&str> = plan.to_keep().collect();
        assert_eq!(
            kept,
            BTreeSet::from([my.backup_id.as_str(), pg2.backup_id.as_str()])
        );
        assert!(plan
            .decisions
            .iter()
            .any(|d| d.group == "mysql db2:3306 shop"));
        // `none` is the old behaviour: one group, the other database's only backup goes.
        let plan = plan_grouped(&keep_last, &all, &GroupBy::None, at).unwrap();
        assert_eq!(
            plan.to_keep().collect::<Vec<_>>(),
            vec![pg2.backup_id.as_str()]
        );
    }
    assert_eq!(
        "label:app".parse::<GroupBy>().unwrap(),
        GroupBy::Label("app".into())
    );
    assert_eq!(
        "bogus".parse::<GroupBy>().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}
