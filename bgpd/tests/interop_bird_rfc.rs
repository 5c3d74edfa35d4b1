//! Interop of manul-bgpd with BIRD 2 on RFC MUSTs, each in namespaces of the test's own:
//! well-known communities (RFC 1997) and extended communities (RFC 4360) carried from an iBGP
//! BIRD through bgpd to an eBGP BIRD, and IPv4 routes over an IPv6-only session with
//! extended next hop (RFC 8950). Needs root, bird and birdc (fails otherwise). Does I/O:
//! processes, netns.

mod common;

use anyhow::{Context, Result, ensure};
use common::{
    Lab, Node,
    bgpd::{self, Paths, established},
    peers::{Bird, bird_bgp, bird_static},
};
use manul_proto::bgpd as proto;

fn prerequisites() -> Result<()> {
    common::require_root();
    common::require_programs(&["bird", "birdc"]);
    Ok(())
}

/// bgpd (AS 65001): iBGP with `source` (accept all), eBGP with `sink` (accept all, adding
/// the extended community rt:65001:9).
fn communities_bgpd(me: &Node, source: &Node, sink: &Node) -> String {
    format!(
        r#"[global]
asn = 65001
router_id = "{me}"
listen_address = "{me}"

[[peer]]
name = "source"
address = "{source}"
local_address = "{me}"
asn = 65001
hold_time = 9
connect_retry = 1
import = {{ default = "accept" }}

[[peer]]
name = "sink"
address = "{sink}"
local_address = "{me}"
asn = 65003
hold_time = 9
connect_retry = 1
import = {{ default = "accept" }}
export = {{ default = "reject", rule = [{{ add_extended_communities = ["rt:65001:9"] }}] }}
"#,
        me = me.address,
        source = source.address,
        sink = sink.address,
    )
}

/// The iBGP source (AS 65001): 10.2.0.0/24 with a route target and a non-transitive extended
/// community, 10.2.1.0/24 with NO_EXPORT, 10.2.2.0/24 with NO_ADVERTISE.
fn source_bird(me: &Node, bgpd: &Node) -> String {
    let export = "export filter {
      if net = 10.2.0.0/24 then {
        bgp_ext_community.add((rt, 65002, 100));
        bgp_ext_community.add((generic, 0x40040000, 1));
      }
      if net = 10.2.1.0/24 then bgp_community.add((65535, 65281));
      if net = 10.2.2.0/24 then bgp_community.add((65535, 65282));
      accept;
    };";
    bird_static("originated", &["10.2.0.0/24", "10.2.1.0/24", "10.2.2.0/24"])
        + &bird_bgp(
            "bgpd",
            (me, 65001),
            (bgpd, 65001),
            "hold time 9;",
            &format!("import all; {export}"),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_known_and_extended_communities_through_bgpd() -> Result<()> {
    prerequisites()?;
    let mut lab = Lab::new("rfccomm")?;
    let result = communities(&mut lab).await;
    lab.finish(result)
}

async fn communities(lab: &mut Lab) -> Result<()> {
    let (me, source, sink) = (lab.node("bgpd")?, lab.node("src")?, lab.node("sink")?);
    Bird::start(lab, "source", &source, &source_bird(&source, &me)).await?;
    let sink_config = bird_bgp(
        "bgpd",
        (&sink, 65003),
        (&me, 65001),
        "hold time 9;",
        "import all; export none;",
    );
    let sink_bird = Bird::start(lab, "sink", &sink, &sink_config).await?;
    let config = communities_bgpd(&me, &source, &sink);
    let mut client = bgpd::start(lab, "bgpd", &me, &config).await?;
    let mut paths = Paths::watch(&mut client).await?;
    let sink_address = sink.address.to_string();
    bgpd::wait_peer(&mut client, &sink_address, "Established", established).await?;

    // bgpd streams all three, with the extended communities as received.
    let path = paths.wait_prefix("10.2.0.0/24").await?;
    assert_eq!(
        path.extended_communities,
        vec![
            "rt:65002:100".to_string(),
            "raw:4004000000000001".to_string()
        ]
    );
    paths.wait_prefix("10.2.1.0/24").await?;
    paths.wait_prefix("10.2.2.0/24").await?;

    // A marker originated afterwards: once the sink has it, it has had everything before.
    client
        .add_prefixes(proto::AddPrefixesRequest {
            prefixes: vec![proto::OriginatedPrefix {
                prefix: "10.1.9.0/24".to_string(),
                ..Default::default()
            }],
        })
        .await?;
    let out = sink_bird
        .wait("show route protocol bgpd", "the marker", |out| {
            out.contains("10.1.9.0/24") && out.contains("10.2.0.0/24")
        })
        .await?;
    ensure!(
        !out.contains("10.2.1.0/24") && !out.contains("10.2.2.0/24"),
        "NO_EXPORT / NO_ADVERTISE route reached the eBGP sink:\n{out}"
    );
    let route = sink_bird.birdc("show route 10.2.0.0/24 all")?;
    ensure!(
        route.contains("(rt, 65002, 100)") && route.contains("(rt, 65001, 9)"),
        "route target or the added one missing:\n{route}"
    );
    ensure!(
        !route.contains("generic") && !route.contains("0x40040000"),
        "the non-transitive extended community leaked to eBGP:\n{route}"
    );
    Ok(())
}

/// Gives `node` an IPv6 address on the lab segment: fd00:<lab>::<n>/64.
fn add_ipv6(lab: &Lab, node: &Node) -> Result<String> {
    let [_, _, lab_index, host] = node.address.octets();
    // Canonical text ("fd00::2" for lab 0), as the daemon's API writes next hops.
    let address: std::net::Ipv6Addr = format!("fd00:{lab_index}::{host}").parse()?;
    let address = address.to_string();
    let cidr = format!("{address}/64");
    lab.exec(
        node,
        &["ip", "-6", "addr", "add", &cidr, "dev", "eth0", "nodad"],
    )?;
    Ok(address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_routes_over_an_ipv6_session_with_extended_next_hop() -> Result<()> {
    prerequisites()?;
    let mut lab = Lab::new("rfcenh")?;
    let result = extended_next_hop(&mut lab).await;
    lab.finish(result)
}

async fn extended_next_hop(lab: &mut Lab) -> Result<()> {
    let (me, peer) = (lab.node("bgpd")?, lab.node("bird")?);
    let (my_v6, bird_v6) = (add_ipv6(lab, &me)?, add_ipv6(lab, &peer)?);
    let bird_config = format!(
        "{}protocol bgp bgpd {{
  local {bird_v6} as 65002;
  neighbor {my_v6} as 65001;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
  hold time 9;
  ipv4 {{ import all; export all; extended next hop on; }};
}}
",
        bird_static("originated", &["10.2.0.0/24"])
    );
    let bird = Bird::start(lab, "bird", &peer, &bird_config).await?;
    let config = format!(
        r#"originate = ["10.1.0.0/24"]
[global]
asn = 65001
router_id = "{me}"
listen_address = "{my_v6}"

[[peer]]
address = "{bird_v6}"
local_address = "{my_v6}"
asn = 65002
hold_time = 9
connect_retry = 1
families = ["ipv4-unicast"]
extended_next_hop = true
import = {{ default = "accept" }}
export = {{ default = "accept" }}
"#,
        me = me.address,
    );
    let mut client = bgpd::start(lab, "bgpd", &me, &config).await?;
    let mut paths = Paths::watch(&mut client).await?;
    let status = bgpd::wait_peer(&mut client, &bird_v6, "Established", established).await?;
    let negotiated = status.negotiated.context("no negotiated parameters")?;
    ensure!(negotiated.extended_next_hop, "{negotiated:?}");

    // BIRD → bgpd: an IPv4 prefix with BIRD's IPv6 address as next hop.
    let path = paths.wait_prefix("10.2.0.0/24").await?;
    assert_eq!(path.next_hops, vec![bird_v6.clone()]);

    // bgpd → BIRD: its IPv4 prefix with bgpd's IPv6 address as next hop.
    bird.wait("show route protocol bgpd", "bgpd's prefix", |out| {
        out.contains("10.1.0.0/24")
    })
    .await?;
    let route = bird.birdc("show route 10.1.0.0/24 all")?;
    ensure!(
        route.contains(&format!("BGP.next_hop: {my_v6}")),
        "next hop is not bgpd's IPv6 address:\n{route}"
    );
    Ok(())
}
