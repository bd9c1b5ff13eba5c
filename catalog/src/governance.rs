//! The governance log and the state replayed from it.
//!
//! Every decision (issue or revoke a token, a workflow step, a grant, a release) is made on
//! the state at some log version and committed only as the version right after it
//! ([`Governance::commit`]): if another process committed first, this one reads what it
//! wrote, decides again on the new state, and lands or refuses with the reason. Readers
//! check the log for news at most [`FRESH_WITHIN`] before they decide who a token is or
//! whether a dataset may be pulled ([`Governance::ensure_fresh`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kho_store::{LogEntry, Store, SystemLog, pack::SECTORS};

use crate::dataset::Dataset;
use crate::error::{CatalogError, Result};
use crate::events::{GovernanceEvent, TokenIssued, TokenRevoked, apply_dataset};
use crate::tokens::{self, IssuedToken, NewToken, Principal, Role, StoredToken, TokenInfo};

/// The key of the governance log table.
pub const GOVERNANCE_KEY: &str = "system/governance";

/// How stale the state may be when a token is checked or a pull admitted: a revocation
/// (of a token, a dataset or a grant) committed by any process is obeyed by every process
/// within this bound (plus the time of one read of the log).
pub const FRESH_WITHIN: Duration = Duration::from_millis(500);

/// How often an unknown token may make a process read the log again (issued elsewhere just
/// now?).
const MISS_LOOKS_AGAIN: Duration = Duration::from_millis(100);

/// An entry the replay did not apply: it was not valid in the state before it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusedEntry {
    pub event_id: String,
    pub event_type: String,
    /// Who wrote it (a token id, or `admin`) and when.
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    pub reason: String,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// The log version this state reflects.
    version: u64,
    /// The latest `recorded_at` folded in: a new entry is stamped after it, so that the log
    /// sorted by time is the log in commit order whatever the hosts' clocks say.
    last_at: DateTime<Utc>,
    tokens: HashMap<String, StoredToken>,
    pub(crate) datasets: BTreeMap<String, Dataset>,
    /// Entries not applied, with the reason (in log order).
    refused: Vec<RefusedEntry>,
}

impl State {
    /// Folds one entry in, or records why it was refused.
    fn fold(&mut self, e: &LogEntry) {
        self.last_at = self.last_at.max(e.recorded_at);
        if let Err(reason) = self.apply(e) {
            tracing::warn!(event_id = %e.event_id, event_type = %e.event_type, %reason,
                "governance entry refused by the replay: not applied");
            self.refused.push(RefusedEntry {
                event_id: e.event_id.clone(),
                event_type: e.event_type.clone(),
                actor: e.actor.clone(),
                recorded_at: e.recorded_at,
                reason,
            });
        }
    }

    fn apply(&mut self, e: &LogEntry) -> std::result::Result<(), String> {
        let event = match GovernanceEvent::parse(e) {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(()),
            Err(err) => return Err(err.to_string()),
        };
        match event {
            GovernanceEvent::TokenIssued(t) => {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&t.secret_sha256, &mut hash)
                    .map_err(|_| format!("bad hash in governance entry {}", e.event_id))?;
                // A revocation read before its issue (a log of an older kho, ordered by
                // clocks that differed) leaves a nameless placeholder: revocation wins.
                let revoked = match self.tokens.get(&t.id) {
                    Some(old) if !old.info.name.is_empty() => {
                        return Err(format!("token id {} is taken", t.id));
                    }
                    Some(old) => old.info.revoked_at.zip(old.info.revoked_by.clone()),
                    None => None,
                };
                self.tokens.insert(
                    t.id.clone(),
                    StoredToken {
                        info: TokenInfo {
                            id: t.id,
                            role: t.role,
                            sector: t.sector,
                            name: t.name,
                            created_at: e.recorded_at,
                            created_by: e.actor.clone(),
                            revoked_at: revoked.as_ref().map(|r| r.0),
                            revoked_by: revoked.map(|r| r.1),
                        },
                        secret_sha256: hash,
                    },
                );
            }
            GovernanceEvent::TokenRevoked(r) => {
                let entry = self
                    .tokens
                    .entry(r.id.clone())
                    .or_insert_with(|| StoredToken {
                        info: TokenInfo {
                            id: r.id.clone(),
                            role: Role::Consumer,
                            sector: None,
                            name: String::new(),
                            created_at: e.recorded_at,
                            created_by: String::new(),
                            revoked_at: None,
                            revoked_by: None,
                        },
                        secret_sha256: [0; 32],
                    });
                if entry.info.revoked_at.is_some() {
                    return Err(format!("token {} is revoked already", r.id));
                }
                entry.info.revoked_at = Some(e.recorded_at);
                entry.info.revoked_by = Some(e.actor.clone());
            }
            dataset_event => apply_dataset(&mut self.datasets, &self.tokens, e, dataset_event)?,
        }
        Ok(())
    }

    pub(crate) fn dataset(&self, id: &str) -> Option<&Dataset> {
        self.datasets.get(id)
    }

    pub(crate) fn token(&self, id: &str) -> Option<&TokenInfo> {
        self.tokens
            .get(id)
            .map(|t| &t.info)
            .filter(|t| !t.name.is_empty())
    }
}

/// Tokens, datasets, workflow steps, grants and releases, replayed from the governance log.
pub struct Governance {
    pub(crate) store: Arc<Store>,
    log: SystemLog,
    pub(crate) state: RwLock<State>,
    admin_sha256: [u8; 32],
    /// Held while the state is brought up to date or a decision is committed: one at a time
    /// in a process (the log orders them across processes).
    writer: tokio::sync::Mutex<()>,
    /// When the last successful read of the log started.
    synced_at: Mutex<Instant>,
    /// When an unknown token last made this process look at the log again.
    missed_at: tokio::sync::Mutex<Option<Instant>>,
    /// Test hook: releases wait here between materializing and recording.
    release_hold: Mutex<Option<Arc<ReleaseHold>>>,
}

/// Holds releases between their materialization and their record, so that a test can make
/// a revocation (or anything else) land in between, deterministically.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct ReleaseHold {
    /// Notified when a release reaches the hold.
    pub reached: tokio::sync::Notify,
    /// Notify to let the release go on.
    pub resume: tokio::sync::Notify,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance").finish_non_exhaustive()
    }
}

impl Governance {
    /// Opens the governance log of `store` and replays it. `admin_token` is the bootstrap
    /// admin's secret (from `KHO_ADMIN_TOKEN`); it is kept only as a hash.
    pub async fn open(store: Arc<Store>, admin_token: &str) -> Result<Arc<Self>> {
        if admin_token.len() < 16 {
            return Err(CatalogError::Invalid(
                "the admin token must be at least 16 characters".into(),
            ));
        }
        let log = SystemLog::open(store.clone(), GOVERNANCE_KEY).await?;
        let started = Instant::now();
        let gov = Arc::new(Self {
            store,
            log,
            state: RwLock::new(State::default()),
            admin_sha256: tokens::sha256(admin_token.as_bytes()),
            writer: tokio::sync::Mutex::new(()),
            synced_at: Mutex::new(started),
            release_hold: Mutex::new(None),
            missed_at: tokio::sync::Mutex::new(None),
        });
        gov.replay().await?;
        Ok(gov)
    }

    /// Reads the whole log again and folds it from the start.
    async fn replay(&self) -> Result<()> {
        let (version, entries) = self.log.read_all().await?;
        let mut state = State::default();
        for e in &entries {
            state.fold(e);
        }
        state.version = version;
        *self.state.write().expect("poisoned") = state;
        Ok(())
    }

    /// Folds in what other processes committed since this state's version. The caller
    /// holds `writer`.
    async fn catch_up(&self) -> Result<bool> {
        let version = self.state.read().expect("poisoned").version;
        if !self.log.has_after(version).await? {
            return Ok(false);
        }
        match self.log.read_since(version).await? {
            Some((latest, entries)) => {
                let mut state = self.state.write().expect("poisoned");
                for e in &entries {
                    state.fold(e);
                }
                state.version = latest;
            }
            // A commit in between was cleaned from the log: read it all again.
            None => self.replay().await?,
        }
        Ok(true)
    }

    /// Catches up and records when the read started, as what the state is fresh as of.
    /// The caller holds `writer`.
    async fn sync(&self) -> Result<bool> {
        let started = Instant::now();
        let news = self.catch_up().await?;
        *self.synced_at.lock().expect("poisoned") = started;
        Ok(news)
    }

    /// Reads what other processes committed since the last read (the background refresh
    /// and `/healthz`); true if there was something.
    pub async fn refresh(&self) -> Result<bool> {
        let _one = self.writer.lock().await;
        self.sync().await
    }

    /// Makes sure the state is at most [`FRESH_WITHIN`] old: what every token check and every
    /// pull does first, so that a revocation made on any process is obeyed here too. Fails
    /// (a store error, 503) rather than answer from a state it cannot vouch for.
    pub async fn ensure_fresh(&self) -> Result<()> {
        self.fresh_within(FRESH_WITHIN).await
    }

    async fn fresh_within(&self, bound: Duration) -> Result<()> {
        let fresh = |gov: &Self| gov.synced_at.lock().expect("poisoned").elapsed() < bound;
        if fresh(self) {
            return Ok(());
        }
        let _one = self.writer.lock().await;
        // Another caller may have read the log while this one waited.
        if fresh(self) {
            return Ok(());
        }
        self.sync().await.map(|_| ())
    }

    /// Decides and commits one governance event: `decide` looks at the state and answers the
    /// event to record (or `None`: nothing to do, or a refusal); the event commits only as the
    /// version right after the state it was decided on. If another process committed that
    /// version first, its entries are folded in and `decide` runs again on the new state, so
    /// no decision ever lands on a state it was not made on. A refusal, too, stands only if
    /// the log has nothing after the state it was made on. Returns whether an event was
    /// recorded.
    pub(crate) async fn commit(
        &self,
        actor: &str,
        decide: impl Fn(&State) -> Result<Option<GovernanceEvent>>,
    ) -> Result<bool> {
        let _one = self.writer.lock().await;
        for attempt in 0..kho_store::commit::MAX_ATTEMPTS {
            let (after, decided) = {
                let state = self.state.read().expect("poisoned");
                // Later than everything decided on, whatever this host's clock says.
                let at = self
                    .store
                    .now()
                    .max(state.last_at + chrono::TimeDelta::microseconds(1));
                let decided = decide(&state).map(|e| e.map(|e| e.entry(actor, at)));
                (state.version, decided)
            };
            let entry = match decided {
                Ok(Some(entry)) => entry,
                Ok(None) => return Ok(false),
                // A refusal stands only if it was made on the latest log: if another process
                // committed meanwhile, catch up and decide again.
                Err(e) => {
                    if !matches!(e, CatalogError::Store(_)) && self.log.has_after(after).await? {
                        self.sync().await?;
                        continue;
                    }
                    return Err(e);
                }
            };
            let started = Instant::now();
            match self
                .log
                .append_at(after, std::slice::from_ref(&entry))
                .await?
            {
                Some(version) => {
                    let mut state = self.state.write().expect("poisoned");
                    let refused = state.refused.len();
                    state.fold(&entry);
                    state.version = version;
                    // Nothing came between the state decided on and this commit.
                    *self.synced_at.lock().expect("poisoned") = started;
                    if let Some(r) = state.refused.get(refused) {
                        // The decision and the replay disagree: a bug in kho, never obeyed.
                        return Err(CatalogError::Invalid(format!(
                            "kho decided an event its replay refuses: {}",
                            r.reason
                        )));
                    }
                    return Ok(true);
                }
                None => {
                    tracing::debug!(attempt, "governance commit lost a race; deciding again");
                    self.sync().await?;
                    kho_store::commit::backoff(attempt).await;
                }
            }
        }
        Err(CatalogError::Conflict(
            "the governance log is too contended: try again".into(),
        ))
    }

    /// Runs `check` on the current state; a refusal is made again on the latest log before it
    /// stands, so that no caller is refused on a state another process has moved past (a
    /// dataset approved there a moment ago is approved here too). A store failure is not
    /// checked again.
    pub(crate) async fn on_latest<T>(&self, check: impl Fn() -> Result<T>) -> Result<T> {
        match check() {
            Err(e) if !matches!(e, CatalogError::Store(_)) => {
                let _one = self.writer.lock().await;
                let version = self.state.read().expect("poisoned").version;
                if self.log.has_after(version).await? {
                    self.sync().await?;
                    return check();
                }
                Err(e)
            }
            done => done,
        }
    }

    /// Test hook: from now on every release waits, once materialized, until the hold's
    /// `resume` is notified.
    #[doc(hidden)]
    pub fn hold_releases(&self) -> Arc<ReleaseHold> {
        let hold = Arc::new(ReleaseHold::default());
        *self.release_hold.lock().expect("poisoned") = Some(hold.clone());
        hold
    }

    pub(crate) async fn pause_before_release_commit(&self) {
        let hold = self.release_hold.lock().expect("poisoned").clone();
        if let Some(hold) = hold {
            hold.reached.notify_one();
            hold.resume.notified().await;
        }
    }

    /// Entries of the log the replay refused, with the reason: what an older or faulty
    /// process wrote that was not valid in the state before it.
    pub fn refused(&self) -> Vec<RefusedEntry> {
        self.state.read().expect("poisoned").refused.clone()
    }

    /// Who holds this bearer token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        if tokens::same(&tokens::sha256(token.as_bytes()), &self.admin_sha256) {
            return Ok(Principal::admin());
        }
        let Some((id, secret)) = tokens::parse(token) else {
            return Err(CatalogError::Unauthenticated("not a kho token"));
        };
        // Revoked by another process a moment ago: that counts.
        self.ensure_fresh().await?;
        if let Some(found) = self.check(id, secret) {
            return found;
        }
        // Unknown here: perhaps another process issued it just now. Look again, at most
        // once every MISS_LOOKS_AGAIN (a flood of made-up tokens costs a few log checks a
        // second, and delays a new token's first use by at most that).
        // Callers that miss at once wait here for the one that looks.
        {
            let mut last = self.missed_at.lock().await;
            if last.is_none_or(|t| t.elapsed() >= MISS_LOOKS_AGAIN) {
                *last = Some(Instant::now());
                self.fresh_within(Duration::ZERO).await?;
            }
        }
        self.check(id, secret)
            .unwrap_or(Err(CatalogError::Unauthenticated("unknown token")))
    }

    /// The principal of a live token, by its id: what a web session (which holds the id,
    /// never the secret) is checked against on every request, so that revoking the token
    /// ends its sessions on every process within [`FRESH_WITHIN`].
    pub async fn principal_by_id(&self, id: &str) -> Result<Principal> {
        self.ensure_fresh().await?;
        let state = self.state.read().expect("poisoned");
        let stored = state
            .tokens
            .get(id)
            .ok_or(CatalogError::Unauthenticated("unknown token"))?;
        if stored.info.revoked_at.is_some() {
            return Err(CatalogError::Revoked(id.to_owned()));
        }
        Ok(stored.principal())
    }

    fn check(&self, id: &str, secret: &str) -> Option<Result<Principal>> {
        let state = self.state.read().expect("poisoned");
        let stored = state.tokens.get(id)?;
        if !tokens::same(&tokens::sha256(secret.as_bytes()), &stored.secret_sha256) {
            return Some(Err(CatalogError::Unauthenticated("unknown token")));
        }
        if stored.info.revoked_at.is_some() {
            return Some(Err(CatalogError::Revoked(id.to_owned())));
        }
        Some(Ok(stored.principal()))
    }

    /// Issues a token (admin only). The secret is returned once and stored as a hash.
    pub async fn issue(&self, by: &Principal, req: NewToken) -> Result<IssuedToken> {
        require_admin(by)?;
        let name = req.name.trim().to_owned();
        if name.is_empty() || name.len() > 100 {
            return Err(CatalogError::Invalid(
                "name must be 1 to 100 characters".into(),
            ));
        }
        match (req.role, &req.sector) {
            (Role::Admin, _) => {
                return Err(CatalogError::Invalid(
                    "admin tokens are not issued: the admin token comes from KHO_ADMIN_TOKEN"
                        .into(),
                ));
            }
            (Role::Sector, None) => {
                return Err(CatalogError::Invalid(format!(
                    "a sector token needs a sector: one of {}",
                    SECTORS.join(", ")
                )));
            }
            (Role::Sector, Some(s)) if !SECTORS.contains(&s.as_str()) => {
                return Err(CatalogError::Invalid(format!(
                    "unknown sector {s}: one of {}",
                    SECTORS.join(", ")
                )));
            }
            (role, Some(_)) if role != Role::Sector => {
                return Err(CatalogError::Invalid(format!(
                    "only sector tokens name a sector, not {} tokens",
                    role.as_str()
                )));
            }
            _ => {}
        }
        let (id, secret, token) = tokens::generate();
        let event = GovernanceEvent::TokenIssued(TokenIssued {
            id: id.clone(),
            role: req.role,
            sector: req.sector.clone(),
            name: name.clone(),
            secret_sha256: hex::encode(tokens::sha256(secret.as_bytes())),
        });
        self.commit(&by.id, |state| {
            if state.tokens.contains_key(&id) {
                return Err(CatalogError::Conflict(format!(
                    "token id {id} is taken: issue again"
                )));
            }
            Ok(Some(event.clone()))
        })
        .await?;
        let info = self
            .token(&id)
            .ok_or_else(|| CatalogError::NoSuchToken(id.clone()))?;
        Ok(IssuedToken { info, token })
    }

    /// Revokes a token (admin only): refused on every process within [`FRESH_WITHIN`].
    pub async fn revoke(
        &self,
        by: &Principal,
        id: &str,
        reason: Option<String>,
    ) -> Result<TokenInfo> {
        require_admin(by)?;
        self.commit(&by.id, |state| {
            let existing = state
                .token(id)
                .ok_or_else(|| CatalogError::NoSuchToken(id.to_owned()))?;
            if existing.revoked_at.is_some() {
                return Ok(None);
            }
            Ok(Some(GovernanceEvent::TokenRevoked(TokenRevoked {
                id: id.to_owned(),
                reason: reason.clone(),
            })))
        })
        .await?;
        self.token(id)
            .ok_or_else(|| CatalogError::NoSuchToken(id.to_owned()))
    }

    /// Who `id` is, as the public sees it: a role and an organisation.
    pub fn public_actor(&self, id: &str) -> crate::dataset::PublicActor {
        use crate::dataset::PublicActor;
        match self.token(id) {
            Some(t) => PublicActor::of(Some(t.role), t.sector.as_deref()),
            None if id == Principal::admin().id => PublicActor::of(Some(Role::Admin), None),
            None if id == Principal::scheduler().id => PublicActor::of(Some(Role::Steward), None),
            None => PublicActor::of(None, None),
        }
    }

    pub fn token(&self, id: &str) -> Option<TokenInfo> {
        self.state.read().expect("poisoned").token(id).cloned()
    }

    /// Every token ever issued, oldest first.
    pub fn tokens(&self) -> Vec<TokenInfo> {
        let state = self.state.read().expect("poisoned");
        let mut out: Vec<TokenInfo> = state
            .tokens
            .values()
            .filter(|t| !t.info.name.is_empty())
            .map(|t| t.info.clone())
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }
}

fn require_admin(p: &Principal) -> Result<()> {
    if p.role == Role::Admin {
        Ok(())
    } else {
        Err(CatalogError::Forbidden(
            "only the admin manages tokens".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "test-admin-token-0123456789";

    fn new(role: Role, sector: Option<&str>, name: &str) -> NewToken {
        NewToken {
            role,
            sector: sector.map(str::to_owned),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn issue_authenticate_revoke_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let gov = Governance::open(store.clone(), ADMIN).await.unwrap();
        let admin = gov.authenticate(ADMIN).await.unwrap();
        assert_eq!(admin.role, Role::Admin);

        let fin = gov
            .issue(&admin, new(Role::Sector, Some("finance"), "treasury"))
            .await
            .unwrap();
        let who = gov.authenticate(&fin.token).await.unwrap();
        assert_eq!(
            (who.role, who.sector.as_deref()),
            (Role::Sector, Some("finance"))
        );
        assert_eq!(who.source(), "finance:treasury");

        // A sector principal cannot issue; bad requests are refused with reasons.
        assert!(matches!(
            gov.issue(&who, new(Role::Center, None, "x")).await,
            Err(CatalogError::Forbidden(_))
        ));
        let err = gov
            .issue(&admin, new(Role::Sector, Some("police"), "x"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unknown sector police"), "{err}");
        let err = gov
            .issue(&admin, new(Role::Sector, None, "x"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("needs a sector"), "{err}");
        let err = gov
            .issue(&admin, new(Role::Center, Some("finance"), "x"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("only sector tokens"), "{err}");

        // A wrong secret for a real id, and a mangled token, are both unknown.
        let forged = format!(
            "{}{}",
            &fin.token[..fin.token.len() - 1],
            if fin.token.ends_with('0') { '1' } else { '0' }
        );
        assert!(matches!(
            gov.authenticate(&forged).await,
            Err(CatalogError::Unauthenticated(_))
        ));
        assert!(matches!(
            gov.authenticate("Bearer nonsense").await,
            Err(CatalogError::Unauthenticated(_))
        ));

        gov.revoke(&admin, &fin.info.id, Some("leaked".into()))
            .await
            .unwrap();
        assert!(matches!(
            gov.authenticate(&fin.token).await,
            Err(CatalogError::Revoked(_))
        ));

        // Another process replays the log: same tokens, same revocation.
        let center = gov
            .issue(&admin, new(Role::Center, None, "ioc"))
            .await
            .unwrap();
        let other = Governance::open(Store::open(dir.path().to_str().unwrap()).unwrap(), ADMIN)
            .await
            .unwrap();
        assert!(matches!(
            other.authenticate(&fin.token).await,
            Err(CatalogError::Revoked(_))
        ));
        assert_eq!(
            other.authenticate(&center.token).await.unwrap().role,
            Role::Center
        );
        assert_eq!(other.tokens(), gov.tokens());

        // A token issued by the other process is found here on a miss.
        let late = other
            .issue(&admin, new(Role::Steward, None, "steward"))
            .await
            .unwrap();
        assert_eq!(
            gov.authenticate(&late.token).await.unwrap().role,
            Role::Steward
        );
    }
}
