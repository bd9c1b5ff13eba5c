//! Arrow column builders by column type: a typed value per row in, an array out.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use kho_store::ColumnType;
use kho_store::schema::UTC;

use super::value::Val;

/// One column's Arrow builder, appended one typed value (or null) per row.
pub(super) enum ColBuilder {
    Str(StringBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
}

impl ColBuilder {
    pub(super) fn new(ty: ColumnType, rows: usize) -> Self {
        match ty {
            ColumnType::String => Self::Str(StringBuilder::with_capacity(rows, rows * 24)),
            ColumnType::Integer => Self::Int32(Int32Builder::with_capacity(rows)),
            ColumnType::Long => Self::Int64(Int64Builder::with_capacity(rows)),
            ColumnType::Double => Self::Float(Float64Builder::with_capacity(rows)),
            ColumnType::Boolean => Self::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnType::Timestamp => {
                Self::Ts(TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC))
            }
        }
    }

    pub(super) fn append(&mut self, v: Option<&Val<'_>>) {
        match (self, v) {
            (Self::Str(b), Some(Val::Str(s))) => b.append_value(s),
            (Self::Int32(b), Some(Val::Int(i))) => {
                b.append_value(i32::try_from(*i).expect("range checked"));
            }
            (Self::Int64(b), Some(Val::Int(i))) => b.append_value(*i),
            (Self::Float(b), Some(Val::Float(x))) => b.append_value(*x),
            (Self::Bool(b), Some(Val::Bool(x))) => b.append_value(*x),
            (Self::Ts(b), Some(Val::Ts(t))) => b.append_value(*t),
            (Self::Str(b), _) => b.append_null(),
            (Self::Int32(b), _) => b.append_null(),
            (Self::Int64(b), _) => b.append_null(),
            (Self::Float(b), _) => b.append_null(),
            (Self::Bool(b), _) => b.append_null(),
            (Self::Ts(b), _) => b.append_null(),
        }
    }

    pub(super) fn finish(self) -> ArrayRef {
        match self {
            Self::Str(mut b) => Arc::new(b.finish()),
            Self::Int32(mut b) => Arc::new(b.finish()),
            Self::Int64(mut b) => Arc::new(b.finish()),
            Self::Float(mut b) => Arc::new(b.finish()),
            Self::Bool(mut b) => Arc::new(b.finish()),
            Self::Ts(mut b) => Arc::new(b.finish()),
        }
    }
}
