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

mod aggregates;
mod casts;
mod collations;
mod comments;
mod foreign_data;
mod functions;
mod languages;
mod large_objects;
mod operators;
pub(crate) use operators::OPERATOR_SIG;
mod order;
mod policies;
mod post_data;
mod privileges;
mod publications;
mod rules;
mod sequences;
mod table_options;
mod tables;
mod text_search;
mod types;
mod unsupported;
mod views;
use aggregates::read_aggregates;
use casts::{read_casts, read_event_triggers};
use collations::{read_collations, read_conversions};
use comments::read_comments;
use foreign_data::read_foreign_data;
use functions::read_functions;
use languages::{read_languages, read_transforms};
use large_objects::read_large_object_owners;
use operators::{read_access_methods, read_operator_classes, read_operators};
use order::{sort_pre_data, Obj, Placed, SHELL_TYPE};
use policies::read_policies;
use post_data::read_post_data;
use privileges::read_privileges;
use publications::{read_publications, read_subscriptions};
use rules::read_rules;
use sequences::read_sequences;
use table_options::read_table_options;
use tables::read_tables;
use text_search::read_text_search;
use types::{read_base_types, read_types};
use unsupported::report_unsupported;
use views::read_views;

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
    /// Roughly the bytes of its rows as COPY text (heap less tuple headers, plus TOAST), for
    /// progress.
    #[serde(default)]
    pub estimated_bytes: i64,
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
    /// Objects the database holds that the native path cannot back up yet (`kind name`): the
    /// backup fails naming them unless they are accepted (`allow_incomplete`).
    pub unsupported: Vec<String>,
    /// How many large objects the database holds.
    pub large_objects: i64,
    /// The keys and indexes of each plain table (`schema.table`; not partitioned, not a
    /// partition), also in post-data: a restore into a new database builds them as soon as the
    /// table's rows are in, while other tables still load.
    pub table_indexes: HashMap<String, Vec<Statement>>,
    /// What each pre-data statement creates and needs, for [`order`].
    pre_placed: Vec<Placed>,
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

/// SQL for the schema-qualified, quoted name of the function `oid_expr` (NULL for 0).
fn qproc(oid_expr: &str) -> String {
    format!(
        "(SELECT quote_ident(qpn.nspname) || '.' || quote_ident(qpp.proname) FROM pg_proc qpp
          JOIN pg_namespace qpn ON qpn.oid = qpp.pronamespace WHERE qpp.oid = {oid_expr})"
    )
}

/// SQL for `schema.name(argument types)` of the function `oid_expr` (NULL for 0).
fn qproc_sig(oid_expr: &str) -> String {
    format!(
        "(SELECT quote_ident(qpn.nspname) || '.' || quote_ident(qpp.proname) || '(' ||
                 pg_get_function_identity_arguments(qpp.oid) || ')' FROM pg_proc qpp
          JOIN pg_namespace qpn ON qpn.oid = qpp.pronamespace WHERE qpp.oid = {oid_expr})"
    )
}

/// SQL for `OPERATOR(schema.op)` of the operator `oid_expr` (NULL for 0).
fn qoper(oid_expr: &str) -> String {
    format!(
        "(SELECT 'OPERATOR(' || quote_ident(qon.nspname) || '.' || qoo.oprname || ')' FROM pg_operator qoo
          JOIN pg_namespace qon ON qon.oid = qoo.oprnamespace WHERE qoo.oid = {oid_expr})"
    )
}

/// SQL for an `OPTIONS (...)` list's contents (`key 'value', ...`, in stored order) of the
/// `text[]` column `expr`; NULL or empty when there are none.
fn options_sql(expr: &str) -> String {
    format!(
        "array_to_string(ARRAY(SELECT quote_ident(option_name) || ' ' || quote_literal(option_value)
                               FROM pg_options_to_table({expr})), ', ')"
    )
}

/// ` OPTIONS (...)` for a non-empty option list, else nothing.
fn options_clause(opts: Option<String>) -> String {
    match opts.filter(|o| !o.is_empty()) {
        Some(o) => format!(" OPTIONS ({o})"),
        None => String::new(),
    }
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
    for (oid, s) in &schemas {
        cat.pre(
            Statement::new(
                "schema",
                s,
                format!("CREATE SCHEMA IF NOT EXISTS {}", ident(s)),
            ),
            [Obj::new("pg_namespace", i64::from(*oid))],
        );
    }

    // Extensions.
    for r in rows(
        conn,
        "SELECT e.extname, n.nspname, e.oid::int8 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname <> 'plpgsql' ORDER BY e.oid",
        "extensions",
    )
    .await?
    {
        let (name, schema): (String, String) = (r.get(0), r.get(1));
        cat.pre(
            Statement::new(
                "extension",
                &name,
                format!("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}", ident(&name), ident(&schema)),
            ),
            [Obj::new("pg_extension", r.get(2))],
        );
    }

    read_collations(conn, &mut cat, &in_schema, major).await?;
    let written = read_base_types(conn, &mut cat, &in_schema, major).await?;
    read_types(conn, &mut cat, &in_schema, major).await?;
    read_sequences(conn, &mut cat, &in_schema).await?;
    let functions = read_functions(conn, &in_schema, &written).await?;
    let (early, late): (Vec<_>, Vec<_>) = functions.into_iter().partition(|f| !f.late);
    for f in early {
        cat.pre(f.stmt, [f.obj]);
    }
    read_access_methods(conn, &mut cat).await?;
    read_languages(conn, &mut cat).await?;
    read_conversions(conn, &mut cat, &in_schema).await?;
    read_text_search(conn, &mut cat, &in_schema).await?;
    read_foreign_data(conn, &mut cat).await?;
    read_tables(conn, &mut cat, filter, &in_schema).await?;
    for f in late {
        cat.pre(f.stmt, [f.obj]);
    }
    read_operators(conn, &mut cat, &in_schema).await?;
    read_aggregates(conn, &mut cat, &in_schema).await?;
    read_transforms(conn, &mut cat).await?;
    read_operator_classes(conn, &mut cat, &in_schema).await?;
    read_views(conn, &mut cat, &in_schema).await?;
    read_casts(conn, &mut cat).await?;
    sort_pre_data(conn, &mut cat).await?;
    read_post_data(conn, &mut cat, filter, &in_schema).await?;
    read_policies(conn, &mut cat, filter, &in_schema).await?;
    read_rules(conn, &mut cat, filter, &in_schema).await?;
    read_table_options(conn, &mut cat, filter, &in_schema, major).await?;
    read_publications(conn, &mut cat, filter, &in_schema, major).await?;
    read_subscriptions(conn, &mut cat, major).await?;
    read_comments(conn, &mut cat, filter, &in_schema).await?;
    if privileges {
        read_privileges(conn, &mut cat, &in_schema).await?;
    }
    report_unsupported(conn, &mut cat, &in_schema).await?;
    cat.large_objects = sqlx::query_scalar("SELECT count(*) FROM pg_largeobject_metadata")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "large objects"))?;
    if privileges {
        read_large_object_owners(conn, &mut cat).await?;
    }
    // Last, so they do not fire during the rest of the restore; their comments after them.
    let (trigger_comments, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut cat.post_data)
        .into_iter()
        .partition(|s| s.kind == "comment" && s.name.starts_with("EVENT TRIGGER "));
    cat.post_data = rest;
    read_event_triggers(conn, &mut cat).await?;
    cat.post_data.extend(trigger_comments);
    Ok(cat)
}
