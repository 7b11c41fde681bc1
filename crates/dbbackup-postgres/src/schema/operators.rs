//! Operators (`dumpOpr`), access methods (`dumpAccessMethod`), operator families
//! (`dumpOpfamily`, with the members no operator class owns) and operator classes
//! (`dumpOpclass`). Shell operators (referenced as a commutator or negator before they were
//! defined) are not objects of their own: the definitions that name them recreate them.

use super::*;

/// `schema.op(left, right)` with `NONE` for a missing side, as `ALTER OPERATOR` names one.
pub(crate) const OPERATOR_SIG: &str = "quote_ident(n.nspname) || '.' || o.oprname || '(' ||
    CASE WHEN o.oprleft = 0 THEN 'NONE' ELSE format_type(o.oprleft, NULL) END || ', ' ||
    CASE WHEN o.oprright = 0 THEN 'NONE' ELSE format_type(o.oprright, NULL) END || ')'";

pub(super) async fn read_operators(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let sql = format!(
        "SELECT n.nspname, {OPERATOR_SIG}, quote_ident(n.nspname) || '.' || o.oprname,
                CASE WHEN o.oprleft <> 0 THEN format_type(o.oprleft, NULL) END,
                CASE WHEN o.oprright <> 0 THEN format_type(o.oprright, NULL) END,
                {code}, CASE WHEN o.oprcom <> 0 THEN {com} END, CASE WHEN o.oprnegate <> 0 THEN {neg} END,
                CASE WHEN o.oprrest <> 0 THEN {rest} END, CASE WHEN o.oprjoin <> 0 THEN {join} END,
                o.oprcanhash, o.oprcanmerge, o.oid::int8
         FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND o.oprcode <> 0 AND {not_ext}
         ORDER BY o.oid",
        code = qproc("o.oprcode"),
        com = qoper("o.oprcom"),
        neg = qoper("o.oprnegate"),
        rest = qproc("o.oprrest"),
        join = qproc("o.oprjoin"),
        not_ext = not_ext("o.oid"),
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "operators"))?
    {
        let (s, sig, name): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if !in_schema(&s) {
            continue;
        }
        let mut opts = vec![format!("FUNCTION = {}", r.get::<String, _>(5))];
        for (i, key) in [
            (3, "LEFTARG"),
            (4, "RIGHTARG"),
            (6, "COMMUTATOR"),
            (7, "NEGATOR"),
            (8, "RESTRICT"),
            (9, "JOIN"),
        ] {
            if let Some(v) = r.get::<Option<String>, _>(i) {
                opts.push(format!("{key} = {v}"));
            }
        }
        if r.get::<bool, _>(10) {
            opts.push("HASHES".into());
        }
        if r.get::<bool, _>(11) {
            opts.push("MERGES".into());
        }
        cat.pre(
            Statement::new(
                "operator",
                sig,
                format!("CREATE OPERATOR {name} ({})", opts.join(", ")),
            ),
            [Obj::new("pg_operator", r.get(12))],
        );
    }
    Ok(())
}

/// Access methods, before the tables and operator classes that use them.
pub(super) async fn read_access_methods(conn: &mut PgConnection, cat: &mut Catalog) -> Result<()> {
    let sql = format!(
        "SELECT a.amname, a.amtype::text, {handler}, a.oid::int8 FROM pg_am a
         WHERE a.oid >= 16384 AND {not_ext} ORDER BY a.amname",
        handler = qproc("a.amhandler"),
        not_ext = not_ext("a.oid"),
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "access methods"))?
    {
        let (name, kind, handler): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let kind = if kind == "t" { "TABLE" } else { "INDEX" };
        cat.pre(
            Statement::new(
                "access method",
                &name,
                format!(
                    "CREATE ACCESS METHOD {} TYPE {kind} HANDLER {handler}",
                    ident(&name)
                ),
            ),
            [Obj::new("pg_am", r.get(3))],
        );
    }
    Ok(())
}

/// The `OPERATOR ...` and `FUNCTION ...` items of an operator class or family, from the
/// members that depend on `refclass` `oid` with dependency type `deptype`.
async fn members(
    conn: &mut PgConnection,
    refclass: &str,
    oid: i64,
    deptype: &str,
) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT 1, ao.amopstrategy::int, 'OPERATOR ' || ao.amopstrategy || ' ' || quote_ident(n.nspname) || '.' || o.oprname ||
                '(' || format_type(ao.amoplefttype, NULL) || ', ' || format_type(ao.amoprighttype, NULL) || ')' ||
                CASE WHEN ao.amoppurpose = 'o' THEN ' FOR ORDER BY ' ||
                     (SELECT quote_ident(fn.nspname) || '.' || quote_ident(f.opfname) FROM pg_opfamily f
                      JOIN pg_namespace fn ON fn.oid = f.opfnamespace WHERE f.oid = ao.amopsortfamily) ELSE '' END
         FROM pg_amop ao JOIN pg_depend d ON d.classid = 'pg_amop'::regclass AND d.objid = ao.oid
         JOIN pg_operator o ON o.oid = ao.amopopr JOIN pg_namespace n ON n.oid = o.oprnamespace
         WHERE d.refclassid = '{refclass}'::regclass AND d.refobjid = $1::int8::oid AND d.deptype = '{deptype}'
         UNION ALL
         SELECT 2, ap.amprocnum::int, 'FUNCTION ' || ap.amprocnum || ' (' || format_type(ap.amproclefttype, NULL) || ', ' ||
                format_type(ap.amprocrighttype, NULL) || ') ' || {func}
         FROM pg_amproc ap JOIN pg_depend d ON d.classid = 'pg_amproc'::regclass AND d.objid = ap.oid
         WHERE d.refclassid = '{refclass}'::regclass AND d.refobjid = $1::int8::oid AND d.deptype = '{deptype}'
         ORDER BY 1, 2, 3",
        func = qproc_sig("ap.amproc"),
    );
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(oid)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "operator class members"))?
        .iter()
        .map(|r| r.get::<String, _>(2))
        .collect())
}

/// Operator families, then operator classes, then the families' loose members (added with
/// `ALTER OPERATOR FAMILY ... ADD`), after the operators and functions they name.
pub(super) async fn read_operator_classes(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let families = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT f.oid::int8, n.nspname, f.opfname, a.amname FROM pg_opfamily f
         JOIN pg_namespace n ON n.oid = f.opfnamespace JOIN pg_am a ON a.oid = f.opfmethod
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND {} ORDER BY f.oid",
        not_ext("f.oid")
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "operator families"))?;
    let mut loose = Vec::new();
    for r in families {
        let (oid, s, n, am): (i64, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !in_schema(&s) {
            continue;
        }
        let name = format!("{} USING {}", q(&s, &n), ident(&am));
        cat.pre(
            Statement::new(
                "operator family",
                format!("{s}.{n} USING {am}"),
                format!("CREATE OPERATOR FAMILY {name}"),
            ),
            [Obj::new("pg_opfamily", oid)],
        );
        let items = members(conn, "pg_opfamily", oid, "a").await?;
        if !items.is_empty() {
            loose.push((
                Statement::new(
                    "operator family members",
                    format!("{s}.{n} USING {am}"),
                    format!("ALTER OPERATOR FAMILY {name} ADD {}", items.join(", ")),
                ),
                Obj::new("pg_opfamily", oid),
            ));
        }
    }
    let classes = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT c.oid::int8, n.nspname, c.opcname, a.amname, c.opcdefault, format_type(c.opcintype, NULL),
                quote_ident(fn.nspname) || '.' || quote_ident(f.opfname),
                CASE WHEN c.opckeytype <> 0 THEN format_type(c.opckeytype, NULL) END
         FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace JOIN pg_am a ON a.oid = c.opcmethod
         JOIN pg_opfamily f ON f.oid = c.opcfamily JOIN pg_namespace fn ON fn.oid = f.opfnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND {} ORDER BY c.oid",
        not_ext("c.oid")
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "operator classes"))?;
    for r in classes {
        let (oid, s, n, am, default, intype, family): (
            i64,
            String,
            String,
            String,
            bool,
            String,
            String,
        ) = (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
        );
        if !in_schema(&s) {
            continue;
        }
        let mut items = members(conn, "pg_opclass", oid, "i").await?;
        if let Some(storage) = r.get::<Option<String>, _>(7) {
            items.push(format!("STORAGE {storage}"));
        }
        if items.is_empty() {
            // `AS` needs one item; the input type as storage is the default and changes nothing.
            items.push(format!("STORAGE {intype}"));
        }
        cat.pre(
            Statement::new(
                "operator class",
                format!("{s}.{n} USING {am}"),
                format!(
                    "CREATE OPERATOR CLASS {} {}FOR TYPE {intype} USING {} FAMILY {family} AS {}",
                    q(&s, &n),
                    if default { "DEFAULT " } else { "" },
                    ident(&am),
                    items.join(", ")
                ),
            ),
            [Obj::new("pg_opclass", oid)],
        );
    }
    // What the members need is the family's (they are its parts); they need the family.
    for (stmt, family) in loose {
        cat.pre_after(stmt, [], [family]);
    }
    Ok(())
}
