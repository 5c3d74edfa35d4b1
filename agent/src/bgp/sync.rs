//! Brings manul-bgpd to a `SpeakerConfig`: global settings, peers and originated prefixes,
//! changing only what differs, so that neither an agent restart nor a repeated sync resets a
//! session. I/O only through `BgpdApi`.
//!
//! After (re)connecting, the state is read back from bgpd (GetGlobal, ListPeers,
//! ListPrefixes) and compared; later syncs compare with what was applied. bgpd does not echo
//! every option of a peer as it was given (defaults filled in, passwords never), so each peer
//! carries a fingerprint of its options in its name ("node-b~1a2b3c4d"): equal fingerprints,
//! equal options. A bgpd that restarted has lost everything and gets everything again.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use manul_proto::bgpd as proto;
use prost::Message;
use sha1::{Digest, Sha1};
use tracing::info;

use super::{
    bgpd_api::{BgpdApi, BgpdError},
    speaker_config::SpeakerConfig,
};

/// What bgpd is known to run.
#[derive(Debug, Default)]
pub struct SpeakerSync {
    /// None: unknown (never synced, or bgpd went away); read back on the next sync.
    applied: Option<Applied>,
}

#[derive(Debug, Default, PartialEq)]
struct Applied {
    global: Option<proto::Global>,
    /// Address -> fingerprinted name, and the password when this agent set it (None after a
    /// read-back: bgpd never echoes passwords).
    peers: BTreeMap<IpAddr, (String, Option<String>)>,
    prefixes: BTreeMap<IpNet, proto::OriginatedPrefix>,
}

/// What one sync changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub global_set: bool,
    pub peers_added: usize,
    pub peers_updated: usize,
    pub peers_deleted: usize,
    pub prefixes_added: usize,
    pub prefixes_deleted: usize,
}

impl SyncReport {
    pub fn changed(&self) -> bool {
        *self != SyncReport::default()
    }
}

impl SpeakerSync {
    /// Forgets what bgpd runs (it restarted, or a call failed half way).
    pub fn forget(&mut self) {
        self.applied = None;
    }

    /// One pass; on an error the state is forgotten and the next pass reads it back.
    pub async fn sync(
        &mut self,
        bgpd: &dyn BgpdApi,
        desired: &SpeakerConfig,
    ) -> Result<SyncReport, BgpdError> {
        let result = self.sync_inner(bgpd, desired).await;
        if result.is_err() {
            self.applied = None;
        }
        result
    }

    async fn sync_inner(
        &mut self,
        bgpd: &dyn BgpdApi,
        desired: &SpeakerConfig,
    ) -> Result<SyncReport, BgpdError> {
        let mut report = SyncReport::default();
        // A bgpd that lost its global settings restarted: what it ran is gone.
        if self
            .applied
            .as_ref()
            .is_some_and(|applied| applied.global.is_some())
            && bgpd.get_global().await?.is_none()
        {
            info!("manul-bgpd restarted: applying everything again");
            self.applied = None;
        }
        if self.applied.is_none() {
            self.applied = Some(read_back(bgpd).await?);
        }
        let Some(global) = &desired.global else {
            // Without a router ID there is nothing to run; what runs keeps running.
            return Ok(report);
        };
        let applied = self.applied.get_or_insert_with(Applied::default);
        if !applied
            .global
            .as_ref()
            .is_some_and(|current| same_global(current, global))
        {
            info!(asn = global.asn, router_id = %global.router_id, "setting bgpd's global settings");
            bgpd.set_global(global.clone()).await?;
            applied.global = Some(global.clone());
            report.global_set = true;
        }

        let wanted: BTreeMap<IpAddr, proto::Peer> = desired
            .peers
            .iter()
            .map(|(address, peer)| (*address, fingerprinted(peer)))
            .collect();
        let stale: Vec<IpAddr> = applied
            .peers
            .keys()
            .filter(|address| !wanted.contains_key(address))
            .copied()
            .collect();
        for address in stale {
            info!(peer = %address, "removing a BGP peer");
            bgpd.delete_peer(address.to_string()).await?;
            applied.peers.remove(&address);
            report.peers_deleted += 1;
        }
        for (address, peer) in wanted {
            let record = (peer.name.clone(), Some(peer.md5_password.clone()));
            match applied.peers.get(&address) {
                Some((name, password))
                    if *name == peer.name
                        && password
                            .as_ref()
                            .is_none_or(|known| *known == peer.md5_password) => {}
                Some(_) => {
                    info!(peer = %address, name = %peer.name, "updating a BGP peer");
                    bgpd.update_peer(peer).await?;
                    applied.peers.insert(address, record);
                    report.peers_updated += 1;
                }
                None => {
                    info!(peer = %address, name = %peer.name, asn = peer.asn, "adding a BGP peer");
                    bgpd.add_peer(peer).await?;
                    applied.peers.insert(address, record);
                    report.peers_added += 1;
                }
            }
        }

        let withdrawn: Vec<IpNet> = applied
            .prefixes
            .keys()
            .filter(|prefix| !desired.prefixes.contains_key(prefix))
            .copied()
            .collect();
        if !withdrawn.is_empty() {
            bgpd.delete_prefixes(withdrawn.iter().map(ToString::to_string).collect())
                .await?;
            for prefix in &withdrawn {
                applied.prefixes.remove(prefix);
            }
            report.prefixes_deleted = withdrawn.len();
        }
        let announced: Vec<proto::OriginatedPrefix> = desired
            .prefixes
            .iter()
            .filter(|(prefix, wanted)| applied.prefixes.get(prefix) != Some(wanted))
            .map(|(_, wanted)| wanted.clone())
            .collect();
        if !announced.is_empty() {
            bgpd.add_prefixes(announced.clone()).await?;
            report.prefixes_added = announced.len();
            for prefix in announced {
                if let Ok(net) = prefix.prefix.parse::<IpNet>() {
                    applied.prefixes.insert(net, prefix);
                }
            }
        }
        Ok(report)
    }

    /// Withdraws every prefix this node originates, then removes every peer (each gets a
    /// Cease): for a node leaving the cluster, whose routes must go everywhere now rather than
    /// after a graceful-restart timer. Global settings stay.
    pub async fn withdraw_all(&mut self, bgpd: &dyn BgpdApi) -> Result<SyncReport, BgpdError> {
        self.applied = None;
        let running = read_back(bgpd).await?;
        let mut report = SyncReport::default();
        if !running.prefixes.is_empty() {
            let prefixes: Vec<String> = running.prefixes.keys().map(ToString::to_string).collect();
            info!(count = prefixes.len(), "withdrawing this node's prefixes");
            bgpd.delete_prefixes(prefixes).await?;
            report.prefixes_deleted = running.prefixes.len();
        }
        for address in running.peers.keys() {
            info!(peer = %address, "removing a BGP peer: this node leaves the cluster");
            bgpd.delete_peer(address.to_string()).await?;
            report.peers_deleted += 1;
        }
        Ok(report)
    }
}

async fn read_back(bgpd: &dyn BgpdApi) -> Result<Applied, BgpdError> {
    let global = bgpd.get_global().await?;
    if global.is_none() {
        // A bgpd without global settings has no peers or prefixes that matter.
        return Ok(Applied::default());
    }
    let peers = bgpd
        .list_peers()
        .await?
        .into_iter()
        .filter_map(|status| {
            let peer = status.peer?;
            Some((peer.address.parse().ok()?, (peer.name, None)))
        })
        .collect();
    let prefixes = bgpd
        .list_prefixes()
        .await?
        .into_iter()
        .filter_map(|prefix| Some((prefix.prefix.parse().ok()?, prefix)))
        .collect();
    Ok(Applied {
        global,
        peers,
        prefixes,
    })
}

/// bgpd echoes the global settings with defaults filled in: compare what matters.
fn same_global(current: &proto::Global, wanted: &proto::Global) -> bool {
    let port = |port: u32| if port == 0 { 179 } else { port };
    let addresses = |global: &proto::Global| -> BTreeSet<Option<IpAddr>> {
        global
            .listen_addresses
            .iter()
            .map(|text| text.parse().ok())
            .collect()
    };
    let cluster = |global: &proto::Global| {
        if global.cluster_id.is_empty() {
            global.router_id.clone()
        } else {
            global.cluster_id.clone()
        }
    };
    current.asn == wanted.asn
        && current.router_id == wanted.router_id
        && port(current.listen_port) == port(wanted.listen_port)
        && addresses(current) == addresses(wanted)
        && cluster(current) == cluster(wanted)
}

/// The peer with "~<fingerprint of its options>" appended to its name. The password is left
/// out (the fingerprint is readable through bgpd's API): a password changed while the agent was
/// down is applied at the next change of the peer.
pub fn fingerprinted(peer: &proto::Peer) -> proto::Peer {
    let mut unnamed = peer.clone();
    unnamed.name.clear();
    unnamed.md5_password.clear();
    let digest = Sha1::digest(unnamed.encode_to_vec());
    let mut peer = peer.clone();
    peer.name = format!("{}~{}", peer.name, hex::encode(&digest[..4]));
    peer
}

/// The name of a peer without its fingerprint.
pub fn display_name(name: &str) -> &str {
    name.split_once('~').map_or(name, |(base, _)| base)
}
