//! Owners and privileges as an option: the restored database's `pg_dump --schema-only` *with*
//! owners and privileges equals the original's.

use std::sync::Arc;

use dbbackup_core::{Backup, ErrorKind, MemorySink, Restore, Sink};
use dbbackup_postgres::{PgSource, PgTarget};

use sqlx::{Connection, PgConnection};

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

/// Owners and privileges of the other kinds (operators, aggregates, collations, text
/// search, foreign data, large objects) and default privileges restore exactly; and a database
/// owned by a non-superuser restores its backup as that user into a database it owns, with owners
/// (it is a member of the owning roles) and without (everything then belongs to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_owner_and_default_privileges_restore_also_as_a_non_superuser() {
    let n = std::process::id();
    let (r1, r2, app) = (
        format!("dbbt_own2_{n}"),
        format!("dbbt_read2_{n}"),
        format!("dbbt_app_{n}"),
    );
    let _roles = Roles(vec![app.clone(), r1.clone(), r2.clone()]);
    let mut a = admin().await;
    for (r, opts) in [(&r1, ""), (&r2, ""), (&app, " LOGIN")] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP ROLE IF EXISTS {r}; CREATE ROLE {r}{opts}"
        )))
        .execute(&mut a)
        .await
        .unwrap();
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("GRANT {r1}, {r2} TO {app}")))
        .execute(&mut a)
        .await
        .unwrap();
    let src = TestDb::new("priv2").await;
    let mut c = src.conn().await;
    // What a superuser sets up: an extension's wrapper the app may use.
    let setup = format!(
        "CREATE EXTENSION postgres_fdw; GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {app}, {r1};"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "{setup} ALTER DATABASE \"{db}\" OWNER TO {app};",
        db = src.name
    )))
    .execute(&mut c)
    .await
    .unwrap();
    drop(c);
    // What the app creates, as itself.
    let app_url = |db: &TestDb| db.url().replacen("postgres@", &format!("{app}@"), 1);
    let mut c = PgConnection::connect(&app_url(&src)).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA app;
         GRANT CREATE, USAGE ON SCHEMA app TO {r1};
         CREATE TABLE app.t (id serial PRIMARY KEY, v text);
         ALTER TABLE app.t OWNER TO {r1};
         GRANT SELECT ON app.t TO {r2};
         CREATE FUNCTION app.gt(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 > $2';
         CREATE OPERATOR app.>>> (FUNCTION = app.gt, LEFTARG = int, RIGHTARG = int);
         ALTER OPERATOR app.>>> (int, int) OWNER TO {r1};
         CREATE AGGREGATE app.total(int) (SFUNC = int4pl, STYPE = int);
         ALTER AGGREGATE app.total(int) OWNER TO {r1};
         REVOKE EXECUTE ON FUNCTION app.total(int) FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION app.total(int) TO {r2};
         CREATE COLLATION app.bytes (locale = 'C');
         ALTER COLLATION app.bytes OWNER TO {r1};
         CREATE TEXT SEARCH CONFIGURATION app.cfg (COPY = english);
         ALTER TEXT SEARCH CONFIGURATION app.cfg OWNER TO {r1};
         CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'far');
         GRANT USAGE ON FOREIGN SERVER s TO {r2};
         CREATE USER MAPPING FOR {r2} SERVER s OPTIONS (user 'remote');
         CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (user 'me');
         CREATE USER MAPPING FOR PUBLIC SERVER s OPTIONS (user 'anyone');
         CREATE FOREIGN TABLE app.ft (id int) SERVER s;
         ALTER FOREIGN TABLE app.ft OWNER TO {r1};
         GRANT SELECT ON app.ft TO {r2};
         ALTER DEFAULT PRIVILEGES FOR ROLE {r1} GRANT SELECT ON TABLES TO {r2};
         ALTER DEFAULT PRIVILEGES FOR ROLE {r1} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
         ALTER DEFAULT PRIVILEGES FOR ROLE {r1} IN SCHEMA app GRANT USAGE ON SEQUENCES TO {r2} WITH GRANT OPTION;
         DO $$ DECLARE o oid; BEGIN
           o := lo_from_bytea(0, 'shared');
           EXECUTE format('ALTER LARGE OBJECT %s OWNER TO {r1}', o);
           EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO {r2}', o);
         END $$;
         INSERT INTO app.t (v) VALUES ('a'), ('b');"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    // Only a superuser or the mapped user sees a mapping's options: the app's backup refuses the
    // mapping of another role rather than lose its options.
    let refused = Backup::builder()
        .source(PgSource::new(&app_url(&src)).unwrap().with_privileges(true))
        .sink(Arc::new(MemorySink::new()))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unsupported, "{refused}");
    assert!(
        refused
            .to_string()
            .contains(&format!("user mapping for {r2} on server s")),
        "{refused}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP USER MAPPING FOR {r2} SERVER s"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    drop(c);
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let report = Backup::builder()
        .source(PgSource::new(&app_url(&src)).unwrap().with_privileges(true))
        .sink(sink.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let dst = owned_by(&app, &setup, "priv2_dst").await;
    Restore::builder()
        .sink(sink.clone())
        .backup(report.backup_id().parse().unwrap())
        .target(PgTarget::new(&app_url(&dst)).unwrap())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("restore as the non-superuser failed: {e}"));
    let (x, y) = (schema_dump_with(&src, true), schema_dump_with(&dst, true));
    for want in [
        "ALTER OPERATOR app.>>> (integer, integer) OWNER TO dbbt_own2_",
        "ALTER AGGREGATE app.total(integer) OWNER TO dbbt_own2_",
        "ALTER DEFAULT PRIVILEGES FOR ROLE dbbt_own2_",
        "OWNER TO dbbt_own2_",
        "CREATE USER MAPPING FOR dbbt_app_",
    ] {
        assert!(x.contains(want), "{want} missing from\n{x}");
    }
    assert_eq!(x, y);
    // pg_dump --schema-only leaves large objects out: compare their owners and ACLs directly.
    let lo = |db: &TestDb| {
        let url = db.url();
        async move {
            let mut c = PgConnection::connect(&url).await.unwrap();
            sqlx::query_as::<_, (i64, String, Option<String>)>(
                "SELECT oid::int8, lomowner::regrole::text, lomacl::text FROM pg_largeobject_metadata ORDER BY 1",
            )
            .fetch_all(&mut c)
            .await
            .unwrap()
        }
    };
    let los = lo(&src).await;
    assert!(
        los.len() == 1 && los[0].1 == r1 && los[0].2.as_deref().is_some_and(|a| a.contains(&r2)),
        "{los:?}"
    );
    assert_eq!(los, lo(&dst).await);

    let plain = owned_by(&app, &setup, "priv2_plain").await;
    Restore::builder()
        .sink(sink)
        .backup(report.backup_id().parse().unwrap())
        .target(
            PgTarget::new(&app_url(&plain))
                .unwrap()
                .skip_privileges(true),
        )
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("restore without privileges failed: {e}"));
    let p = schema_dump_with(&plain, true);
    assert!(!p.contains("OWNER TO dbbt_own2_"), "{p}");
    assert!(p.contains(&format!("OWNER TO {app}")), "{p}");
    assert_eq!(
        schema_dump_with(&plain, false),
        schema_dump_with(&src, false)
    );
    drop(a);
}

/// A new database owned by `role`, with the superuser's part of the setup (`setup`) done.
async fn owned_by(role: &str, setup: &str, tag: &str) -> TestDb {
    let db = TestDb::new(tag).await;
    let mut c = admin().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{}\" OWNER TO {role}",
        db.name
    )))
    .execute(&mut c)
    .await
    .unwrap();
    let mut d = db.conn().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup.to_owned()))
        .execute(&mut d)
        .await
        .unwrap();
    db
}
