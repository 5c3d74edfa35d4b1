//! manul-demo: the one-node demo (`scripts/demo.sh`). Makes a node network namespace with an
//! uplink to an "upstream" namespace, starts `manul-agent` in it, runs two busybox containers
//! with podman on a manul CNI network (`manul` then the reference `portmap`), shows what manul
//! did (addresses, host interfaces, the node's and a pod's routes), checks which paths carry
//! traffic, and removes everything it made. Needs root; does I/O.
//!
//! Nothing outside the demo's own namespaces is touched: podman and every probe run from a
//! thread that entered the node's (or the upstream's) namespace, as in the e2e harness.
//! `--keep` leaves it all running and prints how to look around and how to clean up.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use manul_e2e::chain::portmap_entry;
use manul_e2e::{Node, NodeOptions, Podman, http_get, is_manul_proto, poll_until};
use serde_json::Value;

mod terminal;

use terminal::{Out, install_signal_handler, interrupted};

/// The CNI network (conflist name) the containers join.
const NETWORK: &str = "manul-demo";
/// Prefix of the demo's namespaces (the e2e tests use `manul-e2e-`).
const NS_PREFIX: &str = "manul-demo-";
/// The port busybox httpd listens on in `web`, and the node port portmap publishes it as.
const WEB_PORT: u16 = 8080;
const HOST_PORT: u16 = 18080;
/// How long traffic and releases may take to converge (polled, never slept).
const CONVERGE: Duration = Duration::from_secs(10);
/// Width of the label column of step lines.
const LABEL: usize = 17;

#[derive(Parser, Debug)]
#[command(
    name = "manul-demo",
    about = "One-node manul demo: manul-agent and two podman containers on a manul network"
)]
struct Args {
    /// Leave the node, the agent and the containers running; print how to look around and
    /// how to clean up.
    #[arg(long)]
    keep: bool,
    /// Print only the final line (and what failed, if anything did).
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let out = Out::new(args.quiet);
    let mut report = Report::default();
    match demo(&args, &out, &mut report) {
        Ok(summary) => {
            out.line("");
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = if interrupted() {
                eprintln!("\n{}", out.red("demo interrupted (Ctrl-C)"));
                130
            } else {
                eprintln!("\n{}: {e:#}", out.red("demo FAILED"));
                1
            };
            if let Some(log) = &report.agent_log {
                eprintln!("  agent log:   {} (kept)", log.display());
            }
            if report.kept {
                eprintln!("  still running (--keep): look around and clean up as shown above");
            } else if !interrupted() && report.agent_log.is_some() {
                eprintln!(
                    "  investigate: read the agent log; run `{} --keep` to leave the node \
                     running and look around;\n               MANUL_E2E_LOG=debug for a verbose \
                     agent log",
                    std::env::args()
                        .next()
                        .unwrap_or_else(|| "manul-demo".into())
                );
            }
            if report.cleaned_up {
                eprintln!("  everything the demo made was removed");
            }
            ExitCode::from(code)
        }
    }
}

/// What `main` says after a failure.
#[derive(Default)]
struct Report {
    /// A copy of the agent's log that outlives the node's temporary directory.
    agent_log: Option<PathBuf>,
    /// Whether the namespaces and directories were removed.
    cleaned_up: bool,
    /// `--keep`: everything was left running.
    kept: bool,
}

/// One container of the demo, as shown in the table.
struct Container {
    name: &'static str,
    ip: String,
    prefix_len: u64,
    host_if: String,
    host_mac: String,
    proxy_arp: bool,
    pod_mac: String,
}

/// The outcome of one connectivity check.
struct Check {
    label: &'static str,
    result: Result<String>,
}

fn demo(args: &Args, out: &Out, report: &mut Report) -> Result<String> {
    out.line(out.paint(
        "1",
        "manul one-node demo: manul-agent and two podman containers on a manul network",
    ));
    out.step("preflight", preflight)?;
    manul_e2e::netns::set_name_prefix(NS_PREFIX);
    install_signal_handler(out.clone());

    let node = out.step_lines("node", || {
        let node = Node::start_with(NodeOptions::new("node"))?;
        let lines = vec![
            format!(
                "namespace {}, uplink eth0 {}/24",
                node.ns.name(),
                node.uplink_ip()
            ),
            format!(
                "upstream  {} (down0 {}/24, route {} via {})",
                node.upstream.name(),
                node.upstream_ip(),
                node.opts.pool,
                node.uplink_ip()
            ),
        ];
        Ok((node, lines))
    })?;
    out.detail(
        "manul-agent",
        &[
            format!(
                "running in {} as node \"{}\"",
                node.ns.name(),
                node.opts.tag
            ),
            format!("socket  {}", node.socket().display()),
            format!(
                "pool    {} (--default-ipv4-pool, the harness default)",
                node.opts.pool
            ),
            format!(
                "store   embedded, {}",
                node.dir().join("store.redb").display()
            ),
            format!("log     {}", node.agent_log_path().display()),
        ],
    );

    match on_node(args, out, &node) {
        Outcome::Kept(result) => {
            // Forgotten, not dropped: its guard would stop the agent and remove the namespaces.
            report.agent_log = Some(node.agent_log_path());
            report.kept = true;
            std::mem::forget(node);
            result
        }
        Outcome::Failed(e, podman_dir) => {
            if !interrupted() {
                report.agent_log = save_agent_log(&node);
            }
            let cleaned = out.step_even_if_interrupted("clean up", || {
                drop(node);
                // A `podman container cleanup` that conmon started may have written to the
                // storage while the guard removed it: one more try, then say what is left.
                if let Some(d) = podman_dir.filter(|d| d.exists())
                    && std::fs::remove_dir_all(&d).is_err()
                    && d.exists()
                {
                    bail!("left behind: {} (rm -rf it)", d.display());
                }
                Ok((
                    (),
                    vec!["manul-agent stopped, namespaces removed".to_string()],
                ))
            });
            if let Err(e) = &cleaned {
                eprintln!("  {e:#}");
            }
            report.cleaned_up = cleaned.is_ok();
            Err(e)
        }
        Outcome::Done {
            containers,
            paths,
            podman_dir,
        } => {
            let failed = failed_paths(&paths);
            if !failed.is_empty() {
                report.agent_log = save_agent_log(&node);
            }
            let names = [node.ns.name().to_string(), node.upstream.name().to_string()];
            let dirs = [node.dir().to_path_buf(), podman_dir];
            out.step("teardown", || {
                drop(node);
                let left: Vec<String> = names
                    .iter()
                    .filter(|n| Path::new("/run/netns").join(n).exists())
                    .cloned()
                    .chain(
                        dirs.iter()
                            .filter(|d| d.exists())
                            .map(|d| d.display().to_string()),
                    )
                    .collect();
                if !left.is_empty() {
                    bail!("still there after teardown: {}", left.join(", "));
                }
                Ok((
                    (),
                    "manul-agent stopped, both namespaces and the temporary directories removed"
                        .to_string(),
                ))
            })?;
            report.cleaned_up = true;
            verdict(containers, &paths, "cleaned up")
        }
    }
}

/// "label: error" of each path that failed.
/// The demo's last line: every path ok, or the ones that failed (an error).
fn verdict(containers: usize, paths: &[Check], ending: &str) -> Result<String> {
    let failed = failed_paths(paths);
    if !failed.is_empty() {
        bail!(
            "{} of {} paths failed:\n  {}",
            failed.len(),
            paths.len(),
            failed.join("\n  ")
        );
    }
    Ok(format!(
        "demo passed: {containers} containers, {0}/{0} paths ok, {ending}",
        paths.len()
    ))
}

fn failed_paths(paths: &[Check]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| {
            let e = p.result.as_ref().err()?;
            Some(format!("{}: {e:#}", p.label))
        })
        .collect()
}

/// How the part of the demo that runs on the node ended.
enum Outcome {
    /// `--keep`: everything left running; the result to report.
    Kept(Result<String>),
    /// The demo broke (not merely a failed path); podman's containers are gone.
    Failed(anyhow::Error, Option<PathBuf>),
    /// Containers shown, paths checked, containers removed and their addresses released.
    Done {
        containers: usize,
        paths: Vec<Check>,
        podman_dir: PathBuf,
    },
}

/// podman on the node: the network, the containers, what manul did, the paths, `podman rm`.
fn on_node(args: &Args, out: &Out, node: &Node) -> Outcome {
    let podman = out.step_lines("podman network", || {
        let conflist = node.manul_conflist(NETWORK, &[portmap_entry()]);
        let mut podman = Podman::new(&node.ns, &conflist)?;
        podman.shield_from_ctrl_c();
        let path = podman.dir().join("cni").join(format!("{NETWORK}.conflist"));
        let lines = vec![
            format!("\"{NETWORK}\": manul → portmap, podman's CNI backend, runc"),
            format!("conflist {}", path.display()),
        ];
        Ok((podman, lines))
    });
    let podman = match podman {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e, None),
    };
    let dir = Some(podman.dir().to_path_buf());

    let shown = show(out, node, &podman);
    if interrupted() {
        return Outcome::Failed(anyhow!("interrupted"), dir);
    }
    if args.keep && !interrupted() {
        let web_ip = shown.as_ref().ok().map(|(c, _)| c[0].ip.clone());
        print_keep(node, &podman, web_ip.as_deref());
        // Forgotten, not dropped: its guard would remove the containers and their storage.
        std::mem::forget(podman);
        return Outcome::Kept(shown.and_then(|(containers, paths)| {
            verdict(containers.len(), &paths, "kept running (--keep)")
        }));
    }
    let (containers, paths) = match shown {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e, dir),
    };

    out.heading("Cleanup");
    let names: Vec<&str> = containers.iter().map(|c| c.name).collect();
    let removed = out
        .step("remove", || {
            podman.rm(&names)?;
            Ok(((), format!("podman rm -f -t 0 {}", names.join(" "))))
        })
        .and_then(|()| out.step_lines("released", || released(node, &containers)));
    if let Err(e) = removed {
        return Outcome::Failed(e, dir);
    }
    Outcome::Done {
        containers: containers.len(),
        paths,
        podman_dir: podman.dir().to_path_buf(),
    }
}

/// Everything between "containers running" and "containers removed": run them, print the
/// table and the routes, check the paths. An Err here is a broken demo; a failed path is not.
fn show(out: &Out, node: &Node, podman: &Podman) -> Result<(Vec<Container>, Vec<Check>)> {
    let publish = format!("{HOST_PORT}:{WEB_PORT}");
    let port = WEB_PORT.to_string();
    out.step("container web", || {
        podman.run(
            "web",
            &["-p", &publish],
            &["httpd", "-f", "-p", &port, "-h", "/www"],
        )?;
        Ok((
            (),
            format!(
                "busybox httpd on :{WEB_PORT}, published as {}:{HOST_PORT} (portmap)",
                node.uplink_ip()
            ),
        ))
    })?;
    out.step("container client", || {
        podman.run("client", &[], &["sleep", "3600"])?;
        Ok(((), "busybox sleep 3600".to_string()))
    })?;
    let containers = ["web", "client"]
        .into_iter()
        .map(|name| container(node, podman, name))
        .collect::<Result<Vec<_>>>()?;
    let endpoints = node.endpoints()?;

    out.heading("Containers");
    out.table(
        &[
            "CONTAINER",
            "ADDRESS",
            "HOST INTERFACE",
            "HOST MAC",
            "PROXY ARP",
            "POD MAC",
        ],
        &containers
            .iter()
            .map(|c| {
                vec![
                    c.name.to_string(),
                    format!("{}/{}", c.ip, c.prefix_len),
                    c.host_if.clone(),
                    c.host_mac.clone(),
                    if c.proxy_arp { "on" } else { "off" }.to_string(),
                    c.pod_mac.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    out.line(format!(
        "  ADDRESS is the pod's eth0; HOST INTERFACE is its veth peer on the node. The agent \
         holds {} endpoints (ListEndpoints).",
        endpoints.len()
    ));

    let node_routes = node.ns.ip(&["route", "show", "proto", "109"])?;
    out.heading(&format!(
        "Node routes of manul (ip -n {} route show proto 109)",
        node.ns.name()
    ));
    let mut node_routes: Vec<&str> = node_routes
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    node_routes.sort_by_key(|r| !r.starts_with("blackhole"));
    for route in node_routes {
        let why = if route.starts_with("blackhole") {
            "the node's block: addresses of it not in use go nowhere".to_string()
        } else if let Some(c) = containers
            .iter()
            .find(|c| route.split_whitespace().next() == Some(c.ip.as_str()))
        {
            format!("pod {}", c.name)
        } else {
            String::new()
        };
        out.annotated(route.trim(), &why);
    }
    let pod_routes = podman.exec("client", &["ip", "route"])?;
    if !pod_routes.status.success() {
        bail!(
            "podman exec client ip route: {}",
            String::from_utf8_lossy(&pod_routes.stderr)
        );
    }
    out.heading("Routes inside client (podman exec client ip route)");
    for route in String::from_utf8_lossy(&pod_routes.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let why = if route.starts_with("default") {
            "everything goes to the fake gateway"
        } else if route.starts_with("169.254.1.1") {
            "the fake gateway: the node's cali end answers its ARP"
        } else {
            ""
        };
        out.annotated(route.trim(), why);
    }

    out.heading("What talks to what");
    let (web, client) = (&containers[0], &containers[1]);
    let uplink = node.uplink_ip().to_string();
    let published = SocketAddr::new(IpAddr::V4(node.uplink_ip()), HOST_PORT);
    let paths = vec![
        out.path(
            "client → web",
            &format!("{} → {}", client.ip, web.ip),
            || ping(podman, "client", &web.ip),
        ),
        out.path(
            "client → node",
            &format!("{} → {uplink} (node uplink)", client.ip),
            || ping(podman, "client", &uplink),
        ),
        out.path(
            "upstream → web",
            &format!(
                "{} → {published} → portmap DNAT → {}:{WEB_PORT}",
                node.upstream_ip(),
                web.ip
            ),
            || http_hello(node, published),
        ),
    ];
    Ok((containers, paths))
}

/// Address, interfaces and MACs of one running container.
fn container(node: &Node, podman: &Podman, name: &'static str) -> Result<Container> {
    let inspect = podman.inspect(name)?;
    let net = &inspect["NetworkSettings"]["Networks"][NETWORK];
    let ip = podman.ip_of(name)?;
    let route = node
        .route_to(&ip)?
        .with_context(|| format!("the node has no route to {name}'s address {ip}"))?;
    if !is_manul_proto(&route) {
        bail!("the node's route to {ip} is not manul's: {route}");
    }
    let host_if = route["dev"]
        .as_str()
        .with_context(|| format!("route to {ip} without a device: {route}"))?
        .to_string();
    let link = node.ns.json(&["link", "show", "dev", &host_if])?;
    let proxy_arp = node.ns.exec_ok(&[
        "cat",
        &format!("/proc/sys/net/ipv4/conf/{host_if}/proxy_arp"),
    ])?;
    let pod_mac = match net["MacAddress"].as_str() {
        Some(mac) if !mac.is_empty() => mac.to_string(),
        _ => {
            let out = podman.exec(name, &["cat", "/sys/class/net/eth0/address"])?;
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    Ok(Container {
        name,
        prefix_len: net["IPPrefixLen"].as_u64().unwrap_or(32),
        ip,
        host_if,
        host_mac: link[0]["address"].as_str().unwrap_or("?").to_string(),
        proxy_arp: proxy_arp.trim() == "1",
        pod_mac,
    })
}

/// `ping -c1` from inside `from` until it answers; returns "rtt …, ttl …".
fn ping(podman: &Podman, from: &str, to: &str) -> Result<String> {
    poll(&format!("an answer from {to}"), || {
        let out = podman.exec(from, &["ping", "-c1", "-W1", to])?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "ping {to}: {}{}",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let field = |key: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or("?")
                .to_string()
        };
        Ok(Some(format!(
            "ICMP echo, rtt {} ms, ttl {}",
            field("time="),
            field("ttl=")
        )))
    })
}

/// `GET /` from the upstream namespace until busybox httpd's "hello" comes back.
fn http_hello(node: &Node, addr: SocketAddr) -> Result<String> {
    poll(&format!("\"hello\" from http://{addr}/"), || {
        let reply = http_get(&node.upstream, addr)?;
        if !reply.contains("hello") {
            bail!("unexpected reply: {reply}");
        }
        let status = reply.lines().next().unwrap_or("").trim().to_string();
        Ok(Some(format!("HTTP GET /, {status}, body \"hello\"")))
    })
}

/// After `podman rm`: the agent holds no endpoint and the node has no cali link and no pod
/// route left. Returns the lines to print.
fn released(node: &Node, containers: &[Container]) -> Result<((), Vec<String>)> {
    poll("ListEndpoints to be empty", || {
        let held = node.endpoints()?;
        if !held.is_empty() {
            bail!("the agent still holds {held:?}");
        }
        Ok(Some(()))
    })?;
    poll("the cali links to go", || {
        let links = node.cali_links()?;
        if !links.is_empty() {
            bail!("cali links left on the node: {links:?}");
        }
        Ok(Some(()))
    })?;
    poll("the pod routes to go", || {
        let left: Vec<&str> = containers
            .iter()
            .map(|c| c.ip.as_str())
            .filter(|ip| matches!(node.route_to(ip), Ok(Some(_))))
            .collect();
        if !left.is_empty() {
            bail!("host routes left to {left:?}");
        }
        Ok(Some(()))
    })?;
    let kept: Vec<String> = node
        .routes()?
        .iter()
        .filter(|r| is_manul_proto(r))
        .map(|r: &Value| {
            let ty = r["type"].as_str().unwrap_or("");
            format!("{ty} {}", r["dst"].as_str().unwrap_or("?"))
                .trim()
                .to_string()
        })
        .collect();
    let addrs: Vec<&str> = containers.iter().map(|c| c.ip.as_str()).collect();
    Ok((
        (),
        vec![
            format!(
                "{} are free again: ListEndpoints is empty, no cali link, no /32 route",
                addrs.join(" and ")
            ),
            if kept.is_empty() {
                "no proto manul route left on the node".to_string()
            } else {
                format!(
                    "left on the node: {} (the block stays affine to the node)",
                    kept.join(", ")
                )
            },
        ],
    ))
}

/// `poll_until` with the demo's deadline that gives up at once when Ctrl-C was pressed.
fn poll<T>(what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    poll_until(CONVERGE, what, || {
        if interrupted() {
            return Ok(Some(Err(anyhow!("interrupted"))));
        }
        Ok(f()?.map(Ok))
    })?
}

/// Checks what the demo needs before it makes anything.
fn preflight() -> Result<((), String)> {
    manul_e2e::require_root().context("run the demo as root: it creates network namespaces")?;
    for bin in ["manul-agent", "manul"] {
        manul_e2e::bin_path(bin)?;
    }
    let podman = Command::new("podman")
        .arg("--version")
        .output()
        .context("podman not found: apt-get install podman runc (scripts/install-deps.sh)")?;
    let version = String::from_utf8_lossy(&podman.stdout).trim().to_string();
    for plugin in ["portmap", "loopback"] {
        let path = manul_e2e::reference_plugin(plugin);
        if !path.is_file() {
            bail!(
                "{} missing: apt-get install containernetworking-plugins",
                path.display()
            );
        }
    }
    if !Path::new("/bin/busybox").is_file() {
        bail!("/bin/busybox missing: apt-get install busybox-static");
    }
    Ok((
        (),
        format!(
            "root, {version}, manul and manul-agent in {}",
            manul_e2e::bin_dir()?.display()
        ),
    ))
}

/// Copies the agent's log out of the node's temporary directory (which goes with the node).
fn save_agent_log(node: &Node) -> Option<PathBuf> {
    let dest = std::env::temp_dir().join(format!("manul-demo-{}-agent.log", std::process::id()));
    std::fs::copy(node.agent_log_path(), &dest).ok()?;
    Some(dest)
}

/// `--keep`: how to look around and how to clean up by hand.
fn print_keep(node: &Node, podman: &Podman, web_ip: Option<&str>) {
    let n = node.ns.name();
    let up = node.upstream.name();
    let d = podman.dir().display();
    let web = web_ip.unwrap_or("<web address>");
    println!(
        "\nKept running (--keep). Look around:\n\
         \x20 alias demo-podman='nsenter --net=/run/netns/{n} env CONTAINERS_CONF={d}/containers.conf \
         podman --root {d}/root --runroot {d}/runroot'\n\
         \x20 demo-podman ps\n\
         \x20 demo-podman exec client ping -c 3 {web}\n\
         \x20 ip -n {n} route show proto 109\n\
         \x20 ip -n {n} -br link show\n\
         \x20 ip netns exec {up} busybox wget -qO- http://{}:{HOST_PORT}/\n\
         \x20 less {}\n\
         Clean up:\n\
         \x20 demo-podman rm -af -t 0\n\
         \x20 ip netns pids {n} | xargs -r kill      # manul-agent (and conmon)\n\
         \x20 ip netns del {n}; ip netns del {up}\n\
         \x20 grep -o ' {d}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r umount -l\n\
         \x20 rm -rf {d} {}\n",
        node.uplink_ip(),
        node.agent_log_path().display(),
        node.dir().display(),
    );
}
