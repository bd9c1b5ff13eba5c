//! Prometheus metrics: request latency by route, rejected batches by reason, the ingest
//! counters, and the governance entries the replay refused.
//!
//! Every label value comes from a closed set kho knows (registered streams, route
//! templates, standard methods, status codes, error codes): whatever a caller puts in a URL
//! or a method is counted under [`OTHER`], so no caller can add series or write into the
//! exposition.

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The label value of anything outside the known set.
pub const OTHER: &str = "other";

/// The standard methods; any other counts as [`OTHER`].
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => OTHER,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub stream: String,
    pub reason: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RouteLabels, Histogram>,
    rejected: Family<RejectLabels, Counter>,
    refused: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new(ingest: &kho_ingest::IngestMetrics) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "kho_http_request_duration_seconds",
            "HTTP request latency by route",
            requests.clone(),
        );
        registry.register(
            "kho_rejected_batches",
            "Append requests refused, by stream and reason",
            rejected.clone(),
        );
        let refused = Gauge::default();
        registry.register(
            "kho_governance_refused_entries",
            "Entries of the governance log the replay did not apply (GET /v1/catalog/refused says why); 0 on a healthy store",
            refused.clone(),
        );
        ingest.register(&mut registry);
        Self {
            registry: Mutex::new(registry),
            requests,
            rejected,
            refused,
        }
    }

    /// Counts a refused append; `stream` must be a registered stream's name or [`OTHER`],
    /// `reason` one of the API's error codes.
    pub fn rejected(&self, stream: &str, reason: &'static str) {
        self.rejected
            .get_or_create(&RejectLabels {
                stream: stream.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Sets how many governance entries the replay refused, as of now.
    pub fn set_refused(&self, n: usize) {
        self.refused.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("poisoned");
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String");
        out
    }
}

/// Records the latency of every request under its matched route (not the raw path).
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = method_label(req.method()).to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics
        .requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    resp
}
