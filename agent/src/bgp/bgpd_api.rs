//! The narrow interface through which the agent drives manul-bgpd (`BgpdApi`), and its real
//! implementation over bgpd's gRPC Unix socket, which reconnects after bgpd restarts. The
//! recording fake for tests is `fake::FakeBgpd`. Does I/O (the real one).

use std::{
    path::{Path, PathBuf},
    pin::Pin,
    time::Duration,
};

use futures::Stream;
use manul_proto::bgpd::{self as proto, bgpd_client::BgpdClient};
use tokio::sync::Mutex;
use tonic::{Code, transport::Channel};

use crate::client::{Timeouts, unix_channel};

#[derive(Debug, thiserror::Error)]
pub enum BgpdError {
    #[error(
        "cannot reach manul-bgpd at {socket}: {cause}; is manul-bgpd running with --socket {socket}?"
    )]
    Unreachable { socket: String, cause: String },
    #[error("manul-bgpd refused {call}: {message}")]
    Refused { call: &'static str, message: String },
}

impl BgpdError {
    /// bgpd is not there (or went away): reconnect and re-apply everything.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, BgpdError::Unreachable { .. })
    }
}

pub type BestPathStream =
    Pin<Box<dyn Stream<Item = Result<proto::BestPathBatch, BgpdError>> + Send>>;

/// The calls the agent makes; one method per RPC.
#[async_trait::async_trait]
pub trait BgpdApi: Send + Sync + 'static {
    /// None while bgpd has no global settings (just started).
    async fn get_global(&self) -> Result<Option<proto::Global>, BgpdError>;
    async fn set_global(&self, global: proto::Global) -> Result<(), BgpdError>;
    async fn list_peers(&self) -> Result<Vec<proto::PeerStatus>, BgpdError>;
    async fn add_peer(&self, peer: proto::Peer) -> Result<(), BgpdError>;
    async fn update_peer(&self, peer: proto::Peer) -> Result<(), BgpdError>;
    async fn delete_peer(&self, address: String) -> Result<(), BgpdError>;
    async fn list_prefixes(&self) -> Result<Vec<proto::OriginatedPrefix>, BgpdError>;
    async fn add_prefixes(&self, prefixes: Vec<proto::OriginatedPrefix>) -> Result<(), BgpdError>;
    async fn delete_prefixes(&self, prefixes: Vec<String>) -> Result<(), BgpdError>;
    async fn watch_best_paths(&self) -> Result<BestPathStream, BgpdError>;
}

/// bgpd over its Unix socket. A failed transport drops the channel; the next call reconnects.
pub struct RealBgpd {
    socket: PathBuf,
    channel: Mutex<Option<Channel>>,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl RealBgpd {
    pub fn new(socket: &Path) -> RealBgpd {
        RealBgpd {
            socket: socket.to_path_buf(),
            channel: Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<BgpdClient<Channel>, BgpdError> {
        let mut channel = self.channel.lock().await;
        if let Some(channel) = channel.as_ref() {
            return Ok(BgpdClient::new(channel.clone()));
        }
        let timeouts = Timeouts {
            connect: Duration::from_secs(5),
            request: CALL_TIMEOUT,
        };
        let connected = unix_channel(&self.socket, timeouts)
            .await
            .map_err(|error| BgpdError::Unreachable {
                socket: self.socket.display().to_string(),
                cause: error.cause(),
            })?;
        *channel = Some(connected.clone());
        Ok(BgpdClient::new(connected))
    }

    /// Maps a status; a transport failure forgets the channel.
    async fn failed(&self, call: &'static str, status: tonic::Status) -> BgpdError {
        if matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ) {
            *self.channel.lock().await = None;
            return BgpdError::Unreachable {
                socket: self.socket.display().to_string(),
                cause: status.message().to_string(),
            };
        }
        BgpdError::Refused {
            call,
            message: status.message().to_string(),
        }
    }
}

/// One RPC: `$call` on a fresh client handle, errors mapped.
macro_rules! rpc {
    ($self:ident, $name:literal, $call:ident, $request:expr) => {{
        let mut client = $self.client().await?;
        match client.$call($request).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err($self.failed($name, status).await),
        }
    }};
}

#[async_trait::async_trait]
impl BgpdApi for RealBgpd {
    async fn get_global(&self) -> Result<Option<proto::Global>, BgpdError> {
        let mut client = self.client().await?;
        match client.get_global(proto::GetGlobalRequest {}).await {
            Ok(response) => Ok(response.into_inner().global),
            Err(status) if status.code() == Code::FailedPrecondition => Ok(None),
            Err(status) => Err(self.failed("GetGlobal", status).await),
        }
    }

    async fn set_global(&self, global: proto::Global) -> Result<(), BgpdError> {
        let request = proto::SetGlobalRequest {
            global: Some(global),
        };
        rpc!(self, "SetGlobal", set_global, request).map(|_| ())
    }

    async fn list_peers(&self) -> Result<Vec<proto::PeerStatus>, BgpdError> {
        let request = proto::ListPeersRequest::default();
        rpc!(self, "ListPeers", list_peers, request).map(|response| response.peers)
    }

    async fn add_peer(&self, peer: proto::Peer) -> Result<(), BgpdError> {
        let request = proto::AddPeerRequest { peer: Some(peer) };
        rpc!(self, "AddPeer", add_peer, request).map(|_| ())
    }

    async fn update_peer(&self, peer: proto::Peer) -> Result<(), BgpdError> {
        let request = proto::UpdatePeerRequest { peer: Some(peer) };
        rpc!(self, "UpdatePeer", update_peer, request).map(|_| ())
    }

    async fn delete_peer(&self, address: String) -> Result<(), BgpdError> {
        let request = proto::DeletePeerRequest { address };
        rpc!(self, "DeletePeer", delete_peer, request).map(|_| ())
    }

    async fn list_prefixes(&self) -> Result<Vec<proto::OriginatedPrefix>, BgpdError> {
        rpc!(
            self,
            "ListPrefixes",
            list_prefixes,
            proto::ListPrefixesRequest {}
        )
        .map(|response| response.prefixes)
    }

    async fn add_prefixes(&self, prefixes: Vec<proto::OriginatedPrefix>) -> Result<(), BgpdError> {
        let request = proto::AddPrefixesRequest { prefixes };
        rpc!(self, "AddPrefixes", add_prefixes, request).map(|_| ())
    }

    async fn delete_prefixes(&self, prefixes: Vec<String>) -> Result<(), BgpdError> {
        let request = proto::DeletePrefixesRequest { prefixes };
        rpc!(self, "DeletePrefixes", delete_prefixes, request).map(|_| ())
    }

    async fn watch_best_paths(&self) -> Result<BestPathStream, BgpdError> {
        let stream = rpc!(
            self,
            "WatchBestPaths",
            watch_best_paths,
            proto::WatchBestPathsRequest {}
        )?;
        let socket = self.socket.display().to_string();
        Ok(Box::pin(futures::StreamExt::map(stream, move |item| {
            item.map_err(|status| BgpdError::Unreachable {
                socket: socket.clone(),
                cause: format!("the best-path stream ended: {}", status.message()),
            })
        })))
    }
}
