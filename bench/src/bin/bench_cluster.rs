//! Many-processes benchmark: append throughput of one and of two `kho serve` on one store
//! (local disk, and S3 when `KHO_TEST_S3_URL` points at a moto server), and the cost of
//! the commit-time check a compaction makes (`kho_store::Table::first_gone`) by number of live
//! files.
//!
//! ```text
//! cargo build --release -p kho -p kho-bench --features kho-bench/bench
//! target/release/bench_cluster [--events 200000]
//! # with S3: ./scripts/test's moto, or any S3 server, and the AWS_* variables set
//! ```
//!
//! Results are printed as Markdown rows for docs/PERFORMANCE.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use kho_store::{AsOf, Store, StreamWriter, Submission, WriterConfig, stream_key};
use kho_tests::{Server, client};

const BATCH: usize = 1_000;
const CLIENTS: usize = 4;

fn body(batch: usize) -> Bytes {
    let mut s = String::with_capacity(BATCH * 240);
    for i in 0..BATCH {
        let id = uuid::Uuid::now_v7();
        s.push_str(&format!(
            r#"{{"event_id":"{id}","event_type":"revenue_collected","entity_id":"KB-{batch}-{i}","occurred_at":"2021-06-01T09:15:00+07:00","fiscal_year":2021,"agency_code":"STC","flow":"revenue","category_code":"1001","amount_vnd":{}}}"#,
            1000 + i
        ));
        s.push('\n');
    }
    Bytes::from(s)
}

/// Pushes `events` through `processes` servers on `store`, `CLIENTS` senders spread over them.
async fn throughput(store: &str, processes: usize, events: usize) -> f64 {
    let servers: Vec<Server> = (0..processes)
        .map(|_| Server::start(store, &["--compact-every", "20"]))
        .collect();
    let token = servers[0].token("sector", Some("finance"), "bench").await;
    // The other processes learn the token from the governance log.
    for s in &servers[1..] {
        loop {
            let r = client()
                .get(s.url("/v1/streams/finance.budget"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let n = events / BATCH;
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..n).map(body).collect());
    let urls: Vec<String> = servers
        .iter()
        .map(|s| s.url("/v1/streams/finance.budget/events"))
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (bodies, next, token) = (bodies.clone(), next.clone(), token.clone());
        let url = urls[c % urls.len()].clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(b) = bodies.get(i) else { break };
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-ndjson")
                    .body(b.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (n * BATCH) as f64 / started.elapsed().as_secs_f64()
}

/// The check a compaction makes before it lands, against a table of `files` live files.
async fn check_cost(files: usize) -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_pack(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let def = store.stream("finance.budget").unwrap();
    let mut w = StreamWriter::open(&store, "finance.budget", WriterConfig::default())
        .await
        .unwrap();
    for i in 0..files {
        let line = format!(
            r#"{{"event_id":"{}","event_type":"revenue_collected","entity_id":"KB","occurred_at":"2021-06-01T02:15:00Z","recorded_at":"2021-06-01T02:15:00Z","source":"bench","fiscal_year":2021,"agency_code":"STC","flow":"revenue","category_code":"1001","amount_vnd":{i}}}"#,
            uuid::Uuid::now_v7()
        );
        let mut decoder = arrow::json::ReaderBuilder::new(def.arrow_schema())
            .build_decoder()
            .unwrap();
        decoder.decode(line.as_bytes()).unwrap();
        let batch = decoder.flush().unwrap().unwrap();
        w.commit(&[Submission {
            batch,
            idempotency: None,
        }])
        .await
        .unwrap();
    }
    let table = store
        .table(&stream_key("finance.budget"), AsOf::Latest)
        .await
        .unwrap();
    // What a compaction of every file removes.
    let removed = table.files().unwrap();
    let rounds = 50;
    let started = Instant::now();
    for _ in 0..rounds {
        assert!(table.first_gone(&removed).unwrap().is_none());
    }
    (
        started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds),
        removed.len(),
    )
}

#[tokio::main]
async fn main() {
    let mut events = 200_000usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--events" => events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            other => panic!("unknown flag {other}"),
        }
    }
    println!("| store | processes | events | events/s |");
    println!("| --- | --- | --- | --- |");
    for processes in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let rate = throughput(dir.path().to_str().unwrap(), processes, events).await;
        println!("| local disk | {processes} | {events} | {rate:.0} |");
    }
    if let Ok(base) = std::env::var("KHO_TEST_S3_URL") {
        for processes in [1, 2] {
            let store = format!("{}/{}", base.trim_end_matches('/'), uuid::Uuid::new_v4());
            let rate = throughput(&store, processes, events / 4).await;
            println!("| S3 (moto) | {processes} | {} | {rate:.0} |", events / 4);
        }
    }
    println!();
    println!("| live files | check (µs) |");
    println!("| --- | --- |");
    for files in [100, 1_000, 5_000] {
        let (us, n) = check_cost(files).await;
        println!("| {n} | {us:.0} |");
    }
}
