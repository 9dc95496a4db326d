//! The Lua scripts of the invalidation protocol and of cross-instance coalescing, one `.lua`
//! file each (opening with its `KEYS` and `ARGV`) and one typed Rust wrapper each, so that the
//! order of keys and arguments is written in one place. Every key a script touches is declared
//! in `KEYS`, all in one hash slot (an entity's, a namespace's or a tag's hash tag): scripts
//! run unchanged on Redis Cluster, and no key name is built in Lua.

mod invalidate;
mod miss_lease;
mod script;
#[cfg(test)]
mod tests;
mod write;

pub(crate) use self::invalidate::{DropEntries, FenceEntity, FenceGroup, StaleEntries};
pub(crate) use self::miss_lease::{ReleaseMissLease, TakeMissLease};
pub(crate) use self::write::{Join, StoreEntry, WriteLease};
