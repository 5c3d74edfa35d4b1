//! The connection to an etcd cluster: one client per member, a current member that requests
//! go to, and the retry policy that moves to the next member when one fails. Network I/O.
//!
//! One client per member rather than etcd-client's balanced channel: on a failure we choose
//! the next member ourselves (the balanced channel keeps routing some requests to a dead
//! member), and the error after the retry window names every member that was tried.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use etcd_client::{Client, ConnectOptions};
use tokio::sync::OnceCell;

use super::config::EtcdConfig;
use crate::datastore::StoreError;

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(super) struct Connection {
    urls: Vec<String>,
    options: ConnectOptions,
    clients: OnceCell<Vec<Client>>,
    current: AtomicUsize,
    retry_for: Duration,
}

/// What a failed request means for the caller.
#[derive(Debug)]
pub(super) enum Failure {
    /// The member could not be reached or could not answer (down, no leader, timed out): try
    /// again, on the next member. A write that failed so may or may not have been applied.
    Transient(String),
    /// The request itself was refused (bad argument, permission, compacted revision): retrying
    /// cannot help.
    Permanent(etcd_client::Error),
}

pub(super) fn classify(error: etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    use tonic::Code;
    match error {
        E::TransportError(_) | E::IoError(_) => Failure::Transient(error.to_string()),
        E::GRpcStatus(ref status) => match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Cancelled
            | Code::Aborted => Failure::Transient(error.to_string()),
            _ => Failure::Permanent(error),
        },
        _ => Failure::Permanent(error),
    }
}

impl Connection {
    pub(super) fn new(config: &EtcdConfig) -> Result<Connection, StoreError> {
        Ok(Connection {
            urls: config.endpoint_urls(),
            options: config.connect_options()?,
            clients: OnceCell::new(),
            current: AtomicUsize::new(0),
            retry_for: config.retry_for,
        })
    }

    /// The client of the current member and its index. Clients are made on first use (making
    /// one does no I/O; it connects on its first request and reconnects after a failure).
    pub(super) async fn client(&self) -> Result<(usize, Client), StoreError> {
        let clients = self
            .clients
            .get_or_try_init(|| async {
                let mut clients = Vec::with_capacity(self.urls.len());
                for url in &self.urls {
                    let client = Client::connect([url.as_str()], Some(self.options.clone()))
                        .await
                        .map_err(|error| {
                            StoreError::Backend(format!("etcd client for {url}: {error}"))
                        })?;
                    clients.push(client);
                }
                Ok::<_, StoreError>(clients)
            })
            .await?;
        let index = self.current.load(Ordering::Relaxed) % clients.len();
        Ok((index, clients[index].clone()))
    }

    /// A fresh retry budget for one request (or one reconnection of a watch).
    pub(super) fn retry(&self) -> Retry<'_> {
        Retry {
            connection: self,
            deadline: Instant::now() + self.retry_for,
            backoff: FIRST_BACKOFF,
            attempts: 0,
        }
    }

    /// Runs a request that changes nothing, retrying it across the members.
    pub(super) async fn read<T, F, Fut>(&self, mut request: F) -> Result<T, StoreError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut retry = self.retry();
        loop {
            let (index, client) = self.client().await?;
            match request(client).await {
                Ok(value) => return Ok(value),
                Err(error) => retry.failed(index, error).await?,
            }
        }
    }

    fn unreachable(&self, attempts: u32, last_error: &str) -> StoreError {
        StoreError::Backend(format!(
            "etcd did not answer after {attempts} attempts over {:?} at {}: last error: \
             {last_error}; check that the etcd members run, have a leader and are reachable \
             from here, and that the TLS files (--etcd-ca-file, --etcd-cert-file, \
             --etcd-key-file) match the members' https settings",
            self.retry_for,
            self.urls.join(", ")
        ))
    }
}

/// The retry state of one request: a deadline and a growing pause.
pub(super) struct Retry<'a> {
    connection: &'a Connection,
    deadline: Instant,
    backoff: Duration,
    attempts: u32,
}

impl Retry<'_> {
    /// Called after a request to member `index` failed. A transient failure moves later
    /// requests to the next member and returns Ok after a pause, until the deadline; a
    /// permanent one, or the deadline, returns the error to give the caller.
    pub(super) async fn failed(
        &mut self,
        index: usize,
        error: etcd_client::Error,
    ) -> Result<(), StoreError> {
        match classify(error) {
            Failure::Permanent(error) => Err(StoreError::Backend(format!("etcd: {error}"))),
            Failure::Transient(message) => self.transient(index, &message).await,
        }
    }

    /// `failed` for a failure already known to be transient (`message` says what it was).
    pub(super) async fn transient(
        &mut self,
        index: usize,
        message: &str,
    ) -> Result<(), StoreError> {
        self.attempts += 1;
        if Instant::now() + self.backoff >= self.deadline {
            return Err(self.connection.unreachable(self.attempts, message));
        }
        let members = self.connection.urls.len();
        let _ = self.connection.current.compare_exchange(
            index,
            (index + 1) % members,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        tracing::debug!(member = %self.connection.urls[index], %message, "etcd request failed; retrying");
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Ok(())
    }
}
