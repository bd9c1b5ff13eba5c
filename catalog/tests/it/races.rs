//! Governance decisions raced on purpose, on one process and on two over one store (two
//! `Governance` opened on the store, each with its own replayed state, as two `kho serve`
//! have), on memory, local disk and S3 (`KHO_TEST_S3_URL`). Each race is forced, not left to
//! luck: a release is held between its materialization and its record while a revocation
//! lands; a stale process decides on what it last saw. What the log ends up saying is read
//! back by a fresh replay (a third process), never from the racers' own state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kho_catalog::{
    CatalogError, DatasetSpec, FRESH_WITHIN, Governance, NewToken, Principal, Role, State,
};
use kho_store::{LogEntry, Store, SystemLog};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::catalog::{ADMIN, World, spec, world_on};

/// Where a race runs: a store, kept alive for the test.
struct Place {
    spec: String,
    _dir: Option<tempfile::TempDir>,
}

/// Memory, local disk, and S3 when `KHO_TEST_S3_URL` is set (required when
/// `KHO_REQUIRE_EXTERNAL` is).
fn places() -> Vec<Place> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![
        Place {
            spec: "memory://".into(),
            _dir: None,
        },
        Place {
            spec: dir.path().to_str().unwrap().to_owned(),
            _dir: Some(dir),
        },
    ];
    match std::env::var("KHO_TEST_S3_URL") {
        Ok(base) => out.push(Place {
            spec: format!("{}/{}", base.trim_end_matches('/'), uuid::Uuid::new_v4()),
            _dir: None,
        }),
        Err(_) => assert!(
            std::env::var_os("KHO_REQUIRE_EXTERNAL").is_none(),
            "KHO_REQUIRE_EXTERNAL is set but KHO_TEST_S3_URL is not"
        ),
    }
    out
}

/// The fixture, and a second governance on the same store: the same process (`two` false)
/// or another one with its own state.
async fn racers(place: &Place, two: bool) -> (World, Arc<Governance>) {
    let w = world_on(&place.spec).await;
    let b = if !two {
        w.gov.clone()
    } else {
        let store = if place.spec.starts_with("memory") {
            w.store.clone()
        } else {
            Store::open_with_pack(&place.spec).await.unwrap()
        };
        Governance::open(store, ADMIN).await.unwrap()
    };
    (w, b)
}

/// A third process's view of the log: replayed from scratch.
async fn outsider(w: &World) -> Arc<Governance> {
    Governance::open(w.store.clone(), ADMIN).await.unwrap()
}

fn open_spec(id: &str) -> DatasetSpec {
    spec(
        id,
        "open",
        "other",
        json!([{"name": "agency_code"}, {"name": "channel"}]),
        None,
    )
}

/// A private dataset that hides who the citizens are and keeps only online dossiers.
fn private_masked(id: &str) -> DatasetSpec {
    spec(
        id,
        "private",
        "other",
        json!([{"name": "agency_code"}, {"name": "entity_id", "tag": "basic", "mask": "pseudonym"}]),
        Some("channel = 'online'"),
    )
}

/// The same id, open to anyone and unmasked (but for the mask the policy forces on basic
/// personal data outside private datasets, it would be refused: so it drops the column).
fn open_unfiltered(id: &str) -> DatasetSpec {
    spec(
        id,
        "open",
        "other",
        json!([{"name": "agency_code"}, {"name": "channel"}, {"name": "level"}]),
        None,
    )
}

/// Drafted, proposed and approved on `w.gov`; published too if `publish`.
async fn approved(w: &World, id: &str, publish: bool) {
    let g = &w.gov;
    g.draft(&w.services, open_spec(id)).await.unwrap();
    g.propose(&w.services, id, None).await.unwrap();
    g.approve(&w.steward_a, id, None).await.unwrap();
    if publish {
        g.publish(&w.steward_a, id).await.unwrap();
    }
}

fn states(gov: &Governance, by: &Principal, id: &str) -> Vec<&'static str> {
    gov.dataset_for(kho_catalog::Viewer::Principal(by), id)
        .unwrap()
        .history
        .iter()
        .map(|s| s.state.as_str())
        .collect()
}

/// The tables written for release `version` of a dataset (one per attempt).
async fn release_tables(store: &Store, id: &str, version: u32) -> Vec<String> {
    let attempt = format!("releases/{id}/v{version}-");
    store
        .folders_under(&format!("releases/{id}"), 1)
        .await
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.starts_with(&attempt))
        .collect()
}

async fn release_table_exists(store: &Store, id: &str, version: u32) -> bool {
    !release_tables(store, id, version).await.is_empty()
}

/// A revocation that lands while a release is being materialized wins: the release is
/// refused and its table deleted, the dataset stays revoked, anonymous readers see nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_wins_over_a_release_in_flight() {
    for place in places() {
        for two in [false, true] {
            let (w, b) = racers(&place, two).await;
            let ds = if two { "ds-two" } else { "ds-one" };
            approved(&w, ds, true).await;
            b.refresh().await.unwrap();
            let hold = b.hold_releases();
            let releasing = {
                let (b, by) = (b.clone(), w.steward_b.clone());
                tokio::spawn(async move { b.new_release(&by, ds).await })
            };
            hold.reached.notified().await;
            // Materialized, not yet recorded: the steward revokes on the other process.
            assert!(release_table_exists(&w.store, ds, 2).await);
            w.gov
                .revoke_dataset(&w.steward_a, ds, Some("leak".into()))
                .await
                .unwrap();
            hold.resume.notify_one();
            let err = releasing.await.unwrap().unwrap_err();
            // The refusal names what changed, who changed it and when.
            assert!(
                matches!(&err, CatalogError::Conflict(m)
                    if m.contains("became revoked (revoked by ") && m.contains("+07:00")),
                "{}: {err}",
                place.spec
            );
            let third = outsider(&w).await;
            let d = third
                .dataset_for(kho_catalog::Viewer::Principal(&w.steward_a), ds)
                .unwrap();
            assert_eq!(d.state, State::Revoked, "{}", place.spec);
            assert_eq!(d.releases.len(), 1, "{}", place.spec);
            assert_eq!(
                states(&third, &w.steward_a, ds),
                ["draft", "proposed", "approved", "published", "revoked"]
            );
            assert!(
                third
                    .dataset_for(kho_catalog::Viewer::Anonymous, ds)
                    .is_err(),
                "anonymous readers no longer see a revoked dataset"
            );
            assert!(
                !release_table_exists(&w.store, ds, 2).await,
                "{}: the refused release's table is deleted",
                place.spec
            );
            assert_eq!(third.refused(), vec![], "{}", place.spec);
        }
    }
}

/// A process that dies between materializing a release and recording it leaves a table that
/// no record names: the next release takes the same number all the same, and the sweep
/// deletes the orphan (once old enough) and nothing that a release names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_a_crash_left_behind_blocks_nothing() {
    for place in places() {
        let (w, b) = racers(&place, true).await;
        let ds = "crashed";
        approved(&w, ds, true).await;
        b.refresh().await.unwrap();
        let hold = b.hold_releases();
        let dying = {
            let (b, by) = (b.clone(), w.steward_b.clone());
            tokio::spawn(async move { b.new_release(&by, ds).await })
        };
        hold.reached.notified().await;
        // Materialized, not recorded: the process dies here.
        dying.abort();
        assert!(dying.await.unwrap_err().is_cancelled());
        let orphans = release_tables(&w.store, ds, 2).await;
        assert_eq!(orphans.len(), 1, "{}", place.spec);

        let d = w.gov.new_release(&w.steward_a, ds).await.unwrap();
        assert_eq!(d.releases.len(), 2, "{}: release 2 is made", place.spec);
        let recorded = d.release_key(2);
        assert_ne!(recorded, orphans[0]);
        assert_eq!(release_tables(&w.store, ds, 2).await.len(), 2);

        // Too recent to sweep: kept (it could be a release another process is making).
        assert_eq!(
            w.gov
                .sweep_releases(Duration::from_secs(3600))
                .await
                .unwrap(),
            Vec::<String>::new()
        );
        // Old enough: the orphan goes, every recorded release stays readable.
        assert_eq!(
            w.gov.sweep_releases(Duration::ZERO).await.unwrap(),
            orphans,
            "{}",
            place.spec
        );
        assert_eq!(
            release_tables(&w.store, ds, 2).await,
            vec![recorded.clone()]
        );
        let third = outsider(&w).await;
        let d = third
            .dataset_for(kho_catalog::Viewer::Anonymous, ds)
            .unwrap();
        for r in &d.releases {
            let t = w
                .store
                .table(&d.release_key(r.version), kho_store::AsOf::Latest)
                .await
                .unwrap();
            assert_eq!(t.stats().unwrap().row_count, r.rows, "{}", place.spec);
        }
        assert_eq!(third.refused(), vec![], "{}", place.spec);
    }
}

/// A process that has not yet read what another one just did is not refused on its old view:
/// a step it would refuse is checked again on the latest log first (behind a load balancer,
/// a proposal or a publication lands on whichever process, right after the step before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_is_not_refused_on_a_stale_view() {
    for place in places() {
        let (w, b) = racers(&place, true).await;
        let id = "handed-over";
        b.refresh().await.unwrap();
        w.gov.draft(&w.services, open_spec(id)).await.unwrap();
        // b has not read the draft: without the second look this would be "no such dataset".
        b.propose(&w.services, id, None).await.unwrap();
        w.gov.approve(&w.steward_a, id, None).await.unwrap();
        // Nor the approval: without it, "dataset is proposed; publishing needs it approved".
        b.publish(&w.steward_b, id).await.unwrap();
        let third = outsider(&w).await;
        assert_eq!(
            states(&third, &w.steward_a, id),
            ["draft", "proposed", "approved", "published"],
            "{}",
            place.spec
        );
        // What is refused on the latest log is still refused.
        let err = b.approve(&w.steward_b, id, None).await.unwrap_err();
        assert!(matches!(err, CatalogError::Conflict(_)), "{err}");
    }
}

/// A sector redrafts its proposed dataset as open and unmasked on a process that has not
/// seen the proposal: refused, and the steward approves what they reviewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redraft_cannot_slip_under_an_approval() {
    for place in places() {
        let (w, b) = racers(&place, true).await;
        w.gov
            .draft(&w.services, private_masked("pri"))
            .await
            .unwrap();
        b.refresh().await.unwrap();
        let reviewed = w.gov.propose(&w.services, "pri", None).await.unwrap();
        // `b` still thinks "pri" is a draft its owner may replace.
        let err = b
            .draft(&w.services, open_unfiltered("pri"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CatalogError::Conflict(m) if m.contains("proposed")),
            "{}: {err}",
            place.spec
        );
        let d = b
            .approve_revision(&w.steward_a, "pri", Some(&reviewed.revision), None)
            .await
            .unwrap();
        assert_eq!(d.approved_revision.as_deref(), Some(&*reviewed.revision));
        let third = outsider(&w).await;
        let d = third
            .dataset_for(kho_catalog::Viewer::Principal(&w.steward_a), "pri")
            .unwrap();
        assert_eq!(d.spec, private_masked("pri"), "{}", place.spec);
        assert_eq!(d.state, State::Approved);
        assert_eq!(third.refused(), vec![]);
    }
}

/// A steward reviewed a draft; its owner then redrafted and proposed it: the approval names
/// the revision reviewed and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_names_the_revision_reviewed() {
    let place = &places()[0];
    let (w, _) = racers(place, false).await;
    let seen = w
        .gov
        .draft(&w.services, private_masked("pri"))
        .await
        .unwrap()
        .revision;
    let changed = w
        .gov
        .draft(&w.services, open_unfiltered("pri"))
        .await
        .unwrap()
        .revision;
    assert_ne!(seen, changed);
    w.gov.propose(&w.services, "pri", None).await.unwrap();
    let err = w
        .gov
        .approve_revision(&w.steward_a, "pri", Some(&seen), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CatalogError::Conflict(m) if m.contains("review it again")),
        "{err}"
    );
    let d = w
        .gov
        .approve_revision(&w.steward_a, "pri", Some(&changed), None)
        .await
        .unwrap();
    assert_eq!(d.state, State::Approved);
}

/// Two owners draft the same new id at the same instant, on two processes: exactly one
/// draft lands; two stewards approve at once: exactly one approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_id_one_draft_one_approval() {
    for place in places() {
        for two in [false, true] {
            let (w, b) = racers(&place, two).await;
            for round in 0..5 {
                let id = format!("same-{two}-{round}");
                let view = {
                    let mut v = serde_json::to_value(open_spec(&id)).unwrap();
                    v["source"] = json!({"kind": "view", "name": "service_dossiers"});
                    v["columns"] = json!([{"name": "month"}, {"name": "received"}]);
                    serde_json::from_value::<DatasetSpec>(v).unwrap()
                };
                let (x, y) = tokio::join!(
                    w.gov.draft(&w.services, open_spec(&id)),
                    b.draft(&w.center, view),
                );
                assert!(
                    x.is_ok() != y.is_ok(),
                    "{} two={two}: exactly one draft of {id} lands: {x:?} {y:?}",
                    place.spec
                );
                let loser = if x.is_ok() { y } else { x };
                assert!(
                    matches!(&loser, Err(CatalogError::Conflict(m)) if m.contains("is taken")),
                    "{loser:?}"
                );
            }
            // Concurrent approvals by two stewards.
            let twice = format!("twice-{two}");
            w.gov.draft(&w.services, open_spec(&twice)).await.unwrap();
            w.gov.propose(&w.services, &twice, None).await.unwrap();
            b.refresh().await.unwrap();
            let (x, y) = tokio::join!(
                w.gov.approve(&w.steward_a, &twice, None),
                b.approve(&w.steward_b, &twice, None),
            );
            assert!(
                x.is_ok() != y.is_ok(),
                "{} two={two}: exactly one approval lands: {x:?} {y:?}",
                place.spec
            );
            let third = outsider(&w).await;
            assert_eq!(
                states(&third, &w.steward_a, &twice),
                ["draft", "proposed", "approved"]
            );
            assert_eq!(third.refused(), vec![]);
        }
    }
}

/// A token revoked on one process is refused on the other within [`FRESH_WITHIN`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_everywhere_within_the_bound() {
    for place in places() {
        let (w, b) = racers(&place, true).await;
        let issued = w
            .gov
            .issue(
                &w.admin,
                NewToken {
                    role: Role::Consumer,
                    sector: None,
                    name: "leaky".into(),
                },
            )
            .await
            .unwrap();
        tokio::time::sleep(FRESH_WITHIN).await;
        assert_eq!(
            b.authenticate(&issued.token).await.unwrap().role,
            Role::Consumer
        );
        w.gov.revoke(&w.admin, &issued.info.id, None).await.unwrap();
        let revoked = Instant::now();
        // Refused from the first check made FRESH_WITHIN after the revocation returned.
        let mut accepted_after = Duration::ZERO;
        loop {
            match b.authenticate(&issued.token).await {
                Ok(_) => accepted_after = revoked.elapsed(),
                Err(CatalogError::Revoked(_)) => break,
                Err(e) => panic!("{}: {e}", place.spec),
            }
            assert!(
                revoked.elapsed() < FRESH_WITHIN * 4,
                "{}: still accepted {:?} after the revocation",
                place.spec,
                revoked.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            accepted_after <= FRESH_WITHIN,
            "{}: accepted {accepted_after:?} after the revocation (bound {FRESH_WITHIN:?})",
            place.spec
        );
        tokio::time::sleep(FRESH_WITHIN).await;
        assert!(matches!(
            b.authenticate(&issued.token).await,
            Err(CatalogError::Revoked(_))
        ));
    }
}

/// What a faulty or older process wrote blind, replayed: every entry that is not valid in
/// the state before it is refused, reported, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_refuses_what_was_not_valid() {
    let place = &places()[0];
    let (w, _) = racers(place, false).await;
    approved(&w, "pub", true).await;
    w.gov.draft(&w.services, open_spec("draft")).await.unwrap();
    w.gov
        .revoke_dataset(&w.steward_a, "pub", None)
        .await
        .unwrap();
    let before = outsider(&w).await;
    let log = SystemLog::open(w.store.clone(), "system/governance")
        .await
        .unwrap();
    let (mut v, _) = log.read_all().await.unwrap();
    let at = w.store.now() + chrono::TimeDelta::seconds(1);
    let release =
        json!({"version": 2, "rows": 1, "created_at": at, "source_version": 1, "by": "rogue"});
    let blind: Vec<(&str, &str, Value)> = vec![
        // A release of a revoked dataset.
        (
            "dataset_released",
            &w.steward_a.id,
            json!({"id": "pub", "release": release}),
        ),
        // An approval of a draft that was never proposed.
        (
            "dataset_approved",
            &w.steward_b.id,
            json!({"id": "draft", "by_name": "rogue"}),
        ),
        // A draft over a taken id, by another owner.
        (
            "dataset_drafted",
            &w.center.id,
            json!({"spec": serde_json::to_value(open_spec("pub")).unwrap(), "owner": "center", "by_name": "rogue"}),
        ),
        // A proposal by way of an unknown dataset, and a grant on an open one.
        (
            "dataset_proposed",
            &w.services.id,
            json!({"id": "nope", "by_name": "rogue"}),
        ),
        (
            "grant_added",
            &w.steward_a.id,
            json!({"id": "draft", "grant": {"principal": w.granted.id, "principal_name": "x", "purpose": "p", "legal_basis": "l", "granted_by": "rogue", "granted_at": at}}),
        ),
        // A payload that does not parse.
        ("dataset_revoked", &w.steward_a.id, json!({"what": "?"})),
    ];
    for (i, (ty, actor, payload)) in blind.iter().enumerate() {
        let e = LogEntry::new(
            ty,
            actor,
            payload.clone(),
            at + chrono::TimeDelta::milliseconds(i as i64),
        );
        v = log
            .append_at(v, std::slice::from_ref(&e))
            .await
            .unwrap()
            .unwrap();
    }
    let after = outsider(&w).await;
    let refused = after.refused();
    assert_eq!(
        refused
            .iter()
            .map(|r| r.event_type.as_str())
            .collect::<Vec<_>>(),
        blind.iter().map(|b| b.0).collect::<Vec<_>>(),
        "{refused:#?}"
    );
    assert!(
        refused[0]
            .reason
            .contains("needs it approved or published, it is revoked"),
        "{refused:#?}"
    );
    for id in ["pub", "draft"] {
        let viewer = kho_catalog::Viewer::Principal(&w.steward_a);
        assert_eq!(
            after.dataset_for(viewer, id).unwrap(),
            before.dataset_for(viewer, id).unwrap(),
            "{id} is as it was before the blind entries"
        );
    }
    // The live process catches up the same way.
    w.gov.refresh().await.unwrap();
    assert_eq!(w.gov.refused().len(), blind.len());
}

/// One governance command for the property test.
#[derive(Debug, Clone)]
enum Cmd {
    Draft { id: u8, open: bool },
    Propose(u8),
    Approve { id: u8, steward_b: bool },
    Publish(u8),
    Release(u8),
    Revoke(u8),
    Refresh,
}

fn cmd() -> impl Strategy<Value = (bool, Cmd)> {
    let id = 0u8..2;
    let c = prop_oneof![
        (id.clone(), any::<bool>()).prop_map(|(id, open)| Cmd::Draft { id, open }),
        id.clone().prop_map(Cmd::Propose),
        (id.clone(), any::<bool>()).prop_map(|(id, steward_b)| Cmd::Approve { id, steward_b }),
        id.clone().prop_map(Cmd::Publish),
        id.clone().prop_map(Cmd::Release),
        id.prop_map(Cmd::Revoke),
        Just(Cmd::Refresh),
    ];
    (any::<bool>(), c)
}

async fn run(w: &World, g: &Governance, c: &Cmd) {
    let name = |id: &u8| format!("ds-{id}");
    let _ = match c {
        Cmd::Draft { id, open } => {
            let s = if *open {
                open_unfiltered(&name(id))
            } else {
                private_masked(&name(id))
            };
            g.draft(&w.services, s).await.map(|_| ())
        }
        Cmd::Propose(id) => g.propose(&w.services, &name(id), None).await.map(|_| ()),
        Cmd::Approve { id, steward_b } => {
            let by = if *steward_b {
                &w.steward_b
            } else {
                &w.steward_a
            };
            // The steward names the revision this process shows them.
            let seen = g
                .dataset_for(kho_catalog::Viewer::Principal(by), &name(id))
                .ok()
                .map(|d| d.revision);
            g.approve_revision(by, &name(id), seen.as_deref(), None)
                .await
                .map(|_| ())
        }
        Cmd::Publish(id) => g.publish(&w.steward_a, &name(id)).await.map(|_| ()),
        Cmd::Release(id) => g.new_release(&w.steward_b, &name(id)).await.map(|_| ()),
        Cmd::Revoke(id) => g
            .revoke_dataset(&w.steward_a, &name(id), None)
            .await
            .map(|_| ()),
        Cmd::Refresh => g.refresh().await.map(|_| ()),
    };
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random interleavings of governance commands, in pairs run at once on two processes
    /// that see the log at different moments: whatever happens, a fresh replay refuses
    /// nothing, every approval applies to the revision proposed just before it, and every
    /// release applies the revision approved.
    #[test]
    fn interleavings_never_publish_what_was_not_approved(
        pairs in proptest::collection::vec((cmd(), cmd()), 1..10)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let place = &places()[0];
            let (w, b) = racers(place, true).await;
            for ((a_first, x), (_, y)) in &pairs {
                let (gx, gy) = if *a_first { (&w.gov, &b) } else { (&b, &w.gov) };
                tokio::join!(run(&w, gx, x), run(&w, gy, y));
            }
            let third = outsider(&w).await;
            prop_assert_eq!(third.refused(), vec![]);
            for d in third.datasets_for(kho_catalog::Viewer::Principal(&w.steward_a)) {
                let mut proposed = None;
                let mut approved = None;
                for s in &d.history {
                    match s.state {
                        State::Draft => { proposed = None; approved = None; }
                        State::Proposed => proposed = Some(()),
                        State::Approved => {
                            prop_assert!(proposed.is_some(), "{} approved without a proposal: {:?}", d.spec.id, d.history);
                            approved = Some(());
                        }
                        State::Published => prop_assert!(approved.is_some(), "{} published unapproved", d.spec.id),
                        State::Revoked => {}
                    }
                }
                if matches!(d.state, State::Approved | State::Published) {
                    prop_assert_eq!(d.approved_revision.as_deref(), Some(d.revision.as_str()));
                    for r in &d.releases {
                        prop_assert_eq!(r.revision.as_deref(), Some(d.revision.as_str()));
                    }
                }
                let rows_released = d.releases.iter().map(|r| r.version).collect::<Vec<_>>();
                prop_assert_eq!(rows_released, (1..=d.releases.len() as u32).collect::<Vec<_>>());
            }
            Ok(())
        })?;
    }
}
