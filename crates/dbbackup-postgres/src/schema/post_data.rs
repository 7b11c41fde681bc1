//! Post-data: keys, indexes, foreign keys, triggers, sequence values, refreshes.

use super::*;

pub(super) async fn read_post_data(
    conn: &mut PgConnection,
    cat: &mut Catalog,
    filter: &Filter,
    in_schema: &(dyn Fn(&str) -> bool + Sync),
) -> Result<()> {
    let mut refreshes: Vec<Statement> = Vec::new();
    cat.post_data.retain(|s| {
        if s.kind == "materialized view data" {
            refreshes.push(s.clone());
            false
        } else {
            true
        }
    });
    // Primary keys, unique and exclusion constraints (inherited partition copies come with the parent).
    let sql = format!(
        "SELECT n.nspname, c.relname, co.conname, pg_get_constraintdef(co.oid), co.contype::text, c.relkind::text,
                c.relispartition
         FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE co.contype IN ('p', 'u', 'x', 'f') AND co.conparentid = 0 AND {}
         ORDER BY CASE co.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'x' THEN 2 ELSE 3 END, co.oid",
        not_ext("c.oid")
    );
    let constraints = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "constraints"))?;
    let mut keys = Vec::new();
    let mut fks = Vec::new();
    for r in constraints {
        let (s, t, name, def, kind, relkind): (String, String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        if !in_schema(&s) || !filter.table_included(&s, &t) {
            continue;
        }
        let only = if relkind == "p" { "" } else { "ONLY " };
        let stmt = Statement::new(
            if kind == "f" {
                "foreign key"
            } else {
                "constraint"
            },
            format!("{s}.{t}.{name}"),
            format!(
                "ALTER TABLE {only}{} ADD CONSTRAINT {} {def}",
                q(&s, &t),
                ident(&name)
            ),
        );
        if kind == "f" {
            fks.push(stmt);
        } else {
            if relkind == "r" && !r.get::<bool, _>(6) {
                cat.table_indexes
                    .entry(format!("{s}.{t}"))
                    .or_default()
                    .push(stmt.clone());
            }
            keys.push(stmt);
        }
    }
    // Indexes that no constraint owns; partition children come from their parent index.
    let sql = format!(
        "SELECT n.nspname, t.relname, ic.relname, pg_get_indexdef(i.indexrelid), t.relkind::text, t.relispartition
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE t.relkind IN ('r', 'p', 'm')
           AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.contype IN ('p','u','x'))
           AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
           AND {} ORDER BY ic.oid",
        not_ext("t.oid")
    );
    let mut indexes = Vec::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "indexes"))?
    {
        let (s, t, name, def, relkind): (String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !in_schema(&s) || (relkind != "m" && !filter.table_included(&s, &t)) {
            continue;
        }
        // A partitioned index created on the parent alone would leave partitions without one.
        let def = if relkind == "p" {
            def.replacen(" ON ONLY ", " ON ", 1)
        } else {
            def
        };
        let stmt = Statement::new("index", format!("{s}.{name}"), def);
        if relkind == "r" && !r.get::<bool, _>(5) {
            cat.table_indexes
                .entry(format!("{s}.{t}"))
                .or_default()
                .push(stmt.clone());
        }
        indexes.push(stmt);
    }
    // Triggers (not internal, not clones on partitions).
    let sql = format!(
        "SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid)
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {} ORDER BY t.oid",
        not_ext("c.oid")
    );
    let mut triggers = Vec::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| catalog_err(e, "triggers"))?
    {
        let (s, t, name, def): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !in_schema(&s) || !filter.table_included(&s, &t) {
            continue;
        }
        triggers.push(Statement::new("trigger", format!("{s}.{t}.{name}"), def));
    }
    let mut post = Vec::new();
    post.append(&mut keys);
    post.append(&mut indexes);
    post.append(&mut cat.post_data);
    post.append(&mut fks);
    post.append(&mut triggers);
    post.append(&mut refreshes);
    cat.post_data = post;
    Ok(())
}
