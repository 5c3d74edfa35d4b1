//! apply -> get round trips through the real binary for every kind, in both API groups
//! (projectcalico.org/v3 as a Calico operator writes it, and manul.dev/v1), against an
//! embedded store and a real etcd member: what `get -o json` returns is the applied document
//! with manul's apiVersion and a resourceVersion, spec for spec. `delete -f` removes them all.

mod support;

use serde::Deserialize;
use serde_json::Value;
use support::{Fixture, data, show};

fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("valid YAML"))
        .collect()
}

fn cli_kind(kind: &str) -> &'static str {
    match kind {
        "IPPool" => "ippool",
        "IPAMConfiguration" => "ipamconfig",
        "Node" => "node",
        "BGPPeer" => "bgppeer",
        "BGPConfiguration" => "bgpconfig",
        "WorkloadEndpoint" => "wep",
        other => panic!("unexpected kind {other}"),
    }
}

fn applied_documents_come_back_unchanged(fixture: &Fixture, api_version: &str) {
    let text = std::fs::read_to_string(data("data/all-kinds.yaml"))
        .expect("read all-kinds.yaml")
        .replace(
            "apiVersion: projectcalico.org/v3",
            &format!("apiVersion: {api_version}"),
        );
    let file = fixture
        .dir
        .path()
        .join(format!("{}.yaml", api_version.replace('/', "-")));
    std::fs::write(&file, &text).expect("write the documents");
    let file = file.to_str().expect("a UTF-8 path");
    let summary = fixture.ok(&["apply", "-f", file]);
    assert!(
        summary.contains("Successfully applied 8 resource(s)"),
        "{summary}"
    );

    let kinds: std::collections::BTreeSet<&str> = documents(&text)
        .iter()
        .map(|document| cli_kind(document["kind"].as_str().expect("a kind")))
        .collect();
    assert_eq!(kinds.len(), 6, "every kind is in all-kinds.yaml");
    for expected in documents(&text) {
        assert_eq!(expected["apiVersion"], api_version);
        let kind = expected["kind"].as_str().expect("a kind");
        let name = expected["metadata"]["name"].as_str().expect("a name");
        let got: Value =
            serde_json::from_str(&fixture.ok(&["get", cli_kind(kind), name, "-o", "json"]))
                .expect("get -o json prints JSON");
        assert_eq!(got["apiVersion"], "manul.dev/v1", "{kind} {name}");
        assert_eq!(got["kind"], kind);
        assert_eq!(got["metadata"]["name"], name);
        assert_eq!(
            got["metadata"]["labels"], expected["metadata"]["labels"],
            "{kind} {name}"
        );
        assert_eq!(
            got["metadata"]["annotations"], expected["metadata"]["annotations"],
            "{kind} {name}"
        );
        for field in ["uid", "creationTimestamp"] {
            assert!(
                got["metadata"][field]
                    .as_str()
                    .is_some_and(|v| !v.is_empty()),
                "{kind} {name} has no {field}: {got}"
            );
        }
        assert_eq!(
            got["metadata"]["namespace"],
            expected["metadata"]["namespace"]
        );
        assert!(
            got["metadata"]["resourceVersion"]
                .as_str()
                .is_some_and(|rv| !rv.is_empty()),
            "{kind} {name} has no resourceVersion: {got}"
        );
        assert_eq!(got["spec"], expected["spec"], "{kind} {name}");
    }

    let summary = fixture.ok(&["delete", "-f", file]);
    assert!(
        summary.contains("Successfully deleted 8 resource(s)"),
        "{summary}"
    );
    for expected in documents(&text) {
        let kind = cli_kind(expected["kind"].as_str().expect("a kind"));
        let name = expected["metadata"]["name"].as_str().expect("a name");
        let output = fixture.run(&["get", kind, name]);
        assert!(
            !output.status.success(),
            "{kind} {name} survived delete:\n{}",
            show(&output)
        );
    }
}

fn every_kind_round_trips_in_both_api_groups(fixture: Fixture) {
    applied_documents_come_back_unchanged(&fixture, "projectcalico.org/v3");
    applied_documents_come_back_unchanged(&fixture, "manul.dev/v1");
}

#[test]
fn every_kind_round_trips_in_both_api_groups_on_the_embedded_store() {
    every_kind_round_trips_in_both_api_groups(Fixture::embedded());
}

#[test]
fn every_kind_round_trips_in_both_api_groups_on_etcd() {
    every_kind_round_trips_in_both_api_groups(Fixture::etcd());
}

/// `get -o yaml` of a list is a document `apply`/`replace` take back as it is (the Calico
/// workflow: get, edit, replace); replaying it once its resourceVersions are stale fails.
fn a_listing_replaces_and_then_is_stale(fixture: Fixture) {
    fixture.apply(&data("data/all-kinds.yaml"));
    let listing = fixture.ok(&["get", "ippools", "-o", "yaml"]);
    assert!(listing.contains("kind: IPPoolList"), "{listing}");
    let edited = listing.replace("natOutgoing: true", "natOutgoing: false");
    assert_ne!(edited, listing);
    let output = fixture.run_with_input(&["replace", "-f", "-"], &edited);
    assert!(output.status.success(), "{}", show(&output));
    let pool: Value =
        serde_json::from_str(&fixture.ok(&["get", "ippool", "pool-v4", "-o", "json"]))
            .expect("JSON");
    assert_eq!(pool["spec"].get("natOutgoing"), None, "{pool}");

    let before = fixture.dump();
    let output = fixture.run_with_input(&["replace", "-f", "-"], &edited);
    assert!(
        !output.status.success(),
        "a stale replace succeeded:\n{}",
        show(&output)
    );
    let message = support::stderr(&output);
    assert!(
        message.contains("IPPool \"pool-v4\" has changed since resourceVersion"),
        "{message}"
    );
    assert_eq!(before, fixture.dump(), "a stale replace changed the store");
}

#[test]
fn a_listing_replaces_and_then_is_stale_on_the_embedded_store() {
    a_listing_replaces_and_then_is_stale(Fixture::embedded());
}

#[test]
fn a_listing_replaces_and_then_is_stale_on_etcd() {
    a_listing_replaces_and_then_is_stale(Fixture::etcd());
}
