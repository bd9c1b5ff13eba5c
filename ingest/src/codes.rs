//! Codes an event names, checked against the province's code lists (`reference.codes`): once a
//! list has entries, an event naming a code the list does not have is refused, with the field
//! and the nearest known codes. A list with no entries checks nothing, so a store without
//! reference data takes events as before.
//!
//! The lists are read again when the stream has a new version, looked for at most once a
//! second ([`LOOK_EVERY`]) and at once after this process appends to it: a code registered
//! through another process is known here within that second.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use kho_store::pack::{CODES_STREAM, code_list};
use kho_store::{AsOf, RowError, Store, StreamDef, latest_version, stream_key};

use crate::decode::MAX_LISTED_ERRORS;

/// How often the lists' stream is looked at for a new version.
pub(crate) const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Known codes by list.
type Lists = HashMap<String, BTreeSet<String>>;

#[derive(Debug, Default)]
struct Seen {
    looked_at: Option<Instant>,
    version: Option<u64>,
    lists: Arc<Lists>,
}

/// The code lists as last read.
#[derive(Debug, Default)]
pub(crate) struct KnownCodes(Mutex<Seen>);

fn text(col: &dyn Array, i: usize) -> Option<&str> {
    if col.is_null(i) {
        return None;
    }
    match col.data_type() {
        DataType::Utf8 => Some(col.as_string::<i32>().value(i)),
        DataType::Utf8View => Some(col.as_string_view().value(i)),
        DataType::LargeUtf8 => Some(col.as_string::<i64>().value(i)),
        _ => None,
    }
}

/// Registered codes by list: every `code_registered` not retracted.
fn fold(batches: &[RecordBatch]) -> Lists {
    let mut retracted = HashSet::new();
    for b in batches {
        if let (Some(ty), Some(r)) = (
            b.column_by_name("event_type"),
            b.column_by_name("retracts_event_id"),
        ) {
            for i in 0..b.num_rows() {
                if text(ty.as_ref(), i) == Some("event_retracted")
                    && let Some(id) = text(r.as_ref(), i)
                {
                    retracted.insert(id.to_owned());
                }
            }
        }
    }
    let mut lists = Lists::new();
    for b in batches {
        let (Some(ty), Some(id), Some(code), Some(list)) = (
            b.column_by_name("event_type"),
            b.column_by_name("event_id"),
            b.column_by_name("entity_id"),
            b.column_by_name("list"),
        ) else {
            continue;
        };
        for i in 0..b.num_rows() {
            if text(ty.as_ref(), i) != Some("code_registered")
                || text(id.as_ref(), i).is_some_and(|id| retracted.contains(id))
            {
                continue;
            }
            if let (Some(code), Some(list)) = (text(code.as_ref(), i), text(list.as_ref(), i)) {
                lists
                    .entry(list.to_owned())
                    .or_default()
                    .insert(code.to_owned());
            }
        }
    }
    lists
}

impl KnownCodes {
    /// Forgets when the lists were last looked at: the next check reads them (after this
    /// process appended to them).
    pub(crate) fn stale(&self) {
        self.0.lock().expect("poisoned").looked_at = None;
    }

    async fn lists(&self, store: &Store) -> kho_store::Result<Arc<Lists>> {
        {
            let seen = self.0.lock().expect("poisoned");
            if seen.looked_at.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
                return Ok(seen.lists.clone());
            }
        }
        let version = match latest_version(store, &stream_key(CODES_STREAM)).await {
            Ok(v) => v,
            Err(e) if e.kind() == kho_store::ErrorKind::NotFound => {
                return Ok(Arc::default());
            }
            Err(e) => return Err(e),
        };
        let known = self.0.lock().expect("poisoned").version;
        let lists = if known == Some(version) {
            self.0.lock().expect("poisoned").lists.clone()
        } else {
            let batches = store
                .read_stream(CODES_STREAM, AsOf::Version(version))
                .await?;
            Arc::new(fold(&batches))
        };
        let mut seen = self.0.lock().expect("poisoned");
        *seen = Seen {
            looked_at: Some(Instant::now()),
            version: Some(version),
            lists: lists.clone(),
        };
        Ok(lists)
    }

    /// The rows of `batch` naming a code their list does not have: (the first
    /// [`MAX_LISTED_ERRORS`] errors, how many in all).
    pub(crate) async fn check(
        &self,
        store: &Store,
        def: &StreamDef,
        batch: &RecordBatch,
    ) -> kho_store::Result<(Vec<RowError>, usize)> {
        let columns: Vec<(&str, &'static str)> = def
            .columns
            .iter()
            .filter_map(|c| code_list(&def.name, &c.name).map(|l| (c.name.as_str(), l)))
            .collect();
        if columns.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let lists = self.lists(store).await?;
        let mut errors = Vec::new();
        let mut total = 0;
        for i in 0..batch.num_rows() {
            for (column, list) in &columns {
                let Some(known) = lists.get(*list).filter(|k| !k.is_empty()) else {
                    continue;
                };
                let Some(value) = batch
                    .column_by_name(column)
                    .and_then(|c| text(c.as_ref(), i))
                else {
                    continue;
                };
                if known.contains(value) {
                    continue;
                }
                total += 1;
                if errors.len() < MAX_LISTED_ERRORS {
                    errors.push(RowError::new(
                        i + 1,
                        Some((*column).to_owned()),
                        format!(
                            "unknown {list} code {value:?}: {CODES_STREAM} has no such code; nearest known: {}",
                            nearest(value, known).join(", ")
                        ),
                    ));
                }
            }
        }
        Ok((errors, total))
    }
}

/// The three known codes closest to `value` (edit distance, ignoring case; then the code).
fn nearest(value: &str, known: &BTreeSet<String>) -> Vec<String> {
    let lower = value.to_lowercase();
    let mut by: Vec<(usize, &String)> = known
        .iter()
        .map(|k| (strsim::levenshtein(&lower, &k.to_lowercase()), k))
        .collect();
    by.sort();
    by.into_iter().take(3).map(|(_, k)| k.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_codes_come_first() {
        let known: BTreeSet<String> = ["STP", "STC", "SXD", "UBND-TC", "SYT"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(nearest("stp", &known), ["STP", "STC", "SXD"]);
        assert_eq!(nearest("UBND-T", &known)[0], "UBND-TC");
    }
}
