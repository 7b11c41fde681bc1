//! Data-only restores into an existing (migrated) SQLite database, and the pre-migration hook.

use sqlx::migrate::Migrator;

use super::*;

async fn run(conn: &mut SqliteConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn text(conn: &mut SqliteConnection, q: &str) -> String {
    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(q.to_owned()))
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

async fn backup_of(path: &Path) -> MemorySink {
    let sink = MemorySink::new();
    Backup::builder()
        .source(SqliteSource::new(path))
        .sink(Arc::new(sink.clone()))
        .transform(Zstd::new(1))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    sink
}

async fn restore(
    sink: &MemorySink,
    target: SqliteTarget,
) -> dbbackup_core::Result<dbbackup_core::RestoreReport> {
    Restore::builder()
        .sink(Arc::new(sink.clone()))
        .target(target)
        .build()
        .unwrap()
        .run()
        .await
}

/// Every kind of SQLite table a schema change meets: rowid tables with and without an
/// INTEGER PRIMARY KEY, WITHOUT ROWID, STRICT, generated columns, AUTOINCREMENT with deleted
/// ids, an FTS5 table, a view, triggers on both sides.
const V1: &str = "
    PRAGMA foreign_keys = OFF;
    CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, born INTEGER,
        age INTEGER GENERATED ALWAYS AS (2026 - born) VIRTUAL, note TEXT);
    CREATE TABLE notes (body TEXT);
    CREATE TABLE tags (tag TEXT PRIMARY KEY, person INTEGER REFERENCES people(id)) WITHOUT ROWID;
    CREATE TABLE strict_t (k INTEGER PRIMARY KEY, v TEXT) STRICT;
    CREATE VIRTUAL TABLE docs USING fts5(title, body);
    CREATE VIEW adults AS SELECT name FROM people WHERE age >= 18;
    CREATE TRIGGER people_note AFTER INSERT ON people BEGIN UPDATE people SET note = 'v1 trigger' WHERE id = NEW.id; END;
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 120)
    INSERT INTO people (name, born) SELECT 'p' || n, 1950 + n % 60 FROM g;
    DELETE FROM people WHERE id > 100;
    INSERT INTO notes (rowid, body) VALUES (7, 'seven'), (42, 'forty-two'), (1000, 'thousand');
    DELETE FROM notes WHERE rowid = 7;
    INSERT INTO tags VALUES ('a', 1), ('b', 2), ('orphan', 999);
    INSERT INTO strict_t VALUES (1, 'one'), (2, 'two');
    INSERT INTO docs (rowid, title, body) VALUES (5, 'backup', 'restore every row'), (9, 'wal', 'archive segments');
";

/// The new schema: people.note dropped, people.email added with a default, a generated column
/// of its own, notes unchanged, tags unchanged, strict_t dropped, docs unchanged, an audit
/// trigger.
const V2: &str = "
    CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, born INTEGER,
        age INTEGER GENERATED ALWAYS AS (2026 - born) STORED, email TEXT NOT NULL DEFAULT 'none',
        upper_name TEXT GENERATED ALWAYS AS (upper(name)) VIRTUAL);
    CREATE TABLE notes (body TEXT);
    CREATE TABLE tags (tag TEXT PRIMARY KEY, person INTEGER REFERENCES people(id)) WITHOUT ROWID;
    CREATE VIRTUAL TABLE docs USING fts5(title, body);
    CREATE TABLE audit (what TEXT);
    CREATE TRIGGER people_audit AFTER INSERT ON people BEGIN INSERT INTO audit VALUES (NEW.id); END;
    CREATE TRIGGER notes_audit BEFORE INSERT ON notes BEGIN INSERT INTO audit VALUES ('note'); END;
    CREATE TABLE _sqlx_migrations (version INTEGER PRIMARY KEY);
";

const FACTS: &str = "SELECT concat_ws('|',
    (SELECT count(*) FROM people), (SELECT sum(born) FROM people), (SELECT sum(age) FROM people),
    (SELECT count(*) FROM people WHERE email = 'none'), (SELECT min(upper_name) FROM people),
    (SELECT group_concat(rowid || ':' || body, ',') FROM (SELECT rowid, body FROM notes ORDER BY rowid)),
    (SELECT group_concat(tag || ':' || person, ',') FROM tags),
    (SELECT group_concat(rowid, ',') FROM docs WHERE docs MATCH 'restore OR archive'),
    (SELECT count(*) FROM audit))";

#[tokio::test]
async fn rows_go_into_a_changed_schema_by_column_name_in_one_transaction() {
    let dir = Dir::new("data-only");
    let v1 = dir.0.join("v1.db");
    let mut c = connect(&v1, true).await;
    run(&mut c, V1).await;
    let want_v1 = text(
        &mut c,
        "SELECT concat_ws('|', count(*), sum(born), sum(age)) FROM people",
    )
    .await;
    c.close().await.unwrap();
    let sink = backup_of(&v1).await;

    let target = dir.0.join("v2.db");
    let fresh = |path: PathBuf| async move {
        for f in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{f}", path.display()));
        }
        let mut c = connect(&path, true).await;
        run(&mut c, V2).await;
        c
    };
    let mut c = fresh(target.clone()).await;
    let report = restore(&sink, SqliteTarget::new(&target).data_only(true))
        .await
        .unwrap();
    assert_eq!(report.rows, 100 + 2 + 3 + 2, "{report:?}");
    let w = report.warnings.join("\n");
    assert!(
        w.contains("table people: backed-up column(s) note no longer exist"),
        "{w}"
    );
    assert!(
        w.contains("table strict_t no longer exists in the target"),
        "{w}"
    );
    assert!(
        !w.contains("age"),
        "a generated column is computed again, not lost: {w}"
    );
    assert_eq!(
        text(&mut c, FACTS).await,
        format!("{want_v1}|100|P1|42:forty-two,1000:thousand|a:1,b:2,orphan:999|5,9|0")
    );
    // Ids deleted before the backup are not handed out again; triggers are back and fire.
    run(
        &mut c,
        "INSERT INTO people (name) VALUES ('new'); INSERT INTO notes VALUES ('n')",
    )
    .await;
    assert_eq!(
        text(
            &mut c,
            "SELECT max(id) || '|' || (SELECT group_concat(what) FROM audit) FROM people"
        )
        .await,
        "121|121,note"
    );
    assert_eq!(
        text(
            &mut c,
            "SELECT group_concat(name, ',') FROM sqlite_schema WHERE type = 'trigger'"
        )
        .await,
        "people_audit,notes_audit"
    );
    c.close().await.unwrap();

    // Leaving out a table (sqlx's bookkeeping, whose rows the new schema has).
    let mut c = fresh(target.clone()).await;
    run(&mut c, "INSERT INTO _sqlx_migrations VALUES (1), (2)").await;
    let r = restore(
        &sink,
        SqliteTarget::new(&target)
            .data_only(true)
            .tables(["people", "notes"])
            .exclude_tables(["notes"]),
    )
    .await
    .unwrap();
    assert_eq!(r.rows, 100);
    assert_eq!(
        text(
            &mut c,
            "SELECT count(*) || '|' || (SELECT count(*) FROM notes) FROM people"
        )
        .await,
        "100|0"
    );
    c.close().await.unwrap();

    // Strict: fails naming what is gone, nothing changed, no file left beside the target.
    let mut c = fresh(target.clone()).await;
    let e = restore(
        &sink,
        SqliteTarget::new(&target)
            .data_only(true)
            .fail_on_dropped_columns(true),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Target, "{e}");
    assert!(e.to_string().contains("no longer exist"), "{e}");
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert_eq!(text(&mut c, FACTS).await, "0|0|0");
    c.close().await.unwrap();

    // A row the new schema refuses (a NOT NULL column without a default): the whole copy rolls
    // back, even the tables copied before it.
    for f in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{f}", target.display()));
    }
    let mut c = connect(&target, true).await;
    run(
        &mut c,
        "CREATE TABLE notes (body TEXT); CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, born INTEGER, must TEXT NOT NULL);",
    )
    .await;
    let e = restore(&sink, SqliteTarget::new(&target).data_only(true))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("table people"), "{e}");
    assert!(e.to_string().contains("NOT NULL"), "{e}");
    assert_eq!(
        text(
            &mut c,
            "SELECT (SELECT count(*) FROM notes) || '|' || count(*) FROM people"
        )
        .await,
        "0|0"
    );
    c.close().await.unwrap();

    // A foreign key the backup kept (SQLite enforces them only when asked) is carried over; a new
    // violation is refused.
    let mut c = fresh(target.clone()).await;
    let e = restore(
        &sink,
        SqliteTarget::new(&target).data_only(true).tables(["tags"]),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("row(s) of table tags have no matching row in people"),
        "{e}"
    );
    assert_eq!(text(&mut c, "SELECT count(*) || '' FROM tags").await, "0");
    c.close().await.unwrap();

    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn snapshot_before_migrate_then_old_rows_into_the_new_schema() {
    let dir = Dir::new("migrate");
    let migrations = dir.0.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("1_init.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, nickname TEXT);",
    )
    .unwrap();
    let db = dir.0.join("app.db");
    let opts = SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts.clone()).await.unwrap();
    Migrator::new(migrations.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::query("WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 300) INSERT INTO users (name, nickname) SELECT 'u' || n, 'n' || n FROM g")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sink = MemorySink::new();
    let none = dbbackup_sqlite::snapshot_before_migrate(
        &Migrator::new(migrations.as_path()).await.unwrap(),
        &db,
        Arc::new(sink.clone()),
        |b| b,
    )
    .await
    .unwrap();
    assert!(none.is_none(), "nothing pending: no backup");
    std::fs::write(
        migrations.join("2_emails.sql"),
        "ALTER TABLE users DROP COLUMN nickname; ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT 'none';",
    )
    .unwrap();
    let migrator = Migrator::new(migrations.as_path()).await.unwrap();
    let report =
        dbbackup_sqlite::snapshot_before_migrate(&migrator, &db, Arc::new(sink.clone()), |b| {
            b.label("by", "test")
        })
        .await
        .unwrap()
        .expect("a migration is pending");
    let labels = &report.manifest.labels;
    assert_eq!(labels["reason"], "pre-migration");
    assert_eq!(labels["migration.current"], "1");
    assert_eq!(labels["migration.target"], "2");
    assert_eq!(labels["by"], "test");
    // Re-initialise from the migrations, then the old rows into the new schema.
    let fresh = dir.0.join("fresh.db");
    let pool = sqlx::SqlitePool::connect_with(opts.filename(&fresh))
        .await
        .unwrap();
    migrator.run(&pool).await.unwrap();
    pool.close().await;
    let restored = restore(
        &sink,
        SqliteTarget::new(&fresh)
            .data_only(true)
            .exclude_tables([dbbackup_sqlite::MIGRATIONS_TABLE]),
    )
    .await
    .unwrap();
    assert!(
        restored.warnings.iter().any(|w| w.contains("nickname")),
        "{:?}",
        restored.warnings
    );
    let mut c = connect(&fresh, false).await;
    assert_eq!(text(&mut c, "SELECT count(*) || '|' || min(email) || '|' || (SELECT group_concat(version) FROM _sqlx_migrations) FROM users").await, "300|none|1,2");
}
