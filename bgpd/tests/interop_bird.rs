//! Interop of manul-bgpd with a real BIRD 2 over eBGP, each in a namespace of the test's own:
//! prefixes, withdrawals and attributes (MED, LOCAL_PREF, communities, large communities, AS
//! path) both ways. Needs root, bird and birdc (skips otherwise). Does I/O: processes, netns.

mod common;

use anyhow::{Context, Result, ensure};
use common::{
    Lab,
    bgpd::{self, Paths, established},
    peers::{Bird, bird_bgp, bird_static},
};
use manul_proto::bgpd as proto;

/// bgpd (AS 65001) originates 10.1.0.0/24 and 10.1.1.0/24 (with a large community), sets
/// LOCAL_PREF 200 on what it imports and adds 65001:9 and MED 20 to what it exports.
fn bgpd_config(me: &common::Node, bird: &common::Node) -> String {
    format!(
        r#"originate = ["10.1.0.0/24"]
[global]
asn = 65001
router_id = "{me}"
listen_address = "{me}"

[[peer]]
name = "bird"
address = "{bird}"
local_address = "{me}"
asn = 65002
hold_time = 9
connect_retry = 1
import = {{ default = "accept", rule = [{{ set_local_pref = 200 }}] }}
export = {{ default = "reject", rule = [{{ prefixes = ["10.1.0.0/16 le 32"], add_communities = ["65001:9"], set_med = 20 }}] }}

[[prefix]]
prefix = "10.1.1.0/24"
large_communities = ["65001:3:4"]
"#,
        me = me.address,
        bird = bird.address,
    )
}

/// BIRD (AS 65002) originates 10.2.0.0/24 and sets MED 50, (65002,7) and (65002,1,2) on it.
fn bird_config(me: &common::Node, bgpd: &common::Node) -> String {
    let export = "export filter {
      if net ~ [10.2.0.0/16+] then {
        bgp_med = 50;
        bgp_community.add((65002,7));
        bgp_large_community.add((65002,1,2));
        accept;
      }
      reject;
    };";
    bird_static("originated", &["10.2.0.0/24"])
        + &bird_bgp(
            "bgpd",
            (me, 65002),
            (bgpd, 65001),
            "hold time 9;",
            &format!("import all; {export}"),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebgp_with_bird_exchanges_prefixes_attributes_and_withdrawals() -> Result<()> {
    common::require_root();
    common::require_programs(&["bird", "birdc"]);
    let mut lab = Lab::new("ebgp")?;
    let result = ebgp(&mut lab).await;
    lab.finish(result)
}

async fn ebgp(lab: &mut Lab) -> Result<()> {
    let (me, peer) = (lab.node("bgpd")?, lab.node("bird")?);
    let bird = Bird::start(lab, "bird", &peer, &bird_config(&peer, &me)).await?;
    let mut client = bgpd::start(lab, "bgpd", &me, &bgpd_config(&me, &peer)).await?;
    let bird_address = peer.address.to_string();
    let mut paths = Paths::watch(&mut client).await?;

    // BIRD → bgpd: the prefix with BIRD as next hop and BIRD's attributes, LOCAL_PREF from
    // bgpd's import policy.
    let status = bgpd::wait_peer(&mut client, &bird_address, "Established", established).await?;
    let negotiated = status.negotiated.context("no negotiated parameters")?;
    assert_eq!((negotiated.peer_as, negotiated.hold_time), (65002, 9));
    let path = paths.wait_prefix("10.2.0.0/24").await?;
    assert_eq!(path.next_hops, vec![bird_address.clone()]);
    assert_eq!(path.as_path, vec![65002]);
    assert_eq!(path.med, Some(50));
    assert_eq!(path.local_pref, Some(200));
    assert_eq!(path.communities, vec!["65002:7".to_string()]);
    assert_eq!(path.large_communities, vec!["65002:1:2".to_string()]);
    assert_eq!(path.origin, "IGP");
    bgpd::wait_peer(&mut client, &bird_address, "counters", |status| {
        (status.prefixes_received, status.prefixes_accepted) == (1, 1)
            && status.prefixes_advertised == 2
    })
    .await?;

    // bgpd → BIRD: both prefixes, AS path 65001, next hop bgpd, the export policy's MED and
    // community, the originated large community.
    let bgpd_address = me.address.to_string();
    let out = bird
        .wait("show route protocol bgpd all", "bgpd's prefixes", |out| {
            out.contains("10.1.0.0/24") && out.contains("10.1.1.0/24")
        })
        .await?;
    let route = bird.birdc("show route 10.1.0.0/24 all")?;
    for expected in [
        "BGP.as_path: 65001\n".to_string(),
        format!("BGP.next_hop: {bgpd_address}\n"),
        "BGP.med: 20\n".to_string(),
        "BGP.community: (65001,9)\n".to_string(),
        "BGP.origin: IGP\n".to_string(),
    ] {
        ensure!(route.contains(&expected), "{expected:?} missing:\n{route}");
    }
    let route = bird.birdc("show route 10.1.1.0/24 all")?;
    ensure!(
        route.contains("BGP.large_community: (65001, 3, 4)") && route.contains("BGP.med: 20"),
        "10.1.1.0/24 lacks its large community or MED:\n{route}\n{out}"
    );

    // bgpd withdraws 10.1.0.0/24: gone from BIRD, 10.1.1.0/24 stays.
    client
        .delete_prefixes(proto::DeletePrefixesRequest {
            prefixes: vec!["10.1.0.0/24".to_string()],
        })
        .await?;
    bird.wait("show route protocol bgpd", "10.1.0.0/24 withdrawn", |out| {
        !out.contains("10.1.0.0/24") && out.contains("10.1.1.0/24")
    })
    .await?;

    // BIRD withdraws 10.2.0.0/24 (its static protocol disabled): gone from bgpd.
    bird.birdc("disable originated")?;
    paths
        .wait("10.2.0.0/24 withdrawn", |state| {
            !state.best.contains_key("10.2.0.0/24")
                && state.withdrawn.contains(&"10.2.0.0/24".to_string())
        })
        .await?;
    bgpd::wait_peer(&mut client, &bird_address, "counters", |status| {
        status.prefixes_accepted == 0 && status.prefixes_advertised == 1 && established(status)
    })
    .await?;
    Ok(())
}
