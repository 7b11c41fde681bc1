//! The schema of user tables, read from the `sys` catalog, and the statements that recreate it.
//!
//! Pre-data: schemas, then `CREATE TABLE` with columns (types, collations, `NULL`/`NOT NULL`,
//! identity seed and increment, named defaults, computed columns) and the primary key and unique
//! constraints. Post-data, after the rows are loaded: other indexes, `CHECK` constraints and
//! foreign keys (`WITH CHECK`, so the server validates the loaded rows and trusts the
//! constraints). Other objects (views, procedures, functions, triggers, sequences, synonyms,
//! columnstore/XML/spatial indexes) are named in the backup's warnings.

use dbbackup_core::statements::Statement;

use crate::quote::{ident_unchecked as q, literal_unchecked};

/// A column of a user table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// The system type (`int`, `nvarchar`, `hierarchyid`; alias types resolved).
    pub type_name: String,
    /// `sys.columns.max_length` (bytes; -1 for `max`).
    pub max_length: i32,
    /// Precision.
    pub precision: u8,
    /// Scale.
    pub scale: u8,
    /// Nullable.
    pub nullable: bool,
    /// Collation of a character column.
    pub collation: Option<String>,
    /// Identity seed and increment.
    pub identity: Option<(String, String)>,
    /// Computed column definition and whether it is persisted.
    pub computed: Option<(String, bool)>,
    /// Default constraint name and definition.
    pub default: Option<(String, String)>,
    /// `ROWGUIDCOL`.
    pub rowguidcol: bool,
}

impl Column {
    /// The type as written in `CREATE TABLE`.
    pub fn type_sql(&self) -> String {
        let t = self.type_name.to_ascii_lowercase();
        let len = |bytes: i32, per_char: i32| {
            if bytes < 0 {
                "max".to_string()
            } else {
                (bytes / per_char).to_string()
            }
        };
        match t.as_str() {
            "char" | "varchar" | "binary" | "varbinary" => {
                format!("{t}({})", len(self.max_length, 1))
            }
            "nchar" | "nvarchar" => format!("{t}({})", len(self.max_length, 2)),
            "decimal" | "numeric" => format!("{t}({}, {})", self.precision, self.scale),
            "datetime2" | "time" | "datetimeoffset" => format!("{t}({})", self.scale),
            "float" => format!("float({})", self.precision),
            _ => t,
        }
    }

    fn definition(&self) -> String {
        if let Some((expr, persisted)) = &self.computed {
            return format!(
                "{} AS {expr}{}",
                q(&self.name),
                if *persisted { " PERSISTED" } else { "" }
            );
        }
        let mut s = format!("{} {}", q(&self.name), self.type_sql());
        if let Some(c) = &self.collation {
            if is_collation_name(c) {
                s.push_str(&format!(" COLLATE {c}"));
            }
        }
        if let Some((seed, inc)) = &self.identity {
            if is_number(seed) && is_number(inc) {
                s.push_str(&format!(" IDENTITY({seed}, {inc})"));
            }
        }
        if self.rowguidcol {
            s.push_str(" ROWGUIDCOL");
        }
        s.push_str(if self.nullable { " NULL" } else { " NOT NULL" });
        if let Some((name, def)) = &self.default {
            s.push_str(&format!(" CONSTRAINT {} DEFAULT {def}", q(name)));
        }
        s
    }
}

/// Collation names are identifiers SQL Server takes unquoted; anything else is left out.
fn is_collation_name(c: &str) -> bool {
    !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn is_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// A key column: name and descending.
pub type KeyColumn = (String, bool);

/// An index or a primary key / unique constraint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Index {
    /// Its name.
    pub name: String,
    /// Clustered.
    pub clustered: bool,
    /// Unique.
    pub unique: bool,
    /// A primary key constraint.
    pub primary_key: bool,
    /// A unique constraint (rather than a unique index).
    pub unique_constraint: bool,
    /// Key columns in order.
    pub keys: Vec<KeyColumn>,
    /// `INCLUDE` columns.
    pub included: Vec<String>,
    /// A filtered index's `WHERE`.
    pub filter: Option<String>,
}

fn key_list(keys: &[KeyColumn]) -> String {
    keys.iter()
        .map(|(c, desc)| format!("{} {}", q(c), if *desc { "DESC" } else { "ASC" }))
        .collect::<Vec<_>>()
        .join(", ")
}

fn name_list(cols: &[String]) -> String {
    cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ")
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForeignKey {
    /// Its name.
    pub name: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table's schema.
    pub ref_schema: String,
    /// Referenced table.
    pub ref_table: String,
    /// Referenced columns.
    pub ref_columns: Vec<String>,
    /// `NO_ACTION`, `CASCADE`, `SET_NULL`, `SET_DEFAULT`.
    pub on_delete: String,
    /// As for `on_delete`.
    pub on_update: String,
}

fn action(a: &str) -> Option<&'static str> {
    match a {
        "CASCADE" => Some("CASCADE"),
        "SET_NULL" => Some("SET NULL"),
        "SET_DEFAULT" => Some("SET DEFAULT"),
        _ => None,
    }
}

/// A user table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// `sys.tables.object_id`.
    pub object_id: i32,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Indexes, the primary key and unique constraints.
    pub indexes: Vec<Index>,
    /// `CHECK` constraints: name and definition.
    pub checks: Vec<(String, String)>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
}

impl Table {
    /// `[schema].[name]`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", q(&self.schema), q(&self.name))
    }

    /// `schema.name` for messages and entry names.
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// `CREATE TABLE` with columns, primary key and unique constraints.
    pub fn create(&self) -> Statement {
        let mut parts: Vec<String> = self.columns.iter().map(Column::definition).collect();
        for i in self
            .indexes
            .iter()
            .filter(|i| i.primary_key || i.unique_constraint)
        {
            parts.push(format!(
                "CONSTRAINT {} {} {} ({})",
                q(&i.name),
                if i.primary_key {
                    "PRIMARY KEY"
                } else {
                    "UNIQUE"
                },
                if i.clustered {
                    "CLUSTERED"
                } else {
                    "NONCLUSTERED"
                },
                key_list(&i.keys)
            ));
        }
        Statement::new(
            "table",
            self.display(),
            format!(
                "CREATE TABLE {} (\n  {}\n)",
                self.qualified(),
                parts.join(",\n  ")
            ),
        )
    }

    /// Indexes, checks and foreign keys, applied after the rows.
    pub fn post_data(&self) -> Vec<Statement> {
        let mut out = Vec::new();
        for i in self
            .indexes
            .iter()
            .filter(|i| !i.primary_key && !i.unique_constraint)
        {
            let mut sql = format!(
                "CREATE {}{} INDEX {} ON {} ({})",
                if i.unique { "UNIQUE " } else { "" },
                if i.clustered {
                    "CLUSTERED"
                } else {
                    "NONCLUSTERED"
                },
                q(&i.name),
                self.qualified(),
                key_list(&i.keys)
            );
            if !i.included.is_empty() {
                sql.push_str(&format!(" INCLUDE ({})", name_list(&i.included)));
            }
            if let Some(f) = &i.filter {
                sql.push_str(&format!(" WHERE {f}"));
            }
            out.push(Statement::new(
                "index",
                format!("{}.{}", self.display(), i.name),
                sql,
            ));
        }
        for (name, def) in &self.checks {
            out.push(Statement::new(
                "check",
                format!("{}.{name}", self.display()),
                format!(
                    "ALTER TABLE {} WITH CHECK ADD CONSTRAINT {} CHECK {def}",
                    self.qualified(),
                    q(name)
                ),
            ));
        }
        out
    }

    /// Foreign keys (after every table's rows and indexes, so cycles restore).
    pub fn foreign_keys(&self) -> Vec<Statement> {
        self.foreign_keys
            .iter()
            .map(|fk| {
                let mut sql = format!(
                    "ALTER TABLE {} WITH CHECK ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {}.{} ({})",
                    self.qualified(),
                    q(&fk.name),
                    name_list(&fk.columns),
                    q(&fk.ref_schema),
                    q(&fk.ref_table),
                    name_list(&fk.ref_columns)
                );
                if let Some(a) = action(&fk.on_delete) {
                    sql.push_str(&format!(" ON DELETE {a}"));
                }
                if let Some(a) = action(&fk.on_update) {
                    sql.push_str(&format!(" ON UPDATE {a}"));
                }
                Statement::new("foreign key", format!("{}.{}", self.display(), fk.name), sql)
            })
            .collect()
    }
}

/// `CREATE SCHEMA` unless it exists (`dbo` and other built-in schemas always exist).
pub fn create_schema(schema: &str) -> Statement {
    Statement::new(
        "schema",
        schema,
        format!(
            "IF SCHEMA_ID({}) IS NULL EXEC(N'CREATE SCHEMA {}')",
            literal_unchecked(schema),
            // Inside EXEC(N'...') the bracketed name is itself inside a string literal.
            q(schema).replace('\'', "''")
        ),
    )
}

/// The catalog queries the logical source runs, in order.
pub mod catalog {
    /// User tables.
    pub const TABLES: &str = "SELECT s.name AS schema_name, t.name AS table_name, CAST(t.object_id AS int) AS object_id, \
        CAST(t.temporal_type AS int) AS temporal_type, CAST(t.is_memory_optimized AS int) AS memory_optimized \
        FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id \
        WHERE t.is_ms_shipped = 0 ORDER BY s.name, t.name";
    /// Their columns.
    pub const COLUMNS: &str = "SELECT CAST(c.object_id AS int) AS object_id, c.name AS name, \
        CASE WHEN c.system_type_id = 240 THEN TYPE_NAME(c.user_type_id) ELSE TYPE_NAME(c.system_type_id) END AS type_name, \
        CAST(c.max_length AS int) AS max_length, CAST(c.precision AS int) AS precision, CAST(c.scale AS int) AS scale, \
        CAST(c.is_nullable AS int) AS nullable, c.collation_name AS collation, \
        CONVERT(nvarchar(40), ic.seed_value) AS seed, CONVERT(nvarchar(40), ic.increment_value) AS increment, \
        cc.definition AS computed, CAST(cc.is_persisted AS int) AS persisted, \
        dc.name AS default_name, dc.definition AS default_definition, CAST(c.is_rowguidcol AS int) AS rowguidcol \
        FROM sys.columns c JOIN sys.tables t ON t.object_id = c.object_id \
        LEFT JOIN sys.identity_columns ic ON ic.object_id = c.object_id AND ic.column_id = c.column_id \
        LEFT JOIN sys.computed_columns cc ON cc.object_id = c.object_id AND cc.column_id = c.column_id \
        LEFT JOIN sys.default_constraints dc ON dc.object_id = c.default_object_id \
        WHERE t.is_ms_shipped = 0 ORDER BY c.object_id, c.column_id";
    /// Row-store indexes and key constraints, one row per column.
    pub const INDEXES: &str = "SELECT CAST(i.object_id AS int) AS object_id, i.name AS name, CAST(i.index_id AS int) AS index_id, \
        CAST(CASE WHEN i.type = 1 THEN 1 ELSE 0 END AS int) AS clustered, CAST(i.is_unique AS int) AS is_unique, \
        CAST(i.is_primary_key AS int) AS primary_key, CAST(i.is_unique_constraint AS int) AS unique_constraint, \
        i.filter_definition AS filter, c.name AS column_name, CAST(ic.is_descending_key AS int) AS descending, \
        CAST(ic.is_included_column AS int) AS included \
        FROM sys.indexes i JOIN sys.tables t ON t.object_id = i.object_id \
        JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id \
        JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id \
        WHERE t.is_ms_shipped = 0 AND i.type IN (1, 2) \
        ORDER BY i.object_id, i.index_id, ic.is_included_column, ic.key_ordinal, ic.index_column_id";
    /// `CHECK` constraints.
    pub const CHECKS: &str = "SELECT CAST(cc.parent_object_id AS int) AS object_id, cc.name AS name, cc.definition AS definition \
        FROM sys.check_constraints cc JOIN sys.tables t ON t.object_id = cc.parent_object_id \
        WHERE t.is_ms_shipped = 0 ORDER BY cc.parent_object_id, cc.name";
    /// Foreign keys, one row per column pair.
    pub const FOREIGN_KEYS: &str = "SELECT CAST(fk.parent_object_id AS int) AS object_id, fk.name AS name, \
        SCHEMA_NAME(rt.schema_id) AS ref_schema, rt.name AS ref_table, \
        fk.delete_referential_action_desc AS on_delete, fk.update_referential_action_desc AS on_update, \
        pc.name AS column_name, rc.name AS ref_column \
        FROM sys.foreign_keys fk JOIN sys.foreign_key_columns fkc ON fkc.constraint_object_id = fk.object_id \
        JOIN sys.tables rt ON rt.object_id = fk.referenced_object_id \
        JOIN sys.columns pc ON pc.object_id = fkc.parent_object_id AND pc.column_id = fkc.parent_column_id \
        JOIN sys.columns rc ON rc.object_id = fkc.referenced_object_id AND rc.column_id = fkc.referenced_column_id \
        ORDER BY fk.parent_object_id, fk.name, fkc.constraint_column_id";
    /// Objects the logical engine does not recreate, for the warnings.
    pub const OTHER_OBJECTS: &str = "SELECT o.type_desc AS kind, SCHEMA_NAME(o.schema_id) + N'.' + o.name AS name \
        FROM sys.objects o WHERE o.is_ms_shipped = 0 AND o.type IN ('V', 'P', 'FN', 'IF', 'TF', 'TR', 'SO', 'SN', 'FS', 'FT', 'PC') \
        UNION ALL SELECT N'INDEX (' + i.type_desc + N')', SCHEMA_NAME(t.schema_id) + N'.' + t.name + N'.' + i.name \
        FROM sys.indexes i JOIN sys.tables t ON t.object_id = i.object_id WHERE t.is_ms_shipped = 0 AND i.type > 2 \
        ORDER BY 1, 2";
}
