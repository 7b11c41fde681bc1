//! Tables, partitions, columns, defaults, identity columns.

use super::*;

// Long on purpose: one walk over pg_class: each table's columns, defaults, identity and partition bound are read and deparsed in the order the DDL needs them (issue 16 splits the object kinds further).
pub(super) async fn read_tables(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    filter: &Filter,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    // Parents before children (partitions and inheritance), then by OID.
    let sql = format!(
        "WITH RECURSIVE tree AS (
             SELECT c.oid, 0 AS depth FROM pg_class c
             WHERE c.relkind IN ('r','p','f') AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
           UNION ALL
             SELECT i.inhrelid, tree.depth + 1 FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid
         )
         SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, c.relpersistence::text, c.relispartition,
                CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
                (SELECT string_agg(quote_ident(pn.nspname) || '.' || quote_ident(pc.relname), ', ' ORDER BY i.inhseqno)
                   FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                   WHERE i.inhrelid = c.oid),
                array_to_string(c.reloptions, ', '), c.reltuples::int8,
                (SELECT max(depth) FROM tree WHERE tree.oid = c.oid),
                pg_relation_size(c.oid) / current_setting('block_size')::int8,
                (SELECT quote_ident(amname) FROM pg_am WHERE oid = c.relam),
                (SELECT quote_ident(s.srvname) FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver WHERE ft.ftrelid = c.oid),
                (SELECT {ftopts} FROM pg_foreign_table ft WHERE ft.ftrelid = c.oid),
                greatest(pg_relation_size(c.oid) - 28 * greatest(c.reltuples, 0)::int8, 0)
                  + CASE WHEN c.reltoastrelid <> 0 THEN pg_relation_size(c.reltoastrelid) ELSE 0 END
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r','p','f') AND {not_ext}
         ORDER BY 12, c.oid",
        ftopts = options_sql("ft.ftoptions"),
        not_ext = not_ext("c.oid")
    );
    let tables = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "tables"))?;
    let mut all = Vec::new();
    for r in tables {
        let (oid, s, n, kind, persistence, is_partition): (
            i64,
            String,
            String,
            String,
            String,
            bool,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if in_schema(&s) {
            all.push(format!("{s}.{n}"));
        }
        if !in_schema(&s) || !filter.table_included(&s, &n) {
            continue;
        }
        let partkey: Option<String> = r.get(6);
        let bound: Option<String> = r.get(7);
        let parents: Option<String> = r.get(8);
        let options: Option<String> = r.get(9);
        let estimated: i64 = r.get(10);
        let pages: i64 = r.get(12);
        let estimated_bytes: i64 = r.get(16);
        let access_method: Option<String> = r.get(13);
        let foreign = kind == "f";

        let cols = sqlx::query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),
                    a.attidentity::text, a.attgenerated::text, a.attislocal,
                    CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid)
                         THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END,
                    pg_get_serial_sequence(quote_ident($2) || '.' || quote_ident($3), a.attname),
                    array_to_string(ARRAY(SELECT quote_ident(option_name) || ' ' || quote_literal(option_value)
                                          FROM pg_options_to_table(a.attfdwoptions)), ', '),
                    a.attgenerated <> '' AND a.attinhcount > 0 AND pg_get_expr(ad.adbin, ad.adrelid) IS NOT DISTINCT FROM
                      (SELECT pg_get_expr(pad.adbin, pad.adrelid) FROM pg_inherits i
                       JOIN pg_attribute pa ON pa.attrelid = i.inhparent AND pa.attname = a.attname AND pa.attgenerated <> ''
                       JOIN pg_attrdef pad ON pad.adrelid = pa.attrelid AND pad.adnum = pa.attnum
                       WHERE i.inhrelid = a.attrelid ORDER BY i.inhseqno LIMIT 1)
             FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
             WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
        .bind(oid)
        .bind(&s)
        .bind(&n)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "columns"))?;

        let mut defs = Vec::new();
        let mut copy_cols = Vec::new();
        for c in &cols {
            let (name, ty, notnull, default, identity, generated, local): (
                String,
                String,
                bool,
                Option<String>,
                String,
                String,
                bool,
            ) = (
                c.get(0),
                c.get(1),
                c.get(2),
                c.get(3),
                c.get(4),
                c.get(5),
                c.get(6),
            );
            if generated.is_empty() {
                copy_cols.push(name.clone());
            }
            // Columns inherited from a parent come with it; partitions take every column from it.
            if !local || is_partition {
                continue;
            }
            let mut d = format!("{} {ty}", ident(&name));
            d.push_str(&options_clause(c.get(9)));
            if let Some(coll) = c.get::<Option<String>, _>(7) {
                d.push_str(&format!(" COLLATE {coll}"));
            }
            // A local column that is also inherited takes the parent's generation expression
            // (and may not repeat it before PostgreSQL 16), as pg_dump writes it.
            if generated == "s" {
                if !c.get::<bool, _>(10) {
                    d.push_str(&format!(
                        " GENERATED ALWAYS AS ({}) STORED",
                        default.clone().unwrap_or_default()
                    ));
                }
            } else if !identity.is_empty() {
                let seq: Option<String> = c.get(8);
                let how = if identity == "a" {
                    "ALWAYS"
                } else {
                    "BY DEFAULT"
                };
                let mut opts = String::new();
                if let Some(seq) = &seq {
                    if let Some(o) = identity_options(conn, seq).await? {
                        opts = format!(" ({o})");
                    }
                }
                d.push_str(&format!(" GENERATED {how} AS IDENTITY{opts}"));
            } else if let Some(def) = default {
                d.push_str(&format!(" DEFAULT {def}"));
            }
            if notnull {
                d.push_str(" NOT NULL");
            }
            defs.push(d);
        }
        // Local CHECK constraints go inline; NOT VALID ones are added after the data; one that
        // calls a function of ours comes after the table, since the function may need the
        // table's row type (pg_dump's separate CHECK constraint).
        let mut split = Vec::new();
        let checks = sqlx::query(
            "SELECT conname, pg_get_constraintdef(oid), convalidated, oid::int8,
                    EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_constraint'::regclass AND d.objid = pg_constraint.oid
                              AND d.refclassid = 'pg_proc'::regclass AND d.refobjid >= 16384)
             FROM pg_constraint
             WHERE conrelid = $1::int8::oid AND contype = 'c' AND conislocal ORDER BY conname",
        )
        .bind(oid)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "check constraints"))?;
        for c in checks {
            let (cname, def, valid): (String, String, bool) = (c.get(0), c.get(1), c.get(2));
            let calls_ours: bool = c.get(4);
            if valid && !calls_ours {
                defs.push(format!("CONSTRAINT {} {def}", ident(&cname)));
                continue;
            }
            let stmt = Statement::new(
                "check constraint",
                format!("{s}.{n}.{cname}"),
                format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {def}",
                    q(&s, &n),
                    ident(&cname)
                ),
            );
            if valid {
                split.push((stmt, c.get::<i64, _>(3)));
            } else {
                cat.post_data.push(stmt);
            }
        }

        let unlogged = match (persistence.as_str(), foreign) {
            (_, true) => "FOREIGN ",
            ("u", _) => "UNLOGGED ",
            _ => "",
        };
        let mut sql = if is_partition {
            let parent = parents.clone().unwrap_or_default();
            let mut sql = format!("CREATE {unlogged}TABLE {} PARTITION OF {parent}", q(&s, &n));
            if !defs.is_empty() {
                sql.push_str(&format!(" ({})", defs.join(", ")));
            }
            sql.push_str(&format!(" {}", bound.unwrap_or_default()));
            sql
        } else {
            let mut sql = format!("CREATE {unlogged}TABLE {} ({})", q(&s, &n), defs.join(", "));
            if let Some(p) = &parents {
                sql.push_str(&format!(" INHERITS ({p})"));
            }
            sql
        };
        if let Some(k) = partkey {
            sql.push_str(&format!(" PARTITION BY {k}"));
        }
        if let Some(am) = access_method {
            sql.push_str(&format!(" USING {am}"));
        }
        if let Some(o) = options.filter(|o| !o.is_empty()) {
            sql.push_str(&format!(" WITH ({o})"));
        }
        if foreign {
            let server: String = r.get(14);
            sql.push_str(&format!(" SERVER {server}{}", options_clause(r.get(15))));
        }
        let what = if foreign { "foreign table" } else { "table" };
        cat.pre(
            Statement::new(what, format!("{s}.{n}"), sql),
            [Obj::new("pg_class", oid)],
        );
        for (stmt, constraint) in split {
            cat.pre_after(
                stmt,
                [Obj::new("pg_constraint", constraint)],
                [Obj::new("pg_class", oid)],
            );
        }
        // Identity sequences: set after the data (last value as of the snapshot).
        for c in &cols {
            let identity: String = c.get(4);
            let seq: Option<String> = c.get(8);
            if let (false, Some(seq)) = (identity.is_empty(), seq) {
                let v: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT CASE WHEN is_called THEN last_value END FROM {seq}"
                )))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| catalog_err(e, "identity sequence values"))?;
                if let Some(v) = v {
                    cat.post_data.push(Statement::new(
                        "sequence value",
                        seq.clone(),
                        format!("SELECT pg_catalog.setval({}, {v}, true)", literal(&seq)),
                    ));
                }
            }
        }
        if kind == "r" {
            cat.tables.push(TableData {
                schema: s.clone(),
                name: n.clone(),
                columns: copy_cols,
                estimated_rows: estimated,
                pages,
                estimated_bytes,
            });
        }
    }
    filter.check_includes_match(
        &all,
        "PostgreSQL table patterns match schema.table; one without a '.' matches the name in any schema",
    )?;
    Ok(())
}

/// `SEQUENCE NAME ... START WITH ... ` options of an identity column's sequence.
pub(super) async fn identity_options(conn: &mut PgConnection, seq: &str) -> Result<Option<String>> {
    let r = sqlx::query(
        "SELECT s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle, format_type(s.seqtypid, NULL)
         FROM pg_sequence s WHERE s.seqrelid = $1::regclass",
    )
    .bind(seq)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "identity sequences"))?;
    Ok(r.map(|r| {
        let (start, inc, min, max, cache, cycle): (i64, i64, i64, i64, i64, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        format!(
            "SEQUENCE NAME {seq} START WITH {start} INCREMENT BY {inc} MINVALUE {min} MAXVALUE {max} CACHE {cache}{}",
            if cycle { " CYCLE" } else { " NO CYCLE" }
        )
    }))
}
