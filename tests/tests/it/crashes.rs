//! kill -9 in the middle of background work. `kho serve` compacts after every commit,
//! checkpoints and compacts every stream each second and refreshes views each second while a
//! client appends and a steward cuts releases; beside it `kho maintain --vacuum` runs. Both
//! are killed with SIGKILL at staggered moments, round after round. After each restart every
//! table reads, and every acknowledged event is there exactly once (the Python `deltalake`
//! reader), whatever the kill interrupted.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kho_tests::{Server, client, kho_bin, python, python_read};
use serde_json::{Value, json};

const STREAM: &str = "service.dossiers";

fn start(store: &str) -> Server {
    Server::start(
        store,
        &[
            "--compact-every",
            "1",
            "--maintain-every-secs",
            "1",
            "--view-poll-secs",
            "1",
            "--view-debounce-ms",
            "0",
        ],
    )
}

fn body(ids: &[String]) -> String {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                "{}\n",
                json!({"event_id": id, "event_type": "dossier_received", "entity_id": format!("HS-{id}-{i}"),
                       "occurred_at": "2021-03-10T08:00:00+07:00", "procedure_code": "TTHC-1", "agency_code": "STP",
                       "level": 4, "channel": "online", "due_at": "2021-03-20T17:00:00+07:00"})
            )
        })
        .collect()
}

async fn post(server: &Server, token: &str, path: &str, body: Value) -> (u16, Value) {
    match client()
        .post(server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => {
            let st = r.status().as_u16();
            (st, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null), // killed under us
    }
}

async fn get(server: &Server, token: &str, path: &str) -> u16 {
    client()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_background_work_loses_and_doubles_nothing() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let mut server = start(&store);
    let services = server.token("sector", Some("services"), "portal").await;
    let center = server.token("center", None, "ioc").await;
    let steward_a = server.token("steward", None, "steward-a").await;
    let steward_b = server.token("steward", None, "steward-b").await;
    let spec =
        kho_tests::stream_dataset("ho-so-crash", STREAM, &["agency_code", "channel"], "open");
    let mut acked: Vec<String> = Vec::new();
    let first: Vec<String> = (0..20).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let (st, resp, _) = server
        .append(
            Some(&services),
            STREAM,
            "application/x-ndjson",
            body(&first),
            None,
        )
        .await;
    assert_eq!(st, 201, "{resp}");
    acked.extend(first);
    let (st, resp) = post(
        &server,
        &center,
        "/v1/views/service_dossiers/refresh",
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{resp}");
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
            &format!("/v1/catalog/datasets/ho-so-crash/{step}"),
            json!({"why": "t"}),
        )
        .await;
        assert_eq!(st, 200, "{step}: {resp}");
    }

    for round in 0..8u64 {
        // A maintainer with vacuum beside the server; killed too, at another moment.
        let mut maintainer = Command::new(kho_bin())
            .args([
                "maintain",
                "--store",
                &store,
                "--vacuum",
                "--retain-hours",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let run_for = Duration::from_millis(700 + 350 * round);
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < run_for {
            let ids: Vec<String> = (0..10).map(|_| uuid::Uuid::now_v7().to_string()).collect();
            let (st, _, _) = server
                .append(
                    Some(&services),
                    STREAM,
                    "application/x-ndjson",
                    body(&ids),
                    None,
                )
                .await;
            if st == 201 {
                acked.extend(ids);
            }
            n += 1;
            if n % 3 == 0 {
                let _ = post(
                    &server,
                    &steward_a,
                    "/v1/catalog/datasets/ho-so-crash/releases",
                    json!({"why": "t"}),
                )
                .await;
            }
            if n == 4 {
                let _ = maintainer.kill(); // SIGKILL
            }
        }
        let _ = maintainer.kill();
        let _ = maintainer.wait();
        server.crash(); // SIGKILL, whatever it was doing
        server = start(&store);

        // Every table reads again, through kho and from outside.
        assert_eq!(
            get(&server, &center, &format!("/v1/streams/{STREAM}")).await,
            200
        );
        assert_eq!(
            get(&server, &center, "/v1/views/service_dossiers").await,
            200,
            "round {round}"
        );
        assert_eq!(
            get(
                &server,
                &center,
                "/v1/catalog/datasets/ho-so-crash/data?format=json"
            )
            .await,
            200,
            "round {round}"
        );
        let rows = python_read(&py, &format!("{store}/streams/{STREAM}"));
        let got: Vec<&str> = rows
            .iter()
            .map(|r| r["event_id"].as_str().unwrap())
            .collect();
        let distinct: BTreeSet<&str> = got.iter().copied().collect();
        assert_eq!(
            got.len(),
            distinct.len(),
            "round {round}: duplicated events"
        );
        for id in &acked {
            assert!(
                distinct.contains(id.as_str()),
                "round {round}: acknowledged {id} is missing"
            );
        }
        for view in [
            "views/service_dossiers",
            "system/governance",
            "system/audit",
        ] {
            let _ = python_read(&py, &format!("{store}/{view}"));
        }
    }
    // After the last restart the background work goes on normally.
    let (st, resp) = post(
        &server,
        &center,
        "/v1/views/service_dossiers/refresh",
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{resp}");
    let (st, resp) = post(
        &server,
        &steward_a,
        "/v1/catalog/datasets/ho-so-crash/releases",
        json!({"why": "t"}),
    )
    .await;
    assert_eq!(st, 200, "{resp}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
