use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use kho_store::{AsOf, IdempotencyKey, Store, Submission};
use serde_json::{Value, json};

/// Where a test's store lives.
pub(crate) enum Backend {
    Memory,
    Local(Arc<tempfile::TempDir>),
    /// A unique prefix in the test bucket.
    S3(String),
}

impl Backend {
    pub(crate) fn local() -> Self {
        Self::Local(Arc::new(tempfile::tempdir().expect("tempdir")))
    }

    /// The S3 backend when `KHO_TEST_S3_URL` is set; `None` (skip) otherwise, unless
    /// `KHO_REQUIRE_EXTERNAL` says the run must not skip.
    pub(crate) fn s3() -> Option<Self> {
        match std::env::var("KHO_TEST_S3_URL") {
            Ok(base) => Some(Self::S3(format!(
                "{}/{}",
                base.trim_end_matches('/'),
                uuid::Uuid::new_v4()
            ))),
            Err(_) => {
                assert!(
                    std::env::var_os("KHO_REQUIRE_EXTERNAL").is_none(),
                    "KHO_REQUIRE_EXTERNAL is set but KHO_TEST_S3_URL is not"
                );
                eprintln!("skipped: KHO_TEST_S3_URL is not set");
                None
            }
        }
    }

    pub(crate) fn spec(&self) -> String {
        match self {
            Self::Memory => "memory://".into(),
            Self::Local(dir) => dir.path().to_str().unwrap().to_owned(),
            Self::S3(url) => url.clone(),
        }
    }

    /// A store with the province pack registered.
    pub(crate) async fn store(&self) -> Arc<Store> {
        Store::open_with_pack(&self.spec())
            .await
            .expect("open store")
    }

    /// Another handle on the same store, as a second process would have. Memory stores live
    /// in one process, so there it is the same handle.
    pub(crate) async fn again(&self, first: &Arc<Store>) -> Arc<Store> {
        match self {
            Self::Memory => first.clone(),
            _ => self.store().await,
        }
    }
}

/// A batch of `stream` rows from JSON objects (envelope fields defaulted).
pub(crate) fn batch(store: &Store, stream: &str, rows: &[Value]) -> RecordBatch {
    let def = store.stream(stream).unwrap();
    let schema = def.arrow_schema();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            o.entry("event_id")
                .or_insert_with(|| json!(uuid::Uuid::now_v7().to_string()));
            o.entry("entity_id").or_insert_with(|| json!("e-1"));
            o.entry("occurred_at")
                .or_insert_with(|| json!("2021-03-01T01:00:00Z"));
            o.entry("recorded_at")
                .or_insert_with(|| json!("1970-01-01T00:00:00Z"));
            o.entry("source").or_insert_with(|| json!("test"));
            r
        })
        .collect();
    let mut decoder = arrow::json::ReaderBuilder::new(schema)
        .build_decoder()
        .unwrap();
    decoder.serialize(&rows).unwrap();
    decoder.flush().unwrap().unwrap()
}

pub(crate) fn revenue(id: &str, amount: i64) -> Value {
    json!({
        "event_id": id, "event_type": "revenue_collected", "fiscal_year": 2021,
        "agency_code": "STC", "flow": "revenue", "category_code": "1001", "amount_vnd": amount
    })
}

pub(crate) fn reversal(id: &str, target: &str) -> Value {
    json!({"event_id": id, "event_type": "entry_reversed", "reverses_event_id": target})
}

pub(crate) fn retraction(id: &str, target: &str) -> Value {
    json!({"event_id": id, "event_type": "event_retracted", "retracts_event_id": target,
           "retraction_reason": "sent by mistake"})
}

pub(crate) fn sub(batch: RecordBatch) -> Submission {
    Submission {
        batch,
        idempotency: None,
    }
}

pub(crate) fn keyed(batch: RecordBatch, key: &str, body: &str) -> Submission {
    Submission {
        batch,
        idempotency: Some(IdempotencyKey {
            key_sha256: key.to_owned(),
            body_sha256: body.to_owned(),
        }),
    }
}

/// A stable UUID for a small test number.
pub(crate) fn id(n: u32) -> String {
    format!("00000000-0000-7000-8000-{n:012}")
}

/// The sorted event ids of a stream as of a version or time.
pub(crate) async fn ids(store: &Store, stream: &str, as_of: AsOf) -> Vec<String> {
    let mut out: Vec<String> = store
        .read_stream(stream, as_of)
        .await
        .unwrap()
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name("event_id").unwrap().as_string::<i32>();
            (0..b.num_rows())
                .map(|i| c.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}
