//! The kernel's floor for the lab's pod-to-pod paths: the lab's topology wired by hand in fresh
//! namespaces, with static routes and nothing of manul (no agent, no bgpd, no nftables table).
//! What a CNI that routes pods over veths cannot beat on this kernel. Does I/O (`ip`, `bridge`,
//! sysctls).
//!
//! ```text
//!   pod A ── veth ── node A ─┐ br-a (a subnet's switch) ┌─ node B ── veth ── pod B   routed
//!   pod A ── veth ── node A ─┴ br-a ── router ── br-b ──┴─ node B ── veth ── pod B   VXLAN
//! ```
//!
//! As in the lab: each pod has a /32 behind the phantom gateway 169.254.1.1, answered by
//! proxy ARP on the node's end of its veth, which has GRO on (as the agent sets it); each subnet is a bridge that the router joins
//! through a veth pair; the routed path is a /32 via the other node, the VXLAN path a /32 via
//! the other node's tunnel address on `vxlan.calico` (VNI 4096, port 4789, learning off, MTU
//! of the uplink less 50), onlink, with a permanent neighbour and FDB entry for its VTEP.

use std::net::Ipv4Addr;

use anyhow::Result;

use crate::Netns;

/// Which of the lab's pod-to-pod paths to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloorPath {
    /// Two nodes on one subnet; the pod routes go via the other node.
    Routed,
    /// Two nodes on two subnets behind a router; the pod routes go through VXLAN.
    Vxlan,
}

/// One pod-to-pod path without manul. The client and server pods' interfaces are `eth0`, as
/// in a pod. Dropping it removes every namespace.
pub struct Floor {
    pub client: Netns,
    pub server: Netns,
    pub server_address: Ipv4Addr,
    /// The client's node, then the server's.
    pub nodes: [Netns; 2],
    _fabric: Netns,
}

const CLIENT_POD: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const SERVER_POD: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
const GATEWAY: &str = "169.254.1.1";
const VXLAN_DEVICE: &str = "vxlan.calico";
const UPLINK_MTU: u32 = 1500;

/// A node of the floor: its uplink address, subnet, tunnel address and VTEP MAC.
struct FloorNode {
    address: Ipv4Addr,
    subnet: char,
    tunnel: Ipv4Addr,
    mac: &'static str,
}

impl Floor {
    /// Builds `path`; the pods' interfaces get `pod_mtu` (the lab's pods' MTU, so that both
    /// cut the same segments when offloads are off).
    pub fn new(path: FloorPath, pod_mtu: u32) -> Result<Floor> {
        let fabric = Netns::new("floor-net")?;
        wire_fabric(&fabric)?;
        let plan = [
            FloorNode {
                address: Ipv4Addr::new(10, 78, 1, 10),
                subnet: 'a',
                tunnel: Ipv4Addr::new(10, 77, 255, 1),
                mac: "66:00:00:00:00:01",
            },
            FloorNode {
                address: if path == FloorPath::Routed {
                    Ipv4Addr::new(10, 78, 1, 11)
                } else {
                    Ipv4Addr::new(10, 78, 2, 12)
                },
                subnet: if path == FloorPath::Routed { 'a' } else { 'b' },
                tunnel: Ipv4Addr::new(10, 77, 255, 2),
                mac: "66:00:00:00:00:02",
            },
        ];
        let nodes = [
            wire_node(&fabric, &plan[0], path)?,
            wire_node(&fabric, &plan[1], path)?,
        ];
        let client = wire_pod(&nodes[0], CLIENT_POD, pod_mtu)?;
        let server = wire_pod(&nodes[1], SERVER_POD, pod_mtu)?;
        route_to_remote_pod(&nodes[0], &plan[1], SERVER_POD, path)?;
        route_to_remote_pod(&nodes[1], &plan[0], CLIENT_POD, path)?;
        Ok(Floor {
            client,
            server,
            server_address: SERVER_POD,
            nodes,
            _fabric: fabric,
        })
    }
}

/// The router's address on `subnet`.
fn gateway(subnet: char) -> Ipv4Addr {
    Ipv4Addr::new(10, 78, if subnet == 'a' { 1 } else { 2 }, 254)
}

/// The two subnets' bridges and the router between them, as the lab's ToR wires them.
fn wire_fabric(fabric: &Netns) -> Result<()> {
    fabric.sysctl("net.ipv4.ip_forward", "1")?;
    fabric.sysctl("net.ipv4.conf.all.arp_ignore", "1")?;
    for subnet in ['a', 'b'] {
        crate::lab::add_subnet(fabric, subnet, gateway(subnet))?;
    }
    Ok(())
}

/// A node: its uplink `eth0` on its subnet's bridge, forwarding on, a default route via the
/// router, and for VXLAN its `vxlan.calico`.
fn wire_node(fabric: &Netns, plan: &FloorNode, path: FloorPath) -> Result<Netns> {
    let node = Netns::new("floor-node")?;
    let port = format!("p-{}", plan.address.octets()[3]);
    fabric.ip(&[
        "link",
        "add",
        &port,
        "mtu",
        &UPLINK_MTU.to_string(),
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
    ])?;
    fabric.ip(&["link", "set", "eth0", "netns", node.name()])?;
    fabric.ip(&[
        "link",
        "set",
        &port,
        "master",
        &format!("br-{}", plan.subnet),
    ])?;
    fabric.ip(&["link", "set", &port, "up"])?;
    node.ip(&[
        "addr",
        "add",
        &format!("{}/24", plan.address),
        "dev",
        "eth0",
    ])?;
    node.ip(&["link", "set", "eth0", "up"])?;
    node.ip(&[
        "route",
        "add",
        "default",
        "via",
        &gateway(plan.subnet).to_string(),
    ])?;
    node.sysctl("net.ipv4.ip_forward", "1")?;
    if path == FloorPath::Vxlan {
        node.ip(&[
            "link",
            "add",
            VXLAN_DEVICE,
            "address",
            plan.mac,
            "mtu",
            &(UPLINK_MTU - 50).to_string(),
            "type",
            "vxlan",
            "id",
            "4096",
            "dstport",
            "4789",
            "local",
            &plan.address.to_string(),
            "dev",
            "eth0",
            "nolearning",
        ])?;
        node.ip(&[
            "addr",
            "add",
            &format!("{}/32", plan.tunnel),
            "dev",
            VXLAN_DEVICE,
        ])?;
        node.ip(&["link", "set", VXLAN_DEVICE, "up"])?;
    }
    Ok(node)
}

/// A pod on `node` with `address`/32 behind the phantom gateway, as the CNI plugin wires it.
fn wire_pod(node: &Netns, address: Ipv4Addr, mtu: u32) -> Result<Netns> {
    let pod = Netns::new("floor-pod")?;
    let host = "cali0";
    node.ip(&[
        "link",
        "add",
        host,
        "mtu",
        &mtu.to_string(),
        "type",
        "veth",
        "peer",
        "name",
        "pod0",
    ])?;
    node.ip(&["link", "set", "pod0", "netns", pod.name()])?;
    pod.ip(&["link", "set", "pod0", "name", "eth0"])?;
    for (key, value) in [
        (format!("net.ipv4.conf.{host}.proxy_arp"), "1"),
        (format!("net.ipv4.neigh.{host}.proxy_delay"), "0"),
        (format!("net.ipv4.conf.{host}.forwarding"), "1"),
    ] {
        node.sysctl(&key, value)?;
    }
    node.ip(&["link", "set", host, "up"])?;
    // As the agent does at every pod's host end: with GRO on, the veth merges what it receives.
    node.exec_ok(&["ethtool", "-K", host, "gro", "on"])?;
    node.ip(&[
        "route",
        "add",
        &format!("{address}/32"),
        "dev",
        host,
        "scope",
        "link",
    ])?;
    pod.ip(&["addr", "add", &format!("{address}/32"), "dev", "eth0"])?;
    pod.ip(&["link", "set", "eth0", "up"])?;
    pod.ip(&["route", "add", GATEWAY, "dev", "eth0", "scope", "link"])?;
    pod.ip(&["route", "add", "default", "via", GATEWAY, "dev", "eth0"])?;
    Ok(pod)
}

/// `node`'s route to the other node's pod: via that node (routed), or via its tunnel address
/// on `vxlan.calico` with its VTEP's neighbour and FDB entries (VXLAN).
fn route_to_remote_pod(
    node: &Netns,
    remote: &FloorNode,
    remote_pod: Ipv4Addr,
    path: FloorPath,
) -> Result<()> {
    let destination = format!("{remote_pod}/32");
    match path {
        FloorPath::Routed => {
            node.ip(&[
                "route",
                "add",
                &destination,
                "via",
                &remote.address.to_string(),
                "dev",
                "eth0",
            ])?;
        }
        FloorPath::Vxlan => {
            let tunnel = remote.tunnel.to_string();
            node.ip(&[
                "neigh",
                "replace",
                &tunnel,
                "lladdr",
                remote.mac,
                "dev",
                VXLAN_DEVICE,
                "nud",
                "permanent",
            ])?;
            node.exec_ok(&[
                "bridge",
                "fdb",
                "replace",
                remote.mac,
                "dev",
                VXLAN_DEVICE,
                "dst",
                &remote.address.to_string(),
                "self",
                "permanent",
            ])?;
            node.ip(&[
                "route",
                "add",
                &destination,
                "via",
                &tunnel,
                "dev",
                VXLAN_DEVICE,
                "onlink",
            ])?;
        }
    }
    Ok(())
}
