//! The store's errors for the Kubernetes API's answers: 404 NotFound, 409 AlreadyExists (a
//! create), 409 Conflict (a stale resourceVersion on an update, patch or delete precondition),
//! 410 Gone (a watch from a resourceVersion the server no longer keeps). Pure, no I/O.

use kube::core::Status;

use crate::datastore::{Kind, Revision, StoreError};

/// The store error for a failed request about `kind` `name`.
pub fn kube_error(kind: Kind, name: &str, error: kube::Error) -> KubeFailure {
    match error {
        kube::Error::Api(status) => KubeFailure::status(kind, name, &status),
        other => KubeFailure::Other(StoreError::Backend(format!(
            "Kubernetes API, {kind} {name:?}: {other}"
        ))),
    }
}

/// An API failure, before a watch's Gone becomes `Compacted` (which needs the revision).
#[derive(Debug)]
pub enum KubeFailure {
    Gone,
    Other(StoreError),
}

impl KubeFailure {
    fn status(kind: Kind, name: &str, status: &Status) -> KubeFailure {
        let name = name.to_string();
        KubeFailure::Other(match (status.code, status.reason.as_str()) {
            (404, _) => StoreError::NotFound { kind, name },
            (409, "AlreadyExists") => StoreError::AlreadyExists { kind, name },
            (409, _) => StoreError::Conflict { kind, name },
            (410, _) => return KubeFailure::Gone,
            (code, reason) => StoreError::Backend(format!(
                "Kubernetes API, {kind} {name:?}: {code} {reason}: {}",
                status.message
            )),
        })
    }

    /// The store error; a Gone is `Compacted` after `requested`.
    pub fn compacted_after(self, requested: &Revision) -> StoreError {
        match self {
            KubeFailure::Gone => StoreError::Compacted {
                requested: requested.clone(),
                // The API server does not say how far back it keeps history.
                oldest: Revision("unknown".into()),
            },
            KubeFailure::Other(error) => error,
        }
    }

    /// The store error of a request that is not a watch (a Gone there is a backend failure).
    pub fn into_store(self) -> StoreError {
        match self {
            KubeFailure::Gone => StoreError::Backend("Kubernetes API: 410 Gone".into()),
            KubeFailure::Other(error) => error,
        }
    }
}

/// `kube_error(..).into_store()`, for `map_err`.
pub fn store_error(kind: Kind, name: &str) -> impl FnOnce(kube::Error) -> StoreError {
    move |error| kube_error(kind, name, error).into_store()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(
            Status {
                code,
                reason: reason.into(),
                ..Default::default()
            }
            .boxed(),
        )
    }

    #[test]
    fn api_statuses_map_to_the_store_errors_callers_retry_on() {
        let map = |code, reason| store_error(Kind::IPPool, "p")(status(code, reason));
        assert!(matches!(map(404, "NotFound"), StoreError::NotFound { .. }));
        assert!(matches!(
            map(409, "AlreadyExists"),
            StoreError::AlreadyExists { .. }
        ));
        assert!(matches!(map(409, "Conflict"), StoreError::Conflict { .. }));
        assert!(matches!(map(500, "InternalError"), StoreError::Backend(_)));
        let gone = kube_error(Kind::IPPool, "", status(410, "Expired"));
        let error = gone.compacted_after(&Revision("12".into()));
        assert!(
            matches!(&error, StoreError::Compacted { requested, .. } if requested.0 == "12"),
            "{error}"
        );
    }
}
