//! The wallet's view of its coins, fed by the chain's connect/disconnect events.
//!
//! Every connected block leaves an undo record (coins it added, coins it spent, history it
//! wrote, pending transactions it settled), so a disconnect is the exact reverse and history
//! stays right across reorganisations of any depth. The tracker is in memory only: the node
//! rebuilds it at start by replaying connected blocks from genesis (see [`Tracker::rescan`]).
//!
//! Own unconfirmed transactions are "pending": their inputs are reserved so coin selection
//! never spends them twice. A pending transaction leaves that state when a block confirms it
//! or a block spends one of its inputs otherwise (a conflict, which also settles every
//! pending transaction built on its outputs); a disconnect restores both. Each settlement
//! is logged for the wallet file ([`Tracker::take_settlements`]).
//!
//! Outputs of pending transactions that pay us (change) are "trusted change", as in Bitcoin
//! Core: they may be spent before they confirm, within the mempool's ancestor limit
//! ([`Tracker::spendable_coins_with_change`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use lode_chain::{Block, ChainEvent, Hash256, Height, OutPoint, PubkeyHash, Transaction};

use crate::error::{Result, WalletError};

/// An unspent output paying one of our keys.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Coin {
    /// Where it is.
    pub outpoint: OutPoint,
    /// Its value.
    pub value: lode_chain::Amount,
    /// The key it pays.
    pub pkh: PubkeyHash,
    /// Height of the block that created it.
    pub height: Height,
    /// For a coinbase output (not the genesis premine): the first block height that may
    /// spend it (`height + coinbase_maturity`).
    pub mature_at: Option<Height>,
}

impl Coin {
    /// True if a transaction in a block at `next_height` may spend this coin.
    pub fn is_mature_at(&self, next_height: Height) -> bool {
        self.mature_at.is_none_or(|m| next_height >= m)
    }
}

/// One transaction touching the wallet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HistoryEntry {
    /// The transaction.
    pub txid: Hash256,
    /// Block height, `None` while pending.
    pub height: Option<Height>,
    /// Sum of its outputs paying us.
    pub received: lode_chain::Amount,
    /// Sum of our coins it spends.
    pub sent: lode_chain::Amount,
    /// Its fee, known when every input is ours.
    pub fee: Option<lode_chain::Amount>,
    /// True for a coinbase (mining reward).
    pub coinbase: bool,
}

impl HistoryEntry {
    /// Net effect on the balance in base units (negative when we paid out).
    pub fn net(&self) -> i128 {
        i128::from(self.received.0) - i128::from(self.sent.0)
    }
}

/// Balances split by what they can do now.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Balance {
    /// Mature, unreserved coins: what a payment may spend.
    pub spendable: lode_chain::Amount,
    /// Coinbase outputs not yet mature.
    pub immature: lode_chain::Amount,
    /// Each immature coin's value and the height at which it becomes spendable.
    pub immature_coins: Vec<(Height, lode_chain::Amount)>,
    /// Coins reserved by our pending transactions.
    pub reserved: lode_chain::Amount,
    /// Outputs of our pending transactions that pay us back (change, self-payments).
    pub pending_incoming: lode_chain::Amount,
}

/// An own transaction not yet in a block.
#[derive(Clone, Debug)]
pub struct PendingTx {
    /// The transaction.
    pub tx: Transaction,
    /// Its txid.
    pub txid: Hash256,
    /// Our coins it spends.
    pub spends: Vec<Coin>,
    /// Its history entry (height `None`).
    pub entry: HistoryEntry,
}

/// Why a pending transaction stopped being pending.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Settlement {
    /// A block at this height confirmed it.
    Confirmed(Height),
    /// A block confirmed this other transaction, which spends one of the same coins (or
    /// an ancestor of ours was conflicted).
    Conflicted(Hash256),
}

impl std::fmt::Display for Settlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Settlement::Confirmed(h) => write!(f, "confirmed at height {h}"),
            Settlement::Conflicted(by) => write!(f, "conflicted by {by}, which a block confirmed"),
        }
    }
}

/// What one connected block did to the wallet, so disconnecting it can undo exactly that.
#[derive(Clone, Debug)]
struct BlockUndo {
    hash: Hash256,
    height: Height,
    prev_hash: Hash256,
    added: Vec<OutPoint>,
    spent: Vec<Coin>,
    history: Vec<(Height, u32)>,
    settled: Vec<PendingTx>,
}

/// Coins, history and pending transactions of a set of keys.
#[derive(Clone, Debug)]
pub struct Tracker {
    maturity: u32,
    watched: HashSet<PubkeyHash>,
    utxos: BTreeMap<OutPoint, Coin>,
    history: BTreeMap<(Height, u32), HistoryEntry>,
    pending: BTreeMap<Hash256, PendingTx>,
    reserved: HashMap<OutPoint, Hash256>,
    undo: Vec<BlockUndo>,
    tip: Option<(Hash256, Height)>,
    /// Keys any connected output ever paid (kept across disconnects: a key once used stays
    /// used, so the wallet never hands it out as fresh).
    paid: HashSet<PubkeyHash>,
    /// Settlements since the last [`Tracker::take_settlements`].
    settlements: Vec<(Hash256, Settlement)>,
}

impl Tracker {
    /// An empty tracker for `pkhs`, with the network's coinbase maturity.
    pub fn new(pkhs: impl IntoIterator<Item = PubkeyHash>, coinbase_maturity: u32) -> Tracker {
        Tracker {
            maturity: coinbase_maturity,
            watched: pkhs.into_iter().collect(),
            utxos: BTreeMap::new(),
            history: BTreeMap::new(),
            pending: BTreeMap::new(),
            reserved: HashMap::new(),
            undo: Vec::new(),
            tip: None,
            paid: HashSet::new(),
            settlements: Vec::new(),
        }
    }

    /// Rebuilds from scratch by replaying the best chain's blocks from genesis, in order.
    /// Keeps the watched keys and nothing else.
    pub fn rescan<'a>(&mut self, blocks: impl IntoIterator<Item = (Hash256, Height, &'a Block)>) {
        *self = Tracker::new(self.watched.iter().copied(), self.maturity);
        for (hash, height, block) in blocks {
            self.connect(hash, height, block);
        }
    }

    /// Rebuilds the view from the chain's address index: only blocks that paid or spent a
    /// watched key are read and replayed, then the tip is set to the chain's. Returns how
    /// many blocks were read.
    pub fn rescan_from_index(&mut self, chain: &lode_chain::ChainState) -> Result<usize> {
        let mut heights = std::collections::BTreeSet::new();
        for pkh in &self.watched {
            for event in chain.store().address_events(pkh)? {
                heights.insert(event.height);
            }
        }
        let mut blocks = Vec::with_capacity(heights.len());
        for height in heights {
            // The address index only holds best-chain blocks.
            let Some(hash) = chain.hash_at(height) else { continue };
            if let Some(block) = chain.block(&hash)? {
                blocks.push((hash, height, block));
            }
        }
        let read = blocks.len();
        self.rescan(blocks.iter().map(|(h, n, b)| (*h, *n, b)));
        self.tip = Some((chain.tip_hash(), chain.height()));
        Ok(read)
    }

    /// True if `block` pays a watched key or spends one of our coins.
    fn touches(&self, block: &Block) -> bool {
        block.transactions.iter().any(|tx| {
            tx.outputs.iter().any(|o| self.watched.contains(&o.pubkey_hash))
                || tx.inputs.iter().any(|i| self.utxos.contains_key(&i.prev_out))
        })
    }

    /// Adds keys to watch (new addresses). Outputs already connected are not revisited:
    /// rescan if the key may have been paid before.
    pub fn watch(&mut self, pkhs: impl IntoIterator<Item = PubkeyHash>) {
        self.watched.extend(pkhs);
    }

    /// Watched keys that some connected output has paid (feed to [`crate::Wallet::mark_used`]).
    pub fn paid_keys(&self) -> impl Iterator<Item = PubkeyHash> + '_ {
        self.paid.iter().copied()
    }

    /// True if `pkh` is watched.
    pub fn is_watched(&self, pkh: &PubkeyHash) -> bool {
        self.watched.contains(pkh)
    }

    /// The last connected block, if any.
    pub fn tip(&self) -> Option<(Hash256, Height)> {
        self.tip
    }

    /// The height of the next block, the one a new transaction could enter.
    pub fn next_height(&self) -> Height {
        self.tip.and_then(|(_, h)| h.next()).unwrap_or(Height::GENESIS)
    }

    /// Applies one chain event. `Reorg` is a summary of events already applied.
    pub fn apply(&mut self, event: &ChainEvent) -> Result<()> {
        match event {
            ChainEvent::BlockConnected { hash, height, block } => {
                self.connect(*hash, *height, block);
                Ok(())
            }
            ChainEvent::BlockDisconnected { hash, height, block } => self.disconnect(*hash, *height, block),
            ChainEvent::Reorg { .. } => Ok(()),
        }
    }

    fn connect(&mut self, hash: Hash256, height: Height, block: &Block) {
        let mut undo = BlockUndo {
            hash,
            height,
            prev_hash: block.header.prev_hash,
            added: Vec::new(),
            spent: Vec::new(),
            history: Vec::new(),
            settled: Vec::new(),
        };
        for (pos, tx) in block.transactions.iter().enumerate() {
            let txid = tx.txid();
            let coinbase = tx.is_coinbase();
            // Settle the pending transaction this is, or those it conflicts with.
            if let Some(p) = self.take_pending(&txid) {
                self.settlements.push((txid, Settlement::Confirmed(height)));
                undo.settled.push(p);
            }
            if !coinbase {
                for input in &tx.inputs {
                    if let Some(other) = self.reserved.get(&input.prev_out).copied() {
                        tracing::info!(pending = %other, by = %txid, "pending wallet transaction conflicted by a block");
                        // Its descendants spend outputs that will never exist: settled too.
                        let mut doomed = vec![other];
                        while let Some(next) = doomed.pop() {
                            if let Some(p) = self.take_pending(&next) {
                                doomed.extend(self.pending_children(&next));
                                self.settlements.push((next, Settlement::Conflicted(txid)));
                                undo.settled.push(p);
                            }
                        }
                    }
                }
            }
            let mut sent = lode_chain::Amount::ZERO;
            let mut all_ours = !coinbase && !tx.inputs.is_empty();
            if !coinbase {
                for input in &tx.inputs {
                    match self.utxos.remove(&input.prev_out) {
                        Some(coin) => {
                            sent = sent.checked_add(coin.value).unwrap_or(sent);
                            undo.spent.push(coin);
                        }
                        None => all_ours = false,
                    }
                }
            }
            // The genesis premine is spendable at once; other coinbases wait for maturity.
            let mature_at =
                (coinbase && height != Height::GENESIS).then(|| Height(height.0.saturating_add(self.maturity)));
            let mut received = lode_chain::Amount::ZERO;
            for (index, out) in tx.outputs.iter().enumerate() {
                if !self.watched.contains(&out.pubkey_hash) {
                    continue;
                }
                let outpoint = OutPoint {
                    txid,
                    index: index as u32,
                };
                self.utxos.insert(
                    outpoint,
                    Coin {
                        outpoint,
                        value: out.value,
                        pkh: out.pubkey_hash,
                        height,
                        mature_at,
                    },
                );
                undo.added.push(outpoint);
                self.paid.insert(out.pubkey_hash);
                received = received.checked_add(out.value).unwrap_or(received);
            }
            if sent > lode_chain::Amount::ZERO || received > lode_chain::Amount::ZERO {
                let fee = if all_ours {
                    tx.output_total().and_then(|out| sent.checked_sub(out))
                } else {
                    None
                };
                let key = (height, pos as u32);
                self.history.insert(
                    key,
                    HistoryEntry {
                        txid,
                        height: Some(height),
                        received,
                        sent,
                        fee,
                        coinbase,
                    },
                );
                undo.history.push(key);
            }
        }
        self.undo.push(undo);
        self.tip = Some((hash, height));
    }

    fn disconnect(&mut self, hash: Hash256, height: Height, block: &Block) -> Result<()> {
        // Only the last connected block can be disconnected; anything else means this view
        // missed events and must be rebuilt.
        let undo = match self.undo.last() {
            Some(u) if u.hash == hash => self.undo.pop(),
            _ => None,
        };
        let Some(undo) = undo else {
            // After a rescan from the address index only blocks that touched the wallet were
            // replayed; a later block above them that touches nothing of ours just moves the
            // tip back.
            let above = self.undo.last().is_none_or(|u| u.height < height);
            if above && self.tip.is_some_and(|(h, _)| h == hash) && !self.touches(block) {
                self.tip = height.0.checked_sub(1).map(|p| (block.header.prev_hash, Height(p)));
                return Ok(());
            }
            return Err(WalletError::TrackerOutOfSync {
                got: hash,
                height: height.0,
                tip: self.tip.map_or("none".into(), |(h, n)| format!("{h} at {n}")),
            });
        };
        for outpoint in &undo.added {
            self.utxos.remove(outpoint);
        }
        for coin in &undo.spent {
            self.utxos.insert(coin.outpoint, *coin);
        }
        for key in &undo.history {
            self.history.remove(key);
        }
        // Transactions of this block that spent our coins return to the node's mempool:
        // keep their inputs reserved as pending again. Pending ones this block settled
        // (confirmed or conflicted) come back too.
        for tx in block.transactions.iter().filter(|t| !t.is_coinbase()) {
            let txid = tx.txid();
            if tx.inputs.iter().any(|i| self.utxos.contains_key(&i.prev_out)) && !self.pending.contains_key(&txid) {
                // Cannot conflict: its inputs were spent by it in this very block.
                let _ = self.add_pending(tx);
            }
        }
        for p in undo.settled {
            if !self.pending.contains_key(&p.txid)
                && p.tx.inputs.iter().all(|i| !self.reserved.contains_key(&i.prev_out))
            {
                self.insert_pending(p);
            }
        }
        self.tip = undo.height.0.checked_sub(1).map(|h| (undo.prev_hash, Height(h)));
        Ok(())
    }

    fn take_pending(&mut self, txid: &Hash256) -> Option<PendingTx> {
        let p = self.pending.remove(txid)?;
        for input in &p.tx.inputs {
            self.reserved.remove(&input.prev_out);
        }
        Some(p)
    }

    fn insert_pending(&mut self, p: PendingTx) {
        for input in &p.tx.inputs {
            self.reserved.insert(input.prev_out, p.txid);
        }
        self.pending.insert(p.txid, p);
    }

    /// Records an own transaction handed to the node, reserving the coins it spends.
    pub fn add_pending(&mut self, tx: &Transaction) -> Result<Hash256> {
        let txid = tx.txid();
        if self.pending.contains_key(&txid) {
            return Ok(txid);
        }
        if let Some(input) = tx.inputs.iter().find(|i| self.reserved.contains_key(&i.prev_out)) {
            return Err(WalletError::AlreadyReserved(input.prev_out));
        }
        let spends: Vec<Coin> = tx.inputs.iter().filter_map(|i| self.own_coin(&i.prev_out)).collect();
        let sent = lode_chain::Amount::checked_sum(spends.iter().map(|c| c.value))
            .ok_or(WalletError::Overflow("summing pending inputs"))?;
        let received = lode_chain::Amount::checked_sum(
            tx.outputs
                .iter()
                .filter(|o| self.watched.contains(&o.pubkey_hash))
                .map(|o| o.value),
        )
        .ok_or(WalletError::Overflow("summing pending outputs"))?;
        let fee = if spends.len() == tx.inputs.len() {
            tx.output_total().and_then(|out| sent.checked_sub(out))
        } else {
            None
        };
        self.insert_pending(PendingTx {
            tx: tx.clone(),
            txid,
            spends,
            entry: HistoryEntry {
                txid,
                height: None,
                received,
                sent,
                fee,
                coinbase: false,
            },
        });
        Ok(txid)
    }

    /// Forgets a pending transaction (the node rejected or evicted it), freeing its coins.
    pub fn abandon_pending(&mut self, txid: &Hash256) -> bool {
        self.take_pending(txid).is_some()
    }

    /// Own transactions not yet confirmed.
    pub fn pending(&self) -> impl Iterator<Item = &PendingTx> {
        self.pending.values()
    }

    /// Own transactions not yet confirmed, parents before children: the order in which
    /// they can be stored and handed to a mempool again.
    pub fn pending_in_order(&self) -> Vec<&PendingTx> {
        let mut out: Vec<&PendingTx> = Vec::with_capacity(self.pending.len());
        let mut done: HashSet<Hash256> = HashSet::new();
        let mut left: Vec<&PendingTx> = self.pending.values().collect();
        while !left.is_empty() {
            let before = left.len();
            left.retain(|p| {
                let ready =
                    p.tx.inputs
                        .iter()
                        .all(|i| !self.pending.contains_key(&i.prev_out.txid) || done.contains(&i.prev_out.txid));
                if ready {
                    done.insert(p.txid);
                    out.push(p);
                }
                !ready
            });
            if left.len() == before {
                // A cycle cannot happen (txids commit to their inputs); never loop forever.
                out.append(&mut left);
            }
        }
        out
    }

    /// Settlements since the last call, oldest first (the wallet file records them).
    pub fn take_settlements(&mut self) -> Vec<(Hash256, Settlement)> {
        std::mem::take(&mut self.settlements)
    }

    /// Our coin at `outpoint`: a confirmed unspent output, or an output of a pending
    /// transaction that pays us (reserved or not).
    pub fn own_coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        if let Some(c) = self.utxos.get(outpoint) {
            return Some(*c);
        }
        let p = self.pending.get(&outpoint.txid)?;
        let out = p.tx.outputs.get(outpoint.index as usize)?;
        self.watched.contains(&out.pubkey_hash).then_some(Coin {
            outpoint: *outpoint,
            value: out.value,
            pkh: out.pubkey_hash,
            height: self.next_height(),
            mature_at: None,
        })
    }

    /// Pending transactions spending an output of `txid`.
    fn pending_children(&self, txid: &Hash256) -> Vec<Hash256> {
        self.pending
            .values()
            .filter(|p| p.tx.inputs.iter().any(|i| i.prev_out.txid == *txid))
            .map(|p| p.txid)
            .collect()
    }

    /// Pending ancestors of the pending transaction `txid`, itself included.
    fn pending_ancestors(&self, txid: &Hash256) -> HashSet<Hash256> {
        let mut seen = HashSet::new();
        let mut todo = vec![*txid];
        while let Some(t) = todo.pop() {
            let Some(p) = self.pending.get(&t) else { continue };
            if seen.insert(t) {
                todo.extend(p.tx.inputs.iter().map(|i| i.prev_out.txid));
            }
        }
        seen
    }

    /// True if `outpoint` is spent by one of our pending transactions.
    pub fn is_reserved(&self, outpoint: &OutPoint) -> bool {
        self.reserved.contains_key(outpoint)
    }

    /// Every unspent coin, mature or not, reserved or not.
    pub fn coins(&self) -> impl Iterator<Item = &Coin> {
        self.utxos.values()
    }

    /// Coins a new transaction may spend now: mature at the next height and not reserved.
    pub fn spendable_coins(&self) -> Vec<Coin> {
        let next = self.next_height();
        self.utxos
            .values()
            .filter(|c| c.is_mature_at(next) && !self.reserved.contains_key(&c.outpoint))
            .copied()
            .collect()
    }

    /// [`Tracker::spendable_coins`] plus trusted change: unreserved outputs of our pending
    /// transactions that pay us, as long as a transaction spending one stays within
    /// `max_ancestors` unconfirmed ancestors counting itself (the mempool's limit). A
    /// selection that mixes several such coins can still exceed it; the mempool then says so.
    pub fn spendable_coins_with_change(&self, max_ancestors: usize) -> Vec<Coin> {
        let mut coins = self.spendable_coins();
        for p in self.pending.values() {
            // The new transaction, the pending one and its pending ancestors.
            if self.pending_ancestors(&p.txid).len() + 1 > max_ancestors {
                continue;
            }
            for index in 0..p.tx.outputs.len() {
                let outpoint = OutPoint {
                    txid: p.txid,
                    index: index as u32,
                };
                if self.reserved.contains_key(&outpoint) {
                    continue;
                }
                if let Some(c) = self.own_coin(&outpoint) {
                    coins.push(c);
                }
            }
        }
        coins
    }

    /// Balances as of the current tip.
    pub fn balance(&self) -> Balance {
        let next = self.next_height();
        let mut b = Balance::default();
        // Sums of real coins cannot exceed the money supply, so saturating adds never bind.
        for c in self.utxos.values() {
            if self.reserved.contains_key(&c.outpoint) {
                b.reserved = b.reserved.checked_add(c.value).unwrap_or(b.reserved);
            } else if let (false, Some(m)) = (c.is_mature_at(next), c.mature_at) {
                b.immature = b.immature.checked_add(c.value).unwrap_or(b.immature);
                b.immature_coins.push((m, c.value));
            } else {
                b.spendable = b.spendable.checked_add(c.value).unwrap_or(b.spendable);
            }
        }
        // Outputs of pending transactions that pay us and no pending child spends yet.
        for p in self.pending.values() {
            for (index, out) in p.tx.outputs.iter().enumerate() {
                let outpoint = OutPoint {
                    txid: p.txid,
                    index: index as u32,
                };
                if self.watched.contains(&out.pubkey_hash) && !self.reserved.contains_key(&outpoint) {
                    b.pending_incoming = b.pending_incoming.checked_add(out.value).unwrap_or(b.pending_incoming);
                }
            }
        }
        b.immature_coins.sort();
        b
    }

    /// History: confirmed entries oldest first, then pending ones.
    pub fn history(&self) -> Vec<HistoryEntry> {
        self.history
            .values()
            .cloned()
            .chain(self.pending.values().map(|p| p.entry.clone()))
            .collect()
    }

    /// Confirmations of a block at `height` at the current tip (0 for pending).
    pub fn confirmations(&self, height: Option<Height>) -> u32 {
        match (height, self.tip) {
            (Some(h), Some((_, tip))) if tip >= h => tip.0 - h.0 + 1,
            _ => 0,
        }
    }
}
