//! The errors of manulctl's commands, each saying what to do next. Pure definitions, no I/O.

use manul_ipam::IpamError;
use manul_store::StoreError;

use crate::{config::ConfigError, fields::FieldError, input::InputError, kinds::ResourceKind};

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A document refused before anything was written.
    #[error("{origin}: {what}{error}")]
    Document {
        origin: String,
        /// `IPPool "pool-a": ` when the kind and name are known, else empty.
        what: String,
        error: FieldError,
    },
    /// A write refused by a check that needs the datastore (overlap, immutable field).
    #[error("{kind} {name:?}: {error}")]
    Refused {
        kind: ResourceKind,
        name: String,
        error: FieldError,
    },
    #[error(
        "{kind} {name:?} does not exist; `manulctl get {}` lists what does",
        kind.cli_name()
    )]
    NotFound { kind: ResourceKind, name: String },
    #[error(
        "{kind} {} not found; `manulctl get {}` lists what exists",
        names.iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", "),
        kind.cli_name()
    )]
    Missing {
        kind: ResourceKind,
        names: Vec<String>,
    },
    #[error(
        "{kind} {name:?} already exists; use `manulctl apply` or `manulctl replace` to change it"
    )]
    AlreadyExists { kind: ResourceKind, name: String },
    #[error(
        "{kind} {name:?} has changed since resourceVersion {given} (it is at {current} now); \
         get it again (`manulctl get {} {name} -o yaml`), redo your change and retry",
        kind.cli_name()
    )]
    Stale {
        kind: ResourceKind,
        name: String,
        given: String,
        current: String,
    },
    #[error(
        "{kind} {name:?} was changed by another writer while this command wrote it; \
         nothing of this change was written: run the command again"
    )]
    Conflict { kind: ResourceKind, name: String },
    #[error("cannot open the datastore {url}: {reason}{hint}")]
    Open {
        url: String,
        reason: String,
        hint: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error(
        "manul-bgpd does not answer on {socket}: {reason}; start manul-bgpd (it runs beside \
         manul-agent), or give its socket with --bgpd-socket"
    )]
    Bgpd {
        socket: std::path::PathBuf,
        reason: String,
    },
    #[error("{path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
}

impl CtlError {
    /// The store's answers for one object, in manulctl's words.
    pub fn from_store(kind: ResourceKind, name: &str, error: StoreError) -> CtlError {
        let name = name.to_string();
        match error {
            StoreError::NotFound { .. } => CtlError::NotFound { kind, name },
            StoreError::AlreadyExists { .. } => CtlError::AlreadyExists { kind, name },
            StoreError::Conflict { .. } => CtlError::Conflict { kind, name },
            other => CtlError::Store(other),
        }
    }

    /// A lost compare-and-swap race, which `apply` retries from a fresh read.
    pub fn is_lost_race(&self) -> bool {
        matches!(
            self,
            CtlError::Conflict { .. } | CtlError::AlreadyExists { .. } | CtlError::NotFound { .. }
        )
    }
}

impl From<StoreError> for CtlError {
    fn from(error: StoreError) -> Self {
        CtlError::Store(error)
    }
}
