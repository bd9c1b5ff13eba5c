//! Retractions: every stream's `event_retracted` names an event that should never have been
//! appended. The log keeps both; a view folds the stream as if neither had been there.
//!
//! A fold never sees a retraction or a retracted event: whole folds (the first refresh, a
//! restore, a rebuild) read the source through [`without_retracted`], and a refresh whose new
//! commits carry a retraction ([`has_retraction`]) rebuilds the view from its sources instead
//! of folding the commits in, because a fold cannot take back a "first receipt" or a "latest
//! status". Retractions are rare corrections, so the cost of a rebuild (one read of the
//! view's sources) is paid rarely; every other refresh stays incremental.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use kho_store::schema::{EVENT_ID, EVENT_TYPE, RETRACTION, RETRACTS};

use crate::error::Result;

/// Whether any row of `batches` is a retraction.
pub(crate) fn has_retraction(batches: &[RecordBatch]) -> bool {
    batches.iter().any(|b| {
        b.column_by_name(EVENT_TYPE)
            .and_then(|c| c.as_string_opt::<i32>())
            .is_some_and(|types| types.iter().any(|t| t == Some(RETRACTION)))
    })
}

/// The rows of a whole stream without its retractions and the events they retract.
pub(crate) fn without_retracted(batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    if !has_retraction(&batches) {
        return Ok(batches);
    }
    let mut retracted: HashSet<&str> = HashSet::new();
    for b in &batches {
        let (Some(types), Some(targets)) = (
            b.column_by_name(EVENT_TYPE)
                .and_then(|c| c.as_string_opt::<i32>()),
            b.column_by_name(RETRACTS)
                .and_then(|c| c.as_string_opt::<i32>()),
        ) else {
            continue;
        };
        for i in 0..b.num_rows() {
            if types.value(i) == RETRACTION && !targets.is_null(i) {
                retracted.insert(targets.value(i));
            }
        }
    }
    let mut out = Vec::with_capacity(batches.len());
    for b in &batches {
        let (Some(ids), Some(types)) = (
            b.column_by_name(EVENT_ID)
                .and_then(|c| c.as_string_opt::<i32>()),
            b.column_by_name(EVENT_TYPE)
                .and_then(|c| c.as_string_opt::<i32>()),
        ) else {
            out.push(b.clone());
            continue;
        };
        let keep: BooleanArray = (0..b.num_rows())
            .map(|i| Some(types.value(i) != RETRACTION && !retracted.contains(ids.value(i))))
            .collect();
        if keep.true_count() == b.num_rows() {
            out.push(b.clone());
        } else if keep.true_count() > 0 {
            out.push(filter_record_batch(b, &keep)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: &[(&str, &str, Option<&str>)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new(EVENT_ID, DataType::Utf8, false),
            Field::new(EVENT_TYPE, DataType::Utf8, false),
            Field::new(RETRACTS, DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(rows.iter().map(|r| r.2).collect::<StringArray>()),
            ],
        )
        .unwrap()
    }

    fn ids(batches: &[RecordBatch]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_string::<i32>();
                (0..a.len())
                    .map(|i| a.value(i).to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_retraction_takes_out_its_event_in_any_batch() {
        let batches = vec![
            batch(&[("a", "x", None), ("b", "x", None)]),
            batch(&[("c", RETRACTION, Some("a")), ("d", "x", None)]),
            // A retraction before (in read order) the event it retracts.
            batch(&[("e", RETRACTION, Some("f"))]),
            batch(&[("f", "x", None)]),
        ];
        assert!(has_retraction(&batches));
        assert_eq!(ids(&without_retracted(batches).unwrap()), ["b", "d"]);
        let plain = vec![batch(&[("a", "x", None)])];
        assert!(!has_retraction(&plain));
        assert_eq!(ids(&without_retracted(plain).unwrap()), ["a"]);
    }
}
