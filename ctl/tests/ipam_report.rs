//! `ipam check` against an embedded store with one planted inconsistency of each kind the
//! issue names: allocations without a live endpoint (two), an endpoint without an allocation,
//! a block whose affinity names a missing node, a handle that disagrees with its block. The
//! check finds each one (exit 1, the JSON report, --show-problem-ips); `release
//! --from-report` releases the leak and skips the address that became used since the report;
//! once the others are repaired a second check is clean. `ipam show --show-borrowed` lists
//! the address a node borrowed from another's block.

mod support;

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use manul_ipam::{AssignIpRequest, Ipam};
use manul_store::{
    AffinityState, BlockAffinity, Datastore, DatastoreExt, IpamHandle, WorkloadEndpoint,
    open_datastore,
};
use serde_json::Value;
use support::{Fixture, data, show, stdout};

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn endpoint(node: &str, container: &str, handle: &str, address: &str) -> WorkloadEndpoint {
    WorkloadEndpoint {
        metadata: Default::default(),
        name: WorkloadEndpoint::name_for(node, container, "eth0"),
        node: node.into(),
        orchestrator: "k8s".into(),
        namespace: "default".into(),
        pod: container.into(),
        container_id: container.into(),
        endpoint: "eth0".into(),
        interface_name: "cali0123456789a".into(),
        mac: "ee:ee:ee:ee:ee:ee".into(),
        ip_networks: vec![format!("{address}/32").parse().unwrap()],
        ipam_handle: handle.into(),
        netns: String::new(),
        network: "k8s-pod-network".into(),
    }
}

async fn assign(ipam: &Ipam, address: &str, handle: &str, node: &str) {
    let address: IpAddr = address.parse().unwrap();
    ipam.assign_ip(&AssignIpRequest {
        address,
        handle_id: handle.into(),
        node: node.into(),
        attributes: BTreeMap::from([
            ("node".to_string(), node.to_string()),
            ("namespace".to_string(), "default".to_string()),
            ("pod".to_string(), handle.to_string()),
        ]),
    })
    .await
    .unwrap();
}

/// The planted store: see the module comment. node-1 owns 192.168.5.0/26.
fn plant(fixture: &Fixture) -> Arc<dyn Datastore> {
    let store = open_datastore(&fixture.url).unwrap();
    block_on(async {
        let ipam = Ipam::new(store.clone());
        store
            .create_resource(&manul_store::Node {
                name: "node-2".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        // Leaked: no endpoint holds "gone" or (for now) "reused".
        assign(&ipam, "192.168.5.3", "gone", "node-1").await;
        assign(&ipam, "192.168.5.4", "reused", "node-1").await;
        // Sound: node-2's pod borrowed an address of node-1's block.
        assign(&ipam, "192.168.5.6", "borrower", "node-2").await;
        store
            .create_resource(&endpoint("node-2", "borrower", "borrower", "192.168.5.6"))
            .await
            .unwrap();
        // A handle that disagrees with its block: the pod's handle record is gone.
        assign(&ipam, "192.168.5.7", "under", "node-1").await;
        store
            .create_resource(&endpoint("node-1", "under", "under", "192.168.5.7"))
            .await
            .unwrap();
        let handle = store
            .get_resource::<IpamHandle>("under")
            .await
            .unwrap()
            .unwrap();
        store
            .delete_resource::<IpamHandle>("under", &handle.revision)
            .await
            .unwrap();
        // An endpoint whose address no block attributes to its handle.
        store
            .create_resource(&endpoint("node-1", "orphan", "orphan", "192.168.5.40"))
            .await
            .unwrap();
        // A block (and affinity) of a node that does not exist.
        let cidr = "192.168.6.0/26".parse().unwrap();
        store
            .create_resource(&manul_ipam::block::new_block(
                cidr,
                Some("host:ghost".into()),
                false,
            ))
            .await
            .unwrap();
        store
            .create_resource(&BlockAffinity {
                node: "ghost".into(),
                cidr,
                state: AffinityState::Confirmed,
                deleted: false,
            })
            .await
            .unwrap();
    });
    store
}

#[test]
fn check_finds_each_planted_inconsistency_and_release_from_report_fixes_the_leak() {
    let fixture = Fixture::embedded();
    fixture.apply(&data("data/baseline.yaml"));
    let store = plant(&fixture);
    drop(store);

    let report_path = fixture.dir.path().join("report.json");
    let report_arg = report_path.to_str().unwrap();
    let output = fixture.run(&["ipam", "check", "--show-problem-ips", "-o", report_arg]);
    let out = stdout(&output);
    assert!(!output.status.success(), "{}", show(&output));
    for line in [
        "Allocations without a live endpoint: 2",
        "Endpoints without an allocation: 1",
        "Blocks whose affinity names a missing node: 1",
        "Handles that disagree with blocks: 1",
        "leaked 192.168.5.3 (handle \"gone\", block 192.168.5.0/26, node node-1): no \
         WorkloadEndpoint holds handle \"gone\"",
        "lists 192.168.5.40, which no block attributes to handle \"orphan\"",
        "block 192.168.6.0/26 has affinity to node \"ghost\", which does not exist",
        "handle \"under\" counts 0 address(es) in block 192-168-5-0-26, which attributes 1 to it",
        "Check complete; found 5 problem(s)",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{}", show(&output));
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["kind"], "IPAMCheckReport");
    let leaked: Vec<(&str, &str)> = report["leakedAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|leak| {
            (
                leak["address"].as_str().unwrap(),
                leak["handle"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(leaked, [("192.168.5.3", "gone"), ("192.168.5.4", "reused")]);
    assert_eq!(
        report["endpointsWithoutAllocation"][0]["address"],
        "192.168.5.40"
    );
    assert_eq!(report["blocksOfMissingNodes"][0]["node"], "ghost");
    assert_eq!(report["handleMismatches"][0]["handle"], "under");
    assert_eq!(report["counts"]["problems"], 5);

    // .6 is node-2's, borrowed from node-1's block.
    let borrowed = fixture.ok(&["ipam", "show", "--show-borrowed"]);
    assert!(
        borrowed.contains(
            "| 192.168.5.6 | node-2         | 192.168.5.0/26 | node-1      | pod  | default/borrower |"
        ),
        "{borrowed}"
    );
    assert_eq!(borrowed.lines().count(), 5, "{borrowed}");

    // .4 is in use since the report: a pod's endpoint now holds it.
    let store = open_datastore(&fixture.url).unwrap();
    block_on(store.create_resource(&endpoint("node-1", "reused", "reused", "192.168.5.4")))
        .unwrap();
    drop(store);
    let out = fixture.ok(&["ipam", "release", "--from-report", report_arg]);
    assert!(
        out.contains("Released 192.168.5.3 (handle \"gone\")"),
        "{out}"
    );
    assert!(out.contains("Skipped 192.168.5.4"), "{out}");
    assert!(
        out.contains("Released 1 leaked address(es) of 2; skipped 1."),
        "{out}"
    );
    let out = fixture.ok(&["ipam", "show", "--ip", "192.168.5.4"]);
    assert!(out.contains("IP 192.168.5.4 is in use"), "{out}");
    let out = fixture.ok(&["ipam", "show", "--ip", "192.168.5.3"]);
    assert!(out.contains("is not assigned"), "{out}");

    // The other findings are repaired the way an operator would.
    let orphan = WorkloadEndpoint::name_for("node-1", "orphan", "eth0");
    fixture.ok(&["delete", "workloadendpoint", &orphan]);
    let ghost = fixture.dir.path().join("ghost.yaml");
    std::fs::write(
        &ghost,
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: ghost\nspec: {}\n",
    )
    .unwrap();
    fixture.apply(&ghost);
    let store = open_datastore(&fixture.url).unwrap();
    block_on(store.create_resource(&IpamHandle {
        handle_id: "under".into(),
        block: BTreeMap::from([("192-168-5-0-26".to_string(), 1)]),
        deleted: false,
    }))
    .unwrap();
    drop(store);
    let out = fixture.ok(&["ipam", "check", "--show-problem-ips"]);
    assert!(
        out.contains("Check complete; found 0 problem(s) and 0 leftover(s)."),
        "{out}"
    );
}
