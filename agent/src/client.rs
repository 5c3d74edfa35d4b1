//! gRPC client for manul-agent's Unix socket, shared by the `manul` CNI plugin and manulctl,
//! and the Unix-socket channel the agent also uses to reach manul-bgpd.
//! Does I/O (connects a Unix socket).

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use manul_proto::agent::agent_client::AgentClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where manul-agent listens by default.
pub const DEFAULT_SOCKET: &str = "/var/run/manul/agent.sock";

/// How long to wait for the socket to accept.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one request may take (an ADD creates a veth, allocates, programs routes).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connect and per-request timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Applied to every request on the channel; an expired request fails with CANCELLED.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            request: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The agent could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {socket}: {cause}")]
    Connect {
        socket: PathBuf,
        /// The innermost cause, e.g. "No such file or directory (os error 2)".
        cause: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot connect to {socket}: no answer within {timeout:?}")]
    Timeout { socket: PathBuf, timeout: Duration },
}

impl ClientError {
    /// The innermost cause, without the socket path.
    pub fn cause(&self) -> String {
        match self {
            ClientError::Connect { cause, .. } => cause.clone(),
            ClientError::Timeout { timeout, .. } => format!("no answer within {timeout:?}"),
        }
    }

    /// The socket was not there at all (agent never started, or wrong path).
    pub fn socket_missing(&self) -> bool {
        matches!(self, ClientError::Connect { cause, .. } if cause.contains("os error 2)"))
    }
}

/// Connects to the agent at `socket` with the default timeouts.
pub async fn connect(socket: &Path) -> Result<AgentClient<Channel>, ClientError> {
    connect_with(socket, Timeouts::default()).await
}

/// Connects to the agent at `socket` (eagerly: an absent or dead agent fails here).
pub async fn connect_with(
    socket: &Path,
    timeouts: Timeouts,
) -> Result<AgentClient<Channel>, ClientError> {
    Ok(AgentClient::new(unix_channel(socket, timeouts).await?))
}

/// A gRPC channel to the server on the Unix socket `socket` (the agent's, or manul-bgpd's),
/// connected eagerly.
pub async fn unix_channel(socket: &Path, timeouts: Timeouts) -> Result<Channel, ClientError> {
    // The URI is required by tonic but unused: the connector below ignores it.
    // hyper's HTTP/2 windows stay as they are (2 MiB a stream, 5 MiB the connection): the
    // learned-routes task makes unary calls on the channel its best-path stream uses, so a
    // connection window no larger than a stream's would let an unread stream block them.
    let endpoint = Endpoint::from_static("http://[::]:50051")
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request);
    let path = socket.to_path_buf();
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
    });
    let connecting = endpoint.connect_with_connector(connector);
    // connect_timeout covers the socket connect; this also bounds the HTTP/2 handshake.
    match tokio::time::timeout(timeouts.connect, connecting).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(source)) => Err(ClientError::Connect {
            socket: socket.to_path_buf(),
            cause: innermost(&source),
            source,
        }),
        Err(_) => Err(ClientError::Timeout {
            socket: socket.to_path_buf(),
            timeout: timeouts.connect,
        }),
    }
}

/// The last error of a source chain, as text ("transport error" alone says nothing).
fn innermost(err: &tonic::transport::Error) -> String {
    let mut last: &dyn std::error::Error = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_socket_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("nope.sock");
        let err = connect(&socket).await.unwrap_err();
        assert!(err.socket_missing(), "{err}");
        assert!(err.to_string().contains("nope.sock"), "{err}");
    }

    #[tokio::test]
    async fn refused_socket_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let err = connect(&socket).await.unwrap_err();
        assert!(!err.socket_missing(), "{err}");
        assert!(err.cause().contains("refused"), "{err}");
    }
}
