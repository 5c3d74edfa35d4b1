//! Change notification from the datastore for the agent's driver tasks (BGP, pool dataplane):
//! one `Notify` poked on every event of a kind, with a relist after an error or a compaction
//! (which pokes too, so nothing missed in between goes unseen). I/O through the Datastore trait.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use manul_store::{Datastore, Kind};
use tokio::sync::Notify;
use tracing::warn;

/// Pause before listing again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Pokes `changed` once per listing and on every event of `kind` under `prefix`; runs until
/// aborted.
pub async fn notify_on_change(
    store: Arc<dyn Datastore>,
    kind: Kind,
    prefix: String,
    changed: Arc<Notify>,
) {
    loop {
        let listing = match store.list(kind, &prefix).await {
            Ok(listing) => listing,
            Err(error) => {
                warn!(%kind, %error, "cannot list for a watch; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        changed.notify_one();
        match store.watch(kind, &prefix, &listing.revision).await {
            Ok(mut events) => {
                while let Some(event) = events.next().await {
                    if let Err(error) = event {
                        warn!(%kind, %error, "a watch broke; listing again");
                        break;
                    }
                    changed.notify_one();
                }
            }
            Err(error) => warn!(%kind, %error, "cannot watch; retrying"),
        }
        tokio::time::sleep(RETRY).await;
    }
}
