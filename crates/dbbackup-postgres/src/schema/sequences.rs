//! Sequences (their definitions; values go to post-data).

use super::*;

pub(super) async fn read_sequences(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    // Sequences behind identity columns are created with their table.
    let sql = format!(
        "SELECT s.schemaname::text, s.sequencename::text, s.data_type::regtype::text, s.start_value, s.min_value,
                s.max_value, s.increment_by, s.cycle, s.cache_size, s.last_value, c.oid::int8
         FROM pg_sequences s
         JOIN pg_class c ON c.relname = s.sequencename JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname
         WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i')
           AND {} ORDER BY c.oid",
        not_ext("c.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "sequences"))?
    {
        let (s, n): (String, String) = (r.get(0), r.get(1));
        if !in_schema(&s) {
            continue;
        }
        let (ty, start, min, max, inc, cycle, cache): (String, i64, i64, i64, i64, bool, i64) = (
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
            r.get(7),
            r.get(8),
        );
        cat.pre(Statement::new(
            "sequence",
            format!("{s}.{n}"),
            format!(
                "CREATE SEQUENCE {} AS {ty} INCREMENT BY {inc} MINVALUE {min} MAXVALUE {max} START WITH {start} CACHE {cache}{}",
                q(&s, &n),
                if cycle { " CYCLE" } else { " NO CYCLE" }
            ),
        ), [Obj::new("pg_class", r.get(10))]);
        let last: Option<i64> = r.get(9);
        let (value, called) = match last {
            Some(v) => (v, true),
            None => (start, false),
        };
        cat.post_data.push(Statement::new(
            "sequence value",
            format!("{s}.{n}"),
            format!(
                "SELECT pg_catalog.setval({}, {value}, {called})",
                literal(&q(&s, &n))
            ),
        ));
    }
    // Sequences owned by a column (serial).
    let sql = format!(
        "SELECT sn.nspname, s.relname, tn.nspname, t.relname, a.attname
         FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         JOIN pg_namespace sn ON sn.oid = s.relnamespace
         JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
         WHERE d.deptype = 'a' AND d.classid = 'pg_class'::regclass AND {} ORDER BY s.oid",
        not_ext("s.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "sequence ownership"))?
    {
        let (ss, sn, ts, tn, col): (String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !in_schema(&ss) || !in_schema(&ts) {
            continue;
        }
        cat.post_data.push(Statement::new(
            "sequence owner",
            format!("{ss}.{sn}"),
            format!(
                "ALTER SEQUENCE {} OWNED BY {}.{}",
                q(&ss, &sn),
                q(&ts, &tn),
                ident(&col)
            ),
        ));
    }
    Ok(())
}
