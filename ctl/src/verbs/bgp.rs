//! `node status` (calicoctl's: whether the node's manul processes run, then the IPv4 and IPv6
//! BGP peer tables PEER ADDRESS | PEER TYPE | STATE | SINCE | INFO), `bgp peers [-o json]`
//! and `bgp routes [PREFIX] [-o json]`, from manul-bgpd's gRPC API on its Unix socket. Peer
//! types come from the names the agent gives bgpd's peers ("node-<node>": the node-to-node
//! mesh; "peer-<BGPPeer>": global or node specific, as the BGPPeer in the datastore says).
//! The routes are the Loc-RIB best paths with their peers, from ListRoutes. I/O: the
//! bgpd socket, the datastore (best effort), the output `Write`.

use std::{collections::BTreeMap, io::Write, net::IpAddr, path::Path, time::Duration};

use clap::ValueEnum;
use ipnet::IpNet;
use manul_agent::client::{Timeouts, unix_channel};
#[cfg(test)]
use manul_proto::bgpd::BestPath;
use manul_proto::bgpd::{
    ListPeersRequest, ListRoutesRequest, PeerStatus, Route, RouteMatch, bgpd_client::BgpdClient,
};
use manul_store::{BgpPeer, DatastoreExt};
use serde::Serialize;
use tonic::transport::Channel;

use crate::{error::CtlError, store_access::Resources, timestamp, verbs::ipam::write_bordered};

/// How `bgp peers` and `bgp routes` print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BgpOutput {
    #[default]
    Table,
    Json,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

async fn connect(socket: &Path) -> Result<BgpdClient<Channel>, CtlError> {
    let timeouts = Timeouts {
        connect: CONNECT_TIMEOUT,
        ..Timeouts::default()
    };
    let channel = unix_channel(socket, timeouts)
        .await
        .map_err(|error| CtlError::Bgpd {
            socket: socket.to_path_buf(),
            reason: error.cause(),
        })?;
    Ok(BgpdClient::new(channel))
}

fn bgpd_error(socket: &Path) -> impl Fn(tonic::Status) -> CtlError + '_ {
    move |status| CtlError::Bgpd {
        socket: socket.to_path_buf(),
        reason: status.message().to_string(),
    }
}

/// A peer as `bgp peers -o json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerRow {
    pub address: String,
    pub name: String,
    pub peer_type: String,
    pub asn: u32,
    pub state: String,
    pub uptime_seconds: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    pub prefixes_received: u64,
    pub prefixes_accepted: u64,
    pub prefixes_advertised: u64,
}

/// The peer's name without the agent's fingerprint ("node-b~1a2b3c4d" -> "node-b").
fn display_name(name: &str) -> &str {
    name.split_once('~').map_or(name, |(base, _)| base)
}

/// BGPPeer name -> whether it applies to every node (no node, no selector or `all()`).
pub type BgpPeerScopes = BTreeMap<String, bool>;

/// The peer type calicoctl shows, from the peer's name and the BGPPeers of the datastore.
pub fn peer_type(name: &str, bgp_peers: &BgpPeerScopes) -> String {
    let name = display_name(name);
    if name.starts_with("node-") {
        return "node-to-node mesh".into();
    }
    let Some(peer_name) = name.strip_prefix("peer-") else {
        return "configured in manul-bgpd".into();
    };
    match bgp_peers.get(peer_name) {
        Some(false) => "node specific".into(),
        Some(true) | None => "global".into(),
    }
}

fn is_global(peer: &BgpPeer) -> bool {
    let selector = peer.node_selector.trim();
    peer.node.is_empty() && (selector.is_empty() || selector == "all()")
}

fn peer_row(status: &PeerStatus, bgp_peers: &BgpPeerScopes) -> PeerRow {
    let peer = status.peer.clone().unwrap_or_default();
    PeerRow {
        address: peer.address,
        name: display_name(&peer.name).to_string(),
        peer_type: peer_type(&peer.name, bgp_peers),
        asn: peer.asn,
        state: status.state.clone(),
        uptime_seconds: status.uptime_seconds,
        last_error: status.last_error.clone(),
        prefixes_received: status.prefixes_received,
        prefixes_accepted: status.prefixes_accepted,
        prefixes_advertised: status.prefixes_advertised,
    }
}

/// The BGPPeers of the datastore, when it can be read (empty otherwise: types then say
/// "global" for every BGPPeer session).
async fn bgp_peers(resources: Option<&Resources>) -> BgpPeerScopes {
    let Some(resources) = resources else {
        return BTreeMap::new();
    };
    match resources.store().list_resources::<BgpPeer>("").await {
        Ok(peers) => peers
            .into_iter()
            .map(|peer| (peer.value.name.clone(), is_global(&peer.value)))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

async fn peers(socket: &Path, resources: Option<&Resources>) -> Result<Vec<PeerRow>, CtlError> {
    let mut client = connect(socket).await?;
    let statuses = client
        .list_peers(ListPeersRequest::default())
        .await
        .map_err(bgpd_error(socket))?
        .into_inner()
        .peers;
    let known = bgp_peers(resources).await;
    let mut rows: Vec<PeerRow> = statuses
        .iter()
        .map(|status| peer_row(status, &known))
        .collect();
    rows.sort_by_key(|row| row.address.parse::<IpAddr>().ok());
    Ok(rows)
}

/// calicoctl's STATE column: up, start (connecting) or down (idle).
fn short_state(state: &str) -> &'static str {
    match state {
        "Established" => "up",
        "Idle" => "down",
        _ => "start",
    }
}

fn status_row(row: &PeerRow, now: u64) -> Vec<String> {
    let established = row.state == "Established";
    let since = if established {
        timestamp::format_unix(now.saturating_sub(row.uptime_seconds))
    } else {
        "-".into()
    };
    let info = match (established, row.last_error.is_empty()) {
        (true, _) | (false, true) => row.state.clone(),
        (false, false) => format!("{}: {}", row.state, row.last_error),
    };
    vec![
        row.address.clone(),
        row.peer_type.clone(),
        short_state(&row.state).into(),
        since,
        info,
    ]
}

/// `node status`: Err (exit 1) when manul-bgpd does not answer.
pub async fn node_status(
    socket: &Path,
    resources: Option<&Resources>,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let rows = match peers(socket, resources).await {
        Ok(rows) => rows,
        Err(error) => {
            writeln!(out, "manul process is not running.")?;
            return Err(error);
        }
    };
    writeln!(out, "manul process is running.")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    for (family, v6) in [("IPv4", false), ("IPv6", true)] {
        writeln!(out)?;
        writeln!(out, "{family} BGP status")?;
        let table: Vec<Vec<String>> = rows
            .iter()
            .filter(|row| {
                row.address
                    .parse::<IpAddr>()
                    .is_ok_and(|address| address.is_ipv6() == v6)
            })
            .map(|row| status_row(row, now))
            .collect();
        if table.is_empty() {
            writeln!(out, "No {family} peers found.")?;
        } else {
            write_bordered(
                out,
                &["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
                &table,
            )?;
        }
    }
    Ok(())
}

/// `bgp peers [-o json]`.
pub async fn bgp_peers_command(
    socket: &Path,
    resources: Option<&Resources>,
    output: BgpOutput,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let rows = peers(socket, resources).await?;
    if output == BgpOutput::Json {
        return write_json(&rows, out);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.address.clone(),
                row.name.clone(),
                row.peer_type.clone(),
                row.asn.to_string(),
                row.state.clone(),
                row.uptime_seconds.to_string(),
                format!(
                    "{}/{}/{}",
                    row.prefixes_received, row.prefixes_accepted, row.prefixes_advertised
                ),
            ]
        })
        .collect();
    write_bordered(
        out,
        &[
            "PEER ADDRESS",
            "NAME",
            "PEER TYPE",
            "ASN",
            "STATE",
            "UPTIME (S)",
            "RECEIVED/ACCEPTED/ADVERTISED",
        ],
        &table,
    )
}

fn write_json<T: Serialize>(value: &T, out: &mut dyn Write) -> Result<(), CtlError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| CtlError::Usage(format!("cannot encode JSON: {error}")))?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// A best path as `bgp routes -o json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRow {
    pub prefix: String,
    pub next_hops: Vec<String>,
    /// The peer the best path came from, or "local" for a route bgpd originates.
    pub peer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_asn: Option<u32>,
    pub as_path: Vec<u32>,
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
}

impl RouteRow {
    fn from_proto(route: Route) -> RouteRow {
        let path = route.path.unwrap_or_default();
        let local = route.peer_address.is_empty();
        RouteRow {
            prefix: path.prefix,
            next_hops: path.next_hops,
            peer: if local {
                "local".into()
            } else {
                route.peer_address
            },
            peer_asn: (!local).then_some(route.peer_asn),
            as_path: path.as_path,
            origin: path.origin,
            local_pref: path.local_pref,
            med: path.med,
            communities: path.communities,
        }
    }
}

/// `bgp routes [PREFIX] [--exact|--longer] [-o json]`: the Loc-RIB best paths, learned and
/// originated, with the peer each came from, in prefix order (bgpd's ListRoutes, which pages
/// through its RIB). With PREFIX: the routes equal to or covering it, only the one equal to
/// it (`RouteMatch::Exact`), or those it covers (`RouteMatch::Covered`).
pub async fn bgp_routes(
    socket: &Path,
    filter: Option<(IpNet, RouteMatch)>,
    output: BgpOutput,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let mut client = connect(socket).await?;
    let (prefix, route_match) = filter.map_or((String::new(), RouteMatch::Covering), |(p, m)| {
        (p.to_string(), m)
    });
    let mut stream = client
        .list_routes(ListRoutesRequest {
            prefix,
            r#match: route_match.into(),
        })
        .await
        .map_err(bgpd_error(socket))?
        .into_inner();
    let mut rows = Vec::new();
    while let Some(page) = stream.message().await.map_err(bgpd_error(socket))? {
        rows.extend(page.routes.into_iter().map(RouteRow::from_proto));
    }
    if output == BgpOutput::Json {
        return write_json(&rows, out);
    }
    let optional = |value: Option<u32>| value.map_or_else(|| "-".into(), |v| v.to_string());
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.prefix.clone(),
                if row.next_hops.is_empty() {
                    "-".into()
                } else {
                    row.next_hops.join(",")
                },
                match row.peer_asn {
                    Some(asn) => format!("{} (AS {asn})", row.peer),
                    None => row.peer.clone(),
                },
                row.as_path
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                row.origin.clone(),
                optional(row.local_pref),
                optional(row.med),
            ]
        })
        .collect();
    write_bordered(
        out,
        &[
            "PREFIX",
            "NEXT HOP",
            "PEER",
            "AS PATH",
            "ORIGIN",
            "LOCAL PREF",
            "MED",
        ],
        &table,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_types_come_from_names_and_bgp_peers() {
        let peers = BgpPeerScopes::from([("tor".to_string(), true), ("rack".to_string(), false)]);
        assert_eq!(peer_type("node-b~0a0b0c0d", &peers), "node-to-node mesh");
        assert_eq!(peer_type("peer-tor~0a0b0c0d", &peers), "global");
        assert_eq!(peer_type("peer-rack", &peers), "node specific");
        assert_eq!(peer_type("bird", &peers), "configured in manul-bgpd");
    }

    #[test]
    fn originated_routes_show_local_as_their_peer() {
        let path = BestPath {
            prefix: "10.2.0.0/24".into(),
            origin: "IGP".into(),
            ..Default::default()
        };
        let local = RouteRow::from_proto(Route {
            path: Some(path.clone()),
            ..Default::default()
        });
        assert_eq!((local.peer.as_str(), local.peer_asn), ("local", None));
        let learned = RouteRow::from_proto(Route {
            path: Some(path),
            peer_address: "10.0.0.2".into(),
            peer_asn: 65002,
        });
        assert_eq!(
            (learned.peer.as_str(), learned.peer_asn),
            ("10.0.0.2", Some(65002))
        );
    }
}
