//! Reading the catalog and turning it into DDL, with the server's own deparsers
//! (`pg_get_functiondef`, `pg_get_indexdef`, `pg_get_constraintdef`, `pg_get_viewdef`,
//! `format_type`, `pg_get_expr`, `pg_get_triggerdef`, `pg_get_partkeydef`).
//!
//! The result is two ordered lists of [`Statement`]s: pre-data (before rows are loaded) and
//! post-data (indexes, keys, foreign keys, triggers, sequence values, materialized view refreshes),
//! plus the tables whose rows are copied, and warnings naming what is not backed up.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dbbackup_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::config::Filter;

pub use dbbackup_core::statements::Statement;

/// A table whose rows are backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableData {
    /// Schema.
    pub schema: String,
    /// Table.
    pub name: String,
    /// Columns in COPY order (generated columns excluded).
    pub columns: Vec<String>,
    /// Estimated rows (`reltuples`), for ordering big tables first.
    pub estimated_rows: i64,
    /// Size in blocks when the backup started (for splitting big tables).
    pub pages: i64,
}

impl TableData {
    /// `"schema"."table"`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }
    /// `schema.table`, as patterns match it.
    pub fn plain(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// What the catalog holds, ready to back up.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Before data.
    pub pre_data: Vec<Statement>,
    /// After data.
    pub post_data: Vec<Statement>,
    /// Tables with rows.
    pub tables: Vec<TableData>,
    /// What is not backed up, by name.
    pub warnings: Vec<String>,
}

/// Quotes an identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes a string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn q(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

fn catalog_err(e: sqlx::Error, what: &str) -> Error {
    Error::new(
        ErrorKind::Source,
        format!("reading {what} from the catalog failed: {e}"),
    )
}

async fn rows(conn: &mut PgConnection, sql: &'static str, what: &str) -> Result<Vec<PgRow>> {
    sqlx::query(sql)
        .fetch_all(conn)
        .await
        .map_err(|e| catalog_err(e, what))
}

/// Objects that belong to an extension are created by `CREATE EXTENSION`, never by us.
const NOT_EXTENSION: &str = "NOT EXISTS (SELECT 1 FROM pg_depend ext_dep WHERE ext_dep.objid = {oid} AND ext_dep.deptype = 'e')";

fn not_ext(oid_expr: &str) -> String {
    NOT_EXTENSION.replace("{oid}", oid_expr)
}

/// Reads everything selected by `filter`.
///
/// # Errors
/// [`ErrorKind::Source`] when a catalog query fails.
pub async fn read(conn: &mut PgConnection, filter: &Filter, privileges: bool) -> Result<Catalog> {
    let mut cat = Catalog::default();
    let major: i32 =
        sqlx::query_scalar("SELECT current_setting('server_version_num')::int / 10000")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, "the server version"))?;

    // Schemas.
    let schemas: Vec<(u32, String)> = rows(
        conn,
        "SELECT n.oid::int8, n.nspname FROM pg_namespace n
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
           AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = n.oid AND d.deptype = 'e')
         ORDER BY n.nspname",
        "schemas",
    )
    .await?
    .iter()
    .map(|r| (r.get::<i64, _>(0) as u32, r.get::<String, _>(1)))
    .filter(|(_, s)| filter.schema_included(s))
    .collect();
    let schema_set: BTreeSet<String> = schemas.iter().map(|(_, s)| s.clone()).collect();
    let in_schema = |s: &str| schema_set.contains(s);
    for (_, s) in &schemas {
        cat.pre_data.push(Statement::new(
            "schema",
            s,
            format!("CREATE SCHEMA IF NOT EXISTS {}", ident(s)),
        ));
    }

    // Extensions.
    for r in rows(
        conn,
        "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname <> 'plpgsql' ORDER BY e.oid",
        "extensions",
    )
    .await?
    {
        let (name, schema): (String, String) = (r.get(0), r.get(1));
        cat.pre_data.push(Statement::new(
            "extension",
            &name,
            format!("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}", ident(&name), ident(&schema)),
        ));
    }

    read_types(conn, &mut cat, &in_schema, major).await?;
    read_sequences(conn, &mut cat, &in_schema).await?;
    let functions = read_functions(conn, &in_schema).await?;
    let (early, late): (Vec<_>, Vec<_>) = functions.into_iter().partition(|f| !f.late);
    for f in early {
        cat.pre_data.push(f.stmt);
    }
    read_tables(conn, &mut cat, filter, &in_schema).await?;
    for f in late {
        cat.pre_data.push(f.stmt);
    }
    read_views(conn, &mut cat, &in_schema).await?;
    read_post_data(conn, &mut cat, filter, &in_schema).await?;
    read_comments(conn, &mut cat, &in_schema).await?;
    if privileges {
        read_privileges(conn, &mut cat, &in_schema).await?;
    }
    report_unsupported(conn, &mut cat, &in_schema).await?;
    Ok(cat)
}

async fn read_types(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
    major: i32,
) -> Result<()> {
    // Enums.
    let sql = format!(
        "SELECT n.nspname, t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
         WHERE {} GROUP BY t.oid, n.nspname, t.typname ORDER BY t.oid",
        not_ext("t.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "enums"))?
    {
        let (s, n, labels): (String, String, Vec<String>) = (r.get(0), r.get(1), r.get(2));
        if !in_schema(&s) {
            continue;
        }
        let labels: Vec<String> = labels.iter().map(|l| literal(l)).collect();
        cat.pre_data.push(Statement::new(
            "enum type",
            format!("{s}.{n}"),
            format!("CREATE TYPE {} AS ENUM ({})", q(&s, &n), labels.join(", ")),
        ));
    }
    // Ranges.
    let multirange = if major >= 14 {
        "(SELECT format_type(r.rngmultitypid, NULL))"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT n.nspname, t.typname, format_type(r.rngsubtype, NULL),
                CASE WHEN r.rngsubdiff <> 0 THEN r.rngsubdiff::regproc::text END,
                CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> (SELECT typcollation FROM pg_type WHERE oid = r.rngsubtype)
                     THEN (SELECT quote_ident(nspname) || '.' || quote_ident(collname) FROM pg_collation c JOIN pg_namespace cn ON cn.oid = c.collnamespace WHERE c.oid = r.rngcollation) END,
                {multirange}
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_range r ON r.rngtypid = t.oid
         WHERE {} ORDER BY t.oid",
        not_ext("t.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "range types"))?
    {
        let (s, n, sub): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if !in_schema(&s) {
            continue;
        }
        let mut opts = vec![format!("SUBTYPE = {sub}")];
        if let Some(d) = r.get::<Option<String>, _>(3) {
            opts.push(format!("SUBTYPE_DIFF = {d}"));
        }
        if let Some(c) = r.get::<Option<String>, _>(4) {
            opts.push(format!("COLLATION = {c}"));
        }
        if let Some(m) = r.get::<Option<String>, _>(5) {
            opts.push(format!("MULTIRANGE_TYPE_NAME = {m}"));
        }
        cat.pre_data.push(Statement::new(
            "range type",
            format!("{s}.{n}"),
            format!("CREATE TYPE {} AS RANGE ({})", q(&s, &n), opts.join(", ")),
        ));
    }
    // Domains and composite types, in creation (OID) order so one can build on another.
    let sql = format!(
        "SELECT t.oid::int8, n.nspname, t.typname, t.typtype::text,
                format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
                CASE WHEN t.typcollation <> 0 AND t.typcollation <> (SELECT typcollation FROM pg_type WHERE oid = t.typbasetype)
                     THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(c.collname) FROM pg_collation c JOIN pg_namespace cn ON cn.oid = c.collnamespace WHERE c.oid = t.typcollation) END
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE (t.typtype = 'd' OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
           AND {} ORDER BY t.oid",
        not_ext("t.oid")
    );
    let types = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "domains and composite types"))?;
    for r in types {
        let (oid, s, n, kind): (i64, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !in_schema(&s) {
            continue;
        }
        if kind == "d" {
            let mut sql = format!("CREATE DOMAIN {} AS {}", q(&s, &n), r.get::<String, _>(4));
            if let Some(c) = r.get::<Option<String>, _>(7) {
                sql.push_str(&format!(" COLLATE {c}"));
            }
            if let Some(d) = r.get::<Option<String>, _>(6) {
                sql.push_str(&format!(" DEFAULT {d}"));
            }
            if r.get::<bool, _>(5) {
                sql.push_str(" NOT NULL");
            }
            let checks = sqlx::query(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contypid = $1::int8::oid AND contype = 'c' ORDER BY conname",
            )
            .bind(oid)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, "domain constraints"))?;
            for c in checks {
                sql.push_str(&format!(
                    " CONSTRAINT {} {}",
                    ident(&c.get::<String, _>(0)),
                    c.get::<String, _>(1)
                ));
            }
            cat.pre_data
                .push(Statement::new("domain", format!("{s}.{n}"), sql));
        } else {
            let attrs = sqlx::query(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                        CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid)
                             THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(c.collname) FROM pg_collation c JOIN pg_namespace cn ON cn.oid = c.collnamespace WHERE c.oid = a.attcollation) END
                 FROM pg_attribute a JOIN pg_type t ON t.typrelid = a.attrelid
                 WHERE t.oid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            )
            .bind(oid)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, "composite type attributes"))?;
            let cols: Vec<String> = attrs
                .iter()
                .map(|a| {
                    let mut c = format!(
                        "{} {}",
                        ident(&a.get::<String, _>(0)),
                        a.get::<String, _>(1)
                    );
                    if let Some(coll) = a.get::<Option<String>, _>(2) {
                        c.push_str(&format!(" COLLATE {coll}"));
                    }
                    c
                })
                .collect();
            cat.pre_data.push(Statement::new(
                "composite type",
                format!("{s}.{n}"),
                format!("CREATE TYPE {} AS ({})", q(&s, &n), cols.join(", ")),
            ));
        }
    }
    Ok(())
}

async fn read_sequences(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    // Sequences behind identity columns are created with their table.
    let sql = format!(
        "SELECT s.schemaname::text, s.sequencename::text, s.data_type::regtype::text, s.start_value, s.min_value,
                s.max_value, s.increment_by, s.cycle, s.cache_size, s.last_value
         FROM pg_sequences s
         JOIN pg_class c ON c.relname = s.sequencename JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname
         WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i')
           AND {} ORDER BY c.oid",
        not_ext("c.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "sequences"))?
    {
        let (s, n): (String, String) = (r.get(0), r.get(1));
        if !in_schema(&s) {
            continue;
        }
        let (ty, start, min, max, inc, cycle, cache): (String, i64, i64, i64, i64, bool, i64) = (
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
            r.get(7),
            r.get(8),
        );
        cat.pre_data.push(Statement::new(
            "sequence",
            format!("{s}.{n}"),
            format!(
                "CREATE SEQUENCE {} AS {ty} INCREMENT BY {inc} MINVALUE {min} MAXVALUE {max} START WITH {start} CACHE {cache}{}",
                q(&s, &n),
                if cycle { " CYCLE" } else { " NO CYCLE" }
            ),
        ));
        let last: Option<i64> = r.get(9);
        let (value, called) = match last {
            Some(v) => (v, true),
            None => (start, false),
        };
        cat.post_data.push(Statement::new(
            "sequence value",
            format!("{s}.{n}"),
            format!(
                "SELECT pg_catalog.setval({}, {value}, {called})",
                literal(&q(&s, &n))
            ),
        ));
    }
    // Sequences owned by a column (serial).
    let sql = format!(
        "SELECT sn.nspname, s.relname, tn.nspname, t.relname, a.attname
         FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         JOIN pg_namespace sn ON sn.oid = s.relnamespace
         JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
         WHERE d.deptype = 'a' AND d.classid = 'pg_class'::regclass AND {} ORDER BY s.oid",
        not_ext("s.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "sequence ownership"))?
    {
        let (ss, sn, ts, tn, col): (String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !in_schema(&ss) || !in_schema(&ts) {
            continue;
        }
        cat.post_data.push(Statement::new(
            "sequence owner",
            format!("{ss}.{sn}"),
            format!(
                "ALTER SEQUENCE {} OWNED BY {}.{}",
                q(&ss, &sn),
                q(&ts, &tn),
                ident(&col)
            ),
        ));
    }
    Ok(())
}

struct Function {
    stmt: Statement,
    /// Needs tables first (row-type arguments/results, or a pre-parsed `BEGIN ATOMIC` body).
    late: bool,
}

async fn read_functions(
    conn: &mut PgConnection,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<Function>> {
    let sql = format!(
        "SELECT n.nspname, p.proname, pg_get_functiondef(p.oid),
                EXISTS (SELECT 1 FROM pg_type t WHERE t.typrelid <> 0
                          AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) IN ('r','p','v','m','f')
                          AND (t.oid = p.prorettype OR t.oid = ANY (p.proargtypes)))
                  OR (current_setting('server_version_num')::int >= 140000 AND p.prosrc = ''),
                pg_get_function_identity_arguments(p.oid)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prokind IN ('f', 'p')
           AND NOT EXISTS (SELECT 1 FROM pg_depend di WHERE di.objid = p.oid AND di.deptype = 'i')
           AND {} ORDER BY p.oid",
        not_ext("p.oid")
    );
    let mut out = Vec::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "functions"))?
    {
        let (s, n, def, late, args): (String, String, String, bool, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !in_schema(&s) {
            continue;
        }
        out.push(Function {
            stmt: Statement::new("function", format!("{s}.{n}({args})"), def),
            late,
        });
    }
    Ok(out)
}

async fn read_tables(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    filter: &Filter,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    // Parents before children (partitions and inheritance), then by OID.
    let sql = format!(
        "WITH RECURSIVE tree AS (
             SELECT c.oid, 0 AS depth FROM pg_class c
             WHERE c.relkind IN ('r','p') AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
           UNION ALL
             SELECT i.inhrelid, tree.depth + 1 FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid
         )
         SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, c.relpersistence::text, c.relispartition,
                CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
                (SELECT string_agg(quote_ident(pn.nspname) || '.' || quote_ident(pc.relname), ', ' ORDER BY i.inhseqno)
                   FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                   WHERE i.inhrelid = c.oid),
                array_to_string(c.reloptions, ', '), c.reltuples::int8,
                (SELECT max(depth) FROM tree WHERE tree.oid = c.oid),
                pg_relation_size(c.oid) / current_setting('block_size')::int8
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r','p') AND {}
         ORDER BY 12, c.oid",
        not_ext("c.oid")
    );
    let tables = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "tables"))?;
    for r in tables {
        let (oid, s, n, kind, persistence, is_partition): (
            i64,
            String,
            String,
            String,
            String,
            bool,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if !in_schema(&s) || !filter.table_included(&s, &n) {
            continue;
        }
        let partkey: Option<String> = r.get(6);
        let bound: Option<String> = r.get(7);
        let parents: Option<String> = r.get(8);
        let options: Option<String> = r.get(9);
        let estimated: i64 = r.get(10);
        let pages: i64 = r.get(12);

        let cols = sqlx::query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),
                    a.attidentity::text, a.attgenerated::text, a.attislocal,
                    CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid)
                         THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END,
                    pg_get_serial_sequence(quote_ident($2) || '.' || quote_ident($3), a.attname)
             FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
             WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
        .bind(oid)
        .bind(&s)
        .bind(&n)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "columns"))?;

        let mut defs = Vec::new();
        let mut copy_cols = Vec::new();
        for c in &cols {
            let (name, ty, notnull, default, identity, generated, local): (
                String,
                String,
                bool,
                Option<String>,
                String,
                String,
                bool,
            ) = (
                c.get(0),
                c.get(1),
                c.get(2),
                c.get(3),
                c.get(4),
                c.get(5),
                c.get(6),
            );
            if generated.is_empty() {
                copy_cols.push(name.clone());
            }
            // Columns inherited from a parent come with it; partitions take every column from it.
            if !local || is_partition {
                continue;
            }
            let mut d = format!("{} {ty}", ident(&name));
            if let Some(coll) = c.get::<Option<String>, _>(7) {
                d.push_str(&format!(" COLLATE {coll}"));
            }
            if generated == "s" {
                d.push_str(&format!(
                    " GENERATED ALWAYS AS ({}) STORED",
                    default.clone().unwrap_or_default()
                ));
            } else if !identity.is_empty() {
                let seq: Option<String> = c.get(8);
                let how = if identity == "a" {
                    "ALWAYS"
                } else {
                    "BY DEFAULT"
                };
                let mut opts = String::new();
                if let Some(seq) = &seq {
                    if let Some(o) = identity_options(conn, seq).await? {
                        opts = format!(" ({o})");
                    }
                }
                d.push_str(&format!(" GENERATED {how} AS IDENTITY{opts}"));
            } else if let Some(def) = default {
                d.push_str(&format!(" DEFAULT {def}"));
            }
            if notnull {
                d.push_str(" NOT NULL");
            }
            defs.push(d);
        }
        // Local CHECK constraints go inline; NOT VALID ones are added after the data.
        let checks = sqlx::query(
            "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
             WHERE conrelid = $1::int8::oid AND contype = 'c' AND conislocal ORDER BY conname",
        )
        .bind(oid)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "check constraints"))?;
        for c in checks {
            let (cname, def, valid): (String, String, bool) = (c.get(0), c.get(1), c.get(2));
            if valid {
                defs.push(format!("CONSTRAINT {} {def}", ident(&cname)));
            } else {
                cat.post_data.push(Statement::new(
                    "check constraint",
                    format!("{s}.{n}.{cname}"),
                    format!(
                        "ALTER TABLE {} ADD CONSTRAINT {} {def}",
                        q(&s, &n),
                        ident(&cname)
                    ),
                ));
            }
        }

        let unlogged = if persistence == "u" { "UNLOGGED " } else { "" };
        let mut sql = if is_partition {
            let parent = parents.clone().unwrap_or_default();
            let mut sql = format!("CREATE {unlogged}TABLE {} PARTITION OF {parent}", q(&s, &n));
            if !defs.is_empty() {
                sql.push_str(&format!(" ({})", defs.join(", ")));
            }
            sql.push_str(&format!(" {}", bound.unwrap_or_default()));
            sql
        } else {
            let mut sql = format!("CREATE {unlogged}TABLE {} ({})", q(&s, &n), defs.join(", "));
            if let Some(p) = &parents {
                sql.push_str(&format!(" INHERITS ({p})"));
            }
            sql
        };
        if let Some(k) = partkey {
            sql.push_str(&format!(" PARTITION BY {k}"));
        }
        if let Some(o) = options.filter(|o| !o.is_empty()) {
            sql.push_str(&format!(" WITH ({o})"));
        }
        cat.pre_data
            .push(Statement::new("table", format!("{s}.{n}"), sql));
        // Identity sequences: set after the data (last value as of the snapshot).
        for c in &cols {
            let identity: String = c.get(4);
            let seq: Option<String> = c.get(8);
            if let (false, Some(seq)) = (identity.is_empty(), seq) {
                let v: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT CASE WHEN is_called THEN last_value END FROM {seq}"
                )))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| catalog_err(e, "identity sequence values"))?;
                if let Some(v) = v {
                    cat.post_data.push(Statement::new(
                        "sequence value",
                        seq.clone(),
                        format!("SELECT pg_catalog.setval({}, {v}, true)", literal(&seq)),
                    ));
                }
            }
        }
        if kind == "r" {
            cat.tables.push(TableData {
                schema: s.clone(),
                name: n.clone(),
                columns: copy_cols,
                estimated_rows: estimated,
                pages,
            });
        }
    }
    Ok(())
}

/// `SEQUENCE NAME ... START WITH ... ` options of an identity column's sequence.
async fn identity_options(conn: &mut PgConnection, seq: &str) -> Result<Option<String>> {
    let r = sqlx::query(
        "SELECT s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle, format_type(s.seqtypid, NULL)
         FROM pg_sequence s WHERE s.seqrelid = $1::regclass",
    )
    .bind(seq)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "identity sequences"))?;
    Ok(r.map(|r| {
        let (start, inc, min, max, cache, cycle): (i64, i64, i64, i64, i64, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        format!(
            "SEQUENCE NAME {seq} START WITH {start} INCREMENT BY {inc} MINVALUE {min} MAXVALUE {max} CACHE {cache}{}",
            if cycle { " CYCLE" } else { " NO CYCLE" }
        )
    }))
}

async fn read_views(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let sql = format!(
        "SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, pg_get_viewdef(c.oid), array_to_string(c.reloptions, ', '),
                c.relispopulated
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('v', 'm') AND {} ORDER BY c.oid",
        not_ext("c.oid")
    );
    let views = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "views"))?;
    // Dependencies between views, so a view over a view restores after it.
    let deps = rows(
        conn,
        "SELECT DISTINCT r.ev_class::int8, d.refobjid::int8 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class",
        "view dependencies",
    )
    .await?;
    let mut needs: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    for d in deps {
        needs.entry(d.get(0)).or_default().insert(d.get(1));
    }
    let mut pending: BTreeMap<i64, PgRow> =
        views.into_iter().map(|r| (r.get::<i64, _>(0), r)).collect();
    let mut done: BTreeSet<i64> = BTreeSet::new();
    while !pending.is_empty() {
        let ready: Vec<i64> = pending
            .keys()
            .copied()
            .filter(|oid| {
                needs.get(oid).is_none_or(|n| {
                    n.iter()
                        .all(|d| done.contains(d) || !pending.contains_key(d))
                })
            })
            .collect();
        // A cycle cannot happen between views; fall back to OID order if the catalog says so.
        let batch = if ready.is_empty() {
            vec![*pending.keys().next().expect("non-empty")]
        } else {
            ready
        };
        for oid in batch {
            let r = pending.remove(&oid).expect("pending");
            done.insert(oid);
            let (s, n, kind, def): (String, String, String, String) =
                (r.get(1), r.get(2), r.get(3), r.get(4));
            if !in_schema(&s) {
                continue;
            }
            let def = def.trim().trim_end_matches(';').to_owned();
            let options: Option<String> = r.get(5);
            let with = options
                .filter(|o| !o.is_empty())
                .map(|o| format!(" WITH ({o})"))
                .unwrap_or_default();
            if kind == "v" {
                cat.pre_data.push(Statement::new(
                    "view",
                    format!("{s}.{n}"),
                    format!("CREATE VIEW {}{with} AS {def}", q(&s, &n)),
                ));
            } else {
                cat.pre_data.push(Statement::new(
                    "materialized view",
                    format!("{s}.{n}"),
                    format!(
                        "CREATE MATERIALIZED VIEW {}{with} AS {def} WITH NO DATA",
                        q(&s, &n)
                    ),
                ));
                if r.get::<bool, _>(6) {
                    cat.post_data.push(Statement::new(
                        "materialized view data",
                        format!("{s}.{n}"),
                        format!("REFRESH MATERIALIZED VIEW {}", q(&s, &n)),
                    ));
                }
            }
        }
    }
    Ok(())
}

async fn read_post_data(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    filter: &Filter,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let mut refreshes: Vec<Statement> = Vec::new();
    cat.post_data.retain(|s| {
        if s.kind == "materialized view data" {
            refreshes.push(s.clone());
            false
        } else {
            true
        }
    });
    // Primary keys, unique and exclusion constraints (inherited partition copies come with the parent).
    let sql = format!(
        "SELECT n.nspname, c.relname, co.conname, pg_get_constraintdef(co.oid), co.contype::text, c.relkind::text
         FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE co.contype IN ('p', 'u', 'x', 'f') AND co.conparentid = 0 AND {}
         ORDER BY CASE co.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'x' THEN 2 ELSE 3 END, co.oid",
        not_ext("c.oid")
    );
    let constraints = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "constraints"))?;
    let mut keys = Vec::new();
    let mut fks = Vec::new();
    for r in constraints {
        let (s, t, name, def, kind, relkind): (String, String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if !in_schema(&s) || !filter.table_included(&s, &t) {
            continue;
        }
        let only = if relkind == "p" { "" } else { "ONLY " };
        let stmt = Statement::new(
            if kind == "f" {
                "foreign key"
            } else {
                "constraint"
            },
            format!("{s}.{t}.{name}"),
            format!(
                "ALTER TABLE {only}{} ADD CONSTRAINT {} {def}",
                q(&s, &t),
                ident(&name)
            ),
        );
        if kind == "f" {
            fks.push(stmt);
        } else {
            keys.push(stmt);
        }
    }
    // Indexes that no constraint owns; partition children come from their parent index.
    let sql = format!(
        "SELECT n.nspname, t.relname, ic.relname, pg_get_indexdef(i.indexrelid), t.relkind::text
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE t.relkind IN ('r', 'p', 'm')
           AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.contype IN ('p','u','x'))
           AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
           AND {} ORDER BY ic.oid",
        not_ext("t.oid")
    );
    let mut indexes = Vec::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "indexes"))?
    {
        let (s, t, name, def, relkind): (String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !in_schema(&s) || (relkind != "m" && !filter.table_included(&s, &t)) {
            continue;
        }
        // A partitioned index created on the parent alone would leave partitions without one.
        let def = if relkind == "p" {
            def.replacen(" ON ONLY ", " ON ", 1)
        } else {
            def
        };
        indexes.push(Statement::new("index", format!("{s}.{name}"), def));
    }
    // Triggers (not internal, not clones on partitions).
    let sql = format!(
        "SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid)
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {} ORDER BY t.oid",
        not_ext("c.oid")
    );
    let mut triggers = Vec::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "triggers"))?
    {
        let (s, t, name, def): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !in_schema(&s) || !filter.table_included(&s, &t) {
            continue;
        }
        triggers.push(Statement::new("trigger", format!("{s}.{t}.{name}"), def));
    }
    let mut post = Vec::new();
    post.append(&mut keys);
    post.append(&mut indexes);
    post.append(&mut cat.post_data);
    post.append(&mut fks);
    post.append(&mut triggers);
    post.append(&mut refreshes);
    cat.post_data = post;
    Ok(())
}

async fn read_comments(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let sql = format!(
        "SELECT CASE d.classoid
                  WHEN 'pg_class'::regclass THEN
                    CASE WHEN d.objsubid > 0 THEN 'COLUMN ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' ||
                              quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum = d.objsubid))
                         ELSE CASE c.relkind WHEN 'v' THEN 'VIEW ' WHEN 'm' THEN 'MATERIALIZED VIEW ' WHEN 'S' THEN 'SEQUENCE '
                                             WHEN 'i' THEN 'INDEX ' WHEN 'I' THEN 'INDEX ' ELSE 'TABLE ' END
                              || quote_ident(n.nspname) || '.' || quote_ident(c.relname) END
                  WHEN 'pg_namespace'::regclass THEN 'SCHEMA ' || (SELECT quote_ident(nspname) FROM pg_namespace WHERE oid = d.objoid)
                  WHEN 'pg_type'::regclass THEN (SELECT CASE typtype WHEN 'd' THEN 'DOMAIN ' ELSE 'TYPE ' END || format_type(oid, NULL) FROM pg_type WHERE oid = d.objoid)
                  WHEN 'pg_proc'::regclass THEN (SELECT CASE prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || quote_ident(pn.nspname) || '.' || quote_ident(proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')'
                                                 FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace WHERE p.oid = d.objoid)
                  WHEN 'pg_constraint'::regclass THEN (SELECT 'CONSTRAINT ' || quote_ident(conname) || ' ON ' ||
                                                         CASE WHEN contypid <> 0 THEN 'DOMAIN ' || format_type(contypid, NULL) ELSE conrelid::regclass::text END
                                                       FROM pg_constraint WHERE oid = d.objoid)
                  WHEN 'pg_trigger'::regclass THEN (SELECT 'TRIGGER ' || quote_ident(tgname) || ' ON ' || tgrelid::regclass::text FROM pg_trigger WHERE oid = d.objoid)
                END,
                d.description,
                coalesce(n.nspname,
                         (SELECT nspname FROM pg_namespace WHERE oid = d.objoid AND d.classoid = 'pg_namespace'::regclass),
                         (SELECT tn.nspname FROM pg_type t JOIN pg_namespace tn ON tn.oid = t.typnamespace WHERE t.oid = d.objoid AND d.classoid = 'pg_type'::regclass),
                         (SELECT pn.nspname FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace WHERE p.oid = d.objoid AND d.classoid = 'pg_proc'::regclass),
                         (SELECT cn.nspname FROM pg_constraint co JOIN pg_namespace cn ON cn.oid = co.connamespace WHERE co.oid = d.objoid AND d.classoid = 'pg_constraint'::regclass),
                         (SELECT tn.nspname FROM pg_trigger tg JOIN pg_class tc ON tc.oid = tg.tgrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace WHERE tg.oid = d.objoid AND d.classoid = 'pg_trigger'::regclass)),
                d.classoid IN ('pg_constraint'::regclass, 'pg_trigger'::regclass) OR (d.classoid = 'pg_class'::regclass AND c.relkind IN ('i', 'I'))
         FROM pg_description d
         LEFT JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND c.oid = d.objoid
         LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE d.classoid IN ('pg_class'::regclass, 'pg_namespace'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass,
                              'pg_constraint'::regclass, 'pg_trigger'::regclass)
           AND {} ORDER BY d.classoid, d.objoid, d.objsubid",
        not_ext("d.objoid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "comments"))?
    {
        let (target, text, schema, post): (Option<String>, String, Option<String>, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let (Some(target), Some(schema)) = (target, schema) else {
            continue;
        };
        if !in_schema(&schema) || schema == "pg_catalog" {
            continue;
        }
        let stmt = Statement::new(
            "comment",
            target.clone(),
            format!("COMMENT ON {target} IS {}", literal(&text)),
        );
        if post {
            cat.post_data.push(stmt);
        } else {
            cat.pre_data.push(stmt);
        }
    }
    Ok(())
}

/// Owners and privileges of schemas, tables, views, sequences, functions, procedures and types
/// (`ALTER ... OWNER TO`, and for objects with non-default privileges `REVOKE ALL` from PUBLIC and
/// the owner, then one `GRANT` per privilege, so the restored ACL equals the original), plus
/// column privileges. Roles are cluster-wide and not backed up: they must exist on the target.
async fn read_privileges(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    // schema, ALTER keyword, GRANT keyword, identity, owner, has acl, grantee, privilege, grantable
    let sql = format!(
        "WITH objs AS (
           SELECT n.nspname AS sch,
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS alter_kw,
                  CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS grant_kw,
                  quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS ident,
                  c.relowner AS owner, c.relacl AS acl, 1 AS ord
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND {not_ext_c}
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'i')
           UNION ALL
           SELECT n.nspname, 'SCHEMA', 'SCHEMA', quote_ident(n.nspname), n.nspowner, n.nspacl, 0
           FROM pg_namespace n WHERE {not_ext_n}
           UNION ALL
           SELECT n.nspname, CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                  CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                  quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                  p.proowner, p.proacl, 2
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE p.prokind IN ('f', 'p') AND {not_ext_p}
           UNION ALL
           SELECT n.nspname, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                  CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                  format_type(t.oid, NULL), t.typowner, t.typacl, 1
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE (t.typtype IN ('d', 'e', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
             AND {not_ext_t})
         SELECT o.sch, o.alter_kw, o.grant_kw, o.ident, o.owner::regrole::text, o.acl IS NOT NULL,
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.privilege_type, a.is_grantable
         FROM objs o LEFT JOIN LATERAL aclexplode(o.acl) a ON true
         ORDER BY o.ord, o.ident, a.grantee, a.privilege_type",
        not_ext_c = not_ext("c.oid"),
        not_ext_n = not_ext("n.oid"),
        not_ext_p = not_ext("p.oid"),
        not_ext_t = not_ext("t.oid"),
    );
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "owners and privileges"))?;
    let mut last: Option<String> = None;
    for r in found {
        let (schema, alter_kw, grant_kw, ident_, owner, has_acl): (
            String,
            String,
            String,
            String,
            String,
            bool,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if !in_schema(&schema) {
            continue;
        }
        let (grantee, privilege, grantable): (Option<String>, Option<String>, Option<bool>) =
            (r.get(6), r.get(7), r.get(8));
        let name = format!("{alter_kw} {ident_}");
        if last.as_deref() != Some(name.as_str()) {
            cat.post_data.push(Statement::new(
                "owner",
                name.clone(),
                format!("ALTER {alter_kw} {ident_} OWNER TO {owner}"),
            ));
            if has_acl {
                cat.post_data.push(Statement::new(
                    "privileges",
                    name.clone(),
                    format!("REVOKE ALL ON {grant_kw} {ident_} FROM PUBLIC, {owner}"),
                ));
            }
            last = Some(name.clone());
        }
        if let (Some(grantee), Some(privilege)) = (grantee, privilege) {
            cat.post_data.push(Statement::new(
                "privileges",
                name,
                format!(
                    "GRANT {privilege} ON {grant_kw} {ident_} TO {grantee}{}",
                    if grantable == Some(true) {
                        " WITH GRANT OPTION"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    let columns = sqlx::query(
        "SELECT n.nspname, quote_ident(n.nspname) || '.' || quote_ident(c.relname), quote_ident(a.attname),
                x.privilege_type, CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END, x.is_grantable
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace,
              LATERAL aclexplode(a.attacl) x
         WHERE a.attacl IS NOT NULL AND NOT a.attisdropped AND a.attnum > 0
         ORDER BY 2, 3, 5, 4",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "column privileges"))?;
    for r in columns {
        let (schema, table, column, privilege, grantee, grantable): (
            String,
            String,
            String,
            String,
            String,
            bool,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if !in_schema(&schema) {
            continue;
        }
        cat.post_data.push(Statement::new(
            "privileges",
            format!("COLUMN {table}.{column}"),
            format!(
                "GRANT {privilege} ({column}) ON TABLE {table} TO {grantee}{}",
                if grantable { " WITH GRANT OPTION" } else { "" }
            ),
        ));
    }
    let defaults: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_default_acl")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "default privileges"))?;
    if defaults > 0 {
        cat.warnings.push(format!(
            "not backed up (not supported yet): {defaults} ALTER DEFAULT PRIVILEGES rule(s)"
        ));
    }
    Ok(())
}

/// Names what exists but is not backed up, so nothing is dropped silently.
async fn report_unsupported(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let checks: [(&str, &str); 12] = [
        ("row-level security policy", "SELECT n.nspname, c.relname || '.' || p.polname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace"),
        ("rule", "SELECT n.nspname, c.relname || '.' || r.rulename FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.rulename <> '_RETURN'"),
        ("aggregate", "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind IN ('a','w') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"),
        ("operator", "SELECT n.nspname, o.oprname FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE n.nspname <> 'pg_catalog' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = o.oid AND d.deptype = 'e')"),
        ("collation", "SELECT n.nspname, c.collname FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"),
        ("foreign table", "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'f'"),
        ("event trigger", "SELECT 'public', evtname FROM pg_event_trigger"),
        ("publication", "SELECT 'public', pubname FROM pg_publication"),
        ("extended statistics object", "SELECT n.nspname, s.stxname FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace"),
        ("large object", "SELECT 'public', oid::text FROM pg_largeobject_metadata"),
        ("text search configuration", "SELECT n.nspname, c.cfgname FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE n.nspname <> 'pg_catalog'"),
        ("cast", "SELECT 'public', format_type(castsource, NULL) || ' AS ' || format_type(casttarget, NULL) FROM pg_cast WHERE oid >= 16384 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = pg_cast.oid AND d.deptype IN ('e', 'i'))"),
    ];
    for (what, sql) in checks {
        let found = sqlx::query(sql)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, what))?;
        let names: Vec<String> = found
            .iter()
            .filter(|r| {
                in_schema(&r.get::<String, _>(0))
                    || what == "event trigger"
                    || what == "publication"
                    || what == "large object"
            })
            .map(|r| format!("{}.{}", r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect();
        if !names.is_empty() {
            cat.warnings.push(format!(
                "not backed up (not supported yet): {} {what}(s): {}",
                names.len(),
                names.join(", ")
            ));
        }
    }
    Ok(())
}
