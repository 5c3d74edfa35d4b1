//! Session-level interop of manul-bgpd with real BIRD 2 daemons, each in a namespace of the
//! test's own: TCP MD5 (right and wrong password), the hold timer against a frozen peer, and
//! graceful restart (bgpd as helper of a BIRD killed and restarted in recovery mode, seeing
//! the old connection close or not; or restarted normally, without the Forwarding State bit). Needs root, bird and birdc, nft and ss for one test
//! (skips otherwise). Does I/O: processes, namespaces.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{
    Lab, Node,
    bgpd::{self, Paths, established},
    peers::{Bird, bird_bgp, bird_static},
};

/// A bgpd (AS 65001) configuration with `peers` (TOML `[[peer]]` bodies, each completed with
/// the local address, AS 65002, fast retries and accept-all policies).
fn bgpd_config(me: &Node, peers: &[String]) -> String {
    let mut text = format!(
        "[global]\nasn = 65001\nrouter_id = \"{0}\"\nlisten_address = \"{0}\"\n",
        me.address
    );
    for peer in peers {
        text += &format!(
            "\n[[peer]]\nlocal_address = \"{}\"\nasn = 65002\nconnect_retry = 1
import = {{ default = \"accept\" }}\nexport = {{ default = \"accept\" }}\n{peer}",
            me.address
        );
    }
    text
}

const ACCEPT_ALL: &str = "import all; export all;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_with_the_right_password_establishes_and_a_wrong_one_never_does() -> Result<()> {
    common::require_root();
    common::require_programs(&["bird", "birdc"]);
    let mut lab = Lab::new("md5")?;
    let result = md5(&mut lab).await;
    lab.finish(result)
}

async fn md5(lab: &mut Lab) -> Result<()> {
    let me = lab.node("bgpd")?;
    let (good, bad) = (lab.node("good")?, lab.node("bad")?);
    let with_password = |password: &str| format!("password \"{password}\";\nhold time 9;");
    let good_bird = bird_bgp(
        "bgpd",
        (&good, 65002),
        (&me, 65001),
        &with_password("manul-md5"),
        ACCEPT_ALL,
    );
    let bad_bird = bird_bgp(
        "bgpd",
        (&bad, 65002),
        (&me, 65001),
        &with_password("not-it"),
        ACCEPT_ALL,
    );
    let good_bird = Bird::start(lab, "good", &good, &good_bird).await?;
    let bad_bird = Bird::start(lab, "bad", &bad, &bad_bird).await?;
    let peers = [&good, &bad].map(|node| {
        format!(
            "address = \"{}\"\nmd5_password = \"manul-md5\"\n",
            node.address
        )
    });
    let mut client = bgpd::start(lab, "bgpd", &me, &bgpd_config(&me, &peers)).await?;

    // Both sessions get the same window: at least 5 s (several connect retries of both sides),
    // until the control session is up.
    let window = Duration::from_secs(5);
    let start = Instant::now();
    let (good_address, bad_address) = (good.address.to_string(), bad.address.to_string());
    loop {
        let bad_status = bgpd::peer(&mut client, &bad_address).await?;
        ensure!(
            !established(&bad_status) && bad_status.established_transitions == 0,
            "the session with the wrong password came up: {bad_status:?}"
        );
        let good_status = bgpd::peer(&mut client, &good_address).await?;
        if established(&good_status) && start.elapsed() >= window {
            break;
        }
        if start.elapsed() > common::DEADLINE {
            bail!("the session with the right password did not come up: {good_status:?}");
        }
        tokio::time::sleep(common::POLL).await;
    }
    good_bird.wait_established("bgpd").await?;
    let bad_protocol = bad_bird.birdc("show protocols bgpd")?;
    ensure!(!bad_protocol.contains("Established"), "{bad_protocol}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_timer_detects_a_frozen_bird() -> Result<()> {
    common::require_root();
    common::require_programs(&["bird", "birdc"]);
    let mut lab = Lab::new("hold")?;
    let result = hold_timer(&mut lab).await;
    lab.finish(result)
}

async fn hold_timer(lab: &mut Lab) -> Result<()> {
    let (me, peer) = (lab.node("bgpd")?, lab.node("bird")?);
    let config = bird_bgp(
        "bgpd",
        (&peer, 65002),
        (&me, 65001),
        "hold time 3;",
        ACCEPT_ALL,
    );
    let bird = Bird::start(lab, "bird", &peer, &config).await?;
    let peer_config = format!("address = \"{}\"\nhold_time = 3\n", peer.address);
    let mut client = bgpd::start(lab, "bgpd", &me, &bgpd_config(&me, &[peer_config])).await?;
    let address = peer.address.to_string();
    let status = bgpd::wait_peer(&mut client, &address, "Established", established).await?;
    ensure!(
        status.negotiated.as_ref().map(|n| n.hold_time) == Some(3),
        "{status:?}"
    );
    bird.wait_established("bgpd").await?;

    // BIRD stops sending keepalives (its kernel still acks TCP): only bgpd's hold timer can
    // tell.
    lab.signal("bird", "STOP")?;
    let frozen = Instant::now();
    let status = bgpd::wait_peer(&mut client, &address, "leaving Established", |status| {
        !established(status)
    })
    .await?;
    let detected = frozen.elapsed();
    ensure!(detected < Duration::from_secs(10), "took {detected:?}");
    let error = status.last_error.to_lowercase();
    ensure!(
        error.contains("hold timer"),
        "last error: {:?}",
        status.last_error
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_helper_keeps_routes_of_a_restarting_bird() -> Result<()> {
    common::require_root();
    common::require_programs(&["bird", "birdc"]);
    let mut lab = Lab::new("gr")?;
    let result = graceful_restart(&mut lab, false).await;
    lab.finish(result)
}

/// RFC 4724 §4.2: the restarting peer reconnects while bgpd still has its old session up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_helper_takes_a_reconnection_while_established() -> Result<()> {
    common::require_root();
    common::require_programs(&["bird", "birdc", "nft", "ss"]);
    let mut lab = Lab::new("grsilent")?;
    let result = graceful_restart(&mut lab, true).await;
    lab.finish(result)
}

/// RFC 4724 §4.2: BIRD comes back normally (not in recovery mode): its new capability lacks
/// the Forwarding State bit, so bgpd drops its stale routes at once, before End-of-RIB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_helper_flushes_stale_routes_without_the_forwarding_bit() -> Result<()> {
    common::require_root();
    common::require_programs(&["bird", "birdc"]);
    let mut lab = Lab::new("grflush")?;
    let result = restart_without_forwarding_state(&mut lab).await;
    lab.finish(result)
}

async fn restart_without_forwarding_state(lab: &mut Lab) -> Result<()> {
    let (me, peer) = (lab.node("bgpd")?, lab.node("bird")?);
    let body = bird_static("originated", &["10.2.0.0/24", "10.2.1.0/24"])
        + &bird_bgp(
            "bgpd",
            (&peer, 65002),
            (&me, 65001),
            "graceful restart on;",
            ACCEPT_ALL,
        );
    let bird = Bird::start(lab, "bird", &peer, &body).await?;
    let peer_config = format!("address = \"{}\"\n", peer.address);
    let mut client = bgpd::start(lab, "bgpd", &me, &bgpd_config(&me, &[peer_config])).await?;
    let address = peer.address.to_string();
    let mut paths = Paths::watch(&mut client).await?;
    bgpd::wait_peer(&mut client, &address, "Established", established).await?;
    paths.wait_prefix("10.2.0.0/24").await?;
    paths.wait_prefix("10.2.1.0/24").await?;
    bird.kill(lab)?;
    bgpd::wait_peer(&mut client, &address, "session loss", |status| {
        !established(status) && status.established_transitions == 1
    })
    .await?;
    ensure!(paths.now().withdrawn.is_empty(), "{:?}", paths.now());

    // Same routes again: only an immediate flush withdraws 10.2.0.0/24 (an End-of-RIB sweep
    // would keep it, refreshed).
    Bird::start(lab, "bird", &peer, &body).await?;
    let state = paths
        .wait("stale routes flushed and 10.2.0.0/24 back", |state| {
            state.withdrawn.iter().any(|p| p == "10.2.0.0/24")
                && state.best.contains_key("10.2.0.0/24")
                && state.best.contains_key("10.2.1.0/24")
        })
        .await?;
    ensure!(
        state.withdrawn.iter().any(|p| p == "10.2.1.0/24"),
        "{state:?}"
    );
    Ok(())
}

/// Drops, in `node`, every packet of its established TCP connection to `peer` (the session
/// goes silent: nothing of its end, FIN or RST, reaches the peer).
fn silence_session(lab: &mut Lab, node: &Node, peer: &Node) -> Result<()> {
    let sockets = lab.exec(node, &["ss", "-Htn", "state", "established"])?;
    let (local, remote) = sockets
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            Some((*words.get(2)?, *words.get(3)?))
        })
        .find(|(_, remote)| remote.starts_with(&format!("{}:", peer.address)))
        .with_context(|| format!("no connection to {} in\n{sockets}", peer.address))?;
    let port = |address: &str| address.rsplit(':').next().unwrap_or_default().to_string();
    let rules = format!(
        "table ip silence {{\n  chain out {{\n    type filter hook output priority 0;
    ip daddr {} tcp sport {} tcp dport {} drop\n  }}\n}}\n",
        peer.address,
        port(local),
        port(remote)
    );
    let path = lab.write(&format!("{}.nft", node.name), &rules)?;
    lab.exec(node, &["nft", "-f", path.to_str().context("path")?])?;
    Ok(())
}

/// BIRD (graceful restart on) dies without a Cease and comes back in recovery mode with one
/// route fewer; `silent`: bgpd does not see the old connection close.
async fn graceful_restart(lab: &mut Lab, silent: bool) -> Result<()> {
    let (me, peer) = (lab.node("bgpd")?, lab.node("bird")?);
    let bird_body = |prefixes: &[&str]| {
        let options = "graceful restart on;";
        bird_static("originated", prefixes)
            + &bird_bgp("bgpd", (&peer, 65002), (&me, 65001), options, ACCEPT_ALL)
    };
    let body = bird_body(&["10.2.0.0/24", "10.2.1.0/24"]);
    let bird = Bird::start(lab, "bird", &peer, &body).await?;
    let peer_config = format!("address = \"{}\"\n", peer.address);
    let mut client = bgpd::start(lab, "bgpd", &me, &bgpd_config(&me, &[peer_config])).await?;
    let address = peer.address.to_string();
    let mut paths = Paths::watch(&mut client).await?;
    let status = bgpd::wait_peer(&mut client, &address, "Established", established).await?;
    let negotiated = status.negotiated.context("no negotiated parameters")?;
    ensure!(
        negotiated.peer_graceful_restart && negotiated.peer_restart_time == 120,
        "BIRD's graceful restart capability: {negotiated:?}"
    );
    let both = |state: &bgpd::PathState| {
        state.best.contains_key("10.2.0.0/24") && state.best.contains_key("10.2.1.0/24")
    };
    paths.wait("BIRD's prefixes", both).await?;

    if silent {
        silence_session(lab, &peer, &me)?;
        bird.kill(lab)?;
        let status = bgpd::peer(&mut client, &address).await?;
        ensure!(
            established(&status),
            "bgpd saw the silenced session end: {status:?}"
        );
    } else {
        // bgpd notices the session is gone and keeps the routes.
        bird.kill(lab)?;
        bgpd::wait_peer(&mut client, &address, "session loss", |status| {
            !established(status) && status.established_transitions == 1
        })
        .await?;
        // A snapshot taken now is ordered after the session loss in the RIB.
        let snapshot = Paths::watch(&mut client).await?.now();
        ensure!(
            both(&snapshot),
            "routes dropped on session loss: {snapshot:?}"
        );
    }
    ensure!(paths.now().withdrawn.is_empty(), "{:?}", paths.now());

    // BIRD comes back in recovery mode without 10.2.1.0/24: after its End-of-RIB, bgpd drops
    // that stale route and keeps the refreshed one (never withdrawn meanwhile).
    bird.restart_recovering(lab, &bird_body(&["10.2.0.0/24"]))
        .await?;
    bgpd::wait_peer(&mut client, &address, "re-establishment", |status| {
        established(status) && status.established_transitions == 2
    })
    .await?;
    let state = paths
        .wait("10.2.1.0/24 withdrawn", |state| {
            !state.best.contains_key("10.2.1.0/24")
        })
        .await?;
    ensure!(
        state.best.contains_key("10.2.0.0/24") && state.withdrawn == ["10.2.1.0/24"],
        "after End-of-RIB: {state:?}"
    );
    bgpd::wait_peer(&mut client, &address, "counters", |status| {
        status.prefixes_accepted == 1
    })
    .await?;
    Ok(())
}
