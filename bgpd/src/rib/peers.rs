//! The RIB's peers, no I/O: configuration, session state, counters and the Adj-RIB-Out of
//! each, addressed by a dense 16-bit index (0 is reserved for locally originated routes) so
//! that a stored path names its peer in two bytes.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::IpNet;

use super::table::{LOCAL, PeerIndex, Table};
use super::{PeerConfig, PeerId, PolicyAction, RibError, SessionInfo};
use crate::message::{Family, PathAttributes};

#[derive(Debug)]
pub(crate) struct PeerState {
    pub id: PeerId,
    pub config: PeerConfig,
    pub ibgp: bool,
    /// Some while the session is established.
    pub session: Option<SessionInfo>,
    /// The router id of the last session (kept for stale routes).
    pub router_id: Ipv4Addr,
    pub received: u64,
    pub accepted: u64,
    /// The families in which the peer may have stale paths (graceful restart): an End-of-RIB
    /// of any other family has nothing to sweep, and skips the walk of the whole table.
    pub stale_families: Vec<Family>,
    /// What the peer was last sent, export attributes interned.
    pub adj_out: Table<Arc<PathAttributes>>,
    /// Adj-RIB-Out changes of the current operation, not yet turned into updates.
    pub pending: Vec<(IpNet, Option<Arc<PathAttributes>>)>,
}

impl PeerState {
    /// Whether exporting a prefix cannot change what this peer is sent: its export policy
    /// rejects every route and its Adj-RIB-Out is empty (a passive receiver of many peers
    /// then costs nothing per received prefix).
    pub fn exports_nothing(&self) -> bool {
        let export = &self.config.export;
        self.adj_out.is_empty()
            && !export.default_accept
            && export
                .rules
                .iter()
                .all(|rule| rule.action == PolicyAction::Reject)
    }

    /// Whether the session is up and carries `family`.
    pub fn sends(&self, family: Family) -> bool {
        self.session
            .as_ref()
            .is_some_and(|session| session.families.contains(&family))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Peers {
    /// Indexed by `PeerIndex`; slot 0 (`LOCAL`) is always `None`.
    slots: Vec<Option<PeerState>>,
    index: HashMap<PeerId, PeerIndex>,
}

impl Peers {
    pub fn add(&mut self, id: PeerId, config: PeerConfig, ibgp: bool) -> Result<(), RibError> {
        if let Some(state) = self.by_id_mut(id).map(|(_, state)| state) {
            state.config = config;
            state.ibgp = ibgp;
            return Ok(());
        }
        let free = self
            .slots
            .iter()
            .skip(1)
            .position(Option::is_none)
            .map(|i| i + 1);
        let slot = free.unwrap_or(self.slots.len().max(1));
        let index = PeerIndex::try_from(slot).map_err(|_| RibError::TooManyPeers)?;
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, || None);
        }
        self.slots[slot] = Some(PeerState {
            id,
            config,
            ibgp,
            session: None,
            router_id: Ipv4Addr::UNSPECIFIED,
            received: 0,
            accepted: 0,
            stale_families: Vec::new(),
            adj_out: Table::default(),
            pending: Vec::new(),
        });
        self.index.insert(id, index);
        Ok(())
    }

    pub fn remove(&mut self, id: PeerId) {
        if let Some(index) = self.index.remove(&id)
            && let Some(slot) = self.slots.get_mut(usize::from(index))
        {
            *slot = None;
        }
    }

    pub fn get(&self, index: PeerIndex) -> Option<&PeerState> {
        self.slots.get(usize::from(index))?.as_ref()
    }

    pub fn get_mut(&mut self, index: PeerIndex) -> Option<&mut PeerState> {
        self.slots.get_mut(usize::from(index))?.as_mut()
    }

    pub fn by_id(&self, id: PeerId) -> Option<(PeerIndex, &PeerState)> {
        let index = *self.index.get(&id)?;
        Some((index, self.get(index)?))
    }

    pub fn by_id_mut(&mut self, id: PeerId) -> Option<(PeerIndex, &mut PeerState)> {
        let index = *self.index.get(&id)?;
        Some((index, self.get_mut(index)?))
    }

    /// All peers with their index, in index order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (PeerIndex, &mut PeerState)> + '_ {
        self.slots.iter_mut().enumerate().filter_map(|(i, slot)| {
            let index = PeerIndex::try_from(i)
                .ok()
                .filter(|index| *index != LOCAL)?;
            Some((index, slot.as_mut()?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::{Policy, PolicyRule};

    /// Peers holding one peer (id 1) with `export`.
    fn state(export: Policy) -> Peers {
        let mut config = crate::rib::tests::config("192.0.2.2", 65002);
        config.export = export;
        let mut peers = Peers::default();
        peers.add(PeerId(1), config, false).unwrap();
        peers
    }

    fn exports_nothing(peers: &Peers) -> bool {
        peers.by_id(PeerId(1)).unwrap().1.exports_nothing()
    }

    #[test]
    fn exports_nothing_only_with_a_reject_all_policy_and_an_empty_adj_rib_out() {
        let reject = PolicyRule {
            action: PolicyAction::Reject,
            ..PolicyRule::default()
        };
        let reject_all = Policy {
            default_accept: false,
            rules: vec![reject.clone()],
        };
        assert!(exports_nothing(&state(Policy::default())));
        assert!(exports_nothing(&state(reject_all.clone())));
        assert!(!exports_nothing(&state(Policy::accept_all())));
        let one_accept = Policy {
            default_accept: false,
            rules: vec![reject, PolicyRule::default()],
        };
        assert!(!exports_nothing(&state(one_accept)));
        // Routes sent under an earlier policy must still be withdrawable.
        let mut sent = state(reject_all);
        let (_, peer) = sent.by_id_mut(PeerId(1)).unwrap();
        peer.adj_out.insert(
            "10.0.0.0/24".parse().unwrap(),
            Arc::new(PathAttributes::default()),
        );
        assert!(!exports_nothing(&sent));
    }
}
