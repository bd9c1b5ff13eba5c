//! The governance log's entries, typed: each [`GovernanceEvent`] is one `event_type` of
//! `system/governance` with its payload, and [`apply_dataset`] folds the dataset events
//! into the replayed datasets. The writers ([`crate::governance`] for tokens,
//! [`crate::workflow`] for datasets and grants) make entries from events; the replay
//! ([`crate::governance`]) reads them back through [`GovernanceEvent::parse`].
//!
//! The fold is a state machine that refuses: an event that is not valid in the state before
//! it (an approval of something not proposed, a release of a revoked dataset, a draft over
//! a taken id, an approval of another revision than the one proposed) is not applied, whoever
//! wrote it. Writers never mean to write one (they decide on the state at the version they
//! commit after), so a refused entry is the trace of an older or faulty process, and it is
//! reported, never obeyed.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use kho_store::LogEntry;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, DatasetSpec, Grant, Release, Sharing, State, Step};
use crate::error::{CatalogError, Result};
use crate::tokens::{Role, StoredToken};

/// One entry of the governance log.
#[derive(Debug, Clone)]
pub(crate) enum GovernanceEvent {
    TokenIssued(TokenIssued),
    TokenRevoked(TokenRevoked),
    DatasetDrafted(Box<Drafted>),
    DatasetProposed(Moved),
    DatasetApproved(Moved),
    DatasetRevoked(Moved),
    DatasetReleased(Released),
    GrantAdded(Granted),
    GrantRevoked(Ungranted),
}

impl GovernanceEvent {
    /// The entry's `event_type`.
    pub(crate) fn event_type(&self) -> &'static str {
        match self {
            Self::TokenIssued(_) => "token_issued",
            Self::TokenRevoked(_) => "token_revoked",
            Self::DatasetDrafted(_) => "dataset_drafted",
            Self::DatasetProposed(_) => "dataset_proposed",
            Self::DatasetApproved(_) => "dataset_approved",
            Self::DatasetRevoked(_) => "dataset_revoked",
            Self::DatasetReleased(_) => "dataset_released",
            Self::GrantAdded(_) => "grant_added",
            Self::GrantRevoked(_) => "grant_revoked",
        }
    }

    /// The log entry recording this event, made by `actor`.
    pub(crate) fn entry(&self, actor: &str, at: DateTime<Utc>) -> LogEntry {
        let payload = match self {
            Self::TokenIssued(p) => serde_json::to_value(p),
            Self::TokenRevoked(p) => serde_json::to_value(p),
            Self::DatasetDrafted(p) => serde_json::to_value(p),
            Self::DatasetProposed(p) | Self::DatasetApproved(p) | Self::DatasetRevoked(p) => {
                serde_json::to_value(p)
            }
            Self::DatasetReleased(p) => serde_json::to_value(p),
            Self::GrantAdded(p) => serde_json::to_value(p),
            Self::GrantRevoked(p) => serde_json::to_value(p),
        }
        .expect("plain data");
        LogEntry::new(self.event_type(), actor, payload, at)
    }

    /// The event an entry records; `None` for an event type of a later kho.
    pub(crate) fn parse(e: &LogEntry) -> Result<Option<Self>> {
        Ok(Some(match e.event_type.as_str() {
            "token_issued" => Self::TokenIssued(payload(e)?),
            "token_revoked" => Self::TokenRevoked(payload(e)?),
            "dataset_drafted" => Self::DatasetDrafted(Box::new(payload(e)?)),
            "dataset_proposed" => Self::DatasetProposed(payload(e)?),
            "dataset_approved" => Self::DatasetApproved(payload(e)?),
            "dataset_revoked" => Self::DatasetRevoked(payload(e)?),
            "dataset_released" => Self::DatasetReleased(payload(e)?),
            "grant_added" => Self::GrantAdded(payload(e)?),
            "grant_revoked" => Self::GrantRevoked(payload(e)?),
            other => {
                tracing::debug!(event_type = other, "governance entry of a later kho");
                return Ok(None);
            }
        }))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenIssued {
    pub(crate) id: String,
    pub(crate) role: Role,
    pub(crate) sector: Option<String>,
    pub(crate) name: String,
    pub(crate) secret_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenRevoked {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Drafted {
    pub(crate) spec: DatasetSpec,
    pub(crate) owner: String,
    pub(crate) by_name: String,
    /// The spec's revision ([`crate::dataset::revision_of`]), stored as drafted so that a
    /// later kho's new spec fields do not change it. Absent in entries of an older kho: the
    /// replay computes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revision: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Moved {
    pub(crate) id: String,
    pub(crate) by_name: String,
    #[serde(default)]
    pub(crate) why: Option<String>,
    /// The revision of the spec proposed or approved: the step applies to that revision
    /// only. Absent in entries of an older kho.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revision: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Released {
    pub(crate) id: String,
    pub(crate) release: Release,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Granted {
    pub(crate) id: String,
    pub(crate) grant: Grant,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ungranted {
    pub(crate) id: String,
    pub(crate) principal: String,
}

fn payload<T: for<'de> Deserialize<'de>>(e: &LogEntry) -> Result<T> {
    serde_json::from_value(e.payload.clone()).map_err(|err| {
        CatalogError::Invalid(format!(
            "governance entry {} ({}): {err}",
            e.event_id, e.event_type
        ))
    })
}

/// Applies one dataset event to the replayed state, or refuses it (the reason) if it is not
/// valid in the state before it; a refused event changes nothing.
pub(crate) fn apply_dataset(
    datasets: &mut BTreeMap<String, Dataset>,
    tokens: &HashMap<String, StoredToken>,
    e: &LogEntry,
    event: GovernanceEvent,
) -> std::result::Result<(), String> {
    let step = |state: State, by_name: &str, why: Option<String>| Step {
        state,
        by: e.actor.clone(),
        by_name: by_name.to_owned(),
        at: e.recorded_at,
        why,
    };
    let needs = |d: &Dataset, what: &str, states: &[State]| {
        if states.contains(&d.state) {
            Ok(())
        } else {
            Err(format!(
                "{what} of dataset {} needs it {}, it is {}",
                d.spec.id,
                states
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                d.state.as_str()
            ))
        }
    };
    let same_revision = |d: &Dataset, what: &str, revision: &Option<String>| match revision {
        Some(r) if *r != d.revision => Err(format!(
            "{what} of dataset {} names revision {r}, the dataset is at revision {}",
            d.spec.id, d.revision
        )),
        _ => Ok(()),
    };
    let missing = |id: &str| format!("no dataset {id}");
    match event {
        GovernanceEvent::DatasetDrafted(d) => {
            let d = *d;
            let revision = d
                .revision
                .clone()
                .unwrap_or_else(|| crate::dataset::revision_of(&d.spec));
            let mut history = Vec::new();
            if let Some(old) = datasets.get(&d.spec.id) {
                if old.state != State::Draft || old.owner != d.owner {
                    return Err(format!(
                        "a draft of dataset {} by {}: the id is taken ({}, owned by {})",
                        d.spec.id,
                        d.owner,
                        old.state.as_str(),
                        old.owner
                    ));
                }
                history = old.history.clone();
            }
            history.push(step(State::Draft, &d.by_name, None));
            datasets.insert(
                d.spec.id.clone(),
                Dataset {
                    spec: d.spec,
                    owner: d.owner,
                    state: State::Draft,
                    revision,
                    approved_revision: None,
                    history,
                    releases: Vec::new(),
                    grants: Vec::new(),
                },
            );
        }
        GovernanceEvent::DatasetProposed(m) => {
            let d = datasets.get_mut(&m.id).ok_or_else(|| missing(&m.id))?;
            needs(d, "a proposal", &[State::Draft])?;
            same_revision(d, "a proposal", &m.revision)?;
            d.state = State::Proposed;
            d.history.push(step(State::Proposed, &m.by_name, m.why));
        }
        GovernanceEvent::DatasetApproved(m) => {
            let d = datasets.get_mut(&m.id).ok_or_else(|| missing(&m.id))?;
            needs(d, "an approval", &[State::Proposed])?;
            same_revision(d, "an approval", &m.revision)?;
            if let Some(why) = crate::workflow::four_eyes(&e.actor, d) {
                return Err(format!("an approval of dataset {}: {why}", d.spec.id));
            }
            d.state = State::Approved;
            d.approved_revision = Some(d.revision.clone());
            d.history.push(step(State::Approved, &m.by_name, m.why));
        }
        GovernanceEvent::DatasetRevoked(m) => {
            let d = datasets.get_mut(&m.id).ok_or_else(|| missing(&m.id))?;
            if d.state == State::Revoked {
                return Err(format!("dataset {} is revoked already", d.spec.id));
            }
            d.state = State::Revoked;
            d.history.push(step(State::Revoked, &m.by_name, m.why));
        }
        GovernanceEvent::DatasetReleased(r) => {
            let d = datasets.get_mut(&r.id).ok_or_else(|| missing(&r.id))?;
            needs(d, "a release", &[State::Approved, State::Published])?;
            let next = d.releases.last().map_or(1, |x| x.version + 1);
            if r.release.version != next {
                return Err(format!(
                    "release {} of dataset {}: the next release is {next}",
                    r.release.version, d.spec.id
                ));
            }
            if let Some(rev) = &r.release.revision
                && Some(rev) != d.approved_revision.as_ref()
            {
                return Err(format!(
                    "release {} of dataset {} was made from revision {rev}, not the approved one",
                    r.release.version, d.spec.id
                ));
            }
            if d.state != State::Published {
                d.state = State::Published;
                d.history.push(step(State::Published, &r.release.by, None));
            }
            d.releases.push(r.release);
        }
        GovernanceEvent::GrantAdded(g) => {
            let d = datasets.get_mut(&g.id).ok_or_else(|| missing(&g.id))?;
            if d.spec.sharing != Sharing::Shared {
                return Err(format!("a grant on dataset {}, which is not shared", g.id));
            }
            if d.state == State::Revoked {
                return Err(format!("a grant on dataset {}, which is revoked", g.id));
            }
            let live = tokens.get(&g.grant.principal).is_some_and(|t| {
                t.info.revoked_at.is_none() && matches!(t.info.role, Role::Consumer | Role::Sector)
            });
            if !live {
                return Err(format!(
                    "a grant on dataset {} to {}, not a live consumer or sector token",
                    g.id, g.grant.principal
                ));
            }
            d.grants.retain(|old| old.principal != g.grant.principal);
            d.grants.push(g.grant);
        }
        GovernanceEvent::GrantRevoked(g) => {
            let d = datasets.get_mut(&g.id).ok_or_else(|| missing(&g.id))?;
            let mut live = d
                .grants
                .iter_mut()
                .filter(|x| x.principal == g.principal && x.revoked_at.is_none())
                .peekable();
            if live.peek().is_none() {
                return Err(format!(
                    "no live grant on dataset {} to {}",
                    g.id, g.principal
                ));
            }
            for grant in live {
                grant.revoked_at = Some(e.recorded_at);
            }
        }
        GovernanceEvent::TokenIssued(_) | GovernanceEvent::TokenRevoked(_) => {}
    }
    Ok(())
}
