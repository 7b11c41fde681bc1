//! The `--config` TOML file: defaults for any option, below flags and environment variables.
//!
//! Its keys are not listed here: they are the long option names of the command line itself
//! (`cli.rs`), read off clap's definition. A value in the file becomes that option's default, so
//! clap applies the precedence (flag > `DBBACKUP_*` variable > file) and parses and checks the
//! value exactly as it would a flag's.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use dbbackup::{Error, ErrorKind, Result};

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

/// The `--config` path among `args` (`--config PATH` or `--config=PATH`), else
/// `DBBACKUP_CONFIG`. Read before clap parses, since the file changes the parser's defaults.
pub fn path_in(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("DBBACKUP_CONFIG").map(PathBuf::from)
}

/// Whether the command is `daemon` or `run-job`, whose `--config` is the jobs file, not
/// defaults.
pub fn is_jobs_command(args: &[OsString]) -> bool {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            it.next();
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        return a == "daemon" || a == "run-job";
    }
    false
}

/// Reads `path`, or an empty table when there is none.
pub fn load(path: Option<&Path>) -> Result<toml::Table> {
    let Some(path) = path else {
        return Ok(toml::Table::new());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        invalid(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    text.parse::<toml::Table>().map_err(|e| {
        invalid(format!(
            "the config file {} is not valid TOML: {}",
            path.display(),
            e.message()
        ))
    })
}

/// Every long option name of `cmd` and its subcommands.
fn long_names(cmd: &clap::Command, out: &mut BTreeSet<String>) {
    out.extend(
        cmd.get_arguments()
            .filter_map(|a| a.get_long())
            .map(str::to_owned),
    );
    for sub in cmd.get_subcommands() {
        long_names(sub, out);
    }
}

/// A file value as the strings clap parses (`None`: a `false` flag, which sets nothing).
pub(crate) fn as_strings(key: &str, v: &toml::Value, flag: bool) -> Result<Option<Vec<String>>> {
    use toml::Value as V;
    let one = |v: &V| match v {
        V::String(s) => Ok(s.clone()),
        V::Integer(i) => Ok(i.to_string()),
        V::Float(f) => Ok(f.to_string()),
        V::Boolean(b) => Ok(b.to_string()),
        _ => Err(invalid(format!(
            "config key {key:?}: give a string, number, true/false or a list of strings"
        ))),
    };
    match v {
        V::Boolean(false) if flag => Ok(None),
        V::Boolean(true) if flag => Ok(Some(vec!["true".into()])),
        _ if flag => Err(invalid(format!(
            "config key {key:?} is a switch: give true or false"
        ))),
        V::Array(items) => items.iter().map(one).collect::<Result<_>>().map(Some),
        other => one(other).map(|s| Some(vec![s])),
    }
}

/// `cmd` with the file's values as the defaults of the options they name.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a key that is no long option name, or a value of the wrong
/// shape.
pub fn with_defaults(cmd: clap::Command, file: &toml::Table) -> Result<clap::Command> {
    let mut known = BTreeSet::new();
    long_names(&cmd, &mut known);
    if let Some(k) = file.keys().find(|k| !known.contains(k.as_str())) {
        return Err(invalid(format!(
            "the config file has an unknown key {k:?}; its keys are the long option names: {}",
            known.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    apply(cmd, file)
}

fn apply(mut cmd: clap::Command, file: &toml::Table) -> Result<clap::Command> {
    let targets: Vec<(clap::Id, String, bool)> = cmd
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            let flag = matches!(a.get_action(), clap::ArgAction::SetTrue);
            file.contains_key(long)
                .then(|| (a.get_id().clone(), long.to_owned(), flag))
        })
        .collect();
    for (id, long, flag) in targets {
        if let Some(values) = as_strings(&long, &file[&long], flag)? {
            cmd = cmd.mut_arg(id, |a| a.default_values(values));
        }
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in subs {
        let sub = cmd
            .find_subcommand(&name)
            .cloned()
            .expect("listed just now");
        let sub = apply(sub, file)?;
        cmd = cmd.mut_subcommand(&name, move |_| sub);
    }
    Ok(cmd)
}

/// A value that must be given somewhere.
pub fn required<T>(v: Option<T>, flag: &str, env: &str) -> Result<T> {
    v.ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("missing --{flag}: give it as a flag, as {env}, or as `{flag} = ...` in the --config file"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn parse(file: &str, args: &[&str]) -> Result<crate::cli::Cli> {
        let table: toml::Table = file.parse().unwrap();
        let cmd = with_defaults(crate::cli::Cli::command(), &table)?;
        let m = cmd
            .try_get_matches_from(args)
            .map_err(|e| invalid(e.to_string()))?;
        crate::cli::Cli::from_arg_matches(&m).map_err(|e| invalid(e.to_string()))
    }

    #[test]
    fn file_values_are_defaults_of_the_options_they_name() {
        let file =
            "repo = \"r\"\njobs = 3\nlabel = [\"a=1\", \"b=2\"]\nschema-only = true\njson = true\n";
        let cli = parse(file, &["dbbackup", "backup"]).unwrap();
        assert!(cli.json);
        let crate::cli::Command::Backup(b) = cli.command else {
            panic!()
        };
        assert_eq!(b.repo.repo.as_deref(), Some("r"));
        assert_eq!(b.jobs, Some(3));
        assert_eq!(b.labels, ["a=1", "b=2"]);
        assert!(b.select.schema_only);
        // A flag beats the file.
        let cli = parse(file, &["dbbackup", "backup", "--repo", "x", "--jobs", "1"]).unwrap();
        let crate::cli::Command::Backup(b) = cli.command else {
            panic!()
        };
        assert_eq!((b.repo.repo.as_deref(), b.jobs), (Some("x"), Some(1)));
        // Keys of other commands are fine; unknown keys and wrong shapes are not.
        assert!(parse("keep-last = 3\n", &["dbbackup", "backup"]).is_ok());
        let e = parse("repository = \"y\"\n", &["dbbackup", "list"]).unwrap_err();
        assert!(e.to_string().contains("\"repository\""), "{e}");
        assert!(parse("schema-only = \"yes\"\n", &["dbbackup", "backup"]).is_err());
        assert!(parse("jobs = \"many\"\n", &["dbbackup", "backup"]).is_err());
    }

    #[test]
    fn the_config_path_is_found_before_parsing() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            path_in(&args(&["dbbackup", "list", "--config", "c.toml"])),
            Some(PathBuf::from("c.toml"))
        );
        assert_eq!(
            path_in(&args(&["dbbackup", "--config=d.toml", "list"])),
            Some(PathBuf::from("d.toml"))
        );
    }
}
