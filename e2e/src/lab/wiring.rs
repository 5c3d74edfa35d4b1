//! The lab's wiring, in its namespaces: the router's subnets (a bridge per subnet that the
//! router joins through a veth pair) and its link to the outside host, each node's uplink
//! with its addresses and default routes, and a node moving to another address. Does I/O
//! (`ip`, sysctls).

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::Result;

use super::{Lab, LabNode, OUTSIDE, TOR_OUTSIDE, tor};
use crate::Netns;

/// The router's IPv6 address on `subnet` (fd80:1::fe, fd80:2::fe).
pub(super) fn subnet_gateway6(subnet: char) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfd80,
        if subnet == 'a' { 1 } else { 2 },
        0,
        0,
        0,
        0,
        0,
        0xfe,
    )
}

/// The outside host's IPv6 address, and the router's on its link.
pub const OUTSIDE6: Ipv6Addr = Ipv6Addr::new(0xfd80, 9, 0, 0, 0, 0, 0, 1);
const TOR_OUTSIDE6: Ipv6Addr = Ipv6Addr::new(0xfd80, 9, 0, 0, 0, 0, 0, 0xfe);

pub(super) fn subnet_gateway(subnet: char) -> Ipv4Addr {
    if subnet == 'a' {
        Ipv4Addr::new(10, 80, 1, 254)
    } else {
        Ipv4Addr::new(10, 80, 2, 254)
    }
}

/// Adds `subnet` to the router in `router`: a bridge `br-<subnet>` (the rack's switch) that
/// the router joins through a veth pair, `r-<subnet>` (holding `gateway`/24) to `s-<subnet>`
/// (a bridge port), rather than with an address on the bridge itself: a bridge device does not
/// offer encapsulation offloads, so routing out of one would segment every VXLAN super-packet
/// in software on the router, which a real ToR does not do.
pub(crate) fn add_subnet(router: &Netns, subnet: char, gateway: Ipv4Addr) -> Result<()> {
    let (bridge, address, port) = (
        format!("br-{subnet}"),
        format!("r-{subnet}"),
        format!("s-{subnet}"),
    );
    router.ip(&["link", "add", &bridge, "type", "bridge"])?;
    router.ip(&[
        "link", "add", &address, "type", "veth", "peer", "name", &port,
    ])?;
    router.ip(&["link", "set", &port, "master", &bridge])?;
    router.ip(&["addr", "add", &format!("{gateway}/24"), "dev", &address])?;
    for device in [&bridge, &port, &address] {
        router.ip(&["link", "set", device, "up"])?;
    }
    Ok(())
}

impl Lab {
    pub(super) fn wire_router(&self) -> Result<()> {
        let tor = &self.tor;
        tor.sysctl("net.ipv4.ip_forward", "1")?;
        // Answer ARP only on the interface that holds the address. Otherwise the bridge device
        // (same namespace, no address) answers for the router's address too, with its own MAC,
        // which a bridge changes to its lowest port MAC whenever a node joins: the nodes that
        // cached it lost the router (and etcd) until their ARP entry went stale, 25-50 s.
        tor.sysctl("net.ipv4.conf.all.arp_ignore", "1")?;
        for subnet in ['a', 'b'] {
            add_subnet(tor, subnet, subnet_gateway(subnet))?;
        }
        tor.ip(&[
            "link", "add", "out0", "type", "veth", "peer", "name", "eth0",
        ])?;
        tor.ip(&["link", "set", "eth0", "netns", self.outside.name()])?;
        tor.ip(&["addr", "add", &format!("{TOR_OUTSIDE}/24"), "dev", "out0"])?;
        tor.ip(&["link", "set", "out0", "up"])?;
        let outside = &self.outside;
        outside.ip(&["addr", "add", &format!("{OUTSIDE}/24"), "dev", "eth0"])?;
        outside.ip(&["link", "set", "eth0", "up"])?;
        outside.ip(&["route", "add", "default", "via", &TOR_OUTSIDE.to_string()])?;
        if self.opts.ipv6 {
            tor.sysctl("net.ipv6.conf.all.forwarding", "1")?;
            for (device, address) in [
                ("r-a", subnet_gateway6('a')),
                ("r-b", subnet_gateway6('b')),
                ("out0", TOR_OUTSIDE6),
            ] {
                tor.ip(&[
                    "addr",
                    "add",
                    &format!("{address}/64"),
                    "dev",
                    device,
                    "nodad",
                ])?;
            }
            outside.ip(&[
                "addr",
                "add",
                &format!("{OUTSIDE6}/64"),
                "dev",
                "eth0",
                "nodad",
            ])?;
            outside.ip(&[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &TOR_OUTSIDE6.to_string(),
            ])?;
        }
        Ok(())
    }

    pub(super) fn wire_node(&self, index: usize) -> Result<LabNode> {
        let name = format!("n{index}");
        let subnet = if self.opts.tor && index >= self.opts.nodes.div_ceil(2) {
            'b'
        } else {
            'a'
        };
        let third = if subnet == 'a' { 1 } else { 2 };
        let address = Ipv4Addr::new(10, 80, third, 10 + index as u8);
        let ns = Netns::new(&name)?;
        let port = format!("p-{name}");
        self.tor
            .ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0"])?;
        self.tor.ip(&["link", "set", "eth0", "netns", ns.name()])?;
        self.tor
            .ip(&["link", "set", &port, "master", &format!("br-{subnet}")])?;
        self.tor.ip(&["link", "set", &port, "up"])?;
        ns.ip(&["addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            &subnet_gateway(subnet).to_string(),
        ])?;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        let address6 = self
            .opts
            .ipv6
            .then(|| Ipv6Addr::new(0xfd80, u16::from(third), 0, 0, 0, 0, 0, 0x10 + index as u16));
        if let Some(address6) = address6 {
            ns.ip(&[
                "addr",
                "add",
                &format!("{address6}/64"),
                "dev",
                "eth0",
                "nodad",
            ])?;
            ns.ip(&[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &subnet_gateway6(subnet).to_string(),
            ])?;
        }
        let dir = self.dir().join(&name);
        std::fs::create_dir_all(dir.join("state"))?;
        Ok(LabNode {
            name,
            ns,
            address,
            address6,
            subnet,
            dir,
            agent: None,
            bgpd: None,
        })
    }

    /// Moves node `index` to `address` (same subnet): the new address goes on its eth0, the
    /// old one off, and its agent restarts with `--node-ip` the new one (it records it on its
    /// Node, which every other node follows). The ToR's BIRD is reconfigured for it.
    pub fn change_node_address(&mut self, index: usize, address: Ipv4Addr) -> Result<()> {
        let node = &self.nodes[index];
        let (old, gateway) = (node.address, node.gateway());
        node.ns
            .sysctl("net.ipv4.conf.eth0.promote_secondaries", "1")?;
        node.ns
            .ip(&["addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
        node.ns
            .ip(&["addr", "del", &format!("{old}/24"), "dev", "eth0"])?;
        node.ns.ip(&[
            "route",
            "replace",
            "default",
            "via",
            &gateway.to_string(),
            "src",
            &address.to_string(),
        ])?;
        self.nodes[index].address = address;
        if self.tor_bgp() {
            tor::reconfigure(self)?;
        }
        self.restart_agent(index)
    }
}
