//! [`Frames`]: a request or response body of scripted frames (data, trailers, errors).

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    task::{Context, Poll},
};

/// A body of scripted frames, of unknown size unless [`claiming_size`](Self::claiming_size):
/// axum and hyper send it chunked, without a `Content-Length`. Each poll returns the next frame
/// at once.
pub struct Frames {
    frames: VecDeque<Result<Frame<Bytes>, io::Error>>,
    size: Option<u64>,
}

impl Frames {
    pub fn new() -> Self {
        Self {
            frames: VecDeque::new(),
            size: None,
        }
    }

    /// Claims an exact size of `size` bytes (whatever the frames hold).
    pub fn claiming_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.frames.push_back(Ok(Frame::data(data.into())));
        self
    }

    pub fn error(mut self, message: &str) -> Self {
        self.frames
            .push_back(Err(io::Error::other(message.to_owned())));
        self
    }

    pub fn trailer(mut self, name: &'static str, value: &'static str) -> Self {
        let mut trailers = HeaderMap::new();
        trailers.insert(name, value.parse().expect("trailer value"));
        self.frames.push_back(Ok(Frame::trailers(trailers)));
        self
    }

    pub fn into_body(self) -> Body {
        Body::new(self)
    }
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(self.frames.pop_front())
    }

    fn size_hint(&self) -> SizeHint {
        self.size.map(SizeHint::with_exact).unwrap_or_default()
    }
}
