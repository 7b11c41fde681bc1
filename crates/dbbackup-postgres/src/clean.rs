//! `--clean`: before a restore into an existing database, drop the objects of the backup that the
//! target has, inside the restore's one transaction (as `pg_restore --clean --if-exists` does, but
//! all or nothing). Objects the backup does not have are left alone; one of them that depends on
//! an object being dropped fails the restore (nothing changed) with PostgreSQL's own list of
//! dependents, instead of being dropped by `CASCADE`.

use std::collections::{HashMap, HashSet};

use dbbackup_core::{Error, ErrorKind, Result};
use sqlx::{PgConnection, Row};

use crate::error::pg_error;
use crate::schema::{Statement, OPERATOR_SIG};

/// The kinds of statements `--clean` drops, and how the target's objects of each kind are named
/// (as the backup names them) and dropped. Indexes, constraints, triggers, rules, policies,
/// defaults, comments and privileges go with their table; schemas and extensions are created
/// with IF NOT EXISTS and stay.
fn listing(kind: &str) -> Option<String> {
    let rel = |what: &str, kinds: &str| {
        Some(format!(
            "SELECT n.nspname || '.' || c.relname, format('DROP {what} IF EXISTS %I.%I', n.nspname, c.relname)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ({kinds})"
        ))
    };
    let ty = |what: &str, cascade: &str, cond: &str| {
        Some(format!(
            "SELECT n.nspname || '.' || t.typname, format('DROP {what} IF EXISTS %I.%I{cascade}', n.nspname, t.typname)
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {cond}"
        ))
    };
    let ts = |what: &str, table: &str, name: &str, ns: &str| {
        let id = format!("quote_ident(n.nspname) || '.' || quote_ident(x.{name})");
        Some(format!(
            "SELECT {id}, 'DROP TEXT SEARCH {what} IF EXISTS ' || {id}
             FROM {table} x JOIN pg_namespace n ON n.oid = x.{ns}"
        ))
    };
    match kind {
        "table" => rel("TABLE", "'r', 'p'"),
        "foreign table" => rel("FOREIGN TABLE", "'f'"),
        "view" => rel("VIEW", "'v'"),
        "materialized view" => rel("MATERIALIZED VIEW", "'m'"),
        "sequence" => rel("SEQUENCE", "'S'"),
        "function" | "aggregate" => Some(format!(
            "SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                    format('DROP {} IF EXISTS %I.%I(%s)', n.nspname, p.proname, {})
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind IN ({})",
            if kind == "aggregate" { "AGGREGATE" } else { "ROUTINE" },
            // An aggregate of no arguments is dropped as name(*).
            if kind == "aggregate" {
                "coalesce(nullif(pg_get_function_identity_arguments(p.oid), ''), '*')"
            } else {
                "pg_get_function_identity_arguments(p.oid)"
            },
            if kind == "aggregate" { "'a'" } else { "'f', 'p', 'w'" }
        )),
        "enum type" => ty("TYPE", "", "t.typtype = 'e'"),
        "range type" => ty("TYPE", "", "t.typtype = 'r'"),
        "composite type" => ty(
            "TYPE",
            "",
            "t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'",
        ),
        "domain" => ty("DOMAIN", "", "t.typtype = 'd'"),
        // A base type and its I/O functions depend on each other: pg_dump drops it with CASCADE
        // too (which takes the functions, and anything else using the type, with it).
        "base type" => ty("TYPE", " CASCADE", "t.typtype = 'b'"),
        "collation" => Some(
            "SELECT n.nspname || '.' || c.collname, format('DROP COLLATION IF EXISTS %I.%I', n.nspname, c.collname)
             FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace".into(),
        ),
        "conversion" => Some(
            "SELECT n.nspname || '.' || c.conname, format('DROP CONVERSION IF EXISTS %I.%I', n.nspname, c.conname)
             FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace".into(),
        ),
        "text search parser" => ts("PARSER", "pg_ts_parser", "prsname", "prsnamespace"),
        "text search template" => ts("TEMPLATE", "pg_ts_template", "tmplname", "tmplnamespace"),
        "text search dictionary" => ts("DICTIONARY", "pg_ts_dict", "dictname", "dictnamespace"),
        "text search configuration" => ts("CONFIGURATION", "pg_ts_config", "cfgname", "cfgnamespace"),
        "operator" => Some(format!(
            "SELECT {OPERATOR_SIG}, 'DROP OPERATOR IF EXISTS ' || {OPERATOR_SIG}
             FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace"
        )),
        "operator family" | "operator class" => {
            let (table, name, ns, am, what) = if kind == "operator family" {
                ("pg_opfamily", "opfname", "opfnamespace", "opfmethod", "FAMILY")
            } else {
                ("pg_opclass", "opcname", "opcnamespace", "opcmethod", "CLASS")
            };
            let id = format!(
                "quote_ident(n.nspname) || '.' || quote_ident(x.{name}) || ' USING ' || quote_ident(a.amname)"
            );
            Some(format!(
                "SELECT {id}, 'DROP OPERATOR {what} IF EXISTS ' || {id}
                 FROM {table} x JOIN pg_namespace n ON n.oid = x.{ns} JOIN pg_am a ON a.oid = x.{am}"
            ))
        }
        "cast" => Some(
            "SELECT format_type(castsource, NULL) || ' AS ' || format_type(casttarget, NULL),
                    format('DROP CAST IF EXISTS (%s AS %s)', format_type(castsource, NULL), format_type(casttarget, NULL))
             FROM pg_cast WHERE oid >= 16384".into(),
        ),
        "transform" => Some(
            "SELECT 'FOR ' || format_type(t.trftype, NULL) || ' LANGUAGE ' || l.lanname,
                    format('DROP TRANSFORM IF EXISTS FOR %s LANGUAGE %I', format_type(t.trftype, NULL), l.lanname)
             FROM pg_transform t JOIN pg_language l ON l.oid = t.trflang".into(),
        ),
        "procedural language" => Some(
            "SELECT lanname, format('DROP LANGUAGE IF EXISTS %I', lanname) FROM pg_language".into(),
        ),
        "access method" => Some(
            "SELECT amname, format('DROP ACCESS METHOD IF EXISTS %I', amname) FROM pg_am WHERE oid >= 16384".into(),
        ),
        "foreign data wrapper" => Some(
            "SELECT fdwname, format('DROP FOREIGN DATA WRAPPER IF EXISTS %I', fdwname) FROM pg_foreign_data_wrapper".into(),
        ),
        "foreign server" => Some(
            "SELECT srvname, format('DROP SERVER IF EXISTS %I', srvname) FROM pg_foreign_server".into(),
        ),
        "user mapping" => Some(
            "SELECT CASE WHEN umuser = 0 THEN 'PUBLIC' ELSE quote_ident(usename) END || ' SERVER ' || srvname,
                    format('DROP USER MAPPING IF EXISTS FOR %s SERVER %I',
                           CASE WHEN umuser = 0 THEN 'PUBLIC' ELSE quote_ident(usename) END, srvname)
             FROM pg_user_mappings".into(),
        ),
        // Post-data objects of their own (the rest go with their tables).
        "publication" => Some(
            "SELECT pubname, format('DROP PUBLICATION IF EXISTS %I', pubname) FROM pg_publication".into(),
        ),
        // Never touching a publisher: disabled and detached from its slot, then dropped.
        "subscription" => Some(
            "SELECT subname, format('ALTER SUBSCRIPTION %1$I DISABLE; ALTER SUBSCRIPTION %1$I SET (slot_name = NONE); DROP SUBSCRIPTION IF EXISTS %1$I', subname)
             FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())".into(),
        ),
        "event trigger" => Some(
            "SELECT evtname, format('DROP EVENT TRIGGER IF EXISTS %I', evtname) FROM pg_event_trigger".into(),
        ),
        _ => None,
    }
}

/// Drops the objects of `stmts` (the backup's pre- or post-data statements) that the target has,
/// in the reverse of their creation order, after the foreign keys of the backup's tables.
/// Returns how many objects were dropped, and the event triggers dropped because they call a
/// function of the backup.
pub(crate) async fn drop_backup_objects(
    conn: &mut PgConnection,
    stmts: &[Statement],
) -> Result<(usize, Vec<String>)> {
    let fail = |what: &str| {
        let what = what.to_owned();
        move |e| {
            let err = pg_error(e, ErrorKind::Target, &what);
            Error::new(
                err.kind(),
                format!(
                    "{} (--clean: nothing was changed, the restore is one transaction)",
                    err.message()
                ),
            )
        }
    };
    let kinds: HashSet<&str> = stmts.iter().map(|s| s.kind.as_str()).collect();
    let mut present: HashMap<(String, String), String> = HashMap::new();
    for kind in kinds {
        let Some(sql) = listing(kind) else { continue };
        for r in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await
            .map_err(fail(&format!("cannot list the target's {kind} objects")))?
        {
            present.insert((kind.to_owned(), r.get(0)), r.get(1));
        }
    }
    // Foreign keys of the backup's tables first: otherwise a table referenced by one created
    // before it could not be dropped.
    let tables: HashSet<&str> = stmts
        .iter()
        .filter(|s| s.kind == "table")
        .map(|s| s.name.as_str())
        .collect();
    let fks = sqlx::query(
        "SELECT n.nspname || '.' || c.relname, format('ALTER TABLE %I.%I DROP CONSTRAINT %I', n.nspname, c.relname, k.conname)
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f' AND k.conparentid = 0",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(fail("cannot list the target's foreign keys"))?;
    for r in fks {
        let (table, sql): (String, String) = (r.get(0), r.get(1));
        if tables.contains(table.as_str())
            && present.contains_key(&("table".to_owned(), table.clone()))
        {
            run(
                conn,
                &sql,
                &format!("cannot drop a foreign key of table {table}"),
            )
            .await?;
        }
    }
    // Event triggers are post-data, but block dropping their functions: one on a function of
    // the backup is dropped now, and post-data must re-create it (see `check_event_triggers`).
    let mut event_triggers = Vec::new();
    if stmts.iter().any(|s| s.kind == "function") {
        for r in sqlx::query(
            "SELECT e.evtname, n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                    format('DROP EVENT TRIGGER %I', e.evtname)
             FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid JOIN pg_namespace n ON n.oid = p.pronamespace",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(fail("cannot list the target's event triggers"))?
        {
            let (name, function, sql): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            if present.contains_key(&("function".to_owned(), function)) {
                run(conn, &sql, &format!("cannot drop event trigger {name}")).await?;
                event_triggers.push(name);
            }
        }
    }
    // The reverse of creation order drops most dependents first; what still has dependents
    // (an index of a table on an operator class created after it, a function on a table's row
    // type) waits for the next round, each drop under a savepoint. A round without progress means
    // an object the backup does not have depends on one: that error is the restore's.
    let mut pending: Vec<(&Statement, String)> = stmts
        .iter()
        .rev()
        .filter_map(|s| {
            present
                .remove(&(s.kind.clone(), s.name.clone()))
                .map(|sql| (s, sql))
        })
        .collect();
    let mut dropped = 0;
    while !pending.is_empty() {
        let before = pending.len();
        let mut waiting = Vec::new();
        let mut last = None;
        for (s, sql) in pending {
            run(conn, "SAVEPOINT dbbackup_clean", "cannot set a savepoint").await?;
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut *conn)
                .await;
            match done {
                Ok(_) => {
                    run(
                        conn,
                        "RELEASE SAVEPOINT dbbackup_clean",
                        "cannot release a savepoint",
                    )
                    .await?;
                    dropped += 1;
                }
                // dependent_objects_still_exist
                Err(e)
                    if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("2BP01") =>
                {
                    run(
                        conn,
                        "ROLLBACK TO SAVEPOINT dbbackup_clean",
                        "cannot roll back to a savepoint",
                    )
                    .await?;
                    last = Some(failed(
                        e,
                        &format!("cannot drop {} {}", s.kind, s.name),
                        &sql,
                    ));
                    waiting.push((s, sql));
                }
                Err(e) => {
                    return Err(failed(
                        e,
                        &format!("cannot drop {} {}", s.kind, s.name),
                        &sql,
                    ))
                }
            }
        }
        if waiting.len() == before {
            return Err(last.expect("a failed drop"));
        }
        pending = waiting;
    }
    Ok((dropped + event_triggers.len(), event_triggers))
}

/// The event triggers dropped with the pre-data must be the backup's own (re-created by its
/// post-data `stmts`); one of the target's own is never dropped: the restore fails instead.
pub(crate) fn check_event_triggers(dropped: &[String], stmts: &[Statement]) -> Result<()> {
    for name in dropped {
        if !stmts
            .iter()
            .any(|s| s.kind == "event trigger" && &s.name == name)
        {
            return Err(Error::new(
                ErrorKind::Target,
                format!(
                    "event trigger {name} of the target calls a function of the backup but is not in the \
                     backup; --clean does not drop it: drop it first (nothing was changed, the \
                     restore is one transaction)"
                ),
            ));
        }
    }
    Ok(())
}

async fn run(conn: &mut PgConnection, sql: &str, what: &str) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| failed(e, what, sql))
}

fn failed(e: sqlx::Error, what: &str, sql: &str) -> Error {
    let err = pg_error(e, ErrorKind::Target, what);
    Error::new(
        err.kind(),
        format!(
            "{} (--clean drops only the backup's objects, never with CASCADE: drop or move what \
             depends on it first; nothing was changed, the restore is one transaction)\n  \
             statement: {sql}",
            err.message()
        ),
    )
}
