//! Blocking calls to a node's `manul-agent` on its Unix socket (live state for assertions:
//! endpoints, status), over the agent crate's own client. Does I/O.

use std::path::Path;

use anyhow::{Context, Result};
use manul_proto::agent::{Endpoint, ListEndpointsRequest, StatusRequest, StatusResponse};

async fn connect(
    socket: &Path,
) -> Result<manul_proto::agent::agent_client::AgentClient<tonic::transport::Channel>> {
    manul_agent::client::connect(socket)
        .await
        .context("connect to the agent socket")
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
