//! What the agent asks the Kubernetes API about pods and namespaces (in Kubernetes mode): a
//! pod's node, labels and annotations and a namespace's annotations, behind the narrow
//! `PodDirectory` trait so that pool selection (`pools`) and the IPAM garbage collector
//! (`gc`) are unit-tested against `FakePodDirectory`. `KubePodDirectory` does the I/O
//! (HTTPS GETs of core/v1 Pods and Namespaces, and one list of the pods on a node).

pub mod gc;
pub mod pools;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{Api, Client, api::ListParams};
use manul_store::kubernetes::ClientSource;
use tokio::sync::OnceCell;

/// The parts of a pod the agent uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// spec.nodeName: "" while the pod is not scheduled.
    pub node: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PodDirectoryError {
    #[error("Kubernetes API: {0}")]
    Api(String),
}

/// Reads of pods and namespaces. None: no such object (now).
#[async_trait::async_trait]
pub trait PodDirectory: Send + Sync {
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<PodInfo>, PodDirectoryError>;
    /// (namespace, name) of every pod scheduled on `node`.
    async fn pods_on_node(
        &self,
        node: &str,
    ) -> Result<BTreeSet<(String, String)>, PodDirectoryError>;
    /// A namespace's annotations.
    async fn namespace(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, PodDirectoryError>;
}

/// The API server's pods and namespaces, through a client built on the first request.
pub struct KubePodDirectory {
    source: ClientSource,
    client: OnceCell<Client>,
}

impl KubePodDirectory {
    pub fn new(source: ClientSource) -> KubePodDirectory {
        KubePodDirectory {
            source,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<Client, PodDirectoryError> {
        let client = self
            .client
            .get_or_try_init(|| self.source.client())
            .await
            .map_err(|error| PodDirectoryError::Api(error.to_string()))?;
        Ok(client.clone())
    }
}

#[async_trait::async_trait]
impl PodDirectory for KubePodDirectory {
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<PodInfo>, PodDirectoryError> {
        let api: Api<Pod> = Api::namespaced(self.client().await?, namespace);
        let pod = api
            .get_opt(name)
            .await
            .map_err(|error| PodDirectoryError::Api(format!("pod {namespace}/{name}: {error}")))?;
        Ok(pod.map(|pod| PodInfo {
            node: pod.spec.and_then(|spec| spec.node_name).unwrap_or_default(),
            labels: pod.metadata.labels.unwrap_or_default(),
            annotations: pod.metadata.annotations.unwrap_or_default(),
        }))
    }

    async fn pods_on_node(
        &self,
        node: &str,
    ) -> Result<BTreeSet<(String, String)>, PodDirectoryError> {
        let api: Api<Pod> = Api::all(self.client().await?);
        let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let pods = api
            .list_metadata(&params)
            .await
            .map_err(|error| PodDirectoryError::Api(format!("pods on node {node}: {error}")))?;
        Ok(pods
            .items
            .into_iter()
            .filter_map(|pod| Some((pod.metadata.namespace?, pod.metadata.name?)))
            .collect())
    }

    async fn namespace(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, PodDirectoryError> {
        let api: Api<Namespace> = Api::all(self.client().await?);
        let namespace = api
            .get_opt(name)
            .await
            .map_err(|error| PodDirectoryError::Api(format!("namespace {name}: {error}")))?;
        Ok(namespace.map(|namespace| namespace.metadata.annotations.unwrap_or_default()))
    }
}

/// Pods and namespaces held in memory, changed by the test while the code under test runs.
#[derive(Clone, Default)]
pub struct FakePodDirectory {
    pods: Arc<Mutex<HashMap<(String, String), PodInfo>>>,
    namespaces: Arc<Mutex<HashMap<String, BTreeMap<String, String>>>>,
}

impl FakePodDirectory {
    pub fn put_pod(&self, namespace: &str, name: &str, pod: PodInfo) {
        let key = (namespace.to_string(), name.to_string());
        self.pods.lock().unwrap().insert(key, pod);
    }

    pub fn remove_pod(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        self.pods.lock().unwrap().remove(&key);
    }

    pub fn put_namespace(&self, name: &str, annotations: BTreeMap<String, String>) {
        self.namespaces
            .lock()
            .unwrap()
            .insert(name.to_string(), annotations);
    }
}

#[async_trait::async_trait]
impl PodDirectory for FakePodDirectory {
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<PodInfo>, PodDirectoryError> {
        let key = (namespace.to_string(), name.to_string());
        Ok(self.pods.lock().unwrap().get(&key).cloned())
    }

    async fn pods_on_node(
        &self,
        node: &str,
    ) -> Result<BTreeSet<(String, String)>, PodDirectoryError> {
        let pods = self.pods.lock().unwrap();
        Ok(pods
            .iter()
            .filter(|(_, pod)| pod.node == node)
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn namespace(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, PodDirectoryError> {
        Ok(self.namespaces.lock().unwrap().get(name).cloned())
    }
}
