use kho_store::{
    AsOf, MaintenanceOptions, Outcome, StreamWriter, WriterConfig, maintain_table, stream_key,
};

use crate::support::{Backend, batch, id, ids, revenue, sub};

crate::conformance!(compaction_keeps_rows_history_and_dedup);

const S: &str = "finance.budget";

async fn compaction_keeps_rows_history_and_dedup(backend: Backend) {
    let store = backend.store().await;
    let mut w = StreamWriter::open(&store, S, WriterConfig::default())
        .await
        .unwrap();
    for round in 0..5u32 {
        let rows: Vec<_> = (0..10).map(|i| revenue(&id(round * 10 + i), 1)).collect();
        w.commit(&[sub(batch(&store, S, &rows))]).await.unwrap();
    }
    assert_eq!(store.stream_stats(S).await.unwrap().file_count, 5);

    let report = maintain_table(&store, &stream_key(S), &MaintenanceOptions::default())
        .await
        .unwrap();
    assert_eq!((report.files_before, report.files_after), (5, 1));
    assert_eq!(report.files_compacted, 5);
    assert_eq!(report.version_after, 6);
    assert_eq!(report.checkpoint_version, Some(6));
    let stats = store.stream_stats(S).await.unwrap();
    assert_eq!((stats.row_count, stats.file_count), (50, 1));

    // Vacuum with the default retention keeps every file an earlier version needs.
    let opts = MaintenanceOptions {
        vacuum: true,
        ..Default::default()
    };
    let report = maintain_table(&store, &stream_key(S), &opts).await.unwrap();
    assert_eq!(report.files_vacuumed, 0);
    assert_eq!(
        ids(&store, S, AsOf::Version(3)).await,
        (0..30).map(id).collect::<Vec<_>>()
    );

    // The old writer catches up past the compaction commit and still knows every id;
    // so does a new one that indexes the compacted file.
    let out = w
        .commit(&[sub(batch(
            &store,
            S,
            &[revenue(&id(7), 1), revenue(&id(77), 1)],
        ))])
        .await
        .unwrap();
    assert!(
        matches!(out[0], Outcome::Committed(r) if r.accepted == 1 && r.duplicates == 1),
        "{out:?}"
    );
    let mut fresh = StreamWriter::open(&store, S, WriterConfig::default())
        .await
        .unwrap();
    let out = fresh
        .commit(&[sub(batch(&store, S, &[revenue(&id(42), 1)]))])
        .await
        .unwrap();
    assert!(
        matches!(out[0], Outcome::Committed(r) if r.accepted == 0 && r.duplicates == 1),
        "{out:?}"
    );
    assert_eq!(store.stream_stats(S).await.unwrap().row_count, 51);
}
