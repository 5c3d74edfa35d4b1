//! Golden tests of the reconciler: each `agent/testdata/reconcile/<case>.json` holds the inputs
//! (the store's endpoints and blocks, the kernel's links and routes), and
//! `<case>.expected` the kernel operations the pass makes against the recording fake, followed
//! by the refusals. `MANUL_BLESS=1 cargo test -p manul-agent golden` rewrites the expected
//! files; review the diff before committing it. No I/O beyond reading those files.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use ipnet::IpNet;
use manul_store::WorkloadEndpoint;
use serde::Deserialize;

use super::{Inputs, ReconcileReport, apply_plan, plan};
use crate::{
    dataplane::Dataplane,
    netlink::{LinkInfo, NextHop, Route, RouteTarget, fake::FakeNetlink},
    sysctl::FakeSysctl,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    endpoints: Vec<CaseEndpoint>,
    #[serde(default)]
    elsewhere: BTreeMap<String, String>,
    #[serde(default)]
    blocks: Vec<IpNet>,
    #[serde(default)]
    links: Vec<CaseLink>,
    /// Routes of manul's in the kernel, as `ip route` prints them.
    #[serde(default)]
    routes: Vec<String>,
    /// [route, protocol] of routes that are not manul's.
    #[serde(default)]
    foreign_routes: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseEndpoint {
    container: String,
    interface: String,
    ips: Vec<IpNet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseLink {
    name: String,
    owner: Option<String>,
}

/// Parses a route as `Route`'s Display prints it.
fn parse_route(text: &str) -> Route {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (target, destination, mut rest) = if words[0] == "blackhole" {
        (RouteTarget::Blackhole, words[1], &words[2..])
    } else {
        (RouteTarget::via(Vec::new()), words[0], &words[1..])
    };
    let mut route = Route::main(destination.parse().expect(text), target);
    let mut next_hops = Vec::new();
    while let Some(word) = rest.first() {
        match *word {
            "dev" => {
                route.target = RouteTarget::Device(rest[1].to_string());
                rest = &rest[2..];
            }
            "nexthop" => rest = &rest[1..],
            "via" => {
                next_hops.push(NextHop {
                    gateway: rest[1].parse().expect(text),
                    device: rest[3].to_string(),
                    onlink: rest.get(4) == Some(&"onlink"),
                });
                rest = &rest[if rest.get(4) == Some(&"onlink") { 5 } else { 4 }..];
            }
            "table" => {
                route.table = rest[1].parse().expect(text);
                rest = &rest[2..];
            }
            "metric" => {
                route.metric = rest[1].parse().expect(text);
                rest = &rest[2..];
            }
            other => panic!("{text}: unexpected {other:?}"),
        }
    }
    if !next_hops.is_empty() {
        route.target = RouteTarget::via(next_hops);
    }
    route
}

async fn run(case: &Case) -> String {
    let fake = Arc::new(FakeNetlink::new());
    for link in &case.links {
        fake.add_owned_link(&link.name, link.owner.as_deref());
    }
    for route in &case.routes {
        fake.preload_route(&parse_route(route));
    }
    for (route, protocol) in &case.foreign_routes {
        fake.add_foreign_route(&parse_route(route), protocol);
    }
    let dataplane = Dataplane::new(fake.clone(), Arc::new(FakeSysctl::new()));
    let inputs = Inputs {
        endpoints: case
            .endpoints
            .iter()
            .map(|endpoint| WorkloadEndpoint {
                name: format!("node-cni-{}-eth0", endpoint.container),
                container_id: endpoint.container.clone(),
                interface_name: endpoint.interface.clone(),
                ip_networks: endpoint.ips.clone(),
                ..Default::default()
            })
            .collect(),
        affine_blocks: case.blocks.clone(),
        elsewhere: case.elsewhere.clone(),
        links: fake
            .links()
            .into_iter()
            .filter(|link: &LinkInfo| link.name.starts_with("cali"))
            .collect(),
        routes: fake.routes(),
        ipv6_in_use: case
            .blocks
            .iter()
            .any(|block| matches!(block, IpNet::V6(_))),
    };
    let plan = plan(&inputs);
    let mut report = ReconcileReport::default();
    dataplane.routes.lock().await.begin_resync();
    apply_plan(
        fake.as_ref(),
        &dataplane,
        &plan,
        inputs.routes.clone().into(),
        &mut report,
    )
    .await;
    let mut lines = fake.calls();
    lines.extend(
        plan.refusals
            .iter()
            .map(|refusal| format!("refused: {refusal}")),
    );
    lines.extend(report.errors.iter().map(|error| format!("error: {error}")));
    lines.push(String::new());
    lines.join("\n")
}

#[tokio::test]
async fn golden_cases() {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/reconcile");
    let bless = std::env::var_os("MANUL_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("testdata/reconcile")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no golden cases in {}",
        directory.display()
    );
    let mut failures = Vec::new();
    for path in cases {
        let case: Case = serde_json::from_str(&std::fs::read_to_string(&path).expect("case"))
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let actual = run(&case).await;
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual).expect("writing the expected file");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
