//! Progress and results: JSON for machines, bars on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dbbackup::{Event, Operation, Subscriber};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Newline-delimited JSON events on stderr.
    Json,
    /// indicatif bars on the terminal.
    Bars,
    /// One plain line per finished entry on stderr.
    Lines,
}

impl Mode {
    /// JSON when asked, bars when stderr is a terminal, lines otherwise.
    pub fn pick(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// `12.3 MiB`.
/// `1 row`, `2 rows`.
pub fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `1 entry`, `3 entries`.
pub fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".to_owned()
    } else {
        format!("{n} entries")
    }
}

/// A duration as a person says it: `45s`, `12m`, `3h12m`, `2d4h`.
pub fn age(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `1.2 GiB of ~4.0 GiB (30%), 85.3 MiB/s, ETA 38s, 12345 rows, 3/12 entries`: the whole
/// operation, from an [`Event::Progress`].
fn overall(event: &Event) -> Option<String> {
    let Event::Progress {
        operation,
        raw_bytes,
        estimated_bytes,
        rows,
        entries_done,
        entries: n,
        bytes_per_second,
        eta_seconds,
        ..
    } = event
    else {
        return None;
    };
    let mut out = human(*raw_bytes);
    if let Some(total) = estimated_bytes {
        // A backup's total comes from the catalog: an estimate.
        let about = if *operation == Operation::Backup {
            "~"
        } else {
            ""
        };
        let pct = if *total > 0 {
            *raw_bytes as f64 * 100.0 / *total as f64
        } else {
            100.0
        };
        out.push_str(&format!(" of {about}{} ({pct:.0}%)", human(*total)));
    }
    out.push_str(&format!(", {}/s", human(*bytes_per_second as u64)));
    match eta_seconds {
        Some(s) if *s >= 1.0 => {
            out.push_str(&format!(", ETA {}", age(Duration::from_secs_f64(*s))))
        }
        Some(_) => out.push_str(", ETA <1s"),
        None => {}
    }
    if *rows > 0 {
        out.push_str(&format!(", {}", count(*rows, "row")));
    }
    out.push_str(&format!(", {entries_done}/{}", entries(*n)));
    Some(out)
}

/// How often a plain-lines progress line is written (logs, not terminals).
const LINE_EVERY: Duration = Duration::from_secs(10);

/// Turns engine events into progress output.
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    total: Mutex<Option<ProgressBar>>,
    last_line: Mutex<Option<Instant>>,
}

impl Progress {
    /// Progress in `mode`.
    pub fn new(mode: Mode) -> Self {
        let multi = MultiProgress::with_draw_target(if mode == Mode::Bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Progress {
            mode,
            multi,
            bars: Mutex::default(),
            total: Mutex::default(),
            last_line: Mutex::default(),
        }
    }

    fn lines(&self, event: &Event) {
        match event {
            Event::ServerProgress {
                percent, message, ..
            } => eprintln!("  server: {message} ({percent:.0}%)"),
            Event::Started { .. } => {
                *self.last_line.lock().expect("progress lock") = Some(Instant::now())
            }
            Event::Progress { .. } => {
                let mut last = self.last_line.lock().expect("progress lock");
                if last.is_some_and(|l| l.elapsed() >= LINE_EVERY) {
                    *last = Some(Instant::now());
                    if let Some(line) = overall(event) {
                        eprintln!("  progress: {line}");
                    }
                }
            }
            // Entries that moved nothing (an empty phase) are not worth a line.
            Event::EntryFinished {
                entry,
                raw_bytes,
                stored_bytes,
                rows,
                elapsed,
                ..
            } if *raw_bytes > 0 => {
                let rows = rows
                    .map(|r| format!(", {}", count(r, "row")))
                    .unwrap_or_default();
                eprintln!(
                    "  {entry}: {} -> {}{rows} in {:.1}s",
                    human(*raw_bytes),
                    human(*stored_bytes),
                    elapsed.as_secs_f64()
                );
            }
            _ => {}
        }
    }

    fn bars(&self, event: &Event) {
        match event {
            Event::Started { operation, .. } => {
                let bar = self.multi.insert(0, ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>7} [{bar:24}] {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(operation.as_str());
                if let Some(old) = self.total.lock().expect("progress lock").replace(bar) {
                    old.finish_and_clear();
                }
            }
            Event::Progress {
                raw_bytes,
                estimated_bytes,
                ..
            } => {
                if let Some(bar) = &*self.total.lock().expect("progress lock") {
                    bar.set_length(estimated_bytes.unwrap_or(*raw_bytes).max(1));
                    bar.set_position(*raw_bytes);
                    if let Some(line) = overall(event) {
                        bar.set_message(line);
                    }
                }
            }
            // An entry's bar appears once it moves bytes, so empty phases never show.
            Event::EntryProgress {
                entry,
                raw_bytes,
                rows,
                ..
            } => {
                let mut bars = self.bars.lock().expect("progress lock");
                let bar = bars.entry(entry.clone()).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix:30} {bytes:>10} {binary_bytes_per_sec:>12} {msg}",
                        )
                        .expect("valid template"),
                    );
                    bar.set_prefix(entry.clone());
                    bar
                });
                bar.set_position(*raw_bytes);
                if let Some(r) = rows {
                    bar.set_message(count(*r, "row"));
                }
                bar.tick();
            }
            Event::EntryFinished { entry, .. } => {
                if let Some(bar) = self.bars.lock().expect("progress lock").remove(entry) {
                    bar.finish_and_clear();
                }
            }
            Event::ServerProgress {
                percent, message, ..
            } => {
                let _ = self
                    .multi
                    .println(format!("server: {message} ({percent:.0}%)"));
            }
            Event::Finished { .. } | Event::Failed { .. } => {
                for (_, bar) in self.bars.lock().expect("progress lock").drain() {
                    bar.finish_and_clear();
                }
                if let Some(bar) = self.total.lock().expect("progress lock").take() {
                    if matches!(event, Event::Failed { .. }) {
                        bar.abandon();
                    } else {
                        bar.finish_and_clear();
                    }
                }
            }
            _ => {}
        }
    }
}

impl Subscriber for Progress {
    fn on_event(&self, event: &Event) {
        match self.mode {
            Mode::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{line}");
                }
            }
            Mode::Lines => self.lines(event),
            Mode::Bars => self.bars(event),
        }
    }
}
