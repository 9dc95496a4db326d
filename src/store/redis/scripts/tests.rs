//! Each script against a real `redis-server`: its reply, and what it leaves in Redis.

use super::{
    DropEntries, FenceEntity, FenceGroup, Join, ReleaseMissLease, StaleEntries, StoreEntry,
};
use super::{TakeMissLease, WriteLease};
use crate::store::{redis::test_server::Server, Lease};
use fred::types::Value;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn write_lease_records_the_token_and_reports_covering_fences() {
    let redis = Server::start().await;
    let routes = redis.routes();
    let lease = |namespace| WriteLease {
        leases: "p:#l:{e}",
        fences: "p:#f:{e}",
        member: "n:v",
        token: "t1",
        ttl: MINUTE,
        namespace,
    };
    assert_eq!(lease("n").run(&routes).await.unwrap(), None, "no fence");
    assert_eq!(
        redis.text(&["HGET", "p:#l:{e}", "n:v"]).await.as_deref(),
        Some("t1")
    );
    assert!(redis.integer(&["PTTL", "p:#l:{e}"]).await > 50_000);
    // A fence of another namespace does not cover it; one of its own, or of all, does.
    redis.command(&["HSET", "p:#f:{e}", "other", "1"]).await;
    assert_eq!(lease("n").run(&routes).await.unwrap(), None);
    let fence = FenceEntity {
        index: "p:#e:{e}",
        leases: "p:#l:{e}",
        fences: "p:#f:{e}",
        namespace: "n",
        fence_ttl: MINUTE,
    };
    fence.run(&routes).await.unwrap();
    let age = lease("n").run(&routes).await.unwrap().expect("a fence");
    assert!(age < 5_000_000, "{age} µs");
}

#[tokio::test]
async fn join_indexes_the_member_until_its_expiry_and_reports_the_group_fence() {
    let redis = Server::start().await;
    let routes = redis.routes();
    let join = Join {
        index: "p:#n:{ns}",
        fence: "p:#nf:{ns}",
        member: "e1",
        ttl: MINUTE,
    };
    assert_eq!(join.run(&routes).await.unwrap(), None);
    assert_eq!(
        redis.strings(&["ZRANGE", "p:#n:{ns}", "0", "-1"]).await,
        ["e1"]
    );
    assert!(redis.integer(&["PTTL", "p:#n:{ns}"]).await > 50_000);
    let fence = FenceGroup {
        index: "p:#n:{ns}",
        fence: "p:#nf:{ns}",
        fence_ttl: MINUTE,
    };
    assert_eq!(fence.run(&routes).await.unwrap(), ["e1"]);
    assert!(join.run(&routes).await.unwrap().is_some(), "fenced");
}

#[tokio::test]
async fn store_entry_stores_only_under_its_lease() {
    let redis = Server::start().await;
    let routes = redis.routes();
    redis.command(&["HSET", "p:#l:{e}", "n:v", "mine"]).await;
    let store = |token| StoreEntry {
        entry: "p:n:{e}:v",
        leases: "p:#l:{e}",
        entity_index: "p:#e:{e}",
        member: "n:v",
        token,
        value: "the entry".into(),
        ttl: MINUTE,
    };
    assert!(!store("not mine").run(&routes).await.unwrap());
    assert_eq!(redis.text(&["GET", "p:n:{e}:v"]).await, None);
    assert!(store("mine").run(&routes).await.unwrap());
    assert_eq!(
        redis.text(&["GET", "p:n:{e}:v"]).await.as_deref(),
        Some("the entry")
    );
    assert!(redis.integer(&["PTTL", "p:n:{e}:v"]).await > 50_000);
    assert_eq!(
        redis.strings(&["ZRANGE", "p:#e:{e}", "0", "-1"]).await,
        ["n:v"]
    );
    assert_eq!(
        redis.text(&["HGET", "p:#l:{e}", "n:v"]).await,
        None,
        "lease used up"
    );
    assert!(!store("mine").run(&routes).await.unwrap(), "once");
}

#[tokio::test]
async fn fence_entity_drops_the_leases_and_lists_the_entries_of_its_scope() {
    let redis = Server::start().await;
    let routes = redis.routes();
    for member in ["a:1", "a:2", "b:1"] {
        redis
            .command(&["ZADD", "p:#e:{e}", "9999999999999", member])
            .await;
        redis.command(&["HSET", "p:#l:{e}", member, "token"]).await;
    }
    let fence = |namespace| FenceEntity {
        index: "p:#e:{e}",
        leases: "p:#l:{e}",
        fences: "p:#f:{e}",
        namespace,
        fence_ttl: MINUTE,
    };
    let mut listed = fence("a").run(&routes).await.unwrap();
    listed.sort();
    assert_eq!(listed, ["a:1", "a:2"]);
    assert_eq!(redis.strings(&["HKEYS", "p:#l:{e}"]).await, ["b:1"]);
    assert!(redis.text(&["HGET", "p:#f:{e}", "a"]).await.is_some());
    let mut listed = fence("").run(&routes).await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        ["a:1", "a:2", "b:1"],
        "the index is left to drop_entries"
    );
    assert_eq!(redis.integer(&["EXISTS", "p:#l:{e}"]).await, 0);
    assert!(redis.text(&["HGET", "p:#f:{e}", "*"]).await.is_some());
    assert!(redis.integer(&["PTTL", "p:#f:{e}"]).await > 50_000);
}

#[tokio::test]
async fn drop_entries_drops_the_entries_their_members_and_leases() {
    let redis = Server::start().await;
    let routes = redis.routes();
    for (key, member) in [("p:a:{e}:1", "a:1"), ("p:a:{e}:2", "a:2")] {
        redis.command(&["SET", key, "x"]).await;
        redis
            .command(&["ZADD", "p:#e:{e}", "9999999999999", member])
            .await;
        redis.command(&["HSET", "p:#l:{e}", member, "token"]).await;
    }
    redis
        .command(&["ZADD", "p:#e:{e}", "9999999999999", "b:1"])
        .await;
    let entries = [
        ("p:a:{e}:1".to_owned(), "a:1".to_owned()),
        ("p:a:{e}:3".to_owned(), "a:3".to_owned()),
    ];
    let drop = DropEntries {
        index: "p:#e:{e}",
        leases: "p:#l:{e}",
        entries: &entries,
    };
    assert_eq!(
        drop.run(&routes).await.unwrap(),
        1,
        "one of the two was there"
    );
    assert_eq!(redis.integer(&["EXISTS", "p:a:{e}:1"]).await, 0);
    assert_eq!(redis.integer(&["EXISTS", "p:a:{e}:2"]).await, 1);
    assert_eq!(
        redis.strings(&["ZRANGE", "p:#e:{e}", "0", "-1"]).await,
        ["a:2", "b:1"]
    );
    assert_eq!(redis.strings(&["HKEYS", "p:#l:{e}"]).await, ["a:2"]);
}

#[tokio::test]
async fn fence_group_sets_the_fence_and_lists_live_members_only() {
    let redis = Server::start().await;
    let routes = redis.routes();
    redis.command(&["ZADD", "p:#t:{t}", "1", "expired"]).await;
    redis
        .command(&["ZADD", "p:#t:{t}", "9999999999999", "live"])
        .await;
    let fence = FenceGroup {
        index: "p:#t:{t}",
        fence: "p:#tf:{t}",
        fence_ttl: MINUTE,
    };
    assert_eq!(fence.run(&routes).await.unwrap(), ["live"]);
    assert!(redis.text(&["GET", "p:#tf:{t}"]).await.is_some());
    assert!(redis.integer(&["PTTL", "p:#tf:{t}"]).await > 50_000);
}

#[tokio::test]
async fn miss_leases_are_taken_held_released_and_filled() {
    let redis = Server::start().await;
    let routes = redis.routes();
    let take = |token: &str| TakeMissLease {
        entry: "p:n:{e}:v",
        lease: "p:#m:{e}:n:v",
        token: token.to_owned(),
        ttl: MINUTE,
    };
    assert_eq!(
        take("t1").run(&routes).await.unwrap(),
        Lease::Taken("t1".into())
    );
    assert_eq!(take("t2").run(&routes).await.unwrap(), Lease::Held);
    let release = |token, stored| ReleaseMissLease {
        lease: "p:#m:{e}:n:v",
        token,
        stored,
        ttl: MINUTE,
    };
    release("t2", false).run(&routes).await.unwrap();
    assert_eq!(
        redis.text(&["GET", "p:#m:{e}:n:v"]).await.as_deref(),
        Some("t1"),
        "not t2's"
    );
    release("t1", false).run(&routes).await.unwrap();
    assert_eq!(take("t3").run(&routes).await.unwrap(), Lease::Forward);
    redis.command(&["DEL", "p:#m:{e}:n:v"]).await;
    assert_eq!(
        take("t4").run(&routes).await.unwrap(),
        Lease::Taken("t4".into())
    );
    release("t4", true).run(&routes).await.unwrap();
    assert_eq!(
        redis.integer(&["EXISTS", "p:#m:{e}:n:v"]).await,
        0,
        "stored: gone"
    );
    redis.command(&["SET", "p:n:{e}:v", "entry"]).await;
    assert_eq!(
        take("t5").run(&routes).await.unwrap(),
        Lease::Filled("entry".into())
    );
}

#[tokio::test]
async fn a_script_the_server_forgot_is_sent_whole() {
    let redis = Server::start().await;
    let routes = redis.routes();
    let fence = FenceGroup {
        index: "p:#n:{ns}",
        fence: "p:#nf:{ns}",
        fence_ttl: MINUTE,
    };
    fence.run(&routes).await.unwrap();
    redis.command(&["SCRIPT", "FLUSH"]).await;
    assert_eq!(fence.run(&routes).await.unwrap(), Vec::<String>::new());
    // EVAL cached it again: EVALSHA alone works.
    let known = redis.command(&["SCRIPT", "EXISTS", &sha()]).await;
    assert_eq!(known, Value::Array(vec![Value::Integer(1)]));
}

/// The SHA-1 of `fence_group.lua`, as Redis names it.
fn sha() -> String {
    fred::util::sha1_hash(include_str!("fence_group.lua"))
}

/// An entity's keys in these tests: its index, leases and fences, and the entry of `n:v`.
const INDEX: &str = "p:#e:{e}";
const LEASES: &str = "p:#l:{e}";
const FENCES: &str = "p:#f:{e}";
const ENTRY: &str = "p:n:{e}:v";

fn lease(token: &str) -> WriteLease<'_> {
    WriteLease {
        leases: LEASES,
        fences: FENCES,
        member: "n:v",
        token,
        ttl: MINUTE,
        namespace: "n",
    }
}

fn store(token: &str) -> StoreEntry<'_> {
    StoreEntry {
        entry: ENTRY,
        leases: LEASES,
        entity_index: INDEX,
        member: "n:v",
        token,
        value: "old response".into(),
        ttl: MINUTE,
    }
}

fn fence_entity() -> FenceEntity<'static> {
    FenceEntity {
        index: INDEX,
        leases: LEASES,
        fences: FENCES,
        namespace: "",
        fence_ttl: MINUTE,
    }
}

#[tokio::test]
async fn a_write_leased_before_an_entity_fence_is_refused_between_fence_and_drop() {
    let redis = Server::start().await;
    let routes = redis.routes();
    assert_eq!(lease("old").run(&routes).await.unwrap(), None);
    // The invalidation's first step runs; its write-back lands before the second.
    assert_eq!(
        fence_entity().run(&routes).await.unwrap(),
        Vec::<String>::new()
    );
    assert!(
        !store("old").run(&routes).await.unwrap(),
        "its lease went with the fence"
    );
    assert_eq!(redis.text(&["GET", ENTRY]).await, None);
}

#[tokio::test]
async fn an_entry_stored_before_an_entity_fence_is_listed_and_dropped() {
    let redis = Server::start().await;
    let routes = redis.routes();
    lease("old").run(&routes).await.unwrap();
    assert!(store("old").run(&routes).await.unwrap());
    let listed = fence_entity().run(&routes).await.unwrap();
    assert_eq!(listed, ["n:v"]);
    let entries = [(ENTRY.to_owned(), "n:v".to_owned())];
    let drop = DropEntries {
        index: INDEX,
        leases: LEASES,
        entries: &entries,
    };
    assert_eq!(drop.run(&routes).await.unwrap(), 1);
    assert_eq!(redis.text(&["GET", ENTRY]).await, None);
}

#[tokio::test]
async fn a_tagged_write_joined_before_the_tag_fence_is_dropped_after_it() {
    let redis = Server::start().await;
    let routes = redis.routes();
    lease("old").run(&routes).await.unwrap();
    let join = Join {
        index: "p:#t:{t}",
        fence: "p:#tf:{t}",
        member: "n:{e}:v",
        ttl: MINUTE,
    };
    assert_eq!(join.run(&routes).await.unwrap(), None);
    // The tag's fence only stops later joins: this write-back joined before it, so it stores...
    let fence = FenceGroup {
        index: "p:#t:{t}",
        fence: "p:#tf:{t}",
        fence_ttl: MINUTE,
    };
    assert_eq!(fence.run(&routes).await.unwrap(), ["n:{e}:v"]);
    assert!(store("old").run(&routes).await.unwrap());
    // ...and the drop of what the fence listed deletes it.
    let entries = [(ENTRY.to_owned(), "n:v".to_owned())];
    let drop = DropEntries {
        index: INDEX,
        leases: LEASES,
        entries: &entries,
    };
    assert_eq!(drop.run(&routes).await.unwrap(), 1);
    assert_eq!(redis.text(&["GET", ENTRY]).await, None);
}

#[tokio::test]
async fn stale_entries_ends_the_freshness_of_entries_only_and_drops_their_leases() {
    use crate::entry::Entry;
    use fred::interfaces::KeysInterface;
    use std::time::{Duration, SystemTime};
    let redis = Server::start().await;
    let routes = redis.routes();
    let stored_at = SystemTime::now() - Duration::from_secs(10);
    let entry = Entry::new(http::StatusCode::OK, Default::default(), "body".into())
        .with_stored_at(stored_at)
        .with_ttl(Duration::from_secs(60))
        .with_stale(Duration::from_secs(30), Duration::ZERO);
    let client = routes.pool.next_connected();
    let _: () = client
        .set("p:a:{e}:1", entry.encode(), None, None, false)
        .await
        .unwrap();
    redis.command(&["SET", "p:a:{e}:2", "not an entry"]).await;
    redis.command(&["HSET", "p:#l:{e}", "a:1", "token"]).await;
    let entries = [
        ("p:a:{e}:1".to_owned(), "a:1".to_owned()),
        ("p:a:{e}:2".to_owned(), "a:2".to_owned()),
        ("p:a:{e}:3".to_owned(), "a:3".to_owned()),
    ];
    let now = SystemTime::now();
    let stale = StaleEntries {
        leases: "p:#l:{e}",
        entries: &entries,
        now_millis: crate::millis::millis(now.duration_since(std::time::UNIX_EPOCH).unwrap()),
    };
    assert_eq!(
        stale.run(&routes).await.unwrap(),
        1,
        "one entry of the three"
    );
    let marked: bytes::Bytes = client.get("p:a:{e}:1").await.unwrap();
    let marked = Entry::decode(marked).unwrap();
    assert!(
        marked.ttl() <= now.duration_since(stored_at).unwrap() + Duration::from_millis(1),
        "no longer fresh"
    );
    assert!(marked.ttl() >= Duration::from_secs(9));
    let original = Entry::decode(entry.encode()).unwrap();
    assert_eq!(
        marked.with_ttl(Duration::from_secs(60)),
        original,
        "nothing else changed"
    );
    let foreign: String = client.get("p:a:{e}:2").await.unwrap();
    assert_eq!(foreign, "not an entry", "left alone");
    assert!(redis.strings(&["HKEYS", "p:#l:{e}"]).await.is_empty());
}
