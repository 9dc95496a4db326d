//! The scripts of cross-instance coalescing: take an entry's miss lease, release it.

use super::script::{unexpected, Script};
use crate::{
    millis::expiry_millis,
    store::{redis::routing::Routes, Lease, StoreError},
};
use fred::types::Value;
use std::{sync::LazyLock, time::Duration};

static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("take_miss_lease.lua")));
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("release_miss_lease.lua")));

/// `take_miss_lease.lua`: takes an entry's miss lease unless the entry is there or the lease
/// is held.
pub(crate) struct TakeMissLease<'a> {
    /// The entry's key.
    pub(crate) entry: &'a str,
    /// The entry's miss lease.
    pub(crate) lease: &'a str,
    /// This caller's token.
    pub(crate) token: String,
    /// How long the lease lives.
    pub(crate) ttl: Duration,
}

impl TakeMissLease<'_> {
    /// What the caller found: the entry, the lease taken (under its token), held, or "forward".
    pub(crate) async fn run(self, routes: &Routes) -> Result<Lease, StoreError> {
        let keys = [self.entry, self.lease];
        let args = vec![
            Value::from(self.token.as_str()),
            Value::from(expiry_millis(self.ttl)),
        ];
        match TAKE.run(routes, &keys, args).await? {
            Value::Bytes(bytes) => Ok(Lease::Filled(bytes)),
            Value::String(text) => Ok(Lease::Filled(text.into_inner())),
            Value::Array(items) => match items.as_slice() {
                [Value::Integer(1)] => Ok(Lease::Taken(self.token)),
                [Value::Integer(0), holder] if holder.as_str().as_deref() == Some("fwd") => {
                    Ok(Lease::Forward)
                }
                [Value::Integer(0), _] => Ok(Lease::Held),
                _ => Err(unexpected()),
            },
            _ => Err(unexpected()),
        }
    }
}

/// `release_miss_lease.lua`: ends a miss lease if it is still the caller's.
pub(crate) struct ReleaseMissLease<'a> {
    /// The entry's miss lease.
    pub(crate) lease: &'a str,
    /// The caller's token.
    pub(crate) token: &'a str,
    /// Whether the entry was stored.
    pub(crate) stored: bool,
    /// How long a "forward" answer lasts when it was not.
    pub(crate) ttl: Duration,
}

impl ReleaseMissLease<'_> {
    pub(crate) async fn run(&self, routes: &Routes) -> Result<(), StoreError> {
        let args = vec![
            Value::from(self.token),
            Value::from(if self.stored { "1" } else { "0" }),
            Value::from(expiry_millis(self.ttl)),
        ];
        RELEASE.run(routes, &[self.lease], args).await.map(|_| ())
    }
}
