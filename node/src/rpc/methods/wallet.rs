//! Wallet methods (scope `wallet`; `dumpmnemonic`: `admin`). Each is a typed request to the
//! chain task, where the built-in wallet lives (a payment is built, admitted to the mempool
//! and reserved in the wallet with nothing in between), or a read of its view. The wallet's
//! rules live in `crate::wallet`; here are only parameters and answers.

use std::time::Duration;

use lode_chain::Amount;
use lode_wallet::WalletError;
use serde_json::{json, Value};

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
    p.expect_at_most(&[])?;
    let addr = app.api.chain().new_address().await?.map_err(action_error)?;
    Ok(json!(addr))
}

pub(crate) async fn getbalance(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    with_wallet(app, |w, _| Ok(json!(w.tracker.balance().spendable.0))).await
}

fn balances_json(b: &lode_wallet::tracker::Balance) -> Value {
    json!({
        "spendable": b.spendable.0,
        "immature": b.immature.0,
        "immature_coins": b.immature_coins.iter().map(|(h, a)| json!({"height": h.0, "amount": a.0})).collect::<Vec<_>>(),
        "reserved": b.reserved.0,
        "pending_incoming": b.pending_incoming.0,
    })
}

pub(crate) async fn getbalances(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    with_wallet(app, |w, _| Ok(balances_json(&w.tracker.balance()))).await
}

pub(crate) async fn getwalletinfo(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    with_wallet(app, |w, _| {
        Ok(json!({
            "account": w.wallet.account(),
            "addresses": w.wallet.issued_addresses(),
            "first_address": w.wallet.receive_address(0),
            "encrypted": w.wallet.is_encrypted(),
            "locked": w.wallet.is_locked(),
            "balance": balances_json(&w.tracker.balance()),
        }))
    })
    .await
}

pub(crate) async fn sendtoaddress(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["address", "amount", "fee_rate"])?;
    let address = p.str(0, "address")?.to_string();
    let amount = Amount(p.u64(1, "amount")?);
    let fee_rate = p.opt_u64(2, "fee_rate")?;
    // Accepted, it is announced by the chain task.
    let sent = app
        .api
        .chain()
        .send_to_address(address, amount, fee_rate)
        .await?
        .map_err(action_error)?;
    Ok(json!({"txid": sent.txid.to_hex(), "fee": sent.fee.0, "size": sent.size}))
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
    let mut v = json!({
        "txid": e.txid.to_hex(),
        "amount": e.net(),
        "category": category,
        "confirmations": w.tracker.confirmations(e.height),
    });
    if let Some(fee) = e.fee {
        v["fee"] = json!(fee.0);
    }
    if let Some(h) = e.height {
        v["height"] = json!(h.0);
        if let Some(hash) = chain.hash_at(h) {
            v["blockhash"] = json!(hash.to_hex());
        }
    }
    v
}

pub(crate) async fn listtransactions(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["count", "skip"])?;
    let count = p.opt_u64(0, "count")?.unwrap_or(10).min(10_000) as usize;
    let skip = p.opt_u64(1, "skip")?.unwrap_or(0).min(u64::from(u32::MAX)) as usize;
    with_wallet(app, move |w, chain| {
        let history = w.tracker.history();
        Ok(json!(history
            .iter()
            .rev()
            .skip(skip)
            .take(count)
            .map(|e| history_json(w, chain, e))
            .collect::<Vec<_>>()))
    })
    .await
}

pub(crate) async fn gettransaction(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["txid"])?;
    let txid = p.hash(0, "txid")?;
    with_wallet(app, move |w, chain| {
        w.tracker
            .history()
            .iter()
            .find(|e| e.txid == txid)
            .map(|e| history_json(w, chain, e))
            .ok_or_else(|| RpcError::not_found("invalid or non-wallet transaction id"))
    })
    .await
}

pub(crate) async fn listunspent(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["minconf"])?;
    let minconf = p.opt_u64(0, "minconf")?.unwrap_or(1);
    with_wallet(app, move |w, chain| {
        let hrp = chain.params().hrp.clone();
        let next = w.tracker.next_height();
        let coins: Vec<Value> = w
            .tracker
            .coins()
            .filter(|c| u64::from(w.tracker.confirmations(Some(c.height))) >= minconf)
            .map(|c| {
                let mut v = json!({
                    "txid": c.outpoint.txid.to_hex(),
                    "vout": c.outpoint.index,
                    "address": c.pkh.to_address(&hrp).unwrap_or_else(|_| c.pkh.to_hex()),
                    "amount": c.value.0,
                    "confirmations": w.tracker.confirmations(Some(c.height)),
                    "spendable": c.is_mature_at(next) && !w.tracker.is_reserved(&c.outpoint),
                });
                if let Some(m) = c.mature_at {
                    v["mature_at"] = json!(m.0);
                }
                v
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
