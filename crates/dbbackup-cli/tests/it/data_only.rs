//! The schema-change sequence from the command line: back up, re-create the database with a new
//! schema, `restore --data-only` the old rows into it, on the shared PostgreSQL and MariaDB.

use super::*;
use sqlx::{MySqlConnection, PgConnection};

const PG: &str = "postgres://postgres@127.0.0.1:5432";
const MY: &str = "mysql://root@127.0.0.1:3306";

async fn pg(db: &str, sql: &str) {
    let mut c = PgConnection::connect(&format!("{PG}/{db}")).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn pg_text(db: &str, q: &str) -> String {
    let mut c = PgConnection::connect(&format!("{PG}/{db}")).await.unwrap();
    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(q.to_owned()))
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

async fn my(db: &str, sql: &str) {
    let mut c = MySqlConnection::connect(&format!("{MY}/{db}"))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn my_text(db: &str, q: &str) -> String {
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
