//! The rules a [`DatasetSpec`] must meet before it is stored: classes, tags and masks, the
//! columns against the source, the suppression settings and the metadata.

use super::spec::{DatasetSpec, Importance, Mask, Sharing, SourceKind, Tag};
use super::vocabulary::{LICENSES, THEMES};
use crate::error::{CatalogError, Result};

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
