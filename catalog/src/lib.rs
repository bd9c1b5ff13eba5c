//! kho-catalog: governance. Who may do what, recorded as events.
//!
//! Governance state is event-sourced: every change (a token issued or revoked; datasets,
//! approvals and grants to come) is an entry of the `system/governance` log table,
//! replayed at start and re-read when another process may have changed it.
//! Tokens are kept only as SHA-256 hashes of their secret part and compared in constant time.

pub mod error;
pub mod governance;
pub mod tokens;

pub use error::{CatalogError, Result};
pub use governance::Governance;
pub use tokens::{IssuedToken, NewToken, Principal, Role, TokenInfo};
