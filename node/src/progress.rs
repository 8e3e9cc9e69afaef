//! Sync progress: an indicatif bar on a terminal, periodic log lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::network::sync::Progress;

/// Blocks behind before we call it "syncing" (gossip keeps a node within a block or two).
const BEHIND: u32 = 10;
/// Log-line interval when not on a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Reports sync progress once a second (see [`ProgressReporter::update`]).
pub struct ProgressReporter {
    use_bar: bool,
    bar: Option<ProgressBar>,
    started: Option<(Instant, u32)>,
    last_log: Instant,
}

impl ProgressReporter {
    /// A reporter; `bar` asks for a progress bar, drawn only if stderr is a terminal.
    pub fn new(bar: bool) -> ProgressReporter {
        ProgressReporter {
            use_bar: bar && std::io::stderr().is_terminal(),
            bar: None,
            started: None,
            last_log: Instant::now(),
        }
    }

    /// Called once a second with the current progress.
    pub fn update(&mut self, p: Progress, syncing: bool) {
        let behind = p.target.saturating_sub(p.height);
        if self.started.is_none() {
            if !(syncing && behind >= BEHIND) {
                return;
            }
            self.started = Some((Instant::now(), p.height));
            tracing::info!(height = p.height, target = p.target, "initial sync started");
            if self.use_bar {
                let bar = ProgressBar::new(u64::from(p.target));
                if let Ok(style) =
                    ProgressStyle::with_template("sync {bar:40} {pos}/{len} blocks  {per_sec}  eta {eta}")
                {
                    bar.set_style(style);
                }
                self.bar = Some(bar);
            }
        }
        let Some((start, start_height)) = self.started else {
            return;
        };
        let elapsed = start.elapsed().as_secs_f64().max(0.001);
        let rate = f64::from(p.height.saturating_sub(start_height)) / elapsed;
        if let Some(bar) = &self.bar {
            bar.set_length(u64::from(p.target));
            bar.set_position(u64::from(p.height));
        } else if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            let eta = if rate > 0.0 {
                format!("{:.0}s", f64::from(behind) / rate)
            } else {
                "unknown".into()
            };
            tracing::info!(height = p.height, target = p.target, blocks_per_sec = format!("{rate:.1}"), %eta, "syncing");
        }
        if behind == 0 && !syncing {
            self.finish();
            tracing::info!(
                height = p.height,
                blocks_per_sec = format!("{rate:.1}"),
                "sync complete"
            );
            self.started = None;
        }
    }

    /// Removes the bar (at shutdown or when caught up).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
