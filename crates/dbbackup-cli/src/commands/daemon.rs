//! `dbbackup daemon` and `dbbackup run-job`: the jobs of a TOML file, on their schedules or once.
//!
//! A job is a `[[job]]` table: `name`, `schedule`, the job's own keys ([`JOB_KEYS`]), and any
//! option of `dbbackup backup` and `dbbackup prune` under its long name (`source`, `repo`,
//! `passphrase-env`, `key-file`, `compression`, `label`, `keep-daily`, ...). Those are parsed by
//! the command line's own parser, so a job means exactly what the same flags mean; `keep-*`
//! options make a prune (with the WAL and binlog retention of `dbbackup prune`) after each
//! successful backup.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use dbbackup::service::{
    command_hook, Job, JobOperation, Metrics, Prune, Schedule, Scheduler, Trigger,
};

#[allow(unused_imports)]
use crate::common::*;

/// The keys a job has besides the options of `backup` and `prune`.
const JOB_KEYS: &[&str] = &[
    "name",
    "schedule",
    "verify-schedule",
    "prune-schedule",
    "restore-test-schedule",
    "scratch",
    "scratch-password-env",
    "scratch-password-file",
    "check",
    "timezone",
    "jitter",
    "hook-timeout",
    "before",
    "after",
    "on-failure",
    "catch-up",
];

/// Options of `backup` / `prune` that make no sense in a job.
const NOT_IN_JOBS: &[&str] = &["dry-run", "json", "config", "incremental", "help"];

/// The retention of `dbbackup prune`, backups and log archives.
struct CliPrune {
    policy: KeepPolicy,
    group_by: GroupBy,
}

#[async_trait::async_trait]
impl Prune for CliPrune {
    async fn prune(&self, repo: &Repository) -> Result<Vec<String>> {
        let p = super::prune::prune_repo(repo, &self.policy, &self.group_by, false).await?;
        for r in &p.refused {
            eprintln!(
                "dbbackup: warning: prune left backup {} alone, refused: {}",
                r.backup_id, r.reason
            );
        }
        Ok(p.deleted)
    }
}

/// The long options of a subcommand, and whether each is a switch.
fn options_of(sub: &str) -> Vec<(String, bool)> {
    let cmd = crate::cli::Cli::command();
    let sub = cmd.find_subcommand(sub).expect("a known subcommand");
    sub.get_arguments()
        .filter_map(|a| {
            Some((
                a.get_long()?.to_owned(),
                matches!(a.get_action(), clap::ArgAction::SetTrue),
            ))
        })
        .collect()
}

/// `args` parsed as `dbbackup <sub> ...` by the command line's parser.
fn parse_as(sub: &str, args: Vec<String>) -> std::result::Result<crate::cli::Command, String> {
    let mut argv = vec!["dbbackup".to_owned(), sub.to_owned()];
    argv.extend(args);
    let m = crate::cli::Cli::command()
        .try_get_matches_from(argv)
        .map_err(|e| {
            e.to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned()
        })?;
    crate::cli::Cli::from_arg_matches(&m)
        .map(|c| c.command)
        .map_err(|e| e.to_string())
}

fn text_of(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The keys of a `[[notify]]` table.
const NOTIFY_KEYS: &[&str] = &[
    "url",
    "url-env",
    "url-file",
    "token-env",
    "token-file",
    "format",
    "smtp",
    "tls",
    "username",
    "password-env",
    "password-file",
    "from",
    "to",
    "on",
    "stale-after",
    "timeout",
    "retries",
];

/// One `[[notify]]` table, checked: a channel, what it is told, and its stale limit.
struct NotifySpec {
    channel: Arc<dyn dbbackup::service::Channel>,
    on: Vec<dbbackup::service::NotifyOn>,
    stale_after: Option<Duration>,
    retries: u32,
}

/// The daemon's notifiers, swapped whole when SIGHUP reloads `[[notify]]`.
#[derive(Clone, Default)]
struct Notifiers {
    current: Arc<std::sync::RwLock<Vec<dbbackup::service::Notifier>>>,
    /// Ends the current notifiers' staleness checks when they are replaced.
    generation: Arc<std::sync::Mutex<Option<CancellationToken>>>,
}

impl dbbackup::Subscriber for Notifiers {
    fn on_event(&self, event: &dbbackup::Event) {
        for n in self.current.read().expect("notifiers lock").iter() {
            n.on_event(event);
        }
    }
}

impl Notifiers {
    /// Starts the notifiers of `specs`, seeds them with each job's newest backup, and puts them
    /// in place of the old ones (which deliver what they queued, then end).
    async fn replace(&self, specs: Vec<NotifySpec>, jobs: &[Job], cancel: &CancellationToken) {
        let token = cancel.child_token();
        let mut fresh = Vec::new();
        for spec in specs {
            let mut b = dbbackup::service::Notifier::builder()
                .retries(spec.retries, Duration::from_secs(1))
                .channel(spec.channel, &spec.on);
            if let Some(d) = spec.stale_after {
                b = b.stale_after(d);
            }
            fresh.push(b.start(token.clone()));
        }
        if !fresh.is_empty() {
            for job in jobs {
                if let Ok(Some(at)) = job.last_backup().await {
                    fresh.iter().for_each(|n| n.seed_backup(job.name(), at));
                }
            }
        }
        let old = std::mem::replace(&mut *self.current.write().expect("notifiers lock"), fresh);
        if let Some(t) = self
            .generation
            .lock()
            .expect("notifiers lock")
            .replace(token)
        {
            t.cancel();
        }
        tokio::spawn(async move {
            for n in old {
                n.flush(Duration::from_secs(30)).await;
            }
        });
    }

    /// Delivers what is queued (30 s at most each).
    async fn flush(&self) {
        let all = self.current.read().expect("notifiers lock").clone();
        for n in all {
            if !n.flush(Duration::from_secs(30)).await {
                eprintln!("dbbackup daemon: a notification was still being delivered after 30 s; exiting without it");
            }
        }
    }
}

/// `[[notify]]` of the jobs file at `path`.
fn read_notify(path: &std::path::Path) -> std::result::Result<Vec<NotifySpec>, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
    let file: toml::Table = text
        .parse()
        .map_err(|e| vec![format!("{}: {e}", path.display())])?;
    notify_specs(&file)
}

/// A secret from `<key>-env` (an environment variable) or `<key>-file`, never from the file
/// itself.
fn secret(t: &toml::Table, key: &str, label: &str) -> std::result::Result<Option<String>, String> {
    if let Some(v) = t.get(&format!("{key}-env")) {
        let var = v
            .as_str()
            .ok_or(format!("{label}: {key}-env must be a variable name"))?;
        return std::env::var(var).map(Some).map_err(|_| {
            format!("{label}: {key}-env = {var:?}, but the environment variable {var} is not set")
        });
    }
    if let Some(v) = t.get(&format!("{key}-file")) {
        let f = v
            .as_str()
            .ok_or(format!("{label}: {key}-file must be a path"))?;
        return std::fs::read_to_string(f)
            .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_owned()))
            .map_err(|e| format!("{label}: {key}-file {f:?}: {e}"));
    }
    Ok(None)
}

/// Reads the `[[notify]]` tables. Every problem is listed.
fn notify_specs(file: &toml::Table) -> std::result::Result<Vec<NotifySpec>, Vec<String>> {
    use dbbackup::service::{Email, NotifyOn, SmtpTls, Webhook, WebhookFormat};
    let tables: Vec<&toml::Table> = match file.get("notify") {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_table()).collect(),
        Some(_) => return Err(vec!["notify must be [[notify]] tables".into()]),
    };
    let mut problems = Vec::new();
    let mut specs = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let label = format!("notify #{}", i + 1);
        let mut p = Vec::new();
        for k in t.keys().filter(|k| !NOTIFY_KEYS.contains(&k.as_str())) {
            p.push(format!(
                "{label}: unknown key {k:?} (a [[notify]] table has {})",
                NOTIFY_KEYS.join(", ")
            ));
        }
        let str_of = |k: &str, p: &mut Vec<String>| -> Option<String> {
            match t.get(k) {
                None => None,
                Some(toml::Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    p.push(format!("{label}: {k} must be a string"));
                    None
                }
            }
        };
        let dur = |k: &str, default: Duration, p: &mut Vec<String>| -> Duration {
            match t
                .get(k)
                .map(|v| text_of(v).map(|s| dbbackup::parse_duration(&s)))
            {
                None => default,
                Some(Some(Ok(d))) => d,
                _ => {
                    p.push(format!("{label}: {k} must be a duration such as \"26h\""));
                    default
                }
            }
        };
        let timeout = dur("timeout", Duration::from_secs(10), &mut p);
        let stale_after = t
            .get("stale-after")
            .map(|_| dur("stale-after", Duration::ZERO, &mut p));
        let retries = match t.get("retries") {
            None => 3,
            Some(toml::Value::Integer(n)) if (0..=10).contains(n) => *n as u32,
            Some(_) => {
                p.push(format!("{label}: retries must be 0 to 10"));
                3
            }
        };
        let on: Vec<NotifyOn> = match t.get("on") {
            None => vec![NotifyOn::Failure, NotifyOn::Recovery, NotifyOn::Stale],
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v.as_str().map(NotifyOn::parse) {
                    Some(Ok(k)) => Some(k),
                    Some(Err(e)) => {
                        p.push(format!("{label}: on: {}", e.message()));
                        None
                    }
                    None => {
                        p.push(format!("{label}: on must be a list of words"));
                        None
                    }
                })
                .collect(),
            Some(_) => {
                p.push(format!("{label}: on must be a list: [\"failure\", \"recovery\", \"success\", \"stale\"]"));
                Vec::new()
            }
        };
        if on.contains(&NotifyOn::Stale) && stale_after.is_none() && t.get("on").is_some() {
            p.push(format!(
                "{label}: on = [\"stale\", ...] needs stale-after (e.g. \"26h\")"
            ));
        }
        let url = match (str_of("url", &mut p), secret(t, "url", &label)) {
            (Some(u), Ok(None)) => Some(u),
            (None, Ok(u)) => u,
            (Some(_), Ok(Some(_))) => {
                p.push(format!("{label}: give url or url-env / url-file, not both"));
                None
            }
            (_, Err(e)) => {
                p.push(e);
                None
            }
        };
        let smtp = str_of("smtp", &mut p);
        let channel: Option<Arc<dyn dbbackup::service::Channel>> = match (url, smtp) {
            (Some(_), Some(_)) => {
                p.push(format!(
                    "{label}: one channel per table: url (a webhook) or smtp (e-mail)"
                ));
                None
            }
            (None, None) => {
                p.push(format!("{label}: no channel: give url / url-env (a webhook) or smtp = \"host:port\" (e-mail)"));
                None
            }
            (Some(u), None) => {
                let format = match str_of("format", &mut p).as_deref() {
                    None | Some("json") => WebhookFormat::Json,
                    Some("text") | Some("slack") => WebhookFormat::Text,
                    Some(o) => {
                        p.push(format!(
                            "{label}: format {o:?}: use json or text (Slack / Mattermost)"
                        ));
                        WebhookFormat::Json
                    }
                };
                match (
                    Webhook::new(&u, format, timeout),
                    secret(t, "token", &label),
                ) {
                    (Ok(w), Ok(tok)) => Some(Arc::new(match tok {
                        Some(tok) => w.bearer_token(tok),
                        None => w,
                    })),
                    (Err(e), _) => {
                        p.push(format!("{label}: {}", e.message()));
                        None
                    }
                    (_, Err(e)) => {
                        p.push(e);
                        None
                    }
                }
            }
            (None, Some(hp)) => {
                let (host, port) = match hp.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
                    Some((h, Ok(port))) => (h.to_owned(), port),
                    _ => (hp.clone(), 587),
                };
                let tls = match str_of("tls", &mut p).as_deref() {
                    None | Some("starttls") => SmtpTls::StartTls,
                    Some("tls") => SmtpTls::Tls,
                    Some("none") => SmtpTls::None,
                    Some(o) => {
                        p.push(format!("{label}: tls {o:?}: use starttls, tls or none"));
                        SmtpTls::StartTls
                    }
                };
                let user = str_of("username", &mut p);
                let pass = secret(t, "password", &label).unwrap_or_else(|e| {
                    p.push(e);
                    None
                });
                let creds = match (user, pass) {
                    (Some(u), Some(pw)) => Some((u, pw)),
                    (None, None) => None,
                    _ => {
                        p.push(format!(
                            "{label}: username and password-env / password-file go together"
                        ));
                        None
                    }
                };
                let from = str_of("from", &mut p).unwrap_or_default();
                let to: Vec<String> = match t.get("to") {
                    Some(toml::Value::String(s)) => vec![s.clone()],
                    Some(toml::Value::Array(a)) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                match Email::new(&host, port, tls, creds, &from, &to, timeout) {
                    Ok(e) => Some(Arc::new(e)),
                    Err(e) => {
                        p.push(format!("{label}: {}", e.message()));
                        None
                    }
                }
            }
        };
        match channel {
            Some(channel) if p.is_empty() => specs.push(NotifySpec {
                channel,
                on,
                stale_after,
                retries,
            }),
            _ => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(problems)
    }
}

/// Reads the jobs file. Every problem is listed, each naming its job and key.
pub(crate) async fn load(path: &Path, check: bool) -> std::result::Result<Vec<Job>, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("cannot read the jobs file {}: {e}", path.display())])?;
    let file: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        vec![format!(
            "the jobs file {} is not valid TOML: {}",
            path.display(),
            e.message()
        )]
    })?;
    let mut problems = Vec::new();
    for k in file.keys().filter(|k| *k != "job" && *k != "notify") {
        problems.push(format!(
            "the jobs file has an unknown key {k:?} at the top; jobs are [[job]] tables, \
             notifications [[notify]] tables"
        ));
    }
    if let Err(p) = notify_specs(&file) {
        problems.extend(p);
    }
    let tables: Vec<&toml::Table> = match file.get("job") {
        Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_table()).collect(),
        _ => {
            problems.push(format!(
                "the jobs file {} has no [[job]] tables",
                path.display()
            ));
            Vec::new()
        }
    };
    let backup_opts = options_of("backup");
    let prune_opts = options_of("prune");
    let mut jobs = Vec::new();
    let mut names = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let name = t.get("name").and_then(|v| v.as_str()).map(str::to_owned);
        let label = match &name {
            Some(n) if !Job::valid_name(n) => {
                problems.push(format!(
                    "job {n:?}: a name of letters, digits, '.', '_' and '-' (it labels the job's backups)"
                ));
                format!("job {n:?}")
            }
            Some(n) => format!("job {n:?}"),
            None => {
                problems.push(format!("job #{}: no name (name = \"...\")", i + 1));
                format!("job #{}", i + 1)
            }
        };
        if let Some(n) = &name {
            if names.contains(n) {
                problems.push(format!("{label}: a second job of that name"));
            }
            names.push(n.clone());
        }
        match job_of(&label, name.as_deref(), t, &backup_opts, &prune_opts, check).await {
            Ok(j) => jobs.push(j),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(jobs)
    } else {
        Err(problems)
    }
}

// Long on purpose: one job table, key by key, every problem collected.
async fn job_of(
    label: &str,
    name: Option<&str>,
    t: &toml::Table,
    backup_opts: &[(String, bool)],
    prune_opts: &[(String, bool)],
    check: bool,
) -> std::result::Result<Job, Vec<String>> {
    let mut problems = Vec::new();
    let (mut backup_args, mut prune_args) = (Vec::new(), Vec::new());
    let mut retention = false;
    for (k, v) in t {
        if JOB_KEYS.contains(&k.as_str()) {
            continue;
        }
        let in_backup = backup_opts.iter().find(|(o, _)| o == k);
        let in_prune = prune_opts.iter().find(|(o, _)| o == k);
        if NOT_IN_JOBS.contains(&k.as_str()) || (in_backup.is_none() && in_prune.is_none()) {
            problems.push(format!(
                "{label}: unknown key {k:?} (a job has {} and the long options of `dbbackup \
                 backup` and `dbbackup prune`, e.g. source, repo, passphrase-env, keep-daily)",
                JOB_KEYS.join(", ")
            ));
            continue;
        }
        let flag = in_backup.or(in_prune).is_some_and(|(_, f)| *f);
        let values = match crate::config::as_strings(k, v, flag) {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => {
                problems.push(format!("{label}: {e}"));
                continue;
            }
        };
        let mut args = Vec::new();
        for value in values {
            args.push(format!("--{k}"));
            if !flag {
                args.push(value);
            }
        }
        if in_backup.is_some() {
            backup_args.extend(args.clone());
        }
        if in_prune.is_some() {
            if in_backup.is_none() {
                retention = true;
            }
            prune_args.extend(args);
        }
    }
    let tz = t
        .get("timezone")
        .and_then(|v| v.as_str())
        .unwrap_or("UTC")
        .to_owned();
    let schedule_of = |key: &str, problems: &mut Vec<String>| -> Option<Schedule> {
        let v = t.get(key)?;
        let Some(expr) = v.as_str() else {
            problems.push(format!("{label}: {key} must be a string"));
            return None;
        };
        match Schedule::parse_in(expr, &tz) {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(format!("{label}: {key}: {}", e.message()));
                None
            }
        }
    };
    let schedule = schedule_of("schedule", &mut problems);
    if !t.contains_key("schedule") {
        problems.push(format!(
            "{label}: no schedule (schedule = \"*/10 * * * *\": 5 cron fields, 6 with seconds)"
        ));
    }
    let verify_schedule = schedule_of("verify-schedule", &mut problems);
    let prune_schedule = schedule_of("prune-schedule", &mut problems);
    let restore_test_schedule = schedule_of("restore-test-schedule", &mut problems);
    let checks: Vec<String> = match t.get("check") {
        None => Vec::new(),
        Some(toml::Value::String(c)) => vec![c.clone()],
        Some(toml::Value::Array(a)) if a.iter().all(|v| v.is_str()) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            problems.push(format!(
                "{label}: check must be an SQL query or a list of them"
            ));
            Vec::new()
        }
    };
    let scratch_url = match t.get("scratch") {
        None => None,
        Some(toml::Value::String(u)) => Some(u.clone()),
        Some(_) => {
            problems.push(format!("{label}: scratch must be a server URL (a string)"));
            None
        }
    };
    // The scratch server's password, as `password-env` / `password-file` give the source's.
    let text_key = |k: &str, problems: &mut Vec<String>| match t.get(k) {
        None => None,
        Some(toml::Value::String(v)) => Some(v.clone()),
        Some(_) => {
            problems.push(format!("{label}: {k} must be a string"));
            None
        }
    };
    let scratch_password = crate::cli::PasswordArgs {
        password_env: text_key("scratch-password-env", &mut problems),
        password_file: text_key("scratch-password-file", &mut problems).map(Into::into),
    };
    let scratch_url = match scratch_url {
        Some(u) => match with_password(u, &scratch_password) {
            Ok(u) => Some(u),
            Err(e) => {
                problems.push(format!(
                    "{label}: scratch: {}",
                    e.message()
                        .replace("--password-env", "scratch-password-env")
                        .replace("--password-file", "scratch-password-file")
                ));
                None
            }
        },
        None if scratch_password.password_env.is_some()
            || scratch_password.password_file.is_some() =>
        {
            problems.push(format!(
                "{label}: scratch-password-env / scratch-password-file need a scratch server URL"
            ));
            None
        }
        None => None,
    };
    if (scratch_url.is_some() || !checks.is_empty()) && restore_test_schedule.is_none() {
        problems.push(format!(
            "{label}: scratch and check are for restore tests: add restore-test-schedule"
        ));
    }
    if prune_schedule.is_some() && !retention {
        problems.push(format!(
            "{label}: prune-schedule needs keep rules (keep-last, keep-daily, ...)"
        ));
    }
    let duration_of = |key: &str, problems: &mut Vec<String>| -> Option<Duration> {
        let v = t.get(key)?;
        match text_of(v).map(|s| dbbackup::parse_duration(&s)) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                problems.push(format!("{label}: {key}: {e}"));
                None
            }
            None => {
                problems.push(format!("{label}: {key} must be a duration such as \"30s\""));
                None
            }
        }
    };
    let jitter = duration_of("jitter", &mut problems);
    let hook_timeout = duration_of("hook-timeout", &mut problems);
    let hook_of = |key: &str, problems: &mut Vec<String>| -> Option<dbbackup::service::Hook> {
        let v = t.get(key)?;
        match v.as_str() {
            Some(c) if !c.trim().is_empty() => Some(command_hook(c)),
            _ => {
                problems.push(format!("{label}: {key} must be a command (a string)"));
                None
            }
        }
    };
    let (before, after, on_failure) = (
        hook_of("before", &mut problems),
        hook_of("after", &mut problems),
        hook_of("on-failure", &mut problems),
    );
    let catch_up = match t.get("catch-up") {
        None => true,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => {
            problems.push(format!("{label}: catch-up must be true or false"));
            true
        }
    };
    let backup = match parse_as("backup", backup_args) {
        Ok(crate::cli::Command::Backup(a)) => Some(a),
        Ok(_) => None,
        Err(e) => {
            problems.push(format!("{label}: {e}"));
            None
        }
    };
    let prune = if retention {
        match parse_as("prune", prune_args) {
            Ok(crate::cli::Command::Prune(a)) => match super::prune::policy_of(&a) {
                Ok((policy, group_by)) => Some(CliPrune { policy, group_by }),
                Err(e) => {
                    problems.push(format!("{label}: {e}"));
                    None
                }
            },
            Ok(_) => None,
            Err(e) => {
                problems.push(format!("{label}: {e}"));
                None
            }
        }
    } else {
        None
    };
    let Some(a) = backup else {
        return Err(problems);
    };
    if a.source.is_none() {
        problems.push(format!(
            "{label}: no source (source = \"sqlite:///srv/app.db\", postgres://..., mysql://...)"
        ));
    }
    if a.repo.repo.is_none() {
        problems.push(format!(
            "{label}: no repo (repo = \"/var/backups/app\", s3://bucket/prefix, ...)"
        ));
    }
    if let Some(var) = &a.key.passphrase_env {
        if std::env::var_os(var).is_none() {
            problems.push(format!(
                "{label}: passphrase-env = {var:?}, but the environment variable {var} is not set"
            ));
        }
    }
    if let Some(f) = &a.key.key_file {
        if !f.exists() {
            problems.push(format!(
                "{label}: key-file = {:?} does not exist",
                f.display()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let scratch = match &restore_test_schedule {
        None => None,
        Some(_) => {
            let engine = engine_of(a.source.as_deref().unwrap_or_default());
            match dbbackup::scratch(engine, scratch_url.as_deref(), &Default::default()) {
                Ok(s) => Some(s),
                Err(e) => return Err(vec![format!("{label}: restore-test-schedule: {e}")]),
            }
        }
    };
    let builder = match super::backup::builder(&a).await {
        Ok((b, _)) => b,
        Err(e) => return Err(vec![format!("{label}: {e}")]),
    };
    let mut j = Job::builder(name.unwrap_or_default()).backup(builder);
    if let Some(s) = schedule {
        j = j.schedule(s);
    }
    if let Some(s) = verify_schedule {
        j = j.schedule_for(JobOperation::Verify, s);
    }
    if let Some(s) = prune_schedule {
        j = j.schedule_for(JobOperation::Prune, s);
    }
    if let Some(p) = prune {
        j = j.retention(p);
    }
    if let (Some(s), Some(scratch)) = (restore_test_schedule, scratch) {
        j = j
            .schedule_for(JobOperation::RestoreTest, s)
            .restore_test(scratch, checks);
    }
    if let Some(h) = before {
        j = j.before(h);
    }
    if let Some(h) = after {
        j = j.after(h);
    }
    if let Some(h) = on_failure {
        j = j.on_failure(h);
    }
    if let Some(d) = jitter {
        j = j.jitter(d);
    }
    if let Some(d) = hook_timeout {
        j = j.hook_timeout(d);
    }
    let job = j
        .catch_up(catch_up)
        .build()
        .map_err(|e| vec![format!("{label}: {e}")])?;
    if check {
        // Reachable: a repository that does not exist yet is fine (the first backup creates
        // it); anything else that fails to read is not.
        if let Err(e) = job.repository().catalog().await {
            if e.kind() != ErrorKind::NotFound {
                return Err(vec![format!("{label}: the repository cannot be read: {e}")]);
            }
        }
    }
    Ok(job)
}

/// The engine of a source URL, as manifests name it.
fn engine_of(source: &str) -> &'static str {
    match source.split_once(':').map(|(s, _)| s).unwrap_or("") {
        "sqlite" => "sqlite",
        "postgres" | "postgresql" => "postgres",
        "mysql" | "mariadb" => "mysql",
        _ => "mssql",
    }
}

/// Prints each job event as one line (JSON lines with `json`).
fn printer(json: bool) -> impl Fn(&dbbackup::Event) + Send + Sync + 'static {
    move |e: &dbbackup::Event| {
        use dbbackup::Event as E;
        if !matches!(
            e,
            E::JobStarted { .. } | E::JobSkipped { .. } | E::JobFinished { .. }
        ) {
            return;
        }
        let now = rfc3339(time::OffsetDateTime::now_utc());
        if json {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["time"] = json!(now);
            println!("{v}");
            return;
        }
        let line = match e {
            E::JobStarted {
                job,
                operation,
                trigger,
            } => format!("{now} job {job}: {operation} started ({trigger})"),
            E::JobSkipped {
                job,
                operation,
                reason,
            } => format!("{now} job {job}: {operation} skipped ({reason})"),
            E::JobFinished {
                job,
                operation,
                status,
                backup_id,
                raw_bytes,
                stored_bytes,
                pruned,
                elapsed,
                error,
                restore_time,
            } => {
                let mut l = format!(
                    "{now} job {job}: {operation} {status} in {:.1}s",
                    elapsed.as_secs_f64()
                );
                if let (Some(id), Some(rt)) = (backup_id, restore_time) {
                    l.push_str(&format!(
                        ", backup {id} restored in {:.1}s",
                        rt.as_secs_f64()
                    ));
                } else if let Some(id) = backup_id {
                    l.push_str(&format!(
                        ", backup {id} ({} -> {})",
                        human(*raw_bytes),
                        human(*stored_bytes)
                    ));
                }
                if !pruned.is_empty() {
                    l.push_str(&format!(", pruned {}", pruned.join(" ")));
                }
                if let Some(err) = error {
                    l.push_str(&format!(": {err}"));
                }
                l
            }
            _ => return,
        };
        println!("{line}");
    }
}

fn jobs_path(config: Option<PathBuf>, command: &str) -> Result<PathBuf> {
    config.ok_or_else(|| {
        invalid(format!(
            "dbbackup {command} needs --config JOBS.toml (or DBBACKUP_CONFIG): the jobs file"
        ))
    })
}

fn report(problems: &[String], path: &Path) -> ExitCode {
    for p in problems {
        eprintln!("dbbackup: error: {p}");
    }
    eprintln!(
        "dbbackup: {} problem(s) in {}",
        problems.len(),
        path.display()
    );
    ExitCode::from(2)
}

/// Runs `daemon`.
pub(crate) async fn daemon(
    a: crate::cli::DaemonArgs,
    config: Option<PathBuf>,
    json: bool,
) -> Result<ExitCode> {
    let path = jobs_path(config, "daemon")?;
    let jobs = match load(&path, a.check_config).await {
        Ok(j) => j,
        Err(p) => return Ok(report(&p, &path)),
    };
    let describe = |jobs: &[Job]| {
        jobs.iter()
            .map(|j| j.name().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if a.check_config {
        println!(
            "{}: {} job(s), valid: {}",
            path.display(),
            jobs.len(),
            describe(&jobs)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let cancel = cancel_on_signals();
    eprintln!(
        "dbbackup daemon: {} job(s) from {}: {}",
        jobs.len(),
        path.display(),
        describe(&jobs)
    );
    let metrics = Metrics::new();
    let watched = Arc::new(std::sync::Mutex::new(jobs.clone()));
    if let Some(addr) = &a.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            invalid(format!(
                "--metrics-listen {addr}: cannot listen there: {e} (give HOST:PORT, e.g. \
                 127.0.0.1:9187)"
            ))
        })?;
        eprintln!(
            "dbbackup daemon: metrics at http://{}/metrics",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        tokio::spawn(serve_metrics(listener, metrics.clone(), cancel.clone()));
        tokio::spawn(watch_repositories(
            watched.clone(),
            metrics.clone(),
            cancel.clone(),
        ));
    }
    let mut scheduler = Scheduler::new()
        .max_concurrent(a.max_concurrent)
        .subscribe(printer(json))
        .subscribe(metrics.clone());
    // Notifications: [[notify]] now, and again on every SIGHUP.
    let notifiers = Notifiers::default();
    notifiers
        .replace(read_notify(&path).unwrap_or_default(), &jobs, &cancel)
        .await;
    scheduler = scheduler.subscribe(notifiers.clone());
    let handle = scheduler.start(cancel.clone());
    handle.reload(jobs);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| Error::new(ErrorKind::Source, format!("cannot listen for SIGHUP: {e}")))?;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = hup.recv() => match load(&path, false).await {
                Ok(jobs) => {
                    eprintln!("dbbackup daemon: reloaded {}: {} job(s): {}", path.display(), jobs.len(), describe(&jobs));
                    *watched.lock().expect("jobs lock") = jobs.clone();
                    match read_notify(&path) {
                        Ok(specs) => {
                            eprintln!("dbbackup daemon: {} notification channel(s)", specs.len());
                            notifiers.replace(specs, &jobs, &cancel).await;
                        }
                        Err(p) => {
                            for line in &p {
                                eprintln!("dbbackup daemon: reload of [[notify]] failed: {line}");
                            }
                            eprintln!("dbbackup daemon: the old notification channels stay");
                        }
                    }
                    handle.reload(jobs);
                }
                Err(p) => {
                    for line in &p {
                        eprintln!("dbbackup daemon: reload failed: {line}");
                    }
                    eprintln!("dbbackup daemon: the old jobs keep running");
                }
            },
        }
    }
    eprintln!("dbbackup daemon: stopping; waiting for the runs in flight");
    handle.wait().await;
    // What the last runs made the notifiers queue is delivered before exiting (bounded).
    notifiers.flush().await;
    Ok(ExitCode::SUCCESS)
}

/// Serves `GET /metrics` until `cancel`.
async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    use http_body_util::Full;
    use hyper::{Request, Response, StatusCode};
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    eprintln!("dbbackup daemon: metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let r = if req.uri().path() == "/metrics" {
                        Response::builder()
                            .header(
                                "content-type",
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                            .body(Full::new(bytes::Bytes::from(metrics.encode())))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(bytes::Bytes::from_static(b"see /metrics\n")))
                    };
                    r
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Seeds the metrics with each job's newest backup (once per job, from its repository), and
/// refreshes the archive lag of each job's repository every 30 seconds (a listing of its log
/// archive). Follows reloads through `jobs`.
async fn watch_repositories(
    jobs: Arc<std::sync::Mutex<Vec<Job>>>,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let mut seeded = std::collections::HashSet::new();
    loop {
        let now: Vec<Job> = jobs.lock().expect("jobs lock").clone();
        for job in &now {
            if seeded.insert(job.name().to_owned()) {
                if let Ok(catalog) = job.repository().catalog().await {
                    if let Some(m) = catalog
                        .trusted()
                        .filter(|m| m.labels.get("job").map(String::as_str) == Some(job.name()))
                        .max_by_key(|m| m.finished_at)
                    {
                        metrics.seed_backup(
                            job.name(),
                            m.finished_at,
                            m.raw_size(),
                            m.stored_size(),
                        );
                    }
                }
            }
            if let Ok(Some((kind, _, at))) = super::check::last_piece(job.repository()).await {
                metrics.set_archive_piece(job.name(), &kind, at);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
}

/// Runs `run-job`.
pub(crate) async fn run_job(
    a: crate::cli::RunJobArgs,
    config: Option<PathBuf>,
    json: bool,
) -> Result<ExitCode> {
    let path = jobs_path(config, "run-job")?;
    let op = match a.operation.as_str() {
        "backup" => JobOperation::Backup,
        "verify" => JobOperation::Verify,
        "prune" => JobOperation::Prune,
        "restore-test" => JobOperation::RestoreTest,
        other => {
            return Err(invalid(format!(
                "--operation {other:?}: use backup, verify, prune or restore-test"
            )))
        }
    };
    let jobs = match load(&path, false).await {
        Ok(j) => j,
        Err(p) => return Ok(report(&p, &path)),
    };
    let Some(job) = jobs.iter().find(|j| j.name() == a.name) else {
        return Err(invalid(format!(
            "{} has no job {:?}; its jobs: {}",
            path.display(),
            a.name,
            jobs.iter().map(Job::name).collect::<Vec<_>>().join(", ")
        )));
    };
    let subs: Vec<Arc<dyn dbbackup::Subscriber>> = vec![Arc::new(printer(json))];
    let out = job
        .run(op, Trigger::Manual, cancel_on_signals(), &subs)
        .await;
    Ok(if out.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
