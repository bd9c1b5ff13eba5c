//! Appending events through the real binary: formats, rejections, idempotency across a
//! crash, and two writer processes on one store.

use std::collections::HashSet;
use std::time::Duration;

use kho_tests::{Server, client, event_id, python, python_read, s3_store};
use serde_json::{Value, json};

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

fn revenue(n: u64, occurred_at: &str, amount: i64) -> Value {
    json!({
        "event_id": event_id(n), "event_type": "revenue_collected", "entity_id": format!("KB-{n}"),
        "occurred_at": occurred_at, "fiscal_year": 2021, "agency_code": "STC", "flow": "revenue",
        "category_code": "1001", "amount_vnd": amount
    })
}

fn ndjson(rows: &[Value]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

#[tokio::test]
async fn three_formats_land_in_a_table_the_python_reader_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let server = Server::start(&store, &[]);
    let fin = server.token("sector", Some("finance"), "treasury").await;
    let s = "finance.budget";

    let nd = ndjson(&[
        revenue(1, "2021-01-31T20:00:00Z", 1_500_000),
        revenue(2, "2021-02-01T03:00:00+07:00", 2_000_000),
    ]);
    let (st, body, _) = server
        .append(Some(&fin), s, "application/x-ndjson", nd, None)
        .await;
    assert_eq!(
        (st, &body),
        (
            201,
            &json!({"stream": s, "version": 1, "accepted": 2, "duplicates": 0})
        )
    );

    let arr = json!([
        revenue(3, "2021-03-15T09:30:00.123456+07:00", 7),
        {"event_id": event_id(4), "event_type": "estimate_assigned", "entity_id": "DT-STC-1001",
         "occurred_at": "2021-01-05T08:00:00+07:00", "fiscal_year": 2021, "agency_code": "STC",
         "flow": "expenditure", "category_code": "2001", "amount_vnd": 9_000_000_000_i64}
    ]);
    let (st, body, _) = server
        .append(Some(&fin), s, "application/json", arr.to_string(), None)
        .await;
    assert_eq!(
        (st, body["version"].as_u64(), body["accepted"].as_u64()),
        (201, Some(2), Some(2))
    );

    let csv = format!(
        "event_id,event_type,entity_id,occurred_at,fiscal_year,agency_code,flow,category_code,amount_vnd,reverses_event_id\n\
         {},expenditure_paid,\"Chi, lương\",2021-04-01T10:00:00+07:00,2021,UBND-TN,expenditure,2001,3000000,\n\
         {},entry_reversed,KB-1,2021-04-02T10:00:00+07:00,,,,,,{}\n",
        event_id(5),
        event_id(6),
        event_id(1)
    );
    let (st, body, _) = server.append(Some(&fin), s, "text/csv", csv, None).await;
    assert_eq!(
        (st, body["version"].as_u64(), body["accepted"].as_u64()),
        (201, Some(3), Some(2))
    );

    let detail = server.stream(&fin, s).await;
    assert_eq!(detail["stats"]["version"], 3);
    assert_eq!(detail["stats"]["row_count"], 6);

    let Some(py) = python() else { return };
    let rows = python_read(&py, &format!("{store}/streams/{s}"));
    assert_eq!(rows.len(), 6);
    let expect = [
        (
            1,
            "revenue_collected",
            "KB-1",
            micros("2021-01-31T20:00:00Z"),
            Some(1_500_000),
            None,
        ),
        (
            2,
            "revenue_collected",
            "KB-2",
            micros("2021-01-31T20:00:00Z"),
            Some(2_000_000),
            None,
        ),
        (
            3,
            "revenue_collected",
            "KB-3",
            micros("2021-03-15T02:30:00.123456Z"),
            Some(7),
            None,
        ),
        (
            4,
            "estimate_assigned",
            "DT-STC-1001",
            micros("2021-01-05T01:00:00Z"),
            Some(9_000_000_000),
            None,
        ),
        (
            5,
            "expenditure_paid",
            "Chi, lương",
            micros("2021-04-01T03:00:00Z"),
            Some(3_000_000),
            None,
        ),
        (
            6,
            "entry_reversed",
            "KB-1",
            micros("2021-04-02T03:00:00Z"),
            None,
            Some(event_id(1)),
        ),
    ];
    for (row, (n, ty, entity, occurred, amount, reverses)) in rows.iter().zip(expect) {
        assert_eq!(row["event_id"], event_id(n));
        assert_eq!(row["event_type"], ty);
        assert_eq!(row["entity_id"], entity);
        assert_eq!(row["occurred_at"].as_i64(), Some(occurred), "{row}");
        assert_eq!(row["amount_vnd"].as_i64(), amount, "{row}");
        assert_eq!(row["reverses_event_id"].as_str(), reverses.as_deref());
        assert_eq!(row["source"], "finance:treasury");
        assert!(row["recorded_at"].as_i64().unwrap() > micros("2026-01-01T00:00:00Z"));
    }
    assert_eq!(
        rows[0]["recorded_at"], rows[1]["recorded_at"],
        "one commit, one recorded_at"
    );
    assert_eq!(rows[3]["flow"], "expenditure");
    assert_eq!(rows[3]["fiscal_year"], 2021);
}

/// (what, token, stream, content type, body, status, code, field, message fragment)
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a str,
    String,
    u16,
    &'a str,
    Option<&'a str>,
    &'a str,
);

const REV: &str = r#"{"event_type":"revenue_collected","entity_id":"B-1","occurred_at":"2021-03-01T08:00:00+07:00","fiscal_year":2021,"agency_code":"STC","flow":"revenue","category_code":"1001","amount_vnd":1500000}"#;
const DOSSIER: &str = r#"{"event_type":"dossier_received","entity_id":"HS-1","occurred_at":"2021-03-01T08:00:00+07:00","procedure_code":"1.001","agency_code":"SO-TP","level":2,"channel":"online","due_at":"2021-03-10T17:00:00+07:00"}"#;

#[tokio::test]
async fn each_bad_input_gets_its_own_status_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path().to_str().unwrap(), &["--body-limit", "4096"]);
    let fin = server.token("sector", Some("finance"), "treasury").await;
    let svc = server
        .token("sector", Some("services"), "one-stop-shop")
        .await;
    let gone = server.token("sector", Some("finance"), "old").await;
    let gone_id = gone.split('_').nth(1).unwrap().to_owned();
    let resp = client()
        .delete(server.url(&format!("/v1/admin/tokens/{gone_id}")))
        .bearer_auth(kho_tests::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let nd = "application/x-ndjson";
    let big = format!("{}\n", REV).repeat(40);
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            Some(&fin),
            "finance.budget",
            nd,
            "{\"event_type\": ".into(),
            400,
            "invalid_batch",
            None,
            "malformed JSON at column 15",
        ),
        (
            "wrong type",
            Some(&fin),
            "finance.budget",
            nd,
            REV.replace("1500000", "\"lots\""),
            400,
            "invalid_batch",
            Some("amount_vnd"),
            "expected a 64-bit integer, found a string",
        ),
        (
            "missing field",
            Some(&fin),
            "finance.budget",
            nd,
            REV.replace(",\"agency_code\":\"STC\"", ""),
            400,
            "invalid_batch",
            Some("agency_code"),
            "required for event type revenue_collected",
        ),
        (
            "bad enum",
            Some(&fin),
            "finance.budget",
            nd,
            REV.replace("\"revenue\"", "\"income\""),
            400,
            "invalid_batch",
            Some("flow"),
            "must be one of revenue, expenditure",
        ),
        (
            "non-positive amount",
            Some(&fin),
            "finance.budget",
            nd,
            REV.replace("1500000", "-1"),
            400,
            "invalid_batch",
            Some("amount_vnd"),
            "must be greater than 0",
        ),
        (
            "online at level 2",
            Some(&svc),
            "service.dossiers",
            nd,
            DOSSIER.into(),
            400,
            "invalid_batch",
            Some("level"),
            "an online dossier must have level 3 or 4",
        ),
        (
            "unknown field",
            Some(&fin),
            "finance.budget",
            nd,
            REV.replace("\"fiscal_year\"", "\"colour\":1,\"fiscal_year\""),
            400,
            "invalid_batch",
            Some("colour"),
            "unknown field",
        ),
        (
            "reversal of nothing",
            Some(&fin),
            "finance.budget",
            nd,
            format!(
                r#"{{"event_type":"entry_reversed","entity_id":"x","occurred_at":"2021-03-01T08:00:00Z","reverses_event_id":"{}"}}"#,
                event_id(404)
            ),
            400,
            "invalid_batch",
            Some("reverses_event_id"),
            "which is not in stream finance.budget",
        ),
        (
            "unknown stream",
            Some(&fin),
            "finance.nope",
            nd,
            REV.into(),
            404,
            "not_found",
            None,
            "unknown stream finance.nope",
        ),
        (
            "another sector's stream",
            Some(&fin),
            "service.dossiers",
            nd,
            DOSSIER.replace("\"level\":2", "\"level\":3"),
            403,
            "forbidden",
            None,
            "belongs to sector services",
        ),
        (
            "no token",
            None,
            "finance.budget",
            nd,
            REV.into(),
            401,
            "unauthenticated",
            None,
            "missing Authorization",
        ),
        (
            "revoked token",
            Some(&gone),
            "finance.budget",
            nd,
            REV.into(),
            401,
            "unauthenticated",
            None,
            "has been revoked",
        ),
        (
            "forged token",
            Some(
                "kho_00000000000000000000000000000000_0000000000000000000000000000000000000000000000000000000000000000",
            ),
            "finance.budget",
            nd,
            REV.into(),
            401,
            "unauthenticated",
            None,
            "unknown token",
        ),
        (
            "too large",
            Some(&fin),
            "finance.budget",
            nd,
            big,
            413,
            "payload_too_large",
            None,
            "exceeds the limit of 4096 bytes",
        ),
        (
            "wrong content type",
            Some(&fin),
            "finance.budget",
            "application/xml",
            REV.into(),
            415,
            "unsupported_media_type",
            None,
            "application/xml is not supported",
        ),
        (
            "empty batch",
            Some(&fin),
            "finance.budget",
            nd,
            "\n".into(),
            400,
            "bad_request",
            None,
            "the batch has no events",
        ),
    ];
    for (what, token, stream, ct, body, status, code, field, message) in cases {
        let (st, resp, headers) = server.append(token, stream, ct, body, None).await;
        assert_eq!(st, status, "{what}: {resp}");
        assert_eq!(resp["error"]["code"], code, "{what}: {resp}");
        let text = match field {
            Some(f) => {
                let first = &resp["error"]["details"]["errors"][0];
                assert_eq!(first["field"], f, "{what}: {resp}");
                assert_eq!(first["row"], 1, "{what}: {resp}");
                first["message"].as_str().unwrap().to_owned()
            }
            None if code == "invalid_batch" => resp["error"]["details"]["errors"][0]["message"]
                .as_str()
                .unwrap()
                .to_owned(),
            None => resp["error"]["message"].as_str().unwrap().to_owned(),
        };
        assert!(text.contains(message), "{what}: {text:?} lacks {message:?}");
        if status == 401 {
            assert!(headers.contains_key("www-authenticate"), "{what}");
        }
    }
    for s in ["finance.budget", "service.dossiers"] {
        let d = server.stream(&fin, s).await;
        assert_eq!(
            (
                d["stats"]["version"].as_u64(),
                d["stats"]["row_count"].as_u64()
            ),
            (Some(0), Some(0)),
            "{s}"
        );
    }
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"kho_rejected_batches_total{stream="finance.budget",reason="invalid_batch"} 7"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path().to_str().unwrap(),
        &[
            "--max-queued-events",
            "10",
            "--max-batch-events",
            "10",
            "--commit-window-ms",
            "3000",
        ],
    );
    let fin = server.token("sector", Some("finance"), "treasury").await;
    let eight = |base: u64| {
        ndjson(
            &(0..8)
                .map(|i| revenue(base + i, "2021-03-01T08:00:00Z", 1))
                .collect::<Vec<_>>(),
        )
    };
    let first = {
        let url = server.url("/v1/streams/finance.budget/events");
        let (fin, body) = (fin.clone(), eight(100));
        tokio::spawn(async move {
            client()
                .post(url)
                .bearer_auth(fin)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Wait until the first batch holds its place in the queue (it waits out the window).
    let mut queued = 0;
    for _ in 0..100 {
        let h: Value = client()
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        queued = h["queued_events"].as_u64().unwrap();
        if queued == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(queued, 8);
    let (st, body, headers) = server
        .append(
            Some(&fin),
            "finance.budget",
            "application/x-ndjson",
            eight(200),
            None,
        )
        .await;
    assert_eq!(st, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_requests");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(first.await.unwrap(), 201);
    let (st, _, _) = server
        .append(
            Some(&fin),
            "finance.budget",
            "application/x-ndjson",
            eight(200),
            None,
        )
        .await;
    assert_eq!(st, 201);
    let d = server.stream(&fin, "finance.budget").await;
    assert_eq!(d["stats"]["row_count"], 16);
}

#[tokio::test]
async fn an_idempotent_retry_after_a_crash_gets_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let server = Server::start(&store, &[]);
    let fin = server.token("sector", Some("finance"), "treasury").await;
    // No client event ids: without the key, a retry would write new rows.
    let body = format!("{REV}\n{REV}\n{REV}\n");
    let key = "treasury-2021-03-01-batch-7";
    let (st, first, h) = server
        .append(
            Some(&fin),
            "finance.budget",
            "application/x-ndjson",
            body.clone(),
            Some(key),
        )
        .await;
    assert_eq!(st, 201);
    assert!(!h.contains_key("idempotent-replayed"));
    assert_eq!(first["accepted"], 3);

    let store = server.crash();
    let server = Server::start(&store, &[]);
    let (st, again, h) = server
        .append(
            Some(&fin),
            "finance.budget",
            "application/x-ndjson",
            body.clone(),
            Some(key),
        )
        .await;
    assert_eq!((st, &again), (201, &first));
    assert_eq!(h["idempotent-replayed"], "true");
    let d = server.stream(&fin, "finance.budget").await;
    assert_eq!(
        (
            d["stats"]["version"].as_u64(),
            d["stats"]["row_count"].as_u64()
        ),
        (Some(1), Some(3))
    );

    // The same key for another body is a client bug, not a retry.
    let (st, err, _) = server
        .append(
            Some(&fin),
            "finance.budget",
            "application/x-ndjson",
            format!("{REV}\n"),
            Some(key),
        )
        .await;
    assert_eq!(st, 422, "{err}");
    assert_eq!(err["error"]["code"], "idempotency_key_reused");
    // Keys are per principal: another token's same key is a new request.
    let other = server
        .token("sector", Some("finance"), "other-system")
        .await;
    let (st, b, _) = server
        .append(
            Some(&other),
            "finance.budget",
            "application/x-ndjson",
            body,
            Some(key),
        )
        .await;
    assert_eq!((st, b["version"].as_u64()), (201, Some(2)));
}

async fn two_writer_processes(store: String) {
    let a = Server::start(&store, &[]);
    let b = Server::start(&store, &[]);
    // Issued through one process, accepted by the other (it re-reads the governance log).
    let fin = a.token("sector", Some("finance"), "treasury").await;
    let servers = [a.base.clone(), b.base.clone()];
    let mut tasks = Vec::new();
    for t in 0..6u64 {
        let servers = servers.clone();
        let fin = fin.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for round in 0..8u64 {
                let ids: Vec<u64> = (0..40).map(|i| t * 100_000 + round * 100 + i).collect();
                let body = ndjson(
                    &ids.iter()
                        .map(|&n| revenue(n, "2021-05-01T08:00:00+07:00", 10))
                        .collect::<Vec<_>>(),
                );
                let target = &servers[((t + round) % 2) as usize];
                let url = format!("{target}/v1/streams/finance.budget/events");
                let send = |url: String, body: String| {
                    let fin = fin.clone();
                    async move {
                        let r = client()
                            .post(url)
                            .bearer_auth(fin)
                            .header("content-type", "application/x-ndjson")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        let st = r.status().as_u16();
                        (st, r.json::<Value>().await.unwrap())
                    }
                };
                let (st, resp) = send(url, body.clone()).await;
                assert_eq!(st, 201, "{resp}");
                assert_eq!(resp["accepted"], 40);
                acked.extend(ids.iter().copied());
                if round % 3 == 0 {
                    // A retry without a key, through the other process: every id is known.
                    let other = &servers[((t + round + 1) % 2) as usize];
                    let (st, resp) =
                        send(format!("{other}/v1/streams/finance.budget/events"), body).await;
                    assert_eq!(
                        (st, resp["accepted"].as_u64(), resp["duplicates"].as_u64()),
                        (201, Some(0), Some(40)),
                        "{resp}"
                    );
                }
            }
            acked
        }));
    }
    let mut acked = HashSet::new();
    for t in tasks {
        for n in t.await.unwrap() {
            assert!(acked.insert(event_id(n)));
        }
    }
    assert_eq!(acked.len(), 6 * 8 * 40);
    let d = a.stream(&fin, "finance.budget").await;
    assert_eq!(d["stats"]["row_count"].as_u64(), Some(acked.len() as u64));

    let Some(py) = python() else { return };
    let rows = python_read(
        &py,
        &format!("{}/streams/finance.budget", store.trim_end_matches('/')),
    );
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_owned())
        .collect();
    let distinct: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), distinct.len(), "an event was written twice");
    assert_eq!(
        distinct, acked,
        "every acknowledged event, and nothing else"
    );
}

#[tokio::test]
async fn two_writer_processes_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    two_writer_processes(dir.path().to_str().unwrap().to_owned()).await;
}

#[tokio::test]
async fn two_writer_processes_on_s3() {
    if let Some(store) = s3_store() {
        two_writer_processes(store).await;
    }
}
