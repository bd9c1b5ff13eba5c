//! Deciding a group of submissions: which are replays, which are rejected and why, which
//! rows are new. Pure: the index and the submissions in, a [`Plan`] out; the writer
//! (`super`) does the I/O around it and records the plan once its commit is durable.

use std::collections::{HashMap, HashSet};

use arrow::array::{AsArray, BooleanArray};

use super::{Outcome, Submission};
use crate::error::RowError;
use crate::index::{
    BatchRecord, CommitMeta, IdMap, IdSet, KeyEntry, Receipt, StreamIndex, parse_id, type_index,
};
use crate::schema::{EVENT_ID, RETRACTION, StreamDef};

/// The stream's reference rules, resolved to indexes once per writer.
#[derive(Debug)]
pub(super) struct Rules {
    /// Per reference rule of the definition: its event type's index and its column's.
    refs: Vec<(u8, usize)>,
    /// The index of the retraction event type (never the target of a reference).
    retraction: u8,
}

impl Rules {
    pub(super) fn of(def: &StreamDef) -> Self {
        let refs = def
            .references
            .iter()
            .map(|r| {
                let column = def
                    .column_index(&r.column)
                    .expect("the registry checks that reference rules name columns");
                (type_index(def, &r.event_type), column)
            })
            .collect();
        Self {
            refs,
            retraction: type_index(def, RETRACTION),
        }
    }
}

/// Plans a group against one stream's committed events.
pub(super) struct Planner<'a> {
    pub(super) def: &'a StreamDef,
    pub(super) index: &'a StreamIndex,
    pub(super) rules: &'a Rules,
}

/// The decision for one submission within a planned group.
pub(super) enum Decision {
    Done(Outcome),
    /// Same key as an earlier submission of this group: gets its outcome.
    SameAs(usize),
    Accept(Accepted),
}

/// What an accepted submission adds.
pub(super) struct Accepted {
    /// Rows to write, when some are duplicates.
    pub(super) mask: Option<BooleanArray>,
    pub(super) accepted: u64,
    pub(super) duplicates: u64,
    /// The new events: id and event type index.
    new_ids: Vec<(u128, u8)>,
    /// Events its references name: (rule, target).
    new_refs: Vec<(usize, u128)>,
}

/// The decisions for a group of submissions, and what the group adds.
pub(super) struct Plan {
    pub(super) decisions: Vec<Decision>,
    /// (submission, accepted rows) of every accepted submission, in order.
    pub(super) signature: Vec<(usize, u64)>,
    pub(super) rows: u64,
}

impl Planner<'_> {
    /// Decides each submission against the index and the earlier submissions of the group.
    pub(super) fn plan(&self, subs: &[Submission]) -> Plan {
        let mut decisions = Vec::with_capacity(subs.len());
        let mut group_ids = IdMap::<u8>::default();
        let mut group_refs = HashSet::new();
        let mut group_keys: HashMap<&str, usize> = HashMap::new();
        let mut signature = Vec::new();
        let mut rows = 0u64;
        for (i, sub) in subs.iter().enumerate() {
            if let Some(key) = &sub.idempotency {
                if let Some(entry) = self.index.key(&key.key_sha256) {
                    decisions.push(Decision::Done(if entry.body_sha256 == key.body_sha256 {
                        Outcome::Replayed(entry.receipt)
                    } else {
                        Outcome::KeyReused
                    }));
                    continue;
                }
                if let Some(&first) = group_keys.get(key.key_sha256.as_str()) {
                    let same_body = subs[first]
                        .idempotency
                        .as_ref()
                        .is_some_and(|k| k.body_sha256 == key.body_sha256);
                    decisions.push(if same_body {
                        Decision::SameAs(first)
                    } else {
                        Decision::Done(Outcome::KeyReused)
                    });
                    continue;
                }
                group_keys.insert(&key.key_sha256, i);
            }
            match self.check(sub, &group_ids, &group_refs) {
                Err(errors) => decisions.push(Decision::Done(Outcome::Rejected(errors))),
                Ok(a) => {
                    group_ids.extend(a.new_ids.iter().copied());
                    group_refs.extend(a.new_refs.iter().copied());
                    if a.accepted > 0 {
                        signature.push((i, a.accepted));
                        rows += a.accepted;
                    }
                    decisions.push(Decision::Accept(a));
                }
            }
        }
        Plan {
            decisions,
            signature,
            rows,
        }
    }

    /// Checks one submission: which rows are new, and whether its references hold.
    fn check(
        &self,
        sub: &Submission,
        group_ids: &IdMap<u8>,
        group_refs: &HashSet<(usize, u128)>,
    ) -> std::result::Result<Accepted, Vec<RowError>> {
        let batch = &sub.batch;
        let ids = batch.column(0).as_string::<i32>();
        let types = batch.column(1).as_string::<i32>();
        let n = batch.num_rows();
        let mut keep = Vec::with_capacity(n);
        let mut new_ids = Vec::with_capacity(n);
        let mut errors = Vec::new();
        for (row, id) in ids.iter().enumerate() {
            let Some(id) = id.and_then(parse_id) else {
                errors.push(RowError::new(
                    row + 1,
                    Some(EVENT_ID.into()),
                    "event_id must be a UUID",
                ));
                keep.push(false);
                continue;
            };
            let new = self.index.event_type(id).is_none() && !group_ids.contains_key(&id);
            keep.push(new);
            if new {
                new_ids.push((id, type_index(self.def, types.value(row))));
            }
        }
        let mut new_refs = Vec::new();
        let own: IdMap<u8> = new_ids.iter().copied().collect();
        for (rule_index, (rule, &(ref_type, col))) in
            self.def.references.iter().zip(&self.rules.refs).enumerate()
        {
            let mut named = IdSet::default();
            let refs = batch.column(col).as_string::<i32>();
            for (row, target) in refs.iter().enumerate() {
                // Only new events of the rule's type; a missing target is reported at decode.
                let Some(text) = target else { continue };
                if !keep[row] || type_index(self.def, types.value(row)) != ref_type {
                    continue;
                }
                let error =
                    |message: String| RowError::new(row + 1, Some(rule.column.clone()), message);
                let Some(target) = parse_id(text) else {
                    errors.push(error(format!("{text:?} is not a UUID")));
                    continue;
                };
                let target_type = self
                    .index
                    .event_type(target)
                    .or_else(|| group_ids.get(&target).copied())
                    .or_else(|| own.get(&target).copied());
                match target_type {
                    None => errors.push(error(format!(
                        "names event {text}, which is not in stream {}",
                        self.def.name
                    ))),
                    Some(t) if t == ref_type || t == self.rules.retraction => {
                        let name = self
                            .def
                            .event_types
                            .get(usize::from(t))
                            .map_or("event", |e| e.name.as_str());
                        errors.push(error(format!(
                            "names event {text}, which is itself an {name}: it cannot be {}",
                            rule.verb
                        )));
                    }
                    Some(_)
                        if self.index.is_referenced(rule_index, target)
                            || group_refs.contains(&(rule_index, target))
                            || !named.insert(target) =>
                    {
                        errors.push(error(format!("event {text} is already {}", rule.verb)));
                    }
                    Some(_) => new_refs.push((rule_index, target)),
                }
                if errors.len() >= 100 {
                    break;
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let accepted = new_ids.len() as u64;
        let duplicates = n as u64 - accepted;
        Ok(Accepted {
            mask: (duplicates > 0).then(|| BooleanArray::from(keep)),
            accepted,
            duplicates,
            new_ids,
            new_refs,
        })
    }
}

impl Plan {
    /// Records the plan, committed as `version` at `now_ms`, in the index.
    pub(super) fn record(
        &self,
        index: &mut StreamIndex,
        subs: &[Submission],
        version: u64,
        now_ms: i64,
    ) {
        for (i, d) in self.decisions.iter().enumerate() {
            let Decision::Accept(a) = d else { continue };
            for &(id, ty) in &a.new_ids {
                index.insert_event(id, ty);
            }
            for &(rule, target) in &a.new_refs {
                index.insert_reference(rule, target);
            }
            if let Some(key) = &subs[i].idempotency {
                index.insert_key(
                    key.key_sha256.clone(),
                    KeyEntry {
                        receipt: Receipt {
                            version,
                            accepted: a.accepted,
                            duplicates: a.duplicates,
                        },
                        body_sha256: key.body_sha256.clone(),
                        committed_at_ms: now_ms,
                    },
                );
            }
        }
    }

    /// The commit's metadata: the keys it answers and how many events it adds.
    pub(super) fn commit_meta(&self, subs: &[Submission]) -> CommitMeta {
        let mut meta = CommitMeta {
            batches: Vec::new(),
            events: self.rows,
        };
        for (i, d) in self.decisions.iter().enumerate() {
            if let (Decision::Accept(a), Some(key)) = (d, &subs[i].idempotency) {
                meta.batches.push(BatchRecord {
                    idempotency_key: key.key_sha256.clone(),
                    body_sha256: key.body_sha256.clone(),
                    accepted: a.accepted,
                    duplicates: a.duplicates,
                });
            }
        }
        meta
    }
}

/// Turns decisions into outcomes once the version is known.
pub(super) fn finish(decisions: Vec<Decision>, version: u64) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = Vec::with_capacity(decisions.len());
    for d in decisions {
        let o = match d {
            Decision::Done(o) => o,
            Decision::SameAs(first) => match &out[first] {
                Outcome::Committed(r) | Outcome::Replayed(r) => Outcome::Replayed(*r),
                other => other.clone(),
            },
            Decision::Accept(a) => Outcome::Committed(Receipt {
                version,
                accepted: a.accepted,
                duplicates: a.duplicates,
            }),
        };
        out.push(o);
    }
    out
}

#[cfg(test)]
mod tests {
    use arrow::array::RecordBatch;
    use serde_json::{Value, json};

    use super::*;
    use crate::writer::IdempotencyKey;

    fn budget() -> StreamDef {
        crate::pack::province_pack()
            .into_iter()
            .find(|d| d.name == "finance.budget")
            .unwrap()
    }

    fn id(n: u32) -> String {
        format!("00000000-0000-7000-8000-{n:012}")
    }

    fn revenue(n: u32) -> Value {
        json!({"event_id": id(n), "event_type": "revenue_collected", "fiscal_year": 2021,
               "agency_code": "STC", "flow": "revenue", "category_code": "1001",
               "amount_vnd": 5})
    }

    fn reversal(n: u32, target: u32) -> Value {
        json!({"event_id": id(n), "event_type": "entry_reversed",
               "reverses_event_id": id(target)})
    }

    fn sub(def: &StreamDef, rows: &[Value], key: Option<(&str, &str)>) -> Submission {
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut r = r.clone();
                let o = r.as_object_mut().unwrap();
                o.insert("entity_id".into(), json!("e-1"));
                o.insert("occurred_at".into(), json!("2021-03-01T01:00:00Z"));
                o.insert("recorded_at".into(), json!("1970-01-01T00:00:00Z"));
                o.insert("source".into(), json!("test"));
                r
            })
            .collect();
        let mut decoder = arrow::json::ReaderBuilder::new(def.arrow_schema())
            .build_decoder()
            .unwrap();
        decoder.serialize(&rows).unwrap();
        let batch: RecordBatch = decoder.flush().unwrap().unwrap();
        Submission {
            batch,
            idempotency: key.map(|(k, b)| IdempotencyKey {
                key_sha256: k.into(),
                body_sha256: b.into(),
            }),
        }
    }

    fn plan(def: &StreamDef, index: &StreamIndex, subs: &[Submission]) -> Plan {
        Planner {
            def,
            index,
            rules: &Rules::of(def),
        }
        .plan(subs)
    }

    /// What each submission would get if the plan were committed as version 7.
    fn outcomes(def: &StreamDef, index: &StreamIndex, subs: &[Submission]) -> Vec<Outcome> {
        finish(plan(def, index, subs).decisions, 7)
    }

    fn committed(accepted: u64, duplicates: u64) -> Outcome {
        Outcome::Committed(Receipt {
            version: 7,
            accepted,
            duplicates,
        })
    }

    #[test]
    fn events_already_committed_or_earlier_in_the_group_are_duplicates() {
        let def = budget();
        let mut index = StreamIndex::default();
        index.insert_event(
            parse_id(&id(1)).unwrap(),
            type_index(&def, "revenue_collected"),
        );
        let subs = [
            sub(&def, &[revenue(1), revenue(2)], None),
            sub(&def, &[revenue(2), revenue(3)], None),
        ];
        let p = plan(&def, &index, &subs);
        assert_eq!(p.rows, 2, "ids 2 and 3 are new");
        assert_eq!(p.signature, vec![(0, 1), (1, 1)]);
        assert_eq!(
            finish(p.decisions, 7),
            vec![committed(1, 1), committed(1, 1)]
        );
    }

    #[test]
    fn a_key_is_replayed_reused_or_shared_within_the_group() {
        let def = budget();
        let mut index = StreamIndex::default();
        let first = Receipt {
            version: 3,
            accepted: 1,
            duplicates: 0,
        };
        index.insert_key(
            "k-old".into(),
            KeyEntry {
                receipt: first,
                body_sha256: "b".into(),
                committed_at_ms: 0,
            },
        );
        let subs = [
            sub(&def, &[revenue(1)], Some(("k-old", "b"))),
            sub(&def, &[revenue(1)], Some(("k-old", "other"))),
            sub(&def, &[revenue(2)], Some(("k-new", "b"))),
            sub(&def, &[revenue(2)], Some(("k-new", "b"))),
            sub(&def, &[revenue(9)], Some(("k-new", "other"))),
        ];
        assert_eq!(
            outcomes(&def, &index, &subs),
            vec![
                Outcome::Replayed(first),
                Outcome::KeyReused,
                committed(1, 0),
                Outcome::Replayed(Receipt {
                    version: 7,
                    accepted: 1,
                    duplicates: 0
                }),
                Outcome::KeyReused,
            ]
        );
    }

    #[test]
    fn a_reference_must_name_an_event_of_the_stream_once() {
        let def = budget();
        let index = StreamIndex::default();
        let subs = [
            // Names an event of the same request: fine.
            sub(&def, &[revenue(1), reversal(2, 1)], None),
            // Names an event nobody sent.
            sub(&def, &[reversal(3, 99)], None),
            // Reverses what the first submission of the group already reverses.
            sub(&def, &[reversal(4, 1)], None),
            // Reverses a reversal.
            sub(&def, &[reversal(5, 2)], None),
        ];
        let got = outcomes(&def, &index, &subs);
        assert_eq!(got[0], committed(2, 0));
        let message = |o: &Outcome| match o {
            Outcome::Rejected(errors) => {
                assert_eq!(errors.len(), 1, "{errors:?}");
                assert_eq!(errors[0].row, 1);
                assert_eq!(errors[0].field.as_deref(), Some("reverses_event_id"));
                errors[0].message.clone()
            }
            other => panic!("expected a rejection, got {other:?}"),
        };
        assert!(message(&got[1]).contains("which is not in stream finance.budget"));
        assert!(message(&got[2]).contains("is already reversed"));
        assert!(message(&got[3]).contains("is itself an entry_reversed"));
    }

    #[test]
    fn recording_a_plan_indexes_its_events_references_and_keys() {
        let def = budget();
        let mut index = StreamIndex::default();
        let subs = [sub(&def, &[revenue(1), reversal(2, 1)], Some(("k", "b")))];
        let p = plan(&def, &index, &subs);
        let meta = p.commit_meta(&subs);
        assert_eq!(meta.events, 2);
        assert_eq!(meta.batches.len(), 1);
        p.record(&mut index, &subs, 7, 1_000);
        assert_eq!(index.len(), 2);
        assert!(index.is_referenced(0, parse_id(&id(1)).unwrap()));
        let entry = index.key("k").expect("the key is indexed");
        assert_eq!((entry.receipt.version, entry.committed_at_ms), (7, 1_000));
        // The same group again: all duplicates now, and the key replays.
        assert_eq!(
            outcomes(&def, &index, &subs),
            vec![Outcome::Replayed(entry.receipt)]
        );
    }
}
