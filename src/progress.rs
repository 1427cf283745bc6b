//! Showing long work: a progress bar on a terminal, a structured log line per window elsewhere
//! (a pod's log, CI). Log lines printed while the bar is drawn go through `BarAwareWriter`, so
//! they appear above the bar instead of tearing it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::outcome::WindowOutcome;
use crate::window::Window;
use crate::worker::LiveCounters;

static ACTIVE_BAR: OnceLock<ProgressBar> = OnceLock::new();

pub struct Progress {
    bar: Option<ProgressBar>,
    live: Arc<LiveCounters>,
    started: Instant,
}

impl Progress {
    /// `windows` to run now; `already_done` were finished by an earlier run.
    pub fn new(windows: u64, already_done: u64, live: Arc<LiveCounters>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(windows + already_done),
                ProgressDrawTarget::stderr(),
            );
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} windows  {msg}  ETA {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(already_done);
            bar.reset_eta();
            bar.enable_steady_tick(Duration::from_millis(200));
            // Only one import runs per process, so one bar; a second set is a no-op.
            let _ = ACTIVE_BAR.set(bar.clone());
            bar
        });
        Progress {
            bar,
            live,
            started: Instant::now(),
        }
    }

    /// Refreshes the rate shown on the bar; called on a timer.
    pub fn tick(&self) {
        if let Some(bar) = &self.bar {
            let written = self.live.samples_written.load(Ordering::Relaxed);
            let rate = written as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{} samples written, {}/s",
                human(written as f64),
                human(rate)
            ));
        }
    }

    /// One log line per window: a warning when anything was refused or failed; otherwise an
    /// info line where no bar shows progress (a pod's log), a debug line under the bar.
    pub fn window_finished(&self, window: Window, outcome: &WindowOutcome) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        macro_rules! log {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    window = %window,
                    series = outcome.series,
                    read = outcome.samples_read,
                    written = outcome.samples_written,
                    rejected = outcome.samples_rejected(),
                    skipped = outcome.samples_skipped(),
                    seconds = format!("{:.2}", outcome.seconds),
                    error = outcome.error.as_ref().map(|e| e.message.as_str()),
                    "window finished"
                )
            };
        }
        if !outcome.is_complete() {
            log!(tracing::Level::WARN);
        } else if self.bar.is_some() {
            log!(tracing::Level::DEBUG);
        } else {
            log!(tracing::Level::INFO);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            self.tick();
            bar.finish();
        }
    }
}

/// `12.3M`, `456k`, `789`.
pub fn human(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.2}G", n / 1e9),
        n if n >= 1e6 => format!("{:.2}M", n / 1e6),
        n if n >= 1e4 => format!("{:.1}k", n / 1e3),
        n => format!("{n:.0}"),
    }
}

/// Writes log lines to stderr, above the progress bar when one is drawn.
pub struct BarAwareWriter;

impl Write for BarAwareWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match ACTIVE_BAR.get() {
            Some(bar) if !bar.is_finished() => bar.suspend(|| std::io::stderr().write_all(buf))?,
            _ => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_numbers_are_short() {
        assert_eq!(super::human(999.0), "999");
        assert_eq!(super::human(45_600.0), "45.6k");
        assert_eq!(super::human(12_345_678.0), "12.35M");
        assert_eq!(super::human(3.2e9), "3.20G");
    }
}
