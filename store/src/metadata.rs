//! The metadata every resource record shown to operators keeps beside its spec: labels,
//! annotations, uid and creationTimestamp, as Kubernetes' ObjectMeta spells them. A record
//! written before the field existed reads with empty metadata (the field is
//! `#[serde(default)]`), and empty metadata is not written out, so such a record's bytes do
//! not change until a writer fills it. Pure, except the random uid and the clock of
//! `ResourceMeta::stamp_new`.

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

    /// A new resource's identity: a fresh uid and the current time, whatever was there.
    pub fn stamp_new(&mut self) {
        self.uid = new_uid();
        self.creation_timestamp = crate::timestamp::now();
    }

    /// An update's identity: the stored one; a stored record older than uids gets a fresh
    /// identity on this write (the migration of old records).
    pub fn keep_identity(&mut self, stored: &ResourceMeta) {
        if stored.uid.is_empty() {
            self.stamp_new();
        } else {
            self.uid = stored.uid.clone();
            self.creation_timestamp = stored.creation_timestamp.clone();
        }
    }
}

/// A random UUID, version 4 (RFC 9562): "0b9c5f3e-5a36-4c61-9d5e-0c3f4a2b1d7e".
pub fn new_uid() -> String {
    format_uuid_v4(rand::random())
}

fn format_uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_version_4_and_differ() {
        assert_eq!(
            format_uuid_v4([0xff; 16]),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        assert_eq!(
            format_uuid_v4([0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
        assert_ne!(new_uid(), new_uid());
    }
}
