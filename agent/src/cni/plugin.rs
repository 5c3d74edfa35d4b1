//! One invocation of the plugin: [`prepare`] validates the environment and the config and builds
//! the agent request (no I/O); [`execute`] sends it over gRPC (I/O) and turns the answer into
//! stdout; [`run`] does both and never panics on input.
//!
//! Order of checks: CNI_COMMAND (4); VERSION answers at once; then the config is decoded (6),
//! its cniVersion checked (1) against the command (1), its fields validated (7, 2); then the
//! variables the command needs (4) and CNI_ARGS (4). Only then is the agent contacted, so a bad
//! invocation never reaches it.
//!
//! Agent answers: see `error::from_status` for the code table. Two command-specific rules:
//! a DEL that the agent answers NOT_FOUND succeeds (the spec asks DEL to tolerate missing
//! resources; the agent normally answers OK itself); a STATUS that cannot reach the agent, or
//! that the agent answers not-ready, fails with 50 (plugin not available), as CNI 1.1 asks.
//! An agent that cannot be reached fails every other command with 11 (try again later): for
//! DEL this is deliberate even when CNI_NETNS is empty, because the allocation lives in the
//! agent's datastore and a DEL that "succeeded" without it would leak the address; the runtime
//! retries DEL until it succeeds.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use manul_proto::agent::{Attachment, CniRequest, GcRequest, StatusRequest};
use tonic::Code;

use super::{
    config::{self, ConfigError, NetConf},
    environment::{Command, EnvError, EnvVars, Environment},
    error::{self, CniError, ErrorKind},
    result,
    version::{self, CniVersion},
};
use crate::client::{self, Timeouts};

/// What the binary prints and exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Result or error JSON (with a trailing newline), or empty.
    pub stdout: String,
    pub exit_code: i32,
    /// The error, for a log line on stderr.
    pub error: Option<CniError>,
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// VERSION: the answer, ready to print.
    Version(String),
    /// Anything that goes to the agent.
    Call(Box<Call>),
}

/// One call to the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub command: Command,
    pub version: CniVersion,
    pub socket: PathBuf,
    pub request: Request,
}

/// The gRPC request of a [`Call`].
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// ADD, DEL, CHECK.
    Cni(CniRequest),
    Status(StatusRequest),
    Gc(GcRequest),
}

/// A failed invocation: the error, and the version to write it in (the config's, when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: CniError,
    pub version: Option<CniVersion>,
}

impl From<EnvError> for CniError {
    fn from(e: EnvError) -> CniError {
        CniError::new(ErrorKind::InvalidEnvironment, e.to_string())
    }
}

impl From<ConfigError> for CniError {
    fn from(e: ConfigError) -> CniError {
        let kind = match &e {
            ConfigError::Decode(_) => ErrorKind::Decode,
            ConfigError::Version(_) => ErrorKind::IncompatibleVersion,
            ConfigError::Field { .. } => ErrorKind::InvalidConfig,
            ConfigError::Unsupported { .. } => ErrorKind::UnsupportedField,
        };
        CniError::new(kind, e.to_string())
    }
}

fn fail(error: impl Into<CniError>, version: Option<CniVersion>) -> Failure {
    Failure {
        error: error.into(),
        version,
    }
}

/// Validates everything and builds the agent request. No I/O.
pub fn prepare(vars: &EnvVars, stdin: &[u8]) -> Result<Invocation, Failure> {
    let command = vars.command().map_err(|e| fail(e, None))?;
    if command == Command::Version {
        // VERSION must answer whatever stdin holds (often nothing at all).
        let requested = config::decode(stdin)
            .ok()
            .and_then(|map| config::cni_version(&map).ok());
        return Ok(Invocation::Version(version::version_info_json(requested)));
    }
    let map = config::decode(stdin).map_err(|e| fail(e, None))?;
    let version = config::cni_version(&map).map_err(|e| fail(e, None))?;
    let known = Some(version);
    version
        .allows(command)
        .map_err(|e| fail(ConfigError::from(e), known))?;
    let conf = NetConf::from_map(&map).map_err(|e| fail(e, known))?;
    let env = Environment::parse(vars, command).map_err(|e| fail(e, known))?;

    let request = match command {
        Command::Add | Command::Del | Command::Check => {
            if command == Command::Check && conf.prev_result_ips.is_none() {
                return Err(fail(
                    CniError::new(
                        ErrorKind::InvalidConfig,
                        "prevResult: missing (CHECK compares the pod with the result of ADD)",
                    ),
                    known,
                ));
            }
            let request = cni_request(&conf, &env);
            if command == Command::Add
                && !request.assign_ipv4
                && !request.assign_ipv6
                && request.requested_ips.is_empty()
            {
                return Err(fail(
                    CniError::new(
                        ErrorKind::InvalidConfig,
                        "ipam.assign_ipv4: assign_ipv4 and assign_ipv6 are both false and no \
                         address is requested: there is nothing to assign",
                    ),
                    known,
                ));
            }
            Request::Cni(request)
        }
        Command::Status => Request::Status(StatusRequest {
            network_name: conf.name.clone(),
        }),
        Command::Gc => {
            let Some(valid) = &conf.valid_attachments else {
                return Err(fail(
                    CniError::new(
                        ErrorKind::InvalidConfig,
                        "cni.dev/valid-attachments: missing (GC needs the attachments to keep)",
                    ),
                    known,
                ));
            };
            Request::Gc(GcRequest {
                network_name: conf.name.clone(),
                valid_attachments: valid
                    .iter()
                    .map(|a| Attachment {
                        container_id: a.container_id.clone(),
                        ifname: a.ifname.clone(),
                    })
                    .collect(),
            })
        }
        Command::Version => return Ok(Invocation::Version(version::version_info_json(known))),
    };
    Ok(Invocation::Call(Box::new(Call {
        command,
        version,
        socket: conf.agent_socket.clone(),
        request,
    })))
}

/// The CniRequest for ADD/DEL/CHECK. Requested addresses: CNI_ARGS `IP=` first, then the
/// config's (args.cni.ips, runtimeConfig.ips, ipAddrs annotation), without duplicates.
pub fn cni_request(conf: &NetConf, env: &Environment) -> CniRequest {
    let mut requested: Vec<IpAddr> = Vec::new();
    for ip in env.args.ips.iter().chain(&conf.requested_ips) {
        if !requested.contains(ip) {
            requested.push(*ip);
        }
    }
    CniRequest {
        container_id: env.container_id.clone(),
        netns: env.netns.clone(),
        ifname: env.ifname.clone(),
        pod_namespace: env.args.pod_namespace.clone(),
        pod_name: env.args.pod_name.clone(),
        network_name: conf.name.clone(),
        mtu: conf.mtu,
        assign_ipv4: conf.ipam.assign_ipv4,
        assign_ipv6: conf.ipam.assign_ipv6,
        ipv4_pools: conf.ipam.ipv4_pools.clone(),
        ipv6_pools: conf.ipam.ipv6_pools.clone(),
        requested_ips: requested.iter().map(ToString::to_string).collect(),
        prev_result_ips: conf.prev_result_ips.clone().unwrap_or_default(),
    }
}

/// Timeouts per command: STATUS is a liveness probe and must answer quickly.
fn timeouts(command: Command) -> Timeouts {
    match command {
        Command::Status => Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
        },
        _ => Timeouts::default(),
    }
}

/// Sends the call to the agent; `Some(json)` is the result to print. Does I/O.
pub async fn execute(call: &Call) -> Result<Option<String>, CniError> {
    let mut agent = match client::connect_with(&call.socket, timeouts(call.command)).await {
        Ok(agent) => agent,
        Err(e) if call.command == Command::Status => {
            return Err(CniError::new(
                ErrorKind::PluginNotAvailable,
                format!(
                    "manul-agent is not reachable at {}: {}; check that manul-agent is running",
                    call.socket.display(),
                    e.cause()
                ),
            ));
        }
        Err(e) => return Err(CniError::agent_unreachable(&call.socket, &e.cause())),
    };
    match &call.request {
        Request::Cni(req) => {
            let answer = match call.command {
                Command::Add => agent.add(req.clone()).await.map(|r| Some(r.into_inner())),
                Command::Del => agent.del(req.clone()).await.map(|_| None),
                _ => agent.check(req.clone()).await.map(|_| None),
            };
            match answer {
                Ok(Some(resp)) => result::render_add(&resp, call.version)
                    .map(Some)
                    .map_err(|e| CniError::new(ErrorKind::Io, e.to_string())),
                Ok(None) => Ok(None),
                Err(s) if call.command == Command::Del && s.code() == Code::NotFound => Ok(None),
                Err(s) => Err(error::from_status(&s)),
            }
        }
        Request::Status(req) => match agent.status(req.clone()).await {
            Ok(resp) if resp.get_ref().ready => Ok(None),
            Ok(resp) => {
                let reason = &resp.get_ref().reason;
                Err(CniError::new(
                    ErrorKind::PluginNotAvailable,
                    format!(
                        "manul-agent is not ready: {}",
                        if reason.is_empty() {
                            "no reason given"
                        } else {
                            reason
                        }
                    ),
                ))
            }
            Err(s) => {
                let mut e = error::from_status(&s);
                if e.kind == ErrorKind::TryAgainLater {
                    e.kind = ErrorKind::PluginNotAvailable;
                }
                Err(e)
            }
        },
        Request::Gc(req) => agent
            .gc(req.clone())
            .await
            .map(|_| None)
            .map_err(|s| error::from_status(&s)),
    }
}

/// Runs one invocation end to end.
pub async fn run(vars: &EnvVars, stdin: &[u8]) -> Output {
    let outcome = match prepare(vars, stdin) {
        Ok(Invocation::Version(json)) => Ok(Some(json)),
        Ok(Invocation::Call(call)) => execute(&call).await.map_err(|error| Failure {
            error,
            version: Some(call.version),
        }),
        Err(failure) => Err(failure),
    };
    match outcome {
        Ok(Some(json)) => Output {
            stdout: json + "\n",
            exit_code: 0,
            error: None,
        },
        Ok(None) => Output {
            stdout: String::new(),
            exit_code: 0,
            error: None,
        },
        Err(Failure { error, version }) => Output {
            stdout: error.to_json(version) + "\n",
            exit_code: 1,
            error: Some(error),
        },
    }
}

#[cfg(test)]
#[path = "plugin_tests.rs"]
mod tests;
