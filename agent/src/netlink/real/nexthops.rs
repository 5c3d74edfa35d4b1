//! Kernel next-hop objects (`ip nexthop`, Linux 5.3+) for manul's gateway routes: the messages
//! (netlink-packet-route has none, so they are written and read here) and the table of the
//! objects manul made. No I/O: route_batch.rs sends the messages.
//!
//! A route that names a next-hop object (`RTA_NH_ID`) costs the kernel less to insert than
//! one that spells its gateway out: for a spelled-out gateway the kernel builds a next hop,
//! allocates its per-CPU route caches, checks the gateway with a FIB lookup, then finds an
//! identical one already shared and throws the new one away, once per route. With an object
//! it finds the object by id. A node learning a million routes through two gateways writes two
//! objects and a million routes that name them.
//!
//! manul's objects carry its route protocol (`proto manul`), one per distinct set of next hops:
//! a single gateway is an object of its own, an ECMP set is a group of those. Objects of any
//! other protocol are never touched. Each object manul uses is checked against the kernel
//! once per batch of route writes (a device that went down took its objects, and the kernel
//! may have given the id to someone else since), and objects no route of manul's names any
//! more are deleted after a dump of manul's routes showed them unused (`NexthopTable::unused`).

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use crate::netlink::ROUTE_PROTOCOL;

/// `RTM_NEWNEXTHOP`, `RTM_DELNEXTHOP`, `RTM_GETNEXTHOP`.
pub(crate) const RTM_NEWNEXTHOP: u16 = 104;
pub(crate) const RTM_DELNEXTHOP: u16 = 105;
pub(crate) const RTM_GETNEXTHOP: u16 = 106;

const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const NHA_ENCAP_TYPE: u16 = 7;
const NHA_FDB: u16 = 11;
/// `RTNH_F_ONLINK`.
const ONLINK: u32 = 4;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `struct nhmsg`: family, scope, protocol, reserved, flags.
const NHMSG_LENGTH: usize = 8;
/// `struct nexthop_grp`: id, weight - 1, high weight bits, reserved.
const GROUP_ENTRY_LENGTH: usize = 8;

/// One next hop as the kernel names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Hop {
    pub gateway: IpAddr,
    /// The interface index.
    pub interface: u32,
    pub onlink: bool,
}

/// The next hops of one route, sorted: one, or an ECMP set.
pub(crate) type HopSet = Vec<Hop>;

/// What a next-hop object is, as read from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NexthopKind {
    Single(Hop),
    /// The ids of the group's members (weights are not read: manul's are all 1).
    Group(Vec<u32>),
    /// Blackhole, FDB, encapsulated or device-only objects: never manul's shape.
    Other,
}

/// A next-hop object as the kernel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListedNexthop {
    pub id: u32,
    pub protocol: u8,
    pub kind: NexthopKind,
}

/// What to write after the 16-byte netlink header for a request.
pub(crate) enum NexthopRequest<'a> {
    /// Create a single next hop; the kernel picks the id (read from the echo).
    NewSingle(Hop),
    /// Create an ECMP group of these members, equal weights.
    NewGroup(&'a [u32]),
    /// Read one object.
    Get(u32),
    /// Delete one object.
    Delete(u32),
    /// List every object (with `NLM_F_DUMP`).
    Dump,
}

impl NexthopRequest<'_> {
    pub(crate) fn message_type(&self) -> u16 {
        match self {
            NexthopRequest::NewSingle(_) | NexthopRequest::NewGroup(_) => RTM_NEWNEXTHOP,
            NexthopRequest::Get(_) | NexthopRequest::Dump => RTM_GETNEXTHOP,
            NexthopRequest::Delete(_) => RTM_DELNEXTHOP,
        }
    }

    /// The `nhmsg` and attributes of the request.
    pub(crate) fn payload(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(40);
        let (family, protocol, flags) = match self {
            NexthopRequest::NewSingle(hop) => (
                family_of(hop.gateway),
                ROUTE_PROTOCOL,
                if hop.onlink { ONLINK } else { 0 },
            ),
            NexthopRequest::NewGroup(_) => (AF_UNSPEC, ROUTE_PROTOCOL, 0),
            _ => (AF_UNSPEC, 0, 0),
        };
        payload.extend_from_slice(&[family, 0, protocol, 0]);
        payload.extend_from_slice(&flags.to_ne_bytes());
        match self {
            NexthopRequest::NewSingle(hop) => {
                put_attribute(&mut payload, NHA_OIF, &hop.interface.to_ne_bytes());
                match hop.gateway {
                    IpAddr::V4(address) => {
                        put_attribute(&mut payload, NHA_GATEWAY, &address.octets());
                    }
                    IpAddr::V6(address) => {
                        put_attribute(&mut payload, NHA_GATEWAY, &address.octets());
                    }
                }
            }
            NexthopRequest::NewGroup(members) => {
                let mut entries = Vec::with_capacity(members.len() * GROUP_ENTRY_LENGTH);
                for id in members.iter() {
                    entries.extend_from_slice(&id.to_ne_bytes());
                    entries.extend_from_slice(&[0; 4]);
                }
                put_attribute(&mut payload, NHA_GROUP, &entries);
            }
            NexthopRequest::Get(id) | NexthopRequest::Delete(id) => {
                put_attribute(&mut payload, NHA_ID, &id.to_ne_bytes());
            }
            NexthopRequest::Dump => {}
        }
        payload
    }
}

fn family_of(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

fn put_attribute(buffer: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let length = 4 + value.len();
    buffer.extend_from_slice(&(length as u16).to_ne_bytes());
    buffer.extend_from_slice(&kind.to_ne_bytes());
    buffer.extend_from_slice(value);
    buffer.resize(buffer.len() + (4 - length % 4) % 4, 0);
}

/// Reads the payload of an `RTM_NEWNEXTHOP` message (after the netlink header); None when it
/// is malformed or has no id.
pub(crate) fn parse_nexthop(payload: &[u8]) -> Option<ListedNexthop> {
    let header = payload.get(..NHMSG_LENGTH)?;
    let protocol = header[2];
    let flags = u32::from_ne_bytes(header[4..8].try_into().ok()?);
    let (mut id, mut group, mut interface, mut gateway) = (None, None, None, None);
    let mut other = false;
    let mut rest = &payload[NHMSG_LENGTH..];
    while rest.len() >= 4 {
        let length = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        let value = rest.get(4..length)?;
        match kind {
            NHA_ID => id = Some(u32::from_ne_bytes(value.try_into().ok()?)),
            NHA_GROUP => {
                group = Some(
                    value
                        .chunks_exact(GROUP_ENTRY_LENGTH)
                        .filter_map(|entry| Some(u32::from_ne_bytes(entry[..4].try_into().ok()?)))
                        .collect::<Vec<_>>(),
                );
            }
            NHA_OIF => interface = Some(u32::from_ne_bytes(value.try_into().ok()?)),
            NHA_GATEWAY => {
                gateway = match value.len() {
                    4 => Some(IpAddr::from(<[u8; 4]>::try_from(value).ok()?)),
                    16 => Some(IpAddr::from(<[u8; 16]>::try_from(value).ok()?)),
                    _ => None,
                };
            }
            NHA_BLACKHOLE | NHA_ENCAP_TYPE | NHA_FDB => other = true,
            _ => {}
        }
        let padded = (length + 3) & !3;
        rest = rest.get(padded.max(4)..).unwrap_or(&[]);
    }
    let kind = match (group, interface, gateway) {
        _ if other => NexthopKind::Other,
        (Some(members), _, _) => NexthopKind::Group(members),
        (None, Some(interface), Some(gateway)) => NexthopKind::Single(Hop {
            gateway,
            interface,
            onlink: flags & ONLINK != 0,
        }),
        _ => NexthopKind::Other,
    };
    Some(ListedNexthop {
        id: id?,
        protocol,
        kind,
    })
}

/// What the kernel must hold for a `HopSet` to be usable by its id.
pub(crate) fn matches(listed: &ListedNexthop, hops: &[Hop], members: &[u32]) -> bool {
    if listed.protocol != ROUTE_PROTOCOL {
        return false;
    }
    match (&listed.kind, hops) {
        (NexthopKind::Single(hop), [wanted]) => hop == wanted,
        (NexthopKind::Group(listed_members), [_, _, ..]) => {
            let mut listed_members = listed_members.clone();
            listed_members.sort_unstable();
            let mut members = members.to_vec();
            members.sort_unstable();
            listed_members == members
        }
        _ => false,
    }
}

/// One object of manul's that this process knows.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    id: u32,
    /// A group's members, in the order of its hops.
    members: Vec<u32>,
    /// The generation of the last batch of route writes that named it.
    last_used: u64,
}

/// The next-hop objects of manul's that this process made or adopted, by the set of next hops
/// each stands for. Pure bookkeeping: the socket in route_batch.rs asks the kernel.
#[derive(Debug, Default)]
pub(crate) struct NexthopTable {
    entries: HashMap<HopSet, Entry>,
    /// Counts the batches of route writes that named objects.
    generation: u64,
}

impl NexthopTable {
    /// The id and members known for `hops`, unchecked.
    pub(crate) fn get(&self, hops: &[Hop]) -> Option<(u32, &[u32])> {
        self.entries
            .get(hops)
            .map(|entry| (entry.id, entry.members.as_slice()))
    }

    pub(crate) fn insert(&mut self, hops: HopSet, id: u32, members: Vec<u32>) {
        let last_used = self.generation;
        self.entries.insert(
            hops,
            Entry {
                id,
                members,
                last_used,
            },
        );
    }

    pub(crate) fn forget(&mut self, hops: &[Hop]) {
        self.entries.remove(hops);
    }

    /// Forgets the objects with a next hop on one of these interfaces (the kernel flushed
    /// them, or took the member out of the group); whether it knew any.
    pub(crate) fn forget_interfaces(&mut self, interfaces: &[u32]) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|hops, _| !hops.iter().any(|hop| interfaces.contains(&hop.interface)));
        self.entries.len() != before
    }

    /// Forgets the objects with these ids (the kernel deleted them); whether it knew any.
    pub(crate) fn forget_ids(&mut self, ids: &[u32]) -> bool {
        let before = self.entries.len();
        self.entries.retain(|_, entry| !ids.contains(&entry.id));
        self.entries.len() != before
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Records that a batch whose route writes named `used` has been answered.
    pub(crate) fn mark_used<'a>(&mut self, used: impl IntoIterator<Item = &'a HopSet>) {
        self.generation += 1;
        for hops in used {
            if let Some(entry) = self.entries.get_mut(hops) {
                entry.last_used = self.generation;
            }
        }
    }

    /// Takes the objects of manul's in a kernel listing that this process does not know yet
    /// (made before a restart), so that their sets are not made twice.
    pub(crate) fn adopt(&mut self, listing: &[ListedNexthop]) {
        let known: HashSet<u32> = self.entries.values().map(|entry| entry.id).collect();
        let ours: Vec<&ListedNexthop> = listing
            .iter()
            .filter(|listed| listed.protocol == ROUTE_PROTOCOL && !known.contains(&listed.id))
            .collect();
        let singles: HashMap<u32, Hop> = listing
            .iter()
            .filter(|listed| listed.protocol == ROUTE_PROTOCOL)
            .filter_map(|listed| match listed.kind {
                NexthopKind::Single(hop) => Some((listed.id, hop)),
                _ => None,
            })
            .collect();
        for listed in &ours {
            if let NexthopKind::Single(hop) = listed.kind {
                self.entries.entry(vec![hop]).or_insert(Entry {
                    id: listed.id,
                    members: Vec::new(),
                    last_used: self.generation,
                });
            }
        }
        for listed in ours {
            if let NexthopKind::Group(members) = &listed.kind {
                let hops: Option<Vec<(Hop, u32)>> = members
                    .iter()
                    .map(|id| singles.get(id).map(|hop| (*hop, *id)))
                    .collect();
                let Some(mut hops) = hops else { continue };
                hops.sort();
                let (set, members): (HopSet, Vec<u32>) = hops.into_iter().unzip();
                self.entries.entry(set).or_insert(Entry {
                    id: listed.id,
                    members,
                    last_used: self.generation,
                });
            }
        }
    }

    /// The objects of manul's in `listing` to delete: none of `referenced` (the ids manul's
    /// routes named in a dump started at generation `since`, after the listing was taken)
    /// names them, directly or as a member of a group that stays, and no batch answered since
    /// then has named them. Groups come before their members. They are forgotten here.
    pub(crate) fn unused(
        &mut self,
        listing: &[ListedNexthop],
        referenced: &HashSet<u32>,
        since: u64,
    ) -> Vec<u32> {
        let recently_used: HashSet<u32> = self
            .entries
            .values()
            .filter(|entry| entry.last_used > since)
            .map(|entry| entry.id)
            .collect();
        let ours = || {
            listing
                .iter()
                .filter(|listed| listed.protocol == ROUTE_PROTOCOL)
        };
        let keep = |id: u32| referenced.contains(&id) || recently_used.contains(&id);
        let mut kept_members = HashSet::new();
        let mut doomed = Vec::new();
        for listed in ours() {
            if let NexthopKind::Group(members) = &listed.kind {
                if keep(listed.id) {
                    kept_members.extend(members.iter().copied());
                } else {
                    doomed.push(listed.id);
                }
            }
        }
        // Groups of other owners may name manul's single next hops too: those stay.
        for listed in listing
            .iter()
            .filter(|listed| listed.protocol != ROUTE_PROTOCOL)
        {
            if let NexthopKind::Group(members) = &listed.kind {
                kept_members.extend(members.iter().copied());
            }
        }
        for listed in ours() {
            if !matches!(listed.kind, NexthopKind::Group(_))
                && !keep(listed.id)
                && !kept_members.contains(&listed.id)
            {
                doomed.push(listed.id);
            }
        }
        let doomed_set: HashSet<u32> = doomed.iter().copied().collect();
        self.entries
            .retain(|_, entry| !doomed_set.contains(&entry.id));
        doomed
    }
}

#[cfg(test)]
#[path = "nexthops_tests.rs"]
mod tests;
