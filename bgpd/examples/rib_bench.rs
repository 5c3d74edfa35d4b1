//! RIB benchmark, reads /proc only: 1,000,000 IPv4 prefixes with 100 distinct attribute sets
//! from one eBGP peer, in updates of 900 prefixes as the codec would deliver them; prints the
//! time and the resident memory the RIB added (VmRSS before and after). Then brings up an
//! iBGP peer and times its initial Adj-RIB-Out. `cargo run --release --example rib_bench`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ipnet::{IpNet, Ipv4Net};
use manul_bgpd::message::{
    AsPath, AsSegment, Family, Nlri, Origin, PathAttributes, SegmentKind, Update,
};
use manul_bgpd::rib::{LocalConfig, PeerConfig, PeerId, Policy, Rib, RibOutput, SessionInfo};

const PREFIXES: u32 = 1_000_000;
const PER_UPDATE: u32 = 900;
const ATTRIBUTE_SETS: u32 = 100;

/// A `VmRSS`/`VmHWM` line of /proc/self/status, in kB.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn peer(address: [u8; 4], asn: u32) -> PeerConfig {
    PeerConfig {
        address: IpAddr::V4(Ipv4Addr::from(address)),
        asn,
        route_reflector_client: false,
        next_hop_self: false,
        allow_own_as: 0,
        local_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        local_address_v6: None,
        import: Policy::accept_all(),
        export: Policy::accept_all(),
    }
}

fn session(router_id: [u8; 4]) -> SessionInfo {
    SessionInfo {
        peer_router_id: Ipv4Addr::from(router_id),
        four_octet_as: true,
        families: vec![Family::IPV4_UNICAST],
        add_path_receive: Vec::new(),
        graceful_restart: None,
        extended_next_hop: false,
    }
}

fn attributes(set: u32) -> PathAttributes {
    let asns = vec![65001, 64512 + set, 4_200_000_000 + set % 7];
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath {
            segments: vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 2)),
        med: Some(set),
        communities: vec![65001 << 16 | set],
        ..PathAttributes::default()
    }
}

fn main() {
    let mut rib = Rib::new(LocalConfig {
        asn: 65000,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        cluster_id: None,
    });
    rib.add_peer(PeerId(1), peer([192, 0, 2, 2], 65001));
    rib.peer_up(PeerId(1), session([192, 0, 2, 2]));
    let rss_before = status_kb("VmRSS:");
    let start = Instant::now();
    let (mut best_changes, mut first) = (0usize, 0u32);
    while first < PREFIXES {
        let count = PER_UPDATE.min(PREFIXES - first);
        let nlri = (first..first + count)
            .map(|i| {
                let address = Ipv4Addr::from((1 << 24) + (i << 8));
                let prefix = IpNet::V4(Ipv4Net::new(address, 24).unwrap_or_default());
                Nlri {
                    prefix,
                    path_id: None,
                }
            })
            .collect();
        let attributes = attributes((first / PER_UPDATE) % ATTRIBUTE_SETS);
        let update = Update {
            withdrawn: Vec::new(),
            attributes,
            nlri,
        };
        let out = rib.receive(PeerId(1), update);
        best_changes += out
            .iter()
            .filter(|o| matches!(o, RibOutput::BestChanged { .. }))
            .count();
        first += count;
    }
    let elapsed = start.elapsed();
    let rss_after = status_kb("VmRSS:");
    let added = rss_after.saturating_sub(rss_before);
    println!(
        "receive: {} prefixes ({} best changes, {} attribute sets interned) in {:.3} s",
        rib.len(),
        best_changes,
        rib.interned_attributes(),
        elapsed.as_secs_f64()
    );
    println!(
        "memory: VmRSS {rss_before} kB -> {rss_after} kB (+{added} kB, {:.1} bytes/prefix), VmHWM {} kB",
        added as f64 * 1024.0 / f64::from(PREFIXES),
        status_kb("VmHWM:")
    );

    rib.add_peer(PeerId(2), peer([192, 0, 2, 3], 65000));
    let start = Instant::now();
    let out = rib.peer_up(PeerId(2), session([192, 0, 2, 3]));
    let updates: usize = out
        .iter()
        .map(|o| match o {
            RibOutput::Send { updates, .. } => updates.len(),
            _ => 0,
        })
        .sum();
    let elapsed = start.elapsed();
    drop(out);
    let rss_out = status_kb("VmRSS:");
    println!(
        "peer_up of an iBGP peer: {} prefixes advertised in {updates} updates in {:.3} s; VmRSS +{} kB",
        rib.counters(PeerId(2)).advertised,
        elapsed.as_secs_f64(),
        rss_out.saturating_sub(rss_after)
    );
}
