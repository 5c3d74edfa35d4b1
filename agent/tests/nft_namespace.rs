//! manul's nftables table against the kernel, in namespaces made per test: natOutgoing
//! masquerades pool traffic leaving for a destination outside every pool (the outside host sees
//! the node's address) and leaves traffic between pools alone (it sees the pod's); a VXLAN
//! datagram from a host that is not a known node is dropped, one from a node gets through; a
//! script nft refuses changes nothing and says why; another table of the host is never touched.
//! Needs root and nft (fails otherwise).

mod support;

use std::{
    io::Read,
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result};
use manul_agent::nft::{Nft, NftApplier, NftOutcome, NftState, real::NftCommand};
use support::{Netns, require_root, wire};

/// pod (10.244.0.5) ── node (10.244.0.1 | 192.168.77.1) ── outside (192.168.77.2), with no
/// route back from outside to the pod network.
struct Topology {
    pod: Netns,
    node: Netns,
    outside: Netns,
}

fn topology() -> Result<Topology> {
    require_root();
    let topology = Topology {
        pod: Netns::new("agent")?,
        node: Netns::new("agent")?,
        outside: Netns::new("agent")?,
    };
    wire(
        &topology.node,
        "cali0",
        "10.244.0.1/24",
        &topology.pod,
        "eth0",
        "10.244.0.5/24",
    )?;
    wire(
        &topology.node,
        "uplink",
        "192.168.77.1/24",
        &topology.outside,
        "eth0",
        "192.168.77.2/24",
    )?;
    topology
        .pod
        .ip(&["route", "add", "default", "via", "10.244.0.1"])?;
    topology.node.run_blocking(|| {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
        Ok(())
    })?;
    Ok(topology)
}

fn pools(masquerade: &[&str], all: &[&str]) -> NftState {
    NftState {
        masquerade_pools: masquerade
            .iter()
            .map(|cidr| cidr.parse().unwrap())
            .collect(),
        all_pools: all.iter().map(|cidr| cidr.parse().unwrap()).collect(),
        ..NftState::default()
    }
}

/// Applies `state` with a fresh applier inside `ns`.
fn apply(ns: &Netns, state: NftState) -> Result<NftOutcome> {
    ns.run(move || async move {
        let mut applier = NftApplier::new(Arc::new(NftCommand::default()));
        Ok(applier.apply(&state).await?)
    })
}

/// The source address the outside host sees for a TCP connection from the pod.
fn source_seen_outside(topology: &Topology) -> Result<SocketAddr> {
    let listener = topology
        .outside
        .run_blocking(|| Ok(TcpListener::bind("192.168.77.2:7777")?))?;
    let accepted = std::thread::spawn(move || -> Result<SocketAddr> {
        let (mut stream, peer) = listener.accept()?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte)?;
        Ok(peer)
    });
    topology.pod.run_blocking(|| {
        let mut stream =
            TcpStream::connect_timeout(&"192.168.77.2:7777".parse()?, Duration::from_secs(3))
                .context("the pod cannot reach the outside host")?;
        std::io::Write::write_all(&mut stream, b"x")?;
        Ok(())
    })?;
    accepted.join().expect("accept thread")
}

#[test]
fn nat_outgoing_masquerades_to_outside_and_keeps_the_pod_address_between_pools() -> Result<()> {
    let topology = topology()?;
    // Someone else's table on the same host: never touched.
    topology.node.exec_ok(&[
        "nft",
        "add table ip other; add chain ip other keep { type filter hook input priority 10; }",
    ])?;
    let other_before = topology
        .node
        .exec_ok(&["nft", "list", "table", "ip", "other"])?;

    assert_eq!(
        apply(
            &topology.node,
            pools(&["10.244.0.0/16"], &["10.244.0.0/16"])
        )?,
        NftOutcome::Replaced
    );
    let peer = source_seen_outside(&topology)?;
    assert_eq!(
        peer.ip().to_string(),
        "192.168.77.1",
        "the outside host must see the node's address"
    );

    // The outside network is now a pool too (and routes back): between pools, no NAT.
    topology
        .outside
        .ip(&["route", "add", "10.244.0.0/16", "via", "192.168.77.1"])?;
    apply(
        &topology.node,
        pools(&["10.244.0.0/16"], &["10.244.0.0/16", "192.168.77.0/24"]),
    )?;
    let peer = source_seen_outside(&topology)?;
    assert_eq!(
        peer.ip().to_string(),
        "10.244.0.5",
        "between pools the pod keeps its address"
    );

    assert_eq!(
        topology
            .node
            .exec_ok(&["nft", "list", "table", "ip", "other"])?,
        other_before
    );
    Ok(())
}

#[test]
fn vxlan_from_a_host_that_is_not_a_node_is_dropped() -> Result<()> {
    let topology = topology()?;
    let mut state = NftState {
        vxlan: true,
        ..NftState::default()
    };
    apply(&topology.node, state.clone())?;
    let receiver = topology.node.run_blocking(|| {
        let socket = UdpSocket::bind("0.0.0.0:4789")?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    })?;
    let send = || {
        topology.outside.run_blocking(|| {
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            socket.send_to(b"vxlan?", "192.168.77.1:4789")?;
            Ok(())
        })
    };
    send()?;
    // The drop rule counted it, and nothing reached the socket.
    poll(|| {
        let listing = topology
            .node
            .exec_ok(&["nft", "list", "chain", "inet", "manul", "input"])?;
        Ok(listing.contains("counter packets 1 "))
    })
    .context("the VXLAN drop rule did not count the spoofed datagram")?;
    let mut buffer = [0u8; 64];
    assert!(
        receiver.recv_from(&mut buffer).is_err(),
        "a datagram from an unknown host reached the VXLAN port"
    );

    // Once the sender is a known node, its datagrams get through.
    state.vxlan_peers.insert("192.168.77.2".parse()?);
    apply(&topology.node, state)?;
    send()?;
    poll(|| Ok(receiver.recv_from(&mut buffer).is_ok()))
        .context("a known node's datagram did not arrive")?;
    Ok(())
}

#[test]
fn a_script_nft_refuses_changes_nothing_and_says_why() -> Result<()> {
    let topology = topology()?;
    apply(
        &topology.node,
        pools(&["10.244.0.0/16"], &["10.244.0.0/16"]),
    )?;
    let before = topology
        .node
        .exec_ok(&["nft", "-s", "list", "table", "inet", "manul"])?;
    let error = topology.node.run(|| async {
        let refused = NftCommand::default()
            .apply("delete table inet manul\ntable inet manul { chain broken { nonsense; } }\n")
            .await;
        Ok(refused.expect_err("nft accepted nonsense"))
    })?;
    assert!(error.to_string().contains("Error"), "{error}");
    assert_eq!(
        topology
            .node
            .exec_ok(&["nft", "-s", "list", "table", "inet", "manul"])?,
        before,
        "one transaction: a refused script leaves the table as it was"
    );
    Ok(())
}

/// Polls `check` every 10 ms for up to 5 s.
fn poll(mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if check()? {
            return Ok(());
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "not within 5 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}
