//! Progress and results: JSON for machines, bars on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use dbbackup::{Event, Subscriber};
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

/// Turns engine events into progress output.
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
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
            Mode::Lines => {
                if let Event::ServerProgress {
                    percent, message, ..
                } = event
                {
                    eprintln!("  server: {message} ({percent:.0}%)");
                }
                if let Event::EntryFinished {
                    entry,
                    raw_bytes,
                    stored_bytes,
                    rows,
                    elapsed,
                    ..
                } = event
                {
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
            }
            Mode::Bars => {
                let mut bars = self.bars.lock().expect("progress lock");
                match event {
                    Event::EntryStarted { entry, .. } => {
                        let bar = self.multi.add(ProgressBar::new_spinner());
                        bar.set_style(
                            ProgressStyle::with_template("{spinner} {prefix:30} {bytes:>10} {binary_bytes_per_sec:>12} {msg}")
                                .expect("valid template"),
                        );
                        bar.set_prefix(entry.clone());
                        bars.insert(entry.clone(), bar);
                    }
                    Event::EntryProgress {
                        entry,
                        raw_bytes,
                        rows,
                        ..
                    } => {
                        if let Some(bar) = bars.get(entry) {
                            bar.set_position(*raw_bytes);
                            if let Some(r) = rows {
                                bar.set_message(count(*r, "row"));
                            }
                            bar.tick();
                        }
                    }
                    Event::EntryFinished {
                        entry,
                        raw_bytes,
                        stored_bytes,
                        rows,
                        ..
                    } => {
                        if let Some(bar) = bars.remove(entry) {
                            bar.set_position(*raw_bytes);
                            let rows = rows
                                .map(|r| format!(", {}", count(r, "row")))
                                .unwrap_or_default();
                            bar.finish_with_message(format!("-> {}{rows}", human(*stored_bytes)));
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
                        for (_, bar) in bars.drain() {
                            bar.abandon();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
