//! KPI targets from `reference.targets`: the latest `target_set` per (kpi, year) wins.
//! A target whose kpi names a view's measure (`online_rate`, `on_time_rate`,
//! `answered_on_time_rate`, `execution_rate`, `disbursement_rate`) appears beside it as
//! `<measure>_target`.

use std::collections::HashMap;

use arrow::array::RecordBatch;

use super::rows::{OrderKey, Rows, opt_i32, opt_str};
use crate::error::Result;

pub(crate) const STREAM: &str = "reference.targets";

#[derive(Debug, Default, Clone)]
pub(crate) struct Targets {
    by_kpi_year: HashMap<(String, i32), (OrderKey, f64)>,
}

impl Targets {
    pub(crate) fn apply(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = Rows::new(batch, STREAM);
        let kpi = rows.strings("kpi")?;
        let year = rows.ints("year")?;
        let value = rows.doubles("target_value")?;
        let keys = rows.order_keys()?;
        for (i, key) in keys.into_iter().enumerate() {
            let (Some(k), Some(y)) = (opt_str(kpi, i), opt_i32(year, i)) else {
                continue;
            };
            let v = value.value(i);
            let slot = self
                .by_kpi_year
                .entry((k.to_owned(), y))
                .or_insert((key, v));
            if key >= slot.0 {
                *slot = (key, v);
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, kpi: &str, year: i32) -> Option<f64> {
        self.by_kpi_year
            .get(&(kpi.to_owned(), year))
            .map(|(_, v)| *v)
    }
}
