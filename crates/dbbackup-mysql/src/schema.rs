//! Reading the schema with `SHOW CREATE`: tables, views, routines, triggers, events, sequences.

use dbbackup_core::{ErrorKind, Result};
use serde::{Deserialize, Serialize};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, Row};

use crate::config::Filter;
use crate::error::my_error;

pub use dbbackup_core::statements::Statement;

/// A table whose rows are backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableData {
    /// Table name.
    pub name: String,
    /// Columns in row order (generated columns excluded).
    pub columns: Vec<String>,
    /// Columns of type FLOAT, read as DOUBLE so no digit is lost.
    pub float_columns: Vec<String>,
    /// Estimated rows, for ordering.
    pub estimated_rows: i64,
    /// Storage engine.
    pub engine: String,
    /// Estimated data size in bytes (`DATA_LENGTH`), for splitting big tables.
    pub data_bytes: i64,
    /// The primary key's first column, when its type orders well: big tables are split into
    /// ranges of it (with a composite key, a range holds every row whose first key column falls
    /// in it).
    pub split_key: Option<SplitKey>,
}

/// The column big tables are split by, and how its boundary values are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SplitKey {
    /// An integer column: ranges of equal width between MIN and MAX.
    Integer(String),
    /// A CHAR / VARCHAR column with its character set and collation: boundaries are sampled
    /// (as all the kinds below) and written so they compare exactly as the column does.
    Text {
        /// The column.
        column: String,
        /// Its character set.
        charset: String,
        /// Its collation.
        collation: String,
    },
    /// A BINARY / VARBINARY column: boundaries as hex literals.
    Binary(String),
    /// A temporal or DECIMAL column: boundaries as the server prints them, quoted.
    Plain(String),
}

impl SplitKey {
    /// The key column's name.
    pub fn column(&self) -> &str {
        match self {
            SplitKey::Integer(c)
            | SplitKey::Binary(c)
            | SplitKey::Plain(c)
            | SplitKey::Text { column: c, .. } => c,
        }
    }

    /// `v` (the server's text-protocol bytes of a key value) as a literal the server compares
    /// with the column in the column's own order.
    pub fn literal(&self, v: &[u8]) -> String {
        match self {
            SplitKey::Text {
                charset, collation, ..
            } => format!("_{charset} X'{}' COLLATE {collation}", hex::encode(v)),
            SplitKey::Binary(_) => format!("X'{}'", hex::encode(v)),
            // Integers, dates, times and decimals print as ASCII.
            SplitKey::Integer(_) | SplitKey::Plain(_) => {
                format!("'{}'", String::from_utf8_lossy(v))
            }
        }
    }
}

/// The first column of `table`'s primary key, when big tables can be split by it.
async fn split_key(conn: &mut MySqlConnection, db: &str, table: &str) -> Result<Option<SplitKey>> {
    type KeyColumn = (String, String, Option<String>, Option<String>, Option<i64>);
    let key: Vec<KeyColumn> = sqlx::query_as(
        "SELECT s.COLUMN_NAME, c.DATA_TYPE, c.CHARACTER_SET_NAME, c.COLLATION_NAME, s.SUB_PART FROM information_schema.STATISTICS s
         JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME
              AND c.COLUMN_NAME = s.COLUMN_NAME
         WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME = ? AND s.INDEX_NAME = 'PRIMARY'
         ORDER BY s.SEQ_IN_INDEX",
    )
    .bind(db)
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| err(e, &format!("the primary key of {table}")))?;
    let Some((col, ty, cs, coll, sub_part)) = key.first() else {
        return Ok(None);
    };
    let column = col.clone();
    Ok(match ty.to_ascii_lowercase().as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" => Some(SplitKey::Integer(column)),
        // A prefix-indexed key orders by its prefix only: left whole.
        _ if sub_part.is_some() => None,
        "char" | "varchar" => match (cs, coll) {
            (Some(cs), Some(coll)) => Some(SplitKey::Text {
                column,
                charset: cs.clone(),
                collation: coll.clone(),
            }),
            _ => None,
        },
        "binary" | "varbinary" => Some(SplitKey::Binary(column)),
        "date" | "datetime" | "timestamp" | "time" | "year" | "decimal" => {
            Some(SplitKey::Plain(column))
        }
        _ => None,
    })
}

/// What the schema holds.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Tables, sequences, routines.
    pub pre_data: Vec<Statement>,
    /// Views (retried until dependencies exist), triggers, events, sequence values.
    pub post_data: Vec<Statement>,
    /// Tables with rows.
    pub tables: Vec<TableData>,
    /// Warnings (non-transactional tables, ...).
    pub warnings: Vec<String>,
    /// Database character set and collation.
    pub charset: (String, String),
}

/// Quotes an identifier with backticks.
pub fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

fn err(e: sqlx::Error, what: &str) -> dbbackup_core::Error {
    my_error(e, ErrorKind::Source, &format!("reading {what} failed"))
}

/// Removes `DEFINER=...` clauses (a restore runs as the restoring user then).
pub fn strip_definer(sql: &str) -> String {
    let Some(start) = sql.find("DEFINER=") else {
        return sql.to_owned();
    };
    let rest = &sql[start + "DEFINER=".len()..];
    // DEFINER=`user`@`host` or DEFINER=user@host, followed by a space.
    let mut end = 0;
    let mut in_tick = false;
    for (i, c) in rest.char_indices() {
        match c {
            '`' => in_tick = !in_tick,
            ' ' if !in_tick => {
                end = i;
                break;
            }
            _ => {}
        }
        end = i + c.len_utf8();
    }
    let tail = rest[end..].trim_start();
    format!("{}{}", &sql[..start], tail)
}

async fn show_create(
    conn: &mut MySqlConnection,
    what: &str,
    name: &str,
    col: usize,
) -> Result<String> {
    let row: MySqlRow = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SHOW CREATE {what} {}",
        ident(name)
    )))
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| err(e, &format!("{what} {name}")))?;
    let v: Vec<u8> = row
        .try_get_unchecked(col)
        .map_err(|e| err(e, &format!("{what} {name}")))?;
    Ok(String::from_utf8_lossy(&v).into_owned())
}

/// `SHOW CREATE` of a trigger, routine or event, with the session settings it was created under
/// (`col` is the statement's column; `session` the columns of `sql_mode`, `time_zone`,
/// `character_set_client`, `collation_connection`, where the kind has them).
async fn show_create_in_session(
    conn: &mut MySqlConnection,
    what: &str,
    name: &str,
    col: usize,
    session: &[(&str, usize)],
) -> Result<(String, std::collections::BTreeMap<String, String>)> {
    let row: MySqlRow = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SHOW CREATE {what} {}",
        ident(name)
    )))
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| err(e, &format!("{what} {name}")))?;
    let text = |i: usize| -> Result<String> {
        let v: Vec<u8> = row
            .try_get_unchecked(i)
            .map_err(|e| err(e, &format!("{what} {name}")))?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    };
    let mut settings = std::collections::BTreeMap::new();
    for (var, i) in session {
        settings.insert((*var).to_owned(), text(*i)?);
    }
    Ok((text(col)?, settings))
}

/// The session columns of `SHOW CREATE TRIGGER / PROCEDURE / FUNCTION`.
const ROUTINE_SESSION: &[(&str, usize)] = &[
    ("sql_mode", 1),
    ("character_set_client", 3),
    ("collation_connection", 4),
];

/// The session columns of `SHOW CREATE EVENT`.
const EVENT_SESSION: &[(&str, usize)] = &[
    ("sql_mode", 1),
    ("time_zone", 2),
    ("character_set_client", 4),
    ("collation_connection", 5),
];

/// Reads the schema of `db`.
///
/// # Errors
/// [`ErrorKind::Source`] when a query fails.
// Long on purpose: one walk over information_schema in dependency order (tables, sequences, routines, views, triggers, events); each step appends to the same catalog.
pub async fn read(
    conn: &mut MySqlConnection,
    db: &str,
    filter: &Filter,
    keep_definers: bool,
) -> Result<Catalog> {
    if filter.has_schemas() {
        return Err(dbbackup_core::Error::new(
            ErrorKind::InvalidInput,
            "a MySQL database has no schemas to include or exclude (the URL names the database): \
             select tables instead",
        ));
    }
    let mut cat = Catalog::default();
    let definer = |s: String| if keep_definers { s } else { strip_definer(&s) };
    let (cs, coll): (String, String) = sqlx::query_as(
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(db)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| err(e, "the database"))?;
    cat.charset = (cs, coll);

    /// TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_ROWS, DATA_LENGTH.
    type TableRow = (String, String, Option<String>, Option<i64>, Option<i64>);
    let tables: Vec<TableRow> = sqlx::query_as(
        "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, CAST(TABLE_ROWS AS SIGNED), CAST(DATA_LENGTH AS SIGNED)
         FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
    )
    .bind(db)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| err(e, "tables"))?;
    let mut views = Vec::new();
    let mut all = Vec::new();
    for (name, ty, engine, rows, data_bytes) in tables {
        if ty == "VIEW" {
            views.push(name);
            continue;
        }
        all.push(name.clone());
        if !filter.name_included(&name) {
            continue;
        }
        if ty == "SEQUENCE" {
            cat.pre_data.push(Statement {
                kind: "sequence".into(),
                name: name.clone(),
                sql: show_create(conn, "SEQUENCE", &name, 1).await?,
                session: Default::default(),
            });
            let next: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT next_not_cached_value FROM {}",
                ident(&name)
            )))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| err(e, &format!("sequence {name}")))?;
            cat.post_data.push(Statement {
                kind: "sequence value".into(),
                name: name.clone(),
                sql: format!("SELECT SETVAL({}, {next}, 0)", ident(&name)),
                session: Default::default(),
            });
            continue;
        }
        let engine = engine.unwrap_or_default();
        if !engine.eq_ignore_ascii_case("InnoDB") {
            cat.warnings.push(format!(
                "table {name} uses the non-transactional {engine} engine: its rows are not guaranteed consistent with the rest"
            ));
        }
        cat.pre_data.push(Statement {
            kind: "table".into(),
            name: name.clone(),
            sql: show_create(conn, "TABLE", &name, 1).await?,
            session: Default::default(),
        });
        let cols: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind(db)
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| err(e, &format!("columns of {name}")))?;
        let data_cols: Vec<&(String, String, String)> = cols
            .iter()
            .filter(|(_, _, extra)| !extra.to_ascii_uppercase().contains("GENERATED"))
            .collect();
        cat.tables.push(TableData {
            name: name.clone(),
            columns: data_cols.iter().map(|c| c.0.clone()).collect(),
            float_columns: data_cols
                .iter()
                .filter(|c| c.1.eq_ignore_ascii_case("float"))
                .map(|c| c.0.clone())
                .collect(),
            estimated_rows: rows.unwrap_or(0),
            engine,
            data_bytes: data_bytes.unwrap_or(0),
            split_key: split_key(conn, db, &name).await?,
        });
    }
    filter.check_includes_match(&all, "MySQL table patterns match the table's name")?;
    // Routines before views (a view may call a function); bodies are not checked at creation.
    let routines: Vec<(String, String)> = sqlx::query_as(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
    )
    .bind(db)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| err(e, "routines"))?;
    for (name, ty) in routines {
        let (sql, session) = show_create_in_session(conn, &ty, &name, 2, ROUTINE_SESSION).await?;
        cat.pre_data.push(Statement {
            kind: ty.to_lowercase(),
            name,
            sql: definer(sql),
            session,
        });
    }
    for name in views {
        let sql = show_create(conn, "VIEW", &name, 1).await?;
        cat.post_data.push(Statement {
            kind: "view".into(),
            name,
            sql: definer(sql),
            session: Default::default(),
        });
    }
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER",
    )
    .bind(db)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| err(e, "triggers"))?;
    for name in triggers {
        let (sql, session) =
            show_create_in_session(conn, "TRIGGER", &name, 2, ROUTINE_SESSION).await?;
        cat.post_data.push(Statement {
            kind: "trigger".into(),
            name,
            sql: definer(sql),
            session,
        });
    }
    let events: Vec<String> = sqlx::query_scalar("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME")
        .bind(db)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| err(e, "events"))?;
    for name in events {
        let (sql, session) = show_create_in_session(conn, "EVENT", &name, 3, EVENT_SESSION).await?;
        cat.post_data.push(Statement {
            kind: "event".into(),
            name,
            sql: definer(sql),
            session,
        });
    }
    Ok(cat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definers_are_stripped() {
        assert_eq!(
            strip_definer("CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select 1"),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        assert_eq!(
            strip_definer("CREATE DEFINER=`a b`@`%` TRIGGER t"),
            "CREATE TRIGGER t"
        );
        assert_eq!(
            strip_definer("CREATE TABLE t (x int)"),
            "CREATE TABLE t (x int)"
        );
    }
}
