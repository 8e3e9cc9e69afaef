//! Yamux as a libp2p stream muxer, with receive windows no larger than the frames it reads.
//!
//! rust-yamux refuses any data frame whose body exceeds 1 MiB (`FrameTooLarge`, closing the
//! connection), yet with its default configuration it auto-tunes a stream's receive window
//! up to 1 GiB per connection. Other implementations (js-libp2p, go-yamux) send data frames
//! as large as the window they were granted, so a peer relaying a 2 MB block was cut off.
//! `libp2p-yamux` offers no way to bound the window, so this thin adapter builds the
//! `yamux` connection itself with the connection-wide window chosen so that no stream's
//! window can ever exceed [`MAX_FRAME_BODY`]: a peer that honours the windows we grant never
//! sends a frame we refuse, and one that sends a larger frame broke the protocol (the event
//! loop bans it like any over-size message, see [`is_oversize_frame`]).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::{io, iter};

use futures::future;
use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};

/// Largest data frame body rust-yamux reads (its `MAX_FRAME_BODY_LEN`).
pub const MAX_FRAME_BODY: usize = 1 << 20;
/// Most concurrent streams per connection (yamux's default).
pub const MAX_STREAMS: usize = 512;
/// Every stream starts with yamux's default window.
const BASE_WINDOW: usize = yamux::DEFAULT_CREDIT as usize;
/// Inbound streams buffered while nobody polls for them (yamux's ACK backlog).
const MAX_BUFFERED_INBOUND: usize = 256;

/// The connection-wide receive window: every stream's base window plus room for one stream
/// to grow to [`MAX_FRAME_BODY`]. Yamux grows a stream's window only out of what is left of
/// this beyond the base windows, so no stream's window (the most a peer may send in one
/// frame) can pass `MAX_FRAME_BODY`.
pub const fn connection_window() -> usize {
    MAX_STREAMS * BASE_WINDOW + (MAX_FRAME_BODY - BASE_WINDOW)
}

/// The yamux configuration Lode uses on every connection.
pub fn yamux_config() -> yamux::Config {
    let mut c = yamux::Config::default();
    c.set_max_num_streams(MAX_STREAMS);
    c.set_max_connection_receive_window(Some(connection_window()));
    c
}

/// The upgrade: `/yamux/1.0.0` with [`yamux_config`].
#[derive(Clone, Debug, Default)]
pub struct Config;

/// A yamux connection as a libp2p [`StreamMuxer`].
#[derive(Debug)]
pub struct Muxer<C> {
    connection: yamux::Connection<C>,
    /// Inbound streams that arrived while the swarm polled for other progress.
    inbound: VecDeque<yamux::Stream>,
    waker: Option<Waker>,
}

/// A yamux connection failure.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct MuxerError(yamux::ConnectionError);

impl MuxerError {
    /// True if the peer sent a data frame over [`MAX_FRAME_BODY`].
    pub fn is_oversize_frame(&self) -> bool {
        matches!(
            self.0,
            yamux::ConnectionError::Decode(yamux::FrameDecodeError::FrameTooLarge(_))
        )
    }
}

/// True if a connection closed because the peer sent an over-size yamux frame (the swarm
/// hands muxer errors over wrapped in `io::Error`).
pub fn is_oversize_frame(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<MuxerError>())
        .is_some_and(MuxerError::is_oversize_frame)
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<yamux::Stream, MuxerError>> {
        match self.connection.poll_next_inbound(cx) {
            Poll::Ready(Some(r)) => Poll::Ready(r.map_err(MuxerError)),
            Poll::Ready(None) => Poll::Ready(Err(MuxerError(yamux::ConnectionError::Closed))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<C> StreamMuxer for Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Substream = yamux::Stream;
    type Error = MuxerError;

    fn poll_inbound(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Self::Substream, Self::Error>> {
        if let Some(s) = self.inbound.pop_front() {
            return Poll::Ready(Ok(s));
        }
        if let Poll::Ready(r) = self.poll_inner(cx) {
            return Poll::Ready(r);
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_outbound(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Self::Substream, Self::Error>> {
        self.connection.poll_new_outbound(cx).map_err(MuxerError)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.connection.poll_close(cx).map_err(MuxerError)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        let stream = match this.poll_inner(cx) {
            Poll::Ready(r) => r?,
            Poll::Pending => return Poll::Pending,
        };
        if this.inbound.len() >= MAX_BUFFERED_INBOUND {
            tracing::debug!("inbound stream backlog full; dropping a stream");
            drop(stream);
        } else {
            this.inbound.push_back(stream);
            if let Some(w) = this.waker.take() {
                w.wake();
            }
        }
        // More may be ready: let the swarm poll again.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl UpgradeInfo for Config {
    type Info = &'static str;
    type InfoIter = iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        iter::once("/yamux/1.0.0")
    }
}

impl<C> InboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(io, yamux::Mode::Server)))
    }
}

impl<C> OutboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(io, yamux::Mode::Client)))
    }
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    fn new(io: C, mode: yamux::Mode) -> Muxer<C> {
        Muxer {
            connection: yamux::Connection::new(io, yamux_config(), mode),
            inbound: VecDeque::new(),
            waker: None,
        }
    }
}

#[cfg(test)]
mod tests {
    //! A foreign yamux peer written from the spec (12-byte frame headers), sending data
    //! frames as large as the window it was granted, as js-libp2p and go-yamux do.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use futures::AsyncReadExt;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::sync::{mpsc, Mutex};
    use tokio_util::compat::TokioAsyncReadCompatExt;

    use super::*;

    const DATA: u8 = 0;
    const WINDOW_UPDATE: u8 = 1;
    const PING: u8 = 2;
    const SYN: u16 = 1;
    const ACK: u16 = 2;

    fn header(kind: u8, flags: u16, stream: u32, len: u32) -> [u8; 12] {
        let mut h = [0u8; 12];
        h[1] = kind;
        h[2..4].copy_from_slice(&flags.to_be_bytes());
        h[4..8].copy_from_slice(&stream.to_be_bytes());
        h[8..12].copy_from_slice(&len.to_be_bytes());
        h
    }

    /// Sends `total` bytes on one stream to a yamux server built with `config`, each frame as
    /// large as the credit granted; answers pings 200 ms late (a real link's round trip,
    /// which is what makes yamux grow windows). Returns what the server read, or its error,
    /// and the largest frame sent.
    async fn foreign_send(config: yamux::Config, total: usize) -> (Result<usize, String>, usize) {
        let (ours, theirs) = tokio::io::duplex(4 << 20);
        // The server: accept one stream and read it to the end.
        let server = tokio::spawn(async move {
            let mut conn = yamux::Connection::new(ours.compat(), config, yamux::Mode::Server);
            let stream = future::poll_fn(|cx| conn.poll_next_inbound(cx)).await;
            let mut stream = match stream {
                Some(Ok(s)) => s,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("closed".to_string()),
            };
            // Keep driving the connection while reading the stream.
            let driver = tokio::spawn(async move {
                loop {
                    match future::poll_fn(|cx| conn.poll_next_inbound(cx)).await {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return e.to_string(),
                        None => return "closed".to_string(),
                    }
                }
            });
            let mut driver = driver;
            let mut buf = vec![0u8; 64 << 10];
            let mut read = 0;
            loop {
                tokio::select! {
                    n = stream.read(&mut buf) => match n {
                        // The stream ends early when the connection fails: say why.
                        Ok(0) => {
                            return match tokio::time::timeout(Duration::from_secs(10), &mut driver).await {
                                Ok(e) => Err(e.unwrap_or_else(|j| j.to_string())),
                                Err(_) => Err(format!("end of stream after {read} bytes")),
                            }
                        }
                        Ok(n) => {
                            read += n;
                            if read >= total {
                                return Ok(read);
                            }
                        }
                        Err(e) => return Err(e.to_string()),
                    },
                    // The connection failed (the driver only ends then).
                    e = &mut driver => return Err(e.unwrap_or_else(|j| j.to_string())),
                    _ = tokio::time::sleep(Duration::from_secs(30)) => return Err("stalled".into()),
                }
            }
        });

        let (mut rd, wr) = tokio::io::split(theirs);
        let wr = Arc::new(Mutex::new(wr));
        let credit = Arc::new(AtomicUsize::new(BASE_WINDOW));
        let (credit_tx, mut credit_rx) = mpsc::unbounded_channel::<()>();
        let (ponged_tx, mut ponged_rx) = mpsc::unbounded_channel::<()>();
        // Reader: window updates add credit; pings are answered late.
        let reader = {
            let wr = wr.clone();
            let credit = credit.clone();
            tokio::spawn(async move {
                let mut h = [0u8; 12];
                while rd.read_exact(&mut h).await.is_ok() {
                    let kind = h[1];
                    let flags = u16::from_be_bytes([h[2], h[3]]);
                    let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
                    match kind {
                        WINDOW_UPDATE => {
                            credit.fetch_add(len as usize, Ordering::SeqCst);
                            let _ = credit_tx.send(());
                        }
                        PING if flags & SYN != 0 => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let _ = wr.lock().await.write_all(&header(PING, ACK, 0, len)).await;
                            let _ = ponged_tx.send(());
                        }
                        DATA => {
                            let mut body = vec![0u8; len as usize];
                            if rd.read_exact(&mut body).await.is_err() {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            })
        };
        // Writer: once the round trip is known, send with all the credit in each frame.
        let _ = tokio::time::timeout(Duration::from_secs(10), ponged_rx.recv()).await;
        let mut sent = 0;
        let mut largest = 0;
        let mut first = true;
        while sent < total {
            let n = credit.swap(0, Ordering::SeqCst).min(total - sent);
            if n == 0 {
                // No credit within 10 s, or the connection is gone: stop sending.
                if !matches!(
                    tokio::time::timeout(Duration::from_secs(10), credit_rx.recv()).await,
                    Ok(Some(()))
                ) {
                    break;
                }
                continue;
            }
            let flags = if first { SYN } else { 0 };
            first = false;
            let mut w = wr.lock().await;
            if w.write_all(&header(DATA, flags, 1, n as u32)).await.is_err() {
                break;
            }
            if w.write_all(&vec![7u8; n]).await.is_err() {
                break;
            }
            sent += n;
            largest = largest.max(n);
        }
        let result = match tokio::time::timeout(Duration::from_secs(30), server).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("server timed out".into()),
        };
        reader.abort();
        (result, largest)
    }

    #[tokio::test]
    async fn a_peer_sending_frames_as_large_as_our_window_keeps_its_connection() {
        let total = 8 << 20;
        let (ours, largest) = foreign_send(yamux_config(), total).await;
        assert_eq!(ours, Ok(total), "largest frame {largest}");
        assert!(largest <= MAX_FRAME_BODY, "granted a window of {largest}");
        // The defence matters: yamux's default grants windows past the frames it reads, and
        // the same sender is cut off.
        let (default, largest) = foreign_send(yamux::Config::default(), total).await;
        assert!(largest > MAX_FRAME_BODY, "default config granted only {largest}");
        let err = default.expect_err("default config kept the connection");
        assert!(err.contains("too large"), "{err}");
    }
}
