//! Interop of manul-bgpd with a real GoBGP over eBGP, each in a namespace of the test's own:
//! prefixes, withdrawals and attributes (communities, large communities, MED, AS path) both
//! ways. Needs root, gobgpd and gobgp (skips otherwise). Does I/O: processes, namespaces.

mod common;

use anyhow::{Result, ensure};
use common::{
    Lab, Node,
    bgpd::{self, Paths, established},
    peers::Gobgp,
};
use manul_proto::bgpd as proto;

/// bgpd (AS 65001) originates 10.1.0.0/24 with 65001:7 and adds 65001:9 and MED 20 on export.
fn bgpd_config(me: &Node, gobgp: &Node) -> String {
    format!(
        r#"[global]
asn = 65001
router_id = "{me}"
listen_address = "{me}"

[[peer]]
name = "gobgp"
address = "{gobgp}"
local_address = "{me}"
asn = 65003
hold_time = 9
connect_retry = 1
import = {{ default = "accept" }}
export = {{ default = "accept", rule = [{{ add_communities = ["65001:9"], set_med = 20 }}] }}

[[prefix]]
prefix = "10.1.0.0/24"
communities = ["65001:7"]
"#,
        me = me.address,
        gobgp = gobgp.address,
    )
}

fn gobgp_config(me: &Node, bgpd: &Node) -> String {
    format!(
        r#"[global.config]
  as = 65003
  router-id = "{me}"
  local-address-list = ["{me}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{bgpd}"
    peer-as = 65001
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [neighbors.transport.config]
    local-address = "{me}"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#,
        me = me.address,
        bgpd = bgpd.address,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebgp_with_gobgp_exchanges_prefixes_attributes_and_withdrawals() -> Result<()> {
    common::require_root();
    common::require_programs(&["gobgpd", "gobgp"]);
    let mut lab = Lab::new("gobgp")?;
    let result = ebgp(&mut lab).await;
    lab.finish(result)
}

async fn ebgp(lab: &mut Lab) -> Result<()> {
    let (me, peer) = (lab.node("bgpd")?, lab.node("gobgp")?);
    let gobgp = Gobgp::start(lab, "gobgp", &peer, &gobgp_config(&peer, &me))?;
    let mut client = bgpd::start(lab, "bgpd", &me, &bgpd_config(&me, &peer)).await?;
    let mut paths = Paths::watch(&mut client).await?;
    let (address, bgpd_address) = (peer.address.to_string(), me.address.to_string());
    let status = bgpd::wait_peer(&mut client, &address, "Established", established).await?;
    let negotiated = status.negotiated.unwrap_or_default();
    ensure!(
        negotiated.peer_as == 65003 && negotiated.hold_time == 9,
        "{negotiated:?}"
    );
    gobgp
        .wait(&["neighbor", &bgpd_address], "Established", |out| {
            out.contains("BGP state = ESTABLISHED")
        })
        .await?;

    // GoBGP → bgpd: a route with a community, a large community and a MED.
    let add =
        "global rib add -a ipv4 10.3.0.0/24 community 65003:5 large-community 65003:1:2 med 30";
    gobgp.cli(&add.split(' ').collect::<Vec<_>>())?;
    let path = paths.wait_prefix("10.3.0.0/24").await?;
    assert_eq!(path.next_hops, vec![address.clone()]);
    assert_eq!(path.as_path, vec![65003]);
    assert_eq!(path.communities, vec!["65003:5".to_string()]);
    assert_eq!(path.large_communities, vec!["65003:1:2".to_string()]);
    assert_eq!(path.med, Some(30));
    bgpd::wait_peer(&mut client, &address, "counters", |status| {
        status.prefixes_accepted == 1 && status.prefixes_advertised == 1
    })
    .await?;

    // bgpd → GoBGP: its community plus the export policy's, MED 20, AS path 65001.
    let route = gobgp
        .wait(
            &["global", "rib", "-a", "ipv4", "10.1.0.0/24"],
            "bgpd's prefix",
            |out| out.contains("10.1.0.0/24"),
        )
        .await?;
    for expected in [&bgpd_address, "65001:7", "65001:9", "{Med: 20}", " 65001 "] {
        ensure!(route.contains(expected), "{expected:?} missing:\n{route}");
    }

    // Withdrawals both ways.
    client
        .delete_prefixes(proto::DeletePrefixesRequest {
            prefixes: vec!["10.1.0.0/24".to_string()],
        })
        .await?;
    gobgp
        .wait(
            &["global", "rib", "-a", "ipv4"],
            "10.1.0.0/24 withdrawn",
            |out| !out.contains("10.1.0.0/24") && out.contains("10.3.0.0/24"),
        )
        .await?;
    gobgp.cli(&["global", "rib", "del", "-a", "ipv4", "10.3.0.0/24"])?;
    paths
        .wait("10.3.0.0/24 withdrawn", |state| {
            !state.best.contains_key("10.3.0.0/24")
                && state.withdrawn.contains(&"10.3.0.0/24".to_string())
        })
        .await?;
    Ok(())
}
