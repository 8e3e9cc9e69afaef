//! A lab: N host namespaces, each with one cable (`eth0` ↔ switch port `pI`) into a bridge
//! that lives in a switch namespace, plus a control cable from the root namespace (so the
//! tests and `lode devnet` reach every node's RPC without crossing any shaping).
//!
//! Names: `PREFIX-sw`, `PREFIX-h1`…`PREFIX-hN`, root veth `PREFIX-r`. Addresses: host I is
//! `BASE.I`, the root side `BASE.254`. Everything is removed by [`Lab::destroy`] (also on
//! drop, so a panicking test cleans up) and, after a crash, by [`clean_prefix`] at the next
//! [`Lab::create`] with that prefix.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::delayer::QueueLink;
use super::profile::LinkShape;
use super::sh::{run, run_quiet, run_with_input};
use super::NetlabError;

/// nft table of the partition rules (in the switch's bridge family).
const PART_TABLE: &str = "lode_part";
/// Longest interface name Linux takes.
const IFNAME_MAX: usize = 15;

/// What to build.
#[derive(Clone, Debug)]
pub struct LabSpec {
    /// Name prefix of every object (`lode-t7`, `lode-dn`); at most 10 characters.
    pub prefix: String,
    /// First three octets of the lab's /24.
    pub subnet: [u8; 3],
    /// Number of hosts.
    pub hosts: usize,
    /// The `lode` binary (runs the delayer).
    pub lode_bin: PathBuf,
    /// Seed of the delayer's random draws.
    pub seed: u64,
}

/// A built lab. See the module doc.
#[derive(Debug)]
pub struct Lab {
    spec: LabSpec,
    shapes: Vec<LinkShape>,
    delayer: Option<Child>,
    partition: Option<Vec<Vec<usize>>>,
    unplugged: Vec<usize>,
    destroyed: bool,
}

/// Whether this process can build labs here: root, and `ip netns add` works. The error
/// says why not (the tests print it after `SKIP:`).
pub fn probe() -> Result<(), NetlabError> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid != 0 {
        return Err(NetlabError::NotRoot(uid));
    }
    for tool in ["ip", "tc", "iptables", "nft"] {
        if run(&["sh", "-c", &format!("command -v {tool}")]).is_err() {
            return Err(NetlabError::Command {
                cmd: tool.into(),
                reason: "not installed (apt-get install iproute2 iptables nftables)".into(),
            });
        }
    }
    let name = format!("lode-probe-{}", std::process::id());
    run(&["ip", "netns", "add", &name])?;
    run_quiet(&["ip", "netns", "del", &name]);
    Ok(())
}

/// Removes every namespace named `PREFIX-*` (killing what runs in it first: a namespace with
/// live processes loses its name but lives on) and the root veth `PREFIX-r`.
pub fn clean_prefix(prefix: &str) -> Result<usize, NetlabError> {
    let list = run(&["ip", "netns", "list"])?;
    let mine: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect();
    for ns in &mine {
        kill_all_in(ns);
    }
    for ns in &mine {
        run_quiet(&["ip", "netns", "del", ns]);
    }
    run_quiet(&["ip", "link", "del", &format!("{prefix}-r")]);
    Ok(mine.len())
}

/// SIGKILLs every process in namespace `ns` and waits (briefly) until none is left.
fn kill_all_in(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<i32> = run(&["ip", "netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            // SAFETY: kill takes a pid and a signal; no memory is passed.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Drops every frame the bridge in `switch_ns` would forward between two of `groups` (host
/// numbers), replacing any cut in force. Stateless, so another process than the lab's owner
/// (`lode devnet partition`) can call it.
pub fn cut_at_switch(switch_ns: &str, groups: &[Vec<usize>]) -> Result<(), NetlabError> {
    heal_at_switch(switch_ns)?;
    let mut text = format!("table bridge {PART_TABLE} {{\n");
    for (g, hosts) in groups.iter().enumerate() {
        let names: Vec<String> = hosts.iter().map(|i| format!("\"p{i}\"")).collect();
        text += &format!("  set g{g} {{ type ifname; elements = {{ {} }} }}\n", names.join(", "));
    }
    // `fwd` is an nft keyword: the chain is named `cut`.
    text += "  chain cut { type filter hook forward priority 0; policy accept;\n";
    for a in 0..groups.len() {
        for b in (0..groups.len()).filter(|&b| b != a) {
            text += &format!("    iifname @g{a} oifname @g{b} drop\n");
        }
    }
    text += "  }\n}\n";
    run_with_input(&["ip", "netns", "exec", switch_ns, "nft", "-f", "-"], Some(&text))?;
    Ok(())
}

/// Bytes host `i`'s cable carried, as the kernel counted them on its switch port `pI`:
/// (sent by the host, received by the host). Measured, not configured: retransmissions and
/// protocol overhead included.
pub fn cable_bytes(switch_ns: &str, i: usize) -> Result<(u64, u64), NetlabError> {
    let read = |which: &str| -> Result<u64, NetlabError> {
        let path = format!("/sys/class/net/p{i}/statistics/{which}");
        let text = run(&["ip", "netns", "exec", switch_ns, "cat", &path])?;
        text.trim().parse().map_err(|e| NetlabError::Command {
            cmd: format!("cat {path}"),
            reason: format!("not a byte count: {e}"),
        })
    };
    // The port's receive side is what the host sent into the switch.
    Ok((read("rx_bytes")?, read("tx_bytes")?))
}

/// Removes the cut [`cut_at_switch`] made, if there is one.
pub fn heal_at_switch(switch_ns: &str) -> Result<(), NetlabError> {
    let tables = run(&["ip", "netns", "exec", switch_ns, "nft", "list", "tables", "bridge"])?;
    if tables.contains(PART_TABLE) {
        run(&[
            "ip", "netns", "exec", switch_ns, "nft", "delete", "table", "bridge", PART_TABLE,
        ])?;
    }
    Ok(())
}

impl Lab {
    /// Removes what an earlier lab of this prefix left, then builds the namespaces, the
    /// bridge and the cables (unshaped: see [`Lab::shape`]).
    pub fn create(spec: LabSpec) -> Result<Lab, NetlabError> {
        if spec.prefix.len() + 4 > IFNAME_MAX || spec.hosts == 0 || spec.hosts > 250 {
            return Err(NetlabError::Profile(format!(
                "lab prefix {:?} too long or {} hosts out of 1..=250",
                spec.prefix, spec.hosts
            )));
        }
        let stale = clean_prefix(&spec.prefix)?;
        if stale > 0 {
            tracing::info!(prefix = %spec.prefix, stale, "removed a stale lab");
        }
        let mut lab = Lab {
            shapes: vec![LinkShape::default(); spec.hosts],
            spec,
            delayer: None,
            partition: None,
            unplugged: Vec::new(),
            destroyed: false,
        };
        // On error, drop removes what was built so far.
        lab.build()?;
        Ok(lab)
    }

    fn build(&mut self) -> Result<(), NetlabError> {
        let sw = self.switch_ns();
        run(&["ip", "netns", "add", &sw])?;
        run(&["ip", "-n", &sw, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        // Bridged IP packets pass iptables FORWARD (the delayer's NFQUEUE rules).
        run(&[
            "ip",
            "netns",
            "exec",
            &sw,
            "sysctl",
            "-q",
            "-w",
            "net.bridge.bridge-nf-call-iptables=1",
        ])?;
        for i in 1..=self.spec.hosts {
            let h = self.host_ns(i);
            let port = format!("p{i}");
            run(&["ip", "netns", "add", &h])?;
            run(&["ip", "-n", &h, "link", "set", "lo", "up"])?;
            run(&[
                "ip", "link", "add", "eth0", "netns", &h, "type", "veth", "peer", "name", &port, "netns", &sw,
            ])?;
            run(&["ip", "-n", &sw, "link", "set", &port, "master", "br0"])?;
            run(&["ip", "-n", &sw, "link", "set", &port, "up"])?;
            run(&[
                "ip",
                "-n",
                &h,
                "addr",
                "add",
                &format!("{}/24", self.host_ip(i)),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", &h, "link", "set", "eth0", "up"])?;
        }
        let root = self.root_if();
        run(&[
            "ip", "link", "add", &root, "type", "veth", "peer", "name", "pr", "netns", &sw,
        ])?;
        run(&["ip", "-n", &sw, "link", "set", "pr", "master", "br0"])?;
        run(&["ip", "-n", &sw, "link", "set", "pr", "up"])?;
        run(&["ip", "addr", "add", &format!("{}/24", self.root_ip()), "dev", &root])?;
        run(&["ip", "link", "set", &root, "up"])?;
        Ok(())
    }

    /// The switch namespace's name.
    pub fn switch_ns(&self) -> String {
        format!("{}-sw", self.spec.prefix)
    }

    /// Host `i`'s namespace name (1-based).
    pub fn host_ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.spec.prefix)
    }

    /// The root namespace's control interface.
    pub fn root_if(&self) -> String {
        format!("{}-r", self.spec.prefix)
    }

    /// Host `i`'s address.
    pub fn host_ip(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.spec.subnet;
        Ipv4Addr::new(a, b, c, u8::try_from(i).unwrap_or(0))
    }

    /// The root namespace's address in the lab.
    pub fn root_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.spec.subnet;
        Ipv4Addr::new(a, b, c, 254)
    }

    /// Number of hosts.
    pub fn hosts(&self) -> usize {
        self.spec.hosts
    }

    /// Bytes host `i`'s cable carried: (sent by the host, received by it). See [`cable_bytes`].
    pub fn cable_bytes(&self, i: usize) -> Result<(u64, u64), NetlabError> {
        cable_bytes(&self.switch_ns(), i)
    }

    /// The current shape of host `i`'s link.
    pub fn shape_of(&self, i: usize) -> Option<LinkShape> {
        self.shapes.get(i.wrapping_sub(1)).copied()
    }

    /// The partition in force, if any (groups of host numbers).
    pub fn partition(&self) -> Option<&[Vec<usize>]> {
        self.partition.as_deref()
    }

    /// Hosts whose cable is pulled.
    pub fn unplugged(&self) -> &[usize] {
        &self.unplugged
    }

    /// A command that runs `program` inside host `i`'s namespace (`ip netns exec` replaces
    /// itself with the program, so the child's pid is the program's). The program is
    /// SIGKILLed if the thread that spawns it dies, so a killed test leaves no node behind.
    pub fn command_in(&self, i: usize, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host_ns(i)]).arg(program);
        die_with_parent(&mut c);
        c
    }

    /// Applies `shapes` (one per host) in place of the current ones: bandwidth as `tbf` on
    /// both ends of each cable, delay/jitter/loss through the delayer (restarted).
    pub fn shape(&mut self, shapes: &[LinkShape]) -> Result<(), NetlabError> {
        if shapes.len() != self.spec.hosts {
            return Err(NetlabError::Profile(format!(
                "{} link shapes for {} hosts",
                shapes.len(),
                self.spec.hosts
            )));
        }
        self.stop_delayer();
        let sw = self.switch_ns();
        run(&["ip", "netns", "exec", &sw, "iptables", "-F", "FORWARD"])?;
        let mut links = Vec::new();
        for (idx, s) in shapes.iter().enumerate() {
            let i = idx + 1;
            let h = self.host_ns(i);
            let port = format!("p{i}");
            run_quiet(&["ip", "netns", "exec", &sw, "tc", "qdisc", "del", "dev", &port, "root"]);
            run_quiet(&["ip", "netns", "exec", &h, "tc", "qdisc", "del", "dev", "eth0", "root"]);
            if let Some(k) = s.rate_kbit {
                let rate = format!("{k}kbit");
                // Buffer about 200 ms of the link (at least 16 kB): deep enough for TCP to
                // fill the pipe, shallow enough not to add seconds of queueing.
                let burst = format!("{}b", (u64::from(k) * 1000 / 8 / 5).max(16_000));
                for (ns, dev) in [(&sw, port.as_str()), (&h, "eth0")] {
                    run(&[
                        "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate,
                        "burst", "16kb", "limit", &burst,
                    ])?;
                }
            }
            if s.needs_delayer() {
                let queue = u16::try_from(i).unwrap_or(u16::MAX);
                // To host i, except what the root namespace sends (the control cable).
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    &sw,
                    "iptables",
                    "-A",
                    "FORWARD",
                    "-m",
                    "physdev",
                    "--physdev-out",
                    &port,
                    "!",
                    "--physdev-in",
                    "pr",
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &queue.to_string(),
                    "--queue-bypass",
                ])?;
                links.push(QueueLink {
                    queue,
                    delay_us: u64::try_from(s.delay.as_micros()).unwrap_or(u64::MAX),
                    jitter_us: u64::try_from(s.jitter.as_micros()).unwrap_or(u64::MAX),
                    loss_ppm: s.loss_ppm,
                });
            }
        }
        self.shapes = shapes.to_vec();
        if !links.is_empty() {
            self.start_delayer(&links)?;
        }
        Ok(())
    }

    fn start_delayer(&mut self, links: &[QueueLink]) -> Result<(), NetlabError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.switch_ns()])
            .arg(&self.spec.lode_bin)
            .arg("netem-delay")
            .args(["--seed", &self.spec.seed.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for l in links {
            cmd.args(["--link", &l.arg()]);
        }
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| NetlabError::Command {
            cmd: "lode netem-delay".into(),
            reason: e.to_string(),
        })?;
        self.delayer = Some(child);
        // `--queue-bypass` lets packets through unqueued until the delayer has bound its
        // queues: wait for the binding so shaping is in force when this returns.
        let deadline = Instant::now() + Duration::from_secs(10);
        let want = links.len();
        loop {
            let bound = std::fs::read_to_string(format!("/proc/{}/net/netfilter/nfnetlink_queue", self.delayer_pid()))
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if bound >= want {
                return Ok(());
            }
            if let Some(d) = self.delayer.as_mut() {
                if let Ok(Some(status)) = d.try_wait() {
                    return Err(NetlabError::Delayer(format!("exited at start ({status})")));
                }
            }
            if Instant::now() > deadline {
                return Err(NetlabError::Delayer("did not bind its queues within 10 s".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn delayer_pid(&self) -> u32 {
        self.delayer.as_ref().map_or(0, Child::id)
    }

    fn stop_delayer(&mut self) {
        if let Some(mut d) = self.delayer.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// Cuts the bridge between every pair of `groups` (host numbers); hosts in no group
    /// keep talking to everyone. Replaces any partition in force.
    pub fn set_partition(&mut self, groups: &[Vec<usize>]) -> Result<(), NetlabError> {
        if let Some(&i) = groups.iter().flatten().find(|&&i| i == 0 || i > self.spec.hosts) {
            return Err(NetlabError::NoHost(i));
        }
        cut_at_switch(&self.switch_ns(), groups)?;
        self.partition = Some(groups.to_vec());
        Ok(())
    }

    /// Removes the partition, if any.
    pub fn heal(&mut self) -> Result<(), NetlabError> {
        if self.partition.take().is_some() {
            heal_at_switch(&self.switch_ns())?;
        }
        Ok(())
    }

    /// Pulls (`plugged == false`) or plugs back host `i`'s cable at the switch.
    pub fn set_cable(&mut self, i: usize, plugged: bool) -> Result<(), NetlabError> {
        if i == 0 || i > self.spec.hosts {
            return Err(NetlabError::NoHost(i));
        }
        let state = if plugged { "up" } else { "down" };
        run(&["ip", "-n", &self.switch_ns(), "link", "set", &format!("p{i}"), state])?;
        self.unplugged.retain(|&h| h != i);
        if !plugged {
            self.unplugged.push(i);
        }
        Ok(())
    }

    /// Kills everything in the lab's namespaces and removes them (idempotent).
    pub fn destroy(&mut self) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        self.stop_delayer();
        if let Err(e) = clean_prefix(&self.spec.prefix) {
            tracing::warn!(prefix = %self.spec.prefix, error = %e, "lab cleanup failed");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// The child gets SIGKILL when the thread that spawned it dies, so a crashed test or
/// devnet leaves no delayer running.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
