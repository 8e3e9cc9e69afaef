//! Block heights.

use std::fmt;

use bincode::{Decode, Encode};

/// A block's distance from genesis (genesis is height 0).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Height(pub u32);

impl Height {
    /// Genesis.
    pub const GENESIS: Height = Height(0);

    /// The next height, `None` past `u32::MAX`.
    pub fn next(self) -> Option<Height> {
        self.0.checked_add(1).map(Height)
    }

    /// Big-endian bytes: store keys sort in numeric order.
    pub fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Height({})", self.0)
    }
}
