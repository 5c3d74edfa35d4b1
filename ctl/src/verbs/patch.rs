//! `patch KIND NAME -p JSON` (a JSON merge patch on the resource's document, checked like a
//! new document) and `label KIND NAME key=value|key-`. Both write by compare-and-swap at
//! the revision they read and retry a lost race from a fresh read, unless the patch names a
//! resourceVersion. I/O through `Resources` and the output `Write`.

use std::io::Write;

use manul_ipam::retry::CasRetry;
use manul_store::StoreError;
use serde_json::Value;

use crate::{
    document::split,
    error::CtlError,
    fields::FieldError,
    kinds::ResourceKind,
    merge_patch::merge_patch,
    object::Object,
    resources::{check_label_key, check_labels},
    store_access::{Resources, Stored},
};

pub async fn patch(
    resources: &Resources,
    kind: ResourceKind,
    name: &str,
    patch_text: &str,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let patch: Value = serde_json::from_str(patch_text).map_err(|error| {
        CtlError::Usage(format!(
            "-p: not valid JSON ({error}); give a merge patch such as '{{\"spec\":{{\"disabled\":true}}}}'"
        ))
    })?;
    let given = patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let origin = format!("{kind} {name:?} after the patch");
    let mut retry = CasRetry::new(|| format!("patching {kind} {name:?}"));
    loop {
        let current = read(resources, kind, name).await?;
        let mut document = serde_json::to_value(current.object.document(Some(&current.revision)))
            .map_err(|error| {
            CtlError::Usage(format!("cannot render {kind} {name:?}: {error}"))
        })?;
        merge_patch(&mut document, &patch);
        let refused = |error| CtlError::Document {
            origin: origin.clone(),
            what: String::new(),
            error,
        };
        let raw = split(&document).map_err(refused)?;
        if raw.kind != kind || raw.metadata.name != name {
            return Err(refused(FieldError::new(
                if raw.kind != kind {
                    "kind"
                } else {
                    "metadata.name"
                },
                "a patch cannot change what it patches; create the new resource and delete this one",
            )));
        }
        let object = Object::from_document(&raw).map_err(refused)?;
        if let Some(given) = &given
            && *given != current.revision.0
        {
            return Err(CtlError::Stale {
                kind,
                name: name.to_string(),
                given: given.clone(),
                current: current.revision.0,
            });
        }
        if write(resources, &object, &current, given.is_none(), &mut retry).await? {
            break;
        }
    }
    writeln!(out, "Successfully patched 1 '{kind}' resource")?;
    Ok(())
}

pub async fn label(
    resources: &Resources,
    kind: ResourceKind,
    name: &str,
    label: &str,
    overwrite: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let refused = |field: String, reason: String| CtlError::Refused {
        kind,
        name: name.to_string(),
        error: FieldError::new(field, reason),
    };
    let change = match label.strip_suffix('-') {
        Some(key) if !key.contains('=') => (key.to_string(), None),
        _ => match label.split_once('=') {
            Some((key, value)) => (key.to_string(), Some(value.to_string())),
            None => {
                return Err(CtlError::Usage(format!(
                    "{label:?}: give key=value to set a label or key- to remove one"
                )));
            }
        },
    };
    let (key, value) = change;
    let field = format!("metadata.labels.{key}");
    check_label_key(&field, &key).map_err(|error| refused(error.field, error.reason))?;
    if let Some(value) = &value {
        check_labels(&[(key.clone(), value.clone())].into())
            .map_err(|error| refused(error.field, error.reason))?;
    }
    let mut retry = CasRetry::new(|| format!("labelling {kind} {name:?}"));
    loop {
        let current = read(resources, kind, name).await?;
        let mut object = current.object.clone();
        let labels = &mut object.metadata_mut().labels;
        let existing = labels.get(&key).cloned();
        match (&value, existing) {
            (None, None) => {
                return Err(refused(field, "is not set; nothing to remove".into()));
            }
            (Some(new), Some(old)) if *new != old && !overwrite => {
                return Err(refused(
                    field,
                    format!("is {old:?} already; add --overwrite to change it"),
                ));
            }
            (Some(new), _) => {
                labels.insert(key.clone(), new.clone());
            }
            (None, Some(_)) => {
                labels.remove(&key);
            }
        }
        if write(resources, &object, &current, true, &mut retry).await? {
            break;
        }
    }
    let verb = if value.is_some() {
        "labelled"
    } else {
        "removed the label from"
    };
    writeln!(out, "Successfully {verb} {kind} {name:?}")?;
    Ok(())
}

async fn read(resources: &Resources, kind: ResourceKind, name: &str) -> Result<Stored, CtlError> {
    resources
        .get(kind, name)
        .await?
        .ok_or_else(|| CtlError::NotFound {
            kind,
            name: name.to_string(),
        })
}

/// Writes `object` over `current`: Ok(true) when written, Ok(false) after a lost race that
/// should be retried from a fresh read.
async fn write<W: FnOnce() -> String>(
    resources: &Resources,
    object: &Object,
    current: &Stored,
    may_retry: bool,
    retry: &mut CasRetry<W>,
) -> Result<bool, CtlError> {
    match resources.update(object, current).await {
        Ok(()) => Ok(true),
        Err(CtlError::Conflict { .. }) if may_retry => {
            retry
                .lost(StoreError::Conflict {
                    kind: object.kind().store_kind(),
                    name: object.name(),
                })
                .await?;
            Ok(false)
        }
        Err(error) => Err(error),
    }
}
