//! `lode devnet`: a local network of several `lode node` processes in one command.
//!
//! `up` runs in the foreground as the *supervisor* of N node processes (the same `lode`
//! executable, `lode node …`), each in its own process group with SIGTERM as its
//! parent-death signal. Everything lives in one directory:
//!
//! | path | what |
//! |---|---|
//! | `devnet.json` | how to reach each node ([`file`]; PRODUCT.md §2) |
//! | `devnet.lock` | flock held by the running `up`, with its pid ([`lock`]) |
//! | `chain.toml` | the devnet's chain spec, its starting difficulty calibrated at creation ([`calibrate`], ADR 0010) |
//! | `mnemonic.txt` | the published devnet test mnemonic; node I's wallet is its account I |
//! | `partition.json` | the current partition, while there is one ([`partition`]) |
//! | `nodeI/` | node I's data dir: `node_key` ([`keys`]), `node.log`, `.cookie`, chain, wallet |
//!
//! Ports: node I uses `BASE + 2I` (P2P) and `BASE + 2I + 1` (RPC) on 127.0.0.1 ([`ports`]).
//!
//! | module | one idea |
//! |---|---|
//! | [`up`] | `up`: prepare, start, wait until ready, live status, stop |
//! | [`supervisor`] | the child processes: start, notice a death, stop (TERM, then KILL) |
//! | [`process`] | OS level: spawn with pdeathsig, signals, liveness via `/proc` |
//! | [`dashboard`] | the devnet page: graph, block tree, reorg log, buttons (cookies stay here) |
//! | [`follow`] | following one node's event stream for the page (tips, reorgs as they happen) |
//! | [`probe`] | asking one node for health, tip, peers, mempool, hash rate, wallet |
//! | [`status`], [`down`], [`partition`], [`reset`] | the other subcommands |
//! | [`output`] | the only code writing to the terminal |
//! | `wan` | `up --wan`: each node in a network namespace, links shaped like a WAN (Linux) |

pub mod calibrate;
pub mod dashboard;
pub mod down;
pub mod error;
pub mod file;
pub mod follow;
pub mod keys;
pub mod lock;
pub mod output;
pub mod partition;
pub mod ports;
pub mod probe;
pub mod process;
pub mod reset;
pub mod status;
pub mod supervisor;
pub mod up;
#[cfg(target_os = "linux")]
pub mod wan;

use std::path::PathBuf;

use clap::Subcommand;

pub use error::DevnetError;

/// `lode devnet …`.
#[derive(Debug, clap::Args)]
pub struct DevnetArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DevnetCommand,
}

/// The devnet subcommands.
#[derive(Debug, Subcommand)]
pub enum DevnetCommand {
    /// Start (or resume) the devnet in the foreground; Ctrl-C stops every node.
    Up(up::UpArgs),
    /// Show every node's state.
    Status(DirArg),
    /// Stop the devnet running in the directory and wait until it has.
    Down(DirArg),
    /// Cut the links between groups of nodes: `partition node0,node1 / node2`.
    Partition(partition::PartitionArgs),
    /// Restore the links the last `partition` cut.
    Heal(DirArg),
    /// Stop the devnet and delete its directory (asks first; `--yes` for scripts).
    Reset(reset::ResetArgs),
}

/// Just `--dir`.
#[derive(Debug, Clone, clap::Args)]
pub struct DirArg {
    /// Directory of the devnet.
    #[arg(long, default_value = "./devnet")]
    pub dir: PathBuf,
}

/// Runs a devnet subcommand. `up` must run on a current-thread runtime on the main thread
/// (see [`process::spawn_node`]).
pub async fn run(args: DevnetArgs) -> Result<(), DevnetError> {
    match args.command {
        DevnetCommand::Up(a) => up::up(a).await,
        DevnetCommand::Status(a) => status::status(&a.dir).await,
        DevnetCommand::Down(a) => down::down(&a.dir).await.map(|_| ()),
        DevnetCommand::Partition(a) => partition::partition(&a).await,
        DevnetCommand::Heal(a) => partition::heal(&a.dir).await,
        DevnetCommand::Reset(a) => reset::reset(&a).await,
    }
}
