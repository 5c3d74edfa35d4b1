//! Tests of configuration parsing: a full file, defaults, and one test per error that checks
//! the error names its field. No I/O.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

const FULL: &str = r#"
originate = ["10.0.0.0/24", "2001:db8::/48"]

[global]
asn = 65001
router_id = "192.0.2.1"
listen_address = ["127.0.0.1", "::1"]
listen_port = 1179
cluster_id = "192.0.2.100"

[[peer]]
name = "tor"
address = "192.0.2.2"
port = 2179
local_address = "192.0.2.1"
local_port = 3179
asn = 65002
passive = true
hold_time = 30
connect_retry = 2
md5_password = "secret"
ttl_security = true
route_reflector_client = true
next_hop_self = true
allow_own_as = 1
families = ["ipv4-unicast", "ipv6"]
graceful_restart = { restarting = true, restart_time = 60 }
add_path_receive = true

[peer.import]
default = "reject"
[[peer.import.rule]]
prefixes = ["10.0.0.0/8 ge 24 le 28", "192.168.0.0/16 ge 24", "172.16.0.0/12"]
communities_any = ["65002:1", "no-export"]
extended_communities_any = ["rt:65002:100", "rt:192.0.2.1:5"]
action = "accept"
add_communities = ["65001:7"]
add_extended_communities = ["ro:4200000000:1"]
add_large_communities = ["65001:1:2"]
set_med = 5
set_local_pref = 200

[peer.export]
default = "accept"

[[peer]]
address = "2001:db8::2"
asn = 65001
graceful_restart = { enabled = false }

[[prefix]]
prefix = "10.9.0.0/16"
communities = ["65001:100"]
large_communities = ["65001:0:1"]
"#;

#[test]
fn full_file_parses() {
    let config = parse(FULL).unwrap();
    let global = config.global.unwrap();
    assert_eq!(global.asn, 65001);
    assert_eq!(global.router_id, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(global.listen_addresses.len(), 2);
    assert_eq!(global.listen_port, 1179);
    assert_eq!(global.cluster_id, Some(Ipv4Addr::new(192, 0, 2, 100)));

    let tor = &config.peers[0];
    assert_eq!(tor.name, "tor");
    assert_eq!(tor.port, 2179);
    assert_eq!(tor.local_port, 3179);
    assert!(tor.passive && tor.ttl_security && tor.route_reflector_client && tor.next_hop_self);
    assert_eq!(tor.hold_time, 30);
    assert_eq!(tor.md5_password.as_deref(), Some("secret"));
    assert_eq!(
        tor.families,
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert_eq!(
        tor.graceful_restart,
        Some(GracefulRestartSettings {
            restarting: true,
            restart_time: 60
        })
    );
    let import = tor.import.as_ref().unwrap();
    assert!(!import.default_accept);
    let rule = &import.rules[0];
    assert_eq!(
        (rule.prefixes[0].min_len, rule.prefixes[0].max_len),
        (24, 28)
    );
    assert_eq!(
        (rule.prefixes[1].min_len, rule.prefixes[1].max_len),
        (24, 32)
    );
    assert_eq!(
        (rule.prefixes[2].min_len, rule.prefixes[2].max_len),
        (12, 12)
    );
    assert_eq!(rule.communities_any, vec![65002 << 16 | 1, 0xFFFF_FF01]);
    let extended = |text| crate::message::ExtendedCommunity::parse(text).unwrap();
    assert_eq!(
        rule.extended_communities_any,
        vec![extended("rt:65002:100"), extended("rt:192.0.2.1:5")]
    );
    assert_eq!(
        rule.add_extended_communities,
        vec![extended("ro:4200000000:1")]
    );
    assert_eq!(rule.set_med, Some(5));
    assert_eq!(rule.set_local_pref, Some(200));
    assert!(tor.export.as_ref().unwrap().default_accept);

    let v6 = &config.peers[1];
    assert_eq!(v6.name, "2001:db8::2");
    assert_eq!(v6.families, vec![Family::IPV6_UNICAST]);
    assert_eq!(v6.graceful_restart, None);
    assert_eq!(v6.import, None);
    assert_eq!(config.prefixes.len(), 3);
    assert_eq!(config.prefixes[2].communities, vec![65001 << 16 | 100]);
}

#[test]
fn defaults() {
    let config = parse(
        "[global]\nasn = 64512\nrouter_id = \"10.0.0.1\"\n[[peer]]\naddress = \"10.0.0.2\"\nasn = 64513\n",
    )
    .unwrap();
    let global = config.global.unwrap();
    assert_eq!(global.listen_addresses, vec![IpAddr::from([0, 0, 0, 0])]);
    assert_eq!(global.listen_port, 179);
    let peer = &config.peers[0];
    assert_eq!(peer.port, 179);
    assert_eq!(peer.hold_time, 90);
    assert!(!peer.passive);
    assert_eq!(peer.families, vec![Family::IPV4_UNICAST]);
    assert_eq!(
        peer.graceful_restart,
        Some(GracefulRestartSettings {
            restarting: false,
            restart_time: DEFAULT_RESTART_TIME
        })
    );
}

#[test]
fn listen_none() {
    let config =
        parse("[global]\nasn = 1\nrouter_id = \"10.0.0.1\"\nlisten_address = \"none\"\n").unwrap();
    assert!(config.global.unwrap().listen_addresses.is_empty());
}

fn error_of(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const GLOBAL: &str = "[global]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n";

#[test]
fn errors_name_their_field() {
    let cases = [
        ("[global]\nrouter_id = \"1.1.1.1\"\n", "global.asn: missing"),
        ("[global]\nasn = 1\n", "global.router_id: missing"),
        (
            "[global]\nasn = 1\nrouter_id = \"x\"\n",
            "global.router_id: \"x\" is not an IPv4",
        ),
        (
            "[global]\nasn = 1\nrouter_id = \"0.0.0.0\"\n",
            "global.router_id: must not",
        ),
        (
            "[global]\nasn = 0\nrouter_id = \"1.1.1.1\"\n",
            "global.asn: 0 is not in",
        ),
        (
            "[global]\nasn = 1\nrouter_id = \"1.1.1.1\"\nlisten_port = 70000\n",
            "global.listen_port: 70000",
        ),
        (
            "[global]\nasn = 1\nrouter_id = \"1.1.1.1\"\nlisten_address = [\"a\"]\n",
            "global.listen_address[0]:",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\n[[peer]]\naddress = \"10.0.0.2\"\n",
            "peer[1].asn: missing",
        ),
        ("[[peer]]\nasn = 1\n", "peer[0].address: missing"),
        (
            "[[peer]]\naddress = \"10.0.0.300\"\nasn = 1\n",
            "peer[0].address: \"10.0.0.300\"",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\nhold_time = 2\n",
            "peer[0].hold_time: must be 0",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\nlocal_address = \"::1\"\n",
            "peer[0].local_address: not of",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\nfamilies = [\"l2vpn\"]\n",
            "peer[0].families[0]:",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\nfamilies = []\n",
            "peer[0].families: empty",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\n[[peer]]\naddress = \"10.0.0.1\"\nasn = 2\n",
            "peer[1].address: 10.0.0.1 is already peer[0]",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\ngraceful_restart = { restart_time = 5000 }\n",
            "peer[0].graceful_restart.restart_time: 5000",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\nimport = { default = \"maybe\" }\n",
            "peer[0].import.default: \"maybe\"",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\n[[peer.export.rule]]\nprefixes = [\"10.0.0.0/8 ge 4\"]\n",
            "peer[0].export.rule[0].prefixes[0]:",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\n[[peer.export.rule]]\nprefixes = [\"10.0.0.0/8 ge 24 le 16\"]\n",
            "peer[0].export.rule[0].prefixes[0]:",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\n[[peer.export.rule]]\ncommunities_any = [\"1:70000\"]\n",
            "peer[0].export.rule[0].communities_any[0]:",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\n[[peer.export.rule]]\nadd_large_communities = [\"1:2\"]\n",
            "peer[0].export.rule[0].add_large_communities[0]:",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\n[[peer.export.rule]]\nextended_communities_any = [\"rt:1\"]\n",
            "peer[0].export.rule[0].extended_communities_any[0]:",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\n[[peer.export.rule]]\nadd_extended_communities = [\"rt:4200000000:70000\"]\n",
            "peer[0].export.rule[0].add_extended_communities[0]:",
        ),
        (
            "[[peer]]\naddress = \"10.0.0.1\"\nasn = 1\n[[peer.export.rule]]\nset_med = -1\n",
            "peer[0].export.rule[0].set_med:",
        ),
        (
            "originate = [\"10.0.0.1/24\"]\n",
            "originate[0]: \"10.0.0.1/24\" has host bits set",
        ),
        (
            "[[prefix]]\ncommunities = []\n",
            "prefix[0].prefix: missing",
        ),
        (
            "[[prefix]]\nprefix = \"10.0.0.0/8\"\ncommunities = [\"x\"]\n",
            "prefix[0].communities[0]:",
        ),
    ];
    for (text, expected) in cases {
        let error = error_of(text);
        assert!(
            error.starts_with(expected),
            "{text:?}: got {error:?}, want {expected:?}"
        );
    }
    // Unknown and mistyped fields are reported by the TOML layer with their name.
    assert!(error_of(&format!("{GLOBAL}colour = 1\n")).contains("colour"));
    assert!(error_of("[[peer]]\naddress = 1\n").contains("address"));
}

#[test]
fn communities_and_prefix_matches() {
    assert_eq!(parse_community("65535:65281", "x").unwrap(), 0xFFFF_FF01);
    assert_eq!(
        parse_community("graceful-shutdown", "x").unwrap(),
        0xFFFF_0000
    );
    assert_eq!(format_community(65001 << 16 | 7), "65001:7");
    let large = parse_large_community("4200000000:1:2", "x").unwrap();
    assert_eq!(format_large_community(&large), "4200000000:1:2");
    let exact = parse_prefix_match("10.0.0.0/8", "x").unwrap();
    assert_eq!((exact.min_len, exact.max_len), (8, 8));
    let le = parse_prefix_match("10.0.0.0/8 le 16", "x").unwrap();
    assert_eq!((le.min_len, le.max_len), (8, 16));
    let v6 = parse_prefix_match("2001:db8::/32 ge 48 le 64", "x").unwrap();
    assert_eq!((v6.min_len, v6.max_len), (48, 64));
    assert!(parse_prefix_match("10.0.0.0/8 ge 33", "x").is_err());
    assert!(parse_prefix_match("10.0.0.0/8 xx 9", "x").is_err());
}
