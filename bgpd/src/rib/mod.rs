//! The RIB of manul-bgpd: Adj-RIBs-In (post import policy, with a stale flag for graceful
//! restart), Loc-RIB best-path selection with ECMP, and Adj-RIBs-Out (what each peer was last
//! sent). Pure: every operation takes an event and returns `RibOutput`s; no I/O, no clock.
//!
//! Shape: `table` stores one compact path list per prefix (the Loc-RIB best is recomputed
//! from it, not copied), `best` selects, `policy` filters, `export` turns a best path into
//! what a peer is sent and groups prefixes into updates, `import` handles received updates,
//! `graceful` removes a peer's routes (session loss, End-of-RIB sweep, restart timeout).
//!
//! Locally originated routes win over learned ones but are not reported to the agent (it
//! originated them): when one becomes best the agent sees `BestWithdrawn`.

mod best;
mod checks;
mod export;
mod graceful;
mod import;
mod peers;
mod policy;
mod prefix_table;
mod table;
#[cfg(test)]
mod tests;

pub use best::NextHops;
pub use prefix_table::Position;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::message::{ExtendedCommunity, Family, LargeCommunity, PathAttributes, Update};
use crate::prefix_hash::PrefixHashBuilder;
use peers::Peers;
use table::{Interner, Paths, Table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

/// A learned best path as `Rib::best_path` gives it: the next hops of all paths that tie up
/// to and including the eBGP/iBGP step (ECMP), deduplicated and sorted, and the attributes
/// (for IPv6 paths `mp_reach` holds the received next hops and no NLRI).
pub type LearnedBest = (NextHops, Arc<PathAttributes>);

/// Which Loc-RIB routes a listing wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteFilter {
    All,
    /// The route of exactly this prefix.
    Exact(IpNet),
    /// Routes equal to or covering this prefix (those that forward to its addresses).
    Covering(IpNet),
    /// Routes this prefix covers: equal or more specific.
    CoveredBy(IpNet),
}

impl RouteFilter {
    pub fn keeps(&self, route: &IpNet) -> bool {
        match self {
            RouteFilter::All => true,
            RouteFilter::Exact(prefix) => prefix.trunc() == *route,
            RouteFilter::Covering(prefix) => route.contains(prefix),
            RouteFilter::CoveredBy(prefix) => prefix.contains(route),
        }
    }
}

/// A Loc-RIB best path as a listing reports it.
#[derive(Clone, Debug)]
pub struct RouteView {
    pub prefix: IpNet,
    /// Empty for a route originated here.
    pub next_hops: Vec<IpAddr>,
    pub attributes: Arc<PathAttributes>,
    /// The peer's address and AS; `None`: originated here.
    pub peer: Option<(IpAddr, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Route reflection cluster id; `None`: the router id.
    pub cluster_id: Option<Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    pub address: IpAddr,
    /// iBGP when equal to the local ASN.
    pub asn: u32,
    pub route_reflector_client: bool,
    pub next_hop_self: bool,
    /// How many times our ASN may appear in a received AS_PATH (eBGP).
    pub allow_own_as: u8,
    /// Our address on the session: the next hop we advertise (IPv4 routes need a v4 one).
    pub local_address: IpAddr,
    /// Our IPv6 next hop for IPv6 routes, if the session address is not IPv6.
    pub local_address_v6: Option<Ipv6Addr>,
    pub import: Policy,
    pub export: Policy,
}

/// First matching rule wins; with no match, `default_accept` decides. The default policy
/// accepts nothing (RFC 8212).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub default_accept: bool,
    pub rules: Vec<PolicyRule>,
}

impl Policy {
    pub fn accept_all() -> Policy {
        Policy {
            default_accept: true,
            rules: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    /// Empty: any prefix.
    pub prefixes: Vec<PrefixMatch>,
    /// Matches if the route has any of these; empty: any route.
    pub communities_any: Vec<u32>,
    /// Matches if the route has any of these; empty: any route. Both lists must match.
    pub extended_communities_any: Vec<ExtendedCommunity>,
    /// Matches only routes this speaker originates (not learned from a peer).
    pub originated: bool,
    pub action: PolicyAction,
    pub add_communities: Vec<u32>,
    pub add_extended_communities: Vec<ExtendedCommunity>,
    pub add_large_communities: Vec<LargeCommunity>,
    pub set_med: Option<u32>,
    /// Ignored on export to eBGP peers (LOCAL_PREF is not sent there).
    pub set_local_pref: Option<u32>,
}

impl Default for PolicyRule {
    /// Accept anything, change nothing.
    fn default() -> Self {
        PolicyRule {
            prefixes: Vec::new(),
            communities_any: Vec::new(),
            extended_communities_any: Vec::new(),
            originated: false,
            action: PolicyAction::Accept,
            add_communities: Vec::new(),
            add_extended_communities: Vec::new(),
            add_large_communities: Vec::new(),
            set_med: None,
            set_local_pref: None,
        }
    }
}

/// `prefix` and every more specific prefix with a length in `min_len..=max_len`
/// ("10.0.0.0/8 ge 16 le 32"); exact match is `min_len == max_len == prefix length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixMatch {
    pub prefix: IpNet,
    pub min_len: u8,
    pub max_len: u8,
}

impl PrefixMatch {
    pub fn exact(prefix: IpNet) -> PrefixMatch {
        PrefixMatch {
            prefix,
            min_len: prefix.prefix_len(),
            max_len: prefix.prefix_len(),
        }
    }

    /// `prefix le max_len`: the prefix and its more specifics up to `max_len`.
    pub fn or_longer(prefix: IpNet, max_len: u8) -> PrefixMatch {
        PrefixMatch {
            prefix,
            min_len: prefix.prefix_len(),
            max_len,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyAction {
    Accept,
    Reject,
}

/// What the session negotiated, given when it is established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub peer_router_id: Ipv4Addr,
    pub four_octet_as: bool,
    /// Families both sides announced (only IPv4 and IPv6 unicast are used).
    pub families: Vec<Family>,
    /// Families in which the peer sends add-path identifiers.
    pub add_path_receive: Vec<Family>,
    /// The peer's graceful restart capability (RFC 4724): its families, each with the
    /// Forwarding State bit. `None`: not advertised.
    pub graceful_restart: Option<Vec<(Family, bool)>>,
    /// RFC 8950 was negotiated: IPv4 NLRI may come and go with IPv6 next hops.
    pub extended_next_hop: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RibOutput {
    /// Messages to send to one peer, grouped (prefixes with identical attributes share one
    /// Update; the codec splits into 4 KB messages). Withdrawals come first.
    Send { peer: PeerId, updates: Vec<Update> },
    /// A learned Loc-RIB best path changed: `Rib::best_path` has it. (The output names the
    /// prefix only: copying the path's next hops and attributes into a million outputs of a
    /// full table, which their consumers resolve later anyway, cost an allocation each.)
    /// `position` is where the prefix's table entry was, a hint for `set_watch_mark`.
    BestChanged { prefix: IpNet, position: Position },
    /// No learned best path any more (no path, or a locally originated one won).
    BestWithdrawn { prefix: IpNet },
}

/// `received`: prefixes announced by the peer since its session came up (rejected ones
/// included, re-announcements counted again); `accepted`: its paths now in the Adj-RIB-In;
/// `advertised`: prefixes now in its Adj-RIB-Out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCounters {
    pub received: u64,
    pub accepted: u64,
    pub advertised: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RibError {
    #[error("too many peers: the RIB holds at most 65535")]
    TooManyPeers,
}

/// Everything but the prefix table, so that code walking the table can update the rest.
#[derive(Debug)]
pub(crate) struct State {
    pub local: LocalConfig,
    pub cluster_id: Ipv4Addr,
    pub peers: Peers,
    pub interner: Interner,
    /// Export results of the current operation, per (attributes, source, target, family,
    /// matched rule): a full table has few distinct attribute sets. Looked up per prefix and
    /// peer, so hashed with the fast prefix hasher (SipHash was 4% of a peer's initial
    /// Adj-RIB-Out).
    pub export_cache: HashMap<export::CacheKey, Option<Arc<PathAttributes>>, PrefixHashBuilder>,
}

#[derive(Debug)]
pub struct Rib {
    table: Table<Paths>,
    state: State,
}

impl Rib {
    pub fn new(local: LocalConfig) -> Rib {
        let cluster_id = local.cluster_id.unwrap_or(local.router_id);
        let state = State {
            local,
            cluster_id,
            peers: Peers::default(),
            interner: Interner::default(),
            export_cache: HashMap::default(),
        };
        Rib {
            table: Table::default(),
            state,
        }
    }

    /// Adds a peer (down) or replaces the configuration of a known one. Beyond 65535 peers
    /// the peer is ignored; `try_add_peer` reports it.
    pub fn add_peer(&mut self, peer: PeerId, config: PeerConfig) {
        let _ = self.try_add_peer(peer, config);
    }

    pub fn try_add_peer(&mut self, peer: PeerId, config: PeerConfig) -> Result<(), RibError> {
        let ibgp = config.asn == self.state.local.asn;
        self.state.peers.add(peer, config, ibgp)
    }

    /// Withdraws the peer's routes and forgets it.
    pub fn remove_peer(&mut self, peer: PeerId) -> Vec<RibOutput> {
        let out = self.peer_down(peer, false);
        self.state.peers.remove(peer);
        out
    }

    /// The session is established: sends the peer its initial Adj-RIB-Out, then an
    /// End-of-RIB per negotiated family.
    pub fn peer_up(&mut self, peer: PeerId, session: SessionInfo) -> Vec<RibOutput> {
        export::peer_up(self, peer, session)
    }

    /// The session went down. `keep_stale` (graceful restart helper): its routes stay
    /// selectable, marked stale; otherwise they are withdrawn.
    pub fn peer_down(&mut self, peer: PeerId, keep_stale: bool) -> Vec<RibOutput> {
        graceful::peer_down(self, peer, keep_stale)
    }

    /// A received UPDATE, including End-of-RIB (which sweeps that family's stale routes).
    pub fn receive(&mut self, peer: PeerId, update: Update) -> Vec<RibOutput> {
        import::receive(self, peer, update)
    }

    /// The peer's restart time expired: drops all its stale routes.
    pub fn stale_timeout(&mut self, peer: PeerId) -> Vec<RibOutput> {
        graceful::remove_routes(self, peer, None, true)
    }

    /// Resends the peer's Adj-RIB-Out for `family`.
    pub fn route_refresh(&mut self, peer: PeerId, family: Family) -> Vec<RibOutput> {
        export::route_refresh(self, peer, family)
    }

    pub fn originate(
        &mut self,
        prefix: IpNet,
        communities: Vec<u32>,
        large_communities: Vec<LargeCommunity>,
    ) -> Vec<RibOutput> {
        import::originate(self, prefix.trunc(), Some((communities, large_communities)))
    }

    pub fn withdraw_originated(&mut self, prefix: IpNet) -> Vec<RibOutput> {
        import::originate(self, prefix.trunc(), None)
    }

    /// Zero for an unknown peer.
    pub fn counters(&self, peer: PeerId) -> PeerCounters {
        self.state
            .peers
            .by_id(peer)
            .map_or_else(PeerCounters::default, |(_, state)| PeerCounters {
                received: state.received,
                accepted: state.accepted,
                advertised: state.adj_out.len() as u64,
            })
    }

    /// The prefixes with a Loc-RIB best path (learned or originated) that `filter` keeps,
    /// in no particular order. Exact and covering filters look up a handful of entries; the
    /// others walk the table once, copying only prefixes.
    pub fn route_prefixes(&self, filter: &RouteFilter) -> Vec<IpNet> {
        let present = |prefix: &IpNet| {
            self.table
                .get(prefix)
                .is_some_and(|paths| !paths.as_slice().is_empty())
        };
        match filter {
            RouteFilter::Exact(prefix) => [prefix.trunc()].into_iter().filter(present).collect(),
            RouteFilter::Covering(prefix) => (0..=prefix.prefix_len())
                .filter_map(|len| IpNet::new(prefix.addr(), len).ok())
                .map(|net| net.trunc())
                .filter(present)
                .collect(),
            RouteFilter::All | RouteFilter::CoveredBy(_) => self
                .table
                .iter()
                .filter(|(prefix, paths)| !paths.as_slice().is_empty() && filter.keeps(prefix))
                .map(|(prefix, _)| prefix)
                .collect(),
        }
    }

    /// The Loc-RIB best path of each of `prefixes` that still has one, with the peer it came
    /// from (`None`: originated here).
    pub fn routes(&self, prefixes: &[IpNet]) -> Vec<RouteView> {
        prefixes
            .iter()
            .filter_map(|prefix| {
                let paths = self.table.get(prefix)?;
                let best = best::select(paths.as_slice(), &self.state.peers)?;
                let peer = (!best.is_local())
                    .then(|| self.state.peers.get(best.peer))
                    .flatten()
                    .map(|peer| (peer.config.address, peer.config.asn));
                Some(RouteView {
                    prefix: *prefix,
                    next_hops: best.next_hops.into_vec(),
                    attributes: best.attrs,
                    peer,
                })
            })
            .collect()
    }

    /// The learned Loc-RIB best paths (as `BestChanged` reports them), in prefix order.
    pub fn best_paths(
        &self,
    ) -> impl Iterator<Item = (IpNet, Vec<IpAddr>, Arc<PathAttributes>)> + '_ {
        self.table.iter().filter_map(|(prefix, paths)| {
            let best = best::select(paths.as_slice(), &self.state.peers)?;
            (!best.is_local()).then(|| (prefix, best.next_hops.into_vec(), best.attrs))
        })
    }

    /// The learned Loc-RIB best path of `prefix` (as `BestChanged` reports it), if any.
    pub fn best_path(&self, prefix: &IpNet) -> Option<LearnedBest> {
        let paths = self.table.get(&prefix.trunc())?;
        let best = best::select(paths.as_slice(), &self.state.peers)?;
        (!best.is_local()).then_some((best.next_hops, best.attrs))
    }

    /// Sets best-path watcher mark `bit` on `prefix`'s table entry (see `prefix_table`; looks
    /// at `hint` first): whether it was set, and where the entry is; `None`: no entry.
    pub fn set_watch_mark(
        &mut self,
        prefix: &IpNet,
        hint: Position,
        bit: u8,
    ) -> Option<(bool, Position)> {
        self.table.set_mark(prefix, hint, bit)
    }

    /// Clears watcher mark `bit` on `prefix`'s entry: whether it was set, and the learned
    /// best path (as `best_path`), in one lookup (none when the entry is still at `hint`).
    pub fn clear_watch_mark(
        &mut self,
        prefix: &IpNet,
        hint: Position,
        bit: u8,
    ) -> (bool, Option<LearnedBest>) {
        let (was_set, paths) = self.table.clear_mark(prefix, hint, bit);
        let best = paths
            .and_then(|paths| best::select(paths.as_slice(), &self.state.peers))
            .filter(|best| !best.is_local())
            .map(|best| (best.next_hops, best.attrs));
        (was_set, best)
    }

    /// Clears watcher mark `bit` on every entry (its watcher went away).
    pub fn clear_watch_mark_everywhere(&mut self, bit: u8) {
        self.table.clear_mark_everywhere(bit)
    }

    /// Prefixes whose entry was removed with watcher marks set, since the last call.
    pub fn take_evicted_watch_marks(&mut self) -> Vec<(IpNet, u8)> {
        self.table.take_evicted()
    }

    /// Whether a path of `peer` for `prefix` is stale.
    pub fn is_stale(&self, peer: PeerId, prefix: &IpNet) -> bool {
        let (Some((index, _)), Some(paths)) = (
            self.state.peers.by_id(peer),
            self.table.get(&prefix.trunc()),
        ) else {
            return false;
        };
        paths
            .as_slice()
            .iter()
            .any(|path| path.peer == index && path.stale)
    }

    /// Number of prefixes in the Loc-RIB (learned or originated).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Distinct attribute sets currently interned (for `show` and the benchmark).
    pub fn interned_attributes(&self) -> usize {
        self.state.interner.len()
    }
}
