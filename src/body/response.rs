//! [`ResponseBody`]: a cached body, or the inner body recorded for write-back.

use crate::write_back::WriteBack;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    pin::Pin,
    task::{ready, Context, Poll},
};

pin_project! {
    /// Response body for [`Cache`](crate::Cache): the body of a stored entry, or the inner
    /// service's body, passed on frame by frame (and recorded when the response is stored).
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Cached { data: Option<Bytes> },
        Inner {
            #[pin]
            body: B,
            write: Option<WriteBack>,
        },
    }
}

impl<B> ResponseBody<B> {
    /// A body served from the store (`None` for a `HEAD` response).
    pub(crate) fn cached(data: Option<Bytes>) -> Self {
        let data = data.filter(|d| !d.is_empty());
        Self {
            kind: Kind::Cached { data },
        }
    }

    /// The inner body, passed on untouched.
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body, write: None },
        }
    }
}

impl<B: Body<Data = Bytes>> ResponseBody<B> {
    /// The inner body, recorded into `write` as it streams; stored when it ends cleanly.
    pub(crate) fn recorded(body: B, write: WriteBack) -> Self {
        if body.is_end_stream() {
            // Nobody will poll an empty body: it is complete already.
            write.finish();
            return Self::inner(body);
        }
        Self {
            kind: Kind::Inner {
                body,
                write: Some(write),
            },
        }
    }
}

/// An empty body, as middleware outside the cache (tower-http's `TimeoutLayer`) makes for the
/// responses it writes itself.
impl<B> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::cached(None)
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Cached { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Inner { mut body, write } => {
                let frame = ready!(body.as_mut().poll_frame(cx));
                match &frame {
                    Some(Ok(frame)) => {
                        let keep = match (write.as_mut(), frame.data_ref()) {
                            (Some(w), Some(data)) => w.push(data),
                            // Trailers are not stored: a response with them is not either.
                            (Some(_), None) => false,
                            (None, _) => true,
                        };
                        if !keep {
                            *write = None;
                        } else if body.is_end_stream() {
                            if let Some(write) = write.take() {
                                write.finish();
                            }
                        }
                    }
                    // A failed body is never stored.
                    Some(Err(_)) => *write = None,
                    None => {
                        if let Some(write) = write.take() {
                            write.finish();
                        }
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Cached { data } => data.is_none(),
            Kind::Inner { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Cached { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Inner { body, .. } => body.size_hint(),
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Cached { .. } => "cached",
            Kind::Inner { write: Some(_), .. } => "inner (recording)",
            Kind::Inner { .. } => "inner",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}
