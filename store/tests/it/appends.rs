use std::sync::Arc;
use std::time::Duration;

use kho_store::{AsOf, Error, ManualClock, Outcome, Receipt, Store, StreamWriter, WriterConfig};
use object_store::ObjectStore;
use object_store::memory::InMemory;

use crate::support::{Backend, batch, id, ids, keyed, retraction, revenue, reversal, sub};

crate::conformance!(
    appends_and_time_travel,
    event_ids_never_twice,
    idempotent_retry_survives_restart,
    reversal_rules,
    retraction_rules,
    concurrent_writers_exactly_once,
);

const S: &str = "finance.budget";

async fn writer(store: &kho_store::Store) -> StreamWriter {
    StreamWriter::open(store, S, WriterConfig::default())
        .await
        .unwrap()
}

fn committed(o: &Outcome) -> Receipt {
    match o {
        Outcome::Committed(r) => *r,
        other => panic!("expected a commit, got {other:?}"),
    }
}

async fn appends_and_time_travel(backend: Backend) {
    let store = backend.store().await;
    let mut w = writer(&store).await;
    let first = w
        .commit(&[sub(batch(
            &store,
            S,
            &[revenue(&id(1), 10), revenue(&id(2), 20)],
        ))])
        .await
        .unwrap();
    let r1 = committed(&first[0]);
    assert_eq!((r1.version, r1.accepted, r1.duplicates), (1, 2, 0));
    // Object stores keep modification times to the second: leave a clear gap.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r2 = committed(
        &w.commit(&[sub(batch(&store, S, &[revenue(&id(3), 30)]))])
            .await
            .unwrap()[0],
    );
    assert_eq!(r2.version, 2);

    assert_eq!(
        ids(&store, S, AsOf::Latest).await,
        vec![id(1), id(2), id(3)]
    );
    assert_eq!(ids(&store, S, AsOf::Version(1)).await, vec![id(1), id(2)]);
    assert_eq!(ids(&store, S, AsOf::Version(0)).await, Vec::<String>::new());
    assert_eq!(
        ids(&store, S, AsOf::Timestamp(between)).await,
        vec![id(1), id(2)]
    );
    let stats = store.stream_stats(S).await.unwrap();
    assert_eq!((stats.version, stats.row_count), (2, 3));
    assert!(stats.last_commit_at.is_some());

    let err = store.read_stream(S, AsOf::Version(99)).await.unwrap_err();
    assert!(
        matches!(err, Error::NoSuchVersion { version: 99, .. }),
        "{err}"
    );
    let long_ago = chrono::DateTime::parse_from_rfc3339("2001-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let err = store
        .read_stream(S, AsOf::Timestamp(long_ago))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoVersionAtTime { .. }), "{err}");
}

async fn event_ids_never_twice(backend: Backend) {
    let store = backend.store().await;
    let mut w = writer(&store).await;
    w.commit(&[sub(batch(
        &store,
        S,
        &[revenue(&id(1), 1), revenue(&id(2), 2)],
    ))])
    .await
    .unwrap();
    let r = committed(
        &w.commit(&[sub(batch(
            &store,
            S,
            &[revenue(&id(2), 2), revenue(&id(3), 3)],
        ))])
        .await
        .unwrap()[0],
    );
    assert_eq!((r.accepted, r.duplicates), (1, 1));

    // Two submissions of one group that share an id: the first one wins.
    let out = w
        .commit(&[
            sub(batch(&store, S, &[revenue(&id(4), 4), revenue(&id(5), 5)])),
            sub(batch(&store, S, &[revenue(&id(5), 5), revenue(&id(6), 6)])),
        ])
        .await
        .unwrap();
    let (a, b) = (committed(&out[0]), committed(&out[1]));
    assert_eq!(
        (a.accepted, a.duplicates, b.accepted, b.duplicates),
        (2, 0, 1, 1)
    );
    assert_eq!(a.version, b.version, "one group, one commit");

    // Every event already there: nothing is committed.
    let before = store.stream_stats(S).await.unwrap().version;
    let r = committed(
        &w.commit(&[sub(batch(&store, S, &[revenue(&id(1), 1)]))])
            .await
            .unwrap()[0],
    );
    assert_eq!((r.accepted, r.duplicates, r.version), (0, 1, before));
    assert_eq!(store.stream_stats(S).await.unwrap().version, before);

    let all = ids(&store, S, AsOf::Latest).await;
    assert_eq!(all, (1..=6).map(id).collect::<Vec<_>>());
}

async fn idempotent_retry_survives_restart(backend: Backend) {
    let store = backend.store().await;
    let mut w = writer(&store).await;
    let b = batch(&store, S, &[revenue(&id(1), 1), revenue(&id(2), 2)]);
    let first = committed(&w.commit(&[keyed(b.clone(), "k1", "body-a")]).await.unwrap()[0]);
    // The same key with fresh server-assigned ids would be new rows: the key must stop it.
    let fresh = batch(&store, S, &[revenue(&id(7), 1), revenue(&id(8), 2)]);
    let again = w
        .commit(&[keyed(fresh.clone(), "k1", "body-a")])
        .await
        .unwrap();
    assert_eq!(again[0], Outcome::Replayed(first));
    let reused = w
        .commit(&[keyed(fresh.clone(), "k1", "body-b")])
        .await
        .unwrap();
    assert_eq!(reused[0], Outcome::KeyReused);

    // A restart: a new process, a new writer, the index rebuilt from the log.
    drop(w);
    let store2 = backend.again(&store).await;
    let mut w2 = writer(&store2).await;
    let after = w2.commit(&[keyed(fresh, "k1", "body-a")]).await.unwrap();
    assert_eq!(after[0], Outcome::Replayed(first));
    let stats = store2.stream_stats(S).await.unwrap();
    assert_eq!((stats.version, stats.row_count), (first.version, 2));
}

async fn reversal_rules(backend: Backend) {
    let store = backend.store().await;
    let mut w = writer(&store).await;
    w.commit(&[sub(batch(&store, S, &[revenue(&id(1), 100)]))])
        .await
        .unwrap();
    committed(
        &w.commit(&[sub(batch(&store, S, &[reversal(&id(2), &id(1))]))])
            .await
            .unwrap()[0],
    );
    let version = store.stream_stats(S).await.unwrap().version;

    let cases = [
        (
            reversal(&id(3), &id(1)),
            format!("event {} is already reversed", id(1)),
        ),
        (
            reversal(&id(4), &id(99)),
            format!(
                "names event {}, which is not in stream finance.budget",
                id(99)
            ),
        ),
        (
            reversal(&id(5), &id(2)),
            format!(
                "names event {}, which is itself an entry_reversed: it cannot be reversed",
                id(2)
            ),
        ),
    ];
    for (row, message) in cases {
        let out = w
            .commit(&[sub(batch(&store, S, &[revenue(&id(50), 5), row]))])
            .await
            .unwrap();
        let Outcome::Rejected(errors) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].row, 2);
        assert_eq!(errors[0].field.as_deref(), Some("reverses_event_id"));
        assert_eq!(errors[0].message, message);
    }
    assert_eq!(
        store.stream_stats(S).await.unwrap().version,
        version,
        "rejections write nothing"
    );

    // A reversal may name an event of its own batch; a bad submission does not sink a good one.
    let out = w
        .commit(&[
            sub(batch(
                &store,
                S,
                &[revenue(&id(10), 7), reversal(&id(11), &id(10))],
            )),
            sub(batch(&store, S, &[reversal(&id(12), &id(98))])),
        ])
        .await
        .unwrap();
    assert_eq!(committed(&out[0]).accepted, 2);
    assert!(matches!(&out[1], Outcome::Rejected(e) if e.len() == 1));
    assert_eq!(
        ids(&store, S, AsOf::Latest).await,
        vec![id(1), id(2), id(10), id(11)]
    );
}

async fn retraction_rules(backend: Backend) {
    let store = backend.store().await;
    let mut w = writer(&store).await;
    committed(
        &w.commit(&[sub(batch(
            &store,
            S,
            &[
                revenue(&id(1), 100),
                revenue(&id(2), 5),
                reversal(&id(3), &id(2)),
            ],
        ))])
        .await
        .unwrap()[0],
    );
    // A retraction of a reversal and of an entry, and one naming an event of its own batch.
    let out = w
        .commit(&[sub(batch(
            &store,
            S,
            &[
                retraction(&id(4), &id(1)),
                retraction(&id(5), &id(3)),
                revenue(&id(6), 9),
                retraction(&id(7), &id(6)),
            ],
        ))])
        .await
        .unwrap();
    assert_eq!(committed(&out[0]).accepted, 4);
    let version = store.stream_stats(S).await.unwrap().version;

    let cases = [
        (
            retraction(&id(10), &id(1)),
            format!("event {} is already retracted", id(1)),
        ),
        (
            retraction(&id(11), &id(4)),
            format!(
                "names event {}, which is itself an event_retracted: it cannot be retracted",
                id(4)
            ),
        ),
        (
            retraction(&id(12), &id(97)),
            format!(
                "names event {}, which is not in stream finance.budget",
                id(97)
            ),
        ),
    ];
    for (row, message) in cases {
        let out = w
            .commit(&[sub(batch(&store, S, &[revenue(&id(50), 5), row]))])
            .await
            .unwrap();
        let Outcome::Rejected(errors) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].row, 2);
        assert_eq!(errors[0].field.as_deref(), Some("retracts_event_id"));
        assert_eq!(errors[0].message, message);
    }
    // A reversal cannot name a retraction; retracting is not reversing (id 2 is reversed,
    // id 6 only retracted: a reversal of id 6 is still taken).
    let out = w
        .commit(&[sub(batch(&store, S, &[reversal(&id(13), &id(4))]))])
        .await
        .unwrap();
    let Outcome::Rejected(errors) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        errors[0].message,
        format!(
            "names event {}, which is itself an event_retracted: it cannot be reversed",
            id(4)
        )
    );
    assert_eq!(store.stream_stats(S).await.unwrap().version, version);

    // The rules hold across a restart: the index is rebuilt from the log.
    drop(w);
    let store2 = backend.again(&store).await;
    let mut w2 = writer(&store2).await;
    let out = w2
        .commit(&[sub(batch(&store2, S, &[retraction(&id(14), &id(6))]))])
        .await
        .unwrap();
    let Outcome::Rejected(errors) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        errors[0].message,
        format!("event {} is already retracted", id(6))
    );
    committed(
        &w2.commit(&[sub(batch(&store2, S, &[reversal(&id(15), &id(6))]))])
            .await
            .unwrap()[0],
    );
}

async fn concurrent_writers_exactly_once(backend: Backend) {
    let store_a = backend.store().await;
    let store_b = backend.again(&store_a).await;
    let shared = batch(
        &store_a,
        S,
        &(9000..9020).map(|n| revenue(&id(n), 1)).collect::<Vec<_>>(),
    );
    let mut tasks = Vec::new();
    for (w, store) in [(0u32, store_a.clone()), (1, store_b.clone())] {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut writer = writer(&store).await;
            let mut acked = Vec::new();
            for round in 0..8u32 {
                let rows: Vec<_> = (0..25u32)
                    .map(|i| revenue(&id(w * 100_000 + round * 100 + i), 1))
                    .collect();
                let b = batch(&store, S, &rows);
                let out = writer.commit(&[sub(b)]).await.unwrap();
                acked.push(committed(&out[0]));
                if round == 3 {
                    // Both "processes" retry the same request with the same key.
                    let out = writer
                        .commit(&[keyed(shared.clone(), "same-key", "same-body")])
                        .await
                        .unwrap();
                    acked.push(match out[0] {
                        Outcome::Committed(r) | Outcome::Replayed(r) => r,
                        ref o => panic!("{o:?}"),
                    });
                }
            }
            acked
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        for r in t.await.unwrap() {
            accepted += r.accepted;
        }
    }
    let all = ids(&store_a, S, AsOf::Latest).await;
    let mut distinct = all.clone();
    distinct.dedup();
    assert_eq!(all.len(), distinct.len(), "an event appears twice");
    assert_eq!(all.len(), 2 * 8 * 25 + 20);
    // The shared batch counts once: the replay reports the first commit's receipt.
    assert_eq!(accepted, (2 * 8 * 25 + 2 * 20) as u64);
    let stats = store_a.stream_stats(S).await.unwrap();
    assert_eq!(stats.row_count, all.len() as u64);
    assert_eq!(stats.version, 17, "16 rounds and one shared commit");
}

/// A key is remembered for the idempotency window by the store's clock, whose time a test
/// can move: within the window (by one writer, and by a writer rebuilt from the log) it
/// replays; once the clock has passed the window, a restarted writer has forgotten it, and
/// only the event ids stop a resend from landing twice.
#[tokio::test]
async fn keys_are_forgotten_when_the_clock_passes_the_window() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = Store::open_provided(objects.clone(), clock.clone())
        .await
        .unwrap();
    let config = WriterConfig {
        idempotency_window: Duration::from_secs(3600),
    };
    let mut w = StreamWriter::open(&store, S, config.clone()).await.unwrap();
    let b = batch(&store, S, &[revenue(&id(1), 1)]);
    let first = committed(&w.commit(&[keyed(b.clone(), "k", "body")]).await.unwrap()[0]);
    let fresh = batch(&store, S, &[revenue(&id(2), 1)]);

    clock.advance(chrono::Duration::minutes(59));
    let restarted = StreamWriter::open(&store, S, config.clone()).await.unwrap();
    drop(w);
    w = restarted;
    let again = w
        .commit(&[keyed(fresh.clone(), "k", "body")])
        .await
        .unwrap();
    assert_eq!(again[0], Outcome::Replayed(first), "within the window");

    clock.advance(chrono::Duration::minutes(2));
    let mut late = StreamWriter::open(&store, S, config).await.unwrap();
    let resent = late
        .commit(&[keyed(b.clone(), "k", "body"), keyed(fresh, "k2", "body")])
        .await
        .unwrap();
    assert_eq!(
        resent[0],
        Outcome::Committed(Receipt {
            version: first.version + 1,
            accepted: 0,
            duplicates: 1
        }),
        "past the window the key is forgotten; the event id still stops the resend"
    );
    assert_eq!(committed(&resent[1]).accepted, 1);
    assert_eq!(ids(&store, S, AsOf::Latest).await.len(), 2);
}
