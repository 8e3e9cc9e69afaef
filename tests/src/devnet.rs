//! A running `lode devnet up` for end-to-end tests: started in a temp dir on ports found
//! free here, waited for with a deadline, and killed with every node it started when the
//! guard drops, however the test ends.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lode_node::client::devnet::file::DevnetFile;

use crate::lode_bin;

/// Start-up of a debug build on a busy two-core machine: generous, never a timing claim.
pub const READY: Duration = Duration::from_secs(120);
/// How long `up` may take to exit after a signal.
pub const STOP: Duration = Duration::from_secs(40);

/// A base port with `2 * nodes` free ports above it, outside Linux's ephemeral range. Test
/// files pass different `offset`s so that concurrent test processes start their searches
/// apart (each test checks its ports free; two could still pick the same range in between).
pub fn free_base(nodes: u16, offset: u32) -> u16 {
    let seed = (std::process::id() + offset) % 500;
    for attempt in 0..500u32 {
        let base = 20_000 + u16::try_from(((seed + attempt * 37) % 500) * 20).unwrap_or(0);
        if (base..base + 2 * nodes).all(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range found");
}

/// Whether `pid` is a live process (a zombie — reparented, never reaped — counts as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().to_string()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// Sends `sig` (as `kill` spells it, e.g. `-TERM`) to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// A running `lode devnet up`, killed with its nodes on drop.
pub struct DevnetUp {
    child: Option<Child>,
    /// The devnet's directory (`--dir`).
    pub dir: PathBuf,
    out: PathBuf,
}

impl DevnetUp {
    /// Starts `lode devnet up --dir DIR EXTRA…`, its output going to a file beside `dir`.
    pub fn start(dir: &Path, extra: &[&str]) -> DevnetUp {
        let out = dir.with_extension(format!("up{}.out", std::process::id()));
        let stdout = std::fs::File::create(&out).expect("stdout file");
        let stderr = stdout.try_clone().expect("clone");
        let child = Command::new(lode_bin())
            .args(["devnet", "up", "--dir"])
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn devnet up");
        DevnetUp {
            child: Some(child),
            dir: dir.to_path_buf(),
            out,
        }
    }

    /// Starts a devnet and waits until it is ready.
    pub fn ready(dir: &Path, extra: &[&str]) -> DevnetUp {
        let mut up = DevnetUp::start(dir, extra);
        up.wait_ready();
        up
    }

    /// What `up` has printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The `up` process's id (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The `up` process, handed to the caller to kill or wait for (the guard still kills
    /// the nodes on drop).
    pub fn take_child(&mut self) -> Child {
        self.child.take().expect("devnet up already stopped")
    }

    /// Waits for the ready line; panics with the output if `up` exits first.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY;
        loop {
            let out = self.output();
            if out.contains("devnet ready:") {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("devnet up exited ({status}) before ready:\n{out}");
            }
            assert!(Instant::now() < deadline, "devnet not ready after {READY:?}:\n{out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The devnet's `devnet.json`.
    pub fn file(&self) -> DevnetFile {
        lode_node::client::devnet::file::read(&self.dir).expect("devnet.json")
    }

    /// `lode ARGS --dir DIR`, its stdout; panics with stderr on failure.
    pub fn lode(&self, args: &[&str]) -> String {
        let out = Command::new(lode_bin())
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run lode");
        assert!(
            out.status.success(),
            "lode {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends `sig` to `up` and waits for it to exit; returns whether it exited with 0.
    pub fn stop_with(&mut self, sig: &str) -> bool {
        signal(self.pid(), sig);
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let deadline = Instant::now() + STOP;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("devnet up did not exit after {sig}:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DevnetUp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(file) = lode_node::client::devnet::file::read(&self.dir) {
            for pid in file.nodes.iter().filter_map(|n| n.pid).filter(|p| alive(*p)) {
                signal(pid, "-KILL");
            }
        }
    }
}
