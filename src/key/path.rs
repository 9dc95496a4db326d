//! The path a request asked for.

use http::{request::Parts, Extensions, Uri};

/// The path the client asked for: axum's `OriginalUri` when a router nested this route (its
/// own URI then lacks the prefix), else the request URI's path.
pub(crate) fn request_path(parts: &Parts) -> &str {
    path_of(&parts.uri, &parts.extensions)
}

/// [`request_path`] of a request with `uri` and `extensions`.
pub(crate) fn path_of<'a>(uri: &'a Uri, extensions: &'a Extensions) -> &'a str {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::OriginalUri(uri)) = extensions.get() {
        return uri.path();
    }
    let _ = extensions;
    uri.path()
}
