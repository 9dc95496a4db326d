//! Reading a request body, bounded, so that it can be keyed.

use crate::{body::RequestBody, observe::event::Bypass};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::{Body, Frame};
use std::{
    pin::Pin,
    task::{ready, Context, Poll},
};

/// A request body being read to its end, at most `limit` bytes of data. Boxed, so that a body
/// that cannot be keyed can be handed on with what it has left.
pub(crate) struct ReadBody<B> {
    body: Option<Pin<Box<B>>>,
    read: Read,
    limit: usize,
}

/// What reading a body came to.
pub(crate) enum BodyRead<B: Body> {
    /// The whole body, within the limit and without trailers: it can be keyed.
    Complete(Bytes),
    /// It cannot be keyed: the inner service gets what was read and then the rest, unchanged.
    Unkeyable(RequestBody<B>, Bypass),
}

/// The data read so far: one chunk is kept as it came (no copy); more are joined.
enum Read {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl<B: Body> ReadBody<B> {
    pub(crate) fn new(body: B, limit: usize) -> Self {
        Self {
            body: Some(Box::pin(body)),
            read: Read::Empty,
            limit,
        }
    }

    /// Reads until the body ends, passes the limit, fails or yields trailers.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<BodyRead<B>> {
        loop {
            let body = self.body.as_mut().expect("polled after completion");
            let frame = match ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(error)) => {
                    return Poll::Ready(self.unkeyable(None, Some(error), Bypass::BodyError))
                }
                None => return Poll::Ready(self.complete()),
            };
            match frame.into_data() {
                Ok(mut data) => {
                    let chunk = data.copy_to_bytes(data.remaining());
                    if self.read.len() + chunk.len() > self.limit {
                        // Not joined: an oversized chunk is passed on as it came.
                        let next = Frame::data(chunk);
                        return Poll::Ready(self.unkeyable(Some(next), None, Bypass::BodyTooLarge));
                    }
                    self.read.push(chunk, self.limit);
                }
                Err(frame) => {
                    let next = frame.into_trailers().ok().map(Frame::trailers);
                    return Poll::Ready(self.unkeyable(next, None, Bypass::RequestTrailers));
                }
            }
            if self.body.as_ref().is_some_and(|b| b.is_end_stream()) {
                return Poll::Ready(self.complete());
            }
        }
    }

    fn complete(&mut self) -> BodyRead<B> {
        self.body = None;
        BodyRead::Complete(self.read.take())
    }

    /// Gives up keying: what was read, then the frame or error reading stopped at, then the
    /// rest of the body.
    fn unkeyable(
        &mut self,
        next: Option<Frame<Bytes>>,
        error: Option<B::Error>,
        reason: Bypass,
    ) -> BodyRead<B> {
        let rest = self.body.take();
        BodyRead::Unkeyable(
            RequestBody::replayed(self.read.take(), next, error, rest),
            reason,
        )
    }
}

impl Read {
    fn len(&self) -> usize {
        match self {
            Read::Empty => 0,
            Read::One(chunk) => chunk.len(),
            Read::Many(joined) => joined.len(),
        }
    }

    /// Appends `chunk`; the total stays within `limit`, which bounds the buffer.
    fn push(&mut self, chunk: Bytes, limit: usize) {
        if chunk.is_empty() {
            return;
        }
        *self = match std::mem::replace(self, Read::Empty) {
            Read::Empty => Read::One(chunk),
            Read::One(first) => {
                let len = first.len() + chunk.len();
                let mut joined = BytesMut::with_capacity(len.saturating_mul(2).min(limit).max(len));
                joined.put(first);
                joined.put(chunk);
                Read::Many(joined)
            }
            Read::Many(mut joined) => {
                joined.put(chunk);
                Read::Many(joined)
            }
        };
    }

    fn take(&mut self) -> Bytes {
        match std::mem::replace(self, Read::Empty) {
            Read::Empty => Bytes::new(),
            Read::One(chunk) => chunk,
            Read::Many(joined) => joined.freeze(),
        }
    }
}
