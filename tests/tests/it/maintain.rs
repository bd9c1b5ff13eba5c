//! `kho maintain` through the real binary: compaction and checkpoints leave the same rows.

use std::process::Command;

use kho_tests::{Server, event_id, kho_bin};
use serde_json::json;

#[tokio::test]
async fn maintain_compacts_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let server = Server::start(&store, &["--compact-every", "0"]);
    let fin = server.token("sector", Some("finance"), "treasury").await;
    for round in 0..6u64 {
        let body: String = (0..5)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({"event_id": event_id(round * 10 + i), "event_type": "revenue_collected", "entity_id": "KB",
                           "occurred_at": "2021-06-01T08:00:00+07:00", "fiscal_year": 2021, "agency_code": "STC",
                           "flow": "revenue", "category_code": "1001", "amount_vnd": 1})
                )
            })
            .collect();
        let (st, _, _) = server
            .append(
                Some(&fin),
                "finance.budget",
                "application/x-ndjson",
                body,
                None,
            )
            .await;
        assert_eq!(st, 201);
    }
    let before = server.stream(&fin, "finance.budget").await;
    assert_eq!(before["stats"]["file_count"], 6);

    let out = Command::new(kho_bin())
        .args([
            "maintain",
            "--store",
            &store,
            "--stream",
            "finance.budget",
            "--vacuum",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("streams/finance.budget"))
        .expect(&stdout);
    let cells: Vec<&str> = line.split_whitespace().collect();
    // table, version before, after, files before, after, compacted, vacuumed
    assert_eq!(&cells[3..7], ["6", "1", "6", "0"], "{line}");

    // The running server sees the compacted table: same rows, one file.
    let after = server.stream(&fin, "finance.budget").await;
    assert_eq!(after["stats"]["row_count"], 30);
    assert_eq!(after["stats"]["file_count"], 1);

    let bad = Command::new(kho_bin())
        .args(["maintain", "--store", &store, "--stream", "finance.nope"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown stream finance.nope"));
}
