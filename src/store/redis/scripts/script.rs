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
    pub(super) async fn run(
        &self,
        routes: &Routes,
        keys: &[&str],
        args: Vec<Value>,
    ) -> Result<Value, StoreError> {
        match call(
            routes,
            "EVALSHA",
            Value::from(self.sha.as_str()),
            keys,
            &args,
        )
        .await
        {
            Err(error) if ErrorCode::of_store_error(&error) == Some(ErrorCode::NoScript) => {
                // EVAL also caches the script on that node for the next EVALSHA.
                call(routes, "EVAL", Value::from(self.lua), keys, &args).await
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
