//! IPPool documents: Calico's v3 spec (cidr, blockSize, ipipMode, vxlanMode, natOutgoing,
//! disabled, disableBGPExport, nodeSelector) <-> manul-store's `IpPool`, the checks that need
//! no datastore (through manul-ipam's `pools::validate`, the one pool validation), and the
//! table columns of `get ippool` as calicoctl prints them. Pure, no I/O.

use manul_ipam::{IpamError, pools};
use manul_store::{EncapsulationMode, IpPool};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    document::Metadata,
    fields::{FieldError, Unsupported, check_keys, decode, is_false, parse},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPoolSpec {
    #[serde(default)]
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mode: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nat_outgoing: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    #[serde(default, rename = "disableBGPExport", skip_serializing_if = "is_false")]
    pub disable_bgp_export: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// Accepted when it says what manul does anyway (Workload and Tunnel); not written out.
    #[serde(default, skip_serializing)]
    pub allowed_uses: Option<Vec<String>>,
    /// Accepted when Automatic (what manul does); not written out.
    #[serde(default, skip_serializing)]
    pub assignment_mode: Option<String>,
}

const FIELDS: [&str; 10] = [
    "cidr",
    "blockSize",
    "ipipMode",
    "vxlanMode",
    "natOutgoing",
    "disabled",
    "disableBGPExport",
    "nodeSelector",
    "allowedUses",
    "assignmentMode",
];

const UNSUPPORTED: [Unsupported; 3] = [
    Unsupported {
        field: "ipip",
        advice: "the deprecated ipip block is not read; use ipipMode (only Never here)",
    },
    Unsupported {
        field: "nat-outgoing",
        advice: "the deprecated nat-outgoing is not read; use natOutgoing",
    },
    Unsupported {
        field: "namespaceSelector",
        advice: "pools are chosen by nodeSelector only; remove it",
    },
];

pub const PS_COLUMNS: &[&str] = &["NAME", "CIDR", "SELECTOR"];
pub const WIDE_COLUMNS: &[&str] = &[
    "NAME",
    "CIDR",
    "NAT",
    "IPIPMODE",
    "VXLANMODE",
    "DISABLED",
    "DISABLEBGPEXPORT",
    "SELECTOR",
];

/// Decodes and checks an IPPool document. Overlap with other pools is checked at write time
/// (by manul-ipam, against the stored pools).
pub fn from_document(metadata: &Metadata, spec: &Value) -> Result<IpPool, FieldError> {
    check_keys(spec, "spec", &FIELDS, &UNSUPPORTED)?;
    let spec: IpPoolSpec = decode(spec, "spec")?;
    if spec.cidr.is_empty() {
        return Err(FieldError::new(
            "spec.cidr",
            "is required, e.g. 10.244.0.0/16",
        ));
    }
    let cidr: ipnet::IpNet = parse(
        "spec.cidr",
        &spec.cidr,
        "a CIDR such as 10.244.0.0/16 or fd00:10::/64",
    )?;
    let (min, max) = match cidr {
        ipnet::IpNet::V4(_) => (20, 32),
        ipnet::IpNet::V6(_) => (116, 128),
    };
    let block_size = match spec.block_size {
        None | Some(0) => 0,
        Some(size) => u8::try_from(size).map_err(|_| {
            FieldError::new(
                "spec.blockSize",
                format!("{size} is out of range for this pool: use {min}..={max}"),
            )
        })?,
    };
    let ipip_mode = mode("spec.ipipMode", spec.ipip_mode.as_deref())?;
    if ipip_mode != EncapsulationMode::Never {
        return Err(FieldError::new(
            "spec.ipipMode",
            "IP-in-IP is not supported by manul; use ipipMode: Never with vxlanMode: Always or \
             CrossSubnet for encapsulation",
        ));
    }
    if let Some(uses) = &spec.allowed_uses {
        let mut sorted = uses.clone();
        sorted.sort();
        if sorted != ["Tunnel", "Workload"] {
            return Err(FieldError::new(
                "spec.allowedUses",
                format!(
                    "{uses:?} is not supported yet: manul pools serve workloads and tunnels; \
                     use [Workload, Tunnel] or remove the field"
                ),
            ));
        }
    }
    if let Some(assignment) = spec.assignment_mode.as_deref()
        && assignment != "Automatic"
    {
        return Err(FieldError::new(
            "spec.assignmentMode",
            format!("{assignment:?} is not supported yet; use Automatic or remove the field"),
        ));
    }
    let pool = IpPool {
        metadata: Default::default(),
        name: metadata.name.clone(),
        cidr,
        block_size,
        disabled: spec.disabled,
        node_selector: spec.node_selector.unwrap_or_else(|| "all()".into()),
        nat_outgoing: spec.nat_outgoing,
        vxlan_mode: mode("spec.vxlanMode", spec.vxlan_mode.as_deref())?,
        ipip_mode,
        disable_bgp_export: spec.disable_bgp_export,
    };
    pools::validate(&pool, &[]).map_err(pool_field_error)
}

/// manul-ipam's pool refusal as a field of the document.
pub fn pool_field_error(error: IpamError) -> FieldError {
    match error {
        IpamError::InvalidPool {
            field: "name",
            reason,
        } => FieldError::new("metadata.name", reason),
        IpamError::InvalidPool { field, reason } => {
            FieldError::new(format!("spec.{field}"), reason)
        }
        other => FieldError::new("spec", other.to_string()),
    }
}

fn mode(field: &str, text: Option<&str>) -> Result<EncapsulationMode, FieldError> {
    match text.unwrap_or("") {
        "" | "Never" => Ok(EncapsulationMode::Never),
        "Always" => Ok(EncapsulationMode::Always),
        "CrossSubnet" => Ok(EncapsulationMode::CrossSubnet),
        other => Err(FieldError::new(
            field,
            format!("{other:?} is not a mode: use Never, Always or CrossSubnet"),
        )),
    }
}

fn mode_name(mode: EncapsulationMode) -> &'static str {
    match mode {
        EncapsulationMode::Never => "Never",
        EncapsulationMode::Always => "Always",
        EncapsulationMode::CrossSubnet => "CrossSubnet",
    }
}

pub fn to_spec(pool: &IpPool) -> IpPoolSpec {
    IpPoolSpec {
        cidr: pool.cidr.to_string(),
        block_size: Some(i64::from(pool.block_size)),
        ipip_mode: Some(mode_name(pool.ipip_mode).into()),
        vxlan_mode: Some(mode_name(pool.vxlan_mode).into()),
        nat_outgoing: pool.nat_outgoing,
        disabled: pool.disabled,
        disable_bgp_export: pool.disable_bgp_export,
        node_selector: Some(pool.node_selector.clone()),
        allowed_uses: None,
        assignment_mode: None,
    }
}

/// What cannot change once a pool exists (as in Calico): its CIDR and block size.
pub fn check_update(current: &IpPool, new: &IpPool) -> Result<(), FieldError> {
    if current.cidr != new.cidr {
        return Err(FieldError::new(
            "spec.cidr",
            format!(
                "a pool's CIDR cannot change ({} -> {}); create a new pool, disable the old one \
                 and delete it when its addresses are released",
                current.cidr, new.cidr
            ),
        ));
    }
    if new.block_size != 0 && current.block_size != new.block_size {
        return Err(FieldError::new(
            "spec.blockSize",
            format!(
                "a pool's blockSize cannot change ({} -> {}); create a new pool instead",
                current.block_size, new.block_size
            ),
        ));
    }
    Ok(())
}

pub fn row(pool: &IpPool, wide: bool) -> Vec<String> {
    let selector = pool.node_selector.clone();
    if !wide {
        return vec![pool.name.clone(), pool.cidr.to_string(), selector];
    }
    vec![
        pool.name.clone(),
        pool.cidr.to_string(),
        pool.nat_outgoing.to_string(),
        mode_name(pool.ipip_mode).into(),
        mode_name(pool.vxlan_mode).into(),
        pool.disabled.to_string(),
        pool.disable_bgp_export.to_string(),
        selector,
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_calico_pool_decodes_with_defaults_filled_in() {
        let pool = from_document(
            &Metadata::named("pool-a"),
            &json!({"cidr": "10.244.0.0/16", "vxlanMode": "CrossSubnet", "natOutgoing": true,
                    "ipipMode": "Never", "allowedUses": ["Workload", "Tunnel"],
                    "assignmentMode": "Automatic", "nodeSelector": "zone == 'a'"}),
        )
        .unwrap();
        assert_eq!(pool.block_size, 26);
        assert_eq!(pool.vxlan_mode, EncapsulationMode::CrossSubnet);
        assert!(pool.nat_outgoing);
        let spec = serde_json::to_value(to_spec(&pool)).unwrap();
        assert_eq!(spec["vxlanMode"], "CrossSubnet");
        assert_eq!(spec["blockSize"], 26);
        assert!(spec.get("allowedUses").is_none());
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (json!({"cidr": "10.244.0.1/16"}), "spec.cidr"),
            (json!({"cidr": "10.244.0.0/33"}), "spec.cidr"),
            (json!({}), "spec.cidr"),
            (
                json!({"cidr": "10.244.0.0/16", "blockSize": 19}),
                "spec.blockSize",
            ),
            (
                json!({"cidr": "10.244.0.0/16", "blockSize": 400}),
                "spec.blockSize",
            ),
            (
                json!({"cidr": "fd00::/64", "blockSize": 115}),
                "spec.blockSize",
            ),
            (
                json!({"cidr": "10.244.0.0/16", "vxlanMode": "always"}),
                "spec.vxlanMode",
            ),
            (
                json!({"cidr": "10.244.0.0/16", "ipipMode": "Always"}),
                "spec.ipipMode",
            ),
            (
                json!({"cidr": "10.244.0.0/16", "nodeSelector": "a = 'b'"}),
                "spec.nodeSelector",
            ),
            (
                json!({"cidr": "10.244.0.0/16", "natOutgoing": "yes"}),
                "spec.natOutgoing",
            ),
            (
                json!({"cidr": "10.244.0.0/16", "ipip": {"enabled": true}}),
                "spec.ipip",
            ),
            (
                json!({"cidr": "10.244.0.0/16", "allowedUses": ["Tunnel"]}),
                "spec.allowedUses",
            ),
        ];
        for (spec, field) in cases {
            let error = from_document(&Metadata::named("pool-a"), &spec).unwrap_err();
            assert_eq!(error.field, field, "{spec}: {error}");
        }
    }

    #[test]
    fn cidr_and_block_size_are_immutable() {
        let current = IpPool::new("p", "10.0.0.0/16".parse().unwrap());
        let mut new = current.clone();
        new.nat_outgoing = true;
        check_update(&current, &new).unwrap();
        new.block_size = 28;
        assert_eq!(
            check_update(&current, &new).unwrap_err().field,
            "spec.blockSize"
        );
        new.cidr = "10.1.0.0/16".parse().unwrap();
        assert_eq!(check_update(&current, &new).unwrap_err().field, "spec.cidr");
    }
}
