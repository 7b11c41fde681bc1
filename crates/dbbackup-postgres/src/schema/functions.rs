//! Functions and procedures (aggregates: `aggregates.rs`). A function that needs a table's row
//! type, has a pre-parsed `BEGIN ATOMIC` body or is written in a language of ours (not an
//! extension's) is created after the tables and languages.

use super::*;

pub(super) struct Function {
    pub(super) stmt: Statement,
    pub(super) obj: Obj,
    /// Needs tables (row-type arguments/results, a pre-parsed `BEGIN ATOMIC` body) or a language
    /// of ours first.
    pub(super) late: bool,
}

pub(super) async fn read_functions(
    conn: &mut PgConnection,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
    written: &BTreeSet<i64>,
) -> Result<Vec<Function>> {
    let sql = format!(
        "SELECT n.nspname, p.proname, pg_get_functiondef(p.oid),
                EXISTS (SELECT 1 FROM pg_type t WHERE t.typrelid <> 0
                          AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) IN ('r','p','v','m','f')
                          AND (t.oid = p.prorettype OR t.oid = ANY (p.proargtypes)))
                  OR (current_setting('server_version_num')::int >= 140000 AND p.prosrc = '')
                  OR EXISTS (SELECT 1 FROM pg_language l WHERE l.oid = p.prolang AND l.oid >= 16384 AND {lang_not_ext}),
                pg_get_function_identity_arguments(p.oid), p.oid::int8
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prokind IN ('f', 'p', 'w')
           AND NOT EXISTS (SELECT 1 FROM pg_depend di WHERE di.objid = p.oid AND di.deptype = 'i')
           AND {not_ext} ORDER BY p.oid",
        lang_not_ext = not_ext("l.oid"),
        not_ext = not_ext("p.oid")
    );
    let mut out = Vec::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "functions"))?
    {
        let (s, n, def, late, args): (String, String, String, bool, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let oid: i64 = r.get(5);
        if !in_schema(&s) || written.contains(&oid) {
            continue;
        }
        out.push(Function {
            stmt: Statement::new("function", format!("{s}.{n}({args})"), def),
            obj: Obj::new("pg_proc", oid),
            late,
        });
    }
    Ok(out)
}
