//! The gRPC service of bgpd.proto over the `Speaker`, the one mapping of errors to
//! `tonic::Status`, and serving on a Unix socket (mode 0600). Does I/O (the socket, streams).

use std::{
    net::IpAddr, os::unix::fs::PermissionsExt, path::Path, pin::Pin, sync::Arc, time::Instant,
};

use ipnet::IpNet;
use manul_proto::bgpd::{self as proto, bgpd_server::Bgpd};
use tokio::{net::UnixListener, sync::mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{
    api_convert::{
        global_from_proto, global_to_proto, peer_from_proto, prefix_to_proto, prefixes_from_proto,
        report_to_proto, route_to_proto,
    },
    best_wire::BestPathEncoder,
    rib_actor::{RibHandle, WatchHandle},
    speaker::{Speaker, SpeakerError},
};
use crate::{
    config::{ConfigError, parse_prefix},
    rib::RouteFilter,
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Speaker(#[from] SpeakerError),
}

/// Every error of the API becomes a status here and nowhere else.
pub fn to_status(error: ApiError) -> Status {
    let message = error.to_string();
    match error {
        ApiError::Config(_) => Status::invalid_argument(message),
        ApiError::Speaker(SpeakerError::NoGlobal) => Status::failed_precondition(message),
        ApiError::Speaker(SpeakerError::PeerExists(_)) => Status::already_exists(message),
        ApiError::Speaker(SpeakerError::UnknownPeer(_)) => Status::not_found(message),
        ApiError::Speaker(SpeakerError::Transport(_)) => Status::unavailable(message),
        ApiError::Speaker(SpeakerError::RibStopped) => Status::unavailable(message),
    }
}

fn status<E: Into<ApiError>>(error: E) -> Status {
    to_status(error.into())
}

pub struct BgpdService {
    speaker: Arc<Speaker>,
}

impl BgpdService {
    pub fn new(speaker: Arc<Speaker>) -> BgpdService {
        BgpdService { speaker }
    }

    pub fn server(speaker: Arc<Speaker>) -> proto::bgpd_server::BgpdServer<BgpdService> {
        proto::bgpd_server::BgpdServer::new(BgpdService::new(speaker))
    }
}

fn parse_address(text: &str, field: &str) -> Result<IpAddr, Status> {
    text.parse().map_err(|_| {
        status(crate::config::ConfigError::Field {
            field: field.to_string(),
            message: format!("{text:?} is not an IP address"),
        })
    })
}

/// Paths per streamed `BestPathBatch`.
const STREAM_BATCH: usize = 8192;

type BatchStream = Pin<Box<dyn Stream<Item = Result<proto::BestPathBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Bgpd for BgpdService {
    async fn set_global(
        &self,
        request: Request<proto::SetGlobalRequest>,
    ) -> Result<Response<proto::SetGlobalResponse>, Status> {
        let global = global_from_proto(request.into_inner().global).map_err(status)?;
        self.speaker.set_global(global).await.map_err(status)?;
        Ok(Response::new(proto::SetGlobalResponse {}))
    }

    async fn get_global(
        &self,
        _request: Request<proto::GetGlobalRequest>,
    ) -> Result<Response<proto::GetGlobalResponse>, Status> {
        let global = self
            .speaker
            .global()
            .await
            .ok_or_else(|| status(SpeakerError::NoGlobal))?;
        Ok(Response::new(proto::GetGlobalResponse {
            global: Some(global_to_proto(&global)),
        }))
    }

    async fn add_peer(
        &self,
        request: Request<proto::AddPeerRequest>,
    ) -> Result<Response<proto::AddPeerResponse>, Status> {
        let peer = peer_from_proto(request.into_inner().peer).map_err(status)?;
        self.speaker.add_peer(peer).await.map_err(status)?;
        Ok(Response::new(proto::AddPeerResponse {}))
    }

    async fn update_peer(
        &self,
        request: Request<proto::UpdatePeerRequest>,
    ) -> Result<Response<proto::UpdatePeerResponse>, Status> {
        let peer = peer_from_proto(request.into_inner().peer).map_err(status)?;
        self.speaker.update_peer(peer).await.map_err(status)?;
        Ok(Response::new(proto::UpdatePeerResponse {}))
    }

    async fn delete_peer(
        &self,
        request: Request<proto::DeletePeerRequest>,
    ) -> Result<Response<proto::DeletePeerResponse>, Status> {
        let address = parse_address(&request.into_inner().address, "address")?;
        self.speaker.delete_peer(address).await.map_err(status)?;
        Ok(Response::new(proto::DeletePeerResponse {}))
    }

    async fn list_peers(
        &self,
        request: Request<proto::ListPeersRequest>,
    ) -> Result<Response<proto::ListPeersResponse>, Status> {
        let request = request.into_inner();
        let only = match request.address.as_str() {
            "" => None,
            text => Some(parse_address(text, "address")?),
        };
        let reports = self.speaker.list_peers(only).await.map_err(status)?;
        let now = Instant::now();
        let peers = reports
            .iter()
            .map(|report| report_to_proto(report, now))
            .collect();
        Ok(Response::new(proto::ListPeersResponse { peers }))
    }

    async fn add_prefixes(
        &self,
        request: Request<proto::AddPrefixesRequest>,
    ) -> Result<Response<proto::AddPrefixesResponse>, Status> {
        let prefixes = prefixes_from_proto(request.into_inner().prefixes).map_err(status)?;
        self.speaker.add_prefixes(prefixes).await.map_err(status)?;
        Ok(Response::new(proto::AddPrefixesResponse {}))
    }

    async fn delete_prefixes(
        &self,
        request: Request<proto::DeletePrefixesRequest>,
    ) -> Result<Response<proto::DeletePrefixesResponse>, Status> {
        let prefixes = request
            .into_inner()
            .prefixes
            .iter()
            .enumerate()
            .map(|(index, text)| parse_prefix(text, &format!("prefixes[{index}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(status)?;
        self.speaker
            .delete_prefixes(prefixes)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::DeletePrefixesResponse {}))
    }

    async fn list_prefixes(
        &self,
        _request: Request<proto::ListPrefixesRequest>,
    ) -> Result<Response<proto::ListPrefixesResponse>, Status> {
        let prefixes = self
            .speaker
            .prefixes()
            .await
            .iter()
            .map(prefix_to_proto)
            .collect();
        Ok(Response::new(proto::ListPrefixesResponse { prefixes }))
    }

    type ListRoutesStream = RouteStream;

    async fn list_routes(
        &self,
        request: Request<proto::ListRoutesRequest>,
    ) -> Result<Response<RouteStream>, Status> {
        let filter = route_filter(request.get_ref())?;
        let rib = self.speaker.rib().await.map_err(status)?;
        let prefixes = rib
            .route_prefixes(filter)
            .await
            .ok_or_else(|| status(SpeakerError::RibStopped))?;
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(forward_routes(rib, prefixes, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type WatchBestPathsStream = BatchStream;

    async fn watch_best_paths(
        &self,
        _request: Request<proto::WatchBestPathsRequest>,
    ) -> Result<Response<BatchStream>, Status> {
        let watch = self.speaker.watch_best_paths().await.map_err(status)?;
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(forward_best_paths(watch, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Routes per `ListRoutesResponse`: one RIB command resolves one page, so the RIB thread is
/// never held for long and no message grows with the table (about 100 bytes a route).
const ROUTES_PAGE: usize = 4096;

type RouteStream = Pin<Box<dyn Stream<Item = Result<proto::ListRoutesResponse, Status>> + Send>>;

/// The RIB filter of a `ListRoutesRequest`.
fn route_filter(request: &proto::ListRoutesRequest) -> Result<RouteFilter, Status> {
    if request.prefix.is_empty() {
        return Ok(RouteFilter::All);
    }
    let prefix: IpNet = match request.prefix.parse::<IpNet>() {
        Ok(prefix) => prefix,
        Err(_) => parse_address(&request.prefix, "prefix")?.into(),
    };
    Ok(match proto::RouteMatch::try_from(request.r#match) {
        Ok(proto::RouteMatch::Exact) => RouteFilter::Exact(prefix),
        Ok(proto::RouteMatch::Covering) => RouteFilter::Covering(prefix),
        Ok(proto::RouteMatch::Covered) => RouteFilter::CoveredBy(prefix),
        Err(_) => {
            return Err(status(crate::config::ConfigError::Field {
                field: "match".into(),
                message: format!("{} is not a RouteMatch", request.r#match),
            }));
        }
    })
}

/// Sends the routes of `prefixes` (sorted here, off the RIB thread) a page at a time,
/// resolving each page only when the previous one has been taken (HTTP/2 flow control).
async fn forward_routes(
    rib: RibHandle,
    mut prefixes: Vec<IpNet>,
    tx: mpsc::Sender<Result<proto::ListRoutesResponse, Status>>,
) {
    prefixes.sort_unstable();
    for page in prefixes.chunks(ROUTES_PAGE) {
        let Ok(permit) = tx.reserve().await else {
            return;
        };
        let Some(routes) = rib.routes(page.to_vec()).await else {
            permit.send(Err(status(SpeakerError::RibStopped)));
            return;
        };
        permit.send(Ok(proto::ListRoutesResponse {
            routes: routes.iter().map(route_to_proto).collect(),
        }));
    }
}

/// Streams the watcher's chunks (up to `rib_actor::WATCH_CHUNK` paths) in `BestPathBatch`es
/// of up to `STREAM_BATCH` paths, encoded straight from the chunk (`best_wire`). The RIB
/// resolves a chunk only when this task asks for it, and it asks for the next one while the
/// current message waits for the client (HTTP/2 flow control): a slow client leaves its
/// changes coalesced per prefix in the RIB (see `watch`), not queued here. Ends when the
/// client leaves; dropping the `WatchHandle` unregisters the watcher.
async fn forward_best_paths(
    watch: WatchHandle,
    tx: mpsc::Sender<Result<proto::BestPathBatch, Status>>,
) {
    let mut encoder = BestPathEncoder::default();
    let mut next = watch.request();
    loop {
        let chunk = tokio::select! {
            chunk = &mut next => chunk,
            () = tx.closed() => return,
        };
        let Ok(chunk) = chunk else {
            return;
        };
        // Encoded one message at a time, right before it is queued.
        next = watch.request();
        let messages = chunk.events.chunks(STREAM_BATCH).count().max(1);
        let mut events = chunk.events.chunks(STREAM_BATCH);
        for index in 0..messages {
            let events = events.next().unwrap_or_default();
            // About 20 bytes a path for IPv4 routes (prefix and shared index), and the few
            // shared sets.
            let mut wire = Vec::with_capacity(events.len() * 24 + 256);
            encoder.encode(events, &mut wire);
            let batch = proto::BestPathBatch {
                encoded_paths: wire.into(),
                snapshot_done: chunk.snapshot_done && index + 1 == messages,
                ..Default::default()
            };
            let Ok(permit) = tx.reserve().await else {
                return;
            };
            permit.send(Ok(batch));
        }
        encoder.forget();
    }
}

/// Serves the API on a Unix socket (mode 0600) until `shutdown` completes. A stale socket
/// file of an earlier run is replaced.
pub async fn serve(
    speaker: Arc<Speaker>,
    path: &Path,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let served = tonic::transport::Server::builder()
        .add_service(BgpdService::server(speaker))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    let _ = std::fs::remove_file(path);
    served.map_err(std::io::Error::other)
}

/// A client of the API on `socket` (for tests, tools and the agent). Connects eagerly.
pub async fn connect(
    socket: &Path,
) -> Result<proto::bgpd_client::BgpdClient<tonic::transport::Channel>, tonic::transport::Error> {
    Ok(proto::bgpd_client::BgpdClient::new(
        connect_channel(socket).await?,
    ))
}

/// A channel to the API on `socket`, for clients with a codec of their own. Connects eagerly.
pub async fn connect_channel(
    socket: &Path,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    // tonic wants a URI; the connector ignores it.
    let endpoint = tonic::transport::Endpoint::from_static("http://[::]:50051");
    let path = socket.to_path_buf();
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let path = path.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    endpoint.connect_with_connector(connector).await
}
