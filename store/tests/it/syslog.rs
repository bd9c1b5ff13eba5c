use kho_store::{LogEntry, SystemLog};
use serde_json::json;

use crate::support::Backend;

crate::conformance!(system_log_replays_in_order, objects_are_created_once);

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
    let v1 = log.append(std::slice::from_ref(&a)).await.unwrap();
    let v2 = log.append(std::slice::from_ref(&b)).await.unwrap();
    assert!(v0 < v1 && v1 < v2);
    assert_eq!(log.latest_version().await.unwrap(), v2);
    // A second handle (another process) sees the same entries in the same order.
    let other = SystemLog::open(backend.again(&store).await, "system/test")
        .await
        .unwrap();
    let (v, entries) = other.read_all().await.unwrap();
    assert_eq!(v, v2);
    assert_eq!(entries, vec![a, b]);
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
