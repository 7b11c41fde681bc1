//! Views and materialized views.

use super::*;

pub(super) async fn read_views(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let sql = format!(
        "SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, pg_get_viewdef(c.oid), array_to_string(c.reloptions, ', '),
                c.relispopulated, (SELECT quote_ident(amname) FROM pg_am WHERE oid = c.relam)
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
            if kind == "v" {
                cat.pre_data.push(Statement::new(
                    "view",
                    format!("{s}.{n}"),
                    format!("CREATE VIEW {}{with} AS {def}", q(&s, &n)),
                ));
            } else {
                cat.pre_data.push(Statement::new(
                    "materialized view",
                    format!("{s}.{n}"),
                    format!(
                        "CREATE MATERIALIZED VIEW {}{}{with} AS {def} WITH NO DATA",
                        q(&s, &n),
                        r.get::<Option<String>, _>(7)
                            .map(|am| format!(" USING {am}"))
                            .unwrap_or_default()
                    ),
                ));
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
