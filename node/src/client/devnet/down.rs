//! `lode devnet down`: stop the `devnet up` running in a directory, from another terminal.
//!
//! It SIGTERMs the supervisor (the pid holding `devnet.lock`), which stops its nodes in
//! order, and waits until the supervisor and every node pid in `devnet.json` are gone. Node
//! processes left without a supervisor (which the parent-death signal should prevent) are
//! stopped directly.

use std::path::Path;
use std::time::{Duration, Instant};

use super::error::DevnetError;
use super::file::DevnetFile;
use super::lock;
use super::output;
use super::process::{alive, alive_with_arg, send_signal, Signal};
use super::supervisor::STOP_GRACE;

/// How long `down` waits beyond the nodes' own grace period.
const MARGIN: Duration = Duration::from_secs(10);

/// What `down` found and did.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing was running.
    NotRunning,
    /// The supervisor (and its nodes) stopped.
    Stopped,
}

/// Stops the devnet in `dir` and waits for it.
pub async fn down(dir: &Path) -> Result<Stopped, DevnetError> {
    let stopped = stop(dir).await?;
    match stopped {
        Stopped::NotRunning => output::line(&format!("no devnet running in {}", dir.display())),
        Stopped::Stopped => output::line("devnet stopped"),
    }
    Ok(stopped)
}

/// [`down`] without output (also used by `reset`).
pub async fn stop(dir: &Path) -> Result<Stopped, DevnetError> {
    if !dir.is_dir() {
        return Err(DevnetError::NoDevnet {
            dir: dir.display().to_string(),
            file: super::file::DEVNET_FILE.into(),
        });
    }
    let file = super::file::read_if_present(dir)?;
    let supervisor = lock::holder(dir)?.filter(|pid| *pid != 0);
    let nodes = live_nodes(file.as_ref());
    if supervisor.is_none() && nodes.is_empty() {
        return Ok(Stopped::NotRunning);
    }
    match supervisor {
        Some(pid) => {
            tracing::info!(pid, "asking the devnet supervisor to stop");
            send_signal(pid, Signal::Term);
        }
        None => {
            for (name, pid) in &nodes {
                tracing::warn!(node = %name, pid, "node without a supervisor; stopping it");
                send_signal(*pid, Signal::Term);
            }
        }
    }
    let wait = STOP_GRACE + MARGIN;
    let deadline = Instant::now() + wait;
    loop {
        let sup_alive = supervisor.is_some_and(alive);
        let left = live_nodes(file.as_ref());
        if !sup_alive && left.is_empty() {
            return Ok(Stopped::Stopped);
        }
        if Instant::now() >= deadline {
            let mut what: Vec<String> = supervisor
                .filter(|_| sup_alive)
                .map(|pid| format!("the supervisor (pid {pid})"))
                .into_iter()
                .collect();
            what.extend(left.iter().map(|(name, pid)| format!("{name} (pid {pid})")));
            return Err(DevnetError::StopTimeout {
                what: what.join(", "),
                secs: wait.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Node pids of the devnet file that are still running with that node's data dir.
fn live_nodes(file: Option<&DevnetFile>) -> Vec<(String, u32)> {
    let Some(file) = file else { return Vec::new() };
    file.nodes
        .iter()
        .filter_map(|n| {
            let pid = n.pid?;
            alive_with_arg(pid, &n.data_dir.display().to_string()).then(|| (n.name.clone(), pid))
        })
        .collect()
}
