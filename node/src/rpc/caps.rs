//! Counted slots with a cap in total and per client address: HTTP connections and event
//! streams (ADR 0021). A [`Ticket`] holds one slot and gives it back when dropped, so a
//! connection or stream that ends for any reason frees its slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Public connections (anonymous callers) at once.
pub const PUBLIC_CONNECTIONS: usize = 448;
/// Public connections from one address at once.
pub const PUBLIC_CONNECTIONS_PER_ADDR: usize = 64;
/// Connections kept for authenticated callers (the cookie holder, the CLI, the devnet
/// supervisor, API keys): a connection that finds the public slots full — in total or for
/// its address — is served only if its requests carry a credential.
pub const RESERVED_CONNECTIONS: usize = 64;
/// Reserved connections one non-loopback address may hold (a cookie holder is local: the
/// cookie is a file in the data dir; loopback is not capped here).
pub const RESERVED_CONNECTIONS_PER_ADDR: usize = 8;
/// Anonymous event streams at once.
pub const PUBLIC_STREAMS: usize = 64;
/// Anonymous event streams from one address at once.
pub const PUBLIC_STREAMS_PER_ADDR: usize = 4;

#[derive(Default)]
struct Counts {
    total: usize,
    per_addr: HashMap<IpAddr, usize>,
}

/// Slots capped in total and per address.
pub struct Caps {
    total: usize,
    per_addr: usize,
    /// Whether loopback addresses are exempt from the per-address cap.
    loopback_exempt: bool,
    counts: Mutex<Counts>,
}

/// One slot, given back when dropped.
pub struct Ticket {
    caps: Arc<Caps>,
    addr: IpAddr,
}

impl Caps {
    /// At most `total` slots, at most `per_addr` of them for one address.
    pub fn new(total: usize, per_addr: usize) -> Arc<Caps> {
        Arc::new(Caps {
            total,
            per_addr,
            loopback_exempt: false,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// As [`Caps::new`], with loopback addresses not capped per address.
    pub fn new_loopback_exempt(total: usize, per_addr: usize) -> Arc<Caps> {
        Arc::new(Caps {
            total,
            per_addr,
            loopback_exempt: true,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Takes a slot for `addr`, if the caps allow.
    pub fn try_take(self: &Arc<Caps>, addr: IpAddr) -> Option<Ticket> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = c.per_addr.get(&addr).copied().unwrap_or(0);
        let per_addr_full = mine >= self.per_addr && !(self.loopback_exempt && addr.is_loopback());
        if c.total >= self.total || per_addr_full {
            return None;
        }
        c.total += 1;
        *c.per_addr.entry(addr).or_insert(0) += 1;
        Some(Ticket {
            caps: self.clone(),
            addr,
        })
    }

    /// Slots taken now.
    pub fn in_use(&self) -> usize {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self.caps.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_addr.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            // Forget the address with its last slot: the map holds only live clients.
            if *n == 0 {
                c.per_addr.remove(&self.addr);
            }
        }
    }
}

/// Which slots a connection got, put in each of its requests' extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnClass {
    /// A public slot: any caller.
    Public,
    /// A reserved slot: only requests with a credential are served.
    Reserved,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_total_and_per_address_and_slots_come_back() {
        let caps = Caps::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t1 = caps.try_take(a).expect("first");
        let _t2 = caps.try_take(a).expect("second");
        assert!(caps.try_take(a).is_none(), "per-address cap");
        let _t3 = caps.try_take(b).expect("another address");
        assert!(caps.try_take(b).is_none(), "total cap");
        drop(t1);
        assert_eq!(caps.in_use(), 2);
        assert!(caps.try_take(a).is_some(), "a slot came back");
        let loopback = Caps::new_loopback_exempt(10, 1);
        let lo: IpAddr = [127, 0, 0, 1].into();
        let _l1 = loopback.try_take(lo).expect("one");
        assert!(loopback.try_take(lo).is_some(), "loopback not capped per address");
    }
}
