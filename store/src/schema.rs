//! Column types, the event envelope and stream definitions.
//!
//! A stream definition is data, not code: the province stream pack in
//! [`crate::pack`] is a list of [`StreamDef`]s, and everything downstream
//! (table creation, schema evolution, ingest validation, the `GET
//! /v1/streams/{stream}` description) reads the same definition.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Serialize;

/// The time zone every timestamp column is stored in (UTC, microseconds).
pub const UTC: &str = "UTC";

/// The envelope columns every stream starts with, in order.
pub const EVENT_ID: &str = "event_id";
pub const EVENT_TYPE: &str = "event_type";
pub const ENTITY_ID: &str = "entity_id";
pub const OCCURRED_AT: &str = "occurred_at";
pub const RECORDED_AT: &str = "recorded_at";
pub const SOURCE: &str = "source";

/// Envelope columns in table order: name, type, set by the server.
pub const ENVELOPE: [(&str, ColumnType, bool); 6] = [
    (EVENT_ID, ColumnType::String, false),
    (EVENT_TYPE, ColumnType::String, false),
    (ENTITY_ID, ColumnType::String, false),
    (OCCURRED_AT, ColumnType::Timestamp, false),
    (RECORDED_AT, ColumnType::Timestamp, true),
    (SOURCE, ColumnType::String, true),
];

/// Column metadata key holding the schema version that introduced a column.
pub const SINCE_VERSION_KEY: &str = "kho.since_version";

/// The value types a stream column can hold. Names follow Delta's primitive types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    String,
    Integer,
    Long,
    Double,
    Boolean,
    Timestamp,
}

impl ColumnType {
    /// The Arrow type used in batches and Parquet files.
    pub fn arrow(self) -> DataType {
        match self {
            Self::String => DataType::Utf8,
            Self::Integer => DataType::Int32,
            Self::Long => DataType::Int64,
            Self::Double => DataType::Float64,
            Self::Boolean => DataType::Boolean,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        }
    }

    /// The Delta (kernel) type recorded in the table schema.
    pub fn delta(self) -> deltalake::kernel::DataType {
        use deltalake::kernel::DataType as D;
        match self {
            Self::String => D::STRING,
            Self::Integer => D::INTEGER,
            Self::Long => D::LONG,
            Self::Double => D::DOUBLE,
            Self::Boolean => D::BOOLEAN,
            Self::Timestamp => D::TIMESTAMP,
        }
    }

    /// Lowercase name, as in the Delta protocol.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Long => "long",
            Self::Double => "double",
            Self::Boolean => "boolean",
            Self::Timestamp => "timestamp",
        }
    }

    /// Maps a Delta type back, for comparing a stored table with a definition.
    pub fn from_delta(dt: &deltalake::kernel::DataType) -> Option<Self> {
        [
            Self::String,
            Self::Integer,
            Self::Long,
            Self::Double,
            Self::Boolean,
            Self::Timestamp,
        ]
        .into_iter()
        .find(|t| &t.delta() == dt)
    }
}

/// A literal allowed in an enumerated column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Literal {
    Str(String),
    Int(i64),
}

impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Str(s) => f.write_str(s),
            Self::Int(i) => write!(f, "{i}"),
        }
    }
}

/// The largest amount one event may carry: 10^15 VND (a million billion dong, several times
/// a province's yearly budget), so that no sum over a stream can come near `i64::MAX`.
pub const MAX_VND: i64 = 1_000_000_000_000_000;

/// A payload column. Payload columns are always nullable: events are sparse.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// The closed set of values, for enumerated columns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Literal>>,
    /// Numeric values must be greater than zero.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub positive: bool,
    /// The largest value accepted (the largest plausible amount, for money).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// The schema version that introduced this column (1 for the original columns).
    pub since_version: u32,
}

impl ColumnDef {
    pub fn new(name: &str, ty: ColumnType) -> Self {
        Self {
            name: name.to_owned(),
            ty,
            allowed: None,
            positive: false,
            max: None,
            since_version: 1,
        }
    }

    pub fn one_of_str(mut self, values: &[&str]) -> Self {
        self.allowed = Some(
            values
                .iter()
                .map(|v| Literal::Str((*v).to_owned()))
                .collect(),
        );
        self
    }

    pub fn one_of_int(mut self, values: &[i64]) -> Self {
        self.allowed = Some(values.iter().map(|v| Literal::Int(*v)).collect());
        self
    }

    /// An amount of money in VND: greater than zero and at most [`MAX_VND`].
    pub fn money(mut self) -> Self {
        self.positive = true;
        self.max = Some(MAX_VND);
        self
    }

    pub fn positive(mut self) -> Self {
        self.positive = true;
        self
    }

    pub fn since(mut self, version: u32) -> Self {
        self.since_version = version;
        self
    }
}

/// An event type of a stream and the payload columns it fills.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventTypeDef {
    pub name: String,
    /// Columns that must be present.
    pub required: Vec<String>,
    /// Columns that may be present; any other payload column is refused.
    pub optional: Vec<String>,
    /// Columns whose value is fixed by the event type (`revenue_collected` has flow `revenue`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixed: Vec<(String, Literal)>,
}

impl EventTypeDef {
    pub fn new(name: &str, required: &[&str], optional: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            required: required.iter().map(|s| (*s).to_owned()).collect(),
            optional: optional.iter().map(|s| (*s).to_owned()).collect(),
            fixed: Vec::new(),
        }
    }

    pub fn fixing(mut self, column: &str, value: &str) -> Self {
        self.fixed
            .push((column.to_owned(), Literal::Str(value.to_owned())));
        self
    }

    pub fn uses(&self, column: &str) -> bool {
        self.required
            .iter()
            .chain(&self.optional)
            .any(|c| c == column)
    }
}

/// A cross-field rule: when `if_column` equals `if_value`, `then_column` must be one of `then_allowed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionalRule {
    pub if_column: String,
    pub if_value: Literal,
    pub then_column: String,
    pub then_allowed: Vec<Literal>,
    /// How the rule reads in an error message, e.g. "an online dossier must have level 3 or 4".
    pub message: String,
}

/// A rule that an event type names another event of the same stream.
///
/// The referenced event must exist (committed earlier or in the same batch), must not be of
/// the referencing type itself nor a retraction, and can be named only once by the rule (an
/// entry is reversed once, an event retracted once).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceRule {
    pub event_type: String,
    pub column: String,
    /// What the rule does to the event it names, for messages: "reversed", "retracted".
    pub verb: String,
}

/// The event type every stream has for taking a wrong event out: it names the event in
/// [`RETRACTS`] and says why in [`RETRACTION_REASON`]. Views fold the stream as if the
/// retracted event (and the retraction) had never been appended; the log keeps both.
pub const RETRACTION: &str = "event_retracted";
/// The column of a retraction naming the retracted event's id.
pub const RETRACTS: &str = "retracts_event_id";
/// The column of a retraction saying why the event is taken out.
pub const RETRACTION_REASON: &str = "retraction_reason";

/// The definition of one stream: name, owner, schema and validation rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamDef {
    pub name: String,
    /// The sector whose tokens may append to the stream.
    pub owner: String,
    pub description: String,
    pub schema_version: u32,
    pub columns: Vec<ColumnDef>,
    pub event_types: Vec<EventTypeDef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<ConditionalRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<ReferenceRule>,
}

impl StreamDef {
    /// The full Arrow schema: envelope then payload columns.
    pub fn arrow_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = ENVELOPE
            .iter()
            .map(|(name, ty, _)| Field::new(*name, ty.arrow(), false))
            .collect();
        fields.extend(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.ty.arrow(), true)),
        );
        Arc::new(Schema::new(fields))
    }

    /// The Delta schema fields: envelope then payload, each payload field tagged with the
    /// schema version that introduced it.
    pub fn delta_fields(&self) -> Vec<deltalake::kernel::StructField> {
        use deltalake::kernel::StructField;
        let mut fields: Vec<StructField> = ENVELOPE
            .iter()
            .map(|(name, ty, _)| StructField::new(*name, ty.delta(), false))
            .collect();
        fields.extend(self.columns.iter().map(payload_field));
        fields
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn event_type(&self, name: &str) -> Option<&EventTypeDef> {
        self.event_types.iter().find(|e| e.name == name)
    }

    /// Index of a column in [`Self::arrow_schema`].
    pub fn column_index(&self, name: &str) -> Option<usize> {
        ENVELOPE
            .iter()
            .position(|(n, _, _)| *n == name)
            .or_else(|| {
                self.columns
                    .iter()
                    .position(|c| c.name == name)
                    .map(|i| i + ENVELOPE.len())
            })
    }

    /// Checks that the definition is internally consistent. Called by the registry.
    pub fn check(&self) -> Result<(), String> {
        let max_since = self
            .columns
            .iter()
            .map(|c| c.since_version)
            .max()
            .unwrap_or(1);
        if max_since != self.schema_version {
            return Err(format!(
                "schema version {} does not match the newest column version {max_since}",
                self.schema_version
            ));
        }
        for c in &self.columns {
            if ENVELOPE.iter().any(|(n, _, _)| *n == c.name) {
                return Err(format!(
                    "payload column {} shadows an envelope column",
                    c.name
                ));
            }
        }
        for et in &self.event_types {
            for c in et.required.iter().chain(&et.optional) {
                if self.column(c).is_none() {
                    return Err(format!("event type {} names unknown column {c}", et.name));
                }
            }
        }
        for rule in &self.rules {
            for c in [&rule.if_column, &rule.then_column] {
                if self.column(c).is_none() {
                    return Err(format!("rule names unknown column {c}"));
                }
            }
        }
        for r in &self.references {
            if self.event_type(&r.event_type).is_none() || self.column(&r.column).is_none() {
                return Err("reference rule names an unknown event type or column".into());
            }
        }
        Ok(())
    }
}

/// The Delta field for a payload column, tagged with its schema version.
pub(crate) fn payload_field(c: &ColumnDef) -> deltalake::kernel::StructField {
    use deltalake::kernel::{MetadataValue, StructField};
    StructField::new(&c.name, c.ty.delta(), true).with_metadata([(
        SINCE_VERSION_KEY,
        MetadataValue::Number(i64::from(c.since_version)),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_index_counts_envelope_first() {
        let def = crate::pack::province_pack()
            .into_iter()
            .find(|d| d.name == "finance.budget")
            .unwrap();
        assert_eq!(def.column_index(EVENT_ID), Some(0));
        assert_eq!(def.column_index(SOURCE), Some(5));
        assert_eq!(def.column_index("fiscal_year"), Some(6));
        assert_eq!(def.column_index("nope"), None);
        assert_eq!(def.arrow_schema().field(6).name(), "fiscal_year");
    }

    #[test]
    fn check_refuses_mismatched_version() {
        let mut def = crate::pack::province_pack().remove(0);
        def.schema_version = 3;
        assert!(def.check().unwrap_err().contains("schema version 3"));
    }
}
