//! Unit tests of the nft table: the rendered text (golden) and the applier's decisions over the
//! recording fake.

use std::sync::Arc;

use super::{NftApplier, NftOutcome, NftState, fake::FakeNft, render};

fn state() -> NftState {
    NftState {
        masquerade_pools: ["10.244.0.0/16".parse().unwrap()].into(),
        all_pools: [
            "10.244.0.0/16".parse().unwrap(),
            "10.245.0.0/16".parse().unwrap(),
        ]
        .into(),
        vxlan: true,
        vxlan_peers: ["10.80.1.11".parse().unwrap(), "10.80.2.12".parse().unwrap()].into(),
        masquerade_pools_v6: ["fd00:244::/48".parse().unwrap()].into(),
        all_pools_v6: ["fd00:244::/48".parse().unwrap()].into(),
        vxlan_v6: true,
        vxlan_peers_v6: ["fd80:1::11".parse().unwrap()].into(),
    }
}

#[test]
fn the_table_is_rendered_whole_and_replaced_in_one_script() {
    let expected = "\
table inet manul
delete table inet manul
table inet manul {
  set masq-pools { type ipv4_addr; flags interval; elements = { 10.244.0.0/16 }; }
  set all-pools { type ipv4_addr; flags interval; elements = { 10.244.0.0/16, 10.245.0.0/16 }; }
  set vxlan-peers { type ipv4_addr; elements = { 10.80.1.11, 10.80.2.12 }; }
  set masq-pools-v6 { type ipv6_addr; flags interval; elements = { fd00:244::/48 }; }
  set all-pools-v6 { type ipv6_addr; flags interval; elements = { fd00:244::/48 }; }
  set vxlan-peers-v6 { type ipv6_addr; elements = { fd80:1::11 }; }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr @masq-pools ip daddr != @all-pools oifname != \"vxlan.calico\" counter masquerade comment \"natOutgoing\"
    ip6 saddr @masq-pools-v6 ip6 daddr != @all-pools-v6 oifname != \"vxlan-v6.calico\" counter masquerade comment \"natOutgoing (IPv6)\"
  }
  chain input {
    type filter hook input priority filter; policy accept;
    udp dport 4789 fib daddr type local ip saddr != @vxlan-peers counter drop comment \"VXLAN from unknown hosts\"
    udp dport 4789 fib daddr type local ip6 saddr != @vxlan-peers-v6 counter drop comment \"VXLAN from unknown hosts (IPv6)\"
  }
}
";
    assert_eq!(render(&state()), expected);
}

#[test]
fn empty_sets_have_no_elements_and_no_vxlan_means_no_input_chain() {
    let script = render(&NftState::default());
    assert!(script.contains("set masq-pools { type ipv4_addr; flags interval; }"));
    assert!(!script.contains("elements"));
    assert!(!script.contains("chain input"));
}

#[tokio::test]
async fn the_applier_writes_only_changes_and_repairs_a_table_changed_behind_its_back() {
    let nft = Arc::new(FakeNft::default());
    let mut applier = NftApplier::new(nft.clone());
    assert_eq!(applier.apply(&state()).await.unwrap(), NftOutcome::Replaced);
    assert_eq!(
        applier.apply(&state()).await.unwrap(),
        NftOutcome::Unchanged
    );
    assert_eq!(nft.applied().len(), 1);

    let mut fewer = state();
    fewer.vxlan_peers.clear();
    assert_eq!(applier.apply(&fewer).await.unwrap(), NftOutcome::Replaced);

    nft.lose_table();
    assert_eq!(applier.apply(&fewer).await.unwrap(), NftOutcome::Replaced);
    assert_eq!(nft.applied().len(), 3);

    // A refused script is an error with nft's words; the next pass tries again.
    nft.refuse(Some("Error: syntax error"));
    let error = applier.apply(&state()).await.unwrap_err();
    assert!(error.to_string().contains("syntax error"), "{error}");
    nft.refuse(None);
    assert_eq!(applier.apply(&state()).await.unwrap(), NftOutcome::Replaced);
}
