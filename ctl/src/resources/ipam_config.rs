//! IPAMConfiguration documents, the singleton `default`: Calico's v3 spec (strictAffinity,
//! maxBlocksPerHost, autoAllocateBlocks) <-> manul-store's `IpamConfiguration`, and its table
//! columns. Pure, no I/O.

use manul_store::IpamConfiguration;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    document::Metadata,
    fields::{FieldError, Unsupported, check_keys, decode, in_range},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamConfigurationSpec {
    #[serde(default)]
    pub strict_affinity: bool,
    #[serde(default)]
    pub max_blocks_per_host: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_allocate_blocks: Option<bool>,
}

const FIELDS: [&str; 3] = ["strictAffinity", "maxBlocksPerHost", "autoAllocateBlocks"];

const UNSUPPORTED: [Unsupported; 1] = [Unsupported {
    field: "kubeVirtVMAddressPersistence",
    advice: "remove it",
}];

pub const PS_COLUMNS: &[&str] = &["NAME", "STRICTAFFINITY", "MAXBLOCKSPERHOST"];
pub const WIDE_COLUMNS: &[&str] = &[
    "NAME",
    "STRICTAFFINITY",
    "MAXBLOCKSPERHOST",
    "AUTOALLOCATEBLOCKS",
];

pub fn from_document(metadata: &Metadata, spec: &Value) -> Result<IpamConfiguration, FieldError> {
    if metadata.name != IpamConfiguration::NAME {
        return Err(FieldError::new(
            "metadata.name",
            format!(
                "{:?}: the IPAM configuration is a singleton named \"default\"",
                metadata.name
            ),
        ));
    }
    check_keys(spec, "spec", &FIELDS, &UNSUPPORTED)?;
    let spec: IpamConfigurationSpec = decode(spec, "spec")?;
    Ok(IpamConfiguration {
        metadata: Default::default(),
        strict_affinity: spec.strict_affinity,
        auto_allocate_blocks: spec.auto_allocate_blocks.unwrap_or(true),
        max_blocks_per_host: in_range(
            "spec.maxBlocksPerHost",
            spec.max_blocks_per_host,
            0,
            i64::from(i32::MAX),
        )?,
    })
}

pub fn to_spec(config: &IpamConfiguration) -> IpamConfigurationSpec {
    IpamConfigurationSpec {
        strict_affinity: config.strict_affinity,
        max_blocks_per_host: i64::from(config.max_blocks_per_host),
        auto_allocate_blocks: Some(config.auto_allocate_blocks),
    }
}

pub fn row(config: &IpamConfiguration, wide: bool) -> Vec<String> {
    let mut row = vec![
        IpamConfiguration::NAME.to_string(),
        config.strict_affinity.to_string(),
        config.max_blocks_per_host.to_string(),
    ];
    if wide {
        row.push(config.auto_allocate_blocks.to_string());
    }
    row
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_singleton_decodes_and_others_are_refused() {
        let config = from_document(
            &Metadata::named("default"),
            &json!({"strictAffinity": true, "maxBlocksPerHost": 4}),
        )
        .unwrap();
        assert!(config.strict_affinity && config.auto_allocate_blocks);
        assert_eq!(config.max_blocks_per_host, 4);
        let error = from_document(&Metadata::named("other"), &json!({})).unwrap_err();
        assert_eq!(error.field, "metadata.name");
        let error = from_document(
            &Metadata::named("default"),
            &json!({"maxBlocksPerHost": -1}),
        )
        .unwrap_err();
        assert_eq!(error.field, "spec.maxBlocksPerHost");
    }
}
