//! A blocking gRPC client for a node's `manul-agent` on its Unix socket (live state for
//! assertions: endpoints, status). Does I/O.
//!
//! It is built on manul-proto directly rather than on the agent crate's client module, so that
//! the harness does not depend on the agent's library and builds while the agent is changing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use manul_proto::agent::agent_client::AgentClient;
use manul_proto::agent::{Endpoint, ListEndpointsRequest, StatusRequest, StatusResponse};
use tonic::transport::{Channel, Endpoint as TonicEndpoint, Uri};
use tower::service_fn;

async fn connect(socket: &Path) -> Result<AgentClient<Channel>> {
    let socket: PathBuf = socket.to_path_buf();
    // The URI is required by tonic but unused: the connector dials the socket.
    let channel = TonicEndpoint::try_from("http://[::]:50051")?
        .connect_with_connector(service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .context("connect to the agent socket")?;
    Ok(AgentClient::new(channel))
}

fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// The endpoints the agent holds (ListEndpoints).
pub fn list_endpoints(socket: &Path) -> Result<Vec<Endpoint>> {
    block_on(async {
        let mut client = connect(socket).await?;
        let resp = client.list_endpoints(ListEndpointsRequest {}).await?;
        Ok(resp.into_inner().endpoints)
    })
}

/// The agent's readiness for `network` (Status).
pub fn status(socket: &Path, network: &str) -> Result<StatusResponse> {
    block_on(async {
        let mut client = connect(socket).await?;
        let req = StatusRequest {
            network_name: network.to_string(),
        };
        Ok(client.status(req).await?.into_inner())
    })
}

/// Every address of every endpoint the agent holds.
pub fn endpoint_addresses(socket: &Path) -> Result<Vec<String>> {
    Ok(list_endpoints(socket)?
        .into_iter()
        .flat_map(|e| e.addresses)
        .collect())
}
