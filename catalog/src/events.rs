//! The governance log's entries, typed: each [`GovernanceEvent`] is one `event_type` of
//! `system/governance` with its payload, and [`apply_dataset`] folds the dataset events
//! into the replayed datasets. The writers ([`crate::governance`] for tokens,
//! [`crate::workflow`] for datasets and grants) make entries from events; the replay
//! ([`crate::governance`]) reads them back through [`GovernanceEvent::parse`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kho_store::LogEntry;
use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, DatasetSpec, Grant, Release, State, Step};
use crate::error::{CatalogError, Result};
use crate::tokens::Role;

/// One entry of the governance log.
#[derive(Debug)]
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

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TokenIssued {
    pub(crate) id: String,
    pub(crate) role: Role,
    pub(crate) sector: Option<String>,
    pub(crate) name: String,
    pub(crate) secret_sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TokenRevoked {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Drafted {
    pub(crate) spec: DatasetSpec,
    pub(crate) owner: String,
    pub(crate) by_name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Moved {
    pub(crate) id: String,
    pub(crate) by_name: String,
    #[serde(default)]
    pub(crate) why: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Released {
    pub(crate) id: String,
    pub(crate) release: Release,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Granted {
    pub(crate) id: String,
    pub(crate) grant: Grant,
}

#[derive(Debug, Serialize, Deserialize)]
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

/// Applies one dataset event to the replayed state.
pub(crate) fn apply_dataset(
    datasets: &mut BTreeMap<String, Dataset>,
    e: &LogEntry,
    event: GovernanceEvent,
) {
    let step = |state: State, by_name: &str, why: Option<String>| Step {
        state,
        by: e.actor.clone(),
        by_name: by_name.to_owned(),
        at: e.recorded_at,
        why,
    };
    match event {
        GovernanceEvent::DatasetDrafted(d) => {
            let d = *d;
            let mut history = datasets
                .remove(&d.spec.id)
                .map(|old| old.history)
                .unwrap_or_default();
            history.push(step(State::Draft, &d.by_name, None));
            datasets.insert(
                d.spec.id.clone(),
                Dataset {
                    spec: d.spec,
                    owner: d.owner,
                    state: State::Draft,
                    history,
                    releases: Vec::new(),
                    grants: Vec::new(),
                },
            );
        }
        GovernanceEvent::DatasetProposed(m)
        | GovernanceEvent::DatasetApproved(m)
        | GovernanceEvent::DatasetRevoked(m) => {
            let state = match e.event_type.as_str() {
                "dataset_proposed" => State::Proposed,
                "dataset_approved" => State::Approved,
                _ => State::Revoked,
            };
            if let Some(d) = datasets.get_mut(&m.id) {
                d.state = state;
                d.history.push(step(state, &m.by_name, m.why));
            }
        }
        GovernanceEvent::DatasetReleased(r) => {
            if let Some(d) = datasets.get_mut(&r.id) {
                if d.state != State::Published {
                    d.state = State::Published;
                    d.history.push(step(State::Published, &r.release.by, None));
                }
                d.releases.retain(|old| old.version != r.release.version);
                d.releases.push(r.release);
                d.releases.sort_by_key(|x| x.version);
            }
        }
        GovernanceEvent::GrantAdded(g) => {
            if let Some(d) = datasets.get_mut(&g.id) {
                d.grants.retain(|old| old.principal != g.grant.principal);
                d.grants.push(g.grant);
            }
        }
        GovernanceEvent::GrantRevoked(g) => {
            if let Some(d) = datasets.get_mut(&g.id) {
                for grant in d.grants.iter_mut().filter(|x| x.principal == g.principal) {
                    grant.revoked_at.get_or_insert(e.recorded_at);
                }
            }
        }
        GovernanceEvent::TokenIssued(_) | GovernanceEvent::TokenRevoked(_) => {}
    }
}
