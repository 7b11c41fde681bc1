//! `wal-push` as `archive_command` and `wal-fetch` as `restore_command` on scratch PostgreSQL
//! clusters (the shared server on 5432 keeps its configuration): a cluster archives into an
//! encrypted repository, a base backup taken without WAL (`pg_basebackup -X none`) recovers from
//! the archive alone to its end, and the exit codes PostgreSQL relies on hold.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::{Connection, PgConnection};

use super::{code, ok, text, Dir};

/// The PostgreSQL server binaries: `DBBACKUP_PG_BIN`, else the newest Debian install.
fn pg_bin() -> PathBuf {
    if let Ok(d) = std::env::var("DBBACKUP_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (or DBBACKUP_PG_BIN)")
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

/// A PostgreSQL tool, run as the postgres user when this runs as root (the server refuses root).
fn pg_command(tool: &str) -> Command {
    // Server-only builds (13's) lack the client tools: those come from PATH.
    let mut path = pg_bin().join(tool);
    if !path.exists() {
        if let Some(found) = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(tool))
                .find(|c| c.exists())
        }) {
            path = found;
        }
    }
    // A relocatable build's modules load its own libraries.
    let lib = format!(
        "LD_LIBRARY_PATH={}",
        pg_bin().parent().unwrap().join("lib").display()
    );
    let mut c = if Command::new("id").arg("-u").output().unwrap().stdout == b"0\n" {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]);
        c
    } else {
        Command::new("env")
    };
    if std::env::var_os("DBBACKUP_PG_BIN").is_some() {
        c.arg("env").arg(lib);
    }
    c.arg(&path);
    c
}

/// Runs a PostgreSQL tool (see [`pg_command`]) and checks that it succeeded.
fn as_pg(tool: &str, args: &[&str]) -> std::process::Output {
    let out = pg_command(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch cluster, stopped when dropped.
struct Cluster {
    data: PathBuf,
    port: u16,
}

impl Cluster {
    fn start(data: &Path, port: u16, conf: &str) -> Cluster {
        let socket = data.parent().unwrap().to_str().unwrap().to_owned();
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| {
                use std::io::Write;
                writeln!(
                    f,
                    "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket}'\n{conf}"
                )
            })
            .unwrap();
        let log = data.parent().unwrap().join(format!("server-{port}.log"));
        let log_text = log.clone();
        let _show = Defer(move || {
            if std::thread::panicking() {
                eprintln!(
                    "server log:\n{}",
                    std::fs::read_to_string(&log_text).unwrap_or_default()
                );
            }
        });
        as_pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-w",
                "-t",
                "120",
                "-l",
                log.to_str().unwrap(),
                "start",
            ],
        );
        Cluster {
            data: data.to_owned(),
            port,
        }
    }

    async fn conn(&self) -> PgConnection {
        PgConnection::connect(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
        .await
        .unwrap()
    }

    fn stop(&self) {
        let data = self.data.to_str().unwrap();
        let _ = pg_command("pg_ctl")
            .args(["-D", data, "-m", "fast", "-w", "stop"])
            .output();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a closure when dropped.
struct Defer<F: FnMut()>(F);
impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn wal(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dbbackup"))
        .args(args)
        .env_remove("DBBACKUP_REPO")
        .output()
        .unwrap()
}

/// A scratch cluster archiving through `wal-push` into an encrypted repository in a directory
/// of its own (stopped before the directory goes: fields drop in order).
struct Setup {
    src: Cluster,
    dir: Dir,
    repo: PathBuf,
    repo_s: String,
    key_s: String,
    /// `--repo ... --key-file ...`, for postgresql.conf's quoted values (no spaces or quotes).
    tail: String,
}

fn archiving(name: &str, key_byte: &str) -> Setup {
    setup(name, key_byte, true)
}

/// A scratch cluster with an encrypted repository beside it, archiving through `wal-push` or
/// not archiving at all (for `wal-stream`).
fn setup(name: &str, key_byte: &str, archive: bool) -> Setup {
    let dir = Dir::new(name);
    chmod(&dir.0, 0o777);
    let repo = dir.p("repo");
    let key = dir.p("key");
    std::fs::write(&key, key_byte.repeat(32)).unwrap();
    chmod(&key, 0o644);
    let bin = env!("CARGO_BIN_EXE_dbbackup");
    let repo_s = repo.to_str().unwrap().to_owned();
    let key_s = key.to_str().unwrap().to_owned();
    let tail = format!("--repo {repo_s} --key-file {key_s}");
    let data = dir.p("data");
    as_pg(
        "initdb",
        &[
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
    );
    let src = Cluster::start(
        &data,
        free_port(),
        &if archive {
            format!(
                "wal_level = replica\narchive_mode = on\narchive_command = '{bin} wal-push %p {tail}'\nmax_wal_senders = 4"
            )
        } else {
            "wal_level = replica\nmax_wal_senders = 4\nmax_replication_slots = 4".to_owned()
        },
    );
    Setup {
        src,
        dir,
        repo,
        repo_s,
        key_s,
        tail,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_cluster_recovers_from_the_archive_alone() {
    // `dir` before `src`: locals drop in reverse, so the server stops before its directory goes.
    let Setup {
        dir,
        src,
        repo,
        repo_s,
        key_s,
        tail,
    } = archiving("wal", "6b");
    let bin = env!("CARGO_BIN_EXE_dbbackup");
    let mut c = src.conn().await;
    sqlx::raw_sql(
        "CREATE TABLE marks (id int PRIMARY KEY, note text);
         INSERT INTO marks SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 20000) g;",
    )
    .execute(&mut c)
    .await
    .unwrap();

    // A base backup with no WAL of its own: recovery needs the archive for all of it.
    let base = dir.p("base");
    as_pg(
        "pg_basebackup",
        &[
            "-D",
            base.to_str().unwrap(),
            "-h",
            "127.0.0.1",
            "-p",
            &src.port.to_string(),
            "-U",
            "postgres",
            "-X",
            "none",
            "-c",
            "fast",
        ],
    );
    sqlx::raw_sql(
        "INSERT INTO marks SELECT g, 'after the base backup' FROM generate_series(20001, 30000) g;
         CHECKPOINT;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let last: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let mut archived = false;
    for _ in 0..600 {
        let (done, failed): (Option<String>, i64) =
            sqlx::query_as("SELECT last_archived_wal, failed_count FROM pg_stat_archiver")
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!(
            failed,
            0,
            "archive_command failed: see the server log in {}",
            dir.0.display()
        );
        if done.is_some_and(|d| d >= last) {
            archived = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(archived, "{last} was not archived within a minute");
    drop(c);
    src.stop();

    // The archive: every pushed file is there, encrypted; a retry is fine, other content is not.
    let list: Vec<String> = walk(&repo.join("logs/wal"));
    assert!(
        list.iter().any(|n| n == &format!("{last}.seal")),
        "{list:?}"
    );
    let fetched = dir.p("fetched");
    ok(&wal(&[
        "wal-fetch",
        &last,
        fetched.to_str().unwrap(),
        "--repo",
        &repo_s,
        "--key-file",
        &key_s,
    ]));
    assert_eq!(std::fs::metadata(&fetched).unwrap().len(), 16 << 20);
    let retry = dir.p(&last);
    std::fs::copy(&fetched, &retry).unwrap();
    let out = wal(&[
        "wal-push",
        retry.to_str().unwrap(),
        "--repo",
        &repo_s,
        "--key-file",
        &key_s,
    ]);
    assert!(text(&out).contains("already archived"), "{}", text(&out));
    ok(&out);
    let mut changed = std::fs::read(&retry).unwrap();
    changed[1000] ^= 0xff;
    std::fs::write(&retry, changed).unwrap();
    let out = wal(&[
        "wal-push",
        retry.to_str().unwrap(),
        "--repo",
        &repo_s,
        "--key-file",
        &key_s,
    ]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("different content"), "{}", text(&out));
    // Not archived: exit 1, the end of the archive for PostgreSQL.
    let out = wal(&[
        "wal-fetch",
        "0000000100000000000000FF",
        fetched.to_str().unwrap(),
        "--repo",
        &repo_s,
        "--key-file",
        &key_s,
    ]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    // The wrong key: 126, so PostgreSQL stops recovery instead of ending it short.
    let wrong = dir.p("wrong");
    std::fs::write(&wrong, "7c".repeat(32)).unwrap();
    let out = wal(&[
        "wal-fetch",
        &last,
        fetched.to_str().unwrap(),
        "--repo",
        &repo_s,
        "--key-file",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(126), "{}", text(&out));

    // Recovery from the archive alone, to its end.
    std::fs::write(base.join("recovery.signal"), "").unwrap();
    let restored = Cluster::start(
        &base,
        free_port(),
        &format!("archive_mode = off\nrestore_command = '{bin} wal-fetch %f %p {tail}'"),
    );
    let mut r = restored.conn().await;
    let mut promoted = false;
    for _ in 0..600 {
        if !sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
            .fetch_one(&mut r)
            .await
            .unwrap()
        {
            promoted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(promoted, "recovery did not reach the end of the archive");
    let (n, after): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE note = 'after the base backup') FROM marks",
    )
    .fetch_one(&mut r)
    .await
    .unwrap();
    assert_eq!((n, after), (30000, 10000));

    // A damaged piece in the middle stops a restore_command with 126, not 1.
    let object = repo.join("logs/wal").join(&last);
    let mut bytes = std::fs::read(&object).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&object, bytes).unwrap();
    let out = wal(&[
        "wal-fetch",
        &last,
        fetched.to_str().unwrap(),
        "--repo",
        &repo_s,
        "--key-file",
        &key_s,
    ]);
    assert_eq!(code(&out), Some(126), "{}", text(&out));
    assert!(text(&out).contains("corrupt"), "{}", text(&out));
}

fn walk(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn markers(c: &Cluster) -> Vec<i32> {
    let mut r = c.conn().await;
    for _ in 0..600 {
        if !sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
            .fetch_one(&mut r)
            .await
            .unwrap()
        {
            return sqlx::query_scalar("SELECT id FROM markers ORDER BY id")
                .fetch_all(&mut r)
                .await
                .unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the restored server did not finish recovery within a minute");
}

fn chown_pg(dir: &Path) {
    if Command::new("id").arg("-u").output().unwrap().stdout == b"0\n" {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// Waits until the segment holding everything written so far is archived.
async fn archive_all(c: &mut PgConnection) {
    let last: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())")
        .fetch_one(&mut *c)
        .await
        .unwrap();
    for _ in 0..600 {
        let done: Option<String> =
            sqlx::query_scalar("SELECT last_archived_wal FROM pg_stat_archiver")
                .fetch_one(&mut *c)
                .await
                .unwrap();
        if done.is_some_and(|d| d >= last) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{last} was not archived within a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_physical_backup_restores_to_a_point_in_time_and_to_the_end() {
    // `dir` before `src`: locals drop in reverse, so the server stops before its directory goes.
    let Setup {
        dir,
        src,
        repo_s,
        key_s,
        ..
    } = archiving("pitr", "5a");
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", src.port);
    let mut c = src.conn().await;
    sqlx::raw_sql(
        "CREATE TABLE markers (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
         INSERT INTO markers (id) VALUES (1);",
    )
    .execute(&mut c)
    .await
    .unwrap();

    // The archiver (the postgres user) creates the repository, which root's backup then reads.
    archive_all(&mut c).await;

    // The shared server does not archive: its base backup would be useless, and is refused.
    // (Into a repository of its own: one created here, by root, the archiver could not write.)
    let elsewhere = dir.p("elsewhere");
    let out = wal(&[
        "backup",
        "--source",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "--engine-tool",
        "basebackup",
        "--repo",
        elsewhere.to_str().unwrap(),
        "--key-file",
        &key_s,
    ]);
    assert_ne!(code(&out), Some(0), "{}", text(&out));
    // (With another version's tools on PATH, pg_basebackup's version is refused first.)
    if std::env::var_os("DBBACKUP_PG_BIN").is_none() {
        assert!(text(&out).contains("does not archive"), "{}", text(&out));
    }

    let out = wal(&[
        "backup",
        "--source",
        &url,
        "--engine-tool",
        "basebackup",
        "--repo",
        &repo_s,
        "--key-file",
        &key_s,
        "--json",
    ]);
    ok(&out);
    sqlx::raw_sql("INSERT INTO markers (id) VALUES (2)")
        .execute(&mut c)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    // A time between markers 2 and 3, in PostgreSQL's own text and as RFC 3339.
    let t2: String = sqlx::query_scalar(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    sqlx::raw_sql("INSERT INTO markers (id) VALUES (3)")
        .execute(&mut c)
        .await
        .unwrap();
    archive_all(&mut c).await;
    drop(c);
    src.stop();

    // To a point in time: markers 1 and 2 only.
    let at_t2 = dir.p("at_t2");
    ok(&wal(&[
        "restore",
        "--repo",
        &repo_s,
        "--key-file",
        &key_s,
        "--data-dir",
        at_t2.to_str().unwrap(),
        "--to-time",
        &t2,
    ]));
    assert!(at_t2.join("recovery.signal").exists());
    chown_pg(&at_t2);
    let restored = Cluster::start(&at_t2, free_port(), "archive_mode = off");
    assert_eq!(markers(&restored).await, vec![1, 2]);
    restored.stop();

    // To the end of the archive: every marker.
    let end = dir.p("end");
    ok(&wal(&[
        "restore",
        "--repo",
        &repo_s,
        "--key-file",
        &key_s,
        "--data-dir",
        end.to_str().unwrap(),
    ]));
    chown_pg(&end);
    let restored = Cluster::start(&end, free_port(), "archive_mode = off");
    assert_eq!(markers(&restored).await, vec![1, 2, 3]);
    restored.stop();

    // Never into a directory that holds something; never into a database.
    let out = wal(&[
        "restore",
        "--repo",
        &repo_s,
        "--key-file",
        &key_s,
        "--data-dir",
        end.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    let out = wal(&["restore", "--repo", &repo_s, "--key-file", &key_s]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--data-dir"), "{}", text(&out));
}

/// A `dbbackup` command against the setup's repository and key, checked to succeed.
fn repo_cmd(s: &Setup, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--repo", &s.repo_s, "--key-file", &s.key_s]);
    wal(&all)
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// Restores with `args` into a new directory `name`, starts it (not archiving unless
/// `conf` says so) and returns its markers once recovery is over, with the server.
async fn restore_and_start(
    s: &Setup,
    name: &str,
    args: &[&str],
    conf: &str,
) -> (Vec<i32>, Cluster) {
    let d = s.dir.p(name);
    let mut all = vec!["restore", "--data-dir", d.to_str().unwrap()];
    all.extend(args);
    ok(&repo_cmd(s, &all));
    chown_pg(&d);
    let c = Cluster::start(&d, free_port(), conf);
    (markers(&c).await, c)
}

async fn base_backup(s: &Setup) -> String {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", s.src.port);
    let out = repo_cmd(
        s,
        &[
            "backup",
            "--source",
            &url,
            "--engine-tool",
            "basebackup",
            "--json",
        ],
    );
    ok(&out);
    json_of(&out)["backup_id"].as_str().unwrap().to_owned()
}

async fn insert_marker(c: &mut PgConnection, id: i32) {
    sqlx::query("INSERT INTO markers (id) VALUES ($1)")
        .bind(id)
        .execute(&mut *c)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_points_lsns_timelines_gaps_and_retention() {
    let s = archiving("timelines", "4d");
    let mut c = s.src.conn().await;
    sqlx::raw_sql(
        "CREATE TABLE markers (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
         INSERT INTO markers (id) VALUES (1);",
    )
    .execute(&mut c)
    .await
    .unwrap();
    archive_all(&mut c).await;
    let b1 = base_backup(&s).await;
    insert_marker(&mut c, 2).await;
    sqlx::raw_sql("SELECT pg_create_restore_point('after-2')")
        .execute(&mut c)
        .await
        .unwrap();
    insert_marker(&mut c, 3).await;
    let (l3, seg3): (String, String) =
        sqlx::query_as("SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())")
            .fetch_one(&mut c)
            .await
            .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let t3: String = sqlx::query_scalar("SELECT clock_timestamp()::text")
        .fetch_one(&mut c)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    insert_marker(&mut c, 4).await;
    archive_all(&mut c).await;
    let b2 = base_backup(&s).await;
    insert_marker(&mut c, 5).await;
    archive_all(&mut c).await;
    drop(c);
    s.src.stop();

    // Freshness of the archive, and the repository on one screen.
    let out = repo_cmd(&s, &["check", "--max-archive-lag", "1h", "--max-age", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("OK   max-archive-lag: newest wal piece"),
        "{}",
        text(&out)
    );
    let out = repo_cmd(&s, &["check", "--max-archive-lag", "0s"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let status = repo_cmd(&s, &["status"]);
    assert!(
        text(&status).contains("log archive wal: newest piece"),
        "{}",
        text(&status)
    );
    assert!(
        text(&status).contains(&format!("recovery window of {b1}")),
        "{}",
        text(&status)
    );
    // What the repository can recover, and proof that its WAL reads.
    let list = json_of(&repo_cmd(&s, &["list", "--json"]));
    let rec = |id: &str, list: &serde_json::Value| {
        list["backups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["backup_id"] == id)
            .unwrap()["recovery"]
            .clone()
    };
    let r1 = rec(&b1, &list);
    assert_eq!(r1["restorable"], true, "{list}");
    assert_eq!(r1["timeline"], 1, "{list}");
    assert_eq!(r1["gap"], serde_json::Value::Null, "{list}");
    let first1 = r1["first_segment"].as_str().unwrap().to_owned();
    let out = repo_cmd(&s, &["verify", "--backup", "all"]);
    ok(&out);
    assert!(
        text(&out).contains(&format!("WAL of {b1}")),
        "{}",
        text(&out)
    );

    // To a named restore point, to an LSN, and `latest` before a time picks the older backup.
    let (m, _r) = restore_and_start(
        &s,
        "at_name",
        &["--backup", &b1, "--to-name", "after-2"],
        "archive_mode = off",
    )
    .await;
    assert_eq!(m, vec![1, 2]);
    drop(_r);
    let (m, _r) = restore_and_start(
        &s,
        "at_lsn",
        &["--backup", &b1, "--to-lsn", &l3],
        "archive_mode = off",
    )
    .await;
    assert_eq!(m, vec![1, 2, 3]);
    drop(_r);
    let d = s.dir.p("at_t3");
    let out = repo_cmd(
        &s,
        &[
            "restore",
            "--data-dir",
            d.to_str().unwrap(),
            "--to-time",
            &t3,
            "--json",
        ],
    );
    ok(&out);
    assert_eq!(json_of(&out)["backup_id"], b1.as_str());
    chown_pg(&d);
    let r = Cluster::start(&d, free_port(), "archive_mode = off");
    assert_eq!(markers(&r).await, vec![1, 2, 3]);
    drop(r);
    let out = repo_cmd(
        &s,
        &[
            "restore",
            "--data-dir",
            s.dir.p("too_early").to_str().unwrap(),
            "--to-time",
            "2001-01-01 00:00:00+00",
        ],
    );
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no base backup ends before"),
        "{}",
        text(&out)
    );
    let out = repo_cmd(
        &s,
        &[
            "restore",
            "--data-dir",
            s.dir.p("no_zone").to_str().unwrap(),
            "--to-time",
            "2026-12-01 10:00:00",
        ],
    );
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("offset"), "{}", text(&out));

    // A new timeline: restored to the restore point and promoted, it archives into the same
    // repository as timeline 2.
    let (m, tl2) =
        restore_and_start(&s, "tl2", &["--backup", &b1, "--to-name", "after-2"], "").await;
    assert_eq!(m, vec![1, 2]);
    let mut c2 = tl2.conn().await;
    insert_marker(&mut c2, 20).await;
    archive_all(&mut c2).await;
    drop(c2);
    drop(tl2);
    assert!(walk(&s.repo.join("logs/wal")).contains(&"00000002.history.seal".to_owned()));
    let (m, _r) =
        restore_and_start(&s, "latest_tl", &["--backup", &b1], "archive_mode = off").await;
    assert_eq!(m, vec![1, 2, 20]);
    drop(_r);
    let (m, _r) = restore_and_start(
        &s,
        "tl1",
        &["--backup", &b1, "--timeline", "1"],
        "archive_mode = off",
    )
    .await;
    assert_eq!(m, vec![1, 2, 3, 4, 5]);
    drop(_r);
    let list = json_of(&repo_cmd(&s, &["list", "--json"]));
    assert_eq!(rec(&b1, &list)["timeline"], 2, "{list}");
    assert_eq!(rec(&b2, &list)["timeline"], 1, "{list}");

    // A damaged segment: verify says so (exit 3). (Timeline 1's, which B2 replays: from
    // B1, recovery now reads timeline 2's copy of the segments after the switch.)
    let first2 = rec(&b2, &list)["first_segment"]
        .as_str()
        .unwrap()
        .to_owned();
    let object = s.repo.join("logs/wal").join(&first2);
    let good = std::fs::read(&object).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    std::fs::write(&object, &bad).unwrap();
    let out = repo_cmd(&s, &["verify", "--backup", &b2]);
    assert_eq!(code(&out), Some(3), "{}", text(&out));
    assert!(text(&out).contains(&first2), "{}", text(&out));
    std::fs::write(&object, &good).unwrap();

    // A missing segment in the middle: verify names the gap, and a restore across it stops
    // before writing anything.
    std::fs::rename(
        s.repo.join("logs/wal").join(format!("{seg3}.seal")),
        s.dir.p("seg3.seal"),
    )
    .unwrap();
    let out = repo_cmd(&s, &["verify", "--backup", &b1]);
    assert_eq!(code(&out), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("gap on timeline 1: {seg3} is missing")),
        "{}",
        text(&out)
    );
    let gap_dir = s.dir.p("across_gap");
    let out = repo_cmd(
        &s,
        &[
            "restore",
            "--backup",
            &b1,
            "--timeline",
            "1",
            "--data-dir",
            gap_dir.to_str().unwrap(),
        ],
    );
    assert_ne!(code(&out), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&seg3), "{}", text(&out));
    assert!(walk(&gap_dir).is_empty(), "{:?}", walk(&gap_dir));
    ok(&repo_cmd(&s, &["verify", "--backup", &b2]));

    // Retention: with the older base backup gone, its WAL goes too; the history stays, and
    // the kept backup still restores.
    let out = repo_cmd(&s, &["prune", "--keep-last", "1", "--json"]);
    ok(&out);
    let pruned = json_of(&out);
    assert!(
        pruned["wal_deleted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == first1.as_str()),
        "{pruned}"
    );
    let left = walk(&s.repo.join("logs/wal"));
    assert!(!left.contains(&format!("{first1}.seal")), "{left:?}");
    assert!(
        left.contains(&"00000002.history.seal".to_owned()),
        "{left:?}"
    );
    ok(&repo_cmd(&s, &["verify", "--backup", &b2]));
    let (m, _r) = restore_and_start(
        &s,
        "after_prune",
        &["--backup", &b2, "--timeline", "1"],
        "archive_mode = off",
    )
    .await;
    assert_eq!(m, vec![1, 2, 3, 4, 5]);
}

/// `dbbackup wal-stream` as a child process, killed when dropped.
struct Streamer(std::process::Child);

impl Streamer {
    fn start(s: &Setup, log: &Path) -> Streamer {
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", s.src.port);
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        Streamer(
            Command::new(env!("CARGO_BIN_EXE_dbbackup"))
                .args([
                    "wal-stream",
                    "--source",
                    &url,
                    "--create-slot",
                    "--partial-interval",
                    "500ms",
                ])
                .args(["--repo", &s.repo_s, "--key-file", &s.key_s])
                .env_remove("DBBACKUP_REPO")
                .stderr(err)
                .spawn()
                .unwrap(),
        )
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `list` says the newest base backup recovers to at least `lsn`.
fn wait_recoverable(s: &Setup, lsn: &str, log: &Path) {
    let want: dbbackup::postgres::Lsn = lsn.parse().unwrap();
    for _ in 0..300 {
        let list = json_of(&repo_cmd(s, &["list", "--json"]));
        let reached = list["backups"].as_array().unwrap().iter().any(|b| {
            b["recovery"]["to_lsn"]
                .as_str()
                .and_then(|l| l.parse::<dbbackup::postgres::Lsn>().ok())
                .is_some_and(|l| l >= want)
        });
        if reached {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "the archive did not reach {lsn} within 30 s; streamer log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_wal_survives_a_killed_streamer_and_recovers_the_last_commit_without_a_switch() {
    let s = setup("stream", "3e", false);
    let log = s.dir.p("stream.log");
    let mut c = s.src.conn().await;
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut c)
        .await
        .unwrap();
    if version < 140000 {
        // The replication client supports 14+: on 13 the streamer refuses at once, saying what
        // to use instead (and is not retried for ever).
        let mut streamer = Streamer::start(&s, &log);
        let status = streamer.0.wait().unwrap();
        let logged = std::fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(1), "{logged}");
        assert!(logged.contains("needs PostgreSQL 14 or later"), "{logged}");
        assert!(logged.contains("wal-push"), "{logged}");
        return;
    }
    let streamer = Streamer::start(&s, &log);
    let mut streaming = false;
    for _ in 0..300 {
        let active: Option<bool> = sqlx::query_scalar(
            "SELECT active FROM pg_replication_slots WHERE slot_name = 'dbbackup'",
        )
        .fetch_optional(&mut c)
        .await
        .unwrap();
        if active == Some(true) {
            streaming = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        streaming,
        "wal-stream did not start streaming within 30 s: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    sqlx::raw_sql(
        "CREATE TABLE markers (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
         INSERT INTO markers (id) VALUES (1);",
    )
    .execute(&mut c)
    .await
    .unwrap();
    // No archive_command: the base backup is accepted because a slot is being streamed.
    let b = base_backup(&s).await;
    insert_marker(&mut c, 2).await;
    let l2: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&mut c)
        .await
        .unwrap();
    wait_recoverable(&s, &l2, &log);

    // Killed mid-segment: marker 3 is written while nothing streams; the slot keeps it.
    streamer.signal("-KILL");
    drop(streamer);
    insert_marker(&mut c, 3).await;
    let streamer = Streamer::start(&s, &log);
    insert_marker(&mut c, 4).await;
    let l4: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&mut c)
        .await
        .unwrap();
    // No segment switch anywhere: marker 4 is in the unfinished segment's partial.
    wait_recoverable(&s, &l4, &log);
    streamer.signal("-TERM");
    let mut streamer = streamer;
    let status = streamer.0.wait().unwrap();
    assert!(
        status.success(),
        "wal-stream exited with {status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let segments: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_archiver WHERE archived_count > 0")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(segments, 0, "nothing went through archive_command");
    drop(c);
    s.src.stop();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("streaming timeline 1"), "{logged}");
    ok(&repo_cmd(&s, &["verify", "--backup", &b]));

    // The restored server's restore_command runs as postgres; the streamer ran as this user.
    chown_pg(&s.repo);
    let (m, _r) = restore_and_start(&s, "streamed", &["--backup", &b], "archive_mode = off").await;
    assert_eq!(m, vec![1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL 17: DBBACKUP_PG_BIN and PATH at its bin/ (scripts/pg-versions.sh 17 runs it)"]
async fn incremental_base_backups_restore_their_chain_and_retention_keeps_it() {
    let s = archiving("incremental", "2f");
    let mut c = s.src.conn().await;
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(
        version >= 170000,
        "PostgreSQL {version} has no incremental base backups: set DBBACKUP_PG_BIN to a 17 build"
    );
    for q in [
        "ALTER SYSTEM SET summarize_wal = on",
        "SELECT pg_reload_conf()",
    ] {
        sqlx::raw_sql(q).execute(&mut c).await.unwrap();
    }
    sqlx::raw_sql(
        "CREATE EXTENSION amcheck;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    archive_all(&mut c).await;
    let physical = |extra: &[&str]| {
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", s.src.port);
        let mut args = vec!["backup", "--source", &url, "--kind", "physical", "--json"];
        args.extend(extra);
        let out = repo_cmd(&s, &args);
        ok(&out);
        json_of(&out)["backup_id"].as_str().unwrap().to_owned()
    };
    let full = physical(&[]);
    sqlx::raw_sql(
        "INSERT INTO t SELECT g, 'second' FROM generate_series(20001, 25000) g;
         UPDATE t SET v = 'changed' WHERE id % 100 = 0;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    archive_all(&mut c).await;
    let inc1 = physical(&["--incremental"]);
    sqlx::raw_sql("DELETE FROM t WHERE id % 7 = 0; INSERT INTO t VALUES (0, 'third');")
        .execute(&mut c)
        .await
        .unwrap();
    archive_all(&mut c).await;
    let inc2 = physical(&["--incremental"]);
    let want: (i64, String) =
        sqlx::query_as("SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM t")
            .fetch_one(&mut c)
            .await
            .unwrap();
    archive_all(&mut c).await;
    drop(c);
    s.src.stop();

    let list = json_of(&repo_cmd(&s, &["list", "--json"]));
    let parent = |id: &str| {
        list["backups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["backup_id"] == id)
            .unwrap()["parent"]
            .clone()
    };
    assert_eq!(parent(&inc2), inc1.as_str(), "{list}");
    assert_eq!(parent(&inc1), full.as_str(), "{list}");
    assert!(parent(&full).is_null(), "{list}");
    // Retention keeps what the kept incremental needs: its whole chain.
    let out = repo_cmd(&s, &["prune", "--keep-last", "1", "--json"]);
    ok(&out);
    assert_eq!(
        json_of(&out)["deleted"],
        serde_json::json!([]),
        "{}",
        text(&out)
    );

    // The chain combined: the same rows as the source, and amcheck finds nothing wrong.
    let (_, r) = ((), {
        let d = s.dir.p("combined");
        ok(&repo_cmd(
            &s,
            &[
                "restore",
                "--backup",
                &inc2,
                "--data-dir",
                d.to_str().unwrap(),
            ],
        ));
        chown_pg(&d);
        Cluster::start(&d, free_port(), "archive_mode = off")
    });
    let mut rc = r.conn().await;
    for _ in 0..600 {
        if !sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
            .fetch_one(&mut rc)
            .await
            .unwrap()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got: (i64, String) =
        sqlx::query_as("SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM t")
            .fetch_one(&mut rc)
            .await
            .unwrap();
    assert_eq!(got, want);
    let problems: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT bt_index_check(c.oid, true) FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
          WHERE a.amname = 'btree' AND c.relpersistence <> 't') x WHERE false",
    )
    .fetch_one(&mut rc)
    .await
    .unwrap();
    assert_eq!(problems, 0);
    let heap: i64 = sqlx::query_scalar("SELECT count(*) FROM verify_heapam('t')")
        .fetch_one(&mut rc)
        .await
        .unwrap();
    assert_eq!(heap, 0, "verify_heapam found damage");
}

/// Database passwords kept out of URLs on PostgreSQL: a scratch cluster that asks for a SCRAM
/// password over TCP (the shared server trusts its users, so it cannot tell).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passwords_come_from_a_variable_a_file_pgpassword_or_pgpass() {
    let dir = Dir::new("pg-creds");
    chmod(&dir.0, 0o777);
    let data = dir.p("data");
    as_pg(
        "initdb",
        &[
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
        ],
    );
    let port = free_port();
    let c = Cluster::start(&data, port, "");
    let socket = dir.0.to_str().unwrap().to_owned();
    let mut s = PgConnection::connect(&format!(
        "postgres://postgres@localhost/postgres?host={socket}&port={port}"
    ))
    .await
    .unwrap();
    let secret = "pg-S3cret:with@odd/chars";
    for q in [
        format!("ALTER USER postgres PASSWORD '{secret}'"),
        "CREATE DATABASE shop".to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(q))
            .execute(&mut s)
            .await
            .unwrap();
    }
    drop(s);
    let url = format!("postgres://postgres@127.0.0.1:{port}/shop");
    let pw = dir.p("pw");
    std::fs::write(&pw, format!("{secret}\n")).unwrap();
    let pgpass = dir.p("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "127.0.0.1:{port}:*:postgres:{}\n",
            secret.replace(':', "\\:")
        ),
    )
    .unwrap();
    chmod(&pgpass, 0o600);
    let repo = dir.p("repo");
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_dbbackup"))
            .args(["backup", "--source", &url, "--repo", repo.to_str().unwrap()])
            .args(extra)
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("HOME", dir.0.to_str().unwrap())
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("password"), "{}", text(&out));
    for (how, extra, env) in [
        (
            "--password-env",
            vec!["--password-env", "DBPW"],
            vec![("DBPW", secret)],
        ),
        (
            "--password-file",
            vec!["--password-file", pw.to_str().unwrap()],
            vec![],
        ),
        ("PGPASSWORD", vec![], vec![("PGPASSWORD", secret)]),
        (
            "PGPASSFILE",
            vec![],
            vec![("PGPASSFILE", pgpass.to_str().unwrap())],
        ),
    ] {
        let out = run(&extra, &env);
        assert_eq!(out.status.code(), Some(0), "{how}: {}", text(&out));
        assert!(!text(&out).contains(secret), "{how}: {}", text(&out));
    }
    // libpq's connection services: ?service= in the URL, or PGSERVICE, from PGSERVICEFILE.
    let services = dir.p("pg_service.conf");
    std::fs::write(
        &services,
        format!(
            "[shop]\nhost=127.0.0.1\nport={port}\ndbname=shop\nuser=postgres\npassword={secret}\n"
        ),
    )
    .unwrap();
    for (source, env) in [
        ("postgres://?service=shop", vec![]),
        ("postgres://", vec![("PGSERVICE", "shop")]),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_dbbackup"))
            .args([
                "--json",
                "backup",
                "--source",
                source,
                "--repo",
                repo.to_str().unwrap(),
            ])
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("HOME", dir.0.to_str().unwrap())
            .env("PGSERVICEFILE", services.to_str().unwrap())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{source}: {}", text(&out));
        assert!(!text(&out).contains(secret), "{source}: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["database"], "shop", "{v}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_dbbackup"))
        .args([
            "backup",
            "--source",
            "postgres://?service=nope",
            "--repo",
            repo.to_str().unwrap(),
        ])
        .env("PGSERVICEFILE", services.to_str().unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("service \"nope\" not found"),
        "{}",
        text(&out)
    );
    // A daemon job's restore test on a scratch server that wants the password too.
    let cfg = dir.p("jobs.toml");
    let job = |scratch_password: &str| {
        format!(
            "[[job]]\nname = \"shop\"\nsource = \"{url}\"\nrepo = \"{}\"\npassword-env = \"DBPW\"\n\
             schedule = \"@daily\"\nrestore-test-schedule = \"@daily\"\n\
             scratch = \"postgres://postgres@127.0.0.1:{port}/postgres\"\n{scratch_password}",
            repo.display()
        )
    };
    let run_job = || {
        Command::new(env!("CARGO_BIN_EXE_dbbackup"))
            .args([
                "run-job",
                "shop",
                "--operation",
                "restore-test",
                "--config",
                cfg.to_str().unwrap(),
            ])
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("HOME", dir.0.to_str().unwrap())
            .env("DBPW", secret)
            .output()
            .unwrap()
    };
    std::fs::write(&cfg, job("")).unwrap();
    let out = run_job();
    assert_eq!(
        out.status.code(),
        Some(1),
        "no password for the scratch server: {}",
        text(&out)
    );
    assert!(text(&out).contains("password"), "{}", text(&out));
    std::fs::write(&cfg, job("scratch-password-env = \"DBPW\"\n")).unwrap();
    let out = run_job();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(secret), "{}", text(&out));
    std::fs::write(
        &cfg,
        job("scratch-password-env = \"DBBACKUP_NOT_SET_ANYWHERE\"\n"),
    )
    .unwrap();
    let out = run_job();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("scratch-password-env DBBACKUP_NOT_SET_ANYWHERE"),
        "{}",
        text(&out)
    );
    drop(c);
}
