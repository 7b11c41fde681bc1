//! Pre-data in dependency order (`pg_dump_sort.c`'s topological sort): each statement says which
//! catalog objects it creates; `pg_depend` says what each object needs; the statements are
//! sorted so that everything comes after what it needs, and otherwise stays where the kind-by-kind
//! reading put it (among the statements that are ready, the earliest goes first).
//!
//! The parts an object's statement creates with it (a table's defaults and inline `CHECK`
//! constraints, a view's `_RETURN` rule, a table's row type, an array type, an identity sequence,
//! an extension's members) stand for their object. What pg_dump breaks cycles with is done where
//! the statements are written: a shell type before a base type's functions (`types.rs`), a table
//! `CHECK` that calls a function apart from its table (`tables.rs`), a view that needs a primary
//! key as a placeholder before the data and its definition after the keys (`views.rs`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::*;

/// The catalogs whose objects the statements create, by name.
const CATALOGS: &[&str] = &[
    "pg_class",
    "pg_type",
    "pg_proc",
    "pg_namespace",
    "pg_constraint",
    "pg_attrdef",
    "pg_rewrite",
    "pg_extension",
    "pg_collation",
    "pg_conversion",
    "pg_operator",
    "pg_opclass",
    "pg_opfamily",
    "pg_am",
    "pg_amop",
    "pg_amproc",
    "pg_language",
    "pg_cast",
    "pg_transform",
    "pg_ts_parser",
    "pg_ts_template",
    "pg_ts_dict",
    "pg_ts_config",
    "pg_foreign_data_wrapper",
    "pg_foreign_server",
    "pg_user_mapping",
];

/// The shell of a base type (`CREATE TYPE t;`): not a catalog, only a statement's object.
pub(super) const SHELL_TYPE: &str = "shell type";

/// A catalog object: the catalog it lives in (`pg_class`, `pg_type`, ...) and its OID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Obj {
    pub(super) catalog: &'static str,
    pub(super) oid: i64,
}

impl Obj {
    pub(super) fn new(catalog: &'static str, oid: i64) -> Self {
        debug_assert!(
            catalog == SHELL_TYPE || CATALOGS.contains(&catalog),
            "{catalog}"
        );
        Obj { catalog, oid }
    }
}

/// What a pre-data statement creates, and what it needs beyond what `pg_depend` records.
#[derive(Debug, Default, Clone)]
pub(super) struct Placed {
    pub(super) creates: Vec<Obj>,
    pub(super) needs: Vec<Obj>,
}

impl Catalog {
    /// Adds a pre-data statement creating `creates`.
    pub(super) fn pre(&mut self, stmt: Statement, creates: impl IntoIterator<Item = Obj>) {
        self.pre_after(stmt, creates, []);
    }

    /// Adds a pre-data statement creating `creates` that also needs `needs` first.
    pub(super) fn pre_after(
        &mut self,
        stmt: Statement,
        creates: impl IntoIterator<Item = Obj>,
        needs: impl IntoIterator<Item = Obj>,
    ) {
        self.pre_data.push(stmt);
        self.pre_placed.push(Placed {
            creates: creates.into_iter().collect(),
            needs: needs.into_iter().collect(),
        });
    }
}

/// Sorts `cat.pre_data` by the catalog's dependencies. A cycle the rules above do not break is
/// reported as a warning and its statements keep their reading order.
pub(super) async fn sort_pre_data(conn: &mut PgConnection, cat: &mut Catalog) -> Result<()> {
    assert_eq!(
        cat.pre_data.len(),
        cat.pre_placed.len(),
        "every pre-data statement is added with Catalog::pre"
    );
    let names: Vec<String> = CATALOGS.iter().map(|s| (*s).to_owned()).collect();
    let catalogs: HashMap<i64, &'static str> = sqlx::query(
        "SELECT c.oid::int8, c.relname::text FROM pg_class c
         WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relname = ANY($1)",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| catalog_err(e, "catalog OIDs"))?
    .iter()
    .filter_map(|r| {
        let name: String = r.get(1);
        let name = CATALOGS.iter().find(|c| **c == name)?;
        Some((r.get::<i64, _>(0), *name))
    })
    .collect();
    let obj = |class: i64, oid: i64| catalogs.get(&class).map(|c| Obj::new(c, oid));

    // The part → object it belongs to.
    let mut owner: HashMap<Obj, Obj> = HashMap::new();
    for r in rows(
        conn,
        "SELECT 'pg_attrdef'::regclass::oid::int8, oid::int8, 'pg_class'::regclass::oid::int8, adrelid::int8 FROM pg_attrdef
         UNION ALL
         SELECT 'pg_constraint'::regclass::oid::int8, oid::int8,
                CASE WHEN contypid <> 0 THEN 'pg_type'::regclass ELSE 'pg_class'::regclass END::oid::int8,
                CASE WHEN contypid <> 0 THEN contypid ELSE conrelid END::int8
         FROM pg_constraint WHERE contype = 'c' AND convalidated
         UNION ALL
         SELECT 'pg_rewrite'::regclass::oid::int8, oid::int8, 'pg_class'::regclass::oid::int8, ev_class::int8
         FROM pg_rewrite WHERE rulename = '_RETURN'
         UNION ALL
         SELECT classid::int8, objid::int8, refclassid::int8, refobjid::int8 FROM pg_depend
         WHERE objid >= 16384 AND (deptype IN ('i', 'e')
               OR (deptype = 'a' AND classid IN ('pg_amop'::regclass, 'pg_amproc'::regclass)))",
        "object parts",
    )
    .await?
    {
        if let (Some(part), Some(whole)) = (obj(r.get(0), r.get(1)), obj(r.get(2), r.get(3))) {
            owner.entry(part).or_insert(whole);
        }
    }

    let n = cat.pre_data.len();
    let mut provider: HashMap<Obj, usize> = HashMap::new();
    for (i, p) in cat.pre_placed.iter().enumerate() {
        for o in &p.creates {
            provider.entry(*o).or_insert(i);
        }
    }
    let resolve = |o: Obj| -> Option<usize> {
        let mut o = o;
        for _ in 0..8 {
            if let Some(&i) = provider.get(&o) {
                return Some(i);
            }
            o = *owner.get(&o)?;
        }
        None
    };

    let deps: Vec<(Obj, Obj, bool)> = rows(
        conn,
        "SELECT classid::int8, objid::int8, refclassid::int8, refobjid::int8,
                deptype = 'a' AND classid = 'pg_class'::regclass AND refclassid = 'pg_class'::regclass AND refobjsubid <> 0
         FROM pg_depend WHERE objid >= 16384 AND deptype IN ('n', 'a', 'i', 'e')",
        "dependencies",
    )
    .await?
    .iter()
    .filter_map(|r| Some((obj(r.get(0), r.get(1))?, obj(r.get(2), r.get(3))?, r.get(4))))
    .collect();
    let needs_of: BTreeSet<(Obj, Obj)> = deps.iter().map(|(a, b, _)| (*a, *b)).collect();

    let mut after: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (dependent, referenced, owned_by) in &deps {
        let Some(from) = resolve(*dependent) else {
            continue;
        };
        // `ALTER SEQUENCE ... OWNED BY` comes after the table; the sequence does not need it.
        if *owned_by && provider.contains_key(dependent) {
            continue;
        }
        // A base type's own functions need only its shell, which the full definition needs them for.
        let mut referenced = *referenced;
        if referenced.catalog == "pg_type" {
            let shell = Obj::new(SHELL_TYPE, referenced.oid);
            if provider.contains_key(&shell) && needs_of.contains(&(referenced, *dependent)) {
                referenced = shell;
            }
        }
        if let Some(to) = resolve(referenced) {
            if to != from {
                after[from].insert(to);
            }
        }
    }
    for (i, p) in cat.pre_placed.iter().enumerate() {
        for o in &p.needs {
            if let Some(to) = resolve(*o) {
                if to != i {
                    after[i].insert(to);
                }
            }
        }
    }

    // Kahn's algorithm, the earliest ready statement first.
    let mut waiting: Vec<usize> = after.iter().map(BTreeSet::len).collect();
    let mut unblocks: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, a) in after.iter().enumerate() {
        for &j in a {
            unblocks[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let i = match ready.pop() {
            Some(Reverse(i)) => i,
            None => {
                // A cycle: the earliest statement left goes first, and says so.
                let i = (0..n).find(|&i| !done[i]).expect("statements are left");
                let s = &cat.pre_data[i];
                cat.warnings.push(format!(
                    "{} {} is part of a dependency cycle the backup cannot order; it is restored in catalog order",
                    s.kind, s.name
                ));
                i
            }
        };
        if done[i] {
            continue;
        }
        done[i] = true;
        order.push(i);
        for &k in &unblocks[i] {
            waiting[k] -= 1;
            if waiting[k] == 0 && !done[k] {
                ready.push(Reverse(k));
            }
        }
    }
    let mut stmts: Vec<Option<Statement>> = std::mem::take(&mut cat.pre_data)
        .into_iter()
        .map(Some)
        .collect();
    let mut placed: Vec<Option<Placed>> = std::mem::take(&mut cat.pre_placed)
        .into_iter()
        .map(Some)
        .collect();
    for i in order {
        cat.pre_data.push(stmts[i].take().expect("each once"));
        cat.pre_placed.push(placed[i].take().expect("each once"));
    }
    Ok(())
}
