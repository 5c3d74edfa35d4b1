//! WorkloadEndpoints derived from Pods: the record in the pod's `manul.dev/workload-endpoint`
//! annotation, with Calico's `cni.projectcalico.org/podIP(s)` and `containerID` annotations
//! beside it (what Calico's CNI plugin writes, and what tools read). Pure, no I/O.
//!
//! A pod holds one endpoint (its eth0): a write for a pod that holds another endpoint
//! replaces it, as Calico's does (a re-created sandbox gets a new container ID, and the
//! newest ADD is the pod's network). The endpoint's name gives its node
//! (`WorkloadEndpoint::name_for`), so a get lists only that node's pods
//! (`spec.nodeName=<node>`), not the cluster's.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde_json::{Map, Value, json};

use super::{
    nodes::TOMBSTONE,
    objects::{Translated, resource_version},
};
use crate::datastore::{KeyValue, Kind, Revision, StoreError};

/// The annotation holding the WorkloadEndpoint record's JSON.
pub const RECORD: &str = "manul.dev/workload-endpoint";
pub const POD_IP: &str = "cni.projectcalico.org/podIP";
pub const POD_IPS: &str = "cni.projectcalico.org/podIPs";
pub const CONTAINER_ID: &str = "cni.projectcalico.org/containerID";

/// What a Pod holds of ours.
pub fn translate(pod: &DynamicObject) -> Result<Translated, StoreError> {
    let annotations = pod.metadata.annotations.as_ref();
    let Some(json) = annotations.and_then(|a| a.get(RECORD)) else {
        return Ok(match annotations.and_then(|a| a.get(TOMBSTONE)) {
            Some(name) => Translated::Removed(name.clone()),
            None => Translated::Nothing,
        });
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let decode_error = |reason: &str| StoreError::Decode {
        kind: Kind::WorkloadEndpoint,
        name: pod_name.clone(),
        reason: format!("pod annotation {RECORD}: {reason}"),
    };
    let record: Map<String, Value> =
        serde_json::from_str(json).map_err(|error| decode_error(&error.to_string()))?;
    let name = record
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| decode_error("no name"))?
        .to_string();
    Ok(Translated::Record(KeyValue {
        kind: Kind::WorkloadEndpoint,
        name,
        value: json.as_bytes().to_vec(),
        revision: resource_version(pod),
    }))
}

/// The pod (namespace, name) an endpoint record belongs to.
pub fn pod_of(name: &str, record: &Map<String, Value>) -> Result<(String, String), StoreError> {
    let field = |key: &str| record.get(key).and_then(Value::as_str).unwrap_or_default();
    match (field("namespace"), field("pod")) {
        ("", _) | (_, "") => Err(StoreError::Encode {
            kind: Kind::WorkloadEndpoint,
            name: name.to_string(),
            reason: "in the Kubernetes datastore an endpoint needs its pod's namespace and name"
                .into(),
        }),
        (namespace, pod) => Ok((namespace.to_string(), pod.to_string())),
    }
}

/// The merge patch writing `record` (named `name`) onto its pod, conditional on `expected`,
/// the pod's resourceVersion.
pub fn write_patch(name: &str, mut record: Map<String, Value>, expected: &Revision) -> Value {
    record.insert("name".into(), Value::String(name.to_string()));
    let networks: Vec<&str> = record
        .get("ipNetworks")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let text = |value: Option<&str>| value.map_or(Value::Null, |v| Value::String(v.to_string()));
    let annotations = BTreeMap::from([
        (POD_IP, text(networks.first().copied())),
        (
            POD_IPS,
            text(
                (!networks.is_empty())
                    .then(|| networks.join(","))
                    .as_deref(),
            ),
        ),
        (
            CONTAINER_ID,
            text(record.get("containerId").and_then(Value::as_str)),
        ),
        (TOMBSTONE, Value::Null),
        (RECORD, Value::String(Value::Object(record).to_string())),
    ]);
    json!({"metadata": {"resourceVersion": expected.0, "annotations": annotations}})
}

/// The merge patch removing the endpoint `name` from its pod, leaving the tombstone.
pub fn remove_patch(name: &str, expected: &Revision) -> Value {
    let annotations = BTreeMap::from([
        (POD_IP, Value::Null),
        (POD_IPS, Value::Null),
        (CONTAINER_ID, Value::Null),
        (RECORD, Value::Null),
        (TOMBSTONE, Value::String(name.to_string())),
    ]);
    json!({"metadata": {"resourceVersion": expected.0, "annotations": annotations}})
}

/// The node named in an endpoint name or a name prefix that covers one node
/// ("<escaped node>-cni-..."): components are joined by "-" with "-" inside doubled.
pub fn node_of(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'-' {
            if bytes.get(at + 1) == Some(&b'-') {
                at += 2;
                continue;
            }
            let rest = &name[at + 1..];
            return (at > 0 && rest.starts_with("cni-")).then(|| name[..at].replace("--", "-"));
        }
        at += 1;
    }
    None
}

/// The field selector listing only the pods that can hold endpoints named `prefix...`.
pub fn field_selector(prefix: &str) -> Option<String> {
    node_of(prefix).map(|node| format!("spec.nodeName={node}"))
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;
    use crate::WorkloadEndpoint;

    fn pod_with(annotations: &Value) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                resource_version: Some("9".into()),
                annotations: Some(
                    annotations
                        .as_object()
                        .unwrap()
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect(),
                ),
                ..Default::default()
            },
            data: json!({"spec": {"nodeName": "node-a"}}),
        }
    }

    #[test]
    fn an_endpoint_is_written_with_calicos_pod_annotations_and_read_back() {
        let name = WorkloadEndpoint::name_for("node-a", "c-1", "eth0");
        let record = json!({"namespace": "shop", "pod": "web", "containerId": "c-1",
            "ipNetworks": ["10.244.0.5/32", "fd00::5/128"]});
        let map = record.as_object().unwrap().clone();
        assert_eq!(pod_of(&name, &map).unwrap(), ("shop".into(), "web".into()));
        let patch = write_patch(&name, map, &Revision("8".into()));
        let annotations = &patch["metadata"]["annotations"];
        assert_eq!(annotations[POD_IP], "10.244.0.5/32");
        assert_eq!(annotations[POD_IPS], "10.244.0.5/32,fd00::5/128");
        assert_eq!(annotations[CONTAINER_ID], "c-1");
        assert_eq!(patch["metadata"]["resourceVersion"], "8");
        let Translated::Record(kv) = translate(&pod_with(annotations)).unwrap() else {
            panic!("no record")
        };
        assert_eq!(
            (kv.name.as_str(), kv.revision.0.as_str()),
            (name.as_str(), "9")
        );
        let mut expected = record.clone();
        expected["name"] = json!(name);
        assert_eq!(
            serde_json::from_slice::<Value>(&kv.value).unwrap(),
            expected
        );

        let removed = pod_with(&remove_patch(&name, &kv.revision)["metadata"]["annotations"]);
        assert_eq!(translate(&removed).unwrap(), Translated::Removed(name));
        assert_eq!(
            translate(&pod_with(&json!({}))).unwrap(),
            Translated::Nothing
        );
    }

    #[test]
    fn an_endpoint_without_its_pod_cannot_be_written() {
        let map = json!({"namespace": "shop"}).as_object().unwrap().clone();
        assert!(matches!(pod_of("x", &map), Err(StoreError::Encode { .. })));
    }

    #[test]
    fn the_node_is_read_back_from_endpoint_names_and_node_prefixes() {
        for node in ["a", "node-1", "n--x", "worker-2.example"] {
            let name = WorkloadEndpoint::name_for(node, "abc-def", "eth0");
            assert_eq!(node_of(&name).as_deref(), Some(node), "{name}");
            let prefix = WorkloadEndpoint::node_prefix(node);
            assert_eq!(
                field_selector(&prefix),
                Some(format!("spec.nodeName={node}"))
            );
        }
        assert_eq!(node_of(""), None);
        assert_eq!(node_of("node-1"), None);
        assert_eq!(
            node_of("a-b-cni-"),
            None,
            "a node prefix is the escaped node"
        );
    }
}
