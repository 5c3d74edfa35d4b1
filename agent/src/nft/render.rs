//! The text of manul's nftables table, rendered whole from what it should hold, with no I/O.
//! The script replaces the table in one transaction: `table inet manul` (creates it when
//! missing, so that the delete cannot fail), `delete table inet manul`, then the full table.
//!
//! - `masq-pools`: CIDRs of enabled pools with natOutgoing; `all-pools`: every pool's CIDR
//!   (IPv6: `masq-pools-v6`, `all-pools-v6`). Postrouting: traffic from a masq pool to a
//!   destination outside every pool of its family is masqueraded (Calico's cali-nat-outgoing),
//!   except when it leaves through the VXLAN device.
//! - `vxlan-peers` (`vxlan-peers-v6`): the addresses of the known nodes. Input: a VXLAN
//!   datagram (UDP 4789) to a local address from any other source is dropped (Calico's
//!   cali-INPUT rule). Only for a family whose VXLAN is in use.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::{Ipv4Net, Ipv6Net};

/// The table's family and name (`nft list table inet manul`).
pub const TABLE_FAMILY: &str = "inet";
pub const TABLE_NAME: &str = "manul";

/// What the table should hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftState {
    /// Enabled IPv4 pools with natOutgoing.
    pub masquerade_pools: BTreeSet<Ipv4Net>,
    /// Every IPv4 pool.
    pub all_pools: BTreeSet<Ipv4Net>,
    /// Some pool uses VXLAN on this node: filter its UDP port.
    pub vxlan: bool,
    /// Nodes whose VXLAN datagrams are accepted.
    pub vxlan_peers: BTreeSet<Ipv4Addr>,
    /// The same for IPv6.
    pub masquerade_pools_v6: BTreeSet<Ipv6Net>,
    pub all_pools_v6: BTreeSet<Ipv6Net>,
    pub vxlan_v6: bool,
    pub vxlan_peers_v6: BTreeSet<Ipv6Addr>,
}

fn elements<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|item| item.to_string()).collect();
    if items.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", items.join(", "))
    }
}

/// The nft script that replaces the table with `state`.
pub fn render(state: &NftState) -> String {
    let table = format!("{TABLE_FAMILY} {TABLE_NAME}");
    let mut script = String::new();
    let _ = writeln!(script, "table {table}");
    let _ = writeln!(script, "delete table {table}");
    let _ = writeln!(script, "table {table} {{");
    let sets = [
        (
            "masq-pools",
            "ipv4_addr; flags interval",
            elements(&state.masquerade_pools),
        ),
        (
            "all-pools",
            "ipv4_addr; flags interval",
            elements(&state.all_pools),
        ),
        ("vxlan-peers", "ipv4_addr", elements(&state.vxlan_peers)),
        (
            "masq-pools-v6",
            "ipv6_addr; flags interval",
            elements(&state.masquerade_pools_v6),
        ),
        (
            "all-pools-v6",
            "ipv6_addr; flags interval",
            elements(&state.all_pools_v6),
        ),
        (
            "vxlan-peers-v6",
            "ipv6_addr",
            elements(&state.vxlan_peers_v6),
        ),
    ];
    for (name, kind, elements) in sets {
        let _ = writeln!(script, "  set {name} {{ type {kind};{elements} }}");
    }
    let _ = writeln!(script, "  chain postrouting {{");
    let _ = writeln!(
        script,
        "    type nat hook postrouting priority srcnat; policy accept;"
    );
    let _ = writeln!(
        script,
        "    ip saddr @masq-pools ip daddr != @all-pools oifname != \"vxlan.calico\" counter masquerade comment \"natOutgoing\""
    );
    let _ = writeln!(
        script,
        "    ip6 saddr @masq-pools-v6 ip6 daddr != @all-pools-v6 oifname != \"vxlan-v6.calico\" counter masquerade comment \"natOutgoing (IPv6)\""
    );
    let _ = writeln!(script, "  }}");
    if state.vxlan || state.vxlan_v6 {
        let _ = writeln!(script, "  chain input {{");
        let _ = writeln!(
            script,
            "    type filter hook input priority filter; policy accept;"
        );
        if state.vxlan {
            let _ = writeln!(
                script,
                "    udp dport 4789 fib daddr type local ip saddr != @vxlan-peers counter drop comment \"VXLAN from unknown hosts\""
            );
        }
        if state.vxlan_v6 {
            let _ = writeln!(
                script,
                "    udp dport 4789 fib daddr type local ip6 saddr != @vxlan-peers-v6 counter drop comment \"VXLAN from unknown hosts (IPv6)\""
            );
        }
        let _ = writeln!(script, "  }}");
    }
    let _ = writeln!(script, "}}");
    script
}
