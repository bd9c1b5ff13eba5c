//! Datasets: what is shared, with whom, under which policy. A dataset is a projection of a
//! view or a stream, with a personal-data tag on every column, masks, an optional row
//! filter and small-cell suppression, a sharing class, an importance class and DCAT
//! metadata in Vietnamese and English.
//!
//! The spec a proposer submits is in `spec`, the rules it must meet in `policy`, the
//! licences, themes and publishing bodies in `vocabulary`; this module holds a dataset's
//! state, releases, grants and who may see and pull it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};
use crate::tokens::{Principal, Role};

mod policy;
mod spec;
mod vocabulary;

pub use policy::SourceColumn;
pub use spec::{
    ColumnSpec, Contact, DatasetSpec, Importance, Localized, Mask, Metadata, Periodicity, Sharing,
    Source, SourceKind, Suppression, Tag, Temporal,
};
pub use vocabulary::{LICENSES, THEMES, organization, slug_of, view_owner};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Draft,
    Proposed,
    Approved,
    Published,
    Revoked,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Proposed => "proposed",
            Self::Approved => "approved",
            Self::Published => "published",
            Self::Revoked => "revoked",
        }
    }
}

/// One step of the workflow: who, when, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub state: State,
    pub by: String,
    pub by_name: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A materialized, immutable release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub version: u32,
    pub rows: u64,
    pub created_at: DateTime<Utc>,
    /// The source table's version the release was made from.
    pub source_version: u64,
    pub by: String,
    /// The revision of the dataset's spec the release applies (the approved one). Absent in
    /// releases of an older kho.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The key of the table holding the release's rows ([`attempt_key`]). Absent in releases
    /// of an older kho, whose tables sit at [`legacy_release_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// Access to a shared dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The token id of the grantee.
    pub principal: String,
    pub principal_name: String,
    pub purpose: String,
    pub legal_basis: String,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A dataset and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    #[serde(flatten)]
    pub spec: DatasetSpec,
    /// The owning sector, or `center`.
    pub owner: String,
    pub state: State,
    /// The revision of the spec: a hash of it ([`revision_of`]). A proposal and an approval
    /// name the revision they apply to; an approval of another revision is refused.
    pub revision: String,
    /// The revision a steward approved; releases apply it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_revision: Option<String>,
    pub history: Vec<Step>,
    pub releases: Vec<Release>,
    pub grants: Vec<Grant>,
}

/// A caller of the catalog: someone with a token, or anyone.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    Anonymous,
    Principal(&'a Principal),
}

impl Viewer<'_> {
    /// Does the viewer see who did what by token id and name? Stewards and the admin do;
    /// anyone else sees the role and the organisation ([`PublicActor`]).
    pub fn sees_actor_ids(&self) -> bool {
        matches!(self, Viewer::Principal(p) if matches!(p.role, Role::Steward | Role::Admin))
    }
}

/// Who did a step of a dataset's history, as the public sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicActor {
    /// The role, or `unknown` for a token no longer known.
    pub role: &'static str,
    pub organisation: Option<&'static str>,
}

impl PublicActor {
    pub fn of(role: Option<Role>, sector: Option<&str>) -> Self {
        let Some(role) = role else {
            return Self {
                role: "unknown",
                organisation: None,
            };
        };
        let organisation = match (role, sector) {
            (Role::Sector, Some(s)) => Some(organization(s).1),
            (Role::Center | Role::Steward | Role::Admin, _) => Some(organization("center").1),
            _ => None,
        };
        Self {
            role: role.as_str(),
            organisation,
        }
    }
}

impl Dataset {
    fn is_owner(&self, p: &Principal) -> bool {
        p.role == Role::Center
            || (p.role == Role::Sector && p.sector.as_deref() == Some(self.owner.as_str()))
    }

    fn has_grant(&self, p: &Principal) -> bool {
        self.grants
            .iter()
            .any(|g| g.principal == p.id && g.revoked_at.is_none())
    }

    /// May the viewer pull this dataset's data now?
    pub fn readable_by(&self, viewer: Viewer<'_>) -> bool {
        if self.state != State::Published || self.releases.is_empty() {
            return false;
        }
        match (self.spec.sharing, viewer) {
            (Sharing::Open, _) => true,
            (_, Viewer::Anonymous) => false,
            (Sharing::Shared, Viewer::Principal(p)) => self.is_owner(p) || self.has_grant(p),
            (Sharing::Private, Viewer::Principal(p)) => self.is_owner(p),
        }
    }

    /// Why the viewer may not pull this dataset's data (it may see it), or `Ok` if it may.
    pub fn check_readable(&self, viewer: Viewer<'_>) -> Result<()> {
        if self.readable_by(viewer) {
            return Ok(());
        }
        let id = &self.spec.id;
        Err(CatalogError::Forbidden(match self.state {
            State::Revoked => format!("dataset {id} has been revoked: it is no longer served"),
            State::Published => format!("dataset {id} is shared: pulling it needs a grant"),
            s => format!(
                "dataset {id} is {}: only published datasets are served",
                s.as_str()
            ),
        }))
    }

    /// May the viewer see the dataset's grants? Stewards, the center and the owner sector.
    pub fn grants_visible_to(&self, viewer: Viewer<'_>) -> bool {
        match viewer {
            Viewer::Principal(p) => p.role == Role::Steward || self.is_owner(p),
            Viewer::Anonymous => false,
        }
    }

    /// May the viewer see that this dataset exists? Data readers, and for datasets in the
    /// workflow its owner and the stewards. Anyone else gets "not found".
    pub fn visible_to(&self, viewer: Viewer<'_>) -> bool {
        if self.readable_by(viewer) {
            return true;
        }
        match viewer {
            Viewer::Anonymous => false,
            Viewer::Principal(p) => p.role == Role::Steward || self.is_owner(p),
        }
    }

    pub fn latest_release(&self) -> Option<&Release> {
        self.releases.last()
    }

    pub fn release(&self, version: u32) -> Option<&Release> {
        self.releases.iter().find(|r| r.version == version)
    }

    /// The table key of a recorded release.
    pub fn release_key(&self, version: u32) -> String {
        match self.release(version).and_then(|r| r.table.clone()) {
            Some(key) => key,
            None => legacy_release_key(&self.spec.id, version),
        }
    }

    /// The table keys of every recorded release.
    pub fn release_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.releases.iter().map(|r| self.release_key(r.version))
    }

    /// The publishing body: (slug, name).
    pub fn publisher(&self) -> (String, String) {
        let (slug, name) = organization(&self.owner);
        match &self.spec.metadata.publisher {
            Some(p) => (slug_of(p), p.clone()),
            None => (slug.to_owned(), name.to_owned()),
        }
    }
}

/// The revision of a spec: the SHA-256 of its JSON, in hex (the first 16 characters name it
/// well enough for people; the whole hash is compared).
pub fn revision_of(spec: &DatasetSpec) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(spec).expect("plain data");
    hex::encode(sha2::Sha256::digest(&json))
}

/// Where the releases of every dataset are written.
pub const RELEASES_PREFIX: &str = "releases";

/// Where an older kho wrote release `N`: `releases/<dataset>/v<N>`.
pub fn legacy_release_key(id: &str, version: u32) -> String {
    format!("{RELEASES_PREFIX}/{id}/v{version}")
}

/// A fresh table key for one attempt at release `N`: `releases/<dataset>/v<N>-<random>`.
/// Each attempt writes its own table, and the record of the release names it: an attempt that
/// lost a race or a process that died before recording leaves a table nothing refers to (swept
/// by [`crate::Governance::sweep_releases`]), never one that blocks the number.
pub fn attempt_key(id: &str, version: u32) -> String {
    let attempt = uuid::Uuid::new_v4().simple().to_string();
    format!("{RELEASES_PREFIX}/{id}/v{version}-{}", &attempt[..12])
}
