//! The lab's top-of-rack router: BIRD 2 in the ToR namespace, one eBGP session per node (it
//! learns each node's blocks and installs them in its kernel; it tells the nodes about the
//! outside network), and the BGPPeer resources that make the nodes peer with it. Does I/O.

use std::{
    fmt::Write as _,
    fs::File,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use manul_store::{BgpPeer, Datastore, DatastoreExt};

use super::{Lab, NODE_ASN, TOR_ASN, TOR_OUTSIDE};

/// Writes the ToR's BIRD configuration and starts BIRD.
pub(super) fn start_bird(lab: &Lab) -> Result<Child> {
    let path = write_config(lab)?;
    let log = File::create(lab.dir().join("bird.log"))?;
    let mut command = Command::new("bird");
    command
        .arg("-f")
        .arg("-c")
        .arg(&path)
        .arg("-s")
        .arg(lab.dir().join("bird.ctl"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    lab.tor
        .spawn(&mut command)
        .context("starting BIRD on the ToR (apt-get install bird2)")
}

/// Rewrites bird.conf for the lab's current nodes and has the running BIRD load it
/// (`birdc configure`: sessions whose protocol did not change stay up).
pub(super) fn reconfigure(lab: &Lab) -> Result<()> {
    write_config(lab)?;
    let answer = birdc(lab, &["configure"])?;
    if !answer.contains("Reconfigured") && !answer.contains("Reconfiguration in progress") {
        bail!("birdc configure on the ToR: {answer}");
    }
    Ok(())
}

/// bird.conf: one eBGP protocol per node of the lab.
fn write_config(lab: &Lab) -> Result<PathBuf> {
    let mut config = format!(
        "router id {TOR_OUTSIDE};\n\
         protocol device {{ scan time 1; }}\n\
         protocol direct {{ ipv4; interface \"r-*\", \"out0\"; }}\n\
         protocol kernel {{ ipv4 {{ import none; export filter {{ if source = RTS_BGP then accept; reject; }}; }}; merge paths on; }}\n\
         filter to_nodes {{ if net = 10.80.9.0/24 then accept; reject; }}\n\
         template bgp node {{\n  local as {TOR_ASN};\n  connect delay time 1;\n  connect retry time 2;\n  graceful restart on;\n  ipv4 {{ import all; export filter to_nodes; }};\n}}\n"
    );
    for node in &lab.nodes {
        let _ = writeln!(
            config,
            "protocol bgp {} from node {{ neighbor {} as {NODE_ASN}; source address {}; }}",
            node.name,
            node.address,
            node.gateway()
        );
    }
    let path = lab.dir().join("bird.conf");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// `birdc` on the ToR's control socket.
pub fn birdc(lab: &Lab, args: &[&str]) -> Result<String> {
    let output = Command::new("birdc")
        .arg("-s")
        .arg(lab.dir().join("bird.ctl"))
        .args(args)
        .output()
        .context("running birdc")?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One BGPPeer per node: the node peers with the ToR's address on its subnet.
pub(super) fn create_peers(lab: &Lab) -> Result<()> {
    let peers: Vec<BgpPeer> = lab
        .nodes
        .iter()
        .map(|node| BgpPeer {
            node: node.name.clone(),
            ..BgpPeer::global(
                &format!("tor-{}", node.name),
                &node.gateway().to_string(),
                TOR_ASN,
            )
        })
        .collect();
    with_store(lab, move |store| async move {
        for peer in &peers {
            match store.create_resource(peer).await {
                Ok(_) => {}
                Err(error) if error.is_conflict() => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    })
}

/// Runs `work` against the lab's etcd, from a thread inside the ToR namespace.
pub fn with_store<F, Fut, T>(lab: &Lab, work: F) -> Result<T>
where
    F: FnOnce(Arc<dyn Datastore>) -> Fut + Send,
    Fut: std::future::Future<Output = Result<T>>,
    T: Send,
{
    let url = lab.tor_datastore_url();
    lab.tor.run_in(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let store = manul_store::open_datastore(&url)?;
            tokio::time::timeout(Duration::from_secs(30), work(store))
                .await
                .context("the lab's etcd did not answer within 30 s")?
        })
    })?
}
