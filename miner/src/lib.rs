//! lode-miner (filled by its issue).
