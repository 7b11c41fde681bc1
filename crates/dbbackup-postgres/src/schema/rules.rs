//! Rules (`pg_get_ruledef`, with their enable state) and extended statistics
//! (`pg_get_statisticsobjdef`, with their statistics target), as pg_dump's `dumpRule` and
//! `dumpStatisticsExt` write them; both go to post-data.

use super::*;

pub(super) async fn read_rules(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    filter: &Filter,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let rules = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT n.nspname, c.relname, r.rulename, pg_get_ruledef(r.oid), r.ev_enabled::text
         FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE r.rulename <> '_RETURN' AND {} ORDER BY n.nspname, c.relname, r.rulename",
        not_ext("c.oid")
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "rules"))?;
    for r in rules {
        let (s, t, name, def, enabled): (String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !in_schema(&s) || !filter.table_included(&s, &t) {
            continue;
        }
        let full = format!("{s}.{t}.{name}");
        let def = def.trim_end().trim_end_matches(';').to_owned();
        cat.post_data.push(Statement::new("rule", &full, def));
        let state = match enabled.as_str() {
            "D" => Some("DISABLE RULE"),
            "A" => Some("ENABLE ALWAYS RULE"),
            "R" => Some("ENABLE REPLICA RULE"),
            _ => None,
        };
        if let Some(state) = state {
            cat.post_data.push(Statement::new(
                "rule state",
                &full,
                format!("ALTER TABLE {} {state} {}", q(&s, &t), ident(&name)),
            ));
        }
    }
    let stats = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT n.nspname, s.stxname, cn.nspname, c.relname, pg_get_statisticsobjdef(s.oid),
                coalesce(s.stxstattarget::int, -1)
         FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
         JOIN pg_class c ON c.oid = s.stxrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
         WHERE {} ORDER BY n.nspname, s.stxname",
        not_ext("s.oid")
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "extended statistics"))?;
    for r in stats {
        let (s, name, ts, t, def, target): (String, String, String, String, String, i32) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if !in_schema(&s) || !filter.table_included(&ts, &t) {
            continue;
        }
        let full = format!("{s}.{name}");
        cat.post_data
            .push(Statement::new("extended statistics", &full, def));
        if target >= 0 {
            cat.post_data.push(Statement::new(
                "statistics target",
                &full,
                format!("ALTER STATISTICS {} SET STATISTICS {target}", q(&s, &name)),
            ));
        }
    }
    Ok(())
}
