//! Procedural languages (`dumpProcLang`) not created by an extension, after the handler
//! functions and before the functions written in them, and transforms (`dumpTransform`), after
//! the functions they name.

use super::*;

pub(super) async fn read_languages(conn: &mut PgConnection, cat: &mut Catalog) -> Result<()> {
    let sql = format!(
        "SELECT l.lanname, l.lanpltrusted, {handler}, CASE WHEN l.laninline <> 0 THEN {inline} END,
                CASE WHEN l.lanvalidator <> 0 THEN {validator} END, l.oid::int8
         FROM pg_language l WHERE l.lanispl AND l.oid >= 16384 AND {not_ext} ORDER BY l.oid",
        handler = qproc("l.lanplcallfoid"),
        inline = qproc("l.laninline"),
        validator = qproc("l.lanvalidator"),
        not_ext = not_ext("l.oid"),
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "procedural languages"))?
    {
        let (name, trusted, handler): (String, bool, String) = (r.get(0), r.get(1), r.get(2));
        let mut sql = format!(
            "CREATE {}PROCEDURAL LANGUAGE {} HANDLER {handler}",
            if trusted { "TRUSTED " } else { "" },
            ident(&name)
        );
        if let Some(i) = r.get::<Option<String>, _>(3) {
            sql.push_str(&format!(" INLINE {i}"));
        }
        if let Some(v) = r.get::<Option<String>, _>(4) {
            sql.push_str(&format!(" VALIDATOR {v}"));
        }
        cat.pre(
            Statement::new("procedural language", &name, sql),
            [Obj::new("pg_language", r.get(5))],
        );
    }
    Ok(())
}

pub(super) async fn read_transforms(conn: &mut PgConnection, cat: &mut Catalog) -> Result<()> {
    let sql = format!(
        "SELECT format_type(t.trftype, NULL), l.lanname,
                CASE WHEN t.trffromsql <> 0 THEN {from} END, CASE WHEN t.trftosql <> 0 THEN {to} END, t.oid::int8
         FROM pg_transform t JOIN pg_language l ON l.oid = t.trflang WHERE {not_ext} ORDER BY t.oid",
        from = qproc_sig("t.trffromsql"),
        to = qproc_sig("t.trftosql"),
        not_ext = not_ext("t.oid"),
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "transforms"))?
    {
        let (ty, lang): (String, String) = (r.get(0), r.get(1));
        let mut parts = Vec::new();
        if let Some(f) = r.get::<Option<String>, _>(2) {
            parts.push(format!("FROM SQL WITH FUNCTION {f}"));
        }
        if let Some(t) = r.get::<Option<String>, _>(3) {
            parts.push(format!("TO SQL WITH FUNCTION {t}"));
        }
        cat.pre(
            Statement::new(
                "transform",
                format!("FOR {ty} LANGUAGE {lang}"),
                format!(
                    "CREATE TRANSFORM FOR {ty} LANGUAGE {} ({})",
                    ident(&lang),
                    parts.join(", ")
                ),
            ),
            [Obj::new("pg_transform", r.get(4))],
        );
    }
    Ok(())
}
