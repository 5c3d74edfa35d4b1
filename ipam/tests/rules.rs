//! One test per IPAM rule, against the embedded store. Each one fails without its rule.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use anyhow::Result;
use manul_ipam::{AssignIpRequest, AutoAssignRequest, IpNet, Ipam, IpamError};
use manul_store::{
    AffinityState, BlockAffinity, Datastore, DatastoreExt, IpPool, IpamBlock, IpamConfiguration,
    IpamHandle, Kind, Node, embedded::EmbeddedStore,
};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Datastore>,
    ipam: Ipam,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Datastore> =
        Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    Fixture {
        _dir: dir,
        ipam: Ipam::new(store.clone()),
        store,
    }
}

fn pool(name: &str, cidr: &str, block_size: u8) -> IpPool {
    IpPool {
        metadata: Default::default(),
        name: name.into(),
        cidr: cidr.parse().unwrap(),
        block_size,
        disabled: false,
        node_selector: String::new(),
        nat_outgoing: false,
        vxlan_mode: Default::default(),
        ipip_mode: Default::default(),
        disable_bgp_export: false,
    }
}

fn request(handle: &str, node: &str, v4: u32, v6: u32) -> AutoAssignRequest {
    AutoAssignRequest {
        handle_id: handle.into(),
        node: node.into(),
        num_ipv4: v4,
        num_ipv6: v6,
        ..Default::default()
    }
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn assign_ip(address: &str, handle: &str, node: &str) -> AssignIpRequest {
    AssignIpRequest {
        address: addr(address),
        handle_id: handle.into(),
        node: node.into(),
        attributes: BTreeMap::new(),
    }
}

async fn set_config(f: &Fixture, strict: bool, auto: bool, max: u32) -> Result<()> {
    f.ipam
        .set_config(&IpamConfiguration {
            metadata: Default::default(),
            strict_affinity: strict,
            auto_allocate_blocks: auto,
            max_blocks_per_host: max,
        })
        .await?;
    Ok(())
}

async fn assert_clean(f: &Fixture) -> Result<()> {
    let report = f.ipam.check().await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.leftovers.is_empty(), "{:?}", report.leftovers);
    Ok(())
}

#[tokio::test]
async fn a_node_claims_a_block_and_allocates_from_its_start() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/16", 26)).await?;
    let got = f.ipam.auto_assign(&request("h1", "node-a", 1, 0)).await?;
    let blocks = f.ipam.affine_blocks("node-a").await?;
    assert_eq!(blocks.len(), 1);
    let block = blocks[0];
    assert_eq!(got.ipv4, vec![IpNet::new(block.network(), 32)?]);
    let stored = f
        .store
        .get_resource::<IpamBlock>(&IpamBlock::name_for(&block))
        .await?
        .unwrap();
    assert_eq!(stored.value.affinity.as_deref(), Some("host:node-a"));
    let affinity = f
        .store
        .get_resource::<BlockAffinity>(&BlockAffinity::name_for("node-a", &block))
        .await?
        .unwrap();
    assert_eq!(affinity.value.state, AffinityState::Confirmed);
    assert!(f.ipam.affine_blocks("node-b").await?.is_empty());
    assert_clean(&f).await
}

#[tokio::test]
async fn allocation_comes_from_the_affine_block_first() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/16", 26)).await?;
    let first = f.ipam.auto_assign(&request("h1", "node-a", 1, 0)).await?;
    let second = f.ipam.auto_assign(&request("h2", "node-a", 2, 0)).await?;
    let block = f.ipam.affine_blocks("node-a").await?[0];
    assert_eq!(f.ipam.affine_blocks("node-a").await?.len(), 1);
    let base = match block.network() {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(_) => unreachable!(),
    };
    let expected: Vec<IpNet> = (1..3)
        .map(|i| IpNet::new(IpAddr::V4((base + i).into()), 32).unwrap())
        .collect();
    assert_eq!(second.ipv4, expected);
    assert!(block.contains(&first.ipv4[0]));
    assert_clean(&f).await
}

#[tokio::test]
async fn a_full_block_makes_the_node_claim_another() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/24", 30)).await?;
    let got = f.ipam.auto_assign(&request("h1", "node-a", 6, 0)).await?;
    assert_eq!(got.ipv4.len(), 6);
    let blocks = f.ipam.affine_blocks("node-a").await?;
    assert_eq!(blocks.len(), 2);
    for address in &got.ipv4 {
        assert!(blocks.iter().any(|block| block.contains(address)));
    }
    assert_clean(&f).await
}

#[tokio::test]
async fn max_blocks_per_host_stops_claiming_and_borrows() -> Result<()> {
    let f = fixture();
    set_config(&f, false, true, 1).await?;
    f.ipam.create_pool(&pool("p", "10.0.0.0/28", 30)).await?;
    f.ipam.auto_assign(&request("b", "node-b", 1, 0)).await?;
    f.ipam.auto_assign(&request("a1", "node-a", 4, 0)).await?;
    let got = f.ipam.auto_assign(&request("a2", "node-a", 1, 0)).await?;
    assert_eq!(f.ipam.affine_blocks("node-a").await?.len(), 1);
    let b_block = f.ipam.affine_blocks("node-b").await?[0];
    assert!(
        b_block.contains(&got.ipv4[0]),
        "borrowed from node-b's block"
    );
    // With strict affinity the same request is refused.
    set_config(&f, true, true, 1).await?;
    let refused = f.ipam.auto_assign(&request("a3", "node-a", 1, 0)).await;
    assert!(
        matches!(refused, Err(IpamError::NoAddressesAvailable { .. })),
        "{refused:?}"
    );
    assert_clean(&f).await
}

#[tokio::test]
async fn without_free_blocks_a_node_borrows_unless_strict() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/29", 30)).await?;
    f.ipam.auto_assign(&request("b", "node-b", 2, 0)).await?;
    f.ipam.auto_assign(&request("a1", "node-a", 4, 0)).await?;
    let got = f.ipam.auto_assign(&request("a2", "node-a", 1, 0)).await?;
    let b_block = f.ipam.affine_blocks("node-b").await?[0];
    assert!(b_block.contains(&got.ipv4[0]));
    assert_eq!(f.ipam.affine_blocks("node-a").await?.len(), 1);
    assert_clean(&f).await?;

    set_config(&f, true, true, 0).await?;
    let refused = f.ipam.auto_assign(&request("a3", "node-a", 1, 0)).await;
    match refused {
        Err(IpamError::NoAddressesAvailable { reason, .. }) => {
            assert!(reason.contains("strictAffinity"), "{reason}")
        }
        other => panic!("expected NoAddressesAvailable, got {other:?}"),
    }
    assert!(f.ipam.addresses_by_handle("a3").await?.is_empty());
    assert_clean(&f).await
}

#[tokio::test]
async fn auto_allocate_blocks_false_forbids_claiming() -> Result<()> {
    let f = fixture();
    set_config(&f, false, false, 0).await?;
    f.ipam.create_pool(&pool("p", "10.0.0.0/24", 26)).await?;
    let refused = f.ipam.auto_assign(&request("h", "node-a", 1, 0)).await;
    assert!(matches!(
        refused,
        Err(IpamError::NoAddressesAvailable { .. })
    ));
    assert_eq!(f.ipam.check().await?.blocks, 0);
    Ok(())
}

#[tokio::test]
async fn disabled_pools_are_skipped() -> Result<()> {
    let f = fixture();
    let mut disabled = pool("off", "10.1.0.0/16", 26);
    disabled.disabled = true;
    f.ipam.create_pool(&disabled).await?;
    f.ipam.create_pool(&pool("on", "10.2.0.0/16", 26)).await?;
    for i in 0..3 {
        let got = f
            .ipam
            .auto_assign(&request(&format!("h{i}"), "node-a", 1, 0))
            .await?;
        assert!(net("10.2.0.0/16").contains(&got.ipv4[0]), "{got:?}");
    }
    let mut explicit = request("x", "node-a", 1, 0);
    explicit.ipv4_pools = vec![net("10.1.0.0/16")];
    let refused = f.ipam.auto_assign(&explicit).await;
    assert!(
        matches!(refused, Err(IpamError::PoolDisabled { .. })),
        "{refused:?}"
    );
    let refused = f
        .ipam
        .assign_ip(&assign_ip("10.1.0.5", "y", "node-a"))
        .await;
    assert!(
        matches!(refused, Err(IpamError::PoolDisabled { .. })),
        "{refused:?}"
    );
    assert_clean(&f).await
}

#[tokio::test]
async fn requested_pools_filter_the_choice() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("one", "10.1.0.0/16", 26)).await?;
    f.ipam.create_pool(&pool("two", "10.2.0.0/16", 26)).await?;
    let (v4, v6) = f.ipam.resolve_pools(&["two".into()]).await?;
    assert_eq!((v4.clone(), v6), (vec![net("10.2.0.0/16")], vec![]));
    let mut wanted = request("h", "node-a", 2, 0);
    wanted.ipv4_pools = v4;
    let got = f.ipam.auto_assign(&wanted).await?;
    assert!(got.ipv4.iter().all(|a| net("10.2.0.0/16").contains(a)));
    wanted.handle_id = "h2".into();
    wanted.ipv4_pools = vec![net("10.3.0.0/16")];
    let refused = f.ipam.auto_assign(&wanted).await;
    assert!(matches!(refused, Err(IpamError::NoMatchingPool { .. })));
    Ok(())
}

#[tokio::test]
async fn node_selectors_choose_pools_by_node_labels() -> Result<()> {
    let f = fixture();
    let mut zone_a = pool("zone-a", "10.1.0.0/16", 26);
    zone_a.node_selector = "zone == 'a'".into();
    let mut gpu = pool("gpu", "10.2.0.0/16", 26);
    gpu.node_selector = "has(gpu)".into();
    f.ipam.create_pool(&zone_a).await?;
    f.ipam.create_pool(&gpu).await?;
    for (name, labels) in [("n1", vec![("zone", "a")]), ("n2", vec![("gpu", "yes")])] {
        f.store
            .create_resource(&Node {
                name: name.into(),
                metadata: manul_store::ResourceMeta {
                    labels: labels
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await?;
    }
    let n1 = f.ipam.auto_assign(&request("h1", "n1", 1, 0)).await?;
    assert!(net("10.1.0.0/16").contains(&n1.ipv4[0]));
    let n2 = f.ipam.auto_assign(&request("h2", "n2", 1, 0)).await?;
    assert!(net("10.2.0.0/16").contains(&n2.ipv4[0]));
    let n3 = f.ipam.auto_assign(&request("h3", "n3", 1, 0)).await;
    assert!(
        matches!(n3, Err(IpamError::NoMatchingPool { .. })),
        "{n3:?}"
    );
    assert_clean(&f).await
}

#[tokio::test]
async fn a_specific_address_is_honoured_or_refused() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/16", 26)).await?;
    let got = f
        .ipam
        .assign_ip(&assign_ip("10.0.3.7", "h1", "node-a"))
        .await?;
    assert_eq!(got, net("10.0.3.7/32"));
    assert_eq!(
        f.ipam.addresses_by_handle("h1").await?,
        vec![addr("10.0.3.7")]
    );
    assert_eq!(
        f.ipam.affine_blocks("node-a").await?,
        vec![net("10.0.3.0/26")]
    );
    match f
        .ipam
        .assign_ip(&assign_ip("10.0.3.7", "h2", "node-b"))
        .await
    {
        Err(IpamError::AddressInUse { address, handle }) => {
            assert_eq!((address, handle.as_str()), (addr("10.0.3.7"), "h1"));
        }
        other => panic!("expected AddressInUse, got {other:?}"),
    }
    let outside = f
        .ipam
        .assign_ip(&assign_ip("192.168.1.1", "h3", "node-a"))
        .await;
    assert!(
        matches!(outside, Err(IpamError::AddressNotInPool { .. })),
        "{outside:?}"
    );
    // Auto-assignment in that block skips the taken address.
    let next = f.ipam.auto_assign(&request("h4", "node-a", 8, 0)).await?;
    assert!(!next.ipv4.contains(&got));
    assert_clean(&f).await
}

#[tokio::test]
async fn a_released_address_goes_to_the_back_of_the_free_list() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/16", 26)).await?;
    let first = f.ipam.auto_assign(&request("h1", "node-a", 1, 0)).await?;
    assert_eq!(
        f.ipam.release_by_handle("h1").await?,
        vec![first.ipv4[0].addr()]
    );
    let second = f.ipam.auto_assign(&request("h2", "node-a", 1, 0)).await?;
    assert_ne!(first.ipv4, second.ipv4);
    let block = f.ipam.affine_blocks("node-a").await?[0];
    let stored = f
        .store
        .get_resource::<IpamBlock>(&IpamBlock::name_for(&block))
        .await?
        .unwrap();
    assert_eq!(stored.value.unallocated.last(), Some(&0));
    assert_clean(&f).await
}

#[tokio::test]
async fn release_by_handle_is_idempotent() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/24", 30)).await?;
    let got = f.ipam.auto_assign(&request("h1", "node-a", 6, 0)).await?;
    let mut released = f.ipam.release_by_handle("h1").await?;
    released.sort();
    let mut expected: Vec<IpAddr> = got.ipv4.iter().map(|a| a.addr()).collect();
    expected.sort();
    assert_eq!(released, expected);
    assert!(f.ipam.release_by_handle("h1").await?.is_empty());
    assert!(f.ipam.release_by_handle("never-existed").await?.is_empty());
    assert!(f.ipam.addresses_by_handle("h1").await?.is_empty());
    assert!(f.store.get_resource::<IpamHandle>("h1").await?.is_none());
    let report = f.ipam.check().await?;
    assert_eq!((report.allocated, report.handles), (0, 0));
    assert_clean(&f).await
}

#[tokio::test]
async fn ipv6_and_dual_stack() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("v4", "10.0.0.0/16", 0)).await?;
    f.ipam.create_pool(&pool("v6", "fd00:1::/112", 0)).await?;
    assert_eq!(f.ipam.pools().await?[1].block_size, 122);
    let got = f.ipam.auto_assign(&request("h1", "node-a", 1, 2)).await?;
    assert_eq!(got.ipv4.len(), 1);
    assert_eq!(got.ipv6.len(), 2);
    for address in &got.ipv6 {
        assert_eq!(address.prefix_len(), 128);
        assert!(net("fd00:1::/112").contains(address));
    }
    let blocks = f.ipam.affine_blocks("node-a").await?;
    assert!(blocks.iter().any(|b| b.prefix_len() == 122));
    let v6 = f
        .ipam
        .assign_ip(&assign_ip("fd00:1::ff", "h2", "node-b"))
        .await?;
    assert_eq!(v6, net("fd00:1::ff/128"));
    assert_eq!(f.ipam.release_by_handle("h1").await?.len(), 3);
    assert_clean(&f).await
}

#[tokio::test]
async fn a_failed_request_gives_back_what_it_took() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("v4", "10.0.0.0/16", 26)).await?;
    let refused = f.ipam.auto_assign(&request("h1", "node-a", 2, 1)).await;
    assert!(
        matches!(refused, Err(IpamError::NoMatchingPool { .. })),
        "{refused:?}"
    );
    assert!(f.store.get_resource::<IpamHandle>("h1").await?.is_none());
    let report = f.ipam.check().await?;
    assert_eq!(report.allocated, 0);
    assert_clean(&f).await
}

#[tokio::test]
async fn bad_pools_are_refused_naming_the_field() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/16", 26)).await?;
    let mut bad_selector = pool("s", "10.9.0.0/16", 26);
    bad_selector.node_selector = "zone = a".into();
    let cases = [
        (pool("", "10.1.0.0/16", 26), "name"),
        (pool("p", "10.1.0.0/16", 26), "name"),
        (pool("x", "10.1.0.1/16", 26), "cidr"),
        (pool("x", "10.0.128.0/17", 26), "cidr"),
        (pool("x", "10.1.0.0/16", 19), "blockSize"),
        (pool("x", "10.1.0.0/16", 33), "blockSize"),
        (pool("x", "10.1.0.0/24", 22), "blockSize"),
        (pool("x", "fd00::/64", 26), "blockSize"),
        (bad_selector, "nodeSelector"),
    ];
    for (bad, field) in cases {
        match f.ipam.create_pool(&bad).await {
            Err(IpamError::InvalidPool { field: got, .. }) => assert_eq!(got, field, "{bad:?}"),
            other => panic!("{bad:?}: expected InvalidPool({field}), got {other:?}"),
        }
    }
    assert_eq!(f.ipam.pools().await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_interrupted_claim_is_settled_and_reported_as_leftover() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/16", 26)).await?;
    let cidr = net("10.0.5.0/26");
    // A crash after the block was created, before the affinity was confirmed.
    f.store
        .create_resource(&BlockAffinity {
            node: "node-a".into(),
            cidr,
            state: AffinityState::Pending,
            deleted: false,
        })
        .await?;
    f.store
        .create_resource(&manul_ipam::block::new_block(
            cidr,
            Some("host:node-a".into()),
            false,
        ))
        .await?;
    // A crash after the pending affinity was written, before the block.
    f.store
        .create_resource(&BlockAffinity {
            node: "node-a".into(),
            cidr: net("10.0.9.0/26"),
            state: AffinityState::Pending,
            deleted: false,
        })
        .await?;
    let report = f.ipam.check().await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.leftovers.len(), 2, "{:?}", report.leftovers);
    let got = f.ipam.auto_assign(&request("h", "node-a", 1, 0)).await?;
    assert!(cidr.contains(&got.ipv4[0]));
    assert_eq!(f.ipam.affine_blocks("node-a").await?, vec![cidr]);
    Ok(())
}

#[tokio::test]
async fn check_reports_problems_and_leftovers() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/16", 26)).await?;
    f.ipam.auto_assign(&request("h1", "node-a", 2, 0)).await?;
    f.ipam.auto_assign(&request("h2", "node-a", 1, 0)).await?;
    let report = f.ipam.check().await?;
    assert_eq!((report.allocated, report.blocks, report.handles), (3, 1, 2));

    // Over-counted handle: a leftover.
    let mut h1 = f.store.get_resource::<IpamHandle>("h1").await?.unwrap();
    for count in h1.value.block.values_mut() {
        *count += 5;
    }
    f.store.update_resource(&h1.value, &h1.revision).await?;
    let report = f.ipam.check().await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.leftovers.len(), 1, "{:?}", report.leftovers);

    // Under-counted handle and a missing handle: problems.
    h1 = f.store.get_resource::<IpamHandle>("h1").await?.unwrap();
    for count in h1.value.block.values_mut() {
        *count = 1;
    }
    f.store.update_resource(&h1.value, &h1.revision).await?;
    let h2 = f.store.get_resource::<IpamHandle>("h2").await?.unwrap();
    f.store
        .delete_resource::<IpamHandle>("h2", &h2.revision)
        .await?;
    let report = f.ipam.check().await?;
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);

    // Corrupt JSON: a problem in check, an error (not a panic) elsewhere.
    let block = f.ipam.affine_blocks("node-a").await?[0];
    let name = IpamBlock::name_for(&block);
    let stored = f.store.get(Kind::IPAMBlock, &name).await?.unwrap();
    f.store
        .update(
            Kind::IPAMBlock,
            &name,
            b"{not json".to_vec(),
            &stored.revision,
        )
        .await?;
    let report = f.ipam.check().await?;
    assert!(
        report.problems.iter().any(|p| p.contains("decode")),
        "{:?}",
        report.problems
    );
    assert!(
        f.ipam
            .auto_assign(&request("h3", "node-a", 1, 0))
            .await
            .is_err()
    );
    assert!(f.ipam.release_by_handle("h1").await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_corrupt_block_is_refused_not_used() -> Result<()> {
    let f = fixture();
    f.ipam.create_pool(&pool("p", "10.0.0.0/16", 26)).await?;
    f.ipam.auto_assign(&request("h1", "node-a", 1, 0)).await?;
    let block = f.ipam.affine_blocks("node-a").await?[0];
    let mut stored = f
        .store
        .get_resource::<IpamBlock>(&IpamBlock::name_for(&block))
        .await?
        .unwrap();
    stored.value.unallocated.insert(0, 0); // ordinal 0 is allocated and free at once
    f.store
        .update_resource(&stored.value, &stored.revision)
        .await?;
    let refused = f.ipam.auto_assign(&request("h2", "node-a", 1, 0)).await;
    assert!(
        matches!(refused, Err(IpamError::Corrupt { .. })),
        "{refused:?}"
    );
    assert!(!f.ipam.check().await?.problems.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_requested_pool_that_does_not_select_the_node_is_refused_by_name() -> Result<()> {
    let f = fixture();
    let mut gpu = pool("gpu-pool", "10.2.0.0/16", 26);
    gpu.node_selector = "has(gpu)".into();
    f.ipam.create_pool(&gpu).await?;
    f.ipam.create_pool(&pool("any", "10.3.0.0/16", 26)).await?;
    let mut wanted = request("h", "plain-node", 1, 0);
    wanted.ipv4_pools = vec![net("10.2.0.0/16")];
    let refused = f.ipam.auto_assign(&wanted).await;
    let Err(error) = refused else {
        panic!("assigned from a pool that does not select the node: {refused:?}");
    };
    let message = error.to_string();
    assert!(
        message.contains("gpu-pool")
            && message.contains("has(gpu)")
            && message.contains("plain-node"),
        "{message}"
    );
    assert_eq!(f.ipam.check().await?.blocks, 0);
    Ok(())
}

#[tokio::test]
async fn a_relabelled_node_stops_using_its_blocks_in_a_pool_that_no_longer_selects_it() -> Result<()>
{
    let f = fixture();
    let mut zone_a = pool("zone-a", "10.1.0.0/16", 26);
    zone_a.node_selector = "zone == 'a'".into();
    let mut zone_b = pool("zone-b", "10.2.0.0/16", 26);
    zone_b.node_selector = "zone == 'b'".into();
    f.ipam.create_pool(&zone_a).await?;
    f.ipam.create_pool(&zone_b).await?;
    let node = |zone: &str| Node {
        name: "n1".into(),
        metadata: manul_store::ResourceMeta {
            labels: [("zone".to_string(), zone.to_string())].into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let revision = f.store.create_resource(&node("a")).await?;
    let first = f.ipam.auto_assign(&request("h1", "n1", 1, 0)).await?;
    assert!(net("10.1.0.0/16").contains(&first.ipv4[0]), "{first:?}");
    f.store.update_resource(&node("b"), &revision).await?;
    // The affine block in zone-a has 63 free addresses, yet zone-a no longer selects n1.
    let second = f.ipam.auto_assign(&request("h2", "n1", 1, 0)).await?;
    assert!(net("10.2.0.0/16").contains(&second.ipv4[0]), "{second:?}");
    assert_clean(&f).await
}
