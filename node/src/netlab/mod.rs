//! Several "machines" on one Linux host: network namespaces joined by a bridge, with the
//! links between them shaped like a WAN (delay, jitter, loss, bandwidth), partitioned and
//! unplugged at the bridge (ADR 0015).
//!
//! Used by `lode devnet up --wan` and by the multi-host tests (`tests/src/netns.rs`). Every
//! object a lab creates carries its name prefix, so a lab left behind by a crash is found
//! and removed by the next one with that prefix ([`lab::clean_prefix`]). Needs root and the
//! `ip`, `tc`, `iptables` and `nft` tools; [`lab::probe`] says why a host cannot run one.
//!
//! The kernels we run on have no netem, so delay and jitter come from our own NFQUEUE
//! delayer ([`delayer`], run as the hidden `lode netem-delay`) on the bridge's forwarding
//! path; loss is drawn there too; bandwidth is a `tbf` qdisc on both ends of a host's cable.

pub mod delayer;
mod error;
pub mod lab;
pub mod profile;
mod sh;
pub mod slot;

pub use error::NetlabError;
pub use lab::{Lab, LabSpec};
pub use profile::{LinkShape, WanProfile};
