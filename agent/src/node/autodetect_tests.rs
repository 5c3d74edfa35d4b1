//! Unit tests of node IP selection: every method, the shared rules (up interfaces only, global
//! unicast of the family, interface order), the default exclusions, and the errors.

use super::*;
use crate::netlink::fake::FakeNetlink;

fn interface(name: &str, up: bool, addresses: &[&str]) -> InterfaceAddresses {
    InterfaceAddresses {
        name: name.into(),
        up,
        addresses: addresses.iter().map(|text| text.parse().unwrap()).collect(),
    }
}

/// A host as Calico's defaults must see it: excluded interfaces first, a down one, a NIC with
/// link-local and global addresses, a second NIC.
fn host() -> Vec<InterfaceAddresses> {
    vec![
        interface("lo", true, &["127.0.0.1/8", "::1/128"]),
        interface("docker0", true, &["172.17.0.1/16"]),
        interface("cali0123456789a", true, &["10.200.0.1/32"]),
        interface("vxlan.calico", true, &["10.244.0.0/32"]),
        interface("veth12", true, &["10.201.0.1/24"]),
        interface("kube-ipvs0", true, &["10.96.0.1/32"]),
        interface("cni0", true, &["10.88.0.1/16"]),
        interface("eth9", false, &["192.168.9.5/24"]),
        interface(
            "eth0",
            true,
            &[
                "169.254.3.3/16",
                "fe80::1/64",
                "10.0.1.5/24",
                "2001:db8::5/64",
                "10.0.1.6/24",
            ],
        ),
        interface("eth1", true, &["192.168.50.7/22", "fd00:50::7/64"]),
    ]
}

fn autodetect(method: &str) -> AddressSetting {
    AddressSetting::Autodetect(Method::parse("--node-ip-autodetection", method).unwrap())
}

fn pick(method: &str, family: Family) -> Result<Option<IpNet>, AutodetectError> {
    select(&autodetect(method), family, &host(), None)
}

fn net(text: &str) -> Option<IpNet> {
    Some(text.parse().unwrap())
}

#[test]
fn first_found_skips_the_default_exclusions_down_interfaces_and_non_global_addresses() {
    assert_eq!(pick("first-found", Family::V4).unwrap(), net("10.0.1.5/24"));
    assert_eq!(
        pick("first-found", Family::V6).unwrap(),
        net("2001:db8::5/64")
    );
    assert_eq!(
        pick("", Family::V4).unwrap(),
        net("10.0.1.5/24"),
        "the default"
    );
}

#[test]
fn every_default_exclusion_is_skipped_by_first_found() {
    for name in [
        "docker0",
        "cbr0",
        "dummy0",
        "virbr0",
        "lxcbr0",
        "veth1",
        "lo",
        "cali1",
        "tunl0",
        "flannel.1",
        "kube-ipvs0",
        "cni0",
        "vxlan.calico",
        "vxlan-v6.calico",
        "wireguard.cali",
        "wg-v6.cali",
        "nodelocaldns",
    ] {
        let interfaces = vec![
            interface(name, true, &["10.9.9.9/24"]),
            interface("ens3", true, &["10.1.1.1/24"]),
        ];
        assert_eq!(
            select(&autodetect("first-found"), Family::V4, &interfaces, None).unwrap(),
            net("10.1.1.1/24"),
            "{name}"
        );
    }
    // "^lo" is a prefix match, as in Calico: "lo2" is excluded too; "eth-lo" is not.
    let interfaces = vec![interface("eth-lo", true, &["10.2.2.2/24"])];
    assert_eq!(
        select(&autodetect("first-found"), Family::V4, &interfaces, None).unwrap(),
        net("10.2.2.2/24")
    );
}

#[test]
fn interface_takes_the_first_interface_in_order_that_matches_any_regex() {
    assert_eq!(
        pick("interface=^eth1$", Family::V4).unwrap(),
        net("192.168.50.7/22")
    );
    assert_eq!(
        pick("interface=eth1", Family::V4).unwrap(),
        net("10.201.0.1/24"),
        "unanchored, as Go's MatchString in Calico: veth12 matches eth1"
    );
    assert_eq!(
        pick("interface=^eth.*", Family::V4).unwrap(),
        net("10.0.1.5/24"),
        "eth9 is down"
    );
    assert_eq!(
        pick("interface=^eth1, ^eth0", Family::V4).unwrap(),
        net("10.0.1.5/24"),
        "interface order, not regex order (Calico's)"
    );
    assert_eq!(
        pick("interface=docker0", Family::V4).unwrap(),
        net("172.17.0.1/16"),
        "no default exclusions"
    );
    assert_eq!(
        pick("interface=^eth1", Family::V6).unwrap(),
        net("fd00:50::7/64")
    );
}

#[test]
fn skip_interface_replaces_the_default_exclusions() {
    assert_eq!(
        pick("skip-interface=eth0", Family::V4).unwrap(),
        net("172.17.0.1/16"),
        "lo has no global address; docker0 is not skipped by default here"
    );
    assert_eq!(
        pick(
            "skip-interface=lo,docker.*,cali.*,vxlan.*,veth.*,kube.*,cni.*,eth0",
            Family::V4
        )
        .unwrap(),
        net("192.168.50.7/22")
    );
}

#[test]
fn cidr_takes_the_first_address_inside_one_of_the_cidrs() {
    assert_eq!(
        pick("cidr=192.168.48.0/20", Family::V4).unwrap(),
        net("192.168.50.7/22")
    );
    assert_eq!(
        pick("cidr=10.0.1.6/32,192.168.0.0/16", Family::V4).unwrap(),
        net("10.0.1.6/24"),
        "interface order first, then address order; prefix length of the subnet"
    );
    assert_eq!(
        pick("cidr=fd00::/8", Family::V6).unwrap(),
        net("fd00:50::7/64")
    );
    assert!(
        pick("cidr=192.168.9.0/24", Family::V4).is_err(),
        "eth9 is down"
    );
}

#[test]
fn can_reach_takes_the_source_of_the_route_with_its_subnet_prefix() {
    let setting = autodetect("can-reach=192.168.60.1");
    let lookup = RouteLookup {
        gateway: Some("192.168.50.1".parse().unwrap()),
        device: "eth1".into(),
        source: Some("192.168.50.7".parse().unwrap()),
    };
    assert_eq!(
        select(&setting, Family::V4, &host(), Some(&lookup)).unwrap(),
        net("192.168.50.7/22")
    );
    let error = select(&setting, Family::V4, &host(), None).unwrap_err();
    assert!(
        error.to_string().contains("no route to 192.168.60.1"),
        "{error}"
    );
    let sourceless = RouteLookup {
        source: None,
        ..lookup
    };
    assert!(select(&setting, Family::V4, &host(), Some(&sourceless)).is_err());
}

#[test]
fn explicit_addresses_and_none() {
    let parse = |ip: &str, family| {
        AddressSetting::parse(
            "--node-ip",
            ip,
            "--node-ip-autodetection",
            "first-found",
            family,
        )
    };
    let explicit = parse("10.7.7.7/20", Family::V4).unwrap();
    assert_eq!(
        select(&explicit, Family::V4, &[], None).unwrap(),
        net("10.7.7.7/20")
    );
    let bare = parse("10.0.1.6", Family::V4).unwrap();
    assert_eq!(
        select(&bare, Family::V4, &host(), None).unwrap(),
        net("10.0.1.6/24"),
        "a bare address gets the prefix length of the interface holding it"
    );
    let absent = parse("10.3.3.3", Family::V4).unwrap();
    assert_eq!(
        select(&absent, Family::V4, &host(), None).unwrap(),
        net("10.3.3.3/32")
    );
    let none = parse("none", Family::V6).unwrap();
    assert_eq!(select(&none, Family::V6, &host(), None).unwrap(), None);
    assert!(matches!(
        parse("autodetect", Family::V4).unwrap(),
        AddressSetting::Autodetect(Method::FirstFound)
    ));
    assert!(parse("2001:db8::1/64", Family::V4).is_err(), "wrong family");
    assert!(parse("10.0.0.1/24", Family::V6).is_err(), "wrong family");
    assert!(parse("eth0", Family::V4).is_err());
}

#[test]
fn bad_methods_are_refused_with_the_flag_named() {
    for method in [
        "nearest",
        "interface=",
        "interface=(",
        "can-reach=example.com",
        "cidr=10.0.0.0",
    ] {
        let error = Method::parse("--node-ip-autodetection", method).unwrap_err();
        assert!(
            error.to_string().starts_with("--node-ip-autodetection"),
            "{method}: {error}"
        );
    }
    assert_eq!(
        Method::parse("f", "interface=eth0, ens.*")
            .unwrap()
            .to_string(),
        "interface=eth0,ens.*"
    );
}

#[test]
fn nothing_found_names_the_method_and_every_interface_looked_at() {
    let error = pick("interface=wlan.*", Family::V4).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("IPv4 autodetection method \"interface=wlan.*\""),
        "{text}"
    );
    assert!(text.contains("eth9 (down: 192.168.9.5/24)"), "{text}");
    assert!(
        text.contains("eth1 (up: 192.168.50.7/22 fd00:50::7/64)"),
        "{text}"
    );
    let error = select(&autodetect("first-found"), Family::V6, &[], None).unwrap_err();
    assert!(error.to_string().ends_with("looked at: none"), "{error}");
    let only_link_local = vec![interface("eth0", true, &["fe80::2/64", "169.254.0.2/16"])];
    assert!(
        select(
            &autodetect("first-found"),
            Family::V6,
            &only_link_local,
            None
        )
        .is_err()
    );
    assert!(
        select(
            &autodetect("first-found"),
            Family::V4,
            &only_link_local,
            None
        )
        .is_err()
    );
}

#[test]
fn global_unicast_is_gos_definition() {
    for (address, global) in [
        ("10.0.0.1", true),
        ("192.168.1.1", true),
        ("100.64.0.1", true),
        ("127.0.0.1", false),
        ("169.254.1.1", false),
        ("224.0.0.5", false),
        ("255.255.255.255", false),
        ("0.0.0.0", false),
        ("2001:db8::1", true),
        ("fd00::1", true),
        ("fe80::1", false),
        ("::1", false),
        ("ff02::1", false),
        ("::", false),
    ] {
        assert_eq!(
            is_global_unicast(address.parse().unwrap()),
            global,
            "{address}"
        );
    }
}

#[tokio::test]
async fn detect_asks_the_kernel_only_what_the_method_needs() {
    let netlink = FakeNetlink::new();
    netlink.set_interface_addresses(host());
    netlink.set_route_lookup(
        "0.0.0.0/0".parse().unwrap(),
        Some(RouteLookup {
            gateway: Some("10.0.1.1".parse().unwrap()),
            device: "eth0".into(),
            source: Some("10.0.1.6".parse().unwrap()),
        }),
    );
    let found = detect(&netlink, &autodetect("can-reach=8.8.8.8"), Family::V4)
        .await
        .unwrap();
    assert_eq!(found, net("10.0.1.6/24"));
    assert_eq!(
        netlink.calls(),
        vec!["interface_addresses", "route_lookup 8.8.8.8"]
    );
    let explicit = AddressSetting::Explicit("10.5.5.5/24".parse().unwrap());
    detect(&netlink, &explicit, Family::V4).await.unwrap();
    detect(&netlink, &AddressSetting::None, Family::V6)
        .await
        .unwrap();
    assert_eq!(
        netlink.calls().len(),
        2,
        "no kernel call for explicit or none"
    );
    netlink.fail_on("interface_addresses");
    let error = detect(&netlink, &autodetect("first-found"), Family::V4)
        .await
        .unwrap_err();
    assert!(matches!(error, AutodetectError::Netlink { .. }), "{error}");
}
