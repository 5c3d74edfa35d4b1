//! Compare-and-swap writes as etcd transactions, and what to make of a write whose answer was
//! lost. Network I/O.
//!
//! Each write is one txn: `if <compare> then <put|delete> else <get key>`. When it fails the
//! read tells why: the key exists (AlreadyExists), is gone (NotFound) or has another
//! mod_revision (Conflict).
//!
//! A write whose request broke mid-way (member killed, timeout) may or may not have been
//! applied. It is sent again, to the next member, with the same compare. If that compare now
//! fails, etcd's history tells whether the first attempt went through: an update or delete
//! was ours when the change that directly followed the expected revision put our value (or
//! deleted the key), whatever came after it; a create was ours when the key was created with
//! our value. Only a different writer that wrote the same bytes from the same revision could
//! be taken for us; its change is then the same as ours. When the history is compacted the
//! write fails with a Backend error that says its outcome is unknown.
//!
//! Not covered: a create whose answer was lost, then deleted by someone else before the resend,
//! is created again by the resend.

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse, TxnResponse};

use super::{
    connection::{Connection, Failure, classify},
    history,
};
use crate::datastore::{Kind, StoreError};

#[derive(Clone, Copy)]
pub(super) enum Write<'a> {
    Create(&'a [u8]),
    /// The new value and the expected mod_revision.
    Update(&'a [u8], i64),
    /// The expected mod_revision.
    Delete(i64),
}

impl Write<'_> {
    fn txn(self, key: &str) -> Txn {
        let (compare, operation) = match self {
            Write::Create(value) => (
                Compare::version(key, CompareOp::Equal, 0),
                TxnOp::put(key, value, None),
            ),
            Write::Update(value, expected) => (
                Compare::mod_revision(key, CompareOp::Equal, expected),
                TxnOp::put(key, value, None),
            ),
            Write::Delete(expected) => (
                Compare::mod_revision(key, CompareOp::Equal, expected),
                TxnOp::delete(key, None),
            ),
        };
        Txn::new()
            .when([compare])
            .and_then([operation])
            .or_else([TxnOp::get(key, None)])
    }
}

/// Runs `write` on `key` (the object `kind`/`name`); returns the revision it was made at.
pub(super) async fn write(
    connection: &Connection,
    kind: Kind,
    name: &str,
    key: &str,
    write: Write<'_>,
) -> Result<i64, StoreError> {
    let mut retry = connection.retry();
    let mut in_doubt = false;
    loop {
        let (index, mut client) = connection.client().await?;
        match client.txn(write.txn(key)).await {
            Ok(response) => {
                return outcome(connection, kind, name, key, write, in_doubt, &response).await;
            }
            Err(error) => match classify(error) {
                Failure::Permanent(error) => {
                    return Err(StoreError::Backend(format!("etcd: writing {key}: {error}")));
                }
                Failure::Transient(message) => {
                    in_doubt = true;
                    retry.transient(index, &message).await?;
                }
            },
        }
    }
}

/// What a txn's answer means; `in_doubt` when an earlier attempt may have been applied.
async fn outcome(
    connection: &Connection,
    kind: Kind,
    name: &str,
    key: &str,
    write: Write<'_>,
    in_doubt: bool,
    response: &TxnResponse,
) -> Result<i64, StoreError> {
    let header_revision = response.header().map_or(0, |h| h.revision());
    if response.succeeded() {
        return Ok(header_revision);
    }
    let current = response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => Some(get.kvs().first().cloned()),
        _ => None,
    });
    let Some(current) = current else {
        return Err(StoreError::Backend(format!(
            "etcd answered the failed write of {key} without the read of it"
        )));
    };
    let not_found = || StoreError::NotFound {
        kind,
        name: name.to_string(),
    };
    let conflict = || StoreError::Conflict {
        kind,
        name: name.to_string(),
    };
    let already_exists = || StoreError::AlreadyExists {
        kind,
        name: name.to_string(),
    };
    if !in_doubt {
        return Err(match (write, current) {
            (Write::Create(_), Some(_)) => already_exists(),
            // The compare of a create cannot fail on an absent key; a delete raced the read.
            (Write::Create(_), None) => conflict(),
            (_, None) => not_found(),
            (_, Some(_)) => conflict(),
        });
    }
    // An earlier attempt may have been applied: look for it in the key's history.
    match (write, current) {
        (Write::Create(value), Some(current)) => {
            let created = current.create_revision();
            if history::value_at(connection, key, created)
                .await?
                .as_deref()
                == Some(value)
            {
                Ok(created)
            } else {
                Err(already_exists())
            }
        }
        (Write::Create(_), None) => Err(conflict()),
        (Write::Update(_, expected) | Write::Delete(expected), current) => {
            let plain = match &current {
                None => not_found(),
                Some(_) => conflict(),
            };
            if !has_change_after(connection, key, expected, current.as_ref()).await? {
                return Err(plain);
            }
            let next = history::change_after(connection, key, expected).await?;
            let ours = match write {
                Write::Update(value, _) => next.value.as_deref() == Some(value),
                _ => next.value.is_none(),
            };
            if ours { Ok(next.revision) } else { Err(plain) }
        }
    }
}

/// True when `key` was at revision `expected` and has changed since, so that its history
/// holds the change right after `expected`. (False for a revision the key never had.)
async fn has_change_after(
    connection: &Connection,
    key: &str,
    expected: i64,
    current: Option<&etcd_client::KeyValue>,
) -> Result<bool, StoreError> {
    if expected <= 0 {
        return Ok(false);
    }
    Ok(match current {
        Some(current) => current.mod_revision() > expected,
        None => history::mod_revision_at(connection, key, expected).await? == Some(expected),
    })
}
