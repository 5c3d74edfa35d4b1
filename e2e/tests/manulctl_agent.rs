//! manulctl against the embedded store while the real `manul-agent` holds it: every command
//! goes through the agent's socket (`RawStore`). apply -> get round trip, the pod the agent
//! wired seen by `get workloadendpoint` and `ipam show --ip`, `ipam check` clean, a stale
//! `replace` refused, `version` with the agent's version and datastore type, a compare-and-swap lost through the socket coming back as Conflict, and
//! without the socket the held file refused with what to do. Needs root and the workspace
//! binaries (manul-agent, manul, manulctl); does I/O.

use std::{path::Path, process::Output};

use anyhow::{Context, Result, ensure};
use manul_agent::{
    client::{Timeouts, unix_channel},
    raw_store::RemoteDatastore,
};
use manul_e2e::{Node, Pod, bin_path, cni::result_ipv4};
use manul_store::{Datastore, Kind, StoreError};

/// manulctl with `args`, isolated from the machine's config and environment.
fn manulctl(node: &Node, through_socket: bool, args: &[&str]) -> Result<Output> {
    let config = node.dir().join("manulctl.yaml");
    std::fs::write(&config, "")?;
    let mut command = std::process::Command::new(bin_path("manulctl")?);
    for variable in ["MANUL_DATASTORE", "MANULCTL_CONFIG", "MANUL_AGENT_SOCKET"] {
        command.env_remove(variable);
    }
    command
        .arg("--config")
        .arg(&config)
        .arg("--datastore")
        .arg(format!("embedded://{}", node.store_path().display()));
    if through_socket {
        command.arg("--agent-socket").arg(node.socket());
    }
    Ok(command.args(args).output()?)
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// manulctl through the socket, which must succeed; its stdout.
fn ok(node: &Node, args: &[&str]) -> Result<String> {
    let output = manulctl(node, true, args)?;
    ensure!(
        output.status.success(),
        "manulctl {args:?}: {}",
        text(&output)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn write(dir: &Path, name: &str, text: &str) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

#[test]
fn manulctl_reaches_the_embedded_store_through_the_running_agent() -> Result<()> {
    manul_e2e::require_root()?;
    let node = Node::start("ctl")?;
    let pools = write(
        node.dir(),
        "pools.yaml",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: extra\nspec:\n  \
         cidr: 10.45.0.0/16\n  blockSize: 28\n  natOutgoing: true\n  vxlanMode: Never\n  \
         nodeSelector: all()\n---\napiVersion: manul.dev/v1\nkind: BGPPeer\nmetadata:\n  \
         name: tor\nspec:\n  peerIP: 10.99.0.254\n  asNumber: 65000\n",
    )?;
    let applied = ok(&node, &["apply", "-f", &pools])?;
    ensure!(applied.contains("Successfully applied 2"), "{applied}");

    // Round trip: what was applied comes back, with the agent's own default pool beside it.
    let listed = ok(&node, &["get", "ippool", "-o", "wide"])?;
    ensure!(listed.contains("default-ipv4-ippool"), "{listed}");
    let extra = listed
        .lines()
        .find(|line| line.starts_with("extra "))
        .with_context(|| listed.clone())?;
    let cells: Vec<&str> = extra.split_whitespace().collect();
    ensure!(
        cells
            == [
                "extra",
                "10.45.0.0/16",
                "true",
                "Never",
                "Never",
                "false",
                "false",
                "all()"
            ],
        "{listed}"
    );
    let yaml = ok(&node, &["get", "bgppeer", "tor", "-o", "yaml"])?;
    ensure!(
        yaml.contains("peerIP: 10.99.0.254") && yaml.contains("asNumber: 65000"),
        "{yaml}"
    );

    // A pod the agent wired: its endpoint and address, read through the socket.
    let pod = Pod::new(&node, "ctlpod")?;
    let result = pod.add()?;
    let address = result_ipv4(&result).context("the ADD gave no IPv4 address")?;
    let address = address.split('/').next().unwrap_or_default().to_string();
    let endpoints = ok(&node, &["get", "workloadendpoint", "-o", "wide"])?;
    ensure!(
        endpoints.contains(&pod.container_id) && endpoints.contains(&address),
        "{endpoints}"
    );
    let shown = ok(&node, &["ipam", "show", "--ip", &address])?;
    ensure!(
        shown.contains(&format!("IP {address} is in use"))
            && shown.contains(&format!("k8s-pod-network.{}", pod.container_id)),
        "{shown}"
    );
    let version = ok(&node, &["version"])?;
    ensure!(
        version.contains(&format!(
            "Cluster Version:   v{}",
            env!("CARGO_PKG_VERSION")
        )) && version.contains("Cluster Type:      embedded")
            && version.contains("Agent:             node ctl at"),
        "{version}"
    );
    let check = ok(&node, &["ipam", "check"])?;
    ensure!(check.contains("found 0 problem(s)"), "{check}");

    // A replace at a stale resourceVersion is refused and writes nothing.
    let current = ok(&node, &["get", "ippool", "extra", "-o", "yaml"])?;
    let stale = write(node.dir(), "stale.yaml", &current)?;
    ok(
        &node,
        &[
            "patch",
            "ippool",
            "extra",
            "-p",
            r#"{"spec":{"natOutgoing":false}}"#,
        ],
    )?;
    let refused = manulctl(&node, true, &["replace", "-f", &stale])?;
    ensure!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("has changed since"),
        "{}",
        text(&refused)
    );

    // A compare-and-swap lost through the socket is a Conflict, as the store says it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let channel = unix_channel(&node.socket(), Timeouts::default()).await?;
        let remote = RemoteDatastore::new(channel);
        let peer = remote
            .get(Kind::BGPPeer, "tor")
            .await?
            .context("BGPPeer tor is not in the agent's store")?;
        remote
            .update(Kind::BGPPeer, "tor", peer.value.clone(), &peer.revision)
            .await?;
        let lost = remote
            .update(Kind::BGPPeer, "tor", peer.value.clone(), &peer.revision)
            .await;
        ensure!(
            matches!(&lost, Err(StoreError::Conflict { kind: Kind::BGPPeer, name }) if name == "tor"),
            "a stale update through the socket gave {lost:?}"
        );
        anyhow::Ok(())
    })?;

    // Without the socket (none answers at the default path) the held file is refused.
    let held = manulctl(&node, false, &["get", "ippool"])?;
    ensure!(
        !held.status.success()
            && String::from_utf8_lossy(&held.stderr)
                .contains("while manul-agent runs it holds the embedded store"),
        "{}",
        text(&held)
    );
    pod.del()?;
    Ok(())
}
