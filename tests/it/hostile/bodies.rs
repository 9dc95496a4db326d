//! Hostile request bodies: over the limit, streamed without a size, lying about their size,
//! failing midway, and the same bytes sent chunked or sized over real HTTP/1.1. Each reaches
//! the handler exactly as sent, and only a body the cache could read whole is keyed.

use super::fixture::*;
use crate::app::*;
use axum::{body::Body, routing::post, Router};
use bytes::Bytes;
use http::StatusCode;
use http_body::{Frame, SizeHint};
use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    task::{Context, Poll},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// A request body that yields `chunks` and claims `hint` as its size, optionally failing at
/// the end: streamed bodies of unknown size, bodies that lie about their size, broken bodies.
struct Chunks {
    chunks: VecDeque<Bytes>,
    hint: SizeHint,
    fail: bool,
}

impl Chunks {
    fn body(chunks: &[&[u8]], hint: SizeHint, fail: bool) -> Body {
        Body::new(Chunks {
            chunks: chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect(),
            hint,
            fail,
        })
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(match self.chunks.pop_front() {
            Some(chunk) => Some(Ok(Frame::data(chunk))),
            None if self.fail => {
                self.fail = false;
                Some(Err(io::Error::other("connection reset")))
            }
            None => None,
        })
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

redis_test!(
    bodies_over_the_limit_reach_the_handler_intact_and_are_not_stored,
    |redis| async move {
        let s = setup(redis).await;
        let app = s.pred_app(pred());
        for len in [LIMIT + 1, 1 << 20, 8 << 20] {
            let body = noise(len);
            for _ in 0..2 {
                let r = s
                    .send(&app, post_req("/matches/1/prediction", body.clone()))
                    .await;
                assert_eq!(r.status, StatusCode::OK);
                assert!(r.is_bypass("body-too-large"), "{len}: {}", r.cache_status());
                assert_eq!(r.echoed_body().len(), len);
                assert!(r.echoed_body() == &body[..], "{len}: body altered");
            }
        }
        s.assert_nothing_in_redis("an oversized request was stored");

        // At the limit exactly: keyed and stored, and the handler still gets every byte.
        let body = noise(LIMIT);
        let first = s
            .send(&app, post_req("/matches/1/prediction", body.clone()))
            .await;
        assert!(first.is_stored(), "{}", first.cache_status());
        assert!(first.echoed_body() == &body[..]);
        let second = s
            .send(&app, post_req("/matches/1/prediction", body.clone()))
            .await;
        assert!(second.is_hit(), "{}", second.cache_status());
        assert!(second.echoed_body() == &body[..]);
        assert_eq!(s.all_keys().len(), 1);
    }
);

// A body of unknown size (streamed, chunked) is read up to the limit and keyed like any other;
// one that grows past the limit reaches the handler whole and is not stored.
redis_test!(
    streamed_bodies_of_unknown_size_are_keyed_and_arrive_intact,
    |redis| async move {
        let s = setup(redis).await;
        let app = s.pred_app(pred());
        let at_limit = noise(LIMIT);
        let keyed: [&[&[u8]]; 3] = [
            &[b"{\"a\":", b"1}"],
            &[b"", b"x"],
            &[
                &at_limit[..100],
                &at_limit[100..LIMIT - 1],
                &at_limit[LIMIT - 1..],
            ],
        ];
        for chunks in keyed {
            let sent: Vec<u8> = chunks.concat();
            let body = || Chunks::body(chunks, SizeHint::default(), false);
            let first = s
                .send(&app, post_req("/matches/1/prediction", body()))
                .await;
            assert_eq!(first.status, StatusCode::OK);
            assert!(first.is_stored(), "{}", first.cache_status());
            assert!(first.echoed_body() == &sent[..], "streamed body altered");
            let second = s
                .send(&app, post_req("/matches/1/prediction", body()))
                .await;
            assert!(second.is_hit(), "{}", second.cache_status());
            assert!(second.echoed_body() == &sent[..], "streamed body altered");
        }
        assert_eq!(s.all_keys().len(), 3);

        let big = noise(100_000);
        let growing: [&[&[u8]]; 3] = [
            &[&big[..50_000], &big[50_000..]],
            &[&big[..LIMIT], b"y"],
            &[b"{", &big[..LIMIT], b"}", b"more"],
        ];
        for chunks in growing {
            let sent: Vec<u8> = chunks.concat();
            for _ in 0..2 {
                let body = Chunks::body(chunks, SizeHint::default(), false);
                let r = s.send(&app, post_req("/matches/1/prediction", body)).await;
                assert_eq!(r.status, StatusCode::OK);
                assert!(r.is_bypass("body-too-large"), "{}", r.cache_status());
                assert!(r.echoed_body() == &sent[..], "growing body altered");
            }
        }
        assert_eq!(s.all_keys().len(), 3, "a body past the limit was stored");
    }
);

// A body whose size hint promises at most the limit but that delivers more, or that fails, has
// been partly read when the cache notices: the handler gets what was read and then the rest
// (or the same error), exactly as without the cache, and nothing is stored. Never a 500 of
// the cache's making. (Only a hand-written body can lie this way: hyper enforces
// `Content-Length`.)
redis_test!(
    lying_or_failing_bodies_reach_the_handler_as_they_are_never_stored,
    |redis| async move {
        let s = setup(redis).await;
        let app = s.pred_app(pred());
        let over = noise(LIMIT + 1);
        let lying = Chunks::body(&[b"{}", &over], SizeHint::with_exact(2), false);
        let r = s.send(&app, post_req("/matches/1/prediction", lying)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.is_bypass("body-too-large"), "{}", r.cache_status());
        assert!(
            r.echoed_body() == &[&b"{}"[..], &over].concat()[..],
            "lying body altered"
        );

        // The handler's own extractor (axum's `Bytes`) turns the body error into its 400.
        let handler = post(|body: Bytes| async move { body });
        let direct = Chunks::body(&[b"{\"a\":"], SizeHint::with_exact(10), true);
        let without_cache = Router::new()
            .route("/matches/{id}/prediction", handler.clone())
            .oneshot(post_req("/matches/1/prediction", direct))
            .await
            .unwrap();
        let app = Router::new().route(
            "/matches/{id}/prediction",
            handler.route_layer(s.cache.policy(pred())),
        );
        for size in [SizeHint::with_exact(10), SizeHint::default()] {
            let failing = Chunks::body(&[b"{\"a\":"], size, true);
            let r = s
                .send(&app, post_req("/matches/1/prediction", failing))
                .await;
            assert_eq!(r.status, without_cache.status());
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
            assert!(r.is_bypass("body-error"), "{}", r.cache_status());
        }
        s.assert_nothing_in_redis("a lying or failing body was stored");
    }
);

// Over real HTTP/1.1: hyper's view of body sizes.

// A chunked request body and a `Content-Length` one with the same bytes have one key; either
// over the limit is bypassed and delivered intact; a chunked body with trailers bypasses.
redis_test!(
    over_http_chunked_and_sized_bodies_are_keyed_alike,
    |redis| async move {
        let s = setup(redis).await;
        let app = s.pred_app(pred());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        async fn exchange(addr: std::net::SocketAddr, request: Vec<u8>) -> String {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(&request).await.unwrap();
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.unwrap();
            String::from_utf8_lossy(&response).into_owned()
        }
        let head = "POST /matches/1/prediction HTTP/1.1\r\nHost: t\r\nConnection: close\r\n";
        let chunked =
            format!("{head}Transfer-Encoding: chunked\r\n\r\n7\r\n{{\"a\":1}}\r\n0\r\n\r\n");
        let response = exchange(addr, chunked.into_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("; stored"), "{response}");
        assert!(response.ends_with("\n\n{\"a\":1}"), "{response}");
        // The hit below needs the entry in Redis: wait for the write-back (bounded), rather
        // than going on regardless after a second.
        wait_writes(&s.cache, 1).await;
        let sized = format!("{head}Content-Length: 7\r\n\r\n{{\"a\":1}}");
        let response = exchange(addr, sized.into_bytes()).await;
        assert!(response.contains("; hit"), "{response}");
        assert!(response.ends_with("\n\n{\"a\":1}"), "{response}");

        let big = "b".repeat(LIMIT + 1);
        let over = format!("{head}Content-Length: {}\r\n\r\n{big}", big.len());
        let response = exchange(addr, over.into_bytes()).await;
        assert!(response.contains("detail=body-too-large"), "{response}");
        assert!(response.ends_with(&format!("\n\n{big}")));

        let (first, rest) = big.split_at(LIMIT / 2);
        let chunked_over = format!(
        "{head}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
        first.len(),
        rest.len()
    );
        let response = exchange(addr, chunked_over.into_bytes()).await;
        assert!(response.contains("detail=body-too-large"), "{response}");
        assert!(
            response.ends_with(&format!("\n\n{big}")),
            "chunked body altered"
        );

        let trailing = format!(
        "{head}Transfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n7\r\n{{\"b\":1}}\r\n0\r\nx-checksum: 1\r\n\r\n"
    );
        let response = exchange(addr, trailing.into_bytes()).await;
        assert!(response.contains("detail=request-trailers"), "{response}");
        assert!(response.ends_with("\n\n{\"b\":1}"), "{response}");
        server.abort();
    }
);
