//! `kho demo` through the real binary: the report's figures, and budget and investment views
//! equal to an independent computation over the same events.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use kho_tests::{client, demo, kho_bin, python};
use serde_json::{Value, json};

fn total(rows: &[Value], col: &str, year_key: Option<&str>) -> i64 {
    rows.iter()
        .filter(|r| year_key.is_none_or(|k| r[k].as_str().is_some_and(|m| m.starts_with("2021"))))
        .map(|r| r[col].as_i64().unwrap())
        .sum()
}

#[tokio::test]
async fn the_demo_reproduces_the_report_and_its_books_balance() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo");
    let started = Instant::now();
    let d = demo(store.to_str().unwrap(), "2021");
    eprintln!(
        "kho demo at scale 1 (debug build) served after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let summary: Vec<&String> = d
        .output
        .iter()
        .filter(|l| l.ends_with('✓') || l.ends_with('✗'))
        .collect();
    assert_eq!(summary.len(), 7, "{:#?}", d.output);
    assert!(summary.iter().all(|l| l.ends_with('✓')), "{summary:#?}");

    // The figures, read back from the views independently of the printed summary.
    let dossiers = d.view("service_dossiers").await;
    assert_eq!(total(&dossiers, "received", Some("month")), 264_883);
    assert_eq!(total(&dossiers, "received_online", Some("month")), 53_607);
    assert_eq!(total(&dossiers, "postal", Some("month")), 4_962);
    assert!(
        dossiers
            .iter()
            .all(|r| r["online_rate_target"] == json!(0.3))
    );
    let procedures = d.view("service_procedures").await;
    assert_eq!(
        (
            total(&procedures, "published", None),
            total(&procedures, "on_national_portal", None)
        ),
        (1_818, 1_000)
    );
    let feedback = d.view("service_feedback").await;
    assert_eq!(
        ["received", "answered", "in_progress", "answered_on_time"].map(|c| total(
            &feedback,
            c,
            Some("month")
        )),
        [1_501, 1_097, 404, 931]
    );
    // Realistic shape: more dossiers at district and commune level than at departments,
    // fewer in February (Tết) and August (COVID-19) than in December.
    let by = |f: &dyn Fn(&Value) -> bool| {
        dossiers
            .iter()
            .filter(|r| f(r))
            .map(|r| r["received"].as_i64().unwrap())
            .sum::<i64>()
    };
    let departments = by(&|r| r["agency_code"].as_str().unwrap().starts_with('S'));
    assert!(departments * 3 < 264_883, "{departments}");
    let month = |m: &str| by(&|r| r["month"] == m);
    assert!(month("2021-02") < month("2021-12") && month("2021-08") < month("2021-11"));

    // The catalog: four open datasets for anyone, the shared and private ones for the center.
    let http = client();
    let open: Vec<Value> = http
        .get(format!("{}/v1/catalog/datasets", d.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(open.len(), 4);
    assert!(
        open.iter()
            .all(|x| x["sharing"] == "open" && x["state"] == "published")
    );
    let all: Vec<Value> = http
        .get(format!("{}/v1/catalog/datasets", d.base))
        .bearer_auth(&d.center)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let classes: std::collections::BTreeSet<&str> =
        all.iter().map(|x| x["sharing"].as_str().unwrap()).collect();
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        ["open", "private", "shared"]
    );

    // Budget and investment: the views equal DuckDB's computation over the same events.
    let budget = d.view("budget_execution").await;
    let mut ours: BTreeMap<String, [i64; 2]> = BTreeMap::new();
    for r in &budget {
        let key = format!(
            "{}|{}|{}",
            r["fiscal_year"],
            r["agency_code"].as_str().unwrap(),
            r["flow"].as_str().unwrap()
        );
        let e = ours.entry(key).or_default();
        e[1] += r["actual_vnd"].as_i64().unwrap();
    }
    // The estimate repeats on each month row of a line: take it once per line.
    let mut lines: BTreeMap<String, i64> = BTreeMap::new();
    for r in &budget {
        lines.insert(
            format!(
                "{}|{}|{}|{}",
                r["fiscal_year"],
                r["agency_code"].as_str().unwrap(),
                r["flow"].as_str().unwrap(),
                r["category_code"].as_str().unwrap()
            ),
            r["estimate_vnd"].as_i64().unwrap(),
        );
    }
    for (line, estimate) in &lines {
        let key = line.rsplit_once('|').unwrap().0.to_owned();
        ours.get_mut(&key).unwrap()[0] += estimate;
    }
    let investment = d.view("investment_disbursement").await;
    let projects: BTreeMap<String, Value> = investment
        .iter()
        .map(|r| {
            (
                format!("{}|{}", r["year"], r["project_code"].as_str().unwrap()),
                json!([r["allocated_vnd"], r["disbursed_vnd"], r["status"]]),
            )
        })
        .collect();
    assert!(projects.len() > 100, "{}", projects.len());
    let groups: std::collections::BTreeSet<&str> = investment
        .iter()
        .map(|r| r["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups.into_iter().collect::<Vec<_>>(), ["A", "B", "C"]);

    let Some(py) = python() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/budget_investment.py");
    let out = Command::new(py).arg(script).arg(&store).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs_budget: BTreeMap<String, [i64; 2]> =
        serde_json::from_value(theirs["budget"].clone()).unwrap();
    assert_eq!(ours, theirs_budget);
    let theirs_projects: BTreeMap<String, Value> =
        serde_json::from_value(theirs["investment"].clone()).unwrap();
    assert_eq!(projects, theirs_projects);
}

/// Runs `kho demo --exit` into `store` and checks it succeeded.
fn demo_exit(store: &Path, seed: &str) {
    let out = Command::new(kho_bin())
        .args([
            "demo",
            "--store",
            store.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--seed",
            seed,
            "--exit",
        ])
        .env("KHO_ADMIN_TOKEN", kho_tests::ADMIN)
        .env("RUST_LOG", "error,buoyant_kernel=off")
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn same_seed_same_events() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    demo_exit(&a, "7");
    demo_exit(&b, "7");
    demo_exit(&c, "8");
    let content = |store: &Path, stream: &str| -> Vec<Value> {
        let mut rows =
            kho_tests::python_read(&py, &format!("{}/streams/{stream}", store.display()));
        for r in &mut rows {
            let o = r.as_object_mut().unwrap();
            o.remove("recorded_at");
            o.remove("source");
        }
        rows
    };
    for stream in [
        "finance.budget",
        "service.feedback",
        "service.procedures",
        "investment.projects",
        "reference.codes",
        "reference.targets",
    ] {
        let (x, y) = (content(&a, stream), content(&b, stream));
        assert!(!x.is_empty(), "{stream}");
        assert_eq!(x, y, "{stream}: same seed, other events");
    }
    assert_ne!(
        content(&a, "service.feedback"),
        content(&c, "service.feedback")
    );
}
