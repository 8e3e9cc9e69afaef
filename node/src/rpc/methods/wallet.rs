//! Wallet methods (scope `wallet`; `dumpmnemonic`: `admin`). Each is a typed request to the
//! chain task, where the built-in wallet lives (a payment is built, admitted to the mempool
//! and reserved in the wallet with nothing in between), or a read of its view. The wallet's
//! rules live in `crate::wallet`; here are only parameters and answers.

use std::time::Duration;

use lode_chain::PubkeyHash;
use lode_wallet::WalletError;
use serde_json::{json, Value};

use crate::common::coins;

use crate::rpc::app::App;
use crate::rpc::jsonrpc::{Params, RpcError};
use crate::wallet::{NodeWallet, WalletActionError};

/// The built-in wallet's name (Core's `walletname`; `/wallet/lode` and `/wallet/` reach it).
pub const WALLET_NAME: &str = "lode";

/// Longest `walletpassphrase` timeout: a year.
const MAX_UNLOCK_SECS: u64 = 365 * 24 * 3600;

fn wallet_error(e: WalletError) -> RpcError {
    let code = match &e {
        WalletError::Locked => -13,
        WalletError::WrongPassphrase => -14,
        WalletError::NotEncrypted | WalletError::AlreadyEncrypted => -15,
        WalletError::InvalidAddress(_) => -5,
        WalletError::FeeRateTooLow { .. } | WalletError::ZeroAmount | WalletError::Dust { .. } => -8,
        WalletError::InsufficientFunds { .. } => -6,
        _ => -4,
    };
    RpcError::new(code, e.to_string())
}

fn action_error(e: WalletActionError) -> RpcError {
    match e {
        WalletActionError::NoWallet => RpcError::new(-18, "this node has no wallet"),
        WalletActionError::Wallet(e) => wallet_error(e),
        WalletActionError::NoAddress => RpcError::new(-4, e.to_string()),
        WalletActionError::Refused(reason) => RpcError::new(-26, reason),
    }
}

/// Reads the wallet (and the chain beside it) through the chain task's view.
async fn with_wallet<R: Send + 'static>(
    app: &App,
    f: impl FnOnce(&NodeWallet, &lode_chain::ChainState) -> Result<R, RpcError> + Send + 'static,
) -> Result<R, RpcError> {
    app.api
        .chain()
        .read(move |v| match v.wallet() {
            Some(w) => f(w, v.chain()),
            None => Err(action_error(WalletActionError::NoWallet)),
        })
        .await?
}

pub(crate) async fn getnewaddress(app: &App, p: &Params) -> Result<Value, RpcError> {
    // Core's label and address_type: Lode has one address type and no labels.
    p.expect_at_most(&["label", "address_type"])?;
    p.opt_str(0, "label")?;
    if let Some(t) = p.opt_str(1, "address_type")? {
        let shown: String = t.chars().take(32).collect();
        return Err(RpcError::new(
            -5,
            format!("Unknown address type '{shown}' (Lode has one: bech32m)"),
        ));
    }
    let addr = app.api.chain().new_address().await?.map_err(action_error)?;
    Ok(json!(addr))
}

pub(crate) async fn getbalance(app: &App, p: &Params) -> Result<Value, RpcError> {
    // Core's dummy ("*"), minconf, include_watchonly, avoid_reuse: accepted; Lode's
    // balance is its spendable coins.
    p.expect_at_most(&["dummy", "minconf", "include_watchonly", "avoid_reuse"])?;
    if let Some(d) = p.opt_str(0, "dummy")? {
        if d != "*" {
            return Err(RpcError::new(
                -32,
                "dummy first argument must be excluded or set to \"*\".",
            ));
        }
    }
    with_wallet(app, |w, _| Ok(coins::to_json(w.tracker.balance().spendable.0))).await
}

/// Core's `getbalances` (`mine.trusted`, `untrusted_pending`, `immature`) with Lode's
/// reserved coins and maturity schedule beside them.
fn balances_json(b: &lode_wallet::tracker::Balance) -> Value {
    json!({
        "mine": {
            "trusted": coins::to_json(b.spendable.0),
            "untrusted_pending": coins::to_json(b.pending_incoming.0),
            "immature": coins::to_json(b.immature.0),
            "lode_reserved": coins::to_json(b.reserved.0),
        },
        "lode_immature_coins": b.immature_coins.iter().map(|(h, a)| json!({"height": h.0, "amount": coins::to_json(a.0)})).collect::<Vec<_>>(),
    })
}

pub(crate) async fn getbalances(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    with_wallet(app, |w, _| Ok(balances_json(&w.tracker.balance()))).await
}

pub(crate) async fn getwalletinfo(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    with_wallet(app, |w, _| {
        let b = w.tracker.balance();
        let mut v = json!({
            "walletname": WALLET_NAME,
            "balance": coins::to_json(b.spendable.0),
            "unconfirmed_balance": coins::to_json(b.pending_incoming.0),
            "immature_balance": coins::to_json(b.immature.0),
            "txcount": w.tracker.history().len(),
            "private_keys_enabled": true,
            "lode_account": w.wallet.account(),
            "lode_addresses": w.wallet.issued_addresses(),
            "lode_first_address": w.wallet.receive_address(0),
            "lode_encrypted": w.wallet.is_encrypted(),
            "lode_locked": w.wallet.is_locked(),
        });
        if w.wallet.is_encrypted() {
            // Core: 0 when locked; Lode does not expose the unlock deadline.
            if w.wallet.is_locked() {
                v["unlocked_until"] = json!(0);
            }
        }
        Ok(v)
    })
    .await
}

/// Core's parameters of `sendtoaddress`, in order.
const SEND_PARAMS: [&str; 11] = [
    "address",
    "amount",
    "comment",
    "comment_to",
    "subtractfeefromamount",
    "replaceable",
    "conf_target",
    "estimate_mode",
    "avoid_reuse",
    "fee_rate",
    "verbose",
];

pub(crate) async fn sendtoaddress(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&SEND_PARAMS)?;
    let address = p.str(0, "address")?.to_string();
    let amount = p
        .value(1, "amount")
        .ok_or_else(|| RpcError::invalid_params("missing param amount"))
        .and_then(|v| coins::from_json(v).map_err(|e| RpcError::new(-3, e.to_string())))?;
    // Comments are Core's wallet metadata; Lode keeps none, so they are accepted and dropped.
    p.opt_str(2, "comment")?;
    p.opt_str(3, "comment_to")?;
    if p.opt_bool(4, "subtractfeefromamount")? == Some(true) {
        return Err(RpcError::new(
            -8,
            "subtractfeefromamount is not supported by Lode's wallet",
        ));
    }
    // Every Lode transaction is replaceable (full RBF); conf_target and estimate_mode pick
    // an estimate, and Lode has one.
    p.opt_bool(5, "replaceable")?;
    p.opt_u64(6, "conf_target")?;
    p.opt_str(7, "estimate_mode")?;
    p.opt_bool(8, "avoid_reuse")?;
    // Core's fee_rate is sat/vB: base units per byte here.
    let fee_rate = p.opt_u64(9, "fee_rate")?;
    let verbose = p.opt_bool(10, "verbose")?.unwrap_or(false);
    // Accepted, it is announced by the chain task.
    let sent = app
        .api
        .chain()
        .send_to_address(address, amount, fee_rate)
        .await?
        .map_err(action_error)?;
    if verbose {
        return Ok(json!({
            "txid": sent.txid.to_hex(),
            "fee_reason": if fee_rate.is_some() { "User-specified fee rate" } else { "Lode mempool estimate" },
            "lode_fee": coins::to_json(sent.fee.0),
            "lode_size": sent.size,
        }));
    }
    Ok(json!(sent.txid.to_hex()))
}

fn history_json(w: &NodeWallet, chain: &lode_chain::ChainState, e: &lode_wallet::tracker::HistoryEntry) -> Value {
    let next = w.tracker.next_height();
    let category = if e.coinbase {
        let maturity = chain.params().coinbase_maturity;
        match e.height {
            Some(h) if next.0 >= h.0.saturating_add(maturity) => "generate",
            _ => "immature",
        }
    } else if e.net() < 0 {
        "send"
    } else {
        "receive"
    };
    // Core: a send's amount excludes the fee, and both are negative.
    let net = i64::try_from(e.net()).unwrap_or(i64::MIN);
    let amount = match (category, e.fee) {
        ("send", Some(fee)) => net.saturating_add(i64::try_from(fee.0).unwrap_or(i64::MAX)),
        _ => net,
    };
    let mut v = json!({
        "txid": e.txid.to_hex(),
        "amount": coins::signed_to_json(amount),
        "category": category,
        "confirmations": w.tracker.confirmations(e.height),
    });
    if let Some(fee) = e.fee {
        v["fee"] = coins::signed_to_json(-i64::try_from(fee.0).unwrap_or(i64::MAX));
    }
    if let Some(h) = e.height {
        v["blockheight"] = json!(h.0);
        if let Some(hash) = chain.hash_at(h) {
            v["blockhash"] = json!(hash.to_hex());
            if let Some(entry) = chain.entry(&hash) {
                v["blocktime"] = json!(entry.header.time);
                v["time"] = json!(entry.header.time);
            }
        }
    }
    v
}

pub(crate) async fn listtransactions(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["label", "count", "skip", "include_watchonly"])?;
    if let Some(l) = p.opt_str(0, "label")? {
        if l != "*" {
            return Err(RpcError::new(-8, "Lode's wallet has no labels: give label \"*\""));
        }
    }
    let count = p.opt_u64(1, "count")?.unwrap_or(10).min(10_000) as usize;
    let skip = p.opt_u64(2, "skip")?.unwrap_or(0).min(u64::from(u32::MAX)) as usize;
    p.opt_bool(3, "include_watchonly")?;
    with_wallet(app, move |w, chain| {
        let history = w.tracker.history();
        // Core lists oldest first: the last `count` after skipping the newest `skip`.
        let mut page: Vec<Value> = history
            .iter()
            .rev()
            .skip(skip)
            .take(count)
            .map(|e| history_json(w, chain, e))
            .collect();
        page.reverse();
        Ok(json!(page))
    })
    .await
}

pub(crate) async fn gettransaction(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["txid", "include_watchonly", "verbose"])?;
    let txid = p.hash(0, "txid")?;
    p.opt_bool(1, "include_watchonly")?;
    p.opt_bool(2, "verbose")?;
    let mut v = with_wallet(app, move |w, chain| {
        w.tracker
            .history()
            .iter()
            .find(|e| e.txid == txid)
            .map(|e| history_json(w, chain, e))
            .ok_or_else(|| RpcError::not_found("Invalid or non-wallet transaction id"))
    })
    .await?;
    // Core's details (one entry: Lode does not split by output) and the raw transaction.
    let mut detail = json!({"category": v["category"], "amount": v["amount"]});
    if !v["fee"].is_null() {
        detail["fee"] = v["fee"].clone();
    }
    v["details"] = json!([detail]);
    if let Ok(view) = super::chain::tx_lookup(app, txid).await {
        v["hex"] = json!(view.hex);
    }
    Ok(v)
}

pub(crate) async fn listunspent(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["minconf", "maxconf", "addresses", "include_unsafe", "query_options"])?;
    let minconf = p.opt_u64(0, "minconf")?.unwrap_or(1);
    let maxconf = p.opt_u64(1, "maxconf")?.unwrap_or(9_999_999);
    let addresses: Option<Vec<String>> = match p.value(2, "addresses") {
        None => None,
        Some(Value::Array(a)) if a.len() <= 1000 => Some(
            a.iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| RpcError::new(-8, "addresses must be strings"))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(RpcError::new(-8, "param addresses: an array of at most 1000 addresses")),
    };
    with_wallet(app, move |w, chain| {
        let hrp = chain.params().hrp.clone();
        let next = w.tracker.next_height();
        let coins: Vec<Value> = w
            .tracker
            .coins()
            .filter(|c| {
                let conf = u64::from(w.tracker.confirmations(Some(c.height)));
                conf >= minconf && conf <= maxconf
            })
            .filter_map(|c| {
                let address = c.pkh.to_address(&hrp).unwrap_or_else(|_| c.pkh.to_hex());
                if addresses.as_ref().is_some_and(|a| !a.contains(&address)) {
                    return None;
                }
                let spendable = c.is_mature_at(next) && !w.tracker.is_reserved(&c.outpoint);
                let mut v = json!({
                    "txid": c.outpoint.txid.to_hex(),
                    "vout": c.outpoint.index,
                    "address": address,
                    "scriptPubKey": c.pkh.to_hex(),
                    "amount": coins::to_json(c.value.0),
                    "confirmations": w.tracker.confirmations(Some(c.height)),
                    "spendable": spendable,
                    "solvable": true,
                    "safe": true,
                });
                if let Some(m) = c.mature_at {
                    v["lode_mature_at"] = json!(m.0);
                }
                Some(v)
            })
            .collect();
        Ok(json!(coins))
    })
    .await
}

pub(crate) async fn walletpassphrase(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["passphrase", "timeout"])?;
    let pass = zeroize::Zeroizing::new(p.str(0, "passphrase")?.to_string());
    if pass.len() > MAX_PASSPHRASE {
        return Err(RpcError::new(
            -8,
            format!("param passphrase: longer than {MAX_PASSPHRASE} bytes"),
        ));
    }
    let secs = p.u64(1, "timeout")?;
    if secs == 0 || secs > MAX_UNLOCK_SECS {
        return Err(RpcError::new(
            -8,
            format!("param timeout: must be 1..={MAX_UNLOCK_SECS} seconds"),
        ));
    }
    app.api
        .chain()
        .wallet_unlock(pass, Duration::from_secs(secs))
        .await?
        .map_err(action_error)?;
    Ok(Value::Null)
}

/// Longest passphrase accepted (bytes).
const MAX_PASSPHRASE: usize = 1024;

pub(crate) async fn encryptwallet(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["passphrase"])?;
    let pass = zeroize::Zeroizing::new(p.str(0, "passphrase")?.to_string());
    if pass.is_empty() || pass.len() > MAX_PASSPHRASE {
        return Err(RpcError::new(
            -8,
            format!("param passphrase: must be 1..={MAX_PASSPHRASE} bytes"),
        ));
    }
    app.api.chain().wallet_encrypt(pass).await?.map_err(action_error)?;
    Ok(json!("wallet encrypted; unlock it with walletpassphrase to send"))
}

pub(crate) async fn walletlock(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    app.api.chain().wallet_lock().await?.map_err(action_error)?;
    Ok(Value::Null)
}

pub(crate) async fn dumpmnemonic(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let (words, account) = app.api.chain().wallet_mnemonic().await?.map_err(action_error)?;
    tracing::warn!("the wallet's mnemonic was shown through the RPC");
    Ok(json!({"mnemonic": words.as_str(), "account": account}))
}

/// An address of this network, or Core's "Invalid address" error.
fn address_param(app: &App, p: &Params) -> Result<(String, Option<PubkeyHash>), RpcError> {
    let a = p.str(0, "address")?;
    let shown: String = a.chars().take(128).collect();
    Ok((shown, PubkeyHash::from_address(a, &app.api.params().hrp).ok()))
}

/// Core's `validateaddress` (public): is it an address of this network.
pub(crate) async fn validateaddress(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["address"])?;
    let (address, pkh) = address_param(app, p)?;
    Ok(match pkh {
        Some(pkh) => json!({
            "isvalid": true,
            "address": address,
            "scriptPubKey": pkh.to_hex(),
            "isscript": false,
            "iswitness": false,
        }),
        None => json!({"isvalid": false, "error": "Invalid address"}),
    })
}

/// Core's `getaddressinfo` (wallet): whether the wallet owns it.
pub(crate) async fn getaddressinfo(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["address"])?;
    let (address, pkh) = address_param(app, p)?;
    let pkh = pkh.ok_or_else(|| RpcError::new(-5, "Invalid address"))?;
    with_wallet(app, move |w, _| {
        let mine = w.wallet.key_for(&pkh).is_some();
        Ok(json!({
            "address": address,
            "scriptPubKey": pkh.to_hex(),
            "ismine": mine,
            "iswatchonly": false,
            "solvable": mine,
            "isscript": false,
            "iswitness": false,
            "labels": [],
        }))
    })
    .await
}
