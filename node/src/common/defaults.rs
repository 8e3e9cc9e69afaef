//! File names and defaults a node publishes and its clients read: one definition for both.

/// The file a node writes its RPC base URL to, in its data dir (with a final newline, once
/// the port serves).
pub const RPC_URL_FILE: &str = "rpc_url";

/// The file a node writes its RPC token (cookie) to, in its data dir.
pub const COOKIE_FILE: &str = ".cookie";

/// Where a node's RPC server listens when `--rpc-listen` is not given.
pub const DEFAULT_RPC_ADDR: &str = "127.0.0.1:18443";

/// [`DEFAULT_RPC_ADDR`] as the URL a client uses.
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:18443";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_is_the_default_address() {
        assert_eq!(DEFAULT_RPC_URL, format!("http://{DEFAULT_RPC_ADDR}"));
    }
}
