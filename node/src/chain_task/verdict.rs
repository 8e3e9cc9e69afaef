//! What the chain task answers: verdicts on blocks and transactions, the published tip, and
//! where a submission came from (which decides whether it is announced).

use lode_chain::error::ConsensusError;
use lode_chain::header::BlockHeader;
use lode_chain::pow::ChainWork;
use lode_chain::{AcceptStatus, Hash256, Height};

/// The best chain's tip as seen by everyone but the chain task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TipInfo {
    /// Tip hash.
    pub hash: Hash256,
    /// Tip height.
    pub height: Height,
    /// Cumulative work of the best chain.
    pub work: ChainWork,
    /// Tip header (its time and bits are what a block builder needs).
    pub header: BlockHeader,
    /// Block locator of the best chain (for headers-first sync).
    pub locator: Vec<Hash256>,
}

/// Where a block or transaction came from. Only what this node made itself is announced by
/// the chain task: a peer's gossip is forwarded by gossipsub once we report it valid, and
/// blocks fetched by sync are announced by the sync round that ends on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// This node: the miner, an RPC client, the built-in wallet.
    Local,
    /// A peer's gossip.
    Peer,
}

/// What the chain made of a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockVerdict {
    /// Stored (see the status: connected, side branch, known, orphan, or found invalid
    /// while connecting).
    Accepted(AcceptStatus),
    /// Refused before storage: the sender broke this rule.
    Rejected(ConsensusError),
    /// Local trouble (storage); says nothing about the sender.
    Failed(String),
}

impl BlockVerdict {
    /// The broken rule, if the block was invalid either way.
    pub fn broken_rule(&self) -> Option<&ConsensusError> {
        match self {
            BlockVerdict::Rejected(rule) | BlockVerdict::Accepted(AcceptStatus::Invalid { rule }) => Some(rule),
            BlockVerdict::Accepted(_) | BlockVerdict::Failed(_) => None,
        }
    }

    /// Stored on a valid branch (the best one or a side branch): worth announcing.
    pub fn is_stored_valid(&self) -> bool {
        matches!(
            self,
            BlockVerdict::Accepted(AcceptStatus::Connected | AcceptStatus::SideBranch)
        )
    }
}

/// What the transaction sink made of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxVerdict {
    /// Valid against the tip: relay it.
    Accepted {
        /// Its txid.
        txid: Hash256,
    },
    /// Invalid whatever the chain: the sender broke a consensus rule (penalised).
    Rejected {
        /// Its txid.
        txid: Hash256,
        /// The broken rule.
        reason: String,
    },
    /// Not relayed, but not the sender's fault (unknown inputs, already known, busy).
    Ignored {
        /// Its txid.
        txid: Hash256,
        /// Why.
        reason: String,
    },
}
