//! The `lode` binary: parse flags, set up logging, then run the node until Ctrl-C / SIGTERM
//! (`lode node`, the daemon) or one client command (`lode wallet|mine|chain|devnet|miner`).

use std::io::IsTerminal;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lode_node::client::commands::{
    apikey::ApiKeyArgs,
    chain::{ChainArgs, ChainCommand},
    mine::MineArgs,
    miner::MinerArgs,
    wallet::WalletArgs,
    CommandError,
};
use lode_node::client::devnet::DevnetArgs;
use lode_node::node_args::NodeArgs;
use lode_node::LogFormat;
use tracing_subscriber::EnvFilter;

/// `lode`: a proof-of-work blockchain node.
#[derive(Debug, Parser)]
#[command(name = "lode", version, about)]
struct Cli {
    /// What to run.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands: the daemon (`node`) and its clients.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a full node.
    Node(NodeArgs),
    /// Run a local network of several nodes (`up`, `status`, `down`, `partition`, `heal`, `reset`).
    Devnet(DevnetArgs),
    /// Manage the node's API keys for signed requests (`create`, `list`, `revoke`).
    #[command(name = "api-key")]
    ApiKey(ApiKeyArgs),
    /// Use a node's built-in wallet: address, balance, history, send, mnemonic.
    Wallet(WalletArgs),
    /// Control a node's miner: start, stop, generate (regtest).
    Mine(MineArgs),
    /// Inspect a node's chain: info, block, tx, mempool, peers, verify.
    Chain(ChainArgs),
    /// Mine on a Stratum v1 server (a Lode node's --stratum port, or any SHA-256d pool).
    Miner(MinerArgs),
    /// Internal: the WAN emulator's NFQUEUE packet delayer (run by `devnet up --wan` and
    /// the multi-host tests inside a lab's switch namespace).
    #[cfg(target_os = "linux")]
    #[command(hide = true)]
    NetemDelay(NetemDelayArgs),
}

/// Flags of the hidden `lode netem-delay`.
#[cfg(target_os = "linux")]
#[derive(Debug, clap::Args)]
struct NetemDelayArgs {
    /// A link: QUEUE:DELAY_US:JITTER_US:LOSS_PPM (repeatable).
    #[arg(long = "link", required = true)]
    links: Vec<lode_node::netlab::delayer::QueueLink>,
    /// Seed of the delay and loss draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Exit status of a node that halted because a write failed (disk full, I/O error): it
/// stopped cleanly, but did not finish its work, so supervisors must not see success.
const EXIT_HALTED: i32 = 3;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => exit_on_usage_error(e),
    };
    if matches!(cli.command, Command::Node(_)) {
        fix_mmap_threshold();
    }
    if let Err(e) = run(cli) {
        // One line, no backtrace: `{:#}` joins the context chain with ": ".
        eprintln!("error: {e:#}");
        let halted = e
            .downcast_ref::<lode_node::NodeError>()
            .is_some_and(|e| matches!(e, lode_node::NodeError::Halted(_)));
        std::process::exit(if halted { EXIT_HALTED } else { 1 });
    }
}

/// Pins glibc's mmap threshold at its default, 128 KiB. glibc raises the threshold to the size
/// of any mmap-served block that is freed (up to 32 MiB), and from then on serves such blocks
/// from its heaps, where a node's many large, short-lived buffers (the write-back cache's
/// tables, sled's batches and pages, decoded blocks) fragment memory the periodic
/// `malloc_trim` cannot give back: pinned, a 2,000-block sync peaked 15 MiB lower at
/// `--dbcache 64` and 11 MiB lower at 16, at the same speed (BENCHMARKS.md, issue 16
/// seventh pass).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_mmap_threshold() {
    // SAFETY: mallopt only sets a tuning parameter of the allocator; called once, before any
    // thread of ours exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_mmap_threshold() {}

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
        Command::Wallet(args) => return run_client(|| lode_node::client::commands::wallet::run(args)),
        Command::Mine(args) => return run_client(|| lode_node::client::commands::mine::run(args)),
        Command::Chain(ChainArgs {
            client,
            command:
                ChainCommand::Reindex {
                    network,
                    from_peers,
                    peers,
                    idle_timeout,
                },
        }) => {
            let from_peers = from_peers.then_some((peers, std::time::Duration::from_secs(idle_timeout)));
            return run_reindex(&network, client.target.data_dir, from_peers);
        }
        Command::Chain(args) => return run_client(|| lode_node::client::commands::chain::run(args)),
        Command::ApiKey(args) => return run_client(|| lode_node::client::commands::apikey::run(args)),
        Command::Devnet(args) => return run_devnet(args),
        Command::Miner(args) => return run_client(|| lode_node::client::commands::miner::run(args)),
        #[cfg(target_os = "linux")]
        Command::NetemDelay(args) => {
            init_client_logging();
            return Ok(lode_node::netlab::delayer::run(&args.links, args.seed)?);
        }
    };
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
        let api = node.api();
        let stopped = node.shutdown().await;
        // A halt is the reason to report, whatever the shutdown's own flush said after it.
        if let Some(reason) = api.halted() {
            if let Err(e) = stopped {
                tracing::warn!(error = %e, "shutdown after the halt was not clean");
            }
            return Err(lode_node::NodeError::Halted(reason).into());
        }
        stopped?;
        anyhow::Ok(())
    })
}

/// Runs a client command (`lode wallet|mine|chain`): warnings-only logging on stderr.
fn run_client(command: impl FnOnce() -> Result<(), CommandError>) -> anyhow::Result<()> {
    init_client_logging();
    Ok(command()?)
}

/// Client commands and `devnet` log warnings only: their output is for people.
fn init_client_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `lode chain reindex`: on the data dir itself, with the node's logging (it can take a while).
/// `from_peers`: the peers to download the missing blocks from afterwards, and how long to
/// wait for a block.
fn run_reindex(
    network: &str,
    data_dir: Option<std::path::PathBuf>,
    from_peers: Option<(Vec<String>, std::time::Duration)>,
) -> anyhow::Result<()> {
    init_logging(LogFormat::Human);
    let params = lode_node::node_args::network_params(network)?;
    let data_dir = data_dir.unwrap_or_else(|| lode_node::node_args::default_data_dir(&params.name));
    // Flags checked before anything is rebuilt.
    let from_peers = match from_peers {
        Some((peers, idle)) => {
            let peers = peers
                .iter()
                .map(|p| lode_node::node_args::parse_multiaddr("--peer", p))
                .collect::<Result<Vec<_>, _>>()?;
            if peers.is_empty() {
                anyhow::bail!("--from-peers needs at least one --peer MULTIADDR to download from");
            }
            Some((peers, idle))
        }
        None => None,
    };
    let report = lode_node::chain_store::reindex(&data_dir, params.clone())?;
    use std::io::Write;
    // The command's result, for the user (the log went to stderr).
    writeln!(
        std::io::stdout(),
        "reindexed {}: {} blocks, best chain height {} (tip {}); {} unreadable and {} unlinked bodies left out",
        data_dir.display(),
        report.blocks,
        report.height,
        report.tip,
        report.unreadable,
        report.unlinked
    )
    .context("cannot write to stdout")?;
    let Some((peers, idle)) = from_peers else {
        return Ok(());
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    let fetched = runtime.block_on(lode_node::refetch::fetch_from_peers(params, data_dir, peers, idle))?;
    writeln!(
        std::io::stdout(),
        "downloaded from {} peers: best chain height {} -> {} (tip {})",
        fetched.peers,
        fetched.from_height,
        fetched.height,
        fetched.tip
    )
    .context("cannot write to stdout")?;
    Ok(())
}

fn run_devnet(args: DevnetArgs) -> anyhow::Result<()> {
    init_client_logging();
    // Current-thread: node processes are spawned from this (main) thread, which lives as
    // long as `devnet up`, so their parent-death signal fires only when `up` itself dies.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(lode_node::client::devnet::run(args))?;
    Ok(())
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
