//! `lode devnet partition node0,node1 / node2` and `lode devnet heal`: cut and restore the
//! links between groups of nodes through their admin RPC, so a fork and its reorg can be
//! watched.
//!
//! Partition: every node bans (`setban PEER add`) and disconnects (`disconnectnode`) each
//! node of the other groups; a ban also stops the node re-dialling its configured
//! `--peer`s. The groups are recorded in `DIR/partition.json`. Heal: every recorded ban is
//! lifted (`setban PEER remove`) and the peer dialled again (`addnode ADDR onetry`); the
//! record is removed. Bans live in the nodes' memory: restarting the devnet heals it too
//! (run `heal` anyway to drop the record).

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::DevnetError;
use super::file::{DevnetFile, DevnetNode};
use super::lock;
use super::output;
use super::probe::admin_client;
use crate::client::ClientError;

/// File recording the current partition.
pub const PARTITION_FILE: &str = "partition.json";
/// How long partition bans last if never healed (seconds).
const BAN_SECS: u64 = 7 * 24 * 3600;

/// Flags of `lode devnet partition`.
#[derive(Debug, Clone, clap::Args)]
pub struct PartitionArgs {
    /// Directory of the devnet.
    #[arg(long, default_value = "./devnet")]
    pub dir: std::path::PathBuf,
    /// Groups of node names, comma-separated, groups separated by `/`
    /// (`node0,node1 / node2`). A single group is cut off from all the other nodes.
    #[arg(required = true, num_args = 1.., value_name = "GROUPS")]
    pub groups: Vec<String>,
}

/// The recorded partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Node names per group.
    pub groups: Vec<Vec<String>>,
}

/// Parses `node0,node1 / node2` (as one or several arguments) into groups of known nodes.
/// Nodes left out of a single group form the second group; with two groups or more, every
/// node must be in exactly one.
pub fn parse_groups(args: &[String], file: &DevnetFile) -> Result<Vec<Vec<String>>, DevnetError> {
    let joined = args.join(" ");
    let mut groups: Vec<Vec<String>> = joined
        .split('/')
        .map(|g| {
            g.split([',', ' ', '\t'])
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    if groups.iter().any(Vec::is_empty) {
        return Err(DevnetError::Args(format!(
            "partition {joined:?}: every group needs at least one node (e.g. `node0,node1 / node2`)"
        )));
    }
    let mut seen = BTreeSet::new();
    for name in groups.iter().flatten() {
        if file.node(name).is_none() {
            let known: Vec<&str> = file.nodes.iter().map(|n| n.name.as_str()).collect();
            return Err(DevnetError::Args(format!(
                "partition: no node {name:?} in this devnet (nodes: {})",
                known.join(", ")
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(DevnetError::Args(format!("partition: {name} is in two groups")));
        }
    }
    let rest: Vec<String> = file
        .nodes
        .iter()
        .filter(|n| !seen.contains(&n.name))
        .map(|n| n.name.clone())
        .collect();
    match (groups.len(), rest.is_empty()) {
        (1, true) => Err(DevnetError::Args(
            "partition: the group holds every node; name two groups (`node0,node1 / node2`)".into(),
        )),
        (1, false) => {
            groups.push(rest);
            Ok(groups)
        }
        (_, true) => Ok(groups),
        (_, false) => Err(DevnetError::Args(format!(
            "partition: {} in no group; put every node in one",
            rest.join(", ")
        ))),
    }
}

/// Every (node, other-group node) pair: the links a partition cuts.
fn cut_links<'a>(groups: &[Vec<String>], file: &'a DevnetFile) -> Vec<(&'a DevnetNode, &'a DevnetNode)> {
    let mut links = Vec::new();
    for (gi, group) in groups.iter().enumerate() {
        for name in group {
            let Some(from) = file.node(name) else { continue };
            for (gj, other) in groups.iter().enumerate() {
                if gi == gj {
                    continue;
                }
                links.extend(other.iter().filter_map(|o| file.node(o)).map(|to| (from, to)));
            }
        }
    }
    links
}

fn require_running(dir: &Path) -> Result<(), DevnetError> {
    match lock::holder(dir)? {
        Some(_) => Ok(()),
        None => Err(DevnetError::NotRunning {
            dir: dir.display().to_string(),
        }),
    }
}

fn peer_of(node: &DevnetNode) -> Result<&str, DevnetError> {
    node.peer_id().ok_or_else(|| DevnetError::Malformed {
        path: super::file::DEVNET_FILE.into(),
        reason: format!("{}: p2p address {:?} has no /p2p/PEER_ID", node.name, node.p2p),
    })
}

fn rpc_err(node: &DevnetNode) -> impl Fn(ClientError) -> DevnetError + '_ {
    move |source| DevnetError::Rpc {
        node: node.name.clone(),
        source,
    }
}

/// Cuts the devnet into the groups named by `args.groups`.
pub async fn partition(args: &PartitionArgs) -> Result<(), DevnetError> {
    let dir = &args.dir;
    let file = super::file::read(dir)?;
    let groups = parse_groups(&args.groups, &file)?;
    require_running(dir)?;
    if let Some(existing) = read_partition(dir)? {
        return Err(DevnetError::Args(format!(
            "the devnet is already partitioned ({}); run `lode devnet heal` first",
            describe(&existing.groups)
        )));
    }
    // Record first: if a call fails half-way, `heal` still knows what to undo.
    write_partition(dir, &Partition { groups: groups.clone() })?;
    // Behind an emulated WAN the cut is made at the bridge, as a real network splits.
    #[cfg(target_os = "linux")]
    if file.wan.is_some() {
        super::wan::partition(&groups, &file)?;
        output::line(&format!("partitioned at the bridge: {}", describe(&groups)));
        return Ok(());
    }
    for (from, to) in cut_links(&groups, &file) {
        let client = admin_client(from).map_err(rpc_err(from))?;
        let peer = peer_of(to)?;
        client
            .call("setban", json!([peer, "add", BAN_SECS]))
            .await
            .map_err(rpc_err(from))?;
        // Not connected at the moment is fine: the ban keeps it that way.
        if let Err(e) = client.call("disconnectnode", json!([peer])).await {
            match e {
                ClientError::Rpc { .. } => tracing::debug!(node = %from.name, %peer, error = %e, "disconnectnode"),
                other => return Err(rpc_err(from)(other)),
            }
        }
        tracing::info!(node = %from.name, peer = %to.name, "link cut");
    }
    output::line(&format!("partitioned: {}", describe(&groups)));
    Ok(())
}

/// Restores every link the recorded partition cut.
pub async fn heal(dir: &Path) -> Result<(), DevnetError> {
    let file = super::file::read(dir)?;
    let Some(recorded) = read_partition(dir)? else {
        output::line("the devnet is not partitioned");
        return Ok(());
    };
    require_running(dir)?;
    #[cfg(target_os = "linux")]
    if file.wan.is_some() {
        super::wan::heal()?;
        let path = dir.join(PARTITION_FILE);
        std::fs::remove_file(&path).map_err(|e| DevnetError::io(&path, e))?;
        output::line(&format!("healed at the bridge: {}", describe(&recorded.groups)));
        return Ok(());
    }
    for (from, to) in cut_links(&recorded.groups, &file) {
        let client = admin_client(from).map_err(rpc_err(from))?;
        let peer = peer_of(to)?;
        // Not banned (a restarted node forgot its bans) is fine.
        if let Err(e) = client.call("setban", json!([peer, "remove"])).await {
            match e {
                ClientError::Rpc { .. } => tracing::debug!(node = %from.name, %peer, error = %e, "setban remove"),
                other => return Err(rpc_err(from)(other)),
            }
        }
        client
            .call("addnode", json!([to.p2p, "onetry"]))
            .await
            .map_err(rpc_err(from))?;
        tracing::info!(node = %from.name, peer = %to.name, "link restored");
    }
    let path = dir.join(PARTITION_FILE);
    std::fs::remove_file(&path).map_err(|e| DevnetError::io(&path, e))?;
    output::line(&format!("healed: {}", describe(&recorded.groups)));
    Ok(())
}

fn describe(groups: &[Vec<String>]) -> String {
    groups.iter().map(|g| g.join(",")).collect::<Vec<_>>().join(" / ")
}

/// The recorded partition, if the devnet is partitioned now.
pub fn read_partition(dir: &Path) -> Result<Option<Partition>, DevnetError> {
    let path = dir.join(PARTITION_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| DevnetError::Malformed {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DevnetError::io(&path, e)),
    }
}

fn write_partition(dir: &Path, p: &Partition) -> Result<(), DevnetError> {
    let path = dir.join(PARTITION_FILE);
    let text = serde_json::to_string_pretty(p).map_err(|e| DevnetError::Malformed {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    std::fs::write(&path, text).map_err(|e| DevnetError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devnet(n: usize) -> DevnetFile {
        DevnetFile {
            network: "devnet".into(),
            nodes: (0..n)
                .map(|i| DevnetNode {
                    name: format!("node{i}"),
                    rpc: String::new(),
                    p2p: format!("/ip4/127.0.0.1/tcp/1/p2p/ID{i}"),
                    data_dir: "/d".into(),
                    cookie: "/d/.cookie".into(),
                    mining: false,
                    pid: None,
                    wallet_account: None,
                    stratum: None,
                })
                .collect(),
            ..DevnetFile::default()
        }
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn groups_parse_in_every_spelling() {
        let f = devnet(3);
        let want = vec![strs(&["node0", "node1"]), strs(&["node2"])];
        for args in [
            strs(&["node0,node1", "/", "node2"]),
            strs(&["node0,node1/node2"]),
            strs(&["node0, node1 / node2"]),
            strs(&["node0,node1"]),
        ] {
            assert_eq!(parse_groups(&args, &f).ok(), Some(want.clone()), "{args:?}");
        }
        for (args, needle) in [
            (strs(&["node0", "/", "node9"]), "no node \"node9\""),
            (strs(&["node0", "/", "node0"]), "two groups"),
            (strs(&["node0", "/", "node1"]), "node2 in no group"),
            (strs(&["node0,node1,node2"]), "every node"),
            (strs(&["node0", "/", ""]), "at least one node"),
        ] {
            let e = parse_groups(&args, &f).expect_err("refused").to_string();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn every_cross_group_link_is_cut_both_ways() {
        let f = devnet(3);
        let groups = vec![strs(&["node0", "node1"]), strs(&["node2"])];
        let links: Vec<(String, String)> = cut_links(&groups, &f)
            .into_iter()
            .map(|(a, b)| (a.name.clone(), b.name.clone()))
            .collect();
        assert_eq!(links.len(), 4);
        for pair in [
            ("node0", "node2"),
            ("node2", "node0"),
            ("node1", "node2"),
            ("node2", "node1"),
        ] {
            assert!(links.contains(&(pair.0.into(), pair.1.into())), "{pair:?}");
        }
    }
}
