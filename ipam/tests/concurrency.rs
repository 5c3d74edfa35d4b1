//! Eight tasks on a multi-thread runtime allocate 2,000 addresses in total against one
//! embedded store through the compare-and-swap path, then release them all: no address is
//! handed out twice and the store ends consistent and empty.

use std::{collections::HashSet, net::IpAddr, sync::Arc, time::Instant};

use anyhow::Result;
use manul_ipam::{AutoAssignRequest, Ipam, pod_handle_id};
use manul_store::{Datastore, DatastoreExt, IpPool, IpamBlock, embedded::EmbeddedStore};

const TASKS: usize = 8;
const PER_TASK: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_never_share_an_address() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Datastore> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"))?);
    let ipam = Ipam::new(store.clone());
    ipam.create_pool(&IpPool {
        metadata: Default::default(),
        name: "default".into(),
        cidr: "10.0.0.0/16".parse()?,
        block_size: 26,
        disabled: false,
        node_selector: "all()".into(),
        nat_outgoing: true,
        vxlan_mode: Default::default(),
        ipip_mode: Default::default(),
        disable_bgp_export: false,
    })
    .await?;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let ipam = ipam.clone();
        // Two tasks per node: same-node races on affine blocks, cross-node races on claims.
        let node = format!("node-{}", task / 2);
        tasks.push(tokio::spawn(async move {
            let mut got: Vec<(String, IpAddr)> = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                let handle_id = pod_handle_id(&format!("t{task}-c{i}"));
                let assignment = ipam
                    .auto_assign(&AutoAssignRequest {
                        handle_id: handle_id.clone(),
                        node: node.clone(),
                        num_ipv4: 1,
                        ..Default::default()
                    })
                    .await?;
                anyhow::ensure!(assignment.ipv4.len() == 1, "{assignment:?}");
                got.push((handle_id, assignment.ipv4[0].addr()));
            }
            anyhow::Ok(got)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let allocated_in = started.elapsed();
    let unique: HashSet<IpAddr> = all.iter().map(|(_, address)| *address).collect();
    assert_eq!(all.len(), TASKS * PER_TASK);
    assert_eq!(unique.len(), all.len(), "an address was handed out twice");
    let report = ipam.check().await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.allocated, TASKS * PER_TASK);
    for (handle_id, address) in all.iter().step_by(97) {
        assert_eq!(ipam.addresses_by_handle(handle_id).await?, vec![*address]);
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in all.chunks(PER_TASK) {
        let ipam = ipam.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for (handle_id, address) in chunk {
                let released = ipam.release_by_handle(&handle_id).await?;
                anyhow::ensure!(released == vec![address], "{handle_id}: {released:?}");
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let released_in = started.elapsed();

    for block in store.list_resources::<IpamBlock>("").await? {
        assert!(
            block.value.allocations.iter().all(Option::is_none),
            "block {} still holds addresses",
            block.value.cidr
        );
    }
    let report = ipam.check().await?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.leftovers.is_empty(), "{:?}", report.leftovers);
    assert_eq!((report.allocated, report.handles), (0, 0));
    eprintln!(
        "allocated {} in {allocated_in:?}, released in {released_in:?}, {} blocks",
        all.len(),
        report.blocks
    );
    Ok(())
}
