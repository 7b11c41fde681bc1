//! Restore order from the catalog's dependencies (issue 23): shapes whose dependencies cross
//! object kinds, each of which a kind-by-kind restore cannot create.

use super::*;

/// Only PostgreSQL 14+ records what a `BEGIN ATOMIC` body reads.
const ATOMIC: &str = r#"
CREATE TABLE atomic_src (n integer);
CREATE VIEW atomic_view AS SELECT count(*) AS c FROM atomic_src;
CREATE FUNCTION atomic_count() RETURNS bigint LANGUAGE sql STABLE BEGIN ATOMIC SELECT c FROM atomic_view; END;
CREATE TABLE atomic_user (id integer, c bigint DEFAULT atomic_count());
CREATE VIEW atomic_user_view AS SELECT id, c FROM atomic_user;
INSERT INTO atomic_src VALUES (1), (2);
INSERT INTO atomic_user (id) VALUES (1);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_restore_in_dependency_order_across_kinds() {
    let src = TestDb::new("order").await;
    let mut c = src.conn().await;
    sqlx::raw_sql(include_str!("ordering.sql"))
        .execute(&mut c)
        .await
        .unwrap();
    let major: i32 =
        sqlx::query_scalar("SELECT current_setting('server_version_num')::int / 10000")
            .fetch_one(&mut c)
            .await
            .unwrap();
    if major >= 14 {
        sqlx::raw_sql(ATOMIC).execute(&mut c).await.unwrap();
    }
    drop(c);
    let dst = backup_and_restore_new(&src, "order_dst").await;
    assert_same_schema(&schema_dump(&src), &schema_dump(&dst));
    let sums = data_checksums(&src).await;
    assert!(
        sums.iter()
            .any(|(t, n, _)| t == "public.accounts" && *n == 2),
        "{sums:?}"
    );
    assert_eq!(sums, data_checksums(&dst).await);
}
