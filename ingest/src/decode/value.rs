//! Field values: as a decoder finds them ([`Raw`]), and typed for their column ([`Val`]) by
//! [`convert`], which says why a value does not fit.

use std::borrow::Cow;

use kho_store::{ColumnType, Literal};

/// The longest string value accepted, in bytes.
pub const MAX_STRING_BYTES: usize = 4096;

/// A field value as the decoder found it, before typing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// A JSON string.
    Str(Cow<'a, str>),
    /// An untyped CSV cell, parsed by the column's type.
    Text(&'a str),
    /// A JSON object or array, which no column takes.
    Nested(&'static str),
}

impl Raw<'_> {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Raw::Null => "null",
            Raw::Bool(_) => "a boolean",
            Raw::Int(_) | Raw::UInt(_) | Raw::Float(_) => "a number",
            Raw::Str(_) | Raw::Text(_) => "a string",
            Raw::Nested(k) => k,
        }
    }
}

/// A typed value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the epoch, UTC.
    Ts(i64),
}

impl std::fmt::Display for Val<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::Str(s) => write!(f, "{s:?}"),
            Val::Int(i) => write!(f, "{i}"),
            Val::Float(x) => write!(f, "{x}"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Ts(t) => write!(f, "{t}"),
        }
    }
}

impl Val<'_> {
    pub(super) fn matches(&self, lit: &Literal) -> bool {
        match (self, lit) {
            (Val::Str(s), Literal::Str(l)) => s == l,
            (Val::Int(i), Literal::Int(l)) => i == l,
            _ => false,
        }
    }
}

/// Types one raw value for a column, or says why it can't.
pub(super) fn convert<'a>(raw: Raw<'a>, ty: ColumnType) -> Result<Val<'a>, String> {
    let text = |s: &str| -> Result<(), String> {
        if s.len() > MAX_STRING_BYTES {
            Err(format!("longer than {MAX_STRING_BYTES} bytes"))
        } else {
            Ok(())
        }
    };
    let wrong =
        |expected: &str, raw: &Raw<'_>| format!("expected {expected}, found {}", raw.kind());
    match ty {
        ColumnType::String => match raw {
            Raw::Str(s) => text(&s).map(|()| Val::Str(s)),
            Raw::Text(s) => text(s).map(|()| Val::Str(Cow::Borrowed(s))),
            other => Err(wrong("a string", &other)),
        },
        ColumnType::Integer | ColumnType::Long => {
            let (lo, hi, what) = if ty == ColumnType::Integer {
                (i64::from(i32::MIN), i64::from(i32::MAX), "an integer")
            } else {
                (i64::MIN, i64::MAX, "a 64-bit integer")
            };
            let n: i128 = match raw {
                Raw::Int(i) => i128::from(i),
                Raw::UInt(u) => i128::from(u),
                Raw::Text(s) => s
                    .trim()
                    .parse::<i128>()
                    .map_err(|_| format!("expected {what}, found {s:?}"))?,
                Raw::Float(x) => return Err(format!("expected {what}, found {x}")),
                other => return Err(wrong(what, &other)),
            };
            if n < i128::from(lo) || n > i128::from(hi) {
                return Err(format!("{n} is out of range for {what}"));
            }
            Ok(Val::Int(i64::try_from(n).expect("range checked")))
        }
        ColumnType::Double => {
            let x = match raw {
                Raw::Int(i) => i as f64,
                Raw::UInt(u) => u as f64,
                Raw::Float(x) => x,
                Raw::Text(s) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("expected a number, found {s:?}"))?,
                other => return Err(wrong("a number", &other)),
            };
            if x.is_finite() {
                Ok(Val::Float(x))
            } else {
                Err("must be a finite number".into())
            }
        }
        ColumnType::Boolean => match raw {
            Raw::Bool(b) => Ok(Val::Bool(b)),
            Raw::Text(s) if s.eq_ignore_ascii_case("true") => Ok(Val::Bool(true)),
            Raw::Text(s) if s.eq_ignore_ascii_case("false") => Ok(Val::Bool(false)),
            Raw::Text(s) => Err(format!("expected true or false, found {s:?}")),
            other => Err(wrong("true or false", &other)),
        },
        ColumnType::Timestamp => match raw {
            Raw::Str(s) => parse_timestamp(&s),
            Raw::Text(s) => parse_timestamp(s),
            other => Err(wrong("an RFC 3339 timestamp string", &other)),
        },
    }
}

/// Parses an RFC 3339 timestamp that carries an offset, to UTC microseconds.
fn parse_timestamp(s: &str) -> Result<Val<'static>, String> {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::parse_from_rfc3339(s.trim()).map_err(|_| {
        format!("{s:?} is not an RFC 3339 timestamp with an offset, like 2021-03-01T08:00:00+07:00")
    })?;
    // chrono takes second 60 as a leap second; kho's tables (and UTC as stored) have none.
    if t.nanosecond() >= 1_000_000_000 {
        return Err(format!(
            "{s:?} names a leap second (:60): send the next second, :00, instead"
        ));
    }
    let utc = t.to_utc();
    if !(1..=9999).contains(&utc.year()) {
        return Err(format!(
            "{s:?} is in year {} in UTC, outside 0001 to 9999",
            utc.year()
        ));
    }
    Ok(Val::Ts(utc.timestamp_micros()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_by_column_type() {
        assert_eq!(convert(Raw::Int(7), ColumnType::Integer), Ok(Val::Int(7)));
        assert_eq!(
            convert(Raw::Int(1 << 40), ColumnType::Integer),
            Err("1099511627776 is out of range for an integer".into())
        );
        assert_eq!(
            convert(Raw::Text(" 12 "), ColumnType::Long),
            Ok(Val::Int(12))
        );
        assert_eq!(
            convert(Raw::Str("12".into()), ColumnType::Long),
            Err("expected a 64-bit integer, found a string".into())
        );
        assert_eq!(
            convert(Raw::Float(1.5), ColumnType::Long),
            Err("expected a 64-bit integer, found 1.5".into())
        );
        assert_eq!(
            convert(Raw::Int(2), ColumnType::Double),
            Ok(Val::Float(2.0))
        );
        assert_eq!(
            convert(Raw::Text("TRUE"), ColumnType::Boolean),
            Ok(Val::Bool(true))
        );
        assert_eq!(
            convert(
                Raw::Str("2021-01-31T20:00:00Z".into()),
                ColumnType::Timestamp
            ),
            Ok(Val::Ts(1_612_123_200_000_000))
        );
        assert_eq!(
            convert(
                Raw::Str("2021-02-01T03:00:00+07:00".into()),
                ColumnType::Timestamp
            ),
            Ok(Val::Ts(1_612_123_200_000_000))
        );
        assert!(
            convert(
                Raw::Str("2021-02-01T03:00:00".into()),
                ColumnType::Timestamp
            )
            .unwrap_err()
            .contains("with an offset")
        );
        assert_eq!(
            convert(Raw::Nested("an object"), ColumnType::String),
            Err("expected a string, found an object".into())
        );
    }
}
