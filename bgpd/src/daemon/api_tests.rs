//! Tests of the gRPC service against a real `Speaker` and RIB (no listener: listen address
//! "none"; peers passive, so no traffic): validation errors name their field, status codes,
//! peers listed, prefixes and the best-path stream. No I/O beyond tasks and channels.

use manul_proto::bgpd::{self as proto, bgpd_server::Bgpd};
use tokio_stream::StreamExt;
use tonic::{Code, Request};

use super::{api::BgpdService, speaker::Speaker};

fn global() -> proto::SetGlobalRequest {
    proto::SetGlobalRequest {
        global: Some(proto::Global {
            asn: 65001,
            router_id: "192.0.2.1".into(),
            listen_addresses: vec!["none".into()],
            ..Default::default()
        }),
    }
}

fn peer(address: &str) -> proto::AddPeerRequest {
    proto::AddPeerRequest {
        peer: Some(proto::Peer {
            address: address.into(),
            asn: 65002,
            passive: true,
            families: vec!["ipv4-unicast".into()],
            import: Some(proto::Policy {
                default_accept: true,
                rules: Vec::new(),
            }),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn errors_and_codes() {
    let service = BgpdService::new(Speaker::new());
    let error = service
        .watch_best_paths(Request::new(proto::WatchBestPathsRequest {}))
        .await
        .err()
        .unwrap();
    assert_eq!(error.code(), Code::FailedPrecondition);
    let error = service
        .get_global(Request::new(proto::GetGlobalRequest {}))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);

    let mut bad = global();
    bad.global.as_mut().unwrap().router_id = "x".into();
    let error = service.set_global(Request::new(bad)).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with("global.router_id:"),
        "{}",
        error.message()
    );
    service.set_global(Request::new(global())).await.unwrap();

    let mut no_asn = peer("192.0.2.2");
    no_asn.peer.as_mut().unwrap().asn = 0;
    let error = service.add_peer(Request::new(no_asn)).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "peer.asn: missing")
    );

    let mut bad_rule = peer("192.0.2.2");
    bad_rule
        .peer
        .as_mut()
        .unwrap()
        .import
        .as_mut()
        .unwrap()
        .rules
        .push(proto::PolicyRule {
            prefixes: vec!["10.0.0.0/8 ge 40".into()],
            ..Default::default()
        });
    let error = service.add_peer(Request::new(bad_rule)).await.unwrap_err();
    assert!(
        error
            .message()
            .starts_with("peer.import.rule[0].prefixes[0]:"),
        "{}",
        error.message()
    );

    service
        .add_peer(Request::new(peer("192.0.2.2")))
        .await
        .unwrap();
    let error = service
        .add_peer(Request::new(peer("192.0.2.2")))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists);
    let delete = proto::DeletePeerRequest {
        address: "192.0.2.9".into(),
    };
    let error = service.delete_peer(Request::new(delete)).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    let prefixes = proto::AddPrefixesRequest {
        prefixes: vec![proto::OriginatedPrefix {
            prefix: "10.0.0.1/24".into(),
            ..Default::default()
        }],
    };
    let error = service
        .add_prefixes(Request::new(prefixes))
        .await
        .unwrap_err();
    assert!(
        error.message().starts_with("prefixes[0].prefix:"),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn peers_prefixes_and_watch() {
    let service = BgpdService::new(Speaker::new());
    service.set_global(Request::new(global())).await.unwrap();
    service
        .add_peer(Request::new(peer("192.0.2.2")))
        .await
        .unwrap();
    service
        .add_peer(Request::new(peer("192.0.2.3")))
        .await
        .unwrap();

    let list = service
        .list_peers(Request::new(proto::ListPeersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.peers.len(), 2);
    let first = &list.peers[0];
    let settings = first.peer.as_ref().unwrap();
    assert_eq!(
        (settings.address.as_str(), settings.asn),
        ("192.0.2.2", 65002)
    );
    assert_eq!(settings.hold_time, Some(90));
    assert_ne!(first.state, "Established");
    assert_eq!(first.uptime_seconds, 0);

    let update = proto::UpdatePeerRequest {
        peer: peer("192.0.2.3").peer.map(|mut p| {
            p.asn = 65003;
            p
        }),
    };
    service.update_peer(Request::new(update)).await.unwrap();
    let only = proto::ListPeersRequest {
        address: "192.0.2.3".into(),
    };
    let list = service
        .list_peers(Request::new(only))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.peers[0].peer.as_ref().unwrap().asn, 65003);
    let delete = proto::DeletePeerRequest {
        address: "192.0.2.3".into(),
    };
    service.delete_peer(Request::new(delete)).await.unwrap();
    let unknown = proto::ListPeersRequest {
        address: "192.0.2.3".into(),
    };
    let error = service.list_peers(Request::new(unknown)).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    let prefixes = proto::AddPrefixesRequest {
        prefixes: (0..1000)
            .map(|i| proto::OriginatedPrefix {
                prefix: format!("10.{}.{}.0/24", i / 256, i % 256),
                communities: vec!["65001:1".into()],
                large_communities: vec!["65001:2:3".into()],
            })
            .collect(),
    };
    service.add_prefixes(Request::new(prefixes)).await.unwrap();
    let delete = proto::DeletePrefixesRequest {
        prefixes: vec!["10.0.0.0/24".into()],
    };
    service.delete_prefixes(Request::new(delete)).await.unwrap();
    let listed = service
        .list_prefixes(Request::new(proto::ListPrefixesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .prefixes;
    assert_eq!(listed.len(), 999);
    assert_eq!(
        listed[0],
        proto::OriginatedPrefix {
            prefix: "10.0.1.0/24".into(),
            communities: vec!["65001:1".into()],
            large_communities: vec!["65001:2:3".into()],
        }
    );

    // Originated routes are not reported as learned best paths: the snapshot is empty.
    let mut stream = service
        .watch_best_paths(Request::new(proto::WatchBestPathsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.snapshot_done);
    assert!(first.paths.is_empty());

    let global = service
        .get_global(Request::new(proto::GetGlobalRequest {}))
        .await
        .unwrap();
    assert_eq!(
        global.into_inner().global.unwrap().listen_addresses,
        vec!["none".to_string()]
    );
}

/// The state of the one peer of `service`.
async fn peer_state(service: &BgpdService) -> String {
    service
        .list_peers(Request::new(proto::ListPeersRequest::default()))
        .await
        .map(|list| list.into_inner().peers)
        .unwrap_or_default()
        .first()
        .map(|peer| peer.state.clone())
        .unwrap_or_default()
}

/// Polls until the one peer of `service` is in `state` (10 s at most).
async fn wait_for_state(service: &BgpdService, state: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = peer_state(service).await;
        if now == state {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the peer stayed {now:?}, not {state:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A node that joins a mesh is configured a moment after the others were: their first
/// connection arrives before it knows them, even before its agent set the global settings.
/// B listens early, holds that connection and gives it to the peer when it is added, so the
/// session comes up at once instead of after A's ConnectRetry (60 s here, far past the 10 s
/// the test waits). Loopback addresses only (127.0.0.2, 127.0.0.3).
#[tokio::test]
async fn a_connection_that_arrives_before_its_peer_is_added_is_taken_when_it_is() {
    let port = std::net::TcpListener::bind("127.0.0.3:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let speaker = |asn: u32, router_id: &str, listen: &str| proto::SetGlobalRequest {
        global: Some(proto::Global {
            asn,
            router_id: router_id.into(),
            listen_addresses: vec![listen.into()],
            listen_port: u32::from(port),
            ..Default::default()
        }),
    };
    let b_speaker = Speaker::new();
    let (a, b) = (
        BgpdService::new(Speaker::new()),
        BgpdService::new(b_speaker.clone()),
    );
    let early = std::net::SocketAddr::from(([127, 0, 0, 3], port));
    b_speaker.listen_early(&[early]).await.unwrap();
    a.set_global(Request::new(speaker(65001, "192.0.2.1", "none")))
        .await
        .unwrap();
    let mut toward_b = peer("127.0.0.3");
    if let Some(settings) = toward_b.peer.as_mut() {
        settings.port = u32::from(port);
        settings.local_address = "127.0.0.2".into();
        settings.passive = false;
        settings.connect_retry = Some(60);
    }
    a.add_peer(Request::new(toward_b)).await.unwrap();
    // A's connection is up and its OPEN sent while B is not even configured.
    wait_for_state(&a, "OpenSent").await;
    b.set_global(Request::new(speaker(65002, "192.0.2.2", "127.0.0.3")))
        .await
        .unwrap();

    let mut toward_a = peer("127.0.0.2");
    if let Some(settings) = toward_a.peer.as_mut() {
        settings.asn = 65001;
    }
    b.add_peer(Request::new(toward_a)).await.unwrap();
    wait_for_state(&a, "Established").await;
    wait_for_state(&b, "Established").await;
}
