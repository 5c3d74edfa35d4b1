//! The etcd backend: every object is one etcd key `<prefix>/<Kind>/<name>` holding its JSON,
//! its revision is the key's mod_revision in decimal, and watches are etcd watches resumed
//! across member failures. Network I/O (gRPC to the etcd members).
//!
//! Writes are etcd transactions: create compares version == 0, update and delete compare
//! mod_revision with the expected revision; the failure branch reads the key so that one
//! round trip tells AlreadyExists, Conflict and NotFound apart (see `writes`). Requests go to
//! one member at a time and move to the next one when it fails (see `connection`). Writes are
//! durable when etcd answers, so `sync` does nothing.

mod config;
mod connection;
mod history;
mod watch;
mod writes;

use std::sync::Arc;

use etcd_client::{CompactionOptions, GetOptions};

pub use config::{DEFAULT_PREFIX, EtcdConfig, EtcdTls};
use connection::Connection;
use writes::Write;

use crate::datastore::{Datastore, KeyValue, Kind, Listing, Revision, StoreError, WatchStream};

pub struct EtcdStore {
    connection: Arc<Connection>,
    keys: Keys,
    list_page: i64,
}

/// The mapping between (kind, name) and etcd keys under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    fn key(&self, kind: Kind, name: &str) -> String {
        format!("{}/{}/{}", self.prefix, kind.as_str(), name)
    }

    /// The name in `key`, when it is a key of `kind` under this prefix.
    fn name<'a>(&self, kind: Kind, key: &'a [u8]) -> Option<&'a str> {
        let key = std::str::from_utf8(key).ok()?;
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?
            .strip_prefix(kind.as_str())?
            .strip_prefix('/')
    }
}

/// The end of the key range of every key starting with `prefix` (etcd's range_end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: the range runs to the end of the keyspace.
    vec![0]
}

fn revision(number: i64) -> Revision {
    Revision(number.to_string())
}

/// An etcd revision from one of ours; a revision no etcd issued matches nothing (-1).
fn expected_number(revision: &Revision) -> i64 {
    revision.0.parse().unwrap_or(-1)
}

fn key_value(keys: &Keys, kind: Kind, kv: &etcd_client::KeyValue) -> Option<KeyValue> {
    Some(KeyValue {
        kind,
        name: keys.name(kind, kv.key())?.to_string(),
        value: kv.value().to_vec(),
        revision: revision(kv.mod_revision()),
    })
}

impl EtcdStore {
    /// A store for the cluster in `config`. Connects on the first request, so this does no
    /// network I/O; it reads the TLS files.
    pub fn new(config: &EtcdConfig) -> Result<EtcdStore, StoreError> {
        Ok(EtcdStore {
            connection: Arc::new(Connection::new(config)?),
            keys: Keys {
                prefix: config.prefix.clone(),
            },
            list_page: config.list_page,
        })
    }

    /// The current revision of the whole etcd keyspace (shared by every prefix).
    pub async fn current_revision(&self) -> Result<Revision, StoreError> {
        let key = self.keys.key(Kind::IPPool, "");
        let response = self
            .connection
            .read(|mut client| {
                let key = key.clone();
                async move {
                    client
                        .get(key, Some(GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await?;
        Ok(revision(response.header().map_or(0, |h| h.revision())))
    }

    /// Compacts etcd's history up to `revision`: watches from before it fail with `Compacted`.
    /// (Operators run etcd with auto-compaction; tests call this.)
    pub async fn compact(&self, revision: &Revision) -> Result<(), StoreError> {
        let number = expected_number(revision);
        self.connection
            .read(|mut client| async move {
                client
                    .compact(number, Some(CompactionOptions::new().with_physical()))
                    .await
            })
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Datastore for EtcdStore {
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = self.keys.key(kind, name);
        let response = self
            .connection
            .read(|mut client| {
                let key = key.clone();
                async move { client.get(key, None).await }
            })
            .await?;
        Ok(response
            .kvs()
            .first()
            .and_then(|kv| key_value(&self.keys, kind, kv)))
    }

    async fn list(&self, kind: Kind, name_prefix: &str) -> Result<Listing, StoreError> {
        let first = self.keys.key(kind, name_prefix).into_bytes();
        let end = prefix_end(&first);
        let mut items = Vec::new();
        let mut start = first;
        // 0 until the first page answers: later pages read at its revision (a snapshot).
        let mut at_revision = 0;
        loop {
            let response = self
                .connection
                .read(|mut client| {
                    let (start, end) = (start.clone(), end.clone());
                    let mut options = GetOptions::new().with_range(end).with_limit(self.list_page);
                    if at_revision != 0 {
                        options = options.with_revision(at_revision);
                    }
                    async move { client.get(start, Some(options)).await }
                })
                .await?;
            if at_revision == 0 {
                at_revision = response.header().map_or(0, |h| h.revision());
            }
            let kvs = response.kvs();
            items.extend(kvs.iter().filter_map(|kv| key_value(&self.keys, kind, kv)));
            match kvs.last() {
                Some(last) if response.more() => {
                    // The smallest key after the last one read.
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(Listing {
            items,
            revision: revision(at_revision),
        })
    }

    async fn create(&self, kind: Kind, name: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let key = self.keys.key(kind, name);
        writes::write(&self.connection, kind, name, &key, Write::Create(&value))
            .await
            .map(revision)
    }

    async fn update(
        &self,
        kind: Kind,
        name: &str,
        value: Vec<u8>,
        expected: &Revision,
    ) -> Result<Revision, StoreError> {
        let key = self.keys.key(kind, name);
        let write = Write::Update(&value, expected_number(expected));
        writes::write(&self.connection, kind, name, &key, write)
            .await
            .map(revision)
    }

    async fn delete(&self, kind: Kind, name: &str, expected: &Revision) -> Result<(), StoreError> {
        let key = self.keys.key(kind, name);
        let write = Write::Delete(expected_number(expected));
        writes::write(&self.connection, kind, name, &key, write).await?;
        Ok(())
    }

    async fn watch(
        &self,
        kind: Kind,
        name_prefix: &str,
        after: &Revision,
    ) -> Result<WatchStream, StoreError> {
        let after = after
            .as_number()
            .and_then(|number| i64::try_from(number).ok())
            .ok_or_else(|| {
                StoreError::Backend(format!("revision {after:?} was not issued by etcd"))
            })?;
        Ok(watch::watch(
            self.connection.clone(),
            self.keys.clone(),
            kind,
            name_prefix,
            after,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_prefix_kind_and_name_and_nothing_else_parses() {
        let keys = Keys {
            prefix: "/manul/v1".into(),
        };
        let key = keys.key(Kind::IPPool, "a/b");
        assert_eq!(key, "/manul/v1/IPPool/a/b");
        assert_eq!(keys.name(Kind::IPPool, key.as_bytes()), Some("a/b"));
        assert_eq!(keys.name(Kind::IPPoolIndex, key.as_bytes()), None);
        assert_eq!(keys.name(Kind::IPPool, b"/manul/v2/IPPool/a"), None);
        assert_eq!(keys.name(Kind::IPPool, b"/manul/v1/IPPoolIndex/x"), None);
        assert_eq!(keys.name(Kind::IPPool, &[0xff, 0xfe]), None);
        assert_eq!(expected_number(&Revision("x".into())), -1);
    }

    #[test]
    fn a_prefix_range_ends_after_the_last_key_with_the_prefix() {
        assert_eq!(prefix_end(b"/m/IPPool/a"), b"/m/IPPool/b");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), [0]);
    }
}
