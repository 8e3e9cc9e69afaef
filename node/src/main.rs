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
        Err(e) => exit_on_usage_error(e),
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

/// Help and version print as clap renders them; a malformed flag or argument gets clap's
/// message on one line (`error: invalid value 'x' for '--threads <N>': ...`), not its usage
/// block.
fn exit_on_usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            e.exit()
        }
        _ => {
            // The message is the first paragraph (a list of missing arguments spans lines).
            let rendered = e.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see --help)", message.join(" "));
            std::process::exit(2);
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let args = match cli.command {
        Command::Node(args) => args,
        Command::Wallet(args) => return run_client(|| lode_node::commands::wallet::run(args)),
        Command::Mine(args) => return run_client(|| lode_node::commands::mine::run(args)),
        Command::Chain(args) => return run_client(|| lode_node::commands::chain::run(args)),
    };
    init_logging(args.log_format());
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

/// Runs a client command (`lode wallet|mine|chain`): warnings-only logging on stderr.
fn run_client(command: impl FnOnce() -> Result<(), lode_node::commands::CommandError>) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(command()?)
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
