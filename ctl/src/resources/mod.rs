//! One module per resource kind: the document's spec type with Calico's spellings, the
//! conversion to and from manul-store's record, the checks that need no datastore, and the
//! table columns of `get -o ps|wide`. Here: the checks several kinds share (AS numbers,
//! selectors through manul-ipam's one parser, labels, MAC addresses). Pure, no I/O.

pub mod bgp_config;
pub mod bgp_peer;
pub mod ipam_config;
pub mod ippool;
pub mod node;
pub mod workload;

use std::collections::BTreeMap;

use manul_ipam::pools::Selector;

use crate::{fields::FieldError, kinds::ResourceKind};

/// What a table row needs beyond its object: the cluster's AS number (Node's ASN column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableContext {
    pub default_as_number: u32,
}

impl Default for TableContext {
    fn default() -> Self {
        TableContext {
            default_as_number: manul_store::DEFAULT_AS_NUMBER,
        }
    }
}

/// The column headings of `get KIND -o ps` (or `-o wide`), as calicoctl prints them.
pub fn headings(kind: ResourceKind, wide: bool) -> &'static [&'static str] {
    match (kind, wide) {
        (ResourceKind::IpPool, false) => ippool::PS_COLUMNS,
        (ResourceKind::IpPool, true) => ippool::WIDE_COLUMNS,
        (ResourceKind::IpamConfiguration, false) => ipam_config::PS_COLUMNS,
        (ResourceKind::IpamConfiguration, true) => ipam_config::WIDE_COLUMNS,
        (ResourceKind::Node, false) => node::PS_COLUMNS,
        (ResourceKind::Node, true) => node::WIDE_COLUMNS,
        (ResourceKind::BgpPeer, _) => bgp_peer::COLUMNS,
        (ResourceKind::BgpConfiguration, _) => bgp_config::COLUMNS,
        (ResourceKind::WorkloadEndpoint, false) => workload::PS_COLUMNS,
        (ResourceKind::WorkloadEndpoint, true) => workload::WIDE_COLUMNS,
    }
}

/// A usable 4-byte AS number: 1..=4294967294 without 23456 (AS_TRANS, RFC 6793).
pub fn check_asn(field: &str, asn: i64) -> Result<u32, FieldError> {
    if !(1..=4_294_967_294).contains(&asn) {
        return Err(FieldError::new(
            field,
            format!("{asn} is out of range: AS numbers are 1..=4294967294"),
        ));
    }
    if asn == 23456 {
        return Err(FieldError::new(
            field,
            "23456 is AS_TRANS (RFC 6793), reserved; use another AS number",
        ));
    }
    u32::try_from(asn).map_err(|_| FieldError::new(field, format!("{asn} is out of range")))
}

/// A selector in Calico's language, parsed by manul-ipam's parser (the one the agent uses).
pub fn check_selector(field: &str, text: &str) -> Result<(), FieldError> {
    Selector::parse(text)
        .map(|_| ())
        .map_err(|reason| FieldError::new(field, reason))
}

/// Kubernetes label keys ([prefix/]name, name at most 63 of [A-Za-z0-9._-] starting and
/// ending alphanumeric) and values (at most 63 of the same, or empty).
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), FieldError> {
    for (key, value) in labels {
        let field = format!("metadata.labels.{key}");
        check_label_key(&field, key)?;
        if !value.is_empty() && !is_label_word(value) {
            return Err(FieldError::new(
                field,
                format!(
                    "{value:?} is not a valid label value: at most 63 letters, digits, '-', '_' \
                     and '.', starting and ending with a letter or digit"
                ),
            ));
        }
    }
    Ok(())
}

pub fn check_label_key(field: &str, key: &str) -> Result<(), FieldError> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(is_label_word) {
                return Err(FieldError::new(
                    field,
                    format!("{key:?}: the prefix before '/' must be a DNS subdomain"),
                ));
            }
            name
        }
        None => key,
    };
    if !is_label_word(name) {
        return Err(FieldError::new(
            field,
            format!(
                "{key:?} is not a valid label key: at most 63 letters, digits, '-', '_' and '.', \
                 starting and ending with a letter or digit (optionally after a prefix/)"
            ),
        ));
    }
    Ok(())
}

fn is_label_word(text: &str) -> bool {
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && ends(text.chars().next())
        && ends(text.chars().last())
}

/// "aa:bb:cc:dd:ee:ff".
pub fn check_mac(field: &str, text: &str) -> Result<(), FieldError> {
    let parts: Vec<&str> = text.split(':').collect();
    let valid = parts.len() == 6
        && parts
            .iter()
            .all(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_hexdigit()));
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{text:?} is not a MAC address such as 66:0f:3e:2a:01:02"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_numbers_outside_the_usable_range_are_refused() {
        assert_eq!(check_asn("f", 64512), Ok(64512));
        assert_eq!(check_asn("f", 4_294_967_294), Ok(4_294_967_294));
        for bad in [0, -1, 23456, 4_294_967_295, 1 << 40] {
            assert!(check_asn("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_follow_kubernetes_rules() {
        let good: BTreeMap<String, String> = [
            ("rack".to_string(), "a-1".to_string()),
            ("topology.kubernetes.io/zone".to_string(), String::new()),
        ]
        .into();
        check_labels(&good).unwrap();
        for key in ["", "-a", "a b", "/a", "x/"] {
            let labels = [(key.to_string(), "v".to_string())].into();
            assert!(check_labels(&labels).is_err(), "{key:?}");
        }
        let labels = [("k".to_string(), "a b".to_string())].into();
        assert_eq!(
            check_labels(&labels).unwrap_err().field,
            "metadata.labels.k"
        );
    }

    #[test]
    fn selectors_go_through_the_shared_parser() {
        check_selector("spec.nodeSelector", "rack == 'a' && has(gpu)").unwrap();
        let error = check_selector("spec.nodeSelector", "rack = 'a'").unwrap_err();
        assert_eq!(error.field, "spec.nodeSelector");
    }
}
