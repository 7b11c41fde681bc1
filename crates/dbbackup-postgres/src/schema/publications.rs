//! Publications (`dumpPublication`, `dumpPublicationTable`, `dumpPublicationNamespace`): the
//! publication, then its tables (with column lists and row filters, PostgreSQL 15+) and schemas
//! (15+), in post-data. Subscriptions are not backed up (they connect to another server); a
//! database that has one is refused by the unsupported-object check.

use super::*;

pub(super) async fn read_publications(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    filter: &Filter,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
    major: i32,
) -> Result<()> {
    let pubs = sqlx::query(
        "SELECT p.oid::int8, p.pubname, p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete,
                p.pubtruncate, p.pubviaroot, obj_description(p.oid, 'pg_publication')
         FROM pg_publication p ORDER BY p.pubname",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "publications"))?;
    for r in pubs {
        let (oid, name, all): (i64, String, bool) = (r.get(0), r.get(1), r.get(2));
        let actions: Vec<&str> = [(3, "insert"), (4, "update"), (5, "delete"), (6, "truncate")]
            .into_iter()
            .filter(|&(i, _)| r.get::<bool, _>(i))
            .map(|(_, a)| a)
            .collect();
        let mut sql = format!("CREATE PUBLICATION {}", ident(&name));
        if all {
            sql.push_str(" FOR ALL TABLES");
        }
        sql.push_str(&format!(
            " WITH (publish = {}, publish_via_partition_root = {})",
            literal(&actions.join(", ")),
            r.get::<bool, _>(7)
        ));
        cat.post_data
            .push(Statement::new("publication", &name, sql));
        if let Some(text) = r.get::<Option<String>, _>(8) {
            cat.post_data.push(Statement::new(
                "comment",
                format!("PUBLICATION {name}"),
                format!(
                    "COMMENT ON PUBLICATION {} IS {}",
                    ident(&name),
                    literal(&text)
                ),
            ));
        }
        let (columns, row_filter) = if major >= 15 {
            (
                "CASE WHEN pr.prattrs IS NULL THEN NULL ELSE array_to_string(ARRAY(SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = pr.prrelid AND attnum = ANY(pr.prattrs) ORDER BY attnum), ', ') END",
                "pg_get_expr(pr.prqual, pr.prrelid)",
            )
        } else {
            ("NULL::text", "NULL::text")
        };
        let tables = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT n.nspname, c.relname, {columns}, {row_filter}
             FROM pg_publication_rel pr JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE pr.prpubid = $1::int8::oid ORDER BY n.nspname, c.relname"
        )))
        .bind(oid)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "publication tables"))?;
        for t in tables {
            let (s, tab): (String, String) = (t.get(0), t.get(1));
            if !in_schema(&s) || !filter.table_included(&s, &tab) {
                continue;
            }
            let mut add = format!(
                "ALTER PUBLICATION {} ADD TABLE ONLY {}",
                ident(&name),
                q(&s, &tab)
            );
            if let Some(cols) = t.get::<Option<String>, _>(2) {
                add.push_str(&format!(" ({cols})"));
            }
            if let Some(w) = t.get::<Option<String>, _>(3) {
                add.push_str(&format!(" WHERE ({w})"));
            }
            cat.post_data.push(Statement::new(
                "publication table",
                format!("{name} {s}.{tab}"),
                add,
            ));
        }
        if major >= 15 {
            let schemas: Vec<String> = sqlx::query_scalar(
                "SELECT n.nspname FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid
                 WHERE pn.pnpubid = $1::int8::oid ORDER BY 1",
            )
            .bind(oid)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, "publication schemas"))?;
            for s in schemas.into_iter().filter(|s| in_schema(s)) {
                cat.post_data.push(Statement::new(
                    "publication schema",
                    format!("{name} {s}"),
                    format!(
                        "ALTER PUBLICATION {} ADD TABLES IN SCHEMA {}",
                        ident(&name),
                        ident(&s)
                    ),
                ));
            }
        }
    }
    Ok(())
}
