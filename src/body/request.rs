//! [`RequestBody`]: the request body the inner service reads.

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    fmt,
    pin::Pin,
    task::{ready, Context, Poll},
};

pin_project! {
    /// Request body for the inner service of [`Cache`](crate::Cache): the client's body as it
    /// arrives, or, when the cache read it to key the request, the bytes it read followed by
    /// whatever the body still had (more data, trailers, an error), unchanged.
    ///
    /// Any [`http_body::Body`] can be the client's body (hyper's `Incoming`, axum's `Body`, ...);
    /// its data reaches the service as [`Bytes`].
    pub struct RequestBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        // The client's body, not read by the cache.
        Untouched {
            #[pin]
            body: B,
        },
        // Read by the cache, in whole or in part: replayed first, then the rest of the body.
        Replayed {
            data: Option<Bytes>,
            next: Option<Frame<Bytes>>,
            error: Option<B::Error>,
            rest: Option<Pin<Box<B>>>,
        },
    }
}

impl<B: Body> RequestBody<B> {
    /// The client's body, passed on as it arrives.
    pub(crate) fn untouched(body: B) -> Self {
        Self {
            kind: Kind::Untouched { body },
        }
    }

    /// A body the cache read: `data`, then the frame (`next`) or the `error` reading stopped
    /// at, then what `rest` has left.
    pub(crate) fn replayed(
        data: Bytes,
        next: Option<Frame<Bytes>>,
        error: Option<B::Error>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self {
        Self {
            kind: Kind::Replayed {
                data: Some(data).filter(|d| !d.is_empty()),
                next,
                error,
                rest: rest.filter(|r| !r.is_end_stream()),
            },
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Untouched { body } => {
                let frame = ready!(body.poll_frame(cx));
                Poll::Ready(frame.map(|f| f.map(|f| f.map_data(into_bytes))))
            }
            KindProj::Replayed {
                data,
                next,
                error,
                rest,
            } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if let Some(frame) = next.take() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(error) = error.take() {
                    return Poll::Ready(Some(Err(error)));
                }
                let Some(body) = rest else {
                    return Poll::Ready(None);
                };
                let frame = ready!(body.as_mut().poll_frame(cx));
                if frame.is_none() {
                    *rest = None;
                }
                Poll::Ready(frame.map(|f| f.map(|f| f.map_data(into_bytes))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Untouched { body } => body.is_end_stream(),
            Kind::Replayed {
                data,
                next,
                error,
                rest,
            } => {
                data.is_none()
                    && next.is_none()
                    && error.is_none()
                    && rest.as_ref().is_none_or(|r| r.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Untouched { body } => body.size_hint(),
            Kind::Replayed {
                data, next, rest, ..
            } => {
                let next = next.as_ref().and_then(Frame::data_ref);
                let read = [data.as_ref(), next]
                    .into_iter()
                    .flatten()
                    .map(|d| d.len() as u64)
                    .sum::<u64>();
                let mut hint = rest
                    .as_ref()
                    .map_or(SizeHint::with_exact(0), |r| r.size_hint());
                // Upper first: a lower bound may never pass the upper one.
                if let Some(upper) = hint.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint.set_lower(hint.lower().saturating_add(read));
                hint
            }
        }
    }
}

fn into_bytes<D: Buf>(mut data: D) -> Bytes {
    // Free for `Bytes` (hyper's and axum's data): it is split off, not copied.
    data.copy_to_bytes(data.remaining())
}

impl<B: Body> fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Untouched { .. } => "untouched",
            Kind::Replayed { .. } => "replayed",
        };
        f.debug_struct("RequestBody").field("kind", &kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;

    /// A body that yields scripted frames, then ends.
    struct Frames(VecDeque<Result<Frame<Bytes>, &'static str>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            Poll::Ready(self.0.pop_front())
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn frames(frames: impl IntoIterator<Item = Result<Frame<Bytes>, &'static str>>) -> Frames {
        Frames(frames.into_iter().collect())
    }

    async fn all_frames<B>(mut body: B) -> Vec<Result<Frame<Bytes>, B::Error>>
    where
        B: Body<Data = Bytes> + Unpin,
    {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.push(frame);
        }
        out
    }

    fn data<'a>(frame: &'a Result<Frame<Bytes>, &'static str>) -> Option<&'a [u8]> {
        frame.as_ref().ok()?.data_ref().map(|d| &d[..])
    }

    #[tokio::test]
    async fn replays_what_was_read_then_the_rest_unchanged() {
        let rest = frames([Ok(Frame::data(Bytes::from_static(b"c"))), Err("boom")]);
        let body =
            RequestBody::replayed(Bytes::from_static(b"ab"), None, None, Some(Box::pin(rest)));
        assert_eq!(body.size_hint().lower(), 2);
        let out = all_frames(body).await;
        assert_eq!(out.len(), 3);
        assert_eq!(data(&out[0]), Some(&b"ab"[..]));
        assert_eq!(data(&out[1]), Some(&b"c"[..]));
        assert_eq!(out[2].as_ref().unwrap_err(), &"boom");
    }

    #[tokio::test]
    async fn replays_trailers_and_errors_where_reading_stopped() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "1".parse().unwrap());
        let body: RequestBody<Frames> = RequestBody::replayed(
            Bytes::from_static(b"ab"),
            Some(Frame::trailers(trailers.clone())),
            None,
            None,
        );
        let out = all_frames(body).await;
        assert_eq!(data(&out[0]), Some(&b"ab"[..]));
        assert_eq!(out[1].as_ref().unwrap().trailers_ref(), Some(&trailers));
        assert_eq!(out.len(), 2);

        let body: RequestBody<Frames> =
            RequestBody::replayed(Bytes::new(), None, Some("reset"), None);
        assert!(!body.is_end_stream());
        let out = all_frames(body).await;
        assert_eq!(out.len(), 1, "an empty read is not replayed as a frame");
        assert_eq!(out[0].as_ref().unwrap_err(), &"reset");
    }

    #[tokio::test]
    async fn a_fully_read_body_is_exact_and_ends() {
        let body: RequestBody<Frames> = RequestBody::replayed(
            Bytes::from_static(b"abc"),
            None,
            None,
            Some(Box::pin(frames([]))),
        );
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(body.collect().await.unwrap().to_bytes(), &b"abc"[..]);
        let empty: RequestBody<Frames> = RequestBody::replayed(Bytes::new(), None, None, None);
        assert!(empty.is_end_stream());
    }

    #[tokio::test]
    async fn untouched_passes_every_frame() {
        let body = RequestBody::untouched(frames([
            Ok(Frame::data(Bytes::from_static(b"a"))),
            Ok(Frame::trailers(HeaderMap::new())),
        ]));
        let out = all_frames(body).await;
        assert_eq!(data(&out[0]), Some(&b"a"[..]));
        assert!(out[1].as_ref().unwrap().is_trailers());
    }
}
