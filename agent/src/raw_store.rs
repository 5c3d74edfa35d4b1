//! The datastore through the agent's socket (agent.proto's `RawStore`): the service the agent
//! serves over the store it holds, the client side (`RemoteDatastore`, a `Datastore` that
//! manulctl uses while the agent holds the embedded store's file), and the one mapping of
//! `StoreError` to gRPC status codes and back. Does I/O (the socket, the store).
//!
//! Watch is not offered: manulctl never watches, and an agent's watchers read the store they
//! hold directly. `RemoteDatastore::watch` fails saying so.

use std::sync::Arc;

use manul_proto::agent::{
    DescribeRequest, DescribeResponse, StoreCreateRequest, StoreDeleteRequest, StoreDeleteResponse,
    StoreGetRequest, StoreGetResponse, StoreListRequest, StoreListResponse, StoreUpdateRequest,
    StoreWriteResponse, StoredObject,
    raw_store_client::RawStoreClient,
    raw_store_server::{RawStore, RawStoreServer},
};
use manul_store::{Datastore, KeyValue, Kind, Listing, Revision, StoreError, WatchStream};
use tonic::{Code, Request, Response, Status, transport::Channel};

/// What `Describe` answers: this agent and the datastore it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    pub version: String,
    pub node_name: String,
    pub datastore: String,
}

impl AgentInfo {
    /// "embedded", "etcd", "kubernetes": the scheme of a datastore URL (`kubernetes` may
    /// stand alone).
    pub fn datastore_type(url: &str) -> String {
        match url.split_once("://") {
            Some((scheme, _)) => scheme.to_string(),
            None if url == "kubernetes" => url.to_string(),
            None => "unknown".into(),
        }
    }
}

/// The `RawStore` service over the agent's store.
pub struct RawStoreService {
    store: Arc<dyn Datastore>,
    info: AgentInfo,
}

impl RawStoreService {
    pub fn server(store: Arc<dyn Datastore>, info: AgentInfo) -> RawStoreServer<RawStoreService> {
        RawStoreServer::new(RawStoreService { store, info })
    }

    /// Makes a write durable before it is answered (the agent defers the embedded store's
    /// durability to one sync per request).
    async fn synced<T>(&self, result: Result<T, StoreError>) -> Result<T, Status> {
        let value = result.map_err(|error| to_status(&error))?;
        self.store.sync().await.map_err(|error| to_status(&error))?;
        Ok(value)
    }
}

/// The one mapping of the store's errors to status codes (`from_status` reverses it).
pub fn to_status(error: &StoreError) -> Status {
    let message = error.to_string();
    match error {
        StoreError::NotFound { .. } => Status::not_found(message),
        StoreError::AlreadyExists { .. } => Status::already_exists(message),
        StoreError::Conflict { .. } => Status::aborted(message),
        StoreError::Compacted { .. } => Status::out_of_range(message),
        StoreError::Decode { .. } | StoreError::Encode { .. } | StoreError::BadUrl { .. } => {
            Status::invalid_argument(message)
        }
        StoreError::Backend(_) => Status::unavailable(message),
    }
}

/// A status of a request about `kind`/`name` as the error the store would have returned.
pub fn from_status(status: &Status, kind: Kind, name: &str) -> StoreError {
    let name = name.to_string();
    match status.code() {
        Code::NotFound => StoreError::NotFound { kind, name },
        Code::AlreadyExists => StoreError::AlreadyExists { kind, name },
        Code::Aborted => StoreError::Conflict { kind, name },
        _ => StoreError::Backend(format!(
            "manul-agent's store answered {:?}: {}",
            status.code(),
            status.message()
        )),
    }
}

fn parse_kind(text: &str) -> Result<Kind, Status> {
    Kind::parse(text).ok_or_else(|| {
        Status::invalid_argument(format!(
            "kind {text:?} is not a kind the store knows: one of {}",
            Kind::ALL.map(Kind::as_str).join(", ")
        ))
    })
}

fn to_proto(kv: KeyValue) -> StoredObject {
    StoredObject {
        kind: kv.kind.as_str().to_string(),
        name: kv.name,
        value: kv.value,
        revision: kv.revision.0,
    }
}

#[tonic::async_trait]
impl RawStore for RawStoreService {
    async fn get(
        &self,
        request: Request<StoreGetRequest>,
    ) -> Result<Response<StoreGetResponse>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        let object = self
            .store
            .get(kind, &request.name)
            .await
            .map_err(|error| to_status(&error))?;
        Ok(Response::new(StoreGetResponse {
            object: object.map(to_proto),
        }))
    }

    async fn list(
        &self,
        request: Request<StoreListRequest>,
    ) -> Result<Response<StoreListResponse>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        let listing = self
            .store
            .list(kind, &request.name_prefix)
            .await
            .map_err(|error| to_status(&error))?;
        Ok(Response::new(StoreListResponse {
            items: listing.items.into_iter().map(to_proto).collect(),
            revision: listing.revision.0,
        }))
    }

    async fn create(
        &self,
        request: Request<StoreCreateRequest>,
    ) -> Result<Response<StoreWriteResponse>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        let written = self.store.create(kind, &request.name, request.value).await;
        let revision = self.synced(written).await?;
        Ok(Response::new(StoreWriteResponse {
            revision: revision.0,
        }))
    }

    async fn update(
        &self,
        request: Request<StoreUpdateRequest>,
    ) -> Result<Response<StoreWriteResponse>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        let expected = Revision(request.expected_revision);
        let written = self
            .store
            .update(kind, &request.name, request.value, &expected)
            .await;
        let revision = self.synced(written).await?;
        Ok(Response::new(StoreWriteResponse {
            revision: revision.0,
        }))
    }

    async fn delete(
        &self,
        request: Request<StoreDeleteRequest>,
    ) -> Result<Response<StoreDeleteResponse>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        let expected = Revision(request.expected_revision);
        let deleted = self.store.delete(kind, &request.name, &expected).await;
        self.synced(deleted).await?;
        Ok(Response::new(StoreDeleteResponse {}))
    }

    async fn describe(
        &self,
        _request: Request<DescribeRequest>,
    ) -> Result<Response<DescribeResponse>, Status> {
        Ok(Response::new(DescribeResponse {
            agent_version: self.info.version.clone(),
            node_name: self.info.node_name.clone(),
            datastore_type: AgentInfo::datastore_type(&self.info.datastore),
            datastore: self.info.datastore.clone(),
        }))
    }
}

/// The agent's store, reached through its socket.
#[derive(Clone)]
pub struct RemoteDatastore {
    client: RawStoreClient<Channel>,
}

impl RemoteDatastore {
    /// Over a connected channel to the agent (`crate::client::unix_channel`).
    pub fn new(channel: Channel) -> RemoteDatastore {
        RemoteDatastore {
            client: RawStoreClient::new(channel),
        }
    }

    /// The agent's version, node and datastore.
    pub async fn describe(&self) -> Result<DescribeResponse, StoreError> {
        self.client
            .clone()
            .describe(DescribeRequest {})
            .await
            .map(Response::into_inner)
            .map_err(|status| {
                StoreError::Backend(format!("manul-agent's Describe failed: {status}"))
            })
    }
}

fn from_proto(object: StoredObject) -> Result<KeyValue, StoreError> {
    let kind = Kind::parse(&object.kind).ok_or_else(|| {
        StoreError::Backend(format!(
            "manul-agent answered an object of unknown kind {:?}",
            object.kind
        ))
    })?;
    Ok(KeyValue {
        kind,
        name: object.name,
        value: object.value,
        revision: Revision(object.revision),
    })
}

#[async_trait::async_trait]
impl Datastore for RemoteDatastore {
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<KeyValue>, StoreError> {
        let request = StoreGetRequest {
            kind: kind.as_str().into(),
            name: name.into(),
        };
        let response = self.client.clone().get(request).await;
        let response = response.map_err(|status| from_status(&status, kind, name))?;
        response.into_inner().object.map(from_proto).transpose()
    }

    async fn list(&self, kind: Kind, name_prefix: &str) -> Result<Listing, StoreError> {
        let request = StoreListRequest {
            kind: kind.as_str().into(),
            name_prefix: name_prefix.into(),
        };
        let response = self.client.clone().list(request).await;
        let response = response
            .map_err(|status| from_status(&status, kind, name_prefix))?
            .into_inner();
        Ok(Listing {
            items: response
                .items
                .into_iter()
                .map(from_proto)
                .collect::<Result<_, _>>()?,
            revision: Revision(response.revision),
        })
    }

    async fn create(&self, kind: Kind, name: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let request = StoreCreateRequest {
            kind: kind.as_str().into(),
            name: name.into(),
            value,
        };
        let response = self.client.clone().create(request).await;
        let response = response.map_err(|status| from_status(&status, kind, name))?;
        Ok(Revision(response.into_inner().revision))
    }

    async fn update(
        &self,
        kind: Kind,
        name: &str,
        value: Vec<u8>,
        expected: &Revision,
    ) -> Result<Revision, StoreError> {
        let request = StoreUpdateRequest {
            kind: kind.as_str().into(),
            name: name.into(),
            value,
            expected_revision: expected.0.clone(),
        };
        let response = self.client.clone().update(request).await;
        let response = response.map_err(|status| from_status(&status, kind, name))?;
        Ok(Revision(response.into_inner().revision))
    }

    async fn delete(&self, kind: Kind, name: &str, expected: &Revision) -> Result<(), StoreError> {
        let request = StoreDeleteRequest {
            kind: kind.as_str().into(),
            name: name.into(),
            expected_revision: expected.0.clone(),
        };
        let response = self.client.clone().delete(request).await;
        response.map_err(|status| from_status(&status, kind, name))?;
        Ok(())
    }

    async fn watch(
        &self,
        kind: Kind,
        _name_prefix: &str,
        _after: &Revision,
    ) -> Result<WatchStream, StoreError> {
        Err(StoreError::Backend(format!(
            "watching {kind} is not offered through manul-agent's socket (manulctl does not \
             watch); open the datastore directly"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_error_the_client_tells_apart_survives_the_round_trip() {
        let (kind, name) = (Kind::IPPool, "p");
        let errors = [
            StoreError::NotFound {
                kind,
                name: name.into(),
            },
            StoreError::AlreadyExists {
                kind,
                name: name.into(),
            },
            StoreError::Conflict {
                kind,
                name: name.into(),
            },
        ];
        for error in errors {
            let back = from_status(&to_status(&error), kind, name);
            assert_eq!(back.to_string(), error.to_string());
        }
        let backend = from_status(
            &to_status(&StoreError::Backend("disk full".into())),
            kind,
            name,
        );
        assert!(
            matches!(&backend, StoreError::Backend(text) if text.contains("disk full")),
            "{backend}"
        );
    }

    #[test]
    fn datastore_types_come_from_the_url_scheme() {
        assert_eq!(AgentInfo::datastore_type("embedded:///x.redb"), "embedded");
        assert_eq!(AgentInfo::datastore_type("etcd://h:1"), "etcd");
        assert_eq!(AgentInfo::datastore_type("kubernetes"), "kubernetes");
        assert_eq!(
            AgentInfo::datastore_type("kubernetes:///etc/kubeconfig"),
            "kubernetes"
        );
    }
}
