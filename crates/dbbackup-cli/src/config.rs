//! The `--config` TOML file: defaults for any option, below flags and environment variables.

use std::path::{Path, PathBuf};

use dbbackup::{Error, ErrorKind, Result};
use serde::Deserialize;

/// Every key the file may hold: the long option names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub json: Option<bool>,
    pub repo: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub backup: Option<String>,
    pub compression: Option<String>,
    pub jobs: Option<usize>,
    pub passphrase_env: Option<String>,
    pub key_file: Option<PathBuf>,
    pub allow_unencrypted: Option<bool>,
    pub group_by: Option<String>,
    pub label: Option<Vec<String>>,
    pub engine_tool: Option<String>,
    pub tables: Option<Vec<String>>,
    pub include_table: Option<Vec<String>>,
    pub exclude_table: Option<Vec<String>>,
    pub include_schema: Option<Vec<String>>,
    pub exclude_schema: Option<Vec<String>>,
    pub schema_only: Option<bool>,
    pub data_only: Option<bool>,
    pub shared_dir: Option<String>,
    pub privileges: Option<bool>,
    pub skip_privileges: Option<bool>,
    pub no_local_infile: Option<bool>,
    pub backup_kind: Option<String>,
    pub data_dir: Option<String>,
    pub no_recovery: Option<bool>,
    pub create: Option<bool>,
    pub keep_last: Option<usize>,
    pub keep_within: Option<String>,
    pub keep_hourly: Option<usize>,
    pub keep_daily: Option<usize>,
    pub keep_weekly: Option<usize>,
    pub keep_monthly: Option<usize>,
    pub keep_yearly: Option<usize>,
    pub keep_label: Option<Vec<String>>,
    pub utc_offset: Option<String>,
    pub dry_run: Option<bool>,
    pub grace: Option<String>,
}

impl FileConfig {
    /// Reads `path`, or an empty config when there is none.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot read the config file {}: {e}", path.display()),
            )
        })?;
        toml::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the config file {} is not valid: {}",
                    path.display(),
                    e.message()
                ),
            )
        })
    }
}

/// `flag` (which already includes the environment), else the file's value.
pub fn pick<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.clone().or_else(|| file.clone())
}

/// Repeated flags, else the file's list.
pub fn pick_list(flag: &[String], file: &Option<Vec<String>>) -> Vec<String> {
    if flag.is_empty() {
        file.clone().unwrap_or_default()
    } else {
        flag.to_vec()
    }
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
