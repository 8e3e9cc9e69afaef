//! Which ports node I of a devnet uses, and checking them all before anything starts.
//!
//! Scheme: from `--base-port B`, node I listens for P2P on `B + 2I` and serves RPC on
//! `B + 2I + 1`, all on 127.0.0.1. The default B = 18440 gives node0 18440/18441, node1
//! 18442/18443, node2 18444/18445; a devnet of N nodes uses `B .. B + 2N`.

use std::net::{Ipv4Addr, TcpListener};

use super::error::DevnetError;

/// The two ports of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePorts {
    /// libp2p listen port.
    pub p2p: u16,
    /// RPC/REST listen port.
    pub rpc: u16,
}

/// The ports of node `index` for `base`, or an error if they run past 65535.
pub fn node_ports(base: u16, index: usize) -> Result<NodePorts, DevnetError> {
    let p2p = u32::from(base) + 2 * u32::try_from(index).unwrap_or(u32::MAX / 4);
    let rpc = p2p + 1;
    match (u16::try_from(p2p), u16::try_from(rpc)) {
        (Ok(p2p), Ok(rpc)) => Ok(NodePorts { p2p, rpc }),
        _ => Err(DevnetError::Args(format!(
            "--base-port {base}: node{index} would need port {rpc}, above 65535"
        ))),
    }
}

/// Fails on the first port of `nodes` (name, ports) that cannot be bound on 127.0.0.1,
/// naming it. A plain bind finds ports held by libp2p listeners too (they use
/// SO_REUSEPORT, which a second listener without it cannot share).
pub fn check_free<'a>(nodes: impl IntoIterator<Item = (&'a str, NodePorts)>) -> Result<(), DevnetError> {
    for (name, ports) in nodes {
        for (port, role) in [(ports.p2p, "P2P"), (ports.rpc, "RPC")] {
            if let Err(e) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                return Err(if e.kind() == std::io::ErrorKind::AddrInUse {
                    DevnetError::PortInUse {
                        port,
                        node: name.to_string(),
                        role,
                    }
                } else {
                    DevnetError::PortCheck {
                        port,
                        node: name.to_string(),
                        role,
                        reason: e.to_string(),
                    }
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_documented_scheme() {
        assert_eq!(node_ports(18440, 0).ok(), Some(NodePorts { p2p: 18440, rpc: 18441 }));
        assert_eq!(node_ports(18440, 2).ok(), Some(NodePorts { p2p: 18444, rpc: 18445 }));
        assert_eq!(node_ports(65534, 0).ok(), Some(NodePorts { p2p: 65534, rpc: 65535 }));
        assert!(node_ports(65534, 1).is_err());
    }

    #[test]
    fn a_taken_port_is_named() {
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = held.local_addr().expect("addr").port();
        let e = check_free([("node1", NodePorts { p2p: port, rpc: port })]).expect_err("taken");
        let msg = e.to_string();
        assert!(msg.contains(&port.to_string()) && msg.contains("node1 P2P"), "{msg}");
    }
}
