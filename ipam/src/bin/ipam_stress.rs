//! ipam_stress: opens the embedded store at argv[1] and, until killed, allocates and releases
//! addresses from several tasks on two nodes, printing one line per allocation. Used by the
//! kill -9 test (tests/kill9.rs); does I/O only through the store.

use std::{collections::VecDeque, error::Error, net::IpAddr, path::PathBuf, sync::Arc};

use manul_ipam::{AssignIpRequest, AutoAssignRequest, Ipam, IpamError};
use manul_store::{IpPool, embedded::EmbeddedStore};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const TASKS: usize = 4;
/// Handles each task keeps allocated before it releases the oldest.
const WINDOW: usize = 12;

fn pool(name: &str, cidr: &str, block_size: u8) -> Result<IpPool> {
    Ok(IpPool {
        metadata: Default::default(),
        name: name.into(),
        cidr: cidr.parse()?,
        block_size,
        disabled: false,
        node_selector: "all()".into(),
        nat_outgoing: false,
        vxlan_mode: Default::default(),
        ipip_mode: Default::default(),
        disable_bgp_export: false,
    })
}

async fn ensure_pool(ipam: &Ipam, pool: IpPool) -> Result<()> {
    match ipam.create_pool(&pool).await {
        Ok(()) | Err(IpamError::InvalidPool { field: "name", .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn run_task(ipam: Ipam, run: String, task: usize) -> Result<()> {
    let node = format!("stress-node-{}", task % 2);
    let mut live = VecDeque::new();
    for i in 0u64.. {
        let handle_id = format!("stress-{run}-{task}-{i}");
        let addresses: Vec<IpAddr> = if i % 5 == 4 {
            // Now and then a specific address; taken ones are refused, which is fine.
            let address: IpAddr = format!("10.99.{}.{}", task, i % 250).parse()?;
            let request = AssignIpRequest {
                address,
                handle_id: handle_id.clone(),
                node: node.clone(),
                attributes: Default::default(),
            };
            match ipam.assign_ip(&request).await {
                Ok(net) => vec![net.addr()],
                Err(IpamError::AddressInUse { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        } else {
            let assignment = ipam
                .auto_assign(&AutoAssignRequest {
                    handle_id: handle_id.clone(),
                    node: node.clone(),
                    num_ipv4: 1 + (i % 2) as u32,
                    num_ipv6: 1,
                    ..Default::default()
                })
                .await?;
            assignment
                .ipv4
                .iter()
                .chain(&assignment.ipv6)
                .map(|net| net.addr())
                .collect()
        };
        println!("allocated {handle_id} {addresses:?}");
        live.push_back(handle_id);
        if live.len() > WINDOW
            && let Some(oldest) = live.pop_front()
        {
            ipam.release_by_handle(&oldest).await?;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: ipam_stress <store.redb> [run-name]")?,
    );
    let run = args.next().unwrap_or_else(|| "run".into());
    let ipam = Ipam::new(Arc::new(EmbeddedStore::open(&path)?));
    ensure_pool(&ipam, pool("stress-v4", "10.99.0.0/16", 28)?).await?;
    ensure_pool(&ipam, pool("stress-v6", "fd99::/112", 124)?).await?;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(run_task(ipam.clone(), run.clone(), task)))
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}
