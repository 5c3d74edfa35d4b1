//! The interop tests' harness: a `Lab` of network namespaces (one per router, all joined by
//! veths to a bridge in a "switch" namespace of the lab's own, one /24 per lab) whose daemon
//! processes (`ip netns exec`) are killed and whose namespaces are deleted on every exit path,
//! panics included; helpers to poll the bgpd API with deadlines. The namespaces are the
//! workspace's shared helper's (`manul-netns`). Does I/O (processes, netns).
#![allow(dead_code)] // Each test binary uses part of the harness.

pub mod bgpd;
pub mod peers;

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use manul_netns::Netns;

/// How long any single expected event may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two polls of a daemon's state (polling always runs against a deadline).
pub const POLL: Duration = Duration::from_millis(100);

/// A router of the lab: its namespace and its address on the lab's segment.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub netns: String,
    pub address: Ipv4Addr,
}

struct Process {
    name: String,
    child: Child,
}

pub struct Lab {
    tag: String,
    subnet: u8,
    switch: Netns,
    nodes: Vec<Node>,
    /// The nodes' namespaces, removed when the lab is dropped (after its processes).
    namespaces: Vec<Netns>,
    processes: Vec<Process>,
    dir: tempfile::TempDir,
    failed: bool,
}

/// Panics unless this process is root (the lab makes network namespaces): a test whose
/// prerequisite is missing fails, it never passes without running.
pub fn require_root() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0");
    assert!(root, "needs root: run as root (scripts/test.sh)");
}

/// Panics unless every one of `programs` is installed.
pub fn require_programs(programs: &[&str]) {
    for program in programs {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            found,
            "needs {program}: install it (scripts/install-deps.sh)"
        );
    }
}

pub fn run(command: &mut Command) -> Result<String> {
    let output = command.output().with_context(|| format!("{command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?}: {}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Calls `check` every `POLL` until it returns a value; fails after `DEADLINE` with the last
/// error or `what`.
pub async fn poll<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let start = std::time::Instant::now();
    loop {
        let last = match check() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => String::new(),
            Err(error) => format!(": {error:#}"),
        };
        if start.elapsed() > DEADLINE {
            bail!("{what} did not happen in {DEADLINE:?}{last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

impl Lab {
    /// A lab with its switch namespace; `tag` names the test in namespace names.
    pub fn new(tag: &str) -> Result<Lab> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let subnet = NEXT.fetch_add(1, Ordering::Relaxed) as u8;
        let switch = Netns::new(&format!("{tag}-sw"))?;
        let lab = Lab {
            tag: tag.to_string(),
            subnet,
            switch,
            nodes: Vec::new(),
            namespaces: Vec::new(),
            processes: Vec::new(),
            dir: tempfile::tempdir()?,
            failed: false,
        };
        lab.switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        lab.switch.ip(&["link", "set", "br0", "up"])?;
        Ok(lab)
    }

    /// A new router namespace with eth0 at 10.0.<lab>.<n>/24 on the lab's bridge.
    pub fn node(&mut self, name: &str) -> Result<Node> {
        let index = self.nodes.len() + 1;
        let namespace = Netns::new(&format!("{}-{name}", self.tag))?;
        let node = Node {
            name: name.to_string(),
            netns: namespace.name().to_string(),
            address: Ipv4Addr::new(10, 0, self.subnet, index as u8),
        };
        self.nodes.push(node.clone());
        let port = format!("p{index}");
        self.switch.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            namespace.name(),
        ])?;
        self.switch
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        let cidr = format!("{}/24", node.address);
        namespace.ip(&["addr", "add", &cidr, "dev", "eth0"])?;
        namespace.ip(&["link", "set", "eth0", "up"])?;
        self.namespaces.push(namespace);
        Ok(node)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn write(&self, file: &str, text: &str) -> Result<PathBuf> {
        let path = self.path(file);
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
        Ok(path)
    }

    /// Starts `program` in `node`'s namespace as process `name` (output to `<name>.log`,
    /// appended across restarts).
    pub fn spawn(&mut self, name: &str, node: &Node, program: &Path, args: &[&str]) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("{name}.log")))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &node.netns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", program.display()))?;
        self.processes.push(Process {
            name: name.to_string(),
            child,
        });
        Ok(())
    }

    /// Runs a command in `node`'s namespace and returns its output.
    pub fn exec(&self, node: &Node, args: &[&str]) -> Result<String> {
        run(Command::new("ip")
            .args(["netns", "exec", &node.netns])
            .args(args))
    }

    /// SIGKILLs process `name` and reaps it.
    pub fn kill(&mut self, name: &str) -> Result<()> {
        let index = self
            .processes
            .iter()
            .position(|process| process.name == name)
            .with_context(|| format!("no process {name}"))?;
        let mut process = self.processes.remove(index);
        process.child.kill()?;
        process.child.wait()?;
        Ok(())
    }

    /// Fails if process `name` has exited (with the end of its log).
    pub fn check_running(&mut self, name: &str) -> Result<()> {
        let process = self
            .processes
            .iter_mut()
            .find(|process| process.name == name)
            .with_context(|| format!("no process {name}"))?;
        if let Some(status) = process.child.try_wait()? {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                .unwrap_or_default();
            bail!("{name} exited ({status}):\n{log}");
        }
        Ok(())
    }

    /// Sends `signal` ("STOP", "CONT", ...) to process `name` (`ip netns exec` execs it, so
    /// the child is the daemon itself).
    pub fn signal(&self, name: &str, signal: &str) -> Result<()> {
        let process = self
            .processes
            .iter()
            .find(|process| process.name == name)
            .with_context(|| format!("no process {name}"))?;
        run(Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(process.child.id().to_string()))?;
        Ok(())
    }

    /// Ends the test: on error the daemons' logs are printed (on panic, `drop` does it; always
    /// with MANUL_INTEROP_LOGS set).
    pub fn finish(mut self, result: Result<()>) -> Result<()> {
        self.failed = result.is_err();
        result
    }

    fn print_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                eprintln!("==== {}\n{text}", path.display());
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        let wanted = std::env::var_os("MANUL_INTEROP_LOGS").is_some();
        if self.failed || wanted || std::thread::panicking() {
            self.print_logs();
        }
        // The namespaces go with the fields, after the processes inside them.
    }
}
