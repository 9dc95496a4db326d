//! The scripts of a write-back: take a write lease, join the group indexes, store the entry.

use super::script::{age, integer, Script};
use crate::{
    millis::expiry_millis,
    store::{redis::routing::Routes, StoreError},
};
use bytes::Bytes;
use fred::types::Value;
use std::{sync::LazyLock, time::Duration};

static WRITE_LEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("write_lease.lua")));
static JOIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("join.lua")));
static STORE_ENTRY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("store_entry.lua")));

/// `write_lease.lua`: records a write lease for an entry.
pub(crate) struct WriteLease<'a> {
    /// The entity's write leases.
    pub(crate) leases: &'a str,
    /// The entity's fences.
    pub(crate) fences: &'a str,
    /// The entry's member, `{namespace}:{variant}`.
    pub(crate) member: &'a str,
    pub(crate) token: &'a str,
    /// How long the leases live.
    pub(crate) ttl: Duration,
    /// The entry's namespace.
    pub(crate) namespace: &'a str,
}

impl WriteLease<'_> {
    /// The age in µs of the newest fence covering the entry, if any.
    pub(crate) async fn run(&self, routes: &Routes) -> Result<Option<u64>, StoreError> {
        let keys = [self.leases, self.fences];
        let args = vec![
            Value::from(self.member),
            Value::from(self.token),
            Value::from(expiry_millis(self.ttl)),
            Value::from(self.namespace),
        ];
        age(WRITE_LEASE.run(routes, &keys, args).await?)
    }
}

/// `join.lua`: adds an entry to a group's index (its namespace's, or a tag's).
pub(crate) struct Join<'a> {
    /// The group's index.
    pub(crate) index: &'a str,
    /// The group's fence.
    pub(crate) fence: &'a str,
    /// The entry's member in that index.
    pub(crate) member: &'a str,
    /// The entry's TTL.
    pub(crate) ttl: Duration,
}

impl Join<'_> {
    /// The age in µs of the group's fence, if any.
    pub(crate) async fn run(&self, routes: &Routes) -> Result<Option<u64>, StoreError> {
        let keys = [self.index, self.fence];
        let args = vec![
            Value::from(self.member),
            Value::from(expiry_millis(self.ttl)),
        ];
        age(JOIN.run(routes, &keys, args).await?)
    }
}

/// `store_entry.lua`: stores the entry if its write lease is still there.
pub(crate) struct StoreEntry<'a> {
    /// The entry's key.
    pub(crate) entry: &'a str,
    /// The entity's write leases.
    pub(crate) leases: &'a str,
    /// The entity's index.
    pub(crate) entity_index: &'a str,
    /// The entry's member, `{namespace}:{variant}`.
    pub(crate) member: &'a str,
    /// The lease's token.
    pub(crate) token: &'a str,
    /// The encoded entry.
    pub(crate) value: Bytes,
    /// How long the entry lives.
    pub(crate) ttl: Duration,
}

impl StoreEntry<'_> {
    /// Whether the entry was stored (`false`: its lease was gone).
    pub(crate) async fn run(self, routes: &Routes) -> Result<bool, StoreError> {
        let keys = [self.entry, self.leases, self.entity_index];
        let args = vec![
            Value::from(self.member),
            Value::from(self.token),
            Value::from(self.value),
            Value::from(expiry_millis(self.ttl)),
        ];
        Ok(integer(STORE_ENTRY.run(routes, &keys, args).await?)? == 1)
    }
}
