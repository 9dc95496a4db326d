//! Compressed entries: large bodies are stored compressed (LZ4) and served byte for byte as the
//! handler gave them, with nothing on the wire saying they were.

use crate::app::*;
use axum::{http::header, routing::get, Router};
use std::time::Duration;
use tower_redis_cache::{CacheLayer, Compression, Entity, Policy};

/// A JSON body of about 16 KiB, as compressible as real API JSON (names repeat, numbers vary).
fn timeline() -> String {
    let points: Vec<String> = (0..400u64)
        .map(|m| {
            let home = (m * 7919) % 1000;
            format!(
                r#"{{"minute":{m},"home":0.{home:03},"away":0.{:03}}}"#,
                999 - home
            )
        })
        .collect();
    format!(r#"{{"timeline":[{}]}}"#, points.join(","))
}

fn timeline_app(layer: &CacheLayer, runs: &Runs) -> Router {
    let runs = runs.clone();
    Router::new().route(
        "/matches/{id}/timeline",
        get(move || {
            let runs = runs.clone();
            async move {
                runs.bump();
                ([(header::CONTENT_TYPE, "application/json")], timeline())
            }
        })
        .route_layer(
            layer.policy(
                Policy::new("timeline")
                    .entity(Entity::path_segment(1).prefix("m_"))
                    .ttl(Duration::from_secs(60)),
            ),
        ),
    )
}

const KEY: &str = "monps:test:v1:timeline:{m_1}:default";

redis_test!(
    large_bodies_are_stored_compressed_and_served_as_given,
    |redis| async move {
        let layer = cache(&redis).await;
        let runs = Runs::default();
        let app = timeline_app(&layer, &runs);
        let miss = send(&app, get_req("/matches/1/timeline")).await;
        wait_writes(&layer, 1).await;
        let stored = redis.get(KEY).expect("the entry");
        assert_eq!(&stored[..4], b"TRC\x03", "a compressed entry (version 3)");
        assert!(
            stored.len() < miss.body.len() / 2,
            "{} bytes stored for a {}-byte body",
            stored.len(),
            miss.body.len()
        );

        let hit = send(&app, get_req("/matches/1/timeline")).await;
        assert!(
            hit.cache_status().contains("; hit"),
            "{}",
            hit.cache_status()
        );
        assert_eq!(runs.get(), 1);
        assert_eq!(hit.body, miss.body, "the body as the handler gave it");
        assert_eq!(hit.text(), timeline());
        assert_eq!(hit.header("content-type"), "application/json");
        assert_eq!(hit.header("content-length"), miss.body.len().to_string());
        assert!(hit.headers.get(header::CONTENT_ENCODING).is_none());
        // The validator is the uncompressed body's, the same on every hit.
        let again = send(&app, get_req("/matches/1/timeline")).await;
        assert!(!hit.header("etag").is_empty());
        assert_eq!(again.header("etag"), hit.header("etag"));
    }
);

redis_test!(
    compression_off_stores_bodies_as_they_are,
    |redis| async move {
        let layer = cache_builder(&redis)
            .await
            .compression(Compression::none())
            .build()
            .unwrap();
        let app = timeline_app(&layer, &Runs::default());
        let miss = send(&app, get_req("/matches/1/timeline")).await;
        wait_writes(&layer, 1).await;
        let stored = redis.get(KEY).expect("the entry");
        assert_eq!(&stored[..4], b"TRC\x02");
        assert!(stored.len() > miss.body.len());

        // A layer that compresses reads it, and one that does not reads compressed entries.
        let other = cache(&redis).await;
        let hit = send(
            &timeline_app(&other, &Runs::default()),
            get_req("/matches/1/timeline"),
        )
        .await;
        assert!(
            hit.cache_status().contains("; hit"),
            "{}",
            hit.cache_status()
        );
        assert_eq!(hit.body, miss.body);
        let compressing = timeline_app(&other, &Runs::default());
        let elsewhere = send(&compressing, get_req("/matches/2/timeline")).await;
        wait_writes(&other, 1).await;
        let key = KEY.replace("m_1", "m_2");
        assert_eq!(&redis.get(&key).expect("the entry")[..4], b"TRC\x03");
        let read = send(&app, get_req("/matches/2/timeline")).await;
        assert!(
            read.cache_status().contains("; hit"),
            "{}",
            read.cache_status()
        );
        assert_eq!(read.body, elsewhere.body);
    }
);
