//! Inbound sync requests: a token bucket per peer, a status answer at once, headers and
//! blocks through the chain task (a "busy" answer when its queue is full).

use std::time::Instant;

use futures::FutureExt;
use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;

use super::{Bucket, Completion, EventLoop};
use crate::network::peers::Misbehaviour;
use crate::network::protocol::{
    SyncRequest, SyncResponse, BLOCKS_RESPONSE_BUDGET, MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, MAX_LOCATOR,
};

/// Sustained sync requests per second a peer may send, and its burst.
const RATE_PER_SEC: f64 = 100.0;
const RATE_BURST: f64 = 200.0;

impl EventLoop {
    fn allow_request(&mut self, peer: PeerId) -> bool {
        let now = Instant::now();
        let b = self.rate.entry(peer).or_insert(Bucket {
            tokens: RATE_BURST,
            last: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * RATE_PER_SEC).min(RATE_BURST);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Testing only: a fake tip in status answers; headers and blocks requests held
    /// unanswered (silent) or refused.
    fn serve_as_liar(
        &mut self,
        liar: &crate::network::HostileServe,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        if let SyncRequest::Status = request {
            let per_block = lode_chain::pow::ChainWork::from_bits(self.params.pow_limit_bits);
            let mut work = per_block;
            for _ in 0..liar.claim_height.min(1_000_000) {
                work = work.saturating_add(per_block);
            }
            self.respond(
                channel,
                SyncResponse::Status {
                    height: liar.claim_height,
                    work: work.to_be_bytes(),
                    tip: lode_chain::Hash256([0xee; 32]),
                },
            );
            return;
        }
        liar.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if liar.silent {
            // Keep the stream open without answering; bounded like everything else.
            if self.held.len() >= 1024 {
                self.held.remove(0);
            }
            self.held.push(channel);
        } else {
            self.respond(channel, SyncResponse::Error("no".into()));
        }
    }

    /// Testing only: answers from a scripted chain (see `NetworkConfig::scripted_chain`).
    fn serve_script(
        &mut self,
        script: &[lode_chain::Block],
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let response = match request {
            SyncRequest::Status => {
                let mut work = lode_chain::pow::ChainWork::from_bits(self.params.genesis_bits);
                for b in script {
                    work = work.saturating_add(lode_chain::pow::ChainWork::from_bits(b.header.bits));
                }
                SyncResponse::Status {
                    height: u32::try_from(script.len()).unwrap_or(u32::MAX),
                    work: work.to_be_bytes(),
                    tip: script.last().map_or(self.params.genesis_hash(), |b| b.hash()),
                }
            }
            SyncRequest::Headers { locator } => {
                // After the first locator entry the script holds (genesis: from the start).
                let start = locator
                    .iter()
                    .find_map(|h| script.iter().position(|b| b.hash() == *h).map(|i| i + 1))
                    .unwrap_or(0);
                SyncResponse::Headers(script[start..].iter().take(MAX_HEADERS).map(|b| b.header).collect())
            }
            SyncRequest::Blocks { hashes } => SyncResponse::Blocks(
                hashes
                    .iter()
                    .map(|h| {
                        script
                            .iter()
                            .find(|b| b.hash() == *h)
                            .map(|b| b.to_bytes())
                            .unwrap_or_default()
                    })
                    .collect(),
            ),
            // A scripted peer announces no compact blocks, so it has none to fill in.
            SyncRequest::BlockTxn { .. } => SyncResponse::Error("no compact blocks here".into()),
        };
        self.respond(channel, response);
    }

    pub(super) fn respond(&mut self, channel: ResponseChannel<SyncResponse>, response: SyncResponse) {
        // Fails only if the peer is gone or gave up: nothing left to do.
        let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
    }

    /// Answers a sync request: status at once, the rest through the chain task.
    pub(super) fn serve(&mut self, peer: PeerId, request: SyncRequest, channel: ResponseChannel<SyncResponse>) {
        if !self.allow_request(peer) {
            self.penalise(peer, Misbehaviour::RateLimited);
            self.respond(channel, SyncResponse::Error("rate limited".into()));
            return;
        }
        if let Some(liar) = self.hostile_serve.clone() {
            self.serve_as_liar(&liar, request, channel);
            return;
        }
        if let Some(script) = self.scripted_chain.clone() {
            self.serve_script(&script, request, channel);
            return;
        }
        match request {
            SyncRequest::Status => {
                let tip = self.tip.borrow().clone();
                self.respond(
                    channel,
                    SyncResponse::Status {
                        height: tip.height.0,
                        work: tip.work.to_be_bytes(),
                        tip: tip.hash,
                    },
                );
            }
            SyncRequest::Headers { mut locator } => {
                locator.truncate(MAX_LOCATOR);
                let rx = self.chain.try_headers_after(locator, MAX_HEADERS);
                let answer = rx.map(|rx| {
                    rx.map(|r| match r {
                        Ok(h) => SyncResponse::Headers(h),
                        Err(_) => SyncResponse::Error("node is shutting down".into()),
                    })
                });
                self.serve_via_chain(channel, answer);
            }
            SyncRequest::Blocks { hashes } => {
                if hashes.len() > MAX_BLOCKS_PER_REQUEST {
                    self.respond(
                        channel,
                        SyncResponse::Error(format!("at most {MAX_BLOCKS_PER_REQUEST} blocks per request")),
                    );
                    return;
                }
                let rx = self.chain.try_block_bytes(hashes, BLOCKS_RESPONSE_BUDGET);
                let answer = rx.map(|rx| {
                    rx.map(|r| match r {
                        Ok(b) => SyncResponse::Blocks(b.into_iter().map(Option::unwrap_or_default).collect()),
                        Err(_) => SyncResponse::Error("node is shutting down".into()),
                    })
                });
                self.serve_via_chain(channel, answer);
            }
            SyncRequest::BlockTxn { block, indexes } => self.serve_block_txn(channel, block, indexes),
        }
    }

    /// Answers once the chain task has; `None` (its queue is full): "busy" at once.
    pub(super) fn serve_via_chain(
        &mut self,
        channel: ResponseChannel<SyncResponse>,
        answer: Option<impl std::future::Future<Output = SyncResponse> + Send + 'static>,
    ) {
        let Some(answer) = answer else {
            self.respond(channel, SyncResponse::Error("busy".into()));
            return;
        };
        self.pending.push(
            async move {
                Completion::Serve {
                    channel,
                    response: answer.await,
                }
            }
            .boxed(),
        );
    }
}
