//! `lode devnet up --wan PROFILE`: every node on a "machine" of its own (a network
//! namespace), the machines joined by a bridge shaped like the profile says (ADR 0015).
//!
//! Node I (0-based) runs in namespace `lode-dn-hI+1` at `10.77.0.(I+1)`; `devnet up` reaches
//! its RPC over the lab's control cable from the root namespace. Nodes get only node0 as
//! `--peer` and find each other through Kademlia. `partition`/`heal` cut and restore the
//! bridge (nft rules in the switch namespace) instead of banning peers. The lab is removed
//! when `up` ends (Ctrl-C, `down`, a node's death); after a crash of `up`, the next `up`
//! removes what is left (every name carries the `lode-dn` prefix).

use std::path::{Path, PathBuf};

use super::error::DevnetError;
use crate::client::devnet_file::DevnetFile;
use crate::netlab::lab::{cable_bytes, cut_at_switch, heal_at_switch, probe};
use crate::netlab::{Lab, LabSpec, NetlabError, WanProfile};

/// Name prefix of everything a WAN devnet creates.
pub const WAN_PREFIX: &str = "lode-dn";
/// Its /24: node I is `10.77.0.(I+1)`, the root side `.254`.
pub const WAN_SUBNET: [u8; 3] = [10, 77, 0];
/// Most nodes a WAN devnet runs (one host address each in the /24; Kademlia discovery
/// dials up to eight peers, so larger nets are not fully meshed and would never be "ready").
pub const MAX_WAN_NODES: usize = 9;

/// Parses `--wan` and checks this host can build the lab: root, and the tools there.
pub fn check(text: &str, nodes: usize) -> Result<WanProfile, DevnetError> {
    let profile = WanProfile::parse(text).map_err(|e| DevnetError::Args(e.to_string()))?;
    if nodes > MAX_WAN_NODES {
        return Err(DevnetError::Args(format!(
            "--wan: at most {MAX_WAN_NODES} nodes (asked for {nodes})"
        )));
    }
    probe().map_err(|e| match e {
        NetlabError::NotRoot(uid) => DevnetError::Args(format!(
            "--wan needs root (it creates network namespaces); running as uid {uid}"
        )),
        other => DevnetError::Args(format!("--wan: cannot create network namespaces here: {other}")),
    })?;
    Ok(profile)
}

/// Builds the lab (removing a stale one first) and shapes its links.
pub fn build(profile: &WanProfile, nodes: usize, exe: &Path) -> Result<Lab, DevnetError> {
    let mut lab = Lab::create(LabSpec {
        prefix: WAN_PREFIX.into(),
        subnet: WAN_SUBNET,
        hosts: nodes,
        lode_bin: exe.to_path_buf(),
        seed: 1,
    })
    .map_err(|e| DevnetError::Args(format!("--wan: {e}")))?;
    lab.shape(&profile.shapes(nodes))
        .map_err(|e| DevnetError::Args(format!("--wan: {e}")))?;
    Ok(lab)
}

/// Node `index`'s (0-based) address.
pub fn node_ip(index: usize) -> String {
    let [a, b, c] = WAN_SUBNET;
    format!("{a}.{b}.{c}.{}", index + 1)
}

/// The program and arguments that run `exe args…` inside node `index`'s namespace
/// (`ip netns exec` replaces itself with the program, so the pid is the node's).
pub fn in_namespace(index: usize, exe: &Path, args: Vec<String>) -> (PathBuf, Vec<String>) {
    let mut a = vec![
        "netns".to_string(),
        "exec".to_string(),
        format!("{WAN_PREFIX}-h{}", index + 1),
        exe.display().to_string(),
    ];
    a.extend(args);
    (PathBuf::from("ip"), a)
}

/// Host numbers (1-based) of the named nodes.
fn hosts_of(groups: &[Vec<String>], file: &DevnetFile) -> Result<Vec<Vec<usize>>, DevnetError> {
    groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|name| {
                    file.nodes
                        .iter()
                        .position(|n| &n.name == name)
                        .map(|p| p + 1)
                        .ok_or_else(|| DevnetError::Args(format!("no node {name:?} in this devnet")))
                })
                .collect()
        })
        .collect()
}

/// Cuts the bridge between the groups.
pub fn partition(groups: &[Vec<String>], file: &DevnetFile) -> Result<(), DevnetError> {
    let hosts = hosts_of(groups, file)?;
    cut_at_switch(&format!("{WAN_PREFIX}-sw"), &hosts).map_err(|e| DevnetError::Args(format!("partition: {e}")))
}

/// Restores the bridge.
pub fn heal() -> Result<(), DevnetError> {
    heal_at_switch(&format!("{WAN_PREFIX}-sw")).map_err(|e| DevnetError::Args(format!("heal: {e}")))
}

/// One line per node: its link as configured, and as measured — the median libp2p ping to
/// its peers and the bytes its cable carried (kernel counters of its switch port) — for
/// `status`.
pub fn link_lines(file: &DevnetFile, probes: &[super::probe::Probe]) -> Vec<String> {
    let Some(text) = file.wan.as_deref() else {
        return Vec::new();
    };
    let Ok(profile) = WanProfile::parse(text) else {
        return vec![format!("links: profile {text:?} (unreadable)")];
    };
    let shapes = profile.shapes(file.nodes.len());
    let mut lines = vec![format!(
        "links (--wan {text}; delay, jitter and loss apply to packets towards the node; measured: median libp2p ping to peers, bytes through the cable, RPC included):"
    )];
    let switch = format!("{WAN_PREFIX}-sw");
    for (i, (n, s)) in file.nodes.iter().zip(shapes).enumerate() {
        let ping = probes
            .get(i)
            .and_then(|p| p.ping_ms)
            .map_or_else(|| "ping -".to_string(), |ms| format!("ping {ms:.0} ms"));
        let bytes = match cable_bytes(&switch, i + 1) {
            Ok((sent, received)) => format!("sent {}, received {}", human_bytes(sent), human_bytes(received)),
            Err(_) => "bytes -".to_string(),
        };
        lines.push(format!("  {:<8} {s} | {ping}, {bytes}", n.name));
    }
    lines
}

/// Bytes in B, kB, MB (powers of 1000, as link rates are).
fn human_bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}
