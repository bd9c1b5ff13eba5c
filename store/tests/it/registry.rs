use kho_store::{ColumnDef, ColumnType, Error, Registration, StreamWriter, WriterConfig, pack};

use crate::support::{Backend, batch, id, revenue, sub};

crate::conformance!(
    pack_registers_once,
    optional_column_evolves,
    removal_and_retype_refused
);

async fn pack_registers_once(backend: Backend) {
    let store = backend.store().await;
    for def in pack::province_pack() {
        let stats = store.stream_stats(&def.name).await.unwrap();
        assert_eq!(stats.version, 0, "{}", def.name);
        assert_eq!(stats.row_count, 0);
        assert_eq!(stats.schema_version, 2);
    }
    let again = backend.again(&store).await;
    for def in pack::province_pack() {
        assert_eq!(
            again.register(def).await.unwrap(),
            Registration::Unchanged { schema_version: 2 }
        );
    }
    assert_eq!(
        store.stream_stats("finance.budget").await.unwrap().version,
        0
    );
}

async fn optional_column_evolves(backend: Backend) {
    let store = backend.store().await;
    let mut w = StreamWriter::open(&store, "finance.budget", WriterConfig::default())
        .await
        .unwrap();
    w.commit(&[sub(batch(&store, "finance.budget", &[revenue(&id(1), 10)]))])
        .await
        .unwrap();

    let mut v2 = pack::province_pack().remove(0);
    v2.columns
        .push(ColumnDef::new("treasury_ref", ColumnType::String).since(3));
    v2.schema_version = 3;
    let reg = store.register(v2.clone()).await.unwrap();
    assert_eq!(
        reg,
        Registration::Evolved {
            from: 2,
            to: 3,
            added: vec!["treasury_ref".into()]
        }
    );
    let stats = store.stream_stats("finance.budget").await.unwrap();
    assert_eq!(stats.schema_version, 3);
    assert_eq!(stats.row_count, 1, "old rows survive the evolution");
    assert_eq!(
        store.register(v2).await.unwrap(),
        Registration::Unchanged { schema_version: 3 }
    );
    // The evolved stream takes rows with and without the new column.
    let mut w = StreamWriter::open(&store, "finance.budget", WriterConfig::default())
        .await
        .unwrap();
    let mut row = revenue(&id(2), 5);
    row["treasury_ref"] = "KB-01".into();
    let out = w
        .commit(&[sub(batch(
            &store,
            "finance.budget",
            &[row, revenue(&id(3), 7)],
        ))])
        .await
        .unwrap();
    assert!(matches!(out[0], kho_store::Outcome::Committed(r) if r.accepted == 2));
    assert_eq!(
        store
            .stream_stats("finance.budget")
            .await
            .unwrap()
            .row_count,
        3
    );
}

async fn removal_and_retype_refused(backend: Backend) {
    let store = backend.store().await;
    let mut v2 = pack::province_pack().remove(0);
    v2.columns
        .push(ColumnDef::new("treasury_ref", ColumnType::String).since(3));
    v2.schema_version = 3;
    store.register(v2).await.unwrap();

    // The v1 definition lacks treasury_ref: that would remove a column.
    let v1 = pack::province_pack().remove(0);
    let err = store.register(v1).await.unwrap_err();
    assert!(matches!(err, Error::SchemaConflict { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("column treasury_ref exists in the table but not in schema version 2: removing a column is refused"),
        "{err}"
    );

    let mut retyped = pack::province_pack().remove(0);
    retyped
        .columns
        .push(ColumnDef::new("treasury_ref", ColumnType::Long).since(3));
    retyped.schema_version = 3;
    let err = store.register(retyped).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("column treasury_ref is string in the table but long in schema version 3: retyping a column is refused"),
        "{err}"
    );
    assert_eq!(
        store
            .stream_stats("finance.budget")
            .await
            .unwrap()
            .schema_version,
        3
    );
}
