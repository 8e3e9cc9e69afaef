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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::future::{ready, Ready};
    use libp2p::core::transport::PortUse;
    use libp2p::core::Endpoint;

    use super::*;

    /// A transport that records the port policy of each dial and dials nowhere.
    #[derive(Default)]
    struct Recorder(Arc<Mutex<Vec<PortUse>>>);

    impl Transport for Recorder {
        type Output = ();
        type Error = std::io::Error;
        type ListenerUpgrade = Ready<Result<(), std::io::Error>>;
        type Dial = Ready<Result<(), std::io::Error>>;

        fn listen_on(&mut self, _: ListenerId, a: Multiaddr) -> Result<(), TransportError<Self::Error>> {
            Err(TransportError::MultiaddrNotSupported(a))
        }

        fn remove_listener(&mut self, _: ListenerId) -> bool {
            false
        }

        fn dial(&mut self, _: Multiaddr, opts: DialOpts) -> Result<Self::Dial, TransportError<Self::Error>> {
            self.0
                .lock()
                .map_err(|_| TransportError::Other(std::io::Error::other("poisoned")))?
                .push(opts.port_use);
            Ok(ready(Ok(())))
        }

        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
            Poll::Pending
        }
    }

    #[test]
    fn every_dial_asks_for_a_new_port_even_when_reuse_was_asked() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut t = NoPortReuse(Recorder(seen.clone()));
        let addr: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().expect("addr");
        for port_use in [PortUse::Reuse, PortUse::New] {
            let opts = DialOpts {
                role: Endpoint::Dialer,
                port_use,
            };
            assert!(t.dial(addr.clone(), opts).is_ok());
        }
        assert_eq!(*seen.lock().expect("lock"), vec![PortUse::New, PortUse::New]);
    }
}
