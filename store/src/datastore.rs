//! The `Datastore` trait: raw, revisioned key-value access by resource kind and name, with
//! compare-and-swap writes and a watch from a revision. Pure definitions, no I/O.
//!
//! The shape fits three backends without change: the embedded redb file (a global counter),
//! etcd (revision = mod_revision, create = txn on version == 0) and Kubernetes
//! (revision = resourceVersion, which is opaque; hence `Revision` is an opaque string).

use std::{fmt, pin::Pin};

use futures::Stream;
use serde::{Deserialize, Serialize};

/// The resource kinds the store knows. The string form is the kind's name in Calico's v3 API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    IPPool,
    IPAMBlock,
    BlockAffinity,
    IPAMHandle,
    IPAMConfiguration,
    Node,
    WorkloadEndpoint,
    /// manul's own: the names and CIDRs of all pools in one object (see `IpPoolIndex`).
    IPPoolIndex,
    BGPPeer,
    BGPConfiguration,
}

impl Kind {
    /// Every kind; new kinds go at the end (the embedded store records a kind by its position).
    pub const ALL: [Kind; 10] = [
        Kind::IPPool,
        Kind::IPAMBlock,
        Kind::BlockAffinity,
        Kind::IPAMHandle,
        Kind::IPAMConfiguration,
        Kind::Node,
        Kind::WorkloadEndpoint,
        Kind::IPPoolIndex,
        Kind::BGPPeer,
        Kind::BGPConfiguration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IPPool => "IPPool",
            Kind::IPAMBlock => "IPAMBlock",
            Kind::BlockAffinity => "BlockAffinity",
            Kind::IPAMHandle => "IPAMHandle",
            Kind::IPAMConfiguration => "IPAMConfiguration",
            Kind::Node => "Node",
            Kind::WorkloadEndpoint => "WorkloadEndpoint",
            Kind::IPPoolIndex => "IPPoolIndex",
            Kind::BGPPeer => "BGPPeer",
            Kind::BGPConfiguration => "BGPConfiguration",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An opaque revision. Backends with numeric revisions format them in decimal; callers only
/// compare revisions for equality and hand them back to the backend that issued them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Revision(pub String);

impl Revision {
    pub fn from_number(number: u64) -> Revision {
        Revision(number.to_string())
    }

    /// The numeric value, for backends whose revisions are numbers.
    pub fn as_number(&self) -> Option<u64> {
        self.0.parse().ok()
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One stored object: its JSON encoding and the revision of its last write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub kind: Kind,
    pub name: String,
    pub value: Vec<u8>,
    pub revision: Revision,
}

/// The result of a list: the objects and the store revision they were read at, from which a
/// watch continues without missing an event.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub items: Vec<KeyValue>,
    pub revision: Revision,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    Put(KeyValue),
    Deleted {
        kind: Kind,
        name: String,
        revision: Revision,
    },
}

impl WatchEvent {
    pub fn revision(&self) -> &Revision {
        match self {
            WatchEvent::Put(kv) => &kv.revision,
            WatchEvent::Deleted { revision, .. } => revision,
        }
    }
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {name:?} does not exist")]
    NotFound { kind: Kind, name: String },
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: Kind, name: String },
    #[error(
        "{kind} {name:?} was changed by another writer (revision conflict); read it again and retry"
    )]
    Conflict { kind: Kind, name: String },
    #[error(
        "revision {requested} is older than the oldest kept event ({oldest}); list again and watch from the list's revision"
    )]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    #[error("stored {kind} {name:?} cannot be decoded: {reason}")]
    Decode {
        kind: Kind,
        name: String,
        reason: String,
    },
    #[error("{kind} {name:?} cannot be encoded: {reason}")]
    Encode {
        kind: Kind,
        name: String,
        reason: String,
    },
    #[error("datastore URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("datastore backend failed: {0}")]
    Backend(String),
}

impl StoreError {
    /// True for a lost compare-and-swap race: the caller should re-read and try again.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }
        )
    }
}

/// Raw, revisioned access to resources. Every write is a compare-and-swap: `create` succeeds
/// only when the name is free, `update` and `delete` only when the stored revision equals the
/// expected one. A writer that loses re-reads and retries; nothing is read-modify-written
/// without a revision.
#[async_trait::async_trait]
pub trait Datastore: Send + Sync + 'static {
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Every object of `kind` whose name starts with `name_prefix` ("" for all), in name order.
    async fn list(&self, kind: Kind, name_prefix: &str) -> Result<Listing, StoreError>;

    async fn create(&self, kind: Kind, name: &str, value: Vec<u8>) -> Result<Revision, StoreError>;

    async fn update(
        &self,
        kind: Kind,
        name: &str,
        value: Vec<u8>,
        expected: &Revision,
    ) -> Result<Revision, StoreError>;

    async fn delete(&self, kind: Kind, name: &str, expected: &Revision) -> Result<(), StoreError>;

    /// Events for `kind` (names starting with `name_prefix`) after revision `after`, then live
    /// ones, each once and in revision order. The stream ends when dropped. When the history
    /// after `after` is compacted the watch fails with `Compacted`, either at once or as the
    /// stream's first item (etcd tells only on the stream); the caller lists again. An error
    /// item ends the stream.
    async fn watch(
        &self,
        kind: Kind,
        name_prefix: &str,
        after: &Revision,
    ) -> Result<WatchStream, StoreError>;

    /// Makes every write made through this handle so far durable. Writes are always ordered
    /// and atomic; a backend may defer their durability (the embedded one can, to pay for one
    /// disk flush per CNI request instead of one per write), and a crash then loses a suffix of
    /// the writes, never a write from the middle. Callers sync before they answer a request.
    /// Backends whose writes are durable when they return do nothing.
    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
