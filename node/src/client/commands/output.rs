//! The output layer of the client commands: the [`Report`] each command produces, number
//! formatting, aligned key/value lists and tables, and the one place that writes results to
//! stdout.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};

use lode_chain::COIN;
use serde_json::Value;

/// What a command found: a JSON document for `--json` and text for people.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The raw result (printed with `--json`).
    pub json: Value,
    /// The human rendering (printed otherwise), ending without a newline.
    pub human: String,
    /// Set when the result itself is a failure: printed, then the command exits non-zero
    /// with this message.
    pub failure: Option<String>,
}

impl Report {
    /// A successful report.
    pub fn new(json: Value, human: String) -> Report {
        Report {
            json,
            human,
            failure: None,
        }
    }
}

/// Prints a report: its JSON (one document, pretty) with `--json`, else its text.
pub fn emit(report: &Report, json: bool) {
    let text = if json {
        serde_json::to_string_pretty(&report.json).unwrap_or_else(|_| report.json.to_string())
    } else {
        report.human.clone()
    };
    // The command output layer is the one place results reach stdout. A closed pipe
    // (`lode chain info | head -1`) is not an error worth a message.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Base units as coins with all 8 decimals: `12.50000000`.
pub fn coins(units: u64) -> String {
    format!("{}.{:08}", units / COIN, units % COIN)
}

/// A signed amount of base units as coins with 8 decimals and a sign: `+12.50000000`,
/// `-0.00001000`.
pub fn signed_coins(units: i64) -> String {
    let sign = if units < 0 { '-' } else { '+' };
    format!("{sign}{}", coins(units.unsigned_abs()))
}

/// Coins and the exact base units: `12.50000000 coins (1250000000 units)`.
pub fn coins_exact(units: u64) -> String {
    format!("{} coins ({units} units)", coins(units))
}

/// A JSON value as plain text: strings without quotes, null as `-`.
pub fn plain(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Key/value lines with the values aligned.
#[derive(Debug, Default)]
pub struct Fields {
    rows: Vec<(String, String)>,
}

impl Fields {
    /// An empty list.
    pub fn new() -> Fields {
        Fields::default()
    }

    /// Adds a line.
    pub fn add(&mut self, key: &str, value: impl Into<String>) -> &mut Fields {
        self.rows.push((key.to_string(), value.into()));
        self
    }

    /// Adds `key` with the JSON field `name` of `obj` as plain text, when present.
    pub fn add_json(&mut self, key: &str, obj: &Value, name: &str) -> &mut Fields {
        if let Some(v) = obj.get(name) {
            self.add(key, plain(v));
        }
        self
    }

    /// The lines, without a trailing newline.
    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        let mut s = String::new();
        for (i, (k, v)) in self.rows.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            let _ = write!(s, "{k:<width$}  {v}");
        }
        s
    }
}

/// A table with a header row; columns are left-aligned except those marked numeric.
#[derive(Debug)]
pub struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns; a header starting with `>` is right-aligned (the `>` is
    /// not shown).
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.trim_start_matches('>').to_string()).collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra ones dropped).
    pub fn row(&mut self, cells: Vec<String>) -> &mut Table {
        self.rows.push(cells);
        self
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, without a trailing newline; trailing spaces trimmed.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let cell = |row: &Vec<String>, i: usize| row.get(i).cloned().unwrap_or_default();
        let widths: Vec<usize> = (0..n)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| cell(r, i).chars().count())
                    .chain([self.headers[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<String>| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate().take(n) {
                if i > 0 {
                    s.push_str("  ");
                }
                let w = widths[i];
                if self.right[i] {
                    let _ = write!(s, "{c:>w$}");
                } else {
                    let _ = write!(s, "{c:<w$}");
                }
            }
            s.trim_end().to_string()
        };
        let mut out = vec![line(self.headers.clone())];
        out.extend(self.rows.iter().map(|r| line((0..n).map(|i| cell(r, i)).collect())));
        out.join("\n")
    }
}

/// A warning for the user, on stderr (never mixed into the result on stdout).
pub fn warn(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
}

/// Progress of long work on stderr: an indicatif spinner when stderr is a terminal, else
/// a plain line each time the message changes.
#[derive(Debug)]
pub struct Status {
    spinner: Option<indicatif::ProgressBar>,
    last: String,
}

impl Status {
    /// Starts showing progress.
    pub fn start() -> Status {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let s = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                s.set_style(style);
            }
            s.enable_steady_tick(std::time::Duration::from_millis(120));
            s
        });
        Status {
            spinner,
            last: String::new(),
        }
    }

    /// Shows `message` (a plain line only when it differs from the last one).
    pub fn update(&mut self, message: &str) {
        if message == self.last {
            return;
        }
        self.last = message.to_string();
        match &self.spinner {
            Some(s) => s.set_message(message.to_string()),
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{message}");
            }
        }
    }

    /// Stops the spinner, clearing its line.
    pub fn finish(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coins_keep_eight_decimals() {
        assert_eq!(coins(1_250_000_000), "12.50000000");
        assert_eq!(coins(1), "0.00000001");
        assert_eq!(coins(0), "0.00000000");
        assert_eq!(coins(u64::MAX), "184467440737.09551615");
        assert_eq!(signed_coins(-1000), "-0.00001000");
        assert_eq!(signed_coins(5 * COIN as i64), "+5.00000000");
        assert_eq!(signed_coins(i64::MIN), "-92233720368.54775808");
        assert_eq!(coins_exact(150), "0.00000150 coins (150 units)");
    }

    #[test]
    fn fields_and_tables_align() {
        let mut f = Fields::new();
        f.add("a", "1").add("longer", "2");
        assert_eq!(f.render(), "a       1\nlonger  2");
        let mut t = Table::new(&["NAME", ">N"]);
        t.row(vec!["x".into(), "100".into()]).row(vec!["yy".into()]);
        assert_eq!(t.render(), "NAME    N\nx     100\nyy");
    }
}
