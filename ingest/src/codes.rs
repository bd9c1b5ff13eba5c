//! The province's code lists (`reference.codes`), folded once per process, and what they are
//! for: an event naming a code its list does not have is refused once the list has entries
//! (with the field and the nearest known codes), and the pages show a code's names beside it
//! ([`CodeLists::name`], through [`crate::Ingest::code_lists`]). A list with no entries checks
//! nothing, so a store without reference data takes events as before.
//!
//! A code is known once `code_registered` names it; its names are those of the latest
//! `code_registered` or `code_renamed` (by occurrence time, then event id); retracted events
//! count for nothing. The lists are read again when the stream has a new version, looked for
//! at most once a second ([`LOOK_EVERY`]) and at once after this process appends to it: a
//! code registered through another process is known here within that second.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use kho_store::pack::{CODES_STREAM, code_list};
use kho_store::{AsOf, RowError, Store, StreamDef, latest_version, stream_key};

use crate::decode::MAX_LISTED_ERRORS;

/// How often the lists' stream is looked at for a new version.
pub(crate) const LOOK_EVERY: Duration = Duration::from_secs(1);

/// A code's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeName {
    pub vi: String,
    pub en: Option<String>,
}

/// The code lists as of one version of `reference.codes`.
#[derive(Debug, Default)]
pub struct CodeLists {
    /// The stream version they were read at (0: none yet).
    pub version: u64,
    /// Registered codes by list.
    known: HashMap<String, BTreeSet<String>>,
    /// Names by (list, code).
    names: HashMap<(String, String), CodeName>,
}

impl CodeLists {
    /// The names of `code` in `list`, if it has any.
    pub fn name(&self, list: &str, code: &str) -> Option<&CodeName> {
        self.names.get(&(list.to_owned(), code.to_owned()))
    }

    /// Folds the stream's rows (strings as plain `Utf8`, as the store reads them).
    pub fn fold(batches: &[RecordBatch]) -> Self {
        let text = |b: &RecordBatch, c: &str, i: usize| -> Option<String> {
            let col = b.column_by_name(c)?.as_string_opt::<i32>()?;
            (!col.is_null(i)).then(|| col.value(i).to_owned())
        };
        let mut retracted = HashSet::new();
        let mut events = Vec::new();
        for b in batches {
            let at = b
                .column_by_name("occurred_at")
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
            for i in 0..b.num_rows() {
                match text(b, "event_type", i).as_deref() {
                    Some("event_retracted") => {
                        if let Some(id) = text(b, "retracts_event_id", i) {
                            retracted.insert(id);
                        }
                    }
                    Some(kind @ ("code_registered" | "code_renamed")) => {
                        let registers = kind == "code_registered";
                        if let (Some(id), Some(code), Some(list), Some(vi)) = (
                            text(b, "event_id", i),
                            text(b, "entity_id", i),
                            text(b, "list", i),
                            text(b, "name_vi", i),
                        ) {
                            let when = at.map_or(0, |a| a.value(i));
                            let en = text(b, "name_en", i);
                            events.push((when, id, registers, list, code, CodeName { vi, en }));
                        }
                    }
                    _ => {}
                }
            }
        }
        events.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut lists = CodeLists::default();
        for (_, id, registers, list, code, name) in events {
            if retracted.contains(&id) {
                continue;
            }
            if registers {
                lists
                    .known
                    .entry(list.clone())
                    .or_default()
                    .insert(code.clone());
            }
            lists.names.insert((list, code), name);
        }
        lists
    }
}

#[derive(Debug, Default)]
struct Seen {
    looked_at: Option<Instant>,
    lists: Arc<CodeLists>,
}

/// The code lists as last read.
#[derive(Debug, Default)]
pub(crate) struct KnownCodes(Mutex<Seen>);

impl KnownCodes {
    /// Forgets when the lists were last looked at: the next check reads them (after this
    /// process appended to them).
    pub(crate) fn stale(&self) {
        self.0.lock().expect("poisoned").looked_at = None;
    }

    /// The lists, read again if the stream has a new version (looked for at most once a
    /// second).
    pub(crate) async fn lists(&self, store: &Store) -> kho_store::Result<Arc<CodeLists>> {
        let known = {
            let seen = self.0.lock().expect("poisoned");
            if seen.looked_at.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
                return Ok(seen.lists.clone());
            }
            seen.lists.clone()
        };
        let version = match latest_version(store, &stream_key(CODES_STREAM)).await {
            Ok(v) => v,
            Err(e) if e.kind() == kho_store::ErrorKind::NotFound => {
                return Ok(Arc::default());
            }
            Err(e) => return Err(e),
        };
        let lists = if known.version == version && version > 0 {
            known
        } else {
            let batches = store
                .read_stream(CODES_STREAM, AsOf::Version(version))
                .await?;
            Arc::new(CodeLists {
                version,
                ..CodeLists::fold(&batches)
            })
        };
        *self.0.lock().expect("poisoned") = Seen {
            looked_at: Some(Instant::now()),
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
                let Some(known) = lists.known.get(*list).filter(|k| !k.is_empty()) else {
                    continue;
                };
                let Some(value) = batch
                    .column_by_name(column)
                    .and_then(|c| c.as_string_opt::<i32>())
                    .filter(|c| !c.is_null(i))
                    .map(|c| c.value(i))
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
    use std::sync::Arc;

    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

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

    #[test]
    fn the_latest_name_wins_and_retractions_count_for_nothing() {
        let s = |v: &[Option<&str>]| Arc::new(StringArray::from(v.to_vec())) as Arc<dyn Array>;
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("event_type", DataType::Utf8, false),
            Field::new("entity_id", DataType::Utf8, false),
            Field::new(
                "occurred_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("list", DataType::Utf8, true),
            Field::new("name_vi", DataType::Utf8, true),
            Field::new("name_en", DataType::Utf8, true),
            Field::new("retracts_event_id", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                s(&[Some("e3"), Some("e1"), Some("e2"), Some("e4")]),
                s(&[
                    Some("code_renamed"),
                    Some("code_registered"),
                    Some("code_registered"),
                    Some("event_retracted"),
                ]),
                s(&[Some("STP"), Some("STP"), Some("STC"), Some("STC")]),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![30, 10, 20, 40]).with_timezone("UTC"),
                ),
                s(&[
                    Some("organisation"),
                    Some("organisation"),
                    Some("organisation"),
                    None,
                ]),
                s(&[
                    Some("Sở Tư pháp tỉnh"),
                    Some("Sở Tư pháp"),
                    Some("Sở Tài chính"),
                    None,
                ]),
                s(&[None, Some("Department of Justice"), None, None]),
                s(&[None, None, None, Some("e2")]),
            ],
        )
        .unwrap();
        let lists = CodeLists::fold(&[batch]);
        // The correction (later) replaces both names.
        let stp = lists.name("organisation", "STP").unwrap();
        assert_eq!(
            (stp.vi.as_str(), stp.en.as_deref()),
            ("Sở Tư pháp tỉnh", None)
        );
        assert_eq!(lists.name("organisation", "STC"), None, "retracted");
        assert_eq!(lists.name("district", "STP"), None, "another list");
        let known: Vec<&String> = lists.known["organisation"].iter().collect();
        assert_eq!(known, ["STP"], "registered and not retracted");
    }
}
