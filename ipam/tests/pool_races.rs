//! Concurrent creation of IP pools against one embedded store: of many creators of
//! overlapping pools exactly one wins, the others are refused naming the overlap; creators of
//! disjoint pools all win. Each round starts every creator at once behind a barrier.

use std::sync::Arc;

use anyhow::Result;
use manul_ipam::{Ipam, IpamError};
use manul_store::{Datastore, IpPool, embedded::EmbeddedStore};
use tokio::sync::Barrier;

const CREATORS: usize = 12;
const ROUNDS: usize = 8;

fn open() -> Result<(tempfile::TempDir, Ipam)> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Datastore> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"))?);
    Ok((dir, Ipam::new(store)))
}

/// Starts one task per pool, all released at once; returns each creator's outcome.
async fn create_all(ipam: &Ipam, pools: Vec<IpPool>) -> Vec<Result<(), IpamError>> {
    let barrier = Arc::new(Barrier::new(pools.len()));
    let tasks: Vec<_> = pools
        .into_iter()
        .map(|pool| {
            let (ipam, barrier) = (ipam.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                ipam.create_pool(&pool).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("creator task panicked"));
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_overlapping_pools_exactly_one_is_created() -> Result<()> {
    let (_dir, ipam) = open()?;
    for round in 0..ROUNDS {
        // Same network, nested and equal prefixes: every pair overlaps.
        let pools: Vec<IpPool> = (0..CREATORS)
            .map(|creator| {
                let prefix = [16, 20, 24][creator % 3];
                let cidr = format!("10.{round}.0.0/{prefix}").parse().unwrap();
                IpPool::new(&format!("r{round}-c{creator}"), cidr)
            })
            .collect();
        let outcomes = create_all(&ipam, pools).await;
        let won = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        for outcome in outcomes.iter().filter_map(|outcome| outcome.as_ref().err()) {
            assert!(
                matches!(outcome, IpamError::InvalidPool { field: "cidr", reason } if reason.contains("overlaps")),
                "round {round}: {outcome}"
            );
        }
    }
    let pools = ipam.pools().await?;
    assert_eq!(pools.len(), ROUNDS, "{pools:?}");
    let report = ipam.check().await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_disjoint_pools_are_all_created() -> Result<()> {
    let (_dir, ipam) = open()?;
    let pools: Vec<IpPool> = (0..CREATORS * 2)
        .map(|creator| {
            let cidr = format!("10.{creator}.0.0/16").parse().unwrap();
            IpPool::new(&format!("p{creator}"), cidr)
        })
        .collect();
    let outcomes = create_all(&ipam, pools).await;
    for outcome in &outcomes {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    assert_eq!(ipam.pools().await?.len(), CREATORS * 2);
    Ok(())
}

/// A create interrupted between its index entry and its pool object: the entry still blocks
/// overlapping pools, the same create completes it, delete_pool clears pool and entry.
#[tokio::test]
async fn an_interrupted_create_blocks_overlaps_until_completed_or_deleted() -> Result<()> {
    use manul_store::{DatastoreExt, IpPoolIndex};
    let (_dir, ipam) = open()?;
    let cidr = "10.9.0.0/16".parse()?;
    ipam.store()
        .create_resource(&IpPoolIndex {
            pools: [("half".to_string(), cidr)].into(),
        })
        .await?;
    let report = ipam.check().await?;
    assert!(
        report
            .leftovers
            .iter()
            .any(|text| text.contains("\"half\"")),
        "{:?}",
        report.leftovers
    );
    let overlapping = IpPool::new("other", "10.9.0.0/24".parse()?);
    let refused = ipam.create_pool(&overlapping).await;
    assert!(
        matches!(&refused, Err(IpamError::InvalidPool { field: "cidr", reason }) if reason.contains("half")),
        "{refused:?}"
    );
    ipam.create_pool(&IpPool::new("half", cidr)).await?;
    assert_eq!(ipam.pools().await?.len(), 1);
    assert!(ipam.check().await?.leftovers.is_empty());

    assert!(ipam.delete_pool("half").await?);
    assert!(!ipam.delete_pool("half").await?);
    ipam.create_pool(&overlapping).await?;
    let names: Vec<String> = ipam.pools().await?.into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["other"]);
    Ok(())
}
