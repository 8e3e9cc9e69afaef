//! `lode devnet up`: prepare the directory, start the nodes, wait until they agree, show
//! their state every second, and stop them all on Ctrl-C / SIGTERM / `devnet down`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::join_all;
use lode_chain::params::DEVNET_MNEMONIC;

use super::error::DevnetError;
use super::file::{DevnetFile, DevnetNode};
use super::keys::ensure_node_key;
use super::lock::DevnetLock;
use super::output;
use super::ports::{check_free, node_ports, NodePorts};
use super::probe::{self, Probe};
use super::supervisor::{NodeLaunch, Supervisor, STOP_GRACE};
use crate::common::defaults::COOKIE_FILE;
use crate::common::parse::parse_block_time;

/// File in the devnet directory holding the test mnemonic the nodes' wallets derive from.
pub const MNEMONIC_FILE: &str = "mnemonic.txt";
/// Each node's log file, in its data dir.
pub const NODE_LOG: &str = "node.log";
/// Most nodes one devnet runs (ports and processes; accounts ≥ 10 have no premine).
pub const MAX_NODES: usize = 64;
/// How often start-up polls the nodes.
const READY_POLL: Duration = Duration::from_millis(50);
/// How often the status line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// Log lines shown when a node dies.
const LOG_TAIL: usize = 20;

/// Flags of `lode devnet up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How many of them (the first ones) mine, one thread each.
    #[arg(long, default_value_t = 1)]
    pub miners: usize,
    /// Directory of the devnet (node data, logs, devnet.json).
    #[arg(long, default_value = "./devnet")]
    pub dir: PathBuf,
    /// Target block time (`N` or `Ns`); fixed for the life of the devnet's chain.
    #[arg(long, default_value = "2s", value_parser = parse_block_time, value_name = "SECS")]
    pub block_time: u64,
    /// First port: node I listens for P2P on BASE+2I and serves RPC on BASE+2I+1.
    #[arg(long, default_value_t = 18440, value_name = "PORT")]
    pub base_port: u16,
    /// Give each node a Stratum port (solo mode): node I on STRATUM_BASE_PORT+I.
    #[arg(long)]
    pub stratum: bool,
    /// First Stratum port (with --stratum).
    #[arg(long, default_value_t = 3333, value_name = "PORT", requires = "stratum")]
    pub stratum_base_port: u16,
    /// Give up when the nodes are not healthy at one tip after this many seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub ready_timeout: u64,
    /// Run each node in its own network namespace ("machine") behind an emulated WAN:
    /// `lan`, `wan` (≈80 ms round trip, 1% loss), `bad` (≈300 ms, 5% loss, the last node at
    /// 1 Mbit/s) or `delay=40ms,jitter=10ms,loss=1%,rate=10mbit`. Linux, root only.
    #[arg(long, value_name = "PROFILE")]
    pub wan: Option<String>,
}

/// Runs `devnet up` until a signal (Ok) or a node's death (Err).
pub async fn up(args: UpArgs) -> Result<(), DevnetError> {
    let started = Instant::now();
    validate(&args)?;
    // `--wan` is refused (not root, no namespaces) before anything is created.
    #[cfg(target_os = "linux")]
    let wan = args
        .wan
        .as_deref()
        .map(|t| super::wan::check(t, args.nodes))
        .transpose()?;
    #[cfg(not(target_os = "linux"))]
    if args.wan.is_some() {
        return Err(DevnetError::Args("--wan needs Linux network namespaces".into()));
    }
    std::fs::create_dir_all(&args.dir).map_err(|e| DevnetError::io(&args.dir, e))?;
    let dir = args.dir.canonicalize().map_err(|e| DevnetError::io(&args.dir, e))?;
    let _lock = DevnetLock::acquire(&dir)?;
    let exe = std::env::current_exe().map_err(|e| DevnetError::io(Path::new("current executable"), e))?;
    // Built before the nodes start and dropped (removed) after they stopped.
    #[cfg(target_os = "linux")]
    let _lab = match &wan {
        Some(profile) => {
            output::line(&format!("building the WAN lab ({})…", profile.name));
            Some(super::wan::build(profile, args.nodes, &exe)?)
        }
        None => None,
    };
    let previous = super::file::read_if_present(&dir)?;
    check_resume(&dir, previous.as_ref(), &args)?;
    let ports: Vec<NodePorts> = (0..args.nodes)
        .map(|i| node_ports(args.base_port, i))
        .collect::<Result<_, _>>()?;
    let names: Vec<String> = (0..args.nodes).map(|i| format!("node{i}")).collect();
    check_free(names.iter().map(String::as_str).zip(ports.iter().copied()))?;
    if args.stratum {
        for (i, name) in names.iter().enumerate() {
            let port = stratum_port(&args, i)?;
            if std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).is_err() {
                return Err(DevnetError::PortInUse {
                    port,
                    node: name.clone(),
                    role: "Stratum",
                });
            }
        }
    }

    let spec = chain_spec(&dir, previous.as_ref(), &args)?;
    let (mut file, launches) = prepare(&dir, &args, &ports, spec)?;
    // Signals are caught from here on: a Ctrl-C during start-up still stops every node.
    let mut signals = Signals::new().map_err(|e| DevnetError::io(Path::new("signal handler"), e))?;
    let mut sup = if args.wan.is_some() {
        wan_start(&exe, launches).await?
    } else {
        Supervisor::start(&exe, &launches).await?
    };
    for (node, pid) in file.nodes.iter_mut().zip(sup.pids()) {
        node.pid = Some(pid);
    }
    file.supervisor_pid = Some(std::process::id());
    let outcome = match super::file::write(&file, &dir) {
        Ok(()) => {
            supervise(
                &mut sup,
                &file,
                &dir,
                &mut signals,
                started,
                Duration::from_secs(args.ready_timeout),
            )
            .await
        }
        Err(e) => Err(e),
    };
    output::line(&format!("stopping {} nodes…", file.nodes.len()));
    let killed = sup.stop(STOP_GRACE).await;
    if !killed.is_empty() {
        output::warn(&format!(
            "killed {} after {} s without a clean stop",
            killed.join(", "),
            STOP_GRACE.as_secs()
        ));
    }
    if outcome.is_ok() {
        output::line("devnet stopped");
    }
    outcome
}

/// Starts each node inside its namespace (`ip netns exec NS lode node …`).
#[cfg(target_os = "linux")]
async fn wan_start(exe: &Path, launches: Vec<NodeLaunch>) -> Result<Supervisor, DevnetError> {
    let mut program = PathBuf::from("ip");
    let wrapped: Vec<NodeLaunch> = launches
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let (p, args) = super::wan::in_namespace(i, exe, l.args);
            program = p;
            NodeLaunch { args, ..l }
        })
        .collect();
    Supervisor::start(&program, &wrapped).await
}

#[cfg(not(target_os = "linux"))]
async fn wan_start(_exe: &Path, _launches: Vec<NodeLaunch>) -> Result<Supervisor, DevnetError> {
    Err(DevnetError::Args("--wan needs Linux network namespaces".into()))
}

fn validate(args: &UpArgs) -> Result<(), DevnetError> {
    if args.nodes == 0 || args.nodes > MAX_NODES {
        return Err(DevnetError::Args(format!(
            "--nodes {}: must be from 1 to {MAX_NODES}",
            args.nodes
        )));
    }
    if args.miners > args.nodes {
        return Err(DevnetError::Args(format!(
            "--miners {}: more miners than nodes ({})",
            args.miners, args.nodes
        )));
    }
    if args.ready_timeout == 0 {
        return Err(DevnetError::Args("--ready-timeout: must be at least 1 second".into()));
    }
    node_ports(args.base_port, args.nodes - 1).map(|_| ())
}

/// A devnet's chain is only valid under the block time it was mined with: ASERT derives
/// every block's difficulty from the target spacing, so the same blocks fail under another
/// (the genesis block does not depend on it, so nodes would even connect and then reject
/// each other's blocks). Refuse a mismatch up front.
fn check_resume(dir: &Path, previous: Option<&DevnetFile>, args: &UpArgs) -> Result<(), DevnetError> {
    let Some(prev) = previous else { return Ok(()) };
    if prev.network != "devnet" {
        return Err(DevnetError::Malformed {
            path: dir.join(super::file::DEVNET_FILE).display().to_string(),
            reason: format!("network {:?}, expected \"devnet\"", prev.network),
        });
    }
    match prev.block_time {
        Some(recorded) if recorded != args.block_time => Err(DevnetError::BlockTimeMismatch {
            dir: dir.display().to_string(),
            recorded,
            asked: args.block_time,
        }),
        _ => Ok(()),
    }
}

/// The devnet's chain spec: a new devnet gets one with a calibrated starting difficulty
/// (ADR 0010); a resumed one keeps what it was created with (none for a devnet made before
/// specs, whose nodes keep running the built-in devnet).
fn chain_spec(dir: &Path, previous: Option<&DevnetFile>, args: &UpArgs) -> Result<Option<PathBuf>, DevnetError> {
    match previous {
        Some(prev) => Ok(prev.chain_spec.clone()),
        None => {
            let (path, made) = super::calibrate::ensure_spec(dir, args.block_time, args.miners)?;
            if let Some(c) = made {
                output::line(&format!(
                    "calibrated the starting difficulty: {} per thread × {} thread(s) × {} s per block (bits {:08x})",
                    output::hash_rate(c.rate),
                    c.threads,
                    args.block_time,
                    c.bits
                ));
            }
            Ok(Some(path))
        }
    }
}

/// The `--network` flags of every node: the devnet's spec, or the built-in devnet with its
/// block time.
fn network_flags(spec: Option<&Path>, block_time: u64) -> Vec<String> {
    match spec {
        Some(p) => vec!["--network".into(), p.display().to_string()],
        None => vec![
            "--network".into(),
            "devnet".into(),
            "--block-time".into(),
            block_time.to_string(),
        ],
    }
}

/// Creates the node directories, keys and the mnemonic file, and returns the devnet file
/// (pids not yet known) and how to start each node.
fn prepare(
    dir: &Path,
    args: &UpArgs,
    ports: &[NodePorts],
    spec: Option<PathBuf>,
) -> Result<(DevnetFile, Vec<NodeLaunch>), DevnetError> {
    let network = network_flags(spec.as_deref(), args.block_time);
    let mnemonic = dir.join(MNEMONIC_FILE);
    if !mnemonic.exists() {
        std::fs::write(&mnemonic, format!("{DEVNET_MNEMONIC}\n")).map_err(|e| DevnetError::io(&mnemonic, e))?;
    }
    let mut nodes = Vec::with_capacity(ports.len());
    for (i, p) in ports.iter().enumerate() {
        let index = u32::try_from(i).map_err(|_| DevnetError::Args(format!("--nodes {}", args.nodes)))?;
        let data_dir = dir.join(format!("node{i}"));
        std::fs::create_dir_all(&data_dir).map_err(|e| DevnetError::io(&data_dir, e))?;
        let peer_id = ensure_node_key(&data_dir, index)?;
        let ip = node_ip(args.wan.is_some(), i);
        nodes.push(DevnetNode {
            name: format!("node{i}"),
            rpc: format!("http://{ip}:{}", p.rpc),
            p2p: format!("/ip4/{ip}/tcp/{}/p2p/{peer_id}", p.p2p),
            cookie: data_dir.join(COOKIE_FILE),
            data_dir,
            mining: i < args.miners,
            pid: None,
            wallet_account: Some(index),
            stratum: if args.stratum {
                Some(format!("stratum+tcp://{ip}:{}", stratum_port(args, i)?))
            } else {
                None
            },
        });
    }
    let launches = nodes
        .iter()
        .zip(ports)
        .map(|(node, p)| NodeLaunch {
            name: node.name.clone(),
            args: node_args(node, p, &nodes, &mnemonic, &network, args.wan.is_some()),
            log: node.data_dir.join(NODE_LOG),
        })
        .collect();
    let file = DevnetFile {
        network: "devnet".into(),
        nodes,
        supervisor_pid: None,
        block_time: Some(args.block_time),
        base_port: Some(args.base_port),
        chain_spec: spec,
        wan: args.wan.clone(),
    };
    Ok((file, launches))
}

/// Node `i`'s Stratum port.
fn stratum_port(args: &UpArgs, i: usize) -> Result<u16, DevnetError> {
    u16::try_from(usize::from(args.stratum_base_port) + i).map_err(|_| {
        DevnetError::Args(format!(
            "--stratum-base-port {}: node{i} would need a port above 65535",
            args.stratum_base_port
        ))
    })
}

/// Node `i`'s address: loopback, or its own in the WAN lab.
fn node_ip(wan: bool, i: usize) -> String {
    #[cfg(target_os = "linux")]
    if wan {
        return super::wan::node_ip(i);
    }
    let _ = (wan, i);
    "127.0.0.1".into()
}

/// The `lode node` command line of one devnet node. On loopback every node is given every
/// other as `--peer`; behind a WAN (`wan`) only node0, the rest found through Kademlia.
fn node_args(
    node: &DevnetNode,
    ports: &NodePorts,
    all: &[DevnetNode],
    mnemonic: &Path,
    network: &[String],
    wan: bool,
) -> Vec<String> {
    let ip = node
        .rpc
        .trim_start_matches("http://")
        .rsplit_once(':')
        .map_or("127.0.0.1", |(ip, _)| ip)
        .to_string();
    let mut a: Vec<String> = vec!["node".into()];
    a.extend(network.iter().cloned());
    a.extend([
        "--data-dir".into(),
        node.data_dir.display().to_string(),
        "--p2p-listen".into(),
        format!("/ip4/{ip}/tcp/{}", ports.p2p),
        "--rpc-listen".into(),
        format!("{ip}:{}", ports.rpc),
        "--no-mdns".into(),
        "--wallet-mnemonic-file".into(),
        mnemonic.display().to_string(),
        "--wallet-account".into(),
        node.wallet_account.unwrap_or(0).to_string(),
    ]);
    if node.mining {
        a.extend(["--mine".into(), "--miner-threads".into(), "1".into()]);
    }
    if let Some(listen) = node.stratum.as_deref().and_then(|u| u.strip_prefix("stratum+tcp://")) {
        a.extend(["--stratum".into(), listen.to_string()]);
    }
    let peers = all.iter().filter(|o| o.name != node.name);
    for other in peers.take(if wan { 1 } else { usize::MAX }) {
        a.extend(["--peer".into(), other.p2p.clone()]);
    }
    a
}

/// Start-up, then the live status line, until a signal or a node's death.
async fn supervise(
    sup: &mut Supervisor,
    file: &DevnetFile,
    dir: &Path,
    signals: &mut Signals,
    started: Instant,
    ready_timeout: Duration,
) -> Result<(), DevnetError> {
    let mut progress = output::StartProgress::new(file.nodes.len());
    let deadline = started + ready_timeout;
    let ready = loop {
        if let Some(dead) = sup.exited() {
            progress.finish();
            output::log_tail(&dead.name, &dead.log, LOG_TAIL);
            return Err(dead.into_error());
        }
        let probes = join_all(file.nodes.iter().map(probe::readiness)).await;
        let (count, waiting) = readiness_summary(&file.nodes, &probes);
        if waiting.is_none() {
            break probes;
        }
        let waiting = waiting.unwrap_or_default();
        if Instant::now() >= deadline {
            progress.finish();
            return Err(DevnetError::NotReady {
                secs: ready_timeout.as_secs(),
                detail: waiting,
            });
        }
        progress.update(count, &waiting);
        tokio::select! {
            () = signals.recv() => { progress.finish(); return Ok(()); }
            () = tokio::time::sleep(READY_POLL) => {}
        }
    };
    progress.finish();
    let first = ready.first().cloned().unwrap_or_default();
    output::ready(file.nodes.len(), first.height, &first.tip, started.elapsed());
    let full = join_all(file.nodes.iter().map(probe::full)).await;
    output::table(&zip_nodes(&file.nodes, full));
    // The page of the whole devnet, on the port after the nodes' (another if taken).
    let page_port = file
        .base_port
        .map_or(0, |b| b.saturating_add(2 * file.nodes.len() as u16));
    let _page = match super::dashboard::start(file.clone(), dir.to_path_buf(), page_port).await {
        Ok(d) => {
            output::line(&format!("devnet page: {}", d.url));
            Some(d)
        }
        Err(e) => {
            output::warn(&format!("the devnet page could not start: {e}"));
            None
        }
    };

    let mut line = output::StatusLine::new();
    loop {
        tokio::select! {
            () = signals.recv() => { line.finish(); return Ok(()); }
            () = tokio::time::sleep(STATUS_EVERY) => {}
        }
        if let Some(dead) = sup.exited() {
            line.finish();
            output::log_tail(&dead.name, &dead.log, LOG_TAIL);
            return Err(dead.into_error());
        }
        let probes = join_all(file.nodes.iter().map(probe::full)).await;
        line.show(&zip_nodes(&file.nodes, probes));
    }
}

fn zip_nodes(nodes: &[DevnetNode], probes: Vec<Probe>) -> Vec<(DevnetNode, Probe)> {
    nodes.iter().cloned().zip(probes).collect()
}

/// How many nodes are healthy and connected to all others, and — unless every node is
/// that and all share one tip — what is still awaited.
fn readiness_summary(nodes: &[DevnetNode], probes: &[Probe]) -> (usize, Option<String>) {
    let want_peers = nodes.len().saturating_sub(1);
    let mut waiting = Vec::new();
    let mut count = 0;
    for (n, p) in nodes.iter().zip(probes) {
        if !p.ready {
            let reason = p.reason.as_deref().unwrap_or("not ready");
            let reason = if p.is_down() { "starting" } else { reason };
            waiting.push(format!("{}: {reason}", n.name));
        } else if p.peers.len() < want_peers {
            waiting.push(format!("{}: {}/{want_peers} peers", n.name, p.peers.len()));
        } else {
            count += 1;
        }
    }
    if !waiting.is_empty() {
        return (count, Some(waiting.join(", ")));
    }
    let tip = probes.first().map(|p| p.tip.as_str()).unwrap_or_default();
    if tip.is_empty() || probes.iter().any(|p| p.tip != tip) {
        let heights: Vec<String> = probes.iter().map(|p| p.height.to_string()).collect();
        return (count, Some(format!("tips differ (heights {})", heights.join(", "))));
    }
    (count, None)
}

/// SIGINT and SIGTERM.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => tracing::info!("SIGINT: stopping the devnet"),
            _ = self.term.recv() => tracing::info!("SIGTERM: stopping the devnet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: usize) -> DevnetNode {
        DevnetNode {
            name: format!("node{i}"),
            rpc: format!("http://127.0.0.1:{}", 18441 + 2 * i),
            p2p: format!("/ip4/127.0.0.1/tcp/{}/p2p/ID{i}", 18440 + 2 * i),
            data_dir: format!("/d/node{i}").into(),
            cookie: format!("/d/node{i}/.cookie").into(),
            mining: i == 0,
            pid: None,
            wallet_account: Some(u32::try_from(i).unwrap_or(0)),
            stratum: None,
        }
    }

    #[test]
    fn node_command_line_wires_every_other_node_and_the_wallet_account() {
        let all: Vec<DevnetNode> = (0..3).map(node).collect();
        let ports = NodePorts { p2p: 18442, rpc: 18443 };
        let a = node_args(
            &all[1],
            &ports,
            &all,
            Path::new("/d/mnemonic.txt"),
            &network_flags(None, 1),
            false,
        )
        .join(" ");
        assert!(a.starts_with("node --network devnet --block-time 1 "), "{a}");
        assert!(a.contains("--peer /ip4/127.0.0.1/tcp/18440/p2p/ID0"), "{a}");
        assert!(a.contains("--peer /ip4/127.0.0.1/tcp/18444/p2p/ID2"), "{a}");
        assert!(!a.contains("ID1"), "{a}");
        assert!(
            a.contains("--wallet-account 1") && a.contains("--no-mdns") && !a.contains("--mine"),
            "{a}"
        );
        let spec = network_flags(Some(Path::new("/d/chain.toml")), 1);
        let a0 = node_args(&all[0], &ports, &all, Path::new("/d/mnemonic.txt"), &spec, false).join(" ");
        assert!(a0.contains("--mine --miner-threads 1"), "{a0}");
        assert!(a0.starts_with("node --network /d/chain.toml --data-dir"), "{a0}");
    }

    #[test]
    fn behind_a_wan_a_node_listens_on_its_own_address_and_knows_only_node0() {
        let all: Vec<DevnetNode> = (0..3)
            .map(|i| DevnetNode {
                rpc: format!("http://10.77.0.{}:{}", i + 1, 18441 + 2 * i),
                p2p: format!("/ip4/10.77.0.{}/tcp/{}/p2p/ID{i}", i + 1, 18440 + 2 * i),
                ..node(i)
            })
            .collect();
        let ports = NodePorts { p2p: 18444, rpc: 18445 };
        let a = node_args(
            &all[2],
            &ports,
            &all,
            Path::new("/d/mnemonic.txt"),
            &network_flags(None, 1),
            true,
        )
        .join(" ");
        assert!(a.contains("--p2p-listen /ip4/10.77.0.3/tcp/18444"), "{a}");
        assert!(a.contains("--rpc-listen 10.77.0.3:18445"), "{a}");
        assert!(a.contains("--peer /ip4/10.77.0.1/tcp/18440/p2p/ID0"), "{a}");
        assert!(!a.contains("ID1"), "only node0 is a --peer behind a WAN: {a}");
    }

    #[test]
    fn ready_means_healthy_fully_connected_and_one_tip() {
        let nodes: Vec<DevnetNode> = (0..2).map(node).collect();
        let ok = |tip: &str| Probe {
            ready: true,
            tip: tip.into(),
            peers: vec!["x".into()],
            ..Probe::default()
        };
        assert_eq!(readiness_summary(&nodes, &[ok("a"), ok("a")]), (2, None));
        let (n, w) = readiness_summary(&nodes, &[ok("a"), ok("b")]);
        assert_eq!(n, 2);
        assert!(w.is_some_and(|w| w.contains("tips differ")));
        let lonely = Probe {
            peers: vec![],
            ..ok("a")
        };
        let (n, w) = readiness_summary(&nodes, &[ok("a"), lonely]);
        assert_eq!(n, 1);
        assert!(w.is_some_and(|w| w.contains("node1: 0/1 peers")));
    }

    #[test]
    fn resuming_with_another_block_time_is_refused() {
        let args = UpArgs {
            nodes: 3,
            miners: 1,
            dir: "d".into(),
            block_time: 1,
            base_port: 18440,
            stratum: false,
            stratum_base_port: 3333,
            ready_timeout: 10,
            wan: None,
        };
        let prev = DevnetFile {
            network: "devnet".into(),
            nodes: vec![],
            supervisor_pid: None,
            block_time: Some(2),
            base_port: None,
            chain_spec: None,
            wan: None,
        };
        let e = check_resume(Path::new("d"), Some(&prev), &args).expect_err("mismatch");
        assert!(e.to_string().contains("--block-time 2s"), "{e}");
        assert!(check_resume(
            Path::new("d"),
            Some(&DevnetFile {
                block_time: Some(1),
                ..prev
            }),
            &args
        )
        .is_ok());
        assert!(check_resume(Path::new("d"), None, &args).is_ok());
    }
}
