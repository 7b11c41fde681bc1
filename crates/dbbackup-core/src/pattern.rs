//! Small text helpers shared by engines, storage and the command line: name patterns
//! (`public.orders*`), durations (`36h`, `1d12h`, `500ms`), URL passwords.

/// Whether `name` is selected by include/exclude patterns: it matches one of `include` (or
/// `include` is empty) and none of `exclude`. The engines' table and schema filters use this.
pub fn selected(include: &[String], exclude: &[String], name: &str) -> bool {
    (include.is_empty() || include.iter().any(|p| glob_match(p, name)))
        && !exclude.iter().any(|p| glob_match(p, name))
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters and `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::{glob_match, selected};

    #[test]
    fn include_and_exclude() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selected(&[], &[], "a"));
        assert!(selected(&v(&["a*"]), &[], "abc"));
        assert!(!selected(&v(&["a*"]), &[], "b"));
        assert!(!selected(&v(&["a*"]), &v(&["ab?"]), "abc"));
        assert!(!selected(&[], &v(&["*"]), "x"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("public.*", "public.orders"));
        assert!(glob_match("*orders", "public.orders"));
        assert!(glob_match("p?blic.orders", "public.orders"));
        assert!(!glob_match("public.*", "audit.orders"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }
}

/// The password of a `scheme://user:password@host/...` URL, percent-decoded (`+` stays a plus),
/// for handing to a child tool through its environment.
pub fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = &rest[..userinfo_end(rest)?];
    let encoded = userinfo.split_once(':')?.1;
    let b = encoded.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&encoded[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `url` with its password set to `password` (percent-encoded), replacing one the URL has. The
/// URL must name a user (`scheme://USER@host/...`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a URL without `://` or without a user.
pub fn url_with_password(url: &str, password: &str) -> crate::Result<String> {
    let no_user = || {
        crate::Error::new(
            crate::ErrorKind::InvalidInput,
            format!(
                "{}: a password needs a user in the URL (scheme://USER@host/...)",
                redact_url(url)
            ),
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(no_user)?;
    let end = userinfo_end(rest)
        .filter(|&e| !rest[..e].contains('/'))
        .ok_or_else(no_user)?;
    let user = rest[..end].split(':').next().unwrap_or("");
    if user.is_empty() {
        return Err(no_user());
    }
    let mut enc = String::new();
    for b in password.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(format!("{scheme}://{user}:{enc}{}", &rest[end..]))
}

#[cfg(test)]
mod url_tests {
    use super::{url_password, url_with_password};

    #[test]
    fn a_password_goes_into_the_url_encoded() {
        let u = url_with_password("postgres://app@db:5432/x?sslmode=require", "p@ss:w/rd").unwrap();
        assert_eq!(
            u,
            "postgres://app:p%40ss%3Aw%2Frd@db:5432/x?sslmode=require"
        );
        assert_eq!(url_password(&u).as_deref(), Some("p@ss:w/rd"));
        let u = url_with_password("mysql://root:old@h/db", "new").unwrap();
        assert_eq!(u, "mysql://root:new@h/db");
        assert!(url_with_password("postgres://db/x", "p").is_err());
        assert!(url_with_password("postgres://db/x@y", "p").is_err());
    }

    #[test]
    fn passwords() {
        assert_eq!(
            url_password("postgres://me:p%40ss+w@h:5432/db").as_deref(),
            Some("p@ss+w")
        );
        assert_eq!(url_password("mysql://root@h/db"), None);
        assert_eq!(url_password("mysql://u:@h/db").as_deref(), Some(""));
        assert_eq!(url_password("nonsense"), None);
        assert_eq!(
            url_password("postgres://u:a/b?c@h/db").as_deref(),
            Some("a/b?c")
        );
    }
}

/// The `host:port` of a URL, without credentials, path or query (`None` when it has none).
pub fn url_server(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let (_, at) = userinfo_end(rest).map_or(("", rest), |i| (&rest[..i], &rest[i + 1..]));
    let host = &at[..at.find(['/', '?', '#']).unwrap_or(at.len())];
    (!host.is_empty()).then(|| host.to_owned())
}

/// Where the userinfo of a URL's `rest` (after `scheme://`) ends: at its last `@`, so a password
/// holding `/ ? # @` still counts as userinfo (an `@` later in the query over-redacts an odd URL,
/// which is safe; under-redacting is not).
fn userinfo_end(rest: &str) -> Option<usize> {
    rest.rfind('@')
}

/// Query parameters whose values are secrets.
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "credential",
        "sig",
        "passphrase",
    ]
    .iter()
    .any(|s| n.contains(s))
        || n == "sas"
        || n.ends_with("access_key")
}

/// `url` with the password of its userinfo and the values of secret query parameters
/// (`password=`, `secret_access_key=`, `token=`, ...) replaced by `***`, for messages and logs.
///
/// Hand-written on purpose, not on the `url` crate: a redactor must hide the password of a URL
/// that does not parse too (an unencoded `/`, `?`, `#` or `@` in the password is the usual typo,
/// and `url::Url::parse` rejects or mis-splits exactly those), so it splits at the last `@` of the
/// authority as the WHATWG URL standard does and never fails.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match userinfo_end(rest) {
        Some(i) => {
            let userinfo = &rest[..i];
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_owned(),
            };
            (format!("{user}@"), &rest[i + 1..])
        }
        None => (String::new(), rest),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            let mut t = format!("{path}?{}", params.join("&"));
            if let Some(f) = fragment {
                t.push('#');
                t.push_str(f);
            }
            t
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(redact_url("mysql://u:p@ss@h/db"), "mysql://u:***@h/db");
        assert_eq!(redact_url("/plain/path"), "/plain/path");
        for (url, secret) in [
            ("postgres://u:pa/ss@h/db", "pa/ss"),
            ("postgres://u:pa?ss@h/db", "pa?ss"),
            ("postgres://u:pa#ss@h:5432/db", "pa#ss"),
            ("postgres://u:p@ss/w@h/db?x=1", "ss/w"),
            (
                "postgres://u@h/db?password=hunter2&sslmode=require",
                "hunter2",
            ),
            (
                "s3://b/p?access_key_id=AK&secret_access_key=SK9&region=x",
                "SK9",
            ),
            ("az://c/p?sas=sv%3Dsig&account=a", "sv%3D"),
            ("mysql://h:3306/db?ssl-mode=REQUIRED&pwd=x1y2#frag", "x1y2"),
        ] {
            let r = redact_url(url);
            assert!(!r.contains(secret), "{url} -> {r}");
        }
        assert_eq!(
            redact_url("postgres://u@h/db?password=x&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require"
        );
        assert_eq!(
            super::url_server("postgres://u:p/w@h:5432/db").as_deref(),
            Some("h:5432")
        );
        assert_eq!(super::url_server("mysql://h/db").as_deref(), Some("h"));
    }
}

/// Parses a duration, the one parser of every duration option (retention `keep_within`, `gc
/// --grace`, storage `retry_timeout`, ...): [`humantime`]'s syntax, units required: `500ms`,
/// `30s`, `5m`, `36h`, `7d`, `2w`, `1y` (365.25 days), sums such as `1d12h` or `1h 30m`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the text, also for a bare
/// number: `10` could mean seconds or days, and a retention rule read the wrong way deletes
/// backups.
pub fn parse_duration(text: &str) -> crate::Result<std::time::Duration> {
    let t = text.trim();
    let invalid = |why: String| crate::Error::new(crate::ErrorKind::InvalidInput, why);
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!(
            "{text:?} has no unit; write e.g. {t}d for days or {t}s for seconds"
        )));
    }
    humantime::parse_duration(t).map_err(|e| {
        invalid(format!(
            "{text:?} is not a duration ({e}); use e.g. 500ms, 30s, 36h, 7d, 2w or 1d12h"
        ))
    })
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("1d12h").unwrap(),
            Duration::from_secs(36 * 3600)
        );
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(
            parse_duration("7 days").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        for bad in ["", "7", "d", "5x", "1h30"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let e = parse_duration("10").unwrap_err().to_string();
        assert!(e.contains("10d") && e.contains("10s"), "{e}");
    }
}

/// The `key = value` lines of an INI-style file (`~/.my.cnf`, `pg_service.conf`) with the
/// `[group]` each is in (`""` before the first), trimmed, in file order; comment lines (`#`, `;`)
/// and lines without `=` are left out. Values are kept as written (quotes included).
pub fn ini_entries(text: &str) -> Vec<(String, String, String)> {
    let mut group = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(g) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            group = g.trim().to_owned();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((group.clone(), k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}
