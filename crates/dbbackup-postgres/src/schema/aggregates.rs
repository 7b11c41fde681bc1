//! Aggregates (`dumpAgg`): plain, ordered-set and hypothetical-set, with their moving-aggregate
//! forms, combine/serial functions, sort operators and parallel safety. The signature comes from
//! `pg_get_function_arguments`, which writes `ORDER BY` for ordered-set aggregates.

use super::*;

pub(super) async fn read_aggregates(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let f = |col: &str| {
        format!(
            "CASE WHEN a.{col} <> 0 THEN {} END",
            qproc(&format!("a.{col}"))
        )
    };
    let sql = format!(
        "SELECT n.nspname, p.proname, pg_get_function_arguments(p.oid), pg_get_function_identity_arguments(p.oid),
                a.aggkind::text, {transfn}, format_type(a.aggtranstype, NULL), a.aggtransspace,
                {finalfn}, a.aggfinalextra, a.aggfinalmodify::text, {combinefn}, {serialfn}, {deserialfn},
                a.agginitval, {mtransfn}, {minvtransfn},
                CASE WHEN a.aggmtranstype <> 0 THEN format_type(a.aggmtranstype, NULL) END, a.aggmtransspace,
                {mfinalfn}, a.aggmfinalextra, a.aggmfinalmodify::text, a.aggminitval,
                CASE WHEN a.aggsortop <> 0 THEN {sortop} END, p.proparallel::text, p.oid::int8
         FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE {not_ext} ORDER BY p.oid",
        transfn = f("aggtransfn"),
        finalfn = f("aggfinalfn"),
        combinefn = f("aggcombinefn"),
        serialfn = f("aggserialfn"),
        deserialfn = f("aggdeserialfn"),
        mtransfn = f("aggmtransfn"),
        minvtransfn = f("aggminvtransfn"),
        mfinalfn = f("aggmfinalfn"),
        sortop = qoper("a.aggsortop"),
        not_ext = not_ext("p.oid"),
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "aggregates"))?
    {
        let (s, n, args, identity, kind): (String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !in_schema(&s) {
            continue;
        }
        let text = |i: usize| r.get::<Option<String>, _>(i);
        let modify = |c: Option<String>| match c.as_deref() {
            Some("s") => "SHAREABLE",
            Some("w") => "READ_WRITE",
            _ => "READ_ONLY",
        };
        let mut opts = vec![
            format!("SFUNC = {}", text(5).unwrap_or_default()),
            format!("STYPE = {}", r.get::<String, _>(6)),
        ];
        let space: i32 = r.get(7);
        if space != 0 {
            opts.push(format!("SSPACE = {space}"));
        }
        if let Some(fin) = text(8) {
            opts.push(format!("FINALFUNC = {fin}"));
            if r.get::<bool, _>(9) {
                opts.push("FINALFUNC_EXTRA".into());
            }
            opts.push(format!("FINALFUNC_MODIFY = {}", modify(text(10))));
        }
        for (i, key) in [
            (11, "COMBINEFUNC"),
            (12, "SERIALFUNC"),
            (13, "DESERIALFUNC"),
        ] {
            if let Some(v) = text(i) {
                opts.push(format!("{key} = {v}"));
            }
        }
        if let Some(init) = text(14) {
            opts.push(format!("INITCOND = {}", literal(&init)));
        }
        if let Some(m) = text(15) {
            opts.push(format!("MSFUNC = {m}"));
            if let Some(inv) = text(16) {
                opts.push(format!("MINVFUNC = {inv}"));
            }
            if let Some(t) = text(17) {
                opts.push(format!("MSTYPE = {t}"));
            }
            let mspace: i32 = r.get(18);
            if mspace != 0 {
                opts.push(format!("MSSPACE = {mspace}"));
            }
            if let Some(fin) = text(19) {
                opts.push(format!("MFINALFUNC = {fin}"));
                if r.get::<bool, _>(20) {
                    opts.push("MFINALFUNC_EXTRA".into());
                }
                opts.push(format!("MFINALFUNC_MODIFY = {}", modify(text(21))));
            }
            if let Some(init) = text(22) {
                opts.push(format!("MINITCOND = {}", literal(&init)));
            }
        }
        if let Some(op) = text(23) {
            opts.push(format!("SORTOP = {op}"));
        }
        match text(24).as_deref() {
            Some("s") => opts.push("PARALLEL = SAFE".into()),
            Some("r") => opts.push("PARALLEL = RESTRICTED".into()),
            _ => {}
        }
        if kind == "h" {
            opts.push("HYPOTHETICAL".into());
        }
        let args = if args.is_empty() {
            "*".to_owned()
        } else {
            args
        };
        cat.pre(
            Statement::new(
                "aggregate",
                format!("{s}.{n}({identity})"),
                format!(
                    "CREATE AGGREGATE {}({args}) ({})",
                    q(&s, &n),
                    opts.join(", ")
                ),
            ),
            [Obj::new("pg_proc", r.get(25))],
        );
    }
    Ok(())
}
