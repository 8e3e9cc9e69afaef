//! Header-chain validation: the rules a run of headers must pass before any body is asked
//! for (headers-first sync), over any source of ancestors — the chain state's block index
//! ([`ChainState::check_header_batch`](crate::state::ChainState::check_header_batch)) or a
//! plain list of headers ([`HeaderList`]; real Bitcoin headers in the tests).
//!
//! Each header of the batch, in order:
//! 1. links to the one before it (to the base for the first);
//! 2. its hash meets its own bits, which are no easier than the network's pow limit;
//! 3. the contextual header rules hold ([`check_header_contextual`]): the bits the
//!    difficulty algorithm demands, time after the median of the previous 11, time not too
//!    far ahead of the clock.
//!
//! Ancestors at or below the base come from the caller's [`HeaderAncestors`]; above it, from
//! the batch itself. Nothing here needs a block body, so a network whose genesis *block*
//! Lode cannot build (Bitcoin's) still validates as a header chain from its genesis header.

use crate::error::ConsensusError;
use crate::hash::Hash256;
use crate::header::BlockHeader;
use crate::height::Height;
use crate::params::ChainParams;
use crate::pow::{check_proof_of_work, ChainWork};
use crate::validation::header::{check_header_contextual, HeaderContext};

/// The last trusted header, on which a batch builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderChainBase {
    /// Its hash: the batch's first header must name it as parent.
    pub hash: Hash256,
    /// Its height.
    pub height: Height,
    /// Its header: the first header's parent for the difficulty and time rules.
    pub header: BlockHeader,
    /// Cumulative work of the chain ending at it.
    pub work: ChainWork,
}

impl HeaderChainBase {
    /// `header` at `height`, with `work` the cumulative work of the chain ending at it.
    pub fn new(header: BlockHeader, height: Height, work: ChainWork) -> HeaderChainBase {
        HeaderChainBase {
            hash: header.hash(),
            height,
            header,
            work,
        }
    }

    /// A network's genesis header: height 0, its own work.
    pub fn genesis(header: BlockHeader) -> HeaderChainBase {
        HeaderChainBase::new(header, Height::GENESIS, ChainWork::from_bits(header.bits))
    }
}

/// Headers at or below the base, on the base's branch.
pub trait HeaderAncestors {
    /// The header at `height` (at most the base's), or `None` if unknown. An unknown
    /// ancestor fails the difficulty rule ([`ConsensusError::MissingAncestor`]) when that
    /// rule needs it; median time past takes the times it can get, as Bitcoin does near
    /// genesis.
    fn header_at(&self, height: Height) -> Option<BlockHeader>;
}

impl<F: Fn(Height) -> Option<BlockHeader>> HeaderAncestors for F {
    fn header_at(&self, height: Height) -> Option<BlockHeader> {
        self(height)
    }
}

/// Consecutive headers in memory, the first at `first_height`: ancestors with no store
/// behind them.
#[derive(Clone, Copy, Debug)]
pub struct HeaderList<'a> {
    first_height: Height,
    headers: &'a [BlockHeader],
}

impl<'a> HeaderList<'a> {
    /// `headers[i]` is at height `first_height + i`.
    pub fn new(first_height: Height, headers: &'a [BlockHeader]) -> HeaderList<'a> {
        HeaderList { first_height, headers }
    }
}

impl HeaderAncestors for HeaderList<'_> {
    fn header_at(&self, height: Height) -> Option<BlockHeader> {
        let index = height.0.checked_sub(self.first_height.0)?;
        self.headers.get(usize::try_from(index).ok()?).copied()
    }
}

/// A header that passed: where it sits and the work of the chain ending at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedHeader {
    /// Its hash.
    pub hash: Hash256,
    /// Its height.
    pub height: Height,
    /// Cumulative work of the chain ending at it.
    pub work: ChainWork,
}

/// Why checking stopped before the end of the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderChainStop {
    /// Header `index` is too far ahead of the clock ([`ConsensusError::TimeTooNew`]). Clock
    /// skew is not a lie: it may be valid later, so it is not condemned, and nothing after
    /// it is judged.
    TooNew {
        /// Position in the batch.
        index: usize,
        /// The `TimeTooNew` rule with its values.
        rule: ConsensusError,
    },
    /// Header `index` broke `rule`: it, and so every header after it, is invalid.
    Invalid {
        /// Position in the batch.
        index: usize,
        /// The broken rule.
        rule: ConsensusError,
    },
}

/// What [`check_header_chain`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderChainOutcome {
    /// The headers that passed, in batch order: the batch up to `stop`.
    pub checked: Vec<CheckedHeader>,
    /// Cumulative work at the last header that passed (the base's if none did).
    pub work: ChainWork,
    /// Why checking stopped early; `None` when every header passed.
    pub stop: Option<HeaderChainStop>,
}

impl HeaderChainOutcome {
    /// The first invalid header's position and broken rule, if one is invalid.
    pub fn invalid(&self) -> Option<(usize, &ConsensusError)> {
        match &self.stop {
            Some(HeaderChainStop::Invalid { index, rule }) => Some((*index, rule)),
            Some(HeaderChainStop::TooNew { .. }) | None => None,
        }
    }

    /// True when every header of the batch passed.
    pub fn is_complete(&self) -> bool {
        self.stop.is_none()
    }
}

/// Validates `headers` as a chain built on `base`: linkage, proof of work and the contextual
/// header rules, in order, stopping at the first header that fails (see the module doc).
/// `ancestors` serves heights at or below the base; `now` is the node's clock, seconds since
/// the Unix epoch.
pub fn check_header_chain(
    params: &ChainParams,
    base: &HeaderChainBase,
    ancestors: &dyn HeaderAncestors,
    now: u64,
    headers: &[BlockHeader],
) -> HeaderChainOutcome {
    let pow_limit = params.pow_limit();
    let mut checked: Vec<CheckedHeader> = Vec::with_capacity(headers.len());
    let mut work = base.work;
    let mut parent = base.header;
    let mut parent_hash = base.hash;
    let mut parent_height = base.height;
    // Ancestors at or below the base from the caller; above it, from the batch.
    let lookup = |h: Height| match h.0.checked_sub(base.height.0) {
        None => ancestors.header_at(h),
        Some(0) => Some(base.header),
        Some(above) => headers.get(usize::try_from(above - 1).ok()?).copied(),
    };
    let stop = |checked, work, stop| HeaderChainOutcome {
        checked,
        work,
        stop: Some(stop),
    };
    for (index, header) in headers.iter().enumerate() {
        let invalid = |rule| HeaderChainStop::Invalid { index, rule };
        // Linkage: a chain, not a set — each header builds on the one before it.
        if header.prev_hash != parent_hash {
            let rule = ConsensusError::BrokenLink {
                expected: parent_hash,
                found: header.prev_hash,
            };
            return stop(checked, work, invalid(rule));
        }
        // Proof of work first: it is what makes a lying peer pay for every header it sends,
        // and it needs no context.
        let hash = header.hash();
        if let Err(rule) = check_proof_of_work(&hash, header.bits, &pow_limit) {
            return stop(checked, work, invalid(rule));
        }
        let Some(height) = parent_height.next() else {
            return stop(checked, work, invalid(ConsensusError::HeightOverflow));
        };
        let ctx = HeaderContext {
            parent_height,
            parent: &parent,
            ancestor: &lookup,
        };
        match check_header_contextual(params, header, &ctx, now) {
            Ok(()) => {}
            Err(rule @ ConsensusError::TimeTooNew { .. }) => {
                return stop(checked, work, HeaderChainStop::TooNew { index, rule });
            }
            Err(rule) => return stop(checked, work, invalid(rule)),
        }
        work = work.saturating_add(ChainWork::from_bits(header.bits));
        checked.push(CheckedHeader { hash, height, work });
        parent = *header;
        parent_hash = hash;
        parent_height = height;
    }
    HeaderChainOutcome {
        checked,
        work,
        stop: None,
    }
}

/// What the chain state made of a batch of headers from a peer
/// ([`ChainState::check_header_batch`](crate::state::ChainState::check_header_batch)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadersVerdict {
    /// Valid as far as checked (a header too far ahead of the clock ends the batch without
    /// condemning it). `missing` are the hashes whose bodies we lack, in chain order; `work`
    /// is the cumulative work at the last checked header.
    Valid {
        /// Headers not yet stored with a body.
        missing: Vec<Hash256>,
        /// Cumulative work at the last checked header.
        work: ChainWork,
        /// Height of the last checked header.
        last_height: Height,
    },
    /// The first header's parent is unknown (the peer ignored our locator, or a race).
    Unconnected,
    /// Header `index` broke a rule (bad linkage, PoW, bits or time, or a block known to be
    /// invalid): the peer lied.
    Invalid {
        /// Position in the batch.
        index: usize,
        /// The broken rule.
        reason: ConsensusError,
    },
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::address::PubkeyHash;
    use crate::build::{empty_chain, grind};
    use crate::state::ChainState;

    fn headers(params: &ChainParams, n: u32) -> Vec<BlockHeader> {
        empty_chain(params, n, PubkeyHash([1; 20]))
            .into_iter()
            .map(|b| b.header)
            .collect()
    }

    /// A clock a day after genesis: every built header is in the past.
    fn open(dir: &std::path::Path, params: &ChainParams) -> ChainState {
        let now = u64::from(params.genesis_time) + 86_400;
        ChainState::open_with_clock(dir, params.clone(), Arc::new(move || now)).expect("open")
    }

    #[test]
    fn headers_are_checked_for_linkage_pow_bits_and_time_before_bodies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let params = ChainParams::regtest();
        let chain = open(dir.path(), &params);
        let hs = headers(&params, 20);
        match chain.check_header_batch(&hs) {
            HeadersVerdict::Valid {
                missing, last_height, ..
            } => {
                assert_eq!(missing.len(), 20);
                assert_eq!(last_height, Height(20));
            }
            other => panic!("{other:?}"),
        }
        // Broken linkage.
        let mut bad = hs.clone();
        bad.remove(5);
        assert!(matches!(
            chain.check_header_batch(&bad),
            HeadersVerdict::Invalid { index: 5, .. }
        ));
        // Bad proof of work.
        let mut bad = hs.clone();
        loop {
            bad[19].nonce = bad[19].nonce.wrapping_add(1);
            if check_proof_of_work(&bad[19].hash(), bad[19].bits, &params.pow_limit()).is_err() {
                break;
            }
        }
        assert!(matches!(
            chain.check_header_batch(&bad),
            HeadersVerdict::Invalid { index: 19, .. }
        ));
        // Time not after the median of the previous 11.
        let mut bad = hs[..12].to_vec();
        bad[11].time = bad[0].time;
        grind(&mut bad[11], &params.pow_limit());
        assert!(matches!(
            chain.check_header_batch(&bad),
            HeadersVerdict::Invalid { index: 11, .. }
        ));
        // Not connected to anything we know.
        assert_eq!(chain.check_header_batch(&hs[1..]), HeadersVerdict::Unconnected);
    }

    #[test]
    fn known_bodies_are_not_missing_and_an_empty_batch_ends_at_the_tip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let params = ChainParams::regtest();
        let mut chain = open(dir.path(), &params);
        let blocks = empty_chain(&params, 5, PubkeyHash([1; 20]));
        for b in &blocks[..3] {
            chain.accept_block(Arc::new(b.clone())).expect("accept");
        }
        let hs: Vec<BlockHeader> = blocks.iter().map(|b| b.header).collect();
        match chain.check_header_batch(&hs) {
            HeadersVerdict::Valid {
                missing, last_height, ..
            } => {
                assert_eq!(missing, vec![hs[3].hash(), hs[4].hash()]);
                assert_eq!(last_height, Height(5));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            chain.check_header_batch(&[]),
            HeadersVerdict::Valid {
                missing: Vec::new(),
                work: chain.tip_entry().work(),
                last_height: Height(3),
            }
        );
    }

    #[test]
    fn a_plain_header_list_validates_without_a_store() {
        let params = ChainParams::regtest();
        let genesis = params.genesis_block().header;
        let hs = headers(&params, 20);
        let base = HeaderChainBase::genesis(genesis);
        let below = HeaderList::new(Height::GENESIS, std::slice::from_ref(&genesis));
        let now = u64::from(params.genesis_time) + 86_400;
        let outcome = check_header_chain(&params, &base, &below, now, &hs);
        assert!(outcome.is_complete(), "{outcome:?}");
        assert_eq!(outcome.checked.len(), 20);
        let per_block = ChainWork::from_bits(params.pow_limit_bits);
        let mut work = base.work;
        for (i, c) in outcome.checked.iter().enumerate() {
            work = work.saturating_add(per_block);
            assert_eq!(c.hash, hs[i].hash());
            assert_eq!(c.height, Height(i as u32 + 1));
            assert_eq!(c.work, work);
        }
        assert_eq!(outcome.work, work);

        // A batch built on a later base: ancestors come from the list below it.
        let all: Vec<BlockHeader> = std::iter::once(genesis).chain(hs.iter().copied()).collect();
        let mid = HeaderChainBase::new(hs[9], Height(10), outcome.checked[9].work);
        let tail = check_header_chain(
            &params,
            &mid,
            &HeaderList::new(Height::GENESIS, &all[..=10]),
            now,
            &hs[10..],
        );
        assert!(tail.is_complete(), "{tail:?}");
        assert_eq!(tail.work, outcome.work);

        // The median-time rule reads ancestors from below the base.
        let mut bad = hs[10];
        bad.time = hs[0].time;
        grind(&mut bad, &params.pow_limit());
        let old = check_header_chain(
            &params,
            &mid,
            &HeaderList::new(Height::GENESIS, &all[..=10]),
            now,
            &[bad],
        );
        assert!(
            matches!(old.invalid(), Some((0, ConsensusError::TimeTooOld { .. }))),
            "{old:?}"
        );

        // Broken linkage names both hashes.
        let skipped = check_header_chain(&params, &base, &below, now, &hs[1..]);
        assert_eq!(
            skipped.invalid(),
            Some((
                0,
                &ConsensusError::BrokenLink {
                    expected: base.hash,
                    found: hs[0].hash(),
                }
            ))
        );
        assert_eq!(skipped.work, base.work);
    }

    #[test]
    fn a_header_too_new_stops_the_batch_without_condemning_it() {
        let params = ChainParams::regtest();
        let genesis = params.genesis_block().header;
        let hs = headers(&params, 10);
        let base = HeaderChainBase::genesis(genesis);
        let below = HeaderList::new(Height::GENESIS, std::slice::from_ref(&genesis));
        // The clock is such that header 6 (index 5) is just too far ahead of it.
        let now = u64::from(hs[5].time) - params.max_future_block_time - 1;
        assert!(u64::from(hs[4].time) <= now + params.max_future_block_time);
        let outcome = check_header_chain(&params, &base, &below, now, &hs);
        assert!(
            matches!(
                outcome.stop,
                Some(HeaderChainStop::TooNew {
                    index: 5,
                    rule: ConsensusError::TimeTooNew { .. }
                })
            ),
            "{outcome:?}"
        );
        assert_eq!(outcome.invalid(), None);
        assert_eq!(outcome.checked.len(), 5);
        assert_eq!(outcome.work, outcome.checked[4].work);
    }
}
