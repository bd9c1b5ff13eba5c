//! kho-store: every stream, view and system log of kho is a Delta Lake table on an object
//! store. This crate owns the event envelope, the stream definitions (the province pack),
//! table creation and schema evolution, exactly-once appends, time travel and maintenance.
//! It knows nothing of HTTP or SQL.
//!
//! # Object-store key layout
//!
//! Under the store root (`./kho-data/`, `s3://bucket/prefix/` or `memory:///`):
//!
//! ```text
//! streams/<stream>/                one Delta table per stream, e.g. streams/finance.budget/
//!     _delta_log/00000000000000000000.json     commits (put-if-absent: one winner per version)
//!     _delta_log/00000000000000000010.checkpoint.parquet   every 10 commits
//!     part-00000-<uuid>-c000.snappy.parquet   data files, one per commit until compacted
//! system/governance/               governance log: tokens, datasets, workflow steps, grants, releases (JSON payloads)
//! system/audit/                    hash-chained audit of every catalog pull (kho-catalog)
//! system/keys/pseudonym/<dataset>  per-dataset HMAC key of pseudonyms (a plain object, never in a release)
//! system/keys/ip-salt              salt of anonymous callers' IP hashes (a plain object)
//! system/nodes/<node>.json         heartbeat of each serving process (see [`nodes`])
//! views/<view>/                    materialized views (kho-query)
//! releases/<dataset>/v<N>-<attempt>/ one immutable table per dataset release (kho-catalog)
//! ```
//!
//! Each commit of an append carries, in its `commitInfo`, a `kho` object with the number of
//! events and, per idempotent batch, the hashed idempotency key, the body hash and the
//! answer it got (see [`writer`]). Stream tables are `delta.appendOnly`; their columns carry
//! `kho.since_version` metadata, the schema version that introduced them.

pub mod appender;
pub mod changes;
pub mod clock;
pub mod commit;
pub mod error;
pub mod index;
pub mod location;
pub mod maintain;
pub mod nodes;
pub mod pack;
pub mod schema;
pub mod store;
pub mod syslog;
pub mod table;
pub mod writer;

pub use appender::{Appended, Appender};
pub use changes::{Changes, commit_metadata, latest_version, rows_added};
pub use clock::{Clock, ManualClock, SystemClock};
pub use commit::{OverwriteMeta, overwrite};
pub use error::{Error, ErrorKind, Result, RowError};
pub use index::Receipt;
pub use location::Location;
pub use maintain::{MaintenanceOptions, MaintenanceReport, maintain_table};
pub use nodes::NodeInfo;
pub use schema::{ColumnDef, ColumnType, EventTypeDef, Literal, StreamDef};
pub use store::{AsOf, Registration, Store, stream_key};
pub use syslog::{LogEntry, SystemLog};
pub use table::{NewTable, Rows, Table, TableStats};
pub use writer::{IdempotencyKey, Outcome, StreamWriter, Submission, WriterConfig};
