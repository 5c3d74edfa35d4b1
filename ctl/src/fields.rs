//! Field-naming errors of input documents and the helpers that decode a document's parts so
//! that every refusal names the field ("spec.blockSize") and the reason. Pure, no I/O.

use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A refused field: where ("spec.cidr", "metadata.labels") and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// `parent.child`, or `child` at the top.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// A Calico field manul knows of but does not implement yet, and what to do instead.
#[derive(Clone, Copy, Debug)]
pub struct Unsupported {
    pub field: &'static str,
    pub advice: &'static str,
}

/// Refuses, by name, the keys of the mapping at `path` that are in `unsupported` (with their
/// advice) or that are not in `supported` at all. Nothing is ever dropped silently.
pub fn check_keys(
    value: &Value,
    path: &str,
    supported: &[&str],
    unsupported: &[Unsupported],
) -> Result<(), FieldError> {
    let Some(map) = value.as_object() else {
        if value.is_null() {
            return Ok(());
        }
        return Err(FieldError::new(
            path,
            "must be a mapping (key: value pairs)",
        ));
    };
    for key in map.keys() {
        if supported.contains(&key.as_str()) {
            continue;
        }
        let field = join(path, key);
        if let Some(entry) = unsupported.iter().find(|entry| entry.field == key.as_str()) {
            return Err(FieldError::new(
                field,
                format!("not supported by manul yet; {}", entry.advice),
            ));
        }
        let hint = supported
            .iter()
            .map(|known| {
                let distance =
                    edit_distance(&known.to_ascii_lowercase(), &key.to_ascii_lowercase());
                (distance, known)
            })
            .filter(|(distance, _)| *distance <= 2)
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, known)| format!(" (did you mean {known}?)"))
            .unwrap_or_default();
        return Err(FieldError::new(
            field,
            format!(
                "unknown field{hint}; {} takes: {}",
                if path.is_empty() { "a document" } else { path },
                supported.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Decodes `value` (the part of a document at `path`) into `T`; a type error or an unknown
/// field deep inside names its full path ("spec.password.secretKeyRef: missing field `key`").
pub fn decode<T: DeserializeOwned>(value: &Value, path: &str) -> Result<T, FieldError> {
    let value = if value.is_null() {
        Value::Object(Default::default())
    } else {
        value.clone()
    };
    serde_path_to_error::deserialize(value).map_err(|error| {
        let inner = error.path().to_string();
        let field = if inner == "." {
            path.to_string()
        } else {
            join(path, &inner)
        };
        FieldError::new(field, error.into_inner().to_string())
    })
}

/// Parses the text of a field; the error shows the text and an example of what is wanted.
pub fn parse<T: FromStr>(field: &str, text: &str, wanted: &str) -> Result<T, FieldError> {
    text.trim()
        .parse()
        .map_err(|_| FieldError::new(field, format!("{text:?} is not {wanted}")))
}

/// Checks a number against an inclusive range, naming the field.
pub fn in_range<T>(field: &str, value: i64, min: i64, max: i64) -> Result<T, FieldError>
where
    T: TryFrom<i64>,
{
    if !(min..=max).contains(&value) {
        return Err(FieldError::new(
            field,
            format!("{value} is out of range: use {min}..={max}"),
        ));
    }
    T::try_from(value).map_err(|_| FieldError::new(field, format!("{value} is out of range")))
}

/// A Kubernetes object name (a DNS subdomain: lower-case letters, digits, '-' and '.',
/// starting and ending with a letter or digit, at most 253 characters).
pub fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if name.len() > 253 || !valid_chars || !ends(name.chars().next()) || !ends(name.chars().last())
    {
        return Err(FieldError::new(
            field,
            format!(
                "{name:?} is not a valid name: use at most 253 lower-case letters, digits, '-' and '.', \
                 starting and ending with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// `serde(skip_serializing_if)` for booleans that documents omit when false.
pub fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        key: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        size: u8,
        inner: Option<Inner>,
    }

    #[test]
    fn decoding_errors_name_the_full_path() {
        let error = decode::<Outer>(&json!({"size": 300}), "spec").unwrap_err();
        assert_eq!(error.field, "spec.size");
        let error = decode::<Outer>(&json!({"size": 1, "inner": {}}), "spec").unwrap_err();
        assert_eq!(error.field, "spec.inner");
        assert!(error.reason.contains("key"), "{error}");
        let error = decode::<Outer>(&json!({"size": 1, "inner": {"key": "k", "x": 1}}), "spec")
            .unwrap_err();
        assert!(error.to_string().starts_with("spec.inner"), "{error}");
        assert!(error.reason.contains("`x`"), "{error}");
    }

    #[test]
    fn unknown_and_unsupported_keys_are_refused_by_name() {
        let unsupported = [Unsupported {
            field: "allowedUses",
            advice: "remove it",
        }];
        let error = check_keys(
            &json!({"cidr": 1, "Cidrs": 2}),
            "spec",
            &["cidr"],
            &unsupported,
        )
        .unwrap_err();
        assert_eq!(error.field, "spec.Cidrs");
        let error = check_keys(&json!({"CIDR": 1}), "spec", &["cidr"], &[]).unwrap_err();
        assert!(error.reason.contains("did you mean cidr"), "{error}");
        let error =
            check_keys(&json!({"allowedUses": []}), "spec", &["cidr"], &unsupported).unwrap_err();
        assert_eq!(error.field, "spec.allowedUses");
        assert!(error.reason.contains("not supported"), "{error}");
        check_keys(&json!({"cidr": 1}), "spec", &["cidr"], &unsupported).unwrap();
    }

    #[test]
    fn names_are_dns_subdomains() {
        check_name("metadata.name", "pool-a.v4").unwrap();
        for bad in ["", "Pool", "-a", "a-", "a_b", "a/b"] {
            assert!(check_name("metadata.name", bad).is_err(), "{bad:?}");
        }
    }
}
