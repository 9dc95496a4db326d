//! Tags a handler attaches to a response: read from the tag header (removed before the client
//! sees it, never stored) and from the route's tag function, within bounds.

use crate::{key::encoded, policy::TagFn};
use http::{response, HeaderMap, HeaderName};

/// The most tags one entry carries; a response with more is passed on but not stored.
pub const MAX_TAGS: usize = 64;

/// The longest tag, in bytes; a response with a longer one is passed on but not stored.
pub const MAX_TAG_LEN: usize = 128;

/// A response's tags, encoded as key fields are; `None` when there are too many, one is too long
/// or the header is not visible ASCII: such a response is not stored (never indexed).
pub(crate) fn response_tags(
    header: Option<&HeaderName>,
    parts: &mut response::Parts,
    from_head: Option<&TagFn>,
) -> Option<Vec<String>> {
    let from_header = header.map(|name| take_header(&mut parts.headers, name));
    let mut tags = Vec::new();
    if let Some(from_header) = from_header {
        tags = from_header?;
    }
    if let Some(tag_fn) = from_head {
        for tag in tag_fn(parts) {
            if tags.len() >= MAX_TAGS || tag.is_empty() || tag.len() > MAX_TAG_LEN {
                return None;
            }
            tags.push(encoded(&tag));
        }
    }
    tags.sort_unstable();
    tags.dedup();
    Some(tags)
}

/// Removes every `name` header and splits its values on commas and whitespace (`Cache-Tag`
/// and `Surrogate-Key` styles).
fn take_header(headers: &mut HeaderMap, name: &HeaderName) -> Option<Vec<String>> {
    let values: Vec<_> = headers.get_all(name).iter().cloned().collect();
    headers.remove(name);
    let mut tags = Vec::new();
    for value in &values {
        let value = value.to_str().ok()?;
        for tag in value
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
        {
            if tags.len() >= MAX_TAGS || tag.len() > MAX_TAG_LEN {
                return None;
            }
            tags.push(encoded(tag));
        }
    }
    Some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags_of(values: &[&str]) -> Option<Vec<String>> {
        let mut builder = http::Response::builder();
        for value in values {
            builder = builder.header("cache-tag", *value);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        let tags = response_tags(
            Some(&HeaderName::from_static("cache-tag")),
            &mut parts,
            None,
        );
        assert!(!parts.headers.contains_key("cache-tag"), "always removed");
        tags
    }

    #[test]
    fn tags_split_on_commas_and_spaces() {
        assert_eq!(
            tags_of(&["team-7, league  x", "a:b"]),
            Some(vec![
                "a%3Ab".into(),
                "league".into(),
                "team-7".into(),
                "x".into()
            ])
        );
        assert_eq!(tags_of(&[]), Some(vec![]));
    }

    #[test]
    fn too_many_or_too_long_is_not_stored() {
        let many = (0..10_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(tags_of(&[&many]), None);
        assert_eq!(tags_of(&[&"x".repeat(1024 * 1024)]), None);
        assert!(tags_of(&[&"x".repeat(MAX_TAG_LEN)]).is_some());
    }
}
