//! Owners and privileges of large objects (`--privileges`); their data is an entry of its own
//! (`crate::large_objects`).

use super::*;

pub(super) async fn read_large_object_owners(
    conn: &mut PgConnection,
    cat: &mut Catalog,
) -> Result<()> {
    let owners = sqlx::query(
        "SELECT l.oid::int8, quote_ident(pg_get_userbyid(l.lomowner)), l.lomacl IS NOT NULL,
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.privilege_type, a.is_grantable
         FROM pg_largeobject_metadata l LEFT JOIN LATERAL aclexplode(l.lomacl) a ON true
         ORDER BY l.oid, a.grantee, a.privilege_type",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "large object owners"))?;
    let mut last = None;
    for r in owners {
        let (oid, owner, acl): (i64, String, bool) = (r.get(0), r.get(1), r.get(2));
        let name = format!("large object {oid}");
        if last != Some(oid) {
            cat.post_data.push(Statement::new(
                "owner",
                name.clone(),
                format!("ALTER LARGE OBJECT {oid} OWNER TO {owner}"),
            ));
            if acl {
                cat.post_data.push(Statement::new(
                    "privileges",
                    name.clone(),
                    format!("REVOKE ALL ON LARGE OBJECT {oid} FROM PUBLIC, {owner}"),
                ));
            }
            last = Some(oid);
        }
        let (grantee, privilege, grantable): (Option<String>, Option<String>, Option<bool>) =
            (r.get(3), r.get(4), r.get(5));
        if let (Some(grantee), Some(privilege)) = (grantee, privilege) {
            cat.post_data.push(Statement::new(
                "privileges",
                name,
                format!(
                    "GRANT {privilege} ON LARGE OBJECT {oid} TO {grantee}{}",
                    if grantable == Some(true) {
                        " WITH GRANT OPTION"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(())
}
