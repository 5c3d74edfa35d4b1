//! `Ipam::release_node` over the embedded store: a deleted node's affinities go, its empty
//! blocks go, its blocks with live allocations stay without affinity (their addresses are not
//! freed), other nodes (including one whose name extends the deleted one's) are untouched;
//! running it again, or from several agents at once, ends in the same consistent state.

use std::{collections::BTreeSet, net::IpAddr, sync::Arc};

use anyhow::{Result, ensure};
use manul_ipam::{AutoAssignRequest, IpNet, Ipam, NodeRelease};
use manul_store::{
    BlockAffinity, Datastore, DatastoreExt, IpPool, IpamBlock, embedded::EmbeddedStore,
};

fn pool() -> IpPool {
    IpPool {
        node_selector: "all()".into(),
        ..IpPool::new("default", "10.0.0.0/24".parse().unwrap())
    }
}

async fn assign(ipam: &Ipam, node: &str, handle: &str, count: u32) -> Result<Vec<IpAddr>> {
    let assignment = ipam
        .auto_assign(&AutoAssignRequest {
            handle_id: handle.into(),
            node: node.into(),
            num_ipv4: count,
            ..Default::default()
        })
        .await?;
    ensure!(assignment.ipv4.len() == count as usize, "{assignment:?}");
    Ok(assignment.ipv4.iter().map(IpNet::addr).collect())
}

async fn blocks(store: &Arc<dyn Datastore>) -> Result<Vec<IpamBlock>> {
    Ok(store
        .list_resources::<IpamBlock>("")
        .await?
        .into_iter()
        .map(|block| block.value)
        .collect())
}

async fn affinities(store: &Arc<dyn Datastore>) -> Result<BTreeSet<(String, IpNet)>> {
    Ok(store
        .list_resources::<BlockAffinity>("")
        .await?
        .into_iter()
        .map(|affinity| (affinity.value.node, affinity.value.cidr))
        .collect())
}

/// A store where node "a" holds two blocks (one with a live address, one emptied), and nodes
/// "a-2" and "b" hold one block each. Returns the store, a's busy block and its live address.
async fn two_nodes_and_a_prefix_twin()
-> Result<(tempfile::TempDir, Arc<dyn Datastore>, IpNet, IpAddr)> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Datastore> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"))?);
    let ipam = Ipam::new(store.clone());
    ipam.create_pool(&pool()).await?;
    let live = assign(&ipam, "a", "live", 1).await?[0];
    // Fills the rest of a's first block and spills one address into a second block.
    assign(&ipam, "a", "gone", 64).await?;
    ipam.release_by_handle("gone").await?;
    assign(&ipam, "a-2", "twin", 1).await?;
    assign(&ipam, "b", "other", 1).await?;
    let busy = ipam
        .affine_blocks("a")
        .await?
        .into_iter()
        .find(|block| block.contains(&live))
        .unwrap();
    ensure!(ipam.affine_blocks("a").await?.len() == 2);
    Ok((dir, store, busy, live))
}

#[tokio::test]
async fn a_deleted_node_loses_its_affinities_and_empty_blocks_and_keeps_live_addresses()
-> Result<()> {
    let (_dir, store, busy, live) = two_nodes_and_a_prefix_twin().await?;
    let ipam = Ipam::new(store.clone());
    let before = blocks(&store).await?;
    let empty: IpNet = before
        .iter()
        .find(|block| block.affinity.as_deref() == Some("host:a") && block.cidr != busy)
        .unwrap()
        .cidr;

    let release = ipam.release_node("a").await?;
    assert_eq!(
        release,
        NodeRelease {
            deleted_blocks: vec![empty],
            orphaned_blocks: vec![busy],
            tunnel_addresses: vec![],
        }
    );

    let after = blocks(&store).await?;
    assert!(after.iter().all(|block| block.cidr != empty), "{after:?}");
    let kept = after.iter().find(|block| block.cidr == busy).unwrap();
    assert_eq!(kept.affinity, None, "the busy block loses its affinity");
    assert_eq!(
        ipam.addresses_by_handle("live").await?,
        vec![live],
        "a live pod's address is never freed by the node's deletion"
    );
    let left = affinities(&store).await?;
    assert!(left.iter().all(|(node, _)| node != "a"), "{left:?}");
    assert_eq!(
        left.iter()
            .map(|(node, _)| node.as_str())
            .collect::<Vec<_>>(),
        vec!["a-2", "b"],
        "other nodes keep theirs, also one whose name starts with the deleted node's"
    );
    assert_eq!(ipam.affine_blocks("a-2").await?.len(), 1);

    assert_eq!(
        ipam.release_node("a").await?,
        NodeRelease::default(),
        "idempotent"
    );
    let report = ipam.check().await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    Ok(())
}

#[tokio::test]
async fn a_deleted_node_loses_its_vxlan_tunnel_address_and_the_block_it_kept_busy() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Datastore> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"))?);
    let ipam = Ipam::new(store.clone());
    ipam.create_pool(&pool()).await?;
    let handle = manul_ipam::vxlan_tunnel_handle_id("a");
    assert_eq!(handle, "vxlan-tunnel-addr-a", "Calico's handle name");
    let tunnel = assign(&ipam, "a", &handle, 1).await?[0];

    let release = ipam.release_node("a").await?;
    assert_eq!(release.tunnel_addresses, vec![tunnel]);
    assert_eq!(release.orphaned_blocks, Vec::<IpNet>::new());
    assert_eq!(release.deleted_blocks.len(), 1, "{release:?}");
    assert!(ipam.addresses_by_handle(&handle).await?.is_empty());
    assert!(blocks(&store).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_agents_releasing_one_node_at_once_is_harmless() -> Result<()> {
    let (_dir, store, busy, live) = two_nodes_and_a_prefix_twin().await?;
    let mut racers = Vec::new();
    for _ in 0..6 {
        let ipam = Ipam::new(store.clone());
        racers.push(tokio::spawn(async move { ipam.release_node("a").await }));
    }
    let mut deleted = Vec::new();
    let mut orphaned = Vec::new();
    for racer in racers {
        let release = racer.await??;
        deleted.extend(release.deleted_blocks);
        orphaned.extend(release.orphaned_blocks);
    }
    assert_eq!(
        deleted.len(),
        1,
        "exactly one agent deleted the empty block"
    );
    assert_eq!(
        orphaned,
        vec![busy],
        "exactly one agent orphaned the busy block"
    );

    let ipam = Ipam::new(store.clone());
    let left = affinities(&store).await?;
    assert!(left.iter().all(|(node, _)| node != "a"), "{left:?}");
    assert_eq!(ipam.addresses_by_handle("live").await?, vec![live]);
    assert_eq!(blocks(&store).await?.len(), 3, "busy, a-2's and b's");
    let report = ipam.check().await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    Ok(())
}
