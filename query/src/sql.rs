//! The read-only SQL endpoint's engine: one statement, a query, with a memory cap, a time
//! limit and a row cap; anything that is not a query is refused by name before planning.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use kho_store::Store;
use tokio::sync::Semaphore;

use crate::catalog::Tables;
use crate::error::{QueryError, Result};
use crate::{compute, limits};

/// Limits of one SQL query.
#[derive(Debug, Clone)]
pub struct SqlLimits {
    /// Memory the query's operators may hold; past it the query fails (no spilling).
    pub memory_bytes: usize,
    pub timeout: Duration,
    /// Most rows a result may have.
    pub max_rows: usize,
    /// Queries running at once; more wait their turn.
    pub concurrency: usize,
}

impl SqlLimits {
    /// The most one call of a function that makes values (`repeat`, `lpad`, …) may make
    /// for one batch: a quarter of the query's memory.
    pub fn value_bytes(&self) -> usize {
        (self.memory_bytes / 4).max(1024 * 1024)
    }
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            concurrency: 2,
        }
    }
}

/// A query's result.
#[derive(Debug)]
pub struct SqlResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
}

pub struct SqlEngine {
    tables: Tables,
    limits: SqlLimits,
    slots: Semaphore,
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine")
            .field("limits", &self.limits)
            .finish()
    }
}

/// Refuses anything but one query (`SELECT`, `WITH`, `VALUES`, or an `EXPLAIN` of one).
pub fn check_read_only(sql: &str) -> Result<()> {
    parse_read_only(sql).map(|_| ())
}

/// What kind of read-only statement was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    /// `EXPLAIN [ANALYZE]` of a query: its plan is the answer (not limited, not wrapped).
    Explain,
}

fn parse_read_only(sql: &str) -> Result<Kind> {
    let statements = DFParser::parse_sql(sql)
        .map_err(|e| QueryError::BadRequest(format!("cannot parse the SQL: {e}")))?;
    if statements.len() != 1 {
        return Err(QueryError::BadRequest(format!(
            "send exactly one statement; this has {}",
            statements.len()
        )));
    }
    check_statement(&statements[0])?;
    if let Some(inner) = inner_statement(&statements[0]) {
        limits::check_tree(inner, &limits::SQL)?;
    }
    Ok(match &statements[0] {
        DFStatement::Explain(_) => Kind::Explain,
        DFStatement::Statement(st) if matches!(st.as_ref(), Statement::Explain { .. }) => {
            Kind::Explain
        }
        _ => Kind::Query,
    })
}

/// The sqlparser statement inside DataFusion's, through any `EXPLAIN`.
fn inner_statement(s: &DFStatement) -> Option<&Statement> {
    match s {
        DFStatement::Statement(st) => Some(st.as_ref()),
        DFStatement::Explain(e) => inner_statement(&e.statement),
        _ => None,
    }
}

fn check_statement(s: &DFStatement) -> Result<()> {
    let refuse = |kind: &str| {
        Err(QueryError::Refused {
            kind: kind.to_owned(),
        })
    };
    match s {
        DFStatement::Statement(st) => match st.as_ref() {
            Statement::Query(_) => Ok(()),
            Statement::Explain { statement, .. } => match statement.as_ref() {
                Statement::Query(_) => Ok(()),
                other => refuse(&kind(&other.to_string())),
            },
            other => refuse(&kind(&other.to_string())),
        },
        DFStatement::CreateExternalTable(_) => refuse("CREATE EXTERNAL TABLE"),
        DFStatement::CopyTo(_) => refuse("COPY"),
        DFStatement::Reset(_) => refuse("RESET"),
        DFStatement::Explain(e) => check_statement(&e.statement),
    }
}

/// The statement kind from its SQL: `CREATE TABLE`, `INSERT`, `SET`, ….
fn kind(sql: &str) -> String {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(4)
        .map(str::to_ascii_uppercase)
        .collect();
    let first = words.first().cloned().unwrap_or_default();
    match first.as_str() {
        "CREATE" | "DROP" | "ALTER" => {
            let mut k = vec![first.clone()];
            for w in words.iter().skip(1) {
                k.push(w.clone());
                if !matches!(
                    w.as_str(),
                    "OR" | "REPLACE"
                        | "EXTERNAL"
                        | "TEMPORARY"
                        | "TEMP"
                        | "UNIQUE"
                        | "IF"
                        | "NOT"
                        | "EXISTS"
                ) {
                    break;
                }
            }
            k.join(" ")
        }
        _ => first,
    }
}

impl SqlEngine {
    pub fn new(store: Arc<Store>, limits: SqlLimits) -> Self {
        Self {
            tables: Tables::new(store),
            slots: Semaphore::new(limits.concurrency.max(1)),
            limits,
        }
    }

    pub fn limits(&self) -> &SqlLimits {
        &self.limits
    }

    /// Runs one read-only query within the limits.
    pub async fn run(&self, sql: &str) -> Result<SqlResult> {
        // Size first, on this thread: nothing is parsed yet.
        limits::check_text(sql, &limits::SQL)?;
        let _slot = self.slots.acquire().await.expect("never closed");
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.limits.memory_bytes, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        let ctx = self.tables.session(runtime).await?;
        crate::guard::install(&ctx, self.limits.value_bytes());
        crate::checked_sum::install(&ctx);
        let limits = self.limits.clone();
        let sql = sql.to_owned();
        // Parsing, planning and execution on the query runtime, under the time limit.
        let (schema, batches) = compute::run(limits.timeout, "the query", async move {
            let kind = parse_read_only(&sql)?;
            let options = datafusion::execution::context::SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            let df = ctx
                .sql_with_options(&sql, options)
                .await
                .map_err(|e| classify(e, &limits))?;
            // An EXPLAIN's plan must stay the root: it is answered as it comes.
            let df = match kind {
                Kind::Explain => df,
                Kind::Query => crate::read::plain_strings(df.limit(0, Some(limits.max_rows + 1))?)?,
            };
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await.map_err(|e| classify(e, &limits))?;
            Ok((schema, batches))
        })
        .await?;
        let limits = &self.limits;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows > limits.max_rows {
            return Err(QueryError::Limit(format!(
                "the result has more than {} rows: narrow the query or add a LIMIT",
                limits.max_rows
            )));
        }
        let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        if bytes > limits.memory_bytes {
            return Err(QueryError::Limit(format!(
                "the result holds {} MiB, more than the query's memory limit of {} MiB: select fewer or shorter columns",
                bytes / (1024 * 1024),
                limits.memory_bytes / (1024 * 1024)
            )));
        }
        Ok(SqlResult {
            schema,
            batches,
            rows,
        })
    }
}

/// Whose fault a failed query is, by the error's type: kho's own refusals and DataFusion's
/// memory limit are the query's limits (422), a sum past 64 bits is 422 `sum_overflow`, a
/// failing store is the store's (503), the SQL's own mistakes (parse, plan, schema, a
/// function's bad input) are the caller's (400), and anything else is kho's (500).
fn classify(e: datafusion::error::DataFusionError, limits: &SqlLimits) -> QueryError {
    use datafusion::error::DataFusionError as D;
    if let Some(r) = external::<crate::guard::Refusal>(&e) {
        return QueryError::Limit(r.0.clone());
    }
    if external::<crate::checked_sum::Overflow>(&e).is_some() {
        return QueryError::SumOverflow(format!(
            "{}: a sum of the query does not fit a 64-bit integer (cast its argument to DOUBLE or DECIMAL for an approximate or wider sum)",
            crate::checked_sum::OVERFLOW
        ));
    }
    if kho_store::error::is_storage_fault(&e) {
        return QueryError::DataFusion(Box::new(e));
    }
    match e.find_root() {
        D::ResourcesExhausted(_) => QueryError::Limit(format!(
            "the query needed more than its memory limit of {} MiB and was stopped: {}",
            limits.memory_bytes / (1024 * 1024),
            e.to_string().lines().next().unwrap_or_default()
        )),
        D::SQL(..)
        | D::Plan(_)
        | D::SchemaError(..)
        | D::NotImplemented(_)
        | D::Execution(_)
        | D::ArrowError(..) => QueryError::BadRequest(e.to_string()),
        _ => QueryError::DataFusion(Box::new(e)),
    }
}

/// The error of type `T` that `e` carries as an external error, however wrapped.
fn external<T: std::error::Error + 'static>(e: &datafusion::error::DataFusionError) -> Option<&T> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_queries_pass() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "EXPLAIN SELECT * FROM service_dossiers",
            "select count(*) from service.dossiers",
        ] {
            check_read_only(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (sql, k) in [
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            (
                "CREATE OR REPLACE VIEW v AS SELECT 1",
                "CREATE OR REPLACE VIEW",
            ),
            ("DROP TABLE service_dossiers", "DROP TABLE"),
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("UPDATE t SET a = 1", "UPDATE"),
            ("DELETE FROM t", "DELETE"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            (
                "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("EXPLAIN INSERT INTO t VALUES (1)", "INSERT"),
        ] {
            match check_read_only(sql) {
                Err(QueryError::Refused { kind }) => assert_eq!(kind, k, "{sql}"),
                other => panic!("{sql}: {other:?}"),
            }
        }
        assert!(matches!(
            check_read_only("SELECT 1; SELECT 2"),
            Err(QueryError::BadRequest(_))
        ));
        assert!(matches!(
            check_read_only("SELEC 1"),
            Err(QueryError::BadRequest(_))
        ));
    }
}
