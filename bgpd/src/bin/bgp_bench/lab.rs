//! The bench's lab: a sender and a receiver network namespace joined by a veth pair, with the
//! daemons started inside; everything is killed and removed on drop. Also the configuration
//! and route-file writers and VmHWM. Does I/O (processes, namespaces, files).

use std::{
    fmt::Write as _,
    io::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, Result, bail};

/// The receiver's address on the veth.
pub const RECEIVER: &str = "192.168.255.2";
pub const SENDER_ASN: u32 = 65001;
pub const RECEIVER_ASN: u32 = 65002;

/// The sender's address of session `peer`: its own address on the veth when there is one
/// session, otherwise one of `192.168.255.10..` (one address pair per session).
pub fn sender_address(peer: usize, peers: usize) -> String {
    if peers == 1 {
        "192.168.255.1".to_string()
    } else {
        format!("192.168.255.{}", 10 + peer)
    }
}

/// The receiver's address of session `peer`: distinct per session too when there are several,
/// as BIRD allows one session per neighbor address and port.
pub fn receiver_address(peer: usize, peers: usize) -> String {
    if peers == 1 {
        RECEIVER.to_string()
    } else {
        format!("192.168.255.{}", 100 + peer)
    }
}

/// Prefix number `index` of every set: /24-aligned slots from 10.0.0.0 up, lengths 24..=28
/// in turn, so all are distinct and none overlaps another.
pub fn prefix(index: usize) -> String {
    let address = Ipv4Addr::from(FIRST_SLOT + (index as u32) * 256);
    format!("{address}/{}", 24 + index % 5)
}

/// The address of `prefix(0)`: 10.0.0.0.
const FIRST_SLOT: u32 = 0x0A00_0000;

/// The index that `prefix` gives this IPv4 prefix, if it is one of the first `count`.
pub fn prefix_index(address: u32, length: u8, count: usize) -> Option<usize> {
    let offset = address.checked_sub(FIRST_SLOT)?;
    let index = (offset / 256) as usize;
    let generated = offset % 256 == 0 && index < count && usize::from(length) == 24 + index % 5;
    generated.then_some(index)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ns {
    Sender,
    Receiver,
}

pub struct Lab {
    names: [String; 2],
    pub dir: PathBuf,
    children: Vec<Child>,
}

fn run(command: &mut Command) -> Result<()> {
    let output = command.output().with_context(|| format!("{command:?}"))?;
    if !output.status.success() {
        bail!("{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    run(Command::new("ip").args(args))
}

impl Lab {
    /// Two namespaces, a veth pair 192.168.255.1/24 (plus `.10..` for several sessions) ⇄
    /// 192.168.255.2/24, and a scratch directory under `base`.
    pub fn new(base: &Path, peers: usize) -> Result<Lab> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = base.join(format!("lab-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let mut lab = Lab {
            names: [String::new(), String::new()],
            dir,
            children: Vec::new(),
        };
        for (slot, side) in ["snd", "rcv"].iter().enumerate() {
            let name = format!("manul-bgpbench-{tag}-{side}");
            ip(&["netns", "add", &name])?;
            lab.names[slot] = name;
        }
        let [snd, rcv] = lab.names.clone();
        ip(&["-n", &snd, "link", "set", "lo", "up"])?;
        ip(&["-n", &rcv, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &snd, "link", "add", "veth-snd", "type", "veth", "peer", "name", "veth-rcv",
            "netns", &rcv,
        ])?;
        ip(&[
            "-n",
            &snd,
            "addr",
            "add",
            "192.168.255.1/24",
            "dev",
            "veth-snd",
        ])?;
        if peers > 1 {
            for peer in 0..peers {
                let address = format!("{}/24", sender_address(peer, peers));
                ip(&["-n", &snd, "addr", "add", &address, "dev", "veth-snd"])?;
            }
        }
        ip(&[
            "-n",
            &rcv,
            "addr",
            "add",
            "192.168.255.2/24",
            "dev",
            "veth-rcv",
        ])?;
        if peers > 1 {
            for peer in 0..peers {
                let address = format!("{}/24", receiver_address(peer, peers));
                ip(&["-n", &rcv, "addr", "add", &address, "dev", "veth-rcv"])?;
            }
        }
        ip(&["-n", &snd, "link", "set", "veth-snd", "up"])?;
        ip(&["-n", &rcv, "link", "set", "veth-rcv", "up"])?;
        Ok(lab)
    }

    /// Starts `program` in a namespace (`ip netns exec` execs it: the pid is the daemon's),
    /// stderr and stdout to `<dir>/<name>.log`. Returns the pid.
    pub fn spawn(&mut self, ns: Ns, name: &str, program: &Path, args: &[&str]) -> Result<u32> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let namespace = &self.names[ns as usize];
        let child = Command::new("ip")
            .args(["netns", "exec", namespace])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", program.display()))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Runs `command` to its end inside a namespace (`ip netns exec`); fails on a non-zero exit.
    pub fn exec(&self, ns: Ns, command: &mut Command) -> Result<()> {
        let mut wrapped = Command::new("ip");
        wrapped
            .args(["netns", "exec", &self.names[ns as usize]])
            .arg(command.get_program())
            .args(command.get_args());
        run(&mut wrapped)
    }

    /// Fails when a daemon this lab started has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        for child in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!("daemon {} exited: {status}", child.id());
            }
        }
        Ok(())
    }

    /// Copies the logs and configurations (not the sockets) into `target`.
    pub fn copy_logs(&self, target: &Path) -> Result<()> {
        std::fs::create_dir_all(target)?;
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let path = entry.path();
            if path
                .extension()
                .is_some_and(|ext| ["log", "conf", "toml"].iter().any(|e| ext == *e))
            {
                std::fs::copy(&path, target.join(entry.file_name()))?;
            }
        }
        Ok(())
    }

    /// The last lines of every log, for an error report.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                let _ = writeln!(out, "==== {}\n{tail}", path.display());
            }
        }
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in &self.names {
            if !name.is_empty() {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Result<Scratch> {
        let path = std::env::temp_dir().join(format!("manul-bgp-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `route P blackhole;` lines for prefixes `start..start + count`, written once per run.
pub fn route_file(scratch: &Path, start: usize, count: usize) -> Result<PathBuf> {
    let path = scratch.join(format!("routes-{start}-{count}.conf"));
    if !path.exists() {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for index in start..start + count {
            writeln!(out, "route {} blackhole;", prefix(index))?;
        }
        out.flush()?;
    }
    Ok(path)
}

/// A BIRD originating `per_peer` prefixes on each of `peers` sessions, one static protocol
/// and one table per session (so no export filter runs). `passive`: waits for connections;
/// otherwise its sessions start disabled (`enable "p*"` connects them all at once).
pub fn bird_sender(scratch: &Path, peers: usize, per_peer: usize, passive: bool) -> Result<String> {
    let mut text = String::from(
        "router id 192.168.255.1;\nlog stderr all;\ntimeformat protocol \"%s.%3f\";\nprotocol device {}\n",
    );
    // BIRD 2.0.12's main loop sometimes leaves a session's last UPDATE and its End-of-RIB
    // unsent until its poll() times out, which is after 3 s when no timer is due (packet
    // captures: every other session done, the receiver's window open, then 3.0 s of silence
    // before the last 427 bytes). Both receivers suffered it at random, which made the
    // timings bimodal. A Babel hello timer every 20 ms wakes the loop; the sender's hellos
    // go to the receiver's namespace, where nothing listens for them.
    text.push_str(
        "protocol babel wake {\n  interface \"veth-snd\" { hello interval 20 ms; };\n  ipv4 { import none; export none; };\n  ipv6 { import none; export none; };\n}\n",
    );
    let mode = if passive {
        "passive on;"
    } else {
        "disabled; connect delay time 1; connect retry time 1;"
    };
    for peer in 0..peers {
        let routes = route_file(scratch, peer * per_peer, per_peer)?;
        let local = sender_address(peer, peers);
        let neighbor = receiver_address(peer, peers);
        write!(
            text,
            r#"ipv4 table t{peer};
protocol static s{peer} {{
  ipv4 {{ table t{peer}; }};
include "{}";
}}
protocol bgp p{peer} {{
  local {local} as {SENDER_ASN};
  neighbor {neighbor} as {RECEIVER_ASN};
  {mode}
  ipv4 {{ table t{peer}; import none; export all; }};
}}
"#,
            routes.display()
        )?;
    }
    Ok(text)
}

/// A BIRD importing everything from `peers` sessions (no kernel protocol: RIB only, like
/// manul-bgpd) and exporting nothing. `passive`: waits for the sender to connect.
pub fn bird_receiver(peers: usize, passive: bool) -> String {
    let mode = if passive {
        "passive on;"
    } else {
        "connect delay time 1;"
    };
    let mut text = format!(
        "router id {RECEIVER};\nlog stderr all;\ntimeformat protocol \"%s.%3f\";\nprotocol device {{}}\n"
    );
    for peer in 0..peers {
        let neighbor = sender_address(peer, peers);
        let local = receiver_address(peer, peers);
        let _ = write!(
            text,
            r#"protocol bgp r{peer} {{
  local {local} as {RECEIVER_ASN};
  neighbor {neighbor} as {SENDER_ASN};
  {mode}
  ipv4 {{ import all; export none; }};
}}
"#
        );
    }
    text
}

/// manul-bgpd importing everything from `peers` sessions, waiting for the sender to connect.
pub fn manul_receiver(peers: usize) -> String {
    let mut text = format!("[global]\nasn = {RECEIVER_ASN}\nrouter_id = \"{RECEIVER}\"\n");
    for peer in 0..peers {
        let _ = write!(
            text,
            r#"
[[peer]]
address = "{}"
local_address = "{}"
asn = {SENDER_ASN}
passive = true
import = {{ default = "accept" }}
export = {{ default = "reject" }}
"#,
            sender_address(peer, peers),
            receiver_address(peer, peers)
        );
    }
    text
}

/// manul-bgpd originating `count` prefixes to one passive session.
pub fn manul_sender(count: usize) -> String {
    let mut text = String::from("originate = [\n");
    for index in 0..count {
        let _ = writeln!(text, "  \"{}\",", prefix(index));
    }
    let _ = write!(
        text,
        r#"]
[global]
asn = {SENDER_ASN}
router_id = "192.168.255.1"
listen_address = "192.168.255.1"

[[peer]]
address = "{RECEIVER}"
local_address = "192.168.255.1"
asn = {RECEIVER_ASN}
passive = true
import = {{ default = "reject" }}
export = {{ default = "accept" }}
"#
    );
    text
}

/// Peak resident set size (VmHWM) of a live process, in KiB.
pub fn vm_hwm_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .context("VmHWM format")?
        .parse()?;
    Ok(kib)
}

/// CPU time (user + system) a live process has used, in seconds (/proc/PID/stat, in the
/// kernel's USER_HZ of 100 ticks per second).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/PID/stat format")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}
