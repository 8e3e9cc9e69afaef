//! The operator's word on blocks, as Bitcoin Core's hidden blockchain methods
//! `invalidateblock "blockhash"` and `reconsiderblock "blockhash"` (scope `admin`): the chain
//! task marks or clears the block and moves the best chain to the most-work valid branch.

use serde_json::Value;

use crate::chain_task::{BlockMark, BlockMarkError};
use crate::rpc::app::App;
use crate::rpc::jsonrpc::{Params, RpcError};

pub(crate) async fn invalidateblock(app: &App, p: &Params) -> Result<Value, RpcError> {
    mark(app, p, BlockMark::Invalidate).await
}

pub(crate) async fn reconsiderblock(app: &App, p: &Params) -> Result<Value, RpcError> {
    mark(app, p, BlockMark::Reconsider).await
}

async fn mark(app: &App, p: &Params, mark: BlockMark) -> Result<Value, RpcError> {
    p.expect_at_most(&["blockhash"])?;
    let hash = p.hash(0, "blockhash")?;
    match app.api.chain().mark_block(hash, mark).await? {
        Ok(()) => Ok(Value::Null),
        // Core's codes: RPC_INVALID_ADDRESS_OR_KEY for an unknown block, RPC_DATABASE_ERROR
        // when the chain state could not be changed.
        Err(e @ BlockMarkError::NotFound) => Err(RpcError::new(-5, e.to_string())),
        Err(e @ BlockMarkError::NotAllowed(_)) => Err(RpcError::new(-8, e.to_string())),
        Err(e @ BlockMarkError::Failed(_)) => Err(RpcError::new(-20, e.to_string())),
    }
}
