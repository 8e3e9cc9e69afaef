//! End-to-end test helpers (filled by the node issues).
