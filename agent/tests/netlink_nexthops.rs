//! manul's gateway routes name kernel next-hop objects (agent/src/netlink/real/nexthops.rs):
//! made once per set of next hops, adopted after a restart, made again when the kernel lost
//! them or gave their id to another owner, deleted once no route names them, and read back
//! the same with `nexthop_compat_mode` off. Needs root; each test makes its own namespace.

mod support;

use anyhow::{Result, ensure};
use manul_agent::netlink::{Netlink, NextHop, Route, RouteTarget, RouteWrite, real::RealNetlink};
use serde_json::Value;
use support::{Netns, add_uplink, require_root};

/// up0 (10.99.0.1/24, fd99::1/64) and up2 (10.98.0.1/24), both up.
fn node() -> Result<Netns> {
    let host = Netns::new("nexthop")?;
    add_uplink(&host)?;
    host.ip(&["addr", "add", "fd99::1/64", "dev", "up0", "nodad"])?;
    host.ip(&["link", "add", "up2", "type", "veth", "peer", "name", "up3"])?;
    host.ip(&["link", "set", "up2", "up"])?;
    host.ip(&["link", "set", "up3", "up"])?;
    host.ip(&["addr", "add", "10.98.0.1/24", "dev", "up2"])?;
    Ok(host)
}

fn hop(gateway: &str, device: &str) -> NextHop {
    NextHop {
        gateway: gateway.parse().unwrap(),
        device: device.into(),
        onlink: false,
    }
}

/// 100 routes through 10.99.0.2, one ECMP route over both uplinks, one IPv6 route and one
/// onlink route.
fn routes() -> Vec<Route> {
    let mut routes: Vec<Route> = (0..100)
        .map(|index| {
            Route::main(
                format!("10.72.{index}.0/24").parse().unwrap(),
                RouteTarget::via(vec![hop("10.99.0.2", "up0")]),
            )
        })
        .collect();
    routes.push(Route::main(
        "10.67.0.0/26".parse().unwrap(),
        RouteTarget::via(vec![hop("10.99.0.3", "up0"), hop("10.98.0.3", "up2")]),
    ));
    routes.push(Route::main(
        "fd10::/64".parse().unwrap(),
        RouteTarget::via(vec![hop("fd99::2", "up0")]),
    ));
    routes.push(Route::main(
        "10.66.0.0/26".parse().unwrap(),
        RouteTarget::via(vec![NextHop {
            onlink: true,
            ..hop("192.0.2.9", "up0")
        }]),
    ));
    routes.sort();
    routes
}

/// `ip nexthop` objects of protocol manul (109), by id.
fn our_nexthops(host: &Netns) -> Result<Vec<Value>> {
    Ok(host
        .ip_json(&["nexthop", "show"])?
        .into_iter()
        .filter(|object| {
            object["protocol"] == "manul"
                || object["protocol"] == "109"
                || object["protocol"] == 109
        })
        .collect())
}

fn id_of(object: &Value) -> u64 {
    object["id"].as_u64().unwrap_or(0)
}

/// The nhid of every route of ours, IPv4 and IPv6.
fn route_nexthop_ids(host: &Netns) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for family in ["-4", "-6"] {
        let output = host.ip(&[family, "-j", "route", "show", "proto", "109"])?;
        let routes: Vec<Value> = serde_json::from_str(&output)?;
        for route in routes {
            ensure!(
                route.get("nhid").is_some(),
                "a route without an object: {route}"
            );
            ids.push(route["nhid"].as_u64().unwrap_or(0));
        }
    }
    Ok(ids)
}

/// manul's routes as the agent reads them back, sorted.
async fn read_back(netlink: &RealNetlink) -> Result<Vec<Route>> {
    let mut listed = netlink.manul_routes(&[]).await?;
    listed.sort();
    Ok(listed)
}

async fn write_all(netlink: &RealNetlink, routes: &[Route]) -> Result<()> {
    let writes = routes.iter().cloned().map(RouteWrite::Replace).collect();
    for (write, result) in netlink.write_routes(writes).await {
        result.map_err(|error| anyhow::anyhow!("{write:?}: {error}"))?;
    }
    Ok(())
}

#[test]
fn gateway_routes_name_one_object_per_set_and_read_back_as_written() -> Result<()> {
    require_root();
    let host = node()?;
    let wanted = routes();
    let written = wanted.clone();
    let listed = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        write_all(&netlink, &written).await?;
        let listed = read_back(&netlink).await?;
        Ok(listed)
    })?;
    assert_eq!(listed, wanted);
    let ids = route_nexthop_ids(&host)?;
    assert_eq!(ids.len(), wanted.len());
    let objects = our_nexthops(&host)?;
    // 10.99.0.2, the group and its two members, fd99::2, 192.0.2.9 onlink.
    assert_eq!(objects.len(), 6, "{objects:?}");
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "one object per set: {ids:?}");
    let groups = objects
        .iter()
        .filter(|object| object.get("group").is_some())
        .count();
    assert_eq!(groups, 1, "{objects:?}");

    // With the compatibility mode off the kernel names only the objects in its dumps.
    host.run(|| async {
        std::fs::write("/proc/sys/net/ipv4/nexthop_compat_mode", "0")?;
        Ok(())
    })?;
    let wanted_again = wanted.clone();
    let listed = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        let listed = read_back(&netlink).await?;
        ensure!(listed == wanted_again, "{listed:#?}");
        Ok(listed)
    })?;
    assert_eq!(listed.len(), wanted.len());
    Ok(())
}

#[test]
fn a_restart_adopts_the_objects_and_a_lost_or_taken_id_is_made_anew() -> Result<()> {
    require_root();
    let host = node()?;
    let wanted = routes();
    let written = wanted.clone();
    host.run(move || async move {
        write_all(&RealNetlink::new()?, &written).await?;
        Ok(())
    })?;
    let before = our_nexthops(&host)?;

    // A new process writing the same routes makes no object.
    let written = wanted.clone();
    host.run(move || async move {
        write_all(&RealNetlink::new()?, &written).await?;
        Ok(())
    })?;
    assert_eq!(our_nexthops(&host)?, before);

    // The object of 10.99.0.2 is deleted (with its routes, by the kernel) and its id given to
    // another owner's object: the same process writes the routes again through an object of
    // its own, and the other owner's stays.
    let single = route_nexthop_ids(&host)?
        .into_iter()
        .fold(
            std::collections::HashMap::<u64, usize>::new(),
            |mut counts, id| {
                *counts.entry(id).or_default() += 1;
                counts
            },
        )
        .into_iter()
        .max_by_key(|(_, count)| *count)
        .map(|(id, _)| id)
        .unwrap_or(0);
    let written = wanted.clone();
    let host_name = host.name().to_string();
    let single_text = single.to_string();
    host.run(move || async move {
        let netlink = RealNetlink::new()?;
        write_all(&netlink, &written).await?;
        support::run(
            "ip",
            &["-n", &host_name, "nexthop", "del", "id", &single_text],
        )?;
        support::run(
            "ip",
            &[
                "-n",
                &host_name,
                "nexthop",
                "add",
                "id",
                &single_text,
                "via",
                "10.98.0.9",
                "dev",
                "up2",
                "proto",
                "static",
            ],
        )?;
        write_all(&netlink, &written).await?;
        let listed = read_back(&netlink).await?;
        ensure!(listed == written, "{listed:#?}");
        Ok(())
    })?;
    let ids = route_nexthop_ids(&host)?;
    assert!(
        !ids.contains(&single),
        "a route names the other owner's object: {ids:?}"
    );
    let foreign = host.ip_json(&["nexthop", "show", "id", &single.to_string()])?;
    assert_eq!(foreign[0]["gateway"], "10.98.0.9", "{foreign:?}");
    Ok(())
}

#[test]
fn objects_no_route_names_are_deleted_and_other_owners_objects_stay() -> Result<()> {
    require_root();
    let host = node()?;
    host.ip(&[
        "nexthop",
        "add",
        "id",
        "900",
        "via",
        "10.99.0.9",
        "dev",
        "up0",
        "proto",
        "static",
    ])?;
    let wanted = routes();
    let (kept, gone): (Vec<Route>, Vec<Route>) = wanted
        .iter()
        .cloned()
        .partition(|route| route.destination.to_string().starts_with("10.72."));
    let left = host.run(move || async move {
        let netlink = RealNetlink::new()?;
        write_all(&netlink, &wanted).await?;
        // Deleted by key: the routes name objects, not next hops.
        let deletions = gone.into_iter().map(RouteWrite::Delete).collect();
        for (write, result) in netlink.write_routes(deletions).await {
            result.map_err(|error| anyhow::anyhow!("{write:?}: {error}"))?;
        }
        let left = read_back(&netlink).await?;
        Ok(left)
    })?;
    assert_eq!(left, kept);
    let objects = our_nexthops(&host)?;
    assert_eq!(
        objects.len(),
        1,
        "only 10.99.0.2's object stays: {objects:?}"
    );
    assert_eq!(objects[0]["gateway"], "10.99.0.2");
    let ids = route_nexthop_ids(&host)?;
    assert!(ids.iter().all(|id| *id == id_of(&objects[0])), "{ids:?}");
    let foreign = host.ip_json(&["nexthop", "show", "id", "900"])?;
    assert_eq!(foreign.len(), 1, "the other owner's object stays");
    Ok(())
}

#[test]
fn routes_the_kernel_removes_with_a_carrier_are_announced_and_written_spelled_out() -> Result<()> {
    require_root();
    let host = node()?;
    let wanted = routes();
    let name = host.name().to_string();
    let carrier =
        move |state: &str| support::run("ip", &["-n", &name, "link", "set", "up1", state]);
    let (written, carrier_in_thread) = (wanted.clone(), carrier.clone());
    host.run(move || async move {
        let netlink = RealNetlink::new()?;
        let lost = netlink
            .lost_routes()
            .ok_or_else(|| anyhow::anyhow!("no notice of lost routes"))?;
        write_all(&netlink, &written).await?;
        carrier_in_thread("down")?;
        tokio::time::timeout(std::time::Duration::from_secs(10), lost.notified())
            .await
            .map_err(|_| anyhow::anyhow!("no notice within 10 s of the carrier's loss"))?;
        let left = netlink.manul_routes(&[]).await?;
        ensure!(
            !left
                .iter()
                .any(|route| route.destination.to_string() == "10.72.5.0/24"),
            "the kernel kept a route naming an object on a device without carrier: {left:?}"
        );
        // What the reconcile does on the notice: every route is back, spelled out.
        write_all(&netlink, &written).await?;
        let listed = read_back(&netlink).await?;
        ensure!(listed == written, "{listed:#?}");
        Ok(())
    })?;
    let down = host.ip(&["route", "show", "10.72.5.0/24"])?;
    assert!(
        down.contains("linkdown") && !down.contains("nhid"),
        "{down}"
    );
    // With the carrier back the same routes carry traffic again, with no write.
    carrier("up")?;
    let up = host.ip(&["route", "show", "10.72.5.0/24"])?;
    assert!(
        up.contains("via 10.99.0.2") && !up.contains("linkdown"),
        "{up}"
    );
    Ok(())
}
