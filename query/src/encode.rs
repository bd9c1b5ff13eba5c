//! Result encoding: JSON, CSV, Arrow IPC stream or Parquet, produced batch by batch so a
//! large result never sits in memory as one buffer.

use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt};

use crate::error::{QueryError, Result};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON array of objects.
    Json,
    /// CSV with a header row.
    Csv,
    /// The Arrow IPC streaming format.
    Arrow,
    /// A Parquet file.
    Parquet,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Arrow => "arrow",
            Format::Parquet => "parquet",
        }
    }

    /// `?format=` wins; else the first supported type of `Accept`; else JSON.
    pub fn negotiate(
        param: Option<&str>,
        accept: Option<&str>,
    ) -> std::result::Result<Self, String> {
        if let Some(p) = param {
            return match p.to_ascii_lowercase().as_str() {
                "json" => Ok(Format::Json),
                "csv" => Ok(Format::Csv),
                "arrow" | "ipc" => Ok(Format::Arrow),
                "parquet" => Ok(Format::Parquet),
                other => Err(format!(
                    "unknown format {other}: use json, csv, arrow or parquet"
                )),
            };
        }
        let Some(accept) = accept else {
            return Ok(Format::Json);
        };
        for part in accept.split(',') {
            let mime = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let f = match mime.as_str() {
                "application/json" | "application/*" | "*/*" => Some(Format::Json),
                "text/csv" | "text/*" => Some(Format::Csv),
                "application/vnd.apache.arrow.stream" => Some(Format::Arrow),
                "application/vnd.apache.parquet" | "application/x-parquet" => Some(Format::Parquet),
                _ => None,
            };
            if let Some(f) = f {
                return Ok(f);
            }
        }
        Err(format!(
            "none of {accept} can be produced: use application/json, text/csv, application/vnd.apache.arrow.stream or application/vnd.apache.parquet"
        ))
    }
}

/// A `Write` whose bytes are taken out after each batch.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.lock().expect("poisoned")))
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Encoder {
    Json(arrow::json::Writer<Shared, arrow::json::writer::JsonArray>),
    Csv(arrow::csv::Writer<Shared>),
    Arrow(arrow::ipc::writer::StreamWriter<Shared>),
    Parquet(parquet::arrow::ArrowWriter<Shared>),
}

impl Encoder {
    fn new(format: Format, schema: &SchemaRef, out: Shared) -> Result<Self> {
        Ok(match format {
            Format::Json => Encoder::Json(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::JsonArray>(out),
            ),
            Format::Csv => Encoder::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(out),
            ),
            Format::Arrow => {
                Encoder::Arrow(arrow::ipc::writer::StreamWriter::try_new(out, schema)?)
            }
            Format::Parquet => Encoder::Parquet(parquet::arrow::ArrowWriter::try_new(
                out,
                schema.clone(),
                None,
            )?),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Encoder::Json(w) => w.write(batch)?,
            Encoder::Csv(w) => w.write(&defuse_formulas(batch)?)?,
            Encoder::Arrow(w) => w.write(batch)?,
            Encoder::Parquet(w) => {
                w.write(batch)?;
                // One row group per batch, so its bytes can go out now.
                w.flush()?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Encoder::Json(mut w) => w.finish()?,
            Encoder::Csv(_) => {}
            Encoder::Arrow(mut w) => w.finish()?,
            Encoder::Parquet(w) => {
                w.close()?;
            }
        }
        Ok(())
    }
}

/// A text cell a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a
/// tab or a carriage return) gets a leading `'`, as OWASP advises for CSV downloads: the
/// cell then shows as the text it is. Numbers are not text columns and are left alone.
fn defuse_formulas(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::array::{Array, AsArray, StringArray};
    use arrow::datatypes::DataType;
    let risky = |v: &str| v.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for c in &mut columns {
        let text: Option<Vec<Option<String>>> = match c.data_type() {
            DataType::Utf8 => {
                let a = c.as_string::<i32>();
                a.iter()
                    .any(|v| v.is_some_and(risky))
                    .then(|| a.iter().map(|v| v.map(|v| defused(v, risky))).collect())
            }
            DataType::LargeUtf8 => {
                let a = c.as_string::<i64>();
                a.iter()
                    .any(|v| v.is_some_and(risky))
                    .then(|| a.iter().map(|v| v.map(|v| defused(v, risky))).collect())
            }
            DataType::Utf8View => {
                let a = c.as_string_view();
                a.iter()
                    .any(|v| v.is_some_and(risky))
                    .then(|| a.iter().map(|v| v.map(|v| defused(v, risky))).collect())
            }
            _ => None,
        };
        if let Some(values) = text {
            let arr = StringArray::from(values);
            *c = arrow::compute::cast(&arr, c.data_type())?;
            debug_assert_eq!(c.len(), batch.num_rows());
            changed = true;
        }
    }
    if !changed {
        return Ok(batch.clone());
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn defused(v: &str, risky: impl Fn(&str) -> bool) -> String {
    if risky(v) {
        format!("'{v}")
    } else {
        v.to_owned()
    }
}

/// Encodes a stream of batches, yielding bytes as each batch is encoded.
pub fn encode(
    mut input: SendableRecordBatchStream,
    format: Format,
) -> impl Stream<Item = Result<Bytes>> + Send {
    async_stream(move |tx| async move {
        let out = Shared::default();
        let schema = input.schema();
        let mut encoder = Encoder::new(format, &schema, out.clone())?;
        let mut empty = true;
        while let Some(batch) = input.next().await {
            let batch = batch.map_err(QueryError::from)?;
            encoder.write(&batch)?;
            empty = false;
            let chunk = out.take();
            if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                return Ok(()); // the client went away
            }
        }
        if empty && format == Format::Json {
            // arrow's JSON array writer writes nothing for no batches.
            let _ = tx.send(Ok(Bytes::from_static(b"[]"))).await;
            return Ok(());
        }
        encoder.finish()?;
        let chunk = out.take();
        if !chunk.is_empty() {
            let _ = tx.send(Ok(chunk)).await;
        }
        Ok(())
    })
}

/// Runs `f` on its own task, exposing what it sends as a stream; its error ends the stream.
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<Bytes>> + Send
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let err_tx = tx.clone();
    tokio::spawn(async move {
        if let Err(e) = f(tx).await {
            tracing::warn!(error = %e, "encoding a result failed midway");
            let _ = err_tx.send(Err(e)).await;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Encodes batches already in memory.
pub fn encode_batches(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    format: Format,
) -> impl Stream<Item = Result<Bytes>> + Send {
    let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(batches.into_iter().map(Ok)),
    );
    encode(Box::pin(stream), format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(Format::negotiate(Some("CSV"), None), Ok(Format::Csv));
        assert_eq!(Format::negotiate(None, None), Ok(Format::Json));
        assert_eq!(
            Format::negotiate(None, Some("application/vnd.apache.arrow.stream, */*;q=0.1")),
            Ok(Format::Arrow)
        );
        assert_eq!(
            Format::negotiate(None, Some("text/csv;q=0.9")),
            Ok(Format::Csv)
        );
        assert!(Format::negotiate(None, Some("image/png")).is_err());
        assert!(
            Format::negotiate(Some("xml"), None)
                .unwrap_err()
                .contains("unknown format xml")
        );
    }
}
