//! The Kubernetes manifests in manifests/: every one validates with kubernetes-validate
//! (PyPI; strict, against a current Kubernetes), and the ConfigMap's conflist template is the
//! one `install-cni` builds in (so both install the same conflist). Needs kubernetes-validate
//! (fails otherwise, naming the install command).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The newest Kubernetes version kubernetes-validate 1.37 knows.
const KUBERNETES_VERSION: &str = "1.37.0";

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests_dir())
        .expect("manifests/ is missing")
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_manifest_validates_against_a_current_kubernetes() {
    let found = Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    assert!(
        found.is_ok_and(|output| output.status.success()),
        "needs kubernetes-validate: pip3 install --break-system-packages kubernetes-validate \
         (scripts/install-deps.sh)"
    );
    let files = manifests();
    assert!(files.len() >= 4, "expected the manifests, found {files:?}");
    let output = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "kubernetes-validate refused:\n{report}"
    );
    for kind in [
        "namespace/manul-system",
        "serviceaccount/manul-agent",
        "clusterrole/manul-agent",
        "clusterrolebinding/manul-agent",
        "configmap/manul-config",
        "daemonset/manul-node",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind}")),
            "{kind} not validated:\n{report}"
        );
    }
}

/// The block scalar under `key: |` in a YAML file, unindented.
fn block_scalar(text: &str, key: &str) -> Option<String> {
    let mut lines = text
        .lines()
        .skip_while(|line| line.trim() != format!("{key}: |"));
    let header = lines.next()?;
    let key_indent = header.len() - header.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|line| line.is_empty() || line.len() - line.trim_start().len() > key_indent)
        .collect();
    let indent = body.iter().find(|l| !l.is_empty())?.len() - body[0].trim_start().len();
    Some(
        body.iter()
            .map(|line| format!("{}\n", line.get(indent..).unwrap_or("")))
            .collect(),
    )
}

#[test]
fn the_configmap_template_is_the_built_in_one() {
    let text = std::fs::read_to_string(manifests_dir().join("20-config.yaml")).unwrap();
    let template = block_scalar(&text, "10-manul.conflist.template")
        .expect("20-config.yaml has no 10-manul.conflist.template");
    assert_eq!(template, manul_agent::install::DEFAULT_TEMPLATE);
}

#[test]
fn the_rbac_grants_no_secrets() {
    let text = std::fs::read_to_string(manifests_dir().join("10-rbac.yaml")).unwrap();
    let rules: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!rules.contains("secrets"), "{rules}");
    assert!(!rules.contains('*'), "no wildcards: {rules}");
}
