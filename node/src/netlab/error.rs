//! What can go wrong building or driving a lab.

/// A lab error: one line naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlabError {
    /// The process is not root (namespaces, bridges and netfilter need it).
    #[error("network namespaces need root (running as uid {0})")]
    NotRoot(u32),
    /// A tool the lab runs failed.
    #[error("`{cmd}` failed: {reason}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its first line of stderr, or why it could not start.
        reason: String,
    },
    /// A profile or link description did not parse.
    #[error("{0}")]
    Profile(String),
    /// A host index outside the lab.
    #[error("no host {0} in this lab")]
    NoHost(usize),
    /// Reading or writing a file (lock, log).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Every lab slot is held by a running lab.
    #[error("all {0} lab slots are in use")]
    NoSlot(u8),
    /// The NFQUEUE delayer failed.
    #[error("delayer: {0}")]
    Delayer(String),
}
