//! Progress reporting: a bar with ETA on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counts main-task trainings; `note` describes the current phase.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    interactive: bool,
    /// When the last plain log line went out (non-interactive mode only).
    last_line: Arc<Mutex<Option<Instant>>>,
    /// The phase and what the environment is doing inside it (e.g. "rendering 100 images").
    status: Arc<Mutex<(String, String)>>,
}

/// Plain log lines come at most this often, so logs of long runs stay readable.
const LOG_INTERVAL: Duration = Duration::from_secs(2);

impl Progress {
    /// A bar on stderr when it is a terminal; otherwise silent, with notes going to the log.
    pub fn new(total: u64) -> Self {
        let interactive = std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(
            Some(total),
            if interactive { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
        );
        let style = ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} trainings · {msg} · ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        if interactive {
            bar.enable_steady_tick(Duration::from_millis(250));
        }
        Self { bar, interactive, last_line: Arc::default(), status: Arc::default() }
    }

    /// Reports nothing anywhere (tests, nested runs).
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
            interactive: false,
            last_line: Arc::default(),
            status: Arc::default(),
        }
    }

    /// Names the unit of work the phases belong to (e.g. "seed 2/5").
    pub fn context(&self, text: String) {
        self.bar.set_prefix(text);
    }

    pub fn advance(&self, trainings: u64) {
        self.bar.inc(trainings);
    }

    /// Sets the phase shown after the context (e.g. "iteration 13/60 · mean reward 0.912");
    /// without a terminal, logs it with the count and ETA, at most every two seconds.
    pub fn phase(&self, text: String) {
        let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        status.0 = text;
        status.1.clear();
        self.show(&status);
    }

    /// What the environment is doing within the phase (e.g. "sample 3: training"); shown
    /// after the phase until the next phase begins.
    pub fn detail(&self, text: String) {
        let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        status.1 = text;
        self.show(&status);
    }

    fn show(&self, (phase, detail): &(String, String)) {
        let text = if detail.is_empty() { phase.clone() } else { format!("{phase} · {detail}") };
        if !self.interactive {
            let mut last = self.last_line.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
                *last = Some(Instant::now());
                let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
                tracing::info!(
                    "[{pos}/{len} trainings, ETA {}s] {} {text}",
                    self.bar.eta().as_secs(),
                    self.bar.prefix()
                );
            }
        }
        self.bar.set_message(text);
    }

    /// A line worth keeping: above the bar on a terminal, in the log otherwise.
    pub fn note(&self, text: &str) {
        if self.interactive {
            self.bar.println(text);
        } else {
            tracing::info!("{text}");
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
