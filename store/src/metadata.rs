//! The metadata every resource record shown to operators keeps beside its spec: labels,
//! annotations, uid and creationTimestamp, as Kubernetes' ObjectMeta spells them. A record
//! written before the field existed reads with empty metadata (the field is
//! `#[serde(default)]`), and empty metadata is not written out, so such a record's bytes do
//! not change until a writer fills it. Pure, no I/O.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMeta {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// A random UUID (v4) set when the resource is created; "" for records older than it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// RFC 3339, UTC ("2026-12-06T17:30:05Z"); "" for records older than it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub creation_timestamp: String,
}

impl ResourceMeta {
    pub fn is_empty(&self) -> bool {
        *self == ResourceMeta::default()
    }
}

/// The resource kinds whose records carry a `ResourceMeta` (the ones manulctl shows).
pub trait HasMetadata {
    fn metadata(&self) -> &ResourceMeta;
    fn metadata_mut(&mut self) -> &mut ResourceMeta;
}

macro_rules! has_metadata {
    ($($kind:ty),*) => {
        $(impl HasMetadata for $kind {
            fn metadata(&self) -> &ResourceMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ResourceMeta {
                &mut self.metadata
            }
        })*
    };
}

has_metadata!(
    crate::IpPool,
    crate::IpamConfiguration,
    crate::Node,
    crate::BgpPeer,
    crate::BgpConfiguration,
    crate::WorkloadEndpoint
);
