//! Node records on the Kubernetes Node: the whole record (less its labels) in one
//! `manul.dev/node` JSON annotation, mirrored into Calico's per-field annotations where Calico
//! has one. Pure, no I/O.
//!
//! Why one JSON annotation rather than only Calico's per-field ones: the record has fields
//! Calico has no annotation for, and one annotation read back whole is the record exactly as
//! written (a round trip cannot lose a field). The Calico annotations
//! (`projectcalico.org/IPv4Address`, ...) are written alongside so that tools that know
//! Calico read the addresses; they are never read back. The record's metadata is the Node's
//! own: labels (kubelet and operators own them, so a write does not change labels and a read
//! returns the Node's), uid and creationTimestamp; the Node's annotations are not shown as
//! the record's (they hold this record and kubelet's and Calico's entries). kubelet owns the Node itself: a record is created on an existing Node
//! only, and deleting it removes our annotations and leaves a `manul.dev/deleted` tombstone
//! so that a watch can report the deletion.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde_json::{Map, Value, json};

use super::objects::{Translated, record_metadata, resource_version};
use crate::datastore::{KeyValue, Kind, Revision, StoreError};

/// The annotation holding the Node record's JSON.
pub const RECORD: &str = "manul.dev/node";
/// Set, to the record's name, when a record is removed from its object (Node or Pod).
pub const TOMBSTONE: &str = "manul.dev/deleted";

/// Calico's Node annotations and where each one's value is in the record.
const CALICO_MIRRORS: [(&str, &str); 8] = [
    ("projectcalico.org/IPv4Address", "/bgp/ipv4Address"),
    ("projectcalico.org/IPv6Address", "/bgp/ipv6Address"),
    ("projectcalico.org/ASNumber", "/bgp/asNumber"),
    (
        "projectcalico.org/RouteReflectorClusterID",
        "/bgp/routeReflectorClusterID",
    ),
    (
        "projectcalico.org/IPv4VXLANTunnelAddr",
        "/ipv4VXLANTunnelAddr",
    ),
    (
        "projectcalico.org/VXLANTunnelMACAddr",
        "/vxlanTunnelMACAddr",
    ),
    (
        "projectcalico.org/IPv6VXLANTunnelAddr",
        "/ipv6VXLANTunnelAddr",
    ),
    (
        "projectcalico.org/VXLANTunnelMACAddrV6",
        "/vxlanTunnelMACAddrV6",
    ),
];

/// What a Kubernetes Node holds of ours.
pub fn translate(node: &DynamicObject) -> Result<Translated, StoreError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let annotations = node.metadata.annotations.as_ref();
    let Some(json) = annotations.and_then(|a| a.get(RECORD)) else {
        return Ok(match annotations.and_then(|a| a.get(TOMBSTONE)) {
            Some(_) => Translated::Removed(name),
            None => Translated::Nothing,
        });
    };
    let decode_error = |reason: String| StoreError::Decode {
        kind: Kind::Node,
        name: name.clone(),
        reason: format!("annotation {RECORD}: {reason}"),
    };
    let mut record = match serde_json::from_str(json) {
        Ok(Value::Object(record)) => record,
        Ok(_) => return Err(decode_error("not a JSON object".into())),
        Err(error) => return Err(decode_error(error.to_string())),
    };
    record.insert("name".into(), Value::String(name.clone()));
    record.remove("labels");
    let metadata = record_metadata(&node.metadata, false);
    if metadata.is_empty() {
        record.remove("metadata");
    } else {
        record.insert("metadata".into(), Value::Object(metadata));
    }
    Ok(Translated::Record(KeyValue {
        kind: Kind::Node,
        value: serde_json::to_vec(&record).map_err(|error| decode_error(error.to_string()))?,
        name,
        revision: resource_version(node),
    }))
}

/// The merge patch that writes `record` onto the Node, conditional on `expected` (the Node's
/// resourceVersion: a patch carrying one fails with 409 Conflict when the Node has changed).
pub fn write_patch(mut record: Map<String, Value>, expected: &Revision) -> Value {
    record.remove("labels");
    record.remove("metadata");
    let value = Value::Object(record);
    let mut annotations: BTreeMap<&str, Value> = CALICO_MIRRORS
        .iter()
        .map(|(annotation, pointer)| (*annotation, mirror(value.pointer(pointer))))
        .collect();
    annotations.insert(RECORD, Value::String(value.to_string()));
    annotations.insert(TOMBSTONE, Value::Null);
    json!({"metadata": {"resourceVersion": expected.0, "annotations": annotations}})
}

/// The merge patch that removes our annotations, leaving the tombstone.
pub fn remove_patch(name: &str, expected: &Revision) -> Value {
    let mut annotations: BTreeMap<&str, Value> = CALICO_MIRRORS
        .iter()
        .map(|(annotation, _)| (*annotation, Value::Null))
        .collect();
    annotations.insert(RECORD, Value::Null);
    annotations.insert(TOMBSTONE, Value::String(name.to_string()));
    json!({"metadata": {"resourceVersion": expected.0, "annotations": annotations}})
}

/// An annotation's value (a string) for a record field; null removes the annotation.
fn mirror(field: Option<&Value>) -> Value {
    match field {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(other) => Value::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;

    fn node_with(annotations: &Value, labels: &[(&str, &str)]) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: Some("n1".into()),
                resource_version: Some("42".into()),
                uid: Some("node-uid".into()),
                // A merge patch's nulls remove annotations: keep the strings.
                annotations: Some(
                    annotations
                        .as_object()
                        .unwrap()
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect(),
                ),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            data: json!({}),
        }
    }

    #[test]
    fn the_record_goes_to_one_annotation_and_calicos_mirrors_and_reads_back_with_the_nodes_labels()
    {
        let record = json!({"name": "n1", "metadata": {"labels": {"ignored": "x"}, "uid": "u"},
            "bgp": {"ipv4Address": "10.0.0.1/24", "asNumber": 64512},
            "ipv4VXLANTunnelAddr": "10.244.1.0"});
        let patch = write_patch(record.as_object().unwrap().clone(), &Revision("41".into()));
        let annotations = &patch["metadata"]["annotations"];
        assert_eq!(patch["metadata"]["resourceVersion"], "41");
        assert_eq!(annotations["projectcalico.org/IPv4Address"], "10.0.0.1/24");
        assert_eq!(annotations["projectcalico.org/ASNumber"], "64512");
        assert_eq!(
            annotations["projectcalico.org/IPv4VXLANTunnelAddr"],
            "10.244.1.0"
        );
        assert!(annotations["projectcalico.org/IPv6Address"].is_null());
        assert!(annotations[TOMBSTONE].is_null());

        let node = node_with(annotations, &[("zone", "a")]);
        let Translated::Record(kv) = translate(&node).unwrap() else {
            panic!("no record")
        };
        let read: Value = serde_json::from_slice(&kv.value).unwrap();
        let mut expected = record.clone();
        expected["metadata"] = json!({"labels": {"zone": "a"}, "uid": "node-uid"});
        assert_eq!(read, expected);
        assert_eq!((kv.name.as_str(), kv.revision.0.as_str()), ("n1", "42"));
    }

    #[test]
    fn a_removed_record_leaves_a_tombstone_and_a_plain_node_holds_nothing() {
        let patch = remove_patch("n1", &Revision("5".into()));
        assert!(patch["metadata"]["annotations"][RECORD].is_null());
        let node = node_with(&patch["metadata"]["annotations"], &[]);
        assert_eq!(translate(&node).unwrap(), Translated::Removed("n1".into()));
        assert_eq!(
            translate(&node_with(&json!({}), &[])).unwrap(),
            Translated::Nothing
        );
        let broken = node_with(&json!({RECORD: "{"}), &[]);
        assert!(matches!(translate(&broken), Err(StoreError::Decode { .. })));
    }
}
