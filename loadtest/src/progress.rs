//! Live progress on a terminal: elapsed, rate, ok, errors, current p99.
//! Hidden when stderr is not a terminal or with `--quiet`.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use switchyard_runtime::slo::fmt_us;

/// Whether to show progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// On a terminal (stderr) only.
    Auto,
    /// Never.
    Quiet,
}

/// The progress line.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over `length` (hidden unless `display` is `Auto` and stderr is a terminal).
    pub fn new(display: Display, length: Duration) -> Progress {
        let visible = display == Display::Auto && std::io::stderr().is_terminal();
        let bar = if visible {
            ProgressBar::with_draw_target(
                Some(length.as_millis() as u64),
                ProgressDrawTarget::stderr_with_hz(4),
            )
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress { bar }
    }

    /// Updates the line.
    pub fn update(&self, elapsed: Duration, rate: f64, ok: u64, errors: u64, p99_us: u64) {
        self.bar.set_position(elapsed.as_millis() as u64);
        self.bar.set_message(format!(
            "{rate:>9.0} msg/s  ok {ok}  errors {errors}  p99 {}",
            fmt_us(p99_us)
        ));
    }

    /// Removes the line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
