//! Views against hand-computed answers and against a full rebuild, on an in-memory store.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Float64Type, Int64Type};
use kho_ingest::{Format, decode::decode};
use kho_query::{VIEWS, ViewEngine, ViewQuery};
use kho_store::{Outcome, Store, StreamWriter, Submission, WriterConfig};
use proptest::prelude::*;
use serde_json::{Value, json};

async fn store() -> Arc<Store> {
    Store::open_with_pack("memory://").await.unwrap()
}

async fn append(store: &Store, stream: &str, rows: &[Value]) {
    let def = store.stream(stream).unwrap();
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let batch = decode(
        &def,
        Format::Ndjson,
        body.as_bytes(),
        "test:fixture",
        100_000,
        (i64::MIN, i64::MAX),
    )
    .unwrap_or_else(|e| panic!("{stream}: {e:?}\n{body}"));
    let mut w = StreamWriter::open(store, stream, WriterConfig::default())
        .await
        .unwrap();
    let out = w
        .commit(&[Submission {
            batch,
            idempotency: None,
        }])
        .await
        .unwrap();
    assert!(matches!(out[0], Outcome::Committed(_)), "{stream}: {out:?}");
}

async fn view(engine: &ViewEngine, name: &str) -> RecordBatch {
    let rows = engine.read(name, &ViewQuery::default()).await.unwrap();
    let schema = rows.batches.schema();
    let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(rows.batches)
        .await
        .unwrap();
    concat_batches(&schema, &batches).unwrap()
}

fn strings(b: &RecordBatch, c: &str) -> Vec<String> {
    let col = arrow::compute::cast(
        b.column_by_name(c).unwrap(),
        &arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    let a = col.as_string::<i32>();
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                "∅".into()
            } else {
                a.value(i).to_owned()
            }
        })
        .collect()
}

fn longs(b: &RecordBatch, c: &str) -> Vec<i64> {
    b.column_by_name(c)
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn floats(b: &RecordBatch, c: &str) -> Vec<Option<f64>> {
    let a = b.column_by_name(c).unwrap().as_primitive::<Float64Type>();
    (0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i)))
        .collect()
}

#[tokio::test]
async fn dossiers_by_hand() {
    let store = store().await;
    let engine = ViewEngine::new(store.clone());
    let received = |id: &str, at: &str, agency: &str, channel: &str, level: i64, due: &str| {
        json!({"event_type": "dossier_received", "entity_id": id, "occurred_at": at, "procedure_code": "1.001",
               "agency_code": agency, "level": level, "channel": channel, "due_at": due})
    };
    let ev = |ty: &str, id: &str, at: &str| json!({"event_type": ty, "entity_id": id, "occurred_at": at});
    append(
        &store,
        "service.dossiers",
        &[
            // 20:00Z on 31 January is 03:00 on 1 February in Tây Ninh: February.
            received(
                "D1",
                "2021-01-31T20:00:00Z",
                "STP",
                "online",
                4,
                "2021-02-10T17:00:00+07:00",
            ),
            received(
                "D2",
                "2021-01-15T09:00:00+07:00",
                "STP",
                "counter",
                2,
                "2021-01-20T17:00:00+07:00",
            ),
            received(
                "D3",
                "2021-02-03T09:00:00+07:00",
                "STP",
                "postal",
                3,
                "2021-02-05T17:00:00+07:00",
            ),
            received(
                "D4",
                "2021-02-04T09:00:00+07:00",
                "UBND-TN",
                "counter",
                2,
                "2021-02-28T17:00:00+07:00",
            ),
        ],
    )
    .await;
    append(&store, "service.dossiers", &[
        // D1 resolved in time, D3 after its due date, D4 withdrawn.
        json!({"event_type": "dossier_resolved", "entity_id": "D1", "occurred_at": "2021-02-08T10:00:00+07:00", "outcome": "approved"}),
        json!({"event_type": "dossier_resolved", "entity_id": "D3", "occurred_at": "2021-02-09T10:00:00+07:00", "outcome": "approved"}),
        ev("dossier_withdrawn", "D4", "2021-02-06T10:00:00+07:00"),
        json!({"event_type": "dossier_returned", "entity_id": "D1", "occurred_at": "2021-02-09T10:00:00+07:00", "return_channel": "postal"}),
    ]).await;
    append(&store, "reference.targets", &[
        json!({"event_type": "target_set", "entity_id": "online_rate-2021", "occurred_at": "2021-01-01T00:00:00+07:00", "kpi": "online_rate", "year": 2021, "target_value": 0.3}),
    ]).await;
    let f = engine.refresh("service_dossiers").await.unwrap();
    assert_eq!(f.sources[0].version, 2);
    assert_eq!(f.sources[0].lag_commits, 0);
    let b = view(&engine, "service_dossiers").await;
    assert_eq!(strings(&b, "month"), ["2021-01", "2021-02", "2021-02"]);
    assert_eq!(strings(&b, "agency_code"), ["STP", "STP", "UBND-TN"]);
    assert_eq!(longs(&b, "received"), [1, 2, 1]);
    assert_eq!(longs(&b, "received_online"), [0, 1, 0]);
    assert_eq!(floats(&b, "online_rate"), [Some(0.0), Some(0.5), Some(0.0)]);
    assert_eq!(floats(&b, "online_rate_target"), [Some(0.3); 3]);
    assert_eq!(longs(&b, "resolved"), [0, 2, 0]);
    assert_eq!(longs(&b, "resolved_on_time"), [0, 1, 0]);
    assert_eq!(floats(&b, "on_time_rate"), [None, Some(0.5), None]);
    // D2 is still open; its due date (20 Jan) is before the watermark (9 Feb): overdue.
    assert_eq!(longs(&b, "pending"), [1, 0, 0]);
    assert_eq!(longs(&b, "pending_overdue"), [1, 0, 0]);
    // D3 came by post, D1 went back by post.
    assert_eq!(longs(&b, "postal"), [0, 2, 0]);
}

/// The case: one dossier event with a wrong `occurred_at` (here 2201, which the
/// ingest window now refuses; folds see whatever the log holds) moves the watermark and
/// makes every pending dossier overdue. Its retraction puts the view back as it was.
#[tokio::test]
async fn a_retraction_puts_the_view_back() {
    let store = store().await;
    let engine = ViewEngine::new(store.clone());
    let received = |id: &str, at: &str, due: &str| {
        json!({"event_type": "dossier_received", "entity_id": id, "occurred_at": at, "procedure_code": "1.001",
               "agency_code": "STP", "level": 2, "channel": "counter", "due_at": due})
    };
    append(
        &store,
        "service.dossiers",
        &[
            received("D1", "2021-03-01T08:00:00+07:00", "2021-03-20T17:00:00+07:00"),
            received("D2", "2021-03-02T08:00:00+07:00", "2021-03-05T17:00:00+07:00"),
            json!({"event_type": "dossier_resolved", "entity_id": "D2", "occurred_at": "2021-03-10T08:00:00+07:00", "outcome": "approved"}),
        ],
    )
    .await;
    let before = view(&engine, "service_dossiers").await;
    let watermark_before = engine.refresh("service_dossiers").await.unwrap().watermark;
    assert_eq!(longs(&before, "pending"), [1]);
    assert_eq!(longs(&before, "pending_overdue"), [0]);
    assert_eq!(longs(&before, "resolved"), [1]);

    // Wrong: a receipt in 2201, and a resolution of D1 that never happened.
    let wrong_receipt = "00000000-0000-7000-8000-000000000201";
    let wrong_resolution = "00000000-0000-7000-8000-000000000202";
    append(&store, "service.dossiers", &[
        json!({"event_id": wrong_receipt, "event_type": "dossier_received", "entity_id": "D9", "occurred_at": "2201-03-01T08:00:00+07:00",
               "procedure_code": "1.001", "agency_code": "STP", "level": 2, "channel": "counter", "due_at": "2201-03-05T17:00:00+07:00"}),
        json!({"event_id": wrong_resolution, "event_type": "dossier_resolved", "entity_id": "D1", "occurred_at": "2021-03-11T08:00:00+07:00", "outcome": "approved"}),
    ]).await;
    let f = engine.refresh("service_dossiers").await.unwrap();
    assert_eq!(
        f.watermark.unwrap().to_rfc3339(),
        "2201-03-01T01:00:00+00:00"
    );
    let wrong = view(&engine, "service_dossiers").await;
    assert_eq!(strings(&wrong, "month"), ["2021-03", "2201-03"]);
    assert_eq!(longs(&wrong, "resolved"), [2, 0]);

    let retract = |id: u32, target: &str, entity: &str| {
        json!({"event_id": format!("00000000-0000-7000-8000-{id:012}"), "event_type": "event_retracted", "entity_id": entity,
               "occurred_at": "2021-03-12T08:00:00+07:00", "retracts_event_id": target, "retraction_reason": "entered by mistake"})
    };
    append(
        &store,
        "service.dossiers",
        &[
            retract(301, wrong_receipt, "D9"),
            retract(302, wrong_resolution, "D1"),
        ],
    )
    .await;
    let f = engine.refresh("service_dossiers").await.unwrap();
    assert_eq!(f.watermark, watermark_before, "the watermark comes back");
    assert_eq!(
        f.sources[0].newest_occurred_at, watermark_before,
        "so does the source's newest occurred_at"
    );
    let after = view(&engine, "service_dossiers").await;
    assert_eq!(
        after, before,
        "the view is as if the wrong events never came"
    );
    // A new process restores the same rows from the log.
    let again = ViewEngine::new(store.clone());
    again.refresh("service_dossiers").await.unwrap();
    assert_eq!(view(&again, "service_dossiers").await, before);

    // Retracting an estimate takes it out of budget_execution; retracting a reversal puts
    // the reversed entry back.
    let entry = |id: u32, ty: &str, amount: i64| {
        json!({"event_id": format!("00000000-0000-7000-8000-{id:012}"), "event_type": ty, "entity_id": format!("E{id}"),
               "occurred_at": "2021-04-01T08:00:00+07:00", "fiscal_year": 2021, "agency_code": "STC", "flow": "revenue",
               "category_code": "1001", "amount_vnd": amount})
    };
    append(&store, "finance.budget", &[
        entry(1, "estimate_assigned", 1_000),
        entry(2, "estimate_assigned", 9_999),
        entry(3, "revenue_collected", 300),
        json!({"event_id": format!("00000000-0000-7000-8000-{:012}", 4), "event_type": "entry_reversed", "entity_id": "E3",
               "occurred_at": "2021-04-02T08:00:00+07:00", "reverses_event_id": "00000000-0000-7000-8000-000000000003"}),
    ]).await;
    let b = view(&engine, "budget_execution").await;
    assert_eq!(longs(&b, "estimate_vnd"), [10_999]);
    assert_eq!(longs(&b, "actual_vnd"), [0]);
    append(
        &store,
        "finance.budget",
        &[
            retract(5, "00000000-0000-7000-8000-000000000002", "E2"),
            retract(6, "00000000-0000-7000-8000-000000000004", "E3"),
        ],
    )
    .await;
    engine.refresh("budget_execution").await.unwrap();
    let b = view(&engine, "budget_execution").await;
    assert_eq!(longs(&b, "estimate_vnd"), [1_000]);
    assert_eq!(longs(&b, "actual_vnd"), [300]);
    assert_eq!(floats(&b, "execution_rate"), [Some(0.3)]);
}

#[tokio::test]
async fn budget_reversal_and_late_event() {
    let store = store().await;
    let engine = ViewEngine::new(store.clone());
    let entry = |id: u32, ty: &str, at: &str, flow: &str, amount: i64| {
        json!({"event_id": format!("00000000-0000-7000-8000-{id:012}"), "event_type": ty, "entity_id": format!("E{id}"),
               "occurred_at": at, "fiscal_year": 2021, "agency_code": "STC", "flow": flow, "category_code": "1001", "amount_vnd": amount})
    };
    append(
        &store,
        "finance.budget",
        &[
            entry(
                1,
                "estimate_assigned",
                "2021-01-05T08:00:00+07:00",
                "revenue",
                1_000,
            ),
            entry(
                2,
                "revenue_collected",
                "2021-02-10T08:00:00+07:00",
                "revenue",
                100,
            ),
            entry(
                3,
                "revenue_collected",
                "2021-03-10T08:00:00+07:00",
                "revenue",
                300,
            ),
        ],
    )
    .await;
    engine.refresh("budget_execution").await.unwrap();
    let b = view(&engine, "budget_execution").await;
    assert_eq!(strings(&b, "month"), ["2021-01", "2021-02", "2021-03"]);
    assert_eq!(longs(&b, "actual_vnd"), [0, 100, 300]);
    assert_eq!(longs(&b, "ytd_actual_vnd"), [0, 100, 400]);
    // A reversal of the March entry, and a late February entry.
    append(&store, "finance.budget", &[
        json!({"event_type": "entry_reversed", "entity_id": "E3", "occurred_at": "2021-04-01T08:00:00+07:00",
               "reverses_event_id": "00000000-0000-7000-8000-000000000003"}),
        entry(4, "revenue_collected", "2021-02-20T08:00:00+07:00", "revenue", 50),
    ]).await;
    engine.refresh("budget_execution").await.unwrap();
    let b = view(&engine, "budget_execution").await;
    assert_eq!(strings(&b, "month"), ["2021-01", "2021-02", "2021-03"]);
    assert_eq!(longs(&b, "estimate_vnd"), [1_000; 3]);
    assert_eq!(longs(&b, "actual_vnd"), [0, 150, 0]);
    assert_eq!(longs(&b, "ytd_actual_vnd"), [0, 150, 150]);
    assert_eq!(
        floats(&b, "execution_rate"),
        [Some(0.0), Some(0.15), Some(0.15)]
    );
}

#[tokio::test]
async fn project_status_changes_twice_and_feedback_open() {
    let store = store().await;
    let engine = ViewEngine::new(store.clone());
    append(&store, "investment.projects", &[
        json!({"event_type": "project_registered", "entity_id": "DA-01", "occurred_at": "2021-01-10T08:00:00+07:00",
               "project_name": "Đường ĐT.781", "investor_code": "BQLDA-GT", "district_code": "TC", "group": "B", "total_investment_vnd": 500_000, "status": "preparing"}),
        json!({"event_type": "capital_allocated", "entity_id": "DA-01", "occurred_at": "2021-01-15T08:00:00+07:00", "year": 2021, "amount_vnd": 200_000, "capital_source": "local"}),
        json!({"event_type": "status_changed", "entity_id": "DA-01", "occurred_at": "2021-03-01T08:00:00+07:00", "status": "implementing"}),
        json!({"event_type": "disbursement_made", "entity_id": "DA-01", "occurred_at": "2021-04-01T08:00:00+07:00", "year": 2021, "amount_vnd": 50_000, "capital_source": "local"}),
    ]).await;
    append(&store, "investment.projects", &[
        // Arrives after a later event: the later status still wins.
        json!({"event_type": "status_changed", "entity_id": "DA-01", "occurred_at": "2021-02-01T08:00:00+07:00", "status": "suspended"}),
        json!({"event_type": "status_changed", "entity_id": "DA-01", "occurred_at": "2021-12-01T08:00:00+07:00", "status": "completed"}),
    ]).await;
    engine.refresh("investment_disbursement").await.unwrap();
    let b = view(&engine, "investment_disbursement").await;
    assert_eq!(strings(&b, "status"), ["completed"]);
    assert_eq!(strings(&b, "project_name"), ["Đường ĐT.781"]);
    assert_eq!(longs(&b, "allocated_vnd"), [200_000]);
    assert_eq!(floats(&b, "disbursement_rate"), [Some(0.25)]);

    append(&store, "service.feedback", &[
        json!({"event_type": "feedback_received", "entity_id": "F1", "occurred_at": "2021-05-01T08:00:00+07:00", "channel": "zalo", "topic": "đất đai", "agency_code": "STNMT", "due_at": "2021-05-11T08:00:00+07:00"}),
        json!({"event_type": "feedback_received", "entity_id": "F2", "occurred_at": "2021-05-02T08:00:00+07:00", "channel": "app", "topic": "giao thông", "agency_code": "STNMT", "due_at": "2021-05-12T08:00:00+07:00"}),
        json!({"event_type": "feedback_answered", "entity_id": "F1", "occurred_at": "2021-05-20T08:00:00+07:00"}),
    ]).await;
    engine.refresh("service_feedback").await.unwrap();
    let b = view(&engine, "service_feedback").await;
    assert_eq!(longs(&b, "received"), [2]);
    assert_eq!(longs(&b, "answered"), [1]);
    assert_eq!(longs(&b, "in_progress"), [1]);
    assert_eq!(longs(&b, "answered_on_time"), [0]);
}

#[tokio::test]
async fn zero_is_not_no_data() {
    let store = store().await;
    let engine = ViewEngine::new(store.clone());
    let f = engine.refresh("service_procedures").await.unwrap();
    assert_eq!((f.version, f.rows, f.sources[0].version), (Some(0), 0, 0));
    append(&store, "service.procedures", &[
        json!({"event_type": "procedure_published", "entity_id": "1.001", "occurred_at": "2021-01-01T08:00:00+07:00", "procedure_name": "Cấp phép xây dựng", "agency_code": "SXD", "level": 4, "on_national_portal": true}),
    ]).await;
    let f = engine.freshness("service_procedures").await.unwrap();
    assert_eq!(
        (
            f.sources[0].version,
            f.sources[0].latest_version,
            f.sources[0].lag_commits
        ),
        (0, 1, 1)
    );
    let f = engine.refresh("service_procedures").await.unwrap();
    assert_eq!(
        (f.version, f.rows, f.sources[0].lag_commits),
        (Some(1), 1, 0)
    );
}

/// A random scenario: events for every stream, appended in small batches interleaved across
/// streams, with refreshes (and process restarts) in between.
mod scenario {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{Value, json};

    pub(super) enum Op {
        Append(&'static str, Vec<Value>),
        Refresh,
        Restart,
    }

    fn at(rng: &mut StdRng) -> i64 {
        // Somewhere in 2021 (UTC seconds), so events land in many local months.
        1_609_459_200 + rng.random_range(0..365 * 86_400)
    }

    fn ts(secs: i64) -> String {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .to_rfc3339()
    }

    /// A scenario: the operations, and each stream's events as they would be had the
    /// retracted events never been sent (what the views must show at the end).
    pub(super) struct Scenario {
        pub(super) ops: Vec<Op>,
        pub(super) clean: Vec<(&'static str, Vec<Value>)>,
    }

    /// Gives every event an id, then retracts about one event in six: each retraction comes
    /// after its event in the stream's order (in the same chunk or a later one). A reversal
    /// of a retracted entry is left out of the clean stream too: it reverses nothing.
    fn with_retractions(
        rng: &mut StdRng,
        stream: usize,
        events: Vec<Value>,
    ) -> (Vec<Value>, Vec<Value>) {
        let id = |n: usize| format!("00000000-0000-7{stream:03x}-8000-{n:012x}");
        let mut events = events;
        for (n, e) in events.iter_mut().enumerate() {
            e.as_object_mut()
                .unwrap()
                .entry("event_id")
                .or_insert_with(|| json!(id(n)));
        }
        let mut ordered: Vec<(f64, Value)> = Vec::new();
        let mut retracted = std::collections::HashSet::new();
        let len = events.len();
        for (n, e) in events.iter().enumerate() {
            ordered.push((n as f64, e.clone()));
            if rng.random_range(0..6) == 0 {
                let target = e["event_id"].as_str().unwrap().to_owned();
                let after = n as f64 + rng.random_range(0..len - n) as f64 + 0.5;
                ordered.push((after, json!({"event_id": id(len + n), "event_type": "event_retracted",
                    "entity_id": e["entity_id"], "occurred_at": ts(at(rng)), "retracts_event_id": target,
                    "retraction_reason": "sent by mistake"})));
                retracted.insert(target);
            }
        }
        ordered.sort_by(|a, b| a.0.total_cmp(&b.0));
        let all: Vec<Value> = ordered.into_iter().map(|(_, e)| e).collect();
        let clean = events
            .into_iter()
            .filter(|e| {
                !retracted.contains(e["event_id"].as_str().unwrap())
                    && e["reverses_event_id"]
                        .as_str()
                        .is_none_or(|t| !retracted.contains(t))
            })
            .collect();
        (all, clean)
    }

    pub(super) fn build(seed: u64) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut streams: Vec<(&'static str, Vec<Value>)> = Vec::new();
        let agencies = ["A", "B", "C"];
        let pick = |rng: &mut StdRng, xs: &[&'static str]| xs[rng.random_range(0..xs.len())];

        let mut dossiers = Vec::new();
        for _ in 0..rng.random_range(5..40) {
            let id = format!("D{}", rng.random_range(0..12));
            let t = at(&mut rng);
            let e = match rng.random_range(0..6) {
                0..=2 => {
                    let channel = pick(&mut rng, &["counter", "online", "postal"]);
                    let level = if channel == "online" {
                        rng.random_range(3..5)
                    } else {
                        rng.random_range(2..5)
                    };
                    json!({"event_type": "dossier_received", "entity_id": id, "occurred_at": ts(t), "procedure_code": "1.001",
                           "agency_code": pick(&mut rng, &agencies), "level": level, "channel": channel,
                           "due_at": ts(t + rng.random_range(0..20) * 86_400)})
                }
                3 => {
                    json!({"event_type": "dossier_resolved", "entity_id": id, "occurred_at": ts(t), "outcome": "approved"})
                }
                4 => {
                    json!({"event_type": "dossier_withdrawn", "entity_id": id, "occurred_at": ts(t)})
                }
                _ => {
                    json!({"event_type": "dossier_returned", "entity_id": id, "occurred_at": ts(t),
                            "return_channel": pick(&mut rng, &["counter", "postal"])})
                }
            };
            dossiers.push(e);
        }
        streams.push(("service.dossiers", dossiers));

        let mut feedback = Vec::new();
        for _ in 0..rng.random_range(0..20) {
            let id = format!("F{}", rng.random_range(0..6));
            let t = at(&mut rng);
            feedback.push(match rng.random_range(0..4) {
                0 | 1 => json!({"event_type": "feedback_received", "entity_id": id, "occurred_at": ts(t), "channel": "app",
                                "topic": "x", "agency_code": pick(&mut rng, &agencies), "due_at": ts(t + rng.random_range(0..10) * 86_400)}),
                2 => json!({"event_type": "feedback_answered", "entity_id": id, "occurred_at": ts(t)}),
                _ => json!({"event_type": "feedback_closed", "entity_id": id, "occurred_at": ts(t)}),
            });
        }
        streams.push(("service.feedback", feedback));

        let mut budget = Vec::new();
        let mut open: Vec<String> = Vec::new();
        for n in 0..rng.random_range(0..30u32) {
            let id = format!(
                "00000000-0000-7000-8000-{:012}",
                u64::from(n) + seed % 1_000_000 * 100
            );
            let t = at(&mut rng);
            if !open.is_empty() && rng.random_range(0..4) == 0 {
                let target = open.swap_remove(rng.random_range(0..open.len()));
                budget.push(json!({"event_id": id, "event_type": "entry_reversed", "entity_id": "R", "occurred_at": ts(t), "reverses_event_id": target}));
                continue;
            }
            let (ty, flow) = match rng.random_range(0..3) {
                0 => (
                    "estimate_assigned",
                    pick(&mut rng, &["revenue", "expenditure"]),
                ),
                1 => ("revenue_collected", "revenue"),
                _ => ("expenditure_paid", "expenditure"),
            };
            budget.push(json!({"event_id": id, "event_type": ty, "entity_id": "E", "occurred_at": ts(t),
                               "fiscal_year": rng.random_range(2020..2022), "agency_code": pick(&mut rng, &agencies), "flow": flow,
                               "category_code": pick(&mut rng, &["1001", "2001"]), "amount_vnd": rng.random_range(1..1_000_000i64)}));
            open.push(id);
        }
        streams.push(("finance.budget", budget));

        let mut projects = Vec::new();
        for _ in 0..rng.random_range(0..15) {
            let id = format!("P{}", rng.random_range(0..4));
            let t = at(&mut rng);
            projects.push(match rng.random_range(0..4) {
                0 => json!({"event_type": "project_registered", "entity_id": id, "occurred_at": ts(t), "project_name": format!("n{}", rng.random_range(0..3)),
                            "investor_code": "I", "district_code": pick(&mut rng, &agencies), "group": pick(&mut rng, &["A", "B", "C"]), "total_investment_vnd": 1_000}),
                1 => json!({"event_type": "capital_allocated", "entity_id": id, "occurred_at": ts(t), "year": rng.random_range(2021..2023), "amount_vnd": rng.random_range(1..500i64), "capital_source": "local"}),
                2 => json!({"event_type": "disbursement_made", "entity_id": id, "occurred_at": ts(t), "year": rng.random_range(2021..2023), "amount_vnd": rng.random_range(1..500i64), "capital_source": "central"}),
                _ => json!({"event_type": "status_changed", "entity_id": id, "occurred_at": ts(t), "status": pick(&mut rng, &["preparing", "implementing", "completed", "suspended"])}),
            });
        }
        streams.push(("investment.projects", projects));

        let mut procedures = Vec::new();
        for _ in 0..rng.random_range(0..12) {
            let id = format!("Q{}", rng.random_range(0..5));
            let t = at(&mut rng);
            procedures.push(if rng.random_range(0..3) == 0 {
                json!({"event_type": "procedure_withdrawn", "entity_id": id, "occurred_at": ts(t)})
            } else {
                json!({"event_type": "procedure_published", "entity_id": id, "occurred_at": ts(t), "procedure_name": "p",
                       "agency_code": pick(&mut rng, &agencies), "level": rng.random_range(1..5), "on_national_portal": rng.random_bool(0.5)})
            });
        }
        streams.push(("service.procedures", procedures));

        let mut targets = Vec::new();
        for _ in 0..rng.random_range(0..6) {
            let t = at(&mut rng);
            targets.push(json!({"event_type": "target_set", "entity_id": "T", "occurred_at": ts(t),
                                "kpi": pick(&mut rng, &["online_rate", "on_time_rate", "answered_on_time_rate", "execution_rate", "disbursement_rate"]),
                                "year": rng.random_range(2020..2023), "target_value": f64::from(rng.random_range(0..100u32)) / 100.0}));
        }
        streams.push(("reference.targets", targets));

        let mut clean = Vec::new();
        let streams: Vec<(&'static str, Vec<Value>)> = streams
            .into_iter()
            .enumerate()
            .map(|(i, (s, events))| {
                let (all, kept) = with_retractions(&mut rng, i, events);
                clean.push((s, kept));
                (s, all)
            })
            .collect();

        // Chunk each stream in order; interleave chunks; refresh and restart at random.
        let mut chunks: Vec<(&'static str, std::collections::VecDeque<Vec<Value>>)> = streams
            .into_iter()
            .map(|(s, events)| {
                let mut q = std::collections::VecDeque::new();
                let mut rest = events.as_slice();
                while !rest.is_empty() {
                    let n = rng.random_range(1..=rest.len().min(6));
                    q.push_back(rest[..n].to_vec());
                    rest = &rest[n..];
                }
                (s, q)
            })
            .collect();
        let mut ops = Vec::new();
        while chunks.iter().any(|(_, q)| !q.is_empty()) {
            let i = rng.random_range(0..chunks.len());
            if let Some(c) = chunks[i].1.pop_front() {
                ops.push(Op::Append(chunks[i].0, c));
            }
            match rng.random_range(0..6) {
                0 | 1 => ops.push(Op::Refresh),
                2 => ops.push(Op::Restart),
                _ => {}
            }
        }
        Scenario { ops, clean }
    }
}

async fn run_scenario(seed: u64) {
    let store = store().await;
    let mut engine = ViewEngine::new(store.clone());
    let scenario = scenario::build(seed);
    for op in scenario.ops {
        match op {
            scenario::Op::Append(stream, events) => append(&store, stream, &events).await,
            scenario::Op::Refresh => engine.refresh_all().await.unwrap(),
            // A new process: it restores every fold from what the view tables record.
            scenario::Op::Restart => engine = ViewEngine::new(store.clone()),
        }
    }
    engine.refresh_all().await.unwrap();
    // The same streams as if the retracted events had never been sent.
    let clean_store = self::store().await;
    for (stream, events) in &scenario.clean {
        if !events.is_empty() {
            append(&clean_store, stream, events).await;
        }
    }
    let clean = ViewEngine::new(clean_store);
    for v in &VIEWS {
        let incremental = view(&engine, v.name).await;
        let full = engine.rebuild_rows(v.name).await.unwrap();
        assert_eq!(
            full,
            clean.rebuild_rows(v.name).await.unwrap(),
            "seed {seed}, {}: retracted events still count",
            v.name
        );
        assert_eq!(
            incremental.num_rows(),
            full.num_rows(),
            "seed {seed}, {}",
            v.name
        );
        for (i, field) in full.schema().fields().iter().enumerate() {
            let got = incremental.column_by_name(field.name()).unwrap();
            assert_eq!(
                got.to_data(),
                full.column(i).to_data(),
                "seed {seed}, {}.{}",
                v.name,
                field.name()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Random event sequences with random retractions, appended in random small batches with
    /// refreshes and restarts in between, give row for row the view a full rebuild from
    /// scratch gives, and that is the view of the streams without the retracted events.
    #[test]
    fn incremental_equals_full_rebuild(seed in any::<u64>()) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_scenario(seed));
    }
}
