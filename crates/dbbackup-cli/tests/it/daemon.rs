//! `dbbackup daemon` as a real process: SQLite, the shared PostgreSQL and a MariaDB of its own
//! (stopped and restarted while the daemon runs) backed up every few seconds, pruned to their
//! policies, hooks, SIGHUP reloads (a new job; a broken file keeps the old jobs), SIGTERM during
//! a backup; `--check-config` and `run-job`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{Connection, PgConnection};

use super::binlog::{sql_at, Scratch};
use super::{code, json, ok, text, Dir};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dbbackup"));
    c.env_remove("DBBACKUP_REPO")
        .env("DBBACKUP_TEST_PASS", "daemon pass")
        .env("DBBACKUP_TEST_TOKEN", "s3cret-token-xyz");
    c
}

fn events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// What a receiver got: bodies, authorization headers, and how many deliveries were tried.
type Got = std::sync::Arc<std::sync::Mutex<(Vec<String>, Vec<String>, usize)>>;

/// A local receiver of notifications (HTTP or SMTP) on a free loopback port: it refuses the
/// first delivery, then records each one.
struct Receiver {
    addr: String,
    got: Got,
}

impl Receiver {
    fn bodies(&self) -> Vec<String> {
        self.got.lock().unwrap().0.clone()
    }
    fn headers(&self) -> Vec<String> {
        self.got.lock().unwrap().1.clone()
    }
    fn requests(&self) -> usize {
        self.got.lock().unwrap().2
    }

    fn http() -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let got = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new(), 0)));
        let g = got.clone();
        std::thread::spawn(move || {
            for stream in l.incoming().flatten() {
                let mut r = BufReader::new(stream.try_clone().unwrap());
                let (mut len, mut auth) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("authorization:") {
                        auth = lower.trim().to_owned();
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let mut st = g.lock().unwrap();
                st.2 += 1;
                let first = st.2 == 1;
                if !first {
                    st.0.push(String::from_utf8_lossy(&body).into_owned());
                    st.1.push(auth);
                }
                drop(st);
                let mut w = stream;
                let status = if first {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    w,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { addr, got }
    }

    fn smtp() -> Receiver {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let got = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new(), 0)));
        let g = got.clone();
        std::thread::spawn(move || {
            for stream in l.incoming().flatten() {
                let mut w = stream.try_clone().unwrap();
                let n = {
                    let mut st = g.lock().unwrap();
                    st.2 += 1;
                    st.2
                };
                if n == 1 {
                    let _ = w.write_all(b"421 busy, try again later\r\n");
                    continue;
                }
                let _ = w.write_all(b"220 test ESMTP\r\n");
                let mut r = BufReader::new(stream);
                let (mut data, mut in_data, mut msg) = (false, false, String::new());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            g.lock().unwrap().0.push(std::mem::take(&mut msg));
                            let _ = w.write_all(b"250 queued\r\n");
                        } else {
                            msg.push_str(&line);
                        }
                        continue;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250 test\r\n"
                    } else if cmd.starts_with("DATA") {
                        data = true;
                        in_data = true;
                        b"354 go ahead\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n");
                        break;
                    } else if cmd.starts_with("RCPT") {
                        msg.push_str(&line);
                        b"250 ok\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = w.write_all(reply);
                }
                let _ = data;
            }
        });
        Receiver { addr, got }
    }
}

/// `GET path` from the daemon's metrics server: the whole response.
fn scrape(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

/// The value of one sample (`name{labels}`) in a scrape.
fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

fn finished(ev: &[Value], job: &str, status: &str) -> usize {
    ev.iter()
        .filter(|e| e["event"] == "job-finished" && e["job"] == job && e["status"] == status)
        .count()
}

/// Waits (up to a minute) until `cond` holds on the daemon's events.
fn wait_for(path: &std::path::Path, what: &str, cond: impl Fn(&[Value]) -> bool, d: &mut Child) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        if cond(&events(path)) {
            return;
        }
        if let Some(st) = d.try_wait().unwrap() {
            panic!("the daemon exited ({st}) before {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out waiting for {what}: {}",
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

fn pg_server() -> String {
    std::env::var("DBBACKUP_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn job(name: &str, source: &str, repo: &std::path::Path, schedule: &str, extra: &str) -> String {
    format!(
        "[[job]]\nname = \"{name}\"\nsource = \"{source}\"\nrepo = \"{}\"\npassphrase-env = \"DBBACKUP_TEST_PASS\"\nschedule = \"{schedule}\"\n{extra}\n",
        repo.display()
    )
}

fn backups(repo: &std::path::Path) -> Vec<Value> {
    let out = bin()
        .args(["list", "--json", "--repo", repo.to_str().unwrap()])
        .args(["--passphrase-env", "DBBACKUP_TEST_PASS"])
        .output()
        .unwrap();
    json(&out)["backups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_backs_up_prunes_survives_an_outage_reloads_and_stops_cleanly() {
    let dir = Dir::new("daemon");
    // SQLite.
    let lite = dir.p("app.db");
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&lite)
        .create_if_missing(true);
    c = c.clone();
    let mut conn = sqlx::ConnectOptions::connect(&c).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    // PostgreSQL (the shared server): a table big enough that a backup is in flight for a
    // moment.
    let pg_db = format!("daemon_{}", std::process::id());
    let mut admin = PgConnection::connect(&format!("{}/postgres", pg_server()))
        .await
        .unwrap();
    for q in [
        format!("DROP DATABASE IF EXISTS {pg_db}"),
        format!("CREATE DATABASE {pg_db}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(q))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let mut pg = PgConnection::connect(&format!("{}/{pg_db}", pg_server()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v \
         FROM generate_series(1, 300000) g",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    pg.close().await.unwrap();
    // MariaDB of its own, stopped and restarted below.
    let mut maria = Scratch::start(&dir.0);
    let my = maria.url();
    sql_at(&my, "mysql", "CREATE DATABASE shop").await;
    sql_at(
        &my,
        "shop",
        "CREATE TABLE o (id INT PRIMARY KEY); INSERT INTO o VALUES (1), (2)",
    )
    .await;

    let (r_lite, r_pg, r_my, r_extra) = (
        dir.p("r-lite"),
        dir.p("r-pg"),
        dir.p("r-my"),
        dir.p("r-extra"),
    );
    let hooks = dir.p("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    // Receivers of notifications: a webhook that refuses its first delivery (503) and an SMTP
    // server that refuses its first connection (421), so both retries are exercised.
    let hook_rx = Receiver::http();
    let mail_rx = Receiver::smtp();
    let notify = format!(
        "[[notify]]\nurl = \"http://{}/hook\"\ntoken-env = \"DBBACKUP_TEST_TOKEN\"\non = [\"failure\", \"recovery\"]\n\n\
         [[notify]]\nsmtp = \"{}\"\ntls = \"none\"\nfrom = \"dbbackup@example.test\"\nto = [\"ops@example.test\"]\non = [\"failure\"]\n\n",
        hook_rx.addr, mail_rx.addr
    );
    let base = [
        notify,
        job(
            "lite",
            &format!("sqlite://{}", lite.display()),
            &r_lite,
            "*/2 * * * * *",
            &format!(
                "keep-last = 2\nbefore = \"env > {h}/before-$DBBACKUP_JOB\"\nafter = \"env > {h}/after-$DBBACKUP_JOB\"",
                h = hooks.display()
            ),
        ),
        job(
            "pg",
            &format!("{}/{pg_db}", pg_server()),
            &r_pg,
            "*/3 * * * * *",
            &format!(
                "keep-last = 1\njobs = 2\nrestore-test-schedule = \"*/4 * * * * *\"\nscratch = \"{}/postgres\"\ncheck = [\"select count(*) > 0 from big\"]",
                pg_server()
            ),
        ),
        job("my", &format!("{my}/shop"), &r_my, "*/2 * * * * *", "keep-last = 3\nlabel = [\"tier=test\"]"),
    ]
    .concat();
    let cfg = dir.p("jobs.toml");
    std::fs::write(&cfg, &base).unwrap();
    ok(&bin()
        .args([
            "daemon",
            "--check-config",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap());
    let log = dir.p("daemon.jsonl");
    let mut d = bin()
        .args([
            "daemon",
            "--json",
            "--max-concurrent",
            "2",
            "--metrics-listen",
            "127.0.0.1:0",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.p("daemon.err")).unwrap())
        .spawn()
        .unwrap();
    wait_for(
        &log,
        "two backups of each job",
        |ev| {
            ["lite", "pg", "my"]
                .iter()
                .all(|j| finished(ev, j, "succeeded") >= 2)
                && ev.iter().any(|e| {
                    e["event"] == "job-finished"
                        && e["job"] == "pg"
                        && e["operation"] == "restore-test"
                        && e["status"] == "succeeded"
                })
        },
        &mut d,
    );

    // Metrics over HTTP, with the jobs' labels.
    let err = std::fs::read_to_string(dir.p("daemon.err")).unwrap();
    let addr = err
        .split("metrics at http://")
        .nth(1)
        .and_then(|r| r.split("/metrics").next())
        .unwrap_or_else(|| panic!("no metrics address in {err}"))
        .to_owned();
    let m = scrape(&addr, "/metrics");
    for (name, min) in [
        (
            r#"dbbackup_last_success_timestamp_seconds{job="lite",operation="backup"}"#,
            1.7e9,
        ),
        (
            r#"dbbackup_last_attempt_success{job="pg",operation="backup"}"#,
            1.0,
        ),
        (
            r#"dbbackup_runs_total{job="my",operation="backup",status="succeeded"}"#,
            2.0,
        ),
        (r#"dbbackup_last_backup_raw_bytes{job="pg"}"#, 1e6),
        (r#"dbbackup_last_backup_stored_bytes{job="pg"}"#, 1.0),
        (r#"dbbackup_backup_age_seconds{job="lite"}"#, 0.0),
        (r#"dbbackup_last_restore_test_success{job="pg"}"#, 1.0),
        (
            r#"dbbackup_last_restore_test_duration_seconds{job="pg"}"#,
            1e-6,
        ),
        (
            r#"dbbackup_last_restore_test_timestamp_seconds{job="pg"}"#,
            1.7e9,
        ),
    ] {
        let v = metric(&m, name).unwrap_or_else(|| panic!("no {name} in\n{m}"));
        assert!(v >= min, "{name} = {v} in\n{m}");
    }
    assert!(m.contains("# TYPE dbbackup_runs counter"), "{m}");
    assert!(scrape(&addr, "/other").contains("404"), "not found");

    // The MariaDB goes away: runs fail and say why; back again: the next run succeeds.
    maria.shutdown();
    wait_for(
        &log,
        "a failed run of my",
        |ev| finished(ev, "my", "failed") >= 1,
        &mut d,
    );
    // A failed run moves the failure counter, not the success timestamp.
    let success = r#"dbbackup_last_success_timestamp_seconds{job="my",operation="backup"}"#;
    let failures = r#"dbbackup_failures_total{job="my",operation="backup"}"#;
    let m1 = scrape(&addr, "/metrics");
    let (s1, f1) = (
        metric(&m1, success).unwrap(),
        metric(&m1, failures).unwrap(),
    );
    assert_eq!(
        metric(
            &m1,
            r#"dbbackup_last_attempt_success{job="my",operation="backup"}"#
        ),
        Some(0.0),
        "{m1}"
    );
    wait_for(
        &log,
        "a second failed run of my",
        |ev| finished(ev, "my", "failed") >= 2,
        &mut d,
    );
    let m2 = scrape(&addr, "/metrics");
    assert!(metric(&m2, failures).unwrap() > f1, "{m2}");
    assert_eq!(metric(&m2, success).unwrap(), s1, "{m2}");
    let failed = events(&log)
        .into_iter()
        .find(|e| e["event"] == "job-finished" && e["job"] == "my" && e["status"] == "failed")
        .unwrap();
    // Why, whether the server went away mid-backup or refused the connection.
    assert!(
        !failed["error"].as_str().unwrap_or_default().is_empty(),
        "{failed}"
    );
    maria.launch();
    let ok_before = finished(&events(&log), "my", "succeeded");
    wait_for(
        &log,
        "my succeeding again",
        |ev| finished(ev, "my", "succeeded") > ok_before,
        &mut d,
    );

    // Notified: the failure once (not every failed run), by webhook after a refused first
    // delivery and by mail after a refused first connection; then the recovery. No secret in
    // any body.
    let t0 = Instant::now();
    let done = || {
        hook_rx.bodies().iter().any(|b| b.contains("\"recovery\"")) && !mail_rx.bodies().is_empty()
    };
    while t0.elapsed() < Duration::from_secs(30) && !done() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let hooks_got = hook_rx.bodies();
    let failures: Vec<&String> = hooks_got
        .iter()
        .filter(|b| b.contains("\"kind\":\"failure\"") && b.contains("\"job\":\"my\""))
        .collect();
    assert_eq!(failures.len(), 1, "{hooks_got:#?}");
    assert!(
        hooks_got
            .iter()
            .any(|b| b.contains("\"kind\":\"recovery\"") && b.contains("\"job\":\"my\"")),
        "{hooks_got:#?}"
    );
    assert!(
        hook_rx.requests() > hooks_got.len(),
        "the refused delivery was retried"
    );
    assert!(
        hook_rx
            .headers()
            .iter()
            .all(|h| h.contains("bearer s3cret-token-xyz")),
        "{:?}",
        hook_rx.headers()
    );
    let mails = mail_rx.bodies();
    assert!(
        mails
            .iter()
            .any(|m| m.contains("job my: backup FAILED") && m.contains("ops@example.test")),
        "{mails:#?}"
    );
    for b in hooks_got.iter().chain(mails.iter()) {
        assert!(
            !b.contains("s3cret-token-xyz") && !b.contains("daemon pass"),
            "{b}"
        );
    }

    // SIGHUP: a broken file is reported and the old jobs keep running; a new job is picked up.
    std::fs::write(
        &cfg,
        format!("{base}[[job]]\nname = \"broken\"\nschedule = \"every day\"\n"),
    )
    .unwrap();
    let hup = |d: &Child| {
        assert!(Command::new("kill")
            .args(["-HUP", &d.id().to_string()])
            .status()
            .unwrap()
            .success())
    };
    hup(&d);
    let lite_before = finished(&events(&log), "lite", "succeeded");
    wait_for(
        &log,
        "lite still running after a broken reload",
        |ev| finished(ev, "lite", "succeeded") > lite_before + 1,
        &mut d,
    );
    let err = std::fs::read_to_string(dir.p("daemon.err")).unwrap();
    assert!(
        err.contains("reload failed") && err.contains("the old jobs keep running"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        format!(
            "{base}{}",
            job(
                "extra",
                &format!("sqlite://{}", lite.display()),
                &r_extra,
                "*/2 * * * * *",
                ""
            )
        ),
    )
    .unwrap();
    hup(&d);
    wait_for(
        &log,
        "the new job",
        |ev| finished(ev, "extra", "succeeded") >= 1,
        &mut d,
    );

    // SIGTERM while the PostgreSQL backup runs: the daemon exits 0, nothing half-committed.
    let started = |ev: &[Value]| {
        ev.iter()
            .filter(|e| e["event"] == "job-started" && e["job"] == "pg")
            .count()
    };
    let n = started(&events(&log));
    wait_for(&log, "a pg run starting", |ev| started(ev) > n, &mut d);
    assert!(Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status()
        .unwrap()
        .success());
    let st = d.wait().unwrap();
    assert!(
        st.success(),
        "{st}: {}",
        std::fs::read_to_string(dir.p("daemon.err")).unwrap()
    );
    let ev = events(&log);
    let last_pg = ev
        .iter()
        .rev()
        .find(|e| e["event"] == "job-finished" && e["job"] == "pg")
        .unwrap();
    assert!(
        ["cancelled", "succeeded"].contains(&last_pg["status"].as_str().unwrap()),
        "{last_pg}"
    );

    // Retention held after each backup, every repository verifies, labels and hooks.
    assert_eq!(backups(&r_lite).len(), 2);
    assert_eq!(backups(&r_pg).len(), 1);
    assert!(backups(&r_my).len() <= 3);
    for b in backups(&r_my) {
        assert_eq!(b["labels"]["tier"], "test");
        assert_eq!(b["labels"]["job"], "my");
    }
    for r in [&r_lite, &r_pg, &r_my, &r_extra] {
        ok(&bin()
            .args(["verify", "--backup", "all", "--repo", r.to_str().unwrap()])
            .args(["--passphrase-env", "DBBACKUP_TEST_PASS"])
            .output()
            .unwrap());
    }
    let before = std::fs::read_to_string(hooks.join("before-lite")).unwrap();
    assert!(
        before.contains("DBBACKUP_JOB=lite") && before.contains("DBBACKUP_STATUS=running"),
        "{before}"
    );
    let after = std::fs::read_to_string(hooks.join("after-lite")).unwrap();
    assert!(
        after.contains("DBBACKUP_STATUS=succeeded") && after.contains("DBBACKUP_BACKUP_ID=2"),
        "{after}"
    );

    // run-job: one job once, for cron.
    let out = bin()
        .args(["run-job", "lite", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    ok(&out);
    assert!(
        text(&out).contains("job lite: backup succeeded"),
        "{}",
        text(&out)
    );
    let out = bin()
        .args(["run-job", "nope", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("lite, pg, my, extra"), "{}", text(&out));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

#[test]
fn bad_jobs_files_exit_2_naming_the_job_and_the_key() {
    let dir = Dir::new("daemon-bad");
    let cfg = dir.p("jobs.toml");
    std::fs::write(
        &cfg,
        "[[job]]\nname = \"a b\"\nsource = \"sqlite:///x.db\"\nrepo = \"/tmp/x\"\npassphrase-env = \"DBBACKUP_NOT_SET_ANYWHERE\"\nschedule = \"*/61 * * *\"\nkep-last = 3\n\n[[job]]\nname = \"ok\"\nrepo = \"/tmp/x\"\nschedule = \"@daily\"\ncompression = \"lz9\"\n",
    )
    .unwrap();
    let out = bin()
        .args([
            "daemon",
            "--check-config",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    let t = text(&out);
    for want in [
        "job \"a b\": a name of letters",
        "job \"a b\": unknown key \"kep-last\"",
        "job \"a b\": schedule: schedule \"*/61 * * *\" is not a cron expression",
        "job \"a b\": passphrase-env = \"DBBACKUP_NOT_SET_ANYWHERE\", but the environment variable",
        "job \"ok\": no source",
        "problem(s) in",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    std::fs::write(&cfg, "jobs = 1\n").unwrap();
    let out = bin()
        .args(["daemon", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2));
    assert!(text(&out).contains("no [[job]] tables"), "{}", text(&out));
    let out = bin()
        .args(["daemon"])
        .env_remove("DBBACKUP_CONFIG")
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("needs --config"), "{}", text(&out));
}

/// SIGHUP reloads `[[notify]]` too: a channel added to the file gets the next failure, without a
/// restart; a SIGTERM then still delivers what was queued.
#[test]
fn sighup_reloads_the_notification_channels() {
    let dir = Dir::new("daemon-notify-reload");
    let rx = Receiver::http();
    let failing = job(
        "gone",
        &format!("sqlite://{}", dir.p("missing.db").display()),
        &dir.p("repo"),
        "*/1 * * * * *",
        "",
    );
    let cfg = dir.p("jobs.toml");
    std::fs::write(&cfg, &failing).unwrap();
    let log = dir.p("daemon.jsonl");
    let mut d = bin()
        .args(["daemon", "--json", "--config", cfg.to_str().unwrap()])
        .env("DBBACKUP_TEST_PASS", "correct horse")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.p("daemon.err")).unwrap())
        .spawn()
        .unwrap();
    wait_for(
        &log,
        "a failed run",
        |ev| finished(ev, "gone", "failed") > 0,
        &mut d,
    );
    assert_eq!(rx.requests(), 0, "no channel yet");
    std::fs::write(
        &cfg,
        format!(
            "[[notify]]\nurl = \"http://{}/hook\"\non = [\"failure\"]\n\n{failing}",
            rx.addr
        ),
    )
    .unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &d.id().to_string()])
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    while rx.bodies().is_empty() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let bodies = rx.bodies();
    assert_eq!(
        bodies.len(),
        1,
        "one failure, after the 503 was retried: {bodies:?}"
    );
    assert!(
        bodies[0].contains("job gone: backup FAILED"),
        "{}",
        bodies[0]
    );
    let err = std::fs::read_to_string(dir.p("daemon.err")).unwrap();
    assert!(err.contains("1 notification channel(s)"), "{err}");
    assert!(Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(d.wait().unwrap().success());
}
