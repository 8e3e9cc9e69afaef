//! `lode api-key create|list|revoke`: the node admin's API keys for signed requests. The
//! node keeps them (`DATA_DIR/api_keys.json`, 0600) and uses a change at once; the secret
//! is shown once, by `create` (and written to `--out` for `--key-file`, 0600).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Value};

use super::output::{plain, Fields, Table};
use super::{str_field, ClientArgs, CommandError, Node, Report};

/// `lode api-key [TARGET] COMMAND`.
#[derive(Debug, clap::Args)]
pub struct ApiKeyArgs {
    /// Node and output flags (the cookie: these are admin calls).
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: ApiKeyCommand,
}

/// The API key subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; its secret is shown once.
    Create {
        /// Scopes, comma-separated: read, wallet, mine, admin.
        #[arg(long, value_name = "SCOPES")]
        scopes: String,
        /// Requests per second of this key's own quota (default: the authenticated quota).
        #[arg(long, value_name = "N")]
        rate: Option<u32>,
        /// Also write the key file (`ID:SECRET`, mode 0600) for `--key-file`.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// List the keys (never their secrets).
    List,
    /// Revoke a key: the node refuses it at once.
    Revoke {
        /// The key's id (`lk_…`).
        key: String,
    },
}

/// Runs `lode api-key`.
pub fn run(args: ApiKeyArgs) -> Result<(), CommandError> {
    let command = args.command;
    super::run(&args.client, move |node| async move { execute(&node, command).await })
}

/// Runs one API key command against `node`.
pub async fn execute(node: &Node, command: ApiKeyCommand) -> Result<Report, CommandError> {
    const M: &str = "createapikey";
    match command {
        ApiKeyCommand::Create { scopes, rate, out } => {
            let mut params = json!({"scopes": scopes});
            if let Some(r) = rate {
                params["rate"] = json!(r);
            }
            let v = node.call(M, params).await?;
            let id = str_field(M, &v, "key")?.to_string();
            let secret = str_field(M, &v, "secret")?.to_string();
            let mut f = Fields::new();
            f.add("key", id.as_str())
                .add("secret", secret.as_str())
                .add_json("scopes", &v, "scopes")
                .add_json("rate", &v, "rate");
            if let Some(path) = out {
                let line = format!("{id}:{secret}\n");
                lode_chain::atomic_file::write_private(&path, line.as_bytes()).map_err(|e| {
                    CommandError::Failed(format!(
                        "the key was created but {} could not be written: {e}",
                        path.display()
                    ))
                })?;
                f.add("key file", path.display().to_string());
            }
            super::output::warn("the secret is shown only now; keep it (or the key file) private");
            Ok(Report::new(v, f.render()))
        }
        ApiKeyCommand::List => {
            let v = node.call("listapikeys", json!([])).await?;
            let keys = v.as_array().cloned().unwrap_or_default();
            if keys.is_empty() {
                return Ok(Report::new(v, "no API keys".into()));
            }
            let mut t = Table::new(&["KEY", "SCOPES", ">RATE", ">CREATED"]);
            for k in &keys {
                let scopes = k
                    .get("scopes")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(plain).collect::<Vec<_>>().join(","))
                    .unwrap_or_default();
                t.row(vec![
                    plain(k.get("id").unwrap_or(&Value::Null)),
                    scopes,
                    plain(k.get("rate").unwrap_or(&Value::Null)),
                    plain(k.get("created").unwrap_or(&Value::Null)),
                ]);
            }
            Ok(Report::new(v, t.render()))
        }
        ApiKeyCommand::Revoke { key } => {
            let v = node.call("revokeapikey", json!([key])).await?;
            Ok(Report::new(v, format!("{key} revoked")))
        }
    }
}
