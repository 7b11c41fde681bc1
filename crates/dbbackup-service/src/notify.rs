//! Notifications: webhooks and e-mail when a job's run fails, when it recovers, optionally when
//! it succeeds, and when its newest backup grows stale.
//!
//! A [`Notifier`] is a [`Subscriber`] of the scheduler's events. It notifies on *changes*: the
//! first failure of a job's operation (not every failed retry after it), the first success
//! after failures (recovery), and once per stale period. Deliveries run on a task of their own
//! (a slow receiver never holds up a backup), each with a time limit and retries with backoff.
//! Secrets (webhook URLs and tokens, SMTP passwords) are given by the caller (the command line
//! reads them from environment variables or files) and never appear in messages or bodies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dbbackup_core::{CancellationToken, Error, ErrorKind, Event, Result, Subscriber};
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyOn {
    /// A run failed (after one that did not).
    Failure,
    /// A run succeeded after failures, or a backup after the job was stale.
    Recovery,
    /// Every successful run.
    Success,
    /// The job's newest backup is older than the stale limit.
    Stale,
}

impl NotifyOn {
    /// `failure`, `recovery`, `success`, `stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::Failure => "failure",
            NotifyOn::Recovery => "recovery",
            NotifyOn::Success => "success",
            NotifyOn::Stale => "stale",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s words.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for another word.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "failure" => NotifyOn::Failure,
            "recovery" => NotifyOn::Recovery,
            "success" => NotifyOn::Success,
            "stale" => NotifyOn::Stale,
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("notify on {other:?}: use failure, recovery, success or stale"),
                ))
            }
        })
    }
}

/// One notification.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Notification {
    /// Why: `failure`, `recovery`, `success`, `stale`.
    pub kind: String,
    /// The job.
    pub job: String,
    /// The operation (`backup`, `verify`, `prune`, `restore-test`).
    pub operation: String,
    /// The run's status, or `stale`.
    pub status: String,
    /// The backup made or checked.
    pub backup_id: Option<String>,
    /// Why it failed (as the job reported it, URLs redacted).
    pub error: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// One line for people (the Slack / Mattermost text, the e-mail subject).
    pub text: String,
}

/// Somewhere notifications go.
#[async_trait]
pub trait Channel: Send + Sync {
    /// Where, without secrets (for logs).
    fn describe(&self) -> String;
    /// Delivers one notification once (the notifier retries).
    ///
    /// # Errors
    /// A failed delivery; [`Error::is_temporary`] ones are retried.
    async fn send(&self, n: &Notification) -> Result<()>;
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The [`Notification`] as JSON.
    Json,
    /// `{"text": "..."}`, which Slack and Mattermost incoming webhooks take.
    Text,
}

/// A JSON `POST` to a URL.
pub struct Webhook {
    url: reqwest::Url,
    format: WebhookFormat,
    token: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Webhook({})", self.describe())
    }
}

impl Webhook {
    /// A webhook at `url` (http or https), each attempt limited to `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a URL that is not http(s) (the URL is not repeated: it
    /// may hold a token).
    pub fn new(url: &str, format: WebhookFormat, timeout: Duration) -> Result<Self> {
        let url = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    "the webhook URL is not an http:// or https:// URL",
                )
            })?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, format!("HTTP client: {e}")))?;
        Ok(Webhook {
            url,
            format,
            token: None,
            client,
        })
    }

    /// Sends `Authorization: Bearer <token>`.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

#[async_trait]
impl Channel for Webhook {
    fn describe(&self) -> String {
        format!(
            "webhook {}://{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or("?")
        )
    }

    async fn send(&self, n: &Notification) -> Result<()> {
        let body = match self.format {
            WebhookFormat::Json => serde_json::to_value(n).unwrap_or_default(),
            WebhookFormat::Text => serde_json::json!({ "text": n.text }),
        };
        let mut req = self.client.post(self.url.clone()).json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let what = self.describe();
        let resp = req.send().await.map_err(|e| {
            Error::new(ErrorKind::Io, format!("{what}: {}", e.without_url())).temporary()
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let e = Error::new(ErrorKind::Io, format!("{what}: HTTP {status}"));
        Err(
            if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                e.temporary()
            } else {
                e
            },
        )
    }
}

/// How an e-mail channel secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS, required (port 587; the default).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// Plaintext: only for a relay on this machine (refused for other hosts).
    None,
}

/// E-mail over SMTP (lettre).
pub struct Email {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    host: String,
    from: lettre::message::Mailbox,
    to: Vec<lettre::message::Mailbox>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Email({})", self.describe())
    }
}

impl Email {
    /// Mail from `from` to each of `to` through `host:port`, logging in with `credentials`
    /// (user, password) when given.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for bad addresses, no recipient, or plaintext to a host
    /// that is not this machine.
    pub fn new(
        host: &str,
        port: u16,
        tls: SmtpTls,
        credentials: Option<(String, String)>,
        from: &str,
        to: &[String],
        timeout: Duration,
    ) -> Result<Self> {
        let bad = |m: String| Error::new(ErrorKind::InvalidInput, m);
        let mailbox = |a: &str| {
            a.parse::<lettre::message::Mailbox>()
                .map_err(|e| bad(format!("e-mail address {a:?}: {e}")))
        };
        if to.is_empty() {
            return Err(bad(
                "an e-mail channel needs at least one recipient (to)".into()
            ));
        }
        let local = matches!(host, "localhost" | "::1") || host.starts_with("127.");
        let builder = match tls {
            SmtpTls::StartTls => {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::starttls_relay(host)
                    .map_err(|e| bad(format!("SMTP relay {host}: {e}")))?
            }
            SmtpTls::Tls => lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::relay(host)
                .map_err(|e| bad(format!("SMTP relay {host}: {e}")))?,
            SmtpTls::None if local => {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(host)
            }
            SmtpTls::None => {
                return Err(bad(format!(
                    "plaintext SMTP to {host} would send the password and the mail unencrypted \
                     over the network: use tls = \"starttls\" (port 587) or \"tls\" (465); \
                     plaintext is only for a relay on this machine"
                )))
            }
        };
        let mut builder = builder.port(port).timeout(Some(timeout));
        if let Some((u, p)) = credentials {
            builder = builder.credentials(
                lettre::transport::smtp::authentication::Credentials::new(u, p),
            );
        }
        Ok(Email {
            transport: builder.build(),
            host: format!("{host}:{port}"),
            from: mailbox(from)?,
            to: to.iter().map(|a| mailbox(a)).collect::<Result<_>>()?,
        })
    }
}

#[async_trait]
impl Channel for Email {
    fn describe(&self) -> String {
        format!("e-mail via {}", self.host)
    }

    async fn send(&self, n: &Notification) -> Result<()> {
        use lettre::AsyncTransport;
        let mut m = lettre::Message::builder()
            .from(self.from.clone())
            .subject(format!("[dbbackup] {}", n.text));
        for t in &self.to {
            m = m.to(t.clone());
        }
        let mut body = format!(
            "{}\n\njob:       {}\noperation: {}\nstatus:    {}\ntime:      {}\n",
            n.text,
            n.job,
            n.operation,
            n.status,
            n.time
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        );
        if let Some(id) = &n.backup_id {
            body.push_str(&format!("backup:    {id}\n"));
        }
        if let Some(e) = &n.error {
            body.push_str(&format!("error:     {e}\n"));
        }
        let msg = m
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("e-mail: {e}")))?;
        let what = self.describe();
        self.transport.send(msg).await.map_err(|e| {
            let err = Error::new(ErrorKind::Io, format!("{what}: {e}"));
            if e.is_permanent() {
                err
            } else {
                err.temporary()
            }
        })?;
        Ok(())
    }
}

struct Route {
    channel: Arc<dyn Channel>,
    on: Vec<NotifyOn>,
}

/// Builds a [`Notifier`].
#[derive(Default)]
pub struct NotifierBuilder {
    routes: Vec<Route>,
    stale_after: Option<Duration>,
    retries: u32,
    backoff: Duration,
}

impl NotifierBuilder {
    /// Sends the notifications of kinds `on` to `channel`.
    pub fn channel(mut self, channel: Arc<dyn Channel>, on: &[NotifyOn]) -> Self {
        self.routes.push(Route {
            channel,
            on: on.to_vec(),
        });
        self
    }

    /// A job whose newest backup is older than this is stale (one notification per stale
    /// period). Default: no staleness checks.
    pub fn stale_after(mut self, d: Duration) -> Self {
        self.stale_after = Some(d);
        self
    }

    /// Retries after a temporary delivery failure (default 3), waiting `backoff`, then twice
    /// as long each time (default 1 s).
    pub fn retries(mut self, n: u32, backoff: Duration) -> Self {
        self.retries = n;
        self.backoff = backoff;
        self
    }

    /// Starts the delivery task (and the staleness checks) on the current tokio runtime; they
    /// end with `cancel` after delivering what was queued.
    pub fn start(self, cancel: CancellationToken) -> Notifier {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            runs: Mutex::new(HashMap::new()),
            backups: Mutex::new(HashMap::new()),
            tx,
        });
        let routes = Arc::new(self.routes);
        tokio::spawn(deliver(rx, routes, self.retries, self.backoff));
        if let Some(limit) = self.stale_after {
            tokio::spawn(watch_stale(state.clone(), limit, cancel));
        }
        Notifier { state }
    }
}

struct State {
    /// Per (job, operation): whether the last run failed.
    runs: Mutex<HashMap<(String, String), bool>>,
    /// Per job: its newest backup and whether it was reported stale.
    backups: Mutex<HashMap<String, (OffsetDateTime, bool)>>,
    tx: mpsc::UnboundedSender<Queued>,
}

/// What the delivery task is given: a notification, or a flush to answer once everything
/// queued before it is delivered (or given up on).
enum Queued {
    Deliver(Notification),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Notifies channels about job runs: subscribe it to a [`Scheduler`](crate::Scheduler).
#[derive(Clone)]
pub struct Notifier {
    state: Arc<State>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

impl Notifier {
    /// A builder (no channels, 3 retries from 1 s, no staleness checks).
    pub fn builder() -> NotifierBuilder {
        NotifierBuilder {
            retries: 3,
            backoff: Duration::from_secs(1),
            ..Default::default()
        }
    }

    /// Records a job's newest backup from before the notifier started (read from its
    /// repository), for the staleness checks.
    pub fn seed_backup(&self, job: &str, finished_at: OffsetDateTime) {
        let mut b = self.state.backups.lock().expect("notifier lock");
        let e = b.entry(job.to_owned()).or_insert((finished_at, false));
        if e.0 < finished_at {
            *e = (finished_at, false);
        }
    }

    fn send(&self, n: Notification) {
        let _ = self.state.tx.send(Queued::Deliver(n));
    }

    /// Waits, at most `within`, until every notification queued so far is delivered (or its
    /// retries are spent): a daemon calls it before exiting, so the failure it just saw is told.
    /// Returns whether everything was delivered in time.
    pub async fn flush(&self, within: Duration) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.state.tx.send(Queued::Flush(tx)).is_err() {
            return true;
        }
        matches!(tokio::time::timeout(within, rx).await, Ok(Ok(())))
    }
}

fn text_of(kind: NotifyOn, job: &str, op: &str, error: Option<&str>) -> String {
    match kind {
        NotifyOn::Failure => format!(
            "job {job}: {op} FAILED{}",
            error.map(|e| format!(": {e}")).unwrap_or_default()
        ),
        NotifyOn::Recovery => format!("job {job}: {op} succeeded again"),
        NotifyOn::Success => format!("job {job}: {op} succeeded"),
        NotifyOn::Stale => format!("job {job}: the newest backup is stale"),
    }
}

impl Subscriber for Notifier {
    fn on_event(&self, event: &Event) {
        let Event::JobFinished {
            job,
            operation,
            status,
            backup_id,
            error,
            ..
        } = event
        else {
            return;
        };
        if status == "cancelled" {
            return;
        }
        let failed = status != "succeeded";
        let was_failed = self
            .state
            .runs
            .lock()
            .expect("notifier lock")
            .insert((job.clone(), operation.clone()), failed)
            .unwrap_or(false);
        let mut kinds = Vec::new();
        if failed && !was_failed {
            kinds.push(NotifyOn::Failure);
        }
        if !failed {
            let mut recovered = was_failed;
            if operation == "backup" {
                let mut b = self.state.backups.lock().expect("notifier lock");
                let now = OffsetDateTime::now_utc();
                if let Some((_, true)) = b.insert(job.clone(), (now, false)) {
                    recovered = true;
                }
            }
            if recovered {
                kinds.push(NotifyOn::Recovery);
            }
            kinds.push(NotifyOn::Success);
        }
        for k in kinds {
            self.send(Notification {
                kind: k.as_str().into(),
                job: job.clone(),
                operation: operation.clone(),
                status: status.clone(),
                backup_id: backup_id.clone(),
                error: error.clone(),
                time: OffsetDateTime::now_utc(),
                text: text_of(k, job, operation, error.as_deref()),
            });
        }
    }
}

async fn deliver(
    mut rx: mpsc::UnboundedReceiver<Queued>,
    routes: Arc<Vec<Route>>,
    retries: u32,
    backoff: Duration,
) {
    while let Some(q) = rx.recv().await {
        let n = match q {
            Queued::Deliver(n) => n,
            Queued::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let Ok(kind) = NotifyOn::parse(&n.kind) else {
            continue;
        };
        let sends = routes.iter().filter(|r| r.on.contains(&kind)).map(|r| {
            let n = n.clone();
            async move {
                let mut wait = backoff;
                for attempt in 0..=retries {
                    match r.channel.send(&n).await {
                        Ok(()) => return,
                        Err(e) if e.is_temporary() && attempt < retries => {
                            tracing::warn!(channel = %r.channel.describe(), error = %e, "notification not delivered; retrying");
                            tokio::time::sleep(wait).await;
                            wait *= 2;
                        }
                        Err(e) => {
                            tracing::error!(channel = %r.channel.describe(), error = %e, kind = %n.kind, job = %n.job, "notification not delivered");
                            return;
                        }
                    }
                }
            }
        });
        futures::future::join_all(sends).await;
    }
}

async fn watch_stale(state: Arc<State>, limit: Duration, cancel: CancellationToken) {
    let tick = (limit / 10).clamp(Duration::from_millis(200), Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let now = OffsetDateTime::now_utc();
        let mut stale = Vec::new();
        for (job, (at, told)) in state.backups.lock().expect("notifier lock").iter_mut() {
            let age: Duration = (now - *at).try_into().unwrap_or(Duration::ZERO);
            if age > limit && !*told {
                *told = true;
                stale.push((job.clone(), age));
            }
        }
        for (job, age) in stale {
            let _ = state.tx.send(Queued::Deliver(Notification {
                kind: "stale".into(),
                job: job.clone(),
                operation: "backup".into(),
                status: "stale".into(),
                backup_id: None,
                error: Some(format!(
                    "the newest backup finished {}s ago (limit {}s)",
                    age.as_secs(),
                    limit.as_secs()
                )),
                time: now,
                text: text_of(NotifyOn::Stale, &job, "backup", None),
            }));
        }
    }
}
