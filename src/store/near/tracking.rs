//! The near cache's tracking task: turns client tracking on (again after every reconnect, as
//! fred does not), hands Redis's invalidation messages to the near cache, and checks each
//! tracking connection with a heartbeat. Any doubt flushes the near cache.
//!
//! The heartbeat is a `PEXPIRE` of this near cache's own *canary* key on each primary, written
//! when tracking is turned on (it answers 0 once the key is gone, and keeps the key recently
//! used, so `allkeys-lru` does not evict it): `FLUSHALL` and `FLUSHDB` send an invalidation
//! without keys, which fred does not pass on, and a server restarted empty may answer before
//! the reconnect is noticed; either way the canary is gone, and the near cache is flushed.

use super::shared::{Flush, Shared};
use crate::store::token::token;
use fred::{
    clients::Client,
    interfaces::{
        ClientInterface, ClientLike, ClusterInterface, EventInterface, KeysInterface,
        TrackingInterface,
    },
    types::config::Server,
    util::redis_keyslot,
};
use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Weak,
    time::{Duration, Instant},
};
use tokio::sync::{broadcast::error::RecvError, broadcast::error::TryRecvError, mpsc, oneshot};

type Barrier = oneshot::Sender<()>;
type Heartbeat = Pin<Box<dyn Future<Output = Result<Instant, Flush>> + Send>>;

/// The canary keys' prefix: one key per primary and near cache, a byte long.
const CANARY: &str = "tower-redis-cache:near-canary";
/// A canary outlives its near cache by this much (each heartbeat sets it again).
const CANARY_TTL_MS: i64 = 60_000;
/// Consecutive failures to turn tracking on before a warning (then one per this many).
const WARN_AFTER: u32 = 50;

/// Runs until every handle of the near cache is dropped.
pub(super) async fn run(shared: Weak<Shared>, mut barriers: mpsc::UnboundedReceiver<Barrier>) {
    let Some(client) = shared.upgrade().map(|s| s.client.clone()) else {
        return;
    };
    // Subscribed before connecting, so that no event is missed.
    let mut events = Events {
        invalidations: client.invalidation_rx(),
        reconnects: client.reconnect_rx(),
        errors: client.error_rx(),
        changes: client.cluster_change_rx(),
    };
    client.connect();
    // This near cache's canaries, apart from every other instance's.
    let instance = token();
    let mut failures = 0u32;
    loop {
        let Some(near) = shared.upgrade() else { break };
        let (heartbeat, max_silence) = (near.heartbeat, near.max_silence());
        drop(near);
        let timeout = max_silence.max(Duration::from_secs(1));
        match establish(&client, &instance, &mut events, timeout).await {
            Ok((tracked, canaries, sent)) => {
                failures = 0;
                let Some(near) = shared.upgrade() else { break };
                if tracked != client.connection_ids() {
                    continue;
                }
                near.resume(tracked, sent);
                drop(near);
                let mut waiting = Vec::new();
                let watched = Watched {
                    client: &client,
                    canaries: &canaries,
                    every: heartbeat,
                };
                let reason = watched
                    .watch(&shared, &mut events, &mut barriers, &mut waiting)
                    .await;
                // Flushed before the barriers waiting are let go: their invalidations must
                // not be served once their callers go on.
                match (reason, shared.upgrade()) {
                    (Some(reason), Some(near)) => near.flush(reason),
                    _ => break,
                }
                drop(waiting);
            }
            Err(error) => {
                failures += 1;
                if failures % WARN_AFTER == 0 {
                    tracing::warn!(%error, failures, "near cache: client tracking cannot be turned on");
                } else {
                    tracing::debug!(%error, "near cache: client tracking not on yet");
                }
                answer_all(&mut barriers);
                tokio::time::sleep(heartbeat).await;
                continue;
            }
        }
    }
    let _ = client.quit().await;
}

/// The event channels of the tracking client.
struct Events {
    invalidations: tokio::sync::broadcast::Receiver<fred::types::client::Invalidation>,
    reconnects: tokio::sync::broadcast::Receiver<Server>,
    errors: tokio::sync::broadcast::Receiver<(fred::error::Error, Option<Server>)>,
    changes: tokio::sync::broadcast::Receiver<Vec<fred::types::ClusterStateChange>>,
}

impl Events {
    /// Drops every event waiting.
    fn drain(&mut self) {
        fn empty<T: Clone>(rx: &mut tokio::sync::broadcast::Receiver<T>) {
            while !matches!(
                rx.try_recv(),
                Err(TryRecvError::Empty | TryRecvError::Closed)
            ) {}
        }
        empty(&mut self.invalidations);
        empty(&mut self.reconnects);
        empty(&mut self.errors);
        empty(&mut self.changes);
    }
}

/// Writes a canary on every primary and turns tracking on for every connection; the
/// connections it is on for, the canaries, and when the command was sent.
async fn establish(
    client: &Client,
    instance: &str,
    events: &mut Events,
    timeout: Duration,
) -> Result<(HashMap<Server, i64>, Vec<String>, Instant), String> {
    tokio::time::timeout(timeout, client.wait_for_connect())
        .await
        .map_err(|_| "not connected".to_owned())?
        .map_err(|e| e.to_string())?;
    // What happened while tracking was off concerns nothing held now; what happens from here
    // on is watched.
    events.drain();
    let before = client.connection_ids();
    let canaries = canaries(client, instance, before.len());
    let writes = canaries.iter().map(|key| {
        let expiry = Some(fred::types::Expiration::PX(CANARY_TTL_MS));
        client.set::<(), _, _>(key.as_str(), 1, expiry, None, false)
    });
    tokio::time::timeout(timeout, futures_util::future::try_join_all(writes))
        .await
        .map_err(|_| "the canary writes timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let sent = Instant::now();
    tokio::time::timeout(
        timeout,
        client.start_tracking(None, false, false, false, false),
    )
    .await
    .map_err(|_| "CLIENT TRACKING timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    let after = client.connection_ids();
    if before != after || after.is_empty() {
        return Err("a connection was replaced while tracking was turned on".to_owned());
    }
    if client.is_clustered() {
        let primaries = client
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        if primaries.is_empty() || primaries.iter().any(|p| !after.contains_key(p)) {
            return Err("not every primary has a tracking connection".to_owned());
        }
        if canaries.len() != primaries.len() {
            return Err("no canary key for every primary".to_owned());
        }
    }
    Ok((after, canaries, sent))
}

/// One canary key per primary: on Cluster, the first of `CANARY:{n}:instance` in each
/// primary's slots.
fn canaries(client: &Client, instance: &str, connections: usize) -> Vec<String> {
    let Some(routing) = client
        .cached_cluster_state()
        .filter(|_| client.is_clustered())
    else {
        return vec![format!("{CANARY}:{instance}")];
    };
    let mut wanted: Vec<Server> = routing.unique_primary_nodes();
    let mut keys = Vec::with_capacity(connections);
    for n in 0..100_000u32 {
        if wanted.is_empty() {
            break;
        }
        let key = format!("{CANARY}:{{{n}}}:{instance}");
        let owner = routing.get_server(redis_keyslot(key.as_bytes()));
        if let Some(at) = owner.and_then(|owner| wanted.iter().position(|w| w == owner)) {
            wanted.swap_remove(at);
            keys.push(key);
        }
    }
    keys
}

/// What the watch of one tracking session needs.
struct Watched<'a> {
    client: &'a Client,
    canaries: &'a [String],
    every: Duration,
}

/// The barriers the heartbeat in flight answers, and those waiting for the next one (a
/// heartbeat sent before a barrier was asked for does not answer it).
#[derive(Default)]
struct Waiting {
    now: Vec<Barrier>,
    next: Vec<Barrier>,
}

impl Watched<'_> {
    /// A heartbeat to send now.
    fn heartbeat(&self, near: &Shared) -> Heartbeat {
        heartbeat(
            self.client.clone(),
            self.canaries.to_vec(),
            near.max_silence(),
        )
    }

    /// Hands invalidations to the near cache and checks the connections until something calls
    /// for a flush (its reason), or the near cache is dropped (`None`). Barriers not answered
    /// are left in `waiting`, for the caller to let go once it has flushed.
    async fn watch(
        &self,
        shared: &Weak<Shared>,
        events: &mut Events,
        barriers: &mut mpsc::UnboundedReceiver<Barrier>,
        waiting: &mut Vec<Barrier>,
    ) -> Option<Flush> {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat: Option<Heartbeat> = None;
        let mut barriers_of = Waiting::default();
        let reason = loop {
            // The rare events first: a steady stream of invalidations must not hold them up.
            tokio::select! {
                biased;
                _ = events.reconnects.recv() => break Some(Flush::Reconnect),
                _ = events.errors.recv() => break Some(Flush::Disconnect),
                _ = events.changes.recv() => break Some(Flush::Topology),
                result = async { beat.as_mut().expect("guarded").await }, if beat.is_some() => {
                    beat = None;
                    let sent = match result {
                        Ok(sent) => sent,
                        Err(reason) => break Some(reason),
                    };
                    let Some(near) = shared.upgrade() else { break None };
                    // Every message sent before the heartbeat's answer is waiting: handle them.
                    if let Err(reason) = drain(&near, &mut events.invalidations) {
                        break reason;
                    }
                    if near.tracked() != self.client.connection_ids() {
                        break Some(Flush::Reconnect);
                    }
                    near.confirm(sent);
                    barriers_of.now.drain(..).for_each(|b| { let _ = b.send(()); });
                    if !barriers_of.next.is_empty() {
                        barriers_of.now.append(&mut barriers_of.next);
                        beat = Some(self.heartbeat(&near));
                    }
                },
                barrier = barriers.recv() => {
                    let Some(barrier) = barrier else { break None };
                    let Some(near) = shared.upgrade() else { break None };
                    if beat.is_none() {
                        barriers_of.now.push(barrier);
                        beat = Some(self.heartbeat(&near));
                    } else {
                        barriers_of.next.push(barrier);
                    }
                },
                _ = tick.tick() => {
                    let Some(near) = shared.upgrade() else { break None };
                    // Turned off from outside (a barrier that timed out): start again.
                    if !near.is_tracking() {
                        break Some(Flush::Silence);
                    }
                    if beat.is_none() {
                        beat = Some(self.heartbeat(&near));
                    }
                },
                message = events.invalidations.recv() => match message {
                    Ok(message) => match shared.upgrade() {
                        Some(near) => near.invalidated(message.keys.iter().map(|k| k.as_bytes())),
                        None => break None,
                    },
                    Err(RecvError::Lagged(_)) => break Some(Flush::Missed),
                    Err(RecvError::Closed) => break None,
                },
            }
        };
        waiting.append(&mut barriers_of.now);
        waiting.append(&mut barriers_of.next);
        reason
    }
}

/// Hands every invalidation waiting to `near`; `Err` with what to do when some were lost or the
/// channel closed.
fn drain(
    near: &Shared,
    invalidations: &mut tokio::sync::broadcast::Receiver<fred::types::client::Invalidation>,
) -> Result<(), Option<Flush>> {
    loop {
        match invalidations.try_recv() {
            Ok(message) => near.invalidated(message.keys.iter().map(|k| k.as_bytes())),
            Err(TryRecvError::Empty) => return Ok(()),
            Err(TryRecvError::Lagged(_)) => return Err(Some(Flush::Missed)),
            Err(TryRecvError::Closed) => return Err(None),
        }
    }
}

/// A `PEXPIRE` of the canary on every primary (so a command on every tracking connection),
/// bounded by `timeout`; when it was sent. It answers 0 for a canary that is gone.
fn heartbeat(client: Client, canaries: Vec<String>, timeout: Duration) -> Heartbeat {
    Box::pin(async move {
        let sent = Instant::now();
        let checks = canaries
            .iter()
            .map(|key| client.pexpire::<i64, _>(key.as_str(), CANARY_TTL_MS, None));
        match tokio::time::timeout(timeout, futures_util::future::join_all(checks)).await {
            Err(_) => Err(Flush::Silence),
            Ok(results) if results.iter().any(Result::is_err) => Err(Flush::Disconnect),
            Ok(results) if results.iter().any(|found| found != &Ok(1)) => Err(Flush::Emptied),
            Ok(_) => Ok(sent),
        }
    })
}

/// Answers every barrier waiting: with tracking off, the near cache holds nothing to wait for.
fn answer_all(barriers: &mut mpsc::UnboundedReceiver<Barrier>) {
    while let Ok(barrier) = barriers.try_recv() {
        let _ = barrier.send(());
    }
}
