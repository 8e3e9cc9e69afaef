//! `lode wallet`: the node's built-in wallet — addresses, balances, history, sending, and
//! the mnemonic.

use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};

use super::output::{coins, coins_exact, plain, signed_coins, Fields, Status, Table};
use super::wait::{self, WaitOptions};
use super::{
    field, input, output, signed_units, str_field, u64_field, units_field, ClientArgs, CommandError, Node, Report,
};

/// `lode wallet [TARGET] COMMAND`.
#[derive(Debug, clap::Args)]
pub struct WalletArgs {
    /// Node and output flags.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: WalletCommand,
}

/// The wallet subcommands.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// A fresh receive address.
    Address,
    /// Spendable, immature (with the heights they mature at), reserved and pending coins.
    Balance,
    /// The wallet's transactions, newest first.
    History {
        /// How many transactions.
        #[arg(long, default_value_t = 10, value_name = "N")]
        count: u32,
        /// Skip this many of the newest.
        #[arg(long, default_value_t = 0, value_name = "N")]
        skip: u32,
    },
    /// Pay AMOUNT coins to ADDRESS.
    Send(SendArgs),
    /// Show the wallet's secret mnemonic (admin scope).
    Mnemonic,
    /// Protect the wallet's keys with a passphrase (asked twice on a terminal; then the
    /// wallet is locked and refuses to sign until `unlock`).
    Encrypt(PassphraseArgs),
    /// Let the wallet sign for a while.
    Unlock {
        /// Passphrase source.
        #[command(flatten)]
        pass: PassphraseArgs,
        /// Seconds until it locks itself again.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        timeout: u64,
    },
    /// Lock the wallet now.
    Lock,
}

/// Where a passphrase comes from: never the command line (other users see it in `ps`).
#[derive(Debug, clap::Args)]
pub struct PassphraseArgs {
    /// Read the passphrase from the first line of this file instead of asking.
    #[arg(long, value_name = "PATH")]
    pub passphrase_file: Option<std::path::PathBuf>,
}

/// Longest passphrase read (bytes), as the node accepts.
const MAX_PASSPHRASE: usize = 1024;

/// Reads the passphrase: from the file, else a no-echo prompt on the terminal (twice when
/// `confirm`), else one line of stdin (scripts).
fn read_passphrase(args: &PassphraseArgs, confirm: bool) -> Result<zeroize::Zeroizing<String>, CommandError> {
    use std::io::IsTerminal;
    let bad = |reason: String| CommandError::BadInput {
        what: "passphrase",
        input: String::new(),
        reason,
    };
    let text = if let Some(path) = &args.passphrase_file {
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        if meta.len() > 64 * 1024 {
            return Err(bad(format!("{} is not a passphrase file (too large)", path.display())));
        }
        let all = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?,
        );
        zeroize::Zeroizing::new(all.lines().next().unwrap_or_default().to_string())
    } else if std::io::stdin().is_terminal() {
        let first = zeroize::Zeroizing::new(
            rpassword::prompt_password("passphrase: ").map_err(|e| bad(format!("cannot read it: {e}")))?,
        );
        if confirm {
            let again = zeroize::Zeroizing::new(
                rpassword::prompt_password("again: ").map_err(|e| bad(format!("cannot read it: {e}")))?,
            );
            if *again != *first {
                return Err(bad("the two entries differ".into()));
            }
        }
        first
    } else {
        let mut line = zeroize::Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| bad(format!("cannot read stdin: {e}")))?;
        zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())
    };
    if text.is_empty() {
        return Err(bad("empty".into()));
    }
    if text.len() > MAX_PASSPHRASE {
        return Err(bad(format!("longer than {MAX_PASSPHRASE} bytes")));
    }
    Ok(text)
}

/// Flags of `lode wallet send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The address to pay.
    pub address: String,
    /// Decimal coins, at most 8 decimals (e.g. 12.5).
    #[arg(allow_hyphen_values = true)]
    pub amount: String,
    /// Fee rate in base units per byte (default: the node's estimate).
    #[arg(long, value_name = "UNITS_PER_BYTE")]
    pub fee_rate: Option<u64>,
    /// Wait until the transaction is confirmed, showing progress.
    #[arg(long)]
    pub wait: bool,
    /// Confirmations to wait for (implies --wait).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub confirmations: Option<u32>,
    /// Give up waiting after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
}

/// Runs `lode wallet`.
pub fn run(args: WalletArgs) -> Result<(), CommandError> {
    let command = args.command;
    super::run(&args.client, move |node| async move { execute(&node, command).await })
}

/// Runs one wallet command against `node`.
pub async fn execute(node: &Node, command: WalletCommand) -> Result<Report, CommandError> {
    match command {
        WalletCommand::Address => {
            let v = node.call("getnewaddress", json!([])).await?;
            Ok(Report::new(v.clone(), plain(&v)))
        }
        WalletCommand::Balance => {
            let v = node.call("getbalances", json!([])).await?;
            Ok(Report::new(v.clone(), balance_text(&v)?))
        }
        WalletCommand::History { count, skip } => {
            let v = node.call("listtransactions", json!(["*", count, skip])).await?;
            Ok(Report::new(v.clone(), history_text(&v)?))
        }
        WalletCommand::Send(args) => send(node, args).await,
        WalletCommand::Mnemonic => {
            let v = node.call("dumpmnemonic", json!([])).await?;
            let words = str_field("dumpmnemonic", &v, "mnemonic")?;
            output::warn("anyone who sees these words can spend this wallet's coins; keep them offline");
            let mut f = Fields::new();
            f.add("mnemonic", words).add_json("account", &v, "account");
            Ok(Report::new(v.clone(), f.render()))
        }
        WalletCommand::Encrypt(pass) => {
            let pass = read_passphrase(&pass, true)?;
            let v = node.call("encryptwallet", json!([pass.as_str()])).await?;
            output::warn("without this passphrase the keys cannot be used; the mnemonic still restores the wallet");
            Ok(Report::new(v.clone(), plain(&v)))
        }
        WalletCommand::Unlock { pass, timeout } => {
            let pass = read_passphrase(&pass, false)?;
            let v = node.call("walletpassphrase", json!([pass.as_str(), timeout])).await?;
            Ok(Report::new(v, format!("wallet unlocked for {timeout} s")))
        }
        WalletCommand::Lock => {
            let v = node.call("walletlock", json!([])).await?;
            Ok(Report::new(v, "wallet locked".to_string()))
        }
    }
}

fn balance_text(v: &Value) -> Result<String, CommandError> {
    const M: &str = "getbalances";
    let mine = field(M, v, "mine")?;
    let rows = [
        ("spendable", units_field(M, mine, "trusted")?),
        ("immature", units_field(M, mine, "immature")?),
        ("reserved", units_field(M, mine, "lode_reserved")?),
        ("pending incoming", units_field(M, mine, "untrusted_pending")?),
    ];
    // Coins right-aligned so the decimal points line up.
    let width = rows.iter().map(|(_, u)| coins(*u).len()).max().unwrap_or(0);
    let mut f = Fields::new();
    for (key, units) in rows {
        f.add(key, format!("{:>width$} coins ({units} units)", coins(units)));
    }
    let mut text = f.render();
    let coins_list = v
        .get("lode_immature_coins")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !coins_list.is_empty() {
        let mut t = Table::new(&["MATURES AT HEIGHT", ">AMOUNT"]);
        for c in &coins_list {
            t.row(vec![
                plain(c.get("height").unwrap_or(&Value::Null)),
                signed_units(c.get("amount"))
                    .map(|u| coins(u.unsigned_abs()))
                    .unwrap_or_default(),
            ]);
        }
        text.push_str("\n\n");
        text.push_str(&t.render());
    }
    Ok(text)
}

fn history_text(v: &Value) -> Result<String, CommandError> {
    let items = v.as_array().ok_or_else(|| CommandError::Malformed {
        method: "listtransactions".into(),
        reason: "not a list".into(),
    })?;
    if items.is_empty() {
        return Ok("no transactions".into());
    }
    let mut t = Table::new(&["TXID", "CATEGORY", ">AMOUNT", ">FEE", ">HEIGHT", ">CONFIRMATIONS"]);
    // Core lists oldest first; the table shows the newest first. A send's amount is the
    // balance's change (Core's amount plus its negative fee).
    for tx in items.iter().rev() {
        let fee = signed_units(tx.get("fee"));
        let amount = signed_units(tx.get("amount")).map(|a| a.saturating_add(fee.unwrap_or(0)));
        t.row(vec![
            plain(tx.get("txid").unwrap_or(&Value::Null)),
            plain(tx.get("category").unwrap_or(&Value::Null)),
            amount.map(signed_coins).unwrap_or_default(),
            fee.map(|f| coins(f.unsigned_abs())).unwrap_or_default(),
            plain(tx.get("blockheight").unwrap_or(&Value::Null)),
            plain(tx.get("confirmations").unwrap_or(&Value::Null)),
        ]);
    }
    Ok(t.render())
}

async fn send(node: &Node, args: SendArgs) -> Result<Report, CommandError> {
    // Everything that can be checked here is checked before the node is asked.
    let amount = input::amount(&args.amount)?;
    input::address_syntax(&args.address)?;
    let network = match node.known_network() {
        Some(n) => n.to_string(),
        None => {
            let info = node.call("getblockchaininfo", json!([])).await?;
            str_field("getblockchaininfo", &info, "chain")?.to_string()
        }
    };
    input::address_for(&args.address, &network)?;
    // Core's named params: the amount in decimal coins, fee_rate in units (sat) per byte,
    // verbose for the fee and size Lode adds.
    let mut params = json!({
        "address": args.address,
        "amount": crate::common::coins::to_json(amount.units()),
        "verbose": true,
    });
    if let Some(rate) = args.fee_rate {
        params["fee_rate"] = json!(rate);
    }
    const M: &str = "sendtoaddress";
    let mut sent = node.call(M, params).await?;
    let txid = str_field(M, &sent, "txid")?.to_string();
    let mut f = Fields::new();
    f.add("txid", txid.as_str())
        .add("amount", coins_exact(amount.units()))
        .add("fee", coins_exact(units_field(M, &sent, "lode_fee")?))
        .add("size", format!("{} bytes", u64_field(M, &sent, "lode_size")?));
    if args.wait || args.confirmations.is_some() {
        let opts = WaitOptions {
            confirmations: args.confirmations.unwrap_or(1),
            timeout: Duration::from_secs(args.timeout),
            poll: Duration::from_millis(500),
        };
        let mut status = Status::start();
        // The payment is made whatever happens while waiting: its txid and fee are
        // printed in every case, and a failed wait makes the exit status non-zero.
        match wait::until_confirmed(node, &txid, opts, &mut status).await {
            Ok(seen) => {
                let confirmations = field("gettransaction", &seen, "confirmations")?.clone();
                f.add("confirmations", plain(&confirmations))
                    .add_json("block", &seen, "blockhash")
                    .add_json("height", &seen, "blockheight");
                if let Some(obj) = sent.as_object_mut() {
                    for key in ["confirmations", "blockhash", "blockheight"] {
                        if let Some(v) = seen.get(key) {
                            obj.insert(key.into(), v.clone());
                        }
                    }
                }
            }
            Err(e) => {
                let mut report = Report::new(sent, f.render());
                report.failure = Some(e.to_string());
                return Ok(report);
            }
        }
    }
    Ok(Report::new(sent, f.render()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_shows_coins_units_and_maturity_heights() {
        // Core's getbalances (decimal coins) with Lode's extras.
        let v = json!({"mine": {"trusted": 12.5, "immature": 50.0, "lode_reserved": 0.0,
            "untrusted_pending": 0.00000001},
            "lode_immature_coins": [{"height": 21, "amount": 50.0}]});
        let text = balance_text(&v).expect("renders");
        assert!(
            text.contains("spendable         12.50000000 coins (1250000000 units)"),
            "{text}"
        );
        assert!(text.contains("pending incoming   0.00000001 coins (1 units)"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("21 ") && l.ends_with(" 50.00000000")),
            "{text}"
        );
        let e = balance_text(&json!({"mine": {"trusted": 1.0}})).expect_err("missing field");
        assert!(e.to_string().contains("\"immature\""), "{e}");
    }

    #[test]
    fn history_is_a_table() {
        // Core's listtransactions: a send's amount and fee are negative, apart.
        let v = json!([{"txid": "ab", "amount": -12.5, "fee": -0.00001, "category": "send",
            "blockheight": 12, "confirmations": 1}]);
        let text = history_text(&v).expect("renders");
        assert!(text.contains("-12.50001000") && text.contains(" 0.00001000"), "{text}");
        assert!(text.contains(" 12 "), "{text}");
        assert!(text.starts_with("TXID"), "{text}");
        assert_eq!(history_text(&json!([])).expect("renders"), "no transactions");
    }
}
