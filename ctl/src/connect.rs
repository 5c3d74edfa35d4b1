//! Where manulctl reaches the datastore. etcd (and any non-embedded URL): directly. The
//! embedded store: through the agent's socket (manul-agent's `RawStore` service, as a
//! `RemoteDatastore`) when the socket was named (`--agent-socket`, MANUL_AGENT_SOCKET or the
//! config file) or when the agent at the default socket answers and holds this same store;
//! otherwise the file is opened directly (no agent runs). Every verb then works the same over
//! the `Datastore` trait. Does I/O (the socket, the store).

use std::{path::Path, sync::Arc, time::Duration};

use manul_agent::{
    client::{Timeouts, unix_channel},
    raw_store::{AgentInfo, RemoteDatastore},
};
use manul_proto::agent::DescribeResponse;
use manul_store::open_datastore_with_options;

use crate::{config::Settings, error::CtlError, store_access::Resources};

/// How long manulctl waits for the agent's socket to accept.
const AGENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How the datastore was reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Opened by manulctl itself; the datastore type ("embedded", "etcd", ...).
    Direct { datastore_type: String },
    /// Through the agent, which described itself.
    Agent(DescribeResponse),
}

/// An opened datastore and how it was reached.
pub struct Connection {
    pub resources: Resources,
    pub route: Route,
}

/// Opens the datastore named by the settings. An embedded store file that does not exist is
/// created only by commands that write new resources (`must_exist` false); reading one is an
/// error that names the path.
pub async fn open(settings: &Settings, must_exist: bool) -> Result<Connection, CtlError> {
    let url = &settings.datastore;
    if !url.starts_with("embedded://") {
        return open_directly(settings, must_exist, None);
    }
    let socket = &settings.agent_socket;
    match agent(socket).await {
        Ok((store, info)) if settings.agent_socket_given || info.datastore == *url => {
            Ok(Connection {
                resources: Resources::new(Arc::new(store)),
                route: Route::Agent(info),
            })
        }
        Ok((_, info)) => open_directly(
            settings,
            must_exist,
            Some(format!(
                "the agent at {} holds {}, not this store",
                socket.display(),
                info.datastore
            )),
        ),
        Err(reason) if settings.agent_socket_given => Err(CtlError::Open {
            url: url.clone(),
            reason: format!(
                "manul-agent's socket {} did not answer: {reason}",
                socket.display()
            ),
            hint: "; start manul-agent, or drop --agent-socket to open a store no agent holds"
                .into(),
        }),
        Err(reason) => open_directly(
            settings,
            must_exist,
            Some(format!("{} did not answer ({reason})", socket.display())),
        ),
    }
}

/// What the agent at `socket` says about itself (its version, node and datastore).
pub async fn describe_agent(socket: &Path) -> Result<DescribeResponse, String> {
    agent(socket).await.map(|(_, info)| info)
}

/// The agent at `socket` and what it says about itself.
async fn agent(socket: &Path) -> Result<(RemoteDatastore, DescribeResponse), String> {
    let timeouts = Timeouts {
        connect: AGENT_CONNECT_TIMEOUT,
        ..Timeouts::default()
    };
    let channel = unix_channel(socket, timeouts)
        .await
        .map_err(|error| error.cause())?;
    let store = RemoteDatastore::new(channel);
    let info = store.describe().await.map_err(|error| error.to_string())?;
    Ok((store, info))
}

/// Opens the store itself; `agent` says why the agent was not used (embedded stores only).
fn open_directly(
    settings: &Settings,
    must_exist: bool,
    agent: Option<String>,
) -> Result<Connection, CtlError> {
    let url = &settings.datastore;
    let embedded = url.strip_prefix("embedded://");
    if let Some(path) = embedded
        && must_exist
        && !path.is_empty()
        && !Path::new(path).exists()
    {
        return Err(CtlError::Open {
            url: url.clone(),
            reason: format!("{path} does not exist"),
            hint: "; give the agent's store with --datastore (or MANUL_DATASTORE)".into(),
        });
    }
    let store = open_datastore_with_options(url, &settings.datastore_options).map_err(|error| {
        CtlError::Open {
            url: url.clone(),
            reason: error.to_string(),
            hint: agent
                .map(|agent| {
                    format!(
                        "; while manul-agent runs it holds the embedded store, and manulctl \
                         reaches it through the agent's socket, but {agent}: give the agent's \
                         socket with --agent-socket, or stop the agent"
                    )
                })
                .unwrap_or_default(),
        }
    })?;
    Ok(Connection {
        resources: Resources::new(store),
        route: Route::Direct {
            datastore_type: AgentInfo::datastore_type(url),
        },
    })
}
