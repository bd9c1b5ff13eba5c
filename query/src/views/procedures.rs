//! `service_procedures`: the administrative procedures currently published, per agency: how
//! many, how many at level 4, how many on the national public-service portal. A procedure's
//! latest event (by occurrence time) decides whether and how it is published.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::Fold;
use super::rows::{OrderKey, Rows, opt_i32, opt_str};
use crate::error::Result;

pub(crate) const STREAM: &str = "service.procedures";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Published {
    agency: String,
    level_4: bool,
    portal: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Procedures {
    /// procedure -> latest event: `Some` when published, `None` when withdrawn
    latest: HashMap<String, (OrderKey, Option<Published>)>,
}

pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("agency_code", DataType::Utf8, false),
        Field::new("published", DataType::Int64, false),
        Field::new("level_4", DataType::Int64, false),
        Field::new("on_national_portal", DataType::Int64, false),
    ]))
}

impl Fold for Procedures {
    fn apply(&mut self, stream: &str, batches: &[RecordBatch]) -> Result<()> {
        if stream != STREAM {
            return Ok(());
        }
        for batch in batches {
            let rows = Rows::new(batch, STREAM);
            let types = rows.strings("event_type")?;
            let entity = rows.strings("entity_id")?;
            let keys = rows.order_keys()?;
            let agency = rows.strings("agency_code")?;
            let level = rows.ints("level")?;
            let portal = rows.bools("on_national_portal")?;
            for (i, key) in keys.into_iter().enumerate() {
                let state = match types.value(i) {
                    "procedure_published" => Some(Published {
                        agency: opt_str(agency, i).unwrap_or_default().to_owned(),
                        level_4: opt_i32(level, i) == Some(4),
                        portal: !portal.is_null(i) && portal.value(i),
                    }),
                    "procedure_withdrawn" => None,
                    _ => continue,
                };
                let slot = self
                    .latest
                    .entry(entity.value(i).to_owned())
                    .or_insert((key, state.clone()));
                if key >= slot.0 {
                    *slot = (key, state);
                }
            }
        }
        Ok(())
    }

    fn rows(&self) -> Result<RecordBatch> {
        // A handful of agencies: recounting them is the cheap part of a refresh.
        let mut by_agency: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
        for (_, p) in self.latest.values() {
            if let Some(p) = p {
                let c = by_agency.entry(&p.agency).or_default();
                c.0 += 1;
                c.1 += i64::from(p.level_4);
                c.2 += i64::from(p.portal);
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(by_agency.keys().copied())),
            Arc::new(by_agency.values().map(|c| c.0).collect::<Int64Array>()),
            Arc::new(by_agency.values().map(|c| c.1).collect::<Int64Array>()),
            Arc::new(by_agency.values().map(|c| c.2).collect::<Int64Array>()),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}
