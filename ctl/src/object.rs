//! An object of any kind manulctl handles, as manul-store keeps it: decoded from a document
//! (with every check that needs no datastore), encoded for and decoded from the store, and
//! turned back into a document or a table row. Pure, no I/O.

use manul_store::{
    BgpConfiguration, BgpPeer, HasMetadata, IpPool, IpamConfiguration, KeyValue, Node, Resource,
    ResourceMeta, Revision, StoreError, WorkloadEndpoint, typed,
};
use serde::Serialize;

use crate::{
    document::{Document, Metadata, RawDocument},
    fields::{FieldError, check_name},
    kinds::ResourceKind,
    resources::{
        TableContext, bgp_config, bgp_peer, check_label_key, check_labels, ipam_config, ippool,
        node, workload,
    },
};

#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    IpPool(IpPool),
    IpamConfiguration(IpamConfiguration),
    Node(Node),
    BgpPeer(BgpPeer),
    BgpConfiguration(BgpConfiguration),
    WorkloadEndpoint(WorkloadEndpoint),
}

/// The spec of any kind, as written out.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum AnySpec {
    IpPool(ippool::IpPoolSpec),
    IpamConfiguration(ipam_config::IpamConfigurationSpec),
    Node(node::NodeSpec),
    BgpPeer(bgp_peer::BgpPeerSpec),
    BgpConfiguration(bgp_config::BgpConfigurationSpec),
    WorkloadEndpoint(workload::WorkloadEndpointSpec),
}

impl Object {
    /// Decodes a split document of its kind and runs every check that needs no datastore.
    pub fn from_document(raw: &RawDocument) -> Result<Object, FieldError> {
        check_name("metadata.name", &raw.metadata.name)?;
        let (metadata, spec) = (&raw.metadata, &raw.spec);
        check_labels(&metadata.labels)?;
        for key in metadata.annotations.keys() {
            check_label_key(&format!("metadata.annotations.{key}"), key)?;
        }
        let mut object = match raw.kind {
            ResourceKind::IpPool => Object::IpPool(ippool::from_document(metadata, spec)?),
            ResourceKind::IpamConfiguration => {
                Object::IpamConfiguration(ipam_config::from_document(metadata, spec)?)
            }
            ResourceKind::Node => Object::Node(node::from_document(metadata, spec)?),
            ResourceKind::BgpPeer => Object::BgpPeer(bgp_peer::from_document(metadata, spec)?),
            ResourceKind::BgpConfiguration => {
                Object::BgpConfiguration(bgp_config::from_document(metadata, spec)?)
            }
            ResourceKind::WorkloadEndpoint => {
                Object::WorkloadEndpoint(workload::from_document(metadata, spec)?)
            }
        };
        *object.metadata_mut() = ResourceMeta {
            labels: metadata.labels.clone(),
            annotations: metadata.annotations.clone(),
            uid: metadata.uid.clone().unwrap_or_default(),
            creation_timestamp: metadata.creation_timestamp.clone().unwrap_or_default(),
        };
        Ok(object)
    }

    pub fn kind(&self) -> ResourceKind {
        match self {
            Object::IpPool(_) => ResourceKind::IpPool,
            Object::IpamConfiguration(_) => ResourceKind::IpamConfiguration,
            Object::Node(_) => ResourceKind::Node,
            Object::BgpPeer(_) => ResourceKind::BgpPeer,
            Object::BgpConfiguration(_) => ResourceKind::BgpConfiguration,
            Object::WorkloadEndpoint(_) => ResourceKind::WorkloadEndpoint,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Object::IpPool(value) => value.name(),
            Object::IpamConfiguration(value) => value.name(),
            Object::Node(value) => value.name(),
            Object::BgpPeer(value) => value.name(),
            Object::BgpConfiguration(value) => value.name(),
            Object::WorkloadEndpoint(value) => value.name(),
        }
    }

    /// `IPPool "pool-a"`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {:?}", self.kind(), self.name())
    }

    /// The bytes the store keeps (manul-store's JSON of the record).
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        match self {
            Object::IpPool(value) => typed::encode(value),
            Object::IpamConfiguration(value) => typed::encode(value),
            Object::Node(value) => typed::encode(value),
            Object::BgpPeer(value) => typed::encode(value),
            Object::BgpConfiguration(value) => typed::encode(value),
            Object::WorkloadEndpoint(value) => typed::encode(value),
        }
    }

    /// A stored record of `kind`.
    pub fn decode(kind: ResourceKind, kv: KeyValue) -> Result<Object, StoreError> {
        Ok(match kind {
            ResourceKind::IpPool => Object::IpPool(typed::decode::<IpPool>(kv)?.value),
            ResourceKind::IpamConfiguration => {
                Object::IpamConfiguration(typed::decode::<IpamConfiguration>(kv)?.value)
            }
            ResourceKind::Node => Object::Node(typed::decode::<Node>(kv)?.value),
            ResourceKind::BgpPeer => Object::BgpPeer(typed::decode::<BgpPeer>(kv)?.value),
            ResourceKind::BgpConfiguration => {
                Object::BgpConfiguration(typed::decode::<BgpConfiguration>(kv)?.value)
            }
            ResourceKind::WorkloadEndpoint => {
                Object::WorkloadEndpoint(typed::decode::<WorkloadEndpoint>(kv)?.value)
            }
        })
    }

    /// Labels, annotations, uid and creation time: every kind keeps them.
    pub fn metadata(&self) -> &ResourceMeta {
        match self {
            Object::IpPool(value) => value.metadata(),
            Object::IpamConfiguration(value) => value.metadata(),
            Object::Node(value) => value.metadata(),
            Object::BgpPeer(value) => value.metadata(),
            Object::BgpConfiguration(value) => value.metadata(),
            Object::WorkloadEndpoint(value) => value.metadata(),
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ResourceMeta {
        match self {
            Object::IpPool(value) => value.metadata_mut(),
            Object::IpamConfiguration(value) => value.metadata_mut(),
            Object::Node(value) => value.metadata_mut(),
            Object::BgpPeer(value) => value.metadata_mut(),
            Object::BgpConfiguration(value) => value.metadata_mut(),
            Object::WorkloadEndpoint(value) => value.metadata_mut(),
        }
    }

    /// The document of this object, with the revision it was read at.
    pub fn document(&self, revision: Option<&Revision>) -> Document<AnySpec> {
        let metadata = Metadata {
            name: self.name(),
            namespace: match self {
                Object::WorkloadEndpoint(endpoint) if !endpoint.namespace.is_empty() => {
                    Some(endpoint.namespace.clone())
                }
                _ => None,
            },
            labels: self.metadata().labels.clone(),
            annotations: self.metadata().annotations.clone(),
            resource_version: revision.map(|revision| revision.0.clone()),
            uid: Some(self.metadata().uid.clone()).filter(|uid| !uid.is_empty()),
            creation_timestamp: Some(self.metadata().creation_timestamp.clone())
                .filter(|created| !created.is_empty()),
        };
        let spec = match self {
            Object::IpPool(value) => AnySpec::IpPool(ippool::to_spec(value)),
            Object::IpamConfiguration(value) => {
                AnySpec::IpamConfiguration(ipam_config::to_spec(value))
            }
            Object::Node(value) => AnySpec::Node(node::to_spec(value)),
            Object::BgpPeer(value) => AnySpec::BgpPeer(bgp_peer::to_spec(value)),
            Object::BgpConfiguration(value) => {
                AnySpec::BgpConfiguration(bgp_config::to_spec(value))
            }
            Object::WorkloadEndpoint(value) => AnySpec::WorkloadEndpoint(workload::to_spec(value)),
        };
        Document::new(self.kind(), metadata, spec)
    }

    /// The cells of this object's row in `get -o ps` (or `-o wide`).
    pub fn row(&self, wide: bool, context: &TableContext) -> Vec<String> {
        match self {
            Object::IpPool(value) => ippool::row(value, wide),
            Object::IpamConfiguration(value) => ipam_config::row(value, wide),
            Object::Node(value) => node::row(value, wide, context),
            Object::BgpPeer(value) => bgp_peer::row(value),
            Object::BgpConfiguration(value) => bgp_config::row(value),
            Object::WorkloadEndpoint(value) => workload::row(value, wide),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::document::split;

    #[test]
    fn a_document_survives_store_encoding_and_comes_back_the_same() {
        let value = json!({
            "apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": "node-1", "labels": {"rack": "a"}},
            "spec": {"bgp": {"ipv4Address": "10.0.0.5/24"}}
        });
        let object = Object::from_document(&split(&value).unwrap()).unwrap();
        let kv = KeyValue {
            kind: manul_store::Kind::Node,
            name: object.name(),
            value: object.encode().unwrap(),
            revision: Revision::from_number(9),
        };
        let back = Object::decode(ResourceKind::Node, kv).unwrap();
        assert_eq!(back, object);
        let document =
            serde_json::to_value(back.document(Some(&Revision::from_number(9)))).unwrap();
        assert_eq!(document["apiVersion"], "manul.dev/v1");
        assert_eq!(document["metadata"]["resourceVersion"], "9");
        assert_eq!(document["metadata"]["labels"], value["metadata"]["labels"]);
        assert_eq!(document["spec"], value["spec"]);
    }
}
