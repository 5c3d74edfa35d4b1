//! The Kubernetes backend ("KDD" mode, as Calico's): manul's own kinds are cluster-scoped
//! custom resources of group manul.dev/v1 whose spec is the record's JSON, Node records live
//! in annotations of the Kubernetes Node, and WorkloadEndpoints in annotations of their Pod.
//! A revision is the object's resourceVersion. Network I/O (HTTPS to the API server).
//!
//! | store kind        | Kubernetes object                                        |
//! |-------------------|----------------------------------------------------------|
//! | IPPool, IPAMBlock, BlockAffinity, IPAMHandle, IPAMConfiguration, IPPoolIndex, BGPPeer, BGPConfiguration | `manul.dev/v1` custom resource of the same kind, spec = record (see `crds`) |
//! | Node              | core/v1 Node, annotation `manul.dev/node` (see `nodes`)  |
//! | WorkloadEndpoint  | core/v1 Pod, annotation `manul.dev/workload-endpoint` (see `pods`) |
//!
//! IPPoolIndex is kept as a CRD rather than derived from the IPPool list: pool creation's
//! overlap check relies on a compare-and-swap on that one object, which a derived list cannot
//! give. Writes are compare-and-swaps on resourceVersion: a create is a POST (409
//! AlreadyExists), an update a PUT carrying the expected resourceVersion (409 Conflict), a
//! delete carries it as a precondition; Node and Pod writes are JSON merge patches carrying
//! it. The API server lists in its own order and cannot filter by a name prefix, so lists are
//! filtered and sorted here. The mapping code is pure (`objects`, `names`, `nodes`, `pods`);
//! this file and `watch` only move requests.

mod config;
pub mod crds;
mod errors;
pub mod names;
mod nodes;
pub mod objects;
mod pods;
mod watch;

use kube::{
    Api, Client,
    api::{
        DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
        WatchParams,
    },
};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

pub use config::ClientSource;
use errors::store_error;
use objects::{
    Mapping, Translated, custom_object, json_object, object_name, resource_version, select,
};

use crate::datastore::{Datastore, KeyValue, Kind, Listing, Revision, StoreError, WatchStream};

pub struct KubernetesStore {
    source: ClientSource,
    client: OnceCell<Client>,
}

impl KubernetesStore {
    /// A store that builds its client from `source` on the first request (no I/O here).
    pub fn new(source: ClientSource) -> KubernetesStore {
        KubernetesStore {
            source,
            client: OnceCell::new(),
        }
    }

    /// A store over an existing client (tests drive one over tower-test's mock service).
    pub fn with_client(client: Client) -> KubernetesStore {
        KubernetesStore {
            source: ClientSource::Infer,
            client: OnceCell::new_with(Some(client)),
        }
    }

    async fn api(&self, kind: Kind) -> Result<Api<DynamicObject>, StoreError> {
        let client = self
            .client
            .get_or_try_init(|| self.source.client())
            .await?
            .clone();
        Ok(Api::all_with(client, &Mapping::of(kind).api_resource()))
    }

    async fn pod_api(&self, namespace: &str) -> Result<Api<DynamicObject>, StoreError> {
        let api = self.api(Kind::WorkloadEndpoint).await?;
        let resource = Mapping::WorkloadEndpoint.api_resource();
        Ok(Api::namespaced_with(
            api.into_client(),
            namespace,
            &resource,
        ))
    }

    /// The records of `kind` among `objects`.
    fn records(kind: Kind, objects: &[DynamicObject]) -> Result<Vec<KeyValue>, StoreError> {
        let mut records = Vec::new();
        for object in objects {
            if let Translated::Record(kv) = Mapping::of(kind).translate(object)? {
                records.push(kv);
            }
        }
        Ok(records)
    }

    async fn list_objects(
        &self,
        kind: Kind,
        prefix: &str,
    ) -> Result<(Vec<DynamicObject>, Revision), StoreError> {
        let mut params = ListParams::default();
        if kind == Kind::WorkloadEndpoint
            && let Some(selector) = pods::field_selector(prefix)
        {
            params = params.fields(&selector);
        }
        let list = self
            .api(kind)
            .await?
            .list(&params)
            .await
            .map_err(store_error(kind, prefix))?;
        let revision = Revision(list.metadata.resource_version.unwrap_or_default());
        Ok((list.items, revision))
    }

    /// The pod holding the endpoint `name`, and the endpoint.
    async fn find_endpoint(
        &self,
        name: &str,
    ) -> Result<Option<(DynamicObject, KeyValue)>, StoreError> {
        if pods::node_of(name).is_none() {
            return Ok(None);
        }
        let (pods, _) = self.list_objects(Kind::WorkloadEndpoint, name).await?;
        for pod in pods {
            if let Translated::Record(kv) = pods::translate(&pod)?
                && kv.name == name
            {
                return Ok(Some((pod, kv)));
            }
        }
        Ok(None)
    }

    /// Merge-patches the Node or Pod `object` named `name` (store name) and returns its new
    /// resourceVersion. A 409 means the object moved on since `patch`'s resourceVersion.
    async fn patch(
        &self,
        api: &Api<DynamicObject>,
        kind: Kind,
        name: &str,
        object: &str,
        patch: &Value,
    ) -> Result<Revision, StoreError> {
        let patched = api
            .patch(object, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(store_error(kind, name))?;
        Ok(resource_version(&patched))
    }

    async fn write_node(
        &self,
        name: &str,
        record: Map<String, Value>,
        expected: Option<&Revision>,
    ) -> Result<Revision, StoreError> {
        let api = self.api(Kind::Node).await?;
        let expected = match expected {
            Some(expected) => expected.clone(),
            None => {
                // kubelet creates Nodes: a record goes only onto a Node that exists.
                let node = api
                    .get_opt(name)
                    .await
                    .map_err(store_error(Kind::Node, name))?;
                let node = node.ok_or_else(|| not_found(Kind::Node, name))?;
                if let Translated::Record(_) = nodes::translate(&node)? {
                    return Err(StoreError::AlreadyExists {
                        kind: Kind::Node,
                        name: name.into(),
                    });
                }
                resource_version(&node)
            }
        };
        self.patch(
            &api,
            Kind::Node,
            name,
            name,
            &nodes::write_patch(record, &expected),
        )
        .await
    }

    async fn write_endpoint(
        &self,
        name: &str,
        record: Map<String, Value>,
        expected: Option<&Revision>,
    ) -> Result<Revision, StoreError> {
        let kind = Kind::WorkloadEndpoint;
        let (namespace, pod_name) = pods::pod_of(name, &record)?;
        let api = self.pod_api(&namespace).await?;
        let expected = match expected {
            Some(expected) => expected.clone(),
            None => {
                let pod = api
                    .get_opt(&pod_name)
                    .await
                    .map_err(store_error(kind, name))?;
                let pod = pod.ok_or_else(|| not_found(kind, name))?;
                if let Translated::Record(kv) = pods::translate(&pod)?
                    && kv.name == name
                {
                    return Err(StoreError::AlreadyExists {
                        kind,
                        name: name.into(),
                    });
                }
                resource_version(&pod)
            }
        };
        self.patch(
            &api,
            kind,
            name,
            &pod_name,
            &pods::write_patch(name, record, &expected),
        )
        .await
    }
}

fn not_found(kind: Kind, name: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        name: name.to_string(),
    }
}

#[async_trait::async_trait]
impl Datastore for KubernetesStore {
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<KeyValue>, StoreError> {
        if kind == Kind::WorkloadEndpoint {
            return Ok(self.find_endpoint(name).await?.map(|(_, kv)| kv));
        }
        let Ok(object) = names::object_name(name) else {
            return Ok(None);
        };
        let found = self
            .api(kind)
            .await?
            .get_opt(&object)
            .await
            .map_err(store_error(kind, name))?;
        match found
            .as_ref()
            .map(|object| Mapping::of(kind).translate(object))
            .transpose()?
        {
            Some(Translated::Record(kv)) => Ok(Some(kv)),
            _ => Ok(None),
        }
    }

    async fn list(&self, kind: Kind, name_prefix: &str) -> Result<Listing, StoreError> {
        let (objects, revision) = self.list_objects(kind, name_prefix).await?;
        Ok(Listing {
            items: select(Self::records(kind, &objects)?, name_prefix),
            revision,
        })
    }

    async fn create(&self, kind: Kind, name: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let record = json_object(kind, name, &value)?;
        match Mapping::of(kind) {
            Mapping::Node => self.write_node(name, record, None).await,
            Mapping::WorkloadEndpoint => self.write_endpoint(name, record, None).await,
            Mapping::Custom(_) => {
                let object = custom_object(kind, name, &value, None)?;
                let created = self
                    .api(kind)
                    .await?
                    .create(&PostParams::default(), &object)
                    .await;
                Ok(resource_version(&created.map_err(store_error(kind, name))?))
            }
        }
    }

    async fn update(
        &self,
        kind: Kind,
        name: &str,
        value: Vec<u8>,
        expected: &Revision,
    ) -> Result<Revision, StoreError> {
        let record = json_object(kind, name, &value)?;
        match Mapping::of(kind) {
            Mapping::Node => self.write_node(name, record, Some(expected)).await,
            Mapping::WorkloadEndpoint => self.write_endpoint(name, record, Some(expected)).await,
            Mapping::Custom(_) => {
                let object = custom_object(kind, name, &value, Some(expected))?;
                let api = self.api(kind).await?;
                let replaced = api
                    .replace(&object_name(kind, name)?, &PostParams::default(), &object)
                    .await;
                Ok(resource_version(
                    &replaced.map_err(store_error(kind, name))?,
                ))
            }
        }
    }

    async fn delete(&self, kind: Kind, name: &str, expected: &Revision) -> Result<(), StoreError> {
        match Mapping::of(kind) {
            Mapping::Node => {
                let api = self.api(kind).await?;
                self.patch(&api, kind, name, name, &nodes::remove_patch(name, expected))
                    .await?;
            }
            Mapping::WorkloadEndpoint => {
                let (pod, _) = self
                    .find_endpoint(name)
                    .await?
                    .ok_or_else(|| not_found(kind, name))?;
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                let api = self.pod_api(&namespace).await?;
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                self.patch(
                    &api,
                    kind,
                    name,
                    &pod_name,
                    &pods::remove_patch(name, expected),
                )
                .await?;
            }
            Mapping::Custom(_) => {
                let params = DeleteParams::default().preconditions(Preconditions {
                    resource_version: Some(expected.0.clone()),
                    uid: None,
                });
                let api = self.api(kind).await?;
                api.delete(&object_name(kind, name)?, &params)
                    .await
                    .map_err(store_error(kind, name))?;
            }
        }
        Ok(())
    }

    async fn watch(
        &self,
        kind: Kind,
        name_prefix: &str,
        after: &Revision,
    ) -> Result<WatchStream, StoreError> {
        let mut params = WatchParams::default();
        if kind == Kind::WorkloadEndpoint
            && let Some(selector) = pods::field_selector(name_prefix)
        {
            params = params.fields(&selector);
        }
        let api = self.api(kind).await?;
        Ok(watch::watch(
            api,
            Mapping::of(kind),
            name_prefix.to_string(),
            params,
            after.clone(),
        ))
    }
}
