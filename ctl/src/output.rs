//! What `get` prints: aligned tables (as calicoctl's tabwriter: columns padded to the widest
//! cell plus three spaces, the last column unpadded), custom columns picked from the
//! documents by path (kubectl's `custom-columns=HEADER:.spec.cidr,...`), YAML and JSON
//! documents. Writes to the `Write` it is given; no other I/O.

use std::{fmt, io::Write, str::FromStr};

use serde::Serialize;
use serde_json::Value;

use crate::error::CtlError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Ps,
    Wide,
    Yaml,
    Json,
    /// (heading, path) pairs: `custom-columns=NAME:.metadata.name,CIDR:.spec.cidr`.
    CustomColumns(Vec<(String, String)>),
}

/// Parses `HEADER:.path,HEADER:.path`; paths are dotted keys with optional `[index]`.
fn parse_custom_columns(spec: &str) -> Result<OutputFormat, String> {
    let columns = spec
        .split(',')
        .map(|column| {
            let (heading, path) = column
                .split_once(':')
                .filter(|(heading, path)| !heading.is_empty() && path.starts_with('.'))
                .ok_or_else(|| {
                    format!("custom-columns: {column:?} is not HEADER:.path, e.g. CIDR:.spec.cidr")
                })?;
            Ok((heading.to_string(), path.to_string()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(OutputFormat::CustomColumns(columns))
}

/// The value at `path` (".spec.cidr", ".spec.ipNetworks[0]") of a document, as a cell:
/// strings as they are, other values as JSON, "<none>" when absent (as kubectl).
pub fn cell_at(document: &Value, path: &str) -> String {
    let mut current = Some(document);
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|part| !part.is_empty())
    {
        let (key, indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            current = current.and_then(|value| value.get(key));
        }
        for index in indexes.split('[').filter(|index| !index.is_empty()) {
            let index = index.trim_end_matches(']').parse::<usize>().ok();
            current = current.and_then(|value| value.get(index?));
        }
    }
    match current {
        None | Some(Value::Null) => "<none>".into(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ps" => Ok(OutputFormat::Ps),
            "wide" => Ok(OutputFormat::Wide),
            "yaml" => Ok(OutputFormat::Yaml),
            "json" => Ok(OutputFormat::Json),
            other => match other.strip_prefix("custom-columns=") {
                Some(spec) => parse_custom_columns(spec),
                None => Err(format!(
                    "unknown output format {other:?}: use ps, wide, yaml, json or \
                     custom-columns=HEADER:.path,..."
                )),
            },
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputFormat::Ps => "ps",
            OutputFormat::Wide => "wide",
            OutputFormat::Yaml => "yaml",
            OutputFormat::Json => "json",
            OutputFormat::CustomColumns(_) => "custom-columns",
        })
    }
}

const PADDING: usize = 3;

/// Writes `headings` and `rows` as an aligned table.
pub fn write_table(
    out: &mut dyn Write,
    headings: &[&str],
    rows: &[Vec<String>],
) -> Result<(), CtlError> {
    let columns = headings.len();
    let mut widths: Vec<usize> = headings
        .iter()
        .map(|heading| heading.chars().count())
        .collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate().take(columns) {
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let heading_row: Vec<String> = headings.iter().map(|heading| heading.to_string()).collect();
    for row in std::iter::once(&heading_row).chain(rows) {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate().take(columns) {
            line.push_str(cell);
            if index + 1 < columns {
                let pad = widths[index] + PADDING - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Writes `value` as one YAML document.
pub fn write_yaml<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CtlError> {
    let text = serde_yaml_ng::to_string(value)
        .map_err(|error| CtlError::Usage(format!("cannot render YAML: {error}")))?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Writes `value` as indented JSON.
pub fn write_json<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CtlError> {
    serde_json::to_writer_pretty(&mut *out, value)
        .map_err(|error| CtlError::Usage(format!("cannot render JSON: {error}")))?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned_like_calicoctls() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &["NAME", "CIDR", "SELECTOR"],
            &[
                vec![
                    "default-ipv4-ippool".into(),
                    "192.168.0.0/16".into(),
                    "all()".into(),
                ],
                vec!["p".into(), "fd00::/64".into(), "".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME                  CIDR             SELECTOR\n\
             default-ipv4-ippool   192.168.0.0/16   all()\n\
             p                     fd00::/64\n"
        );
    }

    #[test]
    fn formats_parse() {
        assert_eq!("wide".parse(), Ok(OutputFormat::Wide));
        assert!("table".parse::<OutputFormat>().is_err());
        assert_eq!(
            "custom-columns=NAME:.metadata.name,NET:.spec.ipNetworks[1]".parse(),
            Ok(OutputFormat::CustomColumns(vec![
                ("NAME".into(), ".metadata.name".into()),
                ("NET".into(), ".spec.ipNetworks[1]".into()),
            ]))
        );
        assert!("custom-columns=NAME".parse::<OutputFormat>().is_err());
        assert!(
            "custom-columns=NAME:metadata"
                .parse::<OutputFormat>()
                .is_err()
        );
    }

    #[test]
    fn cells_are_picked_by_path() {
        let document = serde_json::json!({"metadata": {"name": "p"},
            "spec": {"blockSize": 26, "ipNetworks": ["a", "b"], "nat": true}});
        assert_eq!(cell_at(&document, ".metadata.name"), "p");
        assert_eq!(cell_at(&document, ".spec.blockSize"), "26");
        assert_eq!(cell_at(&document, ".spec.ipNetworks[1]"), "b");
        assert_eq!(cell_at(&document, ".spec.ipNetworks"), "[\"a\",\"b\"]");
        assert_eq!(cell_at(&document, ".spec.missing"), "<none>");
        assert_eq!(cell_at(&document, ".spec.ipNetworks[7]"), "<none>");
    }
}
