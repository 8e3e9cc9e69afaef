//! Running the host's network tools with one-line errors.

use std::io::Write;
use std::process::{Command, Stdio};

use super::NetlabError;

/// Runs `args[0] args[1..]`, returning its stdout; a failure names the command and the first
/// line of its stderr.
pub fn run(args: &[&str]) -> Result<String, NetlabError> {
    run_with_input(args, None)
}

/// Like [`run`], feeding `input` on stdin (for `nft -f -`).
pub fn run_with_input(args: &[&str], input: Option<&str>) -> Result<String, NetlabError> {
    let cmd_line = args.join(" ");
    let (prog, rest) = args.split_first().ok_or_else(|| NetlabError::Command {
        cmd: String::new(),
        reason: "empty command".into(),
    })?;
    let mut cmd = Command::new(prog);
    cmd.args(rest)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let fail = |reason: String| NetlabError::Command {
        cmd: cmd_line.clone(),
        reason,
    };
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(fail(format!("{} ({})", first.trim(), out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs and ignores a failure (cleanup of what may already be gone).
pub fn run_quiet(args: &[&str]) {
    if let Err(e) = run(args) {
        tracing::debug!(error = %e, "cleanup step failed (already gone?)");
    }
}
