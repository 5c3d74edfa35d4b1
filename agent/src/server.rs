//! The agent's gRPC service (agent.proto) on its Unix socket: converts requests to the
//! endpoint layer's types, and errors to gRPC status codes in this one place. I/O: the socket.

use std::{net::IpAddr, path::PathBuf, sync::Arc};

use ipnet::IpNet;
use manul_ipam::IpamError;
use manul_proto::agent::{
    AddResponse, Attachment as ProtoAttachment, CheckResponse, CniRequest, DelResponse, Endpoint,
    GcRequest, GcResponse, Interface, IpConfig, ListEndpointsRequest, ListEndpointsResponse, Route,
    StatusRequest, StatusResponse, agent_server::Agent,
};
use manul_store::StoreError;
use tonic::{Request, Response, Status};

use crate::{
    endpoint::{AddedEndpoint, EndpointError, EndpointRequest, Endpoints, check::Attachment},
    netlink::{POD_GATEWAY_V4, POD_GATEWAY_V6, format_mac},
};

pub struct AgentService {
    endpoints: Arc<Endpoints>,
}

impl AgentService {
    pub fn new(endpoints: Arc<Endpoints>) -> AgentService {
        AgentService { endpoints }
    }
}

/// The one mapping from the agent's errors to gRPC status codes (the plugin maps those to CNI
/// codes, see agent.proto).
pub fn to_status(error: EndpointError) -> Status {
    match &error {
        EndpointError::InvalidRequest(_) => Status::invalid_argument(error.to_string()),
        EndpointError::UnknownContainer { .. } => Status::not_found(error.to_string()),
        EndpointError::CheckFailed(_) => Status::failed_precondition(error.to_string()),
        EndpointError::Ipam(ipam) => match ipam {
            IpamError::NoAddressesAvailable { .. } => Status::resource_exhausted(error.to_string()),
            IpamError::AddressInUse { .. } => Status::already_exists(error.to_string()),
            IpamError::NoMatchingPool { .. }
            | IpamError::AddressNotInPool { .. }
            | IpamError::PoolDisabled { .. }
            | IpamError::PoolNotForNode { .. }
            | IpamError::InvalidPool { .. }
            | IpamError::InvalidRequest(_) => Status::invalid_argument(error.to_string()),
            IpamError::RetriesExhausted { .. } => Status::unavailable(error.to_string()),
            IpamError::Store(store) => store_status(store, error.to_string()),
            #[allow(unreachable_patterns)]
            _ => Status::internal(error.to_string()),
        },
        EndpointError::Store(store) => store_status(store, error.to_string()),
        EndpointError::PoolAnnotation(crate::pods::pools::PoolAnnotationError::Invalid {
            ..
        }) => Status::invalid_argument(error.to_string()),
        EndpointError::PoolAnnotation(_) => Status::unavailable(error.to_string()),
        EndpointError::Netlink(_) | EndpointError::Sysctl(_) | EndpointError::Several(_) => {
            Status::internal(error.to_string())
        }
    }
}

/// Runs an operation on a task of its own, so that it finishes even when the gRPC call that
/// started it is dropped.
async fn run_to_completion<T: Send + 'static>(
    operation: impl std::future::Future<Output = Result<T, EndpointError>> + Send + 'static,
) -> Result<T, Status> {
    match tokio::spawn(operation).await {
        Ok(result) => result.map_err(to_status),
        Err(error) => Err(Status::internal(format!(
            "the operation's task failed: {error}"
        ))),
    }
}

fn store_status(error: &StoreError, message: String) -> Status {
    if error.is_conflict() {
        Status::unavailable(message)
    } else {
        Status::internal(message)
    }
}

fn parse_request(request: CniRequest) -> Result<EndpointRequest, Status> {
    let requested_ips = request
        .requested_ips
        .iter()
        .map(|text| {
            // Accept "10.0.0.5" and "10.0.0.5/32".
            let address = text.split('/').next().unwrap_or_default();
            address.parse::<IpAddr>().map_err(|_| {
                Status::invalid_argument(format!("requested_ips: {text:?} is not an IP address"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let prev_result_ips = request
        .prev_result_ips
        .iter()
        .map(|text| {
            text.parse::<IpNet>().map_err(|_| {
                Status::invalid_argument(format!("prevResult ips: {text:?} is not a CIDR"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EndpointRequest {
        container_id: request.container_id,
        netns: (!request.netns.is_empty()).then(|| PathBuf::from(request.netns)),
        ifname: if request.ifname.is_empty() {
            "eth0".into()
        } else {
            request.ifname
        },
        pod_namespace: request.pod_namespace,
        pod_name: request.pod_name,
        network_name: request.network_name,
        mtu: (request.mtu != 0).then_some(request.mtu),
        assign_ipv4: request.assign_ipv4,
        assign_ipv6: request.assign_ipv6,
        ipv4_pools: request.ipv4_pools,
        ipv6_pools: request.ipv6_pools,
        requested_ips,
        prev_result_ips,
    })
}

/// The CNI result of an ADD: interface 0 is the host end, 1 the pod's.
pub fn add_response(added: &AddedEndpoint) -> AddResponse {
    let interfaces = vec![
        Interface {
            name: added.host.name.clone(),
            mac: format_mac(&added.host.mac),
            sandbox: String::new(),
            mtu: added.host.mtu,
        },
        Interface {
            name: added.pod_ifname.clone(),
            mac: format_mac(&added.pod.mac),
            sandbox: added.netns.clone(),
            mtu: added.pod.mtu,
        },
    ];
    let ips = added
        .addresses
        .iter()
        .map(|address| IpConfig {
            address: address.to_string(),
            gateway: match address {
                IpNet::V4(_) => POD_GATEWAY_V4.to_string(),
                IpNet::V6(_) => POD_GATEWAY_V6.to_string(),
            },
            interface: 1,
        })
        .collect();
    let mut routes = Vec::new();
    if added
        .addresses
        .iter()
        .any(|address| matches!(address, IpNet::V4(_)))
    {
        routes.push(Route {
            destination: "0.0.0.0/0".into(),
            gateway: POD_GATEWAY_V4.to_string(),
        });
    }
    if added
        .addresses
        .iter()
        .any(|address| matches!(address, IpNet::V6(_)))
    {
        routes.push(Route {
            destination: "::/0".into(),
            gateway: POD_GATEWAY_V6.to_string(),
        });
    }
    AddResponse {
        interfaces,
        ips,
        routes,
    }
}

#[tonic::async_trait]
impl Agent for AgentService {
    /// Runs to completion on a task of its own even when the caller goes away (the plugin
    /// killed, or its deadline passed): an ADD cut off between two kernel writes would leave a
    /// half-made pod with no one to undo it. The runtime's DEL, which follows a failed ADD,
    /// then removes a complete one.
    async fn add(&self, request: Request<CniRequest>) -> Result<Response<AddResponse>, Status> {
        let request = parse_request(request.into_inner())?;
        let endpoints = self.endpoints.clone();
        let added = run_to_completion(async move { endpoints.add(&request).await }).await?;
        Ok(Response::new(add_response(&added)))
    }

    async fn del(&self, request: Request<CniRequest>) -> Result<Response<DelResponse>, Status> {
        let request = parse_request(request.into_inner())?;
        let endpoints = self.endpoints.clone();
        let released = run_to_completion(async move { endpoints.delete(&request).await }).await?;
        Ok(Response::new(DelResponse {
            released: released.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn check(&self, request: Request<CniRequest>) -> Result<Response<CheckResponse>, Status> {
        let request = parse_request(request.into_inner())?;
        self.endpoints.check(&request).await.map_err(to_status)?;
        Ok(Response::new(CheckResponse {}))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let ready = match self.endpoints.ipam().pools().await {
            Ok(pools) if pools.iter().any(|pool| !pool.disabled) => StatusResponse {
                ready: true,
                reason: String::new(),
            },
            Ok(_) => StatusResponse {
                ready: false,
                reason: "no enabled IP pool: create one (manulctl create ippool)".into(),
            },
            Err(error) => StatusResponse {
                ready: false,
                reason: format!("datastore unavailable: {error}"),
            },
        };
        Ok(Response::new(ready))
    }

    async fn gc(&self, request: Request<GcRequest>) -> Result<Response<GcResponse>, Status> {
        let request = request.into_inner();
        let valid: Vec<Attachment> = request
            .valid_attachments
            .into_iter()
            .map(|attachment| Attachment {
                container_id: attachment.container_id,
                ifname: if attachment.ifname.is_empty() {
                    "eth0".into()
                } else {
                    attachment.ifname
                },
            })
            .collect();
        let endpoints = self.endpoints.clone();
        let network = request.network_name.clone();
        let released =
            run_to_completion(async move { endpoints.garbage_collect(&network, &valid).await })
                .await?;
        Ok(Response::new(GcResponse {
            released: released
                .into_iter()
                .map(|attachment| ProtoAttachment {
                    container_id: attachment.container_id,
                    ifname: attachment.ifname,
                })
                .collect(),
        }))
    }

    async fn list_endpoints(
        &self,
        _request: Request<ListEndpointsRequest>,
    ) -> Result<Response<ListEndpointsResponse>, Status> {
        let endpoints = self.endpoints.list().await.map_err(to_status)?;
        Ok(Response::new(ListEndpointsResponse {
            endpoints: endpoints
                .into_iter()
                .map(|versioned| {
                    let endpoint = versioned.value;
                    Endpoint {
                        container_id: endpoint.container_id,
                        ifname: endpoint.endpoint,
                        interface_name: endpoint.interface_name,
                        addresses: endpoint
                            .ip_networks
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                        pod_namespace: endpoint.namespace,
                        pod_name: endpoint.pod,
                        network_name: endpoint.network,
                    }
                })
                .collect(),
        }))
    }
}
