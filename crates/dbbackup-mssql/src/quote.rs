//! Quoting names and strings into T-SQL.
//!
//! T-SQL cannot take identifiers as parameters, and `BACKUP`/`RESTORE` cannot take most of their
//! options as parameters either, so every name and path we put into a statement goes through one
//! of these functions:
//!
//! * identifiers are bracket-quoted with `]` doubled: `a]b` → `[a]]b]`;
//! * strings are Unicode literals with `'` doubled: `it's` → `N'it''s'`.
//!
//! Inside brackets and inside an `N'...'` literal no other character is special, so with these two
//! rules any name — `a]b'; DROP DATABASE x --` included — stays one identifier or one string.
//! NUL characters are refused (SQL Server truncates names at them), as are identifiers longer than
//! `sysname` (128 UTF-16 code units).

use dbbackup_core::{Error, ErrorKind, Result};

/// The longest identifier SQL Server accepts (`sysname` is `nvarchar(128)`).
pub const MAX_IDENTIFIER: usize = 128;

/// `name` as a bracket-quoted identifier (`]` doubled). Errors on an empty name, a NUL character
/// or more than 128 UTF-16 code units.
pub fn ident(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "an empty SQL Server identifier; give a database, table or file name",
        ));
    }
    if name.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("the SQL Server identifier {name:?} contains a NUL character, which SQL Server does not allow"),
        ));
    }
    if name.encode_utf16().count() > MAX_IDENTIFIER {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the SQL Server identifier {:?}... is longer than {MAX_IDENTIFIER} characters",
                name.chars().take(32).collect::<String>()
            ),
        ));
    }
    Ok(ident_unchecked(name))
}

/// Bracket quoting without the checks, for names read from the server's own catalog.
pub(crate) fn ident_unchecked(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('[');
    for c in name.chars() {
        if c == ']' {
            out.push(']');
        }
        out.push(c);
    }
    out.push(']');
    out
}

/// `schema.name` with both parts bracket-quoted.
pub fn qualified(schema: &str, name: &str) -> Result<String> {
    Ok(format!("{}.{}", ident(schema)?, ident(name)?))
}

/// `s` as a Unicode string literal (`N'...'`, `'` doubled). Errors on a NUL character.
pub fn literal(s: &str) -> Result<String> {
    if s.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{s:?} contains a NUL character, which cannot be passed to SQL Server"),
        ));
    }
    Ok(literal_unchecked(s))
}

pub(crate) fn literal_unchecked(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    out.push_str("N'");
    for c in s.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("orders").unwrap(), "[orders]");
        assert_eq!(ident("a]b'; DROP").unwrap(), "[a]]b'; DROP]");
        assert_eq!(ident("]]").unwrap(), "[]]]]]");
        assert_eq!(qualified("dbo", "x y").unwrap(), "[dbo].[x y]");
        assert_eq!(literal("it's").unwrap(), "N'it''s'");
        assert_eq!(literal("C:\\b\\x.bak").unwrap(), "N'C:\\b\\x.bak'");
        assert!(ident("").is_err());
        assert!(ident("a\0b").is_err());
        assert!(literal("a\0b").is_err());
        assert!(ident(&"x".repeat(128)).is_ok());
        assert!(ident(&"x".repeat(129)).is_err());
        // 64 characters outside the BMP are 128 UTF-16 code units.
        assert!(ident(&"😀".repeat(64)).is_ok());
        assert!(ident(&"😀".repeat(65)).is_err());
    }
}
