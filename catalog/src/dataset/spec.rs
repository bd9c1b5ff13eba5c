//! What a proposer submits ([`DatasetSpec`]): the source, the columns with their
//! personal-data tags and masks, the row filter, small-cell suppression, the sharing and
//! importance classes and the DCAT metadata.

use serde::{Deserialize, Serialize};

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
