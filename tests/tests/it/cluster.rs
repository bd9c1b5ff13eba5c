//! Many processes, one store: two `kho serve` on the same store (local disk, then the moto
//! S3 server), clients appending through both, each process compacting as it commits and on
//! a short schedule, and `kho maintain` run in a loop beside them. An independent reader
//! (the Python `deltalake` package) then finds every acknowledged event exactly once.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kho_tests::{Server, client, kho_bin, python, python_read, s3_store};
use serde_json::{Value, json};

const STREAM: &str = "finance.budget";
const CLIENTS_PER_SERVER: usize = 2;
const BATCH: usize = 200;

fn start(store: &str) -> Server {
    Server::start_with_env(
        store,
        &[
            "--compact-every",
            "3",
            "--maintain-every-secs",
            "2",
            "--view-poll-secs",
            "1",
        ],
        &[(
            "RUST_LOG",
            "warn,buoyant_kernel=off,kho_api=info,kho_ingest=info",
        )],
    )
}

fn body(ids: &[String]) -> String {
    ids.iter()
        .map(|id| {
            format!(
                "{}\n",
                json!({"event_id": id, "event_type": "revenue_collected", "entity_id": "KB-CLUSTER",
                       "occurred_at": "2021-06-01T08:00:00+07:00", "fiscal_year": 2021, "agency_code": "STC",
                       "flow": "revenue", "category_code": "1001", "amount_vnd": 1})
            )
        })
        .collect()
}

/// Waits until `server` knows the token another process issued (it re-reads the
/// governance log every few seconds).
async fn wait_for_token(server: &Server, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let resp = client()
            .get(server.url(&format!("/v1/streams/{STREAM}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the second process never learnt the token"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn count(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

async fn two_processes_one_store(store: String, table_uri: String) {
    let Some(py) = python() else { return };
    let a = start(&store);
    let b = start(&store);
    let token = a.token("sector", Some("finance"), "treasury").await;
    wait_for_token(&b, &token).await;
    let servers = Arc::new([a, b]);

    // `kho maintain` in a loop beside the servers: the whole store, then the stream alone.
    let stop = Arc::new(AtomicBool::new(false));
    let maintainer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut cmd = Command::new(kho_bin());
                cmd.args(["maintain", "--store", &store]);
                if runs % 2 == 1 {
                    cmd.args(["--stream", STREAM]);
                }
                let out = cmd.output().unwrap();
                assert!(
                    out.status.success(),
                    "kho maintain failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                runs += 1;
            }
            runs
        })
    };

    // Clients append through both processes until each has compacted at least ten times.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS_PER_SERVER * 2 {
        let servers = servers.clone();
        let token = token.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let server = &servers[c % 2];
            let mut acked: Vec<String> = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ids: Vec<String> = (0..BATCH)
                    .map(|_| uuid::Uuid::now_v7().to_string())
                    .collect();
                n += 1;
                let (status, resp, _) = server
                    .append(
                        Some(&token),
                        STREAM,
                        "application/x-ndjson",
                        body(&ids),
                        None,
                    )
                    .await;
                match status {
                    201 => {
                        assert_eq!(resp["accepted"], BATCH, "{resp}");
                        acked.extend(ids);
                    }
                    // Not acknowledged: may or may not have landed, must not count.
                    503 | 429 => {}
                    other => panic!("client {c} batch {n}: {other} {resp}"),
                }
            }
            acked
        }));
    }
    let deadline = Duration::from_secs(240);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let done = servers.iter().all(|s| {
            let log = s.log();
            count(&log, "compacted") + count(&log, "compaction dropped") >= 10
        });
        if (done && started.elapsed() > Duration::from_secs(15)) || started.elapsed() > deadline {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let maintain_runs = maintainer.join().unwrap();
    for (i, s) in servers.iter().enumerate() {
        let log = s.log();
        let (landed, dropped) = (count(&log, "compacted"), count(&log, "compaction dropped"));
        eprintln!(
            "process {i}: {landed} compactions landed, {dropped} dropped, {} scheduled",
            count(&log, "scheduled maintenance")
        );
        assert!(
            landed + dropped >= 10,
            "process {i} compacted only {landed}+{dropped} times in {:?}",
            started.elapsed()
        );
        assert!(!log.contains("panicked"), "{log}");
    }
    assert!(maintain_runs >= 2, "kho maintain ran {maintain_runs} times");

    // The same batch with the same key through both processes at once lands once.
    let keyed: Vec<String> = (0..50).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let sends = servers.iter().map(|s| {
        s.append(
            Some(&token),
            STREAM,
            "application/x-ndjson",
            body(&keyed),
            Some("cluster-key-1"),
        )
    });
    let answers = futures::future::join_all(sends).await;
    let mut accepted = 0;
    for (status, resp, _) in &answers {
        assert!(*status == 201 || *status == 200, "{status} {resp}");
        accepted += resp["accepted"].as_u64().unwrap();
    }
    // Both answers describe the one commit.
    assert_eq!(accepted, 100, "{answers:?}");
    assert_eq!(answers[0].1["version"], answers[1].1["version"]);
    acked.extend(keyed);

    // The outside reader: every acknowledged event exactly once, nothing else.
    let rows = python_read(&py, &table_uri);
    let ids: Vec<&str> = rows
        .iter()
        .map(|r: &Value| r["event_id"].as_str().unwrap())
        .collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    let expected: BTreeSet<&str> = acked.iter().map(String::as_str).collect();
    eprintln!(
        "{} events acknowledged through two processes, {maintain_runs} maintain runs, {} rows read",
        acked.len(),
        ids.len()
    );
    assert_eq!(
        ids.len(),
        distinct.len(),
        "{} duplicate rows",
        ids.len() - distinct.len()
    );
    assert_eq!(
        distinct, expected,
        "the table holds exactly the acknowledged events"
    );
    assert!(acked.len() >= 10 * BATCH, "too few events to mean anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let uri = format!("{store}/streams/{STREAM}");
    two_processes_one_store(store, uri).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_s3() {
    let Some(store) = s3_store() else { return };
    let uri = format!("{store}/streams/{STREAM}");
    two_processes_one_store(store, uri).await;
}

/// `kho demo` would start the store over: it refuses one that a live process serves, and
/// that process goes on serving its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_refuses_a_live_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let server = Server::start(&store, &[]);
    let token = server.token("sector", Some("finance"), "treasury").await;
    // A marker as the demo leaves it: without the live check the demo would wipe the store.
    std::fs::write(dir.path().join(".kho-demo"), "made by kho demo\n").unwrap();
    let out = Command::new(kho_bin())
        .args([
            "demo",
            "--store",
            &store,
            "--exit",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the demo ran on a live store");
    assert!(
        stderr.contains("is in use") && stderr.contains(&server.pid().to_string()),
        "{stderr}"
    );
    let (status, resp, _) = server
        .append(
            Some(&token),
            STREAM,
            "application/x-ndjson",
            body(&[uuid::Uuid::now_v7().to_string()]),
            None,
        )
        .await;
    assert_eq!(status, 201, "{resp}");
    // Stopped cleanly, the node leaves: the store is no longer in use.
    let pid = server.pid().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(dir.path().join("system/nodes"))
        .map(|d| d.count() > 0)
        .unwrap_or(false)
    {
        assert!(
            Instant::now() < deadline,
            "the heartbeat stayed after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
}
