//! Tests of the RIB actor's consumers (watchers, peers) with a real `Rib` on its thread: a
//! consumer that does not read holds pending changes bounded by the prefixes, not the churn.
//! No network I/O.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Arc,
};

use super::{
    outbound::OutboundQueue,
    rib_actor::{RibActor, RibCommand, RibHandle},
};
use crate::{
    message::{AsPath, AsSegment, Family, Nlri, Origin, PathAttributes, SegmentKind, Update},
    rib::{LocalConfig, PeerConfig, PeerId, Policy, SessionInfo},
};
use ipnet::IpNet;

const PREFIXES: u32 = 500;
const ROUNDS: u32 = 20;

fn prefix(index: u32) -> IpNet {
    IpNet::new(IpAddr::from([10, (index >> 8) as u8, index as u8, 0]), 24).unwrap()
}

fn peer_config(address: [u8; 4], asn: u32) -> PeerConfig {
    PeerConfig {
        address: IpAddr::from(address),
        asn,
        route_reflector_client: false,
        next_hop_self: false,
        allow_own_as: 0,
        local_address: IpAddr::from([192, 0, 2, 100]),
        local_address_v6: None,
        import: Policy::accept_all(),
        export: Policy::accept_all(),
    }
}

fn session(router_id: [u8; 4]) -> SessionInfo {
    SessionInfo {
        peer_router_id: router_id.into(),
        four_octet_as: true,
        families: vec![Family::IPV4_UNICAST],
        add_path_receive: Vec::new(),
        graceful_restart: None,
        extended_next_hop: false,
    }
}

fn announce(med: u32) -> Update {
    Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath {
                segments: vec![AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![65002],
                }],
            }),
            next_hop: Some([192, 0, 2, 2].into()),
            med: Some(med),
            ..PathAttributes::default()
        },
        nlri: (0..PREFIXES)
            .map(|index| Nlri {
                prefix: prefix(index),
                path_id: None,
            })
            .collect(),
        ..Update::default()
    }
}

fn withdraw_even() -> Update {
    Update {
        withdrawn: (0..PREFIXES)
            .step_by(2)
            .map(|index| Nlri {
                prefix: prefix(index),
                path_id: None,
            })
            .collect(),
        ..Update::default()
    }
}

fn spawn() -> RibActor {
    RibActor::spawn(LocalConfig {
        asn: 65000,
        router_id: [192, 0, 2, 100].into(),
        cluster_id: None,
    })
}

/// Adds and brings up peer `id` (eBGP from 192.0.2.`id`); returns its session's queue.
fn bring_up(rib: &RibHandle, id: u32) -> Arc<OutboundQueue> {
    let outbound = OutboundQueue::new();
    let address = [192, 0, 2, id as u8];
    rib.send(RibCommand::AddPeer {
        id: PeerId(id),
        config: peer_config(address, 65000 + id),
    });
    rib.send(RibCommand::PeerUp {
        id: PeerId(id),
        outbound: Arc::clone(&outbound),
        info: session(address),
        local_address: IpAddr::from([192, 0, 2, 100]),
    });
    outbound
}

/// `ROUNDS` rounds over the same prefixes from peer 2: announce all (MED = round), withdraw
/// the even ones. The final state: odd prefixes with MED `ROUNDS - 1`, even ones withdrawn.
async fn churn(rib: &RibHandle) {
    for round in 0..ROUNDS {
        rib.receive(PeerId(2), vec![announce(round)]).await;
        rib.receive(PeerId(2), vec![withdraw_even()]).await;
    }
    // A round trip: every command before it has been handled.
    rib.counters(vec![PeerId(2)]).await.unwrap();
}

#[tokio::test]
async fn a_watcher_that_does_not_read_holds_at_most_one_change_per_prefix() {
    let actor = spawn();
    let rib = actor.handle();
    let _peer = bring_up(&rib, 2);
    let watch = rib.watch();
    churn(&rib).await;

    let pending = watch.pending().await.unwrap();
    assert!(
        pending <= PREFIXES as usize,
        "{pending} changes pending for {PREFIXES} prefixes"
    );
    let mut state: HashMap<IpNet, Option<u32>> = HashMap::new();
    let mut snapshot_done = false;
    while watch.pending().await.unwrap() > 0 || !snapshot_done {
        let chunk = watch.next().await.unwrap();
        snapshot_done |= chunk.snapshot_done;
        for event in chunk.events {
            let med = event
                .best
                .as_ref()
                .map(|(_, attributes)| attributes.med.unwrap());
            state.insert(event.prefix, med);
        }
    }
    for index in 0..PREFIXES {
        let expected = (index % 2 == 1).then_some(ROUNDS - 1);
        assert_eq!(state.get(&prefix(index)).copied().flatten(), expected);
    }
}

#[tokio::test]
async fn a_peer_that_does_not_drain_holds_at_most_one_change_per_prefix() {
    let actor = spawn();
    let rib = actor.handle();
    let _source = bring_up(&rib, 2);
    let slow = bring_up(&rib, 3);
    churn(&rib).await;

    let pending = slow.pending();
    // Every prefix, and the End-of-RIB of the session's start.
    assert!(
        pending <= PREFIXES as usize + 1,
        "{pending} prefix changes pending for {PREFIXES} prefixes"
    );
    let mut taken = slow.take().unwrap();
    let mut advertised: BTreeMap<IpNet, u32> = BTreeMap::new();
    loop {
        let updates = taken.next_updates(100);
        if updates.is_empty() {
            break;
        }
        for update in updates {
            for nlri in update.withdrawn {
                advertised.remove(&nlri.prefix);
            }
            for nlri in update.nlri {
                // eBGP: MED is not passed on; the AS path shows the route's source.
                assert_eq!(
                    update.attributes.as_path.as_ref().unwrap().segments[0].asns,
                    vec![65000, 65002]
                );
                advertised.insert(nlri.prefix, 0);
            }
        }
    }
    let expected: BTreeMap<IpNet, u32> = (0..PREFIXES)
        .filter(|index| index % 2 == 1)
        .map(|index| (prefix(index), 0))
        .collect();
    assert_eq!(advertised, expected);
}

/// `count` prefixes from 11.0.0.0 up, in updates of 500 from peer 2.
fn many_announcements(count: u32) -> Vec<Update> {
    let template = announce(1);
    (0..count)
        .step_by(500)
        .map(|first| Update {
            nlri: (first..(first + 500).min(count))
                .map(|index| Nlri {
                    prefix: IpNet::new(
                        IpAddr::from(((11u32 << 24) + (index << 8)).to_be_bytes()),
                        24,
                    )
                    .unwrap(),
                    path_id: None,
                })
                .collect(),
            ..template.clone()
        })
        .collect()
}

#[tokio::test]
async fn a_watcher_is_served_ahead_of_the_updates_queued_before_it() {
    const COUNT: u32 = 1_000_000;
    let actor = spawn();
    let rib = actor.handle();
    let _peer = bring_up(&rib, 2);
    // About a second of RIB work, queued at once (no permits), then a watcher.
    for update in many_announcements(COUNT) {
        rib.send(RibCommand::Receive {
            id: PeerId(2),
            updates: vec![update],
            _permit: None,
        });
    }
    let watch = rib.watch();
    let mut seen: std::collections::HashSet<IpNet> = std::collections::HashSet::new();
    let mut snapshot = None;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while seen.len() < COUNT as usize {
        let chunk = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("only {} prefixes after 120 s", seen.len()))
            .unwrap();
        seen.extend(chunk.events.iter().map(|event| event.prefix));
        if chunk.snapshot_done {
            snapshot = Some(seen.len());
        }
    }
    // Registered (and its snapshot taken) before the queued updates were all applied; every
    // prefix still arrives, as a change after the snapshot.
    let snapshot = snapshot.unwrap();
    assert!(snapshot < COUNT as usize, "snapshot of {snapshot} prefixes");
    assert_eq!(seen.len(), COUNT as usize);
}
