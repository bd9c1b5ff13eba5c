//! The operations center's materialized views: where events are folded into views.
//!
//! Each view is a fold: events of its source streams update per-entity state (a budget
//! entry, a project, a dossier, a feedback item, a procedure), and per-group aggregates are
//! kept current from the entities' contributions. Every fold is independent of the order
//! and batching of the events it sees (sums, first/latest by occurrence time then event id),
//! so folding new commits into the state gives exactly what folding the whole log would.
//! A retracted event is folded as if it had never been appended ([`retracted`]).
//! [`engine`] decides what to fold when and writes each view as a Delta table.

pub(crate) mod budget;
pub(crate) mod dossiers;
pub mod engine;
pub(crate) mod feedback;
pub(crate) mod investment;
pub(crate) mod procedures;
pub(crate) mod retracted;
pub(crate) mod rows;
pub(crate) mod targets;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde::Serialize;

use crate::error::Result;

/// A fold: the state of one view.
pub(crate) trait Fold: Send + Sync {
    /// Folds rows of one source stream (rows within a call may come in any order).
    fn apply(&mut self, stream: &str, batches: &[RecordBatch]) -> Result<()>;
    /// The view's rows from the current state, sorted by the grain.
    fn rows(&self) -> Result<RecordBatch>;
    /// The event-time watermark, for views that measure against one.
    fn watermark(&self) -> Option<i64> {
        None
    }
    /// The dossiers behind `pending_overdue` for one agency: pending with `due_at` before the
    /// watermark (the dossiers view only; empty for the others).
    fn overdue(&self, _agency: &str) -> Vec<OverdueDossier> {
        Vec::new()
    }
}

/// One dossier still pending past its due date, as the drill-down lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverdueDossier {
    pub entity_id: String,
    pub agency_code: String,
    pub procedure_code: Option<String>,
    /// The local month of receipt, `yyyy-mm`: the view row that counts it.
    pub month: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub due_at: chrono::DateTime<chrono::Utc>,
}

/// What a view is: its sources, grain and measures.
#[derive(Debug, Serialize)]
pub struct ViewSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub sources: &'static [&'static str],
    pub grain: &'static [&'static str],
    pub measures: &'static [&'static str],
    #[serde(skip)]
    schema: fn() -> SchemaRef,
    #[serde(skip)]
    new: fn() -> Box<dyn Fold>,
}

impl ViewSpec {
    pub fn schema(&self) -> SchemaRef {
        (self.schema)()
    }

    pub(crate) fn fold(&self) -> Box<dyn Fold> {
        (self.new)()
    }

    /// The table key of the view under the store root.
    pub fn key(&self) -> String {
        format!("views/{}", self.name)
    }
}

/// The five views.
pub static VIEWS: [ViewSpec; 5] = [
    ViewSpec {
        name: "budget_execution",
        description: "Budget estimates and actuals (net of reversals) by fiscal year, local month, agency, flow and category, with year-to-date actuals and the execution rate against the annual estimate.",
        sources: &[budget::STREAM, targets::STREAM],
        grain: &[
            "fiscal_year",
            "month",
            "agency_code",
            "flow",
            "category_code",
        ],
        measures: &[
            "estimate_vnd",
            "actual_vnd",
            "ytd_actual_vnd",
            "execution_rate",
            "execution_rate_target",
        ],
        schema: budget::schema,
        new: || Box::<budget::Budget>::default(),
    },
    ViewSpec {
        name: "investment_disbursement",
        description: "Public-investment capital allocated and disbursed per project and year, with the project's investor, district, group and latest status.",
        sources: &[investment::STREAM, targets::STREAM],
        grain: &["year", "project_code"],
        measures: &[
            "allocated_vnd",
            "disbursed_vnd",
            "disbursement_rate",
            "disbursement_rate_target",
        ],
        schema: investment::schema,
        new: || Box::<investment::Investment>::default(),
    },
    ViewSpec {
        name: "service_dossiers",
        description: "Administrative-procedure dossiers by local month of receipt and agency: received, online at level 3/4, resolved, on time, pending, overdue at the watermark, postal.",
        sources: &[dossiers::STREAM, targets::STREAM],
        grain: &["month", "agency_code"],
        measures: &[
            "received",
            "received_online",
            "online_rate",
            "online_rate_target",
            "resolved",
            "resolved_on_time",
            "on_time_rate",
            "on_time_rate_target",
            "pending",
            "pending_overdue",
            "postal",
        ],
        schema: dossiers::schema,
        new: || Box::<dossiers::Dossiers>::default(),
    },
    ViewSpec {
        name: "service_feedback",
        description: "Citizen feedback by local month of receipt and agency: received, answered, in progress, answered on time.",
        sources: &[feedback::STREAM, targets::STREAM],
        grain: &["month", "agency_code"],
        measures: &[
            "received",
            "answered",
            "in_progress",
            "answered_on_time",
            "answered_on_time_rate",
            "answered_on_time_rate_target",
        ],
        schema: feedback::schema,
        new: || Box::<feedback::Feedback>::default(),
    },
    ViewSpec {
        name: "service_procedures",
        description: "Administrative procedures currently published per agency: total, at level 4, on the national public-service portal.",
        sources: &[procedures::STREAM],
        grain: &["agency_code"],
        measures: &["published", "level_4", "on_national_portal"],
        schema: procedures::schema,
        new: || Box::<procedures::Procedures>::default(),
    },
];

/// The view named `name`.
pub fn spec(name: &str) -> Option<&'static ViewSpec> {
    VIEWS.iter().find(|v| v.name == name)
}
