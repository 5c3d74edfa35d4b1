//! How each store kind maps onto a Kubernetes object, and the translation between the two
//! (manul's own kinds as custom resources of group manul.dev/v1, Node records in annotations
//! of the Kubernetes Node, WorkloadEndpoints in annotations of their Pod). Pure, no I/O.

use std::collections::BTreeMap;

use kube::{
    api::{DynamicObject, ObjectMeta},
    core::ApiResource,
};
use serde_json::{Map, Value, json};

use super::{names, nodes, pods};
use crate::datastore::{KeyValue, Kind, Revision, StoreError};

/// The API group and version of manul's custom resources.
pub const GROUP: &str = "manul.dev";
pub const VERSION: &str = "v1";

/// Where one store kind lives in the Kubernetes API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// A cluster-scoped manul.dev/v1 custom resource whose spec is the record's JSON.
    Custom(Kind),
    /// Annotations on the Kubernetes Node of the same name (kubelet owns the Node).
    Node,
    /// Annotations on the workload's Pod.
    WorkloadEndpoint,
}

/// The custom resource kinds, in `Kind::ALL` order (one CRD each).
pub const CUSTOM_KINDS: [Kind; 8] = [
    Kind::IPPool,
    Kind::IPAMBlock,
    Kind::BlockAffinity,
    Kind::IPAMHandle,
    Kind::IPAMConfiguration,
    Kind::IPPoolIndex,
    Kind::BGPPeer,
    Kind::BGPConfiguration,
];

impl Mapping {
    pub fn of(kind: Kind) -> Mapping {
        match kind {
            Kind::Node => Mapping::Node,
            Kind::WorkloadEndpoint => Mapping::WorkloadEndpoint,
            other => Mapping::Custom(other),
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Mapping::Custom(kind) => kind,
            Mapping::Node => Kind::Node,
            Mapping::WorkloadEndpoint => Kind::WorkloadEndpoint,
        }
    }

    pub fn api_resource(self) -> ApiResource {
        match self {
            Mapping::Custom(kind) => ApiResource {
                group: GROUP.into(),
                version: VERSION.into(),
                api_version: format!("{GROUP}/{VERSION}"),
                kind: kind.as_str().into(),
                plural: plural(kind).into(),
            },
            Mapping::Node => core("Node", "nodes"),
            Mapping::WorkloadEndpoint => core("Pod", "pods"),
        }
    }

    /// What `object` says about this kind: a record (Put), a tombstone of one that was
    /// removed (Deleted), or nothing (an object that never held one of ours).
    pub fn translate(self, object: &DynamicObject) -> Result<Translated, StoreError> {
        match self {
            Mapping::Custom(kind) => custom_record(kind, object).map(Translated::Record),
            Mapping::Node => nodes::translate(object),
            Mapping::WorkloadEndpoint => pods::translate(object),
        }
    }
}

fn core(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The plural resource name of a custom kind (its URL path segment and RBAC resource).
pub fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::IPPool => "ippools",
        Kind::IPAMBlock => "ipamblocks",
        Kind::BlockAffinity => "blockaffinities",
        Kind::IPAMHandle => "ipamhandles",
        Kind::IPAMConfiguration => "ipamconfigurations",
        Kind::IPPoolIndex => "ippoolindexes",
        Kind::BGPPeer => "bgppeers",
        Kind::BGPConfiguration => "bgpconfigurations",
        Kind::Node => "nodes",
        Kind::WorkloadEndpoint => "pods",
    }
}

/// What one Kubernetes object holds for a store kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Translated {
    Record(KeyValue),
    /// Our record was removed from the object; the name it had.
    Removed(String),
    Nothing,
}

pub fn resource_version(object: &DynamicObject) -> Revision {
    Revision(object.metadata.resource_version.clone().unwrap_or_default())
}

/// The record in a custom resource: its spec, under the store name of the object's name.
fn custom_record(kind: Kind, object: &DynamicObject) -> Result<KeyValue, StoreError> {
    let object_name = object.metadata.name.clone().unwrap_or_default();
    let name = names::store_name(&object_name).ok_or_else(|| StoreError::Decode {
        kind,
        name: object_name.clone(),
        reason: "not a name manul writes".into(),
    })?;
    let mut spec = object.data.get("spec").cloned().unwrap_or(Value::Null);
    if keeps_metadata(kind)
        && let Value::Object(record) = &mut spec
    {
        let metadata = record_metadata(&object.metadata, true);
        if !metadata.is_empty() {
            record.insert("metadata".into(), Value::Object(metadata));
        }
    }
    let value = serde_json::to_vec(&spec).map_err(|error| StoreError::Decode {
        kind,
        name: name.clone(),
        reason: error.to_string(),
    })?;
    Ok(KeyValue {
        kind,
        name,
        value,
        revision: resource_version(object),
    })
}

/// The custom resource holding `value` (a JSON object) under the store name `name`, with
/// `resource_version` set for an update's compare-and-swap.
pub fn custom_object(
    kind: Kind,
    name: &str,
    value: &[u8],
    resource_version: Option<&Revision>,
) -> Result<DynamicObject, StoreError> {
    let mut spec = json_object(kind, name, value)?;
    let mut object = DynamicObject::new(
        &object_name(kind, name)?,
        &Mapping::Custom(kind).api_resource(),
    );
    object.metadata.resource_version = resource_version.map(|revision| revision.0.clone());
    // The record's labels and annotations become the object's; its uid and creation time
    // are the API server's to set (a create gets new ones, an update keeps the object's).
    if let Some(Value::Object(metadata)) = spec.remove("metadata") {
        object.metadata.labels = string_map(metadata.get("labels"));
        object.metadata.annotations = string_map(metadata.get("annotations"));
    }
    object.data = Value::Object(Map::from_iter([("spec".to_string(), Value::Object(spec))]));
    Ok(object)
}

/// The custom kinds whose records carry `metadata` (labels, annotations, uid, creation
/// time): those manulctl shows. The others' records have none to fill.
fn keeps_metadata(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::IPPool | Kind::IPAMConfiguration | Kind::BGPPeer | Kind::BGPConfiguration
    )
}

/// A record's `metadata` from the object's own: labels, (annotations,) uid and
/// creationTimestamp, each only when set.
pub fn record_metadata(metadata: &ObjectMeta, with_annotations: bool) -> Map<String, Value> {
    let mut record = Map::new();
    let maps = [
        ("labels", metadata.labels.as_ref()),
        (
            "annotations",
            metadata.annotations.as_ref().filter(|_| with_annotations),
        ),
    ];
    for (key, map) in maps {
        if let Some(map) = map.filter(|map| !map.is_empty()) {
            record.insert(key.into(), json!(map));
        }
    }
    if let Some(uid) = &metadata.uid {
        record.insert("uid".into(), Value::String(uid.clone()));
    }
    if let Some(Ok(created)) = metadata
        .creation_timestamp
        .as_ref()
        .map(serde_json::to_value)
    {
        record.insert("creationTimestamp".into(), created);
    }
    record
}

fn string_map(value: Option<&Value>) -> Option<BTreeMap<String, String>> {
    let map: BTreeMap<String, String> = value
        .and_then(Value::as_object)?
        .iter()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
        .collect();
    (!map.is_empty()).then_some(map)
}

/// The Kubernetes object name of a store name, or an Encode error saying why there is none.
pub fn object_name(kind: Kind, name: &str) -> Result<String, StoreError> {
    names::object_name(name).map_err(|error| StoreError::Encode {
        kind,
        name: name.to_string(),
        reason: error.to_string(),
    })
}

/// `value` parsed as a JSON object (every record is one), or an Encode error.
pub fn json_object(kind: Kind, name: &str, value: &[u8]) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_slice(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(StoreError::Encode {
            kind,
            name: name.to_string(),
            reason: "the Kubernetes datastore stores JSON objects only".into(),
        }),
        Err(error) => Err(StoreError::Encode {
            kind,
            name: name.to_string(),
            reason: format!("not JSON: {error}"),
        }),
    }
}

/// `listed` filtered to names starting with `prefix`, in name order (the trait's promise;
/// the API server lists in its own order and cannot filter by a name prefix).
pub fn select(mut listed: Vec<KeyValue>, prefix: &str) -> Vec<KeyValue> {
    listed.retain(|kv| kv.name.starts_with(prefix));
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_object_holds_the_record_as_its_spec_under_a_valid_name() {
        let object = custom_object(
            Kind::IPAMHandle,
            "k8s/Pod",
            br#"{"handleId":"k8s/Pod"}"#,
            None,
        )
        .unwrap();
        let json = serde_json::to_value(&object).unwrap();
        assert_eq!(json["apiVersion"], "manul.dev/v1");
        assert_eq!(json["kind"], "IPAMHandle");
        assert_eq!(json["spec"]["handleId"], "k8s/Pod");
        assert!(names::is_object_name(
            json["metadata"]["name"].as_str().unwrap()
        ));
        let mut stored = object.clone();
        stored.metadata.resource_version = Some("7".into());
        let Translated::Record(kv) = Mapping::Custom(Kind::IPAMHandle)
            .translate(&stored)
            .unwrap()
        else {
            panic!("no record");
        };
        assert_eq!((kv.name.as_str(), kv.revision.0.as_str()), ("k8s/Pod", "7"));
        assert_eq!(kv.value, br#"{"handleId":"k8s/Pod"}"#);
    }

    #[test]
    fn record_metadata_lives_in_the_objects_own_metadata() {
        let record = br#"{"name":"p","cidr":"10.0.0.0/16","blockSize":26,
            "metadata":{"labels":{"rack":"a"},"annotations":{"note":"x"},"uid":"mine"}}"#;
        let object = custom_object(Kind::IPPool, "p", record, None).unwrap();
        let json = serde_json::to_value(&object).unwrap();
        assert!(json["spec"].get("metadata").is_none(), "{json}");
        assert_eq!(json["metadata"]["labels"], json!({"rack": "a"}));
        assert_eq!(json["metadata"]["annotations"], json!({"note": "x"}));
        assert!(
            json["metadata"].get("uid").is_none(),
            "the server sets uid: {json}"
        );

        let mut stored: DynamicObject = serde_json::from_value(json).unwrap();
        stored.metadata.resource_version = Some("3".into());
        stored.metadata.uid = Some("0b9c5f3e-5a36-4c61-9d5e-0c3f4a2b1d7e".into());
        stored.metadata.creation_timestamp =
            serde_json::from_value(json!("2026-12-06T17:30:05Z")).unwrap();
        let Translated::Record(kv) = Mapping::Custom(Kind::IPPool).translate(&stored).unwrap()
        else {
            panic!("no record");
        };
        let read: crate::IpPool = serde_json::from_slice(&kv.value).unwrap();
        assert_eq!(read.metadata.labels["rack"], "a");
        assert_eq!(read.metadata.annotations["note"], "x");
        assert_eq!(read.metadata.uid, "0b9c5f3e-5a36-4c61-9d5e-0c3f4a2b1d7e");
        assert_eq!(read.metadata.creation_timestamp, "2026-12-06T17:30:05Z");
    }

    #[test]
    fn values_that_are_not_json_objects_are_refused() {
        for value in [&b"first"[..], b"[1]", b"\"s\""] {
            let error = custom_object(Kind::IPPool, "p", value, None).unwrap_err();
            assert!(matches!(error, StoreError::Encode { .. }), "{error}");
        }
    }

    #[test]
    fn every_kind_has_a_distinct_resource() {
        let plurals: std::collections::BTreeSet<_> = Kind::ALL.iter().map(|k| plural(*k)).collect();
        assert_eq!(plurals.len(), Kind::ALL.len());
        for kind in Kind::ALL {
            assert_eq!(Mapping::of(kind).kind(), kind);
        }
    }
}
