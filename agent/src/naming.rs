//! Names the agent derives from a CNI request: the host interface (cali + 11 hex chars of
//! sha1), the IPAM handle and the WorkloadEndpoint. Pure functions, no I/O.

use sha1::{Digest, Sha1};

/// Prefix of every host-side interface the agent owns.
pub const HOST_INTERFACE_PREFIX: &str = "cali";

/// "cali" + the first 11 hex characters of sha1("<namespace>.<pod>"), as Calico names them, so
/// that tooling which computes the name from a pod finds it. Outside Kubernetes (no namespace
/// or no pod name, as under podman) the container id is hashed instead.
pub fn host_interface_name(pod_namespace: &str, pod_name: &str, container_id: &str) -> String {
    let seed = if pod_namespace.is_empty() || pod_name.is_empty() {
        container_id.to_string()
    } else {
        format!("{pod_namespace}.{pod_name}")
    };
    let digest = Sha1::digest(seed.as_bytes());
    let hex = hex::encode(digest);
    format!("{HOST_INTERFACE_PREFIX}{}", &hex[..11])
}

/// The MAC of a pod's interface: locally administered, unicast (0a:58, as Kubernetes' own
/// plugins use), then 4 bytes of sha1("<container id>/<ifname>"). Chosen by the agent, not the
/// kernel, so the endpoint record can be written before the interface exists; stable across a
/// retried ADD. Every pod has an L2 segment of its own (its veth), so a collision is harmless.
pub fn pod_mac(container_id: &str, ifname: &str) -> [u8; 6] {
    let digest = Sha1::digest(format!("{container_id}/{ifname}").as_bytes());
    [0x0a, 0x58, digest[0], digest[1], digest[2], digest[3]]
}

/// The IPAM handle of an attachment: Calico's "k8s-pod-network.<container-id>" for eth0, with
/// the interface name appended for any other interface of the same container.
pub fn ipam_handle(container_id: &str, ifname: &str) -> String {
    if ifname == "eth0" {
        format!("k8s-pod-network.{container_id}")
    } else {
        format!("k8s-pod-network.{container_id}.{ifname}")
    }
}

/// Inverse of `ipam_handle`: the (container id, ifname) of a handle, when it is one of ours.
pub fn attachment_of_handle(handle: &str) -> Option<(String, String)> {
    let rest = handle.strip_prefix("k8s-pod-network.")?;
    // Container ids are hex or names without dots; an interface suffix follows the last dot.
    match rest.rsplit_once('.') {
        Some((container_id, ifname)) if !container_id.is_empty() && !ifname.is_empty() => {
            Some((container_id.to_string(), ifname.to_string()))
        }
        _ => Some((rest.to_string(), "eth0".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_macs_are_local_unicast_and_stable() {
        let mac = pod_mac("c1", "eth0");
        assert_eq!(mac, pod_mac("c1", "eth0"));
        assert_ne!(mac, pod_mac("c2", "eth0"));
        assert_eq!(mac[0] & 0x01, 0, "unicast");
        assert_eq!(mac[0] & 0x02, 0x02, "locally administered");
    }

    #[test]
    fn host_interface_name_matches_calico() {
        // `printf default.nginx | sha1sum` = c440f455693b69cd...
        assert_eq!(
            host_interface_name("default", "nginx", "abc"),
            "calic440f455693"
        );
    }

    #[test]
    fn container_id_is_hashed_outside_kubernetes() {
        let by_id = host_interface_name("", "web", "0123abcd");
        let expected = hex::encode(Sha1::digest(b"0123abcd"));
        assert_eq!(&by_id[4..], &expected[..11]);
        assert_ne!(by_id, host_interface_name("default", "web", "0123abcd"));
    }

    #[test]
    fn handles_round_trip() {
        assert_eq!(ipam_handle("c1", "eth0"), "k8s-pod-network.c1");
        assert_eq!(
            attachment_of_handle("k8s-pod-network.c1"),
            Some(("c1".into(), "eth0".into()))
        );
        assert_eq!(
            attachment_of_handle(&ipam_handle("c1", "net1")),
            Some(("c1".into(), "net1".into()))
        );
        assert_eq!(attachment_of_handle("other.c1"), None);
    }
}
