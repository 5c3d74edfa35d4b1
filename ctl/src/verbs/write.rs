//! `create`, `apply`, `replace` and `validate`. Validate, then mutate: every document is
//! parsed and checked, then checked against the datastore (names taken or missing, stale
//! resourceVersions, pools overlapping stored pools or each other, immutable pool fields),
//! and only then written, one compare-and-swap each. `apply` retries a lost race from a
//! fresh read; `replace` and `create` report it. I/O through `Resources`.

use std::{collections::BTreeMap, io::Write};

use manul_ipam::{pools, retry::CasRetry};
use manul_store::{IpPool, StoreError};

use crate::{
    error::CtlError,
    input::SourceDocument,
    object::Object,
    resources::ippool,
    store_access::{Resources, Stored},
    verbs::{Parsed, parse_all, summary},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    Create,
    Apply,
    Replace,
}

impl WriteMode {
    fn verb(self) -> &'static str {
        match self {
            WriteMode::Create => "create",
            WriteMode::Apply => "apply",
            WriteMode::Replace => "replace",
        }
    }

    fn past(self) -> &'static str {
        match self {
            WriteMode::Create => "created",
            WriteMode::Apply => "applied",
            WriteMode::Replace => "replaced",
        }
    }
}

/// `validate -f FILE`: parses and checks every document; writes nothing, reads nothing.
pub fn validate(documents: &[SourceDocument], out: &mut dyn Write) -> Result<(), CtlError> {
    let parsed = parse_all(documents)?;
    for document in &parsed {
        writeln!(
            out,
            "{}: {} is valid",
            document.origin,
            document.object.describe()
        )?;
    }
    let kinds: Vec<_> = parsed
        .iter()
        .map(|document| document.object.kind())
        .collect();
    writeln!(out, "{}", summary("validated", &kinds))?;
    Ok(())
}

/// `create|apply|replace -f FILE`, with the documents parsed and checked by `parse_all`.
pub async fn write(
    resources: &Resources,
    parsed: &[Parsed],
    mode: WriteMode,
    skip_exists: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let current = preflight(resources, parsed, mode, skip_exists).await?;
    let mut written = Vec::new();
    let mut skipped = 0;
    for (index, document) in parsed.iter().enumerate() {
        let key = (document.object.kind(), document.object.name());
        if mode == WriteMode::Create && skip_exists && current.contains_key(&key) {
            skipped += 1;
            continue;
        }
        if let Err(error) = write_one(resources, document, mode).await {
            if index > 0 {
                writeln!(
                    out,
                    "Partial success: {} the first {index} out of {} resources",
                    mode.past(),
                    parsed.len()
                )?;
            }
            return Err(CtlError::Usage(format!(
                "Failed to {} {}: {error}",
                mode.verb(),
                document.object.describe()
            )));
        }
        written.push(document.object.kind());
    }
    let mut line = summary(mode.past(), &written);
    if skipped > 0 {
        line.push_str(&format!(" ({skipped} skipped: they exist)"));
    }
    writeln!(out, "{line}")?;
    Ok(())
}

type Current = BTreeMap<(crate::kinds::ResourceKind, String), Stored>;

/// Everything that can be refused before the first write.
async fn preflight(
    resources: &Resources,
    parsed: &[Parsed],
    mode: WriteMode,
    skip_exists: bool,
) -> Result<Current, CtlError> {
    let mut current = Current::new();
    for document in parsed {
        let (kind, name) = (document.object.kind(), document.object.name());
        let stored = resources.get(kind, &name).await?;
        match (mode, &stored) {
            (WriteMode::Create, Some(_)) if !skip_exists => {
                return Err(CtlError::AlreadyExists { kind, name });
            }
            (WriteMode::Replace, None) => return Err(CtlError::NotFound { kind, name }),
            _ => {}
        }
        if let (Some(stored), Some(given)) = (&stored, &document.resource_version)
            && mode != WriteMode::Create
            && stored.revision.0 != *given
        {
            return Err(CtlError::Stale {
                kind,
                name,
                given: given.clone(),
                current: stored.revision.0.clone(),
            });
        }
        if let Some(stored) = stored {
            current.insert((kind, name), stored);
        }
    }
    check_pools(resources, parsed, &current).await?;
    Ok(current)
}

/// New pools against the stored pools and the file's earlier pools; changed pools against
/// their immutable fields.
async fn check_pools(
    resources: &Resources,
    parsed: &[Parsed],
    current: &Current,
) -> Result<(), CtlError> {
    let mut known: Vec<IpPool> = resources.ipam().pools().await?;
    for document in parsed {
        let Object::IpPool(pool) = &document.object else {
            continue;
        };
        let refused = |error| CtlError::Document {
            origin: document.origin.clone(),
            what: format!("{} {:?}: ", document.object.kind(), pool.name),
            error,
        };
        match current.get(&(document.object.kind(), pool.name.clone())) {
            Some(Stored {
                object: Object::IpPool(old),
                ..
            }) => ippool::check_update(old, pool).map_err(refused)?,
            _ => {
                let others: Vec<IpPool> = known
                    .iter()
                    .filter(|other| other.name != pool.name)
                    .cloned()
                    .collect();
                pools::validate(pool, &others)
                    .map_err(|error| refused(ippool::pool_field_error(error)))?;
                known.push(pool.clone());
            }
        }
    }
    Ok(())
}

/// One compare-and-swap write, from a fresh read. `apply` without a resourceVersion retries
/// a lost race; everything else reports it.
async fn write_one(
    resources: &Resources,
    document: &Parsed,
    mode: WriteMode,
) -> Result<(), CtlError> {
    let (kind, name) = (document.object.kind(), document.object.name());
    let mut retry = CasRetry::new(|| format!("writing {}", document.object.describe()));
    loop {
        let result = match (mode, resources.get(kind, &name).await?) {
            (WriteMode::Create, Some(_)) => Err(CtlError::AlreadyExists {
                kind,
                name: name.clone(),
            }),
            (WriteMode::Create | WriteMode::Apply, None) => {
                resources.create(&document.object).await
            }
            (WriteMode::Replace, None) => Err(CtlError::NotFound {
                kind,
                name: name.clone(),
            }),
            (WriteMode::Apply | WriteMode::Replace, Some(stored)) => {
                match &document.resource_version {
                    Some(given) if *given != stored.revision.0 => Err(CtlError::Stale {
                        kind,
                        name: name.clone(),
                        given: given.clone(),
                        current: stored.revision.0.clone(),
                    }),
                    _ => resources.update(&document.object, &stored).await,
                }
            }
        };
        match result {
            Err(error)
                if mode == WriteMode::Apply
                    && document.resource_version.is_none()
                    && error.is_lost_race() =>
            {
                retry
                    .lost(StoreError::Conflict {
                        kind: kind.store_kind(),
                        name: name.clone(),
                    })
                    .await?;
            }
            other => return other,
        }
    }
}
