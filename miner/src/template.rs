//! Block templates: the best tip plus transactions chosen by ancestor fee rate (packages, as
//! Bitcoin Core's `BlockAssembler`), and a coinbase paying subsidy + fees with the height and
//! an 8-byte extra-nonce. Templates are validated with the chain's own consensus code
//! (everything but proof of work) before any nonce is searched.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

use lode_chain::build::{assemble, coinbase};
use lode_chain::{Amount, Block, BlockHeader, ChainState, Hash256, Height, PubkeyHash, Transaction, TxOut};

use crate::error::MinerError;

/// Bytes reserved for the header, the transaction count and the coinbase.
pub const COINBASE_RESERVE: usize = 1_000;

/// A transaction offered for a template.
#[derive(Clone, Debug)]
pub struct TemplateTx {
    /// The transaction.
    pub tx: Transaction,
    /// Its id.
    pub txid: Hash256,
    /// Its fee.
    pub fee: Amount,
    /// Its encoded size.
    pub size: usize,
    /// Unconfirmed parents (txids of other candidates it spends).
    pub parents: Vec<Hash256>,
}

/// Where templates get their transactions (the mempool).
pub trait TxSource {
    /// Every transaction that may go into the next block, with its in-pool parents.
    fn template_candidates(&self) -> Vec<TemplateTx>;
}

/// No transactions: empty blocks.
pub struct NoTransactions;

impl TxSource for NoTransactions {
    fn template_candidates(&self) -> Vec<TemplateTx> {
        Vec::new()
    }
}

/// A block ready for the nonce search.
#[derive(Clone, Debug)]
pub struct BlockTemplate {
    /// Height of the block.
    pub height: Height,
    /// The block with nonce 0 and the coinbase's extra-nonce set.
    pub block: Block,
    /// Fees of the included transactions.
    pub fees: Amount,
    /// Subsidy + fees, what the coinbase pays.
    pub reward: Amount,
    /// Who the coinbase pays.
    pub pay_to: PubkeyHash,
    /// The coinbase extra-nonce.
    pub extra_nonce: u64,
}

impl BlockTemplate {
    /// The same template with another extra-nonce: a new coinbase txid, so a new merkle root
    /// and a fresh 2^32 nonce space.
    pub fn with_extra_nonce(&self, extra_nonce: u64) -> BlockTemplate {
        let mut txs = self.block.transactions.clone();
        txs[0] = coinbase(
            self.height,
            extra_nonce,
            crate::COINBASE_MESSAGE,
            txs[0].outputs.clone(),
        );
        let h = self.block.header;
        let block = assemble(h.prev_hash, h.time, h.bits, txs);
        BlockTemplate {
            block,
            extra_nonce,
            ..self.clone()
        }
    }

    /// The header to search.
    pub fn header(&self) -> BlockHeader {
        self.block.header
    }

    /// The block with a found nonce.
    pub fn with_nonce(&self, nonce: u32) -> Block {
        let mut block = self.block.clone();
        block.header.nonce = nonce;
        block
    }

    /// Number of non-coinbase transactions.
    pub fn tx_count(&self) -> usize {
        self.block.transactions.len() - 1
    }
}

/// Builds a template on the tip of `state` paying `pay_to`, with transactions from `source`,
/// and validates it with the consensus code. `now` is the time to stamp (raised to one second
/// past the median time past if the clock lags).
pub fn build_template(
    state: &ChainState,
    source: &dyn TxSource,
    pay_to: PubkeyHash,
    now: u64,
    extra_nonce: u64,
) -> Result<BlockTemplate, MinerError> {
    let params = state.params();
    let height = state.height().next().ok_or(MinerError::HeightOverflow)?;
    let bits = state.next_bits()?;
    let mtp = state.tip_median_time_past();
    let time = u32::try_from(now).unwrap_or(u32::MAX).max(mtp.saturating_add(1));
    let budget = params.max_block_size.saturating_sub(COINBASE_RESERVE);
    let selected = select_packages(source.template_candidates(), budget);
    let fees = Amount::checked_sum(selected.iter().map(|t| t.fee)).ok_or(MinerError::FeeOverflow)?;
    let reward = params
        .subsidy(height)
        .checked_add(fees)
        .ok_or(MinerError::FeeOverflow)?;
    let head = Head {
        height,
        time,
        bits,
        pay_to,
        extra_nonce,
    };
    let block = head.assemble(state, reward, selected.into_iter().map(|t| t.tx));
    head.checked(state, block, fees, reward)
}

/// What a template's block is built on and pays to, apart from its transactions.
struct Head {
    height: Height,
    time: u32,
    bits: u32,
    pay_to: PubkeyHash,
    extra_nonce: u64,
}

impl Head {
    /// The block on `state`'s tip: a coinbase paying `reward`, then `txs` in order.
    fn assemble(&self, state: &ChainState, reward: Amount, txs: impl Iterator<Item = Transaction>) -> Block {
        let mut all = Vec::with_capacity(txs.size_hint().0 + 1);
        all.push(coinbase(
            self.height,
            self.extra_nonce,
            crate::COINBASE_MESSAGE,
            vec![TxOut {
                value: reward,
                pubkey_hash: self.pay_to,
            }],
        ));
        all.extend(txs);
        assemble(state.tip_hash(), self.time, self.bits, all)
    }

    /// The template, once the consensus check agrees with the fees it claims.
    fn checked(
        self,
        state: &ChainState,
        block: Block,
        fees: Amount,
        reward: Amount,
    ) -> Result<BlockTemplate, MinerError> {
        let checked_fees = state.check_template(&block)?;
        if checked_fees != fees {
            return Err(MinerError::FeeMismatch {
                selected: fees,
                validated: checked_fees,
            });
        }
        Ok(BlockTemplate {
            height: self.height,
            block,
            fees,
            reward,
            pay_to: self.pay_to,
            extra_nonce: self.extra_nonce,
        })
    }
}

/// Builds a template on the tip of `state` paying `pay_to` with exactly `txs`, in this order
/// (Core's `generateblock`): a first pass with the coinbase claiming the subsidy alone
/// learns the fees from the consensus check, the second claims subsidy + fees and is
/// checked again. Any rule the transactions break is the chain's error.
pub fn build_template_with(
    state: &ChainState,
    txs: Vec<Transaction>,
    pay_to: PubkeyHash,
    now: u64,
    extra_nonce: u64,
) -> Result<BlockTemplate, MinerError> {
    let params = state.params();
    let height = state.height().next().ok_or(MinerError::HeightOverflow)?;
    let bits = state.next_bits()?;
    let mtp = state.tip_median_time_past();
    let time = u32::try_from(now).unwrap_or(u32::MAX).max(mtp.saturating_add(1));
    let subsidy = params.subsidy(height);
    let head = Head {
        height,
        time,
        bits,
        pay_to,
        extra_nonce,
    };
    let fees = state.check_template(&head.assemble(state, subsidy, txs.iter().cloned()))?;
    let reward = subsidy.checked_add(fees).ok_or(MinerError::FeeOverflow)?;
    let block = head.assemble(state, reward, txs.into_iter());
    head.checked(state, block, fees, reward)
}

/// A candidate's package score: fee and size of it plus its not-yet-selected ancestors.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Score {
    fee: u64,
    size: u64,
    /// Candidate index; also breaks ties deterministically (earlier first).
    idx: usize,
    /// Bumped when the package changes, so stale heap entries are skipped.
    version: u32,
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher fee rate first: compare fee/size exactly by cross-multiplication.
        let a = u128::from(self.fee) * u128::from(other.size.max(1));
        let b = u128::from(other.fee) * u128::from(self.size.max(1));
        a.cmp(&b).then_with(|| other.idx.cmp(&self.idx))
    }
}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Chooses transactions by ancestor-package fee rate within `budget` bytes, so a high-fee
/// child pulls in its low-fee parent. Parents always precede children in the result.
/// Candidates whose parents are neither candidates nor confirmed are the source's concern:
/// the template check refuses them.
pub fn select_packages(candidates: Vec<TemplateTx>, budget: usize) -> Vec<TemplateTx> {
    let n = candidates.len();
    let pos: HashMap<Hash256, usize> = candidates.iter().enumerate().map(|(i, c)| (c.txid, i)).collect();
    let parents: Vec<Vec<usize>> = candidates
        .iter()
        .map(|c| c.parents.iter().filter_map(|p| pos.get(p).copied()).collect())
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ps) in parents.iter().enumerate() {
        for &p in ps {
            children[p].push(i);
        }
    }
    // Ancestor sets (the mempool bounds them at 25, so these stay small).
    let ancestors: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            let mut seen = HashSet::new();
            let mut stack = parents[i].clone();
            while let Some(p) = stack.pop() {
                if seen.insert(p) {
                    stack.extend(parents[p].iter().copied());
                }
            }
            let mut v: Vec<usize> = seen.into_iter().collect();
            v.sort_unstable();
            v
        })
        .collect();
    let mut included = vec![false; n];
    let mut failed = vec![false; n];
    let mut version = vec![0u32; n];
    let score = |i: usize, included: &[bool], version: &[u32]| {
        let mut fee = candidates[i].fee.0;
        let mut size = candidates[i].size as u64;
        for &a in &ancestors[i] {
            if !included[a] {
                fee = fee.saturating_add(candidates[a].fee.0);
                size += candidates[a].size as u64;
            }
        }
        Score {
            fee,
            size,
            idx: i,
            version: version[i],
        }
    };
    let mut heap: BinaryHeap<Score> = (0..n).map(|i| score(i, &included, &version)).collect();
    let mut used = 0usize;
    let mut order: Vec<usize> = Vec::new();
    while let Some(best) = heap.pop() {
        let i = best.idx;
        if included[i] || failed[i] || best.version != version[i] {
            continue;
        }
        let mut package: Vec<usize> = ancestors[i].iter().copied().filter(|&a| !included[a]).collect();
        package.push(i);
        let size: usize = package.iter().map(|&p| candidates[p].size).sum();
        if used + size > budget || package.iter().any(|&p| failed[p]) {
            failed[i] = true;
            continue;
        }
        // An ancestor has strictly fewer ancestors than its descendant: a topological order.
        package.sort_by_key(|&p| (ancestors[p].len(), p));
        used += size;
        let mut touched = HashSet::new();
        for &p in &package {
            included[p] = true;
            order.push(p);
            let mut stack = children[p].clone();
            while let Some(c) = stack.pop() {
                if touched.insert(c) {
                    stack.extend(children[c].iter().copied());
                }
            }
        }
        for c in touched {
            if !included[c] && !failed[c] {
                version[c] += 1;
                heap.push(score(c, &included, &version));
            }
        }
    }
    let mut slots: Vec<Option<TemplateTx>> = candidates.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

impl TxSource for lode_chain::mempool::Mempool {
    fn template_candidates(&self) -> Vec<TemplateTx> {
        self.iter()
            .map(|e| TemplateTx {
                tx: (**e.tx()).clone(),
                txid: e.txid(),
                fee: e.fee(),
                size: e.size(),
                parents: e.parents().iter().copied().collect(),
            })
            .collect()
    }
}
