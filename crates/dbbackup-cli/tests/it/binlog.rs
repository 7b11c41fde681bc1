//! MySQL/MariaDB point-in-time recovery from the command line: `binlog-stream` archives the
//! binary log while a writer commits markers into two databases; `restore --to-time`,
//! `--to-position` and `--replay-binlog` roll database A forward from its logical backup into a
//! new database. Needs a server with the binary log on (`scripts/mariadb-binlog.sh` runs one and
//! these tests with `DBBACKUP_MYSQL_URL` at it).

use std::process::Command;

use sqlx::{Connection, MySqlConnection};

use super::{code, json, ok, text, Dir};

fn server() -> String {
    std::env::var("DBBACKUP_MYSQL_URL")
        .expect("DBBACKUP_MYSQL_URL: a MariaDB with the binary log on (scripts/mariadb-binlog.sh)")
}

async fn sql(db: &str, q: &str) -> MySqlConnection {
    let mut c = MySqlConnection::connect(&format!("{}/{db}", server()))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(q.to_owned()))
        .execute(&mut c)
        .await
        .unwrap();
    c
}

async fn marker(db: &str, id: i32) -> String {
    let mut c = sql(db, "SET time_zone = '+00:00'").await;
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

async fn markers(db: &str) -> Vec<i32> {
    let mut c = MySqlConnection::connect(&format!("{}/{db}", server()))
        .await
        .unwrap();
    sqlx::query_scalar("SELECT id FROM markers ORDER BY id")
        .fetch_all(&mut c)
        .await
        .unwrap()
}

fn run(dir: &Dir, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    let repo = dir.p("repo");
    let key = dir.p("key");
    all.extend([
        "--repo",
        repo.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    Command::new(env!("CARGO_BIN_EXE_dbbackup"))
        .args(&all)
        .env_remove("DBBACKUP_REPO")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a server with the binary log on: scripts/mariadb-binlog.sh runs it"]
async fn a_database_rolls_forward_from_its_backup_with_the_archived_binlog() {
    let dir = Dir::new("binlog-pitr");
    std::fs::write(dir.p("key"), "4e".repeat(32)).unwrap();
    let tag = std::process::id();
    let (a, b) = (format!("cli_pitr_a_{tag}"), format!("cli_pitr_b_{tag}"));
    for db in [&a, &b] {
        sql(
            "mysql",
            &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"),
        )
        .await;
        sql(
            db,
            "CREATE TABLE markers (id INT PRIMARY KEY, at DATETIME(6) DEFAULT UTC_TIMESTAMP(6))",
        )
        .await;
    }
    let (repo, key) = (dir.p("repo"), dir.p("key"));
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_dbbackup"))
            .args([
                "binlog-stream",
                "--source",
                &server(),
                "--piece-age",
                "300ms",
            ])
            .args(["--server-id", "7003", "--repo", repo.to_str().unwrap()])
            .args(["--key-file", key.to_str().unwrap()])
            .env_remove("DBBACKUP_REPO")
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.p("stream.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap()
    };
    let mut streamer = start();
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(1100));
    marker(&a, 1).await;
    marker(&b, 101).await;
    // A rotate before the backup: the older file's pieces are what retention removes below.
    sql("mysql", "FLUSH BINARY LOGS").await;
    let backup = json(&run(
        &dir,
        &["backup", "--source", &format!("{}/{a}", server()), "--json"],
    ));
    let id = backup["backup_id"].as_str().unwrap().to_owned();
    // Killed (SIGKILL, mid-piece): marker 2 is committed while nothing streams; the restarted
    // streamer resumes where the archive ends, and the restores below cross that point.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    streamer.kill().unwrap();
    streamer.wait().unwrap();
    marker(&a, 2).await;
    let mut streamer = start();
    pause().await;
    let t2 = marker(&a, 3).await;
    pause().await;
    marker(&a, 4).await;
    let gtid4: String = sqlx::query_scalar("SELECT @@GLOBAL.gtid_binlog_pos")
        .fetch_one(&mut sql("mysql", "SELECT 1").await)
        .await
        .unwrap();
    let (file, pos): (String, u64) = sqlx::query_as("SHOW MASTER STATUS")
        .fetch_one(&mut sql("mysql", "SELECT 1").await)
        .await
        .unwrap();
    pause().await;
    marker(&a, 5).await;
    let (end_file, end): (String, u64) = sqlx::query_as("SHOW MASTER STATUS")
        .fetch_one(&mut sql("mysql", "SELECT 1").await)
        .await
        .unwrap();
    // `list` shows the window growing to the server's end.
    let mut reached = false;
    for _ in 0..100 {
        let list = json(&run(&dir, &["list", "--json"]));
        let to = list["backups"][0]["recovery"]["to"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        // Other tests write to the same log: the window reaches at least the end seen here.
        let past = to.rsplit_once(':').is_some_and(|(f, p)| {
            let n = |f: &str| f.rsplit_once('.').and_then(|x| x.1.parse::<u64>().ok());
            (n(f), p.parse::<u64>().unwrap_or(0)) >= (n(&end_file), end)
        });
        if past {
            reached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        reached,
        "{}",
        std::fs::read_to_string(dir.p("stream.log")).unwrap_or_default()
    );
    let st = Command::new("kill")
        .args(["-TERM", &streamer.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(streamer.wait().unwrap().success());
    let out = run(&dir, &["verify", "--backup", "all"]);
    ok(&out);
    assert!(
        text(&out).contains(&format!("binlog of {id}")),
        "{}",
        text(&out)
    );

    // `latest` before a time: the only backup; rolled forward to marker 3's commit.
    let at_t = format!("cli_pitr_t_{tag}");
    let out = run(
        &dir,
        &[
            "restore",
            "--target",
            &format!("{}/{at_t}", server()),
            "--create",
            "--to-time",
            &t2,
        ],
    );
    ok(&out);
    assert_eq!(markers(&at_t).await, vec![1, 2, 3], "{}", text(&out));
    let at_p = format!("cli_pitr_p_{tag}");
    ok(&run(
        &dir,
        &[
            "restore",
            "--backup",
            &id,
            "--target",
            &format!("{}/{at_p}", server()),
            "--create",
            "--to-position",
            &format!("{file}:{pos}"),
        ],
    ));
    assert_eq!(markers(&at_p).await, vec![1, 2, 3, 4]);
    let at_g = format!("cli_pitr_g_{tag}");
    ok(&run(
        &dir,
        &[
            "restore",
            "--backup",
            &id,
            "--target",
            &format!("{}/{at_g}", server()),
            "--create",
            "--to-gtid",
            &gtid4,
        ],
    ));
    assert_eq!(markers(&at_g).await, vec![1, 2, 3, 4], "to GTID {gtid4}");
    // Retention: the pieces before the backup's position go, and the backup still rolls
    // forward to the end.
    let pruned = json(&run(&dir, &["prune", "--keep-last", "1", "--json"]));
    assert!(
        !pruned["binlog_deleted"].as_array().unwrap().is_empty(),
        "{pruned}"
    );
    let at_end = format!("cli_pitr_e_{tag}");
    ok(&run(
        &dir,
        &[
            "restore",
            "--backup",
            &id,
            "--target",
            &format!("{}/{at_end}", server()),
            "--create",
            "--replay-binlog",
        ],
    ));
    assert_eq!(markers(&at_end).await, vec![1, 2, 3, 4, 5]);
    // B's commits never reach A's restores; a time before the backup has no backup.
    assert_eq!(markers(&b).await, vec![101]);
    let out = run(
        &dir,
        &[
            "restore",
            "--target",
            &format!("{}/cli_pitr_x_{tag}", server()),
            "--create",
            "--to-time",
            "2001-01-01T00:00:00+00:00",
        ],
    );
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("ends before"), "{}", text(&out));
    for db in [&a, &b, &at_t, &at_p, &at_g, &at_end] {
        sql("mysql", &format!("DROP DATABASE IF EXISTS {db}")).await;
    }
}
