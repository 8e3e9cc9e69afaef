//! Newline-delimited lines with a length cap checked before anything is kept: a line
//! without a newline past the cap is an error, so a flood cannot grow memory.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Why no line could be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The line grew past the cap without a newline.
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    /// The line is not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
    /// The socket failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads capped lines. Partial input lives in the reader, so [`LineReader::next_line`] is
/// cancel-safe (usable in `select!`).
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Lines of at most `max` bytes (newline included) from `inner`.
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: Vec::new(),
            max,
        }
    }

    /// The next line without its newline (and a trailing `\r`); `None` at end of input.
    /// Empty lines are skipped.
    pub async fn next_line(&mut self) -> Result<Option<String>, CodecError> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(None);
            }
            let (take, complete) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if self.buf.len() + take > self.max {
                return Err(CodecError::TooLong(self.max));
            }
            self.buf.extend_from_slice(&available[..take]);
            self.inner.consume(take);
            if complete {
                let mut line = std::mem::take(&mut self.buf);
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return String::from_utf8(line).map(Some).map_err(|_| CodecError::NotUtf8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_and_capped() {
        let data: &[u8] = b"{\"a\":1}\r\n\n{\"b\":2}\nxxxxxxxxxxxxxxxxxxxx";
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(4, data), 16);
        assert_eq!(r.next_line().await.expect("ok").as_deref(), Some("{\"a\":1}"));
        assert_eq!(r.next_line().await.expect("ok").as_deref(), Some("{\"b\":2}"));
        assert!(matches!(r.next_line().await, Err(CodecError::TooLong(16))));
    }

    #[tokio::test]
    async fn end_of_input_is_none() {
        let data: &[u8] = b"";
        let mut r = LineReader::new(tokio::io::BufReader::new(data), 16);
        assert!(r.next_line().await.expect("ok").is_none());
    }
}
