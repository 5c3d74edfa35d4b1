//! Watches of one kind and name prefix as etcd watches, resumed after a broken stream from the
//! revision after the last event delivered, on the next member. Network I/O.
//!
//! One task per watch feeds a bounded channel (the stream the caller holds). It remembers the
//! revision of the last event it delivered and, when etcd's stream ends or fails, opens a new
//! watch from the revision after it: events come once and in order across reconnections.
//! When etcd says the start revision is compacted (compact_revision in a response) the stream
//! yields `Compacted` and ends: the caller lists again. When no member answers for the retry
//! window it yields a Backend error and ends.

use std::sync::Arc;

use etcd_client::{WatchOptions, WatchResponse};
use tokio::sync::mpsc;

use super::{Keys, connection::Connection, revision};
use crate::datastore::{KeyValue, Kind, StoreError, WatchEvent, WatchStream};

/// What the watch task does after one etcd stream ended.
enum Ended {
    /// The caller dropped the stream, or the watch ended with an error sent to it.
    Done,
    /// The stream broke: open it again (the message says why).
    Broken(String),
}

pub(super) fn watch(
    connection: Arc<Connection>,
    keys: Keys,
    kind: Kind,
    name_prefix: &str,
    after: i64,
) -> WatchStream {
    let (sender, mut receiver) = mpsc::channel(1024);
    let key = keys.key(kind, name_prefix);
    tokio::spawn(async move {
        let mut last = after;
        let mut retry = connection.retry();
        loop {
            let (index, mut client) = match connection.client().await {
                Ok(client) => client,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            };
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(last + 1)
                .with_progress_notify();
            let opened = tokio::select! {
                opened = client.watch(key.as_str(), Some(options)) => opened,
                _ = sender.closed() => return,
            };
            let ended = match opened {
                Ok(stream) => {
                    let (_requests, mut responses) = stream.split();
                    let mut ended = Ended::Broken("etcd ended the watch stream".into());
                    loop {
                        let message = tokio::select! {
                            message = responses.message() => message,
                            _ = sender.closed() => return,
                        };
                        match message {
                            Ok(Some(response)) => {
                                match deliver(&keys, kind, &response, &mut last, &sender).await {
                                    Ok(true) => retry = connection.retry(),
                                    Ok(false) => {}
                                    Err(next) => {
                                        ended = next;
                                        break;
                                    }
                                }
                            }
                            Ok(None) => break,
                            Err(error) => {
                                ended = Ended::Broken(error.to_string());
                                break;
                            }
                        }
                    }
                    ended
                }
                Err(error) => Ended::Broken(error.to_string()),
            };
            match ended {
                Ended::Done => return,
                Ended::Broken(message) => {
                    if let Err(error) = retry.transient(index, &message).await {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                }
            }
        }
    });
    Box::pin(futures::stream::poll_fn(move |context| {
        receiver.poll_recv(context)
    }))
}

/// Sends the events of one response and advances `last`. Ok(true) when the response shows a
/// healthy stream (events or progress), Ok(false) for bookkeeping responses, Err when this
/// etcd stream is over.
async fn deliver(
    keys: &Keys,
    kind: Kind,
    response: &WatchResponse,
    last: &mut i64,
    sender: &mpsc::Sender<Result<WatchEvent, StoreError>>,
) -> Result<bool, Ended> {
    if response.compact_revision() > 0 {
        let error = StoreError::Compacted {
            requested: revision(*last),
            oldest: revision(response.compact_revision()),
        };
        let _ = sender.send(Err(error)).await;
        return Err(Ended::Done);
    }
    if response.canceled() {
        return Err(Ended::Broken(format!(
            "etcd cancelled the watch: {}",
            response.cancel_reason()
        )));
    }
    // etcd sends the changes of one revision (one txn) in one response, so resuming after the
    // last revision delivered neither repeats nor skips any.
    for event in response.events() {
        let Some(kv) = event.kv() else { continue };
        let Some(name) = keys.name(kind, kv.key()) else {
            continue;
        };
        let revision_of_event = revision(kv.mod_revision());
        let event = match event.0.r#type {
            0 => WatchEvent::Put(KeyValue {
                kind,
                name: name.to_string(),
                value: kv.value().to_vec(),
                revision: revision_of_event,
            }),
            1 => WatchEvent::Deleted {
                kind,
                name: name.to_string(),
                revision: revision_of_event,
            },
            _ => continue,
        };
        if sender.send(Ok(event)).await.is_err() {
            return Err(Ended::Done);
        }
        *last = kv.mod_revision();
    }
    Ok(!response.created())
}
