//! Row-level security: `ENABLE` / `FORCE ROW LEVEL SECURITY` of tables and their policies, as
//! pg_dump's `dumpPolicy` and `dumpTableSchema` write them. They go to post-data, after the rows,
//! so loading is never filtered by a policy; they are always backed up (a restored database must
//! be as closed as the source), independent of the privileges option.

use super::*;

/// `polcmd` as the `FOR` clause (`*`: all commands, which `CREATE POLICY` takes as the default).
fn command(polcmd: &str) -> Option<&'static str> {
    match polcmd {
        "r" => Some("SELECT"),
        "a" => Some("INSERT"),
        "w" => Some("UPDATE"),
        "d" => Some("DELETE"),
        _ => None,
    }
}

pub(super) async fn read_policies(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    filter: &Filter,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let tables = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE (c.relrowsecurity OR c.relforcerowsecurity) AND c.relkind IN ('r', 'p') AND {}
         ORDER BY n.nspname, c.relname",
        not_ext("c.oid")
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "row-level security"))?;
    for r in tables {
        let (s, t, enable, force): (String, String, bool, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !in_schema(&s) || !filter.table_included(&s, &t) {
            continue;
        }
        for (on, what) in [(enable, "ENABLE"), (force, "FORCE")] {
            if on {
                cat.post_data.push(Statement::new(
                    "row security",
                    format!("{s}.{t}"),
                    format!("ALTER TABLE ONLY {} {what} ROW LEVEL SECURITY", q(&s, &t)),
                ));
            }
        }
    }
    let policies = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, p.polname, p.polcmd::text, p.polpermissive,
                CASE WHEN p.polroles = '{{0}}' THEN NULL
                     ELSE array_to_string(ARRAY(SELECT quote_ident(rolname) FROM pg_roles WHERE oid = ANY(p.polroles) ORDER BY rolname), ', ') END,
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
         FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {} ORDER BY n.nspname, c.relname, p.polname",
        not_ext("c.oid")
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "row-level security policies"))?;
    for r in policies {
        let (s, t, name, cmd, permissive): (String, String, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !in_schema(&s) || !filter.table_included(&s, &t) {
            continue;
        }
        let mut sql = format!("CREATE POLICY {} ON {}", ident(&name), q(&s, &t));
        if !permissive {
            sql.push_str(" AS RESTRICTIVE");
        }
        if let Some(c) = command(&cmd) {
            sql.push_str(&format!(" FOR {c}"));
        }
        if let Some(roles) = r.get::<Option<String>, _>(5) {
            sql.push_str(&format!(" TO {roles}"));
        }
        if let Some(using) = r.get::<Option<String>, _>(6) {
            sql.push_str(&format!(" USING ({using})"));
        }
        if let Some(check) = r.get::<Option<String>, _>(7) {
            sql.push_str(&format!(" WITH CHECK ({check})"));
        }
        cat.post_data
            .push(Statement::new("policy", format!("{s}.{t}.{name}"), sql));
    }
    Ok(())
}
