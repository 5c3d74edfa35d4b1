//! The agent's Node lifecycle over a real embedded store with the fake kernel: registration
//! from autodetected addresses, another agent's Node deletion releasing that node's affinities
//! and empty blocks (while the deleted node's busy block keeps its pod's address), a node
//! deleted while no agent ran being cleaned at the next start, and an agent whose own Node is
//! deleted stopping with an error. Needs no root.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use manul_agent::{
    endpoint::{EndpointRequest, Endpoints},
    health::{DATASTORE_CONDITION, Readiness},
    netlink::{InterfaceAddresses, fake::FakeNetlink},
    node::{AddressSetting, Method, NodeError, NodeSettings, NodeWatcher, register_node},
    sysctl::FakeSysctl,
};
use manul_ipam::Ipam;
use manul_store::{
    BlockAffinity, Datastore, DatastoreExt, IpPool, IpamBlock, Node, embedded::EmbeddedStore,
};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(10);

struct Cluster {
    dir: tempfile::TempDir,
    store: Arc<dyn Datastore>,
}

impl Cluster {
    async fn new() -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Datastore> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"))?);
        Ipam::new(store.clone())
            .create_pool(&IpPool::new("pool", "10.70.0.0/16".parse()?))
            .await?;
        Ok(Cluster { dir, store })
    }

    /// Registers `node` (address 10.0.0.<host>/24 on eth0, autodetected) and returns its
    /// endpoints on a fake kernel.
    async fn agent(&self, node: &str, host: u8) -> Result<Arc<Endpoints>> {
        let netlink = Arc::new(FakeNetlink::new());
        netlink.set_default_route_mtu(Some(1500));
        netlink.set_interface_addresses(vec![
            InterfaceAddresses {
                name: "lo".into(),
                up: true,
                addresses: vec!["127.0.0.1/8".parse()?],
            },
            InterfaceAddresses {
                name: "eth0".into(),
                up: true,
                addresses: vec![format!("10.0.0.{host}/24").parse()?],
            },
        ]);
        let settings = NodeSettings {
            ipv4: AddressSetting::Autodetect(Method::FirstFound),
            ipv6: AddressSetting::None,
            as_number: None,
            route_reflector_cluster_id: None,
            labels: Default::default(),
        };
        let registered = register_node(&self.store, netlink.as_ref(), node, &settings).await?;
        ensure!(registered.ipv4() == Some(format!("10.0.0.{host}").parse()?));
        Ok(Arc::new(Endpoints::new(
            node.into(),
            self.store.clone(),
            netlink,
            Arc::new(FakeSysctl::new()),
        )))
    }

    fn request(&self, container_id: &str) -> Result<EndpointRequest> {
        let netns: PathBuf = self.dir.path().join(format!("netns-{container_id}"));
        std::fs::write(&netns, b"")?;
        Ok(EndpointRequest {
            container_id: container_id.into(),
            netns: Some(netns),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: format!("pod-{container_id}"),
            network_name: "manul".into(),
            assign_ipv4: true,
            ..Default::default()
        })
    }

    async fn delete_node(&self, name: &str) -> Result<()> {
        let node = self
            .store
            .get_resource::<Node>(name)
            .await?
            .context("no such Node")?;
        self.store
            .delete_resource::<Node>(name, &node.revision)
            .await?;
        Ok(())
    }

    async fn affinities_of(&self, node: &str) -> Result<Vec<BlockAffinity>> {
        Ok(self
            .store
            .list_resources::<BlockAffinity>("")
            .await?
            .into_iter()
            .map(|affinity| affinity.value)
            .filter(|affinity| affinity.node == node)
            .collect())
    }

    async fn block_exists(&self, cidr: &ipnet::IpNet) -> Result<bool> {
        Ok(self
            .store
            .get_resource::<IpamBlock>(&IpamBlock::name_for(cidr))
            .await?
            .is_some())
    }
}

/// Starts a watcher for `node` and waits until its datastore condition holds.
async fn watcher(cluster: &Cluster, node: &str) -> Result<tokio::task::JoinHandle<NodeError>> {
    let readiness = Readiness::new();
    let watcher = NodeWatcher::new(cluster.store.clone(), node, readiness.clone());
    ensure!(
        readiness
            .failing()
            .iter()
            .any(|(name, _)| name == DATASTORE_CONDITION),
        "not ready before the first list and watch"
    );
    let task = tokio::spawn(watcher.run());
    let deadline = Instant::now() + DEADLINE;
    while !readiness.failing().is_empty() {
        if Instant::now() > deadline || task.is_finished() {
            bail!("the watcher never became ready: {:?}", readiness.failing());
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(task)
}

async fn poll<F, Fut>(what: &str, mut done: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + DEADLINE;
    while !done().await? {
        if Instant::now() > deadline {
            bail!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_node_releases_its_affinities_and_empty_blocks_on_every_agent() -> Result<()> {
    let cluster = Cluster::new().await?;
    let a = cluster.agent("a", 1).await?;
    let b = cluster.agent("b", 2).await?;
    a.add(&cluster.request("pa")?).await?;
    let pod_b = cluster.request("pb")?;
    b.add(&pod_b).await?;
    b.delete(&pod_b).await?;
    let b_blocks = b.ipam().affine_blocks("b").await?;
    ensure!(b_blocks.len() == 1, "{b_blocks:?}");
    let a_blocks = a.ipam().affine_blocks("a").await?;

    // Two agents (a's and a third node's) race to clean up b.
    cluster.agent("c", 3).await?;
    let watchers = [watcher(&cluster, "a").await?, watcher(&cluster, "c").await?];
    cluster.delete_node("b").await?;
    poll("b's affinities and empty block are gone", || async {
        Ok(cluster.affinities_of("b").await?.is_empty()
            && !cluster.block_exists(&b_blocks[0]).await?)
    })
    .await?;
    assert_eq!(
        a.ipam().affine_blocks("a").await?,
        a_blocks,
        "a keeps its block"
    );
    assert_eq!(a.list().await?.len(), 1, "a's pod is untouched");
    let report = a.ipam().check().await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    for watcher in &watchers {
        assert!(!watcher.is_finished(), "the watchers keep running");
    }
    for watcher in watchers {
        watcher.abort();
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_deleted_while_no_agent_ran_is_cleaned_at_the_next_start() -> Result<()> {
    let cluster = Cluster::new().await?;
    let b = cluster.agent("b", 2).await?;
    let pod = cluster.request("pb")?;
    b.add(&pod).await?;
    b.delete(&pod).await?;
    ensure!(!cluster.affinities_of("b").await?.is_empty());
    cluster.delete_node("b").await?;
    cluster.agent("a", 1).await?;
    let watcher = watcher(&cluster, "a").await?;
    ensure!(
        cluster.affinities_of("b").await?.is_empty(),
        "released before the watcher reported ready"
    );
    watcher.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_own_node_is_deleted_stops_with_an_error() -> Result<()> {
    let cluster = Cluster::new().await?;
    let a = cluster.agent("a", 1).await?;
    a.add(&cluster.request("pa")?).await?;
    let watcher = watcher(&cluster, "a").await?;
    cluster.delete_node("a").await?;
    let error = tokio::time::timeout(DEADLINE, watcher).await??;
    assert!(
        matches!(&error, NodeError::OwnNodeDeleted { node } if node == "a"),
        "{error}"
    );
    assert!(
        cluster.store.get_resource::<Node>("a").await?.is_none(),
        "not registered again"
    );
    Ok(())
}
