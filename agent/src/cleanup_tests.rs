//! Unit tests of `cleanup` against the recording fakes of Netlink and Nft, and a temp dir.

use std::{path::Path, sync::Arc};

use ipnet::IpNet;

use super::*;
use crate::{
    install::CniPaths,
    netlink::{NextHop, Route, RouteTarget, fake::FakeNetlink},
    nft::{NftState, fake::FakeNft, render},
};

fn cidr(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn block_route() -> Route {
    Route::main(
        cidr("10.244.1.0/26"),
        RouteTarget::via(vec![NextHop {
            gateway: "10.244.1.0".parse().unwrap(),
            device: VXLAN_DEVICE_V4.to_string(),
            onlink: true,
        }]),
    )
}

/// A node as a running agent leaves it, with things that are not manul's alongside.
async fn node() -> (FakeNetlink, Arc<FakeNft>) {
    let netlink = FakeNetlink::new();
    netlink.add_link("eth0", 1500);
    netlink.add_link("docker0", 1500);
    netlink.add_owned_link("cali0123456789a", Some("container-1"));
    netlink.add_owned_link("calib0b0b0b0b0b", None);
    netlink.add_link(VXLAN_DEVICE_V4, 1450);
    let workload = Route::main(
        cidr("10.244.0.7/32"),
        RouteTarget::Device("cali0123456789a".into()),
    );
    netlink.preload_route(&workload);
    netlink.preload_route(&block_route());
    netlink.preload_route(&Route {
        table: 200,
        ..Route::main(cidr("10.244.9.0/26"), RouteTarget::Blackhole)
    });
    netlink.add_foreign_route(
        &Route::main(cidr("10.0.0.0/8"), RouteTarget::Device("eth0".into())),
        "static",
    );
    let nft = Arc::new(FakeNft::default());
    nft.apply(&render(&NftState::default())).await.unwrap();
    (netlink, nft)
}

fn names(netlink: &FakeNetlink) -> Vec<String> {
    let mut names: Vec<String> = netlink.links().into_iter().map(|l| l.name).collect();
    names.sort();
    names
}

#[tokio::test]
async fn removes_manul_links_routes_and_table_and_nothing_else() {
    let (netlink, nft) = node().await;
    let mut report = CleanupReport::default();
    clean_kernel(&netlink, nft.as_ref(), &[200], &mut report).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(names(&netlink), vec!["docker0", "eth0"]);
    assert!(netlink.routes().is_empty(), "{:?}", netlink.routes());
    let left = netlink.all_routes();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1, "static");
    assert_eq!(nft.list_table().await.unwrap(), None);
    assert_eq!(nft.applied().last().unwrap(), &delete_table_script());
    assert_eq!(report.routes.len(), 3);
    assert_eq!(
        report.links,
        vec!["cali0123456789a", "calib0b0b0b0b0b", VXLAN_DEVICE_V4]
    );
    assert!(report.nft_table);
}

#[tokio::test]
async fn a_table_not_named_is_left_alone() {
    let (netlink, nft) = node().await;
    let mut report = CleanupReport::default();
    clean_kernel(&netlink, nft.as_ref(), &[], &mut report).await;
    let routes = netlink.routes();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].table, 200);
}

#[tokio::test]
async fn a_second_run_finds_nothing_to_do() {
    let (netlink, nft) = node().await;
    clean_kernel(
        &netlink,
        nft.as_ref(),
        &[200],
        &mut CleanupReport::default(),
    )
    .await;
    let applied = nft.applied().len();
    let mut report = CleanupReport::default();
    clean_kernel(&netlink, nft.as_ref(), &[200], &mut report).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.lines().is_empty(), "{:?}", report.lines());
    assert_eq!(
        nft.applied().len(),
        applied,
        "no nft script on an absent table"
    );
}

#[tokio::test]
async fn a_failing_step_is_reported_and_the_others_still_run() {
    let (netlink, nft) = node().await;
    netlink.fail_on("delete_route");
    nft.refuse(Some("Error: Could not process rule"));
    let mut report = CleanupReport::default();
    clean_kernel(&netlink, nft.as_ref(), &[200], &mut report).await;
    assert_eq!(
        names(&netlink),
        vec!["docker0", "eth0"],
        "links still deleted"
    );
    assert!(!report.nft_table);
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert!(errors.iter().any(|e| e.contains("deleting")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("Could not process rule")),
        "{errors:?}"
    );
}

#[test]
fn removes_only_manul_files() {
    let host = tempfile::tempdir().unwrap();
    let paths = CniPaths::new(
        host.path(),
        Path::new("opt/cni/bin"),
        Path::new("etc/cni/net.d"),
    );
    std::fs::create_dir_all(&paths.bin_dir).unwrap();
    std::fs::create_dir_all(&paths.conf_dir).unwrap();
    std::fs::write(paths.plugin(), b"plugin").unwrap();
    std::fs::write(paths.conflist(), b"{}").unwrap();
    std::fs::write(paths.bin_dir.join("portmap"), b"other").unwrap();
    std::fs::write(paths.conf_dir.join("05-other.conflist"), b"{}").unwrap();
    let protos = host.path().join("manul.conf");
    let mut report = CleanupReport::default();
    remove_files(&paths, std::slice::from_ref(&protos), &mut report);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.files, vec![paths.conflist(), paths.plugin()]);
    assert!(paths.bin_dir.join("portmap").exists());
    assert!(paths.conf_dir.join("05-other.conflist").exists());
    assert!(!paths.plugin().exists() && !paths.conflist().exists());
}
