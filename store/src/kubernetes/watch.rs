//! Watches of one kind over the Kubernetes watch API: from a resourceVersion, with bookmarks
//! requested, resumed from the last resourceVersion seen (event or bookmark) whenever the
//! server ends the stream or the connection drops, and ended with `Compacted` on 410 Gone.
//! Network I/O (the API server's watch endpoint).
//!
//! The API server ends every watch after its timeout (290 s here) and drops them on restart;
//! resuming from the last seen resourceVersion continues without a gap. Bookmarks move that
//! resourceVersion on while nothing of ours changes, so a resume after a quiet hour does not
//! ask for history the server no longer keeps. When it does not keep it any more, the server
//! answers 410 Gone (as the status of the watch request or as an ERROR event): the stream
//! yields `Compacted` and ends, and the caller lists again (agent/src/watch.rs and
//! agent/src/node/watch.rs both relist on any error of a watch).

use futures::{StreamExt, stream::BoxStream};
use kube::{
    Api,
    api::{DynamicObject, WatchEvent as KubeEvent, WatchParams},
};
use tracing::{debug, warn};

use super::{
    errors::kube_error,
    objects::{Mapping, Translated, resource_version},
};
use crate::datastore::{Kind, Revision, StoreError, WatchEvent, WatchStream};

/// The watch after `after` of the objects `api` serves, as store events of `mapping`'s kind
/// named `prefix...`.
pub fn watch(
    api: Api<DynamicObject>,
    mapping: Mapping,
    prefix: String,
    params: WatchParams,
    after: Revision,
) -> WatchStream {
    let state = Resumable {
        api,
        mapping,
        prefix,
        params,
        last: after,
        events: None,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
    .boxed()
}

struct Resumable {
    api: Api<DynamicObject>,
    mapping: Mapping,
    prefix: String,
    params: WatchParams,
    /// The resourceVersion of the last event or bookmark: where a resumed watch starts.
    last: Revision,
    events: Option<BoxStream<'static, kube::Result<KubeEvent<DynamicObject>>>>,
    done: bool,
}

impl Resumable {
    fn kind(&self) -> Kind {
        self.mapping.kind()
    }

    /// The next store event; None once an error has been yielded.
    async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>> {
        loop {
            if self.done {
                return None;
            }
            let Some(events) = self.events.as_mut() else {
                match self.api.watch(&self.params, &self.last.0).await {
                    Ok(events) => self.events = Some(events.boxed()),
                    Err(error) => return Some(Err(self.fail(error))),
                }
                continue;
            };
            match events.next().await {
                None => {
                    debug!(kind = %self.kind(), revision = %self.last, "watch ended; resuming");
                    self.events = None;
                }
                Some(Err(kube::Error::Api(status))) => {
                    return Some(Err(self.fail(kube::Error::Api(status))));
                }
                Some(Err(error)) => {
                    warn!(kind = %self.kind(), %error, revision = %self.last, "watch connection failed; resuming");
                    self.events = None;
                }
                Some(Ok(event)) => {
                    if let Some(event) = self.store_event(event) {
                        return Some(event);
                    }
                }
            }
        }
    }

    /// Ends the stream with `error` as its last item.
    fn fail(&mut self, error: kube::Error) -> StoreError {
        self.done = true;
        self.events = None;
        kube_error(self.kind(), "", error).compacted_after(&self.last)
    }

    /// The store event for a Kubernetes watch event, when it is one of ours.
    fn store_event(
        &mut self,
        event: KubeEvent<DynamicObject>,
    ) -> Option<Result<WatchEvent, StoreError>> {
        let (object, deleted) = match event {
            KubeEvent::Bookmark(bookmark) => {
                self.last = Revision(bookmark.metadata.resource_version);
                return None;
            }
            KubeEvent::Error(status) => return Some(Err(self.fail(kube::Error::Api(status)))),
            KubeEvent::Added(object) | KubeEvent::Modified(object) => (object, false),
            KubeEvent::Deleted(object) => (object, true),
        };
        let revision = resource_version(&object);
        self.last = revision.clone();
        let event = match self.mapping.translate(&object) {
            Ok(Translated::Record(kv)) if deleted => WatchEvent::Deleted {
                kind: kv.kind,
                name: kv.name,
                revision,
            },
            Ok(Translated::Record(kv)) => WatchEvent::Put(kv),
            // Reported when the record was removed; the object going now is not news.
            Ok(Translated::Removed(_)) if deleted => return None,
            Ok(Translated::Removed(name)) => WatchEvent::Deleted {
                kind: self.kind(),
                name,
                revision,
            },
            Ok(Translated::Nothing) => return None,
            Err(error) => {
                warn!(%error, "skipping an object the store cannot read");
                return None;
            }
        };
        let name = match &event {
            WatchEvent::Put(kv) => &kv.name,
            WatchEvent::Deleted { name, .. } => name,
        };
        name.starts_with(&self.prefix).then_some(Ok(event))
    }
}
