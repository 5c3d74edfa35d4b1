//! The lab's pools: made by the lab before any agent starts (the IPv4 pool, and the IPv6 one
//! in a dual-stack lab, with the lab's vxlanMode and natOutgoing) and changed while it runs.
//! Does I/O (the lab's etcd).

use anyhow::{Context, Result};
use manul_store::{DatastoreExt, IpPool};

use super::{Lab, POOL, POOL_NAME, POOL_V6, POOL_V6_NAME, with_store};

impl Lab {
    /// The lab's pools as its options say (the IPv6 one in a dual-stack lab).
    pub fn pools(&self) -> Vec<IpPool> {
        let mut pools = vec![(POOL_NAME, POOL)];
        if self.opts.ipv6 {
            pools.push((POOL_V6_NAME, POOL_V6));
        }
        pools
            .into_iter()
            .map(|(name, cidr)| IpPool {
                vxlan_mode: self.opts.vxlan_mode,
                nat_outgoing: self.opts.nat_outgoing,
                ..IpPool::new(name, cidr.parse().expect("the lab's pools are CIDRs"))
            })
            .collect()
    }

    pub(super) fn create_pools(&self) -> Result<()> {
        let pools = self.pools();
        with_store(self, move |store| async move {
            let ipam = manul_ipam::Ipam::new(store);
            if ipam.pools().await?.is_empty() {
                for pool in &pools {
                    ipam.create_pool(pool).await?;
                }
            }
            Ok(())
        })
    }

    /// Changes the lab's pools in the datastore (the agents follow without a restart) and the
    /// lab's options with them.
    pub fn update_pool(&mut self, change: fn(&mut IpPool)) -> Result<()> {
        let names: Vec<&'static str> = self
            .pools()
            .iter()
            .map(|pool| match pool.cidr {
                manul_ipam::IpNet::V4(_) => POOL_NAME,
                manul_ipam::IpNet::V6(_) => POOL_V6_NAME,
            })
            .collect();
        let updated = with_store(self, move |store| async move {
            let mut updated = None;
            for name in names {
                let mut retry =
                    manul_ipam::retry::CasRetry::new(|| format!("updating the pool {name}"));
                loop {
                    let stored = store
                        .get_resource::<IpPool>(name)
                        .await?
                        .with_context(|| format!("the lab's pool {name} is gone"))?;
                    let mut pool = stored.value.clone();
                    change(&mut pool);
                    match store.update_resource(&pool, &stored.revision).await {
                        Ok(_) => {
                            updated = Some(pool);
                            break;
                        }
                        Err(error) => retry.lost(error).await?,
                    }
                }
            }
            updated.context("the lab has no pool")
        })?;
        self.opts.vxlan_mode = updated.vxlan_mode;
        self.opts.nat_outgoing = updated.nat_outgoing;
        Ok(())
    }
}
