//! The resource kinds manulctl handles, their names in documents (Calico's v3 kind names),
//! the names a command line may use for them (full, lower-case, plural and short, as
//! kubectl and calicoctl accept) and the API groups documents may name. Pure, no I/O.

use std::fmt;

use manul_store::Kind;

/// manul's own API group and version, used for every document manulctl writes out.
pub const OUTPUT_API_VERSION: &str = "manul.dev/v1";

/// The apiVersions a document may carry: manul's own and Calico's, unchanged.
pub const API_VERSIONS: [&str; 2] = [OUTPUT_API_VERSION, "projectcalico.org/v3"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    IpPool,
    IpamConfiguration,
    Node,
    BgpPeer,
    BgpConfiguration,
    WorkloadEndpoint,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 6] = [
        ResourceKind::IpPool,
        ResourceKind::IpamConfiguration,
        ResourceKind::Node,
        ResourceKind::BgpPeer,
        ResourceKind::BgpConfiguration,
        ResourceKind::WorkloadEndpoint,
    ];

    /// The kind as documents spell it (Calico's v3 name).
    pub fn document_kind(self) -> &'static str {
        self.store_kind().as_str()
    }

    /// The datastore kind holding this resource.
    pub fn store_kind(self) -> Kind {
        match self {
            ResourceKind::IpPool => Kind::IPPool,
            ResourceKind::IpamConfiguration => Kind::IPAMConfiguration,
            ResourceKind::Node => Kind::Node,
            ResourceKind::BgpPeer => Kind::BGPPeer,
            ResourceKind::BgpConfiguration => Kind::BGPConfiguration,
            ResourceKind::WorkloadEndpoint => Kind::WorkloadEndpoint,
        }
    }

    /// Every name a command line may use, the canonical lower-case one first.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            ResourceKind::IpPool => &["ippool", "ippools", "ipp", "ipps", "pool", "pools"],
            ResourceKind::IpamConfiguration => &[
                "ipamconfig",
                "ipamconfigs",
                "ipamconfiguration",
                "ipamconfigurations",
            ],
            ResourceKind::Node => &["node", "nodes", "no"],
            ResourceKind::BgpPeer => &["bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"],
            ResourceKind::BgpConfiguration => &[
                "bgpconfig",
                "bgpconfigs",
                "bgpconfiguration",
                "bgpconfigurations",
            ],
            ResourceKind::WorkloadEndpoint => {
                &["workloadendpoint", "workloadendpoints", "wep", "weps"]
            }
        }
    }

    /// The canonical command-line name ("ippool").
    pub fn cli_name(self) -> &'static str {
        self.aliases()[0]
    }

    /// A kind named on the command line, case-insensitively (also "IPPool.manul.dev" style
    /// names with a group suffix); the error lists what is accepted.
    pub fn from_cli(text: &str) -> Result<ResourceKind, String> {
        let lower = text.to_ascii_lowercase();
        let bare = API_VERSIONS
            .iter()
            .filter_map(|version| version.split('/').next())
            .find_map(|group| lower.strip_suffix(&format!(".{group}")))
            .unwrap_or(&lower);
        ResourceKind::ALL
            .into_iter()
            .find(|kind| kind.aliases().contains(&bare))
            .ok_or_else(|| {
                format!(
                    "unknown resource kind {text:?}; use one of: {}",
                    ResourceKind::ALL
                        .iter()
                        .map(|kind| kind.aliases().join("|"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// The kind a document names, exactly as Calico spells it ("IPPool").
    pub fn from_document(text: &str) -> Option<ResourceKind> {
        ResourceKind::ALL
            .into_iter()
            .find(|kind| kind.document_kind() == text)
    }

    /// Whether objects of this kind live in a namespace (only WorkloadEndpoint does).
    pub fn namespaced(self) -> bool {
        self == ResourceKind::WorkloadEndpoint
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.document_kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_names_are_the_kubectl_and_calicoctl_ones() {
        for (text, kind) in [
            ("ippool", ResourceKind::IpPool),
            ("IPPools", ResourceKind::IpPool),
            ("pool", ResourceKind::IpPool),
            ("IPPool", ResourceKind::IpPool),
            ("ippool.projectcalico.org", ResourceKind::IpPool),
            ("bgppeers", ResourceKind::BgpPeer),
            ("bgpconfig", ResourceKind::BgpConfiguration),
            ("BGPConfiguration", ResourceKind::BgpConfiguration),
            ("nodes", ResourceKind::Node),
            ("wep", ResourceKind::WorkloadEndpoint),
            ("ipamconfig", ResourceKind::IpamConfiguration),
        ] {
            assert_eq!(ResourceKind::from_cli(text), Ok(kind), "{text}");
        }
        let error = ResourceKind::from_cli("pods").unwrap_err();
        assert!(
            error.contains("\"pods\"") && error.contains("ippool|"),
            "{error}"
        );
    }

    #[test]
    fn document_kinds_are_calicos_spellings() {
        assert_eq!(
            ResourceKind::from_document("IPAMConfiguration"),
            Some(ResourceKind::IpamConfiguration)
        );
        assert_eq!(ResourceKind::from_document("ippool"), None);
        for kind in ResourceKind::ALL {
            assert_eq!(
                ResourceKind::from_document(kind.document_kind()),
                Some(kind)
            );
        }
    }
}
