//! Data-only restore into an existing SQLite database: the backed-up file (already restored
//! aside and integrity-checked) is attached, and its rows are copied by column name into the
//! tables of the target, in one transaction.
//!
//! A column or table the target no longer has is reported (or fails the restore when strict); a
//! new column takes its default; generated columns are computed again; rowids of rowid tables
//! are kept; `AUTOINCREMENT` counters move past the restored rows (and never back); the target's
//! triggers do not fire for the copied rows (they are dropped and re-created inside the
//! transaction, as a row copy is not an application write); foreign keys are checked at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use dbbackup_core::{check_patterns_match, table_pattern_matches, Error, ErrorKind, Result};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

use crate::error::sqlite_error;

/// The name the backed-up file is attached under.
const BACKUP: &str = "dbbackup_backup";

/// What to copy.
#[derive(Debug, Clone, Default)]
pub(crate) struct CopyOptions {
    /// Only the tables matching one of these patterns (all when empty).
    pub(crate) tables: Vec<String>,
    /// Never the tables matching one of these patterns.
    pub(crate) exclude: Vec<String>,
    /// Fail instead of reporting a column or table the target no longer has.
    pub(crate) strict: bool,
}

/// What was copied.
#[derive(Debug, Default)]
pub(crate) struct Copied {
    pub(crate) rows: u64,
    pub(crate) warnings: Vec<String>,
}

/// A table of one side: its name, kind (`table` / `virtual`), visible columns, generated
/// columns, and whether it has rowids of its own (not aliased by an `INTEGER PRIMARY KEY`).
#[derive(Debug)]
struct Table {
    name: String,
    kind: String,
    columns: Vec<String>,
    generated: BTreeSet<String>,
    own_rowid: bool,
    sql: String,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Copies the rows of the database at `snapshot` into the existing database at `target`.
pub(crate) async fn copy_rows(target: &Path, snapshot: &Path, o: &CopyOptions) -> Result<Copied> {
    let err = |doing: &str| {
        let doing = doing.to_owned();
        move |e: sqlx::Error| sqlite_error(e, ErrorKind::Target, &doing, target)
    };
    let mut conn = SqliteConnectOptions::new()
        .filename(target)
        // Checked at the end instead, so table order does not matter.
        .foreign_keys(false)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(err("cannot open the restore target"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ATTACH DATABASE ?1 AS {BACKUP}"
    )))
    .bind(snapshot.to_string_lossy().into_owned())
    .execute(&mut conn)
    .await
    .map_err(err("cannot attach the restored backup to"))?;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .map_err(err("cannot start a write transaction on"))?;
    let copied = copy_in_transaction(&mut conn, target, o).await;
    let end = if copied.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = sqlx::query(end).execute(&mut conn).await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DETACH DATABASE {BACKUP}")))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    let copied = copied?;
    ended.map_err(err("cannot commit the restored rows into"))?;
    Ok(copied)
}

async fn copy_in_transaction(
    conn: &mut SqliteConnection,
    target: &Path,
    o: &CopyOptions,
) -> Result<Copied> {
    let unchanged = "nothing was changed";
    let old = tables(conn, BACKUP, target).await?;
    let new: BTreeMap<String, Table> = tables(conn, "main", target)
        .await?
        .into_iter()
        .map(|t| (key(&t.name), t))
        .collect();
    let names: Vec<String> = old.iter().map(|t| t.name.clone()).collect();
    check_patterns_match(
        "--tables pattern",
        &o.tables,
        &names,
        "the backup's tables are those of the SQLite file",
    )?;
    let wanted = |name: &str| {
        (o.tables.is_empty() || o.tables.iter().any(|p| table_pattern_matches(p, name)))
            && !o.exclude.iter().any(|p| table_pattern_matches(p, name))
    };
    let mut out = Copied::default();
    let mut plan = Vec::new();
    for t in old.iter().filter(|t| wanted(&t.name)) {
        let Some(n) = new.get(&key(&t.name)) else {
            let msg = format!(
                "table {} no longer exists in the target; its rows were not restored",
                t.name
            );
            if o.strict {
                return Err(Error::new(
                    ErrorKind::Target,
                    format!("{msg} ({unchanged})"),
                ));
            }
            out.warnings.push(msg);
            continue;
        };
        let present: BTreeSet<String> = n.columns.iter().map(|c| key(c)).collect();
        let computed: BTreeSet<String> = n.generated.iter().map(|c| key(c)).collect();
        let keep: Vec<&String> = t
            .columns
            .iter()
            .filter(|c| present.contains(&key(c)))
            .collect();
        let dropped: Vec<&str> = t
            .columns
            .iter()
            .filter(|c| !present.contains(&key(c)) && !computed.contains(&key(c)))
            .map(String::as_str)
            .collect();
        if !dropped.is_empty() {
            let msg = format!(
                "table {}: backed-up column(s) {} no longer exist in the target; their values were not restored",
                t.name,
                dropped.join(", ")
            );
            if o.strict {
                return Err(Error::new(
                    ErrorKind::Target,
                    format!("{msg} ({unchanged})"),
                ));
            }
            out.warnings.push(msg);
        }
        // Rowids are kept where both sides have their own (FTS content tables, apps that use
        // them); a table with an INTEGER PRIMARY KEY keeps them through that column.
        let fts = |s: &str| s.to_ascii_lowercase().contains("using fts");
        let rowid = (t.own_rowid && n.own_rowid) || (fts(&t.sql) && fts(&n.sql));
        if keep.is_empty() && !rowid {
            if !t.columns.is_empty() {
                return Err(Error::new(
                    ErrorKind::Target,
                    format!(
                        "table {}: none of the backed-up columns exist in the target, so its rows cannot be restored ({unchanged})",
                        t.name
                    ),
                ));
            }
            continue;
        }
        // The same columns in the same order, none generated, rowids carried by a column (or
        // none): `INSERT ... SELECT *`, which SQLite copies record by record (its transfer
        // optimisation, about twice as fast) instead of row by row.
        let same = t.kind == "table"
            && n.kind == "table"
            && !rowid
            && t.generated.is_empty()
            && n.generated.is_empty()
            && t.columns.len() == n.columns.len()
            && t.columns
                .iter()
                .zip(&n.columns)
                .all(|(a, b)| key(a) == key(b));
        if same {
            plan.push((t, n, None));
            continue;
        }
        let mut cols: Vec<String> = keep.iter().map(|c| quote(c)).collect();
        if rowid {
            cols.insert(0, "rowid".into());
        }
        plan.push((t, n, Some(cols.join(", "))));
    }

    // The target's triggers on the copied tables would fire for every copied row (audit rows,
    // updated_at): dropped here and re-created before the commit, in the same transaction.
    let copied: BTreeSet<String> = plan.iter().map(|(_, n, _)| key(&n.name)).collect();
    let triggers: Vec<(String, String)> = sqlx::query(
        "SELECT name, sql, tbl_name FROM main.sqlite_schema WHERE type = 'trigger' AND sql IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| sqlite_error(e, ErrorKind::Target, "cannot read the triggers of", target))?
    .into_iter()
    .filter(|r| copied.contains(&key(&r.get::<String, _>(2))))
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    for (name, _) in &triggers {
        exec(conn, &format!("DROP TRIGGER main.{}", quote(name)), target).await?;
    }
    for (t, n, cols) in &plan {
        let sql = match cols {
            Some(cols) => format!(
                "INSERT INTO main.{} ({cols}) SELECT {cols} FROM {BACKUP}.{}",
                quote(&n.name),
                quote(&t.name)
            ),
            None => format!(
                "INSERT INTO main.{} SELECT * FROM {BACKUP}.{}",
                quote(&n.name),
                quote(&t.name)
            ),
        };
        let done = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await.map_err(|e| {
            Error::new(
                ErrorKind::Target,
                format!(
                    "cannot restore the rows of table {} into {}: {e} ({unchanged}; the restore runs in one transaction)",
                    t.name,
                    target.display()
                ),
            )
            .with_source(e)
        })?;
        out.rows += done.rows_affected();
    }
    for (_, sql) in &triggers {
        exec(conn, sql, target).await?;
    }
    move_sequences(conn, &plan, target).await?;
    check_foreign_keys(conn, &copied, target).await?;
    Ok(out)
}

async fn exec(conn: &mut SqliteConnection, sql: &str, target: &Path) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| sqlite_error(e, ErrorKind::Target, &format!("{sql:?} failed on"), target))
}

/// The tables of `schema` (user tables and virtual tables; shadow tables of virtual tables
/// and SQLite's own are left to their owners).
async fn tables(conn: &mut SqliteConnection, schema: &str, target: &Path) -> Result<Vec<Table>> {
    let read = |e| sqlite_error(e, ErrorKind::Target, "cannot read the tables of", target);
    let rows = sqlx::query(
        "SELECT name, type FROM pragma_table_list WHERE schema = ?1 \
         AND type IN ('table', 'virtual') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(read)?;
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let kind: String = r.get(1);
        let sql: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(sql, '') FROM {schema}.sqlite_schema WHERE type = 'table' AND name = ?1"
        )))
        .bind(&name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(read)?
        .unwrap_or_default();
        let cols = sqlx::query("SELECT name, hidden, type, pk FROM pragma_table_xinfo(?1, ?2)")
            .bind(&name)
            .bind(schema)
            .fetch_all(&mut *conn)
            .await
            .map_err(read)?;
        let mut columns = Vec::new();
        let mut generated = BTreeSet::new();
        let mut pk = Vec::new();
        for c in &cols {
            let col: String = c.get(0);
            let hidden: i64 = c.get(1);
            if c.get::<i64, _>(3) > 0 {
                pk.push(c.get::<String, _>(2));
            }
            match hidden {
                0 => columns.push(col),
                2 | 3 => {
                    generated.insert(col);
                }
                _ => {}
            }
        }
        let tail = sql
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase()
            .replace(char::is_whitespace, "");
        let without_rowid = tail.contains("WITHOUTROWID");
        let aliased = pk.len() == 1 && pk[0].eq_ignore_ascii_case("INTEGER");
        let named_rowid = columns
            .iter()
            .any(|c| ["rowid", "_rowid_", "oid"].contains(&key(c).as_str()));
        out.push(Table {
            own_rowid: kind == "table" && !without_rowid && !aliased && !named_rowid,
            name,
            kind,
            columns,
            generated,
            sql,
        });
    }
    Ok(out)
}

/// `AUTOINCREMENT` counters: at least the backup's, so ids deleted before the backup are not
/// handed out again.
async fn move_sequences(
    conn: &mut SqliteConnection,
    plan: &[(&Table, &Table, Option<String>)],
    target: &Path,
) -> Result<()> {
    let has = |schema: &str| {
        format!("SELECT count(*) FROM {schema}.sqlite_schema WHERE name = 'sqlite_sequence'")
    };
    let read = |e| {
        sqlite_error(
            e,
            ErrorKind::Target,
            "cannot read sqlite_sequence of",
            target,
        )
    };
    let old: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(has(BACKUP)))
        .fetch_one(&mut *conn)
        .await
        .map_err(read)?;
    let new: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(has("main")))
        .fetch_one(&mut *conn)
        .await
        .map_err(read)?;
    if old == 0 || new == 0 {
        return Ok(());
    }
    for (t, n, _) in plan {
        if n.kind != "table" || !n.sql.to_ascii_uppercase().contains("AUTOINCREMENT") {
            continue;
        }
        let seq: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT seq FROM {BACKUP}.sqlite_sequence WHERE name = ?1"
        )))
        .bind(&t.name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(read)?;
        let Some(seq) = seq else { continue };
        let updated = sqlx::query(
            "UPDATE main.sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1 COLLATE NOCASE",
        )
        .bind(&n.name)
        .bind(seq)
        .execute(&mut *conn)
        .await
        .map_err(read)?;
        if updated.rows_affected() == 0 {
            sqlx::query("INSERT INTO main.sqlite_sequence (name, seq) VALUES (?1, ?2)")
                .bind(&n.name)
                .bind(seq)
                .execute(&mut *conn)
                .await
                .map_err(read)?;
        }
    }
    Ok(())
}

/// Foreign keys of the copied tables, checked once every row is in: a violation the backup did
/// not have fails the restore; one it already had (SQLite enforces foreign keys only where the
/// application asks) is carried over, as the file restore would.
async fn check_foreign_keys(
    conn: &mut SqliteConnection,
    copied: &BTreeSet<String>,
    target: &Path,
) -> Result<()> {
    let count = |schema: &str| {
        format!("SELECT \"table\", parent, count(*) FROM pragma_foreign_key_check(NULL, '{schema}') GROUP BY 1, 2")
    };
    let read = |e| {
        sqlite_error(
            e,
            ErrorKind::Target,
            "cannot check the foreign keys of",
            target,
        )
    };
    let before: BTreeMap<(String, String), i64> = sqlx::query(sqlx::AssertSqlSafe(count(BACKUP)))
        .fetch_all(&mut *conn)
        .await
        .map_err(read)?
        .into_iter()
        .map(|r| {
            (
                (key(&r.get::<String, _>(0)), key(&r.get::<String, _>(1))),
                r.get(2),
            )
        })
        .collect();
    let after = sqlx::query(sqlx::AssertSqlSafe(count("main")))
        .fetch_all(&mut *conn)
        .await
        .map_err(read)?;
    for r in after {
        let (table, parent, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        let had = before
            .get(&(key(&table), key(&parent)))
            .copied()
            .unwrap_or(0);
        if n > had && (copied.contains(&key(&table)) || copied.contains(&key(&parent))) {
            return Err(Error::new(
                ErrorKind::Target,
                format!(
                    "after the copy, {n} row(s) of table {table} have no matching row in {parent} (PRAGMA foreign_key_check; the backup had {had}); nothing was changed: restore {parent}'s rows too, or fix the new schema's foreign key"
                ),
            ));
        }
    }
    Ok(())
}
