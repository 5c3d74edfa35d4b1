//! Reading input documents: a file or standard input ("-"), YAML (several documents separated
//! by `---`) or JSON (one value, a stream of values or an array), with list documents
//! (`kind: List`, `kind: IPPoolList`) expanded into their items. Reads the file; no other I/O.

use std::io::Read;

use serde::Deserialize;
use serde_json::Value;

use crate::document::list_items;

/// One document of the input and where it came from ("pools.yaml, document 2").
#[derive(Clone, Debug, PartialEq)]
pub struct SourceDocument {
    pub origin: String,
    pub value: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {origin}: {source}; check the path given to -f")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    #[error("{origin}: {reason}")]
    Syntax { origin: String, reason: String },
    #[error("{origin} holds no document; give at least one resource")]
    Empty { origin: String },
}

/// Reads `path` ("-" for standard input) and splits it into documents.
pub fn read_documents(path: &str) -> Result<Vec<SourceDocument>, InputError> {
    let (origin, text) = if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| InputError::Read {
                origin: "standard input".into(),
                source,
            })?;
        ("standard input".to_string(), text)
    } else {
        let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
            origin: path.to_string(),
            source,
        })?;
        (path.to_string(), text)
    };
    parse_documents(&text, &origin)
}

/// Splits `text` into documents, JSON when it starts with `{` or `[`, YAML otherwise.
pub fn parse_documents(text: &str, origin: &str) -> Result<Vec<SourceDocument>, InputError> {
    let trimmed = text.trim_start();
    let values = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        parse_json(text, origin)?
    } else {
        parse_yaml(text, origin)?
    };
    let mut documents = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let origin = format!("{origin}, document {}", index + 1);
        match list_items(&value) {
            Some(Ok(items)) => {
                for (position, item) in items.iter().enumerate() {
                    documents.push(SourceDocument {
                        origin: format!("{origin}, items[{position}]"),
                        value: item.clone(),
                    });
                }
            }
            Some(Err(error)) => {
                return Err(InputError::Syntax {
                    origin,
                    reason: error.to_string(),
                });
            }
            None => documents.push(SourceDocument { origin, value }),
        }
    }
    if documents.is_empty() {
        return Err(InputError::Empty {
            origin: origin.to_string(),
        });
    }
    Ok(documents)
}

fn parse_json(text: &str, origin: &str) -> Result<Vec<Value>, InputError> {
    let mut values = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let value = value.map_err(|error| InputError::Syntax {
            origin: origin.to_string(),
            reason: format!("not valid JSON: {error}"),
        })?;
        match value {
            Value::Array(items) => values.extend(items),
            value => values.push(value),
        }
    }
    Ok(values)
}

fn parse_yaml(text: &str, origin: &str) -> Result<Vec<Value>, InputError> {
    let mut values = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|error| InputError::Syntax {
            origin: format!("{origin}, document {}", index + 1),
            reason: format!("not valid YAML: {error}"),
        })?;
        if !value.is_null() {
            values.push(value);
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn yaml_documents_are_split_and_empty_ones_skipped() {
        let text = "---\napiVersion: manul.dev/v1\nkind: IPPool\n---\n---\nkind: Node\n";
        let documents = parse_documents(text, "f.yaml").unwrap();
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[1].value, json!({"kind": "Node"}));
        assert_eq!(documents[1].origin, "f.yaml, document 2");
    }

    #[test]
    fn json_values_arrays_and_lists_are_expanded() {
        let text = r#"{"kind":"IPPool"} [{"kind":"Node"},{"kind":"BGPPeer"}]
            {"kind":"IPPoolList","items":[{"kind":"IPPool","n":1},{"kind":"IPPool","n":2}]}"#;
        let documents = parse_documents(text, "f.json").unwrap();
        assert_eq!(documents.len(), 5);
        assert_eq!(documents[4].origin, "f.json, document 4, items[1]");
    }

    #[test]
    fn syntax_errors_and_empty_input_are_refused() {
        assert!(matches!(
            parse_documents("a: [1", "f"),
            Err(InputError::Syntax { .. })
        ));
        assert!(matches!(
            parse_documents("{\"a\":", "f"),
            Err(InputError::Syntax { .. })
        ));
        assert!(matches!(
            parse_documents("---\n", "f"),
            Err(InputError::Empty { .. })
        ));
    }
}
