//! What the native path cannot back up yet: listed in `Catalog::unsupported`, so the backup
//! refuses (or, when accepted, records every omission in the manifest).

use super::*;

/// Lists what exists but cannot be backed up, so nothing is dropped silently.
pub(super) async fn report_unsupported(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let checks: [(&str, &str); 8] = [
        ("aggregate", "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind IN ('a','w') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"),
        ("operator", "SELECT n.nspname, o.oprname FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE n.nspname <> 'pg_catalog' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = o.oid AND d.deptype = 'e')"),
        ("collation", "SELECT n.nspname, c.collname FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"),
        ("foreign table", "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'f'"),
        ("event trigger", "SELECT 'public', evtname FROM pg_event_trigger"),
        ("publication", "SELECT 'public', pubname FROM pg_publication"),
        ("text search configuration", "SELECT n.nspname, c.cfgname FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE n.nspname <> 'pg_catalog'"),
        ("cast", "SELECT 'public', format_type(castsource, NULL) || ' AS ' || format_type(casttarget, NULL) FROM pg_cast WHERE oid >= 16384 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = pg_cast.oid AND d.deptype IN ('e', 'i'))"),
    ];
    for (what, sql) in checks {
        let found = sqlx::query(sql)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, what))?;
        let names = found
            .iter()
            .filter(|r| {
                in_schema(&r.get::<String, _>(0))
                    || what == "event trigger"
                    || what == "publication"
            })
            .map(|r| format!("{what} {}.{}", r.get::<String, _>(0), r.get::<String, _>(1)));
        cat.unsupported.extend(names);
    }
    Ok(())
}
