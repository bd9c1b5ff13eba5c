//! The pages through the real binary in a real browser: `kho demo`, then headless Chromium
//! driven by Selenium (`tests/python/pages_browser.py`) with axe-core injected. The figures
//! the browser reads are compared with the views', read here over the API; events pushed
//! here must change the open page without a reload.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kho_tests::{client, demo, python};
use serde_json::Value;

/// Chromium's driver (Debian's `chromium-driver`) and axe-core (npm, `tests/browser`), or
/// `None` to skip (refused when `KHO_REQUIRE_EXTERNAL` is set).
fn browser_parts() -> Option<PathBuf> {
    let axe =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/axe-core/axe.min.js");
    let driver = Path::new("/usr/bin/chromedriver");
    if axe.exists() && driver.exists() {
        return Some(axe);
    }
    assert!(
        std::env::var_os("KHO_REQUIRE_EXTERNAL").is_none(),
        "KHO_REQUIRE_EXTERNAL is set but {} or {} is missing (scripts/test installs them)",
        driver.display(),
        axe.display()
    );
    eprintln!("skipped: no chromedriver or axe-core");
    None
}

/// Σ num / Σ den over a view's rows of 2021.
fn rate_2021(rows: &[Value], num: &str, den: &str) -> f64 {
    let sum = |c: &str| -> i64 {
        rows.iter()
            .filter(|r| r["month"].as_str().is_some_and(|m| m.starts_with("2021")))
            .map(|r| r[c].as_i64().unwrap())
            .sum()
    };
    sum(num) as f64 / sum(den) as f64
}

/// `0.20237…` as the page writes it: cut (not rounded) to two decimals, as the report does.
fn percent(rate: f64) -> String {
    format!("{:.2}", (rate * 10_000.0).trunc() / 100.0)
}

fn vi_percent(rate: f64) -> String {
    format!("{} %", percent(rate).replace('.', ","))
}

fn line(out: &mut impl BufRead) -> Value {
    let mut l = String::new();
    out.read_line(&mut l).unwrap();
    serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser() {
    let Some(py) = python() else { return };
    let Some(axe) = browser_parts() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = demo(dir.path().join("demo").to_str().unwrap(), "2021");
    let services = d.token("services");
    assert!(
        d.output
            .iter()
            .any(|l| l.contains(&format!("{}/dashboard", d.base))),
        "kho demo prints the dashboard's address: {:#?}",
        d.output
    );
    let dossiers = d.view("service_dossiers").await;
    let online = rate_2021(&dossiers, "received_online", "received");
    let shots = match std::env::var("KHO_SCREENSHOTS") {
        Ok(p) => PathBuf::from(p),
        Err(_) => dir.path().to_owned(),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/pages_browser.py");
    let mut child = Command::new(&py)
        .arg(script)
        .args([&d.base, &d.center, &services])
        .arg(&axe)
        .arg(&shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut to = child.stdin.take().unwrap();
    let mut from = BufReader::new(child.stdout.take().unwrap());
    let seen = line(&mut from);
    eprintln!(
        "first visit: assets {} B compressed; the dashboard (debug build) {}",
        seen["assets_transfer_bytes"], seen["dashboard_timing"]
    );

    // Without a session, and with a forged one, the dashboard sends to the sign-in page.
    assert!(
        seen["anonymous_url"]
            .as_str()
            .unwrap()
            .ends_with("/signin?next=%2Fdashboard"),
        "{seen}"
    );
    assert!(
        seen["forged_url"].as_str().unwrap().contains("/signin?"),
        "{seen}"
    );
    assert!(
        seen["wrong_token_error"]
            .as_str()
            .unwrap()
            .contains("không đúng"),
        "{seen}"
    );
    assert!(
        seen["center_url"].as_str().unwrap().ends_with("/dashboard"),
        "{seen}"
    );

    // The online-rate tile shows the view's figure (20,23 % on the demo) and the target.
    let tile = &seen["center_tiles"]["online_rate"];
    assert_eq!(tile["value"], vi_percent(online), "{seen}");
    assert_eq!(vi_percent(online), "20,23 %");
    let shown: f64 = tile["rate"].as_str().unwrap().parse().unwrap();
    assert!((shown - online).abs() < 1e-6, "{shown} vs {online}");
    assert!(
        tile["target"][0].as_str().unwrap().contains("30,00 %"),
        "{tile}"
    );
    let tiles: Vec<&str> = seen["center_tiles"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for t in [
        "online_rate",
        "on_time_rate",
        "feedback_on_time",
        "budget_revenue",
        "budget_expenditure",
        "disbursement",
    ] {
        assert!(tiles.contains(&t), "{t} missing from {tiles:?}");
    }
    assert_eq!(
        seen["center_panels"],
        serde_json::json!(["agencies", "districts", "projects"])
    );
    assert_eq!(
        seen["center_console_errors"],
        serde_json::json!([]),
        "{seen}"
    );
    for page in ["signin_axe", "landing_axe", "dashboard_axe", "english_axe"] {
        assert_eq!(seen[page], serde_json::json!([]), "{page}: {seen}");
    }

    // The drill-down reaches the agency's overdue dossiers: as many as the view counts.
    let drill = &seen["drill"];
    let agency = drill["agency"].as_str().unwrap();
    let overdue: i64 = dossiers
        .iter()
        .filter(|r| r["agency_code"] == agency && r["month"].as_str().unwrap().starts_with("2021"))
        .map(|r| r["pending_overdue"].as_i64().unwrap())
        .sum();
    assert!(overdue > 0, "{drill}");
    assert_eq!(drill["count"], overdue, "{drill}");
    assert_eq!(drill["listed"], overdue.min(500), "{drill}");
    assert_eq!(
        drill["total"].as_str().unwrap().replace('.', ""),
        overdue.to_string(),
        "{drill}"
    );
    assert_eq!(seen["drill_axe"], serde_json::json!([]), "{seen}");
    // Names, not codes: the page is titled with the name `reference.codes` gives the agency.
    let named: Vec<Value> = client()
        .post(format!("{}/v1/sql", d.base))
        .bearer_auth(&d.center)
        .json(&serde_json::json!({"sql": format!(
            "SELECT name_vi FROM reference.codes WHERE list = 'organisation' AND entity_id = '{agency}'")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = named[0]["name_vi"].as_str().unwrap();
    assert!(
        drill["title"].as_str().unwrap().starts_with(name),
        "{name}: {drill}"
    );

    assert_eq!(
        seen["phone_overflow_px"], 0,
        "the page fits a phone's width"
    );

    // English changes the labels, not the numbers.
    assert_ne!(seen["english_title"], seen["center_title"]);
    for (id, t) in seen["center_tiles"].as_object().unwrap() {
        assert_eq!(seen["english_tiles"][id]["rate"], t["rate"], "{id}");
    }
    assert_eq!(
        seen["english_tiles"]["online_rate"]["value"],
        format!("{}%", percent(online))
    );

    // A sector pushes online dossiers: the open page's tile changes without a reload, to
    // the view's new figure.
    let r = client()
        .post(format!("{}/v1/streams/service.dossiers/events", d.base))
        .bearer_auth(&services)
        .header("content-type", "application/x-ndjson")
        .body(kho_tests::dossier_lines(2_000, "STP"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    writeln!(
        to,
        "wait-change online_rate {}",
        tile["rate"].as_str().unwrap()
    )
    .unwrap();
    let live = line(&mut from);
    assert_eq!(live["reloaded"], false, "{live}");
    assert_eq!(live["console_errors"], serde_json::json!([]), "{live}");
    let after = rate_2021(
        &d.view("service_dossiers").await,
        "received_online",
        "received",
    );
    assert!(after > online);
    let shown: f64 = live["rate"].as_str().unwrap().parse().unwrap();
    assert!(
        (shown - after).abs() < 1e-6,
        "the page shows {shown}, the view {after}"
    );

    // A sector's token shows the panels of its own streams only.
    writeln!(to, "sector").unwrap();
    let sector = line(&mut from);
    assert_eq!(
        sector["tiles"],
        serde_json::json!(["online_rate", "on_time_rate", "feedback_on_time"]),
        "{sector}"
    );
    assert_eq!(
        sector["panels"],
        serde_json::json!(["agencies"]),
        "{sector}"
    );
    writeln!(to, "quit").unwrap();
    assert!(child.wait().unwrap().success());
}
