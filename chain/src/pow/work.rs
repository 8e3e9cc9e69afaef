//! Chain work: the expected number of hashes a block's target represents, as Bitcoin's
//! `GetBlockProof`.

use std::fmt;

use primitive_types::U256;

use super::compact::target_from_bits;

/// Cumulative or per-block work (a 256-bit count of expected hashes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct ChainWork(pub U256);

impl ChainWork {
    /// Work of a block with these bits: `2^256 / (target + 1)`, computed as
    /// `(~target / (target + 1)) + 1` so it fits in 256 bits; zero for invalid bits.
    pub fn from_bits(bits: u32) -> ChainWork {
        match target_from_bits(bits) {
            Some(target) => ChainWork((!target / (target + U256::one())) + U256::one()),
            None => ChainWork(U256::zero()),
        }
    }

    /// Saturating sum (cumulative work cannot realistically reach 2^256).
    pub fn saturating_add(self, other: ChainWork) -> ChainWork {
        ChainWork(self.0.saturating_add(other.0))
    }

    /// Big-endian bytes (store encoding; sorts numerically).
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_big_endian()
    }

    /// From big-endian bytes.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> ChainWork {
        ChainWork(U256::from_big_endian(bytes))
    }
}

impl fmt::Debug for ChainWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainWork({:#x})", self.0)
    }
}

impl fmt::Display for ChainWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:064x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_work_is_bitcoins() {
        // Bitcoin's genesis block has chainwork 0x100010001.
        assert_eq!(ChainWork::from_bits(0x1d00ffff).0, U256::from(0x1_0001_0001u64));
        assert_eq!(ChainWork::from_bits(0x1d80ffff).0, U256::zero());
    }
}
