//! iBGP route reflection between manul-bgpd and real BIRD 2 daemons (AS 65001 throughout),
//! each in a namespace of the test's own: bgpd reflecting between two BIRD clients, and bgpd
//! as a client of a BIRD reflector. Needs root, bird and birdc (skips otherwise). Does I/O:
//! processes, namespaces.

mod common;

use anyhow::{Result, ensure};
use common::{
    Lab, Node,
    bgpd::{self, Paths, established},
    peers::{Bird, bird_bgp, bird_static},
};

const AS: u32 = 65001;

/// An iBGP session of BIRD on a shared segment (`direct`: next hops resolve on the link).
fn ibgp(name: &str, me: &Node, neighbor: &Node, options: &str, channel: &str) -> String {
    bird_bgp(
        name,
        (me, AS),
        (neighbor, AS),
        &format!("direct;\n  {options}"),
        channel,
    )
}

fn bgpd_config(me: &Node, peers: &[(&Node, bool)], originate: &str) -> String {
    let mut text = format!(
        "originate = [{originate}]\n[global]\nasn = {AS}\nrouter_id = \"{0}\"\nlisten_address = \"{0}\"\n",
        me.address
    );
    for (peer, client) in peers {
        text += &format!(
            "\n[[peer]]\naddress = \"{}\"\nlocal_address = \"{}\"\nasn = {AS}\nconnect_retry = 1
route_reflector_client = {client}\n",
            peer.address, me.address
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bgpd_reflects_routes_between_bird_clients() -> Result<()> {
    common::require_root();
    common::require_programs(&["bird", "birdc"]);
    let mut lab = Lab::new("rr")?;
    let result = reflector(&mut lab).await;
    lab.finish(result)
}

async fn reflector(lab: &mut Lab) -> Result<()> {
    let me = lab.node("bgpd")?;
    let (a, b) = (lab.node("a")?, lab.node("b")?);
    // Client A originates 10.4.0.0/24 with LOCAL_PREF 250; client B only listens.
    let a_export = "import all; export filter {
      if net ~ [10.4.0.0/16+] then { bgp_local_pref = 250; accept; }
      reject;
    };";
    let a_body =
        bird_static("originated", &["10.4.0.0/24"]) + &ibgp("reflector", &a, &me, "", a_export);
    let a_bird = Bird::start(lab, "a", &a, &a_body).await?;
    let b_bird = Bird::start(
        lab,
        "b",
        &b,
        &ibgp("reflector", &b, &me, "", "import all; export none;"),
    )
    .await?;
    let config = bgpd_config(&me, &[(&a, true), (&b, true)], "");
    let mut client = bgpd::start(lab, "bgpd", &me, &config).await?;
    let mut paths = Paths::watch(&mut client).await?;
    for peer in [&a, &b] {
        let address = peer.address.to_string();
        bgpd::wait_peer(&mut client, &address, "Established", established).await?;
    }
    a_bird.wait_established("reflector").await?;

    // bgpd's own best path: A's next hop and LOCAL_PREF, an empty AS path.
    let path = paths.wait_prefix("10.4.0.0/24").await?;
    assert_eq!(path.next_hops, vec![a.address.to_string()]);
    assert_eq!(path.local_pref, Some(250));
    assert!(path.as_path.is_empty(), "{path:?}");

    // Reflected to B: next hop and LOCAL_PREF unchanged, ORIGINATOR_ID A, CLUSTER_LIST bgpd's
    // router id (its default cluster id).
    let route = b_bird
        .wait("show route 10.4.0.0/24 all", "the reflected route", |out| {
            out.contains("BGP.originator_id")
        })
        .await?;
    for expected in [
        format!("BGP.originator_id: {}\n", a.address),
        format!("BGP.cluster_list: {}\n", me.address),
        format!("BGP.next_hop: {}\n", a.address),
        "BGP.local_pref: 250\n".to_string(),
        "BGP.as_path: \n".to_string(),
    ] {
        ensure!(route.contains(&expected), "{expected:?} missing:\n{route}");
    }

    // Not reflected back to A, its originator.
    let a_routes = a_bird.birdc("show route protocol reflector")?;
    ensure!(!a_routes.contains("10.4.0.0/24"), "{a_routes}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bgpd_as_client_of_a_bird_reflector() -> Result<()> {
    common::require_root();
    common::require_programs(&["bird", "birdc"]);
    let mut lab = Lab::new("rrc")?;
    let result = client_of_bird(&mut lab).await;
    lab.finish(result)
}

async fn client_of_bird(lab: &mut Lab) -> Result<()> {
    let me = lab.node("bgpd")?;
    let (rr, c) = (lab.node("rr")?, lab.node("c")?);
    // The reflector has bgpd and C as clients; C originates 10.5.0.0/24, bgpd 10.6.0.0/24.
    let all = "import all; export all;";
    let rr_body =
        ibgp("bgpd", &rr, &me, "rr client;", all) + &ibgp("c", &rr, &c, "rr client;", all);
    let rr_bird = Bird::start(lab, "rr", &rr, &rr_body).await?;
    let c_export = "import all; export where net ~ [10.5.0.0/16+];";
    let c_body =
        bird_static("originated", &["10.5.0.0/24"]) + &ibgp("reflector", &c, &rr, "", c_export);
    let c_bird = Bird::start(lab, "c", &c, &c_body).await?;
    let config = bgpd_config(&me, &[(&rr, false)], "\"10.6.0.0/24\"");
    let mut client = bgpd::start(lab, "bgpd", &me, &config).await?;
    let mut paths = Paths::watch(&mut client).await?;
    let rr_address = rr.address.to_string();
    bgpd::wait_peer(&mut client, &rr_address, "Established", established).await?;
    rr_bird.wait_established("c").await?;

    // C's route reaches bgpd through the reflector, with C as next hop.
    let path = paths.wait_prefix("10.5.0.0/24").await?;
    assert_eq!(path.next_hops, vec![c.address.to_string()]);
    assert!(path.as_path.is_empty(), "{path:?}");
    bgpd::wait_peer(&mut client, &rr_address, "counters", |status| {
        status.prefixes_accepted == 1 && status.prefixes_advertised == 1
    })
    .await?;

    // bgpd's route reaches C through the reflector, with bgpd as originator and next hop.
    let route = c_bird
        .wait("show route 10.6.0.0/24 all", "bgpd's route", |out| {
            out.contains("BGP.originator_id")
        })
        .await?;
    for expected in [
        format!("BGP.originator_id: {}\n", me.address),
        format!("BGP.cluster_list: {}\n", rr.address),
        format!("BGP.next_hop: {}\n", me.address),
    ] {
        ensure!(route.contains(&expected), "{expected:?} missing:\n{route}");
    }
    Ok(())
}
