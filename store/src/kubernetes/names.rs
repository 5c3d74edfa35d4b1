//! The reversible mapping between manul store names and Kubernetes object names. Pure, no I/O.
//!
//! Kubernetes object names are DNS-1123 subdomains: at most 253 characters of `a-z`, `0-9`,
//! `-` and `.`, with every dot-separated label starting and ending with a letter or digit.
//! Most manul names already are (blocks "10-244-0-0-26", handles
//! "k8s-pod-network.<container id>", node and pool names), and those map to themselves, so
//! `kubectl get ipamblocks` shows the names an operator knows. Any other name ("a/x",
//! "Default", "node.n1_x") is written as `x--` followed by the base32 (RFC 4648, lower case,
//! no padding) of its UTF-8 bytes; a valid name that itself starts with `x--` is encoded too,
//! so the two forms never collide. Calico instead lower-cases and keeps the true name in the
//! spec, which is not reversible from the object name alone; this is.

/// The prefix of every encoded name.
const ENCODED: &str = "x--";
/// The longest Kubernetes object name.
const MAX_OBJECT_NAME: usize = 253;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the empty name cannot be stored in Kubernetes")]
    Empty,
    #[error(
        "{length}-byte name is too long for a Kubernetes object once encoded (at most 155 bytes for names that are not DNS-1123 subdomains)"
    )]
    TooLong { length: usize },
}

/// True for a DNS-1123 subdomain (what Kubernetes accepts as an object name).
pub fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_OBJECT_NAME
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            let alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            bytes.first().is_some_and(alphanumeric)
                && bytes.last().is_some_and(alphanumeric)
                && bytes.iter().all(|b| alphanumeric(b) || *b == b'-')
        })
}

/// The Kubernetes object name of the store name `name`.
pub fn object_name(name: &str) -> Result<String, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if is_object_name(name) && !name.starts_with(ENCODED) {
        return Ok(name.to_string());
    }
    let encoded = format!("{ENCODED}{}", base32(name.as_bytes()));
    if encoded.len() > MAX_OBJECT_NAME {
        return Err(NameError::TooLong { length: name.len() });
    }
    Ok(encoded)
}

/// The store name of the Kubernetes object named `object`; None for an encoded name that
/// `object_name` cannot have made.
pub fn store_name(object: &str) -> Option<String> {
    match object.strip_prefix(ENCODED) {
        None => Some(object.to_string()),
        Some(encoded) => {
            let name = String::from_utf8(unbase32(encoded)?).ok()?;
            // Only the canonical form: a name that maps to itself was never encoded.
            (object_name(&name).ok()? == object).then_some(name)
        }
    }
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = ALPHABET.iter().position(|a| *a == c)? as u32;
        buffer = ((buffer << 5) | value) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    // Leftover bits are padding: fewer than 5, and zero in the canonical form.
    (bits < 5 && buffer & ((1 << bits) - 1) == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn valid_names_map_to_themselves_and_others_are_encoded() {
        for name in [
            "10-244-0-0-26",
            "k8s-pod-network.0123abc",
            "node-1",
            "default",
        ] {
            assert_eq!(object_name(name).unwrap(), name);
        }
        for name in ["a/x", "Default", "n1_x", "-a", "a.", "x--y", "fd00---122."] {
            let object = object_name(name).unwrap();
            assert!(
                object.starts_with(ENCODED) && is_object_name(&object),
                "{object}"
            );
            assert_eq!(store_name(&object).as_deref(), Some(name));
        }
        assert_eq!(object_name(""), Err(NameError::Empty));
        assert!(matches!(
            object_name(&"A".repeat(200)),
            Err(NameError::TooLong { length: 200 })
        ));
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        // "x--" + base32("abc") decodes to "abc", which is stored unencoded.
        assert_eq!(store_name(&format!("{ENCODED}{}", base32(b"abc"))), None);
        assert_eq!(store_name("x--1"), None);
        assert_eq!(store_name("x--ab"), None, "non-zero padding bits");
    }

    proptest! {
        #[test]
        fn every_name_round_trips_through_a_valid_object_name(name in "\\PC{1,30}") {
            let object = object_name(&name).unwrap();
            prop_assert!(is_object_name(&object), "{object}");
            prop_assert_eq!(store_name(&object), Some(name));
        }

        #[test]
        fn names_of_kubernetes_characters_round_trip(name in "[a-z0-9.x-]{1,80}") {
            let object = object_name(&name).unwrap();
            prop_assert!(is_object_name(&object), "{object}");
            prop_assert_eq!(store_name(&object), Some(name));
        }

        #[test]
        fn distinct_names_get_distinct_objects(a in "[a-zA-Z0-9./_-]{1,30}", b in "[a-zA-Z0-9./_-]{1,30}") {
            prop_assume!(a != b);
            prop_assert_ne!(object_name(&a).unwrap(), object_name(&b).unwrap());
        }
    }
}
