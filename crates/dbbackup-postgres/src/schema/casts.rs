//! Casts (`dumpCast`, pre-data after functions and tables) and event triggers (`dumpEventTrigger`,
//! the very last statements, so that they do not fire while the rest of the restore runs).

use super::*;

pub(super) async fn read_casts(conn: &mut PgConnection, cat: &mut Catalog) -> Result<()> {
    let casts = sqlx::query(
        "SELECT format_type(c.castsource, NULL), format_type(c.casttarget, NULL), c.castmethod::text,
                c.castcontext::text,
                (SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')'
                   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = c.castfunc),
                c.oid::int8
         FROM pg_cast c
         WHERE c.oid >= 16384 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('e', 'i'))
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "casts"))?;
    for r in casts {
        let (source, target, method, context): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let how = match (method.as_str(), r.get::<Option<String>, _>(4)) {
            ("f", Some(func)) => format!("WITH FUNCTION {func}"),
            ("i", _) => "WITH INOUT".to_owned(),
            _ => "WITHOUT FUNCTION".to_owned(),
        };
        let context = match context.as_str() {
            "a" => " AS ASSIGNMENT",
            "i" => " AS IMPLICIT",
            _ => "",
        };
        cat.pre(
            Statement::new(
                "cast",
                format!("{source} AS {target}"),
                format!("CREATE CAST ({source} AS {target}) {how}{context}"),
            ),
            [Obj::new("pg_cast", r.get(5))],
        );
    }
    Ok(())
}

pub(super) async fn read_event_triggers(conn: &mut PgConnection, cat: &mut Catalog) -> Result<()> {
    let triggers = sqlx::query(
        "SELECT e.evtname, e.evtevent, array_to_string(ARRAY(SELECT quote_literal(t) FROM unnest(e.evttags) t), ', '),
                quote_ident(n.nspname) || '.' || quote_ident(p.proname), e.evtenabled::text
         FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = e.oid AND d.deptype = 'e')
         ORDER BY e.evtname",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "event triggers"))?;
    for r in triggers {
        let (name, event, tags, func, enabled): (String, String, Option<String>, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let mut sql = format!("CREATE EVENT TRIGGER {} ON {}", ident(&name), ident(&event));
        if let Some(tags) = tags.filter(|t| !t.is_empty()) {
            sql.push_str(&format!(" WHEN TAG IN ({tags})"));
        }
        sql.push_str(&format!(" EXECUTE FUNCTION {func}()"));
        cat.post_data
            .push(Statement::new("event trigger", &name, sql));
        let state = match enabled.as_str() {
            "D" => Some("DISABLE"),
            "R" => Some("ENABLE REPLICA"),
            "A" => Some("ENABLE ALWAYS"),
            _ => None,
        };
        if let Some(state) = state {
            cat.post_data.push(Statement::new(
                "event trigger state",
                &name,
                format!("ALTER EVENT TRIGGER {} {state}", ident(&name)),
            ));
        }
    }
    Ok(())
}
