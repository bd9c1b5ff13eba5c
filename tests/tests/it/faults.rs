//! Storage faults: a TCP proxy written here sits between `kho serve` and the moto S3 server
//! and, phase by phase, cuts connections, delays them, or answers 503 itself, while clients
//! append (with idempotency keys, retrying what was not acknowledged), views are refreshed
//! and a dataset is released. Every failure must be a 503, nothing acknowledged may be lost
//! or doubled (checked by the Python `deltalake` reader straight on moto), and once the
//! proxy heals the process serves normally.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use kho_tests::{Server, client, python, python_read, s3_store};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const STREAM: &str = "service.dossiers";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Pass = 0,
    /// Close every connection at its next request.
    Cut = 1,
    /// Hold every request for longer than kho's S3 request timeout.
    Delay = 2,
    /// Answer every request with 503 Slow Down, as S3 does under load.
    Unavailable = 3,
}

/// A fault-injecting TCP proxy in front of `upstream` (host:port).
struct Proxy {
    addr: String,
    mode: Arc<AtomicU8>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let m = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let (m, upstream) = (m.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = relay(conn, &upstream, &m).await;
                });
            }
        });
        Self { addr, mode }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

fn mode_of(m: &AtomicU8) -> Mode {
    match m.load(Ordering::SeqCst) {
        1 => Mode::Cut,
        2 => Mode::Delay,
        3 => Mode::Unavailable,
        _ => Mode::Pass,
    }
}

/// Relays one client connection; the fault mode is consulted on every chunk the client
/// sends, so pooled keep-alive connections are hit as well as new ones.
async fn relay(mut client: TcpStream, upstream: &str, mode: &AtomicU8) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    let (mut sr, mut sw) = server.into_split();
    let (mut cr, mut cw) = client.split();
    let to_client = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = sr.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            cw.write_all(&buf[..n]).await?;
        }
    };
    let to_server = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = cr.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            match mode_of(mode) {
                Mode::Pass => sw.write_all(&buf[..n]).await?,
                Mode::Cut => return Ok(None),
                Mode::Delay => {
                    tokio::time::sleep(Duration::from_secs(6)).await;
                    sw.write_all(&buf[..n]).await?;
                }
                Mode::Unavailable => return Ok(Some(())),
            }
        }
    };
    tokio::select! {
        r = to_client => r?,
        r = to_server => {
            if r? == Some(()) {
                let body = "<Error><Code>SlowDown</Code><Message>injected</Message></Error>";
                let resp = format!(
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(resp.as_bytes()).await;
            }
        }
    }
    Ok(())
}

fn dossiers(batch: u32, n: u32) -> (Vec<String>, String) {
    let ids: Vec<String> = (0..n)
        .map(|i| format!("00000000-0000-7000-8000-{:012}", batch * 1000 + i))
        .collect();
    let body = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                "{}\n",
                json!({"event_id": id, "event_type": "dossier_received", "entity_id": format!("HS-{batch}-{i}"),
                       "occurred_at": "2021-03-10T08:00:00+07:00", "procedure_code": "TTHC-1", "agency_code": "STP",
                       "level": 4, "channel": "online", "due_at": "2021-03-20T17:00:00+07:00"})
            )
        })
        .collect();
    (ids, body)
}

async fn post(server: &Server, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").is_some();
    let body = r.json().await.unwrap_or(Value::Null);
    if status == 503 {
        assert!(retry, "a 503 without Retry-After: {body}");
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_faults_answer_503_and_lose_nothing() {
    let (Some(py), Some(store)) = (python(), s3_store()) else {
        return;
    };
    let endpoint = std::env::var("AWS_ENDPOINT").expect("AWS_ENDPOINT with KHO_TEST_S3_URL");
    let upstream = endpoint.trim_start_matches("http://").to_owned();
    let proxy = Proxy::start(upstream).await;
    let server = Server::start_with_env(
        &store,
        &["--view-poll-secs", "1", "--compact-every", "4"],
        &[
            ("AWS_ENDPOINT", format!("http://{}", proxy.addr).as_str()),
            (
                "AWS_ENDPOINT_URL",
                format!("http://{}", proxy.addr).as_str(),
            ),
            ("KHO_S3_MAX_RETRIES", "1"),
            ("KHO_S3_RETRY_TIMEOUT_SECS", "2"),
            ("KHO_S3_REQUEST_TIMEOUT_SECS", "3"),
        ],
    );
    let services = server.token("sector", Some("services"), "portal").await;
    let center = server.token("center", None, "ioc").await;
    let steward_a = server.token("steward", None, "steward-a").await;
    let steward_b = server.token("steward", None, "steward-b").await;

    // A dataset to release during the faults.
    let (ids0, body0) = dossiers(0, 20);
    let (st, resp, _) = server
        .append(
            Some(&services),
            STREAM,
            "application/x-ndjson",
            body0,
            Some("batch-0"),
        )
        .await;
    assert_eq!(st, 201, "{resp}");
    let spec = kho_tests::stream_dataset("ho-so-loi", STREAM, &["agency_code", "channel"], "open");
    let (st, resp) = post(&server, &services, "/v1/catalog/datasets", spec).await;
    assert_eq!(st, 201, "{resp}");
    for (token, step) in [
        (&services, "propose"),
        (&steward_b, "approve"),
        (&steward_a, "publish"),
    ] {
        let (st, resp) = post(
            &server,
            token,
            &format!("/v1/catalog/datasets/ho-so-loi/{step}"),
            json!({"why": "test"}),
        )
        .await;
        assert_eq!(st, 200, "{step}: {resp}");
    }

    let mut acked: Vec<String> = ids0;
    let mut pending: Vec<(String, Vec<String>, String)> = Vec::new();
    let mut statuses: Vec<(Mode, &str, u16)> = Vec::new();
    let mut batch = 1u32;
    for mode in [Mode::Cut, Mode::Unavailable, Mode::Delay, Mode::Cut] {
        proxy.set(mode);
        let phase = Instant::now();
        while phase.elapsed() < Duration::from_secs(8) {
            // New batches, and the ones not yet acknowledged, with the same keys.
            let (ids, body) = dossiers(batch, 10);
            pending.push((format!("batch-{batch}"), ids, body));
            batch += 1;
            let mut still = Vec::new();
            for (key, ids, body) in pending.drain(..) {
                let (st, resp, headers) = server
                    .append(
                        Some(&services),
                        STREAM,
                        "application/x-ndjson",
                        body.clone(),
                        Some(&key),
                    )
                    .await;
                statuses.push((mode, "append", st));
                match st {
                    200 | 201 => acked.extend(ids),
                    503 => {
                        assert!(
                            headers.get("retry-after").is_some(),
                            "503 without Retry-After"
                        );
                        still.push((key, ids, body));
                    }
                    other => panic!("append under {mode:?}: {other} {resp}\n{}", server.log()),
                }
            }
            pending = still;
            let (st, resp) = post(
                &server,
                &center,
                "/v1/views/service_dossiers/refresh",
                json!({}),
            )
            .await;
            statuses.push((mode, "refresh", st));
            assert!(
                matches!(st, 200 | 503),
                "refresh under {mode:?}: {st} {resp}"
            );
            let (st, resp) = post(
                &server,
                &steward_a,
                "/v1/catalog/datasets/ho-so-loi/releases",
                json!({"why": "test"}),
            )
            .await;
            statuses.push((mode, "release", st));
            assert!(
                matches!(st, 200 | 503),
                "release under {mode:?}: {st} {resp}"
            );
        }
    }
    let failures = statuses.iter().filter(|s| s.2 == 503).count();
    eprintln!(
        "{} calls under faults, {failures} answered 503",
        statuses.len()
    );
    assert!(failures > 0, "no fault reached kho: {statuses:?}");

    // Healed: everything not acknowledged goes through on retry, once.
    proxy.set(Mode::Pass);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "kho did not recover: {} batches pending",
            pending.len()
        );
        let mut still = Vec::new();
        for (key, ids, body) in pending.drain(..) {
            let (st, resp, _) = server
                .append(
                    Some(&services),
                    STREAM,
                    "application/x-ndjson",
                    body.clone(),
                    Some(&key),
                )
                .await;
            match st {
                200 | 201 => acked.extend(ids),
                503 => still.push((key, ids, body)),
                other => panic!("append after healing: {other} {resp}"),
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ids, body) = dossiers(batch, 10);
    let (st, resp, _) = server
        .append(
            Some(&services),
            STREAM,
            "application/x-ndjson",
            body,
            Some("after"),
        )
        .await;
    assert_eq!(st, 201, "{resp}");
    acked.extend(ids);
    for path in [
        "/v1/views/service_dossiers/refresh",
        "/v1/catalog/datasets/ho-so-loi/releases",
    ] {
        let token = if path.contains("views") {
            &center
        } else {
            &steward_a
        };
        let (st, resp) = post(&server, token, path, json!({"why": "healed"})).await;
        assert_eq!(st, 200, "{path} after healing: {resp}");
    }
    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // The outside reader, straight on moto.
    let rows = python_read(&py, &format!("{store}/streams/{STREAM}"));
    let got: Vec<&str> = rows
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    let distinct: BTreeSet<&str> = got.iter().copied().collect();
    assert_eq!(got.len(), distinct.len(), "duplicated events");
    let expected: BTreeSet<&str> = acked.iter().map(String::as_str).collect();
    assert_eq!(distinct, expected, "exactly the acknowledged events");
    // deltalake 1.1.3 aborts a multipart upload whose completion failed and catches the
    // panic object_store's BufWriter::abort raises then ("Already shut down",
    // deltalake-core src/datafile/writer.rs, `finish`): the default hook still prints it,
    // though nothing unwinds out of the write. Any other panic is kho's, and fails here.
    let log = server.log();
    let panics: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("panicked"))
        .filter(|l| !l.contains("object_store-0.13.2/src/buffered.rs"))
        .collect();
    assert!(panics.is_empty(), "{panics:?}\n{log}");
}
