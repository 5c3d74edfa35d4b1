//! `delete -f FILE` and `delete KIND NAME...`: each resource is deleted by compare-and-swap
//! at the revision it was read at (or at the resourceVersion its document names). Missing
//! resources fail unless `--skip-not-exists`; every name is checked before the first delete.
//! I/O through `Resources` and the output `Write`.

use std::io::Write;

use crate::{
    document::split,
    error::CtlError,
    input::SourceDocument,
    kinds::ResourceKind,
    store_access::{Resources, Stored},
    verbs::summary,
};

/// What to delete: kind, name and an optional resourceVersion to compare with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: ResourceKind,
    pub name: String,
    pub resource_version: Option<String>,
}

/// The targets a file names (only apiVersion, kind and metadata are read).
pub fn targets_of(documents: &[SourceDocument]) -> Result<Vec<Target>, CtlError> {
    documents
        .iter()
        .map(|document| {
            let raw = split(&document.value).map_err(|error| CtlError::Document {
                origin: document.origin.clone(),
                what: String::new(),
                error,
            })?;
            Ok(Target {
                kind: raw.kind,
                name: raw.metadata.name,
                resource_version: raw.metadata.resource_version,
            })
        })
        .collect()
}

pub async fn delete(
    resources: &Resources,
    targets: &[Target],
    skip_not_exists: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let mut found: Vec<Stored> = Vec::new();
    for target in targets {
        match resources.get(target.kind, &target.name).await? {
            None if skip_not_exists => {}
            None => {
                return Err(CtlError::NotFound {
                    kind: target.kind,
                    name: target.name.clone(),
                });
            }
            Some(stored) => {
                if let Some(given) = &target.resource_version
                    && *given != stored.revision.0
                {
                    return Err(CtlError::Stale {
                        kind: target.kind,
                        name: target.name.clone(),
                        given: given.clone(),
                        current: stored.revision.0,
                    });
                }
                found.push(stored);
            }
        }
    }
    let mut deleted = Vec::new();
    for stored in &found {
        if let Err(error) = resources.delete(stored).await {
            if !deleted.is_empty() {
                writeln!(
                    out,
                    "Partial success: deleted the first {} out of {} resources",
                    deleted.len(),
                    found.len()
                )?;
            }
            return Err(CtlError::Usage(format!(
                "Failed to delete {}: {error}",
                stored.object.describe()
            )));
        }
        deleted.push(stored.object.kind());
    }
    let skipped = targets.len() - found.len();
    let mut line = summary("deleted", &deleted);
    if skipped > 0 {
        line.push_str(&format!(" ({skipped} did not exist)"));
    }
    writeln!(out, "{line}")?;
    Ok(())
}
