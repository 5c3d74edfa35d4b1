//! Metadata kept in stored records, through the real binary on an embedded store and on a
//! real etcd member: create gives a uid (UUID v4) and a creationTimestamp (RFC 3339, UTC);
//! apply, replace, patch and label keep both; a document naming another uid is refused by
//! name and changes nothing; labels and annotations round-trip on every kind (IPPool and
//! BGPPeer here, which kept no labels before); a record in the shape older versions wrote
//! (no metadata, a Node's labels at the top level) reads, and gets its uid on its next write.

mod support;

use manul_store::Kind;
use serde_json::Value;
use support::{Fixture, show, stderr};

const POOL: &str = "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
  annotations:
    owner: team-a
spec:
  cidr: 10.30.0.0/16
";

const PEER: &str = "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 10.0.0.254
  asNumber: 65000
";

fn get(fixture: &Fixture, kind: &str, name: &str) -> Value {
    serde_json::from_str(&fixture.ok(&["get", kind, name, "-o", "json"])).expect("JSON")
}

/// (uid, creationTimestamp) of a document, both required.
fn identity(document: &Value) -> (String, String) {
    let uid = document["metadata"]["uid"].as_str().unwrap_or_default();
    let created = document["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or_default();
    let hex = uid.replace('-', "");
    assert!(
        uid.len() == 36 && hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "uid {uid:?} is not a UUID: {document}"
    );
    assert_eq!(&uid[14..15], "4", "uid {uid:?} is not a version 4 UUID");
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "creationTimestamp {created:?} is not RFC 3339 UTC: {document}"
    );
    (uid.to_string(), created.to_string())
}

fn apply_text(fixture: &Fixture, verb: &str, text: &str) -> std::process::Output {
    fixture.run_with_input(&[verb, "-f", "-"], text)
}

fn identity_is_given_at_create_and_kept(fixture: &Fixture) {
    let output = apply_text(fixture, "create", &format!("{POOL}---\n{PEER}"));
    assert!(output.status.success(), "{}", show(&output));
    let pool = get(fixture, "ippool", "pool-a");
    let pool_identity = identity(&pool);
    assert_eq!(pool["metadata"]["annotations"]["owner"], "team-a", "{pool}");
    let peer_identity = identity(&get(fixture, "bgppeer", "tor"));
    assert_ne!(pool_identity.0, peer_identity.0, "two objects, one uid");

    // apply (a changed spec, no uid), patch and label keep the identity.
    let changed = POOL.replace(
        "cidr: 10.30.0.0/16",
        "cidr: 10.30.0.0/16\n  natOutgoing: true",
    );
    let output = apply_text(fixture, "apply", &changed);
    assert!(output.status.success(), "{}", show(&output));
    fixture.ok(&[
        "patch",
        "ippool",
        "pool-a",
        "-p",
        r#"{"spec":{"disabled":true}}"#,
    ]);
    fixture.ok(&["label", "ippool", "pool-a", "team=a"]);
    fixture.ok(&["label", "bgppeer", "tor", "rack=r1"]);
    let pool = get(fixture, "ippool", "pool-a");
    assert_eq!(identity(&pool), pool_identity, "{pool}");
    assert_eq!(pool["spec"]["natOutgoing"], true);
    assert_eq!(pool["spec"]["disabled"], true);
    assert_eq!(pool["metadata"]["labels"]["team"], "a", "{pool}");
    let peer = get(fixture, "bgppeer", "tor");
    assert_eq!(identity(&peer), peer_identity, "{peer}");
    assert_eq!(peer["metadata"]["labels"]["rack"], "r1", "{peer}");
    assert!(
        fixture
            .ok(&["get", "bgppeer", "tor", "-o", "yaml"])
            .contains("rack: r1"),
        "labels show in -o yaml"
    );

    // A label removed is gone, and the identity stays.
    fixture.ok(&["label", "bgppeer", "tor", "rack-"]);
    let peer = get(fixture, "bgppeer", "tor");
    assert_eq!(peer["metadata"].get("labels"), None, "{peer}");
    assert_eq!(identity(&peer), peer_identity);

    // replace with what get printed (uid and creationTimestamp included) works; a
    // creationTimestamp given is ignored; a different uid is refused and changes nothing.
    let mut document = get(fixture, "ippool", "pool-a");
    document["metadata"]["creationTimestamp"] = "1999-01-01T00:00:00Z".into();
    let output = apply_text(fixture, "replace", &document.to_string());
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(identity(&get(fixture, "ippool", "pool-a")), pool_identity);
    let mut document = get(fixture, "ippool", "pool-a");
    document["metadata"]["uid"] = "00000000-0000-4000-8000-000000000000".into();
    let before = fixture.dump();
    for verb in ["replace", "apply"] {
        let output = apply_text(fixture, verb, &document.to_string());
        assert!(!output.status.success(), "{verb}: {}", show(&output));
        assert!(
            stderr(&output)
                .contains("metadata.uid: \"00000000-0000-4000-8000-000000000000\" is not the uid"),
            "{verb}: {}",
            show(&output)
        );
    }
    assert_eq!(before, fixture.dump(), "a refused uid changed the store");

    // Deleted and created again: a new identity.
    fixture.ok(&["delete", "bgppeer", "tor"]);
    let output = apply_text(fixture, "create", PEER);
    assert!(output.status.success(), "{}", show(&output));
    assert_ne!(identity(&get(fixture, "bgppeer", "tor")), peer_identity);
}

fn old_records_read_and_get_an_identity_on_their_next_write(fixture: &Fixture) {
    fixture.put_raw(
        Kind::IPPool,
        "old-pool",
        r#"{"name":"old-pool","cidr":"10.40.0.0/16","blockSize":26,"nodeSelector":"all()","vxlanMode":"Never","ipipMode":"Never"}"#,
    );
    fixture.put_raw(
        Kind::Node,
        "old-node",
        r#"{"name":"old-node","labels":{"rack":"r9"},"bgp":{"ipv4Address":"10.0.0.9/24"}}"#,
    );
    let pool = get(fixture, "ippool", "old-pool");
    assert_eq!(pool["spec"]["cidr"], "10.40.0.0/16");
    assert_eq!(pool["metadata"].get("uid"), None, "{pool}");
    let node = get(fixture, "node", "old-node");
    assert_eq!(
        node["metadata"]["labels"]["rack"], "r9",
        "old labels read: {node}"
    );
    assert_eq!(node["metadata"].get("creationTimestamp"), None, "{node}");

    fixture.ok(&["label", "ippool", "old-pool", "migrated=yes"]);
    fixture.ok(&["label", "node", "old-node", "migrated=yes"]);
    let pool = get(fixture, "ippool", "old-pool");
    identity(&pool);
    assert_eq!(pool["metadata"]["labels"]["migrated"], "yes");
    let node = get(fixture, "node", "old-node");
    identity(&node);
    assert_eq!(node["metadata"]["labels"]["rack"], "r9", "{node}");
    assert_eq!(node["metadata"]["labels"]["migrated"], "yes", "{node}");
    assert_eq!(node["spec"]["bgp"]["ipv4Address"], "10.0.0.9/24");
}

#[test]
fn identity_is_given_at_create_and_kept_on_the_embedded_store() {
    identity_is_given_at_create_and_kept(&Fixture::embedded());
}

#[test]
fn identity_is_given_at_create_and_kept_on_etcd() {
    identity_is_given_at_create_and_kept(&Fixture::etcd());
}

#[test]
fn old_records_read_and_get_an_identity_on_their_next_write_on_the_embedded_store() {
    old_records_read_and_get_an_identity_on_their_next_write(&Fixture::embedded());
}

#[test]
fn old_records_read_and_get_an_identity_on_their_next_write_on_etcd() {
    old_records_read_and_get_an_identity_on_their_next_write(&Fixture::etcd());
}
