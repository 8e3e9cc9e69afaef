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

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        // Kademlia warns about an empty routing table on every lone start: noise on a devnet.
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
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
    match cli.command {
        Command::Node(args) => run_node(args),
        Command::Devnet(args) => run_devnet(args),
    }
}

fn run_devnet(args: lode_node::devnet::DevnetArgs) -> anyhow::Result<()> {
    // The supervisor's own logs would break its table and status line: warnings only.
    init_logging(LogFormat::Human, "warn");
    // Current-thread: node processes are spawned from this (main) thread, which lives as
    // long as `devnet up`, so their parent-death signal fires only when `up` itself dies.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(lode_node::devnet::run(args))?;
    Ok(())
}

fn run_node(args: lode_node::cli::NodeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format(), "info,libp2p_kad=error");
    let config = args.into_config()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let node = lode_node::start(config).await?;
        tokio::select! {
            _ = wait_for_signal() => {}
            _ = node.stop_requested() => {}
        }
        tracing::info!("shutting down (Ctrl-C again to force)");
        // A second signal forces the exit while the graceful shutdown runs.
        tokio::spawn(async {
            wait_for_signal().await;
            eprintln!("forced exit");
            std::process::exit(130);
        });
        node.shutdown().await?;
        anyhow::Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
