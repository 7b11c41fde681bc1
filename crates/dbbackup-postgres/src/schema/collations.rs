//! Collations (`dumpCollation`): libc and ICU providers, nondeterministic collations, ICU rules
//! (16+), in pre-data before the types and tables that use them. The locale columns differ by
//! version (`colliculocale` 15–16, `colllocale` 17+).

use super::*;

pub(super) async fn read_collations(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
    major: i32,
) -> Result<()> {
    let locale = match major {
        ..=14 => "NULL::text",
        15 | 16 => "c.colliculocale",
        _ => "c.colllocale",
    };
    let rules = if major >= 16 {
        "c.collicurules"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT n.nspname, c.collname, c.collprovider::text, c.collisdeterministic,
                c.collcollate, c.collctype, {locale}, {rules}, c.oid::int8
         FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND {}
         ORDER BY n.nspname, c.collname",
        not_ext("c.oid")
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "collations"))?
    {
        let (s, n, provider, deterministic): (String, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !in_schema(&s) {
            continue;
        }
        let (collate, ctype, icu, rules): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = (r.get(4), r.get(5), r.get(6), r.get(7));
        let mut opts = vec![format!(
            "provider = {}",
            match provider.as_str() {
                "i" => "icu",
                "b" => "builtin",
                "c" => "libc",
                _ => "default",
            }
        )];
        if !deterministic {
            opts.push("deterministic = false".into());
        }
        match (provider.as_str(), icu, collate, ctype) {
            ("i" | "b", Some(l), _, _) => opts.push(format!("locale = {}", literal(&l))),
            // Before 15 an ICU collation's locale is in collcollate.
            ("i", None, Some(c), _) => opts.push(format!("locale = {}", literal(&c))),
            (_, _, Some(c), Some(t)) if c == t => opts.push(format!("locale = {}", literal(&c))),
            (_, _, c, t) => {
                if let Some(c) = c {
                    opts.push(format!("lc_collate = {}", literal(&c)));
                }
                if let Some(t) = t {
                    opts.push(format!("lc_ctype = {}", literal(&t)));
                }
            }
        }
        if let Some(rules) = rules {
            opts.push(format!("rules = {}", literal(&rules)));
        }
        cat.pre(
            Statement::new(
                "collation",
                format!("{s}.{n}"),
                format!("CREATE COLLATION {} ({})", q(&s, &n), opts.join(", ")),
            ),
            [Obj::new("pg_collation", r.get(8))],
        );
    }
    Ok(())
}

/// Encoding conversions (`dumpConversion`), after the functions that perform them.
pub(super) async fn read_conversions(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let sql = format!(
        "SELECT n.nspname, c.conname, c.condefault, pg_encoding_to_char(c.conforencoding),
                pg_encoding_to_char(c.contoencoding), {func}, c.oid::int8
         FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND {not_ext} ORDER BY c.oid",
        func = qproc("c.conproc"),
        not_ext = not_ext("c.oid"),
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "conversions"))?
    {
        let (s, n, default, from, to, func): (String, String, bool, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if !in_schema(&s) {
            continue;
        }
        cat.pre(
            Statement::new(
                "conversion",
                format!("{s}.{n}"),
                format!(
                    "CREATE {}CONVERSION {} FOR {} TO {} FROM {func}",
                    if default { "DEFAULT " } else { "" },
                    q(&s, &n),
                    literal(&from),
                    literal(&to)
                ),
            ),
            [Obj::new("pg_conversion", r.get(6))],
        );
    }
    Ok(())
}
