//! Reading a view: equality filters on its grain, paging, time travel.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Column;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, Expr, SessionConfig, SessionContext, cast, col, lit};
use kho_store::{AsOf, commit_metadata, latest_version};

use crate::error::{QueryError, Result};
use crate::views::engine::{ViewEngine, ViewMeta};
use crate::views::spec;

/// What to read of a view.
#[derive(Debug, Clone, Default)]
pub struct ViewQuery {
    /// `column = value` filters; columns must be of the view's grain.
    pub filters: Vec<(String, String)>,
    pub limit: Option<usize>,
    pub offset: usize,
    pub as_of: Option<AsOf>,
}

/// A view's rows, streaming, and the version they come from.
pub struct ViewRows {
    pub batches: SendableRecordBatchStream,
    pub version: u64,
    /// What that version reflects (source versions, refresh time).
    pub meta: Option<ViewMeta>,
}

/// A session configured for answers to clients: plain `Utf8` strings.
pub fn client_config() -> SessionConfig {
    let mut config = SessionConfig::new();
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    config
}

/// Casts `Utf8View` columns (what Delta scans produce) to `Utf8`, what clients expect in
/// Arrow and Parquet answers and what the views are declared with.
pub fn plain_strings(df: DataFrame) -> Result<DataFrame> {
    let needs = df
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Utf8View);
    if !needs {
        return Ok(df);
    }
    let exprs: Vec<_> = df
        .schema()
        .iter()
        .map(|(qualifier, f)| {
            let c = Expr::Column(Column::new(qualifier.cloned(), f.name()));
            if f.data_type() == &DataType::Utf8View {
                // Keep the qualifier: `a.id` and `b.id` of a join stay distinct.
                cast(c, DataType::Utf8).alias_qualified(qualifier.cloned(), f.name())
            } else {
                c
            }
        })
        .collect();
    Ok(df.select(exprs)?)
}

impl ViewEngine {
    /// The rows of `name` matching `q`, sorted by the view's grain.
    pub async fn read(&self, name: &str, q: &ViewQuery) -> Result<ViewRows> {
        let spec = spec(name).ok_or_else(|| QueryError::UnknownView(name.to_owned()))?;
        let schema = spec.schema();
        let mut filters = Vec::with_capacity(q.filters.len());
        for (column, value) in &q.filters {
            if !spec.grain.contains(&column.as_str()) {
                return Err(QueryError::BadRequest(format!(
                    "cannot filter {name} on {column}: filters take the grain columns {}",
                    spec.grain.join(", ")
                )));
            }
            let field = schema
                .field_with_name(column)
                .expect("grain columns are in the schema");
            let value = match field.data_type() {
                DataType::Int32 => lit(value.parse::<i32>().map_err(|_| {
                    QueryError::BadRequest(format!("{column} takes an integer, not {value:?}"))
                })?),
                _ => lit(value.clone()),
            };
            filters.push(col(format!("\"{column}\"")).eq(value));
        }
        let key = spec.key();
        let table = match q.as_of {
            Some(as_of) => self.store().table(&key, as_of).await?,
            None => {
                if latest_version(self.store(), &key).await.is_err() {
                    // Never materialized: do it now.
                    self.refresh(name).await?;
                }
                self.store().table(&key, AsOf::Latest).await?
            }
        };
        let version = table.version();
        let meta = commit_metadata(self.store(), &key, version)
            .await?
            .and_then(|m| serde_json::from_value(m).ok());
        let ctx = SessionContext::new_with_config(client_config());
        let mut df = ctx.read_table(table.provider(&ctx).await?)?;
        for f in filters {
            df = df.filter(f)?;
        }
        let order = spec
            .grain
            .iter()
            .map(|c| col(format!("\"{c}\"")).sort(true, false))
            .collect();
        df = df.sort(order)?;
        if q.offset > 0 || q.limit.is_some() {
            df = df.limit(q.offset, q.limit)?;
        }
        let df = plain_strings(df)?;
        Ok(ViewRows {
            batches: df.execute_stream().await?,
            version,
            meta,
        })
    }
}
