//! The invalidation protocol on Redis: indexes next to the entries, write leases and
//! invalidation fences, each changed by one script on one hash slot (`scripts/`), so it works
//! unchanged on Redis Cluster; and cross-instance miss leases.
//!
//! A write-back takes three steps, each one script on one slot:
//! 1. **lease** (entity slot): records a write lease (a random token) for the entry, and
//!    answers how long ago the entity (or the entity in this namespace) was last invalidated;
//! 2. **join** (the namespace's slot, and each tag's, at once): adds the entry to the
//!    namespace and tag indexes, and answers how long ago each was last invalidated;
//! 3. **store** (entity slot): stores the entry and indexes it under its entity, only if its
//!    lease is still there.
//!
//! An invalidation first records its time (a *fence*) where it starts, then drops the entries
//! (and their write leases). A write-back whose request began before a fence it sees (its age
//! is less than the request's age when the answer arrived) stops; one whose lease an
//! invalidation dropped is refused by step 3. Either way the invalidation wins:
//! - an entity fence drops the scope's leases with it, so an entry stored after it belongs to
//!   a request that began after it;
//! - a namespace or tag fence only stops later joins; an entry stored between the group fence
//!   and its entity's drop joined before the fence, so the drop lists it and deletes it (or has
//!   already removed its lease).
//!
//! Ages are measured on each node's clock and the request's age on the app's monotonic clock:
//! no two clocks are compared. Fences live [`FENCE_WINDOW`]; a write-back of a request older
//! than that stops.
//!
//! Indexes are sorted sets scored by expiry, trimmed on every write and expiring with their
//! last member (see `key/index.rs`), so none grows past the live entries it indexes.

use super::{
    routing::Routes,
    scripts::{
        DropEntries, FenceEntity, FenceGroup, Join, ReleaseMissLease, StaleEntries, StoreEntry,
        TakeMissLease, WriteLease,
    },
};
use crate::{
    invalidate::{Invalidation, InvalidationScope},
    key::{
        index::{self, entity_member_key},
        EntryAddress,
    },
    store::{token::token, write::FENCE_WINDOW, EntryWrite, Lease, StoreError, StoreErrorKind},
};
use futures_util::StreamExt;
use std::{
    collections::HashMap,
    future::Future,
    time::{Duration, Instant},
};

/// How long a write lease lives: far longer than the steps of a write-back take.
const LEASE_TTL: Duration = Duration::from_secs(30);

/// How many scripts one invalidation keeps in flight at once.
const FAN_OUT: usize = 64;

/// The most entries one drop script deletes (a larger entity takes several).
const DROP_BATCH: usize = 512;

/// Writes `write` by the lease protocol; `Ok(false)` when an invalidation won.
pub(crate) async fn write(routes: Routes, write: EntryWrite) -> Result<bool, StoreError> {
    let key = write.key();
    let Some(address) = EntryAddress::parse(key) else {
        return Err(StoreError::new(
            StoreErrorKind::Rejected,
            "not a key of this crate's KeyFactory",
        ));
    };
    if write.outlived_fences() {
        return Ok(false);
    }
    let started = write.started();
    let member = address.entity_member();
    let leases = index::entity_leases(address.prefix, address.entity);
    let fences = index::entity_fences(address.prefix, address.entity);
    let token = token();
    let lease = WriteLease {
        leases: &leases,
        fences: &fences,
        member: &member,
        token: &token,
        ttl: LEASE_TTL,
        namespace: address.namespace,
    };
    if raced(lease.run(&routes).await?, started) {
        return Ok(false);
    }

    let mut groups = vec![(
        index::namespace_index(address.prefix, address.namespace),
        index::namespace_fence(address.prefix, address.namespace),
        address.entity.to_owned(),
    )];
    let tag_member = address.tag_member();
    for tag in write.tag_names() {
        groups.push((
            index::tag_index(address.prefix, tag),
            index::tag_fence(address.prefix, tag),
            tag_member.clone(),
        ));
    }
    let joins = groups.iter().map(|(index, fence, member)| {
        let join = Join {
            index,
            fence,
            member,
            ttl: write.ttl(),
        };
        let routes = &routes;
        async move { join.run(routes).await }
    });
    for age in futures_util::future::join_all(joins).await {
        if raced(age?, started) {
            return Ok(false);
        }
    }

    let entity_index = index::entity_index(address.prefix, address.entity);
    let store = StoreEntry {
        entry: key.as_str(),
        leases: &leases,
        entity_index: &entity_index,
        member: &member,
        token: &token,
        value: write.value().clone(),
        ttl: write.ttl(),
    };
    store.run(&routes).await
}

/// Runs `invalidation`, and waits for the replicas the store's durability asks for; the number
/// of entries dropped.
pub(crate) async fn invalidate(
    routes: Routes,
    invalidation: Invalidation,
) -> Result<u64, StoreError> {
    let prefix = invalidation.prefix();
    let routes = &routes.for_invalidation();
    // A soft purge marks the entries stale as of now instead of dropping them.
    let soft = invalidation.is_soft().then(now_millis);
    let gone = match invalidation.scope() {
        InvalidationScope::Entity { entity } => drop_entity(routes, prefix, entity, "", soft).await,
        InvalidationScope::EntityInNamespace { namespace, entity } => {
            drop_entity(routes, prefix, entity, namespace, soft).await
        }
        InvalidationScope::Namespace { namespace } => {
            let fence = FenceGroup {
                index: &index::namespace_index(prefix, namespace),
                fence: &index::namespace_fence(prefix, namespace),
                fence_ttl: FENCE_WINDOW,
            };
            let entities = fence.run(routes).await?;
            let drops: Vec<_> = entities
                .iter()
                .map(|entity| drop_entity(routes, prefix, entity, namespace, soft))
                .collect();
            sum(drops).await
        }
        InvalidationScope::Tag { tag } => {
            let fence = FenceGroup {
                index: &index::tag_index(prefix, tag),
                fence: &index::tag_fence(prefix, tag),
                fence_ttl: FENCE_WINDOW,
            };
            let members = fence.run(routes).await?;
            let mut by_entity: HashMap<&str, Vec<(String, String)>> = HashMap::new();
            for member in &members {
                // A member that is not an entry of this prefix (never written by us) is
                // skipped: nothing outside the deployment's entries can be dropped.
                let Some((key, entity, entity_member)) = index::tag_member_key(prefix, member)
                else {
                    continue;
                };
                by_entity
                    .entry(entity)
                    .or_default()
                    .push((key, entity_member));
            }
            let drops: Vec<_> = by_entity
                .into_iter()
                .map(|(entity, entries)| drop_entries(routes, prefix, entity, entries, soft))
                .collect();
            sum(drops).await
        }
    }?;
    // Not acknowledged before the replicas hold it: a failover must not undo it.
    routes.wait_for_replicas().await?;
    Ok(gone)
}

/// Fences `entity` (in `namespace`, or in every namespace when it is empty), then drops its
/// entries (marks them stale as of `soft`, milliseconds since the Unix epoch, when given).
async fn drop_entity(
    routes: &Routes,
    prefix: &str,
    entity: &str,
    namespace: &str,
    soft: Option<u64>,
) -> Result<u64, StoreError> {
    let fence = FenceEntity {
        index: &index::entity_index(prefix, entity),
        leases: &index::entity_leases(prefix, entity),
        fences: &index::entity_fences(prefix, entity),
        namespace,
        fence_ttl: FENCE_WINDOW,
    };
    let members = fence.run(routes).await?;
    let entries = members
        .into_iter()
        .filter_map(|member| {
            let key = entity_member_key(prefix, entity, &member)?;
            Some((String::from(key), member))
        })
        .collect();
    drop_entries(routes, prefix, entity, entries, soft).await
}

/// Drops `entries` (keys and members) of `entity`, [`DROP_BATCH`] at a time; with `soft`,
/// marks them stale as of then instead (they stay in the index).
async fn drop_entries(
    routes: &Routes,
    prefix: &str,
    entity: &str,
    entries: Vec<(String, String)>,
    soft: Option<u64>,
) -> Result<u64, StoreError> {
    let index = index::entity_index(prefix, entity);
    let leases = index::entity_leases(prefix, entity);
    let mut gone = 0;
    for batch in entries.chunks(DROP_BATCH) {
        gone += match soft {
            Some(now_millis) => {
                let stale = StaleEntries {
                    leases: &leases,
                    entries: batch,
                    now_millis,
                };
                stale.run(routes).await?
            }
            None => {
                let drop = DropEntries {
                    index: &index,
                    leases: &leases,
                    entries: batch,
                };
                drop.run(routes).await?
            }
        };
    }
    Ok(gone)
}

/// Milliseconds since the Unix epoch, as entries record their time.
fn now_millis() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    crate::millis::millis(since.unwrap_or_default())
}

/// Runs `drops` with at most [`FAN_OUT`] in flight; their sum, or the first error.
async fn sum<F>(drops: Vec<F>) -> Result<u64, StoreError>
where
    F: Future<Output = Result<u64, StoreError>>,
{
    let mut results = futures_util::stream::iter(drops).buffer_unordered(FAN_OUT);
    let mut gone = 0;
    while let Some(result) = results.next().await {
        gone += result?;
    }
    Ok(gone)
}

/// Takes the miss lease of `key`, unless its entry is there or another holds it.
pub(crate) async fn lease(routes: Routes, key: String, ttl: Duration) -> Result<Lease, StoreError> {
    let Some(address) = EntryAddress::parse_str(&key) else {
        return Ok(Lease::Taken(String::new()));
    };
    let take = TakeMissLease {
        entry: &key,
        lease: &index::miss_lease(&address),
        token: token(),
        ttl,
    };
    take.run(&routes).await
}

/// Ends the miss lease `token` of `key`.
pub(crate) async fn release(
    routes: Routes,
    key: String,
    token: String,
    stored: bool,
    ttl: Duration,
) -> Result<(), StoreError> {
    let Some(address) = EntryAddress::parse_str(&key) else {
        return Ok(());
    };
    let release = ReleaseMissLease {
        lease: &index::miss_lease(&address),
        token: &token,
        stored,
        ttl,
    };
    release.run(&routes).await
}

/// Whether a fence of `age_us` (if any) may be younger than the request that began at
/// `started`, measured when the fence's age arrived.
///
/// The fence was set at most `age_us` before the answer arrived, so if it is older than the
/// request, the invalidation ran before the request began. Erring towards refusing: a
/// millisecond, and a thousandth of the request's age, of slack for the two clocks' resolution
/// and rates.
fn raced(age_us: Option<u64>, started: Instant) -> bool {
    let elapsed = started.elapsed().as_micros();
    age_us.is_some_and(|age| u128::from(age) <= elapsed + elapsed / 1000 + 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        key::{KeyFactory, Variant},
        store::redis::test_server::Server,
    };

    #[tokio::test]
    async fn an_entity_of_more_entries_than_a_batch_is_dropped_whole() {
        let redis = Server::start().await;
        let keys = KeyFactory::new("a", "b", "c");
        let variants = DROP_BATCH * 2 + 76;
        for v in 0..variants {
            let key = keys.key("n", "e", &Variant::new().query("v", v.to_string()));
            let entry = EntryWrite::new(key, "entry".into(), Duration::from_secs(60));
            assert!(write(redis.routes(), entry).await.unwrap(), "stored");
        }
        let invalidation = Invalidation::entity(&keys, "e");
        let gone = invalidate(redis.routes(), invalidation.clone())
            .await
            .unwrap();
        assert_eq!(gone, variants as u64);
        assert_eq!(
            redis.integer(&["DBSIZE"]).await,
            2,
            "the fence and the namespace index"
        );
        assert_eq!(invalidate(redis.routes(), invalidation).await.unwrap(), 0);
    }
}
