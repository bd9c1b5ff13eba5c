//! Ingest benchmark: sustained HTTP append throughput, latency at a fixed rate, peak RSS,
//! and DuckDB's NDJSON-to-Parquet conversion of the same input as the raw limit.
//!
//! ```text
//! cargo build --release -p kho -p kho-bench --features kho-bench/bench
//! target/release/bench_ingest [--events 500000] [--python .venv-test/bin/python]
//! ```
//!
//! Each scenario runs against a fresh `kho serve` (release build) on a fresh local store.
//! Results are printed as Markdown rows for docs/PERFORMANCE.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kho_tests::{Server, client};

struct Args {
    events: usize,
    python: Option<PathBuf>,
    rate_secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        events: 500_000,
        python: Some(PathBuf::from(".venv-test/bin/python")),
        rate_secs: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--events" => a.events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            "--python" => a.python = it.next().map(PathBuf::from),
            "--no-duckdb" => a.python = None,
            "--rate-secs" => {
                a.rate_secs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rate-secs N")
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// A deterministic finance.budget event (a small LCG; no dependency needed).
fn event(n: u64, out: &mut String) {
    let mut x = n
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut next = |m: u64| {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (x >> 33) % m
    };
    let agencies = [
        "STC", "SKHDT", "SYT", "SGDDT", "UBND-TN", "UBND-HT", "UBND-TB", "UBND-GD",
    ];
    let agency = agencies[next(agencies.len() as u64) as usize];
    let (ty, flow) = if next(2) == 0 {
        ("revenue_collected", "revenue")
    } else {
        ("expenditure_paid", "expenditure")
    };
    let month = 1 + next(12);
    let day = 1 + next(28);
    let amount = 100_000 + next(5_000_000_000);
    let category = 1000 + next(60);
    use std::fmt::Write;
    let _ = writeln!(
        out,
        r#"{{"event_id":"{id}","event_type":"{ty}","entity_id":"KB-{n}","occurred_at":"2021-{month:02}-{day:02}T09:15:00+07:00","fiscal_year":2021,"agency_code":"{agency}","flow":"{flow}","category_code":"{category}","amount_vnd":{amount}}}"#,
        id = uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, 0x8000_0000_0000_0000 | n)
    );
}

fn batches(total: usize, size: usize, offset: u64) -> Vec<Bytes> {
    (0..total.div_ceil(size))
        .map(|b| {
            let mut s = String::with_capacity(size * 240);
            let start = (b * size) as u64 + offset;
            for n in start..start + size.min(total - b * size) as u64 {
                event(n, &mut s);
            }
            Bytes::from(s)
        })
        .collect()
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn start() -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path().to_str().unwrap(), &["--compact-every", "20"]);
    let token = server.token("sector", Some("finance"), "bench").await;
    (dir, server, token)
}

/// One client for the whole run: connections are pooled and reused, as a sector system's would be.
fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(client)
}

async fn post(url: &str, token: &str, body: Bytes) -> Duration {
    let t = Instant::now();
    let r = http()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    t.elapsed()
}

/// Sends every batch with `clients` concurrent senders; returns events/s and peak RSS.
async fn throughput(events: usize, batch: usize, clients: usize) -> (f64, f64) {
    let (_dir, server, token) = start().await;
    let bodies = Arc::new(batches(events, batch, 0));
    let url = server.url("/v1/streams/finance.budget/events");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (bodies, next, url, token) = (bodies.clone(), next.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                post(&url, &token, body.clone()).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib(server.pid());
    (events as f64 / secs, rss)
}

/// Open-loop requests of `batch` events at `per_sec` requests a second; p50 and p99 in ms.
async fn latency(batch: usize, per_sec: u32, secs: u64) -> (f64, f64, f64) {
    let (_dir, server, token) = start().await;
    let total = per_sec as usize * secs as usize;
    let bodies = batches(total * batch, batch, 10_000_000);
    let url = server.url("/v1/streams/finance.budget/events");
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_sec);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for body in bodies {
        tick.tick().await;
        let (url, token) = (url.clone(), token.clone());
        tasks.push(tokio::spawn(async move { post(&url, &token, body).await }));
    }
    let mut lat: Vec<f64> = Vec::new();
    for t in tasks {
        lat.push(t.await.unwrap().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (q(0.50), q(0.99), peak_rss_mib(server.pid()))
}

/// DuckDB converting the same NDJSON to Parquet, typed as kho types it: events/s.
fn duckdb(python: &Path, events: usize) -> Option<f64> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    let mut all = Vec::new();
    for b in batches(events, 10_000, 0) {
        all.extend_from_slice(&b);
    }
    std::fs::write(&input, all).unwrap();
    let script = r#"
import sys, time, duckdb
src, dst = sys.argv[1], sys.argv[2]
con = duckdb.connect()
t = time.perf_counter()
con.sql(f"""COPY (SELECT * FROM read_json('{src}', format='newline_delimited', columns={{
  'event_id': 'VARCHAR', 'event_type': 'VARCHAR', 'entity_id': 'VARCHAR',
  'occurred_at': 'TIMESTAMPTZ', 'fiscal_year': 'INTEGER', 'agency_code': 'VARCHAR',
  'flow': 'VARCHAR', 'category_code': 'VARCHAR', 'amount_vnd': 'BIGINT'}}))
  TO '{dst}' (FORMAT parquet, COMPRESSION snappy)""")
print(time.perf_counter() - t)
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&input)
        .arg(dir.path().join("out.parquet"))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("duckdb failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(events as f64 / secs)
}

#[tokio::main]
async fn main() {
    let a = args();
    println!("events per scenario: {}", a.events);
    let raw = a.python.as_deref().and_then(|p| duckdb(p, a.events));
    if let Some(r) = raw {
        println!("| DuckDB NDJSON → Parquet (raw limit) | — | — | {r:.0} | — |");
    }
    for (batch, clients) in [(1_000, 1), (1_000, 8), (10_000, 1), (10_000, 8)] {
        let (rate, rss) = throughput(a.events, batch, clients).await;
        let share = raw.map_or(String::new(), |r| {
            format!(" ({:.0}% of raw)", rate / r * 100.0)
        });
        println!("| kho HTTP append | {batch} | {clients} | {rate:.0}{share} | {rss:.0} MiB |");
    }
    let (p50, p99, rss) = latency(1_000, 20, a.rate_secs).await;
    println!(
        "| latency at 20 req/s × 1,000 events (20,000 events/s) for {}s | p50 {p50:.1} ms | p99 {p99:.1} ms | peak RSS {rss:.0} MiB |",
        a.rate_secs
    );
}
