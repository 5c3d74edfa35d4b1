//! Tests of `RealNetlink` against the kernel, inside network namespaces made per test and removed
//! on every exit path. Does I/O and needs root (fails with a message otherwise). The code under
//! test runs on a thread that entered a test "host" namespace, never in the machine's own.

mod support;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, ensure};
use manul_agent::{
    netlink::{
        HOST_SIDE_MAC, LinkDeletion, Netlink, NetlinkError, NextHop, PodInterfaceConfig,
        ROUTE_PROTOCOL, Route, RouteLookup, RouteTarget, RouteWrite, VethRequest,
        real::RealNetlink,
    },
    sysctl::{ProcSysctl, Sysctl, host_interface_sysctls},
};
use manul_netns::enter;
use support::{Netns, add_uplink, field, has_route, require_root, run};

fn veth(host_name: &str, pod: &Netns, mtu: u32) -> VethRequest {
    VethRequest {
        host_name: host_name.to_string(),
        owner: format!("container-of-{host_name}"),
        host_mac: HOST_SIDE_MAC,
        pod_mac: [0x0a, 0x58, 0x0a, 0x0b, 0x0c, 0x0d],
        pod_netns: pod.path(),
        pod_ifname: "eth0".to_string(),
        mtu,
    }
}

#[test]
fn veth_lands_in_the_pod_and_the_pod_side_is_configured() -> Result<()> {
    require_root();
    let (host, pod, other) = (
        Netns::new("agent")?,
        Netns::new("agent")?,
        Netns::new("agent")?,
    );
    // The helper brings lo up; configure_pod_interface must do it in a real pod.
    pod.ip(&["link", "set", "lo", "down"])?;
    let request = veth("cali0123456789a", &pod, 1400);
    let config = PodInterfaceConfig {
        netns: pod.path(),
        ifname: "eth0".to_string(),
        addresses: vec!["10.65.0.5/32".parse()?, "fd00:65::5/128".parse()?],
    };
    let other_request = veth("cali0123456789a", &other, 1400);
    let (config2, pod_path) = (config.clone(), pod.path());
    let (created, configured, read_back) = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        let created = netlink.create_veth(&request).await?;
        let again = netlink.create_veth(&request).await?;
        ensure!(again.index == created.index, "second create_veth differs");
        let error = netlink.create_veth(&other_request).await;
        ensure!(error.is_err(), "same host name for another pod must fail");
        netlink.configure_pod_interface(&config2).await?;
        let configured = netlink.configure_pod_interface(&config2).await?;
        let read_back = netlink.pod_interface(&pod_path, "eth0").await?;
        Ok((created, configured, read_back))
    })?;
    assert_eq!(created.mac, HOST_SIDE_MAC);
    assert_eq!((created.mtu, created.up), (1400, true));
    let host_link = &host.ip_json(&["link", "show", "cali0123456789a"])?[0];
    assert_eq!(field(host_link, "address"), "ee:ee:ee:ee:ee:ee");
    assert_eq!(host_link["mtu"], 1400);
    // The link as the kernel echoed its creation: its index, and the owner set after it.
    assert_eq!(host_link["ifindex"], created.index);
    assert_eq!(created.alias.as_deref(), host_link["ifalias"].as_str());
    let pod_link = &pod.ip_json(&["link", "show", "eth0"])?[0];
    assert_eq!(pod_link["mtu"], 1400);
    assert_eq!(
        pod_link["address"], "0a:58:0a:0b:0c:0d",
        "the pod end has the MAC the request chose"
    );
    assert!(
        other.ip_json(&["link", "show"])?.len() == 1,
        "other ns untouched"
    );

    let addresses = pod.ip_json(&["addr", "show", "eth0"])?;
    let local: Vec<String> = addresses[0]["addr_info"]
        .as_array()
        .ok_or_else(|| anyhow!("no addr_info"))?
        .iter()
        .filter(|info| field(info, "scope") == "global")
        .map(|info| format!("{}/{}", field(info, "local"), info["prefixlen"]))
        .collect();
    assert_eq!(local, ["10.65.0.5/32", "fd00:65::5/128"]);
    let routes = pod.ip_json(&["route"])?;
    assert!(
        has_route(&routes, "169.254.1.1", "scope", "link"),
        "{routes:?}"
    );
    assert!(
        has_route(&routes, "default", "gateway", "169.254.1.1"),
        "{routes:?}"
    );
    let routes6 = pod.ip_json(&["-6", "route"])?;
    assert!(
        has_route(&routes6, "default", "gateway", "fe80::ecee:eeff:feee:eeee"),
        "{routes6:?}"
    );
    assert_eq!(Some(configured.clone()), read_back);
    assert!(configured.has_default_routes);
    assert_eq!(configured.addresses, config.addresses);
    assert_eq!(configured.mtu, 1400);

    let lo = &pod.ip_json(&["link", "show", "lo"])?[0];
    assert!(
        lo["flags"]
            .as_array()
            .is_some_and(|flags| flags.contains(&"UP".into()))
    );

    // A retried ADD with another address converges; deleting the pod end removes the pair,
    // twice is fine.
    let pod_path = pod.path();
    host.run(move || async move {
        let netlink = RealNetlink::new()?;
        let moved = PodInterfaceConfig {
            addresses: vec!["10.65.0.6/32".parse()?],
            ..config
        };
        let reconfigured = netlink.configure_pod_interface(&moved).await?;
        ensure!(
            reconfigured.addresses == moved.addresses,
            "{reconfigured:?}"
        );
        ensure!(reconfigured.has_default_routes);
        netlink.delete_pod_interface(&pod_path, "eth0").await?;
        netlink.delete_pod_interface(&pod_path, "eth0").await?;
        ensure!(netlink.link("cali0123456789a").await?.is_none());
        ensure!(netlink.pod_interface(&pod_path, "eth0").await?.is_none());
        Ok(())
    })
}

#[test]
fn host_routes_carry_proto_manul_and_only_ours_are_listed() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    host.ip(&[
        "route",
        "add",
        "10.70.0.0/24",
        "dev",
        "up0",
        "proto",
        "static",
    ])?;
    host.ip(&[
        "route",
        "add",
        "fd00:70::/64",
        "dev",
        "up0",
        "proto",
        "static",
    ])?;
    let mut ours = vec![
        Route::main(
            "10.65.1.5/32".parse()?,
            RouteTarget::Device("up1".to_string()),
        ),
        Route::main("10.65.1.0/26".parse()?, RouteTarget::Blackhole),
        Route::main(
            "10.66.0.0/26".parse()?,
            RouteTarget::via(vec![NextHop {
                gateway: "10.99.7.7".parse()?,
                device: "up0".to_string(),
                onlink: true,
            }]),
        ),
        Route::main(
            "fd00:65::7/128".parse()?,
            RouteTarget::Device("up1".to_string()),
        ),
        Route::main("fd00:65:1::/122".parse()?, RouteTarget::Blackhole),
    ];
    ours.sort();
    let routes = ours.clone();
    let listed = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        for route in routes.iter().chain(routes.iter()) {
            netlink.replace_route(route).await?;
        }
        let missing_device = Route::main(
            "10.65.9.9/32".parse()?,
            RouteTarget::Device("cali-missing".to_string()),
        );
        ensure!(netlink.replace_route(&missing_device).await.is_err());
        let mut listed = netlink.manul_routes(&[]).await?;
        listed.sort();
        Ok(listed)
    })?;
    assert_eq!(listed, ours);
    let v4 = host.ip_json(&["route", "show", "proto", "109"])?;
    assert_eq!(v4.len(), 3, "{v4:?}");
    assert!(has_route(&v4, "10.65.1.5", "dev", "up1"));
    assert!(has_route(&v4, "10.65.1.5", "scope", "link"));
    assert!(has_route(&v4, "10.65.1.0/26", "type", "blackhole"));
    assert!(has_route(&v4, "10.66.0.0/26", "gateway", "10.99.7.7"));
    let v6 = host.ip_json(&["-6", "route", "show", "proto", "109"])?;
    assert_eq!(v6.len(), 2, "{v6:?}");
    assert!(has_route(&v6, "fd00:65:1::/122", "type", "blackhole"));

    let routes = ours.clone();
    let left = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        // A route that never existed, and a device that does not: both fine.
        let never = Route::main("10.65.2.0/26".parse()?, RouteTarget::Blackhole);
        netlink.delete_route(&never).await?;
        for route in routes.iter().chain(routes.iter()) {
            netlink.delete_route(route).await?;
        }
        Ok(netlink.manul_routes(&[]).await?)
    })?;
    assert!(left.is_empty(), "{left:?}");
    let foreign = host.ip_json(&["route", "show", "proto", "static"])?;
    assert!(
        has_route(&foreign, "10.70.0.0/24", "dev", "up0"),
        "{foreign:?}"
    );
    let foreign6 = host.ip_json(&["-6", "route", "show", "proto", "static"])?;
    assert!(
        has_route(&foreign6, "fd00:70::/64", "dev", "up0"),
        "{foreign6:?}"
    );
    Ok(())
}

#[test]
fn a_batch_of_route_writes_answers_each_write_as_the_single_call_would() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    host.ip(&[
        "route",
        "add",
        "10.71.0.0/24",
        "dev",
        "up0",
        "proto",
        "static",
    ])?;
    let via = |destination: &str| -> Result<Route> {
        Ok(Route::main(
            destination.parse()?,
            RouteTarget::via(vec![NextHop {
                gateway: "10.99.7.7".parse()?,
                device: "up0".to_string(),
                onlink: true,
            }]),
        ))
    };
    // More writes than one send carries, so that the acknowledgements of several sends are
    // matched to their writes.
    let many: Vec<Route> = (0..600)
        .map(|index| via(&format!("10.72.{}.{}/32", index / 256, index % 256)))
        .collect::<Result<_>>()?;
    let (first, again, foreign, missing) = (
        via("10.73.0.0/24")?,
        via("10.73.0.0/24")?,
        via("10.71.0.0/24")?,
        Route::main(
            "10.74.0.0/24".parse()?,
            RouteTarget::Device("cali-gone".into()),
        ),
    );
    let mut writes: Vec<RouteWrite> = many.iter().cloned().map(RouteWrite::Add).collect();
    // A failure at the last request of a send (the one whose answer ends the send) and at
    // the first of the next: the 256th and 257th writes add a route the batch added before.
    writes.insert(255, RouteWrite::Add(many[0].clone()));
    writes.insert(256, RouteWrite::Add(many[1].clone()));
    writes.extend([
        RouteWrite::Add(first.clone()),
        RouteWrite::Add(again),
        RouteWrite::Add(foreign),
        RouteWrite::Add(missing.clone()),
        RouteWrite::Delete(missing),
        RouteWrite::Delete(via("10.75.0.0/24")?),
    ]);
    let results = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        let results: Vec<String> = netlink
            .write_routes(writes)
            .await
            .into_iter()
            .map(|(_, result)| match result {
                Ok(()) => "ok".to_string(),
                Err(NetlinkError::RouteExists { .. }) => "exists".to_string(),
                Err(error) => format!("error: {error}"),
            })
            .collect();
        Ok(results)
    })?;
    let (bulk, rest) = results.split_at(602);
    assert_eq!(bulk[255..257], ["exists", "exists"]);
    assert!(
        bulk[..255]
            .iter()
            .chain(&bulk[257..])
            .all(|result| result == "ok"),
        "{bulk:?}"
    );
    assert_eq!(rest[..3], ["ok", "exists", "exists"]);
    assert!(rest[3].contains("no device cali-gone"), "{rest:?}");
    assert_eq!(rest[4..], ["ok", "ok"]);
    let ours = host.ip_json(&["route", "show", "proto", "109"])?;
    assert_eq!(ours.len(), 601, "the 600 and 10.73.0.0/24");
    assert!(has_route(&ours, "10.72.2.87", "gateway", "10.99.7.7"));
    let statics = host.ip_json(&["route", "show", "proto", "static"])?;
    assert!(
        has_route(&statics, "10.71.0.0/24", "dev", "up0"),
        "{statics:?}"
    );

    let deletions: Vec<RouteWrite> = many.into_iter().map(RouteWrite::Delete).collect();
    let replaced = via("10.73.0.0/24")?;
    let left = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        let mut writes = deletions;
        writes.push(RouteWrite::Replace(replaced));
        for (write, result) in netlink.write_routes(writes).await {
            result.with_context(|| format!("{write:?}"))?;
        }
        Ok(netlink.manul_routes(&[]).await?)
    })?;
    assert_eq!(left, vec![first]);
    Ok(())
}

#[test]
fn missing_namespaces_and_links_read_as_none() -> Result<()> {
    require_root();
    let (host, pod) = (Netns::new("agent")?, Netns::new("agent")?);
    let not_a_netns = tempfile::NamedTempFile::new()?;
    let (pod_path, request) = (pod.path(), veth("calideleted0001", &pod, 1500));
    let plain_file = not_a_netns.path().to_path_buf();
    let pod_name = pod.name().to_string();
    host.run(move || async move {
        let netlink = RealNetlink::new()?;
        netlink.create_veth(&request).await?;
        ensure!(netlink.pod_interface(&pod_path, "eth9").await?.is_none());
        ensure!(netlink.pod_interface(&pod_path, "eth0").await?.is_some());
        ensure!(netlink.pod_interface(&plain_file, "eth0").await?.is_none());
        run("ip", &["netns", "del", &pod_name])?;
        ensure!(netlink.pod_interface(&pod_path, "eth0").await?.is_none());
        netlink.delete_pod_interface(&pod_path, "eth0").await?;
        // The kernel destroys the host end with the namespace (asynchronously).
        let deadline = Instant::now() + Duration::from_secs(10);
        while netlink.link("calideleted0001").await?.is_some() {
            ensure!(Instant::now() < deadline, "host end outlived the namespace");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    })
}

#[test]
fn route_lookup_answers_gateway_device_and_source_as_ip_route_get() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    host.ip(&[
        "route",
        "add",
        "10.50.0.0/16",
        "via",
        "10.99.0.2",
        "dev",
        "up0",
    ])?;
    host.ip(&["route", "add", "blackhole", "10.60.0.0/16"])?;
    host.run(|| async {
        let netlink = RealNetlink::new()?;
        let via = netlink.route_lookup("10.50.1.2".parse()?).await?;
        ensure!(
            via == Some(RouteLookup {
                gateway: Some("10.99.0.2".parse()?),
                device: "up0".into(),
                source: Some("10.99.0.1".parse()?),
            }),
            "{via:?}"
        );
        let connected = netlink.route_lookup("10.99.0.7".parse()?).await?;
        ensure!(
            connected
                .as_ref()
                .map(|lookup| (lookup.gateway, lookup.device.as_str()))
                == Some((None, "up0")),
            "{connected:?}"
        );
        ensure!(netlink.route_lookup("10.60.0.1".parse()?).await?.is_none());
        ensure!(netlink.route_lookup("172.31.0.1".parse()?).await?.is_none());
        Ok(())
    })
}

#[test]
fn manul_route_of_answers_only_our_route_of_exactly_that_prefix() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    host.ip(&["-6", "addr", "add", "fd99::1/64", "dev", "up0", "nodad"])?;
    let ours = ROUTE_PROTOCOL.to_string();
    for route in [
        vec!["route", "add", "10.70.0.5/32", "dev", "up0"],
        vec![
            "route",
            "add",
            "10.70.0.0/26",
            "via",
            "10.99.0.2",
            "dev",
            "up0",
        ],
        vec!["route", "add", "blackhole", "10.70.0.64/26"],
        vec!["-6", "route", "add", "fd70::5/128", "dev", "up0"],
    ] {
        host.ip(&[route.as_slice(), &["proto", ours.as_str()]].concat())?;
    }
    host.ip(&[
        "route",
        "add",
        "10.70.1.0/24",
        "dev",
        "up0",
        "proto",
        "static",
    ])?;
    host.run(|| async {
        let netlink = RealNetlink::new()?;
        let device = RouteTarget::Device("up0".into());
        let via = RouteTarget::via(vec![NextHop {
            gateway: "10.99.0.2".parse()?,
            device: "up0".into(),
            onlink: false,
        }]);
        for (prefix, expected) in [
            ("10.70.0.5/32", Some(device.clone())),
            ("10.70.0.0/26", Some(via)),
            ("fd70::5/128", Some(device)),
            // A lookup that lands on a blackhole answers its error, not the route.
            ("10.70.0.64/26", None),
            // The /26 matches 10.70.0.6, and 10.70.0.0/25 does not exist.
            ("10.70.0.6/32", None),
            ("10.70.0.0/25", None),
            // Another protocol's route, and no route at all.
            ("10.70.1.0/24", None),
            ("172.31.0.1/32", None),
        ] {
            let prefix = prefix.parse()?;
            let found = netlink.manul_route_of(prefix).await?;
            let expected = expected.map(|target| Route::main(prefix, target));
            ensure!(found == expected, "{prefix}: {found:?}, want {expected:?}");
        }
        Ok(())
    })
}

#[test]
fn interface_addresses_lists_every_interface_with_its_addresses_and_state() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    // The helper brings lo up; a down interface is what this test lists.
    host.ip(&["link", "set", "lo", "down"])?;
    add_uplink(&host)?;
    host.ip(&["addr", "add", "fd00:99::1/64", "dev", "up0", "nodad"])?;
    host.ip(&["addr", "add", "10.99.1.1/16", "dev", "up0"])?;
    host.ip(&[
        "link", "add", "down0", "type", "veth", "peer", "name", "down1",
    ])?;
    host.ip(&["addr", "add", "10.98.0.1/30", "dev", "down0"])?;
    let interfaces = host.run(|| async { Ok(RealNetlink::new()?.interface_addresses().await?) })?;
    let find = |name: &str| {
        interfaces
            .iter()
            .find(|interface| interface.name == name)
            .ok_or_else(|| anyhow!("{name} missing from {interfaces:?}"))
    };
    let lo = find("lo")?;
    ensure!(interfaces[0].name == "lo", "index order: {interfaces:?}");
    ensure!(!lo.up, "lo was set down: {lo:?}");
    let up0 = find("up0")?;
    ensure!(up0.up, "{up0:?}");
    for address in ["10.99.0.1/24", "10.99.1.1/16", "fd00:99::1/64"] {
        ensure!(
            up0.addresses.contains(&address.parse()?),
            "{address} missing: {up0:?}"
        );
    }
    ensure!(
        up0.addresses
            .iter()
            .any(|address| address.addr().to_string().starts_with("fe80::")),
        "the link-local address is listed too: {up0:?}"
    );
    let down0 = find("down0")?;
    ensure!(
        !down0.up && down0.addresses == vec!["10.98.0.1/30".parse()?],
        "{down0:?}"
    );
    ensure!(find("down1")?.addresses.is_empty());
    Ok(())
}

#[test]
fn links_and_default_route_mtu() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    let before = host.run(|| async { Ok(RealNetlink::new()?.default_route_mtu().await?) })?;
    assert_eq!(before, None);
    host.ip(&["route", "add", "default", "via", "10.99.0.2", "dev", "up0"])?;
    host.run(|| async {
        let netlink = RealNetlink::new()?;
        ensure!(netlink.default_route_mtu().await? == Some(9000));
        let names: Vec<String> = netlink
            .links_with_prefix("up")
            .await?
            .into_iter()
            .map(|link| link.name)
            .collect();
        ensure!(
            names == ["up1", "up0"] || names == ["up0", "up1"],
            "{names:?}"
        );
        ensure!(netlink.link("nope").await?.is_none());
        netlink.delete_link("nope", None).await?;
        netlink.delete_link("up0", None).await?;
        ensure!(netlink.link("up0").await?.is_none());
        ensure!(netlink.link("up1").await?.is_none(), "peer goes with it");
        ensure!(netlink.default_route_mtu().await?.is_none());
        Ok(())
    })
}

#[test]
fn pod_reaches_the_host_through_proxy_arp() -> Result<()> {
    require_root();
    let (host, pod) = (Netns::new("agent")?, Netns::new("agent")?);
    add_uplink(&host)?;
    host.ip(&["route", "add", "default", "via", "10.99.0.2", "dev", "up0"])?;
    let request = veth("calipingpong001", &pod, 1500);
    let config = PodInterfaceConfig {
        netns: pod.path(),
        ifname: "eth0".to_string(),
        addresses: vec!["10.65.3.9/32".parse()?],
    };
    let listener = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        netlink.create_veth(&request).await?;
        netlink.configure_pod_interface(&config).await?;
        // This thread is in the host namespace, and so is its /proc/sys/net.
        let sysctl = ProcSysctl::new();
        for (key, value) in host_interface_sysctls(&request.host_name, false) {
            sysctl.set(&key, &value)?;
        }
        ensure!(
            sysctl
                .get("net/ipv4/conf/calipingpong001/proxy_arp")?
                .as_deref()
                == Some("1")
        );
        let route = Route::main(
            "10.65.3.9/32".parse()?,
            RouteTarget::Device(request.host_name.clone()),
        );
        netlink.replace_route(&route).await?;
        // Bound in the host namespace; the socket keeps it wherever it is used.
        Ok(TcpListener::bind("10.99.0.1:0")?)
    })?;
    let address = listener.local_addr()?;
    let server = std::thread::spawn(move || -> Result<()> {
        let (mut stream, peer) = listener.accept()?;
        ensure!(peer.ip().to_string() == "10.65.3.9", "peer {peer}");
        let mut buffer = [0; 4];
        stream.read_exact(&mut buffer)?;
        stream.write_all(b"pong")?;
        Ok(())
    });
    let pod_path = pod.path();
    let client = std::thread::spawn(move || -> Result<()> {
        enter(&pod_path)?;
        let mut stream = connect_until(address, Instant::now() + Duration::from_secs(10))?;
        stream.write_all(b"ping")?;
        let mut buffer = [0; 4];
        stream.read_exact(&mut buffer)?;
        ensure!(&buffer == b"pong");
        Ok(())
    });
    client
        .join()
        .map_err(|_| anyhow!("client thread panicked"))??;
    server
        .join()
        .map_err(|_| anyhow!("server thread panicked"))??;
    Ok(())
}

/// Connects, retrying until the deadline (ARP through proxy_arp may need a moment).
fn connect_until(address: SocketAddr, deadline: Instant) -> Result<TcpStream> {
    loop {
        match TcpStream::connect_timeout(&address, Duration::from_millis(500)) {
            Ok(stream) => return Ok(stream),
            Err(error) if Instant::now() >= deadline => {
                return Err(error).context(format!("connecting to {address} from the pod"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The kernel runs one dump per netlink socket at a time and answers a second with EBUSY:
/// concurrent CNI requests (the benchmark's 50 ADDs at once) must still all get their answer.
#[test]
fn concurrent_dumps_on_one_connection_all_succeed() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    host.ip(&["route", "add", "default", "via", "10.99.0.2", "dev", "up0"])?;
    let batch: String = (0..2000)
        .map(|index| {
            format!(
                "route add 10.{}.{}.0/24 dev up0 proto static\n",
                100 + index / 256,
                index % 256
            )
        })
        .collect();
    let batch_file = std::env::temp_dir().join(format!("manul-t-routes-{}", std::process::id()));
    std::fs::write(&batch_file, batch)?;
    let loaded = host.ip(&["-batch", &batch_file.display().to_string()]);
    let _ = std::fs::remove_file(&batch_file);
    loaded?;
    host.run(|| async {
        let netlink = std::sync::Arc::new(RealNetlink::new()?);
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..48 {
            let netlink = netlink.clone();
            tasks.spawn(async move {
                match index % 3 {
                    0 => netlink.manul_routes(&[]).await.map(|_| ()),
                    1 => netlink.default_route_mtu().await.map(|_| ()),
                    _ => netlink.links_with_prefix("up").await.map(|_| ()),
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined??;
        }
        Ok(())
    })
}

/// `generic-receive-offload: on|off` of `ethtool -k` for a link of `netns`.
fn gro_state(netns: &Netns, link: &str) -> Result<String> {
    let features = netns.exec_ok(&["ethtool", "-k", link])?;
    features
        .lines()
        .find_map(|line| line.strip_prefix("generic-receive-offload: "))
        .map(|state| state.trim().to_string())
        .ok_or_else(|| anyhow!("no GRO line in ethtool -k {link}: {features}"))
}

#[test]
fn gro_is_turned_on_at_the_host_end_and_only_there() -> Result<()> {
    require_root();
    let (host, pod) = (Netns::new("agent")?, Netns::new("agent")?);
    let request = veth("caligro00000001", &pod, 1500);
    let created = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        Ok(netlink.create_veth(&request).await?)
    })?;
    // A veth starts without GRO: the kernel's default, which the test must see change.
    assert_eq!(gro_state(&host, "caligro00000001")?, "off");
    let (first, again) = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        let first = netlink.enable_gro(&created).await?;
        // Idempotent: a second request changes nothing and succeeds.
        let again = netlink.enable_gro(&created).await?;
        Ok((first, again))
    })?;
    assert!(
        first && again,
        "this kernel has ethtool netlink: {first} {again}"
    );
    assert_eq!(gro_state(&host, "caligro00000001")?, "on");
    assert_eq!(
        gro_state(&pod, "eth0")?,
        "off",
        "the pod's end is the pod's"
    );
    // A link that does not exist is an error naming the request.
    let missing = manul_agent::netlink::LinkInfo {
        index: 999_999,
        name: "caligone".into(),
        mac: HOST_SIDE_MAC,
        mtu: 1500,
        up: true,
        alias: None,
    };
    let error = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        Ok(netlink.enable_gro(&missing).await)
    })?;
    let error = error.expect_err("no interface 999999");
    assert!(error.to_string().contains("rx-gro"), "{error}");
    Ok(())
}

#[test]
fn a_host_link_carries_its_owner_and_another_owner_cannot_delete_it() -> Result<()> {
    require_root();
    let (host, old_pod, new_pod) = (
        Netns::new("agent")?,
        Netns::new("agent")?,
        Netns::new("agent")?,
    );
    let old = VethRequest {
        owner: "old-sandbox".into(),
        ..veth("calisandbox0001", &old_pod, 1500)
    };
    let new = VethRequest {
        owner: "new-sandbox".into(),
        ..veth("calisandbox0001", &new_pod, 1500)
    };
    host.run(move || async move {
        let netlink = RealNetlink::new()?;
        let created = netlink.create_veth(&old).await?;
        ensure!(
            created.alias.as_deref() == Some("old-sandbox"),
            "{created:?}"
        );
        let read = netlink.link("calisandbox0001").await?;
        ensure!(
            read.as_ref().and_then(|link| link.alias.as_deref()) == Some("old-sandbox"),
            "the kernel holds the owner: {read:?}"
        );
        // The new sandbox of the same pod takes the name over.
        netlink.delete_link("calisandbox0001", None).await?;
        netlink.create_veth(&new).await?;
        // The old sandbox's DEL comes late: the link is not its own any more.
        let late = netlink
            .delete_link("calisandbox0001", Some("old-sandbox"))
            .await?;
        ensure!(
            late == LinkDeletion::OwnedByOther("new-sandbox".into()),
            "{late:?}"
        );
        ensure!(netlink.link("calisandbox0001").await?.is_some());
        let own = netlink
            .delete_link("calisandbox0001", Some("new-sandbox"))
            .await?;
        ensure!(own == LinkDeletion::Deleted, "{own:?}");
        ensure!(
            netlink
                .delete_link("calisandbox0001", Some("new-sandbox"))
                .await?
                == LinkDeletion::Gone
        );
        Ok(())
    })
}

#[test]
fn multipath_routes_with_metric_and_table_and_foreign_keys_are_refused() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    host.ip(&["link", "add", "up2", "type", "veth", "peer", "name", "up3"])?;
    host.ip(&["link", "set", "up2", "up"])?;
    host.ip(&["link", "set", "up3", "up"])?;
    host.ip(&["addr", "add", "10.98.0.1/24", "dev", "up2"])?;
    host.ip(&[
        "route",
        "add",
        "10.71.0.0/24",
        "dev",
        "up0",
        "proto",
        "static",
    ])?;
    let ecmp = Route {
        table: 200,
        metric: 100,
        ..Route::main(
            "10.67.0.0/26".parse()?,
            RouteTarget::via(vec![
                NextHop {
                    gateway: "10.99.0.2".parse()?,
                    device: "up0".into(),
                    onlink: false,
                },
                NextHop {
                    gateway: "10.98.0.2".parse()?,
                    device: "up2".into(),
                    onlink: false,
                },
            ]),
        )
    };
    let main_ecmp = Route {
        table: 254,
        metric: 0,
        ..ecmp.clone()
    };
    let foreign_key = Route::main("10.71.0.0/24".parse()?, RouteTarget::Blackhole);
    let (routes, foreign_key_in_thread) =
        (vec![ecmp.clone(), main_ecmp.clone()], foreign_key.clone());
    let listed = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        for route in &routes {
            netlink.add_route(route).await?;
            let again = netlink.add_route(route).await;
            ensure!(
                matches!(again, Err(NetlinkError::RouteExists { .. })),
                "{again:?}"
            );
            netlink.replace_route(route).await?;
        }
        let taken = netlink.add_route(&foreign_key_in_thread).await;
        ensure!(
            matches!(taken, Err(NetlinkError::RouteExists { .. })),
            "{taken:?}"
        );
        let only_main = netlink.manul_routes(&[]).await?;
        ensure!(only_main == vec![routes[1].clone()], "{only_main:?}");
        let mut listed = netlink.manul_routes(&[200]).await?;
        listed.sort();
        Ok(listed)
    })?;
    let mut wanted = vec![ecmp, main_ecmp];
    wanted.sort();
    assert_eq!(listed, wanted);
    let table = host.ip_json(&["route", "show", "table", "200"])?;
    assert_eq!(table.len(), 1, "{table:?}");
    assert_eq!(table[0]["metric"], 100, "{table:?}");
    assert_eq!(
        table[0]["nexthops"].as_array().map(Vec::len),
        Some(2),
        "{table:?}"
    );
    let foreign = host.ip_json(&["route", "show", "10.71.0.0/24"])?;
    assert_eq!(field(&foreign[0], "protocol"), "static", "{foreign:?}");
    Ok(())
}

/// A dump of many datagrams arrives whole, and a dump whose caller gave up (the visiting
/// future dropped mid-way) leaves the dump socket ready: the next dump answers in full, not
/// EBUSY nor with the old dump's routes.
#[test]
fn a_large_dump_arrives_whole_and_an_abandoned_one_leaves_the_socket_ready() -> Result<()> {
    require_root();
    let host = Netns::new("agent")?;
    add_uplink(&host)?;
    const ROUTES: usize = 20_000;
    let writes: Vec<RouteWrite> = (0..ROUTES)
        .map(|index| {
            Ok(RouteWrite::Add(Route::main(
                format!("10.80.{}.{}/32", index / 256, index % 256).parse()?,
                RouteTarget::via(vec![NextHop {
                    gateway: "10.99.7.7".parse()?,
                    device: "up0".to_string(),
                    onlink: true,
                }]),
            )))
        })
        .collect::<Result<_>>()?;
    let (first, abandoned_seen, second) = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        for (write, result) in netlink.write_routes(writes).await {
            result.with_context(|| format!("{write:?}"))?;
        }
        let mut first = 0;
        netlink.visit_manul_routes(&[], &mut |_| first += 1).await?;
        // Gives up after the first routes: the future is dropped at its first pause after
        // them, while the kernel still has most of the dump to send (the reader parses far
        // slower than the visitor counts, so the visitor soon waits for it).
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let mut count = |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        {
            let mut visit = std::pin::pin!(netlink.visit_manul_routes(&[], &mut count));
            loop {
                if let std::task::Poll::Ready(result) = futures::poll!(visit.as_mut()) {
                    result?;
                    break;
                }
                if seen.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        let abandoned_seen = seen.load(std::sync::atomic::Ordering::Relaxed);
        let mut second = 0;
        netlink
            .visit_manul_routes(&[], &mut |_| second += 1)
            .await?;
        Ok((first, abandoned_seen, second))
    })?;
    assert_eq!(first, ROUTES);
    assert!(abandoned_seen < ROUTES, "the dump was not cut short");
    assert_eq!(second, ROUTES);
    Ok(())
}
