//! Memory guards on the scalar functions that make values larger than their inputs
//! (`repeat('x', 1000000000)` is one 1 GB string). DataFusion's memory pool counts what
//! operators reserve (sorts, joins, aggregates), not what a scalar function allocates, so
//! in caller SQL these functions are replaced by guarded ones: before the call, the size of
//! what it would make is worked out from its arguments, and a call over the budget fails
//! the query (422) before anything is allocated; after the call, the output is measured
//! too. The guard sits on the function itself, so constant folding at planning time (which
//! calls the same function) is guarded as well.
//!
//! Guarded: `repeat`, `lpad`, `rpad`, `concat`, `concat_ws`, `overlay`, `array_repeat`,
//! `range` and `generate_series` (integer arguments only).

use std::hash::{Hash, Hasher};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::prelude::SessionContext;

/// Rows per batch in caller SQL sessions: a constant value is made once and then repeated
/// on every row of a batch, so its size counts this many times.
pub const BATCH_ROWS: usize = 1024;

/// A query refused by one of kho's own SQL rules (a guarded function's budget, its argument
/// types): carried through DataFusion as an external error, so the SQL engine tells it from
/// DataFusion's own errors by its type, not its text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The DataFusion error for a [`Refusal`].
pub(crate) fn refuse<T>(message: String) -> Result<T> {
    Err(datafusion::error::DataFusionError::External(Box::new(
        Refusal(message),
    )))
}

const GUARDED: [&str; 9] = [
    "repeat",
    "lpad",
    "rpad",
    "concat",
    "concat_ws",
    "overlay",
    "array_repeat",
    "range",
    "generate_series",
];

/// Replaces the value-making functions of `ctx` with guarded ones: one call may make at
/// most `budget` bytes.
pub fn install(ctx: &SessionContext, budget: usize) {
    for name in GUARDED {
        if let Ok(inner) = ctx.udf(name) {
            let inner = (*inner).clone();
            ctx.register_udf(ScalarUDF::new_from_impl(Guarded { inner, budget }));
        }
    }
}

#[derive(Debug)]
struct Guarded {
    inner: ScalarUDF,
    budget: usize,
}

impl PartialEq for Guarded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.budget == other.budget
    }
}
impl Eq for Guarded {}
impl Hash for Guarded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.budget.hash(state);
    }
}

/// Per row, the lengths of a string argument (0 for null or non-strings).
fn lengths(v: &ColumnarValue, rows: usize) -> Vec<u64> {
    let one = |s: Option<&str>| s.map_or(0, |s| s.len() as u64);
    match v {
        ColumnarValue::Scalar(s) => {
            let n = match s {
                ScalarValue::Utf8(x) | ScalarValue::LargeUtf8(x) | ScalarValue::Utf8View(x) => {
                    one(x.as_deref())
                }
                _ => 0,
            };
            vec![n; rows]
        }
        ColumnarValue::Array(a) => match a.data_type() {
            DataType::Utf8 => a.as_string::<i32>().iter().map(one).collect(),
            DataType::LargeUtf8 => a.as_string::<i64>().iter().map(one).collect(),
            DataType::Utf8View => a.as_string_view().iter().map(one).collect(),
            _ => vec![0; a.len()],
        },
    }
}

/// Per row, an integer argument (None for null; Err when it is not an integer).
fn ints(v: &ColumnarValue, rows: usize) -> std::result::Result<Vec<Option<i64>>, ()> {
    let array: ArrayRef = match v {
        ColumnarValue::Scalar(s) => s.to_array_of_size(1).map_err(|_| ())?,
        ColumnarValue::Array(a) => a.clone(),
    };
    if !array.data_type().is_integer() {
        return Err(());
    }
    let cast = arrow::compute::cast(&array, &DataType::Int64).map_err(|_| ())?;
    let values: Vec<Option<i64>> = cast.as_primitive::<Int64Type>().iter().collect();
    Ok(match v {
        ColumnarValue::Scalar(_) => vec![values[0]; rows],
        ColumnarValue::Array(_) => values,
    })
}

impl Guarded {
    fn over(&self, bytes: u128) -> Result<()> {
        if bytes > self.budget as u128 {
            return refuse(format!(
                "{}(…) would make {} MiB for one batch; a query may make at most {} MiB with one function call",
                self.inner.name(),
                bytes / (1024 * 1024),
                self.budget / (1024 * 1024)
            ));
        }
        Ok(())
    }

    /// What the call would make, in bytes, worked out from its arguments.
    fn estimate(&self, args: &ScalarFunctionArgs) -> Result<u128> {
        let rows = args.number_rows.max(1);
        let a = &args.args;
        let int_arg = |i: usize| {
            ints(&a[i], rows).or_else(|()| {
                refuse(format!(
                    "{} takes integer arguments in kho's SQL",
                    self.inner.name()
                ))
            })
        };
        let clamp = |n: Option<i64>| u128::try_from(n.unwrap_or(0).max(0)).unwrap_or(0);
        Ok(match self.inner.name() {
            "repeat" if a.len() == 2 => {
                let len = lengths(&a[0], rows);
                let n = int_arg(1)?;
                len.iter()
                    .zip(n)
                    .map(|(l, n)| u128::from(*l) * clamp(n))
                    .sum()
            }
            // Up to 4 bytes a character.
            "lpad" | "rpad" if a.len() >= 2 => int_arg(1)?.into_iter().map(|n| clamp(n) * 4).sum(),
            "concat" | "concat_ws" | "overlay" => {
                a.iter()
                    .map(|v| {
                        lengths(v, rows)
                            .iter()
                            .map(|l| u128::from(*l))
                            .sum::<u128>()
                    })
                    .sum::<u128>()
                    * if self.inner.name() == "concat_ws" {
                        2
                    } else {
                        1
                    }
            }
            "array_repeat" if a.len() == 2 => int_arg(1)?.into_iter().map(|n| clamp(n) * 16).sum(),
            "range" | "generate_series" => {
                let cols: Vec<Vec<Option<i64>>> =
                    (0..a.len()).map(int_arg).collect::<Result<_>>()?;
                (0..rows)
                    .map(|r| {
                        let at = |i: usize| cols[i][r].unwrap_or(0);
                        let (start, stop, step) = match cols.len() {
                            1 => (0, at(0), 1),
                            2 => (at(0), at(1), 1),
                            _ => (at(0), at(1), at(2)),
                        };
                        if step == 0 {
                            return 0;
                        }
                        let span = (i128::from(stop) - i128::from(start)) / i128::from(step);
                        u128::try_from(span.max(0)).unwrap_or(0) * 8
                    })
                    .sum()
            }
            _ => 0,
        })
    }
}

impl ScalarUDFImpl for Guarded {
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

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mut estimate = self.estimate(&args)?;
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            // A value made from constants is repeated on every row of each batch.
            estimate *= BATCH_ROWS as u128;
        }
        self.over(estimate)?;
        let out = self.inner.invoke_with_args(args)?;
        let made = match &out {
            ColumnarValue::Array(a) => a.get_array_memory_size(),
            ColumnarValue::Scalar(s) => s.size(),
        };
        self.over(made as u128)?;
        Ok(out)
    }
}
