//! `restore --clean`: refresh an existing database from a backup, on the shared PostgreSQL and
//! MariaDB.

use super::*;

use super::data_only::{my, my_text, pg, pg_text, MY, PG};

const MY_FACTS: &str =
    "SELECT CONCAT_WS('|', (SELECT COUNT(*) FROM parent), (SELECT COUNT(*) FROM a_child), \
    (SELECT SUM(qty) FROM a_child), (SELECT COUNT(*) FROM v_big), (SELECT COUNT(*) FROM audit), \
    (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restore_clean_refreshes_an_existing_database() {
    let d = Dir::new("my-clean");
    let db = format!("cli_clean_{}", std::process::id());
    my(
        "mysql",
        &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"),
    )
    .await;
    my(
        &db,
        "CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB;
         CREATE TABLE a_child (id INT AUTO_INCREMENT PRIMARY KEY, parent_id INT NOT NULL, qty INT,
             FOREIGN KEY (parent_id) REFERENCES parent (id)) ENGINE=InnoDB;
         CREATE TABLE audit (what VARCHAR(20));
         CREATE VIEW v_big AS SELECT * FROM a_child WHERE qty > 10;
         CREATE TRIGGER child_audit AFTER DELETE ON a_child FOR EACH ROW INSERT INTO audit VALUES ('deleted');
         CREATE PROCEDURE touch() SELECT 1;
         INSERT INTO parent SELECT seq FROM seq_1_to_50;
         INSERT INTO a_child (parent_id, qty) SELECT 1 + seq % 50, seq FROM seq_1_to_200;",
    )
    .await;
    let url = format!("{MY}/{db}");
    ok(&dbbackup(
        &d,
        &["backup", "--source", &url, "--repo", "repo"],
    ));
    let want = my_text(&db, MY_FACTS).await;
    assert_eq!(want, "50|200|20100|190|0|1");
    // Staging drifted: rows deleted (the trigger wrote audit rows), a table of its own added.
    my(
        &db,
        "DELETE FROM a_child WHERE qty > 100; CREATE TABLE zz_local (x INT); INSERT INTO zz_local VALUES (7);",
    )
    .await;
    let out = dbbackup(&d, &["restore", "--repo", "repo", "--target", &url]);
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(text(&out).contains("give --clean"), "{}", text(&out));
    let o = ok(&dbbackup(
        &d,
        &["restore", "--repo", "repo", "--target", &url, "--clean"],
    ));
    assert!(o.contains("--clean dropped 6 object(s)"), "{o}");
    assert_eq!(my_text(&db, MY_FACTS).await, want);
    assert_eq!(
        my_text(&db, "SELECT CAST(SUM(x) AS CHAR) FROM zz_local").await,
        "7"
    );
    // A table of the target's own referencing one of the backup's: the drop is refused before
    // anything is dropped.
    my(
        &db,
        "CREATE TABLE zz_ref (p INT, FOREIGN KEY (p) REFERENCES parent (id)) ENGINE=InnoDB; INSERT INTO zz_ref VALUES (3);",
    )
    .await;
    let out = dbbackup(
        &d,
        &["restore", "--repo", "repo", "--target", &url, "--clean"],
    );
    assert_eq!(code(&out), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("zz_ref (") && text(&out).contains("nothing was changed"),
        "{}",
        text(&out)
    );
    assert_eq!(my_text(&db, MY_FACTS).await, want, "nothing was dropped");
    // Usage errors: with --create, with --data-only, on SQLite.
    for extra in ["--create", "--data-only"] {
        let out = dbbackup(
            &d,
            &[
                "restore", "--repo", "repo", "--target", &url, "--clean", extra,
            ],
        );
        assert_eq!(code(&out), Some(2), "{}", text(&out));
    }
    my("mysql", &format!("DROP DATABASE IF EXISTS {db}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restore_clean_refreshes_staging_in_one_transaction() {
    let d = Dir::new("pg-clean");
    let db = format!("cli_clean_{}", std::process::id());
    pg(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
    pg("postgres", &format!("CREATE DATABASE {db}")).await;
    pg(
        &db,
        "CREATE TYPE status AS ENUM ('new', 'paid');
         CREATE TABLE a_lines (order_id int NOT NULL, qty int);
         CREATE TABLE orders (id serial PRIMARY KEY, s status NOT NULL DEFAULT 'new', amount numeric);
         ALTER TABLE a_lines ADD FOREIGN KEY (order_id) REFERENCES orders;
         CREATE FUNCTION total() RETURNS numeric LANGUAGE sql AS 'SELECT sum(amount) FROM orders';
         CREATE VIEW paid AS SELECT * FROM orders WHERE s = 'paid';
         INSERT INTO orders (s, amount) SELECT (ARRAY['new','paid'])[1 + g % 2]::status, g FROM generate_series(1, 100) g;
         INSERT INTO a_lines SELECT 1 + g % 100, g FROM generate_series(1, 300) g;",
    )
    .await;
    let url = format!("{PG}/{db}");
    ok(&dbbackup(
        &d,
        &["backup", "--source", &url, "--repo", "repo"],
    ));
    let facts = "SELECT concat_ws('|', (SELECT count(*) FROM orders), total(), (SELECT count(*) FROM paid), (SELECT sum(qty) FROM a_lines))";
    let want = pg_text(&db, facts).await;
    pg(
        &db,
        "DELETE FROM a_lines; DELETE FROM orders WHERE id > 10; CREATE TABLE local (x int)",
    )
    .await;
    let o = ok(&dbbackup(
        &d,
        &["restore", "--repo", "repo", "--target", &url, "--clean"],
    ));
    assert!(o.contains("--clean dropped"), "{o}");
    assert_eq!(pg_text(&db, facts).await, want);
    assert_eq!(pg_text(&db, "SELECT count(*)::text FROM local").await, "0");
    let out = dbbackup(
        &d,
        &[
            "restore", "--repo", "repo", "--target", &url, "--clean", "--tables", "orders",
        ],
    );
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    assert!(text(&out).contains("come back empty"), "{}", text(&out));
    let out = dbbackup(
        &d,
        &[
            "restore",
            "--repo",
            "repo",
            "--target",
            "sqlite://x.db",
            "--clean",
        ],
    );
    assert_ne!(code(&out), Some(0), "{}", text(&out));
    pg(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
}
