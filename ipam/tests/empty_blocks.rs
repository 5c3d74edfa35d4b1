//! Release of empty blocks: the grace period, the node-keeps-one rule, the void mark after
//! reuse, and both outcomes of an allocation racing the release, made deterministic by a
//! store wrapper that runs the rival operation just before a chosen write.

use std::{
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use anyhow::Result;
use manul_ipam::{AssignIpRequest, AutoAssignRequest, IpNet, Ipam};
use manul_store::{
    Datastore, DatastoreExt, IpPool, IpamBlock, Kind,
    embedded::EmbeddedStore,
    testing::interposed::{Interposed, Write},
};

const GRACE: Duration = Duration::from_secs(300);

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
}

type Rival = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A store over `inner` that runs `rival` once, before the first `before` write of `kind`.
fn interposed(inner: Arc<dyn Datastore>, kind: Kind, before: Write, rival: Rival) -> Interposed {
    let rival = Mutex::new(Some(rival));
    Interposed::new(inner, move |write, written_kind, _name| {
        let due = (write == before && written_kind == kind)
            .then(|| rival.lock().unwrap().take())
            .flatten();
        Box::pin(async move {
            if let Some(rival) = due {
                rival.await;
            }
            Ok(())
        })
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Datastore>,
    ipam: Ipam,
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

/// Node n1 with two affine blocks of 10.0.0.0/24: 10.0.0.0/26 empty (its one address was
/// released) and 10.0.0.64/26 holding 10.0.0.65.
async fn two_blocks_one_empty() -> Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Datastore> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"))?);
    let ipam = Ipam::new(store.clone());
    ipam.create_pool(&IpPool::new("p", net("10.0.0.0/24")))
        .await?;
    for (address, handle) in [("10.0.0.65", "kept"), ("10.0.0.1", "gone")] {
        ipam.assign_ip(&AssignIpRequest {
            address: address.parse()?,
            handle_id: handle.into(),
            node: "n1".into(),
            attributes: Default::default(),
        })
        .await?;
    }
    ipam.release_by_handle("gone").await?;
    Ok(Fixture {
        _dir: dir,
        store,
        ipam,
    })
}

async fn blocks(store: &Arc<dyn Datastore>) -> Result<Vec<IpNet>> {
    Ok(store
        .list_resources::<IpamBlock>("")
        .await?
        .into_iter()
        .map(|block| block.value.cidr)
        .collect())
}

async fn assert_clean(ipam: &Ipam) -> Result<()> {
    let report = ipam.check().await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.leftovers.is_empty(), "{:?}", report.leftovers);
    Ok(())
}

#[tokio::test]
async fn an_empty_block_is_released_after_the_grace_period_only() -> Result<()> {
    let f = two_blocks_one_empty().await?;
    let ipam = &f.ipam;
    assert_eq!(ipam.release_empty_blocks("n1", GRACE, at(0)).await?, vec![]);
    assert_eq!(
        ipam.release_empty_blocks("n1", GRACE, at(299)).await?,
        vec![]
    );
    assert_eq!(blocks(&f.store).await?.len(), 2);
    assert_eq!(
        ipam.release_empty_blocks("n1", GRACE, at(300)).await?,
        vec![net("10.0.0.0/26")]
    );
    assert_eq!(blocks(&f.store).await?, vec![net("10.0.0.64/26")]);
    assert_eq!(ipam.affine_blocks("n1").await?, vec![net("10.0.0.64/26")]);
    assert_clean(ipam).await
}

#[tokio::test]
async fn a_node_keeps_its_last_block_with_free_addresses() -> Result<()> {
    let f = two_blocks_one_empty().await?;
    let ipam = &f.ipam;
    ipam.release_by_handle("kept").await?;
    ipam.release_empty_blocks("n1", GRACE, at(0)).await?;
    let released = ipam.release_empty_blocks("n1", GRACE, at(1000)).await?;
    assert_eq!(released, vec![net("10.0.0.0/26")]);
    assert_eq!(ipam.affine_blocks("n1").await?, vec![net("10.0.0.64/26")]);
    // The last block stays, however long it is empty.
    assert_eq!(
        ipam.release_empty_blocks("n1", GRACE, at(100_000)).await?,
        vec![]
    );
    assert_clean(ipam).await
}

#[tokio::test]
async fn a_block_used_again_restarts_its_grace_period() -> Result<()> {
    let f = two_blocks_one_empty().await?;
    let ipam = &f.ipam;
    ipam.release_empty_blocks("n1", GRACE, at(0)).await?;
    let again = ipam
        .assign_ip(&AssignIpRequest {
            address: "10.0.0.2".parse()?,
            handle_id: "again".into(),
            node: "n1".into(),
            attributes: Default::default(),
        })
        .await?;
    assert_eq!(again, net("10.0.0.2/32"));
    ipam.release_by_handle("again").await?;
    assert_eq!(
        ipam.release_empty_blocks("n1", GRACE, at(400)).await?,
        vec![],
        "released on a mark from before the block was used again"
    );
    assert_eq!(
        ipam.release_empty_blocks("n1", GRACE, at(700)).await?,
        vec![net("10.0.0.0/26")]
    );
    assert_clean(ipam).await
}

fn one_address(node: &str, handle: &str) -> AutoAssignRequest {
    AutoAssignRequest {
        handle_id: handle.into(),
        node: node.into(),
        num_ipv4: 1,
        ..Default::default()
    }
}

/// An allocation writes the empty block between the release's read and its delete: the
/// delete fails on the revision, the block and its affinity stay. Two rivals: an
/// auto-assignment before the affinity goes to pendingDeletion (the block is still affine),
/// and an assignment of one given address just before the delete.
#[tokio::test]
async fn an_allocation_that_writes_first_keeps_the_block() -> Result<()> {
    for (kind, before, specific) in [
        (Kind::BlockAffinity, Write::Update, None),
        (Kind::IPAMBlock, Write::Delete, Some("10.0.0.5")),
    ] {
        allocation_writes_first(kind, before, specific).await?;
    }
    Ok(())
}

async fn allocation_writes_first(
    kind: Kind,
    before: Write,
    specific: Option<&'static str>,
) -> Result<()> {
    let f = two_blocks_one_empty().await?;
    f.ipam.release_empty_blocks("n1", GRACE, at(0)).await?;
    let rival_ipam = f.ipam.clone();
    let allocated: Arc<Mutex<Option<IpAddr>>> = Arc::default();
    let slot = allocated.clone();
    let rival: Rival = Box::pin(async move {
        let address = match specific {
            None => {
                let got = rival_ipam.auto_assign(&one_address("n1", "racer")).await;
                got.expect("rival allocation").ipv4[0].addr()
            }
            Some(address) => {
                let request = AssignIpRequest {
                    address: address.parse().unwrap(),
                    handle_id: "racer".into(),
                    node: "n1".into(),
                    attributes: Default::default(),
                };
                let got = rival_ipam.assign_ip(&request).await;
                got.expect("rival assignment").addr()
            }
        };
        *slot.lock().unwrap() = Some(address);
    });
    let interposed = Ipam::new(Arc::new(interposed(f.store.clone(), kind, before, rival)));
    let released = interposed
        .release_empty_blocks("n1", GRACE, at(300))
        .await?;
    let address = allocated.lock().unwrap().expect("the rival ran");
    assert_eq!(released, vec![], "released a block holding {address}");
    assert!(net("10.0.0.0/26").contains(&address), "{address}");
    assert_eq!(blocks(&f.store).await?.len(), 2);
    assert_eq!(
        f.ipam.affine_blocks("n1").await?,
        vec![net("10.0.0.0/26"), net("10.0.0.64/26")]
    );
    assert_eq!(f.ipam.addresses_by_handle("racer").await?, vec![address]);
    assert_clean(&f.ipam).await
}

/// The release deletes the block between the allocation's read and its write: the
/// allocation's write fails, its retry finds no block and it takes an address elsewhere.
#[tokio::test]
async fn an_allocation_that_loses_goes_elsewhere() -> Result<()> {
    let f = two_blocks_one_empty().await?;
    f.ipam.release_empty_blocks("n1", GRACE, at(0)).await?;
    let rival_ipam = f.ipam.clone();
    let released: Arc<Mutex<Option<Vec<IpNet>>>> = Arc::default();
    let slot = released.clone();
    let rival: Rival = Box::pin(async move {
        let got = rival_ipam.release_empty_blocks("n1", GRACE, at(300)).await;
        *slot.lock().unwrap() = Some(got.expect("rival release"));
    });
    let interposed = Ipam::new(Arc::new(interposed(
        f.store.clone(),
        Kind::IPAMBlock,
        Write::Update,
        rival,
    )));
    let got = interposed.auto_assign(&one_address("n1", "racer")).await?;
    assert_eq!(
        released.lock().unwrap().clone(),
        Some(vec![net("10.0.0.0/26")])
    );
    let address = got.ipv4[0].addr();
    assert!(net("10.0.0.64/26").contains(&address), "{address}");
    assert_eq!(blocks(&f.store).await?, vec![net("10.0.0.64/26")]);
    assert_eq!(f.ipam.addresses_by_handle("racer").await?, vec![address]);
    assert_clean(&f.ipam).await
}
