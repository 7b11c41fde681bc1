//! What the native path cannot back up yet: listed in `Catalog::unsupported`, so the backup
//! refuses (or, when accepted, records every omission in the manifest).

use super::*;

/// Lists what exists but cannot be backed up, so nothing is dropped silently.
pub(super) async fn report_unsupported(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
    privileges: bool,
) -> Result<()> {
    let mut checks: Vec<(&str, &str)> = vec![
        ("aggregate", "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind IN ('a','w') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"),
        ("operator", "SELECT n.nspname, o.oprname FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE n.nspname <> 'pg_catalog' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = o.oid AND d.deptype = 'e')"),
        ("foreign table", "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'f'"),
        ("text search configuration", "SELECT n.nspname, c.cfgname FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE n.nspname <> 'pg_catalog'"),
        ("operator class", "SELECT n.nspname, o.opcname FROM pg_opclass o JOIN pg_namespace n ON n.oid = o.opcnamespace WHERE n.nspname <> 'pg_catalog' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = o.oid AND d.deptype = 'e')"),
        ("operator family", "SELECT n.nspname, o.opfname FROM pg_opfamily o JOIN pg_namespace n ON n.oid = o.opfnamespace WHERE n.nspname <> 'pg_catalog' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = o.oid AND d.deptype = 'e')"),
        ("access method", "SELECT 'public', amname FROM pg_am WHERE oid >= 16384 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = pg_am.oid AND d.deptype = 'e')"),
        ("conversion", "SELECT n.nspname, c.conname FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname <> 'pg_catalog' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"),
        ("transform", "SELECT 'public', format_type(trftype, NULL) || ' LANGUAGE ' || (SELECT lanname FROM pg_language WHERE oid = trflang) FROM pg_transform t WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')"),
        ("procedural language", "SELECT 'public', lanname FROM pg_language l WHERE lanispl AND lanname <> 'plpgsql' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = l.oid AND d.deptype = 'e')"),
        ("text search parser", "SELECT n.nspname, p.prsname FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace WHERE n.nspname <> 'pg_catalog' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"),
        ("text search template", "SELECT n.nspname, t.tmplname FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace WHERE n.nspname <> 'pg_catalog' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')"),
        ("text search dictionary", "SELECT n.nspname, t.dictname FROM pg_ts_dict t JOIN pg_namespace n ON n.oid = t.dictnamespace WHERE n.nspname <> 'pg_catalog' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')"),
        ("foreign data wrapper", "SELECT 'public', fdwname FROM pg_foreign_data_wrapper w WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = w.oid AND d.deptype = 'e')"),
        ("foreign server", "SELECT 'public', srvname FROM pg_foreign_server s WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = s.oid AND d.deptype = 'e')"),
        ("user mapping", "SELECT 'public', usename || '@' || srvname FROM pg_user_mappings"),
        ("subscription", "SELECT 'public', subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"),
        ("security label", "SELECT 'public', provider || ':' || objoid::text FROM pg_seclabel"),
    ];
    if privileges {
        checks.push((
            "default privileges rule",
            "SELECT coalesce(n.nspname, 'public'), pg_get_userbyid(d.defaclrole) || ' ' || d.defaclobjtype::text FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace",
        ));
    }
    // Kinds that live outside schemas are named under `public.` and never filtered out.
    let global = |what: &str| {
        matches!(
            what,
            "event trigger"
                | "publication"
                | "access method"
                | "transform"
                | "procedural language"
                | "foreign data wrapper"
                | "foreign server"
                | "user mapping"
                | "subscription"
                | "security label"
                | "cast"
        )
    };
    for (what, sql) in checks {
        let found = sqlx::query(sql)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, what))?;
        let names = found
            .iter()
            .filter(|r| in_schema(&r.get::<String, _>(0)) || global(what))
            .map(|r| format!("{what} {}.{}", r.get::<String, _>(0), r.get::<String, _>(1)));
        cat.unsupported.extend(names);
    }
    Ok(())
}
