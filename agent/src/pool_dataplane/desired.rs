//! The nftables state the pools and nodes call for, with no I/O.

use ipnet::IpNet;
use manul_store::{IpPool, Node};

use crate::nft::NftState;

/// Masquerade enabled IPv4 pools with natOutgoing toward destinations outside every IPv4 pool;
/// with VXLAN on (this node has a tunnel endpoint), accept VXLAN from every other node's IPv4
/// address only.
pub fn nft_state(node: &str, nodes: &[Node], pools: &[IpPool], vxlan: bool) -> NftState {
    let v4 = |pool: &IpPool| match pool.cidr {
        IpNet::V4(cidr) => Some(cidr),
        IpNet::V6(_) => None,
    };
    NftState {
        masquerade_pools: pools
            .iter()
            .filter(|pool| pool.nat_outgoing && !pool.disabled)
            .filter_map(v4)
            .collect(),
        all_pools: pools.iter().filter_map(v4).collect(),
        vxlan,
        vxlan_peers: if vxlan {
            nodes
                .iter()
                .filter(|other| other.name != node)
                .filter_map(Node::ipv4)
                .collect()
        } else {
            Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use manul_store::NodeBgpSpec;

    use super::*;

    fn node(name: &str, address: &str) -> Node {
        Node {
            name: name.into(),
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some(address.parse().unwrap()),
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
        let v6 = IpPool::new("v6", "fd00::/48".parse().unwrap());
        let nodes = [node("a", "10.0.0.1/24"), node("b", "10.0.0.2/24")];
        let pools = [nat, disabled, plain, v6];

        let state = nft_state("a", &nodes, &pools, true);
        assert_eq!(
            state.masquerade_pools,
            ["10.244.0.0/16".parse().unwrap()].into()
        );
        assert_eq!(state.all_pools.len(), 3, "every IPv4 pool, disabled too");
        assert_eq!(state.vxlan_peers, ["10.0.0.2".parse().unwrap()].into());

        let state = nft_state("a", &nodes, &pools, false);
        assert!(!state.vxlan && state.vxlan_peers.is_empty());
    }
}
