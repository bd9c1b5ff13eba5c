//! kho-catalog: governance. Who may do what, and what is shared with whom.
//!
//! Governance state is event-sourced: every change (a token issued or revoked; a dataset
//! drafted, proposed, approved, published, released, revoked; a grant) is an entry of the
//! `system/governance` log table, replayed at start and re-read when another process may
//! have changed it. Tokens are kept only as SHA-256 hashes of their secret part and
//! compared in constant time. Releases are Delta tables at `releases/<dataset>/v<N>/`
//! holding only what the dataset's policy lets out ([`release`]); every pull is recorded
//! in the hash-chained `system/audit` table ([`audit`]). Pseudonym keys live under
//! `system/keys/pseudonym/<dataset>` and never in a release.

pub mod audit;
pub mod dataset;
pub mod error;
mod events;
pub mod governance;
pub mod release;
pub mod tokens;
pub mod workflow;

pub use audit::{AuditLog, Pull, Verification};
pub use dataset::{Dataset, DatasetSpec, PublicActor, Sharing, State, Viewer};
pub use error::{CatalogError, Result};
pub use governance::{FRESH_WITHIN, Governance, RefusedEntry, ReleaseHold};
pub use tokens::{IssuedToken, NewToken, Principal, Role, TokenInfo};
pub use workflow::{NewGrant, ReleaseStep};
