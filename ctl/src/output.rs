//! What `get` prints: aligned tables (as calicoctl's tabwriter: columns padded to the widest
//! cell plus three spaces, the last column unpadded), YAML and JSON documents. Writes to the
//! `Write` it is given; no other I/O.

use std::{fmt, io::Write, str::FromStr};

use serde::Serialize;

use crate::error::CtlError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Ps,
    Wide,
    Yaml,
    Json,
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ps" => Ok(OutputFormat::Ps),
            "wide" => Ok(OutputFormat::Wide),
            "yaml" => Ok(OutputFormat::Yaml),
            "json" => Ok(OutputFormat::Json),
            other => Err(format!(
                "unknown output format {other:?}: use ps, wide, yaml or json"
            )),
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
    }
}
