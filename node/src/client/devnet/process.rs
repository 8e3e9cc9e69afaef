//! Node processes at the OS level: starting one that dies with its supervisor, signalling
//! a pid, and telling whether a pid is still one of ours.

use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

/// Signals `lode devnet` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Ask to stop cleanly.
    Term,
    /// Stop now.
    Kill,
}

/// Starts `exe args…` with stdout and stderr appended to `log`, stdin closed, in its own
/// process group (a terminal's Ctrl-C reaches only the supervisor, which then stops the
/// nodes in order), and — on Linux — with SIGTERM as its parent-death signal, so it stops
/// even when the supervisor is SIGKILLed.
///
/// The parent-death signal follows the *thread* that forked: call this from a thread that
/// lives as long as the supervisor (`lode devnet` runs a current-thread runtime on `main`).
pub fn spawn_node(exe: &Path, args: &[String], log: &Path) -> std::io::Result<Child> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(false);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec; it only calls prctl and getppid
        // (async-signal-safe) and builds an io::Error from a raw code without allocating.
        unsafe {
            cmd.pre_exec(move || die_with_parent(parent));
        }
    }
    cmd.spawn()
}

/// In the child, before exec: SIGTERM when the parent dies; fail if it already has.
#[cfg(target_os = "linux")]
fn die_with_parent(parent: u32) -> std::io::Result<()> {
    let signal = libc::c_ulong::try_from(libc::SIGTERM).unwrap_or(15);
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory; getppid has
    // no preconditions.
    let (rc, ppid) = unsafe { (libc::prctl(libc::PR_SET_PDEATHSIG, signal), libc::getppid()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The supervisor died between fork and prctl: the signal will never come.
    if u32::try_from(ppid).ok() != Some(parent) {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Sends `signal` to `pid`; false if there is no such process (or it is not ours).
pub fn send_signal(pid: u32, signal: Signal) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    let sig = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill takes plain integers; pid > 0 addresses exactly one process.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Whether `pid` is a live process (a zombie counts as gone). Reads `/proc` on Linux.
pub fn alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: "PID (comm) S ...".
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether `pid` is alive and its command line contains `needle` (guards against a
/// recycled pid before signalling it).
pub fn alive_with_arg(pid: u32, needle: &str) -> bool {
    if !alive(pid) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) => bytes.split(|b| *b == 0).any(|arg| arg == needle.as_bytes()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_bogus_pids_are_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(0));
        assert!(!alive(u32::MAX));
        assert!(!send_signal(0, Signal::Term));
        assert!(!alive_with_arg(std::process::id(), "no such argument, surely"));
    }
}
