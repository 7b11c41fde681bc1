//! Types: enums, composites, domains, ranges.

use super::*;

// Long on purpose: one catalog query per type kind (enum, composite, domain, range), each followed by its DDL (issue 16 splits the object kinds further).
pub(super) async fn read_types(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
    major: i32,
) -> Result<()> {
    // Enums.
    let sql = format!(
        "SELECT n.nspname, t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder), t.oid::int8
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
         WHERE {} GROUP BY t.oid, n.nspname, t.typname ORDER BY t.oid",
        not_ext("t.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "enums"))?
    {
        let (s, n, labels): (String, String, Vec<String>) = (r.get(0), r.get(1), r.get(2));
        if !in_schema(&s) {
            continue;
        }
        let labels: Vec<String> = labels.iter().map(|l| literal(l)).collect();
        cat.pre(
            Statement::new(
                "enum type",
                format!("{s}.{n}"),
                format!("CREATE TYPE {} AS ENUM ({})", q(&s, &n), labels.join(", ")),
            ),
            [Obj::new("pg_type", r.get(3))],
        );
    }
    // Ranges.
    let multirange = if major >= 14 {
        "(SELECT format_type(r.rngmultitypid, NULL))"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT n.nspname, t.typname, format_type(r.rngsubtype, NULL),
                CASE WHEN r.rngsubdiff <> 0 THEN r.rngsubdiff::regproc::text END,
                CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> (SELECT typcollation FROM pg_type WHERE oid = r.rngsubtype)
                     THEN (SELECT quote_ident(nspname) || '.' || quote_ident(collname) FROM pg_collation c JOIN pg_namespace cn ON cn.oid = c.collnamespace WHERE c.oid = r.rngcollation) END,
                {multirange}, t.oid::int8
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_range r ON r.rngtypid = t.oid
         WHERE {} ORDER BY t.oid",
        not_ext("t.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "range types"))?
    {
        let (s, n, sub): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if !in_schema(&s) {
            continue;
        }
        let mut opts = vec![format!("SUBTYPE = {sub}")];
        if let Some(d) = r.get::<Option<String>, _>(3) {
            opts.push(format!("SUBTYPE_DIFF = {d}"));
        }
        if let Some(c) = r.get::<Option<String>, _>(4) {
            opts.push(format!("COLLATION = {c}"));
        }
        if let Some(m) = r.get::<Option<String>, _>(5) {
            opts.push(format!("MULTIRANGE_TYPE_NAME = {m}"));
        }
        cat.pre(
            Statement::new(
                "range type",
                format!("{s}.{n}"),
                format!("CREATE TYPE {} AS RANGE ({})", q(&s, &n), opts.join(", ")),
            ),
            [Obj::new("pg_type", r.get(6))],
        );
    }
    // Domains and composite types, in creation (OID) order so one can build on another.
    let sql = format!(
        "SELECT t.oid::int8, n.nspname, t.typname, t.typtype::text,
                format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
                CASE WHEN t.typcollation <> 0 AND t.typcollation <> (SELECT typcollation FROM pg_type WHERE oid = t.typbasetype)
                     THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(c.collname) FROM pg_collation c JOIN pg_namespace cn ON cn.oid = c.collnamespace WHERE c.oid = t.typcollation) END
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE (t.typtype = 'd' OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
           AND {} ORDER BY t.oid",
        not_ext("t.oid")
    );
    let types = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "domains and composite types"))?;
    for r in types {
        let (oid, s, n, kind): (i64, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !in_schema(&s) {
            continue;
        }
        if kind == "d" {
            let mut sql = format!("CREATE DOMAIN {} AS {}", q(&s, &n), r.get::<String, _>(4));
            if let Some(c) = r.get::<Option<String>, _>(7) {
                sql.push_str(&format!(" COLLATE {c}"));
            }
            if let Some(d) = r.get::<Option<String>, _>(6) {
                sql.push_str(&format!(" DEFAULT {d}"));
            }
            if r.get::<bool, _>(5) {
                sql.push_str(" NOT NULL");
            }
            let checks = sqlx::query(
                "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE contypid = $1::int8::oid AND contype = 'c' ORDER BY conname",
            )
            .bind(oid)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, "domain constraints"))?;
            for c in checks {
                let (name, def) = (ident(&c.get::<String, _>(0)), c.get::<String, _>(1));
                if c.get::<bool, _>(2) {
                    sql.push_str(&format!(" CONSTRAINT {name} {def}"));
                } else {
                    // CREATE DOMAIN takes no NOT VALID constraint; like pg_dump, add it after the
                    // data (whose existing values it does not check).
                    cat.post_data.push(Statement::new(
                        "domain constraint",
                        format!("{s}.{n}.{name}"),
                        format!("ALTER DOMAIN {} ADD CONSTRAINT {name} {def}", q(&s, &n)),
                    ));
                }
            }
            cat.pre(
                Statement::new("domain", format!("{s}.{n}"), sql),
                [Obj::new("pg_type", oid)],
            );
        } else {
            let attrs = sqlx::query(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                        CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid)
                             THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(c.collname) FROM pg_collation c JOIN pg_namespace cn ON cn.oid = c.collnamespace WHERE c.oid = a.attcollation) END
                 FROM pg_attribute a JOIN pg_type t ON t.typrelid = a.attrelid
                 WHERE t.oid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            )
            .bind(oid)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| catalog_err(e, "composite type attributes"))?;
            let cols: Vec<String> = attrs
                .iter()
                .map(|a| {
                    let mut c = format!(
                        "{} {}",
                        ident(&a.get::<String, _>(0)),
                        a.get::<String, _>(1)
                    );
                    if let Some(coll) = a.get::<Option<String>, _>(2) {
                        c.push_str(&format!(" COLLATE {coll}"));
                    }
                    c
                })
                .collect();
            cat.pre(
                Statement::new(
                    "composite type",
                    format!("{s}.{n}"),
                    format!("CREATE TYPE {} AS ({})", q(&s, &n), cols.join(", ")),
                ),
                [Obj::new("pg_type", oid)],
            );
        }
    }
    Ok(())
}

/// Base types (`dumpBaseType`, `dumpShellType`): a shell type first, then its I/O and support
/// functions (written in C or `internal`, so they depend on nothing else of ours), then the full
/// definition, before every other type, which may build on one. Returns the functions written
/// here, which `read_functions` leaves out.
pub(super) async fn read_base_types(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
    major: i32,
) -> Result<BTreeSet<i64>> {
    let subscript = if major >= 14 {
        "t.typsubscript"
    } else {
        "0::regproc"
    };
    let f = |col: &str| format!("CASE WHEN {col} <> 0 THEN {} END", qproc(col));
    let sql = format!(
        "SELECT n.nspname, t.typname,
                ARRAY[t.typinput, t.typoutput, t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typanalyze, {subscript}]::oid[]::int8[],
                {input}, {output}, {receive}, {send}, {modin}, {modout}, {analyze}, {subscr},
                t.typlen::int4, t.typbyval, t.typalign::text, t.typstorage::text, t.typcategory::text, t.typispreferred,
                t.typdelim::text, CASE WHEN t.typelem <> 0 THEN format_type(t.typelem, NULL) END, t.typcollation <> 0, t.typdefault, t.oid::int8
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE t.typtype = 'b' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND NOT (t.typelem <> 0 AND (SELECT e.typarray FROM pg_type e WHERE e.oid = t.typelem) = t.oid)
           AND {not_ext} ORDER BY t.oid",
        input = f("t.typinput"),
        output = f("t.typoutput"),
        receive = f("t.typreceive"),
        send = f("t.typsend"),
        modin = f("t.typmodin"),
        modout = f("t.typmodout"),
        analyze = f("t.typanalyze"),
        subscr = f(subscript),
        not_ext = not_ext("t.oid"),
    );
    let types = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "base types"))?;
    let mut shells = Vec::new();
    let mut full = Vec::new();
    let mut functions: BTreeSet<i64> = BTreeSet::new();
    for r in types {
        let (s, n): (String, String) = (r.get(0), r.get(1));
        if !in_schema(&s) {
            continue;
        }
        functions.extend(r.get::<Vec<i64>, _>(2).into_iter().filter(|&o| o != 0));
        let oid: i64 = r.get(21);
        shells.push((
            Statement::new(
                "shell type",
                format!("{s}.{n}"),
                format!("CREATE TYPE {}", q(&s, &n)),
            ),
            oid,
        ));
        let mut opts = Vec::new();
        for (i, key) in [
            (3, "INPUT"),
            (4, "OUTPUT"),
            (5, "RECEIVE"),
            (6, "SEND"),
            (7, "TYPMOD_IN"),
            (8, "TYPMOD_OUT"),
            (9, "ANALYZE"),
            (10, "SUBSCRIPT"),
        ] {
            if let Some(func) = r.get::<Option<String>, _>(i) {
                opts.push(format!("{key} = {func}"));
            }
        }
        let len: i32 = r.get(11);
        opts.push(if len < 0 {
            "INTERNALLENGTH = VARIABLE".to_owned()
        } else {
            format!("INTERNALLENGTH = {len}")
        });
        if r.get::<bool, _>(12) {
            opts.push("PASSEDBYVALUE".into());
        }
        let align = match r.get::<String, _>(13).as_str() {
            "c" => "char",
            "s" => "int2",
            "d" => "double",
            _ => "int4",
        };
        let storage = match r.get::<String, _>(14).as_str() {
            "e" => "external",
            "m" => "main",
            "x" => "extended",
            _ => "plain",
        };
        opts.push(format!("ALIGNMENT = {align}"));
        opts.push(format!("STORAGE = {storage}"));
        opts.push(format!("CATEGORY = {}", literal(&r.get::<String, _>(15))));
        if r.get::<bool, _>(16) {
            opts.push("PREFERRED = true".into());
        }
        opts.push(format!("DELIMITER = {}", literal(&r.get::<String, _>(17))));
        if let Some(e) = r.get::<Option<String>, _>(18) {
            opts.push(format!("ELEMENT = {e}"));
        }
        if r.get::<bool, _>(19) {
            opts.push("COLLATABLE = true".into());
        }
        if let Some(d) = r.get::<Option<String>, _>(20) {
            opts.push(format!("DEFAULT = {}", literal(&d)));
        }
        full.push((
            Statement::new(
                "base type",
                format!("{s}.{n}"),
                format!("CREATE TYPE {} ({})", q(&s, &n), opts.join(", ")),
            ),
            oid,
        ));
    }
    if functions.is_empty() {
        return Ok(functions);
    }
    for (stmt, oid) in shells {
        cat.pre(stmt, [Obj::new(SHELL_TYPE, oid)]);
    }
    // The support functions that are ours (not the server's, not an extension's).
    let sql = format!(
        "SELECT p.oid::int8, n.nspname, p.proname, pg_get_functiondef(p.oid), pg_get_function_identity_arguments(p.oid)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.oid = ANY($1::int8[]::oid[]) AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND {}
         ORDER BY p.oid",
        not_ext("p.oid")
    );
    let ours: Vec<i64> = functions.iter().copied().collect();
    let mut written = BTreeSet::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&ours)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "base type functions"))?
    {
        let (oid, s, n, def, args): (i64, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        written.insert(oid);
        cat.pre(
            Statement::new("function", format!("{s}.{n}({args})"), def),
            [Obj::new("pg_proc", oid)],
        );
    }
    for (stmt, oid) in full {
        cat.pre_after(
            stmt,
            [Obj::new("pg_type", oid)],
            [Obj::new(SHELL_TYPE, oid)],
        );
    }
    Ok(written)
}
