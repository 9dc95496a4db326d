//! The scripts of an invalidation: fence an entity or a group and list what to drop, then drop
//! entries whose keys the caller made.

use super::script::{integer, strings, Script};
use crate::{
    millis::expiry_millis,
    store::{redis::routing::Routes, StoreError},
};
use fred::types::Value;
use std::{sync::LazyLock, time::Duration};

static FENCE_ENTITY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("fence_entity.lua")));
static DROP_ENTRIES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("drop_entries.lua")));
static STALE_ENTRIES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("stale_entries.lua")));
static FENCE_GROUP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("fence_group.lua")));

/// `fence_entity.lua`: fences an entity (in every namespace, or in one), drops its write leases
/// and lists its entries.
pub(crate) struct FenceEntity<'a> {
    /// The entity's index.
    pub(crate) index: &'a str,
    /// The entity's write leases.
    pub(crate) leases: &'a str,
    /// The entity's fences.
    pub(crate) fences: &'a str,
    /// The namespace, or `""` for every namespace.
    pub(crate) namespace: &'a str,
    /// How long the fence lives.
    pub(crate) fence_ttl: Duration,
}

impl FenceEntity<'_> {
    /// The members (`{namespace}:{variant}`) of the entries to drop.
    pub(crate) async fn run(&self, routes: &Routes) -> Result<Vec<String>, StoreError> {
        let keys = [self.index, self.leases, self.fences];
        let args = vec![
            Value::from(self.namespace),
            Value::from(expiry_millis(self.fence_ttl)),
        ];
        strings(FENCE_ENTITY.run(routes, &keys, args).await?)
    }
}

/// `drop_entries.lua`: drops entries of one entity, with their index members and write leases.
pub(crate) struct DropEntries<'a> {
    /// The entity's index.
    pub(crate) index: &'a str,
    /// The entity's write leases.
    pub(crate) leases: &'a str,
    /// The entries' keys and their members in the entity's index.
    pub(crate) entries: &'a [(String, String)],
}

impl DropEntries<'_> {
    /// How many of the entries were there.
    pub(crate) async fn run(&self, routes: &Routes) -> Result<u64, StoreError> {
        let mut keys = Vec::with_capacity(2 + self.entries.len());
        keys.extend([self.index, self.leases]);
        keys.extend(self.entries.iter().map(|(key, _)| key.as_str()));
        let args = self
            .entries
            .iter()
            .map(|(_, member)| Value::from(member.as_str()))
            .collect();
        let gone = integer(DROP_ENTRIES.run(routes, &keys, args).await?)?;
        Ok(u64::try_from(gone).unwrap_or(0))
    }
}

/// `stale_entries.lua`: marks entries of one entity stale (a soft purge), dropping their write
/// leases.
pub(crate) struct StaleEntries<'a> {
    /// The entity's write leases.
    pub(crate) leases: &'a str,
    /// The entries' keys and their members in the entity's index.
    pub(crate) entries: &'a [(String, String)],
    /// Now, in milliseconds since the Unix epoch: the entries' freshness ends then.
    pub(crate) now_millis: u64,
}

impl StaleEntries<'_> {
    /// How many of the entries were there.
    pub(crate) async fn run(&self, routes: &Routes) -> Result<u64, StoreError> {
        let mut keys = Vec::with_capacity(1 + self.entries.len());
        keys.push(self.leases);
        keys.extend(self.entries.iter().map(|(key, _)| key.as_str()));
        let mut args = Vec::with_capacity(1 + self.entries.len());
        args.push(Value::from(self.now_millis.to_string()));
        args.extend(
            self.entries
                .iter()
                .map(|(_, member)| Value::from(member.as_str())),
        );
        let marked = integer(STALE_ENTRIES.run(routes, &keys, args).await?)?;
        Ok(u64::try_from(marked).unwrap_or(0))
    }
}

/// `fence_group.lua`: fences a namespace or a tag and lists its live members.
pub(crate) struct FenceGroup<'a> {
    /// The group's index.
    pub(crate) index: &'a str,
    /// The group's fence.
    pub(crate) fence: &'a str,
    /// How long the fence lives.
    pub(crate) fence_ttl: Duration,
}

impl FenceGroup<'_> {
    /// The members whose entries have not expired.
    pub(crate) async fn run(&self, routes: &Routes) -> Result<Vec<String>, StoreError> {
        let keys = [self.index, self.fence];
        let args = vec![Value::from(expiry_millis(self.fence_ttl))];
        strings(FENCE_GROUP.run(routes, &keys, args).await?)
    }
}
