//! Unit tests of the route applier against the recording netlink fake: ownership, sources,
//! the hold, failures, writes started in the background, and a proptest of the merge.

mod applier {
    use super::super::*;
    use crate::netlink::{NextHop, fake::FakeNetlink};

    fn blackhole(destination: &str) -> Route {
        Route::main(destination.parse().unwrap(), RouteTarget::Blackhole)
    }

    fn device(destination: &str, device: &str) -> Route {
        Route::main(
            destination.parse().unwrap(),
            RouteTarget::Device(device.to_string()),
        )
    }

    #[tokio::test]
    async fn a_route_of_another_protocol_is_never_overwritten() {
        let fake = Arc::new(FakeNetlink::new());
        fake.add_foreign_route(&blackhole("10.0.0.0/26"), "static");
        let mut applier = RouteApplier::new(fake.clone());
        applier.set_source(RouteSource::BlockBlackholes, [blackhole("10.0.0.0/26")]);
        let report = applier.apply().await;
        assert!(matches!(
            report.errors.as_slice(),
            [NetlinkError::RouteNotOurs { .. }]
        ));
        assert_eq!(
            fake.all_routes(),
            vec![(blackhole("10.0.0.0/26"), "static".to_string())]
        );
        assert!(
            !fake
                .calls()
                .iter()
                .any(|call| call.starts_with("replace_route"))
        );
    }

    /// Polls `done` until it holds, for at most five seconds.
    async fn eventually(mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn a_started_write_runs_on_while_the_caller_goes_on_and_is_recorded_once_settled() {
        let fake = Arc::new(FakeNetlink::new());
        let mut applier = RouteApplier::new(fake.clone());
        let route = blackhole("10.0.0.0/26");
        fake.close_gate("add_route");
        applier.upsert(RouteSource::BlockBlackholes, route.clone());
        // Returns while the kernel (the gate) still holds the write.
        applier.start_apply_keys(&[route.key()]).await;
        eventually(|| fake.arrived_at_gate("add_route") == 1).await;
        // Not done: nothing to record, and no waiting for it.
        let report =
            tokio::time::timeout(std::time::Duration::from_secs(5), applier.settle_if_done())
                .await
                .expect("settle_if_done does not wait for a write in flight");
        assert_eq!(report.added, 0);
        assert!(applier.applied().is_empty());
        let done = applier.write_done();
        fake.open_gate("add_route");
        tokio::time::timeout(std::time::Duration::from_secs(5), done.notified())
            .await
            .expect("the write says when it is done");
        let report = applier.settle_if_done().await;
        assert_eq!((report.added, report.errors.len()), (1, 0));
        assert_eq!(applier.applied(), vec![route.clone()]);
        assert!(applier.in_sync());
        assert_eq!(fake.routes(), vec![route]);
    }

    #[tokio::test]
    async fn a_started_write_is_recorded_before_the_next_write_of_its_key() {
        let fake = Arc::new(FakeNetlink::new());
        fake.add_link("cali1", 1500);
        let mut applier = RouteApplier::new(fake.clone());
        let first = blackhole("10.0.0.0/26");
        applier.upsert(RouteSource::BlockBlackholes, first.clone());
        applier.start_apply_keys(&[first.key()]).await;
        // The key changes while its first write may still run: the second start settles the
        // first, so it replaces the route of ours instead of adding over it (EEXIST).
        let second = device("10.0.0.0/26", "cali1");
        applier.upsert(RouteSource::BlockBlackholes, second.clone());
        applier.start_apply_keys(&[second.key()]).await;
        let report = applier.settle().await;
        assert_eq!((report.replaced, report.errors.len()), (1, 0));
        assert_eq!(fake.routes(), vec![second.clone()]);
        assert_eq!(applier.applied(), vec![second]);
        let writes: Vec<String> = fake
            .calls()
            .into_iter()
            .filter(|call| call.contains("_route"))
            .collect();
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert!(writes[0].starts_with("add_route") && writes[1].starts_with("replace_route"));
    }

    #[tokio::test]
    async fn an_apply_settles_a_started_write_first() {
        let fake = Arc::new(FakeNetlink::new());
        let mut applier = RouteApplier::new(fake.clone());
        let route = blackhole("10.0.0.0/26");
        applier.upsert(RouteSource::BlockBlackholes, route.clone());
        applier.start_apply_keys(&[route.key()]).await;
        // The started write is recorded, not written a second time.
        let report = applier.apply().await;
        assert_eq!((report.added, report.replaced), (0, 0));
        assert!(applier.in_sync());
        let adds = fake
            .calls()
            .iter()
            .filter(|call| call.starts_with("add_route"))
            .count();
        assert_eq!(adds, 1);
    }

    #[tokio::test]
    async fn a_leftover_of_ours_is_replaced_and_a_converged_kernel_sees_no_write() {
        let fake = Arc::new(FakeNetlink::new());
        fake.add_link("cali1", 1500);
        fake.add_link("cali2", 1500);
        fake.preload_route(&device("10.0.0.1/32", "cali2"));
        let mut applier = RouteApplier::new(fake.clone());
        applier.set_source(RouteSource::PodRoutes, [device("10.0.0.1/32", "cali1")]);
        let report = applier.apply().await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(fake.routes(), vec![device("10.0.0.1/32", "cali1")]);
        let before = fake.calls().len();
        applier.begin_resync();
        applier.finish_resync(fake.routes().into());
        let report = applier.apply().await;
        assert_eq!((report.added, report.replaced, report.deleted), (0, 0, 0));
        assert_eq!(fake.calls().len(), before);
    }

    #[tokio::test]
    async fn the_earlier_source_wins_a_key_and_removal_falls_back() {
        let fake = Arc::new(FakeNetlink::new());
        fake.add_link("cali1", 1500);
        let mut applier = RouteApplier::new(fake.clone());
        applier.upsert(RouteSource::BlockBlackholes, blackhole("10.0.0.1/32"));
        applier.upsert(RouteSource::PodRoutes, device("10.0.0.1/32", "cali1"));
        assert_eq!(applier.desired(), vec![device("10.0.0.1/32", "cali1")]);
        applier.remove(RouteSource::PodRoutes, device("10.0.0.1/32", "cali1").key());
        assert_eq!(applier.desired(), vec![blackhole("10.0.0.1/32")]);
    }

    #[tokio::test]
    async fn held_gateway_routes_survive_until_the_hold_is_released() {
        let fake = Arc::new(FakeNetlink::new());
        fake.add_link("eth0", 1500);
        let via = Route::main(
            "10.1.0.0/26".parse().unwrap(),
            RouteTarget::via(vec![NextHop {
                gateway: "192.0.2.2".parse().unwrap(),
                device: "eth0".into(),
                onlink: false,
            }]),
        );
        fake.preload_route(&via);
        fake.preload_route(&blackhole("10.0.0.0/26"));
        let mut applier = RouteApplier::new(fake.clone());
        applier.set_hold_gateway_routes(true);
        applier.begin_resync();
        applier.finish_resync(fake.routes().into());
        let report = applier.apply().await;
        assert_eq!(
            report.deleted, 1,
            "the stray blackhole goes, the gateway route stays"
        );
        assert_eq!(fake.routes(), vec![via.clone()]);
        applier.set_hold_gateway_routes(false);
        assert_eq!(applier.apply().await.deleted, 1);
        assert!(fake.routes().is_empty());
    }

    #[tokio::test]
    async fn failures_stay_pending_and_do_not_stop_the_rest() {
        let fake = Arc::new(FakeNetlink::new());
        let mut applier = RouteApplier::new(fake.clone());
        applier.set_source(
            RouteSource::PodRoutes,
            [device("10.0.0.1/32", "gone"), device("10.0.0.2/32", "gone")],
        );
        applier.set_source(RouteSource::BlockBlackholes, [blackhole("10.0.0.0/26")]);
        let report = applier.apply().await;
        assert_eq!(report.errors.len(), 2);
        assert_eq!(report.added, 1);
        assert!(!applier.in_sync());
    }
}

mod merge {
    //! The applier's merged view against a model that keeps every source's routes in a map of
    //! its own (what the applier did before Bgp's routes moved into the tracker's slots and
    //! targets into a table of ids).

    use proptest::prelude::*;

    use super::super::*;
    use crate::netlink::fake::FakeNetlink;

    const SOURCES: [RouteSource; 4] = [
        RouteSource::PodRoutes,
        RouteSource::BlockBlackholes,
        RouteSource::Vxlan,
        RouteSource::Bgp,
    ];

    #[derive(Clone, Debug)]
    enum Op {
        Upsert(usize, u8, u8),
        Remove(usize, u8),
        SetSource(usize, Vec<(u8, u8)>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..SOURCES.len(), 0u8..8, 0u8..100).prop_map(|(s, k, t)| Op::Upsert(s, k, t)),
            (0..SOURCES.len(), 0u8..8).prop_map(|(s, k)| Op::Remove(s, k)),
            (
                0..SOURCES.len(),
                proptest::collection::vec((0u8..8, 0u8..100), 0..8)
            )
                .prop_map(|(s, routes)| Op::SetSource(s, routes)),
        ]
    }

    fn route_of(key: u8, target: u8) -> Route {
        let target = if target == 0 {
            RouteTarget::Blackhole
        } else {
            RouteTarget::Device(format!("cali{target}"))
        };
        Route::main(format!("10.0.0.{key}/32").parse().unwrap(), target)
    }

    type Model = BTreeMap<RouteSource, BTreeMap<RouteKey, RouteTarget>>;

    fn merged(model: &Model) -> Vec<Route> {
        let mut merged: BTreeMap<RouteKey, RouteTarget> = BTreeMap::new();
        for routes in model.values() {
            for (key, target) in routes {
                merged.entry(*key).or_insert_with(|| target.clone());
            }
        }
        merged
            .iter()
            .map(|(key, target)| route(key, target))
            .collect()
    }

    proptest! {
        #[test]
        fn the_merged_routes_are_those_of_separate_maps(ops in proptest::collection::vec(op(), 1..40)) {
            let fake = Arc::new(FakeNetlink::new());
            for index in 1..100 {
                fake.add_link(&format!("cali{index}"), 1500);
            }
            let mut applier = RouteApplier::new(fake.clone());
            let mut model = Model::new();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Upsert(source, key, target) => {
                        let route = route_of(key, target);
                        model.entry(SOURCES[source]).or_default().insert(route.key(), route.target.clone());
                        applier.upsert(SOURCES[source], route);
                    }
                    Op::Remove(source, key) => {
                        let key = route_of(key, 0).key();
                        model.entry(SOURCES[source]).or_default().remove(&key);
                        applier.remove(SOURCES[source], key);
                    }
                    Op::SetSource(source, routes) => {
                        let routes: Vec<Route> =
                            routes.into_iter().map(|(key, target)| route_of(key, target)).collect();
                        model.insert(
                            SOURCES[source],
                            routes.iter().map(|route| (route.key(), route.target.clone())).collect(),
                        );
                        applier.set_source(SOURCES[source], routes);
                    }
                }
                prop_assert_eq!(applier.desired(), merged(&model));
                for source in SOURCES {
                    let wanted = model.get(&source).cloned().unwrap_or_default();
                    let routes: Vec<Route> = applier.source_routes(source).collect();
                    let expected: Vec<Route> =
                        wanted.iter().map(|(key, target)| route(key, target)).collect();
                    prop_assert_eq!(routes, expected);
                    prop_assert_eq!(applier.source_len(source), wanted.len());
                    for key in 0..8 {
                        let key = route_of(key, 0).key();
                        prop_assert_eq!(applier.wants(source, &key), wanted.contains_key(&key));
                    }
                }
                if step % 3 == 0 {
                    let report = runtime.block_on(applier.apply());
                    prop_assert!(report.errors.is_empty(), "{:?}", report.errors);
                    prop_assert_eq!(fake.routes(), merged(&model));
                    prop_assert_eq!(applier.applied(), merged(&model));
                }
            }
        }
    }
}
