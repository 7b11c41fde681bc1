//! Point-in-time recovery: the binlog position a backup records is exactly its snapshot, so
//! restoring the backup and replaying the binary log from that position reproduces the source as
//! it is after a writer that ran all through the backup. Needs a server with the binary log on
//! (`scripts/mariadb-binlog.sh` runs one, and these tests with it; elsewhere they are ignored, and
//! asked for on a server without one they fail).

use std::process::{Command, Stdio};
use std::sync::Arc;

use dbbackup_core::Restore;
use dbbackup_mysql::MySqlSource;

use crate::*;

/// Rows of `a` and the sum of `b.n`, to say what differs when the checksums do.
async fn shape(db: &TestDb) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT COUNT(*) FROM a), (SELECT CAST(SUM(n) AS SIGNED) FROM b)")
        .fetch_one(&mut db.conn().await)
        .await
        .unwrap()
}

async fn checksums(db: &TestDb) -> Vec<(String, Option<i64>)> {
    let mut c = db.conn().await;
    sqlx::query_as("CHECKSUM TABLE a, b")
        .fetch_all(&mut c)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, n): (String, Option<i64>)| (t.rsplit('.').next().unwrap().to_owned(), n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a server with the binary log on: scripts/mariadb-binlog.sh runs it"]
async fn replaying_the_binlog_from_the_recorded_position_reproduces_the_source() {
    point_in_time(false).await;
}

/// The no-lock mode reads MariaDB's `binlog_snapshot_file/position` of its one snapshot instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a server with the binary log on: scripts/mariadb-binlog.sh runs it"]
async fn the_no_lock_position_replays_as_exactly() {
    point_in_time(true).await;
}

// Long on purpose: one point-in-time scenario on a scratch server; its steps share the server and the binlog position.
async fn point_in_time(no_lock: bool) {
    let log_bin: i64 = sqlx::query_scalar("SELECT @@log_bin")
        .fetch_one(&mut admin().await)
        .await
        .unwrap();
    assert_ne!(
        log_bin,
        0,
        "{} has no binary log: scripts/mariadb-binlog.sh starts one that has",
        server()
    );
    let src = TestDb::new(if no_lock { "pitr_nolock" } else { "pitr" }).await;
    {
        let mut c = src.conn().await;
        for s in [
            "CREATE TABLE a (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(300)) ENGINE=InnoDB",
            "CREATE TABLE b (id BIGINT PRIMARY KEY, n BIGINT NOT NULL, pad VARCHAR(300)) ENGINE=InnoDB",
            "INSERT INTO a (pad) SELECT REPEAT(MD5(seq), 8) FROM seq_1_to_60000",
            "INSERT INTO b SELECT seq, 0, REPEAT(MD5(seq), 8) FROM seq_1_to_60000",
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(s.to_owned()))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
    // The writer inserts into one table and updates the other in each transaction, before, during
    // and after the backup's snapshot.
    let WrittenBackup {
        report, sink: mem, ..
    } = backup_during_writes(
        &src,
        MySqlSource::new(&src.url())
            .unwrap()
            .with_jobs(2)
            .no_lock(no_lock),
        |i| {
            vec![
                format!("INSERT INTO a (pad) VALUES ('during {i}')"),
                format!(
                    "UPDATE b SET n = n + {i} WHERE id = {}",
                    i * 7919 % 60_000 + 1
                ),
            ]
        },
    )
    .await;
    let pos = &report.manifest.source.position;
    let (file, offset) = (
        pos.get("binlog_file")
            .unwrap_or_else(|| panic!("no binlog file recorded: {pos:?}")),
        pos.get("binlog_position")
            .unwrap_or_else(|| panic!("no binlog position recorded: {pos:?}")),
    );

    // Where the writer's events end: the restore below writes its own events after them.
    let (end_file, end): (String, u64) = sqlx::query_as("SHOW MASTER STATUS")
        .fetch_one(&mut admin().await)
        .await
        .unwrap();

    let dst = TestDb::reserve("pitr_dst");
    Restore::builder()
        .sink(Arc::new(mem))
        .target(target(&dst).create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_ne!(
        checksums(&src).await,
        checksums(&dst).await,
        "the backup should predate the writer's last commits"
    );

    // mariadb-binlog reads the log from the recorded position to where the writer stopped, keeps
    // the source database's events (MariaDB's --database filter sees the original name), renames
    // them to the restored database, and the client applies them.
    let url: url::Url = server().parse().unwrap();
    let (host, port) = (
        url.host_str().unwrap().to_owned(),
        url.port().unwrap_or(3306).to_string(),
    );
    let mut log = Command::new("mariadb-binlog")
        .args(["--read-from-remote-server", "--user=root"])
        .args((end_file != *file).then_some("--to-last-log"))
        .arg(format!("--host={host}"))
        .arg(format!("--port={port}"))
        .arg(format!("--start-position={offset}"))
        .arg(format!("--stop-position={end}"))
        .arg(format!("--database={}", src.name))
        .arg(format!("--rewrite-db={}->{}", src.name, dst.name))
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mariadb-binlog (Debian: mariadb-client)");
    // Not logged again: the replay would re-log the events under their original GTIDs, which a
    // concurrent reader of the same log (the other test here) rejects as out of order.
    let apply = Command::new("mariadb")
        .args([
            "--user=root",
            "--batch",
            "--init-command=SET sql_log_bin = 0",
        ])
        .arg(format!("--host={host}"))
        .arg(format!("--port={port}"))
        .arg(&dst.name)
        .stdin(log.stdout.take().unwrap())
        .output()
        .expect("mariadb client");
    let read = log.wait_with_output().unwrap();
    assert!(
        read.status.success(),
        "mariadb-binlog from {file}:{offset} to {end_file}:{end}: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert!(
        apply.status.success(),
        "replaying the binlog failed (a position before the snapshot replays rows twice): {}",
        String::from_utf8_lossy(&apply.stderr)
    );
    assert_eq!(
        checksums(&src).await,
        checksums(&dst).await,
        "backup + binlog from {file}:{offset} differs from the source: (rows of a, sum of b.n) {:?} vs {:?}",
        shape(&src).await,
        shape(&dst).await
    );
}

/// The archive's pieces, decoded by the server's own tool: every event of `db` the writer made,
/// in order, with no gap between pieces.
fn decoded(mem: &dbbackup_core::MemorySink, names: &[String], dir: &std::path::Path) -> String {
    let _ = mem;
    let mut files = Vec::new();
    for (i, n) in names.iter().enumerate() {
        files.push(dir.join(format!("{i:04}-{n}")));
    }
    let out = Command::new("mariadb-binlog")
        .args(["--base64-output=decode-rows", "--verbose"])
        .args(&files)
        .output()
        .expect("mariadb-binlog");
    assert!(
        out.status.success(),
        "mariadb-binlog: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a server with the binary log on: scripts/mariadb-binlog.sh runs it"]
async fn the_binlog_streams_into_the_repository_in_contiguous_pieces_and_resumes_at_its_end() {
    use dbbackup_core::{CancellationToken, LogArchive, MemorySink, Repository};
    use dbbackup_mysql::{parse_piece, BinlogStreamer, BINLOG_ARCHIVE};
    let log_bin: i64 = sqlx::query_scalar("SELECT @@log_bin")
        .fetch_one(&mut admin().await)
        .await
        .unwrap();
    assert_ne!(log_bin, 0, "{} has no binary log", server());
    let db = TestDb::new("binlog_stream").await;
    let mut c = db.conn().await;
    sqlx::raw_sql("CREATE TABLE m (id INT PRIMARY KEY, note VARCHAR(100))")
        .execute(&mut c)
        .await
        .unwrap();
    for i in 1..=50 {
        sqlx::query("INSERT INTO m VALUES (?, 'before')")
            .bind(i)
            .execute(&mut c)
            .await
            .unwrap();
    }
    // A rotate in the middle: the archive follows into the next file.
    sqlx::raw_sql("FLUSH BINARY LOGS")
        .execute(&mut admin().await)
        .await
        .unwrap();
    sqlx::query("INSERT INTO m VALUES (51, 'after the rotate')")
        .execute(&mut c)
        .await
        .unwrap();

    let mem = MemorySink::new();
    let repo = Repository::new(std::sync::Arc::new(mem.clone())).with_key(key());
    let archive = LogArchive::new(repo, BINLOG_ARCHIVE).unwrap();
    let streamer = BinlogStreamer::new(&server(), archive.clone())
        .unwrap()
        .server_id(7001)
        .max_bytes(8192);
    // One shot, up to now.
    streamer
        .clone()
        .until_now(true)
        .run(CancellationToken::new())
        .await
        .unwrap();
    let first = archive.names().await.unwrap();
    assert!(first.len() >= 2, "{first:?}");

    // Continuous: a new commit reaches the archive within the piece age, after the first run's
    // end and with no gap.
    let cancel = CancellationToken::new();
    let run = {
        let s = streamer
            .clone()
            .max_age(std::time::Duration::from_millis(500));
        let t = cancel.clone();
        tokio::spawn(async move { s.run(t).await })
    };
    sqlx::query("INSERT INTO m VALUES (52, 'streamed')")
        .execute(&mut c)
        .await
        .unwrap();
    let mut all = Vec::new();
    for _ in 0..100 {
        all = archive.names().await.unwrap();
        if all.len() > first.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert!(all.len() > first.len(), "nothing new archived: {all:?}");

    // Contiguous within each file; each file's pieces start where the last one ended.
    let mut pieces: Vec<(String, u64, u64, String)> = all
        .iter()
        .map(|n| {
            let (f, a, b) = parse_piece(n).unwrap();
            (f, a, b, n.clone())
        })
        .collect();
    pieces.sort();
    for w in pieces.windows(2) {
        if w[0].0 == w[1].0 {
            assert_eq!(w[0].2, w[1].1, "gap between {} and {}", w[0].3, w[1].3);
        }
    }
    let dir = std::env::temp_dir().join(format!("dbbackup-binlog-pieces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let names: Vec<String> = pieces.iter().map(|p| p.3.clone()).collect();
    for (i, n) in names.iter().enumerate() {
        std::fs::write(
            dir.join(format!("{i:04}-{n}")),
            archive.fetch(n).await.unwrap(),
        )
        .unwrap();
    }
    let text = decoded(&mem, &names, &dir);
    std::fs::remove_dir_all(&dir).unwrap();
    for marker in ["'before'", "'after the rotate'", "'streamed'"] {
        assert!(text.contains(marker), "{marker} is not in the archive");
    }
    // Every insert of the writer, each once and in order.
    let ids: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("INSERT INTO m VALUES ("))
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect();
    let want: Vec<i64> = (1..=52).collect();
    assert_eq!(ids, want, "{text}");
}

async fn marker(db: &TestDb, id: i32) -> String {
    let mut c = db.conn().await;
    sqlx::query("INSERT INTO markers (id) VALUES (?)")
        .bind(id)
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT DATE_FORMAT(at, '%Y-%m-%dT%H:%i:%s.%f+00:00') FROM markers WHERE id = ?",
    )
    .bind(id)
    .fetch_one(&mut c)
    .await
    .unwrap()
}

async fn markers_of(db: &TestDb) -> Vec<i32> {
    sqlx::query_scalar("SELECT id FROM markers ORDER BY id")
        .fetch_all(&mut db.conn().await)
        .await
        .unwrap()
}

async fn master_status() -> (String, u64) {
    sqlx::query_as("SHOW MASTER STATUS")
        .fetch_one(&mut admin().await)
        .await
        .map(|(f, p): (String, u64)| (f, p))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a server with the binary log on: scripts/mariadb-binlog.sh runs it"]
async fn a_backup_plus_the_archived_binlog_restores_one_database_to_a_time_a_position_and_the_end()
{
    use dbbackup_core::{CancellationToken, LogArchive, MemorySink, Repository};
    use dbbackup_mysql::{archive_end, replay_binlog, BinlogStreamer, ReplayStop, Tools};
    let a = TestDb::new("pitr_a").await;
    let b = TestDb::new("pitr_b").await;
    for db in [&a, &b] {
        sqlx::raw_sql(
            "SET time_zone = '+00:00';
             CREATE TABLE markers (id INT PRIMARY KEY, at DATETIME(6) DEFAULT UTC_TIMESTAMP(6))",
        )
        .execute(&mut db.conn().await)
        .await
        .unwrap();
    }
    let mem = MemorySink::new();
    let key = key();
    let repo = Repository::new(Arc::new(mem.clone())).with_key(key.clone());
    let archive = LogArchive::new(repo, dbbackup_mysql::BINLOG_ARCHIVE).unwrap();
    let cancel = CancellationToken::new();
    let streaming = {
        let s = BinlogStreamer::new(&server(), archive.clone())
            .unwrap()
            .server_id(7002)
            .max_age(std::time::Duration::from_millis(300));
        let t = cancel.clone();
        tokio::spawn(async move { s.run(t).await })
    };
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(1100));
    marker(&a, 1).await;
    marker(&b, 101).await;
    let report = backup(&a, &mem, &key, 2).await;
    marker(&a, 2).await;
    pause().await;
    let t3 = marker(&a, 3).await;
    marker(&b, 103).await;
    pause().await;
    marker(&a, 4).await;
    let p4 = master_status().await;
    pause().await;
    marker(&a, 5).await;
    let end = master_status().await;
    for _ in 0..100 {
        let names = archive.names().await.unwrap();
        if archive_end(names.iter().map(String::as_str))
            .is_some_and(|e| e.0 == end.0 && e.1 >= end.1)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    cancel.cancel();
    streaming.await.unwrap().unwrap();
    let pos = &report.manifest.source.position;
    let from = (
        pos["binlog_file"].as_str(),
        pos["binlog_position"].parse::<u64>().unwrap(),
    );

    let restore_to = |stop: ReplayStop, tag: &'static str| {
        let (mem, key, archive, a_name) =
            (mem.clone(), key.clone(), archive.clone(), a.name.clone());
        let from = (from.0.to_owned(), from.1);
        async move {
            let dst = TestDb::reserve(tag);
            Restore::builder()
                .sink(Arc::new(mem))
                .key(key)
                .backup(dbbackup_core::BackupSelector::Latest)
                .target(target(&dst).create(true))
                .build()
                .unwrap()
                .run()
                .await
                .unwrap();
            replay_binlog(
                &archive,
                (&from.0, from.1),
                &stop,
                &a_name,
                &dst.url(),
                false,
                &Tools::from_path(),
            )
            .await
            .unwrap();
            dst
        }
    };
    let t =
        time::OffsetDateTime::parse(&t3, &time::format_description::well_known::Rfc3339).unwrap();
    let dst = restore_to(ReplayStop::Time(t), "pitr_time").await;
    assert_eq!(markers_of(&dst).await, vec![1, 2, 3], "to {t3}");
    let dst = restore_to(
        ReplayStop::Position {
            file: p4.0.clone(),
            position: p4.1,
        },
        "pitr_pos",
    )
    .await;
    assert_eq!(markers_of(&dst).await, vec![1, 2, 3, 4], "to {p4:?}");
    let dst = restore_to(ReplayStop::End, "pitr_end").await;
    assert_eq!(markers_of(&dst).await, vec![1, 2, 3, 4, 5]);
    // B's markers stayed out of every replay (the backup and the replay are of A only).
    assert_eq!(markers_of(&b).await, vec![101, 103]);
}
