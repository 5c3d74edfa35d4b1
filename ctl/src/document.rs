//! Kubernetes-shaped documents: apiVersion, kind, metadata {name, namespace, labels,
//! resourceVersion, uid, creationTimestamp}, spec. Splitting a decoded value into its parts
//! (with every unknown key refused by name) and the shapes written out. Pure, no I/O.
//!
//! `uid` and `creationTimestamp` are set when a resource is created and kept after that (see
//! `store_access`): a create ignores the document's, an update refuses a document whose uid is
//! another object's, as the Kubernetes API server does, and ignores its creationTimestamp. A
//! top-level `status` is read-only: accepted and ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    fields::{FieldError, Unsupported, check_keys, decode},
    kinds::{API_VERSIONS, OUTPUT_API_VERSION, ResourceKind},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

impl Metadata {
    /// Metadata with only a name.
    pub fn named(name: &str) -> Metadata {
        Metadata {
            name: name.to_string(),
            ..Default::default()
        }
    }
}

const METADATA_FIELDS: [&str; 7] = [
    "name",
    "namespace",
    "labels",
    "annotations",
    "resourceVersion",
    "uid",
    "creationTimestamp",
];

const METADATA_UNSUPPORTED: [Unsupported; 5] = [
    Unsupported {
        field: "generateName",
        advice: "give metadata.name",
    },
    Unsupported {
        field: "finalizers",
        advice: "remove them",
    },
    Unsupported {
        field: "ownerReferences",
        advice: "remove them",
    },
    Unsupported {
        field: "generation",
        advice: "remove it",
    },
    Unsupported {
        field: "managedFields",
        advice: "remove it",
    },
];

/// A document as written out: the spec is the kind's own spec type.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document<S: Serialize> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: S,
}

impl<S: Serialize> Document<S> {
    pub fn new(kind: ResourceKind, metadata: Metadata, spec: S) -> Document<S> {
        Document {
            api_version: OUTPUT_API_VERSION,
            kind: kind.document_kind(),
            metadata,
            spec,
        }
    }
}

/// Several documents as written out (`get` without a single name): `<Kind>List`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentList<S: Serialize> {
    pub api_version: &'static str,
    pub kind: String,
    pub metadata: ListMetadata,
    pub items: Vec<Document<S>>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMetadata {
    pub resource_version: String,
}

/// A document split into its parts, before the spec is decoded for its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct RawDocument {
    pub kind: ResourceKind,
    pub metadata: Metadata,
    pub spec: Value,
}

/// Splits a decoded document. Refuses, naming the field: a missing or unknown apiVersion or
/// kind, unknown top-level or metadata keys, metadata of the wrong types.
pub fn split(value: &Value) -> Result<RawDocument, FieldError> {
    if !value.is_object() {
        return Err(FieldError::new(
            "document",
            "must be a mapping with apiVersion, kind, metadata and spec",
        ));
    }
    check_keys(
        value,
        "",
        &["apiVersion", "kind", "metadata", "spec", "status"],
        &[],
    )?;
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    match api_version {
        Some(version) if API_VERSIONS.contains(&version) => {}
        Some(version) => {
            return Err(FieldError::new(
                "apiVersion",
                format!(
                    "{version:?} is not supported; use {}",
                    API_VERSIONS.join(" or ")
                ),
            ));
        }
        None => {
            return Err(FieldError::new(
                "apiVersion",
                format!("is required: {}", API_VERSIONS.join(" or ")),
            ));
        }
    }
    let kind_text = value
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| FieldError::new("kind", format!("is required: one of {}", kind_list())))?;
    let kind = ResourceKind::from_document(kind_text).ok_or_else(|| {
        FieldError::new(
            "kind",
            format!(
                "{kind_text:?} is not a kind manul knows; use one of {}",
                kind_list()
            ),
        )
    })?;
    let metadata_value = value.get("metadata").unwrap_or(&Value::Null);
    check_keys(
        metadata_value,
        "metadata",
        &METADATA_FIELDS,
        &METADATA_UNSUPPORTED,
    )?;
    let metadata: Metadata = decode(metadata_value, "metadata")?;
    if metadata.name.is_empty() {
        return Err(FieldError::new("metadata.name", "is required"));
    }
    if !kind.namespaced()
        && metadata
            .namespace
            .as_deref()
            .is_some_and(|ns| !ns.is_empty())
    {
        return Err(FieldError::new(
            "metadata.namespace",
            format!("{kind} is not namespaced; remove metadata.namespace"),
        ));
    }
    Ok(RawDocument {
        kind,
        metadata,
        spec: value.get("spec").cloned().unwrap_or(Value::Null),
    })
}

fn kind_list() -> String {
    ResourceKind::ALL
        .iter()
        .map(|kind| kind.document_kind())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The items of a list document (`kind: List` or `kind: <Kind>List` with `items`), or None
/// for a document of a single object.
pub fn list_items(value: &Value) -> Option<Result<&Vec<Value>, FieldError>> {
    let kind = value.get("kind")?.as_str()?;
    if kind != "List" && !ResourceKind::ALL.iter().any(|k| kind == format!("{k}List")) {
        return None;
    }
    Some(
        value
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| FieldError::new("items", format!("a {kind} needs a list of items"))),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn documents_of_both_api_groups_split() {
        for version in API_VERSIONS {
            let raw = split(&json!({
                "apiVersion": version, "kind": "IPPool",
                "metadata": {"name": "p", "resourceVersion": "7", "uid": "u"},
                "spec": {"cidr": "10.0.0.0/16"}
            }))
            .unwrap();
            assert_eq!(raw.kind, ResourceKind::IpPool);
            assert_eq!(raw.metadata.resource_version.as_deref(), Some("7"));
        }
    }

    #[test]
    fn each_refusal_names_its_field() {
        let cases = [
            (
                json!({"kind": "IPPool", "metadata": {"name": "p"}}),
                "apiVersion",
            ),
            (
                json!({"apiVersion": "v1", "kind": "IPPool", "metadata": {"name": "p"}}),
                "apiVersion",
            ),
            (
                json!({"apiVersion": "manul.dev/v1", "kind": "Pod", "metadata": {"name": "p"}}),
                "kind",
            ),
            (
                json!({"apiVersion": "manul.dev/v1", "kind": "IPPool", "metadata": {}}),
                "metadata.name",
            ),
            (
                json!({"apiVersion": "manul.dev/v1", "kind": "IPPool",
                       "metadata": {"name": "p", "annotations": {"a": 1}}}),
                "metadata.annotations",
            ),
            (
                json!({"apiVersion": "manul.dev/v1", "kind": "IPPool",
                       "metadata": {"name": "p", "finalizers": ["x"]}}),
                "metadata.finalizers",
            ),
            (
                json!({"apiVersion": "manul.dev/v1", "kind": "IPPool",
                       "metadata": {"name": "p", "labels": {"a": 1}}}),
                "metadata.labels",
            ),
            (
                json!({"apiVersion": "manul.dev/v1", "kind": "IPPool",
                       "metadata": {"name": "p", "namespace": "x"}}),
                "metadata.namespace",
            ),
            (
                json!({"apiVersion": "manul.dev/v1", "kind": "IPPool",
                       "metadata": {"name": "p"}, "sepc": {}}),
                "sepc",
            ),
        ];
        for (value, field) in cases {
            let error = split(&value).unwrap_err();
            assert!(error.field.starts_with(field), "{value}: {error}");
        }
    }

    #[test]
    fn lists_are_recognised_by_kind() {
        let list = json!({"kind": "IPPoolList", "items": [{"a": 1}]});
        assert_eq!(list_items(&list).unwrap().unwrap().len(), 1);
        assert!(list_items(&json!({"kind": "IPPool"})).is_none());
        assert!(list_items(&json!({"kind": "List"})).unwrap().is_err());
    }
}
