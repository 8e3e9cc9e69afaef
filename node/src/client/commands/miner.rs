//! `lode miner --url stratum+tcp://HOST:PORT --user ADDRESS [--threads N]`: Lode's CPU
//! miner (the `lode-miner` kernels) as a Stratum v1 client of any SHA-256d server, with a
//! live hash-rate line on stderr.

use std::io::Write;
use std::time::Duration;

use crate::client::stratum::mine::{run as mine, MinerConfig, MinerStatus};

use super::CommandError;

/// `lode miner` flags.
#[derive(Debug, clap::Args)]
pub struct MinerArgs {
    /// The server: `stratum+tcp://HOST:PORT`.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Username: for a Lode node, the payout address (pool mode: `ADDRESS[.worker]`).
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// Password (most servers ignore it).
    #[arg(long, value_name = "PASS", default_value = "x")]
    pub pass: String,
    /// Search threads (default: all cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Seconds between status lines.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub report_secs: u64,
}

fn human_rate(h: f64) -> String {
    match h {
        h if h >= 1e9 => format!("{:.2} GH/s", h / 1e9),
        h if h >= 1e6 => format!("{:.2} MH/s", h / 1e6),
        h if h >= 1e3 => format!("{:.2} kH/s", h / 1e3),
        h => format!("{h:.0} H/s"),
    }
}

/// The status line.
pub fn status_line(s: &MinerStatus) -> String {
    format!(
        "{}  accepted {}  rejected {}  difficulty {}  {}",
        human_rate(s.hashrate),
        s.accepted,
        s.rejected,
        s.difficulty,
        if s.connected { "connected" } else { "connecting" }
    )
}

/// Runs `lode miner` until Ctrl-C / SIGTERM.
pub fn run(args: MinerArgs) -> Result<(), CommandError> {
    crate::client::stratum::parse_url(&args.url).map_err(|e| CommandError::BadInput {
        what: "URL",
        input: args.url.clone(),
        reason: e.to_string(),
    })?;
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |t| t as usize,
    );
    let config = MinerConfig {
        url: args.url,
        user: args.user,
        pass: args.pass,
        threads,
        report_every: Duration::from_secs(args.report_secs),
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| CommandError::Miner(e.to_string()))?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        let _ = writeln!(
            std::io::stderr(),
            "lode miner: {threads} threads, kernel {}",
            lode_miner::kernel_name()
        );
        let last = mine(
            config,
            |s| {
                let _ = writeln!(std::io::stderr(), "{}", status_line(s));
            },
            stop_rx,
        )
        .await
        .map_err(|e| CommandError::Miner(e.to_string()))?;
        let _ = writeln!(
            std::io::stderr(),
            "lode miner stopped: {} hashes, {} accepted, {} rejected",
            last.hashes,
            last.accepted,
            last.rejected
        );
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut i), Ok(mut t)) => {
                tokio::select! {
                    _ = i.recv() => {}
                    _ = t.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
