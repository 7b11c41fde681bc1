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
    sql_at(&server(), db, q).await
}

pub(super) async fn sql_at(server: &str, db: &str, q: &str) -> MySqlConnection {
    let mut c = MySqlConnection::connect(&format!("{server}/{db}"))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(q.to_owned()))
        .execute(&mut c)
        .await
        .unwrap();
    c
}

async fn marker(db: &str, id: i32) -> String {
    marker_at(&server(), db, id).await
}

async fn marker_at(server: &str, db: &str, id: i32) -> String {
    let mut c = sql_at(server, db, "SET time_zone = '+00:00'").await;
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
    markers_at(&server(), db).await
}

async fn markers_at(server: &str, db: &str) -> Vec<i32> {
    let mut c = MySqlConnection::connect(&format!("{server}/{db}"))
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

/// A MariaDB of its own with the binary log on, on a free loopback port, that a test may stop
/// and start (the shared servers keep running); shut down when dropped.
pub(super) struct Scratch {
    dir: std::path::PathBuf,
    port: u16,
    server: Option<std::process::Child>,
}

impl Scratch {
    pub(super) fn start(dir: &std::path::Path) -> Scratch {
        let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        let user = if root { "mysql".to_owned() } else { whoami() };
        let dir = dir.join("mariadb");
        // A tmpdir of its own: a starting mariadbd deletes every #sql* file in its tmpdir, which
        // would pull temporary tables from under the other servers sharing /tmp.
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        if root {
            assert!(Command::new("chown")
                .args(["-R", "mysql", dir.parent().unwrap().to_str().unwrap()])
                .status()
                .unwrap()
                .success());
        }
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", &format!("--user={user}")])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg("--auth-root-authentication-method=normal")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        std::fs::write(
            dir.join("init.sql"),
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';\n\
             GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Scratch {
            dir,
            port,
            server: None,
        };
        s.launch();
        s
    }

    pub(super) fn launch(&mut self) {
        let d = &self.dir;
        let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        let user = if root { "mysql".to_owned() } else { whoami() };
        let child = Command::new("mariadbd")
            .args(["--no-defaults", &format!("--user={user}")])
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-bin={}", d.join("data/binlog").display()))
            .arg(format!("--init-file={}", d.join("init.sql").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .args(["--bind-address=127.0.0.1", &format!("--port={}", self.port)])
            .args(["--server-id=1", "--binlog-format=ROW"])
            .spawn()
            .unwrap();
        self.server = Some(child);
        for _ in 0..120 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!(
            "the scratch MariaDB did not come up: {}",
            std::fs::read_to_string(d.join("error.log")).unwrap_or_default()
        );
    }

    pub(super) fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// A clean shutdown (the server writes its stop event), waited for.
    pub(super) fn shutdown(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = Command::new("mariadb-admin")
                .args(["-h", "127.0.0.1", "-P", &self.port.to_string(), "-uroot"])
                .arg("shutdown")
                .output();
            for _ in 0..120 {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn whoami() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned()
}

/// The stored files of the binlog archive's pieces (not their seals), in order.
fn stored_pieces(dir: &Dir) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.p("repo/logs/binlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "seal"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the MariaDB server binaries: scripts/mariadb-binlog.sh runs it"]
async fn the_streamer_rides_out_a_server_restart_and_damage_or_a_purge_is_never_silent() {
    let dir = Dir::new("binlog-faults");
    std::fs::write(dir.p("key"), "5f".repeat(32)).unwrap();
    let mut db = Scratch::start(&dir.0);
    let url = db.url();
    sql_at(&url, "mysql", "CREATE DATABASE a").await;
    sql_at(
        &url,
        "a",
        "CREATE TABLE markers (id INT PRIMARY KEY, at DATETIME(6) DEFAULT UTC_TIMESTAMP(6))",
    )
    .await;
    marker_at(&url, "a", 1).await;
    ok(&run(&dir, &["backup", "--source", &format!("{url}/a")]));
    let (repo, key) = (dir.p("repo"), dir.p("key"));
    let streamer = || {
        Command::new(env!("CARGO_BIN_EXE_dbbackup"))
            .args(["binlog-stream", "--source", &url, "--piece-age", "300ms"])
            .args(["--repo", repo.to_str().unwrap()])
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
    let log = || std::fs::read_to_string(dir.p("stream.log")).unwrap_or_default();
    let mut s = streamer();
    marker_at(&url, "a", 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    // The server stops (its stop event ends binlog.000001) and comes back on binlog.000002
    // while the streamer keeps running.
    db.shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    db.launch();
    // Marker 3 once the streamer is back, so that it and marker 4 land in pieces of their own.
    for _ in 0..600 {
        if log().matches("streaming from").count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    marker_at(&url, "a", 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    marker_at(&url, "a", 4).await;
    let (end_file, end): (String, u64) = sqlx::query_as("SHOW MASTER STATUS")
        .fetch_one(&mut sql_at(&url, "mysql", "SELECT 1").await)
        .await
        .unwrap();
    assert_eq!(
        end_file, "binlog.000002",
        "a restart starts a new binlog file"
    );
    let want = format!("{end_file}:{end}");
    let mut reached = false;
    for _ in 0..300 {
        let list = json(&run(&dir, &["list", "--json"]));
        if list["backups"][0]["recovery"]["to"].as_str() == Some(&want) {
            reached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reached, "the archive never reached {want}:\n{}", log());
    assert!(log().contains("connection lost"), "{}", log());
    assert!(Command::new("kill")
        .args(["-TERM", &s.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(s.wait().unwrap().success(), "{}", log());
    ok(&run(&dir, &["verify", "--backup", "all"]));
    // Nothing lost, nothing twice (a replayed duplicate would fail on the primary key).
    ok(&run(
        &dir,
        &[
            "restore",
            "--target",
            &format!("{url}/a_end"),
            "--create",
            "--replay-binlog",
        ],
    ));
    assert_eq!(markers_at(&url, "a_end").await, vec![1, 2, 3, 4]);

    // A flipped byte in a stored piece: caught by its checksum, exit 3, the piece named.
    let pieces = stored_pieces(&dir);
    let named = |p: &std::path::PathBuf| p.file_name().unwrap().to_str().unwrap().to_owned();
    // The piece holding marker 2 and the stop event, and the first after the restart.
    let tail = pieces
        .iter()
        .rfind(|p| named(p).starts_with("binlog.000001."))
        .unwrap();
    let name = named(tail);
    let good = std::fs::read(tail).unwrap();
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x10;
    std::fs::write(tail, &bad).unwrap();
    let out = run(&dir, &["verify", "--backup", "all"]);
    assert_eq!(code(&out), Some(3), "{}", text(&out));
    assert!(text(&out).contains(&name), "{}", text(&out));
    std::fs::write(tail, &good).unwrap();
    let victim = pieces
        .iter()
        .find(|p| named(p).starts_with("binlog.000002."))
        .unwrap();
    let name = named(victim);
    let good = std::fs::read(victim).unwrap();
    // A missing one: a gap named by verify (exit 3), and list shows it.
    let seal = victim.with_file_name(format!("{name}.seal"));
    let sealed = std::fs::read(&seal).unwrap();
    std::fs::remove_file(victim).unwrap();
    std::fs::remove_file(&seal).unwrap();
    let out = run(&dir, &["verify", "--backup", "all"]);
    assert_eq!(code(&out), Some(3), "{pieces:?}\n{}", text(&out));
    assert!(text(&out).contains("gap after"), "{}", text(&out));
    let list = text(&run(&dir, &["list"]));
    assert!(list.contains("GAP after"), "{list}");
    std::fs::write(victim, &good).unwrap();
    std::fs::write(&seal, &sealed).unwrap();
    ok(&run(&dir, &["verify", "--backup", "all"]));

    // The server purges what the stopped streamer has not read: a loud, permanent error (the
    // streamer does not retry it), not a silent gap.
    marker_at(&url, "a", 5).await;
    sql_at(&url, "mysql", "FLUSH BINARY LOGS").await;
    marker_at(&url, "a", 6).await;
    sql_at(&url, "mysql", "FLUSH BINARY LOGS").await;
    sql_at(&url, "mysql", "PURGE BINARY LOGS TO 'binlog.000004'").await;
    let mut s = streamer();
    let mut status = None;
    for _ in 0..200 {
        if let Some(st) = s.try_wait().unwrap() {
            status = Some(st);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let Some(status) = status else {
        let _ = s.kill();
        panic!("the streamer kept running past a purge:\n{}", log());
    };
    assert!(!status.success(), "{}", log());
    let tail = log();
    assert!(
        tail.contains("purged") && tail.contains(&format!("gap from {end_file}:{end}")),
        "{tail}"
    );
}
