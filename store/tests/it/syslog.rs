use kho_store::{LogEntry, SystemLog};
use serde_json::json;

use crate::support::Backend;

crate::conformance!(
    system_log_replays_in_order,
    an_append_decided_on_an_old_version_does_not_land,
    objects_are_created_once
);

async fn system_log_replays_in_order(backend: Backend) {
    let store = backend.store().await;
    let log = SystemLog::open(store.clone(), "system/test").await.unwrap();
    let (v0, empty) = log.read_all().await.unwrap();
    assert!(empty.is_empty());
    let a = LogEntry::new("token_issued", "admin", json!({"id": "a"}), store.now());
    let b = LogEntry::new(
        "token_revoked",
        "admin",
        json!({"id": "a", "why": "leaked"}),
        store.now(),
    );
    let v1 = log
        .append_at(v0, std::slice::from_ref(&a))
        .await
        .unwrap()
        .unwrap();
    let v2 = log
        .append_at(v1, std::slice::from_ref(&b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((v1, v2), (v0 + 1, v0 + 2));
    assert_eq!(
        kho_store::latest_version(&store, "system/test")
            .await
            .unwrap(),
        v2
    );
    // A second handle (another process) sees the same entries in the same order.
    let other = SystemLog::open(backend.again(&store).await, "system/test")
        .await
        .unwrap();
    let (v, entries) = other.read_all().await.unwrap();
    assert_eq!(v, v2);
    assert_eq!(entries, vec![a, b]);
}

/// Two writers decide on the same version: exactly one lands, the other writes nothing and
/// reads what the first wrote.
async fn an_append_decided_on_an_old_version_does_not_land(backend: Backend) {
    let store = backend.store().await;
    let log = SystemLog::open(store.clone(), "system/test").await.unwrap();
    let other = SystemLog::open(backend.again(&store).await, "system/test")
        .await
        .unwrap();
    let (v0, _) = log.read_all().await.unwrap();
    assert!(!log.has_after(v0).await.unwrap());
    let mine = LogEntry::new(
        "dataset_revoked",
        "steward",
        json!({"id": "d"}),
        store.now(),
    );
    let theirs = LogEntry::new("dataset_released", "owner", json!({"id": "d"}), store.now());
    let (a, b) = tokio::join!(
        log.append_at(v0, std::slice::from_ref(&mine)),
        other.append_at(v0, std::slice::from_ref(&theirs)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a.is_some() != b.is_some(),
        "exactly one of two appends after the same version lands: {a:?} {b:?}"
    );
    assert!(log.has_after(v0).await.unwrap());
    let (winner, loser) = if a.is_some() {
        (mine.clone(), (&other, theirs.clone()))
    } else {
        (theirs.clone(), (&log, mine.clone()))
    };
    // The loser reads what the winner wrote, then appends after it.
    let (v1, news) = loser.0.read_since(v0).await.unwrap().unwrap();
    assert_eq!((v1, news), (v0 + 1, vec![winner.clone()]));
    assert_eq!(
        loser
            .0
            .append_at(v1, std::slice::from_ref(&loser.1))
            .await
            .unwrap(),
        Some(v0 + 2)
    );
    // An append decided on the old version again is refused, and nothing was written by it.
    let late = LogEntry::new(
        "dataset_approved",
        "steward",
        json!({"id": "d"}),
        store.now(),
    );
    assert_eq!(
        log.append_at(v0, std::slice::from_ref(&late))
            .await
            .unwrap(),
        None
    );
    let (v, all) = log.read_all().await.unwrap();
    assert_eq!(v, v0 + 2);
    assert_eq!(all.len(), 2);
    assert!(!all.contains(&late));
}

async fn objects_are_created_once(backend: Backend) {
    let store = backend.store().await;
    assert_eq!(store.read_object("system/keys/k").await.unwrap(), None);
    let first = store
        .create_object("system/keys/k", bytes::Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert_eq!(&first[..], b"one");
    // A second process racing to create it gets the first one's bytes.
    let other = backend.again(&store).await;
    let second = other
        .create_object("system/keys/k", bytes::Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(&second[..], b"one");
    assert_eq!(
        other.read_object("system/keys/k").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
}
