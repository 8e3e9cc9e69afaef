//! The TCP transport with port reuse turned off for every dial, whoever asks for it.
//!
//! libp2p dials from the listen port by default (`PortUse::Reuse`). When two peers dial each
//! other at once over a link with real latency, both SYNs cross and TCP completes a
//! *simultaneous open*: one connection on which both sides act as the Noise initiator, and
//! the handshake fails. Our own dials already ask for a new port; Kademlia and identify-driven
//! dials do not, so the rule is enforced here, under the swarm. Lode does no NAT hole
//! punching, so reuse buys nothing.

use std::pin::Pin;
use std::task::{Context, Poll};

use libp2p::core::transport::{DialOpts, ListenerId, PortUse, TransportError, TransportEvent};
use libp2p::core::Transport;
use libp2p::Multiaddr;

/// Wraps a transport and forces [`PortUse::New`] on every dial.
#[derive(Debug)]
pub struct NoPortReuse<T>(pub T);

impl<T: Transport + Unpin> Transport for NoPortReuse<T> {
    type Output = T::Output;
    type Error = T::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(&mut self, id: ListenerId, addr: Multiaddr) -> Result<(), TransportError<Self::Error>> {
        self.0.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.0.remove_listener(id)
    }

    fn dial(&mut self, addr: Multiaddr, mut opts: DialOpts) -> Result<Self::Dial, TransportError<Self::Error>> {
        opts.port_use = PortUse::New;
        self.0.dial(addr, opts)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.0).poll(cx)
    }
}
