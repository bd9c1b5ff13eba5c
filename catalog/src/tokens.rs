//! Principals, roles and bearer tokens.
//!
//! A token reads `kho_<id>_<secret>`: the id (32 hex digits) finds the record, the secret
//! (64 hex digits, 256 random bits) is checked against its stored SHA-256 in constant time.
//! The full token is shown once, when issued.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Issues and revokes tokens. Comes from `KHO_ADMIN_TOKEN`.
    Admin,
    /// A sector system: appends to the streams its sector owns.
    Sector,
    /// The operations center: reads views, runs read-only SQL.
    Center,
    /// A data steward: approves datasets.
    Steward,
    /// A consumer of shared datasets (an agency or business holding a grant).
    Consumer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Sector => "sector",
            Role::Center => "center",
            Role::Steward => "steward",
            Role::Consumer => "consumer",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The token id, or `admin` for the bootstrap admin.
    pub id: String,
    pub role: Role,
    /// The sector of a sector principal.
    pub sector: Option<String>,
    pub name: String,
}

impl Principal {
    /// The principal scheduled releases are made by: a steward that is no token.
    pub fn scheduler() -> Self {
        Self {
            id: "scheduler".into(),
            role: Role::Steward,
            sector: None,
            name: "kho scheduler".into(),
        }
    }

    pub fn admin() -> Self {
        Self {
            id: "admin".into(),
            role: Role::Admin,
            sector: None,
            name: "admin".into(),
        }
    }

    /// How the principal is recorded in the `source` column of the events it appends.
    pub fn source(&self) -> String {
        match &self.sector {
            Some(s) => format!("{s}:{}", self.name),
            None => format!("{}:{}", self.role.as_str(), self.name),
        }
    }
}

/// A request for a new token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub role: Role,
    #[serde(default)]
    pub sector: Option<String>,
    pub name: String,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector: Option<String>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
}

/// A freshly issued token: the only time the secret is shown.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}

/// A stored token: its public record and the hash of its secret.
#[derive(Debug, Clone)]
pub(crate) struct StoredToken {
    pub(crate) info: TokenInfo,
    pub(crate) secret_sha256: [u8; 32],
}

impl StoredToken {
    pub(crate) fn principal(&self) -> Principal {
        Principal {
            id: self.info.id.clone(),
            role: self.info.role,
            sector: self.info.sector.clone(),
            name: self.info.name.clone(),
        }
    }
}

/// A new random token: (id, secret, full token).
pub(crate) fn generate() -> (String, String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = hex::encode(secret);
    let token = format!("kho_{id}_{secret}");
    (id, secret, token)
}

/// Splits `kho_<id>_<secret>`; `None` when it has another shape.
pub(crate) fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("kho_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_of(id, 32) && hex_of(secret, 64)).then_some((id, secret))
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Constant-time equality of two hashes.
pub(crate) fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back() {
        let (id, secret, token) = generate();
        assert_eq!(parse(&token), Some((id.as_str(), secret.as_str())));
        assert_eq!(parse("kho_abc_def"), None);
        assert_eq!(parse(&token.replace("kho_", "khx_")), None);
        assert_eq!(parse(&format!("{token}0")), None);
        let (_, _, other) = generate();
        assert_ne!(token, other);
    }
}
