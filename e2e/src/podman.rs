//! `Podman`: podman as a CNI caller with a private configuration (CNI backend, runc, our
//! plugin dir, per-test storage) running inside a node namespace, and the busybox image it
//! uses. Does I/O (podman, tar).
//!
//! podman runs with its network namespace set to the node's and the root mount namespace kept
//! (see [`crate::netns`]): the plugins it execs, and the host ends of the veths they create,
//! live on the node, next to that node's agent. `ip netns exec` cannot be used here: its fresh
//! /sys hides the cgroup mounts and runc refuses to start.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tempfile::TempDir;

use crate::Netns;

/// The image every test container runs: busybox-static and a few applet links.
pub const IMAGE: &str = "localhost/manul-bb:latest";

/// A podman installation of one test, rooted in a tempdir, run inside one node namespace.
pub struct Podman<'n> {
    ns: &'n Netns,
    dir: TempDir,
    /// The CNI network name (the conflist's "name").
    pub network: String,
    /// Run podman in a process group of its own ([`Podman::shield_from_ctrl_c`]).
    own_process_group: bool,
}

impl<'n> Podman<'n> {
    /// Sets podman up inside `ns` with `conflist` as its only CNI network, and imports
    /// [`IMAGE`]. The `manul` binary is linked into a plugin dir searched before /usr/lib/cni.
    pub fn new(ns: &'n Netns, conflist: &Value) -> Result<Podman<'n>> {
        crate::require_root()?;
        let network = conflist["name"]
            .as_str()
            .context("conflist without name")?
            .to_string();
        let dir = tempfile::Builder::new()
            .prefix("manul-e2e-podman-")
            .tempdir()?;
        let plugins = dir.path().join("plugins");
        let cni = dir.path().join("cni");
        for d in [&plugins, &cni, &dir.path().join("tmp")] {
            std::fs::create_dir_all(d)?;
        }
        if let Ok(manul) = crate::bin_path("manul") {
            std::os::unix::fs::symlink(manul, plugins.join("manul"))?;
        }
        std::fs::write(
            cni.join(format!("{network}.conflist")),
            serde_json::to_vec_pretty(conflist)?,
        )?;
        let d = dir.path().display();
        let conf = format!(
            "[containers]\n\
             default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [network]\n\
             network_backend = \"cni\"\n\
             cni_plugin_dirs = [\"{d}/plugins\", \"{}\"]\n\
             network_config_dir = \"{d}/cni\"\n\
             [engine]\n\
             runtime = \"runc\"\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n\
             tmp_dir = \"{d}/tmp\"\n",
            crate::REFERENCE_PLUGIN_DIR
        );
        std::fs::write(dir.path().join("containers.conf"), conf)?;
        let podman = Podman {
            ns,
            dir,
            network,
            own_process_group: false,
        };
        podman.ok(&["import", &image_tarball()?.display().to_string(), IMAGE])?;
        Ok(podman)
    }

    /// The private directory: `containers.conf`, `root`, `runroot`, `cni/` (the conflist).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// From now on runs podman in a process group of its own, so that a Ctrl-C at the terminal
    /// reaches this process only, not a `podman run` halfway through (which can leave a
    /// container that `podman rm -a` does not know). For a program that catches Ctrl-C, stops
    /// between podman commands and cleans up (the demo).
    pub fn shield_from_ctrl_c(&mut self) {
        self.own_process_group = true;
    }

    /// Runs `podman <args>` on the node; returns the raw output.
    pub fn cmd(&self, args: &[&str]) -> Result<Output> {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        if self.own_process_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args(args);
        self.ns.output(&mut cmd)
    }

    /// Runs `podman <args>`, which must succeed; returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cmd(args)?;
        let what: Vec<&str> = std::iter::once("podman")
            .chain(args.iter().copied())
            .collect();
        Ok(crate::netns::check(&what, out)?.trim().to_string())
    }

    /// `podman run -d --name <name> --network <network> <opts> IMAGE <command>`.
    pub fn run(&self, name: &str, opts: &[&str], command: &[&str]) -> Result<String> {
        let mut args = vec!["run", "-d", "--name", name, "--network", &self.network];
        args.extend_from_slice(opts);
        args.push(IMAGE);
        args.extend_from_slice(command);
        self.ok(&args)
    }

    /// `podman inspect <name>` (the first object).
    pub fn inspect(&self, name: &str) -> Result<Value> {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", name])?)?;
        Ok(v[0].clone())
    }

    /// The container's IPv4 address on [`Podman::network`], from `podman inspect`.
    pub fn ip_of(&self, name: &str) -> Result<String> {
        let v = self.inspect(name)?;
        let ip = &v["NetworkSettings"]["Networks"][&self.network]["IPAddress"];
        match ip.as_str() {
            Some(ip) if !ip.is_empty() => Ok(ip.to_string()),
            _ => bail!(
                "{name} has no address on {}: {}",
                self.network,
                v["NetworkSettings"]
            ),
        }
    }

    /// `podman exec <name> <command>`.
    pub fn exec(&self, name: &str, command: &[&str]) -> Result<Output> {
        let mut args = vec!["exec", name];
        args.extend_from_slice(command);
        self.cmd(&args)
    }

    /// `podman rm -f -t 0 <names>` (no 10 s SIGTERM grace: `sleep` as PID 1 ignores it).
    pub fn rm(&self, names: &[&str]) -> Result<()> {
        let mut args = vec!["rm", "-f", "-t", "0"];
        args.extend_from_slice(names);
        self.ok(&args).map(drop)
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "-af", "-t", "0"]);
        unmount_under(self.dir.path());
    }
}

/// Lazily unmounts whatever podman may have left mounted below `dir`, so it can be removed.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
}

/// A tarball of a minimal rootfs (busybox-static plus applet links and /www/index.html
/// containing "hello"), kept next to the binaries under test and rebuilt when busybox changes.
pub fn image_tarball() -> Result<PathBuf> {
    static TARBALL: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut cached = TARBALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = cached.as_ref() {
        return Ok(p.clone());
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox missing: apt-get install busybox-static");
    }
    let dest = crate::bin_dir()?.join("manul-e2e-bb.tar");
    let fresh = |p: &Path| -> Option<bool> {
        Some(p.metadata().ok()?.modified().ok()? >= busybox.metadata().ok()?.modified().ok()?)
    };
    if fresh(&dest) == Some(true) {
        *cached = Some(dest.clone());
        return Ok(dest);
    }
    let stage = tempfile::Builder::new()
        .prefix("manul-e2e-rootfs-")
        .tempdir()?;
    let root = stage.path().join("rootfs");
    for d in ["bin", "www", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    for applet in [
        "sh", "ping", "nc", "httpd", "ip", "sleep", "cat", "echo", "wget", "ls",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(root.join("www/index.html"), "hello\n")?;
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
    let tar = stage.path().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()?;
    if !status.success() {
        bail!("tar of the busybox rootfs failed: {status}");
    }
    // Built in a private dir, then renamed into place: concurrent builders never see half a file.
    let tmp = dest.with_extension(format!("tar.{}", std::process::id()));
    std::fs::copy(&tar, &tmp)?;
    std::fs::rename(&tmp, &dest)?;
    *cached = Some(dest.clone());
    Ok(dest)
}
