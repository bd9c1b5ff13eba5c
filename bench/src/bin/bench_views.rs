//! Views benchmark: full rebuild per million events for each view, incremental refresh after
//! 1% more events, view read latency (JSON, Arrow), and DuckDB computing the
//! service_dossiers aggregate over the same Parquet files.
//!
//! ```text
//! cargo build --release -p kho -p kho-bench --features kho-bench/bench
//! target/release/bench_views [--events 1000000] [--python .venv-test/bin/python]
//! ```
//!
//! Events go through the HTTP API of a release `kho serve` (background refresh off); the
//! full rebuild folds every source from scratch in this process over the same store
//! (`ViewEngine::rebuild_rows`: read the Delta tables, fold, produce the rows); the
//! incremental refresh is `POST /v1/views/{view}/refresh` after 1% more events.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kho_tests::{Server, client};

struct Args {
    events: usize,
    python: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        events: 1_000_000,
        python: Some(PathBuf::from(".venv-test/bin/python")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--events" => a.events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            "--python" => a.python = it.next().map(PathBuf::from),
            "--no-duckdb" => a.python = None,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, m: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % m
    }
}

const AGENCIES: [&str; 12] = [
    "STP", "SXD", "STNMT", "SKHDT", "STC", "SYT", "UBND-TN", "UBND-HT", "UBND-TB", "UBND-GD",
    "UBND-CT", "UBND-DMC",
];

fn ts(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .unwrap()
        .to_rfc3339()
}

/// `n` events of `stream`, numbered from `start`, as NDJSON lines.
fn events(stream: &str, start: u64, n: u64, rng: &mut Lcg) -> Vec<String> {
    let base = 1_609_434_000; // 2021-01-01T00:00:00+07:00
    let mut out = Vec::with_capacity(n as usize);
    let mut i = start;
    while (out.len() as u64) < n {
        let at = base + rng.next(365 * 86_400);
        let agency = AGENCIES[rng.next(AGENCIES.len() as u64) as usize];
        let mut line = String::new();
        match stream {
            "service.dossiers" => {
                let channel = ["counter", "counter", "online", "postal"][rng.next(4) as usize];
                let level = if channel == "online" {
                    3 + rng.next(2)
                } else {
                    2 + rng.next(3)
                };
                let due = at + (3 + rng.next(15)) * 86_400;
                let _ = write!(
                    line,
                    r#"{{"event_type":"dossier_received","entity_id":"HS-{i}","occurred_at":"{}","procedure_code":"1.00{}","agency_code":"{agency}","level":{level},"channel":"{channel}","due_at":"{}"}}"#,
                    ts(at),
                    rng.next(9),
                    ts(due)
                );
                out.push(std::mem::take(&mut line));
                match rng.next(10) {
                    0..=6 => {
                        let _ = write!(
                            line,
                            r#"{{"event_type":"dossier_resolved","entity_id":"HS-{i}","occurred_at":"{}","outcome":"approved"}}"#,
                            ts(at + rng.next(20) * 86_400)
                        );
                    }
                    7 => {
                        let _ = write!(
                            line,
                            r#"{{"event_type":"dossier_withdrawn","entity_id":"HS-{i}","occurred_at":"{}"}}"#,
                            ts(at + 86_400)
                        );
                    }
                    _ => {}
                }
            }
            "service.feedback" => {
                let _ = write!(
                    line,
                    r#"{{"event_type":"feedback_received","entity_id":"PA-{i}","occurred_at":"{}","channel":"zalo","topic":"đô thị","agency_code":"{agency}","due_at":"{}"}}"#,
                    ts(at),
                    ts(at + 10 * 86_400)
                );
                out.push(std::mem::take(&mut line));
                if rng.next(4) != 0 {
                    let _ = write!(
                        line,
                        r#"{{"event_type":"feedback_answered","entity_id":"PA-{i}","occurred_at":"{}"}}"#,
                        ts(at + rng.next(14) * 86_400)
                    );
                }
            }
            "finance.budget" => {
                let (ty, flow) = match rng.next(10) {
                    0 => (
                        "estimate_assigned",
                        ["revenue", "expenditure"][rng.next(2) as usize],
                    ),
                    1..=4 => ("revenue_collected", "revenue"),
                    _ => ("expenditure_paid", "expenditure"),
                };
                let _ = write!(
                    line,
                    r#"{{"event_id":"{}","event_type":"{ty}","entity_id":"KB-{i}","occurred_at":"{}","fiscal_year":2021,"agency_code":"{agency}","flow":"{flow}","category_code":"{}","amount_vnd":{}}}"#,
                    uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, 0x8000_0000_0000_0000 | i),
                    ts(at),
                    1000 + rng.next(40),
                    1 + rng.next(2_000_000_000)
                );
            }
            "investment.projects" => {
                let p = rng.next(2_000);
                if i.is_multiple_of(500) {
                    let _ = write!(
                        line,
                        r#"{{"event_type":"project_registered","entity_id":"DA-{p}","occurred_at":"{}","project_name":"Dự án {p}","investor_code":"BQL-{}","district_code":"{agency}","group":"{}","total_investment_vnd":{}}}"#,
                        ts(at),
                        p % 7,
                        ["A", "B", "C"][(p % 3) as usize],
                        1_000_000_000 + p
                    );
                } else if i.is_multiple_of(97) {
                    let _ = write!(
                        line,
                        r#"{{"event_type":"status_changed","entity_id":"DA-{p}","occurred_at":"{}","status":"{}"}}"#,
                        ts(at),
                        ["preparing", "implementing", "completed", "suspended"]
                            [rng.next(4) as usize]
                    );
                } else {
                    let ty = ["capital_allocated", "disbursement_made"][rng.next(2) as usize];
                    let _ = write!(
                        line,
                        r#"{{"event_type":"{ty}","entity_id":"DA-{p}","occurred_at":"{}","year":2021,"amount_vnd":{},"capital_source":"local"}}"#,
                        ts(at),
                        1 + rng.next(900_000_000)
                    );
                }
            }
            "service.procedures" => {
                let p = rng.next(5_000);
                if rng.next(5) == 0 {
                    let _ = write!(
                        line,
                        r#"{{"event_type":"procedure_withdrawn","entity_id":"TT-{p}","occurred_at":"{}"}}"#,
                        ts(at)
                    );
                } else {
                    let _ = write!(
                        line,
                        r#"{{"event_type":"procedure_published","entity_id":"TT-{p}","occurred_at":"{}","procedure_name":"Thủ tục {p}","agency_code":"{agency}","level":{},"on_national_portal":{}}}"#,
                        ts(at),
                        2 + rng.next(3),
                        rng.next(2) == 0
                    );
                }
            }
            _ => unreachable!(),
        }
        if !line.is_empty() {
            out.push(line);
        }
        i += 1;
    }
    out.truncate(n as usize);
    out
}

const STREAMS: [(&str, &str, &str); 5] = [
    ("finance.budget", "finance", "budget_execution"),
    ("investment.projects", "planning", "investment_disbursement"),
    ("service.dossiers", "services", "service_dossiers"),
    ("service.feedback", "services", "service_feedback"),
    ("service.procedures", "services", "service_procedures"),
];

async fn push(server: &Server, token: &str, stream: &str, lines: Vec<String>) {
    let bodies: Vec<Bytes> = lines
        .chunks(10_000)
        .map(|c| Bytes::from(c.join("\n")))
        .collect();
    let url = server.url(&format!("/v1/streams/{stream}/events"));
    let http = client();
    let mut tasks = futures::stream::iter(bodies.into_iter().map(|b| {
        let (http, url, token) = (http.clone(), url.clone(), token.to_owned());
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/x-ndjson")
                .body(b)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        }
    }))
    .buffer_unordered(4);
    use futures::StreamExt;
    while tasks.next().await.is_some() {}
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().to_str().unwrap().to_owned();
    let server = Server::start(
        &store_path,
        &["--view-debounce-ms", "3600000", "--view-poll-secs", "3600"],
    );
    let center = server.token("center", None, "bench").await;
    let http = client();
    let store = kho_store::Store::open_with_pack(&store_path).await.unwrap();
    let engine = kho_query::ViewEngine::new(store);
    println!("events per stream: {}", a.events);
    println!("| view | rows | full rebuild | per million events | +1% events: refresh | ratio |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut rng = Lcg(42);
    let mut dossier_rebuild = Duration::ZERO;
    for (stream, sector, view) in STREAMS {
        let token = server
            .token("sector", Some(sector), &format!("bench-{sector}-{stream}"))
            .await;
        push(
            &server,
            &token,
            stream,
            events(stream, 0, a.events as u64, &mut rng),
        )
        .await;
        // The first refresh of the server folds everything; not measured.
        let r = http
            .post(server.url(&format!("/v1/views/{view}/refresh")))
            .bearer_auth(&center)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let t = Instant::now();
        let rows = engine.rebuild_rows(view).await.unwrap();
        let full = t.elapsed();
        if view == "service_dossiers" {
            dossier_rebuild = full;
        }
        let extra = a.events as u64 / 100;
        push(
            &server,
            &token,
            stream,
            events(stream, a.events as u64 + 1_000_000_000, extra, &mut rng),
        )
        .await;
        let t = Instant::now();
        let r = http
            .post(server.url(&format!("/v1/views/{view}/refresh")))
            .bearer_auth(&center)
            .send()
            .await
            .unwrap();
        let incremental = t.elapsed();
        assert_eq!(r.status(), 200);
        println!(
            "| {view} | {} | {:.2} s | {:.2} s | {:.0} ms | {:.1}% |",
            rows.num_rows(),
            full.as_secs_f64(),
            full.as_secs_f64() * 1_000_000.0 / a.events as f64,
            incremental.as_secs_f64() * 1000.0,
            incremental.as_secs_f64() / full.as_secs_f64() * 100.0
        );
    }

    println!();
    println!("| read | format | p50 | p99 |");
    println!("| --- | --- | --- | --- |");
    for view in ["service_dossiers", "budget_execution"] {
        for (name, accept) in [
            ("JSON", "application/json"),
            ("Arrow", "application/vnd.apache.arrow.stream"),
        ] {
            let mut lat = Vec::new();
            for _ in 0..200 {
                let t = Instant::now();
                let r = http
                    .get(server.url(&format!("/v1/views/{view}")))
                    .bearer_auth(&center)
                    .header("accept", accept)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            println!(
                "| {view} (whole view) | {name} | {:.1} ms | {:.1} ms |",
                quantile(&mut lat, 0.5),
                quantile(&mut lat, 0.99)
            );
        }
    }

    if let Some(py) = a.python {
        let script = r#"
import sys, time, duckdb
from deltalake import DeltaTable
files = DeltaTable(sys.argv[1]).file_uris()
con = duckdb.connect()
con.execute("SET TimeZone = 'Asia/Ho_Chi_Minh'")
q = f"""
WITH ev AS (SELECT * FROM read_parquet({files!r})),
rec AS (SELECT entity_id, arg_min(channel, occurred_at) ch, arg_min(level, occurred_at) lv, arg_min(due_at, occurred_at) due,
               arg_min(agency_code, occurred_at) agency, strftime(min(occurred_at), '%Y-%m') AS month
        FROM ev WHERE event_type = 'dossier_received' GROUP BY entity_id),
res AS (SELECT entity_id, min(occurred_at) rat FROM ev WHERE event_type = 'dossier_resolved' GROUP BY entity_id),
wd AS (SELECT DISTINCT entity_id FROM ev WHERE event_type = 'dossier_withdrawn'),
rp AS (SELECT DISTINCT entity_id FROM ev WHERE event_type = 'dossier_returned' AND return_channel = 'postal'),
wm AS (SELECT max(occurred_at) w FROM ev)
SELECT month, agency, count(*) received, count(*) FILTER (WHERE ch = 'online' AND lv IN (3, 4)) online,
       count(res.rat) resolved, count(*) FILTER (WHERE res.rat <= due) on_time,
       count(*) FILTER (WHERE res.rat IS NULL AND wd.entity_id IS NULL) pending,
       count(*) FILTER (WHERE res.rat IS NULL AND wd.entity_id IS NULL AND due < (SELECT w FROM wm)) overdue,
       count(*) FILTER (WHERE ch = 'postal' OR rp.entity_id IS NOT NULL) postal
FROM rec LEFT JOIN res USING (entity_id) LEFT JOIN wd USING (entity_id) LEFT JOIN rp USING (entity_id)
GROUP BY month, agency ORDER BY month, agency
"""
t = time.perf_counter(); rows = con.execute(q).fetchall(); took = time.perf_counter() - t
print(took, len(rows))
"#;
        let out = Command::new(py)
            .args(["-c", script])
            .arg(format!("{store_path}/streams/service.dossiers"))
            .output()
            .unwrap();
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut parts = text.split_whitespace();
            let secs: f64 = parts.next().unwrap().parse().unwrap();
            let rows = parts.next().unwrap();
            println!();
            println!(
                "DuckDB service_dossiers aggregate over the same files: {secs:.2} s ({rows} rows); kho full rebuild {:.2} s: ratio kho/DuckDB {:.1}",
                dossier_rebuild.as_secs_f64(),
                dossier_rebuild.as_secs_f64() / secs
            );
        } else {
            eprintln!("duckdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
