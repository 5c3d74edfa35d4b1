//! The verbs through the real binary on an embedded store in a temporary file: create (and
//! --skip-exists), delete by name, get of missing names and custom columns, patch, label,
//! validate, pools going through manul-ipam's pool index, ipam show/check/release/configure,
//! version, completion, the config file and environment, and the message when the agent
//! holds the store.

mod support;

use manul_store::{AllocationAttribute, DatastoreExt, IpPoolIndex, IpamBlock, open_datastore};
use serde_json::Value;
use support::{Fixture, data, show, stderr};

fn fails_with(fixture: &Fixture, args: &[&str], fragment: &str) {
    let before = fixture.dump();
    let output = fixture.run(args);
    assert!(
        !output.status.success(),
        "manulctl {args:?} succeeded:\n{}",
        show(&output)
    );
    assert!(
        stderr(&output).contains(fragment),
        "manulctl {args:?}: expected {fragment:?} in\n{}",
        show(&output)
    );
    assert_eq!(
        before,
        fixture.dump(),
        "manulctl {args:?} changed the store"
    );
}

fn get_json(fixture: &Fixture, kind: &str, name: &str) -> Value {
    serde_json::from_str(&fixture.ok(&["get", kind, name, "-o", "json"])).expect("JSON")
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

#[test]
fn create_refuses_existing_names_unless_told_to_skip_them() {
    let fixture = Fixture::embedded();
    let file = data("data/baseline.yaml");
    let file = file.to_str().unwrap();
    let out = fixture.ok(&["create", "-f", file]);
    assert!(out.contains("Successfully created 3 resource(s)"), "{out}");
    fails_with(
        &fixture,
        &["create", "-f", file],
        "IPPool \"default-ipv4-ippool\" already exists; use `manulctl apply` or `manulctl replace`",
    );
    let out = fixture.ok(&["create", "--skip-exists", "-f", file]);
    assert!(
        out.contains("Successfully created 0 resource(s) (3 skipped: they exist)"),
        "{out}"
    );
}

#[test]
fn pools_are_created_and_deleted_through_the_pool_index() {
    let fixture = Fixture::embedded();
    fixture.apply(&data("data/baseline.yaml"));
    let index = || {
        block_on(async {
            let store = open_datastore(&fixture.url).unwrap();
            store
                .get_resource::<IpPoolIndex>(IpPoolIndex::NAME)
                .await
                .unwrap()
                .map(|index| index.value.pools)
                .unwrap_or_default()
        })
    };
    assert_eq!(
        index()
            .get("default-ipv4-ippool")
            .map(|cidr| cidr.to_string()),
        Some("192.168.0.0/16".to_string())
    );
    let out = fixture.ok(&["delete", "ippool", "default-ipv4-ippool"]);
    assert!(
        out.contains("Successfully deleted 1 'IPPool' resource(s)"),
        "{out}"
    );
    assert!(index().is_empty(), "the index kept {:?}", index());
    fails_with(
        &fixture,
        &["delete", "pool", "default-ipv4-ippool"],
        "IPPool \"default-ipv4-ippool\" does not exist; `manulctl get ippool` lists what does",
    );
    let out = fixture.ok(&[
        "delete",
        "--skip-not-exists",
        "pools",
        "default-ipv4-ippool",
    ]);
    assert!(out.contains("(1 did not exist)"), "{out}");
}

#[test]
fn get_prints_what_exists_and_fails_naming_what_does_not() {
    let fixture = Fixture::embedded();
    fixture.apply(&data("data/baseline.yaml"));
    let output = fixture.run(&["get", "node", "node-1", "node-7"]);
    assert!(!output.status.success(), "{}", show(&output));
    assert!(
        support::stdout(&output).contains("node-1"),
        "{}",
        show(&output)
    );
    assert!(
        stderr(&output).contains("Node \"node-7\" not found"),
        "{}",
        show(&output)
    );
    fails_with(&fixture, &["get", "pods"], "unknown resource kind \"pods\"");
    fails_with(
        &fixture,
        &["get", "ippool", "-o", "table"],
        "unknown output format",
    );
}

#[test]
fn patch_merges_checks_the_result_and_keeps_what_cannot_change() {
    let fixture = Fixture::embedded();
    fixture.apply(&data("data/baseline.yaml"));
    let out = fixture.ok(&[
        "patch",
        "ippool",
        "default-ipv4-ippool",
        "-p",
        r#"{"spec":{"natOutgoing":true,"vxlanMode":"Always"}}"#,
    ]);
    assert!(
        out.contains("Successfully patched 1 'IPPool' resource"),
        "{out}"
    );
    let pool = get_json(&fixture, "ippool", "default-ipv4-ippool");
    assert_eq!(pool["spec"]["natOutgoing"], true);
    assert_eq!(pool["spec"]["vxlanMode"], "Always");
    let patch = |json: &'static str| ["patch", "ippool", "default-ipv4-ippool", "-p", json];
    fails_with(
        &fixture,
        &patch(r#"{"spec":{"vxlanMode":"Sometimes"}}"#),
        "spec.vxlanMode: \"Sometimes\" is not a mode",
    );
    fails_with(
        &fixture,
        &patch(r#"{"spec":{"cidr":"10.1.0.0/16"}}"#),
        "spec.cidr: a pool's CIDR cannot change",
    );
    fails_with(
        &fixture,
        &patch(r#"{"metadata":{"name":"other"}}"#),
        "metadata.name: a patch cannot change what it patches",
    );
    fails_with(
        &fixture,
        &patch(r#"{"metadata":{"resourceVersion":"999999"},"spec":{"disabled":true}}"#),
        "has changed since resourceVersion 999999",
    );
    fails_with(&fixture, &patch("{spec}"), "-p: not valid JSON");
    let node_patch = r#"{"spec":{"bgp":{"asNumber":64999}},"metadata":{"labels":{"rack":null}}}"#;
    fixture.ok(&["patch", "node", "node-1", "-p", node_patch]);
    let node = get_json(&fixture, "node", "node-1");
    assert_eq!(node["spec"]["bgp"]["asNumber"], 64999);
    assert_eq!(node["spec"]["bgp"]["ipv4Address"], "10.0.0.1/24");
    assert_eq!(node["metadata"].get("labels"), None, "{node}");
}

#[test]
fn label_sets_overwrites_only_when_told_and_removes() {
    let fixture = Fixture::embedded();
    fixture.apply(&data("data/baseline.yaml"));
    fixture.ok(&["label", "nodes", "node-1", "zone=z1"]);
    fails_with(
        &fixture,
        &["label", "node", "node-1", "rack=b"],
        "metadata.labels.rack: is \"a\" already; add --overwrite",
    );
    fixture.ok(&["label", "node", "node-1", "rack=b", "--overwrite"]);
    let node = get_json(&fixture, "node", "node-1");
    assert_eq!(node["metadata"]["labels"]["rack"], "b");
    assert_eq!(node["metadata"]["labels"]["zone"], "z1");
    fixture.ok(&["label", "node", "node-1", "rack-"]);
    let node = get_json(&fixture, "node", "node-1");
    assert_eq!(node["metadata"]["labels"].get("rack"), None, "{node}");
    fails_with(
        &fixture,
        &["label", "node", "node-1", "rack-"],
        "metadata.labels.rack: is not set",
    );
    fails_with(
        &fixture,
        &["label", "node", "node-1", "bad key=x"],
        "metadata.labels.bad key",
    );
    fixture.ok(&["label", "ippool", "default-ipv4-ippool", "team=a"]);
    let pool = get_json(&fixture, "ippool", "default-ipv4-ippool");
    assert_eq!(pool["metadata"]["labels"]["team"], "a", "{pool}");
}

#[test]
fn validate_checks_documents_without_a_datastore() {
    let fixture = Fixture::embedded();
    let out = fixture.ok(&[
        "validate",
        "-f",
        data("data/all-kinds.yaml").to_str().unwrap(),
    ]);
    assert!(out.contains("IPPool \"pool-v4\" is valid"), "{out}");
    assert!(
        out.contains("Successfully validated 8 resource(s)"),
        "{out}"
    );
    let output = fixture.run(&[
        "validate",
        "-f",
        data("bad/pool-block-size-v4.yaml").to_str().unwrap(),
    ]);
    assert!(!output.status.success(), "{}", show(&output));
    assert!(
        stderr(&output).contains("spec.blockSize: 19"),
        "{}",
        show(&output)
    );
    assert!(
        !fixture.dir.path().join("store.redb").exists(),
        "validate created the store"
    );
}

#[test]
fn ipam_show_counts_addresses_and_check_finds_a_planted_problem() {
    let fixture = Fixture::embedded();
    fixture.apply(&data("data/baseline.yaml"));
    // An address of block 192.168.5.0/26 owned by a handle that does not exist.
    block_on(async {
        let store = open_datastore(&fixture.url).unwrap();
        let cidr = "192.168.5.0/26".parse().unwrap();
        let mut block = manul_ipam::block::new_block(cidr, None, false);
        block.attributes.push(AllocationAttribute {
            handle_id: Some("k8s-pod-network.gone".into()),
            secondary: [("pod".to_string(), "web-0".to_string())].into(),
        });
        block.allocations[3] = Some(0);
        block.unallocated.retain(|ordinal| *ordinal != 3);
        store.create_resource::<IpamBlock>(&block).await.unwrap();
    });
    let out = fixture.ok(&["ipam", "show", "--show-blocks"]);
    assert!(
        out.contains("| IP Pool  | 192.168.0.0/16 | 65536     | 1 (0%)     | 65535 (99%) |"),
        "{out}"
    );
    assert!(
        out.contains("| Block    | 192.168.5.0/26 | 64        | 1 (1%)     | 63 (98%)    |"),
        "{out}"
    );
    let out = fixture.ok(&["ipam", "show", "--ip", "192.168.5.3"]);
    assert!(
        out.contains("IP 192.168.5.3 is in use (block 192.168.5.0/26)"),
        "{out}"
    );
    assert!(
        out.contains("handle: k8s-pod-network.gone") && out.contains("pod: web-0"),
        "{out}"
    );
    let out = fixture.ok(&["ipam", "show", "--ip", "192.168.5.4"]);
    assert!(
        out.contains("is not assigned (pool \"default-ipv4-ippool\")"),
        "{out}"
    );
    let output = fixture.run(&["ipam", "check"]);
    assert!(!output.status.success(), "{}", show(&output));
    assert!(
        support::stdout(&output)
            .contains("belong to handle \"k8s-pod-network.gone\", which does not exist"),
        "{}",
        show(&output)
    );
    let out = fixture.ok(&["ipam", "release", "--ip", "192.168.5.3"]);
    assert!(
        out.contains("Successfully released IP address 192.168.5.3"),
        "{out}"
    );
    let out = fixture.ok(&["ipam", "check"]);
    assert!(out.contains("found 0 problem(s)"), "{out}");
    fails_with(
        &fixture,
        &["ipam", "release", "--ip", "192.168.5.3"],
        "not allocated, nothing released: 192.168.5.3",
    );
}

#[test]
fn ipam_configure_changes_only_the_settings_given() {
    let fixture = Fixture::embedded();
    fixture.ok(&["ipam", "configure", "--strictaffinity=true"]);
    fixture.ok(&["ipam", "configure", "--max-blocks-per-host", "8"]);
    let config = get_json(&fixture, "ipamconfig", "default");
    assert_eq!(config["spec"]["strictAffinity"], true, "{config}");
    assert_eq!(config["spec"]["maxBlocksPerHost"], 8, "{config}");
    assert_eq!(config["spec"]["autoAllocateBlocks"], true, "{config}");
    let out = fixture.ok(&["ipam", "show", "--show-configuration"]);
    assert!(out.contains("| StrictAffinity     | true  |"), "{out}");
    assert!(out.contains("| MaxBlocksPerHost   | 8     |"), "{out}");
    fails_with(&fixture, &["ipam", "configure"], "give --strictaffinity");
}

#[test]
fn custom_columns_pick_fields_of_the_documents() {
    let fixture = Fixture::embedded();
    fixture.apply(&data("data/all-kinds.yaml"));
    let out = fixture.ok(&[
        "get",
        "ippools",
        "-o",
        "custom-columns=NAME:.metadata.name,BLOCK:.spec.blockSize,NAT:.spec.natOutgoing",
    ]);
    assert_eq!(
        out,
        "NAME      BLOCK   NAT\npool-v4   26      true\npool-v6   122     <none>\n"
    );
    let out = fixture.ok(&[
        "get",
        "wep",
        "-o",
        "custom-columns=POD:.metadata.namespace,IP:.spec.ipNetworks[1]",
    ]);
    assert_eq!(out, "POD       IP\ndefault   fd00:10::7/128\n");
}

#[test]
fn the_datastore_comes_from_the_environment_or_the_config_file() {
    let fixture = Fixture::embedded();
    fixture.apply(&data("data/baseline.yaml"));
    let config = fixture.dir.path().join("other.yaml");
    std::fs::write(&config, format!("datastore: {}\n", fixture.url)).unwrap();
    let output = assert_cmd::Command::new(support::ctl_binary())
        .env_remove("MANUL_DATASTORE")
        .args(["--config", config.to_str().unwrap(), "get", "ippool"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", show(&output));
    assert!(
        support::stdout(&output).contains("default-ipv4-ippool"),
        "{}",
        show(&output)
    );
    let output = assert_cmd::Command::new(support::ctl_binary())
        .env("MANUL_DATASTORE", &fixture.url)
        .env("MANULCTL_CONFIG", fixture.dir.path().join("manulctl.yaml"))
        .args(["get", "nodes"])
        .output()
        .unwrap();
    assert!(
        support::stdout(&output).contains("node-1"),
        "{}",
        show(&output)
    );
    std::fs::write(&config, "datastor: x\n").unwrap();
    let output = assert_cmd::Command::new(support::ctl_binary())
        .args(["--config", config.to_str().unwrap(), "get", "ippool"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("datastor"), "{}", show(&output));
}

#[test]
fn a_store_held_by_another_process_is_named_with_what_to_do() {
    let fixture = Fixture::embedded();
    fixture.apply(&data("data/baseline.yaml"));
    let _held = open_datastore(&fixture.url).unwrap();
    let output = fixture.run(&["get", "ippool"]);
    assert!(!output.status.success(), "{}", show(&output));
    assert!(
        stderr(&output).contains("while manul-agent runs it holds the embedded store"),
        "{}",
        show(&output)
    );
    let missing = Fixture::embedded();
    let output = missing.run(&["get", "ippool"]);
    assert!(
        stderr(&output).contains("store.redb does not exist"),
        "{}",
        show(&output)
    );
}

#[test]
fn version_and_completion_need_no_datastore() {
    let fixture = Fixture::embedded();
    let out = fixture.ok(&["version"]);
    assert!(
        out.contains(&format!(
            "Client Version:    v{}",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    // Built from this checkout: the commit is git's short hash.
    let commit = out
        .lines()
        .find_map(|line| line.strip_prefix("Git commit:"))
        .map(str::trim)
        .unwrap_or_default();
    assert!(
        commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{out}"
    );
    // No agent answers: the cluster's version is unknown, its type the datastore's.
    assert!(
        out.contains("Cluster Version:   unknown (manul-agent does not answer on")
            && out.contains("Cluster Type:      embedded"),
        "{out}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = fixture.ok(&["completion", shell]);
        assert!(
            out.contains("manulctl") && out.contains("ipam"),
            "{shell}: {out}"
        );
    }
}
