//! Comments (`dumpComment`) on every object kind, named with the server's own
//! `pg_identify_object`, in post-data (after every object they can name, before event triggers).
//! A comment on a kind this module does not know is reported as unsupported, so a kind added by
//! a future server is never dropped silently.

use super::*;

/// The `COMMENT ON` keyword of a `pg_identify_object` type, for the kinds the native path
/// backs up.
fn keyword(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "table column"
        | "view column"
        | "materialized view column"
        | "composite type column"
        | "foreign table column" => "COLUMN",
        "table constraint" | "domain constraint" => "CONSTRAINT",
        "statistics object" => "STATISTICS",
        "foreign-data wrapper" => "FOREIGN DATA WRAPPER",
        "server" => "SERVER",
        "type" | "composite type" => "TYPE",
        "table" => "TABLE",
        "index" => "INDEX",
        "sequence" => "SEQUENCE",
        "view" => "VIEW",
        "materialized view" => "MATERIALIZED VIEW",
        "foreign table" => "FOREIGN TABLE",
        "function" => "FUNCTION",
        "procedure" => "PROCEDURE",
        "aggregate" => "AGGREGATE",
        "schema" => "SCHEMA",
        "collation" => "COLLATION",
        "conversion" => "CONVERSION",
        "operator" => "OPERATOR",
        "operator class" => "OPERATOR CLASS",
        "operator family" => "OPERATOR FAMILY",
        "access method" => "ACCESS METHOD",
        "language" => "LANGUAGE",
        "extension" => "EXTENSION",
        "event trigger" => "EVENT TRIGGER",
        "publication" => "PUBLICATION",
        "subscription" => "SUBSCRIPTION",
        "transform" => "TRANSFORM",
        "text search parser" => "TEXT SEARCH PARSER",
        "text search dictionary" => "TEXT SEARCH DICTIONARY",
        "text search template" => "TEXT SEARCH TEMPLATE",
        "text search configuration" => "TEXT SEARCH CONFIGURATION",
        "large object" => "LARGE OBJECT",
        "cast" => "CAST",
        "trigger" => "TRIGGER",
        "rule" => "RULE",
        "policy" => "POLICY",
        _ => return None,
    })
}

/// An identifier as `quote_ident` wrote it, unquoted.
fn unquote(s: &str) -> String {
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_owned(),
    }
}

pub(super) async fn read_comments(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    filter: &Filter,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    // type, schema, identity, text, the object's table (schema, name, relkind) if it has one,
    // and the target written out for the two kinds whose identity is not COMMENT ON's syntax.
    let sql = format!(
        "SELECT o.type, coalesce(o.schema, CASE WHEN d.classoid = 'pg_namespace'::regclass THEN o.name END),
                o.identity, d.description, rel.nspname, rel.relname, rel.relkind::text,
                CASE WHEN d.classoid = 'pg_constraint'::regclass THEN
                       (SELECT 'CONSTRAINT ' || quote_ident(conname) || ' ON DOMAIN ' || format_type(contypid, NULL)
                        FROM pg_constraint WHERE oid = d.objoid AND contypid <> 0)
                     WHEN d.classoid = 'pg_transform'::regclass THEN
                       (SELECT 'TRANSFORM FOR ' || format_type(t.trftype, NULL) || ' LANGUAGE ' || quote_ident(l.lanname)
                        FROM pg_transform t JOIN pg_language l ON l.oid = t.trflang WHERE t.oid = d.objoid) END
         FROM pg_description d
         CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) o
         LEFT JOIN LATERAL (
             SELECT rn.nspname, rc.relname, rc.relkind FROM pg_class rc JOIN pg_namespace rn ON rn.oid = rc.relnamespace
             WHERE rc.oid = CASE d.classoid
                 WHEN 'pg_class'::regclass THEN coalesce((SELECT indrelid FROM pg_index WHERE indexrelid = d.objoid), d.objoid)
                 WHEN 'pg_constraint'::regclass THEN (SELECT conrelid FROM pg_constraint WHERE oid = d.objoid)
                 WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = d.objoid)
                 WHEN 'pg_policy'::regclass THEN (SELECT polrelid FROM pg_policy WHERE oid = d.objoid)
                 WHEN 'pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_rewrite WHERE oid = d.objoid)
                 WHEN 'pg_statistic_ext'::regclass THEN (SELECT stxrelid FROM pg_statistic_ext WHERE oid = d.objoid)
               END) rel ON true
         WHERE (d.objoid >= 16384 OR d.classoid IN ('pg_namespace'::regclass, 'pg_largeobject'::regclass))
           -- An extension's own comment comes with CREATE EXTENSION (and only its owner may set it).
           AND NOT (d.classoid = 'pg_extension'::regclass AND d.description IS NOT DISTINCT FROM
                    (SELECT a.comment FROM pg_available_extensions a JOIN pg_extension e ON e.extname = a.name
                     WHERE e.oid = d.objoid))
           -- Before PostgreSQL 15 every database's public schema carries this comment from
           -- template0, and only its owner (the bootstrap superuser) may set it: pg_dump skips it.
           AND NOT (d.classoid = 'pg_namespace'::regclass AND d.description = 'standard public schema'
                    AND (SELECT nspname FROM pg_namespace WHERE oid = d.objoid) = 'public')
           AND {} ORDER BY d.classoid, d.objoid, d.objsubid",
        not_ext("d.objoid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "comments"))?
    {
        let (kind, schema, identity, text): (String, Option<String>, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let (rel_schema, rel_name, relkind): (Option<String>, Option<String>, Option<String>) =
            (r.get(4), r.get(5), r.get(6));
        // pg_identify_object quotes the schema (and a schema's own name) where needed.
        let schema = schema.map(|s| unquote(&s)).or_else(|| rel_schema.clone());
        if let Some(s) = &schema {
            let system = matches!(s.as_str(), "pg_catalog" | "information_schema" | "pg_toast");
            if system || !in_schema(s) {
                continue;
            }
        }
        if let (Some(s), Some(t), Some("r" | "p" | "f")) =
            (&rel_schema, &rel_name, relkind.as_deref())
        {
            if !filter.table_included(s, t) {
                continue;
            }
        }
        let target = match (r.get::<Option<String>, _>(7), keyword(&kind)) {
            (Some(target), _) => target,
            (None, Some(kw)) => format!("{kw} {identity}"),
            (None, None) => {
                cat.unsupported
                    .push(format!("comment on {kind} {identity}"));
                continue;
            }
        };
        cat.post_data.push(Statement::new(
            "comment",
            target.clone(),
            format!("COMMENT ON {target} IS {}", literal(&text)),
        ));
    }
    Ok(())
}
