<<<<<<< HEAD
//! The network-namespace helper of the agent's namespace test suites: a uniquely named
//! namespace removed on drop (every exit path), `ip -n` in it, and code run on a thread that
//! entered it (sockets, netlink and child processes opened there live in it). Does I/O.

=======
//! Network namespaces for the kernel tests of `RealNetlink`: made per test with a unique name,
//! removed on drop; code runs on a thread that entered one. Does I/O (`ip`, setns). Each test
//! crate uses a part of it, hence `dead_code` is allowed.
>>>>>>> h-vxnl
#![allow(dead_code)]

use std::{
    fs::File,
    future::Future,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

use anyhow::{Context, Result, bail};
use nix::sched::CloneFlags;
<<<<<<< HEAD
=======
use serde_json::Value;
>>>>>>> h-vxnl

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A namespace of this test process; `ip netns del` on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Result<Netns> {
        let name = format!(
            "manul-t-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &name])?;
<<<<<<< HEAD
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
=======
        Ok(Netns { name })
>>>>>>> h-vxnl
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

<<<<<<< HEAD
    /// `ip netns exec <ns> <program> <args>`.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `work` on a new thread that entered this namespace.
    pub fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let path = self.path();
        let thread = std::thread::spawn(move || -> Result<T> {
            enter(&path)?;
            work()
        });
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
=======
    /// `ip -n <ns> -j <args>`, parsed.
    pub fn ip_json(&self, args: &[&str]) -> Result<Vec<Value>> {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        let output = self.ip(&all)?;
        if output.trim().is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_str(&output).with_context(|| format!("parsing ip -j {args:?}: {output}"))
>>>>>>> h-vxnl
    }

    /// Runs `test` on a new thread that entered this namespace, on a current-thread runtime.
    pub fn run<F, Fut, T>(&self, test: F) -> Result<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>>,
        T: Send + 'static,
    {
<<<<<<< HEAD
        self.run_blocking(move || {
=======
        let path = self.path();
        let thread = std::thread::spawn(move || -> Result<T> {
            enter(&path)?;
>>>>>>> h-vxnl
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(test())
<<<<<<< HEAD
        })
=======
        });
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
>>>>>>> h-vxnl
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

<<<<<<< HEAD
/// Moves the calling thread into the namespace at `path`.
=======
>>>>>>> h-vxnl
pub fn enter(path: &std::path::Path) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).context("setns")?;
    Ok(())
}

pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program).args(args).output()?;
    if !output.status.success() {
        bail!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// Panics unless this process is root: a missing prerequisite fails the test.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root: run as root (scripts/test.sh)"
    );
}

<<<<<<< HEAD
/// A veth pair between two namespaces with an address on each end (`a/len`, `b/len`), up.
pub fn wire(
    a: &Netns,
    a_if: &str,
    a_addr: &str,
    b: &Netns,
    b_if: &str,
    b_addr: &str,
) -> Result<()> {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ])?;
    a.ip(&["addr", "add", a_addr, "dev", a_if])?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["addr", "add", b_addr, "dev", b_if])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}
=======
pub fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

pub fn has_route(routes: &[Value], dst: &str, key: &str, wanted: &str) -> bool {
    routes
        .iter()
        .any(|route| field(route, "dst") == dst && field(route, key) == wanted)
}

/// An uplink in the host namespace: up0 (10.99.0.1/24, mtu 9000) with the default route.
pub fn add_uplink(host: &Netns) -> Result<()> {
    host.ip(&[
        "link", "add", "up0", "mtu", "9000", "type", "veth", "peer", "name", "up1",
    ])?;
    host.ip(&["link", "set", "up0", "up"])?;
    host.ip(&["link", "set", "up1", "up"])?;
    host.ip(&["addr", "add", "10.99.0.1/24", "dev", "up0"])?;
    Ok(())
}

/// Panics unless every one of `programs` is on the PATH: a missing prerequisite fails the test.
pub fn require_programs(programs: &[&str]) {
    for program in programs {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|output| output.status.success());
        assert!(
            found,
            "needs {program}: install it (scripts/install-deps.sh)"
        );
    }
}
>>>>>>> h-vxnl
