//! Owners of large objects (`--privileges`); their data is an entry of its own
//! (`crate::large_objects`).

use super::*;

pub(super) async fn read_large_object_owners(
    conn: &mut PgConnection,
    cat: &mut Catalog,
) -> Result<()> {
    let owners = sqlx::query(
        "SELECT oid::int8, quote_ident(pg_get_userbyid(lomowner)), lomacl IS NOT NULL
         FROM pg_largeobject_metadata ORDER BY oid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "large object owners"))?;
    for r in owners {
        let (oid, owner, acl): (i64, String, bool) = (r.get(0), r.get(1), r.get(2));
        cat.post_data.push(Statement::new(
            "owner",
            format!("large object {oid}"),
            format!("ALTER LARGE OBJECT {oid} OWNER TO {owner}"),
        ));
        if acl {
            cat.unsupported
                .push(format!("large object privileges {oid}"));
        }
    }
    Ok(())
}
