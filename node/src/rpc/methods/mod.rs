//! The JSON-RPC methods, by domain: [`chain`] (blocks, transactions, mempool, public),
//! [`wallet`], [`mining`], [`net`] (peers, bans, stop, verify), [`marks`] (the operator's
//! `invalidateblock` / `reconsiderblock`). Names and results follow
//! Bitcoin Core wherever a method exists there (docs/API.md).

pub mod chain;
pub mod durability;
pub mod keys;
pub mod marks;
pub mod mining;
pub mod net;
pub mod stratum;
pub mod wallet;

use serde_json::Value;

use super::auth::Scope;
use super::jsonrpc::{Params, RpcError};
use crate::rpc::app::App;

/// Every method with the scope it needs (`None`: public).
pub const METHODS: &[(&str, Option<Scope>)] = &[
    ("getblockchaininfo", None),
    ("getbestblockhash", None),
    ("getblockcount", None),
    ("getblockhash", None),
    ("getblock", None),
    ("getblockheader", None),
    ("getrawtransaction", None),
    ("sendrawtransaction", None),
    ("getrawmempool", None),
    ("getmempoolinfo", None),
    ("getmininginfo", None),
    ("getnetworkinfo", None),
    ("getpeerinfo", None),
    ("estimatefee", None),
    ("estimatesmartfee", None),
    ("getmempoolentry", None),
    ("validateaddress", None),
    ("uptime", None),
    ("help", None),
    ("getaddressinfo", Some(Scope::Wallet)),
    ("generatetoaddress", Some(Scope::Mine)),
    ("generateblock", Some(Scope::Mine)),
    ("invalidateblock", Some(Scope::Admin)),
    ("reconsiderblock", Some(Scope::Admin)),
    ("getnewaddress", Some(Scope::Wallet)),
    ("getbalance", Some(Scope::Wallet)),
    ("getbalances", Some(Scope::Wallet)),
    ("getwalletinfo", Some(Scope::Wallet)),
    ("sendtoaddress", Some(Scope::Wallet)),
    ("listtransactions", Some(Scope::Wallet)),
    ("listunspent", Some(Scope::Wallet)),
    ("gettransaction", Some(Scope::Wallet)),
    ("walletpassphrase", Some(Scope::Wallet)),
    ("walletlock", Some(Scope::Wallet)),
    ("encryptwallet", Some(Scope::Wallet)),
    ("dumpmnemonic", Some(Scope::Admin)),
    ("setgenerate", Some(Scope::Mine)),
    ("generate", Some(Scope::Mine)),
    ("getblocktemplate", Some(Scope::Mine)),
    ("submitblock", Some(Scope::Mine)),
    ("addnode", Some(Scope::Admin)),
    ("disconnectnode", Some(Scope::Admin)),
    ("setban", Some(Scope::Admin)),
    ("listbanned", Some(Scope::Admin)),
    ("verifychain", Some(Scope::Admin)),
    ("savemempool", Some(Scope::Admin)),
    ("stop", Some(Scope::Admin)),
    ("createapikey", Some(Scope::Admin)),
    ("listapikeys", Some(Scope::Admin)),
    ("revokeapikey", Some(Scope::Admin)),
    ("getstratuminfo", None),
    ("getpoolinfo", None),
    ("getpoolblock", None),
    ("stratumreconnect", Some(Scope::Admin)),
];

/// The scope a method needs: `None` if the method does not exist, `Some(None)` if public.
pub fn scope_of(method: &str) -> Option<Option<Scope>> {
    METHODS.iter().find(|(m, _)| *m == method).map(|(_, s)| *s)
}

/// Runs a method (auth already checked).
pub async fn call(app: &App, method: &str, p: &Params) -> Result<Value, RpcError> {
    match method {
        "getblockchaininfo" => chain::getblockchaininfo(app, p).await,
        "getbestblockhash" => chain::getbestblockhash(app, p).await,
        "getblockcount" => chain::getblockcount(app, p).await,
        "getblockhash" => chain::getblockhash(app, p).await,
        "getblock" => chain::getblock(app, p).await,
        "getblockheader" => chain::getblockheader(app, p).await,
        "getrawtransaction" => chain::getrawtransaction(app, p).await,
        "sendrawtransaction" => chain::sendrawtransaction(app, p).await,
        "getrawmempool" => chain::getrawmempool(app, p).await,
        "getmempoolinfo" => chain::getmempoolinfo(app, p).await,
        "estimatefee" => chain::estimatefee(app, p).await,
        "estimatesmartfee" => chain::estimatesmartfee(app, p).await,
        "getmempoolentry" => chain::getmempoolentry(app, p).await,
        "validateaddress" => wallet::validateaddress(app, p).await,
        "uptime" => net::uptime(app, p).await,
        "help" => help(p),
        "getaddressinfo" => wallet::getaddressinfo(app, p).await,
        "generatetoaddress" => mining::generatetoaddress(app, p).await,
        "generateblock" => mining::generateblock(app, p).await,
        "invalidateblock" => marks::invalidateblock(app, p).await,
        "reconsiderblock" => marks::reconsiderblock(app, p).await,
        "getmininginfo" => mining::getmininginfo(app, p).await,
        "getnetworkinfo" => net::getnetworkinfo(app, p).await,
        "getpeerinfo" => net::getpeerinfo(app, p).await,
        "getnewaddress" => wallet::getnewaddress(app, p).await,
        "getbalance" => wallet::getbalance(app, p).await,
        "getbalances" => wallet::getbalances(app, p).await,
        "getwalletinfo" => wallet::getwalletinfo(app, p).await,
        "sendtoaddress" => wallet::sendtoaddress(app, p).await,
        "listtransactions" => wallet::listtransactions(app, p).await,
        "listunspent" => wallet::listunspent(app, p).await,
        "gettransaction" => wallet::gettransaction(app, p).await,
        "walletpassphrase" => wallet::walletpassphrase(app, p).await,
        "walletlock" => wallet::walletlock(app, p).await,
        "encryptwallet" => wallet::encryptwallet(app, p).await,
        "dumpmnemonic" => wallet::dumpmnemonic(app, p).await,
        "setgenerate" => mining::setgenerate(app, p).await,
        "generate" => mining::generate(app, p).await,
        "getblocktemplate" => mining::getblocktemplate(app, p).await,
        "submitblock" => mining::submitblock(app, p).await,
        "addnode" => net::addnode(app, p).await,
        "disconnectnode" => net::disconnectnode(app, p).await,
        "setban" => net::setban(app, p).await,
        "listbanned" => net::listbanned(app, p).await,
        "verifychain" => net::verifychain(app, p).await,
        "savemempool" => durability::savemempool(app, p).await,
        "stop" => net::stop(app, p).await,
        "createapikey" => keys::createapikey(app, p),
        "listapikeys" => keys::listapikeys(app, p),
        "revokeapikey" => keys::revokeapikey(app, p),
        "getstratuminfo" => stratum::getstratuminfo(app, p).await,
        "getpoolinfo" => stratum::getpoolinfo(app, p).await,
        "getpoolblock" => stratum::getpoolblock(app, p).await,
        "stratumreconnect" => stratum::stratumreconnect(app, p).await,
        other => Err(RpcError::method_not_found(other)),
    }
}

/// Core's `help`: every method, or one method's scope.
fn help(p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&["command"])?;
    let scope_name = |s: Option<Scope>| s.map_or_else(|| "public".to_string(), |s| format!("needs the {s} scope"));
    match p.opt_str(0, "command")? {
        None => {
            let mut text = String::from("Lode's JSON-RPC methods (docs/CORE-RPC.md maps them to Bitcoin Core's):\n");
            for (m, s) in METHODS {
                text.push_str(&format!("{m} ({})\n", scope_name(*s)));
            }
            Ok(Value::String(text))
        }
        Some(m) => match scope_of(m) {
            Some(s) => Ok(Value::String(format!(
                "{m} ({}); parameters and result as Bitcoin Core's {m} unless docs/CORE-RPC.md says otherwise",
                scope_name(s)
            ))),
            None => {
                let shown: String = m.chars().take(64).collect();
                Ok(Value::String(format!("help: unknown command: {shown}")))
            }
        },
    }
}
