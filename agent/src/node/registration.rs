//! This node's `Node` resource: what the agent owns in it (BGP addresses, AS number, route
//! reflector cluster ID, the labels it was given) merged over what is stored, written by a
//! read-modify-compare-and-swap loop through manul-ipam's `CasRetry`. Fields other writers own
//! (the VXLAN tunnel address and MAC, labels set by others) are kept. `merge` is pure;
//! `register` does I/O through the `Datastore` trait only.

use std::{collections::BTreeMap, net::Ipv4Addr, sync::Arc};

use ipnet::IpNet;
use manul_ipam::retry::CasRetry;
use manul_store::{Datastore, DatastoreExt, Node, NodeBgpSpec};

use super::NodeError;

/// What the agent writes into its Node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeRegistration {
    pub name: String,
    /// `bgp.ipv4Address`; None clears it ("none").
    pub ipv4: Option<IpNet>,
    /// `bgp.ipv6Address`; None clears it ("none").
    pub ipv6: Option<IpNet>,
    /// `bgp.asNumber`; None keeps the stored one (none stored: the cluster default applies).
    pub as_number: Option<u32>,
    /// `bgp.routeReflectorClusterID`; None keeps the stored one.
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    /// Set over the stored labels; other labels stay.
    pub labels: BTreeMap<String, String>,
}

/// The Node to store: `registration` over `stored` (None when there is none yet).
pub fn merge(stored: Option<&Node>, registration: &NodeRegistration) -> Node {
    let mut node = stored.cloned().unwrap_or_else(|| Node {
        name: registration.name.clone(),
        ..Default::default()
    });
    let stored_bgp = node.bgp.take().unwrap_or_default();
    let bgp = NodeBgpSpec {
        ipv4_address: registration.ipv4,
        ipv6_address: registration.ipv6,
        as_number: registration.as_number.or(stored_bgp.as_number),
        route_reflector_cluster_id: registration
            .route_reflector_cluster_id
            .or(stored_bgp.route_reflector_cluster_id),
    };
    node.bgp = (bgp != NodeBgpSpec::default()).then_some(bgp);
    node.metadata.labels.extend(
        registration
            .labels
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    // A new Node, or one stored before records had an identity, gets a uid and
    // creationTimestamp; a stored one keeps its own.
    if node.metadata.uid.is_empty() {
        node.metadata.stamp_new();
    }
    node
}

/// Creates or updates this node's Node; returns what is stored. A write that loses a race is
/// retried from a fresh read.
pub async fn register(
    store: &Arc<dyn Datastore>,
    registration: &NodeRegistration,
) -> Result<Node, NodeError> {
    let name = registration.name.as_str();
    let mut retry = CasRetry::new(|| format!("registering node {name:?}"));
    loop {
        let stored = store.get_resource::<Node>(name).await?;
        let wanted = merge(stored.as_ref().map(|node| &node.value), registration);
        let written = match &stored {
            Some(current) if current.value == wanted => return Ok(wanted),
            Some(current) => store.update_resource(&wanted, &current.revision).await,
            None => store.create_resource(&wanted).await,
        };
        match written {
            Ok(_) => return Ok(wanted),
            Err(error) => retry.lost(error).await?,
        }
    }
}

/// Parses `--node-labels` ("k=v,k2=v2"; empty for none).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, NodeError> {
    let mut labels = BTreeMap::new();
    for pair in text
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once('=').ok_or_else(|| NodeError::BadFlag {
            flag: "--node-labels",
            value: text.to_string(),
            reason: format!("{pair:?} is not key=value"),
        })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(NodeError::BadFlag {
                flag: "--node-labels",
                value: text.to_string(),
                reason: format!("{pair:?} has an empty key"),
            });
        }
        labels.insert(key.to_string(), value.trim().to_string());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use manul_store::embedded::EmbeddedStore;

    use super::*;

    fn registration() -> NodeRegistration {
        NodeRegistration {
            name: "n1".into(),
            ipv4: Some("10.0.1.5/24".parse().unwrap()),
            ipv6: None,
            as_number: None,
            route_reflector_cluster_id: None,
            labels: [("rack".to_string(), "r1".to_string())].into(),
        }
    }

    fn stored() -> Node {
        Node {
            name: "n1".into(),
            metadata: manul_store::ResourceMeta {
                labels: [
                    ("rack".to_string(), "old".to_string()),
                    ("zone".to_string(), "z".to_string()),
                ]
                .into(),
                ..Default::default()
            },
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some("10.0.9.9/24".parse().unwrap()),
                ipv6_address: Some("fd00::9/64".parse().unwrap()),
                as_number: Some(65010),
                route_reflector_cluster_id: Some("1.2.3.4".parse().unwrap()),
            }),
            ipv4_vxlan_tunnel_addr: Some("10.244.0.1".parse().unwrap()),
            vxlan_tunnel_mac_addr: Some("66:00:00:00:00:01".into()),
            ipv6_vxlan_tunnel_addr: Some("fd00:244::1".parse().unwrap()),
            vxlan_tunnel_mac_addr_v6: Some("66:00:00:00:00:02".into()),
        }
    }

    #[test]
    fn merge_sets_addresses_keeps_what_others_own_and_stored_bgp_fields_unless_given() {
        let merged = merge(Some(&stored()), &registration());
        let bgp = merged.bgp.clone().unwrap();
        assert_eq!(bgp.ipv4_address, Some("10.0.1.5/24".parse().unwrap()));
        assert_eq!(bgp.ipv6_address, None, "none clears it");
        assert_eq!(bgp.as_number, Some(65010), "kept when not given");
        assert_eq!(
            bgp.route_reflector_cluster_id,
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(merged.metadata.labels["rack"], "r1", "given labels win");
        assert_eq!(merged.metadata.labels["zone"], "z", "others stay");
        assert_eq!(
            merged.ipv4_vxlan_tunnel_addr,
            stored().ipv4_vxlan_tunnel_addr
        );
        assert_eq!(merged.vxlan_tunnel_mac_addr, stored().vxlan_tunnel_mac_addr);
        assert_eq!(
            merged.ipv6_vxlan_tunnel_addr,
            stored().ipv6_vxlan_tunnel_addr
        );

        let given = NodeRegistration {
            as_number: Some(65020),
            route_reflector_cluster_id: Some("5.6.7.8".parse().unwrap()),
            ..registration()
        };
        let bgp = merge(Some(&stored()), &given).bgp.unwrap();
        assert_eq!(
            (bgp.as_number, bgp.route_reflector_cluster_id),
            (Some(65020), Some("5.6.7.8".parse().unwrap()))
        );

        let fresh = merge(
            None,
            &NodeRegistration {
                ipv4: None,
                ..registration()
            },
        );
        assert_eq!(fresh.name, "n1");
        assert_eq!(fresh.bgp, None, "no BGP fields at all: no bgp section");
    }

    #[test]
    fn a_new_or_older_node_gets_an_identity_and_a_stored_one_keeps_it() {
        let fresh = merge(None, &registration());
        assert_eq!(
            fresh.metadata.uid.len(),
            36,
            "a UUID: {:?}",
            fresh.metadata.uid
        );
        assert!(fresh.metadata.creation_timestamp.ends_with('Z'));
        let older = merge(Some(&stored()), &registration());
        assert!(
            !older.metadata.uid.is_empty(),
            "a record older than uids gets one"
        );
        let again = merge(Some(&older), &registration());
        assert_eq!(again.metadata, older.metadata, "kept: no write for nothing");
    }

    #[test]
    fn labels_parse_as_key_value_pairs() {
        assert_eq!(
            parse_labels("a=1, b = 2,,c=").unwrap(),
            [("a", "1"), ("b", "2"), ("c", "")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
        assert!(parse_labels("").unwrap().is_empty());
        assert!(parse_labels("a").is_err());
        assert!(parse_labels("=1").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn register_creates_then_updates_and_survives_a_concurrent_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Datastore> =
            Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
        let created = register(&store, &registration()).await.unwrap();
        assert_eq!(
            store
                .get_resource::<Node>("n1")
                .await
                .unwrap()
                .unwrap()
                .value,
            created
        );

        // Another writer (the VXLAN allocator) changes its fields over and over meanwhile.
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..200u8 {
                    loop {
                        let current = store.get_resource::<Node>("n1").await.unwrap().unwrap();
                        let mut node = current.value.clone();
                        node.ipv4_vxlan_tunnel_addr =
                            Some(std::net::Ipv4Addr::new(10, 244, 0, round));
                        if store
                            .update_resource(&node, &current.revision)
                            .await
                            .is_ok()
                        {
                            break;
                        }
                    }
                }
            })
        };
        for round in 0..50u32 {
            let given = NodeRegistration {
                as_number: Some(64_000 + round),
                ..registration()
            };
            register(&store, &given).await.unwrap();
        }
        writer.await.unwrap();
        let node = store
            .get_resource::<Node>("n1")
            .await
            .unwrap()
            .unwrap()
            .value;
        assert_eq!(
            node.bgp.unwrap().as_number,
            Some(64_049),
            "the last registration holds"
        );
        assert_eq!(
            node.ipv4_vxlan_tunnel_addr,
            Some(std::net::Ipv4Addr::new(10, 244, 0, 199)),
            "the other writer's last write holds: nothing was clobbered"
        );
    }
}
