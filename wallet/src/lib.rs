//! lode-wallet (filled by its issue).
