//! Catalog benchmark: release materialization per million rows, download throughput of a
//! large open dataset (CSV, Parquet), and the cost of the audit on small pulls.
//!
//! ```text
//! cargo build --release -p kho -p kho-bench --features kho-bench/bench
//! target/release/bench_catalog [--rows 1000000]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use kho_tests::{Server, client};
use serde_json::json;

fn rows_arg() -> usize {
    let mut it = std::env::args().skip(1);
    let mut rows = 1_000_000;
    while let Some(f) = it.next() {
        match f.as_str() {
            "--rows" => rows = it.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            other => panic!("unknown flag {other}"),
        }
    }
    rows
}

fn budget_lines(start: usize, n: usize) -> String {
    let agencies = [
        "STC",
        "SKHDT",
        "SYT",
        "SGDDT",
        "UBND-TPTN",
        "UBND-HT",
        "UBND-TBA",
        "UBND-GD",
    ];
    let mut s = String::with_capacity(n * 240);
    for i in start..start + n {
        let (ty, flow) = if i % 2 == 0 {
            ("revenue_collected", "revenue")
        } else {
            ("expenditure_paid", "expenditure")
        };
        s.push_str(&format!(
            "{{\"event_id\":\"{}\",\"event_type\":\"{ty}\",\"entity_id\":\"KB-{i}\",\"occurred_at\":\"2021-{:02}-{:02}T09:00:00+07:00\",\"fiscal_year\":2021,\"agency_code\":\"{}\",\"flow\":\"{flow}\",\"category_code\":\"{}\",\"amount_vnd\":{}}}\n",
            uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, 0x8000_0000_0000_0000 | i as u64),
            1 + i % 12,
            1 + i % 28,
            agencies[i % agencies.len()],
            1000 + i % 40,
            1 + (i * 7919) % 2_000_000_000
        ));
    }
    s
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    assert!(status.is_success(), "{status}: {v}");
    v
}

/// `clients` concurrent GETs of `url` for `secs`: requests per second.
async fn hammer(url: &str, token: &str, clients: usize, secs: u64) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (done, url, token) = (done.clone(), url.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let http = client();
            while Instant::now() < until {
                let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(r.status(), 200, "{url}");
                let _ = r.bytes().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

#[tokio::main]
async fn main() {
    let rows = rows_arg();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path().to_str().unwrap(),
        &[
            "--pulls-per-min-token",
            "100000000",
            "--view-debounce-ms",
            "3600000",
        ],
    );
    let finance = server.token("sector", Some("finance"), "bench").await;
    let steward_a = server.token("steward", None, "a").await;
    let steward_b = server.token("steward", None, "b").await;
    let center = server.token("center", None, "c").await;
    let consumer = server.token("consumer", None, "d").await;
    let http = client();

    // The source: `rows` budget entries.
    let url = server.url("/v1/streams/finance.budget/events");
    let chunks: Vec<(usize, usize)> = (0..rows)
        .step_by(10_000)
        .map(|s| (s, 10_000.min(rows - s)))
        .collect();
    futures::stream::iter(chunks)
        .map(|(s, n)| {
            let (http, url, token) = (http.clone(), url.clone(), finance.clone());
            async move {
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .header("content-type", "application/x-ndjson")
                    .body(Bytes::from(budget_lines(s, n)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;

    let spec = json!({
        "id": "chi-tiet-thu-chi", "source": {"kind": "stream", "name": "finance.budget"},
        "columns": [{"name": "event_id", "tag": "basic", "mask": "pseudonym"}, {"name": "occurred_at"}, {"name": "agency_code"},
                    {"name": "flow"}, {"name": "category_code"}, {"name": "amount_vnd"}],
        "row_filter": "event_type <> 'entry_reversed'",
        "sharing": "open", "importance": "other",
        "metadata": {"title": {"vi": "Thu chi", "en": "Budget entries"}, "description": {"vi": "Thu chi", "en": "Budget entries"},
                     "theme": "ECON", "license": "cc-by-4.0", "accrual_periodicity": "monthly", "spatial": "Tây Ninh",
                     "contact_point": {"name": "STC", "email": "stc@tayninh.gov.vn"}}
    });
    let base = server.url("/v1/catalog/datasets");
    post(&http, base.clone(), &finance, spec).await;
    post(
        &http,
        format!("{base}/chi-tiet-thu-chi/propose"),
        &finance,
        json!({}),
    )
    .await;
    post(
        &http,
        format!("{base}/chi-tiet-thu-chi/approve"),
        &steward_b,
        json!({}),
    )
    .await;
    let t = Instant::now();
    let d = post(
        &http,
        format!("{base}/chi-tiet-thu-chi/publish"),
        &steward_a,
        json!({}),
    )
    .await;
    let publish = t.elapsed().as_secs_f64();
    let released = d["releases"][0]["rows"].as_u64().unwrap();
    println!(
        "| release materialization (filter, projection, HMAC pseudonyms on one column, write) | {released} rows | {publish:.2} s | {:.2} s per million rows |",
        publish * 1e6 / released as f64
    );

    for format in ["csv", "parquet"] {
        let t = Instant::now();
        let r = http
            .get(format!("{base}/chi-tiet-thu-chi/data?format={format}"))
            .bearer_auth(&consumer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let bytes = r.bytes().await.unwrap().len();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "| download, whole release, {format} | {released} rows, {:.0} MiB | {secs:.2} s | {:.0} rows/s |",
            bytes as f64 / 1048576.0,
            released as f64 / secs
        );
    }

    // Audit cost: small pulls (10 rows) of the release, audited; beside them the same-size
    // read of a view, which is the same read-and-encode path without an audit entry.
    let _ = http
        .post(server.url("/v1/views/budget_execution/refresh"))
        .bearer_auth(&center)
        .send()
        .await
        .unwrap();
    for clients in [1, 8] {
        let audited = hammer(
            &format!("{base}/chi-tiet-thu-chi/data?format=json&limit=10"),
            &consumer,
            clients,
            10,
        )
        .await;
        let plain = hammer(
            &server.url("/v1/views/budget_execution?limit=10"),
            &center,
            clients,
            10,
        )
        .await;
        println!(
            "| small pulls (10 rows, JSON), {clients} client(s) | audited catalog pull: {audited:.0} req/s | unaudited view read: {plain:.0} req/s |"
        );
    }
    let r = http
        .get(server.url("/v1/catalog/audit/verify"))
        .bearer_auth(&steward_a)
        .send()
        .await
        .unwrap();
    println!("audit chain after the run: {}", r.text().await.unwrap());
}
