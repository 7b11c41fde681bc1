//! Owners and privileges (`--privileges`).

use super::*;

/// Owners and privileges of schemas, tables, views, sequences, functions, procedures and types
/// (`ALTER ... OWNER TO`, and for objects with non-default privileges `REVOKE ALL` from PUBLIC and
/// the owner, then one `GRANT` per privilege, so the restored ACL equals the original), plus
/// column privileges. Roles are cluster-wide and not backed up: they must exist on the target.
// Long on purpose: owners and ACLs of every object kind in one pass over the same catalog snapshot (issue 16 splits the object kinds further).
pub(super) async fn read_privileges(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    // schema, ALTER keyword, GRANT keyword, identity, owner, has acl, grantee, privilege, grantable
    let sql = format!(
        "WITH objs AS (
           SELECT n.nspname AS sch,
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS alter_kw,
                  CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS grant_kw,
                  quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS ident,
                  c.relowner AS owner, c.relacl AS acl, 1 AS ord
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {not_ext_c}
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'i')
           UNION ALL
           SELECT n.nspname, 'SCHEMA', 'SCHEMA', quote_ident(n.nspname), n.nspowner, n.nspacl, 0
           FROM pg_namespace n WHERE {not_ext_n}
           UNION ALL
           SELECT n.nspname, CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
                  CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                  quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                  p.proowner, p.proacl, 2
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE p.prokind IN ('f', 'p', 'w', 'a') AND {not_ext_p}
           UNION ALL
           SELECT n.nspname, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                  CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                  format_type(t.oid, NULL), t.typowner, t.typacl, 1
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE (t.typtype IN ('d', 'e', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
             AND {not_ext_t}
           UNION ALL
           {others})
         SELECT o.sch, o.alter_kw, o.grant_kw, o.ident, o.owner::regrole::text, o.acl IS NOT NULL,
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.privilege_type, a.is_grantable
         FROM objs o LEFT JOIN LATERAL aclexplode(o.acl) a ON true
         ORDER BY o.ord, o.ident, a.grantee, a.privilege_type",
        not_ext_c = not_ext("c.oid"),
        not_ext_n = not_ext("n.oid"),
        not_ext_p = not_ext("p.oid"),
        not_ext_t = not_ext("t.oid"),
        others = OTHER_OWNERS,
    );
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "owners and privileges"))?;
    let mut last: Option<String> = None;
    for r in found {
        let (schema, alter_kw, grant_kw, ident_, owner, has_acl): (
            Option<String>,
            String,
            String,
            String,
            String,
            bool,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        // Objects outside schemas (languages, wrappers, servers, ...) have none.
        if schema.is_some_and(|s| !in_schema(&s)) {
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
    read_default_privileges(conn, cat, in_schema).await
}

/// Owners (and ACLs where the kind has one) of the kinds outside the main query's four:
/// `schema` (NULL outside schemas), ALTER keyword, GRANT keyword, identity, owner oid, acl, order.
const OTHER_OWNERS: &str = "
    SELECT n.nspname, 'OPERATOR', 'OPERATOR', quote_ident(n.nspname) || '.' || o.oprname || '(' ||
           CASE WHEN o.oprleft = 0 THEN 'NONE' ELSE format_type(o.oprleft, NULL) END || ', ' ||
           CASE WHEN o.oprright = 0 THEN 'NONE' ELSE format_type(o.oprright, NULL) END || ')', o.oprowner, NULL::aclitem[], 3
    FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND o.oprcode <> 0 AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = o.oid AND x.deptype = 'e')
    UNION ALL
    SELECT n.nspname, 'OPERATOR CLASS', 'OPERATOR CLASS', quote_ident(n.nspname) || '.' || quote_ident(c.opcname) || ' USING ' || quote_ident(a.amname),
           c.opcowner, NULL, 3
    FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace JOIN pg_am a ON a.oid = c.opcmethod
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = c.oid AND x.deptype = 'e')
    UNION ALL
    SELECT n.nspname, 'OPERATOR FAMILY', 'OPERATOR FAMILY', quote_ident(n.nspname) || '.' || quote_ident(f.opfname) || ' USING ' || quote_ident(a.amname),
           f.opfowner, NULL, 3
    FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace JOIN pg_am a ON a.oid = f.opfmethod
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = f.oid AND x.deptype = 'e')
    UNION ALL
    SELECT n.nspname, 'CONVERSION', 'CONVERSION', quote_ident(n.nspname) || '.' || quote_ident(c.conname), c.conowner, NULL, 3
    FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = c.oid AND x.deptype = 'e')
    UNION ALL
    SELECT n.nspname, 'COLLATION', 'COLLATION', quote_ident(n.nspname) || '.' || quote_ident(c.collname), c.collowner, NULL, 3
    FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = c.oid AND x.deptype = 'e')
    UNION ALL
    SELECT n.nspname, 'TEXT SEARCH DICTIONARY', 'TEXT SEARCH DICTIONARY', quote_ident(n.nspname) || '.' || quote_ident(d.dictname), d.dictowner, NULL, 3
    FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = d.oid AND x.deptype = 'e')
    UNION ALL
    SELECT n.nspname, 'TEXT SEARCH CONFIGURATION', 'TEXT SEARCH CONFIGURATION', quote_ident(n.nspname) || '.' || quote_ident(c.cfgname), c.cfgowner, NULL, 3
    FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = c.oid AND x.deptype = 'e')
    UNION ALL
    SELECT NULL, 'LANGUAGE', 'LANGUAGE', quote_ident(l.lanname), l.lanowner, l.lanacl, 3
    FROM pg_language l WHERE l.lanispl AND l.oid >= 16384 AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = l.oid AND x.deptype = 'e')
    UNION ALL
    SELECT NULL, 'FOREIGN DATA WRAPPER', 'FOREIGN DATA WRAPPER', quote_ident(w.fdwname), w.fdwowner, w.fdwacl, 3
    FROM pg_foreign_data_wrapper w WHERE NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = w.oid AND x.deptype = 'e')
    UNION ALL
    SELECT NULL, 'SERVER', 'FOREIGN SERVER', quote_ident(s.srvname), s.srvowner, s.srvacl, 3
    FROM pg_foreign_server s WHERE NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = s.oid AND x.deptype = 'e')
    UNION ALL
    SELECT NULL, 'EVENT TRIGGER', 'EVENT TRIGGER', quote_ident(e.evtname), e.evtowner, NULL, 4
    FROM pg_event_trigger e WHERE NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.objid = e.oid AND x.deptype = 'e')
    UNION ALL
    SELECT NULL, 'PUBLICATION', 'PUBLICATION', quote_ident(p.pubname), p.pubowner, NULL, 4 FROM pg_publication p
    UNION ALL
    SELECT NULL, 'SUBSCRIPTION', 'SUBSCRIPTION', quote_ident(s.subname), s.subowner, NULL, 4 FROM pg_subscription s
    WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// `ALTER DEFAULT PRIVILEGES` (`dumpDefaultACL`). A rule for all schemas replaces the built-in
/// default, so it is rebuilt from nothing (`REVOKE ALL` from PUBLIC and the role, then one
/// `GRANT` per privilege); a rule for one schema only adds to it, so it is its `GRANT`s.
async fn read_default_privileges(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let rules = sqlx::query(
        "SELECT d.defaclrole::regrole::text, n.nspname,
                CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS'
                                     WHEN 'T' THEN 'TYPES' WHEN 'n' THEN 'SCHEMAS' WHEN 'L' THEN 'LARGE OBJECTS' END,
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.privilege_type, a.is_grantable
         FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
         LEFT JOIN LATERAL aclexplode(d.defaclacl) a ON true
         ORDER BY d.defaclrole, n.nspname NULLS FIRST, d.defaclobjtype, a.grantee, a.privilege_type",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "default privileges"))?;
    let mut last: Option<(String, Option<String>, String)> = None;
    for r in rules {
        let (role, schema, objects): (String, Option<String>, String) =
            (r.get(0), r.get(1), r.get(2));
        if schema.as_deref().is_some_and(|s| !in_schema(s)) {
            continue;
        }
        let scope = match &schema {
            Some(s) => format!("FOR ROLE {role} IN SCHEMA {}", ident(s)),
            None => format!("FOR ROLE {role}"),
        };
        let name = format!("DEFAULT PRIVILEGES {scope} ON {objects}");
        let key = (role.clone(), schema.clone(), objects.clone());
        if schema.is_none() && last.as_ref() != Some(&key) {
            cat.post_data.push(Statement::new(
                "privileges",
                name.clone(),
                format!(
                    "ALTER DEFAULT PRIVILEGES {scope} REVOKE ALL ON {objects} FROM PUBLIC, {role}"
                ),
            ));
        }
        last = Some(key);
        let (grantee, privilege, grantable): (Option<String>, Option<String>, Option<bool>) =
            (r.get(3), r.get(4), r.get(5));
        if let (Some(grantee), Some(privilege)) = (grantee, privilege) {
            cat.post_data.push(Statement::new(
                "privileges",
                name,
                format!(
                    "ALTER DEFAULT PRIVILEGES {scope} GRANT {privilege} ON {objects} TO {grantee}{}",
                    if grantable == Some(true) {
                        " WITH GRANT OPTION"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(())
}
