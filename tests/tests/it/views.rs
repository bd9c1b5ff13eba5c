//! The operations center's views and SQL through the real binary.

use std::path::Path;
use std::process::Command;

use kho_tests::{Server, client, python};
use serde_json::{Value, json};

fn ndjson(rows: &[Value]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

struct Fixture {
    server: Server,
    center: String,
    fin: String,
    plan: String,
    svc: String,
}

async fn fixture(store: &str, extra: &[&str]) -> Fixture {
    let server = Server::start(store, extra);
    Fixture {
        center: server.token("center", None, "ioc").await,
        fin: server.token("sector", Some("finance"), "treasury").await,
        plan: server.token("sector", Some("planning"), "dpi").await,
        svc: server.token("sector", Some("services"), "portal").await,
        server,
    }
}

impl Fixture {
    async fn post(&self, token: &str, stream: &str, rows: &[Value]) {
        let (st, body, _) = self
            .server
            .append(
                Some(token),
                stream,
                "application/x-ndjson",
                ndjson(rows),
                None,
            )
            .await;
        assert_eq!(st, 201, "{stream}: {body}");
    }

    async fn refresh(&self, view: &str) -> Value {
        let r = client()
            .post(self.server.url(&format!("/v1/views/{view}/refresh")))
            .bearer_auth(&self.center)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn rows(&self, path: &str) -> Vec<Value> {
        let r = client()
            .get(self.server.url(path))
            .bearer_auth(&self.center)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }
}

fn received(id: &str, at: &str, agency: &str, channel: &str, level: i64, due: &str) -> Value {
    json!({"event_type": "dossier_received", "entity_id": id, "occurred_at": at, "procedure_code": "1.001",
           "agency_code": agency, "level": level, "channel": channel, "due_at": due})
}

fn budget(id: u32, ty: &str, at: &str, flow: &str, amount: i64) -> Value {
    json!({"event_id": format!("00000000-0000-7000-8000-{id:012}"), "event_type": ty, "entity_id": format!("E{id}"),
           "occurred_at": at, "fiscal_year": 2021, "agency_code": "STC", "flow": flow, "category_code": "1001", "amount_vnd": amount})
}

#[tokio::test]
async fn views_give_the_hand_computed_answers() {
    let dir = tempfile::tempdir().unwrap();
    // No background refresh during the test: each refresh is asked for.
    let f = fixture(
        dir.path().to_str().unwrap(),
        &["--view-debounce-ms", "600000", "--view-poll-secs", "3600"],
    )
    .await;

    f.post(&f.plan, "reference.targets", &[json!({"event_type": "target_set", "entity_id": "online_rate-2021",
        "occurred_at": "2021-01-01T00:00:00+07:00", "kpi": "online_rate", "year": 2021, "target_value": 0.3})]).await;
    f.post(
        &f.svc,
        "service.dossiers",
        &[
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
    let first = f.refresh("service_dossiers").await;
    assert_eq!(first["sources"][0]["stream"], "service.dossiers");
    assert_eq!(
        (
            first["sources"][0]["version"].as_u64(),
            first["sources"][0]["lag_commits"].as_u64()
        ),
        (Some(1), Some(0))
    );
    f.post(&f.svc, "service.dossiers", &[
        json!({"event_type": "dossier_resolved", "entity_id": "D1", "occurred_at": "2021-02-08T10:00:00+07:00", "outcome": "approved"}),
        json!({"event_type": "dossier_resolved", "entity_id": "D3", "occurred_at": "2021-02-09T10:00:00+07:00", "outcome": "rejected"}),
        json!({"event_type": "dossier_withdrawn", "entity_id": "D4", "occurred_at": "2021-02-06T10:00:00+07:00"}),
        json!({"event_type": "dossier_returned", "entity_id": "D1", "occurred_at": "2021-02-09T10:00:00+07:00", "return_channel": "postal"}),
    ]).await;
    // Before the refresh, the listing shows the view one commit behind.
    let list = f.rows("/v1/views").await;
    let dossiers = list
        .iter()
        .find(|v| v["name"] == "service_dossiers")
        .unwrap();
    assert_eq!(dossiers["sources"][0]["lag_commits"], 1);
    f.refresh("service_dossiers").await;
    let rows = f.rows("/v1/views/service_dossiers").await;
    assert_eq!(rows, json!([
        {"month": "2021-01", "agency_code": "STP", "received": 1, "received_online": 0, "online_rate": 0.0, "online_rate_target": 0.3,
         "resolved": 0, "resolved_on_time": 0, "on_time_rate": null, "on_time_rate_target": null, "pending": 1, "pending_overdue": 1, "postal": 0},
        {"month": "2021-02", "agency_code": "STP", "received": 2, "received_online": 1, "online_rate": 0.5, "online_rate_target": 0.3,
         "resolved": 2, "resolved_on_time": 1, "on_time_rate": 0.5, "on_time_rate_target": null, "pending": 0, "pending_overdue": 0, "postal": 2},
        {"month": "2021-02", "agency_code": "UBND-TN", "received": 1, "received_online": 0, "online_rate": 0.0, "online_rate_target": 0.3,
         "resolved": 0, "resolved_on_time": 0, "on_time_rate": null, "on_time_rate_target": null, "pending": 0, "pending_overdue": 0, "postal": 0}
    ]).as_array().unwrap().clone());

    // Budget: a revenue entry and its reversal, and a late entry for an earlier month.
    f.post(
        &f.fin,
        "finance.budget",
        &[
            budget(
                1,
                "estimate_assigned",
                "2021-01-05T08:00:00+07:00",
                "revenue",
                1_000,
            ),
            budget(
                2,
                "revenue_collected",
                "2021-02-10T08:00:00+07:00",
                "revenue",
                100,
            ),
            budget(
                3,
                "revenue_collected",
                "2021-03-10T08:00:00+07:00",
                "revenue",
                300,
            ),
        ],
    )
    .await;
    f.refresh("budget_execution").await;
    f.post(&f.fin, "finance.budget", &[
        json!({"event_type": "entry_reversed", "entity_id": "E3", "occurred_at": "2021-04-01T08:00:00+07:00",
               "reverses_event_id": "00000000-0000-7000-8000-000000000003"}),
        budget(4, "revenue_collected", "2021-02-20T08:00:00+07:00", "revenue", 50),
    ]).await;
    f.refresh("budget_execution").await;
    let rows = f.rows("/v1/views/budget_execution?agency_code=STC").await;
    let got: Vec<(String, i64, i64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["month"].as_str().unwrap().to_owned(),
                r["actual_vnd"].as_i64().unwrap(),
                r["ytd_actual_vnd"].as_i64().unwrap(),
                r["execution_rate"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2021-01".into(), 0, 0, 0.0),
            ("2021-02".into(), 150, 150, 0.15),
            ("2021-03".into(), 0, 150, 0.15)
        ]
    );

    // A project whose status changes twice; the later status wins.
    f.post(&f.plan, "investment.projects", &[
        json!({"event_type": "project_registered", "entity_id": "DA-01", "occurred_at": "2021-01-10T08:00:00+07:00", "project_name": "Đường ĐT.781",
               "investor_code": "BQLDA-GT", "district_code": "TC", "group": "B", "total_investment_vnd": 500_000, "status": "preparing"}),
        json!({"event_type": "capital_allocated", "entity_id": "DA-01", "occurred_at": "2021-01-15T08:00:00+07:00", "year": 2021, "amount_vnd": 200_000, "capital_source": "local"}),
        json!({"event_type": "status_changed", "entity_id": "DA-01", "occurred_at": "2021-03-01T08:00:00+07:00", "status": "implementing"}),
        json!({"event_type": "disbursement_made", "entity_id": "DA-01", "occurred_at": "2021-04-01T08:00:00+07:00", "year": 2021, "amount_vnd": 50_000, "capital_source": "local"}),
        json!({"event_type": "status_changed", "entity_id": "DA-01", "occurred_at": "2021-11-01T08:00:00+07:00", "status": "completed"}),
    ]).await;
    f.refresh("investment_disbursement").await;
    let rows = f.rows("/v1/views/investment_disbursement").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0]["status"].as_str(),
            rows[0]["group"].as_str(),
            rows[0]["disbursement_rate"].as_f64()
        ),
        (Some("completed"), Some("B"), Some(0.25))
    );

    // Feedback still open.
    f.post(&f.svc, "service.feedback", &[
        json!({"event_type": "feedback_received", "entity_id": "F1", "occurred_at": "2021-05-01T08:00:00+07:00", "channel": "zalo", "topic": "đất đai", "agency_code": "STNMT", "due_at": "2021-05-11T08:00:00+07:00"}),
        json!({"event_type": "feedback_received", "entity_id": "F2", "occurred_at": "2021-05-02T08:00:00+07:00", "channel": "app", "topic": "giao thông", "agency_code": "STNMT", "due_at": "2021-05-12T08:00:00+07:00"}),
        json!({"event_type": "feedback_answered", "entity_id": "F1", "occurred_at": "2021-05-10T08:00:00+07:00"}),
    ]).await;
    f.refresh("service_feedback").await;
    let rows = f.rows("/v1/views/service_feedback").await;
    assert_eq!(
        rows,
        vec![
            json!({"month": "2021-05", "agency_code": "STNMT", "received": 2, "answered": 1, "in_progress": 1,
        "answered_on_time": 1, "answered_on_time_rate": 1.0, "answered_on_time_rate_target": null})
        ]
    );
}

#[tokio::test]
async fn formats_filters_paging_etags_time_travel_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(
        dir.path().to_str().unwrap(),
        &["--view-debounce-ms", "600000", "--view-poll-secs", "3600"],
    )
    .await;
    let rows: Vec<Value> = (0..30)
        .map(|i| {
            received(
                &format!("D{i}"),
                &format!("2021-{:02}-10T09:00:00+07:00", 1 + i % 3),
                ["A", "B"][i % 2],
                "counter",
                2,
                "2021-12-31T17:00:00+07:00",
            )
        })
        .collect();
    f.post(&f.svc, "service.dossiers", &rows).await;
    let v1 = f.refresh("service_dossiers").await["version"]
        .as_u64()
        .unwrap();
    f.post(
        &f.svc,
        "service.dossiers",
        &[received(
            "X",
            "2021-01-11T09:00:00+07:00",
            "A",
            "counter",
            2,
            "2021-12-31T17:00:00+07:00",
        )],
    )
    .await;
    let v2 = f.refresh("service_dossiers").await["version"]
        .as_u64()
        .unwrap();
    assert_eq!(v2, v1 + 1);

    let all = f.rows("/v1/views/service_dossiers").await;
    assert_eq!(all.len(), 6);
    let a_jan = f
        .rows("/v1/views/service_dossiers?agency_code=A&month=2021-01")
        .await;
    assert_eq!(a_jan.len(), 1);
    assert_eq!(a_jan[0]["received"], 6);
    let page = f.rows("/v1/views/service_dossiers?limit=2&offset=1").await;
    assert_eq!(page, all[1..3].to_vec());
    // Time travel to the first refresh.
    let then = f
        .rows(&format!(
            "/v1/views/service_dossiers?agency_code=A&month=2021-01&as_of={v1}"
        ))
        .await;
    assert_eq!(then[0]["received"], 5);

    let http = client();
    let get = |path: &str| http.get(f.server.url(path)).bearer_auth(&f.center);
    // CSV
    let r = get("/v1/views/service_dossiers?format=csv&agency_code=B")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = r.text().await.unwrap();
    assert!(
        csv.starts_with("month,agency_code,received,received_online,online_rate,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4);
    // Arrow IPC by Accept, read back with arrow.
    let r = get("/v1/views/service_dossiers")
        .header("accept", "application/vnd.apache.arrow.stream")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = r.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)
            .unwrap();
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, 6);
    // Parquet, read back.
    let r = get("/v1/views/service_dossiers?format=parquet")
        .send()
        .await
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, 6);

    // ETag and 304; a new refresh changes it.
    let r = get("/v1/views/service_dossiers").send().await.unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        r.headers()["x-kho-view-version"].to_str().unwrap(),
        v2.to_string()
    );
    assert!(
        r.headers()["x-kho-source-versions"]
            .to_str()
            .unwrap()
            .contains("service.dossiers=2")
    );
    let r = get("/v1/views/service_dossiers")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = get("/v1/views/service_dossiers?format=csv")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another representation, another tag");
    f.post(
        &f.svc,
        "service.dossiers",
        &[received(
            "Y",
            "2021-01-12T09:00:00+07:00",
            "A",
            "counter",
            2,
            "2021-12-31T17:00:00+07:00",
        )],
    )
    .await;
    f.refresh("service_dossiers").await;
    let r = get("/v1/views/service_dossiers")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Bad requests are explained.
    for (path, status, fragment) in [
        (
            "/v1/views/service_dossiers?received=3",
            400,
            "filters take the grain columns month, agency_code",
        ),
        (
            "/v1/views/budget_execution?fiscal_year=twenty",
            400,
            "fiscal_year takes an integer",
        ),
        (
            "/v1/views/service_dossiers?limit=-1",
            400,
            "limit takes a non-negative integer",
        ),
        (
            "/v1/views/service_dossiers?as_of=yesterday",
            400,
            "as_of takes a version number or an RFC 3339 time",
        ),
        (
            "/v1/views/service_dossiers?as_of=999",
            404,
            "has no version 999",
        ),
        (
            "/v1/views/service_dossiers?format=xml",
            400,
            "unknown format xml",
        ),
        ("/v1/views/no_such_view", 404, "unknown view no_such_view"),
    ] {
        let r = get(path).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(fragment),
            "{path}: {body}"
        );
    }
    let r = get("/v1/views/service_dossiers")
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);

    // Only the center reads views and runs SQL.
    for path in ["/v1/views", "/v1/views/service_dossiers"] {
        let r = http
            .get(f.server.url(path))
            .bearer_auth(&f.svc)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let r = http.get(f.server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = http
        .post(f.server.url("/v1/sql"))
        .bearer_auth(&f.fin)
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_restart_between_commit_and_refresh_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let quiet = ["--view-debounce-ms", "600000", "--view-poll-secs", "3600"];
    let f = fixture(&store, &quiet).await;
    let batch = |from: usize| -> Vec<Value> {
        (from..from + 10)
            .map(|i| {
                received(
                    &format!("D{i}"),
                    "2021-03-10T09:00:00+07:00",
                    "STP",
                    "online",
                    3,
                    "2021-03-20T17:00:00+07:00",
                )
            })
            .collect()
    };
    f.post(&f.svc, "service.dossiers", &batch(0)).await;
    f.refresh("service_dossiers").await;
    // Committed, acknowledged, not yet in the view; then the process dies.
    f.post(&f.svc, "service.dossiers", &batch(10)).await;
    let (center, svc) = (f.center.clone(), f.svc.clone());
    f.server.crash();
    // Again: a commit on the restarted process, then a crash before any refresh of it.
    let server = Server::start(&store, &quiet);
    let (st, _, _) = server
        .append(
            Some(&svc),
            "service.dossiers",
            "application/x-ndjson",
            ndjson(&batch(20)),
            None,
        )
        .await;
    assert_eq!(st, 201);
    server.crash();
    let server = Server::start(&store, &quiet);
    let r = client()
        .post(server.url("/v1/views/service_dossiers/refresh"))
        .bearer_auth(&center)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rows: Vec<Value> = client()
        .get(server.url("/v1/views/service_dossiers"))
        .bearer_auth(&center)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0]["received"].as_i64(),
            rows[0]["received_online"].as_i64()
        ),
        (Some(30), Some(30))
    );
}

#[tokio::test]
async fn duckdb_computes_the_same_dossier_totals() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let f = fixture(
        &store,
        &["--view-debounce-ms", "600000", "--view-poll-secs", "3600"],
    )
    .await;
    // A few hundred dossiers with every kind of event, in several batches.
    let mut x: u64 = 7;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % m
    };
    for round in 0..4 {
        let mut rows = Vec::new();
        for i in 0..100 {
            let id = format!("D{}", round * 100 + i);
            let day = 1 + next(360) as i64;
            let at = chrono::DateTime::from_timestamp(
                1_609_459_200 + day * 86_400 + next(86_400) as i64,
                0,
            )
            .unwrap();
            let due = at + chrono::Duration::days(next(15) as i64);
            let channel = ["counter", "online", "postal"][next(3) as usize];
            let level = if channel == "online" {
                3 + next(2) as i64
            } else {
                2 + next(3) as i64
            };
            rows.push(received(
                &id,
                &at.to_rfc3339(),
                ["STP", "SXD", "UBND-TN"][next(3) as usize],
                channel,
                level,
                &due.to_rfc3339(),
            ));
            match next(5) {
                0 | 1 => rows.push(json!({"event_type": "dossier_resolved", "entity_id": id, "occurred_at": (at + chrono::Duration::days(next(20) as i64)).to_rfc3339(), "outcome": "approved"})),
                2 => rows.push(json!({"event_type": "dossier_withdrawn", "entity_id": id, "occurred_at": (at + chrono::Duration::days(1)).to_rfc3339()})),
                3 => rows.push(json!({"event_type": "dossier_returned", "entity_id": id, "occurred_at": (at + chrono::Duration::days(2)).to_rfc3339(), "return_channel": "postal"})),
                _ => {}
            }
        }
        f.post(&f.svc, "service.dossiers", &rows).await;
        f.refresh("service_dossiers").await;
    }
    let rows = f.rows("/v1/views/service_dossiers").await;
    let names = [
        "received",
        "received_online",
        "resolved",
        "resolved_on_time",
        "pending",
        "pending_overdue",
        "postal",
    ];
    let mut ours = serde_json::Map::new();
    for n in names {
        ours.insert(
            n.into(),
            json!(rows.iter().map(|r| r[n].as_i64().unwrap()).sum::<i64>()),
        );
    }
    assert_eq!(ours["received"], 400);

    let Some(py) = python() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/dossier_totals.py");
    let out = Command::new(py)
        .arg(script)
        .arg(format!("{store}/streams/service.dossiers"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(Value::Object(ours), theirs);
}

#[tokio::test]
async fn sql_is_read_only_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(
        dir.path().to_str().unwrap(),
        &[
            "--sql-memory-mb",
            "8",
            "--sql-max-rows",
            "50",
            "--sql-timeout-ms",
            "2000",
            "--sql-concurrency",
            "4",
        ],
    )
    .await;
    let rows: Vec<Value> = (0..300)
        .map(|i| {
            received(
                &format!("D{i}"),
                "2021-03-10T09:00:00+07:00",
                ["A", "B", "C"][i % 3],
                "counter",
                2,
                "2021-03-20T17:00:00+07:00",
            )
        })
        .collect();
    f.post(&f.svc, "service.dossiers", &rows).await;
    f.refresh("service_dossiers").await;
    let http = client();
    let sql = |q: &str| {
        http.post(f.server.url("/v1/sql"))
            .bearer_auth(&f.center)
            .json(&json!({"sql": q}))
    };

    let r = sql("SELECT agency_code, count(*) AS n FROM service.dossiers GROUP BY agency_code ORDER BY agency_code").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-kho-rows"], "3");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!([{"agency_code": "A", "n": 100}, {"agency_code": "B", "n": 100}, {"agency_code": "C", "n": 100}])
    );
    let r = http
        .post(f.server.url("/v1/sql"))
        .bearer_auth(&f.center)
        .json(&json!({"sql": "SELECT count(*) AS n FROM service_dossiers", "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        "n\n3\n",
        "three agencies, one month"
    );

    for (q, kind) in [
        ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
        ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
        ("DROP TABLE service_dossiers", "DROP TABLE"),
        (
            "INSERT INTO service_dossiers SELECT * FROM service_dossiers",
            "INSERT",
        ),
        ("DELETE FROM service.dossiers", "DELETE"),
        ("UPDATE service.dossiers SET level = 4", "UPDATE"),
        (
            "COPY (SELECT * FROM service.dossiers) TO '/tmp/out.csv'",
            "COPY",
        ),
        (
            "CREATE EXTERNAL TABLE secrets STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE",
        ),
        ("SET datafusion.execution.batch_size = 1", "SET"),
    ] {
        let r = sql(q).send().await.unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "statement_not_allowed",
            "{q}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{kind} statements are not allowed")),
            "{q}: {body}"
        );
    }
    // Files and URLs are not tables.
    for q in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM 'file:///etc/hosts'",
        "SELECT * FROM read_csv('/etc/passwd')",
    ] {
        let r = sql(q).send().await.unwrap();
        assert_eq!(r.status(), 400, "{q}");
    }
    // Row cap.
    let r = sql("SELECT * FROM service.dossiers").send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 50 rows"),
        "{body}"
    );
    // A memory-hungry query fails alone; a small one at the same time succeeds.
    let hungry = sql("SELECT a.entity_id, b.entity_id, c.entity_id, count(*) FROM service.dossiers a, service.dossiers b, service.dossiers c GROUP BY 1, 2, 3 LIMIT 10").send();
    let small = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        sql("SELECT count(*) AS n FROM service.dossiers")
            .send()
            .await
            .unwrap()
    };
    let (hungry, small) = tokio::join!(hungry, small);
    let hungry = hungry.unwrap();
    let status = hungry.status();
    let body: Value = hungry.json().await.unwrap();
    assert_eq!(status, 422, "{body}\n{}", f.server.log());
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory limit of 8 MiB"),
        "{body}"
    );
    assert_eq!(small.status(), 200);
    // Time limit.
    let r = sql("SELECT count(*) FROM generate_series(1, 100000000000)")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("time limit of 2000 ms"),
        "{body}"
    );
    // The server is still fine.
    assert_eq!(
        http.get(f.server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
