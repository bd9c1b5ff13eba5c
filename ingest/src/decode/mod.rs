//! Request bodies to Arrow: where an event is decoded and validated.

mod columns;
mod csv;
mod json;
mod row;
mod value;

use arrow::array::RecordBatch;
use kho_store::StreamDef;

pub use row::{MAX_LISTED_ERRORS, Rejection};
pub use value::MAX_STRING_BYTES;

/// A body format, chosen by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-ndjson` (also `application/ndjson`, `application/jsonl`).
    Ndjson,
    /// `application/json`: an array of event objects.
    JsonArray,
    /// `text/csv` with a header row.
    Csv,
}

impl Format {
    /// Picks the format from a `Content-Type` value, or says why none fits.
    pub fn from_content_type(value: Option<&str>) -> Result<Self, String> {
        let Some(value) = value else {
            return Err(
                "a Content-Type is required: application/x-ndjson, application/json or text/csv"
                    .into(),
            );
        };
        let mut parts = value.split(';');
        let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("charset")
            {
                let v = v.trim().trim_matches('"');
                if !v.eq_ignore_ascii_case("utf-8") && !v.eq_ignore_ascii_case("utf8") {
                    return Err(format!("charset {v} is not supported: send UTF-8"));
                }
            }
        }
        match mime.as_str() {
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Ok(Self::Ndjson),
            "application/json" => Ok(Self::JsonArray),
            "text/csv" => Ok(Self::Csv),
            other => Err(format!(
                "content type {other} is not supported: use application/x-ndjson, application/json or text/csv"
            )),
        }
    }
}

/// Decodes and validates a body into one batch of the stream's schema, or rejects it.
///
/// `recorded_at` is left at zero for the commit to set; `source` is filled with `source`.
/// `event_id`s absent from the body are assigned (UUIDv7).
pub fn decode(
    def: &StreamDef,
    format: Format,
    body: &[u8],
    source: &str,
    max_events: usize,
    occurred_window: (i64, i64),
) -> Result<RecordBatch, Rejection> {
    // Size the columns once: a newline per event (NDJSON, CSV), or a guess for arrays.
    let expected = match format {
        Format::Ndjson | Format::Csv => memchr::memchr_iter(b'\n', body).count() + 1,
        Format::JsonArray => body.len() / 200 + 1,
    };
    let mut builder = row::BatchBuilder::new(def, max_events, expected, occurred_window);
    match format {
        Format::Ndjson => json::decode_ndjson(&mut builder, body),
        Format::JsonArray => json::decode_array(&mut builder, body),
        Format::Csv => csv::decode_csv(&mut builder, body),
    }
    builder.finish(source)
}

#[cfg(test)]
mod tests;
