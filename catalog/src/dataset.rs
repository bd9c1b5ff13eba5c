//! Datasets: what is shared, with whom, under which policy. A dataset is a projection of a
//! view or a stream, with a personal-data tag on every column, masks, an optional row
//! filter and small-cell suppression, a sharing class, an importance class and DCAT
//! metadata in Vietnamese and English.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CatalogError, Result};
use crate::tokens::{Principal, Role};

/// Who may pull the data (Vietnam's open / shared / private sharing classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// Anyone, without a token, free.
    Open,
    /// Principals holding a grant, plus the owner and the center.
    Shared,
    /// The owning sector and the center.
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Importance {
    Core,
    Important,
    Other,
}

/// Personal-data tag of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tag {
    #[default]
    None,
    Basic,
    Sensitive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// The column is not released.
    Drop,
    /// A keyed HMAC-SHA256 pseudonym; the key stays in the store.
    Pseudonym,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    View,
    Stream,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub kind: SourceKind,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(default)]
    pub tag: Tag,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Mask>,
}

/// Small-cell suppression: a row whose `count_column` is between 1 and k-1 is withheld
/// (its count and the `also` columns set to null), and so are further rows, so that no
/// withheld count can be recomputed from the totals of a `group_by` group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    pub count_column: String,
    #[serde(default = "default_k")]
    pub k: i64,
    /// Dimensions whose group totals are public (e.g. `month`, `agency_code`); with none,
    /// the total of the whole table is.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Columns withheld with the count (rates and counts derived from it).
    #[serde(default)]
    pub also: Vec<String>,
}

fn default_k() -> i64 {
    10
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Localized {
    pub vi: String,
    pub en: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Periodicity {
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Annual,
    Irregular,
}

impl Periodicity {
    /// How often a new release is made on schedule.
    pub fn every(self) -> Option<chrono::Duration> {
        match self {
            Self::Daily => Some(chrono::Duration::days(1)),
            Self::Weekly => Some(chrono::Duration::days(7)),
            Self::Monthly => Some(chrono::Duration::days(30)),
            Self::Quarterly => Some(chrono::Duration::days(91)),
            Self::Annual => Some(chrono::Duration::days(365)),
            Self::Irregular => None,
        }
    }

    /// The EU frequency vocabulary term (DCAT-AP).
    pub fn eu_frequency(self) -> &'static str {
        match self {
            Self::Daily => "DAILY",
            Self::Weekly => "WEEKLY",
            Self::Monthly => "MONTHLY",
            Self::Quarterly => "QUARTERLY",
            Self::Annual => "ANNUAL",
            Self::Irregular => "IRREG",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Temporal {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    pub email: String,
}

/// DCAT metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub title: Localized,
    pub description: Localized,
    /// The publishing body; defaults to the owner's.
    #[serde(default)]
    pub publisher: Option<String>,
    pub theme: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// A CKAN licence id (see `license_list`).
    pub license: String,
    pub accrual_periodicity: Periodicity,
    #[serde(default)]
    pub temporal: Option<Temporal>,
    pub spatial: String,
    pub contact_point: Contact,
}

/// What a proposer submits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub id: String,
    pub source: Source,
    pub columns: Vec<ColumnSpec>,
    #[serde(default)]
    pub row_filter: Option<String>,
    #[serde(default)]
    pub suppression: Option<Suppression>,
    pub sharing: Sharing,
    pub importance: Importance,
    pub metadata: Metadata,
}

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
    pub history: Vec<Step>,
    pub releases: Vec<Release>,
    pub grants: Vec<Grant>,
}

/// The sector that owns a view, by its source stream.
pub fn view_owner(view: &str) -> Option<&'static str> {
    match view {
        "budget_execution" => Some("finance"),
        "investment_disbursement" => Some("planning"),
        "service_dossiers" | "service_feedback" | "service_procedures" => Some("services"),
        _ => None,
    }
}

/// The body publishing a dataset of an owner, when the spec names none: (slug, name).
pub fn organization(owner: &str) -> (&'static str, &'static str) {
    match owner {
        "finance" => ("so-tai-chinh", "Sở Tài chính tỉnh Tây Ninh"),
        "planning" => (
            "so-ke-hoach-va-dau-tu",
            "Sở Kế hoạch và Đầu tư tỉnh Tây Ninh",
        ),
        "services" => (
            "trung-tam-phuc-vu-hanh-chinh-cong",
            "Trung tâm Phục vụ hành chính công tỉnh Tây Ninh",
        ),
        _ => (
            "trung-tam-ioc",
            "Trung tâm Giám sát, điều hành tập trung tỉnh Tây Ninh",
        ),
    }
}

/// The licences a dataset may carry: CKAN id, title, URL.
pub const LICENSES: [(&str, &str, &str); 6] = [
    (
        "cc-by-4.0",
        "Creative Commons Attribution 4.0",
        "https://creativecommons.org/licenses/by/4.0/",
    ),
    (
        "cc-by-sa-4.0",
        "Creative Commons Attribution Share-Alike 4.0",
        "https://creativecommons.org/licenses/by-sa/4.0/",
    ),
    (
        "cc-zero",
        "Creative Commons CCZero",
        "https://creativecommons.org/publicdomain/zero/1.0/",
    ),
    (
        "odc-by",
        "Open Data Commons Attribution License",
        "https://opendatacommons.org/licenses/by/1-0/",
    ),
    (
        "odc-odbl",
        "Open Data Commons Open Database License (ODbL)",
        "https://opendatacommons.org/licenses/odbl/1-0/",
    ),
    (
        "other-closed",
        "Other (Not Open)",
        "https://opendefinition.org/",
    ),
];

/// The EU data themes (DCAT-AP `dcat:theme`): code, English label.
pub const THEMES: [(&str, &str); 13] = [
    ("AGRI", "Agriculture, fisheries, forestry and food"),
    ("ECON", "Economy and finance"),
    ("EDUC", "Education, culture and sport"),
    ("ENER", "Energy"),
    ("ENVI", "Environment"),
    ("GOVE", "Government and public sector"),
    ("HEAL", "Health"),
    ("INTR", "International issues"),
    ("JUST", "Justice, legal system and public safety"),
    ("REGI", "Regions and cities"),
    ("SOCI", "Population and society"),
    ("TECH", "Science and technology"),
    ("TRAN", "Transport"),
];

/// A column of the source: name and whether it holds integers, numbers or text.
#[derive(Debug, Clone)]
pub struct SourceColumn {
    pub name: String,
    pub integer: bool,
    pub numeric: bool,
}

fn policy(msg: impl Into<String>) -> CatalogError {
    CatalogError::Policy(msg.into())
}

impl DatasetSpec {
    /// Checks the policy rules that do not need the data: classes, tags and masks, the
    /// columns, the suppression settings, the metadata. The row filter is checked by the
    /// caller against the source schema ([`crate::release::check_filter`]).
    pub fn check(&self, source: &[SourceColumn]) -> Result<()> {
        let id_ok = (3..=64).contains(&self.id.len())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.id.starts_with('-');
        if !id_ok {
            return Err(CatalogError::Invalid(format!(
                "dataset id {:?}: 3 to 64 lowercase letters, digits and dashes",
                self.id
            )));
        }
        if self.sharing == Sharing::Open && self.importance != Importance::Other {
            return Err(policy(format!(
                "{} data can never be open: share it with a grant or keep it private",
                match self.importance {
                    Importance::Core => "core",
                    _ => "important",
                }
            )));
        }
        if self.columns.is_empty() {
            return Err(CatalogError::Invalid(
                "a dataset releases at least one column".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.columns {
            if !seen.insert(c.name.as_str()) {
                return Err(CatalogError::Invalid(format!(
                    "column {} is listed twice",
                    c.name
                )));
            }
            if !source.iter().any(|s| s.name == c.name) {
                return Err(CatalogError::Invalid(format!(
                    "column {} is not in {} {}",
                    c.name,
                    match self.source.kind {
                        SourceKind::View => "view",
                        SourceKind::Stream => "stream",
                    },
                    self.source.name
                )));
            }
            if self.sharing != Sharing::Private {
                match (c.tag, c.mask) {
                    (Tag::Sensitive, _) => {
                        return Err(policy(format!(
                            "column {} holds sensitive personal data: it never leaves private datasets",
                            c.name
                        )));
                    }
                    (Tag::Basic, None) => {
                        return Err(policy(format!(
                            "column {} holds basic personal data: outside private it must be masked (drop or pseudonym)",
                            c.name
                        )));
                    }
                    _ => {}
                }
            }
        }
        if self.columns.iter().all(|c| c.mask == Some(Mask::Drop)) {
            return Err(CatalogError::Invalid(
                "every column is dropped: nothing to release".into(),
            ));
        }
        if let Some(s) = &self.suppression {
            let released = |name: &str| {
                self.columns
                    .iter()
                    .any(|c| c.name == name && c.mask != Some(Mask::Drop))
            };
            let count = source.iter().find(|c| c.name == s.count_column);
            if !released(&s.count_column) || !count.is_some_and(|c| c.integer) {
                return Err(CatalogError::Invalid(format!(
                    "suppression count column {} must be a released integer column",
                    s.count_column
                )));
            }
            if s.k < 2 {
                return Err(CatalogError::Invalid(
                    "suppression k must be at least 2".into(),
                ));
            }
            for c in s.group_by.iter().chain(&s.also) {
                if !released(c) {
                    return Err(CatalogError::Invalid(format!(
                        "suppression names {c}, which is not a released column"
                    )));
                }
            }
        }
        let m = &self.metadata;
        for (what, text) in [
            ("title.vi", &m.title.vi),
            ("title.en", &m.title.en),
            ("description.vi", &m.description.vi),
            ("description.en", &m.description.en),
            ("theme", &m.theme),
            ("spatial", &m.spatial),
            ("contact_point.name", &m.contact_point.name),
        ] {
            if text.trim().is_empty() {
                return Err(CatalogError::Invalid(format!("metadata {what} is empty")));
            }
        }
        if !THEMES.iter().any(|(code, _)| *code == m.theme) {
            let codes: Vec<&str> = THEMES.iter().map(|t| t.0).collect();
            return Err(CatalogError::Invalid(format!(
                "theme {} is not an EU data theme: one of {}",
                m.theme,
                codes.join(", ")
            )));
        }
        if !m.contact_point.email.contains('@') {
            return Err(CatalogError::Invalid(
                "metadata contact_point.email is not an email address".into(),
            ));
        }
        if !LICENSES.iter().any(|(id, _, _)| *id == m.license) {
            let ids: Vec<&str> = LICENSES.iter().map(|l| l.0).collect();
            return Err(CatalogError::Invalid(format!(
                "licence {} is not one of {}",
                m.license,
                ids.join(", ")
            )));
        }
        if self.sharing == Sharing::Open && m.license == "other-closed" {
            return Err(policy("open data carries an open licence"));
        }
        Ok(())
    }
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

    /// The table key of a release.
    pub fn release_key(&self, version: u32) -> String {
        release_key(&self.spec.id, version)
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

/// `releases/<dataset>/v<N>`.
pub fn release_key(id: &str, version: u32) -> String {
    format!("releases/{id}/v{version}")
}

/// A URL-safe slug of a name (ASCII letters, digits, dashes; Vietnamese letters folded).
pub fn slug_of(name: &str) -> String {
    let folded: String = name
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'à' | 'á' | 'ả' | 'ã' | 'ạ' | 'ă' | 'ằ' | 'ắ' | 'ẳ' | 'ẵ' | 'ặ' | 'â' | 'ầ' | 'ấ'
            | 'ẩ' | 'ẫ' | 'ậ' => 'a',
            'è' | 'é' | 'ẻ' | 'ẽ' | 'ẹ' | 'ê' | 'ề' | 'ế' | 'ể' | 'ễ' | 'ệ' => {
                'e'
            }
            'ì' | 'í' | 'ỉ' | 'ĩ' | 'ị' => 'i',
            'ò' | 'ó' | 'ỏ' | 'õ' | 'ọ' | 'ô' | 'ồ' | 'ố' | 'ổ' | 'ỗ' | 'ộ' | 'ơ' | 'ờ' | 'ớ'
            | 'ở' | 'ỡ' | 'ợ' => 'o',
            'ù' | 'ú' | 'ủ' | 'ũ' | 'ụ' | 'ư' | 'ừ' | 'ứ' | 'ử' | 'ữ' | 'ự' => {
                'u'
            }
            'ỳ' | 'ý' | 'ỷ' | 'ỹ' | 'ỵ' => 'y',
            'đ' => 'd',
            c => c,
        })
        .collect::<String>();
    let mut out = String::new();
    for c in folded.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_fold_vietnamese() {
        assert_eq!(
            slug_of("Sở Tài chính tỉnh Tây Ninh"),
            "so-tai-chinh-tinh-tay-ninh"
        );
        assert_eq!(slug_of("Đường ĐT.781"), "duong-dt-781");
    }
}
