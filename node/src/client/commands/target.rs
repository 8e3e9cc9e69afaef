//! Which node a client command talks to: `--devnet NAME [--dir DIR]`, `--node URL
//! [--cookie PATH]`, `--data-dir DIR`, or by default node0 of `./devnet/devnet.json`, else
//! the node of the default data dir (`~/.lode/devnet`).

use std::path::{Path, PathBuf};

use crate::client::devnet_file::{DevnetFile, DevnetFileError, DEVNET_FILE_NAME};
use crate::client::{ClientError, RpcClient};
pub use crate::common::defaults::{COOKIE_FILE, DEFAULT_RPC_URL, RPC_URL_FILE};

/// The default devnet directory, relative to the working directory.
pub const DEFAULT_DEVNET_DIR: &str = "devnet";

/// The flags that pick a node, shared by `lode wallet|mine|chain`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TargetArgs {
    /// Talk to this node of the local devnet (found in DIR/devnet.json).
    #[arg(long, value_name = "NAME", global = true, conflicts_with_all = ["node", "data_dir"])]
    pub devnet: Option<String>,
    /// Devnet directory holding devnet.json (default ./devnet).
    #[arg(long, value_name = "DIR", global = true, conflicts_with_all = ["node", "data_dir"])]
    pub dir: Option<PathBuf>,
    /// Talk to the node at this URL (e.g. http://127.0.0.1:18443).
    #[arg(long, value_name = "URL", global = true, conflicts_with = "data_dir")]
    pub node: Option<String>,
    /// RPC cookie (token file) for --node.
    #[arg(long, value_name = "PATH", global = true, requires = "node")]
    pub cookie: Option<PathBuf>,
    /// Talk to the node whose data dir this is (reads DIR/rpc_url and DIR/.cookie).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

/// A resolved node: where it listens and where its token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Base URL of the node's HTTP port.
    pub url: String,
    /// The cookie file, when one is known (private calls need it).
    pub cookie: Option<PathBuf>,
    /// The network, when the devnet file says it.
    pub network: Option<String>,
}

/// Why no node could be picked.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// `devnet.json` is missing or unreadable.
    #[error(transparent)]
    DevnetFile(#[from] DevnetFileError),
    /// `--devnet NAME` names no node of the file.
    #[error("no node named {name:?} in {path} (it has: {known})")]
    UnknownNode {
        /// The name asked for.
        name: String,
        /// The devnet file.
        path: String,
        /// The names it has.
        known: String,
    },
    /// The devnet file lists no nodes.
    #[error("{path} lists no nodes")]
    NoNodes {
        /// The devnet file.
        path: String,
    },
    /// `--node` is not an http(s) URL.
    #[error("--node: {0:?} is not an http:// URL")]
    BadUrl(String),
    /// A node's data dir lacks a file the node writes at start.
    #[error("cannot read {path}: {reason} (is a node running with this data dir?)")]
    DataDirFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The environment a target is resolved in: the working directory and the default data dir.
#[derive(Clone, Debug)]
pub struct Env {
    /// The working directory (for `./devnet/devnet.json`).
    pub cwd: PathBuf,
    /// The default data dir (`~/.lode/devnet`).
    pub default_data_dir: PathBuf,
}

impl Env {
    /// The process's environment.
    pub fn current() -> Env {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        Env {
            cwd,
            default_data_dir: home.join(".lode").join("devnet"),
        }
    }
}

impl TargetArgs {
    /// Picks the node these flags name (see the module doc for the order).
    pub fn resolve(&self, env: &Env) -> Result<Target, TargetError> {
        if let Some(url) = &self.node {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len() {
                return Err(TargetError::BadUrl(url.clone()));
            }
            return Ok(Target {
                url: url.trim_end_matches('/').to_string(),
                cookie: self.cookie.clone(),
                network: None,
            });
        }
        if let Some(dir) = &self.data_dir {
            return from_data_dir(dir, true);
        }
        let devnet_dir = match &self.dir {
            Some(d) => d.clone(),
            None => env.cwd.join(DEFAULT_DEVNET_DIR),
        };
        let devnet_path = devnet_dir.join(DEVNET_FILE_NAME);
        if self.devnet.is_some() || self.dir.is_some() || devnet_path.is_file() {
            return from_devnet_file(&devnet_path, self.devnet.as_deref());
        }
        from_data_dir(&env.default_data_dir, false)
    }
}

/// The node `name` (default: node0, else the first) of a devnet file.
fn from_devnet_file(path: &Path, name: Option<&str>) -> Result<Target, TargetError> {
    let file = DevnetFile::load(path)?;
    let node = match name {
        Some(name) => file.node(name).ok_or_else(|| TargetError::UnknownNode {
            name: name.to_string(),
            path: path.display().to_string(),
            known: file.node_names(),
        })?,
        None => file
            .node("node0")
            .or_else(|| file.nodes.first())
            .ok_or_else(|| TargetError::NoNodes {
                path: path.display().to_string(),
            })?,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    Ok(Target {
        url: node.rpc.trim_end_matches('/').to_string(),
        cookie: Some(locate(&node.cookie, base)),
        network: Some(file.network.clone()),
    })
}

/// A relative path in a devnet file is taken as written (relative to where `devnet up`
/// ran, normally here) when it exists, else relative to the file's directory.
fn locate(p: &Path, base: &Path) -> PathBuf {
    if p.is_absolute() || p.exists() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The node of a data dir: its `rpc_url` and `.cookie`. When `explicit` is false (the
/// default data dir) missing files fall back to the default URL and no token.
fn from_data_dir(dir: &Path, explicit: bool) -> Result<Target, TargetError> {
    let url_path = dir.join(RPC_URL_FILE);
    let cookie = dir.join(COOKIE_FILE);
    let url = match std::fs::read_to_string(&url_path) {
        Ok(text) => {
            let url = text.trim().trim_end_matches('/').to_string();
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(TargetError::DataDirFile {
                    path: url_path.display().to_string(),
                    reason: format!("{url:?} is not an http:// URL"),
                });
            }
            url
        }
        Err(e) if explicit => {
            return Err(TargetError::DataDirFile {
                path: url_path.display().to_string(),
                reason: e.to_string(),
            })
        }
        Err(_) => DEFAULT_RPC_URL.to_string(),
    };
    Ok(Target {
        url,
        cookie: (explicit || cookie.is_file()).then_some(cookie),
        network: None,
    })
}

impl Target {
    /// A client of this node, authenticated when a cookie is known.
    pub fn client(&self) -> Result<RpcClient, ClientError> {
        match &self.cookie {
            Some(c) => RpcClient::with_cookie(&self.url, c),
            None => Ok(RpcClient::new(&self.url, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::devnet_file::DevnetNode;

    fn env(cwd: &Path) -> Env {
        Env {
            cwd: cwd.to_path_buf(),
            default_data_dir: cwd.join("home/.lode/devnet"),
        }
    }

    fn write_devnet(dir: &Path) {
        let node = |i: u16| DevnetNode {
            name: format!("node{i}"),
            rpc: format!("http://127.0.0.1:{}/", 18440 + i),
            p2p: String::new(),
            data_dir: dir.join(format!("node{i}")),
            cookie: dir.join(format!("node{i}/.cookie")),
            mining: i == 0,
            pid: None,
            wallet_account: None,
            stratum: None,
        };
        std::fs::create_dir_all(dir).expect("mkdir");
        DevnetFile {
            network: "devnet".into(),
            nodes: vec![node(0), node(1)],
            ..DevnetFile::default()
        }
        .save(&dir.join(DEVNET_FILE_NAME))
        .expect("save");
    }

    #[test]
    fn devnet_names_pick_nodes_of_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_devnet(&tmp.path().join("devnet"));
        let env = env(tmp.path());
        let t = TargetArgs {
            devnet: Some("node1".into()),
            ..Default::default()
        }
        .resolve(&env)
        .expect("node1");
        assert_eq!(t.url, "http://127.0.0.1:18441");
        assert_eq!(t.cookie, Some(tmp.path().join("devnet/node1/.cookie")));
        assert_eq!(t.network.as_deref(), Some("devnet"));
        // No flags at all: node0 of ./devnet/devnet.json.
        let t = TargetArgs::default().resolve(&env).expect("default");
        assert_eq!(t.url, "http://127.0.0.1:18440");
        // --dir elsewhere.
        let other = tmp.path().join("other");
        write_devnet(&other);
        let t = TargetArgs {
            devnet: Some("node0".into()),
            dir: Some(other.clone()),
            ..Default::default()
        }
        .resolve(&env)
        .expect("--dir");
        assert_eq!(t.cookie, Some(other.join("node0/.cookie")));
    }

    #[test]
    fn unknown_names_missing_and_bad_files_are_one_line_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = env(tmp.path());
        let args = TargetArgs {
            devnet: Some("node7".into()),
            ..Default::default()
        };
        let e = args.resolve(&env).expect_err("no file").to_string();
        assert!(e.contains("devnet.json does not exist"), "{e}");
        write_devnet(&tmp.path().join("devnet"));
        let e = args.resolve(&env).expect_err("unknown").to_string();
        assert!(
            e.contains("no node named \"node7\"") && e.contains("node0, node1"),
            "{e}"
        );
        std::fs::write(tmp.path().join("devnet/devnet.json"), "{not json").expect("write");
        let e = args.resolve(&env).expect_err("bad json").to_string();
        assert!(e.contains("not a valid devnet file"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn node_urls_and_data_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = env(tmp.path());
        let t = TargetArgs {
            node: Some("http://10.0.0.1:9/".into()),
            cookie: Some("c".into()),
            ..Default::default()
        }
        .resolve(&env)
        .expect("url");
        assert_eq!(t.url, "http://10.0.0.1:9");
        assert_eq!(t.cookie, Some(PathBuf::from("c")));
        let e = TargetArgs {
            node: Some("10.0.0.1:9".into()),
            ..Default::default()
        }
        .resolve(&env)
        .expect_err("no scheme");
        assert!(e.to_string().starts_with("--node:"), "{e}");

        let data = tmp.path().join("data");
        let args = TargetArgs {
            data_dir: Some(data.clone()),
            ..Default::default()
        };
        let e = args.resolve(&env).expect_err("no rpc_url").to_string();
        assert!(e.contains("rpc_url") && e.contains("is a node running"), "{e}");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join(RPC_URL_FILE), "http://127.0.0.1:5555\n").expect("write");
        let t = args.resolve(&env).expect("data dir");
        assert_eq!(t.url, "http://127.0.0.1:5555");
        assert_eq!(t.cookie, Some(data.join(COOKIE_FILE)));

        // Nothing at all: the default data dir, or the default URL when it has no rpc_url.
        let t = TargetArgs::default().resolve(&env).expect("fallback");
        assert_eq!(t.url, DEFAULT_RPC_URL);
        assert_eq!(t.cookie, None);
        std::fs::create_dir_all(&env.default_data_dir).expect("mkdir");
        std::fs::write(env.default_data_dir.join(RPC_URL_FILE), "http://127.0.0.1:6666").expect("write");
        std::fs::write(env.default_data_dir.join(COOKIE_FILE), "ab").expect("write");
        let t = TargetArgs::default().resolve(&env).expect("default data dir");
        assert_eq!(t.url, "http://127.0.0.1:6666");
        assert_eq!(t.cookie, Some(env.default_data_dir.join(COOKIE_FILE)));
    }
}
