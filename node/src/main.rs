//! The `lode` binary: parse flags, set up logging, run the node until Ctrl-C / SIGTERM.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use lode_node::cli::{Cli, Command};
use lode_node::LogFormat;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if let Err(e) = run(cli) {
        // One line, no backtrace: `{:#}` joins the context chain with ": ".
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        // Kademlia warns about an empty routing table on every lone start: noise on a devnet.
        .unwrap_or_else(|_| EnvFilter::new("info,libp2p_kad=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Node(args) = cli.command;
    init_logging(args.log_format());
    let config = args.into_config()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let node = lode_node::start(config).await?;
        let mut signals = Signals::new()?;
        tokio::select! {
            _ = signals.recv() => {}
            _ = node.stop_requested() => {}
        }
        // A second signal forces the exit while the graceful shutdown runs (the listeners
        // stay registered, so a second Ctrl-C right after the first is never missed).
        tokio::spawn(async move {
            signals.recv().await;
            eprintln!("forced exit");
            std::process::exit(130);
        });
        tracing::info!("shutting down (Ctrl-C again to force)");
        node.shutdown().await?;
        anyhow::Ok(())
    })
}

/// Ctrl-C and SIGTERM, listened for from the moment this is created (not first polled),
/// so a signal right after creation is never missed.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
                term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
