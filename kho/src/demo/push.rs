//! Pushing the feeds through the HTTP API, as the sector systems would: each with its own
//! sector token, in batches with idempotency keys, several batches in flight.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::generate::Feed;

/// Events per request.
pub(crate) const BATCH: usize = 5_000;

/// One stream's progress bar, across all years.
pub(crate) struct Bars {
    multi: MultiProgress,
    bars: HashMap<&'static str, ProgressBar>,
}

impl Bars {
    pub(crate) fn new(totals: &[(&'static str, u64)]) -> Self {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template(
            "{prefix:>20} {bar:40.cyan/blue} {pos:>9}/{len:9} {per_sec:>12}",
        )
        .expect("static template")
        .progress_chars("█▉▊▋▌▍▎▏ ");
        let bars = totals
            .iter()
            .map(|(stream, total)| {
                let bar = multi.add(ProgressBar::new(*total));
                bar.set_style(style.clone());
                bar.set_prefix(*stream);
                (*stream, bar)
            })
            .collect();
        Self { multi, bars }
    }

    pub(crate) fn finish(&self) {
        for b in self.bars.values() {
            b.finish();
        }
        let _ = self.multi.clear();
    }
}

/// Posts one feed. Batches carry `Idempotency-Key: demo-<seed>-<year>-<stream>-<n>`, so a
/// retried batch is never written twice. Budget entries go one batch at a time: a reversal
/// must follow the entry it reverses. Retractions go last, once every batch of the feed is
/// in, as a clerk's corrections follow what they correct.
pub(crate) async fn push(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    seed: u64,
    year: i32,
    feed: Feed,
    bars: &Bars,
) -> anyhow::Result<u64> {
    let in_flight = if feed.stream == "finance.budget" {
        1
    } else {
        4
    };
    let (corrections, events): (Vec<String>, Vec<String>) = feed
        .lines
        .into_iter()
        .partition(|l| l.contains(r#""event_type":"event_retracted""#));
    let mut total = 0;
    for (lines, in_flight, kind) in [(events, in_flight, ""), (corrections, 1, "retractions-")] {
        total += push_lines(
            http,
            base,
            token,
            &format!("demo-{seed}-{year}-{}-{kind}", feed.stream),
            feed.stream,
            lines,
            in_flight,
            bars,
        )
        .await?;
    }
    Ok(total)
}

/// Posts lines in batches of [`BATCH`], `in_flight` at a time, batch `i` with key
/// `<key_prefix><i>`.
#[allow(clippy::too_many_arguments)]
async fn push_lines(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    key_prefix: &str,
    stream: &'static str,
    lines: Vec<String>,
    in_flight: usize,
    bars: &Bars,
) -> anyhow::Result<u64> {
    let url = format!("{base}/v1/streams/{stream}/events");
    let bar = bars.bars.get(stream).cloned();
    // Bodies are made as they are sent: only the batches in flight are in memory twice.
    let lines = std::sync::Arc::new(lines);
    let batches = lines.len().div_ceil(BATCH);
    let mut sends = futures::stream::iter((0..batches).map(|i| {
        let chunk = &lines[i * BATCH..((i + 1) * BATCH).min(lines.len())];
        let (body, n) = (Bytes::from(chunk.join("\n")), chunk.len() as u64);
        let key = format!("{key_prefix}{i}");
        let (http, url) = (http.clone(), url.clone());
        async move { post(&http, &url, token, &key, body).await.map(|()| n) }
    }))
    .buffered(in_flight);
    let mut total = 0;
    while let Some(n) = sends.next().await {
        let n = n?;
        total += n;
        if let Some(b) = &bar {
            b.inc(n);
        }
    }
    Ok(total)
}

/// One batch, retried on 429 and 503 (as a sector system should) with the same key.
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    key: &str,
    body: Bytes,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let r = http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", key)
            .body(body.clone())
            .send()
            .await?;
        let status = r.status();
        if status.is_success() {
            return Ok(());
        }
        let text = r.text().await.unwrap_or_default();
        if (status == 429 || status == 503) && started.elapsed() < Duration::from_secs(300) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        anyhow::bail!("{url} answered {status}: {text}");
    }
}
