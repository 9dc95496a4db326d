//! Turning a request on a route into its cache key and identity: the glue between the route's
//! [`Policy`], the request and the key types of `key/`.

use crate::{
    key::{identity, path_of, request_path, BodyMemo, CacheKey, Identity, Variant},
    negotiate::vary::{check, VaryCheck},
    policy::Policy,
    rules::request::query_pairs,
    write_back::WritePlan,
};
use http::{header, request::Parts, HeaderMap, HeaderName, Method, Request};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use xxhash_rust::xxh3::xxh3_64;

/// The key up to and including the encoded entity (`{prefix}{namespace}:{entity`), or `None`
/// when the request has no usable entity; `route_prefix` is `KeyFactory::start` of the route's
/// namespace.
pub(crate) fn key_start(route_prefix: &str, policy: &Policy, parts: &Parts) -> Option<String> {
    let mut key = String::with_capacity(route_prefix.len() + 48);
    key.push_str(route_prefix);
    policy.entity.push_encoded(parts, &mut key).then_some(key)
}

/// What keyed a request besides its key and identity, kept for its response: one that varies
/// on headers the key did not cover is keyed again from it.
pub(super) struct KeyInputs {
    /// The variant the key and identity were made from.
    variant: Variant,
    /// The headers the namespace had learned from `Vary` when the request was keyed.
    pub(super) learned: Option<Arc<[HeaderName]>>,
}

impl KeyInputs {
    /// Whether the key holds the coding a server would pick for the request, so that an entry
    /// in a coding the request does not accept must not answer it.
    pub(super) fn negotiates_coding(&self) -> bool {
        self.learned
            .as_ref()
            .is_some_and(|names| names.contains(&header::ACCEPT_ENCODING))
    }
}

/// The key of a request on a route, and its identity: the digest of the exact inputs (method,
/// path and variant encoding) that a stored entry must match to answer it.
///
/// `key_start` comes from [`key_start`]; `body` is the request body, read to its end, whose
/// digest `bodies` remembers.
pub(super) fn request_key(
    key_start: String,
    policy: &Policy,
    stored_method: &Method,
    parts: &Parts,
    body: &[u8],
    bodies: &BodyMemo,
) -> (CacheKey, Identity, KeyInputs) {
    let mut variant = Variant::new();
    if !body.is_empty() {
        variant = variant.body_digest(bodies.digest(body));
        // The media type decides how a handler reads the body (axum's `Json` refuses anything
        // but JSON): it is keyed whenever there is a body.
        if let Some(media_type) = parts.headers.get(header::CONTENT_TYPE) {
            variant = variant.header(&header::CONTENT_TYPE, media_type.as_bytes());
        }
    }
    if policy.keys_method() {
        variant = variant.method(stored_method);
    }
    if !policy.vary_query.is_empty() {
        for (name, value) in query_pairs(parts.uri.query()) {
            if policy.vary_query.iter().any(|n| n.as_bytes() == name) {
                variant = variant.query(name, value);
            }
        }
    }
    for name in &policy.vary_headers {
        for value in parts.headers.get_all(name) {
            variant = variant.header(name, value.as_bytes());
        }
    }
    let learned = policy.negotiation.learned();
    for name in learned.iter().flat_map(|names| names.iter()) {
        variant = variant.negotiated(name, &parts.headers);
    }
    let encoded = variant.encode();
    let key = CacheKey::finish(key_start, &variant, &encoded);
    let identity = identity(stored_method, request_path(parts), &encoded);
    (key, identity, KeyInputs { variant, learned })
}

/// A forwarded request's key inputs, kept until its response says whether it varies on
/// headers the key did not cover.
pub(super) struct Rekey {
    inputs: KeyInputs,
    method: Method,
    path: String,
    headers: HeaderMap,
}

/// What keying a write-back again for its response's `Vary` came to.
pub(super) enum Rekeyed {
    /// Store it under the plan's key (changed if the response taught the namespace headers).
    Store,
    /// Not stored: `Vary: *`, a credential or too many headers.
    Refused,
    /// Not stored: its key has as many variants as the route allows.
    TooManyVariants,
}

impl Rekey {
    /// Keeps what keyed `request` (stored under its own method), for its response.
    pub(super) fn new<B>(inputs: KeyInputs, request: &Request<B>) -> Self {
        Self {
            inputs,
            method: request.method().clone(),
            path: path_of(request.uri(), request.extensions()).to_owned(),
            headers: request.headers().clone(),
        }
    }

    /// Checks the response's `Vary` (`response`) and, when the key did not cover it, keys
    /// `plan` again with what the namespace learned; then applies the route's bound on
    /// variants per key, for an entry kept `retention`.
    pub(super) fn key(
        self,
        policy: &Policy,
        response: &HeaderMap,
        plan: &mut WritePlan,
        retention: Duration,
    ) -> Rekeyed {
        let learned = match check(policy, response, self.inputs.learned.as_deref()) {
            VaryCheck::Refused => return Rekeyed::Refused,
            VaryCheck::Covered => self.inputs.learned,
            VaryCheck::Learned(learned) => Some(learned),
        };
        let Some(learned) = learned else {
            return Rekeyed::Store;
        };
        let Some((key_start, _)) = plan.key.as_str().rsplit_once("}:") else {
            return Rekeyed::Refused;
        };
        let base = self.inputs.variant.without_negotiated();
        let mut variant = base.clone();
        for name in learned.iter() {
            variant = variant.negotiated(name, &self.headers);
        }
        let encoded = variant.encode();
        let base_key = CacheKey::finish(key_start.to_owned(), &base, &base.encode());
        let until = Instant::now() + retention;
        let id = xxh3_64(&encoded);
        if !(policy.negotiation.variants).admit(base_key.as_str(), id, until, policy.max_variants) {
            return Rekeyed::TooManyVariants;
        }
        plan.key = CacheKey::finish(key_start.to_owned(), &variant, &encoded);
        plan.identity = identity(&self.method, &self.path, &encoded);
        Rekeyed::Store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{Entity, KeyFactory};
    use http::Request;

    fn key_of(policy: &Policy, req: Request<()>, body: &[u8]) -> (CacheKey, Identity) {
        let keys = KeyFactory::new("a", "b", "c");
        let (parts, ()) = req.into_parts();
        let start = key_start(&keys.start(&policy.namespace), policy, &parts).expect("an entity");
        let method = policy
            .lookup_method(&parts.method)
            .expect("a cached method")
            .clone();
        let (key, identity, _) =
            request_key(start, policy, &method, &parts, body, &BodyMemo::new());
        (key, identity)
    }

    #[test]
    fn same_key_other_path_is_another_identity() {
        let policy = Policy::new("n").entity(Entity::none());
        let (key_a, id_a) = key_of(&policy, Request::get("/a").body(()).unwrap(), b"");
        let (key_b, id_b) = key_of(&policy, Request::get("/b").body(()).unwrap(), b"");
        assert_eq!(key_a, key_b, "one entity, no variant: one key");
        assert_eq!(key_a.as_str(), "a:b:c:n:{_}:default");
        assert_ne!(id_a, id_b, "but each path has its own identity");
    }

    #[test]
    fn keyed_query_and_headers_vary_the_key() {
        let policy = Policy::new("n")
            .vary_query(["lang"])
            .ignore_query(["utm"])
            .vary_headers([header::ACCEPT_LANGUAGE]);
        let get = |uri: &str, lang: &str| {
            let req = Request::get(uri)
                .header(header::ACCEPT_LANGUAGE, lang)
                .body(())
                .unwrap();
            key_of(&policy, req, b"").0
        };
        assert_eq!(get("/x?lang=fr&utm=1", "fr"), get("/x?utm=2&lang=fr", "fr"));
        assert_ne!(get("/x?lang=fr", "fr"), get("/x?lang=de", "fr"));
        assert_ne!(get("/x?lang=fr", "fr"), get("/x?lang=fr", "de"));
    }

    #[test]
    fn a_body_keys_its_media_type() {
        let policy = Policy::new("n").methods([Method::POST]);
        let post = |media_type: &str| {
            let req = Request::post("/x")
                .header(header::CONTENT_TYPE, media_type)
                .body(())
                .unwrap();
            key_of(&policy, req, br#"{"a":1}"#).0
        };
        assert_ne!(post("application/json"), post("text/plain"));
    }
}
