//! The commands, one module per group: `write` (create, apply, replace, validate), `get`,
//! `delete`, `patch` (patch and label), `ipam` (show, release, configure), `ipam_check`
//! (check and its report, release from a report, borrowed addresses), `bgp` (node status,
//! bgp peers, bgp routes from manul-bgpd). Here: parsing every input
//! document before anything is written, and calicoctl's summary lines. I/O through the
//! `Resources` and the output `Write` they are given.

pub mod bgp;
pub mod delete;
pub mod get;
pub mod ipam;
pub mod ipam_check;
pub mod patch;
pub mod write;

use crate::{
    document::split, error::CtlError, input::SourceDocument, kinds::ResourceKind, object::Object,
};

/// A checked input document.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub origin: String,
    pub object: Object,
    /// The resourceVersion the document names: writes then compare against it.
    pub resource_version: Option<String>,
}

/// Splits and checks every document; the first refusal is returned (naming the document,
/// the field and the reason) before anything is written.
pub fn parse_all(documents: &[SourceDocument]) -> Result<Vec<Parsed>, CtlError> {
    documents
        .iter()
        .map(|document| {
            let refused = |what: String, error| CtlError::Document {
                origin: document.origin.clone(),
                what,
                error,
            };
            let raw = split(&document.value).map_err(|error| refused(String::new(), error))?;
            let what = format!("{} {:?}: ", raw.kind, raw.metadata.name);
            let object = Object::from_document(&raw).map_err(|error| refused(what, error))?;
            Ok(Parsed {
                origin: document.origin.clone(),
                object,
                resource_version: raw.metadata.resource_version.clone(),
            })
        })
        .collect()
}

/// "Successfully applied 2 'IPPool' resource(s)", or without the kind when several kinds.
pub fn summary(past: &str, kinds: &[ResourceKind]) -> String {
    let first = kinds.first();
    match first {
        Some(kind) if kinds.iter().all(|other| other == kind) => {
            format!("Successfully {past} {} '{kind}' resource(s)", kinds.len())
        }
        _ => format!("Successfully {past} {} resource(s)", kinds.len()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bad_document_is_named_with_its_field() {
        let documents = vec![
            SourceDocument {
                origin: "f.yaml, document 1".into(),
                value: json!({"apiVersion": "manul.dev/v1", "kind": "IPPool",
                    "metadata": {"name": "a"}, "spec": {"cidr": "10.0.0.0/16"}}),
            },
            SourceDocument {
                origin: "f.yaml, document 2".into(),
                value: json!({"apiVersion": "manul.dev/v1", "kind": "IPPool",
                    "metadata": {"name": "b"}, "spec": {"cidr": "10.1.0.1/16"}}),
            },
        ];
        let error = parse_all(&documents).unwrap_err().to_string();
        assert!(
            error.starts_with("f.yaml, document 2: IPPool \"b\": spec.cidr: "),
            "{error}"
        );
        assert_eq!(parse_all(&documents[..1]).unwrap().len(), 1);
    }

    #[test]
    fn summaries_are_calicoctls() {
        let pools = [ResourceKind::IpPool, ResourceKind::IpPool];
        assert_eq!(
            summary("applied", &pools),
            "Successfully applied 2 'IPPool' resource(s)"
        );
        let mixed = [ResourceKind::IpPool, ResourceKind::Node];
        assert_eq!(
            summary("created", &mixed),
            "Successfully created 2 resource(s)"
        );
    }
}
