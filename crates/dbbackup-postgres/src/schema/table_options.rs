//! Table and column options pg_dump's `dumpTableSchema` writes as `ALTER TABLE` after the
//! `CREATE TABLE`, and trigger enable states (`dumpTrigger`): replica identity, `CLUSTER ON`,
//! column statistics targets, storage, attribute options and (PostgreSQL 14+) compression, and
//! `DISABLE` / `ENABLE ALWAYS` / `ENABLE REPLICA TRIGGER`. All go to post-data, after the indexes
//! and triggers they name.

use super::*;

/// `ALTER TABLE ONLY s.t`, or `ALTER MATERIALIZED VIEW s.t` (which takes no `ONLY`).
fn relation(s: &str, t: &str, matview: bool) -> String {
    if matview {
        format!("ALTER MATERIALIZED VIEW {}", q(s, t))
    } else {
        format!("ALTER TABLE ONLY {}", q(s, t))
    }
}

pub(super) async fn read_table_options(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    filter: &Filter,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
    major: i32,
) -> Result<()> {
    let mut out = Vec::new();
    let keep = |s: &str, t: &str| in_schema(s) && filter.table_included(s, t);
    // Replica identity other than the default, and the clustering index.
    let sql = format!(
        "SELECT n.nspname, c.relname, c.relreplident::text,
                (SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid AND x.indisreplident),
                (SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid AND x.indisclustered),
                c.relkind = 'm'
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'm') AND {} ORDER BY n.nspname, c.relname",
        not_ext("c.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "table options"))?
    {
        let (s, t, ident_kind, matview): (String, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(5));
        if !keep(&s, &t) {
            continue;
        }
        let relation = relation(&s, &t, matview);
        let replica = match (ident_kind.as_str(), r.get::<Option<String>, _>(3)) {
            ("f", _) => Some("FULL".to_owned()),
            ("n", _) => Some("NOTHING".to_owned()),
            ("i", Some(index)) => Some(format!("USING INDEX {}", ident(&index))),
            _ => None,
        };
        if let Some(replica) = replica {
            out.push(Statement::new(
                "replica identity",
                format!("{s}.{t}"),
                format!("ALTER TABLE ONLY {} REPLICA IDENTITY {replica}", q(&s, &t)),
            ));
        }
        if let Some(index) = r.get::<Option<String>, _>(4) {
            out.push(Statement::new(
                "cluster",
                format!("{s}.{t}"),
                format!("{relation} CLUSTER ON {}", ident(&index)),
            ));
        }
    }
    // Column options that differ from the default.
    let compression = if major >= 14 {
        "a.attcompression::text"
    } else {
        "''"
    };
    let sql = format!(
        "SELECT n.nspname, c.relname, a.attname, coalesce(a.attstattarget::int, -1),
                CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text END,
                array_to_string(a.attoptions, ', '), {compression}, c.relkind = 'm'
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_type t ON t.oid = a.atttypid
         WHERE c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND a.attislocal AND {}
         ORDER BY n.nspname, c.relname, a.attnum",
        not_ext("c.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "column options"))?
    {
        let (s, t, col, target): (String, String, String, i32) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !keep(&s, &t) {
            continue;
        }
        let alter = format!(
            "{} ALTER COLUMN {}",
            relation(&s, &t, r.get(7)),
            ident(&col)
        );
        let name = format!("{s}.{t}.{col}");
        if target >= 0 {
            out.push(Statement::new(
                "column option",
                &name,
                format!("{alter} SET STATISTICS {target}"),
            ));
        }
        let storage = match r.get::<Option<String>, _>(4).as_deref() {
            Some("p") => Some("PLAIN"),
            Some("e") => Some("EXTERNAL"),
            Some("m") => Some("MAIN"),
            Some("x") => Some("EXTENDED"),
            _ => None,
        };
        if let Some(storage) = storage {
            out.push(Statement::new(
                "column option",
                &name,
                format!("{alter} SET STORAGE {storage}"),
            ));
        }
        if let Some(opts) = r.get::<Option<String>, _>(5).filter(|o| !o.is_empty()) {
            out.push(Statement::new(
                "column option",
                &name,
                format!("{alter} SET ({opts})"),
            ));
        }
        let method = match r.get::<Option<String>, _>(6).as_deref() {
            Some("p") => Some("pglz"),
            Some("l") => Some("lz4"),
            _ => None,
        };
        if let Some(method) = method {
            out.push(Statement::new(
                "column option",
                &name,
                format!("{alter} SET COMPRESSION {method}"),
            ));
        }
    }
    // Triggers not in the default state (`O`: fires in origin and local sessions).
    let sql = format!(
        "SELECT n.nspname, c.relname, t.tgname, t.tgenabled::text
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgenabled <> 'O' AND {} ORDER BY t.oid",
        not_ext("c.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "trigger states"))?
    {
        let (s, t, name, state): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !keep(&s, &t) {
            continue;
        }
        let what = match state.as_str() {
            "D" => "DISABLE TRIGGER",
            "A" => "ENABLE ALWAYS TRIGGER",
            "R" => "ENABLE REPLICA TRIGGER",
            _ => continue,
        };
        out.push(Statement::new(
            "trigger state",
            format!("{s}.{t}.{name}"),
            format!("ALTER TABLE {} {what} {}", q(&s, &t), ident(&name)),
        ));
    }
    cat.post_data.extend(out);
    Ok(())
}
