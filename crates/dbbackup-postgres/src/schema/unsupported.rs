//! What the native path cannot back up: listed in `Catalog::unsupported`, so the backup refuses
//! (or, when accepted, records every omission in the manifest). Comments on unknown object kinds
//! are caught in `comments.rs`, subscriptions that need a superuser in `publications.rs`.

use super::*;

/// Lists what exists but cannot be backed up, so nothing is dropped silently.
pub(super) async fn report_unsupported(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let checks: [(&str, &str); 1] = [
        // A label needs its provider (a loadable module such as sepgsql) on both servers.
        (
            "security label",
            "SELECT coalesce(o.schema, 'public'), provider || ' on ' || o.type || ' ' || o.identity
             FROM pg_seclabel s CROSS JOIN LATERAL pg_identify_object(s.classoid, s.objoid, s.objsubid) o
             UNION ALL
             SELECT 'public', provider || ' on ' || o.type || ' ' || o.identity
             FROM pg_shseclabel s CROSS JOIN LATERAL pg_identify_object(s.classoid, s.objoid, 0) o
             WHERE s.classoid = 'pg_subscription'::regclass",
        ),
    ];
    for (what, sql) in checks {
        let found = sqlx::query(sql)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, what))?;
        let names = found
            .iter()
            .filter(|r| what == "security label" || in_schema(&r.get::<String, _>(0)))
            .map(|r| format!("{what} {}.{}", r.get::<String, _>(0), r.get::<String, _>(1)));
        cat.unsupported.extend(names);
    }
    // Rows an extension's own tables hold for the user (`pg_extension_config_dump`, with its
    // condition): pg_dump dumps them, the native path does not yet. Only tables that hold such
    // rows are refused, so an extension whose configuration tables are empty backs up.
    let configs = rows(
        conn,
        "SELECT n.nspname, c.relname, e.extname, coalesce(e.extcondition[cfg.i], '')
         FROM pg_extension e CROSS JOIN LATERAL unnest(e.extconfig) WITH ORDINALITY cfg(oid, i)
         JOIN pg_class c ON c.oid = cfg.oid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') ORDER BY 1, 2",
        "extension configuration tables",
    )
    .await?;
    for r in configs {
        let (s, t, ext, condition): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let held: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {} {condition})",
            q(&s, &t)
        )))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "extension configuration tables"))?;
        if held && in_schema(&s) {
            cat.unsupported.push(format!(
                "extension configuration table {s}.{t} (rows of extension {ext})"
            ));
        }
    }
    Ok(())
}
