//! Compare-and-swap writes as etcd transactions, and what to make of a write whose answer was
//! lost. Network I/O.
//!
//! Each write is one txn: `if <compare> then <put|delete> else <get key>`. When it fails the
//! read tells why: the key exists (AlreadyExists), is gone (NotFound) or has another
//! mod_revision (Conflict).
//!
//! A write whose request broke mid-way (member killed, timeout) may or may not have been
//! applied. It is sent again, to the next member, with the same compare. If that compare now
//! fails, the write is taken as ours when the key holds exactly our value and was put by the
//! write that directly followed the expected revision (create: the key was created with our
//! value and not changed since; delete: the key is gone). A different writer that wrote the
//! same bytes from the same revision at the same moment would be taken for us; its change is
//! the same as ours, and this ambiguity only arises after a lost answer.

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};

use super::connection::{Connection, Failure, classify};
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
    match (write, current) {
        (Write::Create(value), Some(current)) => {
            let ours = in_doubt
                && current.create_revision() == current.mod_revision()
                && current.value() == value;
            if ours {
                Ok(current.mod_revision())
            } else {
                Err(StoreError::AlreadyExists {
                    kind,
                    name: name.to_string(),
                })
            }
        }
        // The compare of a create cannot fail on an absent key; a later delete raced the read.
        (Write::Create(_), None) => Err(conflict()),
        (Write::Update(..), None) => Err(not_found()),
        (Write::Update(value, expected), Some(current)) => {
            if in_doubt
                && current.value() == value
                && previous_mod_revision(connection, key, current.mod_revision()).await?
                    == Some(expected)
            {
                Ok(current.mod_revision())
            } else {
                Err(conflict())
            }
        }
        (Write::Delete(_), None) if in_doubt => Ok(header_revision),
        (Write::Delete(_), None) => Err(not_found()),
        (Write::Delete(_), Some(_)) => Err(conflict()),
    }
}

/// The mod_revision `key` had just before `revision` (None when it did not exist then).
async fn previous_mod_revision(
    connection: &Connection,
    key: &str,
    revision: i64,
) -> Result<Option<i64>, StoreError> {
    let response = connection
        .read(|mut client| async move {
            client
                .get(key, Some(GetOptions::new().with_revision(revision - 1)))
                .await
        })
        .await
        .map_err(|error| {
            StoreError::Backend(format!(
                "a write of {key} may or may not have been applied (its answer was lost) and \
                 etcd's history no longer tells: {error}"
            ))
        })?;
    Ok(response.kvs().first().map(|kv| kv.mod_revision()))
}
