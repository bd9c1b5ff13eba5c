//! One row at a time: raw field values in, typed and validated Arrow columns out.
//!
//! Every decoder (NDJSON, JSON array, CSV) hands each event to [`BatchBuilder::push`] as a
//! row of [`Raw`] values by column. The builder converts each value to its column's type,
//! applies the stream's rules (required fields per event type, enums, positive amounts,
//! cross-field rules, unknown and unused fields) and appends the row, or records what is
//! wrong with it. A batch with any problem is rejected whole.
//!
//! Values and their typing are in `value`, the Arrow column builders in `columns`; this
//! module holds the rules.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use kho_store::RowError;
use kho_store::schema::{
    ENTITY_ID, ENVELOPE, EVENT_ID, EVENT_TYPE, OCCURRED_AT, RECORDED_AT, SOURCE, UTC,
};
use kho_store::{ColumnType, Literal, StreamDef};
use uuid::Uuid;

use super::columns::ColBuilder;
use super::value::{Raw, Val, convert};

/// The most problems a rejection lists.
pub const MAX_LISTED_ERRORS: usize = 100;
/// Where a field name leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Column(usize),
    /// `recorded_at` and `source` are set by the server.
    ServerSet,
}

/// The raw values of one row, by column index, plus the names no column takes.
#[derive(Debug)]
pub(crate) struct RawRow<'a> {
    pub(crate) values: Vec<Option<Raw<'a>>>,
    /// The column each key position held in the previous row (a lookup shortcut).
    order: Vec<Slot>,
    pub(crate) unknown: Vec<String>,
    pub(crate) server_set: Vec<&'static str>,
    pub(crate) repeated: Vec<usize>,
}

impl<'a> RawRow<'a> {
    /// Empties the row for the next event, keeping its allocation.
    pub(crate) fn clear(&mut self) {
        self.values.iter_mut().for_each(|v| *v = None);
        self.unknown.clear();
        self.server_set.clear();
        self.repeated.clear();
    }

    pub(crate) fn set(&mut self, index: usize, value: Raw<'a>) {
        if self.values[index].is_some() {
            self.repeated.push(index);
        }
        self.values[index] = Some(value);
    }
}

/// Why a batch was refused by the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Problems by row and field: the first [`MAX_LISTED_ERRORS`] and the total count.
    Invalid {
        errors: Vec<RowError>,
        total: usize,
    },
    Empty,
    TooManyEvents {
        max: usize,
    },
}

/// How an event type uses a payload column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Use<'d> {
    Unused,
    Optional,
    Required,
    /// Required, with the one value the event type allows.
    Fixed(&'d Literal),
}

/// Builds the Arrow batch of one request, validating each row on the way.
pub(crate) struct BatchBuilder<'d> {
    def: &'d StreamDef,
    names: Vec<&'d str>,
    types: Vec<ColumnType>,
    lookup: HashMap<&'d str, Slot, foldhash::fast::RandomState>,
    /// Per event type (in definition order), per payload column: how the type uses it.
    usage: Vec<Vec<Use<'d>>>,
    builders: Vec<Option<ColBuilder>>,
    rows: usize,
    errors: Vec<RowError>,
    total_errors: usize,
    ids: HashMap<u128, usize, foldhash::fast::RandomState>,
    max_rows: usize,
    too_many: bool,
    /// `occurred_at` must fall within `[earliest, latest)` (µs since the epoch, UTC).
    occurred_window: (i64, i64),
}

impl<'d> BatchBuilder<'d> {
    /// A builder for up to `max_rows` rows, sized for about `expected_rows`.
    pub(crate) fn new(
        def: &'d StreamDef,
        max_rows: usize,
        expected_rows: usize,
        occurred_window: (i64, i64),
    ) -> Self {
        let usage = def
            .event_types
            .iter()
            .map(|et| {
                def.columns
                    .iter()
                    .map(|c| {
                        if let Some((_, lit)) = et.fixed.iter().find(|(n, _)| *n == c.name) {
                            Use::Fixed(lit)
                        } else if et.required.contains(&c.name) {
                            Use::Required
                        } else if et.optional.contains(&c.name) {
                            Use::Optional
                        } else {
                            Use::Unused
                        }
                    })
                    .collect()
            })
            .collect();
        let expected_rows = expected_rows.min(max_rows);
        let mut names: Vec<&str> = ENVELOPE.iter().map(|(n, _, _)| *n).collect();
        let mut types: Vec<ColumnType> = ENVELOPE.iter().map(|(_, t, _)| *t).collect();
        for c in &def.columns {
            names.push(&c.name);
            types.push(c.ty);
        }
        let lookup = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let slot = if *n == RECORDED_AT || *n == SOURCE {
                    Slot::ServerSet
                } else {
                    Slot::Column(i)
                };
                (*n, slot)
            })
            .collect();
        let builders = names
            .iter()
            .zip(&types)
            .map(|(n, t)| {
                (*n != RECORDED_AT && *n != SOURCE).then(|| ColBuilder::new(*t, expected_rows))
            })
            .collect();
        Self {
            def,
            names,
            types,
            lookup,
            usage,
            builders,
            rows: 0,
            errors: Vec::new(),
            total_errors: 0,
            ids: HashMap::default(),
            max_rows,
            too_many: false,
            occurred_window,
        }
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<Slot> {
        self.lookup.get(name).copied()
    }

    /// Looks up the `position`-th key of a row, trying first the column the same position
    /// held in the previous row: producers write their keys in a fixed order.
    pub(crate) fn lookup_at(
        &self,
        row: &mut RawRow<'_>,
        position: usize,
        name: &str,
    ) -> Option<Slot> {
        if let Some(&Slot::Column(i)) = row.order.get(position)
            && self.names[i] == name
        {
            return Some(Slot::Column(i));
        }
        let slot = self.lookup(name);
        if let Some(Slot::Column(i)) = slot {
            if position < row.order.len() {
                row.order[position] = Slot::Column(i);
            } else if position == row.order.len() {
                row.order.push(Slot::Column(i));
            }
        }
        slot
    }

    pub(crate) fn new_row<'a>(&self) -> RawRow<'a> {
        RawRow {
            values: vec![None; self.names.len()],
            order: Vec::with_capacity(self.names.len()),
            unknown: Vec::new(),
            server_set: Vec::new(),
            repeated: Vec::new(),
        }
    }

    /// Room for one more row? Sets the too-many flag when not.
    pub(crate) fn has_room(&mut self) -> bool {
        if self.rows >= self.max_rows {
            self.too_many = true;
        }
        !self.too_many
    }

    /// Records a problem with the row being read (1-based; 0 is a CSV header).
    pub(crate) fn error(&mut self, row: usize, field: Option<&str>, message: impl Into<String>) {
        self.total_errors += 1;
        if self.errors.len() < MAX_LISTED_ERRORS {
            self.errors
                .push(RowError::new(row, field.map(str::to_owned), message));
        }
    }

    /// Counts a row that could not be read at all.
    pub(crate) fn skip_row(&mut self, message: impl Into<String>) {
        self.rows += 1;
        let row = self.rows;
        self.error(row, None, message);
    }

    /// Validates one row and appends it (or records its problems).
    pub(crate) fn push(&mut self, raw: &mut RawRow<'_>) {
        self.rows += 1;
        let row = self.rows;
        let before = self.total_errors;
        for name in &raw.unknown {
            self.error(
                row,
                Some(name),
                format!("unknown field: {} has no column {name}", self.def.name),
            );
        }
        for name in &raw.server_set {
            self.error(row, Some(name), "set by the server; leave it out");
        }
        for &i in &raw.repeated {
            let name = self.names[i];
            self.error(row, Some(name), "given more than once");
        }
        // Type every present value.
        let mut vals: Vec<Option<Val<'_>>> = Vec::with_capacity(raw.values.len());
        for (i, v) in raw.values.iter_mut().enumerate() {
            let typed = match v.take() {
                None | Some(Raw::Null) => None,
                Some(v) => match convert(v, self.types[i]) {
                    Ok(v) => Some(v),
                    Err(msg) => {
                        let name = self.names[i];
                        self.error(row, Some(name), msg);
                        None
                    }
                },
            };
            vals.push(typed);
        }
        raw.clear();
        self.check_envelope(row, &mut vals);
        self.check_event_type(row, &vals);
        if self.total_errors == before && self.errors.is_empty() {
            for (b, v) in self.builders.iter_mut().zip(&vals) {
                if let Some(b) = b {
                    b.append(v.as_ref());
                }
            }
        }
    }

    fn check_envelope(&mut self, row: usize, vals: &mut [Option<Val<'_>>]) {
        // event_id: optional UUID, canonical form, unique within the batch.
        match &vals[0] {
            None => vals[0] = Some(Val::Str(Cow::Owned(Uuid::now_v7().to_string()))),
            Some(Val::Str(s)) => match Uuid::try_parse(s) {
                Ok(u) => {
                    if let Some(first) = self.ids.insert(u.as_u128(), row) {
                        self.error(
                            row,
                            Some(EVENT_ID),
                            format!("event_id {u} repeats row {first} of this batch"),
                        );
                    }
                    // Keep the text when it already is the canonical form.
                    let canonical = s.len() == 36 && !s.bytes().any(|b| b.is_ascii_uppercase());
                    if !canonical {
                        vals[0] = Some(Val::Str(Cow::Owned(u.to_string())));
                    }
                }
                Err(_) => self.error(row, Some(EVENT_ID), format!("{s:?} is not a UUID")),
            },
            Some(_) => {}
        }
        for (i, name) in [(1, EVENT_TYPE), (2, ENTITY_ID), (3, OCCURRED_AT)] {
            if vals[i].is_none() && !self.has_error(row, name) {
                self.error(row, Some(name), "required");
            }
        }
        if let Some(Val::Str(s)) = &vals[2]
            && s.trim().is_empty()
        {
            self.error(row, Some(ENTITY_ID), "must not be empty");
        }
        if let Some(Val::Ts(t)) = &vals[3] {
            let (earliest, latest) = self.occurred_window;
            if *t < earliest || *t >= latest {
                let show = |us: i64| {
                    chrono::DateTime::from_timestamp_micros(us)
                        .map_or_else(|| us.to_string(), |d| d.to_rfc3339())
                };
                self.error(
                    row,
                    Some(OCCURRED_AT),
                    format!(
                        "{} is outside the plausible window {} to {}: an event cannot have happened then",
                        show(*t),
                        show(earliest),
                        show(latest)
                    ),
                );
            }
        }
    }

    fn check_event_type(&mut self, row: usize, vals: &[Option<Val<'_>>]) {
        let def = self.def;
        let Some(Val::Str(name)) = &vals[1] else {
            return;
        };
        let Some(et_index) = def.event_types.iter().position(|e| e.name == *name) else {
            let known: Vec<&str> = def.event_types.iter().map(|e| e.name.as_str()).collect();
            self.error(
                row,
                Some(EVENT_TYPE),
                format!(
                    "unknown event type {name:?}: {} takes {}",
                    def.name,
                    known.join(", ")
                ),
            );
            return;
        };
        let et = &def.event_types[et_index];
        let payload = &vals[ENVELOPE.len()..];
        for (c, (col, v)) in def.columns.iter().zip(payload).enumerate() {
            let usage = self.usage[et_index][c];
            match v {
                None => {
                    if matches!(usage, Use::Required | Use::Fixed(_))
                        && !self.has_error(row, &col.name)
                    {
                        self.error(
                            row,
                            Some(&col.name),
                            format!("required for event type {}", et.name),
                        );
                    }
                }
                Some(v) => {
                    if usage == Use::Unused {
                        self.error(
                            row,
                            Some(&col.name),
                            format!("not used by event type {}", et.name),
                        );
                        continue;
                    }
                    if let Some(allowed) = &col.allowed
                        && !allowed.iter().any(|l| v.matches(l))
                    {
                        let list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
                        self.error(
                            row,
                            Some(&col.name),
                            format!("must be one of {}; found {v}", list.join(", ")),
                        );
                        continue;
                    }
                    if col.positive {
                        let positive = match v {
                            Val::Int(i) => *i > 0,
                            Val::Float(x) => *x > 0.0,
                            _ => true,
                        };
                        if !positive {
                            self.error(
                                row,
                                Some(&col.name),
                                format!("must be greater than 0; found {v}"),
                            );
                            continue;
                        }
                    }
                    if let (Some(max), Val::Int(i)) = (col.max, v)
                        && *i > max
                    {
                        self.error(
                            row,
                            Some(&col.name),
                            format!("{i} is above the largest plausible value, {max}"),
                        );
                        continue;
                    }
                    if let Use::Fixed(fixed) = usage
                        && !v.matches(fixed)
                    {
                        self.error(
                            row,
                            Some(&col.name),
                            format!("must be {fixed} for event type {}; found {v}", et.name),
                        );
                    }
                }
            }
        }
        for rule in &def.rules {
            let get = |c: &str| {
                def.columns
                    .iter()
                    .position(|x| x.name == c)
                    .and_then(|i| payload[i].as_ref())
            };
            if let (Some(cond), Some(then)) = (get(&rule.if_column), get(&rule.then_column))
                && cond.matches(&rule.if_value)
                && !rule.then_allowed.iter().any(|l| then.matches(l))
                && !self.has_error(row, &rule.then_column)
            {
                self.error(
                    row,
                    Some(&rule.then_column),
                    format!("{}; found {then}", rule.message),
                );
            }
        }
    }

    fn has_error(&self, row: usize, field: &str) -> bool {
        self.errors
            .iter()
            .rev()
            .take_while(|e| e.row == row)
            .any(|e| e.field.as_deref() == Some(field))
    }

    /// The batch, with `recorded_at` zero (set at commit) and `source` filled in.
    pub(crate) fn finish(self, source: &str) -> Result<RecordBatch, Rejection> {
        if self.too_many {
            return Err(Rejection::TooManyEvents { max: self.max_rows });
        }
        if self.total_errors > 0 {
            return Err(Rejection::Invalid {
                errors: self.errors,
                total: self.total_errors,
            });
        }
        if self.rows == 0 {
            return Err(Rejection::Empty);
        }
        let n = self.rows;
        let columns: Vec<ArrayRef> = self
            .builders
            .into_iter()
            .zip(&self.names)
            .map(|(b, name)| match b {
                Some(b) => b.finish(),
                None if *name == RECORDED_AT => {
                    Arc::new(TimestampMicrosecondArray::from(vec![0; n]).with_timezone(UTC))
                }
                None => Arc::new(arrow::array::StringArray::from_iter_values(
                    std::iter::repeat_n(source, n),
                )),
            })
            .collect();
        Ok(RecordBatch::try_new(self.def.arrow_schema(), columns)
            .expect("builders follow the schema"))
    }
}
