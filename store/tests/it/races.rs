//! Rewrites racing each other and the writers: compactions, overwrites. Whatever the
//! interleaving, every event is in the table exactly once; checked by reading the table
//! (every live file), not through kho's index.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use kho_store::{
    AsOf, MaintenanceOptions, OverwriteMeta, StreamWriter, WriterConfig, maintain_table, overwrite,
    stream_key,
};

use crate::support::{Backend, batch, id, ids, revenue, sub};

crate::conformance!(
    racing_compactions_and_writers_never_duplicate,
    racing_overwrites_leave_one_copy,
);

const S: &str = "finance.budget";

fn compact_only() -> MaintenanceOptions {
    MaintenanceOptions {
        checkpoint: false,
        ..MaintenanceOptions::default()
    }
}

/// Three compactions (each on its own store handle, as three processes would) start at
/// once on the same small files while a writer keeps appending, round after round.
async fn racing_compactions_and_writers_never_duplicate(backend: Backend) {
    let store = backend.store().await;
    let mut w = StreamWriter::open(&store, S, WriterConfig::default())
        .await
        .unwrap();
    let mut next = 0u32;
    let append = |next: &mut u32, n: u32| {
        let rows: Vec<_> = (*next..*next + n).map(|i| revenue(&id(i), 1)).collect();
        *next += n;
        rows
    };
    // Three handles, as three processes would have, opened before the race starts.
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(backend.again(&store).await);
    }
    let mut dropped = 0;
    let mut landed = 0;
    for _round in 0..6 {
        for _ in 0..4 {
            let rows = append(&mut next, 5);
            w.commit(&[sub(batch(&store, S, &rows))]).await.unwrap();
        }
        let mut handles = Vec::new();
        for s in &others {
            let s = s.clone();
            handles.push(tokio::spawn(async move {
                maintain_table(&s, &stream_key(S), &compact_only()).await
            }));
        }
        // The writer goes on meanwhile.
        for _ in 0..3 {
            let rows = append(&mut next, 5);
            w.commit(&[sub(batch(&store, S, &rows))]).await.unwrap();
        }
        for h in handles {
            let r = h.await.unwrap().unwrap();
            dropped += usize::from(r.compaction_dropped);
            landed += usize::from(r.compaction_version.is_some());
        }
        let expected: Vec<String> = (0..next).map(id).collect();
        assert_eq!(
            ids(&store, S, AsOf::Latest).await,
            expected,
            "every event exactly once after the round (landed {landed}, dropped {dropped})"
        );
    }
    assert!(landed >= 6, "each round compacted: {landed} landed");
    assert!(
        dropped >= 1,
        "no compaction lost its files to another in 6 rounds of 3: the race was not exercised"
    );
    // A writer opened afresh agrees.
    let fresh = StreamWriter::open(&store, S, WriterConfig::default())
        .await
        .unwrap();
    assert_eq!(fresh.event_count(), next as usize);
}

fn numbers(from: i64, n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(from..from + n))],
    )
    .unwrap()
}

/// Four rewriters replace the same table at once, each with its own rows: after every
/// round the table holds exactly one of them, never a union.
async fn racing_overwrites_leave_one_copy(backend: Backend) {
    let store = backend.store().await;
    let key = "views/race_test";
    for round in 0..4i64 {
        let mut handles = Vec::new();
        for writer in 0..4i64 {
            let s = backend.again(&store).await;
            handles.push(tokio::spawn(async move {
                let meta = OverwriteMeta {
                    name: "race_test".into(),
                    description: "overwrites racing".into(),
                    transactions: vec![("kho.test".into(), round as u64)],
                    kho: Some(serde_json::json!({"writer": writer})),
                };
                overwrite(&s, key, numbers(writer * 1000 + round * 10, 10), &meta).await
            }));
        }
        for h in handles {
            h.await.unwrap().unwrap();
        }
        let table = store.table(key, AsOf::Latest).await.unwrap();
        let mut got: Vec<i64> = table
            .read()
            .await
            .unwrap()
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        got.sort_unstable();
        assert_eq!(
            got.len(),
            10,
            "round {round}: one writer's rows, got {got:?}"
        );
        let base = got[0];
        assert_eq!(got, (base..base + 10).collect::<Vec<_>>(), "round {round}");
        assert_eq!(base % 1000, round * 10, "round {round}: rows of this round");
    }
}
