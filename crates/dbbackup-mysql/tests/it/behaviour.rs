use std::sync::Arc;
use std::time::Duration;

use dbbackup_core::testing::conformance;
use dbbackup_core::{
    Backup, ErrorKind, MemorySink, Repository, Restore, RestoreTarget, Sink, Source,
};
use dbbackup_mysql::{MySqlSource, MySqlTarget};
use dbbackup_storage::Throttled;
use sqlx::{Connection, MySqlConnection};

use crate::*;

async fn exec(db: &TestDb, sql: &str) {
    let mut c = db.conn().await;
    for s in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(s.to_owned()))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

async fn count(db: &TestDb, table: &str) -> i64 {
    let mut c = db.conn().await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&mut c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_workers_see_one_moment_while_a_writer_commits() {
    let src = TestDb::new("consistency").await;
    exec(&src, "CREATE TABLE a (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(300)) ENGINE=InnoDB;\n
                CREATE TABLE b (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(300)) ENGINE=InnoDB;\n
                INSERT INTO a (pad) SELECT REPEAT(MD5(seq), 8) FROM seq_1_to_60000;\n
                INSERT INTO b (pad) SELECT REPEAT(MD5(seq), 8) FROM seq_1_to_60000;\n
                ANALYZE TABLE a, b").await;
    let WrittenBackup {
        report,
        sink: mem,
        before,
        after,
    } = backup_during_writes(
        &src,
        MySqlSource::new(&src.url()).unwrap().with_jobs(2),
        |_| {
            vec![
                "INSERT INTO a (pad) VALUES ('during')".into(),
                "INSERT INTO b (pad) VALUES ('during')".into(),
            ]
        },
    )
    .await;
    let pos = &report.manifest.source.position;
    assert!(!pos.is_empty(), "the snapshot position is recorded");

    let dst = TestDb::reserve("consistency_dst");
    Restore::builder()
        .sink(Arc::new(mem))
        .target(target(&dst).create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let (ra, rb) = (count(&dst, "a").await, count(&dst, "b").await);
    assert_eq!(
        ra, rb,
        "tables read by different workers show different moments"
    );
    let during = ra - 60_000;
    assert!(
        during >= before && during < after,
        "rows committed during the backup leaked in: {during} not in [{before}, {after})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backup_connection_fails_clearly_and_commits_nothing() {
    let src = TestDb::new("killed").await;
    exec(&src, "CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(400)) ENGINE=InnoDB;\nINSERT INTO big SELECT seq, REPEAT(MD5(seq), 10) FROM seq_1_to_100000").await;
    let mem = MemorySink::new();
    let slow: Arc<dyn Sink> = Arc::new(Throttled::new(Arc::new(mem.clone()), 2 << 20).unwrap());
    let url = src.url();
    let run = tokio::spawn(async move {
        Backup::builder()
            .source(MySqlSource::new(&url).unwrap().with_jobs(1))
            .sink(slow)
            .build()
            .unwrap()
            .run()
            .await
    });
    let mut admin = admin().await;
    let mut killed = false;
    for _ in 0..200 {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'SELECT%big%'")
            .bind(&src.name)
            .fetch_all(&mut admin)
            .await
            .unwrap();
        if let Some(id) = ids.first() {
            sqlx::query(sqlx::AssertSqlSafe(format!("KILL {id}")))
                .execute(&mut admin)
                .await
                .unwrap();
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(killed, "never saw the table being read");
    let e = run
        .await
        .unwrap()
        .expect_err("a backup whose connection was killed must fail");
    assert_eq!(e.kind(), ErrorKind::Source, "{e}");
    assert!(
        e.to_string().contains("big"),
        "the error should name the table: {e}"
    );
    assert!(Repository::new(Arc::new(mem.clone()))
        .list()
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_lock_wait_is_bounded() {
    let src = TestDb::new("locked").await;
    exec(&src, "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB").await;
    // Another backup holds the backup stage: ours must give up after its timeout, clearly.
    let mut holder = src.conn().await;
    sqlx::raw_sql("BACKUP STAGE START")
        .execute(&mut holder)
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let e = Backup::builder()
        .source(
            MySqlSource::new(&src.url())
                .unwrap()
                .with_lock_timeout(Duration::from_secs(2)),
        )
        .sink(Arc::new(MemorySink::new()))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "the lock wait was not bounded"
    );
    assert!(e.to_string().contains("backup lock"), "{e}");
    sqlx::raw_sql("BACKUP STAGE END")
        .execute(&mut holder)
        .await
        .unwrap();
    // The no-lock mode works meanwhile.
    let mut holder2 = src.conn().await;
    sqlx::raw_sql("BACKUP STAGE START")
        .execute(&mut holder2)
        .await
        .unwrap();
    let r = Backup::builder()
        .source(MySqlSource::new(&src.url()).unwrap().no_lock(true))
        .sink(Arc::new(MemorySink::new()))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(r.manifest.warnings.iter().any(|w| w.contains("no-lock")));
    sqlx::raw_sql("BACKUP STAGE END")
        .execute(&mut holder2)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_a_database_with_the_same_objects_changes_nothing() {
    let src = TestDb::new("conflict_src").await;
    load_fixture(&src, 10).await;
    let mem = MemorySink::new();
    let key = key();
    backup(&src, &mem, &key, 1).await;
    let dst = TestDb::new("conflict_dst").await;
    exec(&dst, "CREATE TABLE parent (id INT PRIMARY KEY, mine TEXT);\nINSERT INTO parent VALUES (7, 'mine')").await;
    let e = Restore::builder()
        .sink(Arc::new(mem))
        .key(key)
        .target(target(&dst))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("table:parent") && e.to_string().contains("nothing was changed"),
        "{e}"
    );
    let tables: Vec<String> = {
        let mut c = dst.conn().await;
        sqlx::query_scalar(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
        )
        .fetch_all(&mut c)
        .await
        .unwrap()
    };
    assert_eq!(tables, vec!["parent".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_rows_restore_into_a_migrated_schema_by_column_name() {
    let src = TestDb::new("premig_src").await;
    exec(&src, "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL, legacy TEXT) ENGINE=InnoDB;\n
                INSERT INTO users (name, legacy) SELECT CONCAT('user ', seq), 'old' FROM seq_1_to_300").await;
    let mem = MemorySink::new();
    let key = key();
    backup(&src, &mem, &key, 1).await;
    let migrated = "CREATE TABLE users (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(100) NOT NULL DEFAULT 'unknown') ENGINE=InnoDB";
    let strict = TestDb::new("premig_strict").await;
    exec(&strict, migrated).await;
    let e = Restore::builder()
        .sink(Arc::new(mem.clone()))
        .key(key.clone())
        .target(
            target(&strict)
                .data_only(true)
                .fail_on_dropped_columns(true),
        )
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("legacy"), "{e}");
    assert_eq!(count(&strict, "users").await, 0);
    let dst = TestDb::new("premig_dst").await;
    exec(&dst, migrated).await;
    let r = Restore::builder()
        .sink(Arc::new(mem))
        .key(key)
        .target(target(&dst).data_only(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("legacy")),
        "{:?}",
        r.warnings
    );
    assert_eq!(count(&dst, "users").await, 300);
    let mut c = dst.conn().await;
    let (name, email): (String, String) =
        sqlx::query_as("SELECT name, email FROM users WHERE id = 7")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!((name.as_str(), email.as_str()), ("user 7", "unknown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_passes_the_source_conformance_suite() {
    let src = TestDb::new("conf").await;
    load_fixture(&src, 1000).await;
    let (dst, bad) = (TestDb::reserve("conf_dst"), TestDb::reserve("conf_bad"));
    let source: Arc<dyn Source> = Arc::new(MySqlSource::new(&src.url()).unwrap());
    conformance::source_roundtrip(
        source,
        Arc::new(MySqlTarget::new(&dst.url()).unwrap().create(true)) as Arc<dyn RestoreTarget>,
        Some(Arc::new(MySqlTarget::new(&bad.url()).unwrap().create(true))),
    )
    .await;
    assert_eq!(describe(&src).await, describe(&dst).await);
    assert!(
        !bad.exists().await,
        "a failed restore into a created database must drop it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_tables_split_by_primary_key_ranges_restore_whole() {
    let src = TestDb::new("split").await;
    exec(&src, "CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB;\n
                INSERT INTO big SELECT CAST(seq AS SIGNED) * 7 - 100000, MD5(seq) FROM seq_1_to_30000;\n
                INSERT INTO big VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max');\n
                CREATE TABLE nokey (v INT) ENGINE=InnoDB;\n
                INSERT INTO nokey SELECT seq FROM seq_1_to_1000;\n
                CREATE TABLE strkey (k VARCHAR(10) PRIMARY KEY) ENGINE=InnoDB;\n
                INSERT INTO strkey SELECT CONCAT('k', seq) FROM seq_1_to_1000;\n
                CREATE TABLE multi (tenant INT, id INT, v INT, PRIMARY KEY (tenant, id)) ENGINE=InnoDB;\n
                INSERT INTO multi SELECT seq % 30, seq, seq FROM seq_1_to_3000;\n
                CREATE TABLE strfirst (s VARCHAR(10), n INT, PRIMARY KEY (s, n)) ENGINE=InnoDB;\n
                INSERT INTO strfirst SELECT CONCAT('s', seq % 7), seq FROM seq_1_to_700;\n
                CREATE TABLE ci (k VARCHAR(10) CHARACTER SET latin1 COLLATE latin1_swedish_ci PRIMARY KEY) ENGINE=InnoDB;\n
                INSERT INTO ci SELECT CONCAT(IF(seq % 2, 'a', 'B'), seq, IF(seq % 3, CHAR(228 USING latin1), 'Z')) FROM seq_1_to_900;\n
                CREATE TABLE bin (k VARBINARY(8) PRIMARY KEY) ENGINE=InnoDB;\n
                INSERT INTO bin SELECT UNHEX(LPAD(HEX(seq * 65521 % 16777216), 6, '0')) FROM seq_1_to_900;\n
                CREATE TABLE dt (at DATETIME(6), n INT, PRIMARY KEY (at, n)) ENGINE=InnoDB;\n
                INSERT INTO dt SELECT '2020-01-01' + INTERVAL seq * 7919 SECOND + INTERVAL seq MICROSECOND, seq FROM seq_1_to_900;\n
                ANALYZE TABLE big, nokey, strkey, multi, strfirst, ci, bin, dt").await;
    let sink = MemorySink::new();
    let report = Backup::builder()
        .source(
            MySqlSource::new(&src.url())
                .unwrap()
                .with_jobs(3)
                .with_split_bytes(1),
        )
        .sink(Arc::new(sink.clone()))
        .jobs(3)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let m = &report.manifest;
    let parts: Vec<&dbbackup_core::EntryRecord> = m
        .entries
        .iter()
        .filter(|e| e.name.starts_with("data/big#"))
        .collect();
    assert_eq!(
        parts.len(),
        3,
        "{:?}",
        m.entries.iter().map(|e| &e.name).collect::<Vec<_>>()
    );
    assert_eq!(parts.iter().map(|e| e.rows.unwrap()).sum::<u64>(), 30_002);
    assert!(parts.iter().all(|e| e.rows.unwrap() > 0));
    assert!(m.entry("data/nokey").is_some());
    // A composite key is split by its first column when that is an integer.
    let multi: Vec<u64> = m
        .entries
        .iter()
        .filter(|e| e.name.starts_with("data/multi#"))
        .map(|e| e.rows.unwrap())
        .collect();
    assert_eq!(multi.len(), 3, "{multi:?}");
    assert_eq!(multi.iter().sum::<u64>(), 3000);
    assert!(multi.iter().all(|&n| n > 0), "{multi:?}");
    // String (case-insensitive latin1 too), binary and temporal keys split at sampled values.
    for (t, rows) in [
        ("strkey", 1000),
        ("strfirst", 700),
        ("ci", 900),
        ("bin", 900),
        ("dt", 900),
    ] {
        let parts: Vec<u64> = m
            .entries
            .iter()
            .filter(|e| e.name.starts_with(&format!("data/{t}#")))
            .map(|e| e.rows.unwrap())
            .collect();
        assert_eq!(parts.len(), 3, "{t}: {parts:?}");
        assert_eq!(parts.iter().sum::<u64>(), rows, "{t}: {parts:?}");
        assert!(parts.iter().all(|&n| n > 0), "{t}: {parts:?}");
    }

    let dst = TestDb::reserve("split_dst");
    Restore::builder()
        .sink(Arc::new(sink))
        .backup(report.backup_id().parse().unwrap())
        .target(MySqlTarget::new(&dst.url()).unwrap().create(true))
        .jobs(3)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    for t in [
        "big", "nokey", "strkey", "multi", "strfirst", "ci", "bin", "dt",
    ] {
        let sum = |db: &TestDb| {
            let url = db.url();
            async move {
                let mut c = MySqlConnection::connect(&url).await.unwrap();
                let row: (String, Option<i64>) =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("CHECKSUM TABLE {t}")))
                        .fetch_one(&mut c)
                        .await
                        .unwrap();
                row.1
            }
        };
        assert_eq!(sum(&src).await, sum(&dst).await, "{t}");
    }
    assert_eq!(count(&dst, "big").await, 30_002);
}

/// The settings the server recorded for each trigger, routine and event.
async fn object_sessions(db: &TestDb) -> Vec<String> {
    let mut c = admin().await;
    let mut out = Vec::new();
    for q in [
        "SELECT CONCAT_WS('|', 'trigger', TRIGGER_NAME, SQL_MODE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY 1",
        "SELECT CONCAT_WS('|', ROUTINE_TYPE, ROUTINE_NAME, SQL_MODE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY 1",
        "SELECT CONCAT_WS('|', 'event', EVENT_NAME, SQL_MODE, TIME_ZONE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY 1",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(q)
            .bind(&db.name)
            .fetch_all(&mut c)
            .await
            .unwrap();
        out.extend(rows);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_routines_and_events_keep_their_sql_mode_and_character_set() {
    let src = TestDb::new("modes_src").await;
    let mut c = src.conn().await;
    for q in [
        "CREATE TABLE t (v TINYINT, note VARCHAR(3))",
        "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'",
        "SET NAMES latin1",
        "CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW SET NEW.note = CONCAT(NEW.note, 'xyz')",
        "CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1",
        "SET SESSION sql_mode = 'ANSI_QUOTES,ONLY_FULL_GROUP_BY'",
        "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci",
        "CREATE PROCEDURE p() SELECT \"v\" FROM t",
        "SET SESSION time_zone = '+02:00'",
        "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM t",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(q.to_owned()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    drop(c);
    let want = object_sessions(&src).await;
    assert_eq!(want.len(), 4, "{want:?}");
    assert!(
        want.iter()
            .any(|w| w.contains("STRICT_TRANS_TABLES") && w.contains("latin1")),
        "{want:?}"
    );
    let mem = MemorySink::new();
    let key = key();
    backup(&src, &mem, &key, 1).await;
    let dst = TestDb::new("modes_dst").await;
    Restore::builder()
        .sink(Arc::new(mem))
        .key(key)
        .target(target(&dst))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(object_sessions(&dst).await, want);
    // And it behaves so: in a non-strict session the trigger still runs strict, as on the source.
    for db in [&src, &dst] {
        let mut c = db.conn().await;
        sqlx::raw_sql("SET SESSION sql_mode = ''")
            .execute(&mut c)
            .await
            .unwrap();
        let e = sqlx::raw_sql("INSERT INTO t VALUES (1, 'ab')")
            .execute(&mut c)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("too long"), "{}: {e}", db.name);
    }
}
