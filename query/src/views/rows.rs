//! Reading event rows by column name, and the small value types folds share.

use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use chrono::{Datelike, FixedOffset, TimeZone};

use crate::error::{QueryError, Result};

/// Asia/Ho_Chi_Minh: UTC+7 all year (no daylight saving since 1975).
pub(crate) const LOCAL_OFFSET_SECS: i32 = 7 * 3600;

/// A month as a number: `year * 12 + (month - 1)`, in local time.
pub(crate) type MonthIndex = i32;

/// The local month of a UTC instant in microseconds.
pub(crate) fn local_month(micros: i64) -> MonthIndex {
    let tz = FixedOffset::east_opt(LOCAL_OFFSET_SECS).expect("valid offset");
    let t = tz
        .timestamp_micros(micros)
        .single()
        .expect("fixed offsets are unambiguous");
    t.year() * 12 + t.month0() as i32
}

/// `2021-02` for a month index.
pub(crate) fn month_label(m: MonthIndex) -> String {
    format!("{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1)
}

pub(crate) fn month_year(m: MonthIndex) -> i32 {
    m.div_euclid(12)
}

/// The order of events for "latest wins" and "first wins": occurrence time, then event id.
/// A total order independent of how events were batched or read.
pub(crate) type OrderKey = (i64, u128);

/// Typed access to the columns of one batch of stream rows.
pub(crate) struct Rows<'a> {
    batch: &'a RecordBatch,
    stream: &'a str,
}

impl<'a> Rows<'a> {
    pub(crate) fn new(batch: &'a RecordBatch, stream: &'a str) -> Self {
        Self { batch, stream }
    }

    pub(crate) fn len(&self) -> usize {
        self.batch.num_rows()
    }

    fn missing(&self, name: &str) -> QueryError {
        QueryError::Internal(format!("stream {} has no column {name}", self.stream))
    }

    pub(crate) fn strings(&self, name: &str) -> Result<&'a StringArray> {
        self.batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| self.missing(name))
    }

    pub(crate) fn ints(&self, name: &str) -> Result<&'a Int32Array> {
        self.batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Int32Type>())
            .ok_or_else(|| self.missing(name))
    }

    pub(crate) fn longs(&self, name: &str) -> Result<&'a Int64Array> {
        self.batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| self.missing(name))
    }

    pub(crate) fn doubles(&self, name: &str) -> Result<&'a Float64Array> {
        self.batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| self.missing(name))
    }

    pub(crate) fn bools(&self, name: &str) -> Result<&'a BooleanArray> {
        self.batch
            .column_by_name(name)
            .and_then(|c| c.as_boolean_opt())
            .ok_or_else(|| self.missing(name))
    }

    pub(crate) fn times(&self, name: &str) -> Result<&'a TimestampMicrosecondArray> {
        self.batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| self.missing(name))
    }

    /// The (occurred_at, event_id) order key of each row.
    pub(crate) fn order_keys(&self) -> Result<Vec<OrderKey>> {
        let ids = self.strings("event_id")?;
        let at = self.times("occurred_at")?;
        Ok((0..self.len())
            .map(|i| {
                let id = uuid::Uuid::try_parse(ids.value(i)).map_or(0, |u| u.as_u128());
                (at.value(i), id)
            })
            .collect())
    }
}

/// The value of a nullable column at a row.
pub(crate) fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

pub(crate) fn opt_i32(a: &Int32Array, i: usize) -> Option<i32> {
    (!a.is_null(i)).then(|| a.value(i))
}

pub(crate) fn opt_i64(a: &Int64Array, i: usize) -> Option<i64> {
    (!a.is_null(i)).then(|| a.value(i))
}

pub(crate) fn opt_ts(a: &TimestampMicrosecondArray, i: usize) -> Option<i64> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// `num / den`, or null when nothing is counted.
pub(crate) fn ratio(num: i64, den: i64) -> Option<f64> {
    (den != 0).then(|| num as f64 / den as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_months_follow_utc_plus_seven() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_micros()
        };
        assert_eq!(
            month_label(local_month(at("2021-01-31T20:00:00Z"))),
            "2021-02"
        );
        assert_eq!(
            month_label(local_month(at("2021-01-31T16:59:59Z"))),
            "2021-01"
        );
        assert_eq!(
            month_label(local_month(at("2021-01-31T17:00:00Z"))),
            "2021-02"
        );
        assert_eq!(
            month_label(local_month(at("2021-12-31T17:00:00Z"))),
            "2022-01"
        );
        assert_eq!(month_year(local_month(at("2021-12-31T17:00:00Z"))), 2022);
    }
}
