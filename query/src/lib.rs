//! kho-query: DataFusion over kho's Delta tables. The operations center's materialized
//! views and their incremental refresh ([`views`]), view reads ([`read`]), the read-only SQL
//! sandbox ([`sql`]) and result encoding ([`encode`]).
//!
//! Views live at `views/<view>/` in the store; each commit of a view records the source
//! versions it reflects.

pub mod catalog;
pub mod checked_sum;
pub mod compute;
pub mod encode;
pub mod error;
pub mod guard;
pub mod limits;
pub mod read;
pub mod sql;
pub mod views;

pub use encode::Format;
pub use error::{QueryError, Result};
pub use read::{ViewQuery, ViewRows};
pub use sql::{SqlEngine, SqlLimits, SqlResult};
pub use views::engine::{Freshness, SourceFreshness, SourceMark, ViewEngine, ViewMeta};
pub use views::{OverdueDossier, VIEWS, ViewSpec, spec};
