//! Progress reporting: a bar with ETA on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Counts main-task trainings; `note` describes the current phase.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    interactive: bool,
    /// When the last plain log line went out (non-interactive mode only).
    last_line: Arc<Mutex<Option<Instant>>>,
    /// The phase, the evaluations done of the current batch ("3/6 done") and what the
    /// environment is doing (e.g. "rendering 100 images").
    status: Arc<Mutex<Status>>,
    /// Trainings restored from a checkpoint rather than run: they do not count towards the
    /// rate the ETA is computed from.
    restored: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Status {
    phase: String,
    batch: String,
    detail: String,
}

/// Time left at the rate of this process's own trainings: indicatif's estimate follows the
/// recent step rate, which swings wildly when trainings finish in bursts of K, and counts
/// trainings restored by `--resume` as if they had just been done.
fn eta(position: u64, length: u64, restored: u64, elapsed: Duration) -> Option<Duration> {
    let done = position.saturating_sub(restored);
    (done > 0).then(|| elapsed.mul_f64(length.saturating_sub(position) as f64 / done as f64))
}

fn format_eta(eta: Option<Duration>) -> String {
    eta.map_or_else(|| "?".to_string(), |d| indicatif::HumanDuration(d).to_string())
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
        let restored = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&restored);
        let style = ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} trainings · {msg} · ETA {own_eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("own_eta", move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let eta =
                eta(state.pos(), state.len().unwrap_or(0), counted.load(Ordering::Relaxed), state.elapsed());
            let _ = out.write_str(&format_eta(eta));
        })
        .progress_chars("=> ");
        bar.set_style(style);
        if interactive {
            bar.enable_steady_tick(Duration::from_millis(250));
        }
        Self { bar, interactive, last_line: Arc::default(), status: Arc::default(), restored }
    }

    /// Reports nothing anywhere (tests, nested runs).
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
            interactive: false,
            last_line: Arc::default(),
            status: Arc::default(),
            restored: Arc::default(),
        }
    }

    /// Names the unit of work the phases belong to (e.g. "seed 2/5").
    pub fn context(&self, text: String) {
        self.bar.set_prefix(text);
    }

    /// Counts trainings done now.
    pub fn advance(&self, trainings: u64) {
        self.bar.inc(trainings);
    }

    /// Counts trainings whose results came from a checkpoint (`--resume`).
    pub fn restore(&self, trainings: u64) {
        self.restored.fetch_add(trainings, Ordering::Relaxed);
        self.bar.inc(trainings);
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the phase shown after the context (e.g. "iteration 13/60 · mean reward 0.912");
    /// without a terminal, logs it with the count and ETA, at most every two seconds.
    pub fn phase(&self, text: String) {
        let mut status = self.status();
        status.phase = text;
        status.batch.clear();
        status.detail.clear();
        self.show(&status);
    }

    /// `done` of the `total` evaluations of the current batch (an iteration's K samples)
    /// have finished; shown as "k/K done" after the phase.
    pub fn batch(&self, done: usize, total: usize) {
        let mut status = self.status();
        status.batch = format!("{done}/{total} done");
        self.show(&status);
    }

    /// What the environment is doing within the phase (e.g. "sample 3: training"); shown
    /// after the phase until the next phase begins.
    pub fn detail(&self, text: String) {
        let mut status = self.status();
        status.detail = text;
        self.show(&status);
    }

    fn show(&self, status: &Status) {
        let text = [&status.phase, &status.batch, &status.detail]
            .into_iter()
            .filter(|part| !part.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" · ");
        if !self.interactive {
            let mut last = self.last_line.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
                *last = Some(Instant::now());
                let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
                let eta = eta(pos, len, self.restored.load(Ordering::Relaxed), self.bar.elapsed());
                tracing::info!(
                    "[{pos}/{len} trainings, ETA {}] {} {text}",
                    format_eta(eta),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_extrapolates_this_process_rate_and_ignores_restored_work() {
        let minute = Duration::from_secs(60);
        // 10 of 40 done in a minute: 30 left take three minutes.
        assert_eq!(eta(10, 40, 0, minute), Some(3 * minute));
        // Resumed at 20: the 10 done since then took the minute; 10 left take one more.
        assert_eq!(eta(30, 40, 20, minute), Some(minute));
        assert_eq!(eta(20, 40, 20, minute), None, "nothing done yet in this process");
        assert_eq!(eta(40, 40, 0, minute), Some(Duration::ZERO));
    }
}
