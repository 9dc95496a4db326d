//! Durable invalidation: an invalidation returns only once enough replicas hold its fences and
//! drops, so that a failover to one of them does not undo it.
//!
//! Redis replicates asynchronously: a script's effects reach the replicas after the master has
//! answered. `WAIT n timeout` blocks the connection that sent it until `n` replicas acknowledged
//! every write made on that connection, or the timeout passed, and answers how many did. So an
//! invalidation runs its scripts on a connection of its own per primary (not the pipelined one
//! that serves hits, which a blocked `WAIT` would hold up), then sends `WAIT` there. The
//! connection must be the same one from the first script's reply to `WAIT`'s: a connection
//! replaced in between has written nothing, and `WAIT` would answer at once.

use crate::store::{StoreError, StoreErrorKind};
use fred::{
    clients::Client,
    interfaces::{ClientInterface, ClientLike, ServerInterface},
    types::config::{Options, Server},
};
use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

/// How many replicas must hold an invalidation before
/// [`Store::invalidate`](crate::store::Store::invalidate) on a
/// [`RedisStore`](crate::RedisStore) returns; set with
/// [`RedisStoreBuilder::durability`](crate::RedisStoreBuilder::durability).
///
/// `WAIT` makes an acknowledged invalidation survive an ordinary failover (Redis Cluster
/// promotes the replica with the largest replication offset, and every replica that counted
/// has the drop). It does not make Redis strongly consistent: a manual
/// `CLUSTER FAILOVER TAKEOVER` of a replica that had not counted, or a replica restarted from
/// an older snapshot and then promoted, can still lose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Done once the master ran it: no `WAIT`. A failover to a replica that had not received
    /// it yet undoes it.
    Master,
    /// Done once every replica of the master acknowledged it, and at least this many. On Redis
    /// Cluster the replicas are those the slot map lists for the master (`CLUSTER SLOTS`); on a
    /// standalone or Sentinel server they cannot be listed without `INFO` (an `@dangerous`
    /// command), so exactly this many are waited for. The default, `Replicas(0)`, waits for
    /// every replica of a Cluster master, and costs nothing where there are none.
    Replicas(u32),
}

impl Default for Durability {
    fn default() -> Self {
        Durability::Replicas(0)
    }
}

impl Durability {
    /// How many acknowledgements a master with `listed` replicas (when they can be listed)
    /// must get.
    pub(crate) fn required(self, listed: Option<u32>) -> u32 {
        match self {
            Durability::Master => 0,
            Durability::Replicas(min) => min.max(listed.unwrap_or(0)),
        }
    }
}

/// The connections one invalidation wrote on and must wait for.
#[derive(Debug, Default)]
pub(crate) struct Session {
    touched: Mutex<Vec<Touched>>,
}

/// One connection an invalidation's scripts ran on.
#[derive(Debug)]
struct Touched {
    client: Client,
    required: u32,
    /// The connection's id when the first script's reply came.
    connection: HashMap<Server, i64>,
    /// The connection was replaced between two scripts.
    replaced: bool,
}

impl Session {
    /// A script on `client` answered; its writes need `required` acknowledgements.
    pub(crate) fn ran_on(&self, client: &Client, required: u32) {
        let connection = client.connection_ids();
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        match touched.iter_mut().find(|t| t.client.id() == client.id()) {
            Some(known) => {
                known.replaced |= known.connection != connection;
                known.required = known.required.max(required);
            }
            None => touched.push(Touched {
                client: client.clone(),
                required,
                connection,
                replaced: false,
            }),
        }
    }

    /// Sends `WAIT` on every connection written on, at most `timeout` each (at once); an error
    /// of kind [`NotReplicated`](StoreErrorKind::NotReplicated) when one got fewer
    /// acknowledgements than it needs, or its connection was replaced meanwhile.
    pub(crate) async fn wait(&self, timeout: Duration) -> Result<(), StoreError> {
        let touched =
            std::mem::take(&mut *self.touched.lock().unwrap_or_else(PoisonError::into_inner));
        let waits = touched.into_iter().map(|touched| async move {
            let options = Options {
                fail_fast: true,
                timeout: Some(timeout * 2 + Duration::from_secs(1)),
                ..Options::default()
            };
            let client = touched.client.with_options(&options);
            let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
            let acked = client
                .wait::<i64>(i64::from(touched.required), timeout_ms)
                .await
                .map_err(super::error::store_error)?;
            let replaced =
                touched.replaced || touched.client.connection_ids() != touched.connection;
            if replaced {
                return Err(not_replicated(
                    "the connection was replaced during the invalidation".to_owned(),
                ));
            }
            if acked < i64::from(touched.required) {
                let node = touched.connection.keys().next().map(|s| format!(" on {s}"));
                return Err(not_replicated(format!(
                    "{acked} of {} replicas acknowledged the invalidation{} within {timeout:?}",
                    touched.required,
                    node.unwrap_or_default()
                )));
            }
            Ok(())
        });
        futures_util::future::try_join_all(waits).await.map(|_| ())
    }
}

fn not_replicated(why: String) -> StoreError {
    StoreError::new(
        StoreErrorKind::NotReplicated,
        format!("{why}: it may not survive a failover; retry it"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replicas_required_are_the_listed_ones_and_at_least_the_minimum() {
        assert_eq!(Durability::Master.required(Some(2)), 0);
        assert_eq!(Durability::default().required(Some(2)), 2);
        assert_eq!(Durability::default().required(None), 0);
        assert_eq!(Durability::Replicas(1).required(Some(0)), 1);
        assert_eq!(Durability::Replicas(1).required(None), 1);
        assert_eq!(Durability::Replicas(1).required(Some(3)), 3);
    }
}
