//! Tests of the next-hop messages and table (no I/O).

use super::*;

fn hop(gateway: &str, interface: u32, onlink: bool) -> Hop {
    Hop {
        gateway: gateway.parse().unwrap(),
        interface,
        onlink,
    }
}

/// A kernel answer: the request's payload with the id the kernel gave it.
fn answer(request: &NexthopRequest, id: u32) -> Vec<u8> {
    let mut payload = request.payload();
    put_attribute(&mut payload, NHA_ID, &id.to_ne_bytes());
    payload
}

#[test]
fn a_single_next_hop_is_written_as_ip_nexthop_add_writes_it() {
    let request = NexthopRequest::NewSingle(hop("10.99.7.7", 3, true));
    assert_eq!(request.message_type(), RTM_NEWNEXTHOP);
    let mut expected = vec![AF_INET, 0, ROUTE_PROTOCOL, 0];
    expected.extend_from_slice(&4u32.to_ne_bytes());
    expected.extend_from_slice(&8u16.to_ne_bytes());
    expected.extend_from_slice(&NHA_OIF.to_ne_bytes());
    expected.extend_from_slice(&3u32.to_ne_bytes());
    expected.extend_from_slice(&8u16.to_ne_bytes());
    expected.extend_from_slice(&NHA_GATEWAY.to_ne_bytes());
    expected.extend_from_slice(&[10, 99, 7, 7]);
    assert_eq!(request.payload(), expected);
}

#[test]
fn answers_read_back_as_the_objects_that_were_asked_for() {
    let single = hop("fd00::1", 7, false);
    let listed = parse_nexthop(&answer(&NexthopRequest::NewSingle(single), 41)).unwrap();
    assert_eq!(
        listed,
        ListedNexthop {
            id: 41,
            protocol: ROUTE_PROTOCOL,
            kind: NexthopKind::Single(single),
        }
    );
    let listed = parse_nexthop(&answer(&NexthopRequest::NewGroup(&[41, 42]), 43)).unwrap();
    assert_eq!(listed.kind, NexthopKind::Group(vec![41, 42]));
    assert!(matches(
        &listed,
        &[single, hop("fd00::2", 7, false)],
        &[42, 41]
    ));
    assert!(!matches(
        &listed,
        &[single, hop("fd00::2", 7, false)],
        &[41, 44]
    ));
    // Another owner's object with the same shape is not manul's.
    let mut foreign = answer(&NexthopRequest::NewSingle(single), 50);
    foreign[2] = 4;
    let foreign = parse_nexthop(&foreign).unwrap();
    assert!(!matches(&foreign, &[single], &[]));
    assert!(matches(
        &parse_nexthop(&answer(&NexthopRequest::NewSingle(single), 50)).unwrap(),
        &[single],
        &[]
    ));
}

#[test]
fn malformed_answers_are_refused_without_panicking() {
    let good = answer(&NexthopRequest::NewSingle(hop("10.0.0.1", 2, false)), 9);
    for end in 0..good.len() {
        // Any cut either parses to something or to nothing; it never panics.
        let _ = parse_nexthop(&good[..end]);
    }
    assert_eq!(parse_nexthop(&good[..NHMSG_LENGTH]), None, "no id");
    let mut blackhole = NexthopRequest::Get(0).payload()[..NHMSG_LENGTH].to_vec();
    put_attribute(&mut blackhole, NHA_BLACKHOLE, &[]);
    put_attribute(&mut blackhole, NHA_ID, &5u32.to_ne_bytes());
    assert_eq!(parse_nexthop(&blackhole).unwrap().kind, NexthopKind::Other);
    // An attribute claiming more than the message holds ends the parse.
    let mut lying = good.clone();
    lying[NHMSG_LENGTH] = 200;
    assert_eq!(parse_nexthop(&lying), None);
}

fn listed(id: u32, protocol: u8, kind: NexthopKind) -> ListedNexthop {
    ListedNexthop { id, protocol, kind }
}

#[test]
fn a_restart_adopts_manuls_objects_and_leaves_the_others() {
    let (a, b) = (hop("10.0.0.1", 2, false), hop("10.0.0.2", 2, false));
    let listing = vec![
        listed(1, ROUTE_PROTOCOL, NexthopKind::Single(a)),
        listed(2, ROUTE_PROTOCOL, NexthopKind::Single(b)),
        listed(3, ROUTE_PROTOCOL, NexthopKind::Group(vec![2, 1])),
        listed(4, 4, NexthopKind::Single(hop("10.0.0.3", 2, false))),
        // A second object of manul's for a set it already has (two earlier runs): not taken.
        listed(5, ROUTE_PROTOCOL, NexthopKind::Single(a)),
    ];
    let mut table = NexthopTable::default();
    table.adopt(&listing);
    assert_eq!(table.get(&[a]), Some((1, &[][..])));
    assert_eq!(table.get(&[b]), Some((2, &[][..])));
    assert_eq!(table.get(&[a, b]), Some((3, &[1, 2][..])));
    assert_eq!(table.get(&[hop("10.0.0.3", 2, false)]), None);
    assert_eq!(table.entries.len(), 3);
}

#[test]
fn only_manuls_objects_that_nothing_names_are_deleted_groups_first() {
    let (a, b, c) = (
        hop("10.0.0.1", 2, false),
        hop("10.0.0.2", 2, false),
        hop("10.0.0.3", 2, false),
    );
    let listing = vec![
        listed(1, ROUTE_PROTOCOL, NexthopKind::Single(a)),
        listed(2, ROUTE_PROTOCOL, NexthopKind::Single(b)),
        listed(3, ROUTE_PROTOCOL, NexthopKind::Group(vec![1, 2])),
        listed(4, ROUTE_PROTOCOL, NexthopKind::Single(c)),
        listed(
            6,
            ROUTE_PROTOCOL,
            NexthopKind::Single(hop("10.0.0.6", 2, false)),
        ),
        listed(
            7,
            ROUTE_PROTOCOL,
            NexthopKind::Single(hop("10.0.0.7", 2, false)),
        ),
        // Another owner's object, named by nothing of manul's, and its group naming 7.
        listed(8, 4, NexthopKind::Single(hop("10.0.0.8", 2, false))),
        listed(9, 4, NexthopKind::Group(vec![7, 8])),
    ];
    let mut table = NexthopTable::default();
    table.adopt(&listing);
    let since = table.generation();
    // A batch answered after the dump began named c: its route may be missing from the dump.
    table.mark_used([&vec![c]]);
    let referenced: HashSet<u32> = [6].into();
    let doomed = table.unused(&listing, &referenced, since);
    // The unnamed group and then its members; 4 (used since), 6 (named), 7 (in another
    // owner's group), 8 and 9 (not manul's) stay.
    assert_eq!(doomed, vec![3, 1, 2]);
    assert_eq!(table.get(&[a, b]), None);
    assert_eq!(table.get(&[a]), None);
    assert_eq!(table.get(&[c]), Some((4, &[][..])));

    // A member of a group a route names stays with its group.
    let mut table = NexthopTable::default();
    table.adopt(&listing);
    let since = table.generation();
    let doomed = table.unused(&listing, &[3].into(), since);
    assert_eq!(doomed, vec![4, 6]);
}

#[test]
fn a_link_without_carrier_takes_its_objects_and_the_groups_it_is_in_from_the_table() {
    let (a, b, c) = (
        hop("10.0.0.1", 2, false),
        hop("10.0.0.2", 3, false),
        hop("10.0.0.3", 4, false),
    );
    let mut table = NexthopTable::default();
    table.insert(vec![a], 1, Vec::new());
    table.insert(vec![b], 2, Vec::new());
    table.insert(vec![c], 3, Vec::new());
    table.insert(vec![a, b], 4, vec![1, 2]);
    assert!(!table.forget_interfaces(&[9]), "no object on interface 9");
    assert!(table.forget_interfaces(&[3]));
    assert_eq!(table.get(&[b]), None);
    assert_eq!(
        table.get(&[a, b]),
        None,
        "the kernel took b out of the group"
    );
    assert_eq!(table.get(&[a]), Some((1, &[][..])));
    assert!(table.forget_ids(&[3]));
    assert!(!table.forget_ids(&[3]));
    assert_eq!(table.get(&[c]), None);
}
