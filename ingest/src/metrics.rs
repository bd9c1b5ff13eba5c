//! Ingest counters, registered by the server into its Prometheus registry.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    pub stream: String,
}

/// Events and commits per stream, and commit latency.
#[derive(Clone)]
pub struct IngestMetrics {
    events: Family<StreamLabel, Counter>,
    commits: Family<StreamLabel, Counter>,
    commit_seconds: Family<StreamLabel, Histogram>,
}

impl std::fmt::Debug for IngestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestMetrics")
    }
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self {
            events: Family::default(),
            commits: Family::default(),
            commit_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
        }
    }
}

impl IngestMetrics {
    /// Registers the counters under `kho_`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kho_events_appended",
            "Events written to a stream",
            self.events.clone(),
        );
        registry.register(
            "kho_commits",
            "Delta commits of appended events",
            self.commits.clone(),
        );
        registry.register(
            "kho_commit_duration_seconds",
            "Time to write and commit one group of requests",
            self.commit_seconds.clone(),
        );
    }

    pub(crate) fn committed(&self, stream: &str, events: u64, took: Duration) {
        let l = StreamLabel {
            stream: stream.to_owned(),
        };
        self.events.get_or_create(&l).inc_by(events);
        self.commits.get_or_create(&l).inc();
        self.commit_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }
}
