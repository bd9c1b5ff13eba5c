//! The dataset workflow: draft → proposed → approved → published → revoked. Each step is a
//! governance event recording who, when and why; the state is replayed from those events.
//! Every step is decided on the state at the log version it commits after
//! ([`Governance::commit`]), so a step another process made meanwhile is seen before this
//! one lands: a redraft cannot slip under an approval, nor a release under a revocation.

use serde::Deserialize;

use crate::dataset::{
    Dataset, DatasetSpec, Grant, Release, Sharing, SourceKind, State, Viewer, revision_of,
    view_owner,
};
use crate::error::{CatalogError, Result};
use crate::events::{Drafted, GovernanceEvent, Granted, Moved, Released, Ungranted};
use crate::governance::Governance;
use crate::release;
use crate::tokens::{Principal, Role};

/// A grant request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// The grantee's token id.
    pub principal: String,
    pub purpose: String,
    pub legal_basis: String,
}

/// A time as the province reads it: `dd/mm/yyyy hh:mm:ss +07:00`.
fn local_time(at: chrono::DateTime<chrono::Utc>) -> String {
    let tz = chrono::FixedOffset::east_opt(7 * 3600).expect("valid offset");
    at.with_timezone(&tz)
        .format("%d/%m/%Y %H:%M:%S %:z")
        .to_string()
}

fn conflict(d: &Dataset, step: &str, needs: &str) -> CatalogError {
    CatalogError::Conflict(format!(
        "dataset {} is {}; {step} needs it {needs}",
        d.spec.id,
        d.state.as_str()
    ))
}

/// Which release [`Governance::release_fresh`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseStep {
    /// The first release, with the dataset's publication.
    Publish,
    /// The next release of a published dataset.
    NewRelease,
}

impl Governance {
    fn dataset(&self, id: &str) -> Option<Dataset> {
        self.state
            .read()
            .expect("poisoned")
            .datasets
            .get(id)
            .cloned()
    }

    /// The dataset if the viewer may see it; "no dataset" otherwise, exactly as for a
    /// missing one.
    pub fn dataset_for(&self, viewer: Viewer<'_>, id: &str) -> Result<Dataset> {
        self.dataset(id)
            .filter(|d| d.visible_to(viewer))
            .ok_or_else(|| CatalogError::NoSuchDataset(id.to_owned()))
    }

    /// Every dataset the viewer may see, by id.
    pub fn datasets_for(&self, viewer: Viewer<'_>) -> Vec<Dataset> {
        self.state
            .read()
            .expect("poisoned")
            .datasets
            .values()
            .filter(|d| d.visible_to(viewer))
            .cloned()
            .collect()
    }

    /// Checks a spec against the policy and the source's schema.
    fn check_spec(&self, spec: &DatasetSpec) -> Result<()> {
        let schema = release::source_schema(&self.store, spec)?;
        spec.check(&release::source_columns(&schema))?;
        if let Some(f) = &spec.row_filter {
            release::check_filter(&schema, f)?;
        }
        Ok(())
    }

    /// Creates (or, while it is a draft, replaces) a dataset. A sector drafts from its own
    /// streams and views; the center drafts from views.
    pub async fn draft(&self, by: &Principal, spec: DatasetSpec) -> Result<Dataset> {
        let owner = match (by.role, spec.source.kind) {
            (Role::Sector, SourceKind::Stream) => {
                let def = self.store.stream(&spec.source.name).map_err(|_| {
                    CatalogError::Invalid(format!("unknown stream {}", spec.source.name))
                })?;
                if by.sector.as_deref() != Some(def.owner.as_str()) {
                    return Err(CatalogError::Forbidden(format!(
                        "stream {} belongs to sector {}: a sector proposes datasets from its own streams",
                        spec.source.name, def.owner
                    )));
                }
                def.owner.clone()
            }
            (Role::Sector, SourceKind::View) => {
                let owner = view_owner(&spec.source.name).ok_or_else(|| {
                    CatalogError::Invalid(format!("unknown view {}", spec.source.name))
                })?;
                if by.sector.as_deref() != Some(owner) {
                    return Err(CatalogError::Forbidden(format!(
                        "view {} is built from sector {}'s streams: a sector proposes datasets from its own views",
                        spec.source.name, owner
                    )));
                }
                owner.to_owned()
            }
            // The center's datasets: drafted by the center or a steward on its behalf.
            (Role::Center | Role::Steward, SourceKind::View) => "center".to_owned(),
            (Role::Center | Role::Steward, SourceKind::Stream) => {
                return Err(CatalogError::Forbidden(
                    "the center proposes datasets from views; streams belong to their sectors"
                        .into(),
                ));
            }
            (role, _) => {
                return Err(CatalogError::Forbidden(format!(
                    "drafting a dataset needs a sector, center or steward token; this is a {} token",
                    role.as_str()
                )));
            }
        };
        self.check_spec(&spec)?;
        let id = spec.id.clone();
        let event = GovernanceEvent::DatasetDrafted(Box::new(Drafted {
            revision: Some(revision_of(&spec)),
            spec,
            owner: owner.clone(),
            by_name: by.name.clone(),
        }));
        self.commit(&by.id, |state| match state.dataset(&id) {
            Some(existing) if existing.owner != owner => {
                // The same answer whether or not the caller may see that dataset: its state
                // and owner would tell a private dataset exists.
                Err(CatalogError::Conflict(format!(
                    "dataset id {id} is taken: choose another id"
                )))
            }
            Some(existing) if existing.state != State::Draft => Err(conflict(
                existing,
                "replacing its spec",
                "draft (once proposed, a dataset's spec is fixed)",
            )),
            _ => Ok(Some(event.clone())),
        })
        .await?;
        self.dataset(&id).ok_or(CatalogError::NoSuchDataset(id))
    }

    fn owns(by: &Principal, d: &Dataset) -> bool {
        match by.role {
            Role::Sector => by.sector.as_deref() == Some(d.owner.as_str()),
            Role::Center | Role::Steward => d.owner == "center",
            _ => false,
        }
    }

    /// Records a workflow step on dataset `id`: `check` looks at the dataset as it is at the
    /// version the step commits after, and refuses or answers the revision the step applies
    /// to.
    async fn step(
        &self,
        by: &Principal,
        id: &str,
        event: fn(Moved) -> GovernanceEvent,
        why: Option<String>,
        check: impl Fn(&Dataset) -> Result<Option<String>>,
    ) -> Result<Dataset> {
        self.commit(&by.id, |state| {
            let d = state
                .dataset(id)
                .filter(|d| d.visible_to(Viewer::Principal(by)))
                .ok_or_else(|| CatalogError::NoSuchDataset(id.to_owned()))?;
            let revision = check(d)?;
            Ok(Some(event(Moved {
                id: id.to_owned(),
                by_name: by.name.clone(),
                why: why.clone(),
                revision,
            })))
        })
        .await?;
        self.dataset(id)
            .ok_or_else(|| CatalogError::NoSuchDataset(id.to_owned()))
    }

    /// The owner proposes its draft for approval.
    pub async fn propose(&self, by: &Principal, id: &str, why: Option<String>) -> Result<Dataset> {
        self.step(by, id, GovernanceEvent::DatasetProposed, why, |d| {
            if !Self::owns(by, d) {
                return Err(CatalogError::Forbidden(format!(
                    "only the owner ({}) proposes dataset {id}",
                    d.owner
                )));
            }
            if d.state != State::Draft {
                return Err(conflict(d, "proposing", "draft"));
            }
            self.check_spec(&d.spec)?;
            Ok(Some(d.revision.clone()))
        })
        .await
    }

    /// A steward approves a proposal, never their own.
    pub async fn approve(&self, by: &Principal, id: &str, why: Option<String>) -> Result<Dataset> {
        self.approve_revision(by, id, None, why).await
    }

    /// A steward approves a proposal at the revision they reviewed (`revision`, the dataset's
    /// `revision` field as they saw it): if the dataset was redrafted since, the approval is
    /// refused. Without a revision, the approval applies to the revision proposed, as it is
    /// at the version the approval commits after.
    pub async fn approve_revision(
        &self,
        by: &Principal,
        id: &str,
        revision: Option<&str>,
        why: Option<String>,
    ) -> Result<Dataset> {
        if by.role != Role::Steward {
            // The same answer as for a missing dataset when the caller may not see it.
            self.dataset_for(Viewer::Principal(by), id)?;
            return Err(CatalogError::Forbidden(
                "approving a dataset needs a steward token".into(),
            ));
        }
        self.step(by, id, GovernanceEvent::DatasetApproved, why, |d| {
            if d.state != State::Proposed {
                return Err(conflict(d, "approval", "proposed"));
            }
            if let Some(r) = revision
                && r != d.revision
            {
                return Err(CatalogError::Conflict(format!(
                    "dataset {id} is at revision {}, not {r}: it changed after it was reviewed; review it again",
                    d.revision
                )));
            }
            if let Some(why) = four_eyes(&by.id, d) {
                return Err(CatalogError::Forbidden(why.into()));
            }
            self.check_spec(&d.spec)?;
            Ok(Some(d.revision.clone()))
        })
        .await
    }

    /// A steward or the owner publishes an approved dataset: its first release is
    /// materialized with the policy applied.
    /// Publishes a dataset or makes its next release; a view source is refreshed first, so
    /// the release reflects the view as fresh as it can be. What the publish route and the
    /// release schedule both do.
    pub async fn release_fresh(
        &self,
        views: &kho_query::ViewEngine,
        by: &Principal,
        id: &str,
        step: ReleaseStep,
    ) -> Result<Dataset> {
        let d = self
            .on_latest(|| self.dataset_for(Viewer::Principal(by), id))
            .await?;
        if d.spec.source.kind == SourceKind::View {
            views.refresh(&d.spec.source.name).await?;
        }
        match step {
            ReleaseStep::Publish => self.publish(by, id).await,
            ReleaseStep::NewRelease => self.new_release(by, id).await,
        }
    }

    pub async fn publish(&self, by: &Principal, id: &str) -> Result<Dataset> {
        let d = self
            .on_latest(|| {
                let d = self.dataset_for(Viewer::Principal(by), id)?;
                if by.role != Role::Steward && !Self::owns(by, &d) {
                    return Err(CatalogError::Forbidden(format!(
                        "publishing {id} needs a steward token or the owner's"
                    )));
                }
                if d.state != State::Approved {
                    return Err(conflict(&d, "publishing", "approved"));
                }
                Ok(d)
            })
            .await?;
        self.release(by, &d).await
    }

    /// A new release of a published dataset (on demand, or on its periodicity).
    pub async fn new_release(&self, by: &Principal, id: &str) -> Result<Dataset> {
        let d = self
            .on_latest(|| {
                let d = self.dataset_for(Viewer::Principal(by), id)?;
                if by.role != Role::Steward && !Self::owns(by, &d) {
                    return Err(CatalogError::Forbidden(format!(
                        "releasing {id} needs a steward token or the owner's"
                    )));
                }
                if d.state != State::Published {
                    return Err(conflict(&d, "a new release", "published"));
                }
                Ok(d)
            })
            .await?;
        self.release(by, &d).await
    }

    /// Materializes the next release of `d` (holding no lock: it takes seconds) and records
    /// it only if, at the version the record commits after, the dataset is still approved or
    /// published at the same approved revision and no other release took that number. A
    /// revocation meanwhile wins: the materialized table is deleted and the caller gets 409.
    async fn release(&self, by: &Principal, d: &Dataset) -> Result<Dataset> {
        let id = d.spec.id.clone();
        let version = d.releases.last().map_or(1, |r| r.version + 1);
        let approved = d.approved_revision.clone();
        // Materializing runs the dataset's filter and masks over the whole source: on the
        // query runtime, apart from the one serving HTTP and ingest.
        let key = crate::dataset::attempt_key(&id, version);
        let (store, spec, at) = (self.store.clone(), d.spec.clone(), key.clone());
        let (rows, source_version) = kho_query::compute::run(
            std::time::Duration::from_secs(600),
            "materializing the release",
            async move { Ok(release::materialize(&store, &spec, version, &at).await) },
        )
        .await??;
        self.pause_before_release_commit().await;
        let event = GovernanceEvent::DatasetReleased(Released {
            id: id.clone(),
            release: Release {
                version,
                rows,
                created_at: self.store.now(),
                source_version,
                by: by.name.clone(),
                revision: approved.clone(),
                table: Some(key.clone()),
            },
        });
        let landed = self
            .commit(&by.id, |state| {
                let now = state
                    .dataset(&id)
                    .ok_or_else(|| CatalogError::NoSuchDataset(id.clone()))?;
                // What changed while the release was made, named for the caller: the step,
                // who took it and when.
                let changed = || {
                    now.history.last().map_or_else(String::new, |s| {
                        format!(" ({} by {} at {})", s.state.as_str(), s.by_name, local_time(s.at))
                    })
                };
                if !matches!(now.state, State::Approved | State::Published) {
                    return Err(CatalogError::Conflict(format!(
                        "dataset {id} became {}{} while release {version} was made: the release is discarded",
                        now.state.as_str(),
                        changed()
                    )));
                }
                if now.approved_revision != approved {
                    return Err(CatalogError::Conflict(format!(
                        "dataset {id} was approved again at revision {}{} while release {version} was made: the release is discarded",
                        now.approved_revision.as_deref().map_or("none", |r| &r[..r.len().min(16)]),
                        changed()
                    )));
                }
                let next = now.releases.last().map_or(1, |r| r.version + 1);
                if next != version {
                    return Err(CatalogError::Conflict(match now.releases.last() {
                        Some(other) => format!(
                            "release {} of dataset {id} was recorded by {} at {} while release {version} was made: ask again",
                            other.version,
                            other.by,
                            local_time(other.created_at)
                        ),
                        None => format!("dataset {id} has no release {}: ask again", version - 1),
                    }));
                }
                Ok(Some(event.clone()))
            })
            .await;
        match landed {
            Ok(_) => {}
            Err(e @ (CatalogError::Conflict(_) | CatalogError::NoSuchDataset(_))) => {
                // Never recorded, so never served: delete what was written.
                self.store.discard_table(&key).await;
                return Err(e);
            }
            // The outcome is unknown (the store failed): keep the files; the record, if it
            // landed, refers to them.
            Err(e) => return Err(e),
        }
        self.dataset(&id)
            .ok_or_else(|| CatalogError::NoSuchDataset(id.clone()))
    }

    /// Deletes release tables that no recorded release names and that nothing wrote to for
    /// `older_than`: attempts that lost a race whose clean-up failed, and those of a process
    /// that died between materializing and recording. The log is read first, so a release
    /// recorded by another process is kept; `older_than` must exceed the time a release
    /// takes between its last write and its record (seconds; materializing is cut at 10
    /// minutes). Returns the keys deleted.
    pub async fn sweep_releases(&self, older_than: std::time::Duration) -> Result<Vec<String>> {
        self.refresh().await?;
        let kept: std::collections::HashSet<String> = self
            .state
            .read()
            .expect("poisoned")
            .datasets
            .values()
            .flat_map(|d| d.release_keys().collect::<Vec<_>>())
            .collect();
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        let mut swept = Vec::new();
        for (key, newest) in self
            .store
            .folders_under(crate::dataset::RELEASES_PREFIX, 2)
            .await?
        {
            if !kept.contains(&key) && newest < cutoff {
                tracing::info!(table = %key, "deleting a release table no release names");
                self.store.discard_table(&key).await;
                swept.push(key);
            }
        }
        Ok(swept)
    }

    /// A steward or the owner revokes a dataset: downloads stop at once on this process and
    /// within [`crate::governance::FRESH_WITHIN`] on every other. A release being made
    /// meanwhile is discarded. Releases stay in the store (citations keep their meaning) but
    /// no face serves them.
    pub async fn revoke_dataset(
        &self,
        by: &Principal,
        id: &str,
        why: Option<String>,
    ) -> Result<Dataset> {
        self.step(by, id, GovernanceEvent::DatasetRevoked, why, |d| {
            if by.role != Role::Steward && !Self::owns(by, d) {
                return Err(CatalogError::Forbidden(format!(
                    "revoking {id} needs a steward token or the owner's"
                )));
            }
            if d.state == State::Revoked {
                return Err(conflict(d, "revoking", "not yet revoked"));
            }
            Ok(None)
        })
        .await
    }

    /// A steward grants a consumer or another sector access to a shared dataset, recording
    /// the purpose and the legal basis.
    pub async fn grant(&self, by: &Principal, id: &str, g: NewGrant) -> Result<Dataset> {
        if by.role != Role::Steward {
            return Err(CatalogError::Forbidden(
                "granting access needs a steward token".into(),
            ));
        }
        let granted_at = self.store.now();
        self.commit(&by.id, |state| {
            let d = state
                .dataset(id)
                .filter(|d| d.visible_to(Viewer::Principal(by)))
                .ok_or_else(|| CatalogError::NoSuchDataset(id.to_owned()))?;
            if d.spec.sharing != Sharing::Shared {
                return Err(CatalogError::Policy(format!(
                    "dataset {id} is {}: grants are for shared datasets",
                    match d.spec.sharing {
                        Sharing::Open => "open to anyone",
                        _ => "private to its owner and the center",
                    }
                )));
            }
            if d.state == State::Revoked {
                return Err(conflict(d, "a grant", "not revoked"));
            }
            if g.purpose.trim().is_empty() || g.legal_basis.trim().is_empty() {
                return Err(CatalogError::Invalid(
                    "a grant records its purpose and its legal basis".into(),
                ));
            }
            let grantee = state
                .token(&g.principal)
                .ok_or_else(|| CatalogError::NoSuchToken(g.principal.clone()))?;
            if !matches!(grantee.role, Role::Consumer | Role::Sector)
                || grantee.revoked_at.is_some()
            {
                return Err(CatalogError::Invalid(format!(
                    "token {} is a {} token{}: grants go to live consumer or sector tokens",
                    g.principal,
                    grantee.role.as_str(),
                    if grantee.revoked_at.is_some() {
                        " (revoked)"
                    } else {
                        ""
                    }
                )));
            }
            Ok(Some(GovernanceEvent::GrantAdded(Granted {
                id: id.to_owned(),
                grant: Grant {
                    principal: g.principal.clone(),
                    principal_name: grantee.name.clone(),
                    purpose: g.purpose.clone(),
                    legal_basis: g.legal_basis.clone(),
                    granted_by: by.name.clone(),
                    granted_at,
                    revoked_at: None,
                },
            })))
        })
        .await?;
        self.dataset(id)
            .ok_or_else(|| CatalogError::NoSuchDataset(id.to_owned()))
    }

    /// A steward withdraws a grant.
    pub async fn revoke_grant(&self, by: &Principal, id: &str, principal: &str) -> Result<Dataset> {
        if by.role != Role::Steward {
            return Err(CatalogError::Forbidden(
                "withdrawing a grant needs a steward token".into(),
            ));
        }
        self.commit(&by.id, |state| {
            let d = state
                .dataset(id)
                .filter(|d| d.visible_to(Viewer::Principal(by)))
                .ok_or_else(|| CatalogError::NoSuchDataset(id.to_owned()))?;
            if !d
                .grants
                .iter()
                .any(|g| g.principal == principal && g.revoked_at.is_none())
            {
                return Err(CatalogError::NoSuchToken(format!(
                    "{principal} (no live grant on {id})"
                )));
            }
            Ok(Some(GovernanceEvent::GrantRevoked(Ungranted {
                id: id.to_owned(),
                principal: principal.to_owned(),
            })))
        })
        .await?;
        self.dataset(id)
            .ok_or_else(|| CatalogError::NoSuchDataset(id.to_owned()))
    }

    /// Published datasets whose periodicity calls for a new release now.
    pub fn due_releases(&self) -> Vec<String> {
        let now = self.store.now();
        self.state
            .read()
            .expect("poisoned")
            .datasets
            .values()
            .filter(|d| d.state == State::Published)
            .filter(|d| {
                let every = d.spec.metadata.accrual_periodicity.every();
                matches!((every, d.releases.last()), (Some(e), Some(r)) if now - r.created_at >= e)
            })
            .map(|d| d.spec.id.clone())
            .collect()
    }
}

/// Why `actor` may not approve `d` (four eyes), if so: nobody approves the proposal they made
/// nor a dataset they drafted. Checked by the approval and again by the replay.
pub(crate) fn four_eyes(actor: &str, d: &Dataset) -> Option<&'static str> {
    let proposer = d
        .history
        .iter()
        .rev()
        .find(|s| s.state == State::Proposed)
        .map(|s| s.by.as_str());
    if proposer == Some(actor) {
        return Some("four eyes: nobody approves their own proposal; another steward must approve");
    }
    if d.history
        .iter()
        .any(|s| s.state == State::Draft && s.by == actor)
    {
        return Some(
            "four eyes: nobody approves a dataset they drafted; another steward must approve",
        );
    }
    None
}
