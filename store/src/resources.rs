//! The resource model: IPPool, IPAMBlock, BlockAffinity, IPAMHandle, IPAMConfiguration, Node
//! and WorkloadEndpoint, with field names as in Calico's projectcalico.org/v3 (and libcalico's
//! IPAM model for the IPAM kinds), so that an operator's documents carry over. No I/O.

use std::collections::BTreeMap;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{datastore::Kind, metadata::ResourceMeta, typed::Resource};

/// Encapsulation mode of a pool (vxlanMode / ipipMode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EncapsulationMode {
    #[default]
    Never,
    Always,
    CrossSubnet,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpPool {
    pub name: String,
    /// Labels, annotations, uid and creation time. Not part of the CRD's spec: the
    /// Kubernetes backend keeps them in the object's own metadata.
    #[serde(default, skip_serializing_if = "ResourceMeta::is_empty")]
    #[schemars(skip)]
    pub metadata: ResourceMeta,
    #[schemars(schema_with = "crate::schema::cidr")]
    pub cidr: IpNet,
    /// Prefix length of the blocks carved from this pool: 26 for IPv4, 122 for IPv6 by default.
    pub block_size: u8,
    #[serde(default)]
    pub disabled: bool,
    /// Label selector choosing the nodes that may use this pool; "all()" or "" for every node.
    #[serde(default)]
    pub node_selector: String,
    #[serde(default)]
    pub nat_outgoing: bool,
    #[serde(default)]
    pub vxlan_mode: EncapsulationMode,
    #[serde(default)]
    pub ipip_mode: EncapsulationMode,
    /// Calico's disableBGPExport: the pool's blocks are not advertised over BGP.
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
}

impl IpPool {
    /// An enabled pool for every node with the default block size and no encapsulation.
    pub fn new(name: &str, cidr: IpNet) -> IpPool {
        IpPool {
            name: name.to_string(),
            cidr,
            block_size: IpPool::default_block_size(&cidr),
            disabled: false,
            node_selector: "all()".to_string(),
            nat_outgoing: false,
            vxlan_mode: EncapsulationMode::Never,
            ipip_mode: EncapsulationMode::Never,
            disable_bgp_export: false,
            metadata: ResourceMeta::default(),
        }
    }

    pub fn default_block_size(cidr: &IpNet) -> u8 {
        match cidr {
            IpNet::V4(_) => 26,
            IpNet::V6(_) => 122,
        }
    }
}

impl Resource for IpPool {
    const KIND: Kind = Kind::IPPool;
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// The name and CIDR of every pool, in one object: manul's own kind (Calico has none). Pool
/// creation writes its entry here by compare-and-swap BEFORE it creates the pool, so two
/// concurrent creators of overlapping pools cannot both pass the overlap check: one of the two
/// index writes loses the race and its retry sees the other pool. Works over any backend
/// with per-object CAS (embedded, etcd, Kubernetes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpPoolIndex {
    /// Pool name -> CIDR.
    #[schemars(schema_with = "crate::schema::cidr_map")]
    pub pools: BTreeMap<String, IpNet>,
}

impl IpPoolIndex {
    pub const NAME: &'static str = "default";
}

impl Resource for IpPoolIndex {
    const KIND: Kind = Kind::IPPoolIndex;
    fn name(&self) -> String {
        IpPoolIndex::NAME.to_string()
    }
}

/// What an address in a block is allocated to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllocationAttribute {
    #[serde(rename = "handle_id", default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secondary: BTreeMap<String, String>,
}

/// A block of addresses carved from a pool. `allocations[i]` is the index into `attributes`
/// of the owner of the i-th address; `unallocated` is the free list, in reuse order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpamBlock {
    #[schemars(schema_with = "crate::schema::cidr")]
    pub cidr: IpNet,
    /// "host:<node>" when a node has affinity to the block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    pub allocations: Vec<Option<u32>>,
    pub unallocated: Vec<u32>,
    pub attributes: Vec<AllocationAttribute>,
    #[serde(default)]
    pub strict_affinity: bool,
    #[serde(default)]
    pub deleted: bool,
    /// Bumped on every allocation; lets a reader tell two states of a block apart.
    #[serde(default)]
    pub sequence_number: u64,
    /// manul's own: when the block was first seen empty (see `EmptySince`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_since: Option<EmptySince>,
}

/// When a block was seen empty, and at which `sequence_number`. The mark holds only while the
/// block's sequence number is unchanged: any allocation or release in between bumps it, so a
/// block that was used again is not taken for one that stayed empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmptySince {
    pub unix_seconds: u64,
    pub sequence_number: u64,
}

impl IpamBlock {
    /// The store name of the block of `cidr`: "10-0-0-0-26".
    pub fn name_for(cidr: &IpNet) -> String {
        cidr.to_string().replace(['.', ':', '/'], "-")
    }
}

impl Resource for IpamBlock {
    const KIND: Kind = Kind::IPAMBlock;
    fn name(&self) -> String {
        IpamBlock::name_for(&self.cidr)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AffinityState {
    #[default]
    Pending,
    Confirmed,
    PendingDeletion,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockAffinity {
    pub node: String,
    #[schemars(schema_with = "crate::schema::cidr")]
    pub cidr: IpNet,
    pub state: AffinityState,
    #[serde(default)]
    pub deleted: bool,
}

impl BlockAffinity {
    /// "<node>-<block name>"; listing by the prefix "<node>-" may also return affinities of a
    /// node whose name extends this one, so callers filter on `node`.
    pub fn name_for(node: &str, cidr: &IpNet) -> String {
        format!("{node}-{}", IpamBlock::name_for(cidr))
    }
}

impl Resource for BlockAffinity {
    const KIND: Kind = Kind::BlockAffinity;
    fn name(&self) -> String {
        BlockAffinity::name_for(&self.node, &self.cidr)
    }
}

/// The addresses held by one owner (a container's attachment): how many in which block, so
/// that release by handle touches only those blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpamHandle {
    pub handle_id: String,
    /// Block name -> number of addresses of this handle in that block.
    pub block: BTreeMap<String, u32>,
    #[serde(default)]
    pub deleted: bool,
}

impl Resource for IpamHandle {
    const KIND: Kind = Kind::IPAMHandle;
    fn name(&self) -> String {
        self.handle_id.clone()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfiguration {
    /// Labels, annotations, uid and creation time. Not part of the CRD's spec: the
    /// Kubernetes backend keeps them in the object's own metadata.
    #[serde(default, skip_serializing_if = "ResourceMeta::is_empty")]
    #[schemars(skip)]
    pub metadata: ResourceMeta,
    #[serde(default)]
    pub strict_affinity: bool,
    #[serde(default = "default_true")]
    pub auto_allocate_blocks: bool,
    /// 0 means no limit.
    #[serde(default)]
    pub max_blocks_per_host: u32,
}

fn default_true() -> bool {
    true
}

impl IpamConfiguration {
    pub const NAME: &'static str = "default";
}

impl Default for IpamConfiguration {
    fn default() -> Self {
        IpamConfiguration {
            strict_affinity: false,
            auto_allocate_blocks: true,
            max_blocks_per_host: 0,
            metadata: ResourceMeta::default(),
        }
    }
}

impl Resource for IpamConfiguration {
    const KIND: Kind = Kind::IPAMConfiguration;
    fn name(&self) -> String {
        IpamConfiguration::NAME.to_string()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeBgpSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<u32>,
    /// A node with a cluster ID is a route reflector: it leaves the full mesh and reflects
    /// routes for the other nodes (Calico's routeReflectorClusterID).
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "Option::is_none"
    )]
    pub route_reflector_cluster_id: Option<std::net::Ipv4Addr>,
}

/// A node. Records written before `metadata` existed kept the labels in a top-level
/// `labels`; they still read (see `NodeRecord`), and are written back with the labels in
/// `metadata.labels`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "NodeRecord")]
pub struct Node {
    pub name: String,
    /// Labels (what IPPool and BGPPeer selectors match), annotations, uid, creation time.
    #[serde(default, skip_serializing_if = "ResourceMeta::is_empty")]
    pub metadata: ResourceMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    /// Calico's spellings; records written before they were used (camelCase of the Rust
    /// names) still read.
    #[serde(
        default,
        rename = "ipv4VXLANTunnelAddr",
        alias = "ipv4VxlanTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_vxlan_tunnel_addr: Option<std::net::Ipv4Addr>,
    #[serde(
        default,
        rename = "vxlanTunnelMACAddr",
        alias = "vxlanTunnelMacAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr: Option<String>,
    #[serde(
        default,
        rename = "ipv6VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_vxlan_tunnel_addr: Option<std::net::Ipv6Addr>,
    #[serde(
        default,
        rename = "vxlanTunnelMACAddrV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr_v6: Option<String>,
}

impl Node {
    /// The node's IPv4 address for BGP (without its prefix length).
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        match self.bgp.as_ref()?.ipv4_address? {
            IpNet::V4(net) => Some(net.addr()),
            IpNet::V6(_) => None,
        }
    }

    pub fn ipv6(&self) -> Option<std::net::Ipv6Addr> {
        match self.bgp.as_ref()?.ipv6_address? {
            IpNet::V6(net) => Some(net.addr()),
            IpNet::V4(_) => None,
        }
    }

    pub fn route_reflector_cluster_id(&self) -> Option<std::net::Ipv4Addr> {
        self.bgp.as_ref()?.route_reflector_cluster_id
    }
}

impl Resource for Node {
    const KIND: Kind = Kind::Node;
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// How a Node record reads: today's shape, or the older one with top-level `labels` (merged
/// into `metadata.labels`, which wins where both name a key).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeRecord {
    name: String,
    #[serde(default)]
    metadata: ResourceMeta,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    bgp: Option<NodeBgpSpec>,
    #[serde(default, rename = "ipv4VXLANTunnelAddr", alias = "ipv4VxlanTunnelAddr")]
    ipv4_vxlan_tunnel_addr: Option<std::net::Ipv4Addr>,
    #[serde(default, rename = "vxlanTunnelMACAddr", alias = "vxlanTunnelMacAddr")]
    vxlan_tunnel_mac_addr: Option<String>,
    #[serde(default, rename = "ipv6VXLANTunnelAddr")]
    ipv6_vxlan_tunnel_addr: Option<std::net::Ipv6Addr>,
    #[serde(default, rename = "vxlanTunnelMACAddrV6")]
    vxlan_tunnel_mac_addr_v6: Option<String>,
}

impl From<NodeRecord> for Node {
    fn from(record: NodeRecord) -> Node {
        let mut metadata = record.metadata;
        for (key, value) in record.labels {
            metadata.labels.entry(key).or_insert(value);
        }
        Node {
            name: record.name,
            metadata,
            bgp: record.bgp,
            ipv4_vxlan_tunnel_addr: record.ipv4_vxlan_tunnel_addr,
            vxlan_tunnel_mac_addr: record.vxlan_tunnel_mac_addr,
            ipv6_vxlan_tunnel_addr: record.ipv6_vxlan_tunnel_addr,
            vxlan_tunnel_mac_addr_v6: record.vxlan_tunnel_mac_addr_v6,
        }
    }
}

/// One network attachment of a workload (a pod's eth0), as the agent recorded it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEndpoint {
    pub name: String,
    /// Labels, annotations, uid and creation time.
    #[serde(default, skip_serializing_if = "ResourceMeta::is_empty")]
    pub metadata: ResourceMeta,
    pub node: String,
    pub orchestrator: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub pod: String,
    pub container_id: String,
    /// The interface inside the workload ("eth0").
    pub endpoint: String,
    /// The host end of the veth ("cali0123456789a").
    pub interface_name: String,
    pub mac: String,
    pub ip_networks: Vec<IpNet>,
    /// The IPAM handle holding the addresses.
    pub ipam_handle: String,
    /// The network namespace path the workload had at ADD.
    #[serde(default)]
    pub netns: String,
    #[serde(default)]
    pub network: String,
}

impl WorkloadEndpoint {
    /// Calico's naming: components joined with "-", with "-" inside a component doubled, so that
    /// the prefix "<node>-cni-" lists exactly one node's endpoints.
    pub fn name_for(node: &str, container_id: &str, endpoint: &str) -> String {
        format!(
            "{}{}-{}",
            Self::node_prefix(node),
            escape(container_id),
            escape(endpoint)
        )
    }

    pub fn node_prefix(node: &str) -> String {
        format!("{}-cni-", escape(node))
    }
}

fn escape(component: &str) -> String {
    component.replace('-', "--")
}

impl Resource for WorkloadEndpoint {
    const KIND: Kind = Kind::WorkloadEndpoint;
    fn name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_endpoint_prefix_is_unique_per_node() {
        let a = WorkloadEndpoint::name_for("a", "c1", "eth0");
        let other = WorkloadEndpoint::name_for("a-cni-x", "c1", "eth0");
        assert!(a.starts_with(&WorkloadEndpoint::node_prefix("a")));
        assert!(!other.starts_with(&WorkloadEndpoint::node_prefix("a")));
    }

    #[test]
    fn block_names_have_no_slashes() {
        let cidr: IpNet = "fd00::/122".parse().unwrap();
        assert_eq!(IpamBlock::name_for(&cidr), "fd00---122");
        let cidr: IpNet = "10.0.0.64/26".parse().unwrap();
        assert_eq!(IpamBlock::name_for(&cidr), "10-0-0-64-26");
    }

    #[test]
    fn records_without_metadata_read_and_encode_as_they_were() {
        let old = r#"{"name":"p","cidr":"10.0.0.0/16","blockSize":26,"disabled":false,"nodeSelector":"all()","natOutgoing":false,"vxlanMode":"Never","ipipMode":"Never","disableBGPExport":false}"#;
        let pool: IpPool = serde_json::from_str(old).unwrap();
        assert!(pool.metadata.is_empty());
        assert_eq!(serde_json::to_string(&pool).unwrap(), old);

        let old_node = r#"{"name":"n1","labels":{"rack":"a","zone":"z"},"metadata":{"labels":{"rack":"b"},"uid":"u"}}"#;
        let node: Node = serde_json::from_str(old_node).unwrap();
        assert_eq!(node.metadata.labels["rack"], "b", "metadata.labels wins");
        assert_eq!(
            node.metadata.labels["zone"], "z",
            "top-level labels are kept"
        );
        assert_eq!(node.metadata.uid, "u");
        let written = serde_json::to_value(&node).unwrap();
        assert!(written.get("labels").is_none(), "{written}");
        assert_eq!(written["metadata"]["labels"]["zone"], "z");

        let with_metadata = IpPool {
            metadata: ResourceMeta {
                labels: [("team".to_string(), "a".to_string())].into(),
                uid: "0b9c5f3e-5a36-4c61-9d5e-0c3f4a2b1d7e".into(),
                creation_timestamp: "2026-12-06T17:30:05Z".into(),
                ..Default::default()
            },
            ..pool
        };
        let json = serde_json::to_string(&with_metadata).unwrap();
        assert_eq!(
            serde_json::from_str::<IpPool>(&json).unwrap(),
            with_metadata
        );
    }

    #[test]
    fn node_tunnel_fields_use_calicos_spellings_and_old_records_still_read() {
        let node = Node {
            name: "n1".into(),
            ipv4_vxlan_tunnel_addr: Some("10.244.1.0".parse().unwrap()),
            vxlan_tunnel_mac_addr: Some("66:00:00:00:00:01".into()),
            ipv6_vxlan_tunnel_addr: Some("fd00::1".parse().unwrap()),
            vxlan_tunnel_mac_addr_v6: Some("66:00:00:00:00:02".into()),
            ..Default::default()
        };
        let json = serde_json::to_value(&node).unwrap();
        for field in [
            "ipv4VXLANTunnelAddr",
            "vxlanTunnelMACAddr",
            "ipv6VXLANTunnelAddr",
            "vxlanTunnelMACAddrV6",
        ] {
            assert!(json.get(field).is_some(), "{field} missing in {json}");
        }
        let old = r#"{"name":"n1","ipv4VxlanTunnelAddr":"10.244.1.0","vxlanTunnelMacAddr":"66:00:00:00:00:01"}"#;
        let read: Node = serde_json::from_str(old).unwrap();
        assert_eq!(read.ipv4_vxlan_tunnel_addr, node.ipv4_vxlan_tunnel_addr);
        assert_eq!(read.vxlan_tunnel_mac_addr, node.vxlan_tunnel_mac_addr);
    }
}
