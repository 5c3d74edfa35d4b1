//! The text of manul's nftables table, rendered whole from what it should hold, with no I/O.
//! The script replaces the table in one transaction: `table inet manul` (creates it when
//! missing, so that the delete cannot fail), `delete table inet manul`, then the full table.
//!
//! - `masq-pools`: CIDRs of enabled pools with natOutgoing; `all-pools`: every pool's CIDR.
//!   Postrouting: traffic from a masq pool to a destination outside every pool is
//!   masqueraded (Calico's cali-nat-outgoing), except when it leaves through vxlan.calico.
//! - `vxlan-peers`: the addresses of the known nodes. Input: a VXLAN datagram (UDP 4789) to a
//!   local address from any other source is dropped (Calico's cali-INPUT rule). Only when
//!   VXLAN is in use.

use std::{collections::BTreeSet, fmt::Write as _, net::Ipv4Addr};

use ipnet::Ipv4Net;

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
    let _ = writeln!(
        script,
        "  set masq-pools {{ type ipv4_addr; flags interval;{} }}",
        elements(&state.masquerade_pools)
    );
    let _ = writeln!(
        script,
        "  set all-pools {{ type ipv4_addr; flags interval;{} }}",
        elements(&state.all_pools)
    );
    let _ = writeln!(
        script,
        "  set vxlan-peers {{ type ipv4_addr;{} }}",
        elements(&state.vxlan_peers)
    );
    let _ = writeln!(script, "  chain postrouting {{");
    let _ = writeln!(
        script,
        "    type nat hook postrouting priority srcnat; policy accept;"
    );
    let _ = writeln!(
        script,
        "    ip saddr @masq-pools ip daddr != @all-pools oifname != \"vxlan.calico\" counter masquerade comment \"natOutgoing\""
    );
    let _ = writeln!(script, "  }}");
    if state.vxlan {
        let _ = writeln!(script, "  chain input {{");
        let _ = writeln!(
            script,
            "    type filter hook input priority filter; policy accept;"
        );
        let _ = writeln!(
            script,
            "    udp dport 4789 fib daddr type local ip saddr != @vxlan-peers counter drop comment \"VXLAN from unknown hosts\""
        );
        let _ = writeln!(script, "  }}");
    }
    let _ = writeln!(script, "}}");
    script
}
