//! Releases: the policy applied physically. A release is its own Delta table,
//! `releases/<dataset>/v<N>`, holding only what the policy lets out: the listed columns,
//! dropped ones absent, pseudonymized ones replaced by keyed HMAC-SHA256 digests (the key
//! stays in the store's key material), rows outside the filter absent, small cells
//! withheld. No reader can reach what the policy removes: it is not in the table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::{cast, concat_batches, nullif};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{SessionContext, col, lit};
use hmac::{Hmac, KeyInit, Mac};
use kho_store::{AsOf, Rows, Store, stream_key};
use rand::RngCore;
use sha2::Sha256;

use crate::dataset::{Dataset, DatasetSpec, Mask, SourceColumn, SourceKind, Suppression};
use crate::error::{CatalogError, Result};

/// The table key of a dataset's source.
pub fn source_key(spec: &DatasetSpec) -> Result<String> {
    match spec.source.kind {
        SourceKind::View => kho_query::spec(&spec.source.name)
            .map(kho_query::ViewSpec::key)
            .ok_or_else(|| CatalogError::Invalid(format!("unknown view {}", spec.source.name))),
        SourceKind::Stream => Ok(stream_key(&spec.source.name)),
    }
}

/// The Arrow schema of a dataset's source.
pub fn source_schema(store: &Store, spec: &DatasetSpec) -> Result<SchemaRef> {
    match spec.source.kind {
        SourceKind::View => kho_query::spec(&spec.source.name)
            .map(kho_query::ViewSpec::schema)
            .ok_or_else(|| CatalogError::Invalid(format!("unknown view {}", spec.source.name))),
        SourceKind::Stream => Ok(store
            .stream(&spec.source.name)
            .map_err(|_| CatalogError::Invalid(format!("unknown stream {}", spec.source.name)))?
            .arrow_schema()),
    }
}

/// The source's columns, for the policy checks.
pub fn source_columns(schema: &Schema) -> Vec<SourceColumn> {
    schema
        .fields()
        .iter()
        .map(|f| SourceColumn {
            name: f.name().clone(),
            integer: f.data_type().is_integer(),
            numeric: f.data_type().is_numeric(),
        })
        .collect()
}

/// Checks that a row filter parses as a SQL predicate over the source's columns.
pub fn check_filter(schema: &SchemaRef, filter: &str) -> Result<()> {
    use kho_query::limits::{ROW_FILTER, check_expr_tree, check_text};
    // Bounded before anything plans it: 4 KiB, 256 tokens (so the tree is shallow enough
    // to walk on any thread), 64 levels, no subquery.
    let bounded = |e: kho_query::QueryError| CatalogError::Invalid(e.to_string());
    check_text(filter, &ROW_FILTER).map_err(bounded)?;
    let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
    if let Ok(expr) = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(filter)
        .and_then(|mut p| p.parse_expr())
    {
        check_expr_tree(&expr, &ROW_FILTER).map_err(bounded)?;
    }
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    SessionContext::new()
        .parse_sql_expr(filter, &df_schema)
        .map_err(|e| {
            CatalogError::Policy(format!(
                "row filter {filter:?} is not a valid predicate over the source's columns: {}",
                first_line(&e.to_string())
            ))
        })?;
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// The dataset's pseudonym key: 32 random bytes made on first use, kept under
/// `system/keys/pseudonym/<dataset>` in the store, never in a release.
async fn pseudonym_key(store: &Store, dataset: &str) -> Result<Vec<u8>> {
    let key = format!("system/keys/pseudonym/{dataset}");
    if let Some(k) = store.read_object(&key).await? {
        return Ok(k.to_vec());
    }
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    Ok(store
        .create_object(&key, bytes::Bytes::copy_from_slice(&fresh))
        .await?
        .to_vec())
}

/// Materializes release `version` of a dataset from the latest source into a new table at
/// `at` ([`crate::dataset::attempt_key`]); returns (rows, source version).
pub async fn materialize(
    store: &Store,
    spec: &DatasetSpec,
    version: u32,
    at: &str,
) -> Result<(u64, u64)> {
    let key = source_key(spec)?;
    let table = store.table(&key, AsOf::Latest).await.map_err(|e| {
        if e.is_unavailable() {
            // The store failed: say so (503), not that the source is missing.
            return CatalogError::Store(Box::new(e));
        }
        CatalogError::Conflict(format!(
            "the source {} cannot be read yet: {e}",
            spec.source.name
        ))
    })?;
    let source_version = table.version();
    let ctx = SessionContext::new_with_config(kho_query::read::client_config());
    let mut df = ctx.read_table(table.provider(&ctx).await?)?;
    if let Some(filter) = &spec.row_filter {
        let predicate = df.parse_sql_expr(filter)?;
        df = df.filter(predicate)?;
    }
    let released: Vec<_> = spec
        .columns
        .iter()
        .filter(|c| c.mask != Some(Mask::Drop))
        .collect();
    let pseudonym = if released.iter().any(|c| c.mask == Some(Mask::Pseudonym)) {
        Some(ScalarUDF::from(Pseudonym::new(
            pseudonym_key(store, &spec.id).await?,
        )))
    } else {
        None
    };
    let mut exprs = Vec::with_capacity(released.len());
    for c in &released {
        let column = col(format!("\"{}\"", c.name));
        exprs.push(match c.mask {
            Some(Mask::Pseudonym) => pseudonym
                .as_ref()
                .expect("made when a column is pseudonymized")
                .call(vec![column])
                .alias(&c.name),
            _ => column,
        });
    }
    let df = kho_query::read::plain_strings(df.select(exprs)?)?;
    let rows = match &spec.suppression {
        // Suppression weighs every cell against its groups: the release is built whole.
        Some(s) => {
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            Rows::Batches(vec![suppress(&concat_batches(&schema, &batches)?, s)?])
        }
        // Otherwise the plan streams from the source into the release's files.
        None => Rows::Plan(df.logical_plan().clone()),
    };
    // One put-if-absent of version 0 at a key no other attempt uses.
    let table = store
        .write_table_once(
            at,
            &format!("{} v{version}", spec.id),
            &spec.metadata.title.en,
            rows,
        )
        .await
        .map_err(|e| CatalogError::Store(Box::new(e)))?;
    let rows = table.stats()?.row_count;
    Ok((rows, source_version))
}

/// `kho_pseudonym(value)`: HMAC-SHA256(key, value as text) in hex, first 128 bits; null
/// stays null. The key never shows in a plan's text or debug output.
struct Pseudonym {
    key: Vec<u8>,
    signature: Signature,
}

impl Pseudonym {
    fn new(key: Vec<u8>) -> Self {
        Self {
            key,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl std::fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("kho_pseudonym")
    }
}

impl PartialEq for Pseudonym {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Pseudonym {}

impl std::hash::Hash for Pseudonym {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "kho_pseudonym".hash(state);
    }
}

impl ScalarUDFImpl for Pseudonym {
    fn name(&self) -> &str {
        "kho_pseudonym"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "kho_pseudonym takes one argument".into(),
            ));
        };
        let text = cast(&value.to_array(args.number_rows)?, &DataType::Utf8)?;
        let out: StringArray = text
            .as_string::<i32>()
            .iter()
            .map(|v| {
                v.map(|v| {
                    let mut mac =
                        Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
                    mac.update(v.as_bytes());
                    hex::encode(&mac.finalize().into_bytes()[..16])
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Withholds small cells, then enough others that none can be recomputed from the totals
/// of its groups: a group that holds exactly one withheld cell gives up its smallest
/// remaining cell too, until no group does.
pub fn suppress(batch: &RecordBatch, s: &Suppression) -> Result<RecordBatch> {
    let counts = cast(
        batch
            .column_by_name(&s.count_column)
            .ok_or_else(|| CatalogError::Invalid(format!("no column {}", s.count_column)))?,
        &DataType::Int64,
    )?;
    let counts = counts.as_primitive::<arrow::datatypes::Int64Type>();
    let n = batch.num_rows();
    let count = |i: usize| (!counts.is_null(i)).then(|| counts.value(i));
    let mut hidden: Vec<bool> = (0..n)
        .map(|i| count(i).is_some_and(|c| c > 0 && c < s.k))
        .collect();
    // The groups whose totals may be public.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    if s.group_by.is_empty() {
        groups.push((0..n).collect());
    }
    for dim in &s.group_by {
        let values = cast(
            batch.column_by_name(dim).expect("checked at proposal"),
            &DataType::Utf8,
        )?;
        let values = values.as_string::<i32>();
        let mut by: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
        for i in 0..n {
            by.entry((!values.is_null(i)).then(|| values.value(i)))
                .or_default()
                .push(i);
        }
        let mut g: Vec<Vec<usize>> = by.into_values().collect();
        g.sort();
        groups.extend(g);
    }
    loop {
        let mut changed = false;
        for g in &groups {
            if g.len() < 2 || g.iter().filter(|&&i| hidden[i]).count() != 1 {
                continue;
            }
            // The smallest positive count left, else a zero.
            let pick = g
                .iter()
                .copied()
                .filter(|&i| !hidden[i] && count(i).is_some())
                .min_by_key(|&i| (count(i) == Some(0), count(i), i));
            if let Some(i) = pick {
                hidden[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mask = BooleanArray::from(hidden);
    let schema = batch.schema();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (f, a) in schema.fields().iter().zip(batch.columns()) {
        if *f.name() == s.count_column || s.also.contains(f.name()) {
            arrays.push(nullif(a, &mask)?);
        } else {
            arrays.push(a.clone());
        }
    }
    // Withheld values become null: the columns must allow it.
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            f.as_ref().clone().with_nullable(
                f.is_nullable() || *f.name() == s.count_column || s.also.contains(f.name()),
            )
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// Rows of a release: equality filters on its columns, then offset and limit.
pub async fn read_release(
    store: &Store,
    dataset: &Dataset,
    version: u32,
    filters: &[(String, String)],
    offset: usize,
    limit: Option<usize>,
) -> Result<SendableRecordBatchStream> {
    let table = store
        .table(&dataset.release_key(version), AsOf::Latest)
        .await?;
    let ctx = SessionContext::new_with_config(kho_query::read::client_config());
    let mut df = ctx.read_table(table.provider(&ctx).await?)?;
    for (column, value) in filters {
        let Ok(field) = df.schema().field_with_unqualified_name(column) else {
            return Err(CatalogError::Invalid(format!(
                "{} has no column {column}",
                dataset.spec.id
            )));
        };
        let value = match field.data_type() {
            t if t.is_integer() => lit(value.parse::<i64>().map_err(|_| {
                CatalogError::Invalid(format!("{column} takes an integer, not {value:?}"))
            })?),
            t if t.is_floating() => lit(value.parse::<f64>().map_err(|_| {
                CatalogError::Invalid(format!("{column} takes a number, not {value:?}"))
            })?),
            DataType::Boolean => lit(value.parse::<bool>().map_err(|_| {
                CatalogError::Invalid(format!("{column} takes true or false, not {value:?}"))
            })?),
            _ => lit(value.clone()),
        };
        df = df.filter(col(format!("\"{column}\"")).eq(value))?;
    }
    if offset > 0 || limit.is_some() {
        df = df.limit(offset, limit)?;
    }
    Ok(kho_query::read::plain_strings(df)?.execute_stream().await?)
}

/// The Arrow schema of a release.
pub async fn release_schema(store: &Store, dataset: &Dataset, version: u32) -> Result<SchemaRef> {
    let table = store
        .table(&dataset.release_key(version), AsOf::Latest)
        .await?;
    Ok(table.schema()?)
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::Field;

    use super::*;

    fn table(months: &[&str], agencies: &[&str], counts: &[Option<i64>]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("month", DataType::Utf8, false),
                Field::new("agency_code", DataType::Utf8, false),
                Field::new("received", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(months.to_vec())),
                Arc::new(StringArray::from(agencies.to_vec())),
                Arc::new(Int64Array::from(counts.to_vec())),
            ],
        )
        .unwrap()
    }

    fn received(b: &RecordBatch) -> Vec<Option<i64>> {
        let a = b.column(2).as_primitive::<arrow::datatypes::Int64Type>();
        (0..a.len())
            .map(|i| (!a.is_null(i)).then(|| a.value(i)))
            .collect()
    }

    fn s(group_by: &[&str]) -> Suppression {
        Suppression {
            count_column: "received".into(),
            k: 10,
            group_by: group_by.iter().map(|g| (*g).to_owned()).collect(),
            also: vec![],
        }
    }

    #[test]
    fn one_small_cell_takes_a_second_with_it() {
        // January: 50 + 40 + 3 = 93. Withholding only the 3 would leave it derivable from
        // a published January total: the 40 goes too.
        let b = table(
            &["01", "01", "01"],
            &["A", "B", "C"],
            &[Some(50), Some(40), Some(3)],
        );
        let out = suppress(&b, &s(&["month"])).unwrap();
        assert_eq!(received(&out), [Some(50), None, None]);
    }

    #[test]
    fn two_dimensions_are_both_protected() {
        // Months x agencies, with totals public in both directions.
        let m = ["01", "01", "02", "02"];
        let a = ["A", "B", "A", "B"];
        let out = suppress(
            &table(&m, &a, &[Some(5), Some(30), Some(40), Some(60)]),
            &s(&["month", "agency_code"]),
        )
        .unwrap();
        // 5 withheld; January loses 30 (its row), agency A loses 40 (its column); then
        // February and agency B each hold one withheld cell: 60 goes too.
        assert_eq!(received(&out), [None, None, None, None]);
        let got = received(&out);
        for g in [[0, 1], [2, 3], [0, 2], [1, 3]] {
            let withheld = g.iter().filter(|&&i| got[i].is_none()).count();
            assert_ne!(withheld, 1, "group {g:?} would reveal its withheld cell");
        }
    }

    #[test]
    fn big_cells_and_zeros_stay() {
        let b = table(&["01", "01"], &["A", "B"], &[Some(0), Some(30)]);
        assert_eq!(
            received(&suppress(&b, &s(&["month"])).unwrap()),
            [Some(0), Some(30)]
        );
    }
}
