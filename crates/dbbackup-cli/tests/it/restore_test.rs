//! `dbbackup restore-test` on SQLite, the shared PostgreSQL and the shared MariaDB: a good
//! backup passes; a false check and a row count that disagrees with the manifest fail with the
//! check named; the scratch database is gone afterwards either way; records are sealed.

use super::*;
use sqlx::{MySqlConnection, PgConnection};

/// Rewrites an unencrypted backup's manifest so that `table` recorded `delta` more rows, with
/// a fresh (unkeyed) seal: the manifest still opens, and only a restore test can notice.
fn craft_rows(repo: &Path, id: &str, table: &str, delta: u64) {
    let path = repo.join("backups").join(id).join("MANIFEST");
    let text = std::fs::read_to_string(&path).unwrap();
    let body = text.lines().next().unwrap();
    let mut m: Value = serde_json::from_str(body).unwrap();
    let mut changed = false;
    for e in m["entries"].as_array_mut().unwrap() {
        if e["meta"]["table"].as_str() == Some(table) {
            let n = e["rows"].as_u64().unwrap();
            e["rows"] = (n + delta).into();
            changed = true;
            break;
        }
        // SQLite: the one entry records each table's rows.
        if let Some(n) = e["meta"]["rows"][table].as_u64() {
            e["meta"]["rows"][table] = (n + delta).into();
            changed = true;
        }
    }
    assert!(changed, "no entry of {table} in {body}");
    let body = serde_json::to_string(&m).unwrap();
    let seal = serde_json::json!({"blake3": blake3::hash(body.as_bytes()).to_hex().to_string()});
    std::fs::write(&path, format!("{body}\n{seal}\n")).unwrap();
}

/// The JSON result of a run, whatever its exit code.
fn parse(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn check<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {record}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restore_tests_pass_fail_and_are_recorded_sealed() {
    let d = Dir::new("rt-sqlite");
    make_db(&d.p("app.db"), 500).await;
    std::fs::create_dir(d.p("scratch")).unwrap();
    let b = json(&dbbackup(
        &d,
        &[
            "--json",
            "backup",
            "--source",
            "sqlite://app.db",
            "--repo",
            "repo",
        ],
    ));
    let id = b["backup_id"].as_str().unwrap().to_owned();
    // Never tested yet: list and show say so.
    let list = ok(&dbbackup(&d, &["list", "--repo", "repo"]));
    assert!(list.contains(" tested ") && list.contains(" -  "), "{list}");
    let rt = |extra: &[&str]| {
        let mut args = vec!["restore-test", "--repo", "repo", "--scratch", "scratch"];
        args.extend_from_slice(extra);
        dbbackup(&d, &args)
    };
    let out = rt(&["--check", "select count(*) = 500 from t"]);
    let o = ok(&out);
    for want in [
        "ok      rows t: 500 rows",
        "integrity_check: ok",
        "check 1",
        "passed",
    ] {
        assert!(o.contains(want), "missing {want:?} in {o}");
    }
    assert_eq!(std::fs::read_dir(d.p("scratch")).unwrap().count(), 0);
    // A false check fails the test (exit 4) and is recorded as failed.
    let out = rt(&["--json", "--check", "select count(*) > 500 from t"]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    let r = parse(&out);
    assert_eq!(r["record"]["passed"], false);
    assert_eq!(check(&r["record"], "check 1")["status"], "failed");
    assert_eq!(std::fs::read_dir(d.p("scratch")).unwrap().count(), 0);
    let j = json(&dbbackup(&d, &["--json", "list", "--repo", "repo"]));
    assert_eq!(j["backups"][0]["restore_test"]["passed"], false, "{j}");
    let shown = ok(&dbbackup(&d, &["show", "--repo", "repo"]));
    assert!(shown.contains("passed, restore took"), "{shown}");
    assert!(shown.contains("FAILED (check 1)"), "{shown}");
    // The manifest says 3 more rows than the file holds: the test names the table.
    craft_rows(&d.p("repo"), &id, "t", 3);
    let out = rt(&["--json"]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    let r = parse(&out);
    let c = check(&r["record"], "rows t");
    assert_eq!(c["status"], "failed");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("500 rows restored, 503 recorded"),
        "{c}"
    );
    assert_eq!(std::fs::read_dir(d.p("scratch")).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_test_record_altered_in_an_encrypted_repository_is_refused() {
    let d = Dir::new("rt-sealed");
    make_db(&d.p("app.db"), 50).await;
    let env = [("PASS", "correct horse battery staple")];
    let args = ["--repo", "repo", "--passphrase-env", "PASS"];
    let run = |a: &[&str]| dbbackup_with(&d, &[a, &args[..]].concat(), &env);
    ok(&run(&["backup", "--source", "sqlite://app.db"]));
    let out = run(&["restore-test", "--check", "select 0"]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    // Someone with write access to the storage turns the failed test into a pass.
    let tests = walk(&d.p("repo"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/tests/"))
        .expect("a record");
    let text_ = std::fs::read_to_string(&tests).unwrap();
    let (body, seal) = text_.trim_end().split_once('\n').unwrap();
    assert!(body.contains("\"passed\":false"), "{body}");
    let forged = body.replace("\"passed\":false", "\"passed\":true");
    let mut s: Value = serde_json::from_str(seal).unwrap();
    s["blake3"] = blake3::hash(forged.as_bytes()).to_hex().to_string().into();
    std::fs::write(&tests, format!("{forged}\n{s}\n")).unwrap();
    let shown = ok(&run(&["show"]));
    assert!(shown.contains("REFUSED restore-test record"), "{shown}");
    assert!(shown.contains("not sealed by the backup's key"), "{shown}");
    assert!(!shown.contains("passed, restore took"), "{shown}");
    let j = json(&run(&["--json", "list"]));
    assert!(j["backups"][0]["restore_test"].is_null(), "{j}");
    // A real test is believed again.
    ok(&run(&["restore-test"]));
    let j = json(&run(&["--json", "list"]));
    assert_eq!(j["backups"][0]["restore_test"]["passed"], true, "{j}");
}

async fn pg_exists(db: &str) -> bool {
    let mut c = PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(db)
        .fetch_one(&mut c)
        .await
        .unwrap()
}

/// The scratch database a record says it dropped.
fn scratch_name(record: &Value) -> String {
    let d = check(record, "cleanup")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    d.split_whitespace().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restore_tests_count_rows_run_amcheck_and_always_drop_the_scratch_database() {
    let d = Dir::new("rt-pg");
    let src = format!("cli_rt_{}", std::process::id());
    let mut pg = PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {src} WITH (FORCE)"
    )))
    .execute(&mut pg)
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {src}")))
        .execute(&mut pg)
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{src}");
    let mut s = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE orders (id int PRIMARY KEY, note text, at timestamptz DEFAULT now());
         INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
         CREATE INDEX ON orders (note);
         CREATE SCHEMA app; CREATE TABLE app.lines (order_id int REFERENCES orders, n int);
         INSERT INTO app.lines SELECT g % 3000 + 1, g FROM generate_series(1, 5000) g;
         CREATE TABLE parts (k int, v text) PARTITION BY RANGE (k);
         CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100);
         CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (100) TO (200);
         INSERT INTO parts SELECT g, 'p' FROM generate_series(0, 199) g;",
    )
    .execute(&mut s)
    .await
    .unwrap();
    drop(s);
    let b = json(&dbbackup(
        &d,
        &["--json", "backup", "--source", &url, "--repo", "repo"],
    ));
    let id = b["backup_id"].as_str().unwrap().to_owned();
    let scratch = "postgres://postgres@127.0.0.1:5432/postgres";
    let rt = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "restore-test",
            "--repo",
            "repo",
            "--scratch",
            scratch,
        ];
        args.extend_from_slice(extra);
        dbbackup(&d, &args)
    };
    let out = rt(&["--check", "select count(*) = 5000 from app.lines"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let r = parse(&out)["record"].clone();
    for t in [
        "public.orders",
        "app.lines",
        "public.parts_1",
        "public.parts_2",
    ] {
        assert_eq!(check(&r, &format!("rows {t}"))["status"], "passed", "{r}");
    }
    let integrity = check(&r, "integrity");
    assert_eq!(integrity["status"], "passed", "{r}");
    assert!(
        integrity["detail"]
            .as_str()
            .unwrap()
            .contains("bt_index_check"),
        "{integrity}"
    );
    assert!(!pg_exists(&scratch_name(&r)).await);
    assert!(r["restore_seconds"].as_f64().unwrap() > 0.0);
    // A false check.
    let out = rt(&["--check", "select count(*) = 0 from orders"]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    let r = parse(&out)["record"].clone();
    assert_eq!(check(&r, "check 1")["status"], "failed");
    assert!(!pg_exists(&scratch_name(&r)).await);
    // A check that is not even valid SQL fails too, and says why.
    let out = rt(&["--check", "select nope from nowhere"]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    let r = parse(&out)["record"].clone();
    assert!(
        check(&r, "check 1")["detail"]
            .as_str()
            .unwrap()
            .contains("nowhere"),
        "{r}"
    );
    // The manifest recorded more rows than the backup holds.
    craft_rows(&d.p("repo"), &id, "app.lines", 7);
    let out = rt(&[]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    let r = parse(&out)["record"].clone();
    let c = check(&r, "rows app.lines");
    assert_eq!(c["status"], "failed", "{r}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("5000 rows restored, 5007 recorded"),
        "{c}"
    );
    assert!(!pg_exists(&scratch_name(&r)).await);
    // Text output names the failed check.
    let out = dbbackup(
        &d,
        &["restore-test", "--repo", "repo", "--scratch", scratch],
    );
    assert_eq!(code(&out), Some(4));
    assert!(
        text(&out).contains("FAILED (rows app.lines)"),
        "{}",
        text(&out)
    );
    // A damaged entry: the restore fails half-way, the test fails, the database is dropped.
    let entry = d
        .p("repo")
        .join("backups")
        .join(&id)
        .join("entries")
        .join("000002");
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&entry, bytes).unwrap();
    let out = rt(&[]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    let r = parse(&out)["record"].clone();
    assert_eq!(check(&r, "restore")["status"], "failed", "{r}");
    assert!(!pg_exists(&scratch_name(&r)).await);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {src} WITH (FORCE)"
    )))
    .execute(&mut pg)
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restore_tests_count_rows_check_tables_and_drop_the_scratch_database() {
    let d = Dir::new("rt-maria");
    let src = format!("cli_rt_{}", std::process::id());
    let mut a = MySqlConnection::connect("mysql://root@127.0.0.1:3306/mysql")
        .await
        .unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {src}"
    )))
    .execute(&mut a)
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {src}")))
        .execute(&mut a)
        .await
        .unwrap();
    let url = format!("mysql://root@127.0.0.1:3306/{src}");
    let mut s = MySqlConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40), KEY (name)) ENGINE=InnoDB;
         INSERT INTO items (name) SELECT CONCAT('n', seq) FROM seq_1_to_4000;
         CREATE TABLE notes (item INT, body TEXT, FOREIGN KEY (item) REFERENCES items (id)) ENGINE=InnoDB;
         INSERT INTO notes SELECT seq, 'x' FROM seq_1_to_10;
         CREATE TABLE log (m TEXT) ENGINE=MyISAM; INSERT INTO log VALUES ('a'), ('b');",
    )
    .execute(&mut s)
    .await
    .unwrap();
    drop(s);
    let b = json(&dbbackup(
        &d,
        &["--json", "backup", "--source", &url, "--repo", "repo"],
    ));
    let id = b["backup_id"].as_str().unwrap().to_owned();
    let scratch = "mysql://root@127.0.0.1:3306";
    let rt = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "restore-test",
            "--repo",
            "repo",
            "--scratch",
            scratch,
        ];
        args.extend_from_slice(extra);
        dbbackup(&d, &args)
    };
    let exists = |db: String| async move {
        let mut a = MySqlConnection::connect("mysql://root@127.0.0.1:3306/mysql")
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?",
        )
        .bind(db)
        .fetch_one(&mut a)
        .await
        .unwrap();
        n > 0
    };
    let out = rt(&["--check", "select count(*) = 10 from notes"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let r = parse(&out)["record"].clone();
    for t in ["items", "notes", "log"] {
        assert_eq!(check(&r, &format!("rows {t}"))["status"], "passed", "{r}");
    }
    assert!(
        check(&r, "integrity")["detail"]
            .as_str()
            .unwrap()
            .contains("CHECK TABLE on 3 table(s): OK"),
        "{r}"
    );
    assert!(!exists(scratch_name(&r)).await);
    craft_rows(&d.p("repo"), &id, "items", 1);
    let out = rt(&["--check", "select count(*) = 10 from notes"]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    let r = parse(&out)["record"].clone();
    assert_eq!(check(&r, "rows items")["status"], "failed", "{r}");
    assert_eq!(check(&r, "check 1")["status"], "passed", "{r}");
    assert!(!exists(scratch_name(&r)).await);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {src}"
    )))
    .execute(&mut a)
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_a_stale_or_untested_repository_and_passes_a_fresh_one() {
    let d = Dir::new("rt-check");
    make_db(&d.p("app.db"), 20).await;
    let b = json(&dbbackup(
        &d,
        &[
            "--json",
            "backup",
            "--source",
            "sqlite://app.db",
            "--repo",
            "repo",
        ],
    ));
    let id = b["backup_id"].as_str().unwrap().to_owned();
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--repo", "repo"];
        args.extend_from_slice(extra);
        dbbackup(&d, &args)
    };
    let out = check(&[]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--max-age"), "{}", text(&out));
    // Fresh, never restore-tested.
    let out = check(&["--max-age", "26h"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("OK   max-age: newest backup"),
        "{}",
        text(&out)
    );
    let out = check(&["--max-age", "26h", "--max-restore-test-age", "8d"]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("was ever restore-tested"),
        "{}",
        text(&out)
    );
    ok(&dbbackup(&d, &["restore-test", "--repo", "repo"]));
    let out = check(&["--max-age", "26h", "--max-restore-test-age", "8d"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let status = ok(&dbbackup(&d, &["status", "--repo", "repo"]));
    for want in ["1 trusted", "passed, restore took", "log archive none"] {
        assert!(status.contains(want), "missing {want:?} in {status}");
    }
    // Stale: the only backup finished long ago (an unencrypted manifest, rewritten).
    let path = d.p("repo").join("backups").join(&id).join("MANIFEST");
    let text_ = std::fs::read_to_string(&path).unwrap();
    let mut m: Value = serde_json::from_str(text_.lines().next().unwrap()).unwrap();
    m["finished_at"] = "2026-01-01T00:00:00Z".into();
    m["started_at"] = "2026-01-01T00:00:00Z".into();
    let body = serde_json::to_string(&m).unwrap();
    let seal = serde_json::json!({"blake3": blake3::hash(body.as_bytes()).to_hex().to_string()});
    std::fs::write(&path, format!("{body}\n{seal}\n")).unwrap();
    let out = check(&["--json", "--max-age", "26h"]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    let j = parse(&out);
    assert_eq!(j["objectives"][0]["objective"], "max-age");
    assert_eq!(j["objectives"][0]["ok"], false);
    let out = check(&["--max-archive-lag", "5m"]);
    assert_eq!(code(&out), Some(4), "{}", text(&out));
    assert!(text(&out).contains("no log archive"), "{}", text(&out));
}

/// The PostgreSQL engine's fixture (every object kind it backs up: partitioned tables and their
/// partitioned indexes, a table on another access method, a subscription, RLS, rules, ...), a
/// database this test did not shape for restore tests: every table counted, amcheck on what it
/// can check, and the scratch database dropped although it holds a subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restore_test_of_every_object_kind_passes_and_drops_its_subscriptions() {
    let d = Dir::new("rt-pg-fixture");
    let src = format!("cli_rtfx_{}", std::process::id());
    let mut pg = PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    let drop_src = format!("DROP DATABASE IF EXISTS {src} WITH (FORCE)");
    let _ = sqlx::query(sqlx::AssertSqlSafe(drop_src.clone()))
        .execute(&mut pg)
        .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {src}")))
        .execute(&mut pg)
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{src}");
    let mut s = PgConnection::connect(&url).await.unwrap();
    let fixture = include_str!("../../../dbbackup-postgres/tests/it/fixture.sql")
        .replace(":big_rows", "1000");
    sqlx::raw_sql(sqlx::AssertSqlSafe(fixture))
        .execute(&mut s)
        .await
        .unwrap();
    drop(s);
    ok(&dbbackup(
        &d,
        &["backup", "--source", &url, "--repo", "repo"],
    ));
    let out = dbbackup(
        &d,
        &[
            "--json",
            "restore-test",
            "--repo",
            "repo",
            "--scratch",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ],
    );
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let r = parse(&out)["record"].clone();
    assert!(
        r["checks"].as_array().unwrap().len() > 20,
        "every table counted: {r}"
    );
    assert_eq!(check(&r, "integrity")["status"], "passed", "{r}");
    assert_eq!(
        check(&r, "rows public.measurements_2025")["status"],
        "passed",
        "{r}"
    );
    assert!(!pg_exists(&scratch_name(&r)).await);
    let _ = sqlx::query(sqlx::AssertSqlSafe(drop_src))
        .execute(&mut pg)
        .await;
}
