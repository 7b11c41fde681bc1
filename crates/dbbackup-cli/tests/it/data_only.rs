//! The schema-change sequence from the command line: back up, re-create the database with a new
//! schema, `restore --data-only` the old rows into it, on the shared PostgreSQL and MariaDB.

use super::*;
use sqlx::{MySqlConnection, PgConnection};

pub(super) const PG: &str = "postgres://postgres@127.0.0.1:5432";
pub(super) const MY: &str = "mysql://root@127.0.0.1:3306";

pub(super) async fn pg(db: &str, sql: &str) {
    let mut c = PgConnection::connect(&format!("{PG}/{db}")).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub(super) async fn pg_text(db: &str, q: &str) -> String {
    let mut c = PgConnection::connect(&format!("{PG}/{db}")).await.unwrap();
    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(q.to_owned()))
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

pub(super) async fn my(db: &str, sql: &str) {
    let mut c = MySqlConnection::connect(&format!("{MY}/{db}"))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub(super) async fn my_text(db: &str, q: &str) -> String {
    let mut c = MySqlConnection::connect(&format!("{MY}/{db}"))
        .await
        .unwrap();
    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(q.to_owned()))
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// What the new schema must hold after the old rows came back.
const PG_FACTS: &str = "SELECT concat_ws('|', (SELECT count(*) FROM orders), (SELECT sum(amount) FROM orders), \
     (SELECT count(*) FROM orders WHERE status = 'imported'), (SELECT count(customer_name) FROM orders), \
     (SELECT count(*) FROM a_lines), (SELECT sum(qty) FROM a_lines))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_restore_into_a_changed_schema_by_column_name() {
    let d = Dir::new("pg-data-only");
    let db = format!("cli_donly_{}", std::process::id());
    let v2 =
        "CREATE TABLE orders (id serial PRIMARY KEY, customer_name text, amount numeric(10,2), \
                  status text NOT NULL DEFAULT 'imported');
              CREATE TABLE a_lines (order_id int NOT NULL REFERENCES orders, qty int);";
    let recreate = |schema: &'static str| {
        let db = db.clone();
        async move {
            pg(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            )
            .await;
            pg("postgres", &format!("CREATE DATABASE {db}")).await;
            if !schema.is_empty() {
                pg(&db, schema).await;
            }
        }
    };
    recreate("").await;
    // Version 1, with rows; a_lines (the child) sorts before orders.
    pg(
        &db,
        "CREATE TABLE orders (id serial PRIMARY KEY, customer text, amount numeric(10,2), legacy text);
         CREATE TABLE a_lines (order_id int NOT NULL REFERENCES orders, qty int);
         CREATE TABLE gone (x int);
         INSERT INTO orders (customer, amount, legacy) SELECT 'c' || g, g * 1.25, 'old' FROM generate_series(1, 100) g;
         INSERT INTO a_lines SELECT 1 + g % 100, g FROM generate_series(1, 200) g;
         INSERT INTO gone VALUES (1), (2);",
    )
    .await;
    let url = format!("{PG}/{db}");
    ok(&dbbackup(
        &d,
        &[
            "backup",
            "--source",
            &url,
            "--repo",
            "repo",
            "--label",
            "stage=pre-migration",
        ],
    ));
    // Version 2: legacy dropped, customer renamed (drop + add), status added with a default,
    // gone dropped.
    recreate(v2).await;
    let out = dbbackup(
        &d,
        &["restore", "--repo", "repo", "--target", &url, "--data-only"],
    );
    let o = ok(&out);
    for want in ["legacy", "customer", "gone no longer exists in the target"] {
        assert!(o.contains(want), "missing {want:?} in {o}");
    }
    assert_eq!(pg_text(&db, PG_FACTS).await, "100|6312.50|100|0|200|20100");
    // The sequence moved past the restored rows.
    pg(&db, "INSERT INTO orders (amount) VALUES (1)").await;
    assert_eq!(
        pg_text(&db, "SELECT max(id)::text FROM orders").await,
        "101"
    );
    // --strict-columns: fails and changes nothing.
    recreate(v2).await;
    let out = dbbackup(
        &d,
        &[
            "restore",
            "--repo",
            "repo",
            "--target",
            &url,
            "--data-only",
            "--strict-columns",
        ],
    );
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no longer exist"), "{}", text(&out));
    assert!(
        text(&out).contains("rows were not restored")
            || text(&out).contains("values were not restored"),
        "{}",
        text(&out)
    );
    assert_eq!(pg_text(&db, PG_FACTS).await, "0|0|0|0"); // concat_ws skips the NULL sums
                                                         // --data-only with --create is a usage error.
    let out = dbbackup(
        &d,
        &[
            "restore",
            "--repo",
            "repo",
            "--target",
            &url,
            "--data-only",
            "--create",
        ],
    );
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    pg(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
}

const MY_FACTS: &str = "SELECT CONCAT_WS('|', (SELECT COUNT(*) FROM orders), (SELECT SUM(amount) FROM orders), \
     (SELECT COUNT(*) FROM orders WHERE status = 'imported'), (SELECT COUNT(customer_name) FROM orders), \
     (SELECT COUNT(*) FROM a_lines), IFNULL((SELECT SUM(qty) FROM a_lines), 'none'))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_rows_restore_into_a_changed_schema_by_column_name() {
    let d = Dir::new("my-data-only");
    let db = format!("cli_donly_{}", std::process::id());
    let v2 = "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_name VARCHAR(20), \
                  amount DECIMAL(10,2), status VARCHAR(10) NOT NULL DEFAULT 'imported') ENGINE=InnoDB;
              CREATE TABLE a_lines (order_id INT NOT NULL, qty INT, FOREIGN KEY (order_id) REFERENCES orders (id)) ENGINE=InnoDB;";
    let recreate = |schema: &'static str| {
        let db = db.clone();
        async move {
            my(
                "mysql",
                &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"),
            )
            .await;
            if !schema.is_empty() {
                my(&db, schema).await;
            }
        }
    };
    recreate("").await;
    my(
        &db,
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer VARCHAR(20), amount DECIMAL(10,2), legacy TEXT) ENGINE=InnoDB;
         CREATE TABLE a_lines (order_id INT NOT NULL, qty INT, FOREIGN KEY (order_id) REFERENCES orders (id)) ENGINE=InnoDB;
         CREATE TABLE gone (x INT);
         INSERT INTO orders (customer, amount, legacy) SELECT CONCAT('c', seq), seq * 1.25, 'old' FROM seq_1_to_100;
         INSERT INTO a_lines SELECT 1 + seq % 100, seq FROM seq_1_to_200;
         INSERT INTO gone VALUES (1), (2);",
    )
    .await;
    let url = format!("{MY}/{db}");
    ok(&dbbackup(
        &d,
        &["backup", "--source", &url, "--repo", "repo"],
    ));
    recreate(v2).await;
    let o = ok(&dbbackup(
        &d,
        &["restore", "--repo", "repo", "--target", &url, "--data-only"],
    ));
    for want in ["legacy", "customer", "gone no longer exists in the target"] {
        assert!(o.contains(want), "missing {want:?} in {o}");
    }
    assert_eq!(my_text(&db, MY_FACTS).await, "100|6312.50|100|0|200|20100");
    my(&db, "INSERT INTO orders (amount) VALUES (1)").await;
    assert_eq!(
        my_text(&db, "SELECT CAST(MAX(id) AS CHAR) FROM orders").await,
        "101"
    );
    recreate(v2).await;
    let out = dbbackup(
        &d,
        &[
            "restore",
            "--repo",
            "repo",
            "--target",
            &url,
            "--data-only",
            "--strict-columns",
        ],
    );
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no longer exist"), "{}", text(&out));
    assert!(
        text(&out).contains("rows were not restored")
            || text(&out).contains("values were not restored"),
        "{}",
        text(&out)
    );
    assert_eq!(my_text(&db, MY_FACTS).await, "0|0|0|0|none");
    my("mysql", &format!("DROP DATABASE IF EXISTS {db}")).await;
}

async fn lite(path: &Path, sql: &str) {
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn lite_text(path: &Path, q: &str) -> String {
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(q.to_owned()))
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

const LITE_FACTS: &str = "SELECT concat_ws('|', (SELECT count(*) FROM orders), (SELECT sum(amount) FROM orders), \
     (SELECT count(*) FROM orders WHERE status = 'imported'), (SELECT count(customer_name) FROM orders), \
     (SELECT count(*) FROM a_lines), (SELECT sum(qty) FROM a_lines), (SELECT count(*) FROM audit))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rows_restore_into_a_changed_schema_by_column_name() {
    let d = Dir::new("lite-data-only");
    let db = d.p("app.db");
    let url = format!("sqlite://{}", db.display());
    // v2 has an audit trigger: it must not fire for restored rows.
    let v2 = "CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, customer_name TEXT, amount NUMERIC, \
                  status TEXT NOT NULL DEFAULT 'imported');
              CREATE TABLE a_lines (order_id INTEGER NOT NULL REFERENCES orders, qty INTEGER);
              CREATE TABLE audit (what TEXT);
              CREATE TRIGGER orders_audit AFTER INSERT ON orders BEGIN INSERT INTO audit VALUES ('insert ' || NEW.id); END;";
    let recreate = |schema: &'static str| {
        let db = db.clone();
        async move {
            for f in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{f}", db.display()));
            }
            lite(&db, schema).await;
        }
    };
    recreate(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, customer TEXT, amount NUMERIC, legacy TEXT);
         CREATE TABLE a_lines (order_id INTEGER NOT NULL REFERENCES orders, qty INTEGER);
         CREATE TABLE gone (x INTEGER);
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 200)
         INSERT INTO orders (customer, amount, legacy) SELECT 'c' || n, n * 1.25, 'old' FROM g WHERE n <= 100;
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 200)
         INSERT INTO a_lines SELECT 1 + n % 100, n FROM g;
         INSERT INTO gone VALUES (1), (2);
         DELETE FROM orders WHERE id > 100;",
    )
    .await;
    ok(&dbbackup(
        &d,
        &["backup", "--source", &url, "--repo", "repo"],
    ));
    recreate(v2).await;
    let o = ok(&dbbackup(
        &d,
        &["restore", "--repo", "repo", "--target", &url, "--data-only"],
    ));
    for want in ["legacy", "customer", "gone no longer exists in the target"] {
        assert!(o.contains(want), "missing {want:?} in {o}");
    }
    assert_eq!(
        lite_text(&db, LITE_FACTS).await,
        "100|6312.5|100|0|200|20100|0"
    );
    // The AUTOINCREMENT counter moved past the restored rows; the trigger is back.
    lite(&db, "INSERT INTO orders (amount) VALUES (1)").await;
    assert_eq!(
        lite_text(
            &db,
            "SELECT max(id) || '|' || (SELECT group_concat(what) FROM audit) FROM orders"
        )
        .await,
        "101|insert 101"
    );
    // --tables: only the matching table; a pattern that matches nothing fails.
    recreate(v2).await;
    // a_lines alone: its rows point at orders that are not there: refused, nothing changed.
    let out = dbbackup(
        &d,
        &[
            "restore",
            "--repo",
            "repo",
            "--target",
            &url,
            "--data-only",
            "--tables",
            "a_*",
        ],
    );
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("have no matching row in orders"),
        "{}",
        text(&out)
    );
    assert_eq!(
        lite_text(&db, "SELECT count(*) || '' FROM a_lines").await,
        "0"
    );
    recreate(v2).await;
    let out = dbbackup(
        &d,
        &[
            "restore",
            "--repo",
            "repo",
            "--target",
            &url,
            "--data-only",
            "--tables",
            "orders",
        ],
    );
    let o = ok(&out);
    assert!(!o.contains("gone"), "{o}");
    assert_eq!(
        lite_text(&db, "SELECT count(*) || '' FROM orders").await,
        "100"
    );
    let out = dbbackup(
        &d,
        &[
            "restore",
            "--repo",
            "repo",
            "--target",
            &url,
            "--data-only",
            "--tables",
            "custmers",
        ],
    );
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("matches no table"), "{}", text(&out));
    // --strict-columns: fails and changes nothing.
    recreate(v2).await;
    let out = dbbackup(
        &d,
        &[
            "restore",
            "--repo",
            "repo",
            "--target",
            &url,
            "--data-only",
            "--strict-columns",
        ],
    );
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no longer exist"), "{}", text(&out));
    assert_eq!(lite_text(&db, LITE_FACTS).await, "0|0|0|0|0");
    // A target that does not exist: said, and not created.
    let missing = d.p("missing.db");
    let out = dbbackup(
        &d,
        &[
            "restore",
            "--repo",
            "repo",
            "--target",
            &format!("sqlite://{}", missing.display()),
            "--data-only",
        ],
    );
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    assert!(!missing.exists());
    assert_eq!(
        std::fs::read_dir(&d.0)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".restore-"))
            .count(),
        0,
        "no restored file is left beside the target"
    );
}

const V1_ORDERS: &str = "CREATE TABLE orders (id serial PRIMARY KEY, customer text, amount numeric(10,2), legacy text);
    INSERT INTO orders (customer, amount, legacy) SELECT 'c' || g, g, 'old' FROM generate_series(1, 50) g;";

/// `examples/schema-change.sh`, the script beside the README recipe, on the shared PostgreSQL
/// (re-initialised with psql): the happy path, a failing re-initialisation and a strict restore
/// that fails, each saying how to get the old database back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_schema_change_script_runs_the_sequence_and_says_how_to_recover() {
    let d = Dir::new("schema-change-script");
    let db = format!("cli_script_{}", std::process::id());
    pg(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
    pg("postgres", &format!("CREATE DATABASE {db}")).await;
    pg(&db, V1_ORDERS).await;
    std::fs::write(
        d.p("v2.sql"),
        "CREATE TABLE orders (id serial PRIMARY KEY, customer text, amount numeric(10,2), status text NOT NULL DEFAULT 'imported');",
    )
    .unwrap();
    let url = format!("{PG}/{db}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/schema-change.sh");
    let reinit = format!(
        "psql -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -c 'DROP DATABASE {db} WITH (FORCE)' -c 'CREATE DATABASE {db}' \
         && psql -q -h 127.0.0.1 -U postgres -d {db} -v ON_ERROR_STOP=1 -f v2.sql"
    );
    let check = format!(
        "psql -h 127.0.0.1 -U postgres -d {db} -Atc \"select count(*) = 50 and sum(amount) = 1275 from orders where status = 'imported'\" | grep -qx t"
    );
    let run = |env: Vec<(&str, String)>| {
        std::process::Command::new("sh")
            .arg(&script)
            .current_dir(&d.0)
            .env("DBBACKUP", env!("CARGO_BIN_EXE_dbbackup"))
            .env("DB", &url)
            .env("REPO", d.p("repo"))
            .env_remove("DBBACKUP_REPO")
            .envs(env)
            .output()
            .unwrap()
    };
    let out = run(vec![
        ("REINIT", reinit.clone()),
        ("CHECK_CMD", check.clone()),
    ]);
    let o = ok(&out);
    let id = o.trim();
    assert!(
        text(&out).contains(&format!("backup {id} taken and verified")),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("legacy"),
        "the dropped column is reported: {}",
        text(&out)
    );
    assert_eq!(
        pg_text(
            &db,
            "SELECT count(*) || '|' || count(*) FILTER (WHERE status = 'imported') FROM orders"
        )
        .await,
        "50|50"
    );
    // The re-initialisation fails: exit 1, and the way back names the backup just taken.
    let out = run(vec![("REINIT", "exit 3".into())]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("re-initialising the database failed"), "{t}");
    assert!(
        t.contains("restore --repo") && t.contains("--create"),
        "{t}"
    );
    // STRICT=1 against a schema that dropped a column: the restore fails, the check never runs.
    pg(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
    pg("postgres", &format!("CREATE DATABASE {db}")).await;
    pg(&db, V1_ORDERS).await;
    let out = run(vec![
        ("REINIT", reinit),
        ("CHECK_CMD", check),
        ("STRICT", "1".into()),
    ]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no longer exist"), "{t}");
    assert!(
        t.contains("restoring the rows failed; the new schema was left unchanged"),
        "{t}"
    );
    assert_eq!(pg_text(&db, "SELECT count(*)::text FROM orders").await, "0");
    // The source cannot be read: nothing changes and no id is printed.
    let out = std::process::Command::new("sh")
        .arg(&script)
        .current_dir(&d.0)
        .env("DBBACKUP", env!("CARGO_BIN_EXE_dbbackup"))
        .env("DB", format!("{PG}/no_such_db_{}", std::process::id()))
        .env("REPO", d.p("repo2"))
        .env("REINIT", "touch reinit-ran")
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the backup failed; nothing was changed"),
        "{}",
        text(&out)
    );
    assert!(!d.p("reinit-ran").exists());
    pg(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
}
