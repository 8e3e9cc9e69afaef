//! The running node processes of `devnet up`: start them, notice one dying, stop them all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Child;

use super::error::DevnetError;
use super::process::{send_signal, spawn_node, Signal};

/// How to start one node.
#[derive(Clone, Debug)]
pub struct NodeLaunch {
    /// `nodeI`.
    pub name: String,
    /// Arguments after the executable (`node --data-dir …`).
    pub args: Vec<String>,
    /// Its log file.
    pub log: PathBuf,
}

struct Running {
    name: String,
    log: PathBuf,
    pid: u32,
    child: Child,
}

/// The node processes; they are stopped by [`Supervisor::stop`] (dropping the supervisor
/// leaves them to their parent-death signal).
pub struct Supervisor {
    nodes: Vec<Running>,
}

/// A node that exited on its own.
#[derive(Debug)]
pub struct Exited {
    /// Its name.
    pub name: String,
    /// Its log file.
    pub log: PathBuf,
    /// Exit status, as the OS reports it.
    pub status: String,
}

impl Exited {
    /// The error to report.
    pub fn into_error(self) -> DevnetError {
        DevnetError::NodeExited {
            node: self.name,
            status: self.status,
            log: self.log.display().to_string(),
        }
    }
}

impl Supervisor {
    /// Starts every node with `exe`. If one cannot be started, the ones already started are
    /// stopped before the error is returned.
    pub async fn start(exe: &Path, launches: &[NodeLaunch]) -> Result<Supervisor, DevnetError> {
        let mut sup = Supervisor { nodes: Vec::new() };
        for l in launches {
            match spawn_node(exe, &l.args, &l.log) {
                Ok(child) => {
                    let pid = child.id().unwrap_or(0);
                    tracing::info!(node = %l.name, pid, "node started");
                    sup.nodes.push(Running {
                        name: l.name.clone(),
                        log: l.log.clone(),
                        pid,
                        child,
                    });
                }
                Err(source) => {
                    sup.stop(STOP_GRACE).await;
                    return Err(DevnetError::Spawn {
                        node: l.name.clone(),
                        source,
                    });
                }
            }
        }
        Ok(sup)
    }

    /// Pids in start order.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.pid).collect()
    }

    /// The first node found to have exited, if any (non-blocking).
    pub fn exited(&mut self) -> Option<Exited> {
        for n in &mut self.nodes {
            match n.child.try_wait() {
                Ok(Some(status)) => {
                    return Some(Exited {
                        name: n.name.clone(),
                        log: n.log.clone(),
                        status: status.to_string(),
                    })
                }
                Ok(None) => {}
                Err(e) => {
                    return Some(Exited {
                        name: n.name.clone(),
                        log: n.log.clone(),
                        status: format!("cannot wait for it: {e}"),
                    })
                }
            }
        }
        None
    }

    /// SIGTERM to every node, then waits up to `grace` for all of them; stragglers get
    /// SIGKILL. Returns the names of the nodes that had to be killed.
    pub async fn stop(&mut self, grace: Duration) -> Vec<String> {
        for n in &self.nodes {
            // `id()` is None once the child has been reaped: never signal a recycled pid.
            if n.child.id().is_some() {
                send_signal(n.pid, Signal::Term);
            }
        }
        let mut killed = Vec::new();
        let deadline = tokio::time::Instant::now() + grace;
        for n in &mut self.nodes {
            match tokio::time::timeout_at(deadline, n.child.wait()).await {
                Ok(Ok(status)) => tracing::info!(node = %n.name, %status, "node stopped"),
                Ok(Err(e)) => tracing::warn!(node = %n.name, error = %e, "cannot wait for node"),
                Err(_) => {
                    tracing::warn!(node = %n.name, pid = n.pid, "node did not stop in time; killing it");
                    let _ = n.child.start_kill();
                    let _ = n.child.wait().await;
                    killed.push(n.name.clone());
                }
            }
        }
        killed
    }
}

/// How long nodes get to stop cleanly (flush their store) before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(15);
