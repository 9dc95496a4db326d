//! Invalidation on Redis: indexes next to the entries, write leases and invalidation fences,
//! each changed by one Lua script on one hash slot, so it works unchanged on Redis Cluster.
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
//! and their leases. A write-back whose request began before a fence it sees (its age is less
//! than the request's age when the answer arrived) stops; one whose lease an invalidation
//! dropped is refused by step 3. Either way the invalidation wins. Ages are measured on each
//! node's clock and the request's age on the app's monotonic clock: no two clocks are
//! compared. Fences live [`FENCE_WINDOW`]; a write-back of a request older than that stops.
//!
//! Indexes are sorted sets scored by expiry, trimmed on every write and expiring with their
//! last member (see `key/index.rs`), so none grows past the live entries it indexes.

use super::{
    redis::{command_options, RedisStore},
    EntryWrite, Lease, StoreError, StoreErrorKind, StoreFuture,
};
use crate::{
    invalidation::{Invalidation, InvalidationScope},
    key::index::{self, EntryAddress},
};
use fred::{
    interfaces::ClientLike,
    types::{ClusterHash, CustomCommand, Value},
    util::{redis_keyslot, sha1_hash},
};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        LazyLock,
    },
    time::{Duration, Instant},
};

/// How long an invalidation's fence lives: a write-back of a request older than this is never
/// stored (it might have raced a fence that has expired).
pub(crate) const FENCE_WINDOW: Duration = Duration::from_secs(600);

/// How long a write lease lives: far longer than the steps of a write-back take.
const LEASE_TTL: Duration = Duration::from_secs(30);

/// How many scripts one invalidation keeps in flight at once.
const FAN_OUT: usize = 64;

/// A Lua script, sent by its SHA-1 and loaded on a node that does not know it.
struct Script {
    lua: &'static str,
    sha: String,
}

impl Script {
    fn new(lua: &'static str) -> Self {
        Self {
            lua,
            sha: sha1_hash(lua),
        }
    }
}

const TIME: &str = "local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
";

/// KEYS: leases, fences. ARGV: member, token, lease ms, namespace.
/// Returns the age in µs of the newest fence covering the entry, or -1.
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(leak(format!(
        "{TIME}
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local newest = -1
for _, field in ipairs({{'*', ARGV[4]}}) do
  local at = tonumber(redis.call('HGET', KEYS[2], field))
  if at and at > newest then newest = at end
end
if newest < 0 then return -1 end
return now_us - newest"
    )))
});

/// KEYS: group index, group fence. ARGV: member, ttl ms.
/// Returns the age in µs of the group's fence, or -1.
static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(leak(format!(
        "{TIME}
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
redis.call('ZADD', KEYS[1], 'GT', now_ms + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
local at = tonumber(redis.call('GET', KEYS[2]))
if not at then return -1 end
return now_us - at"
    )))
});

/// KEYS: entry, leases, entity index. ARGV: member, token, value, ttl ms.
/// Returns 1 when stored, 0 when the lease was gone.
static STORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(leak(format!(
        "if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
{TIME}
local ttl = tonumber(ARGV[4])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
redis.call('ZADD', KEYS[3], 'GT', now_ms + ttl, ARGV[1])
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
return 1"
    )))
});

/// KEYS: entity index, leases, fences. ARGV: prefix, entity, namespace ('' for all), fence ms.
/// Fences the entity (or the entity in the namespace), drops its entries and leases; returns
/// how many entries went.
static DROP_ENTITY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(leak(format!(
        "{TIME}
local ns = ARGV[3]
local field = ns
if ns == '' then field = '*' end
redis.call('HSET', KEYS[3], field, now_us)
redis.call('PEXPIRE', KEYS[3], ARGV[4])
local middle = ':{{' .. ARGV[2] .. '}}:'
local gone = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local sep = string.find(member, ':', 1, true)
  if sep then
    local member_ns = string.sub(member, 1, sep - 1)
    if ns == '' or member_ns == ns then
      gone = gone + redis.call('DEL', ARGV[1] .. member_ns .. middle .. string.sub(member, sep + 1))
      if ns ~= '' then redis.call('ZREM', KEYS[1], member) end
    end
  end
end
if ns == '' then
  redis.call('DEL', KEYS[1], KEYS[2])
else
  for _, lease in ipairs(redis.call('HKEYS', KEYS[2])) do
    if string.sub(lease, 1, #ns + 1) == ns .. ':' then redis.call('HDEL', KEYS[2], lease) end
  end
end
return gone"
    )))
});

/// KEYS: entity index, leases. ARGV: pairs of entry key and its member in the entity index.
/// Drops those entries and their leases; returns how many entries went.
const DROP_ENTRIES_LUA: &str = "local gone = 0
for i = 1, #ARGV, 2 do
  gone = gone + redis.call('DEL', ARGV[i])
  redis.call('ZREM', KEYS[1], ARGV[i + 1])
  redis.call('HDEL', KEYS[2], ARGV[i + 1])
end
return gone";
static DROP_ENTRIES: LazyLock<Script> = LazyLock::new(|| Script::new(DROP_ENTRIES_LUA));

/// KEYS: group index, group fence. ARGV: fence ms.
/// Fences the group and returns its live members.
static FENCE_GROUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(leak(format!(
        "{TIME}
redis.call('SET', KEYS[2], now_us, 'PX', ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], now_ms, '+inf')"
    )))
});

/// The store, which routes each script to the node serving its keys.
type Connection = RedisStore;

/// KEYS: entry, miss lease. ARGV: token, lease ms.
/// Returns the entry's bytes if present; else `{0, value}` for a lease held (`fwd`: go on
/// your own), or `{1}` when this caller took it.
const LEASE_MISS_LUA: &str = "local entry = redis.call('GET', KEYS[1])
if entry then return entry end
local holder = redis.call('GET', KEYS[2])
if holder then return {0, holder} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1}";
static LEASE_MISS: LazyLock<Script> = LazyLock::new(|| Script::new(LEASE_MISS_LUA));

/// KEYS: miss lease. ARGV: token, stored (1/0), ms. Ends the lease if still `token`'s.
const RELEASE_LUA: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], 'fwd', 'PX', ARGV[3]) end
return 1";
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_LUA));

/// Takes the miss lease of `key`, unless its entry is there or another holds it.
pub(crate) fn lease(store: Connection, key: String, ttl: Duration) -> StoreFuture<Lease> {
    Box::pin(async move {
        let Some(address) = EntryAddress::parse_str(&key) else {
            return Ok(Lease::Taken(String::new()));
        };
        let lease_key = index::miss_lease(&address);
        let token = token();
        let args = vec![Value::from(token.as_str()), millis(ttl)];
        match eval(&store, &LEASE_MISS, &[&key, &lease_key], args).await? {
            Value::Bytes(bytes) => Ok(Lease::Filled(bytes)),
            Value::String(text) => Ok(Lease::Filled(text.into_inner())),
            Value::Array(items) => match items.as_slice() {
                [Value::Integer(1)] => Ok(Lease::Taken(token)),
                [Value::Integer(0), holder] if holder.as_str().as_deref() == Some("fwd") => {
                    Ok(Lease::Forward)
                }
                [Value::Integer(0), _] => Ok(Lease::Held),
                _ => Err(unexpected()),
            },
            _ => Err(unexpected()),
        }
    })
}

/// Ends the miss lease `token` of `key`.
pub(crate) fn release(
    store: Connection,
    key: String,
    token: String,
    stored: bool,
    ttl: Duration,
) -> StoreFuture<()> {
    Box::pin(async move {
        let Some(address) = EntryAddress::parse_str(&key) else {
            return Ok(());
        };
        let lease_key = index::miss_lease(&address);
        let args = vec![
            Value::from(token.as_str()),
            Value::from(if stored { "1" } else { "0" }),
            millis(ttl),
        ];
        eval(&store, &RELEASE, &[&lease_key], args)
            .await
            .map(|_| ())
    })
}

fn unexpected() -> StoreError {
    StoreError::new(
        StoreErrorKind::Rejected,
        "unexpected reply to a cache script",
    )
}

/// The scripts are built once per process.
fn leak(lua: String) -> &'static str {
    Box::leak(lua.into_boxed_str())
}

/// Runs `script` with `keys` (all in one slot) and `args`, on the node that serves them.
async fn eval(
    client: &Connection,
    script: &Script,
    keys: &[&str],
    args: Vec<Value>,
) -> Result<Value, StoreError> {
    let slot = redis_keyslot(keys[0].as_bytes());
    let call = |command: &'static str, first: Value| {
        let mut all = Vec::with_capacity(2 + keys.len() + args.len());
        all.push(first);
        all.push(Value::from(keys.len() as i64));
        all.extend(keys.iter().map(|k| Value::from(*k)));
        all.extend(args.iter().cloned());
        let command = CustomCommand::new_static(command, ClusterHash::Custom(slot), false);
        let route = client.route(keys[0], &command_options());
        async move {
            let route = route?;
            let result = route.client.custom::<Value, Value>(command, all).await;
            route.finish(result)
        }
    };
    match call("EVALSHA", Value::from(script.sha.as_str())).await {
        Err(error) if error.to_string().contains("NOSCRIPT") => {
            // EVAL also caches the script on that node for the next EVALSHA.
            call("EVAL", Value::from(script.lua)).await
        }
        result => result,
    }
}

fn integer(value: Value) -> Result<i64, StoreError> {
    value.as_i64().ok_or_else(|| {
        StoreError::new(
            StoreErrorKind::Rejected,
            "unexpected reply to a cache script",
        )
    })
}

fn strings(value: Value) -> Result<Vec<String>, StoreError> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| {
                item.into_string().ok_or_else(|| {
                    StoreError::new(StoreErrorKind::Rejected, "unexpected index member")
                })
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(StoreError::new(
            StoreErrorKind::Rejected,
            "unexpected reply to a cache script",
        )),
    }
}

fn millis(duration: Duration) -> Value {
    Value::from(
        i64::try_from(duration.as_millis())
            .unwrap_or(i64::MAX)
            .max(1),
    )
}

/// Whether a fence of `age_us` (or -1: none) may be younger than the request that began at
/// `started`, measured when the fence's age arrived.
///
/// The fence was set at most `age_us` before the answer arrived, so if it is older than the
/// request, the invalidation ran before the request began. Erring towards refusing: a
/// millisecond, and a thousandth of the request's age, of slack for the two clocks' resolution
/// and rates.
fn raced(age_us: i64, started: Instant) -> bool {
    let elapsed = started.elapsed().as_micros();
    age_us >= 0 && (age_us as u128) <= elapsed + elapsed / 1000 + 1000
}

/// A token unique to this call (a lease's, a near cache's canary's).
pub(super) fn token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PROCESS: LazyLock<u64> = LazyLock::new(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        xxhash_rust::xxh3::xxh3_64(format!("{now:?}{}", std::process::id()).as_bytes())
    });
    format!("{:016x}{:x}", *PROCESS, NEXT.fetch_add(1, Relaxed))
}

/// Writes `write` by the lease protocol; `Ok(false)` when an invalidation won.
pub(crate) fn write(client: Connection, write: EntryWrite) -> StoreFuture<bool> {
    Box::pin(async move {
        let key = write.key().clone();
        let Some(address) = EntryAddress::parse(&key) else {
            return Err(StoreError::new(
                StoreErrorKind::Rejected,
                "not a key of this crate's KeyFactory",
            ));
        };
        let started = write.started();
        if started.elapsed() >= FENCE_WINDOW {
            return Ok(false);
        }
        let member = address.entity_member();
        let leases = index::entity_leases(address.prefix, address.entity);
        let fences = index::entity_fences(address.prefix, address.entity);
        let token = token();
        let lease_args = vec![
            Value::from(member.as_str()),
            Value::from(token.as_str()),
            millis(LEASE_TTL),
            Value::from(address.namespace),
        ];
        let age = integer(eval(&client, &LEASE, &[&leases, &fences], lease_args).await?)?;
        if raced(age, started) {
            return Ok(false);
        }

        let ttl = millis(write.ttl());
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
        let joins = groups
            .iter()
            .map(|(group, fence, member)| join(&client, group, fence, member, ttl.clone()));
        for age in futures_util::future::join_all(joins).await {
            if raced(age?, started) {
                return Ok(false);
            }
        }

        let entity_index = index::entity_index(address.prefix, address.entity);
        let store_args = vec![
            Value::from(member.as_str()),
            Value::from(token.as_str()),
            Value::from(write.value().clone()),
            ttl,
        ];
        let stored = eval(
            &client,
            &STORE,
            &[key.as_str(), &leases, &entity_index],
            store_args,
        )
        .await?;
        Ok(integer(stored)? == 1)
    })
}

/// Runs `invalidation`; the number of entries dropped.
pub(crate) fn invalidate(client: Connection, invalidation: &Invalidation) -> StoreFuture<u64> {
    let invalidation = invalidation.clone();
    Box::pin(async move {
        let prefix = invalidation.prefix();
        let gone = match invalidation.scope() {
            InvalidationScope::Entity { entity } => {
                drop_entity(&client, prefix, entity, "").await?
            }
            InvalidationScope::EntityInNamespace { namespace, entity } => {
                drop_entity(&client, prefix, entity, namespace).await?
            }
            InvalidationScope::Namespace { namespace } => {
                let group = index::namespace_index(prefix, namespace);
                let fence = index::namespace_fence(prefix, namespace);
                let entities = fence_group(&client, &group, &fence).await?;
                let drops: Vec<_> = entities
                    .iter()
                    .map(|entity| drop_entity(&client, prefix, entity, namespace))
                    .collect();
                sum(drops).await?
            }
            InvalidationScope::Tag { tag } => {
                let group = index::tag_index(prefix, tag);
                let fence = index::tag_fence(prefix, tag);
                let members = fence_group(&client, &group, &fence).await?;
                let mut by_entity: HashMap<&str, Vec<Value>> = HashMap::new();
                for member in &members {
                    // A member that is not an entry of this prefix (never written by us) is
                    // skipped: nothing outside the deployment's entries can be dropped.
                    let Some((key, entity)) = index::tag_member_key(prefix, member) else {
                        continue;
                    };
                    let Some(address) = EntryAddress::parse_str(&key) else {
                        continue;
                    };
                    let entry_member = address.entity_member();
                    let args = by_entity.entry(entity).or_default();
                    args.push(Value::from(key));
                    args.push(Value::from(entry_member));
                }
                let drops: Vec<_> = by_entity
                    .into_iter()
                    .map(|(entity, args)| drop_entries(&client, prefix, entity, args))
                    .collect();
                sum(drops).await?
            }
        };
        Ok(u64::try_from(gone).unwrap_or(0))
    })
}

async fn join(
    client: &Connection,
    group: &str,
    fence: &str,
    member: &str,
    ttl: Value,
) -> Result<i64, StoreError> {
    let args = vec![Value::from(member), ttl];
    integer(eval(client, &JOIN, &[group, fence], args).await?)
}

async fn drop_entries(
    client: &Connection,
    prefix: &str,
    entity: &str,
    args: Vec<Value>,
) -> Result<i64, StoreError> {
    let keys = [
        index::entity_index(prefix, entity),
        index::entity_leases(prefix, entity),
    ];
    let keys = [keys[0].as_str(), keys[1].as_str()];
    integer(eval(client, &DROP_ENTRIES, &keys, args).await?)
}

async fn drop_entity(
    client: &Connection,
    prefix: &str,
    entity: &str,
    namespace: &str,
) -> Result<i64, StoreError> {
    let keys = [
        index::entity_index(prefix, entity),
        index::entity_leases(prefix, entity),
        index::entity_fences(prefix, entity),
    ];
    let args = vec![
        Value::from(prefix),
        Value::from(entity),
        Value::from(namespace),
        millis(FENCE_WINDOW),
    ];
    let keys = [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()];
    integer(eval(client, &DROP_ENTITY, &keys, args).await?)
}

async fn fence_group(
    client: &Connection,
    group: &str,
    fence: &str,
) -> Result<Vec<String>, StoreError> {
    strings(
        eval(
            client,
            &FENCE_GROUP,
            &[group, fence],
            vec![millis(FENCE_WINDOW)],
        )
        .await?,
    )
}

/// Runs `drops` with at most [`FAN_OUT`] in flight; their sum, or the first error.
async fn sum<F>(drops: Vec<F>) -> Result<i64, StoreError>
where
    F: std::future::Future<Output = Result<i64, StoreError>>,
{
    use futures_util::StreamExt;
    let mut results = futures_util::stream::iter(drops).buffer_unordered(FAN_OUT);
    let mut gone = 0;
    while let Some(result) = results.next().await {
        gone += result?;
    }
    Ok(gone)
}
