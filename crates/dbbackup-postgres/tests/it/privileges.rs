//! Owners and privileges as an option: the restored database's `pg_dump --schema-only` *with*
//! owners and privileges equals the original's.

use std::sync::Arc;

use dbbackup_core::{Backup, MemorySink, Restore, Sink};
use dbbackup_postgres::{PgSource, PgTarget};

use crate::{admin, schema_dump_with, TestDb};

/// Two roles, dropped (with what they own) when the guard goes.
struct Roles(Vec<String>);

impl Drop for Roles {
    fn drop(&mut self) {
        let roles = self.0.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = admin().await;
                for r in &roles {
                    let q = r.replace('"', "\"\"");
                    let _ =
                        sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{q}\"")))
                            .execute(&mut c)
                            .await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_and_privileges_restore_exactly_when_asked_for() {
    let n = std::process::id();
    let (r1, r2) = (format!("dbbt_owner_{n}"), format!("dbbt reader \"{n}\""));
    let _roles = Roles(vec![r1.clone(), r2.clone()]);
    let mut a = admin().await;
    for r in [&r1, &r2] {
        let q = r.replace('"', "\"\"");
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{q}\"")))
            .execute(&mut a)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE \"{q}\"")))
            .execute(&mut a)
            .await
            .unwrap();
    }
    let r2q = format!("\"{}\"", r2.replace('"', "\"\""));
    let src = TestDb::new("priv").await;
    let mut c = src.conn().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA app AUTHORIZATION {r1};
         CREATE TYPE app.mood AS ENUM ('ok', 'meh');
         ALTER TYPE app.mood OWNER TO {r1};
         CREATE DOMAIN app.pos AS int CHECK (VALUE > 0);
         REVOKE USAGE ON DOMAIN app.pos FROM PUBLIC;
         GRANT USAGE ON DOMAIN app.pos TO {r2q};
         CREATE TABLE app.t (id serial PRIMARY KEY, secret text, note text, m app.mood);
         ALTER TABLE app.t OWNER TO {r1};
         GRANT SELECT, INSERT ON app.t TO {r2q} WITH GRANT OPTION;
         GRANT UPDATE (note) ON app.t TO {r2q};
         REVOKE DELETE ON app.t FROM {r1};
         CREATE TABLE app.g (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY);
         ALTER TABLE app.g OWNER TO {r1};
         CREATE VIEW app.v AS SELECT id, note FROM app.t;
         ALTER VIEW app.v OWNER TO {r1};
         GRANT SELECT ON app.v TO PUBLIC;
         GRANT USAGE ON SEQUENCE app.t_id_seq TO {r2q};
         CREATE FUNCTION app.f(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 1';
         ALTER FUNCTION app.f(int) OWNER TO {r1};
         REVOKE EXECUTE ON FUNCTION app.f(int) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION app.f(int) TO {r2q};
         GRANT USAGE ON SCHEMA app TO {r2q};
         INSERT INTO app.t (secret, note, m) VALUES ('s', 'n', 'ok');"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let report = Backup::builder()
        .source(PgSource::new(&src.url()).unwrap().with_privileges(true))
        .sink(sink.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let post = report.manifest.entry("post-data").unwrap();
    assert!(post.raw_size > 0);

    let dst = TestDb::reserve("priv_dst");
    Restore::builder()
        .sink(sink.clone())
        .backup(report.backup_id().parse().unwrap())
        .target(PgTarget::new(&dst.url()).unwrap().create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let (a, b) = (schema_dump_with(&src, true), schema_dump_with(&dst, true));
    assert!(a.contains("OWNER TO dbbt_owner_"), "{a}");
    assert!(a.contains("GRANT UPDATE(note) ON TABLE app.t TO"), "{a}");
    assert_eq!(a, b);

    // Without the option, or when the restore skips them, objects belong to the restoring user.
    let plain = TestDb::reserve("priv_plain");
    Restore::builder()
        .sink(sink)
        .backup(report.backup_id().parse().unwrap())
        .target(
            PgTarget::new(&plain.url())
                .unwrap()
                .create(true)
                .skip_privileges(true),
        )
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let p = schema_dump_with(&plain, true);
    assert!(!p.contains("dbbt_owner_"), "{p}");
    assert_eq!(
        schema_dump_with(&plain, false),
        schema_dump_with(&src, false)
    );
    drop((c, a));
}
