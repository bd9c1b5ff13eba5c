//! `investment_disbursement`: capital allocated and disbursed per project and year, beside
//! the project's registered attributes and its latest status.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::Fold;
use super::rows::{OrderKey, Rows, opt_i32, opt_i64, opt_str, ratio};
use super::targets::{self, Targets};
use crate::error::{QueryError, Result};

pub(crate) const STREAM: &str = "investment.projects";

#[derive(Debug, Default, Clone)]
struct Registration {
    name: String,
    investor: String,
    district: String,
    group: String,
    total: Option<i64>,
}

#[derive(Debug, Default)]
struct Project {
    registered: Option<(OrderKey, Registration)>,
    status: Option<(OrderKey, String)>,
    /// year -> (allocated, disbursed); i128, so no number of events wraps them.
    years: BTreeMap<i32, (i128, i128)>,
}

#[derive(Debug, Default)]
pub(crate) struct Investment {
    projects: HashMap<String, Project>,
    targets: Targets,
}

pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("year", DataType::Int32, false),
        Field::new("project_code", DataType::Utf8, false),
        Field::new("project_name", DataType::Utf8, true),
        Field::new("investor_code", DataType::Utf8, true),
        Field::new("district_code", DataType::Utf8, true),
        Field::new("group", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("total_investment_vnd", DataType::Int64, true),
        Field::new("allocated_vnd", DataType::Int64, false),
        Field::new("disbursed_vnd", DataType::Int64, false),
        Field::new("disbursement_rate", DataType::Float64, true),
        Field::new("disbursement_rate_target", DataType::Float64, true),
    ]))
}

/// Keeps `(key, value)` if `key` is the latest seen.
fn latest<T>(slot: &mut Option<(OrderKey, T)>, key: OrderKey, value: T) {
    if slot.as_ref().is_none_or(|(k, _)| key >= *k) {
        *slot = Some((key, value));
    }
}

impl Fold for Investment {
    fn apply(&mut self, stream: &str, batches: &[RecordBatch]) -> Result<()> {
        if stream == targets::STREAM {
            return batches.iter().try_for_each(|b| self.targets.apply(b));
        }
        for batch in batches {
            let rows = Rows::new(batch, STREAM);
            let types = rows.strings("event_type")?;
            let entity = rows.strings("entity_id")?;
            let keys = rows.order_keys()?;
            let name = rows.strings("project_name")?;
            let investor = rows.strings("investor_code")?;
            let district = rows.strings("district_code")?;
            let group = rows.strings("group")?;
            let total = rows.longs("total_investment_vnd")?;
            let year = rows.ints("year")?;
            let amount = rows.longs("amount_vnd")?;
            let status = rows.strings("status")?;
            for (i, key) in keys.into_iter().enumerate() {
                let p = self.projects.entry(entity.value(i).to_owned()).or_default();
                let text = |a: &StringArray| opt_str(a, i).unwrap_or_default().to_owned();
                match types.value(i) {
                    "project_registered" => {
                        let reg = Registration {
                            name: text(name),
                            investor: text(investor),
                            district: text(district),
                            group: text(group),
                            total: opt_i64(total, i),
                        };
                        latest(&mut p.registered, key, reg);
                        if let Some(s) = opt_str(status, i) {
                            latest(&mut p.status, key, s.to_owned());
                        }
                    }
                    "status_changed" => {
                        if let Some(s) = opt_str(status, i) {
                            latest(&mut p.status, key, s.to_owned());
                        }
                    }
                    kind @ ("capital_allocated" | "disbursement_made") => {
                        let (Some(y), Some(a)) = (opt_i32(year, i), opt_i64(amount, i)) else {
                            continue;
                        };
                        let cell = p.years.entry(y).or_default();
                        if kind == "capital_allocated" {
                            cell.0 += i128::from(a);
                        } else {
                            cell.1 += i128::from(a);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn rows(&self) -> Result<RecordBatch> {
        let mut out: Vec<(i32, &str, &Project, i64, i64)> = Vec::new();
        for (code, p) in &self.projects {
            for (&y, &(alloc, disb)) in &p.years {
                let fit = |v: i128, column: &str| {
                    i64::try_from(v).map_err(|_| {
                        QueryError::SumOverflow(format!(
                            "{column} of project {code} in {y} is {v} VND, beyond what the view's 64-bit column holds: some of its events are implausible"
                        ))
                    })
                };
                out.push((
                    y,
                    code,
                    p,
                    fit(alloc, "allocated_vnd")?,
                    fit(disb, "disbursed_vnd")?,
                ));
            }
        }
        out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let reg =
            |r: &(i32, &str, &Project, i64, i64)| r.2.registered.as_ref().map(|(_, g)| g.clone());
        let regs: Vec<Option<Registration>> = out.iter().map(reg).collect();
        let opt_text = |f: &dyn Fn(&Registration) -> &str| -> ArrayRef {
            Arc::new(
                regs.iter()
                    .map(|r| r.as_ref().map(f))
                    .collect::<StringArray>(),
            )
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(out.iter().map(|r| r.0).collect::<Int32Array>()),
            Arc::new(StringArray::from_iter_values(out.iter().map(|r| r.1))),
            opt_text(&|g| &g.name),
            opt_text(&|g| &g.investor),
            opt_text(&|g| &g.district),
            opt_text(&|g| &g.group),
            Arc::new(
                out.iter()
                    .map(|r| r.2.status.as_ref().map(|(_, s)| s.as_str()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                regs.iter()
                    .map(|r| r.as_ref().and_then(|g| g.total))
                    .collect::<Int64Array>(),
            ),
            Arc::new(out.iter().map(|r| r.3).collect::<Int64Array>()),
            Arc::new(out.iter().map(|r| r.4).collect::<Int64Array>()),
            Arc::new(
                out.iter()
                    .map(|r| ratio(r.4, r.3))
                    .collect::<Float64Array>(),
            ),
            Arc::new(
                out.iter()
                    .map(|r| self.targets.get("disbursement_rate", r.0))
                    .collect::<Float64Array>(),
            ),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}
