//! The network-namespace helper every test suite of manul shares (the agent's and bgpd's
//! namespace tests, the e2e harness, the lab and the benchmarks). `Netns`: a uniquely named
//! network namespace (`ip netns add`) removed on drop, on every exit path of a test, with helpers
//! to run commands and code inside it; `poll_until`, the one way the suites wait for a
//! condition (polling with a deadline, never a fixed sleep). Does I/O (iproute2, setns,
//! signals).
//!
//! Commands are spawned from a short-lived thread that has entered the namespace with setns:
//! the child inherits the thread's network namespace but keeps the root mount namespace. That
//! is cheaper than `ip netns exec` (no extra exec, no sysfs remount) and it is what podman
//! needs: under `ip netns exec` the fresh /sys hides the cgroup mounts and runc fails with
//! "no cgroup mount found in mountinfo".

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// Polls `f` until it returns `Some`, backing off from 5 ms to 100 ms, failing after `timeout`
/// with `what` and the last error or "condition not met yet".
pub fn poll_until<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        let last = match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "condition not met yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// A number unique within this process (namespace names, ports, container ids).
pub fn next_id() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Prefix of every namespace the harness creates (unless [`set_name_prefix`] changed it).
pub const PREFIX: &str = "manul-e2e-";

static NAME_PREFIX: OnceLock<&'static str> = OnceLock::new();

/// Names the namespaces this process creates `<prefix><pid>-<counter>-<tag>` instead of
/// [`PREFIX`]: the demo uses `manul-demo-`, so that the stale-namespace sweep of a later test
/// run never removes what `manul-demo --keep` left running. Call it before the first
/// [`Netns::new`]; only the first call counts.
pub fn set_name_prefix(prefix: &'static str) {
    let _ = NAME_PREFIX.set(prefix);
}

/// The prefix of the namespaces this process creates ([`PREFIX`] unless set otherwise).
pub fn name_prefix() -> &'static str {
    NAME_PREFIX.get().copied().unwrap_or(PREFIX)
}

/// A network namespace owned by the harness; removed (with the processes it tracks and every
/// process still inside it) when dropped.
pub struct Netns {
    name: String,
    tracked: Mutex<Vec<Child>>,
    /// False for a namespace another process made ([`Netns::attach`]): dropping it removes
    /// nothing.
    owned: bool,
}

impl Netns {
    /// Creates `manul-e2e-<pid>-<counter>-<tag>` ([`name_prefix`]) with `lo` up.
    pub fn new(tag: &str) -> Result<Netns> {
        static STALE: Once = Once::new();
        STALE.call_once(remove_stale);
        let name = format!(
            "{}{}-{}-{tag}",
            name_prefix(),
            std::process::id(),
            next_id()
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns {
            name,
            tracked: Mutex::new(Vec::new()),
            owned: true,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A namespace that exists already (made by another process, e.g. `manul-lab up`); it is
    /// left alone when dropped.
    pub fn attach(name: &str) -> Result<Netns> {
        let path = PathBuf::from("/run/netns").join(name);
        if !path.exists() {
            bail!("network namespace {name} does not exist");
        }
        Ok(Netns {
            name: name.to_string(),
            tracked: Mutex::new(Vec::new()),
            owned: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`, the path a CNI plugin gets as CNI_NETNS.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Moves the calling thread into this namespace (for a thread of its own: it stays there).
    pub fn enter_current_thread(&self) -> Result<()> {
        enter(&self.path())
    }

    /// Runs `f` on a fresh thread inside this namespace (sockets it opens live there).
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| -> Result<T> {
                self.enter_current_thread()?;
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread inside {} panicked", self.name))?
        })
    }

    /// Runs `work` on a new thread that entered this namespace; a panic in it is the caller's.
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
    }

    /// Runs `test` on a new thread that entered this namespace, on a current-thread tokio
    /// runtime: netlink connections and sockets it opens live in the namespace.
    pub fn run<F, Fut, T>(&self, test: F) -> Result<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>>,
        T: Send + 'static,
    {
        self.run_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(test())
        })
    }

    /// Spawns `cmd` inside this namespace (root mount namespace kept).
    pub fn spawn(&self, cmd: &mut Command) -> Result<Child> {
        self.run_in(|| cmd.spawn())?
            .with_context(|| format!("spawn {cmd:?} in {}", self.name))
    }

    /// Spawns `cmd` inside this namespace and keeps it: it is killed when the namespace goes.
    pub fn spawn_tracked(&self, cmd: &mut Command) -> Result<u32> {
        let child = self.spawn(cmd)?;
        let pid = child.id();
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        Ok(pid)
    }

    /// Runs `cmd` to completion inside this namespace.
    pub fn output(&self, cmd: &mut Command) -> Result<Output> {
        cmd.stdin(Stdio::null());
        self.run_in(|| cmd.output())?
            .with_context(|| format!("run {cmd:?} in {}", self.name))
    }

    /// Runs `args[0]` with the rest as arguments inside this namespace.
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        let (prog, rest) = args.split_first().context("empty command")?;
        self.output(Command::new(prog).args(rest))
    }

    /// Like [`Netns::exec`] but fails unless the command succeeds; returns its stdout.
    pub fn exec_ok(&self, args: &[&str]) -> Result<String> {
        check(args, self.exec(args)?)
    }

    /// `ip -n <name> <args>`, which must succeed; returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// `ip -n <name> -j <args>` parsed as JSON (e.g. `&["route", "show"]`).
    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let out = run(Command::new("ip").args(["-n", &self.name, "-j"]).args(args))?;
        if out.trim().is_empty() {
            return Ok(Value::Array(Vec::new()));
        }
        serde_json::from_str(&out).with_context(|| format!("ip -j {args:?}: {out}"))
    }

    /// `ip -n <name> -j <args>` parsed as a list (empty output: an empty list).
    pub fn ip_json(&self, args: &[&str]) -> Result<Vec<Value>> {
        match self.json(args)? {
            Value::Array(items) => Ok(items),
            other => bail!("ip -j {args:?}: not a list: {other}"),
        }
    }

    /// Writes a sysctl of this namespace, e.g. `("net.ipv4.ip_forward", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        self.run_in(|| std::fs::write(&path, value))?
            .with_context(|| format!("sysctl {key}={value} in {}", self.name))
    }

    /// Names of the links in this namespace.
    pub fn link_names(&self) -> Result<Vec<String>> {
        let links = self.json(&["link", "show"])?;
        Ok(links
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let tracked = std::mem::take(self.tracked.get_mut().unwrap_or_else(|e| e.into_inner()));
        for child in tracked {
            stop_child(child, Duration::from_secs(3));
        }
        if self.owned {
            remove(&self.name);
        }
    }
}

/// Moves the calling thread into the namespace at `path` (for a thread of its own).
pub fn enter(path: &std::path::Path) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns into {}", path.display()))
}

/// SIGTERM, wait up to `grace`, then SIGKILL; always reaps the child.
pub fn stop_child(mut child: Child, grace: Duration) {
    let pid = Pid::from_raw(child.id() as i32);
    if matches!(child.try_wait(), Ok(None)) {
        let _ = kill(pid, Signal::SIGTERM);
        let exited = poll_until(grace, "child exit", || Ok(child.try_wait()?.map(|_| ())));
        if exited.is_err() {
            let _ = child.kill();
        }
    }
    let _ = child.wait();
}

/// Kills whatever still runs inside namespace `name`, then deletes it. Never panics.
pub fn remove(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
}

/// Removes every harness namespace created by process `pid` (Ctrl-C cleanup of the bench).
pub fn remove_all_of(pid: u32) {
    remove_all_with_prefix(&format!("{}{pid}-", name_prefix()));
}

/// Removes every namespace whose name starts with `prefix`; returns how many there were.
pub fn remove_all_with_prefix(prefix: &str) -> usize {
    let names = list_with_prefix(prefix);
    for name in &names {
        remove(name);
    }
    names.len()
}

fn list_own() -> Vec<String> {
    list_with_prefix(PREFIX)
}

fn list_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Removes namespaces left by harness processes that no longer exist.
fn remove_stale() {
    for name in list_own() {
        let pid = name[PREFIX.len()..]
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !PathBuf::from(format!("/proc/{pid}")).exists()
        {
            remove(&name);
        }
    }
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    check(&[&format!("{cmd:?}")], out)
}

/// The stdout of a finished command, or an error naming it (`what`) with its status, stderr
/// and stdout.
pub fn check(what: &[&str], out: Output) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
