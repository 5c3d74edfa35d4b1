//! The nftables state the pools and nodes call for, with no I/O.

use ipnet::IpNet;
use manul_store::{IpPool, Node};

use crate::nft::NftState;

/// Masquerade enabled pools with natOutgoing toward destinations outside every pool of their
/// family; with VXLAN on for a family (this node has a tunnel endpoint of it), accept VXLAN
/// from every other node's address of that family only.
pub fn nft_state(
    node: &str,
    nodes: &[Node],
    pools: &[IpPool],
    vxlan: bool,
    vxlan_v6: bool,
) -> NftState {
    let v4 = |pool: &IpPool| match pool.cidr {
        IpNet::V4(cidr) => Some(cidr),
        IpNet::V6(_) => None,
    };
    let v6 = |pool: &IpPool| match pool.cidr {
        IpNet::V6(cidr) => Some(cidr),
        IpNet::V4(_) => None,
    };
    let masquerading = || {
        pools
            .iter()
            .filter(|pool| pool.nat_outgoing && !pool.disabled)
    };
    let others = || nodes.iter().filter(|other| other.name != node);
    NftState {
        masquerade_pools: masquerading().filter_map(v4).collect(),
        all_pools: pools.iter().filter_map(v4).collect(),
        vxlan,
        vxlan_peers: if vxlan {
            others().filter_map(Node::ipv4).collect()
        } else {
            Default::default()
        },
        masquerade_pools_v6: masquerading().filter_map(v6).collect(),
        all_pools_v6: pools.iter().filter_map(v6).collect(),
        vxlan_v6,
        vxlan_peers_v6: if vxlan_v6 {
            others().filter_map(Node::ipv6).collect()
        } else {
            Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use manul_store::NodeBgpSpec;

    use super::*;

    fn node(name: &str, address: &str, address6: &str) -> Node {
        Node {
            name: name.into(),
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some(address.parse().unwrap()),
                ipv6_address: Some(address6.parse().unwrap()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn masquerade_follows_nat_outgoing_and_vxlan_peers_are_the_other_nodes() {
        let mut nat = IpPool::new("nat", "10.244.0.0/16".parse().unwrap());
        nat.nat_outgoing = true;
        let mut disabled = IpPool::new("off", "10.246.0.0/16".parse().unwrap());
        disabled.nat_outgoing = true;
        disabled.disabled = true;
        let plain = IpPool::new("plain", "10.245.0.0/16".parse().unwrap());
        let mut v6 = IpPool::new("v6", "fd00::/48".parse().unwrap());
        v6.nat_outgoing = true;
        let nodes = [
            node("a", "10.0.0.1/24", "fd80::1/64"),
            node("b", "10.0.0.2/24", "fd80::2/64"),
        ];
        let pools = [nat, disabled, plain, v6];

        let state = nft_state("a", &nodes, &pools, true, false);
        assert_eq!(
            state.masquerade_pools,
            ["10.244.0.0/16".parse().unwrap()].into()
        );
        assert_eq!(state.all_pools.len(), 3, "every IPv4 pool, disabled too");
        assert_eq!(state.vxlan_peers, ["10.0.0.2".parse().unwrap()].into());
        assert_eq!(
            state.masquerade_pools_v6,
            ["fd00::/48".parse().unwrap()].into()
        );
        assert!(!state.vxlan_v6 && state.vxlan_peers_v6.is_empty());

        let state = nft_state("a", &nodes, &pools, false, true);
        assert!(!state.vxlan && state.vxlan_peers.is_empty());
        assert_eq!(state.vxlan_peers_v6, ["fd80::2".parse().unwrap()].into());
    }
}
