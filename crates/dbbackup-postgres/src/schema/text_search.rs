//! Text search parsers (`dumpTSParser`), templates (`dumpTSTemplate`), dictionaries
//! (`dumpTSDictionary`) and configurations with their token mappings (`dumpTSConfig`), in that
//! order, before the tables whose expressions name them.

use super::*;

fn qname(schema_col: &str, name_col: &str) -> String {
    format!("quote_ident({schema_col}) || '.' || quote_ident({name_col})")
}

// Long on purpose: four small kinds, one query each, that only make sense in this order.
pub(super) async fn read_text_search(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let user = "n.nspname NOT IN ('pg_catalog', 'information_schema')";
    let parsers = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT n.nspname, {name}, {start}, {token}, {end}, {lextypes},
                CASE WHEN p.prsheadline <> 0 THEN {headline} END, p.oid::int8
         FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace
         WHERE {user} AND {not_ext} ORDER BY p.oid",
        name = qname("n.nspname", "p.prsname"),
        start = qproc("p.prsstart"),
        token = qproc("p.prstoken"),
        end = qproc("p.prsend"),
        lextypes = qproc("p.prslextype"),
        headline = qproc("p.prsheadline"),
        not_ext = not_ext("p.oid"),
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "text search parsers"))?;
    for r in parsers {
        let (s, name): (String, String) = (r.get(0), r.get(1));
        if !in_schema(&s) {
            continue;
        }
        let mut opts = format!(
            "START = {}, GETTOKEN = {}, END = {}, LEXTYPES = {}",
            r.get::<String, _>(2),
            r.get::<String, _>(3),
            r.get::<String, _>(4),
            r.get::<String, _>(5)
        );
        if let Some(h) = r.get::<Option<String>, _>(6) {
            opts.push_str(&format!(", HEADLINE = {h}"));
        }
        cat.pre(
            Statement::new(
                "text search parser",
                &name,
                format!("CREATE TEXT SEARCH PARSER {name} ({opts})"),
            ),
            [Obj::new("pg_ts_parser", r.get(7))],
        );
    }

    let templates = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT n.nspname, {name}, CASE WHEN t.tmplinit <> 0 THEN {init} END, {lexize}, t.oid::int8
         FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace
         WHERE {user} AND {not_ext} ORDER BY t.oid",
        name = qname("n.nspname", "t.tmplname"),
        init = qproc("t.tmplinit"),
        lexize = qproc("t.tmpllexize"),
        not_ext = not_ext("t.oid"),
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "text search templates"))?;
    for r in templates {
        let (s, name): (String, String) = (r.get(0), r.get(1));
        if !in_schema(&s) {
            continue;
        }
        let mut opts = Vec::new();
        if let Some(init) = r.get::<Option<String>, _>(2) {
            opts.push(format!("INIT = {init}"));
        }
        opts.push(format!("LEXIZE = {}", r.get::<String, _>(3)));
        cat.pre(
            Statement::new(
                "text search template",
                &name,
                format!("CREATE TEXT SEARCH TEMPLATE {name} ({})", opts.join(", ")),
            ),
            [Obj::new("pg_ts_template", r.get(4))],
        );
    }

    let dictionaries = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT n.nspname, {name}, (SELECT {tmpl} FROM pg_ts_template t JOIN pg_namespace tn ON tn.oid = t.tmplnamespace
                                     WHERE t.oid = d.dicttemplate), d.dictinitoption, d.oid::int8
         FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace
         WHERE {user} AND {not_ext} ORDER BY d.oid",
        name = qname("n.nspname", "d.dictname"),
        tmpl = qname("tn.nspname", "t.tmplname"),
        not_ext = not_ext("d.oid"),
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "text search dictionaries"))?;
    for r in dictionaries {
        let (s, name, template): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if !in_schema(&s) {
            continue;
        }
        let mut opts = format!("TEMPLATE = {template}");
        if let Some(init) = r.get::<Option<String>, _>(3).filter(|i| !i.is_empty()) {
            opts.push_str(&format!(", {init}"));
        }
        cat.pre(
            Statement::new(
                "text search dictionary",
                &name,
                format!("CREATE TEXT SEARCH DICTIONARY {name} ({opts})"),
            ),
            [Obj::new("pg_ts_dict", r.get(4))],
        );
    }

    let configs = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT c.oid::int8, n.nspname, {name},
                (SELECT {prs} FROM pg_ts_parser p JOIN pg_namespace pn ON pn.oid = p.prsnamespace WHERE p.oid = c.cfgparser),
                c.cfgparser::int8
         FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
         WHERE {user} AND {not_ext} ORDER BY c.oid",
        name = qname("n.nspname", "c.cfgname"),
        prs = qname("pn.nspname", "p.prsname"),
        not_ext = not_ext("c.oid"),
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "text search configurations"))?;
    for r in configs {
        let (oid, s, name, parser, parser_oid): (i64, String, String, String, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !in_schema(&s) {
            continue;
        }
        cat.pre(
            Statement::new(
                "text search configuration",
                &name,
                format!("CREATE TEXT SEARCH CONFIGURATION {name} (PARSER = {parser})"),
            ),
            [Obj::new("pg_ts_config", oid)],
        );
        let sql = format!(
            "SELECT (SELECT t.alias FROM ts_token_type($2::int8::oid) t WHERE t.tokid = m.maptokentype),
                    string_agg((SELECT {dict} FROM pg_ts_dict d JOIN pg_namespace dn ON dn.oid = d.dictnamespace WHERE d.oid = m.mapdict),
                               ', ' ORDER BY m.mapseqno)
             FROM pg_ts_config_map m WHERE m.mapcfg = $1::int8::oid
             GROUP BY m.maptokentype ORDER BY m.maptokentype",
            dict = qname("dn.nspname", "d.dictname"),
        );
        for m in sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(oid)
            .bind(parser_oid)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, "text search configuration mappings"))?
        {
            let (token, dicts): (String, String) = (m.get(0), m.get(1));
            cat.pre_after(
                Statement::new(
                    "text search mapping",
                    format!("{name} {token}"),
                    format!(
                        "ALTER TEXT SEARCH CONFIGURATION {name} ADD MAPPING FOR {} WITH {dicts}",
                        ident(&token)
                    ),
                ),
                [],
                [Obj::new("pg_ts_config", oid)],
            );
        }
    }
    Ok(())
}
