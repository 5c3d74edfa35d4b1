//! End-to-end smoke test of the daemon: two manul-bgpd processes in a network namespace of the
//! test's own (loopback, 127.0.0.1 and 127.0.0.2) peer eBGP with each other from config files,
//! with MD5 and GTSM on; one originates a prefix, the other's ListPeers and WatchBestPaths are
//! polled until it arrives. Needs root (fails otherwise). Does I/O: processes, namespaces.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use manul_bgpd::daemon::api::connect;
use manul_netns::Netns;
use manul_proto::bgpd as proto;
use tokio_stream::StreamExt;

const DEADLINE: Duration = Duration::from_secs(30);

/// Starts a manul-bgpd inside `netns` (the shared helper, `manul-netns`: the namespace and the
/// daemons in it go on every exit path, panics included).
fn spawn_daemon(netns: &Netns, config: &Path, socket: &Path, log: &Path) -> Result<()> {
    let log = std::fs::File::create(log)?;
    netns
        .spawn_tracked(
            Command::new(env!("CARGO_BIN_EXE_manul-bgpd"))
                .arg("--config")
                .arg(config)
                .arg("--socket")
                .arg(socket)
                .args(["--log-level", "info,manul_bgpd=debug"])
                .stdout(Stdio::null())
                .stderr(log),
        )
        .context("spawn manul-bgpd")?;
    Ok(())
}

/// Panics unless this process is root: a missing prerequisite fails the test.
fn require_root() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0");
    assert!(root, "needs root: run as root (scripts/test.sh)");
}

fn config(asn: u32, me: &str, peer: &str, peer_asn: u32, originate: &[&str]) -> String {
    let originate: Vec<String> = originate.iter().map(|p| format!("{p:?}")).collect();
    format!(
        r#"originate = [{}]
[global]
asn = {asn}
router_id = "{me}"
listen_address = "{me}"

[[peer]]
address = "{peer}"
local_address = "{me}"
asn = {peer_asn}
hold_time = 9
connect_retry = 1
md5_password = "manul-secret"
ttl_security = true
import = {{ default = "accept" }}
export = {{ default = "accept" }}

[[prefix]]
prefix = "10.{}.0.0/24"
communities = ["{asn}:7"]
"#,
        originate.join(", "),
        asn % 100,
    )
}

async fn wait_for_socket(
    socket: &Path,
) -> Result<proto::bgpd_client::BgpdClient<tonic::transport::Channel>> {
    let start = Instant::now();
    loop {
        if socket.exists()
            && let Ok(client) = connect(socket).await
        {
            return Ok(client);
        }
        if start.elapsed() > DEADLINE {
            bail!("no API on {}", socket.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn smoke(dir: &Path, netns: &Netns) -> Result<()> {
    let (a_config, b_config) = (dir.join("a.toml"), dir.join("b.toml"));
    std::fs::write(
        &a_config,
        config(65001, "127.0.0.1", "127.0.0.2", 65002, &["10.99.0.0/24"]),
    )?;
    std::fs::write(
        &b_config,
        config(65002, "127.0.0.2", "127.0.0.1", 65001, &[]),
    )?;
    let (a_socket, b_socket) = (dir.join("a.sock"), dir.join("b.sock"));
    spawn_daemon(netns, &a_config, &a_socket, &dir.join("a.log"))?;
    spawn_daemon(netns, &b_config, &b_socket, &dir.join("b.log"))?;
    let _a = wait_for_socket(&a_socket).await?;
    let mut b = wait_for_socket(&b_socket).await?;

    // The session comes up (both sides connect: the collision is resolved on the way).
    let start = Instant::now();
    let status = loop {
        let peers = b
            .list_peers(proto::ListPeersRequest::default())
            .await?
            .into_inner()
            .peers;
        let peer = peers.into_iter().next().context("B lists no peer")?;
        if peer.state == "Established" {
            break peer;
        }
        if start.elapsed() > DEADLINE {
            bail!("B's session did not come up: {peer:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let negotiated = status.negotiated.context("no negotiated parameters")?;
    assert_eq!((negotiated.peer_as, negotiated.hold_time), (65001, 9));
    assert!(negotiated.four_octet_as && negotiated.peer_graceful_restart);

    // The prefixes arrive, with A as next hop and A's community.
    let mut stream = b
        .watch_best_paths(proto::WatchBestPathsRequest {})
        .await?
        .into_inner();
    let mut seen = std::collections::BTreeMap::new();
    let wait = async {
        while let Some(batch) = stream.next().await {
            let mut batch = batch?;
            batch.resolve_shared();
            for path in batch.paths {
                seen.insert(path.prefix.clone(), path);
            }
            if seen.contains_key("10.99.0.0/24") && seen.contains_key("10.1.0.0/24") {
                return Ok::<_, anyhow::Error>(());
            }
        }
        bail!("stream ended")
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .context("prefixes did not arrive")??;
    let path = &seen["10.1.0.0/24"];
    assert_eq!(path.next_hops, vec!["127.0.0.1".to_string()]);
    assert_eq!(path.as_path, vec![65001]);
    assert_eq!(path.communities, vec!["65001:7".to_string()]);

    // Counters follow.
    let start = Instant::now();
    loop {
        let peers = b
            .list_peers(proto::ListPeersRequest::default())
            .await?
            .into_inner()
            .peers;
        if peers[0].prefixes_accepted == 2 && peers[0].prefixes_advertised == 1 {
            break;
        }
        if start.elapsed() > DEADLINE {
            bail!("B's counters: {:?}", peers[0]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_peer_and_exchange_a_prefix() -> Result<()> {
    require_root();
    let dir = tempfile::tempdir()?;
    let netns = Netns::new("bgpd-smoke")?;
    let result = smoke(dir.path(), &netns).await;
    drop(netns);
    if result.is_err() {
        for name in ["a.log", "b.log"] {
            let log = std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
            eprintln!("==== {name}\n{log}");
        }
    }
    result
}
