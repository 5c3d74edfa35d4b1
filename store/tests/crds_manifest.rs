//! manifests/crds.yaml is exactly what `manul-crds` prints (the CRDs generated from the
//! record types), so a record change without a regenerated manifest fails here. No I/O but
//! reading that file.

#[test]
fn manifests_crds_yaml_is_the_generated_output() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds.yaml");
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = manul_store::kubernetes::crds::crds_yaml();
    assert!(
        written == generated,
        "{} differs from the CRDs generated from the record types; regenerate it with\n  \
         cargo run --release -p manul-store --bin manul-crds > manifests/crds.yaml",
        path.display()
    );
}

/// The agent's ClusterRole grants exactly the verbs the backend uses on every manul.dev kind
/// (and no kind it does not store).
#[test]
fn the_cluster_role_covers_exactly_the_custom_kinds() {
    use serde::Deserialize;

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/10-rbac.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let role = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| serde_json::Value::deserialize(document).unwrap())
        .find(|document| document["kind"] == "ClusterRole")
        .expect("10-rbac.yaml has no ClusterRole");
    let rule = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["apiGroups"][0] == "manul.dev")
        .expect("no rule for manul.dev");
    let mut granted: Vec<&str> = rule["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    granted.sort();
    let mut stored: Vec<&str> = manul_store::kubernetes::objects::CUSTOM_KINDS
        .iter()
        .map(|kind| manul_store::kubernetes::objects::plural(*kind))
        .collect();
    stored.sort();
    assert_eq!(granted, stored);
    assert_eq!(
        rule["verbs"],
        serde_json::json!(["get", "list", "watch", "create", "update", "delete"])
    );
}
