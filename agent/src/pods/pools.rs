//! Pool selection by annotation, as Calico: `cni.projectcalico.org/ipv4pools` and
//! `ipv6pools` on the pod, else on its namespace, else the CNI config's pools; each a JSON
//! list of pool names or CIDRs. The choice is pure (`choose`); `pool_filters` reads the pod
//! and the namespace through the `PodDirectory`.

use std::collections::BTreeMap;

use super::{PodDirectory, PodDirectoryError};

pub const IPV4_POOLS: &str = "cni.projectcalico.org/ipv4pools";
pub const IPV6_POOLS: &str = "cni.projectcalico.org/ipv6pools";

#[derive(Debug, thiserror::Error)]
pub enum PoolAnnotationError {
    #[error(
        "{owner} annotation {annotation}: {reason} (expected a JSON list of pool names or CIDRs, e.g. [\"default-ipv4-ippool\"])"
    )]
    Invalid {
        owner: String,
        annotation: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Directory(#[from] PodDirectoryError),
}

/// The pools (IPv4, IPv6) for a pod: per family, the pod's annotation, else the namespace's,
/// else `configured` (the CNI config's ipam.ipv4_pools / ipv6_pools).
pub fn choose(
    pod: &BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
    configured: (&[String], &[String]),
) -> Result<(Vec<String>, Vec<String>), PoolAnnotationError> {
    let family = |annotation: &'static str, configured: &[String]| {
        for (owner, annotations) in [("pod", pod), ("namespace", namespace)] {
            if let Some(text) = annotations.get(annotation) {
                return parse(owner, annotation, text);
            }
        }
        Ok(configured.to_vec())
    };
    Ok((
        family(IPV4_POOLS, configured.0)?,
        family(IPV6_POOLS, configured.1)?,
    ))
}

fn parse(
    owner: &str,
    annotation: &'static str,
    text: &str,
) -> Result<Vec<String>, PoolAnnotationError> {
    let invalid = |reason: String| PoolAnnotationError::Invalid {
        owner: owner.to_string(),
        annotation,
        reason,
    };
    let pools: Vec<String> =
        serde_json::from_str(text).map_err(|error| invalid(error.to_string()))?;
    if pools.iter().any(|pool| pool.trim().is_empty()) {
        return Err(invalid("an empty pool name".into()));
    }
    Ok(pools)
}

/// The pools for the pod `namespace`/`pod` (annotations read from the API).
pub async fn pool_filters(
    directory: &dyn PodDirectory,
    namespace: &str,
    pod: &str,
    configured: (&[String], &[String]),
) -> Result<(Vec<String>, Vec<String>), PoolAnnotationError> {
    let pod_annotations = directory
        .pod(namespace, pod)
        .await?
        .map(|pod| pod.annotations)
        .unwrap_or_default();
    let namespace_annotations = directory.namespace(namespace).await?.unwrap_or_default();
    choose(&pod_annotations, &namespace_annotations, configured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::{FakePodDirectory, PodInfo};

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn the_pods_annotation_wins_over_the_namespaces_which_wins_over_the_config() {
        let directory = FakePodDirectory::default();
        directory.put_namespace(
            "shop",
            annotations(&[
                (IPV4_POOLS, r#"["ns-pool"]"#),
                (IPV6_POOLS, r#"["fd00:1::/64"]"#),
            ]),
        );
        directory.put_pod(
            "shop",
            "web",
            PodInfo {
                annotations: annotations(&[(IPV4_POOLS, r#"["10.9.0.0/16", "pod-pool"]"#)]),
                ..Default::default()
            },
        );
        directory.put_pod("shop", "db", PodInfo::default());
        let configured = (&["conf-v4".to_string()][..], &[][..]);

        let web = pool_filters(&directory, "shop", "web", configured)
            .await
            .unwrap();
        assert_eq!(web.0, ["10.9.0.0/16", "pod-pool"]);
        assert_eq!(web.1, ["fd00:1::/64"], "IPv6 from the namespace");
        let db = pool_filters(&directory, "shop", "db", configured)
            .await
            .unwrap();
        assert_eq!(db.0, ["ns-pool"]);
        let other = pool_filters(&directory, "other", "x", configured)
            .await
            .unwrap();
        assert_eq!(other, (vec!["conf-v4".to_string()], vec![]));
    }

    #[test]
    fn a_malformed_annotation_is_an_error_naming_it() {
        for text in ["ns-pool", "[1]", r#"[""]"#] {
            let pod = annotations(&[(IPV4_POOLS, text)]);
            let error = choose(&pod, &BTreeMap::new(), (&[], &[])).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains("pod annotation cni.projectcalico.org/ipv4pools"),
                "{message}"
            );
        }
    }
}
