//! `kho demo`: the one-command tour. A fresh store, the server, the province's 2021 feeds
//! generated and pushed through the HTTP API as the sector systems would push them, the
//! views refreshed, and a summary of the key figures beside the province's own report.

mod catalog;
mod data;
mod generate;
mod push;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use data::article;
use generate::FIRST_YEAR;
use kho_api::server::{serve_on, shutdown_signal};
use kho_query::limits::group;

/// The file that marks a directory as the demo's own (and safe to start over).
const MARKER: &str = ".kho-demo";

#[derive(Debug, Args, Clone)]
pub(crate) struct DemoArgs {
    /// Where the demo's data goes. The default directory is the demo's own: each run starts
    /// it over. Another directory must be new or empty.
    #[arg(long, default_value = "./kho-demo")]
    pub(crate) store: String,
    #[command(flatten)]
    pub(crate) server: crate::start::ServerArgs,
    /// Seed of the generator: the same seed gives the same events.
    #[arg(long, default_value_t = 2021)]
    pub(crate) seed: u64,
    /// Years of data from 2021 on: N times the volume (2021 stays the report's year).
    #[arg(long, default_value_t = 1)]
    pub(crate) scale: u32,
    /// Exit after the summary instead of serving (exit code 1 if a figure does not match).
    #[arg(long)]
    pub(crate) exit: bool,
}

/// The tokens the demo issues, by what they are for.
struct Tokens {
    admin: String,
    center: String,
    steward: String,
    consumer: String,
    sectors: Vec<(&'static str, String)>,
}

impl Tokens {
    fn sector(&self, sector: &str) -> &str {
        &self
            .sectors
            .iter()
            .find(|(s, _)| *s == sector)
            .expect("issued")
            .1
    }
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=50).contains(&args.scale),
        "--scale takes 1 to 50 (years of data)"
    );
    refuse_live_store(&args.store).await?;
    prepare_store(&args.store)?;
    let store = kho_store::Store::open_with_pack(&args.store).await?;
    let admin_token = args
        .server
        .admin_token
        .clone()
        .unwrap_or_else(crate::start::random_token);
    // `--scale` years past this one are synthetic futures: let the demo's own server take them.
    let mut server = args.server.clone();
    let ingest = &mut server.ingest;
    let last_year = FIRST_YEAR + args.scale as i32 - 1;
    if let Some(end) = chrono::NaiveDate::from_ymd_opt(last_year + 1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
    {
        // Corrections of December's entries come in January (up to the 20th): a month more.
        let hours = (end - chrono::Utc::now()).num_hours() + 24 * 31;
        ingest.occurred_ahead_hours = ingest
            .occurred_ahead_hours
            .max(u64::try_from(hours).unwrap_or(0));
    }
    let state =
        crate::start::open_state(store, &admin_token, &server, Duration::from_secs(3600)).await?;
    let listener = TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", server.listen))?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(state, listener, async move {
        tokio::select! {
            () = shutdown_signal() => {},
            _ = stop_rx => {},
        }
    }));

    let last = FIRST_YEAR + args.scale as i32 - 1;
    let years_label = if last == FIRST_YEAR {
        FIRST_YEAR.to_string()
    } else {
        format!("{FIRST_YEAR}–{last}")
    };
    println!(
        "kho demo: Tây Ninh {years_label}, seed {}, store {}",
        args.seed, args.store
    );
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .build()?;
    let tokens = issue_tokens(&http, &base, &admin_token).await?;

    // Generate and push year by year; a year's feeds go in parallel.
    let years: Vec<i32> = (0..args.scale as i32).map(|i| FIRST_YEAR + i).collect();
    let started = Instant::now();
    let mut pushed = 0u64;
    let first = generate::year(args.seed, FIRST_YEAR);
    let totals: Vec<(&'static str, u64)> = first
        .iter()
        .map(|f| {
            (
                f.stream,
                f.lines.len() as u64
                    * if matches!(f.stream, "service.procedures" | "reference.codes") {
                        1
                    } else {
                        u64::from(args.scale)
                    },
            )
        })
        .collect();
    let bars = Arc::new(push::Bars::new(&totals));
    let mut feeds = Some(first);
    for &year in &years {
        let this = feeds
            .take()
            .unwrap_or_else(|| generate::year(args.seed, year));
        // The code lists first: once they have entries, events naming other codes are refused.
        let (codes, this): (Vec<_>, Vec<_>) = this
            .into_iter()
            .partition(|f| f.stream == "reference.codes");
        for feed in codes {
            let token = tokens.sector(feed.sector).to_owned();
            pushed += push::push(&http, &base, &token, args.seed, year, feed, &bars).await?;
        }
        let mut tasks = Vec::new();
        for feed in this {
            let (http, base, bars) = (http.clone(), base.clone(), bars.clone());
            let token = tokens.sector(feed.sector).to_owned();
            let seed = args.seed;
            tasks.push(tokio::spawn(async move {
                push::push(&http, &base, &token, seed, year, feed, &bars).await
            }));
        }
        for t in tasks {
            pushed += t.await??;
        }
    }
    bars.finish();
    let push_secs = started.elapsed().as_secs_f64();
    println!(
        "pushed {} events in {push_secs:.1} s ({} events/s) through {base}/v1/streams/…/events",
        group(pushed),
        group((pushed as f64 / push_secs) as u64)
    );

    // Views: refresh now rather than wait for the background refresher.
    for view in kho_query::VIEWS.iter().map(|v| v.name) {
        let r = http
            .post(format!("{base}/v1/views/{view}/refresh"))
            .bearer_auth(&tokens.center)
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "refreshing {view}: {}",
            r.text().await.unwrap_or_default()
        );
    }
    let all_match = summary(&http, &base, &tokens.center).await?;
    let datasets = catalog::publish(&http, &base, &tokens, last).await?;
    print_access(&base, &tokens);
    print_catalog(&base, &datasets);
    println!("demo ready in {:.1} s", started.elapsed().as_secs_f64());

    if args.exit {
        let _ = stop_tx.send(());
        server.await??;
        anyhow::ensure!(all_match, "the views do not match the report's figures");
        return Ok(());
    }
    println!("serving until Ctrl-C");
    server.await??;
    drop(stop_tx);
    Ok(())
}

/// The demo starts a store over: never one another process is serving.
async fn refuse_live_store(spec: &str) -> anyhow::Result<()> {
    let local = !spec.contains("://") || spec.starts_with("file://");
    if local && !Path::new(spec.strip_prefix("file://").unwrap_or(spec)).exists() {
        return Ok(());
    }
    let store = kho_store::Store::open(spec)?;
    let nodes = store
        .live_nodes()
        .await
        .with_context(|| format!("checking whether {spec} is in use"))?;
    if let Some(n) = nodes.first() {
        let age = (chrono::Utc::now() - n.heartbeat_at).num_seconds().max(0);
        anyhow::bail!(
            "{spec} is in use: a kho process (pid {} on {}, serving {}) wrote its heartbeat {age} s ago; \
             stop it first, or give --store another directory",
            n.pid,
            if n.host.is_empty() {
                "this machine"
            } else {
                &n.host
            },
            n.listen,
        );
    }
    Ok(())
}

/// A fresh store: the default directory is the demo's own and starts over each run; an
/// explicit `--store` must be new or empty (a second run with the same seed would only
/// find every event already there).
fn prepare_store(spec: &str) -> anyhow::Result<()> {
    if spec.contains("://") && !spec.starts_with("file://") {
        return Ok(());
    }
    let dir = Path::new(spec.strip_prefix("file://").unwrap_or(spec));
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::ensure!(
            dir.join(MARKER).exists(),
            "{} is not empty and was not made by kho demo: give --store a new or empty directory",
            dir.display()
        );
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("starting over in {}", dir.display()))?;
        println!(
            "starting over: removed the previous demo store {}",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        "made by kho demo; the next kho demo on this directory deletes it\n",
    )?;
    Ok(())
}

async fn issue_tokens(http: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<Tokens> {
    let issue = |role: &'static str, sector: Option<&'static str>, name: &'static str| {
        let http = http.clone();
        let url = format!("{base}/v1/admin/tokens");
        let admin = admin.to_owned();
        async move {
            let r = http
                .post(url)
                .bearer_auth(admin)
                .json(&json!({"role": role, "sector": sector, "name": name}))
                .send()
                .await?;
            anyhow::ensure!(
                r.status().is_success(),
                "issuing the {name} token: {}",
                r.text().await.unwrap_or_default()
            );
            let body: Value = r.json().await?;
            Ok::<_, anyhow::Error>(body["token"].as_str().unwrap_or_default().to_owned())
        }
    };
    Ok(Tokens {
        admin: admin.to_owned(),
        center: issue("center", None, "trung-tam-ioc").await?,
        steward: issue("steward", None, "quan-tri-du-lieu").await?,
        consumer: issue("consumer", None, "doanh-nghiep-demo").await?,
        sectors: vec![
            (
                "finance",
                issue("sector", Some("finance"), "kho-bac-so-tai-chinh").await?,
            ),
            (
                "planning",
                issue("sector", Some("planning"), "so-ke-hoach-dau-tu").await?,
            ),
            (
                "services",
                issue("sector", Some("services"), "cong-dich-vu-cong").await?,
            ),
        ],
    })
}

async fn view(
    http: &reqwest::Client,
    base: &str,
    center: &str,
    name: &str,
) -> anyhow::Result<Vec<Value>> {
    let r = http
        .get(format!("{base}/v1/views/{name}"))
        .bearer_auth(center)
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "reading {name}: {}",
        r.text().await.unwrap_or_default()
    );
    Ok(r.json().await?)
}

fn sum(rows: &[Value], col: &str) -> i64 {
    rows.iter().filter_map(|r| r[col].as_i64()).sum()
}

fn in_year(rows: &[Value], key: &str, year: i32) -> Vec<Value> {
    rows.iter()
        .filter(|r| match &r[key] {
            Value::String(s) => s.starts_with(&year.to_string()),
            Value::Number(n) => n.as_i64() == Some(i64::from(year)),
            _ => false,
        })
        .cloned()
        .collect()
}

/// Prints the key figures beside the report's; true when every figure matches.
async fn summary(http: &reqwest::Client, base: &str, center: &str) -> anyhow::Result<bool> {
    let y = FIRST_YEAR;
    let dossiers = in_year(
        &view(http, base, center, "service_dossiers").await?,
        "month",
        y,
    );
    let feedback = in_year(
        &view(http, base, center, "service_feedback").await?,
        "month",
        y,
    );
    let procedures = view(http, base, center, "service_procedures").await?;
    let budget = in_year(
        &view(http, base, center, "budget_execution").await?,
        "fiscal_year",
        y,
    );
    let investment = in_year(
        &view(http, base, center, "investment_disbursement").await?,
        "year",
        y,
    );

    let received = sum(&dossiers, "received");
    let online = sum(&dossiers, "received_online");
    // The report truncates: 53,607 / 264,883 = 0.202379… is "20.23%".
    let rate = online as f64 / received.max(1) as f64;
    let rate_shown = (rate * 10_000.0).floor() / 100.0;
    let target = dossiers
        .iter()
        .find_map(|r| r["online_rate_target"].as_f64())
        .unwrap_or(f64::NAN);
    let postal = sum(&dossiers, "postal");
    let published = sum(&procedures, "published");
    let portal = sum(&procedures, "on_national_portal");
    let fb = sum(&feedback, "received");
    let answered = sum(&feedback, "answered");
    let open = sum(&feedback, "in_progress");
    let on_time = sum(&feedback, "answered_on_time") as f64 / answered.max(1) as f64;

    let rows: Vec<(&str, String, String, bool)> = vec![
        (
            "dossiers received",
            group(received as u64),
            group(article::DOSSIERS_RECEIVED),
            received as u64 == article::DOSSIERS_RECEIVED,
        ),
        (
            "received online at level 3/4",
            group(online as u64),
            group(article::DOSSIERS_ONLINE),
            online as u64 == article::DOSSIERS_ONLINE,
        ),
        (
            "online rate (target)",
            format!("{rate_shown:.2}% ({:.0}%, not met)", target * 100.0),
            "20.23% (above 30%, not met)".into(),
            format!("{rate_shown:.2}") == "20.23"
                && target == article::ONLINE_RATE_TARGET
                && rate < target,
        ),
        (
            "procedures published / on national portal",
            format!("{} / {}", group(published as u64), group(portal as u64)),
            "1,818 / 1,000".into(),
            published as u64 == article::PROCEDURES_PUBLISHED
                && portal as u64 == article::PROCEDURES_ON_PORTAL,
        ),
        (
            "dossiers received or returned by post",
            group(postal as u64),
            "about 5,000".into(),
            postal as u64 == article::DOSSIERS_POSTAL,
        ),
        (
            "feedback received / answered / in progress",
            format!(
                "{} / {} / {}",
                group(fb as u64),
                group(answered as u64),
                group(open as u64)
            ),
            "1,501 / 1,097 / 404".into(),
            fb as u64 == article::FEEDBACK_RECEIVED
                && answered as u64 == article::FEEDBACK_ANSWERED
                && open as u64 == article::FEEDBACK_IN_PROGRESS,
        ),
        (
            "feedback answered on time",
            format!("{:.2}%", on_time * 100.0),
            "above 84%".into(),
            on_time > 0.84,
        ),
    ];
    println!();
    println!(
        "  {:<44} {:<28} {:<28}",
        format!("figure ({y})"),
        "kho (from the views)",
        "province report"
    );
    let mut all = true;
    for (name, ours, theirs, ok) in &rows {
        all &= ok;
        println!(
            "  {name:<44} {ours:<28} {theirs:<28} {}",
            if *ok { "✓" } else { "✗" }
        );
    }
    // Budget and investment: not in the report; the demo's own plausible figures.
    let flow = |f: &str, col: &str| -> i64 {
        budget
            .iter()
            .filter(|r| r["flow"] == f)
            .fold(
                std::collections::HashMap::new(),
                |mut m: std::collections::HashMap<String, i64>, r| {
                    // the estimate repeats on every month row: count it once per line
                    let line = format!("{}|{}", r["agency_code"], r["category_code"]);
                    let v = r[col].as_i64().unwrap_or(0);
                    if col == "estimate_vnd" {
                        m.insert(line, v);
                    } else {
                        *m.entry(line).or_default() += v;
                    }
                    m
                },
            )
            .values()
            .sum()
    };
    let bn = |v: i64| format!("{} bn VND", group((v / 1_000_000_000).max(0) as u64));
    let (rev_a, rev_e) = (
        flow("revenue", "actual_vnd"),
        flow("revenue", "estimate_vnd"),
    );
    let (exp_a, exp_e) = (
        flow("expenditure", "actual_vnd"),
        flow("expenditure", "estimate_vnd"),
    );
    let (alloc, disb) = (
        sum(&investment, "allocated_vnd"),
        sum(&investment, "disbursed_vnd"),
    );
    println!(
        "  {:<44} {} of {} ({:.1}%)",
        "budget revenue collected / estimate",
        bn(rev_a),
        bn(rev_e),
        rev_a as f64 / rev_e.max(1) as f64 * 100.0
    );
    println!(
        "  {:<44} {} of {} ({:.1}%)",
        "budget expenditure paid / estimate",
        bn(exp_a),
        bn(exp_e),
        exp_a as f64 / exp_e.max(1) as f64 * 100.0
    );
    println!(
        "  {:<44} {} of {} ({:.1}%, {} projects)",
        "public investment disbursed / allocated",
        bn(disb),
        bn(alloc),
        disb as f64 / alloc.max(1) as f64 * 100.0,
        investment.len()
    );
    println!();
    Ok(all)
}

fn print_access(base: &str, t: &Tokens) {
    println!("Bảng điều hành / dashboard: {base}/dashboard");
    println!("  sign in with the center token below (a sector's token shows its own panels)");
    println!();
    println!("Tokens (Authorization: Bearer <token>):");
    println!("  admin     {}", t.admin);
    println!("  center    {}", t.center);
    println!("  steward   {}", t.steward);
    println!("  consumer  {}", t.consumer);
    for (sector, token) in &t.sectors {
        println!("  {sector:<9} {token}");
    }
    println!();
    println!("Try:");
    println!(
        "  curl -H 'Authorization: Bearer {}' '{base}/v1/views'",
        t.center
    );
    println!(
        "  curl -H 'Authorization: Bearer {}' '{base}/v1/views/service_dossiers?month=2021-12&format=csv'",
        t.center
    );
    println!(
        "  curl -H 'Authorization: Bearer {}' -H 'content-type: application/json' -d '{{\"sql\": \"SELECT agency_code, sum(received) AS received, sum(received_online) AS online FROM service_dossiers GROUP BY 1 ORDER BY 2 DESC LIMIT 5\"}}' {base}/v1/sql",
        t.center
    );
    println!("  {base}/healthz   {base}/metrics");
    println!();
}

fn print_catalog(base: &str, datasets: &[(String, String)]) {
    let count = |c: &str| datasets.iter().filter(|(_, s)| s == c).count();
    println!(
        "Catalog: {} datasets published ({} open, {} shared with the demo consumer, {} private)",
        datasets.len(),
        count("open"),
        count("shared"),
        count("private")
    );
    for (id, sharing) in datasets {
        println!("  {sharing:<8} {base}/v1/catalog/datasets/{id}");
    }
    if let Some((id, _)) = datasets.iter().find(|(_, s)| s == "open") {
        println!("  open data, no token:  curl '{base}/v1/catalog/datasets/{id}/data?format=csv'");
    }
    println!("  DCAT-AP:  {base}/catalog.jsonld");
    println!("  CKAN:     {base}/api/3/action/package_list");
    println!();
}
