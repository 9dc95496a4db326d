//! Invalidation by entity, entity in a namespace, namespace and tag: exact counts, race-free
//! against write-backs in flight, bounded indexes, one slot per entity, errors while Redis is
//! down, the unsafe-request policy and hostile input. Every test runs on the standalone server
//! and on the three-master cluster.

use crate::app::*;
use crate::servers::cluster::key_slot;
use axum::{
    body::Body,
    extract::Path,
    http::{HeaderName, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Router,
};
use futures_util::StreamExt;
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering::SeqCst},
        Arc,
    },
    time::Duration,
};
use tokio::sync::{mpsc, Mutex, Semaphore};
use tower_redis_cache::{
    store::{EntryWrite, Store},
    CacheLayer, Entity, Invalidator, Policy, StoreErrorKind, Variant,
};

/// The data behind the handlers: a version the tests bump, and a gate that can hold handlers
/// after they have read it (to run an invalidation while one is in flight).
#[derive(Clone)]
struct Data {
    version: Arc<AtomicUsize>,
    runs: Runs,
    gate: Arc<Semaphore>,
    entered: mpsc::UnboundedSender<()>,
    /// Receives one message per handler run, once it has read the data.
    entries: Arc<Mutex<mpsc::UnboundedReceiver<()>>>,
}

const GATE: u32 = 1 << 20;

impl Data {
    fn new() -> Self {
        let (entered, entries) = mpsc::unbounded_channel();
        Self {
            version: Arc::new(AtomicUsize::new(1)),
            runs: Runs::default(),
            gate: Arc::new(Semaphore::new(GATE as usize)),
            entered,
            entries: Arc::new(Mutex::new(entries)),
        }
    }

    /// Reads the data, then waits at the gate.
    async fn read(&self, what: String) -> String {
        self.runs.bump();
        let body = format!("{what} v{}", self.version.load(SeqCst));
        let _ = self.entered.send(());
        let _permit = self.gate.acquire().await.expect("gate open");
        body
    }

    /// Closes the gate: handlers wait after reading until the permit is dropped.
    async fn close(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.gate.acquire_many(GATE).await.expect("gate")
    }

    /// Forgets the handler runs so far.
    async fn forget_entries(&self) {
        while self.entries.lock().await.try_recv().is_ok() {}
    }

    /// Waits until a handler has read the data.
    async fn entered(&self) {
        self.entries
            .lock()
            .await
            .recv()
            .await
            .expect("a handler run");
    }
}

const TAG_HEADER: &str = "cache-tag";

/// Markets (GET, varying on `lang`), predictions (POST, keyed by body) and a team's matches
/// (GET, tagged by team) over one [`Data`].
fn app(layer: &CacheLayer, data: &Data) -> Router {
    let match_entity = || Entity::path_segment(1).prefix("m_");
    let markets = {
        let data = data.clone();
        move |Path(id): Path<String>| async move { data.read(format!("markets {id}")).await }
    };
    let prediction = {
        let data = data.clone();
        move |Path(id): Path<String>, body: String| async move {
            data.read(format!("prediction {id} {body}")).await
        }
    };
    let team_matches = {
        let data = data.clone();
        move |Path(team): Path<String>| async move {
            let body = data.read(format!("team {team}")).await;
            ([(TAG_HEADER, format!("team-{team}, all-teams"))], body).into_response()
        }
    };
    let update = {
        let data = data.clone();
        move |headers: axum::http::HeaderMap| async move {
            if headers.contains_key("x-fail") {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            data.version.fetch_add(1, SeqCst);
            StatusCode::NO_CONTENT
        }
    };
    Router::new()
        .route(
            "/matches/{id}/markets",
            get(markets).put(update).route_layer(
                layer.policy(
                    Policy::new("markets")
                        .entity(match_entity())
                        .vary_query(["lang"])
                        .invalidate_on_unsafe(true),
                ),
            ),
        )
        .route(
            "/matches/{id}/prediction",
            post(prediction).route_layer(
                layer.policy(
                    Policy::new("pred")
                        .methods([axum::http::Method::POST])
                        .entity(match_entity()),
                ),
            ),
        )
        .route(
            "/teams/{team}/matches",
            get(team_matches).route_layer(
                layer.policy(Policy::new("teams").entity(Entity::path_segment(1).prefix("t_"))),
            ),
        )
}

async fn tagged_cache(redis: &Redis) -> CacheLayer {
    cache_builder(redis)
        .await
        .tag_header(HeaderName::from_static(TAG_HEADER))
        .build()
        .unwrap()
}

fn is_hit(reply: &Reply) -> bool {
    reply.cache_status().starts_with(&format!("{NAME}; hit"))
}

fn prediction(id: &str, body: &str) -> axum::http::Request<Body> {
    axum::http::Request::post(format!("/matches/{id}/prediction"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request")
}

/// The requests of [`fill`]: 5 entries of m_1, 2 of m_2, one of each of teams 7 and 8.
fn requests() -> Vec<(&'static str, axum::http::Request<Body>)> {
    vec![
        ("m_1 markets", get_req("/matches/1/markets")),
        ("m_1 markets en", get_req("/matches/1/markets?lang=en")),
        ("m_1 markets fr", get_req("/matches/1/markets?lang=fr")),
        ("m_1 pred a1", prediction("1", r#"{"a":1}"#)),
        ("m_1 pred a2", prediction("1", r#"{"a":2}"#)),
        ("m_2 markets", get_req("/matches/2/markets")),
        ("m_2 pred a1", prediction("2", r#"{"a":1}"#)),
        ("t_7", get_req("/teams/7/matches")),
        ("t_8", get_req("/teams/8/matches")),
    ]
}

/// Stores every entry of [`requests`] that is not stored yet and checks each now hits.
async fn fill(app: &Router, layer: &CacheLayer) {
    for (_, req) in requests() {
        send(app, req).await;
    }
    eventually("the write-backs done", || {
        layer.stats().writes_in_flight == 0
    })
    .await;
    for (name, req) in requests() {
        assert!(is_hit(&send(app, req).await), "{name} hits once stored");
    }
}

/// Which of [`requests`] hit now (each miss stores its entry again).
async fn hits(app: &Router) -> Vec<&'static str> {
    let mut hits = Vec::new();
    for (name, req) in requests() {
        if is_hit(&send(app, req).await) {
            hits.push(name);
        }
    }
    hits
}

redis_test!(each_scope_drops_exactly_what_it_names, |redis| async move {
    let layer = tagged_cache(&redis).await;
    let data = Data::new();
    let app = app(&layer, &data);
    let invalidator = layer.invalidator();
    let all: Vec<_> = requests().into_iter().map(|(name, _)| name).collect();
    let without = |gone: &[&str]| -> Vec<&str> {
        all.iter().copied().filter(|n| !gone.contains(n)).collect()
    };

    fill(&app, &layer).await;
    assert_eq!(invalidator.entity_in("markets", "m_1").await.unwrap(), 3);
    assert_eq!(
        hits(&app).await,
        without(&["m_1 markets", "m_1 markets en", "m_1 markets fr"])
    );

    fill(&app, &layer).await;
    assert_eq!(invalidator.entity("m_1").await.unwrap(), 5);
    assert_eq!(
        hits(&app).await,
        without(&[
            "m_1 markets",
            "m_1 markets en",
            "m_1 markets fr",
            "m_1 pred a1",
            "m_1 pred a2"
        ])
    );

    fill(&app, &layer).await;
    assert_eq!(invalidator.namespace("pred").await.unwrap(), 3);
    assert_eq!(
        hits(&app).await,
        without(&["m_1 pred a1", "m_1 pred a2", "m_2 pred a1"])
    );

    fill(&app, &layer).await;
    assert_eq!(invalidator.tag("team-7").await.unwrap(), 1);
    assert_eq!(hits(&app).await, without(&["t_7"]));
    fill(&app, &layer).await;
    assert_eq!(invalidator.tag("all-teams").await.unwrap(), 2);
    assert_eq!(hits(&app).await, without(&["t_7", "t_8"]));

    // Names that match nothing drop nothing, globs and separators included.
    fill(&app, &layer).await;
    for (what, gone) in [
        ("namespace nope", invalidator.namespace("nope").await),
        ("namespace *", invalidator.namespace("*").await),
        ("tag *", invalidator.tag("*").await),
        ("tag team-*", invalidator.tag("team-*").await),
        ("entity *", invalidator.entity("*").await),
        ("entity m_1}:*", invalidator.entity("m_1}:*").await),
        ("entity m_?", invalidator.entity("m_?").await),
    ] {
        assert_eq!(gone.unwrap(), 0, "{what}");
    }
    assert_eq!(hits(&app).await, all, "all still cached");
    // Invalidating twice: the second finds nothing.
    assert_eq!(invalidator.entity("m_2").await.unwrap(), 2);
    assert_eq!(invalidator.entity("m_2").await.unwrap(), 0);
    // (A write-back of a request that began within a millisecond after an invalidation
    // may be refused: the fence errs towards refusing. So `writes_invalidated` varies.)
    assert_eq!(layer.stats().write_errors, 0);
});

redis_test!(
    tags_never_reach_the_client_nor_the_store,
    |redis| async move {
        let layer = tagged_cache(&redis).await;
        let data = Data::new();
        let app = app(&layer, &data);
        let miss = send(&app, get_req("/teams/7/matches")).await;
        assert_eq!(
            miss.header(TAG_HEADER),
            "",
            "removed before the client sees it"
        );
        assert_eq!(miss.cache_status(), fwd("uri-miss; stored"));
        wait_writes(&layer, 1).await;
        let hit = send(&app, get_req("/teams/7/matches")).await;
        assert!(is_hit(&hit));
        assert_eq!(hit.header(TAG_HEADER), "", "never stored");
        assert_eq!(hit.text(), "team 7 v1");
    }
);

redis_test!(one_entity_lives_in_one_slot, |redis| async move {
    let layer = tagged_cache(&redis).await;
    let data = Data::new();
    let app = app(&layer, &data);
    fill(&app, &layer).await;
    invalidator_fence(&layer).await;
    let keys = redis.keys(&format!("{PREFIX}*{{m_1}}*"));
    let kinds: Vec<&str> = ["#e:", "#l:", "#f:", "markets:", "pred:"]
        .into_iter()
        .filter(|kind| !keys.iter().any(|k| k.contains(kind)))
        .collect();
    // The lease hash is emptied by each write; everything else must be there.
    assert_eq!(kinds, ["#l:"], "entries, index and fences of m_1: {keys:?}");
    let slots: std::collections::BTreeSet<u16> = keys.iter().map(key_slot).collect();
    assert_eq!(slots.len(), 1, "one slot for {keys:?}");
    assert!(keys.len() >= 7, "{keys:?}");
});

/// Fences m_1 in a namespace that holds none of its entries, so its fence key exists.
async fn invalidator_fence(layer: &CacheLayer) {
    assert_eq!(
        layer.invalidator().entity_in("none", "m_1").await.unwrap(),
        0
    );
}

redis_test!(
    a_response_computed_before_an_invalidation_is_never_served_after_it,
    |redis| async move {
        let layer = tagged_cache(&redis).await;
        let data = Data::new();
        let app = app(&layer, &data);
        let invalidator = layer.invalidator();
        type Scope = fn(&Invalidator) -> futures_util::future::BoxFuture<'_, u64>;
        // Each round on a path not cached yet, so that its first request runs the handler.
        let scopes: [(&str, &str, Scope); 4] = [
            ("entity", "/matches/1/markets", |i| {
                Box::pin(async move { i.entity("m_1").await.unwrap() })
            }),
            ("entity in namespace", "/matches/2/markets", |i| {
                Box::pin(async move { i.entity_in("markets", "m_2").await.unwrap() })
            }),
            ("namespace", "/matches/3/markets", |i| {
                Box::pin(async move { i.namespace("markets").await.unwrap() })
            }),
            ("tag", "/teams/7/matches", |i| {
                Box::pin(async move { i.tag("team-7").await.unwrap() })
            }),
        ];
        for (round, (scope, path, invalidate)) in scopes.into_iter().enumerate() {
            let refused = layer.stats().writes_invalidated;
            let version = data.version.load(SeqCst);
            // A request reads the data, then its handler is held.
            let gate = data.close().await;
            data.forget_entries().await;
            let in_flight = tokio::spawn({
                let app = app.clone();
                let path = path.to_owned();
                async move { send(&app, get_req(&path)).await }
            });
            data.entered().await;
            // The data changes and the app invalidates, while that handler still runs.
            data.version.fetch_add(1, SeqCst);
            invalidate(&invalidator).await;
            drop(gate);
            let old = in_flight.await.unwrap();
            assert!(
                old.text().ends_with(&format!("v{version}")),
                "{scope}: {old:?}"
            );
            assert_eq!(old.cache_status(), fwd("uri-miss; stored"), "{scope}");
            eventually(&format!("{scope}: the old write-back refused"), || {
                layer.stats().writes_invalidated == refused + 1
            })
            .await;
            // Never the old response again: a miss with the new data, then hits of it.
            let after = send(&app, get_req(path)).await;
            assert!(!is_hit(&after), "{scope} (round {round}): {after:?}");
            assert!(
                after.text().ends_with(&format!("v{}", version + 1)),
                "{scope}"
            );
            eventually(&format!("{scope}: the new response stored"), || {
                layer.stats().writes_in_flight == 0
            })
            .await;
            let hit = send(&app, get_req(path)).await;
            assert!(
                is_hit(&hit),
                "{scope}: the fresh response is cached: {hit:?}"
            );
            assert_eq!(hit.text(), after.text(), "{scope}");
        }
        assert_eq!(layer.stats().write_errors, 0);
    }
);

redis_test!(
    indexes_are_bounded_and_expire_with_their_entries,
    |redis| async move {
        let store = connect(&redis).await;
        let keys = key_factory();
        let ttl = Duration::from_millis(3000);
        let variants = 2000;
        let writes = futures_util::stream::iter(0..variants)
            .map(|i| {
                let key = keys.key("ns", "big", &Variant::new().query("i", i.to_string()));
                let write = EntryWrite::new(key, "entry".into(), ttl).tags(["t1"]);
                store.write(write)
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        assert!(writes.iter().all(|w| matches!(w, Ok(true))), "all stored");
        let index = format!("{PREFIX}#e:{{big}}");
        let members = redis.query_for(&index, &["ZCARD", &index]).as_int();
        assert_eq!(members, Some(variants), "one member per live entry");
        // Every key of the deployment expires, indexes no later than their last entry.
        let all = redis.keys(ALL_KEYS);
        assert_eq!(
            all.len() as i64,
            variants + 3,
            "entries, entity, namespace, tag indexes"
        );
        for key in &all {
            let pttl = redis.ttl_ms(key);
            assert!(
                pttl > 0 && pttl <= ttl.as_millis() as i64,
                "{key}: PTTL {pttl}"
            );
        }
        // An entry evicted by Redis leaves a member behind, which drops nothing and costs
        // nothing once trimmed.
        let evicted = keys.key("ns", "big", &Variant::new().query("i", "0"));
        redis.query_for(evicted.as_str(), &["DEL", evicted.as_str()]);
        let invalidator = Invalidator::new(Arc::new(store.clone()), keys.clone());
        assert_eq!(
            invalidator.entity_in("ns", "big").await.unwrap(),
            variants as u64 - 1
        );
        // Once the entries expire, so does everything else but the fence of that invalidation.
        eventually("every index expired", || {
            redis.keys(ALL_KEYS) == vec![format!("{PREFIX}#f:{{big}}")]
        })
        .await;
        // A new write starts a new index.
        let fresh = keys.key("ns", "big", &Variant::new().query("i", "fresh"));
        assert!(store
            .write(EntryWrite::new(fresh, "x".into(), ttl))
            .await
            .unwrap());
        assert_eq!(
            redis.query_for(&index, &["ZCARD", &index]).as_int(),
            Some(1)
        );
    }
);

redis_test!(
    invalidating_while_redis_is_down_is_an_error_not_zero,
    |mut redis| async move {
        let layer = tagged_cache(&redis).await;
        let invalidator = layer.invalidator();
        assert_eq!(invalidator.entity("m_1").await.unwrap(), 0);
        redis.kill();
        for (what, result) in [
            ("entity", invalidator.entity("m_1").await),
            ("namespace", invalidator.namespace("markets").await),
            ("tag", invalidator.tag("team-7").await),
        ] {
            let error = result.expect_err(what);
            assert!(
                matches!(
                    error.kind(),
                    StoreErrorKind::Unavailable | StoreErrorKind::Timeout
                ),
                "{what}: {error}"
            );
        }
    }
);

redis_test!(
    a_successful_unsafe_request_invalidates_its_entity,
    |redis| async move {
        let layer = tagged_cache(&redis).await;
        let data = Data::new();
        let app = app(&layer, &data);
        fill(&app, &layer).await;
        let put = |id: &str| {
            axum::http::Request::put(format!("/matches/{id}/markets"))
                .body(Body::empty())
                .unwrap()
        };
        // A failed update invalidates nothing.
        let mut failing = put("1");
        failing.headers_mut().insert("x-fail", "1".parse().unwrap());
        let failed = send(&app, failing).await;
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(hits(&app).await.len(), 9);
        // A successful one drops every entry of its match, in every namespace, before it
        // answers.
        let updated = send(&app, put("%31")).await;
        assert_eq!(updated.status, StatusCode::NO_CONTENT);
        assert_eq!(updated.cache_status(), "", "not a cached method: untouched");
        let hits = hits(&app).await;
        assert_eq!(hits, ["m_2 markets", "m_2 pred a1", "t_7", "t_8"]);
    }
);

redis_test!(
    every_spelling_of_an_id_is_dropped_together,
    |redis| async move {
        let layer = tagged_cache(&redis).await;
        let data = Data::new();
        let app = app(&layer, &data);
        let spelled = send(&app, get_req("/matches/%31%32/markets")).await;
        assert_eq!(
            spelled.text(),
            "markets 12 v1",
            "the handler reads match 12"
        );
        wait_writes(&layer, 1).await;
        // The same key: another spelling replaces the entry (a handler may tell spellings
        // apart, so one never answers the other), and one invalidation drops whichever is there.
        let plain = send(&app, get_req("/matches/12/markets")).await;
        assert_eq!(
            plain.cache_status(),
            fwd("vary-miss; stored"),
            "one entity, one key"
        );
        eventually("the plain spelling stored", || {
            layer.stats().writes_in_flight == 0
        })
        .await;
        assert!(is_hit(&send(&app, get_req("/matches/12/markets")).await));
        assert_eq!(redis.entry_keys(&format!("{PREFIX}markets:*")).len(), 1);
        assert_eq!(layer.invalidator().entity("m_12").await.unwrap(), 1);
        assert!(!is_hit(
            &send(&app, get_req("/matches/%31%32/markets")).await
        ));
        assert!(!is_hit(&send(&app, get_req("/matches/12/markets")).await));
        // Not UTF-8 once decoded: not cached at all.
        let invalid = send(&app, get_req("/matches/%FF/markets")).await;
        assert_eq!(invalid.cache_status(), fwd("bypass; detail=no-entity"));
    }
);

redis_test!(
    a_response_with_too_many_or_too_long_tags_is_passed_on_not_stored,
    |redis| async move {
        let layer = tagged_cache(&redis).await;
        let runs = Runs::default();
        let many = (0..10_000)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let long = "x".repeat(1024 * 1024);
        let app = Router::new().route(
            "/tags/{case}",
            get({
                let runs = runs.clone();
                move |Path(case): Path<String>| async move {
                    runs.bump();
                    let tags = if case == "many" { many } else { long };
                    ([(TAG_HEADER, tags)], format!("body {case}")).into_response()
                }
            })
            .route_layer(layer.policy(Policy::new("tags"))),
        );
        for case in ["many", "long"] {
            for attempt in 1..=2 {
                let reply = send(&app, get_req(&format!("/tags/{case}"))).await;
                assert_eq!(reply.text(), format!("body {case}"), "{case}: passed on");
                assert_eq!(reply.header(TAG_HEADER), "", "{case}: header removed");
                assert_eq!(reply.cache_status(), fwd("uri-miss"), "{case} #{attempt}");
            }
        }
        assert_eq!(runs.get(), 4, "never served from the cache");
        let tag_keys = redis.keys(&format!("{PREFIX}#t:*"));
        assert_eq!(tag_keys, Vec::<String>::new(), "never indexed");
    }
);
