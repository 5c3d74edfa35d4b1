//! The real peers of the interop tests: BIRD 2 (`bird -f`, queried with `birdc`) and GoBGP
//! (`gobgpd`, queried with `gobgp` in its namespace), started in a lab node with short timers.
//! Does I/O (processes).

use std::{path::Path, process::Command};

use anyhow::{Context, Result};

use super::{Lab, Node, poll, run};

/// A BIRD daemon of the lab.
pub struct Bird {
    pub name: String,
    pub node: Node,
    socket: String,
}

/// A `protocol bgp` block with fast (re)connection; `options` go inside the protocol,
/// `channel` inside its `ipv4 { }`.
pub fn bird_bgp(
    name: &str,
    local: (&Node, u32),
    neighbor: (&Node, u32),
    options: &str,
    channel: &str,
) -> String {
    format!(
        "protocol bgp {name} {{
  local {} as {};
  neighbor {} as {};
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
  {options}
  ipv4 {{ {channel} }};
}}
",
        local.0.address, local.1, neighbor.0.address, neighbor.1
    )
}

/// A `protocol static` named `name` with blackhole routes to `prefixes`.
pub fn bird_static(name: &str, prefixes: &[&str]) -> String {
    let routes: String = prefixes
        .iter()
        .map(|prefix| format!("  route {prefix} blackhole;\n"))
        .collect();
    format!("protocol static {name} {{\n  ipv4;\n{routes}}}\n")
}

impl Bird {
    /// Starts BIRD in `node` with `body` (protocols) after the router id and logging lines;
    /// returns once it answers on its control socket.
    pub async fn start(lab: &mut Lab, name: &str, node: &Node, body: &str) -> Result<Bird> {
        let bird = Bird {
            name: name.to_string(),
            node: node.clone(),
            socket: lab.path(&format!("{name}.ctl")).display().to_string(),
        };
        bird.spawn(lab, body, false)?;
        bird.ready(lab).await?;
        Ok(bird)
    }

    /// Waits until BIRD answers on its control socket (fails at once if it exited).
    async fn ready(&self, lab: &mut Lab) -> Result<()> {
        poll(&format!("{} answering", self.name), || {
            lab.check_running(&self.name)?;
            Ok(self.birdc("show status").ok())
        })
        .await?;
        Ok(())
    }

    fn spawn(&self, lab: &mut Lab, body: &str, recovery: bool) -> Result<()> {
        let config = format!(
            "router id {};\nlog stderr all;\nprotocol device {{ }}\n{body}",
            self.node.address
        );
        let path = lab.write(&format!("{}.conf", self.name), &config)?;
        let path = path.display().to_string();
        let mut args = vec!["-f", "-c", &path, "-s", &self.socket];
        if recovery {
            args.push("-R");
        }
        lab.spawn(&self.name, &self.node, Path::new("bird"), &args)
    }

    /// SIGKILLs BIRD (no Cease, no cleanup).
    pub fn kill(&self, lab: &mut Lab) -> Result<()> {
        lab.kill(&self.name)
    }

    /// Starts BIRD again, in graceful restart recovery mode (`-R`), with a new `body`.
    pub async fn restart_recovering(&self, lab: &mut Lab, body: &str) -> Result<()> {
        self.spawn(lab, body, true)?;
        self.ready(lab).await
    }

    /// Runs a `birdc` command (words separated by spaces) and returns its output.
    pub fn birdc(&self, command: &str) -> Result<String> {
        run(Command::new("birdc")
            .args(["-s", &self.socket])
            .args(command.split_whitespace()))
    }

    /// Polls `birdc command` until its output satisfies `ready`; returns that output.
    pub async fn wait(
        &self,
        command: &str,
        what: &str,
        ready: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let mut last = String::new();
        poll(&format!("{}: {what}", self.name), || {
            last = self.birdc(command)?;
            Ok(ready(&last).then(|| last.clone()))
        })
        .await
        .with_context(|| format!("last `birdc {command}`:\n{last}"))
    }

    /// Waits for the BGP protocol `protocol` to be Established.
    pub async fn wait_established(&self, protocol: &str) -> Result<String> {
        self.wait(
            &format!("show protocols {protocol}"),
            &format!("{protocol} established"),
            |out| out.contains("Established"),
        )
        .await
    }
}

/// A GoBGP daemon of the lab (API on 127.0.0.1:50051 of its namespace).
pub struct Gobgp {
    pub node: Node,
}

impl Gobgp {
    /// Starts gobgpd in `node` with `config` (TOML).
    pub fn start(lab: &mut Lab, name: &str, node: &Node, config: &str) -> Result<Gobgp> {
        let path = lab.write(&format!("{name}.toml"), config)?;
        let path = path.display().to_string();
        let args = [
            "-f",
            &path,
            "-p",
            "--api-hosts",
            "127.0.0.1:50051",
            "--pprof-disable",
        ];
        lab.spawn(name, node, Path::new("gobgpd"), &args)?;
        Ok(Gobgp { node: node.clone() })
    }

    /// Runs `gobgp -p 50051 args` in GoBGP's namespace.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.node.netns, "gobgp", "-p", "50051"])
            .args(args))
    }

    /// Polls `gobgp args` until its output satisfies `ready`; returns that output.
    pub async fn wait(
        &self,
        args: &[&str],
        what: &str,
        ready: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let mut last = String::new();
        poll(&format!("gobgp: {what}"), || {
            last = self.cli(args)?;
            Ok(ready(&last).then(|| last.clone()))
        })
        .await
        .with_context(|| format!("last `gobgp {}`:\n{last}", args.join(" ")))
    }
}
