//! The sync request-response protocol `/lode/<genesis-prefix>/sync/1`: messages and a
//! size-limited codec over the canonical encoding.
//!
//! Frames are a u32 little-endian length followed by that many bytes of canonical
//! encoding. The length is checked against the limit before anything is read or
//! allocated, and decoding is strict (no trailing bytes).

use std::io;

use bincode::{Decode, Encode};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use lode_chain::encoding;
use lode_chain::header::BlockHeader;
use lode_chain::{Hash256, Transaction};

/// Most headers in one answer.
pub const MAX_HEADERS: usize = 2000;
/// Most blocks asked for in one request.
pub const MAX_BLOCKS_PER_REQUEST: usize = 16;
/// Most locator hashes accepted (a locator of a 2^32-block chain has ~42).
pub const MAX_LOCATOR: usize = 101;
/// Largest request frame.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Byte budget the server fills a blocks answer up to (at least one block is always sent).
pub const BLOCKS_RESPONSE_BUDGET: usize = 4 * 1024 * 1024;

/// A sync request.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SyncRequest {
    /// Your best tip.
    Status,
    /// Best-chain headers after the first locator hash you know.
    Headers {
        /// Locator, newest first, ending at genesis.
        locator: Vec<Hash256>,
    },
    /// These blocks' bodies.
    Blocks {
        /// Wanted hashes.
        hashes: Vec<Hash256>,
    },
    /// `getblocktxn`: these transactions of a block announced compactly (see `compact`).
    BlockTxn {
        /// The block.
        block: Hash256,
        /// Indexes in the block, increasing; at most `compact::MAX_BLOCKTXN_INDEXES`.
        indexes: Vec<u32>,
    },
}

/// A request as the codec carries it. libp2p reports a request that fails to *read* only
/// to the codec, never to the behaviour, so the codec hands malformed frames up as a value
/// and the event loop can answer them and penalise the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestFrame {
    /// A well-formed request.
    Request(SyncRequest),
    /// Read side: a frame over the limit or not decodable, with the reason.
    Malformed(String),
    /// Write side, testing only: these bytes verbatim (length prefix included), as a
    /// hostile peer would send them.
    Raw(Vec<u8>),
}

/// A sync response. Every request gets one, an `Error` if need be.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SyncResponse {
    /// The responder's tip.
    Status {
        /// Tip height.
        height: u32,
        /// Cumulative work, big-endian.
        work: [u8; 32],
        /// Tip hash.
        tip: Hash256,
    },
    /// Up to [`MAX_HEADERS`] headers, parents first.
    Headers(Vec<BlockHeader>),
    /// One entry per served hash, in request order (a prefix if the budget ran out):
    /// canonical block bytes, or empty if the block is unknown.
    Blocks(Vec<Vec<u8>>),
    /// The request was refused (rate limit, malformed, busy).
    Error(String),
    /// `blocktxn`: the transactions asked for, in request order.
    BlockTxn {
        /// The block.
        block: Hash256,
        /// Its transactions at the requested indexes.
        txs: Vec<Transaction>,
    },
}

/// The codec: length-prefixed canonical encoding with separate limits for requests and
/// responses.
#[derive(Clone, Debug)]
pub struct SyncCodec {
    /// Largest response frame accepted.
    pub max_response: usize,
}

impl SyncCodec {
    /// A codec accepting responses up to a full blocks answer of max-size blocks.
    pub fn new(max_block_size: usize) -> SyncCodec {
        SyncCodec {
            // The server may exceed the budget by one block; headers answers are ~162 KB.
            max_response: BLOCKS_RESPONSE_BUDGET + max_block_size + 64 * 1024,
        }
    }
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn decode<T: Decode<()>>(bytes: &[u8], max: usize) -> io::Result<T> {
    encoding::decode(bytes, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = RequestFrame;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RequestFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = match read_frame(io, MAX_REQUEST_BYTES).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(RequestFrame::Malformed(e.to_string())),
            Err(e) => return Err(e),
        };
        Ok(match decode(&frame, MAX_REQUEST_BYTES) {
            Ok(req) => RequestFrame::Request(req),
            Err(e) => RequestFrame::Malformed(e.to_string()),
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_frame(io, self.max_response).await?;
        decode(&bytes, self.max_response)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: RequestFrame) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            RequestFrame::Request(r) => write_frame(io, &encoding::encode(&r)).await,
            RequestFrame::Raw(bytes) => {
                io.write_all(&bytes).await?;
                io.close().await
            }
            RequestFrame::Malformed(reason) => Err(io::Error::new(io::ErrorKind::InvalidInput, reason)),
        }
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: SyncResponse) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encoding::encode(&res)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_frames_are_refused_before_reading() {
        let mut codec = SyncCodec::new(1000);
        let proto = StreamProtocol::new("/t/1");
        let req = SyncRequest::Headers {
            locator: vec![Hash256::ZERO; 3],
        };
        let mut buf = futures::io::Cursor::new(Vec::new());
        codec
            .write_request(&proto, &mut buf, RequestFrame::Request(req.clone()))
            .await
            .expect("write");
        let mut rd = futures::io::Cursor::new(buf.into_inner());
        assert_eq!(
            codec.read_request(&proto, &mut rd).await.expect("read"),
            RequestFrame::Request(req)
        );

        let mut huge = (u32::MAX).to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 8]);
        let mut rd = futures::io::Cursor::new(huge);
        let got = codec.read_request(&proto, &mut rd).await.expect("read");
        assert!(
            matches!(got, RequestFrame::Malformed(ref m) if m.contains("exceeds")),
            "{got:?}"
        );

        let mut garbage = 3u32.to_le_bytes().to_vec();
        garbage.extend_from_slice(&[9, 9, 9]);
        let mut rd = futures::io::Cursor::new(garbage);
        let got = codec.read_request(&proto, &mut rd).await.expect("read");
        assert!(matches!(got, RequestFrame::Malformed(_)), "{got:?}");
    }
}
