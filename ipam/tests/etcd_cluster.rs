//! IPAM and watches on a 3-member etcd cluster while one member is SIGKILLed and restarted:
//! the store fails over to the other members, every assignment that returned is in the
//! blocks exactly once, none is lost, and a watch open across the kill delivers every event
//! once. Real etcd members on 127.0.0.1, killed when a test ends.

use std::{
    collections::HashSet,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use manul_ipam::{AutoAssignRequest, Ipam, pod_handle_id};
use manul_store::{
    Datastore, IpPool, Kind, WatchEvent, etcd::EtcdStore, testing::etcd::EtcdCluster,
};

const TASKS: usize = 24;
const PER_TASK: usize = 10;
const NODES: usize = 4;
/// Long enough for a leader election and a member restart; a failure well inside it.
const RETRY_FOR: Duration = Duration::from_secs(60);
const WITHIN: Duration = Duration::from_secs(120);

fn start_cluster() -> Result<Arc<Mutex<EtcdCluster>>> {
    let cluster = EtcdCluster::start(3).map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(Arc::new(Mutex::new(cluster)))
}

fn store(cluster: &Mutex<EtcdCluster>, prefix: &str) -> Result<Arc<dyn Datastore>> {
    let config = cluster.lock().unwrap().config(prefix, RETRY_FOR);
    Ok(Arc::new(EtcdStore::new(&config)?))
}

/// Polls `progress` until it reaches `target`, with a deadline.
async fn wait_for(progress: &AtomicUsize, target: usize) -> Result<()> {
    let deadline = Instant::now() + WITHIN;
    while progress.load(Ordering::SeqCst) < target {
        ensure!(
            Instant::now() < deadline,
            "progress stuck at {} of {target}",
            progress.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Kills member 0 (the one every client starts on) when `progress` reaches `kill_at`, and
/// restarts it when it reaches `restart_at`.
async fn kill_and_restart(
    cluster: Arc<Mutex<EtcdCluster>>,
    progress: Arc<AtomicUsize>,
    kill_at: usize,
    restart_at: usize,
) -> Result<()> {
    wait_for(&progress, kill_at).await?;
    cluster.lock().unwrap().kill(0);
    eprintln!("killed member m0 at {}", progress.load(Ordering::SeqCst));
    wait_for(&progress, restart_at).await?;
    tokio::task::spawn_blocking(move || cluster.lock().unwrap().restart(0))
        .await?
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    eprintln!("restarted member m0 at {}", progress.load(Ordering::SeqCst));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn assignments_survive_a_member_kill_exactly_once() -> Result<()> {
    let cluster = start_cluster()?;
    let store = store(&cluster, "/ipam-failover")?;
    let ipam = Ipam::new(store);
    let mut pool = IpPool::new("default", "10.0.0.0/16".parse()?);
    pool.block_size = 26;
    ipam.create_pool(&pool).await?;

    let progress = Arc::new(AtomicUsize::new(0));
    let total = TASKS * PER_TASK;
    let chaos = tokio::spawn(kill_and_restart(
        cluster.clone(),
        progress.clone(),
        total / 4,
        total * 3 / 4,
    ));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (ipam, progress) = (ipam.clone(), progress.clone());
        let node = format!("node-{}", task % NODES);
        tasks.push(tokio::spawn(async move {
            let mut got: Vec<(String, IpAddr)> = Vec::new();
            for i in 0..PER_TASK {
                let handle_id = pod_handle_id(&format!("t{task}-c{i}"));
                let request = AutoAssignRequest {
                    handle_id: handle_id.clone(),
                    node: node.clone(),
                    num_ipv4: 1,
                    ..Default::default()
                };
                let assignment = ipam
                    .auto_assign(&request)
                    .await
                    .with_context(|| format!("assigning {handle_id} on {node}"))?;
                ensure!(assignment.ipv4.len() == 1, "{assignment:?}");
                got.push((handle_id, assignment.ipv4[0].addr()));
                progress.fetch_add(1, Ordering::SeqCst);
            }
            anyhow::Ok(got)
        }));
    }
    let mut assigned = Vec::new();
    let mut failures = Vec::new();
    for task in tasks {
        match task.await? {
            Ok(got) => assigned.extend(got),
            Err(error) => failures.push(format!("{error:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("{} tasks failed: {failures:#?}", failures.len());
    }
    chaos.await??;

    assert_eq!(assigned.len(), total, "every assignment returned Ok");
    let unique: HashSet<IpAddr> = assigned.iter().map(|(_, address)| *address).collect();
    assert_eq!(unique.len(), total, "an address was handed out twice");
    let report = ipam.check().await?;
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(
        (report.allocated, report.handles),
        (total, total),
        "the blocks hold exactly the returned assignments ({:?})",
        report.leftovers
    );
    for (handle_id, address) in &assigned {
        assert_eq!(
            ipam.addresses_by_handle(handle_id).await?,
            vec![*address],
            "{handle_id}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_across_a_member_kill_delivers_every_event_once() -> Result<()> {
    const WRITES: usize = 300;
    let cluster = start_cluster()?;
    let store = store(&cluster, "/watch-failover")?;
    let listing = store.list(Kind::Node, "").await?;
    let mut watch = store.watch(Kind::Node, "", &listing.revision).await?;

    let progress = Arc::new(AtomicUsize::new(0));
    let chaos = tokio::spawn(kill_and_restart(
        cluster.clone(),
        progress.clone(),
        WRITES / 3,
        WRITES * 2 / 3,
    ));
    let writer = {
        let (store, progress) = (store.clone(), progress.clone());
        tokio::spawn(async move {
            let mut revision = store.create(Kind::Node, "counter", b"0".to_vec()).await?;
            progress.fetch_add(1, Ordering::SeqCst);
            for count in 1..WRITES {
                let value = count.to_string().into_bytes();
                revision = store
                    .update(Kind::Node, "counter", value, &revision)
                    .await?;
                progress.fetch_add(1, Ordering::SeqCst);
            }
            anyhow::Ok(())
        })
    };

    for expected in 0..WRITES {
        let event = tokio::time::timeout(WITHIN, watch.next())
            .await
            .with_context(|| format!("no event for write {expected}"))?
            .context("the watch ended")??;
        let WatchEvent::Put(kv) = event else {
            bail!("unexpected {event:?}");
        };
        assert_eq!(
            String::from_utf8(kv.value)?,
            expected.to_string(),
            "events out of order, lost or repeated"
        );
    }
    writer.await??;
    chaos.await??;
    // Nothing after the last write: one more write is the very next event.
    let last = store.get(Kind::Node, "counter").await?.context("counter")?;
    store
        .update(Kind::Node, "counter", b"end".to_vec(), &last.revision)
        .await?;
    match tokio::time::timeout(WITHIN, watch.next()).await? {
        Some(Ok(WatchEvent::Put(kv))) => assert_eq!(kv.value, b"end"),
        other => bail!("expected the last write, got {other:?}"),
    }
    Ok(())
}
