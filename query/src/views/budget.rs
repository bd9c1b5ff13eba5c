//! `budget_execution`: estimates and actuals by fiscal year, local month, agency, flow and
//! budget category; reversals netted out of the month (or estimate) of the entry they
//! reverse; year-to-date actuals and the execution rate against the annual estimate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::Fold;
use super::rows::{MonthIndex, Rows, local_month, month_label, opt_i32, opt_i64, opt_str, ratio};
use super::targets::{self, Targets};
use crate::error::{QueryError, Result};

pub(crate) const STREAM: &str = "finance.budget";

/// (fiscal_year, agency_code, flow, category_code)
type Line = (i32, String, String, String);

/// An output row: fiscal year, month, line, actual, year-to-date actual.
type OutRow = (i32, MonthIndex, usize, i64, i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Estimate,
    Actual,
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    month: MonthIndex,
    kind: Kind,
    amount: i64,
    reversed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Budget {
    lines: Vec<Line>,
    line_ids: HashMap<Line, usize>,
    entries: HashMap<u128, Entry>,
    /// Reversals whose entry has not been seen (kept until it is).
    orphans: HashMap<u128, ()>,
    /// Sums are i128: no number of events can wrap them; the output checks they fit.
    estimate: Vec<i128>,
    /// line -> month -> actual
    actual: Vec<BTreeMap<MonthIndex, i128>>,
    /// line -> months with any entry
    months: Vec<BTreeSet<MonthIndex>>,
    targets: Targets,
}

pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("fiscal_year", DataType::Int32, false),
        Field::new("month", DataType::Utf8, false),
        Field::new("agency_code", DataType::Utf8, false),
        Field::new("flow", DataType::Utf8, false),
        Field::new("category_code", DataType::Utf8, false),
        Field::new("estimate_vnd", DataType::Int64, false),
        Field::new("actual_vnd", DataType::Int64, false),
        Field::new("ytd_actual_vnd", DataType::Int64, false),
        Field::new("execution_rate", DataType::Float64, true),
        Field::new("execution_rate_target", DataType::Float64, true),
    ]))
}

impl Budget {
    fn line(&mut self, key: Line) -> usize {
        if let Some(&id) = self.line_ids.get(&key) {
            return id;
        }
        let id = self.lines.len();
        self.lines.push(key.clone());
        self.line_ids.insert(key, id);
        self.estimate.push(0);
        self.actual.push(BTreeMap::new());
        self.months.push(BTreeSet::new());
        id
    }

    /// Counts an entry or takes it back (`sign` = 1 or -1).
    fn count(&mut self, e: &Entry, sign: i128) {
        let v = sign * i128::from(e.amount);
        match e.kind {
            Kind::Estimate => self.estimate[e.line] += v,
            Kind::Actual => *self.actual[e.line].entry(e.month).or_default() += v,
        }
    }

    fn reverse(&mut self, target: u128) {
        match self.entries.get_mut(&target) {
            Some(e) if !e.reversed => {
                e.reversed = true;
                let e = e.clone();
                self.count(&e, -1);
            }
            Some(_) => {}
            None => {
                self.orphans.insert(target, ());
            }
        }
    }
}

impl Fold for Budget {
    fn apply(&mut self, stream: &str, batches: &[RecordBatch]) -> Result<()> {
        if stream == targets::STREAM {
            return batches.iter().try_for_each(|b| self.targets.apply(b));
        }
        let mut reversals = Vec::new();
        for batch in batches {
            let rows = Rows::new(batch, STREAM);
            let ids = rows.strings("event_id")?;
            let types = rows.strings("event_type")?;
            let at = rows.times("occurred_at")?;
            let fy = rows.ints("fiscal_year")?;
            let agency = rows.strings("agency_code")?;
            let flow = rows.strings("flow")?;
            let category = rows.strings("category_code")?;
            let amount = rows.longs("amount_vnd")?;
            let reverses = rows.strings("reverses_event_id")?;
            for i in 0..rows.len() {
                let kind = match types.value(i) {
                    "estimate_assigned" => Kind::Estimate,
                    "revenue_collected" | "expenditure_paid" => Kind::Actual,
                    "entry_reversed" => {
                        if let Some(t) = opt_str(reverses, i).and_then(parse_id) {
                            reversals.push(t);
                        }
                        continue;
                    }
                    _ => continue,
                };
                let (Some(id), Some(fy), Some(agency), Some(flow), Some(category), Some(amount)) = (
                    parse_id(ids.value(i)),
                    opt_i32(fy, i),
                    opt_str(agency, i),
                    opt_str(flow, i),
                    opt_str(category, i),
                    opt_i64(amount, i),
                ) else {
                    continue;
                };
                if self.entries.contains_key(&id) {
                    continue;
                }
                let line = self.line((fy, agency.to_owned(), flow.to_owned(), category.to_owned()));
                let month = local_month(at.value(i));
                self.months[line].insert(month);
                let entry = Entry {
                    line,
                    month,
                    kind,
                    amount,
                    reversed: false,
                };
                self.count(&entry, 1);
                self.entries.insert(id, entry);
                if self.orphans.remove(&id).is_some() {
                    self.reverse(id);
                }
            }
        }
        // Reversals after their entries: a batch may hold both, in any order.
        for t in reversals {
            self.reverse(t);
        }
        Ok(())
    }

    fn rows(&self) -> Result<RecordBatch> {
        let mut order: Vec<usize> = (0..self.lines.len()).collect();
        order.sort_by(|a, b| self.lines[*a].cmp(&self.lines[*b]));
        // Rows sorted by fiscal year, month, agency, flow, category.
        let mut out: Vec<OutRow> = Vec::new();
        let mut estimate = Vec::with_capacity(self.lines.len());
        for line in 0..self.lines.len() {
            estimate.push(fit(self.estimate[line], "estimate_vnd", &self.lines[line])?);
        }
        for &line in &order {
            let mut ytd = 0i128;
            for &m in &self.months[line] {
                let actual = self.actual[line].get(&m).copied().unwrap_or(0);
                ytd += actual;
                out.push((
                    self.lines[line].0,
                    m,
                    line,
                    fit(actual, "actual_vnd", &self.lines[line])?,
                    fit(ytd, "ytd_actual_vnd", &self.lines[line])?,
                ));
            }
        }
        out.sort_by(|a, b| (a.0, a.1, &self.lines[a.2]).cmp(&(b.0, b.1, &self.lines[b.2])));
        let col = |f: &dyn Fn(&OutRow) -> Option<f64>| -> ArrayRef {
            Arc::new(out.iter().map(f).collect::<Float64Array>())
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(out.iter().map(|r| r.0).collect::<Int32Array>()),
            Arc::new(StringArray::from_iter_values(
                out.iter().map(|r| month_label(r.1)),
            )),
            Arc::new(StringArray::from_iter_values(
                out.iter().map(|r| self.lines[r.2].1.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                out.iter().map(|r| self.lines[r.2].2.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                out.iter().map(|r| self.lines[r.2].3.as_str()),
            )),
            Arc::new(out.iter().map(|r| estimate[r.2]).collect::<Int64Array>()),
            Arc::new(out.iter().map(|r| r.3).collect::<Int64Array>()),
            Arc::new(out.iter().map(|r| r.4).collect::<Int64Array>()),
            col(&|r| ratio(r.4, estimate[r.2])),
            col(&|r| self.targets.get("execution_rate", r.0)),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// A sum as the view's Int64 column, or the error that says it does not fit.
fn fit(v: i128, column: &str, line: &Line) -> Result<i64> {
    i64::try_from(v).map_err(|_| {
        QueryError::SumOverflow(format!(
            "{column} of fiscal year {}, agency {}, {} {} is {v} VND, beyond what the view's 64-bit column holds: some events of that line are implausible and must be reversed",
            line.0, line.1, line.2, line.3
        ))
    })
}

fn parse_id(s: &str) -> Option<u128> {
    uuid::Uuid::try_parse(s).ok().map(|u| u.as_u128())
}
