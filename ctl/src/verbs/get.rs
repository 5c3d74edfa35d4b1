//! `get KIND [NAME...] [-o ps|wide|yaml|json]`: a table as calicoctl prints it, one document
//! for one name, a `<Kind>List` otherwise. Names that do not exist are reported after what
//! was found, with a non-zero exit. I/O through `Resources` and the output `Write`.

use std::io::Write;

use crate::{
    document::{DocumentList, ListMetadata},
    error::CtlError,
    kinds::{OUTPUT_API_VERSION, ResourceKind},
    output::{OutputFormat, cell_at, write_json, write_table, write_yaml},
    resources::headings,
    store_access::{Resources, Stored},
};

pub async fn get(
    resources: &Resources,
    kind: ResourceKind,
    names: &[String],
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let (found, missing, revision) = if names.is_empty() {
        let (objects, revision) = resources.list(kind).await?;
        (objects, Vec::new(), revision.0)
    } else {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            match resources.get(kind, name).await? {
                Some(stored) => found.push(stored),
                None => missing.push(name.clone()),
            }
        }
        let revision = found
            .iter()
            .map(|stored| stored.revision.0.clone())
            .max_by_key(|revision| revision.parse::<u64>().unwrap_or(0))
            .unwrap_or_default();
        (found, missing, revision)
    };
    match &format {
        OutputFormat::Ps | OutputFormat::Wide => {
            let wide = format == OutputFormat::Wide;
            let context = resources.table_context(kind).await?;
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|stored| stored.object.row(wide, &context))
                .collect();
            if !rows.is_empty() || missing.is_empty() {
                write_table(out, headings(kind, wide), &rows)?;
            }
        }
        OutputFormat::CustomColumns(columns) => {
            let headings: Vec<&str> = columns
                .iter()
                .map(|(heading, _)| heading.as_str())
                .collect();
            let mut rows = Vec::new();
            for stored in &found {
                let document = serde_json::to_value(stored.object.document(Some(&stored.revision)))
                    .map_err(|error| CtlError::Usage(format!("cannot render: {error}")))?;
                rows.push(
                    columns
                        .iter()
                        .map(|(_, path)| cell_at(&document, path))
                        .collect(),
                );
            }
            write_table(out, &headings, &rows)?;
        }
        OutputFormat::Yaml | OutputFormat::Json => {
            let single = names.len() == 1;
            if single {
                if let Some(stored) = found.first() {
                    let document = stored.object.document(Some(&stored.revision));
                    render(out, &format, &document)?;
                }
            } else {
                let list = list_document(kind, &found, revision);
                render(out, &format, &list)?;
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CtlError::Missing {
            kind,
            names: missing,
        })
    }
}

fn list_document(
    kind: ResourceKind,
    found: &[Stored],
    revision: String,
) -> DocumentList<crate::object::AnySpec> {
    DocumentList {
        api_version: OUTPUT_API_VERSION,
        kind: format!("{kind}List"),
        metadata: ListMetadata {
            resource_version: revision,
        },
        items: found
            .iter()
            .map(|stored| stored.object.document(Some(&stored.revision)))
            .collect(),
    }
}

fn render<T: serde::Serialize>(
    out: &mut dyn Write,
    format: &OutputFormat,
    value: &T,
) -> Result<(), CtlError> {
    if *format == OutputFormat::Json {
        write_json(out, value)
    } else {
        write_yaml(out, value)
    }
}
