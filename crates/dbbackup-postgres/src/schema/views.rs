//! Views and materialized views.

use super::*;

pub(super) async fn read_views(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let sql = format!(
        "SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, pg_get_viewdef(c.oid), array_to_string(c.reloptions, ', '),
                c.relispopulated, (SELECT quote_ident(amname) FROM pg_am WHERE oid = c.relam),
                EXISTS (SELECT 1 FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                        WHERE rw.ev_class = c.oid AND d.refclassid = 'pg_constraint'::regclass),
                (SELECT string_agg('NULL::' || format_type(a.atttypid, a.atttypmod)
                                   || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN
                                        ' COLLATE ' || (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                                                       FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                                                       WHERE co.oid = a.attcollation) ELSE '' END
                                   || ' AS ' || quote_ident(a.attname), ', ' ORDER BY a.attnum)
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('v', 'm') AND {} ORDER BY c.oid",
        not_ext("c.oid")
    );
    let views = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "views"))?;
    // Dependencies between views, so a view over a view restores after it.
    let deps = rows(
        conn,
        "SELECT DISTINCT r.ev_class::int8, d.refobjid::int8 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class",
        "view dependencies",
    )
    .await?;
    let mut needs: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    for d in deps {
        needs.entry(d.get(0)).or_default().insert(d.get(1));
    }
    let mut pending: BTreeMap<i64, PgRow> =
        views.into_iter().map(|r| (r.get::<i64, _>(0), r)).collect();
    let mut done: BTreeSet<i64> = BTreeSet::new();
    while !pending.is_empty() {
        let ready: Vec<i64> = pending
            .keys()
            .copied()
            .filter(|oid| {
                needs.get(oid).is_none_or(|n| {
                    n.iter()
                        .all(|d| done.contains(d) || !pending.contains_key(d))
                })
            })
            .collect();
        // A cycle cannot happen between views; fall back to OID order if the catalog says so.
        let batch = if ready.is_empty() {
            vec![*pending.keys().next().expect("non-empty")]
        } else {
            ready
        };
        for oid in batch {
            let r = pending.remove(&oid).expect("pending");
            done.insert(oid);
            let (s, n, kind, def): (String, String, String, String) =
                (r.get(1), r.get(2), r.get(3), r.get(4));
            if !in_schema(&s) {
                continue;
            }
            let def = def.trim().trim_end_matches(';').to_owned();
            let options: Option<String> = r.get(5);
            let with = options
                .filter(|o| !o.is_empty())
                .map(|o| format!(" WITH ({o})"))
                .unwrap_or_default();
            if kind == "v" && r.get::<bool, _>(8) {
                // A view that needs a key (`GROUP BY` a primary key, selecting other columns) is
                // a placeholder with its columns' types until the keys exist (`createDummyViewAsClause`).
                cat.pre(
                    Statement::new(
                        "view",
                        format!("{s}.{n}"),
                        format!(
                            "CREATE VIEW {} AS SELECT {}",
                            q(&s, &n),
                            r.get::<Option<String>, _>(9).unwrap_or_default()
                        ),
                    ),
                    [Obj::new("pg_class", oid)],
                );
                cat.post_data.push(Statement::new(
                    "view definition",
                    format!("{s}.{n}"),
                    format!("CREATE OR REPLACE VIEW {}{with} AS {def}", q(&s, &n)),
                ));
            } else if kind == "v" {
                cat.pre(
                    Statement::new(
                        "view",
                        format!("{s}.{n}"),
                        format!("CREATE VIEW {}{with} AS {def}", q(&s, &n)),
                    ),
                    [Obj::new("pg_class", oid)],
                );
            } else {
                cat.pre(
                    Statement::new(
                        "materialized view",
                        format!("{s}.{n}"),
                        format!(
                            "CREATE MATERIALIZED VIEW {}{}{with} AS {def} WITH NO DATA",
                            q(&s, &n),
                            r.get::<Option<String>, _>(7)
                                .map(|am| format!(" USING {am}"))
                                .unwrap_or_default()
                        ),
                    ),
                    [Obj::new("pg_class", oid)],
                );
                if r.get::<bool, _>(6) {
                    cat.post_data.push(Statement::new(
                        "materialized view data",
                        format!("{s}.{n}"),
                        format!("REFRESH MATERIALIZED VIEW {}", q(&s, &n)),
                    ));
                }
            }
        }
    }
    Ok(())
}
