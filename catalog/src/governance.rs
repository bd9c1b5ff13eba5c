//! The governance log and the state replayed from it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kho_store::{LogEntry, Store, SystemLog, pack::SECTORS};

use crate::dataset::Dataset;
use crate::error::{CatalogError, Result};
use crate::events::{GovernanceEvent, TokenIssued, TokenRevoked, apply_dataset};
use crate::tokens::{self, IssuedToken, NewToken, Principal, Role, StoredToken, TokenInfo};

/// The key of the governance log table.
pub const GOVERNANCE_KEY: &str = "system/governance";

/// How often an unknown token may trigger a re-read of the log (another process may have
/// issued it).
const REFRESH_ON_MISS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct State {
    /// The log version this state reflects.
    version: u64,
    tokens: HashMap<String, StoredToken>,
    pub(crate) datasets: BTreeMap<String, Dataset>,
}

impl State {
    fn apply(&mut self, e: &LogEntry) -> Result<()> {
        let Some(event) = GovernanceEvent::parse(e)? else {
            return Ok(());
        };
        match event {
            GovernanceEvent::TokenIssued(t) => {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&t.secret_sha256, &mut hash).map_err(|_| {
                    CatalogError::Invalid(format!("bad hash in governance entry {}", e.event_id))
                })?;
                let revoked = self
                    .tokens
                    .get(&t.id)
                    .and_then(|old| old.info.revoked_at.zip(old.info.revoked_by.clone()));
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
                // Revocation wins whatever order the entries are read in.
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
                if entry.info.revoked_at.is_none() {
                    entry.info.revoked_at = Some(e.recorded_at);
                    entry.info.revoked_by = Some(e.actor.clone());
                }
            }
            dataset_event => apply_dataset(&mut self.datasets, e, dataset_event),
        }
        Ok(())
    }
}

/// Tokens and (later) datasets, replayed from the governance log.
pub struct Governance {
    pub(crate) store: Arc<Store>,
    log: SystemLog,
    pub(crate) state: RwLock<State>,
    admin_sha256: [u8; 32],
    last_miss_refresh: tokio::sync::Mutex<Option<Instant>>,
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
        let gov = Arc::new(Self {
            store,
            log,
            state: RwLock::new(State::default()),
            admin_sha256: tokens::sha256(admin_token.as_bytes()),
            last_miss_refresh: tokio::sync::Mutex::new(None),
        });
        gov.replay().await?;
        Ok(gov)
    }

    async fn replay(&self) -> Result<()> {
        let (version, entries) = self.log.read_all().await?;
        let mut state = State {
            version,
            ..State::default()
        };
        for e in &entries {
            state.apply(e)?;
        }
        *self.state.write().expect("poisoned") = state;
        Ok(())
    }

    /// Re-reads the log if another process has written to it since the last read.
    pub async fn refresh(&self) -> Result<bool> {
        let latest = self.log.latest_version().await?;
        if latest == self.state.read().expect("poisoned").version {
            return Ok(false);
        }
        self.replay().await?;
        Ok(true)
    }

    /// Who holds this bearer token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        if tokens::same(&tokens::sha256(token.as_bytes()), &self.admin_sha256) {
            return Ok(Principal::admin());
        }
        let Some((id, secret)) = tokens::parse(token) else {
            return Err(CatalogError::Unauthenticated("not a kho token"));
        };
        if let Some(found) = self.check(id, secret) {
            return found;
        }
        // Unknown here: perhaps another process issued it. Re-read, at most once a second.
        {
            let mut last = self.last_miss_refresh.lock().await;
            if last.is_none_or(|t| t.elapsed() >= REFRESH_ON_MISS_EVERY) {
                *last = Some(Instant::now());
                self.refresh().await?;
            }
        }
        self.check(id, secret)
            .unwrap_or(Err(CatalogError::Unauthenticated("unknown token")))
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
        let entry = GovernanceEvent::TokenIssued(TokenIssued {
            id: id.clone(),
            role: req.role,
            sector: req.sector.clone(),
            name: name.clone(),
            secret_sha256: hex::encode(tokens::sha256(secret.as_bytes())),
        })
        .entry(&by.id, self.store.now());
        self.append(&entry).await?;
        let info = self
            .token(&id)
            .ok_or_else(|| CatalogError::NoSuchToken(id.clone()))?;
        Ok(IssuedToken { info, token })
    }

    /// Revokes a token at once (admin only).
    pub async fn revoke(
        &self,
        by: &Principal,
        id: &str,
        reason: Option<String>,
    ) -> Result<TokenInfo> {
        require_admin(by)?;
        let existing = self
            .token(id)
            .ok_or_else(|| CatalogError::NoSuchToken(id.to_owned()))?;
        if existing.revoked_at.is_some() {
            return Ok(existing);
        }
        let entry = GovernanceEvent::TokenRevoked(TokenRevoked {
            id: id.to_owned(),
            reason,
        })
        .entry(&by.id, self.store.now());
        self.append(&entry).await?;
        self.token(id)
            .ok_or_else(|| CatalogError::NoSuchToken(id.to_owned()))
    }

    pub(crate) async fn append(&self, entry: &LogEntry) -> Result<()> {
        let version = self.log.append(std::slice::from_ref(entry)).await?;
        let mut state = self.state.write().expect("poisoned");
        state.apply(entry)?;
        // Entries of other processes between our last read and this one are picked up by
        // the next refresh; the version moves only if there was no gap.
        if version == state.version + 1 {
            state.version = version;
        }
        Ok(())
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
        let state = self.state.read().expect("poisoned");
        state
            .tokens
            .get(id)
            .filter(|t| !t.info.name.is_empty())
            .map(|t| t.info.clone())
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
