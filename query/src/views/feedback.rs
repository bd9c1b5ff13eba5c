//! `service_feedback`: citizen feedback by local month of receipt and agency.
//!
//! - answered: has a `feedback_answered` (the first answer counts);
//!   answered_on_time: answered no later than `due_at`.
//! - in_progress: received, neither answered nor closed.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::Fold;
use super::rows::{
    MonthIndex, OrderKey, Rows, local_month, month_label, month_year, opt_str, opt_ts, ratio,
};
use super::targets::{self, Targets};
use crate::error::Result;

pub(crate) const STREAM: &str = "service.feedback";

#[derive(Debug, Clone)]
struct Receipt {
    key: OrderKey,
    month: MonthIndex,
    agency: String,
    due_at: i64,
}

#[derive(Debug, Default, Clone)]
struct Item {
    receipt: Option<Receipt>,
    answered_at: Option<i64>,
    closed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Contribution {
    group: (MonthIndex, String),
    answered: bool,
    on_time: bool,
    in_progress: bool,
}

impl Item {
    fn contribution(&self) -> Option<Contribution> {
        let r = self.receipt.as_ref()?;
        Some(Contribution {
            group: (r.month, r.agency.clone()),
            answered: self.answered_at.is_some(),
            on_time: self.answered_at.is_some_and(|t| t <= r.due_at),
            in_progress: self.answered_at.is_none() && !self.closed,
        })
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Group {
    received: i64,
    answered: i64,
    on_time: i64,
    in_progress: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Feedback {
    items: HashMap<String, Item>,
    groups: HashMap<(MonthIndex, String), Group>,
    targets: Targets,
}

pub(crate) fn schema() -> SchemaRef {
    let count = |n: &str| Field::new(n, DataType::Int64, false);
    let rate = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("month", DataType::Utf8, false),
        Field::new("agency_code", DataType::Utf8, false),
        count("received"),
        count("answered"),
        count("in_progress"),
        count("answered_on_time"),
        rate("answered_on_time_rate"),
        rate("answered_on_time_rate_target"),
    ]))
}

impl Fold for Feedback {
    fn apply(&mut self, stream: &str, batches: &[RecordBatch]) -> Result<()> {
        if stream == targets::STREAM {
            return batches.iter().try_for_each(|b| self.targets.apply(b));
        }
        for batch in batches {
            let rows = Rows::new(batch, STREAM);
            let types = rows.strings("event_type")?;
            let entity = rows.strings("entity_id")?;
            let keys = rows.order_keys()?;
            let agency = rows.strings("agency_code")?;
            let due = rows.times("due_at")?;
            for (i, key) in keys.into_iter().enumerate() {
                let item = self.items.entry(entity.value(i).to_owned()).or_default();
                let before = item.contribution();
                match types.value(i) {
                    "feedback_received" => {
                        if let (Some(a), Some(due_at)) = (opt_str(agency, i), opt_ts(due, i))
                            && item.receipt.as_ref().is_none_or(|old| key < old.key)
                        {
                            item.receipt = Some(Receipt {
                                key,
                                month: local_month(key.0),
                                agency: a.to_owned(),
                                due_at,
                            });
                        }
                    }
                    "feedback_answered" => {
                        item.answered_at = Some(item.answered_at.map_or(key.0, |t| t.min(key.0)));
                    }
                    "feedback_closed" => item.closed = true,
                    _ => {}
                }
                let after = item.contribution();
                if before != after {
                    for (c, sign) in [(before, -1), (after, 1)] {
                        if let Some(c) = c {
                            let g = self.groups.entry(c.group).or_default();
                            g.received += sign;
                            g.answered += sign * i64::from(c.answered);
                            g.on_time += sign * i64::from(c.on_time);
                            g.in_progress += sign * i64::from(c.in_progress);
                        }
                    }
                }
            }
        }
        self.groups.retain(|_, g| g.received != 0);
        Ok(())
    }

    fn rows(&self) -> Result<RecordBatch> {
        let mut keys: Vec<&(MonthIndex, String)> = self.groups.keys().collect();
        keys.sort();
        let groups: Vec<Group> = keys.iter().map(|k| self.groups[*k]).collect();
        let count = |f: fn(&Group) -> i64| -> ArrayRef {
            Arc::new(groups.iter().map(f).collect::<Int64Array>())
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| month_label(k.0)),
            )),
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| k.1.as_str()),
            )),
            count(|g| g.received),
            count(|g| g.answered),
            count(|g| g.in_progress),
            count(|g| g.on_time),
            Arc::new(
                groups
                    .iter()
                    .map(|g| ratio(g.on_time, g.answered))
                    .collect::<Float64Array>(),
            ),
            Arc::new(
                keys.iter()
                    .map(|k| self.targets.get("answered_on_time_rate", month_year(k.0)))
                    .collect::<Float64Array>(),
            ),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}
