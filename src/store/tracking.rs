//! The near cache's tracking task: turns client tracking on (again after every reconnect, as
//! fred does not), hands Redis's invalidation messages to the near cache, and checks each
//! tracking connection with a heartbeat. Any doubt flushes the near cache.
//!
//! The heartbeat is an `EXISTS` of a *canary* key on each primary, written when tracking is
//! turned on: `FLUSHALL` and `FLUSHDB` send an invalidation without keys, which fred does not
//! pass on, and a server restarted empty may answer before the reconnect is noticed; either
//! way the canary is gone, and the near cache is flushed.

use super::near_cache::{Flush, Shared};
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

/// The canary keys' prefix: one key per primary, a byte long, without expiry.
const CANARY: &str = "tower-redis-cache:near-canary";

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
    loop {
        let Some(near) = shared.upgrade() else { break };
        let (heartbeat, max_silence) = (near.heartbeat, near.max_silence());
        drop(near);
        match establish(&client, max_silence.max(Duration::from_secs(1))).await {
            Ok((tracked, canaries, sent)) => {
                // What happened while tracking was off concerns nothing held now.
                events.drain();
                let Some(near) = shared.upgrade() else { break };
                if tracked != client.connection_ids() {
                    continue;
                }
                near.resume(tracked, sent);
                drop(near);
                let reason = watch(
                    &shared,
                    &client,
                    &canaries,
                    &mut events,
                    &mut barriers,
                    heartbeat,
                )
                .await;
                match reason {
                    Some(reason) => match shared.upgrade() {
                        Some(near) => near.flush(reason),
                        None => break,
                    },
                    None => break,
                }
            }
            Err(error) => {
                tracing::debug!(%error, "near cache: client tracking not on yet");
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
    timeout: Duration,
) -> Result<(HashMap<Server, i64>, Vec<String>, Instant), String> {
    tokio::time::timeout(timeout, client.wait_for_connect())
        .await
        .map_err(|_| "not connected".to_owned())?
        .map_err(|e| e.to_string())?;
    let before = client.connection_ids();
    let canaries = canaries(client, before.len());
    let writes = canaries
        .iter()
        .map(|key| client.set::<(), _, _>(key.as_str(), 1, None, None, false));
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

/// One canary key per primary: on Cluster, the first of `CANARY:{n}` in each primary's slots.
fn canaries(client: &Client, connections: usize) -> Vec<String> {
    let Some(routing) = client
        .cached_cluster_state()
        .filter(|_| client.is_clustered())
    else {
        return vec![CANARY.to_owned()];
    };
    let mut wanted: Vec<Server> = routing.unique_primary_nodes();
    let mut keys = Vec::with_capacity(connections);
    for n in 0..100_000u32 {
        if wanted.is_empty() {
            break;
        }
        let key = format!("{CANARY}:{{{n}}}");
        let owner = routing.get_server(redis_keyslot(key.as_bytes()));
        if let Some(at) = owner.and_then(|owner| wanted.iter().position(|w| w == owner)) {
            wanted.swap_remove(at);
            keys.push(key);
        }
    }
    keys
}

/// Hands invalidations to the near cache and checks the connections until something calls for
/// a flush (its reason), or the near cache is dropped (`None`).
async fn watch(
    shared: &Weak<Shared>,
    client: &Client,
    canaries: &[String],
    events: &mut Events,
    barriers: &mut mpsc::UnboundedReceiver<Barrier>,
    every: Duration,
) -> Option<Flush> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beat: Option<Heartbeat> = None;
    // Barriers answered by the heartbeat in flight, and those waiting for the next one (a
    // heartbeat sent before a barrier was asked for does not answer it).
    let mut answered_now: Vec<Barrier> = Vec::new();
    let mut answered_next: Vec<Barrier> = Vec::new();
    loop {
        tokio::select! {
            biased;
            message = events.invalidations.recv() => match message {
                Ok(message) => shared.upgrade()?.invalidated(message.keys.iter().map(|k| k.as_bytes())),
                Err(RecvError::Lagged(_)) => return Some(Flush::Missed),
                Err(RecvError::Closed) => return None,
            },
            _ = events.reconnects.recv() => return Some(Flush::Reconnect),
            _ = events.errors.recv() => return Some(Flush::Disconnect),
            _ = events.changes.recv() => return Some(Flush::Topology),
            result = async { beat.as_mut().expect("guarded").await }, if beat.is_some() => {
                beat = None;
                let sent = match result {
                    Ok(sent) => sent,
                    Err(reason) => return Some(reason),
                };
                // Every message sent before the heartbeat's answer is waiting now: handle them.
                let near = shared.upgrade()?;
                loop {
                    match events.invalidations.try_recv() {
                        Ok(message) => near.invalidated(message.keys.iter().map(|k| k.as_bytes())),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Lagged(_)) => return Some(Flush::Missed),
                        Err(TryRecvError::Closed) => return None,
                    }
                }
                if near.tracked() != client.connection_ids() {
                    return Some(Flush::Reconnect);
                }
                near.confirm(sent);
                answered_now.drain(..).for_each(|b| { let _ = b.send(()); });
                if !answered_next.is_empty() {
                    answered_now.append(&mut answered_next);
                    beat = Some(heartbeat(client.clone(), canaries.to_vec(), near.max_silence()));
                }
            },
            barrier = barriers.recv() => {
                let barrier = barrier?;
                if beat.is_none() {
                    answered_now.push(barrier);
                    let near = shared.upgrade()?;
                    beat = Some(heartbeat(client.clone(), canaries.to_vec(), near.max_silence()));
                } else {
                    answered_next.push(barrier);
                }
            },
            _ = tick.tick() => {
                let near = shared.upgrade()?;
                if beat.is_none() {
                    beat = Some(heartbeat(client.clone(), canaries.to_vec(), near.max_silence()));
                }
            },
        }
    }
}

/// An `EXISTS` of the canary on every primary (so on every tracking connection), bounded by
/// `timeout`; when it was sent.
fn heartbeat(client: Client, canaries: Vec<String>, timeout: Duration) -> Heartbeat {
    Box::pin(async move {
        let sent = Instant::now();
        let checks = canaries
            .iter()
            .map(|key| client.exists::<i64, _>(key.as_str()));
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
