//! `sum` over 64-bit integers that says so instead of wrapping.
//!
//! DataFusion's `sum` adds `Int64` values with wrapping arithmetic: three `i64::MAX` sum to
//! `-9223372036854775811 mod 2^64`, silently. In kho's SQL sessions `sum` is replaced by this
//! one, which for an `Int64` result (every integer column sums to `Int64`) adds with
//! checked arithmetic, in plain, `DISTINCT` and window (sliding) forms, and fails the query
//! with [`OVERFLOW`] when a sum leaves 64 bits; every other type is summed by DataFusion's
//! own. It never answers from file statistics. A failure may be conservative: a partial sum
//! that leaves 64 bits fails even if later negative values would have brought it back.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListArray};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, ReversedUDAF,
    SetMonotonicity, Signature,
};
use datafusion::prelude::SessionContext;

/// The message a sum that leaves 64 bits fails with.
pub const OVERFLOW: &str = "sum leaves the 64-bit integer range";

/// A sum left 64 bits: carried through DataFusion as an external error.
#[derive(Debug, thiserror::Error)]
#[error("{OVERFLOW}")]
pub struct Overflow;

/// Replaces `sum` in `ctx` with the checked one.
pub fn install(ctx: &SessionContext) {
    if let Some(inner) = ctx.state().aggregate_functions().get("sum").cloned() {
        ctx.register_udaf(AggregateUDF::new_from_impl(CheckedSum {
            inner: (*inner).clone(),
        }));
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedSum {
    inner: AggregateUDF,
}

fn int64(args: &AccumulatorArgs) -> bool {
    args.return_field.data_type() == &DataType::Int64
}

fn overflow<T>() -> Result<T> {
    Err(datafusion::error::DataFusionError::External(Box::new(
        Overflow,
    )))
}

impl AggregateUDFImpl for CheckedSum {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match (int64(&args), args.is_distinct) {
            (true, false) => Ok(Box::<Sum>::default()),
            (true, true) => Ok(Box::<DistinctSum>::default()),
            (false, _) => self.inner.accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        // The same state as DataFusion's: an Int64 sum, or the list of distinct values.
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        // Int64 groups go through per-group accumulators (DataFusion's adapter).
        !int64(&args) && self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if int64(&args) && !args.is_distinct {
            Ok(Box::<Sum>::default())
        } else if int64(&args) {
            crate::guard::refuse("sum(DISTINCT …) over a window frame is not supported".into())
        } else {
            self.inner.create_sliding_accumulator(args)
        }
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// A checked Int64 sum; retractable, for window frames.
#[derive(Debug, Default)]
struct Sum {
    sum: Option<i64>,
}

impl Sum {
    fn add(&mut self, values: &ArrayRef, sign: i64) -> Result<()> {
        let Some(values) = values.as_primitive_opt::<Int64Type>() else {
            return exec_err!("sum expected 64-bit integers, got {}", values.data_type());
        };
        for v in values.iter().flatten() {
            let v = if sign < 0 {
                v.checked_neg().map_or_else(overflow, Ok)?
            } else {
                v
            };
            self.sum = Some(
                self.sum
                    .unwrap_or(0)
                    .checked_add(v)
                    .map_or_else(overflow, Ok)?,
            );
        }
        Ok(())
    }
}

impl Accumulator for Sum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.add(&states[0], 1)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(self.sum)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(self.sum))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// A checked sum of the distinct Int64 values.
#[derive(Debug, Default)]
struct DistinctSum {
    values: HashSet<i64>,
}

impl Accumulator for DistinctSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(values) = values[0].as_primitive_opt::<Int64Type>() else {
            return exec_err!(
                "sum expected 64-bit integers, got {}",
                values[0].data_type()
            );
        };
        self.values.extend(values.iter().flatten());
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(lists) = states[0].as_list_opt::<i32>() else {
            return exec_err!("sum(DISTINCT) state is not a list");
        };
        for list in lists.iter().flatten() {
            self.update_batch(&[list])?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: ArrayRef = Arc::new(self.values.iter().copied().collect::<Int64Array>());
        let field = Arc::new(Field::new_list_field(DataType::Int64, true));
        let list = ListArray::try_new(
            field,
            arrow::buffer::OffsetBuffer::from_lengths([values.len()]),
            values,
            None,
        )?;
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.values.is_empty() {
            return Ok(ScalarValue::Int64(None));
        }
        let mut sum = 0i64;
        for v in &self.values {
            sum = sum.checked_add(*v).map_or_else(overflow, Ok)?;
        }
        Ok(ScalarValue::Int64(Some(sum)))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.capacity() * size_of::<i64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(sql: &str) -> std::result::Result<Vec<String>, String> {
        let ctx = SessionContext::new();
        install(&ctx);
        let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .map_err(|e| e.to_string())?
            .to_string();
        Ok(text.lines().map(str::to_owned).collect())
    }

    const BIG: &str =
        "(VALUES (9223372036854775807), (9223372036854775807), (9223372036854775807), (1)) t(x)";

    #[tokio::test]
    async fn int64_sums_that_leave_64_bits_fail() {
        for sql in [
            format!("SELECT sum(x) FROM {BIG}"),
            format!("SELECT sum(x) FROM {BIG} GROUP BY x % 2 = 1"),
            "SELECT sum(DISTINCT x) FROM (VALUES (9223372036854775807), (1)) t(x)".to_owned(),
            format!(
                "SELECT sum(x) OVER (ORDER BY x ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM {BIG}"
            ),
            "SELECT sum(x) FROM (VALUES (CAST(-9223372036854775807 AS BIGINT)), (-2)) t(x)"
                .to_owned(),
        ] {
            let err = answer(&sql).await.expect_err(&sql);
            assert!(err.contains(OVERFLOW), "{sql}: {err}");
        }
    }

    #[tokio::test]
    async fn sums_that_fit_are_unchanged() {
        let rows = answer(
            "SELECT sum(x) AS s, sum(DISTINCT x) AS d, sum(y) AS f FROM (VALUES (1, 1.0), (2, 2.0), (2, 2.0), (NULL, NULL)) t(x, y)",
        )
        .await
        .unwrap();
        assert_eq!(rows[3], "| 5 | 3 | 5.0 |", "{rows:?}");
        let rows = answer(
            "SELECT g, sum(x) AS s FROM (VALUES (1, 10), (1, -3), (2, 4)) t(g, x) GROUP BY g ORDER BY g",
        )
        .await
        .unwrap();
        assert_eq!(rows[3..5], ["| 1 | 7 |", "| 2 | 4 |"], "{rows:?}");
        let rows = answer(
            "SELECT sum(x) OVER (ORDER BY x ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS w FROM (VALUES (1), (2), (3)) t(x)",
        )
        .await
        .unwrap();
        assert_eq!(rows[3..6], ["| 1 |", "| 3 |", "| 5 |"], "{rows:?}");
        let rows = answer("SELECT sum(x) AS s FROM (VALUES (1)) t(x) WHERE x > 5")
            .await
            .unwrap();
        assert_eq!(rows[3], "|   |", "{rows:?}");
    }
}
