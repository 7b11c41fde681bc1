//! Publications (`dumpPublication`, `dumpPublicationTable`, `dumpPublicationNamespace`): the
//! publication, then its tables (with column lists and row filters, PostgreSQL 15+) and schemas
//! (15+), in post-data. Subscriptions (`dumpSubscription`) as pg_dump writes them: created
//! without connecting (`connect = false`), so disabled and with their slot left alone.

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
                p.pubtruncate, p.pubviaroot
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

pub(super) async fn read_subscriptions(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    major: i32,
) -> Result<()> {
    let here = "subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let (count, superuser): (i64, bool) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM pg_subscription WHERE {here}),
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
    )))
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "subscriptions"))?;
    if count == 0 {
        return Ok(());
    }
    if !superuser {
        // Only a superuser may read a subscription's connection string.
        let names: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT subname FROM pg_subscription WHERE {here} ORDER BY 1"
        )))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "subscriptions"))?;
        cat.unsupported.extend(
            names
                .iter()
                .map(|n| format!("subscription {n} (reading it needs a superuser)")),
        );
        return Ok(());
    }
    let v = |min: i32, col: &str, none: &str| {
        if major >= min {
            format!("{col}::text")
        } else {
            format!("{none}::text")
        }
    };
    let sql = format!(
        "SELECT subname, subconninfo, array_to_string(ARRAY(SELECT quote_ident(p) FROM unnest(subpublications) p), ', '),
                subslotname, {binary}, {stream}, {two_phase}, {disable}, {password}, {run_as}, {origin}, subsynccommit, {failover}
         FROM pg_subscription WHERE {here} ORDER BY subname",
        binary = v(14, "subbinary", "false"),
        stream = v(14, "substream", "false"),
        two_phase = v(15, "subtwophasestate", "'d'"),
        disable = v(15, "subdisableonerr", "false"),
        password = v(16, "subpasswordrequired", "true"),
        run_as = v(16, "subrunasowner", "false"),
        origin = v(16, "suborigin", "'any'"),
        failover = v(17, "subfailover", "false"),
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "subscriptions"))?
    {
        let (name, conninfo, pubs): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let text = |i: usize| r.get::<Option<String>, _>(i).unwrap_or_default();
        let mut opts = vec![
            "connect = false".to_owned(),
            match r.get::<Option<String>, _>(3) {
                Some(slot) => format!("slot_name = {}", literal(&slot)),
                None => "slot_name = NONE".to_owned(),
            },
        ];
        if text(4) == "true" {
            opts.push("binary = true".into());
        }
        match text(5).as_str() {
            "true" | "t" => opts.push("streaming = on".into()),
            "p" => opts.push("streaming = parallel".into()),
            _ => {}
        }
        if text(6) != "d" {
            opts.push("two_phase = on".into());
        }
        if text(7) == "true" {
            opts.push("disable_on_error = true".into());
        }
        if text(8) == "false" {
            opts.push("password_required = false".into());
        }
        if text(9) == "true" {
            opts.push("run_as_owner = true".into());
        }
        if text(10) != "any" {
            opts.push(format!("origin = {}", literal(&text(10))));
        }
        if text(11) != "off" {
            opts.push(format!("synchronous_commit = {}", literal(&text(11))));
        }
        if text(12) == "true" {
            opts.push("failover = true".into());
        }
        cat.post_data.push(Statement::new(
            "subscription",
            &name,
            format!(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {pubs} WITH ({})",
                ident(&name),
                literal(&conninfo),
                opts.join(", ")
            ),
        ));
        cat.warnings.push(format!(
            "subscription {name} is restored as pg_dump restores it: disabled and without \
             connecting; check its slot on the publisher, then ALTER SUBSCRIPTION ... ENABLE"
        ));
    }
    Ok(())
}
