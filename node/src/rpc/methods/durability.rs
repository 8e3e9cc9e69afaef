//! What the node keeps on disk: `savemempool` (scope `admin`), as Bitcoin Core's.

use serde_json::{json, Value};

use crate::rpc::app::App;
use crate::rpc::jsonrpc::{Params, RpcError};

/// `savemempool`: writes `mempool.dat` now (it is also written periodically and at clean
/// shutdown). Answers the file's path and how many transactions it holds.
pub(crate) async fn savemempool(app: &App, p: &Params) -> Result<Value, RpcError> {
    p.expect_at_most(&[])?;
    let saved = app.api.chain().save_mempool().await?;
    match saved {
        Ok(n) => Ok(json!({
            "filename": app.api.data_dir().join(lode_chain::mempool::persist::SNAPSHOT_FILE).display().to_string(),
            "transactions": n,
        })),
        Err(reason) => Err(RpcError::misc(format!("unable to dump mempool to disk: {reason}"))),
    }
}
