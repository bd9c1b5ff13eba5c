//! `service_dossiers`: dossiers by local month of receipt and agency. Each dossier's state is
//! folded from its events; each state contributes to one group; a new event takes the old
//! contribution back and adds the new one, so a refresh touches only the groups of the
//! dossiers it saw.
//!
//! - received: dossiers received; received_online: received online at level 3 or 4.
//! - resolved / resolved_on_time: resolved, and resolved no later than `due_at` (the first
//!   resolution counts).
//! - pending: received, neither resolved nor withdrawn; pending_overdue: pending with
//!   `due_at` before the watermark, the newest `occurred_at` seen in the stream.
//! - postal: received by post or returned by post (counted once).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::rows::{
    MonthIndex, OrderKey, Rows, local_month, month_label, month_year, opt_i32, opt_str, opt_ts,
    ratio,
};
use super::targets::{self, Targets};
use super::{Fold, OverdueDossier};
use crate::error::Result;

pub(crate) const STREAM: &str = "service.dossiers";

#[derive(Debug, Clone)]
struct Receipt {
    key: OrderKey,
    month: MonthIndex,
    agency: usize,
    online: bool,
    postal: bool,
    due_at: i64,
    procedure: Option<usize>,
}

#[derive(Debug, Default, Clone)]
struct Dossier {
    receipt: Option<Receipt>,
    resolved_at: Option<i64>,
    withdrawn: bool,
    returned_postal: bool,
}

/// What one dossier adds to its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Contribution {
    group: (MonthIndex, usize),
    online: bool,
    resolved: bool,
    on_time: bool,
    /// `Some(due_at)` while pending.
    pending_due: Option<i64>,
    postal: bool,
}

impl Dossier {
    fn contribution(&self) -> Option<Contribution> {
        let r = self.receipt.as_ref()?;
        let resolved = self.resolved_at.is_some();
        Some(Contribution {
            group: (r.month, r.agency),
            online: r.online,
            resolved,
            on_time: self.resolved_at.is_some_and(|t| t <= r.due_at),
            pending_due: (!resolved && !self.withdrawn).then_some(r.due_at),
            postal: r.postal || self.returned_postal,
        })
    }
}

#[derive(Debug, Default, Clone)]
struct Group {
    received: i64,
    online: i64,
    resolved: i64,
    on_time: i64,
    postal: i64,
    /// due_at -> pending dossiers due then
    pending_due: BTreeMap<i64, i64>,
    pending: i64,
}

impl Group {
    fn add(&mut self, c: &Contribution, sign: i64) {
        self.received += sign;
        self.online += sign * i64::from(c.online);
        self.resolved += sign * i64::from(c.resolved);
        self.on_time += sign * i64::from(c.on_time);
        self.postal += sign * i64::from(c.postal);
        if let Some(due) = c.pending_due {
            self.pending += sign;
            let n = self.pending_due.entry(due).or_default();
            *n += sign;
            if *n == 0 {
                self.pending_due.remove(&due);
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Dossiers {
    dossiers: HashMap<String, Dossier>,
    agencies: Vec<String>,
    agency_ids: HashMap<String, usize>,
    procedures: Vec<String>,
    procedure_ids: HashMap<String, usize>,
    groups: HashMap<(MonthIndex, usize), Group>,
    watermark: Option<i64>,
    targets: Targets,
}

pub(crate) fn schema() -> SchemaRef {
    let count = |n: &str| Field::new(n, DataType::Int64, false);
    let rate = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("month", DataType::Utf8, false),
        Field::new("agency_code", DataType::Utf8, false),
        count("received"),
        count("received_online"),
        rate("online_rate"),
        rate("online_rate_target"),
        count("resolved"),
        count("resolved_on_time"),
        rate("on_time_rate"),
        rate("on_time_rate_target"),
        count("pending"),
        count("pending_overdue"),
        count("postal"),
    ]))
}

impl Dossiers {
    fn procedure(&mut self, code: &str) -> usize {
        if let Some(&id) = self.procedure_ids.get(code) {
            return id;
        }
        let id = self.procedures.len();
        self.procedures.push(code.to_owned());
        self.procedure_ids.insert(code.to_owned(), id);
        id
    }

    fn agency(&mut self, code: &str) -> usize {
        if let Some(&id) = self.agency_ids.get(code) {
            return id;
        }
        let id = self.agencies.len();
        self.agencies.push(code.to_owned());
        self.agency_ids.insert(code.to_owned(), id);
        id
    }
}

impl Fold for Dossiers {
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
            let level = rows.ints("level")?;
            let channel = rows.strings("channel")?;
            let due = rows.times("due_at")?;
            let return_channel = rows.strings("return_channel")?;
            let procedure = rows.strings("procedure_code")?;
            for (i, key) in keys.into_iter().enumerate() {
                self.watermark = Some(self.watermark.map_or(key.0, |w| w.max(key.0)));
                let receipt = match types.value(i) {
                    "dossier_received" => {
                        let (Some(a), Some(due_at)) = (opt_str(agency, i), opt_ts(due, i)) else {
                            continue;
                        };
                        let ch = opt_str(channel, i);
                        let procedure = opt_str(procedure, i).map(|p| self.procedure(p));
                        Some(Receipt {
                            key,
                            month: local_month(key.0),
                            agency: self.agency(a),
                            online: ch == Some("online")
                                && matches!(opt_i32(level, i), Some(3 | 4)),
                            postal: ch == Some("postal"),
                            due_at,
                            procedure,
                        })
                    }
                    _ => None,
                };
                let d = self.dossiers.entry(entity.value(i).to_owned()).or_default();
                let before = d.contribution();
                match types.value(i) {
                    "dossier_received" => {
                        // The first receipt counts.
                        if let Some(r) = receipt
                            && d.receipt.as_ref().is_none_or(|old| r.key < old.key)
                        {
                            d.receipt = Some(r);
                        }
                    }
                    "dossier_resolved" => {
                        d.resolved_at = Some(d.resolved_at.map_or(key.0, |t| t.min(key.0)));
                    }
                    "dossier_withdrawn" => d.withdrawn = true,
                    "dossier_returned" => {
                        d.returned_postal |= opt_str(return_channel, i) == Some("postal");
                    }
                    _ => {}
                }
                let after = d.contribution();
                if before != after {
                    if let Some(c) = before {
                        self.groups.entry(c.group).or_default().add(&c, -1);
                    }
                    if let Some(c) = after {
                        self.groups.entry(c.group).or_default().add(&c, 1);
                    }
                }
            }
        }
        self.groups.retain(|_, g| g.received != 0);
        Ok(())
    }

    fn rows(&self) -> Result<RecordBatch> {
        let mut keys: Vec<&(MonthIndex, usize)> = self.groups.keys().collect();
        keys.sort_by(|a, b| (a.0, &self.agencies[a.1]).cmp(&(b.0, &self.agencies[b.1])));
        let groups: Vec<&Group> = keys.iter().map(|k| &self.groups[*k]).collect();
        let wm = self.watermark.unwrap_or(i64::MIN);
        let count = |f: &dyn Fn(&Group) -> i64| -> ArrayRef {
            Arc::new(groups.iter().map(|g| f(g)).collect::<Int64Array>())
        };
        let target = |kpi: &str| -> ArrayRef {
            Arc::new(
                keys.iter()
                    .map(|k| self.targets.get(kpi, month_year(k.0)))
                    .collect::<Float64Array>(),
            )
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| month_label(k.0)),
            )),
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| self.agencies[k.1].as_str()),
            )),
            count(&|g| g.received),
            count(&|g| g.online),
            Arc::new(
                groups
                    .iter()
                    .map(|g| ratio(g.online, g.received))
                    .collect::<Float64Array>(),
            ),
            target("online_rate"),
            count(&|g| g.resolved),
            count(&|g| g.on_time),
            Arc::new(
                groups
                    .iter()
                    .map(|g| ratio(g.on_time, g.resolved))
                    .collect::<Float64Array>(),
            ),
            target("on_time_rate"),
            count(&|g| g.pending),
            count(&|g| g.pending_due.range(..wm).map(|(_, n)| n).sum()),
            count(&|g| g.postal),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }

    fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    fn overdue(&self, agency: &str) -> Vec<OverdueDossier> {
        let Some(&a) = self.agency_ids.get(agency) else {
            return Vec::new();
        };
        let wm = self.watermark.unwrap_or(i64::MIN);
        let time = |t: i64| chrono::DateTime::from_timestamp_micros(t).unwrap_or_default();
        let mut out: Vec<OverdueDossier> = self
            .dossiers
            .iter()
            .filter_map(|(id, d)| {
                let r = d.receipt.as_ref()?;
                // The same test as pending_overdue: pending, due before the watermark.
                let pending = d.resolved_at.is_none() && !d.withdrawn;
                (r.agency == a && pending && r.due_at < wm).then(|| OverdueDossier {
                    entity_id: id.clone(),
                    agency_code: agency.to_owned(),
                    procedure_code: r.procedure.map(|p| self.procedures[p].clone()),
                    month: month_label(r.month),
                    received_at: time(r.key.0),
                    due_at: time(r.due_at),
                })
            })
            .collect();
        out.sort_by(|x, y| (x.due_at, &x.entity_id).cmp(&(y.due_at, &y.entity_id)));
        out
    }
}
