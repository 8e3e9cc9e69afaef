#!/usr/bin/env python3
"""Drives a running Lode regtest node with real Bitcoin Core RPC client libraries, used as
Bitcoin Core's documentation uses them:

- python-bitcoinrpc's AuthServiceProxy ("http://user:password@host:port"), with the cookie
  file and with an rpcauth user;
- python-bitcoinlib's RawProxy (reads bitcoin.conf and DATADIR/regtest/.cookie itself).

Checks each answer field by field against Bitcoin Core's documented result shape (the
SHAPES table, written from Core's RPC help), and the transport: a kept-alive connection
survives a 401, and a batch is answered in order.

Usage: core_clients.py --url http://127.0.0.1:PORT --datadir DIR --rpcauth USER:PASSWORD:SALT:HMAC
Exit status 0 when every check passed; 3 when a library is missing (the caller decides).
"""

import argparse
import base64
import decimal
import hmac
import http.client
import os
import sys

try:
    from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException
    import bitcoin
    import bitcoin.rpc
except ImportError as e:  # the Rust test turns this into SKIP (locally) or a failure (CI)
    print(f"missing library: {e}")
    sys.exit(3)

D = decimal.Decimal
# Types in Core's help: "numeric" (an amount is numeric too; parsed as Decimal by both
# libraries, as parse_float=Decimal), "string", "boolean", "json array", "json object".
AMOUNT = "amount"
NUM = "numeric"
STR = "string"
BOOL = "boolean"
ARR = "array"
OBJ = "object"

# method -> {field: type}, from Bitcoin Core's RPC help (v27/v28). Only fields Core documents;
# Lode's extras (lode_*) are not checked here. Fields Core has that Lode leaves out are listed
# in docs/CORE-RPC.md and are absent from this table on purpose.
SHAPES = {
    "getblockchaininfo": {
        "chain": STR, "blocks": NUM, "headers": NUM, "bestblockhash": STR, "difficulty": NUM,
        "time": NUM, "mediantime": NUM, "verificationprogress": NUM,
        "initialblockdownload": BOOL, "chainwork": STR, "size_on_disk": NUM, "pruned": BOOL,
        "warnings": STR, "bits": STR,
    },
    "getblock1": {
        "hash": STR, "confirmations": NUM, "size": NUM, "height": NUM, "version": NUM,
        "versionHex": STR, "merkleroot": STR, "tx": ARR, "time": NUM, "mediantime": NUM,
        "nonce": NUM, "bits": STR, "difficulty": NUM, "chainwork": STR, "nTx": NUM,
    },
    "getblockheader": {
        "hash": STR, "confirmations": NUM, "height": NUM, "version": NUM, "versionHex": STR,
        "merkleroot": STR, "time": NUM, "mediantime": NUM, "nonce": NUM, "bits": STR,
        "difficulty": NUM, "chainwork": STR, "nTx": NUM,
    },
    "rawtx": {
        "txid": STR, "hash": STR, "size": NUM, "vsize": NUM, "version": NUM, "locktime": NUM,
        "vin": ARR, "vout": ARR, "hex": STR,
    },
    "vout": {"value": AMOUNT, "n": NUM, "scriptPubKey": OBJ},
    "getmempoolinfo": {
        "loaded": BOOL, "size": NUM, "bytes": NUM, "total_fee": AMOUNT, "maxmempool": NUM,
        "mempoolminfee": AMOUNT, "minrelaytxfee": AMOUNT, "fullrbf": BOOL,
    },
    "getmempoolentry": {
        "vsize": NUM, "time": NUM, "height": NUM, "descendantcount": NUM,
        "descendantsize": NUM, "ancestorcount": NUM, "ancestorsize": NUM, "fees": OBJ,
        "depends": ARR, "spentby": ARR, "bip125-replaceable": BOOL,
    },
    "fees": {"base": AMOUNT, "modified": AMOUNT, "ancestor": AMOUNT, "descendant": AMOUNT},
    "getmininginfo": {
        "blocks": NUM, "difficulty": NUM, "networkhashps": NUM, "pooledtx": NUM, "chain": STR,
        "warnings": STR,
    },
    "getnetworkinfo": {
        "version": NUM, "subversion": STR, "networkactive": BOOL, "connections": NUM,
        "connections_in": NUM, "connections_out": NUM, "relayfee": AMOUNT, "warnings": STR,
    },
    "estimatesmartfee": {"feerate": AMOUNT, "blocks": NUM},
    "getbalances.mine": {"trusted": AMOUNT, "untrusted_pending": AMOUNT, "immature": AMOUNT},
    "getwalletinfo": {
        "walletname": STR, "balance": AMOUNT, "unconfirmed_balance": AMOUNT,
        "immature_balance": AMOUNT, "txcount": NUM, "private_keys_enabled": BOOL,
    },
    "gettransaction": {
        "amount": AMOUNT, "confirmations": NUM, "txid": STR, "details": ARR, "hex": STR,
    },
    "gettransaction.confirmed": {"blockhash": STR, "blockheight": NUM, "blocktime": NUM, "time": NUM},
    "listtransactions": {"category": STR, "amount": AMOUNT, "confirmations": NUM, "txid": STR},
    "listunspent": {
        "txid": STR, "vout": NUM, "address": STR, "scriptPubKey": STR, "amount": AMOUNT,
        "confirmations": NUM, "spendable": BOOL, "solvable": BOOL, "safe": BOOL,
    },
    "getaddressinfo": {
        "address": STR, "scriptPubKey": STR, "ismine": BOOL, "iswatchonly": BOOL,
        "solvable": BOOL, "isscript": BOOL, "iswitness": BOOL, "labels": ARR,
    },
    "validateaddress": {"isvalid": BOOL, "address": STR, "scriptPubKey": STR, "isscript": BOOL, "iswitness": BOOL},
    # BIP 22 as Core answers it (Core's segwit-only fields, weightlimit/sigoplimit and the
    # version-bits ones Lode has no soft forks for, are left out: docs/CORE-RPC.md).
    "getblocktemplate": {
        "version": NUM, "rules": ARR, "capabilities": ARR, "previousblockhash": STR,
        "transactions": ARR, "coinbasevalue": NUM, "target": STR, "mintime": NUM, "mutable": ARR,
        "noncerange": STR, "sizelimit": NUM, "curtime": NUM, "bits": STR, "height": NUM,
    },
    "getblocktemplate.tx": {"data": STR, "txid": STR, "hash": STR, "depends": ARR, "fee": NUM},
    "generateblock": {"hash": STR},
    "generateblock.unsubmitted": {"hash": STR, "hex": STR},
}

CHECKS = 0


def is_type(value, kind):
    if kind == AMOUNT:
        # Core writes amounts with a decimal point; both libraries parse them as Decimal.
        return isinstance(value, D)
    if kind == NUM:
        return isinstance(value, (int, D)) and not isinstance(value, bool)
    return isinstance(value, {STR: str, BOOL: bool, ARR: list, OBJ: dict}[kind])


def check_shape(name, value):
    global CHECKS
    assert isinstance(value, dict), f"{name}: not an object: {value!r}"
    for field, kind in SHAPES[name].items():
        assert field in value, f"{name}: no field {field!r} in {sorted(value)}"
        assert is_type(value[field], kind), f"{name}.{field}: {value[field]!r} is not {kind}"
        CHECKS += 1


def expect_error(call, code):
    try:
        call()
    except (JSONRPCException, bitcoin.rpc.JSONRPCError) as e:
        got = e.error["code"]
        assert got == code, f"error code {got}, wanted {code}: {e.error}"
        return
    raise AssertionError(f"no error, wanted code {code}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--datadir", required=True, help="parent of the node's regtest data dir")
    ap.add_argument("--rpcauth", required=True, help="USER:PASSWORD:SALT:HMAC")
    args = ap.parse_args()
    host_port = args.url.split("://", 1)[1].rstrip("/")
    user, password, salt, mac = args.rpcauth.split(":")
    # The --rpc-auth line is what share/rpcauth/rpcauth.py prints: HMAC-SHA256(salt, password).
    assert hmac.new(salt.encode(), password.encode(), "SHA256").hexdigest() == mac

    # --- python-bitcoinrpc with the cookie, exactly as Core's docs connect -------------
    with open(os.path.join(args.datadir, "regtest", ".cookie")) as f:
        cookie_user, cookie_pass = f.read().strip().split(":", 1)
    assert cookie_user == "__cookie__"
    rpc = AuthServiceProxy(f"http://{cookie_user}:{cookie_pass}@{host_port}")

    info = rpc.getblockchaininfo()
    check_shape("getblockchaininfo", info)
    assert info["chain"] == "regtest"
    # Core's difficulty: relative to 0x1d00ffff, so regtest's easiest target is ~4.66e-10.
    assert D("4e-10") < info["difficulty"] < D("5e-10"), info["difficulty"]
    genesis = rpc.getblockhash(0)
    check_shape("getblock1", rpc.getblock(genesis))
    assert isinstance(rpc.getblock(genesis, 0), str)
    check_shape("getblockheader", rpc.getblockheader(genesis))
    check_shape("getmininginfo", rpc.getmininginfo())
    check_shape("getnetworkinfo", rpc.getnetworkinfo())
    check_shape("getmempoolinfo", rpc.getmempoolinfo())
    check_shape("estimatesmartfee", rpc.estimatesmartfee(6))
    assert isinstance(rpc.uptime(), int)
    assert "getblockchaininfo" in rpc.help()
    expect_error(lambda: rpc.getblockhash(10_000), -8)
    expect_error(lambda: rpc.nosuchmethod(), -32601)

    # Wallet: new address, 101 blocks to it (Core's regtest recipe), a payment.
    addr = rpc.getnewaddress()
    check_shape("validateaddress", rpc.validateaddress(addr))
    assert rpc.validateaddress("nonsense")["isvalid"] is False
    ai = rpc.getaddressinfo(addr)
    check_shape("getaddressinfo", ai)
    assert ai["ismine"] is True
    hashes = rpc.generatetoaddress(101, addr)
    assert len(hashes) == 101 and rpc.getblockcount() == 101
    check_shape("getblock1", rpc.getblock(hashes[-1], 1))
    block2 = rpc.getblock(hashes[-1], 2)
    check_shape("rawtx", block2["tx"][0])
    balance = rpc.getbalance()
    assert isinstance(balance, D) and balance > 0, balance
    check_shape("getbalances.mine", rpc.getbalances()["mine"])
    check_shape("getwalletinfo", rpc.getwalletinfo())

    # --- the rpcauth user (python-bitcoinrpc again) ---------------------------------
    alice = AuthServiceProxy(f"http://{user}:{password}@{host_port}")
    to = alice.getnewaddress()
    txid = alice.sendtoaddress(to, D("1.5"))
    assert isinstance(txid, str) and len(txid) == 64, txid
    entry = rpc.getmempoolentry(txid)
    check_shape("getmempoolentry", entry)
    check_shape("fees", entry["fees"])
    assert txid in rpc.getrawmempool()
    verbose_pool = rpc.getrawmempool(True)
    check_shape("getmempoolentry", verbose_pool[txid])
    raw = rpc.getrawtransaction(txid, True)
    check_shape("rawtx", raw)
    for out in raw["vout"]:
        check_shape("vout", out)
    assert D("1.5") in [o["value"] for o in raw["vout"]], raw["vout"]
    assert to in [o["scriptPubKey"]["address"] for o in raw["vout"]]
    tx = rpc.gettransaction(txid)
    check_shape("gettransaction", tx)
    assert tx["confirmations"] == 0
    # A payment to ourselves: Core's "send" amount is minus what was sent, fee apart.
    assert tx["fee"] < 0, tx
    rpc.generatetoaddress(1, addr)
    tx = rpc.gettransaction(txid)
    check_shape("gettransaction.confirmed", tx)
    assert tx["confirmations"] == 1
    for item in rpc.listtransactions("*", 5):
        check_shape("listtransactions", item)
    unspent = rpc.listunspent(1, 9999999, [to])
    assert [u["amount"] for u in unspent] == [D("1.5")], unspent
    check_shape("listunspent", unspent[0])

    # --- keep-alive across a 401 ----------------------------------------------------
    host, port = host_port.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    wrong = AuthServiceProxy(f"http://__cookie__:wrong@{host_port}", connection=conn)
    good = AuthServiceProxy(f"http://{cookie_user}:{cookie_pass}@{host_port}", connection=conn)
    assert good.getblockcount() == 102
    sock = conn.sock
    expect_error(lambda: wrong.getblockcount(), -32001)
    assert good.getblockcount() == 102
    assert conn.sock is sock, "the connection was closed after the 401"

    # --- python-bitcoinlib: bitcoin.conf + DATADIR/regtest/.cookie, as Core's tools do --
    bitcoin.SelectParams("regtest")
    conf = os.path.join(args.datadir, "bitcoin.conf")
    with open(conf, "w") as f:
        f.write(f"rpcconnect={host}\nrpcport={port}\ndatadir={args.datadir}\n")
    raw_proxy = bitcoin.rpc.RawProxy(btc_conf_file=conf)
    check_shape("getblockchaininfo", raw_proxy.getblockchaininfo())
    addr2 = raw_proxy.getnewaddress()
    txid2 = raw_proxy.sendtoaddress(addr2, 0.25)  # bitcoinlib sends floats
    assert raw_proxy.gettransaction(txid2)["confirmations"] == 0
    raw_proxy.generatetoaddress(1, addr2)
    assert raw_proxy.gettransaction(txid2)["confirmations"] == 1
    # The rpcauth user through RawProxy's service_url.
    alice2 = bitcoin.rpc.RawProxy(service_url=f"http://{user}:{password}@{host_port}")
    height = raw_proxy.getblockcount()
    assert alice2.getblockcount() == height
    # A batch (legacy calls): answered in order, each with result, error and id.
    replies = raw_proxy._batch([
        {"version": "1.1", "method": "getblockcount", "params": [], "id": 1},
        {"version": "1.1", "method": "getblockhash", "params": [0], "id": 2},
        {"version": "1.1", "method": "nosuchmethod", "params": [], "id": 3},
    ])
    assert [r["id"] for r in replies] == [1, 2, 3], replies
    assert replies[0]["result"] == height and replies[0]["error"] is None
    assert replies[1]["result"] == genesis
    assert replies[2]["result"] is None and replies[2]["error"]["code"] == -32601

    # --- Core's amounts as text: always 8 places, a JSON number -------------------------
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    basic = base64.b64encode(f"{cookie_user}:{cookie_pass}".encode()).decode()
    body = f'{{"method":"getrawtransaction","params":["{txid}",true],"id":1}}'
    conn.request("POST", "/", body=body, headers={"Authorization": f"Basic {basic}"})
    text = conn.getresponse().read().decode()
    assert '"value":1.50000000' in text, text
    conn.close()

    # --- generateblock, BIP 22/23 getblocktemplate, invalidateblock/reconsiderblock ------
    t = rpc.getblocktemplate({"capabilities": ["proposal"], "rules": []})
    check_shape("getblocktemplate", t)
    assert t["height"] == rpc.getblockcount() + 1 and "proposal" in t["capabilities"]
    pay_txid = rpc.sendtoaddress(addr, D("0.5"))
    t = rpc.getblocktemplate({"rules": []})
    check_shape("getblocktemplate.tx", t["transactions"][0])
    assert [x["txid"] for x in t["transactions"]] == [pay_txid], t["transactions"]
    unsent = rpc.generateblock(addr, [pay_txid], False)
    check_shape("generateblock.unsubmitted", unsent)
    assert rpc.getblocktemplate({"mode": "proposal", "data": unsent["hex"]}) is None
    expect_error(lambda: rpc.getblock(unsent["hash"]), -5)
    mined = rpc.generateblock(addr, [pay_txid])
    check_shape("generateblock", mined)
    assert rpc.getblock(mined["hash"])["tx"][1] == pay_txid
    assert rpc.getblocktemplate({"mode": "proposal", "data": unsent["hex"]}) == "inconclusive-not-best-prevblk"
    expect_error(lambda: rpc.generateblock(addr, ["00" * 32]), -5)
    expect_error(lambda: rpc.generateblock(addr, ["beef"]), -22)
    empty = rpc.generateblock(addr, [])
    tip_height = rpc.getblockcount()
    assert rpc.getbestblockhash() == empty["hash"]
    # invalidateblock: back to the parent, the payment returns to the mempool with its
    # block; reconsiderblock: the most-work chain again.
    assert rpc.invalidateblock(mined["hash"]) is None
    assert rpc.getblockcount() == tip_height - 2
    assert pay_txid in rpc.getrawmempool()
    assert rpc.gettransaction(pay_txid)["confirmations"] == 0
    assert rpc.reconsiderblock(mined["hash"]) is None
    assert rpc.getbestblockhash() == empty["hash"]
    assert rpc.gettransaction(pay_txid)["confirmations"] == 2
    expect_error(lambda: rpc.invalidateblock("00" * 32), -5)
    # python-bitcoinlib passes the same calls through its RawProxy.
    raw_proxy.invalidateblock(empty["hash"])
    assert raw_proxy.getbestblockhash() == mined["hash"]
    raw_proxy.reconsiderblock(empty["hash"])
    assert raw_proxy.getbestblockhash() == empty["hash"]

    print(f"ok: {CHECKS} field checks; python-bitcoinrpc and python-bitcoinlib drove the node")


if __name__ == "__main__":
    main()
