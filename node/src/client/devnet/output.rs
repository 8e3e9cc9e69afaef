//! The output layer of `lode devnet`: the only code that writes to the terminal.
//!
//! Results (tables, the ready line, the status line) go to stdout; progress and the tails of
//! failed nodes' logs go to stderr. Writes use `writeln!` on a locked handle and ignore
//! errors, so a closed pipe (`lode devnet status | head -1`) never panics as `println!` would.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use lode_chain::Amount;

use super::file::DevnetNode;
use super::probe::Probe;

/// How often the status line is printed when stdout is not a terminal.
const PLAIN_STATUS_EVERY: Duration = Duration::from_secs(10);

fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{text}");
    let _ = o.flush();
}

fn err(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A plain informational line on stdout (`stopping…`, `stopped`, `partitioned …`).
pub fn line(text: &str) {
    out(text);
}

/// A warning line on stderr.
pub fn warn(text: &str) {
    err(text);
}

/// `…` and the last 8 hex digits: enough to tell tips apart (the first digits are the
/// proof of work's zeros).
pub fn short_hash(hash: &str) -> String {
    if hash.is_empty() {
        return "-".into();
    }
    let start = hash.len().saturating_sub(8);
    format!("…{}", hash.get(start..).unwrap_or(hash))
}

/// Hashes per second with a unit.
pub fn hash_rate(h: f64) -> String {
    match h {
        h if h >= 1e9 => format!("{:.2} GH/s", h / 1e9),
        h if h >= 1e6 => format!("{:.2} MH/s", h / 1e6),
        h if h >= 1e3 => format!("{:.1} kH/s", h / 1e3),
        h => format!("{h:.0} H/s"),
    }
}

/// Start-up progress: a bar on a terminal, a plain line whenever the summary changes
/// otherwise.
pub struct StartProgress {
    bar: Option<ProgressBar>,
    last: String,
}

impl StartProgress {
    /// Progress towards `nodes` ready nodes.
    pub fn new(nodes: usize) -> StartProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(nodes as u64);
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} starting devnet {bar:30} {pos}/{len} nodes ready  {msg}")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        StartProgress {
            bar,
            last: String::new(),
        }
    }

    /// `ready` nodes healthy; `detail` says what is still awaited.
    pub fn update(&mut self, ready: usize, detail: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(ready as u64);
                bar.set_message(detail.to_string());
            }
            None => {
                let summary = format!("starting devnet: {ready} nodes ready; {detail}");
                if summary != self.last {
                    err(&summary);
                    self.last = summary;
                }
            }
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The ready line (its elapsed time is what the start-up benchmark reads).
pub fn ready(nodes: usize, height: u64, tip: &str, elapsed: Duration) {
    out(&format!(
        "devnet ready: {nodes} nodes healthy at height {height} tip {} in {:.2} s",
        short_hash(tip),
        elapsed.as_secs_f64()
    ));
}

/// The node table: name, state, RPC URL, P2P address, wallet address, balance.
pub fn table(nodes: &[(DevnetNode, Probe)]) {
    let mut rows = vec![[
        "NAME".to_string(),
        "STATE".into(),
        "HEIGHT".into(),
        "RPC".into(),
        "P2P".into(),
        "WALLET".into(),
        "BALANCE".into(),
        "STRATUM".into(),
    ]];
    for (node, p) in nodes {
        let state = match (p.is_down(), p.ready) {
            (true, _) => "down",
            (false, true) => {
                if node.mining {
                    "mining"
                } else {
                    "up"
                }
            }
            (false, false) => "starting",
        };
        rows.push([
            node.name.clone(),
            state.into(),
            if p.is_down() { "-".into() } else { p.height.to_string() },
            node.rpc.clone(),
            node.p2p.clone(),
            p.address.clone().unwrap_or_else(|| "-".into()),
            p.balance.map_or_else(|| "-".into(), |b| Amount(b).to_string()),
            node.stratum.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    out(text.trim_end());
}

/// One status line: height and short tip per node (once when all agree), peers per node,
/// mempool, total hash rate.
pub fn status_text(nodes: &[(DevnetNode, Probe)]) -> String {
    let first_tip = nodes.first().map(|(_, p)| p.tip.as_str()).unwrap_or_default();
    let agree = !first_tip.is_empty() && nodes.iter().all(|(_, p)| !p.is_down() && p.tip == first_tip);
    let chain = if agree {
        let height = nodes.first().map_or(0, |(_, p)| p.height);
        let peers: Vec<String> = nodes.iter().map(|(_, p)| p.peers.len().to_string()).collect();
        format!(
            "height {height} {} on all {} nodes | peers {}",
            short_hash(first_tip),
            nodes.len(),
            peers.join(" ")
        )
    } else {
        let per_node: Vec<String> = nodes
            .iter()
            .map(|(n, p)| {
                if p.is_down() {
                    format!("{} down", n.name)
                } else {
                    format!("{} {} {} {}p", n.name, p.height, short_hash(&p.tip), p.peers.len())
                }
            })
            .collect();
        per_node.join(" | ")
    };
    let mempool = nodes.iter().map(|(_, p)| p.mempool).max().unwrap_or(0);
    let rate: f64 = nodes.iter().map(|(_, p)| p.hashps).sum();
    format!("{chain} | mempool {mempool} | {}", hash_rate(rate))
}

/// The live status line: rewritten in place every second on a terminal, a plain line
/// every [`PLAIN_STATUS_EVERY`] otherwise.
pub struct StatusLine {
    tty: bool,
    last: Option<Instant>,
}

impl Default for StatusLine {
    fn default() -> Self {
        StatusLine::new()
    }
}

impl StatusLine {
    /// A status line on stdout.
    pub fn new() -> StatusLine {
        StatusLine {
            tty: std::io::stdout().is_terminal(),
            last: None,
        }
    }

    /// Shows `nodes`' state.
    pub fn show(&mut self, nodes: &[(DevnetNode, Probe)]) {
        let text = status_text(nodes);
        if self.tty {
            let mut o = std::io::stdout().lock();
            let _ = write!(o, "\r\x1b[2K{text}");
            let _ = o.flush();
        } else if self.last.is_none_or(|t| t.elapsed() >= PLAIN_STATUS_EVERY) {
            self.last = Some(Instant::now());
            out(&text);
        }
    }

    /// Ends the line so what follows starts on a fresh one.
    pub fn finish(&self) {
        if self.tty {
            out("");
        }
    }
}

/// Prints the last `lines` lines of a node's log to stderr, after a header.
pub fn log_tail(name: &str, log: &Path, lines: usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    err(&format!(
        "--- last {} lines of {name}'s log ({}) ---",
        tail.len(),
        log.display()
    ));
    for l in tail {
        err(l);
    }
    err("---");
}

/// Asks a yes/no question on the terminal; only `y`/`yes` is yes.
pub fn confirm(question: &str) -> bool {
    {
        let mut o = std::io::stdout().lock();
        let _ = write!(o, "{question} [y/N] ");
        let _ = o.flush();
    }
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize, height: u64, tip: &str) -> (DevnetNode, Probe) {
        let node = DevnetNode {
            name: format!("node{i}"),
            rpc: String::new(),
            p2p: String::new(),
            data_dir: "/d".into(),
            cookie: "/d/.cookie".into(),
            mining: false,
            pid: None,
            wallet_account: None,
            stratum: None,
        };
        let probe = Probe {
            ready: true,
            height,
            tip: tip.into(),
            peers: vec!["a".into()],
            hashps: 1000.0,
            ..Probe::default()
        };
        (node, probe)
    }

    #[test]
    fn status_line_is_compact_when_all_agree_and_per_node_otherwise() {
        let same = status_text(&[row(0, 7, "00aa11223344"), row(1, 7, "00aa11223344")]);
        assert_eq!(
            same,
            "height 7 …11223344 on all 2 nodes | peers 1 1 | mempool 0 | 2.0 kH/s"
        );
        let split = status_text(&[row(0, 7, "00aa11223344"), row(1, 6, "00bb55667788")]);
        assert!(
            split.starts_with("node0 7 …11223344 1p | node1 6 …55667788 1p |"),
            "{split}"
        );
    }

    #[test]
    fn short_forms() {
        assert_eq!(short_hash("0000000000abcdef12345678"), "…12345678");
        assert_eq!(short_hash(""), "-");
        assert_eq!(hash_rate(1_500_000.0), "1.50 MH/s");
        assert_eq!(hash_rate(12.0), "12 H/s");
    }
}
