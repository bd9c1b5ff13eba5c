//! The names people read beside codes, from the `reference.codes` stream: the latest
//! `code_registered` or `code_renamed` of a (list, code) wins, by occurrence time then event
//! id; retracted events count for nothing. Read again only when the stream has a new
//! version (one look at its log per page).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use kho_store::{AsOf, Store, latest_version, stream_key};

use super::i18n::Lang;
use crate::error::ApiResult;

const STREAM: &str = "reference.codes";

/// A code's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) vi: String,
    pub(crate) en: Option<String>,
}

/// Every code list's names.
#[derive(Debug, Default)]
pub(crate) struct Names {
    /// The stream version read (part of the pages' entity tags: a rename changes them).
    pub(crate) version: u64,
    by: HashMap<(String, String), Named>,
}

impl Names {
    /// The name of `code` in `list`, in the page's language (English falls back to
    /// Vietnamese), or `None` for a code with no name yet.
    pub(crate) fn get(&self, list: &str, code: &str, lang: Lang) -> Option<&str> {
        let n = self.by.get(&(list.to_owned(), code.to_owned()))?;
        Some(match lang {
            Lang::En => n.en.as_deref().unwrap_or(&n.vi),
            Lang::Vi => &n.vi,
        })
    }

    fn fold(batches: &[RecordBatch]) -> Self {
        let text = |b: &RecordBatch, c: &str, i: usize| -> Option<String> {
            let col = b.column_by_name(c)?;
            if col.is_null(i) {
                return None;
            }
            match col.data_type() {
                DataType::Utf8 => Some(col.as_string::<i32>().value(i).to_owned()),
                DataType::Utf8View => Some(col.as_string_view().value(i).to_owned()),
                DataType::LargeUtf8 => Some(col.as_string::<i64>().value(i).to_owned()),
                _ => None,
            }
        };
        let mut retracted = HashSet::new();
        let mut events = Vec::new();
        for b in batches {
            let at = b
                .column_by_name("occurred_at")
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
            for i in 0..b.num_rows() {
                let Some(kind) = text(b, "event_type", i) else {
                    continue;
                };
                if kind == "event_retracted" {
                    if let Some(id) = text(b, "retracts_event_id", i) {
                        retracted.insert(id);
                    }
                    continue;
                }
                if !matches!(kind.as_str(), "code_registered" | "code_renamed") {
                    continue;
                }
                let (Some(id), Some(code), Some(list), Some(vi)) = (
                    text(b, "event_id", i),
                    text(b, "entity_id", i),
                    text(b, "list", i),
                    text(b, "name_vi", i),
                ) else {
                    continue;
                };
                let when = at.map_or(0, |a| a.value(i));
                events.push((when, id, list, code, vi, text(b, "name_en", i)));
            }
        }
        events.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut by = HashMap::new();
        for (_, id, list, code, vi, en) in events {
            if !retracted.contains(&id) {
                by.insert((list, code), Named { vi, en });
            }
        }
        Names { version: 0, by }
    }
}

/// The names last read, with the stream version they reflect: one per server.
#[derive(Debug, Default)]
pub(crate) struct NamesCache(Mutex<Option<Arc<Names>>>);

/// The names, read again only if the stream moved since the last read.
pub(crate) async fn load(store: &Store, cache: &NamesCache) -> ApiResult<Arc<Names>> {
    let version = match latest_version(store, &stream_key(STREAM)).await {
        Ok(v) => v,
        // Not registered on this store (an older pack): no names.
        Err(e) if e.kind() == kho_store::ErrorKind::NotFound => return Ok(Arc::default()),
        Err(e) => return Err(e.into()),
    };
    if let Some(names) = cache.0.lock().expect("poisoned").as_ref()
        && names.version == version
    {
        return Ok(names.clone());
    }
    let batches = store.read_stream(STREAM, AsOf::Version(version)).await?;
    let names = Arc::new(Names {
        version,
        ..Names::fold(&batches)
    });
    *cache.0.lock().expect("poisoned") = Some(names.clone());
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    use super::*;

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
        let names = Names::fold(&[batch]);
        // The correction (later) replaces both names; English falls back to Vietnamese.
        assert_eq!(
            names.get("organisation", "STP", Lang::Vi),
            Some("Sở Tư pháp tỉnh")
        );
        assert_eq!(
            names.get("organisation", "STP", Lang::En),
            Some("Sở Tư pháp tỉnh")
        );
        assert_eq!(
            names.get("organisation", "STC", Lang::Vi),
            None,
            "retracted"
        );
        assert_eq!(names.get("district", "STP", Lang::Vi), None, "another list");
    }
}
