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
