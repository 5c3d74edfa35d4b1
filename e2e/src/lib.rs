//! manul-e2e: the end-to-end harness (network namespaces, nodes running the real `manul-agent`,
//! pods wired by the real `manul` CNI plugin, podman as a CNI caller). Everything here does I/O
//! and needs root.
//!
//! # Building the binaries under test
//!
//! The harness runs the workspace's own binaries (`manul-agent`, `manul`) from the target
//! directory of the profile the test binary was built in ([`bin_path`]). A dev-dependency on
//! `manul-agent` would only build its library, not its bins, so run the tests with
//!
//! ```text
//! cargo test --workspace                 # builds every bin of the workspace first
//! cargo test --workspace --release       # same, release profile
//! ```
//!
//! (cargo builds a package's bin executables for `cargo test` because that package has
//! integration tests: agent/tests/ must stay non-empty for this to hold.)
//! `cargo test -p manul-e2e` alone does not build `manul-agent`'s bins; [`bin_path`] then fails
//! with a message saying so. `MANUL_BIN_DIR` overrides the directory.
//!
//! # Isolation
//!
//! Every namespace is named `manul-e2e-<pid>-<counter>-<tag>` ([`Netns`]) and removed in `Drop`,
//! also while unwinding from a panic; namespaces left by a process that no longer exists (a test
//! killed with SIGKILL) are removed when the next harness process creates its first namespace.
//! Uplink subnets `10.99.<n>.0/24` are reserved with a lock file held for the node's lifetime,
//! so that tests of several binaries and threads never share one. Nothing touches the root
//! network namespace: commands that must run "on a node" are spawned from a thread that has
//! entered the node's namespace (see [`Netns::command`]).

pub mod agent_client;
pub mod bench;
pub mod chain;
pub mod cni;
pub mod floor;
pub mod iperf;
pub mod lab;
/// The shared namespace helper (the `netns/` crate), under the name the harness always used.
pub use manul_netns as netns;
pub mod node;
pub mod ping;
pub mod podman;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub use chain::Chain;
pub use cni::{CniCall, CniOutcome, Pod};
pub use netns::Netns;
pub use node::{Node, NodeOptions};
pub use podman::Podman;

pub use manul_netns::{next_id, poll_until};

/// The directory holding the workspace binaries of the profile this process was built in:
/// `target/<profile>/` (from `target/<profile>/deps/<test>-<hash>` or `target/<profile>/<bin>`).
pub fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MANUL_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    let mut dir = exe.parent().context("exe has no parent")?.to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Path of a workspace binary (`manul-agent`, `manul`), checked to exist.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if !path.is_file() {
        bail!(
            "{} not found: build the workspace binaries first \
             (`cargo test --workspace` or `cargo build --workspace`, same profile), \
             or set MANUL_BIN_DIR",
            path.display()
        );
    }
    Ok(path)
}

/// Directory of the reference CNI plugins (Debian's containernetworking-plugins).
pub const REFERENCE_PLUGIN_DIR: &str = "/usr/lib/cni";

/// Path of a reference CNI plugin such as `ptp`, `host-local` or `portmap`.
pub fn reference_plugin(name: &str) -> PathBuf {
    PathBuf::from(REFERENCE_PLUGIN_DIR).join(name)
}

/// Fails with a clear message unless this process can create namespaces (root).
pub fn require_root() -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the e2e tests need root (network namespaces, veths, podman)");
    }
    Ok(())
}

/// Fails naming the Debian package to install for the first of `programs` (program, package)
/// that is not on the PATH.
pub fn require_programs(programs: &[(&str, &str)]) -> Result<()> {
    for (program, package) in programs {
        let found = std::process::Command::new("which")
            .arg(program)
            .output()
            .is_ok_and(|output| output.status.success());
        if !found {
            bail!(
                "{program} is missing: apt-get install {package} (or run scripts/install-deps.sh)"
            );
        }
    }
    Ok(())
}

/// A host port for a test, distinct across the tests of one process (18000-19999).
pub fn unique_port() -> u16 {
    18000 + ((std::process::id() * 13 + next_id()) % 2000) as u16
}

/// `GET /` over HTTP/1.0 from inside `ns` (a thread that entered it); returns the whole reply.
/// One attempt with short timeouts: wrap it in [`poll_until`].
pub fn http_get(ns: &Netns, addr: SocketAddr) -> Result<String> {
    http_get_path(ns, addr, "/")
}

/// [`http_get`] of `path`.
pub fn http_get_path(ns: &Netns, addr: SocketAddr, path: &str) -> Result<String> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: e2e\r\n\r\n");
    ns.run_in(|| -> Result<String> {
        let t = Duration::from_secs(2);
        let mut s =
            TcpStream::connect_timeout(&addr, t).with_context(|| format!("connect {addr}"))?;
        s.set_read_timeout(Some(t))?;
        s.write_all(request.as_bytes())?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply)
    })?
}

/// Whether an `ip -j route` entry carries manul's route protocol (109, or its registered name).
pub fn is_manul_proto(route: &serde_json::Value) -> bool {
    matches!(route["protocol"].as_str(), Some("109") | Some("manul"))
        || route["protocol"].as_u64() == Some(109)
}
