//! In-process coalescing: concurrent cold misses for one key make one inner call; a leader
//! whose response cannot be shared (not storable, client gone) sends every waiter to the
//! handler at once; waiting is bounded; bypassing requests are never coalesced.

use crate::app::*;
use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use futures_util::future::join_all;
use std::{sync::Arc, time::Duration};
use tokio::sync::{mpsc, Mutex, Semaphore};
use tower::ServiceExt;
use tower_redis_cache::{CacheLayer, Entity, Policy};

const GATE: u32 = 1 << 20;

/// A handler held at a gate (after counting its run) until the test opens it.
#[derive(Clone)]
struct Held {
    runs: Runs,
    gate: Arc<Semaphore>,
    entered: mpsc::UnboundedSender<()>,
    entries: Arc<Mutex<mpsc::UnboundedReceiver<()>>>,
}

impl Held {
    fn new() -> Self {
        let (entered, entries) = mpsc::unbounded_channel();
        Self {
            runs: Runs::default(),
            gate: Arc::new(Semaphore::new(GATE as usize)),
            entered,
            entries: Arc::new(Mutex::new(entries)),
        }
    }

    async fn run(&self) -> usize {
        let run = self.runs.bump();
        let _ = self.entered.send(());
        let _permit = self.gate.acquire().await.expect("gate");
        run
    }

    async fn entered(&self) {
        self.entries.lock().await.recv().await.expect("a run");
    }
}

/// `/shared` (storable), `/private` (with `Set-Cookie`), both held at the gate.
fn app(layer: &CacheLayer, held: &Held) -> Router {
    let shared = {
        let held = held.clone();
        move || async move { format!("shared run {}", held.run().await) }
    };
    let private = {
        let held = held.clone();
        move || async move {
            let run = held.run().await;
            let cookie = format!("session=run{run}");
            ([(header::SET_COOKIE, cookie)], format!("private run {run}")).into_response()
        }
    };
    let policy = |ns: &str| layer.policy(Policy::new(ns).entity(Entity::none()));
    Router::new()
        .route("/shared", get(shared).route_layer(policy("shared")))
        .route("/private", get(private).route_layer(policy("private")))
}

/// Sends `n` concurrent `GET uri` once the first has reached the handler; opens the gate once
/// all are in flight; the replies.
async fn concurrent(
    app: &Router,
    layer: &CacheLayer,
    held: &Held,
    uri: &str,
    n: usize,
) -> Vec<Reply> {
    let gate = held.gate.acquire_many(GATE).await.expect("gate");
    let first = tokio::spawn({
        let (app, uri) = (app.clone(), uri.to_owned());
        async move { send(&app, get_req(&uri)).await }
    });
    held.entered().await;
    let rest: Vec<_> = (1..n)
        .map(|_| {
            let (app, uri) = (app.clone(), uri.to_owned());
            tokio::spawn(async move { send(&app, get_req(&uri)).await })
        })
        .collect();
    // Every request has looked up (a miss) and joined the flight before the leader answers.
    let misses = n as u64;
    eventually("every request's lookup", || layer.stats().misses >= misses).await;
    drop(gate);
    let mut replies = vec![first.await.unwrap()];
    for reply in join_all(rest).await {
        replies.push(reply.unwrap());
    }
    replies
}

redis_test!(
    concurrent_cold_misses_make_one_inner_call,
    |redis| async move {
        let layer = cache(&redis).await;
        let held = Held::new();
        let app = app(&layer, &held);
        let replies = concurrent(&app, &layer, &held, "/shared", 50).await;
        assert_eq!(held.runs.get(), 1, "one handler run for 50 requests");
        for reply in &replies {
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.text(), "shared run 1");
        }
        assert_eq!(replies[0].cache_status(), fwd("uri-miss; stored"));
        let collapsed = replies
            .iter()
            .filter(|r| r.cache_status() == fwd("uri-miss; collapsed"))
            .count();
        assert_eq!(collapsed, 49, "every waiter got the leader's response");
        assert_eq!(layer.stats().coalesced, 49);
    }
);

redis_test!(
    a_leader_response_that_cannot_be_shared_sends_waiters_to_the_handler,
    |redis| async move {
        let layer = cache(&redis).await;
        let held = Held::new();
        let app = app(&layer, &held);
        let replies = concurrent(&app, &layer, &held, "/private", 10).await;
        assert_eq!(held.runs.get(), 10, "each waiter ran the handler itself");
        let mut runs = std::collections::BTreeSet::new();
        for reply in &replies {
            let run = reply.text().trim_start_matches("private run ").to_owned();
            assert_eq!(
                reply.header("set-cookie"),
                format!("session=run{run}"),
                "its own cookie, never the leader's"
            );
            assert!(!reply.cache_status().contains("collapsed"));
            runs.insert(run);
        }
        assert_eq!(runs.len(), 10, "ten responses of their own");
        assert_eq!(layer.stats().coalesced, 0);
    }
);

redis_test!(
    waiters_of_a_leader_whose_client_went_away_still_get_whole_responses,
    |redis| async move {
        let layer = cache(&redis).await;
        let held = Held::new();
        let app = app(&layer, &held);
        let gate = held.gate.acquire_many(GATE).await.expect("gate");
        // The leader's client takes the response head and drops the body unread.
        let leader = tokio::spawn({
            let app = app.clone();
            async move {
                let response: Response = app.oneshot(get_req("/shared")).await.unwrap();
                drop(response.into_body());
            }
        });
        held.entered().await;
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { send(&app, get_req("/shared")).await })
            })
            .collect();
        eventually("every request's lookup", || layer.stats().misses >= 6).await;
        drop(gate);
        leader.await.unwrap();
        for waiter in join_all(waiters).await {
            let reply = waiter.unwrap();
            assert_eq!(reply.status, StatusCode::OK);
            assert!(reply.text().starts_with("shared run "), "{reply:?}");
        }
        assert!(held.runs.get() >= 2, "the waiters forwarded on their own");
    }
);

redis_test!(
    waiting_is_bounded_by_the_coalescing_timeout,
    |redis| async move {
        let layer = cache_builder(&redis)
            .await
            .coalescing_timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let held = Held::new();
        let app = app(&layer, &held);
        let gate = held.gate.acquire_many(GATE).await.expect("gate");
        let leader = tokio::spawn({
            let app = app.clone();
            async move { send(&app, get_req("/shared")).await }
        });
        held.entered().await;
        let waiter = tokio::spawn({
            let app = app.clone();
            async move { send(&app, get_req("/shared")).await }
        });
        // The waiter gives up on the held leader and runs the handler itself.
        held.entered().await;
        assert_eq!(held.runs.get(), 2);
        drop(gate);
        assert_eq!(leader.await.unwrap().text(), "shared run 1");
        assert_eq!(waiter.await.unwrap().text(), "shared run 2");
    }
);

redis_test!(
    bypassing_requests_and_coalescing_off_are_never_coalesced,
    |redis| async move {
        for (name, layer, bypass) in [
            ("bypass", cache(&redis).await, true),
            (
                "off",
                cache_builder(&redis)
                    .await
                    .coalescing(false)
                    .build()
                    .unwrap(),
                false,
            ),
        ] {
            let held = Held::new();
            let app = app(&layer, &held);
            let gate = held.gate.acquire_many(GATE).await.expect("gate");
            let requests: Vec<_> = (0..5)
                .map(|_| {
                    let app = app.clone();
                    let mut req = get_req("/shared");
                    if bypass {
                        req.headers_mut()
                            .insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
                    }
                    tokio::spawn(async move { send(&app, req).await })
                })
                .collect();
            for _ in 0..5 {
                held.entered().await;
            }
            drop(gate);
            join_all(requests).await;
            assert_eq!(held.runs.get(), 5, "{name}: every request ran the handler");
            assert_eq!(layer.stats().coalesced, 0, "{name}");
        }
    }
);

/// `GET /slow` behind `layer`, with a cross-instance lease: a 150 ms handler counting into
/// `runs`, answering `Set-Cookie` too when `private`.
fn leased_app(layer: &CacheLayer, runs: &Runs, private: bool, bound: Duration) -> Router {
    let runs = runs.clone();
    let handler = move || {
        let runs = runs.clone();
        async move {
            let run = runs.bump();
            tokio::time::sleep(Duration::from_millis(150)).await;
            let mut response = format!("slow run {run}").into_response();
            if private {
                let cookie = format!("session=run{run}").parse().unwrap();
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
    };
    let policy = Policy::new("slow").entity(Entity::none()).lease(bound);
    Router::new().route("/slow", get(handler).route_layer(layer.policy(policy)))
}

redis_test!(
    cold_misses_across_three_instances_make_about_one_inner_call,
    |redis| async move {
        let runs = Runs::default();
        let mut apps = Vec::new();
        for _ in 0..3 {
            let layer = cache(&redis).await;
            apps.push(leased_app(&layer, &runs, false, Duration::from_secs(5)));
        }
        let requests: Vec<_> = (0..200)
            .map(|i| {
                let app = apps[i % 3].clone();
                tokio::spawn(async move { send(&app, get_req("/slow")).await })
            })
            .collect();
        let mut bodies = std::collections::BTreeSet::new();
        for reply in join_all(requests).await {
            let reply = reply.unwrap();
            assert_eq!(reply.status, StatusCode::OK);
            bodies.insert(reply.text().to_owned());
        }
        eprintln!(
            "200 cold requests over 3 instances: {} handler run(s)",
            runs.get()
        );
        assert_eq!(runs.get(), 1, "one inner call for all three instances");
        assert_eq!(bodies.len(), 1, "{bodies:?}");
    }
);

redis_test!(
    a_dead_lease_holder_blocks_nobody_past_the_bound,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        // The route waits on a lease for up to 30 s; the dead holder's lease lives 300 ms.
        let app = leased_app(&layer, &runs, false, Duration::from_secs(30));
        let dead = Duration::from_millis(300);
        // Another instance took the lease and died: nobody ever releases it.
        let key = key_factory().key("slow", "_", &tower_redis_cache::Variant::new());
        let store = connect(&redis).await;
        use tower_redis_cache::store::{Lease, Store};
        assert!(matches!(
            store.lease(key.as_str(), dead).await.unwrap(),
            Lease::Taken(_)
        ));
        let started = std::time::Instant::now();
        // Far less than the 30 s bound: the waiter takes the lease once the dead one expires.
        let reply = tokio::time::timeout(Duration::from_secs(10), send(&app, get_req("/slow")))
            .await
            .expect("the expired lease was taken over, not waited out");
        eprintln!(
            "a dead holder's lease ({dead:?}) delayed a miss by {:?}",
            started.elapsed()
        );
        assert_eq!(
            reply.text(),
            "slow run 1",
            "it ran the handler once the lease expired"
        );
        assert_eq!(reply.cache_status(), fwd("uri-miss; stored"));
    }
);

redis_test!(
    a_holder_whose_response_cannot_be_stored_sends_other_instances_on_at_once,
    |redis| async move {
        let runs = Runs::default();
        let bound = Duration::from_secs(30);
        let a = leased_app(&cache(&redis).await, &runs, true, bound);
        let b = leased_app(&cache(&redis).await, &runs, true, bound);
        let first = tokio::spawn(async move { send(&a, get_req("/slow")).await });
        eventually("the first holds the lease", || runs.get() == 1).await;
        // The second waits on the lease until the first's private response ends it, not
        // until the 30 s bound.
        let second = tokio::time::timeout(Duration::from_secs(10), send(&b, get_req("/slow")))
            .await
            .expect("forwarded at once once the holder's response proved private");
        let first = first.await.unwrap();
        assert_eq!(runs.get(), 2);
        for reply in [&first, &second] {
            let run = reply.text().trim_start_matches("slow run ");
            assert_eq!(reply.header("set-cookie"), format!("session=run{run}"));
        }
        assert_ne!(first.text(), second.text());
    }
);

redis_test!(
    redis_down_means_no_errors_and_no_waiting_for_leases,
    |mut redis| async move {
        let layer = cache_builder(&redis)
            .await
            .lookup_timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let runs = Runs::default();
        let app = leased_app(&layer, &runs, false, Duration::from_secs(30));
        redis.kill();
        let requests = (0..20).map(|_| send(&app, get_req("/slow")));
        // A lease that cannot be taken is no reason to wait: far less than its 30 s bound.
        let replies = tokio::time::timeout(Duration::from_secs(10), join_all(requests))
            .await
            .expect("nobody waits for a lease Redis cannot grant");
        for reply in replies {
            assert_eq!(reply.status, StatusCode::OK);
            assert!(reply.text().starts_with("slow run "), "{reply:?}");
        }
        assert!(runs.get() >= 1);
    }
);
