//! Foreign data wrappers (`dumpForeignDataWrapper`), servers (`dumpForeignServer`) and user
//! mappings (`dumpUserMappings`), before the foreign tables (`tables.rs`) that use them. Like
//! pg_dump, the foreign tables' rows are not backed up: they live on the other server.

use super::*;

pub(super) async fn read_foreign_data(conn: &mut PgConnection, cat: &mut Catalog) -> Result<()> {
    let wrappers = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT w.fdwname, CASE WHEN w.fdwhandler <> 0 THEN {handler} END,
                CASE WHEN w.fdwvalidator <> 0 THEN {validator} END, {opts}, w.oid::int8
         FROM pg_foreign_data_wrapper w WHERE {not_ext} ORDER BY w.oid",
        handler = qproc("w.fdwhandler"),
        validator = qproc("w.fdwvalidator"),
        opts = options_sql("w.fdwoptions"),
        not_ext = not_ext("w.oid"),
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "foreign data wrappers"))?;
    for r in wrappers {
        let name: String = r.get(0);
        let mut sql = format!("CREATE FOREIGN DATA WRAPPER {}", ident(&name));
        if let Some(h) = r.get::<Option<String>, _>(1) {
            sql.push_str(&format!(" HANDLER {h}"));
        }
        if let Some(v) = r.get::<Option<String>, _>(2) {
            sql.push_str(&format!(" VALIDATOR {v}"));
        }
        sql.push_str(&options_clause(r.get(3)));
        cat.pre(
            Statement::new("foreign data wrapper", &name, sql),
            [Obj::new("pg_foreign_data_wrapper", r.get(4))],
        );
    }

    let servers = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT s.srvname, s.srvtype, s.srvversion, w.fdwname, {opts}, s.oid::int8
         FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
         WHERE {not_ext} ORDER BY s.oid",
        opts = options_sql("s.srvoptions"),
        not_ext = not_ext("s.oid"),
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "foreign servers"))?;
    for r in servers {
        let name: String = r.get(0);
        let mut sql = format!("CREATE SERVER {}", ident(&name));
        if let Some(t) = r.get::<Option<String>, _>(1) {
            sql.push_str(&format!(" TYPE {}", literal(&t)));
        }
        if let Some(v) = r.get::<Option<String>, _>(2) {
            sql.push_str(&format!(" VERSION {}", literal(&v)));
        }
        sql.push_str(&format!(
            " FOREIGN DATA WRAPPER {}",
            ident(&r.get::<String, _>(3))
        ));
        sql.push_str(&options_clause(r.get(4)));
        cat.pre(
            Statement::new("foreign server", &name, sql),
            [Obj::new("pg_foreign_server", r.get(5))],
        );
    }

    // The roles must exist on the target, as for owners. A mapping's options are visible only to
    // a superuser, the mapped user, and (for PUBLIC) the server's owner: any other mapping would
    // lose them silently, so it is refused.
    let mappings = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CASE WHEN m.umuser = 0 THEN 'PUBLIC' ELSE quote_ident(m.usename) END, m.srvname, {opts},
                m.umuser = 0 OR m.usename = current_user
                  OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                m.umid::int8
         FROM pg_user_mappings m ORDER BY m.srvname, m.usename",
        opts = options_sql("m.umoptions"),
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "user mappings"))?;
    for r in mappings {
        let (user, server): (String, String) = (r.get(0), r.get(1));
        if !r.get::<bool, _>(3) {
            cat.unsupported.push(format!(
                "user mapping for {user} on server {server} (only a superuser or {user} can read its options)"
            ));
            continue;
        }
        cat.pre(
            Statement::new(
                "user mapping",
                format!("{user} SERVER {server}"),
                format!(
                    "CREATE USER MAPPING FOR {user} SERVER {}{}",
                    ident(&server),
                    options_clause(r.get(2))
                ),
            ),
            [Obj::new("pg_user_mapping", r.get(4))],
        );
    }
    Ok(())
}
