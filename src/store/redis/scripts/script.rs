//! Running a script: by its SHA-1, loaded on a node that does not know it, on the node that
//! serves its keys; and reading its reply.

use crate::store::redis::{
    error::ErrorCode,
    routing::{fail_fast, Routes},
};
use crate::store::{StoreError, StoreErrorKind};
use fred::{
    interfaces::ClientLike,
    types::{ClusterHash, CustomCommand, Value},
    util::{redis_keyslot, sha1_hash},
};
use std::time::{Duration, Instant};

/// How long a script is sent again while the store is busy with its slot.
pub(super) const RETRY_BOUND: Duration = Duration::from_secs(1);
/// The first pause before sending it again, doubled each time up to [`LAST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const LAST_PAUSE: Duration = Duration::from_millis(100);

/// A Lua script and its SHA-1; each is a `static` made on first use.
pub(super) struct Script {
    lua: &'static str,
    sha: String,
}

impl Script {
    /// The script `lua` (an `include_str!` of its file).
    pub(super) fn new(lua: &'static str) -> Self {
        Self {
            lua,
            sha: sha1_hash(lua),
        }
    }

    /// Runs the script with `keys` (all in one slot, the first deciding the node) and `args`.
    ///
    /// While the store is busy with the slot (it migrates: `TRYAGAIN`, `ASK`; it moved:
    /// `MOVED`, and the slot map is being refreshed; a failover: `CLUSTERDOWN`, `READONLY`),
    /// the script is sent again, backing off, for at most [`RETRY_BOUND`]; then the busy error
    /// is returned, retryable. A busy reply means the script did not run.
    pub(super) async fn run(
        &self,
        routes: &Routes,
        keys: &[&str],
        args: Vec<Value>,
    ) -> Result<Value, StoreError> {
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            match self.run_once(routes, keys, &args).await {
                Err(error)
                    if error.kind() == StoreErrorKind::Busy
                        && started.elapsed() + pause < RETRY_BOUND =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LAST_PAUSE);
                }
                result => return result,
            }
        }
    }

    /// One attempt: `EVALSHA`, then `EVAL` if the node does not know the script.
    async fn run_once(
        &self,
        routes: &Routes,
        keys: &[&str],
        args: &[Value],
    ) -> Result<Value, StoreError> {
        let sha = Value::from(self.sha.as_str());
        match call(routes, "EVALSHA", sha, keys, args).await {
            Err(error) if ErrorCode::of_store_error(&error) == Some(ErrorCode::NoScript) => {
                // EVAL also caches the script on that node for the next EVALSHA.
                call(routes, "EVAL", Value::from(self.lua), keys, args).await
            }
            result => result,
        }
    }
}

/// Sends `command` (`EVALSHA` or `EVAL`) with `script`, `keys` and `args`.
async fn call(
    routes: &Routes,
    command: &'static str,
    script: Value,
    keys: &[&str],
    args: &[Value],
) -> Result<Value, StoreError> {
    let slot = redis_keyslot(keys[0].as_bytes());
    let mut all = Vec::with_capacity(2 + keys.len() + args.len());
    all.push(script);
    all.push(Value::from(keys.len() as i64));
    all.extend(keys.iter().map(|k| Value::from(*k)));
    all.extend(args.iter().cloned());
    let command = CustomCommand::new_static(command, ClusterHash::Custom(slot), false);
    let route = routes.route(keys[0], &fail_fast(None))?;
    let result = route.client.custom::<Value, Value>(command, all).await;
    route.finish(result)
}

/// The error for a reply no script of this crate sends.
pub(super) fn unexpected() -> StoreError {
    StoreError::new(
        StoreErrorKind::Rejected,
        "unexpected reply to a cache script",
    )
}

/// An integer reply.
pub(super) fn integer(value: Value) -> Result<i64, StoreError> {
    value.as_i64().ok_or_else(unexpected)
}

/// An age in µs, or -1 for none: `None` then.
pub(super) fn age(value: Value) -> Result<Option<u64>, StoreError> {
    Ok(u64::try_from(integer(value)?).ok())
}

/// An array of strings (or nil: none).
pub(super) fn strings(value: Value) -> Result<Vec<String>, StoreError> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| item.into_string().ok_or_else(unexpected))
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(unexpected()),
    }
}
