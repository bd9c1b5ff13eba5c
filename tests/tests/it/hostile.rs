//! Hostile input through the real binary: deep and long expressions, CPU- and memory-heavy
//! SQL, label injection into /metrics, implausible events, leaks through the catalog,
//! slow and stalled connections, spreadsheet formulas. Each attack comes in more than one
//! shape; after each, the process is alive and /healthz answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kho_tests::{Server, client, dossier_lines, event_id, stream_dataset};
use serde_json::{Value, json};

fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

async fn sql(server: &Server, token: &str, query: &str) -> (u16, Value) {
    let r = client()
        .post(server.url("/v1/sql"))
        .bearer_auth(token)
        .json(&json!({"sql": query}))
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn healthz_ms(server: &Server) -> u128 {
    let t = Instant::now();
    let r = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the process answers");
    t.elapsed().as_millis()
}

fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deep_and_long_expressions_get_400_and_the_process_lives() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path().to_str().unwrap(), &[]);
    let center = server.token("center", None, "ioc").await;
    let services = server.token("sector", Some("services"), "portal").await;
    let (st, body, _) = server
        .append(
            Some(&services),
            "service.dossiers",
            "application/x-ndjson",
            dossier_lines(20, "STP"),
            None,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    for (query, expect) in [
        (format!("select {}", chain("1", "+", 2_000)), "levels deep"),
        (format!("select {}", chain("1", " * ", 600)), "levels deep"),
        (
            format!("select 1 where {}", chain("1 > 0", " and ", 3_000)),
            "levels deep",
        ),
        (
            format!("select {}", chain("'a'", " || ", 1_000)),
            "`||` operators",
        ),
        (format!("select {}", chain("1", ",", 21_000)), "tokens"),
        (
            format!("select {}1{}", "(".repeat(500), ")".repeat(500)),
            "",
        ),
        (format!("select '{}'", "x".repeat(70_000)), "bytes"),
        (chain("select 1", " union all ", 400), "queries"),
    ] {
        let (st, body) = sql(&server, &center, &query).await;
        assert_eq!(st, 400, "{} …: {body}", &query[..60.min(query.len())]);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{message}");
        healthz_ms(&server).await;
    }
    // Within the limits the same shapes run.
    let (st, body) = sql(
        &server,
        &center,
        &format!("select {} as n", chain("1", "+", 200)),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body[0]["n"], 200, "{body}");

    // Row filters: a sector's draft.
    let spec = |filter: String| {
        let mut s = stream_dataset("loc", "service.dossiers", &["agency_code"], "open");
        s["row_filter"] = json!(filter);
        s
    };
    for (filter, expect) in [
        (
            format!("level > {}", chain("1", "+", 2_000)),
            "the row filter",
        ),
        (chain("level > 0", " and ", 3_000), "bytes"),
        (format!("level > {}", chain("1", "+", 100)), "levels deep"),
        (
            "level > (select max(level) from service.dossiers)".to_owned(),
            "subquery",
        ),
    ] {
        let r = client()
            .post(server.url("/v1/catalog/datasets"))
            .bearer_auth(&services)
            .json(&spec(filter))
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(st, 400, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(expect),
            "{body}"
        );
        healthz_ms(&server).await;
    }
    // EXPLAIN answers with the plan.
    let (st, body) = sql(
        &server,
        &center,
        "explain select count(*) from service.dossiers",
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(body.to_string().contains("plan"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heavy_queries_leave_the_server_responsive_and_stop_at_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path().to_str().unwrap(),
        &[
            "--sql-timeout-ms",
            "4000",
            "--sql-concurrency",
            "3",
            "--sql-memory-mb",
            "256",
        ],
    );
    let center = server.token("center", None, "ioc").await;
    let services = server.token("sector", Some("services"), "portal").await;
    for agency in ["STP", "SXD", "SYT"] {
        let (st, body, _) = server
            .append(
                Some(&services),
                "service.dossiers",
                "application/x-ndjson",
                dossier_lines(4_000, agency),
                None,
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }
    let heavy = [
        "select count(*) from service.dossiers a join service.dossiers b on a.entity_id < b.entity_id",
        "select count(*) from service.dossiers a, service.dossiers b, service.dossiers c where a.level + b.level > c.level",
        "select sum(length(a.entity_id || b.entity_id)) from service.dossiers a cross join service.dossiers b",
    ];
    // Three at once, while /healthz and an append are timed.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for q in heavy {
        let (url, token) = (server.url("/v1/sql"), center.clone());
        tasks.push(tokio::spawn(async move {
            let r = client()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"sql": q}))
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (
                st,
                r.json::<Value>().await.unwrap_or(Value::Null),
                Instant::now(),
            )
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut worst = 0;
    for _ in 0..10 {
        worst = worst.max(healthz_ms(&server).await);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let t = Instant::now();
    let (st, body, _) = server
        .append(
            Some(&services),
            "service.dossiers",
            "application/x-ndjson",
            dossier_lines(10, "SNV"),
            None,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let append_ms = t.elapsed().as_millis();
    eprintln!("during three heavy queries: /healthz at worst {worst} ms, an append {append_ms} ms");
    assert!(
        worst < 1_000,
        "/healthz took {worst} ms during the heavy queries"
    );
    assert!(
        append_ms < 3_000,
        "an append took {append_ms} ms during the heavy queries"
    );
    for t in tasks {
        let (st, body, done) = t.await.unwrap();
        assert_eq!(st, 422, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("time limit"),
            "{body}"
        );
        let took = done.duration_since(started);
        assert!(
            took < Duration::from_secs(12),
            "a query stopped only after {took:?}"
        );
    }
    // SIGTERM while three heavy queries run: the process is gone within seconds.
    let mut tasks = Vec::new();
    for q in heavy {
        let (url, token) = (server.url("/v1/sql"), center.clone());
        tasks.push(tokio::spawn(async move {
            let _ = client()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"sql": q}))
                .send()
                .await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pid = server.pid();
    let t = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    while std::path::Path::new(&format!("/proc/{pid}/status")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .contains("State:\tZ")
    {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "kho ignored SIGTERM for {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "stopped {:?} after SIGTERM with three heavy queries running",
        t.elapsed()
    );
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn value_making_functions_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path().to_str().unwrap(), &["--sql-memory-mb", "256"]);
    let center = server.token("center", None, "ioc").await;
    let services = server.token("sector", Some("services"), "portal").await;
    let (st, body, _) = server
        .append(
            Some(&services),
            "service.dossiers",
            "application/x-ndjson",
            dossier_lines(2_000, "STP"),
            None,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let before = peak_rss_mib(server.pid());
    for q in [
        "select length(repeat('x', 1000000000))",
        "select length(repeat(entity_id, 1000000)) from service.dossiers",
        "select repeat('x', 1000000) from service.dossiers",
        "select length(lpad('x', 2000000000))",
        "select length(rpad(entity_id, 100000000)) from service.dossiers",
        "select cardinality(array_repeat(1, 500000000))",
        "select cardinality(range(1000000000))",
        "select length(repeat(repeat('ab', 100000), 10000))",
        "select length(concat(repeat('x', 60000000), repeat('y', 60000000), repeat('z', 60000000)))",
    ] {
        let (st, body) = sql(&server, &center, q).await;
        assert_eq!(st, 422, "{q}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("MiB"),
            "{q}: {body}"
        );
        healthz_ms(&server).await;
    }
    let after = peak_rss_mib(server.pid());
    eprintln!("peak RSS {before} MiB before the attacks, {after} MiB after");
    assert!(
        after < before + 768,
        "memory grew from {before} to {after} MiB"
    );
    // `||` makes values outside the functions' accounting: its count is bounded instead.
    for q in [
        format!(
            "select length({}) from service.dossiers",
            chain("entity_id", " || ", 4_000)
        ),
        format!("select {} as s", chain("'xxxxxxxx'", "||", 40)),
    ] {
        let (st, body) = sql(&server, &center, &q).await;
        assert_eq!(st, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`||` operators; the limit is 32"),
            "{body}"
        );
    }
    let (st, body) = sql(
        &server,
        &center,
        &format!("select length({}) as n", chain("'ab'", " || ", 32)),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body[0]["n"], 64, "{body}");
    // Within the budget the functions work.
    let (st, body) = sql(&server, &center, "select length(repeat('x', 1000)) as n").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body[0]["n"], 1000, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_labels_cannot_be_written_by_callers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path().to_str().unwrap(), &[]);
    let services = server.token("sector", Some("services"), "portal").await;
    let http = client();
    for name in [
        "a%22%7D%0Akho_fake_metric%7Bpwned%3D%22yes%22%7D%201%0A",
        "x\"} 1\nkho_fake_metric{pwned=\"yes\"",
        "service.dossiers%0Akho_fake_metric%201",
    ] {
        let _ = http
            .post(format!("{}/v1/streams/{name}/events", server.base))
            .bearer_auth(&services)
            .header("content-type", "application/x-ndjson")
            .body("{}")
            .send()
            .await;
    }
    // Many distinct names and odd methods: no new series.
    // One line per counter series, one `_count` line per histogram series.
    let series = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#') && (l.contains("_count{") || l.contains("_total{")))
            .count()
    };
    let first = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for i in 0..200 {
        let _ = http
            .post(server.url(&format!("/v1/streams/no-such-{i}/events")))
            .bearer_auth(&services)
            .header("content-type", "application/x-ndjson")
            .body("{}")
            .send()
            .await;
        let _ = http
            .request(
                reqwest::Method::from_bytes(format!("M{i}").as_bytes()).unwrap(),
                server.url("/healthz"),
            )
            .send()
            .await;
    }
    let text = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("kho_fake_metric"), "{text}");
    assert!(
        !text.contains("no-such-"),
        "a caller's stream name became a label"
    );
    assert!(!text.contains("M17"), "a caller's method became a label");
    assert!(text.contains("stream=\"other\""), "{text}");
    assert!(
        series(&text) <= series(&first) + 6,
        "series grew from {} to {}",
        series(&first),
        series(&text)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implausible_events_are_refused_and_sums_never_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path().to_str().unwrap(), &[]);
    let services = server.token("sector", Some("services"), "portal").await;
    let finance = server.token("sector", Some("finance"), "treasury").await;
    let center = server.token("center", None, "ioc").await;
    let base = dossier_lines(1, "STP");
    for (from, to, field) in [
        (
            "2021-03-10T08:00:00+07:00",
            "2201-03-10T08:00:00+07:00",
            "occurred_at",
        ),
        (
            "2021-03-10T08:00:00+07:00",
            "1900-01-01T00:00:00Z",
            "occurred_at",
        ),
        (
            "2021-03-10T08:00:00+07:00",
            "9999-12-31T23:59:59-23:59",
            "occurred_at",
        ),
        (
            "2021-03-10T08:00:00+07:00",
            "2021-06-30T23:59:60Z",
            "occurred_at",
        ),
        (
            "2021-03-20T17:00:00+07:00",
            "2021-12-31T23:59:60+07:00",
            "due_at",
        ),
    ] {
        let (st, body, _) = server
            .append(
                Some(&services),
                "service.dossiers",
                "application/x-ndjson",
                base.replacen(from, to, 1),
                None,
            )
            .await;
        assert_eq!(st, 400, "{to}: {body}");
        assert_eq!(
            body["error"]["details"]["errors"][0]["field"], field,
            "{body}"
        );
    }
    let line = |amount: &str, i: usize| {
        format!(
            "{}\n",
            json!({"event_id": event_id(i as u64), "event_type": "estimate_assigned", "entity_id": format!("DT-{i}"), "occurred_at": "2021-01-05T08:00:00+07:00",
                   "fiscal_year": 2021, "agency_code": "STC", "flow": "expenditure", "category_code": "6001"})
            .to_string()
            .replacen('}', &format!(",\"amount_vnd\":{amount}}}"), 1)
        )
    };
    let (st, body, _) = server
        .append(
            Some(&finance),
            "finance.budget",
            "application/x-ndjson",
            line("9223372036854775807", 0),
            None,
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["details"]["errors"][0]["field"], "amount_vnd");
    // Each event plausible, their sum past 64 bits: the view says so instead of wrapping.
    let many: String = (0..9_300).map(|i| line("1000000000000000", i)).collect();
    let (st, body, _) = server
        .append(
            Some(&finance),
            "finance.budget",
            "application/x-ndjson",
            many,
            None,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let r = client()
        .post(server.url("/v1/views/budget_execution/refresh"))
        .bearer_auth(&center)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(st, 422, "{body}");
    assert_eq!(body["error"]["code"], "sum_overflow", "{body}");
    // So does SQL over the log, in every shape of sum.
    for query in [
        r#"select sum(amount_vnd) from finance.budget"#,
        r#"select agency_code, sum(amount_vnd) from finance.budget group by agency_code"#,
        r#"select sum(distinct amount_vnd + cast(substr(entity_id, 4) as bigint)) from finance.budget"#,
        r#"select sum(amount_vnd) over (order by entity_id) from finance.budget"#,
    ] {
        let (st, body) = sql(&server, &center, query).await;
        assert_eq!(st, 422, "{query}: {body}");
        assert_eq!(body["error"]["code"], "sum_overflow", "{query}: {body}");
    }
    let (st, body) = sql(
        &server,
        &center,
        r#"select sum(cast(amount_vnd as double)) as s from finance.budget"#,
    )
    .await;
    assert_eq!(st, 200, "the way to a wider sum works: {body}");
    // The way out: retract the events that should not be there (here 100 of them).
    let retractions: String = (0..100u64)
        .map(|i| retraction(100_000 + i, &event_id(i), &format!("DT-{i}")))
        .collect();
    let (st, body, _) = server
        .append(
            Some(&finance),
            "finance.budget",
            "application/x-ndjson",
            retractions,
            None,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = refresh(&server, &center, "budget_execution").await;
    assert_eq!(st, 200, "{body}");
    let rows = view_rows(&server, &center, "budget_execution").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0]["estimate_vnd"].as_i64(),
        Some(9_200 * 1_000_000_000_000_000),
        "{rows:?}"
    );
    healthz_ms(&server).await;
}

fn retraction(n: u64, target: &str, entity: &str) -> String {
    format!(
        "{}\n",
        json!({"event_id": event_id(n), "event_type": "event_retracted", "entity_id": entity,
               "occurred_at": chrono::Utc::now().to_rfc3339(), "retracts_event_id": target,
               "retraction_reason": "entered by mistake"})
    )
}

async fn refresh(server: &Server, token: &str, view: &str) -> (u16, Value) {
    let r = client()
        .post(server.url(&format!("/v1/views/{view}/refresh")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn view_rows(server: &Server, token: &str, view: &str) -> Vec<Value> {
    let r = client()
        .get(server.url(&format!("/v1/views/{view}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// A wrong event that passed every check (a typo in an agency code, a resolution time a few
/// hours ahead) is taken out with a retraction; the views come back to what they were, the
/// log keeps both, and a retraction is checked like any event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_events_are_retracted_and_the_views_recover() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path().to_str().unwrap(), &[]);
    let services = server.token("sector", Some("services"), "portal").await;
    let finance = server.token("sector", Some("finance"), "treasury").await;
    let center = server.token("center", None, "ioc").await;
    let post = |token: String, body: String| {
        let server = &server;
        async move {
            server
                .append(
                    Some(&token),
                    "service.dossiers",
                    "application/x-ndjson",
                    body,
                    None,
                )
                .await
        }
    };
    let (st, body, _) = post(services.clone(), dossier_lines(3, "STP")).await;
    assert_eq!(st, 201, "{body}");
    let (st, before) = refresh(&server, &center, "service_dossiers").await;
    assert_eq!(st, 200, "{before}");
    let rows_before = view_rows(&server, &center, "service_dossiers").await;

    let ahead = (chrono::Utc::now() + chrono::Duration::hours(20)).to_rfc3339();
    let wrong = format!(
        "{}\n{}\n",
        json!({"event_id": event_id(1), "event_type": "dossier_received", "entity_id": "HS-X", "occurred_at": "2021-03-11T08:00:00+07:00",
               "procedure_code": "TTHC-1", "agency_code": "XA-SAI", "level": 2, "channel": "counter", "due_at": "2021-03-12T17:00:00+07:00"}),
        json!({"event_id": event_id(2), "event_type": "dossier_resolved", "entity_id": "HS-STP-0", "occurred_at": ahead, "outcome": "approved"}),
    );
    let (st, body, _) = post(services.clone(), wrong).await;
    assert_eq!(st, 201, "{body}");
    let (_, wrong) = refresh(&server, &center, "service_dossiers").await;
    assert_ne!(wrong["watermark"], before["watermark"], "{wrong}");
    assert_eq!(
        view_rows(&server, &center, "service_dossiers").await.len(),
        rows_before.len() + 1
    );

    // A retraction is checked like any event.
    let no_reason = retraction(10, &event_id(1), "HS-X")
        .replace(r#","retraction_reason":"entered by mistake""#, "");
    let unknown = retraction(11, &event_id(99), "HS-X");
    for (body, field, says) in [
        (
            no_reason,
            "retraction_reason",
            "required for event type event_retracted".to_owned(),
        ),
        (
            unknown,
            "retracts_event_id",
            format!(
                "names event {}, which is not in stream service.dossiers",
                event_id(99)
            ),
        ),
    ] {
        let (st, answer, _) = post(services.clone(), body).await;
        assert_eq!(st, 400, "{answer}");
        let e = &answer["error"]["details"]["errors"][0];
        assert_eq!(e["field"], field, "{answer}");
        assert_eq!(e["message"], says.as_str(), "{answer}");
    }
    let (st, answer, _) = post(finance, retraction(12, &event_id(1), "HS-X")).await;
    assert_eq!(st, 403, "another sector cannot retract: {answer}");

    let both = retraction(13, &event_id(1), "HS-X") + &retraction(14, &event_id(2), "HS-STP-0");
    let (st, body, _) = post(services.clone(), both).await;
    assert_eq!(st, 201, "{body}");
    let (st, after) = refresh(&server, &center, "service_dossiers").await;
    assert_eq!(st, 200, "{after}");
    assert_eq!(after["watermark"], before["watermark"], "{after}");
    assert_eq!(
        view_rows(&server, &center, "service_dossiers").await,
        rows_before
    );
    let (st, answer, _) = post(services.clone(), retraction(15, &event_id(2), "HS-STP-0")).await;
    assert_eq!(st, 400, "{answer}");
    assert_eq!(
        answer["error"]["details"]["errors"][0]["message"],
        format!("event {} is already retracted", event_id(2)).as_str()
    );
    // The log keeps everything: 3 + 2 wrong + 2 retractions.
    let stream = server.stream(&services, "service.dossiers").await;
    assert_eq!(stream["stats"]["row_count"], 7, "{stream}");
    healthz_ms(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_leaks_nothing_and_csv_cells_do_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path().to_str().unwrap(), &[]);
    let services = server.token("sector", Some("services"), "portal").await;
    let finance = server.token("sector", Some("finance"), "treasury").await;
    let steward_a = server.token("steward", None, "steward-a").await;
    let steward_b = server.token("steward", None, "steward-b").await;
    let center = server.token("center", None, "ioc").await;
    let http = client();
    let rows: String = [
        "=HYPERLINK(\"http://evil\")",
        "+1+1",
        "-2+3",
        "@SUM(A1)",
        "STP",
    ]
    .iter()
    .enumerate()
    .map(|(i, agency)| dossier_lines(1, agency).replace("HS-", &format!("HS{i}-")))
    .collect();
    let (st, body, _) = server
        .append(
            Some(&services),
            "service.dossiers",
            "application/x-ndjson",
            rows,
            None,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let spec = |id: &str, sharing: &str| {
        stream_dataset(id, "service.dossiers", &["agency_code", "channel"], sharing)
    };
    let post = |path: String, token: String, body: Value| {
        let http = http.clone();
        let url = server.url(&path);
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // A private draft's id, taken by someone who cannot see it: the same answer as any taken id.
    let (st, body) = post(
        "/v1/catalog/datasets".into(),
        services.clone(),
        spec("rieng", "private"),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let mut other = spec("rieng", "open");
    other["source"] = json!({"kind": "stream", "name": "finance.budget"});
    other["columns"] = json!([{"name": "agency_code"}]);
    let (st, body) = post("/v1/catalog/datasets".into(), finance.clone(), other).await;
    assert_eq!(st, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("services") && !message.contains("draft"),
        "{message}"
    );

    // Published: the public sees roles, not token ids or names.
    let (st, body) = post(
        "/v1/catalog/datasets".into(),
        services.clone(),
        spec("ho-so-mo", "open"),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    for (token, step) in [
        (&services, "propose"),
        (&steward_b, "approve"),
        (&steward_a, "publish"),
    ] {
        let (st, body) = post(
            format!("/v1/catalog/datasets/ho-so-mo/{step}"),
            token.clone(),
            json!({"why": "t"}),
        )
        .await;
        assert_eq!(st, 200, "{step}: {body}");
    }
    let public: Value = http
        .get(server.url("/v1/catalog/datasets/ho-so-mo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = public.to_string();
    for secret in [
        "steward-a",
        "steward-b",
        "portal",
        services.split('_').nth(1).unwrap(),
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(public["history"][0]["actor"]["role"], "sector", "{public}");
    let stewards: Value = http
        .get(server.url("/v1/catalog/datasets/ho-so-mo"))
        .bearer_auth(&steward_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stewards["history"][0]["by_name"], "portal");

    // CSV: formula cells are defused, in the catalog and in the views.
    let csv = http
        .get(server.url("/v1/catalog/datasets/ho-so-mo/data?format=csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for cell in ["'=HYPERLINK", "'+1+1", "'-2+3", "'@SUM(A1)"] {
        assert!(csv.contains(cell), "{cell} not defused in {csv}");
    }
    assert!(
        !csv.lines().any(|l| l.starts_with('=') || l.contains(",=")),
        "{csv}"
    );
    let r = http
        .post(server.url("/v1/views/service_dossiers/refresh"))
        .bearer_auth(&center)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let view = http
        .get(server.url("/v1/views/service_dossiers?format=csv"))
        .bearer_auth(&center)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        view.contains("'=HYPERLINK") && !view.contains(",=HYPERLINK"),
        "{view}"
    );

    // CKAN's face answers errors in CKAN's envelope.
    let r = http
        .get(server.url("/api/3/action/package_list"))
        .bearer_auth("kho_nope_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["__type"], "Authorization Error", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_stalled_connections_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path().to_str().unwrap(),
        &[
            "--header-timeout-secs",
            "2",
            "--body-timeout-secs",
            "2",
            "--bodies-in-flight-mb",
            "8",
        ],
    );
    let services = server.token("sector", Some("services"), "portal").await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let closed_within = |mut s: TcpStream, limit: Duration| {
        s.set_read_timeout(Some(limit)).unwrap();
        let t = Instant::now();
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    return (
                        true,
                        t.elapsed(),
                        String::from_utf8_lossy(&got).into_owned(),
                    );
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {
                    return (
                        false,
                        t.elapsed(),
                        String::from_utf8_lossy(&got).into_owned(),
                    );
                }
            }
        }
    };
    // Silent, half-sent headers, and a body that stalls.
    let silent = TcpStream::connect(&addr).unwrap();
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut stall = TcpStream::connect(&addr).unwrap();
    stall
        .write_all(
            format!(
                "POST /v1/streams/service.dossiers/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {services}\r\ncontent-type: application/x-ndjson\r\ncontent-length: 4000000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
    // While it stalls it holds 4 MB of the 8 MB budget: a second such body gets 503.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // (Announced, not sent: kho answers from the headers, before reading any of the body,
    // so a client still writing would only see its pipe closed.)
    let mut second = TcpStream::connect(&addr).unwrap();
    second
        .write_all(
            format!(
                "POST /v1/streams/service.dossiers/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {services}\r\ncontent-type: application/x-ndjson\r\ncontent-length: 5000000\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = vec![0u8; 4096];
    let n = second.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_lowercase();
    assert!(
        head.starts_with("http/1.1 503"),
        "a body past the budget in flight: {head}"
    );
    assert!(head.contains("retry-after"), "{head}");
    let handles = [silent, half, stall]
        .map(|s| std::thread::spawn(move || closed_within(s, Duration::from_secs(8))));
    for (i, h) in handles.into_iter().enumerate() {
        let (closed, took, answer) = h.join().unwrap();
        assert!(closed, "connection {i} still open after {took:?}: {answer}");
        assert!(
            took < Duration::from_secs(6),
            "connection {i} closed after {took:?}"
        );
    }
    healthz_ms(&server).await;
    // The budget is back once the stalled body is gone.
    let (st, body, _) = server
        .append(
            Some(&services),
            "service.dossiers",
            "application/x-ndjson",
            dossier_lines(3, "STP"),
            None,
        )
        .await;
    assert_eq!(st, 201, "{body}");
}
