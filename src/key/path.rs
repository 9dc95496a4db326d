//! The path a request asked for.

use http::request::Parts;

/// The path the client asked for: axum's `OriginalUri` when a router nested this route (its
/// own URI then lacks the prefix), else the request URI's path.
pub(crate) fn request_path(parts: &Parts) -> &str {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::OriginalUri(uri)) = parts.extensions.get() {
        return uri.path();
    }
    parts.uri.path()
}
