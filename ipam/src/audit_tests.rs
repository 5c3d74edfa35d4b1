//! Unit tests of the audit: one planted inconsistency per check, and a consistent snapshot
//! that is clean.

use std::collections::BTreeMap;

use manul_store::{IpamBlock, IpamHandle, Node, WorkloadEndpoint};

use super::*;
use crate::block::{allocate_ordinal, new_block};

fn block(cidr: &str, owner: &str) -> IpamBlock {
    new_block(cidr.parse().unwrap(), Some(format!("host:{owner}")), false)
}

fn allocate(block: &mut IpamBlock, ordinal: u32, handle: &str, node: &str) {
    let secondary = BTreeMap::from([
        ("node".to_string(), node.to_string()),
        ("namespace".to_string(), "ns".to_string()),
        ("pod".to_string(), handle.to_string()),
    ]);
    allocate_ordinal(block, ordinal, handle, &secondary).unwrap();
}

fn handle(id: &str, block: &str, count: u32) -> IpamHandle {
    IpamHandle {
        handle_id: id.into(),
        block: BTreeMap::from([(block.to_string(), count)]),
        deleted: false,
    }
}

fn endpoint(name: &str, node: &str, handle: &str, address: &str) -> WorkloadEndpoint {
    WorkloadEndpoint {
        name: name.into(),
        node: node.into(),
        ipam_handle: handle.into(),
        ip_networks: vec![address.parse().unwrap()],
        ..Default::default()
    }
}

fn node(name: &str) -> Node {
    Node {
        name: name.into(),
        ..Default::default()
    }
}

/// Node a owns 10.0.0.0/26 with pod p1 (.1) and a tunnel address (.0); node b borrowed .2.
fn consistent() -> IpamSnapshot {
    let mut b = block("10.0.0.0/26", "a");
    allocate(&mut b, 0, &vxlan_tunnel_handle_id("a"), "a");
    allocate(&mut b, 1, "p1", "a");
    allocate(&mut b, 2, "p2", "b");
    let mut node_a = node("a");
    node_a.ipv4_vxlan_tunnel_addr = Some("10.0.0.0".parse().unwrap());
    IpamSnapshot {
        blocks: vec![b],
        handles: vec![
            handle(&vxlan_tunnel_handle_id("a"), "10-0-0-0-26", 1),
            handle("p1", "10-0-0-0-26", 1),
            handle("p2", "10-0-0-0-26", 1),
        ],
        nodes: vec![node_a, node("b")],
        endpoints: vec![
            endpoint("e1", "a", "p1", "10.0.0.1/32"),
            endpoint("e2", "b", "p2", "10.0.0.2/32"),
        ],
    }
}

#[test]
fn a_consistent_snapshot_is_clean() {
    let audit = audit(&consistent());
    assert!(audit.is_clean(), "{audit:?}");
}

#[test]
fn an_allocation_without_endpoint_is_leaked_and_stays_so_only_for_its_handle() {
    let mut snapshot = consistent();
    snapshot.endpoints.remove(0);
    let audit = audit(&snapshot);
    assert_eq!(audit.leaked.len(), 1, "{audit:?}");
    let leak = &audit.leaked[0];
    assert_eq!(
        (leak.address, leak.handle.as_str(), leak.node.as_deref()),
        ("10.0.0.1".parse().unwrap(), "p1", Some("a"))
    );
    assert!(
        leak.reason.contains("no WorkloadEndpoint"),
        "{}",
        leak.reason
    );
    assert!(audit.still_leaked(leak.address, "p1").is_some());
    assert!(audit.still_leaked(leak.address, "p9").is_none());
}

#[test]
fn a_tunnel_address_of_a_missing_node_is_leaked() {
    let mut snapshot = consistent();
    snapshot.nodes[0].ipv4_vxlan_tunnel_addr = None;
    let audit_of_unrecorded = audit(&snapshot);
    assert_eq!(audit_of_unrecorded.leaked.len(), 1);
    snapshot.nodes.remove(0);
    let audit = audit(&snapshot);
    assert!(
        audit.leaked[0].reason.contains("does not exist"),
        "{audit:?}"
    );
    assert_eq!(audit.blocks_of_missing_nodes.len(), 1);
    assert_eq!(audit.blocks_of_missing_nodes[0].node, "a");
    assert_eq!(audit.blocks_of_missing_nodes[0].allocated, 3);
}

#[test]
fn an_endpoint_without_allocation_is_found() {
    let mut snapshot = consistent();
    snapshot
        .endpoints
        .push(endpoint("e3", "b", "p3", "10.0.0.9/32"));
    let audit = audit(&snapshot);
    assert_eq!(
        audit.endpoints_without_allocation,
        vec![EndpointWithoutAllocation {
            endpoint: "e3".into(),
            node: "b".into(),
            address: "10.0.0.9".parse().unwrap(),
            handle: "p3".into(),
        }]
    );
}

#[test]
fn handles_that_disagree_with_blocks_either_way_are_found() {
    let mut snapshot = consistent();
    snapshot.handles[1] = handle("p1", "10-0-0-0-26", 2);
    snapshot.handles.remove(2);
    let audit = audit(&snapshot);
    assert_eq!(
        audit.handle_mismatches,
        vec![
            HandleMismatch {
                handle: "p1".into(),
                block: "10-0-0-0-26".into(),
                counted: 2,
                held: 1
            },
            HandleMismatch {
                handle: "p2".into(),
                block: "10-0-0-0-26".into(),
                counted: 0,
                held: 1
            },
        ]
    );
}

#[test]
fn borrowed_addresses_name_the_borrower_and_the_owner() {
    let borrowed = borrowed(&consistent().blocks);
    assert_eq!(
        borrowed,
        vec![BorrowedAddress {
            address: "10.0.0.2".parse().unwrap(),
            borrowing_node: "b".into(),
            block: "10.0.0.0/26".parse().unwrap(),
            block_owner: "a".into(),
            handle: "p2".into(),
            workload: Some("ns/p2".into()),
        }]
    );
}
