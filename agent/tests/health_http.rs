//! The health and metrics HTTP server over loopback, in front of real agent parts (an embedded
//! store, the Node watcher, endpoints on the fake kernel): /readyz is 503 naming the datastore
//! condition until the watcher's first list and watch, then 200; /livez fails once a watched
//! task ends; /metrics parses as OpenMetrics text and carries every manul_* family, with the
//! endpoint, route, IPAM and apply figures after one ADD. Needs no root.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use manul_agent::{
    endpoint::{EndpointRequest, Endpoints},
    health::{
        HealthState, Liveness, Metrics, MetricsSource, Readiness, metrics::observe_applies, serve,
        server::bind,
    },
    netlink::fake::FakeNetlink,
    node::NodeWatcher,
    sysctl::FakeSysctl,
};
use manul_ipam::Ipam;
use manul_store::{Datastore, DatastoreExt, IpPool, Node, embedded::EmbeddedStore};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

/// GET over a fresh connection: (status, body).
async fn get(address: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    Ok((status, body.to_string()))
}

/// Parses OpenMetrics text: every sample line is `name[{labels}] value`, the text ends with
/// "# EOF". Returns (series with labels, value).
fn parse_metrics(text: &str) -> Result<Vec<(String, f64)>> {
    ensure!(text.trim_end().ends_with("# EOF"), "no # EOF: {text}");
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').context(line.to_string())?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("value of {line:?}"))?;
        let name = series.split('{').next().unwrap_or_default();
        ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            ensure!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "bad labels in {line:?}"
            );
        }
        samples.push((series.to_string(), value));
    }
    Ok(samples)
}

fn sample(samples: &[(String, f64)], series: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(name, _)| name == series)
        .map(|(_, value)| *value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_livez_and_metrics_answer_over_loopback() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Datastore> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"))?);
    Ipam::new(store.clone())
        .create_pool(&IpPool::new("pool", "10.71.0.0/16".parse()?))
        .await?;
    store
        .create_resource(&Node {
            name: "n1".into(),
            ..Default::default()
        })
        .await?;
    let netlink = Arc::new(FakeNetlink::new());
    netlink.set_default_route_mtu(Some(1500));
    let endpoints = Arc::new(Endpoints::new(
        "n1".into(),
        store.clone(),
        netlink,
        Arc::new(FakeSysctl::new()),
    ));
    let metrics = Arc::new(Metrics::new());
    observe_applies(&endpoints, &metrics).await;
    let (readiness, liveness) = (Readiness::new(), Liveness::new());
    let watcher = NodeWatcher::new(store.clone(), "n1", readiness.clone());
    let reconciler = tokio::spawn(std::future::pending::<()>());
    liveness.watch("reconciler", reconciler.abort_handle());

    let listener = bind("127.0.0.1:0".parse()?).await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(serve(
        listener,
        HealthState {
            readiness: readiness.clone(),
            liveness,
            metrics: metrics.clone(),
            source: Some(endpoints.clone() as Arc<dyn MetricsSource>),
        },
    ));

    let (status, body) = get(address, "/readyz").await?;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("datastore: "),
        "the failing condition is named: {body}"
    );

    let watch = tokio::spawn(watcher.run());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(address, "/readyz").await?;
        if status == 200 {
            assert_eq!(body, "ready\n");
            break;
        }
        if Instant::now() > deadline {
            bail!("/readyz stayed {status}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    readiness.require("bgp", "bgpd is not up");
    let (status, body) = get(address, "/readyz").await?;
    assert_eq!(status, 503);
    assert!(body.contains("bgp: bgpd is not up"), "{body}");
    assert!(!body.contains("datastore"), "{body}");

    assert_eq!(get(address, "/livez").await?, (200, "alive\n".to_string()));

    let netns: PathBuf = dir.path().join("netns-c1");
    std::fs::write(&netns, b"")?;
    endpoints
        .add(&EndpointRequest {
            container_id: "c1".into(),
            netns: Some(netns),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: "p1".into(),
            network_name: "manul".into(),
            assign_ipv4: true,
            ..Default::default()
        })
        .await?;
    let (status, text) = get(address, "/metrics").await?;
    assert_eq!(status, 200, "{text}");
    for name in [
        "manul_endpoints",
        "manul_routes_programmed",
        "manul_apply_duration_seconds",
        "manul_bgp_peers",
        "manul_bgp_prefixes",
        "manul_ipam_blocks",
        "manul_ipam_addresses_in_use",
        "manul_reconcile_refused_deletions",
        "manul_lost_routes_rewritten",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }
    let samples = parse_metrics(&text)?;
    assert_eq!(sample(&samples, "manul_endpoints"), Some(1.0), "{text}");
    assert_eq!(
        sample(&samples, "manul_routes_programmed{kind=\"pod\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&samples, "manul_ipam_blocks"), Some(1.0), "{text}");
    assert_eq!(
        sample(&samples, "manul_ipam_addresses_in_use"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&samples, "manul_reconcile_refused_deletions_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&samples, "manul_lost_routes_rewritten_total"),
        Some(0.0),
        "{text}"
    );
    let applies = sample(&samples, "manul_apply_duration_seconds_count").unwrap_or(0.0);
    assert!(applies >= 1.0, "the ADD's applies are observed: {text}");

    reconciler.abort();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(address, "/livez").await?;
        if status == 503 {
            assert!(body.contains("reconciler"), "{body}");
            break;
        }
        if Instant::now() > deadline {
            bail!("/livez stayed {status} after the reconciler ended");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watch.abort();
    server.abort();
    Ok(())
}
