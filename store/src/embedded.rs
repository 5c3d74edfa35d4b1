//! The embedded backend: one redb file, durable on every commit (a kill -9 at any point leaves
//! the last committed state). Does file I/O on tokio's blocking pool.
//!
//! Layout: OBJECTS maps "<Kind>/<name>" to the 8-byte revision of its last write followed by
//! its JSON; EVENTS maps each revision to the change made at it (for watches); META holds the
//! current revision and the oldest kept event. A write is one redb transaction: it checks the
//! expected revision, writes the object and its event, and bumps the revision, so the CAS is
//! atomic. Watches replay EVENTS and then follow new commits (woken in-process, polled for
//! writers in other processes).

use std::{path::Path, sync::Arc, time::Duration};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use tokio::sync::{mpsc, watch};

use crate::datastore::{
    Datastore, KeyValue, Kind, Listing, Revision, StoreError, WatchEvent, WatchStream,
};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_OLDEST_EVENT: &str = "oldest_event";
/// Events kept for watchers that resume from an older revision (the default).
pub const EVENTS_KEPT: u64 = 50_000;
/// How often a watch looks for commits made by other processes.
const CROSS_PROCESS_POLL: Duration = Duration::from_millis(200);

pub struct EmbeddedStore {
    database: Arc<Database>,
    committed: watch::Sender<u64>,
    events_kept: u64,
    /// Writes commit without a disk flush; `sync` flushes them all (see `Datastore::sync`).
    deferred_durability: bool,
    /// Held by every write transaction, so that a write can tell without waiting whether it
    /// would wait for another one (redb has one writer at a time).
    writer: Arc<std::sync::Mutex<()>>,
}

fn backend<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn object_key(kind: Kind, name: &str) -> String {
    format!("{}/{}", kind.as_str(), name)
}

fn split_object(kind: Kind, name: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    if bytes.len() < 8 {
        return Err(StoreError::Decode {
            kind,
            name: name.into(),
            reason: "record shorter than its revision".into(),
        });
    }
    let revision = u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes"));
    Ok(KeyValue {
        kind,
        name: name.to_string(),
        value: bytes[8..].to_vec(),
        revision: Revision::from_number(revision),
    })
}

/// An event record: op (0 put, 1 delete), kind index, name length (u16 LE), name, value.
fn encode_event(deleted: bool, kind: Kind, name: &str, value: &[u8]) -> Vec<u8> {
    let kind_index = Kind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("known kind") as u8;
    let mut record = Vec::with_capacity(4 + name.len() + value.len());
    record.push(u8::from(deleted));
    record.push(kind_index);
    record.extend_from_slice(&(name.len() as u16).to_le_bytes());
    record.extend_from_slice(name.as_bytes());
    record.extend_from_slice(value);
    record
}

fn decode_event(revision: u64, record: &[u8]) -> Option<WatchEvent> {
    let (&op, rest) = record.split_first()?;
    let (&kind_index, rest) = rest.split_first()?;
    let kind = *Kind::ALL.get(kind_index as usize)?;
    let name_len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(rest.get(2..2 + name_len)?)
        .ok()?
        .to_string();
    let value = rest.get(2 + name_len..)?.to_vec();
    let revision = Revision::from_number(revision);
    Some(if op == 1 {
        WatchEvent::Deleted {
            kind,
            name,
            revision,
        }
    } else {
        WatchEvent::Put(KeyValue {
            kind,
            name,
            value,
            revision,
        })
    })
}

fn event_matches(event: &WatchEvent, kind: Kind, prefix: &str) -> bool {
    match event {
        WatchEvent::Put(kv) => kv.kind == kind && kv.name.starts_with(prefix),
        WatchEvent::Deleted { kind: k, name, .. } => *k == kind && name.starts_with(prefix),
    }
}

enum Expectation<'a> {
    Absent,
    Revision(&'a Revision),
}

impl EmbeddedStore {
    /// Opens (or creates) the store file. The parent directory is created when missing.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        Self::open_keeping(path, EVENTS_KEPT)
    }

    /// Opens the store keeping about `events_kept` events for watchers (at least one); older
    /// ones are compacted away and a watch that needs them fails with `Compacted`.
    pub fn open_keeping(path: &Path, events_kept: u64) -> Result<EmbeddedStore, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Backend(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        let database = Database::create(path).map_err(|error| {
            StoreError::Backend(format!("cannot open {}: {error}", path.display()))
        })?;
        let write = database.begin_write().map_err(backend)?;
        let revision = {
            write.open_table(OBJECTS).map_err(backend)?;
            write.open_table(EVENTS).map_err(backend)?;
            let meta = write.open_table(META).map_err(backend)?;
            meta.get(META_REVISION)
                .map_err(backend)?
                .map(|guard| guard.value())
                .unwrap_or(0)
        };
        write.commit().map_err(backend)?;
        let (committed, _) = watch::channel(revision);
        Ok(EmbeddedStore {
            database: Arc::new(database),
            committed,
            events_kept: events_kept.max(1),
            deferred_durability: false,
            writer: Arc::new(std::sync::Mutex::new(())),
        })
    }

    /// Writes commit without flushing to disk until `sync` (redb's non-durable commits: a crash
    /// keeps the state of the last synced commit, and every commit before it). The agent syncs
    /// once before it answers a request instead of flushing after each of its writes.
    pub fn with_deferred_durability(mut self) -> EmbeddedStore {
        self.deferred_durability = true;
        self
    }

    /// Reads run on the caller's thread: a read transaction never waits for a writer (redb
    /// keeps the last committed version), and reading a few pages costs less than the hop to a
    /// blocking thread would. A list holds the caller for its length: the embedded store is one
    /// node's, thousands of records at most.
    fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Database) -> Result<T, StoreError>,
    {
        work(&self.database)
    }

    /// A write: on the caller's thread when it commits without a flush (`flushes` false) and no
    /// other write is in progress (tens of microseconds: cheaper than a thread hop), else on
    /// the blocking pool, where waiting for the other writer or the disk stalls no task.
    async fn write_transaction<T, F>(&self, flushes: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        if !flushes {
            let free = match self.writer.try_lock() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(_guard) = free {
                return work(&self.database);
            }
        }
        let writer = self.writer.clone();
        self.blocking(move |database| {
            let _guard = writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(database)
        })
        .await
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let database = self.database.clone();
        tokio::task::spawn_blocking(move || work(&database))
            .await
            .map_err(backend)?
    }

    /// One CAS write: `value` None deletes. Returns the new revision.
    fn write(
        database: &Database,
        kind: Kind,
        name: &str,
        value: Option<&[u8]>,
        expectation: Expectation<'_>,
        events_kept: u64,
        deferred_durability: bool,
    ) -> Result<u64, StoreError> {
        let key = object_key(kind, name);
        let mut write = database.begin_write().map_err(backend)?;
        if deferred_durability {
            write.set_durability(Durability::None).map_err(backend)?;
        }
        let revision = {
            let mut objects = write.open_table(OBJECTS).map_err(backend)?;
            let current = objects
                .get(key.as_str())
                .map_err(backend)?
                .map(|guard| split_object(kind, name, guard.value()))
                .transpose()?;
            match (&expectation, &current) {
                (Expectation::Absent, Some(_)) => {
                    return Err(StoreError::AlreadyExists {
                        kind,
                        name: name.into(),
                    });
                }
                (Expectation::Revision(_), None) => {
                    return Err(StoreError::NotFound {
                        kind,
                        name: name.into(),
                    });
                }
                (Expectation::Revision(expected), Some(current))
                    if current.revision != **expected =>
                {
                    return Err(StoreError::Conflict {
                        kind,
                        name: name.into(),
                    });
                }
                _ => {}
            }
            let mut meta = write.open_table(META).map_err(backend)?;
            let revision = meta
                .get(META_REVISION)
                .map_err(backend)?
                .map(|g| g.value())
                .unwrap_or(0)
                + 1;
            meta.insert(META_REVISION, revision).map_err(backend)?;
            match value {
                Some(value) => {
                    let mut record = Vec::with_capacity(8 + value.len());
                    record.extend_from_slice(&revision.to_le_bytes());
                    record.extend_from_slice(value);
                    objects
                        .insert(key.as_str(), record.as_slice())
                        .map_err(backend)?;
                }
                None => {
                    objects.remove(key.as_str()).map_err(backend)?;
                }
            }
            let mut events = write.open_table(EVENTS).map_err(backend)?;
            let record = encode_event(value.is_none(), kind, name, value.unwrap_or_default());
            events
                .insert(revision, record.as_slice())
                .map_err(backend)?;
            let oldest = meta
                .get(META_OLDEST_EVENT)
                .map_err(backend)?
                .map(|g| g.value())
                .unwrap_or(1);
            if revision - oldest >= events_kept + events_kept / 10 {
                let new_oldest = revision - events_kept;
                events
                    .retain_in(oldest..new_oldest, |_, _| false)
                    .map_err(backend)?;
                meta.insert(META_OLDEST_EVENT, new_oldest)
                    .map_err(backend)?;
            }
            revision
        };
        write.commit().map_err(backend)?;
        Ok(revision)
    }

    fn current_revision(database: &Database) -> Result<(u64, u64), StoreError> {
        let read = database.begin_read().map_err(backend)?;
        let meta = read.open_table(META).map_err(backend)?;
        let revision = meta
            .get(META_REVISION)
            .map_err(backend)?
            .map(|g| g.value())
            .unwrap_or(0);
        let oldest = meta
            .get(META_OLDEST_EVENT)
            .map_err(backend)?
            .map(|g| g.value())
            .unwrap_or(1);
        Ok((revision, oldest))
    }

    /// The kept events after revision `after`, or `Compacted` when some of them are gone
    /// (checked in the same read transaction, so a compaction cannot slip in between).
    fn events_after(database: &Database, after: u64) -> Result<Vec<WatchEvent>, StoreError> {
        let read = database.begin_read().map_err(backend)?;
        let oldest = read
            .open_table(META)
            .map_err(backend)?
            .get(META_OLDEST_EVENT)
            .map_err(backend)?
            .map(|g| g.value())
            .unwrap_or(1);
        if after + 1 < oldest {
            return Err(StoreError::Compacted {
                requested: Revision::from_number(after),
                oldest: Revision::from_number(oldest),
            });
        }
        let events = read.open_table(EVENTS).map_err(backend)?;
        let mut found = Vec::new();
        for entry in events.range(after + 1..).map_err(backend)? {
            let (revision, record) = entry.map_err(backend)?;
            if let Some(event) = decode_event(revision.value(), record.value()) {
                found.push(event);
            }
        }
        Ok(found)
    }

    /// Number of events currently kept (for tests of compaction).
    pub fn kept_events(&self) -> Result<u64, StoreError> {
        let read = self.database.begin_read().map_err(backend)?;
        read.open_table(EVENTS)
            .map_err(backend)?
            .len()
            .map_err(backend)
    }
}

#[async_trait::async_trait]
impl Datastore for EmbeddedStore {
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<KeyValue>, StoreError> {
        let name = name.to_string();
        self.read(move |database| {
            let read = database.begin_read().map_err(backend)?;
            let objects = read.open_table(OBJECTS).map_err(backend)?;
            let found = objects
                .get(object_key(kind, &name).as_str())
                .map_err(backend)?;
            found
                .map(|guard| split_object(kind, &name, guard.value()))
                .transpose()
        })
    }

    async fn list(&self, kind: Kind, name_prefix: &str) -> Result<Listing, StoreError> {
        let prefix = object_key(kind, name_prefix);
        self.read(move |database| {
            let read = database.begin_read().map_err(backend)?;
            let meta = read.open_table(META).map_err(backend)?;
            let revision = meta
                .get(META_REVISION)
                .map_err(backend)?
                .map(|g| g.value())
                .unwrap_or(0);
            let objects = read.open_table(OBJECTS).map_err(backend)?;
            let mut items = Vec::new();
            for entry in objects.range(prefix.as_str()..).map_err(backend)? {
                let (key, value) = entry.map_err(backend)?;
                let key = key.value();
                if !key.starts_with(&prefix) {
                    break;
                }
                let name = &key[kind.as_str().len() + 1..];
                items.push(split_object(kind, name, value.value())?);
            }
            Ok(Listing {
                items,
                revision: Revision::from_number(revision),
            })
        })
    }

    async fn create(&self, kind: Kind, name: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let name = name.to_string();
        let (events_kept, deferred) = (self.events_kept, self.deferred_durability);
        let revision = self
            .write_transaction(!deferred, move |database| {
                Self::write(
                    database,
                    kind,
                    &name,
                    Some(&value),
                    Expectation::Absent,
                    events_kept,
                    deferred,
                )
            })
            .await?;
        self.committed.send_replace(revision);
        Ok(Revision::from_number(revision))
    }

    async fn update(
        &self,
        kind: Kind,
        name: &str,
        value: Vec<u8>,
        expected: &Revision,
    ) -> Result<Revision, StoreError> {
        let name = name.to_string();
        let expected = expected.clone();
        let (events_kept, deferred) = (self.events_kept, self.deferred_durability);
        let revision = self
            .write_transaction(!deferred, move |database| {
                Self::write(
                    database,
                    kind,
                    &name,
                    Some(&value),
                    Expectation::Revision(&expected),
                    events_kept,
                    deferred,
                )
            })
            .await?;
        self.committed.send_replace(revision);
        Ok(Revision::from_number(revision))
    }

    async fn delete(&self, kind: Kind, name: &str, expected: &Revision) -> Result<(), StoreError> {
        let name = name.to_string();
        let expected = expected.clone();
        let (events_kept, deferred) = (self.events_kept, self.deferred_durability);
        let revision = self
            .write_transaction(!deferred, move |database| {
                Self::write(
                    database,
                    kind,
                    &name,
                    None,
                    Expectation::Revision(&expected),
                    events_kept,
                    deferred,
                )
            })
            .await?;
        self.committed.send_replace(revision);
        Ok(())
    }

    async fn sync(&self) -> Result<(), StoreError> {
        if !self.deferred_durability {
            return Ok(());
        }
        self.write_transaction(true, |database| {
            // An empty durable commit flushes every non-durable commit before it.
            let write = database.begin_write().map_err(backend)?;
            write.commit().map_err(backend)
        })
        .await
    }

    async fn watch(
        &self,
        kind: Kind,
        name_prefix: &str,
        after: &Revision,
    ) -> Result<WatchStream, StoreError> {
        let after_number = after.as_number().ok_or_else(|| {
            StoreError::Backend(format!(
                "revision {after:?} was not issued by the embedded store"
            ))
        })?;
        let (_, oldest) = self.blocking(Self::current_revision).await?;
        if after_number + 1 < oldest {
            return Err(StoreError::Compacted {
                requested: after.clone(),
                oldest: Revision::from_number(oldest),
            });
        }
        let (sender, receiver) = mpsc::channel(1024);
        let database = self.database.clone();
        let mut committed = self.committed.subscribe();
        let prefix = name_prefix.to_string();
        tokio::spawn(async move {
            let mut last = after_number;
            loop {
                let database_for_read = database.clone();
                let read = tokio::task::spawn_blocking(move || {
                    Self::events_after(&database_for_read, last)
                })
                .await;
                let events = match read {
                    Ok(Ok(events)) => events,
                    Ok(Err(error)) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                    Err(error) => {
                        let _ = sender.send(Err(backend(error))).await;
                        return;
                    }
                };
                for event in events {
                    last = event.revision().as_number().unwrap_or(last);
                    if event_matches(&event, kind, &prefix) && sender.send(Ok(event)).await.is_err()
                    {
                        return;
                    }
                }
                tokio::select! {
                    _ = committed.changed() => {}
                    _ = tokio::time::sleep(CROSS_PROCESS_POLL) => {}
                    _ = sender.closed() => return,
                }
            }
        });
        Ok(Box::pin(tokio_stream_from(receiver)))
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut receiver: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |context| receiver.poll_recv(context))
}

#[cfg(test)]
mod tests;
