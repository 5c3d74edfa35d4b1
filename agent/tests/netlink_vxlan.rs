//! Tests of `RealNetlink`'s VXLAN concerns against the kernel: the vxlan.calico device, its
//! permanent neighbour and FDB entries, onlink routes through it, and a ping between two "node"
//! namespaces that crosses it. Each test makes its own namespaces (removed on drop); `ip -d
//! link`, `ip neigh` and `bridge fdb` are the ground truth. Does I/O and needs root.

mod support;

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, ensure};
use ipnet::IpNet;
use manul_agent::netlink::{
    FdbEntry, LinkDeletion, Netlink, NextHop, Route, RouteTarget, VXLAN_DEVICE_V4, VXLAN_DEVICE_V6,
    VXLAN_PORT, VXLAN_VNI, VxlanDevice, VxlanNeighbour, real::RealNetlink,
};
use serde_json::Value;
use support::{Netns, add_uplink, field, require_root, run, wire};

const MAC: [u8; 6] = [0x66, 0x00, 0x00, 0x00, 0x00, 0x01];
const REMOTE_MAC: [u8; 6] = [0x66, 0x00, 0x00, 0x00, 0x00, 0x02];

fn ip(text: &str) -> Result<IpAddr> {
    text.parse().with_context(|| format!("address {text}"))
}

/// vxlan.calico over up0 (10.99.0.1/24, mtu 9000, made by `add_uplink`).
fn device() -> Result<VxlanDevice> {
    Ok(VxlanDevice {
        name: VXLAN_DEVICE_V4.to_string(),
        vni: VXLAN_VNI,
        port: VXLAN_PORT,
        local: ip("10.99.0.1")?,
        parent: Some("up0".to_string()),
        mtu: 8950,
        mac: MAC,
    })
}

/// `ip -d -j link show <name>`: the link's JSON object.
fn link_details(netns: &Netns, name: &str) -> Result<Value> {
    netns
        .ip_json(&["-d", "link", "show", name])?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no link {name}"))
}

/// The `info_data` of a VXLAN link as `ip -d -j link` prints it.
fn vxlan_data(link: &Value) -> &Value {
    &link["linkinfo"]["info_data"]
}

#[test]
fn vxlan_device_is_created_then_changed_in_place_or_recreated_and_deleted() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    let wanted = device()?;
    let (created, again) = host.run({
        let wanted = wanted.clone();
        move || async move {
            let netlink = RealNetlink::new()?;
            let created = netlink.ensure_vxlan(&wanted).await?;
            let again = netlink.ensure_vxlan(&wanted).await?;
            let read = netlink.vxlan_device(&wanted.name).await?;
            ensure!(
                read.as_ref().is_some_and(|link| link.is(&wanted)
                    && link.index == created.index
                    && !link.learning),
                "{read:?}"
            );
            Ok((created, again))
        }
    })?;
    assert_eq!(again, created, "a second ensure changes nothing");
    assert_eq!((created.mtu, created.mac, created.up), (8950, MAC, true));
    let link = link_details(&host, VXLAN_DEVICE_V4)?;
    let data = vxlan_data(&link);
    assert_eq!(field(&link["linkinfo"], "info_kind"), "vxlan", "{link}");
    assert_eq!(data["id"], 4096, "{link}");
    assert_eq!(data["port"], 4789, "{link}");
    assert_eq!(field(data, "local"), "10.99.0.1", "{link}");
    assert_eq!(field(data, "link"), "up0", "{link}");
    assert_eq!(data["learning"], false, "{link}");
    assert_eq!(link["mtu"], 8950, "{link}");
    assert_eq!(field(&link, "address"), "66:00:00:00:00:01", "{link}");
    assert_eq!(field(&link, "ifname"), "vxlan.calico");

    // MTU and MAC change in place; a VNI change re-creates.
    let smaller = VxlanDevice {
        mtu: 1450,
        mac: REMOTE_MAC,
        ..wanted.clone()
    };
    let other_vni = VxlanDevice {
        vni: 4097,
        ..smaller.clone()
    };
    let (updated, recreated) = host.run({
        let (smaller, other_vni) = (smaller.clone(), other_vni.clone());
        move || async move {
            let netlink = RealNetlink::new()?;
            let updated = netlink.ensure_vxlan(&smaller).await?;
            let recreated = netlink.ensure_vxlan(&other_vni).await?;
            Ok((updated, recreated))
        }
    })?;
    assert_eq!((updated.index, updated.mtu), (created.index, 1450));
    assert_eq!(updated.mac, REMOTE_MAC);
    assert_ne!(recreated.index, created.index, "a new VNI is a new device");
    let link = link_details(&host, VXLAN_DEVICE_V4)?;
    assert_eq!(vxlan_data(&link)["id"], 4097, "{link}");
    assert_eq!(
        (link["mtu"].clone(), link["ifindex"].clone()),
        (1450.into(), recreated.index.into())
    );
    assert_eq!(field(&link, "address"), "66:00:00:00:00:02", "{link}");

    // Deleting it goes through delete_link; twice is fine.
    host.run(|| async {
        let netlink = RealNetlink::new()?;
        let deleted = netlink.delete_link(VXLAN_DEVICE_V4, None).await?;
        ensure!(deleted == LinkDeletion::Deleted, "{deleted:?}");
        let again = netlink.delete_link(VXLAN_DEVICE_V4, None).await?;
        ensure!(again == LinkDeletion::Gone, "{again:?}");
        ensure!(netlink.vxlan_device(VXLAN_DEVICE_V4).await?.is_none());
        Ok(())
    })?;
    assert!(host.ip(&["link", "show", VXLAN_DEVICE_V4]).is_err());
    Ok(())
}

#[test]
fn foreign_shapes_of_the_device_are_replaced_and_bad_requests_refused() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    // Left by someone else: as wanted but for learning on (and down, another MAC).
    host.ip(&[
        "link",
        "add",
        "vxlan.calico",
        "type",
        "vxlan",
        "id",
        "4096",
        "dstport",
        "4789",
        "local",
        "10.99.0.1",
        "dev",
        "up0",
        "learning",
    ])?;
    host.ip(&[
        "link",
        "add",
        "vxlan-v6.calico",
        "type",
        "veth",
        "peer",
        "name",
        "notvxlan",
    ])?;
    let wanted = device()?;
    let v6 = VxlanDevice {
        name: VXLAN_DEVICE_V6.to_string(),
        local: ip("fd00:99::1")?,
        parent: None,
        mtu: 1430,
        ..wanted.clone()
    };
    host.ip(&["addr", "add", "fd00:99::1/64", "dev", "up0", "nodad"])?;
    host.run(move || async move {
        let netlink = RealNetlink::new()?;
        let before = netlink.vxlan_device(&wanted.name).await?;
        ensure!(
            before
                .as_ref()
                .is_some_and(|link| link.learning && !link.up),
            "{before:?}"
        );
        let not_vxlan = netlink.vxlan_device(&v6.name).await;
        ensure!(
            not_vxlan.is_err(),
            "a veth is no vxlan device: {not_vxlan:?}"
        );
        let too_large = VxlanDevice {
            mtu: 8951,
            ..wanted.clone()
        };
        ensure!(
            netlink.ensure_vxlan(&too_large).await.is_err(),
            "mtu above parent - 50"
        );
        let orphan = VxlanDevice {
            parent: Some("missing0".into()),
            ..wanted.clone()
        };
        ensure!(
            netlink.ensure_vxlan(&orphan).await.is_err(),
            "missing parent"
        );
        let recreated = netlink.ensure_vxlan(&wanted).await?;
        ensure!(
            before.is_some_and(|link| link.index != recreated.index),
            "learning is fixed by re-creating"
        );
        netlink.ensure_vxlan(&v6).await?;
        for device in [&wanted, &v6] {
            let read = netlink.vxlan_device(&device.name).await?;
            ensure!(
                read.as_ref().is_some_and(|link| link.is(device)),
                "{read:?}"
            );
        }
        Ok(())
    })?;
    let link = link_details(&host, VXLAN_DEVICE_V4)?;
    assert_eq!(vxlan_data(&link)["learning"], false, "{link}");
    let link6 = link_details(&host, VXLAN_DEVICE_V6)?;
    assert_eq!(field(vxlan_data(&link6), "local6"), "fd00:99::1", "{link6}");
    assert_eq!(link6["mtu"], 1430, "{link6}");
    assert!(
        host.ip(&["link", "show", "notvxlan"]).is_err(),
        "the veth pair went"
    );
    Ok(())
}

#[test]
fn neighbours_and_fdb_entries_replace_list_and_delete_idempotently() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    host.ip(&[
        "neigh",
        "add",
        "10.99.0.9",
        "lladdr",
        "02:00:00:00:00:09",
        "dev",
        "up0",
        "nud",
        "permanent",
    ])?;
    let wanted = device()?;
    let neighbour = VxlanNeighbour {
        ip: ip("10.244.1.0")?,
        mac: REMOTE_MAC,
    };
    let neighbour6 = VxlanNeighbour {
        ip: ip("fd00:244:1::")?,
        mac: REMOTE_MAC,
    };
    let entry = FdbEntry {
        mac: REMOTE_MAC,
        destination: ip("10.99.0.2")?,
    };
    host.run({
        let wanted = wanted.clone();
        move || async move {
            let netlink = RealNetlink::new()?;
            netlink.ensure_vxlan(&wanted).await?;
            for _ in 0..2 {
                netlink
                    .replace_neighbour(VXLAN_DEVICE_V4, &neighbour)
                    .await?;
                netlink
                    .replace_neighbour(VXLAN_DEVICE_V4, &neighbour6)
                    .await?;
                netlink.replace_fdb(VXLAN_DEVICE_V4, &entry).await?;
            }
            let mut neighbours = netlink.vxlan_neighbours(VXLAN_DEVICE_V4).await?;
            neighbours.sort();
            ensure!(neighbours == [neighbour, neighbour6], "{neighbours:?}");
            let fdb = netlink.vxlan_fdb(VXLAN_DEVICE_V4).await?;
            ensure!(fdb == [entry], "{fdb:?}");
            let v6_destination = FdbEntry {
                destination: ip("fd00:99::2")?,
                ..entry
            };
            ensure!(
                netlink
                    .replace_fdb(VXLAN_DEVICE_V4, &v6_destination)
                    .await
                    .is_err(),
                "an IPv6 destination on an IPv4 device"
            );
            ensure!(
                netlink
                    .replace_neighbour("missing0", &neighbour)
                    .await
                    .is_err()
            );
            ensure!(netlink.replace_fdb("missing0", &entry).await.is_err());
            ensure!(netlink.vxlan_neighbours("missing0").await?.is_empty());
            ensure!(netlink.vxlan_fdb("missing0").await?.is_empty());
            netlink.delete_neighbour("missing0", neighbour.ip).await?;
            netlink.delete_fdb("missing0", &entry).await?;
            Ok(())
        }
    })?;
    let neighbours = host.ip(&["neigh", "show", "dev", VXLAN_DEVICE_V4])?;
    assert!(
        neighbours.contains("10.244.1.0 lladdr 66:00:00:00:00:02 PERMANENT"),
        "{neighbours}"
    );
    assert!(
        neighbours.contains("fd00:244:1:: lladdr 66:00:00:00:00:02 PERMANENT"),
        "{neighbours}"
    );
    let fdb = run(
        "bridge",
        &["-n", host.name(), "fdb", "show", "dev", VXLAN_DEVICE_V4],
    )?;
    assert_eq!(fdb.trim(), "66:00:00:00:00:02 dst 10.99.0.2 self permanent");

    // A new MAC or destination replaces the old; a deletion with a stale destination leaves the
    // entry; deleting twice is fine.
    let moved = VxlanNeighbour {
        mac: [0x66, 0, 0, 0, 0, 3],
        ..neighbour
    };
    let moved_entry = FdbEntry {
        destination: ip("10.99.0.3")?,
        ..entry
    };
    host.run(move || async move {
        let netlink = RealNetlink::new()?;
        netlink.replace_neighbour(VXLAN_DEVICE_V4, &moved).await?;
        netlink.replace_fdb(VXLAN_DEVICE_V4, &moved_entry).await?;
        let mut neighbours = netlink.vxlan_neighbours(VXLAN_DEVICE_V4).await?;
        neighbours.sort();
        ensure!(neighbours == [moved, neighbour6], "{neighbours:?}");
        ensure!(netlink.vxlan_fdb(VXLAN_DEVICE_V4).await? == [moved_entry]);
        netlink.delete_fdb(VXLAN_DEVICE_V4, &entry).await?;
        ensure!(
            netlink.vxlan_fdb(VXLAN_DEVICE_V4).await? == [moved_entry],
            "stale dst kept it"
        );
        for _ in 0..2 {
            netlink.delete_fdb(VXLAN_DEVICE_V4, &moved_entry).await?;
            netlink.delete_neighbour(VXLAN_DEVICE_V4, moved.ip).await?;
            netlink
                .delete_neighbour(VXLAN_DEVICE_V4, neighbour6.ip)
                .await?;
        }
        ensure!(netlink.vxlan_fdb(VXLAN_DEVICE_V4).await?.is_empty());
        ensure!(netlink.vxlan_neighbours(VXLAN_DEVICE_V4).await?.is_empty());
        // The permanent neighbour of up0 was never listed, nor touched.
        ensure!(netlink.vxlan_neighbours("up0").await?.len() == 1);
        Ok(())
    })?;
    let fdb = run(
        "bridge",
        &["-n", host.name(), "fdb", "show", "dev", VXLAN_DEVICE_V4],
    )?;
    assert!(fdb.trim().is_empty(), "{fdb}");
    let neighbours = host.ip(&["neigh", "show", "dev", VXLAN_DEVICE_V4, "nud", "permanent"])?;
    assert!(neighbours.trim().is_empty(), "{neighbours}");
    Ok(())
}

/// `<block> via <tunnel-ip> dev vxlan.calico onlink`: the kernel only takes it with RTNH_F_ONLINK
/// (the tunnel address is on no subnet of the device), and the dump reads it back as onlink.
#[test]
fn an_onlink_route_via_the_tunnel_address_is_written_and_read_back() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    let wanted = device()?;
    let hop = |onlink| -> Result<Route> {
        Ok(Route::main(
            "10.244.1.0/26".parse()?,
            RouteTarget::via(vec![NextHop {
                gateway: ip("10.244.1.0")?,
                device: VXLAN_DEVICE_V4.to_string(),
                onlink,
            }]),
        ))
    };
    let (onlink, plain) = (hop(true)?, hop(false)?);
    let listed = host.run({
        let onlink = onlink.clone();
        move || async move {
            let netlink = RealNetlink::new()?;
            netlink.ensure_vxlan(&wanted).await?;
            ensure!(
                netlink.replace_route(&plain).await.is_err(),
                "without onlink the gateway is unreachable"
            );
            netlink.replace_route(&onlink).await?;
            Ok(netlink.manul_routes(&[]).await?)
        }
    })?;
    assert_eq!(listed, vec![onlink]);
    let routes = host.ip_json(&["route", "show", "proto", "109"])?;
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(field(&routes[0], "gateway"), "10.244.1.0");
    assert_eq!(field(&routes[0], "dev"), "vxlan.calico");
    assert!(
        routes[0]["flags"]
            .as_array()
            .is_some_and(|flags| flags.contains(&"onlink".into())),
        "{routes:?}"
    );
    Ok(())
}

/// The tunnel address goes on the device as a host route (/32, /128); a second call writes
/// nothing new, another address replaces it, link-local addresses stay.
#[test]
fn the_tunnel_address_is_set_on_the_device_and_replaced() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    let v6 = VxlanDevice {
        name: VXLAN_DEVICE_V6.to_string(),
        local: ip("fd00:99::1")?,
        mtu: 8930,
        ..device()?
    };
    let global = |netns: &Netns, name: &str| -> Result<Vec<String>> {
        let link = netns.ip_json(&["addr", "show", "dev", name])?;
        let infos = link
            .first()
            .and_then(|link| link["addr_info"].as_array())
            .cloned()
            .unwrap_or_default();
        Ok(infos
            .iter()
            .filter(|info| field(info, "scope") == "global")
            .map(|info| format!("{}/{}", field(info, "local"), info["prefixlen"]))
            .collect())
    };
    host.run({
        let v6 = v6.clone();
        move || async move {
            let netlink = RealNetlink::new()?;
            netlink.ensure_vxlan(&device()?).await?;
            netlink.ensure_vxlan(&v6).await?;
            for _ in 0..2 {
                let tunnel: IpNet = "10.244.0.1/32".parse()?;
                netlink
                    .set_link_addresses(VXLAN_DEVICE_V4, &[tunnel])
                    .await?;
                let tunnel6: IpNet = "fd00:244::1/128".parse()?;
                netlink
                    .set_link_addresses(VXLAN_DEVICE_V6, &[tunnel6])
                    .await?;
            }
            ensure!(
                netlink.set_link_addresses("missing0", &[]).await.is_err(),
                "a missing device"
            );
            Ok(())
        }
    })?;
    assert_eq!(global(&host, VXLAN_DEVICE_V4)?, ["10.244.0.1/32"]);
    assert_eq!(global(&host, VXLAN_DEVICE_V6)?, ["fd00:244::1/128"]);
    host.run(|| async {
        let netlink = RealNetlink::new()?;
        let moved: IpNet = "10.244.0.65/32".parse()?;
        netlink
            .set_link_addresses(VXLAN_DEVICE_V4, &[moved])
            .await?;
        Ok(())
    })?;
    assert_eq!(global(&host, VXLAN_DEVICE_V4)?, ["10.244.0.65/32"]);
    let all = host.ip(&["-6", "addr", "show", "dev", VXLAN_DEVICE_V6])?;
    assert!(all.contains("scope link"), "link-local kept: {all}");
    Ok(())
}

/// One end of the two-node test: its underlay address and device, tunnel address and VTEP MAC.
#[derive(Clone, Copy)]
struct TunnelEnd {
    uplink: &'static str,
    local: &'static str,
    tunnel: &'static str,
    mac: [u8; 6],
}

impl TunnelEnd {
    fn device(&self) -> Result<VxlanDevice> {
        Ok(VxlanDevice {
            local: ip(self.local)?,
            parent: Some(self.uplink.to_string()),
            mtu: 1450,
            mac: self.mac,
            ..device()?
        })
    }
}

/// Writes, with RealNetlink inside `node`, what manul writes for one remote node: the device,
/// the neighbour (remote tunnel address -> VTEP MAC), the FDB entry (VTEP MAC -> remote
/// address), the device's tunnel address and `<destination> via <remote tunnel address> dev
/// vxlan.calico onlink`.
fn wire_tunnel(node: &Netns, this: TunnelEnd, remote: TunnelEnd, destination: &str) -> Result<()> {
    let route = Route::main(
        destination.parse()?,
        RouteTarget::via(vec![NextHop {
            gateway: ip(remote.tunnel)?,
            device: VXLAN_DEVICE_V4.to_string(),
            onlink: true,
        }]),
    );
    node.run(move || async move {
        let netlink = RealNetlink::new()?;
        netlink.ensure_vxlan(&this.device()?).await?;
        let neighbour = VxlanNeighbour {
            ip: ip(remote.tunnel)?,
            mac: remote.mac,
        };
        netlink
            .replace_neighbour(VXLAN_DEVICE_V4, &neighbour)
            .await?;
        let entry = FdbEntry {
            mac: remote.mac,
            destination: ip(remote.local)?,
        };
        netlink.replace_fdb(VXLAN_DEVICE_V4, &entry).await?;
        let tunnel = IpNet::from(ip(this.tunnel)?);
        netlink
            .set_link_addresses(VXLAN_DEVICE_V4, &[tunnel])
            .await?;
        netlink.replace_route(&route).await?;
        Ok(())
    })
}

/// (tx packets, rx packets) of the node's vxlan.calico.
fn vxlan_packets(node: &Netns) -> Result<(u64, u64)> {
    let link = node
        .ip_json(&["-s", "link", "show", VXLAN_DEVICE_V4])?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no {VXLAN_DEVICE_V4}"))?;
    let count = |direction: &str| {
        link["stats64"][direction]["packets"]
            .as_u64()
            .ok_or_else(|| anyhow!("no {direction} packets in {link}"))
    };
    Ok((count("tx")?, count("rx")?))
}

/// Two "nodes" joined by a veth; node B holds 10.245.1.5/32 on lo, which node A reaches only
/// through the tunnel that RealNetlink wrote on both sides.
#[test]
fn a_ping_between_two_nodes_crosses_their_vxlan_devices() -> Result<()> {
    require_root();
    support::require_programs(&["ping"]);
    let (a, b) = (Netns::new("agent")?, Netns::new("agent")?);
    wire(&a, "a0", "10.99.0.1/24", &b, "b0", "10.99.0.2/24")?;
    b.ip(&["addr", "add", "10.245.1.5/32", "dev", "lo"])?;
    let end_a = TunnelEnd {
        uplink: "a0",
        local: "10.99.0.1",
        tunnel: "10.244.0.1",
        mac: MAC,
    };
    let end_b = TunnelEnd {
        uplink: "b0",
        local: "10.99.0.2",
        tunnel: "10.244.1.1",
        mac: REMOTE_MAC,
    };
    wire_tunnel(&a, end_a, end_b, "10.245.1.0/26")?;
    wire_tunnel(&b, end_b, end_a, "10.244.0.1/32")?;
    let path = a.ip(&["route", "get", "10.245.1.5"])?;
    assert!(path.contains("via 10.244.1.1 dev vxlan.calico"), "{path}");

    let (sent_before, _) = vxlan_packets(&a)?;
    let (_, received_before) = vxlan_packets(&b)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(error) = a.exec_ok(&["ping", "-c", "1", "-W", "1", "10.245.1.5"]) {
        ensure!(
            Instant::now() < deadline,
            "no answer through the tunnel: {error}"
        );
    }
    let (sent_after, _) = vxlan_packets(&a)?;
    let (_, received_after) = vxlan_packets(&b)?;
    assert!(
        sent_after > sent_before,
        "A's vxlan.calico sent nothing: {sent_before} -> {sent_after}"
    );
    assert!(
        received_after > received_before,
        "B's vxlan.calico received nothing: {received_before} -> {received_after}"
    );
    Ok(())
}
