//! Comments on every object kind backed up.

use super::*;

pub(super) async fn read_comments(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let sql = format!(
        "SELECT CASE d.classoid
                  WHEN 'pg_class'::regclass THEN
                    CASE WHEN d.objsubid > 0 THEN 'COLUMN ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' ||
                              quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum = d.objsubid))
                         ELSE CASE c.relkind WHEN 'v' THEN 'VIEW ' WHEN 'm' THEN 'MATERIALIZED VIEW ' WHEN 'S' THEN 'SEQUENCE '
                                             WHEN 'i' THEN 'INDEX ' WHEN 'I' THEN 'INDEX ' ELSE 'TABLE ' END
                              || quote_ident(n.nspname) || '.' || quote_ident(c.relname) END
                  WHEN 'pg_namespace'::regclass THEN 'SCHEMA ' || (SELECT quote_ident(nspname) FROM pg_namespace WHERE oid = d.objoid)
                  WHEN 'pg_type'::regclass THEN (SELECT CASE typtype WHEN 'd' THEN 'DOMAIN ' ELSE 'TYPE ' END || format_type(oid, NULL) FROM pg_type WHERE oid = d.objoid)
                  WHEN 'pg_proc'::regclass THEN (SELECT CASE prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || quote_ident(pn.nspname) || '.' || quote_ident(proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')'
                                                 FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace WHERE p.oid = d.objoid)
                  WHEN 'pg_constraint'::regclass THEN (SELECT 'CONSTRAINT ' || quote_ident(conname) || ' ON ' ||
                                                         CASE WHEN contypid <> 0 THEN 'DOMAIN ' || format_type(contypid, NULL) ELSE conrelid::regclass::text END
                                                       FROM pg_constraint WHERE oid = d.objoid)
                  WHEN 'pg_trigger'::regclass THEN (SELECT 'TRIGGER ' || quote_ident(tgname) || ' ON ' || tgrelid::regclass::text FROM pg_trigger WHERE oid = d.objoid)
                  WHEN 'pg_rewrite'::regclass THEN (SELECT 'RULE ' || quote_ident(rulename) || ' ON ' || ev_class::regclass::text FROM pg_rewrite WHERE oid = d.objoid)
                  WHEN 'pg_statistic_ext'::regclass THEN (SELECT 'STATISTICS ' || quote_ident(sn.nspname) || '.' || quote_ident(stxname) FROM pg_statistic_ext se JOIN pg_namespace sn ON sn.oid = se.stxnamespace WHERE se.oid = d.objoid)
                  WHEN 'pg_largeobject'::regclass THEN 'LARGE OBJECT ' || d.objoid::text
                  WHEN 'pg_collation'::regclass THEN (SELECT 'COLLATION ' || quote_ident(cn.nspname) || '.' || quote_ident(collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = d.objoid)
                  WHEN 'pg_policy'::regclass THEN (SELECT 'POLICY ' || quote_ident(polname) || ' ON ' || polrelid::regclass::text FROM pg_policy WHERE oid = d.objoid)
                END,
                d.description,
                coalesce(n.nspname,
                         (SELECT nspname FROM pg_namespace WHERE oid = d.objoid AND d.classoid = 'pg_namespace'::regclass),
                         (SELECT tn.nspname FROM pg_type t JOIN pg_namespace tn ON tn.oid = t.typnamespace WHERE t.oid = d.objoid AND d.classoid = 'pg_type'::regclass),
                         (SELECT pn.nspname FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace WHERE p.oid = d.objoid AND d.classoid = 'pg_proc'::regclass),
                         (SELECT cn.nspname FROM pg_constraint co JOIN pg_namespace cn ON cn.oid = co.connamespace WHERE co.oid = d.objoid AND d.classoid = 'pg_constraint'::regclass),
                         (SELECT tn.nspname FROM pg_trigger tg JOIN pg_class tc ON tc.oid = tg.tgrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace WHERE tg.oid = d.objoid AND d.classoid = 'pg_trigger'::regclass),
                         (SELECT rn.nspname FROM pg_rewrite rw JOIN pg_class rc ON rc.oid = rw.ev_class JOIN pg_namespace rn ON rn.oid = rc.relnamespace WHERE rw.oid = d.objoid AND d.classoid = 'pg_rewrite'::regclass),
                         (SELECT sn.nspname FROM pg_statistic_ext se JOIN pg_namespace sn ON sn.oid = se.stxnamespace WHERE se.oid = d.objoid AND d.classoid = 'pg_statistic_ext'::regclass),
                         CASE WHEN d.classoid = 'pg_largeobject'::regclass THEN 'public' END,
                         (SELECT cn.nspname FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = d.objoid AND d.classoid = 'pg_collation'::regclass),
                         (SELECT pn.nspname FROM pg_policy po JOIN pg_class pc ON pc.oid = po.polrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE po.oid = d.objoid AND d.classoid = 'pg_policy'::regclass)),
                d.classoid IN ('pg_constraint'::regclass, 'pg_trigger'::regclass, 'pg_policy'::regclass, 'pg_rewrite'::regclass, 'pg_statistic_ext'::regclass, 'pg_largeobject'::regclass) OR (d.classoid = 'pg_class'::regclass AND c.relkind IN ('i', 'I'))
         FROM pg_description d
         LEFT JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND c.oid = d.objoid
         LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE d.classoid IN ('pg_class'::regclass, 'pg_namespace'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass,
                              'pg_constraint'::regclass, 'pg_trigger'::regclass, 'pg_policy'::regclass,
                              'pg_rewrite'::regclass, 'pg_statistic_ext'::regclass, 'pg_largeobject'::regclass,
                              'pg_collation'::regclass)
           AND {} ORDER BY d.classoid, d.objoid, d.objsubid",
        not_ext("d.objoid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "comments"))?
    {
        let (target, text, schema, post): (Option<String>, String, Option<String>, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let (Some(target), Some(schema)) = (target, schema) else {
            continue;
        };
        if !in_schema(&schema) || schema == "pg_catalog" {
            continue;
        }
        let stmt = Statement::new(
            "comment",
            target.clone(),
            format!("COMMENT ON {target} IS {}", literal(&text)),
        );
        if post {
            cat.post_data.push(stmt);
        } else {
            cat.pre_data.push(stmt);
        }
    }
    Ok(())
}
