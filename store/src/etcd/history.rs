//! Reads of one key's past from etcd's history, to tell whether a write whose answer was lost
//! was applied: the change that directly followed a revision, and the value at a revision.
//! Network I/O.

use std::time::Duration;

use etcd_client::{Client, GetOptions, WatchOptions};

use super::connection::Connection;
use crate::datastore::StoreError;

/// Bound on reading one change from history (it is there already; this only guards a member
/// that stops answering).
const HISTORY_WITHIN: Duration = Duration::from_secs(5);

/// One change of a key: the revision it was made at and the value it put (None: deleted).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Change {
    pub revision: i64,
    pub value: Option<Vec<u8>>,
}

fn forgotten(key: &str, what: &str) -> StoreError {
    StoreError::Backend(format!(
        "a write of {key} may or may not have been applied (its answer was lost) and etcd's \
         history no longer tells ({what}); read it again and check"
    ))
}

/// The first change of `key` after revision `after` (one exists: the caller saw the key
/// change since). Read with a watch from `after + 1`, which replays history.
pub(super) async fn change_after(
    connection: &Connection,
    key: &str,
    after: i64,
) -> Result<Change, StoreError> {
    let mut retry = connection.retry();
    loop {
        let (index, client) = connection.client().await?;
        match tokio::time::timeout(HISTORY_WITHIN, first_change(client, key, after + 1)).await {
            Ok(Ok(Some(change))) => return Ok(change),
            Ok(Ok(None)) => return Err(forgotten(key, "compacted")),
            Ok(Err(error)) => retry.failed(index, error).await?,
            Err(_) => retry.transient(index, "reading history timed out").await?,
        }
    }
}

async fn first_change(
    mut client: Client,
    key: &str,
    from: i64,
) -> Result<Option<Change>, etcd_client::Error> {
    let options = WatchOptions::new().with_start_revision(from);
    let mut stream = client.watch(key, Some(options)).await?;
    loop {
        let Some(response) = stream.message().await? else {
            return Err(etcd_client::Error::WatchError(
                "the history watch ended".into(),
            ));
        };
        if response.compact_revision() > 0 || response.canceled() {
            return Ok(None);
        }
        if let Some(event) = response.events().first() {
            let Some(kv) = event.kv() else { continue };
            return Ok(Some(Change {
                revision: kv.mod_revision(),
                value: (event.0.r#type == 0).then(|| kv.value().to_vec()),
            }));
        }
    }
}

/// The value `key` held at `revision` (None: absent then).
pub(super) async fn value_at(
    connection: &Connection,
    key: &str,
    revision: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(kv_at(connection, key, revision)
        .await?
        .map(|kv| kv.value().to_vec()))
}

/// The mod_revision `key` had at `revision` (None: absent then).
pub(super) async fn mod_revision_at(
    connection: &Connection,
    key: &str,
    revision: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(kv_at(connection, key, revision)
        .await?
        .map(|kv| kv.mod_revision()))
}

async fn kv_at(
    connection: &Connection,
    key: &str,
    revision: i64,
) -> Result<Option<etcd_client::KeyValue>, StoreError> {
    let mut response = connection
        .read(|mut client| async move {
            client
                .get(key, Some(GetOptions::new().with_revision(revision)))
                .await
        })
        .await
        .map_err(|error| forgotten(key, &error.to_string()))?;
    Ok(response.take_kvs().into_iter().next())
}
