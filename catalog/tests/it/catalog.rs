//! The catalog on an in-memory store: the workflow's refusals, and a property test that no
//! release ever lets out what its policy removes and no caller reads what it may not.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use futures::TryStreamExt;
use kho_catalog::dataset::{Importance, Sharing, Viewer};
use kho_catalog::{
    CatalogError, DatasetSpec, Governance, NewGrant, NewToken, Principal, Role, release,
};
use kho_ingest::{Format, decode::decode};
use kho_store::{Store, StreamWriter, Submission, WriterConfig};
use proptest::prelude::*;
use serde_json::{Value, json};

pub(crate) const ADMIN: &str = "catalog-test-admin-token";

/// A fixture event: (agency, channel, level).
fn fixture() -> Vec<(String, String, &'static str, i64)> {
    (0..60)
        .map(|i| {
            let channel = ["counter", "online", "postal"][i % 3];
            let level = if channel == "online" {
                3 + (i % 2) as i64
            } else {
                2 + (i % 3) as i64
            };
            (
                format!("citizen-{i:03}-secret"),
                ["A", "B", "C"][(i / 3) % 3].to_owned(),
                channel,
                level,
            )
        })
        .collect()
}

pub(crate) struct World {
    pub(crate) store: Arc<Store>,
    pub(crate) gov: Arc<Governance>,
    pub(crate) admin: Principal,
    pub(crate) services: Principal,
    pub(crate) finance: Principal,
    pub(crate) center: Principal,
    pub(crate) steward_a: Principal,
    pub(crate) steward_b: Principal,
    pub(crate) granted: Principal,
    pub(crate) other_consumer: Principal,
}

async fn principal(
    gov: &Governance,
    admin: &Principal,
    role: Role,
    sector: Option<&str>,
    name: &str,
) -> Principal {
    let issued = gov
        .issue(
            admin,
            NewToken {
                role,
                sector: sector.map(str::to_owned),
                name: name.into(),
            },
        )
        .await
        .unwrap();
    gov.authenticate(&issued.token).await.unwrap()
}

async fn world() -> World {
    world_on("memory://").await
}

/// The fixture on the store at `spec` (memory, a local directory, or S3).
pub(crate) async fn world_on(spec: &str) -> World {
    let store = Store::open_with_pack(spec).await.unwrap();
    let def = store.stream("service.dossiers").unwrap();
    let body: String = fixture()
        .iter()
        .enumerate()
        .map(|(i, (entity, agency, channel, level))| {
            format!(
                "{}\n",
                json!({"event_type": "dossier_received", "entity_id": entity, "occurred_at": format!("2021-03-{:02}T08:00:00+07:00", 1 + i % 28),
                       "procedure_code": format!("1.00{}", i % 7), "agency_code": agency, "level": level, "channel": channel,
                       "due_at": "2021-04-30T17:00:00+07:00"})
            )
        })
        .collect();
    let batch = decode(
        &def,
        Format::Ndjson,
        body.as_bytes(),
        "services:test",
        1000,
        (i64::MIN, i64::MAX),
    )
    .unwrap();
    let mut w = StreamWriter::open(&store, "service.dossiers", WriterConfig::default())
        .await
        .unwrap();
    w.commit(&[Submission {
        batch,
        idempotency: None,
    }])
    .await
    .unwrap();
    let gov = Governance::open(store.clone(), ADMIN).await.unwrap();
    let admin = gov.authenticate(ADMIN).await.unwrap();
    World {
        services: principal(&gov, &admin, Role::Sector, Some("services"), "portal").await,
        finance: principal(&gov, &admin, Role::Sector, Some("finance"), "treasury").await,
        center: principal(&gov, &admin, Role::Center, None, "ioc").await,
        steward_a: principal(&gov, &admin, Role::Steward, None, "steward-a").await,
        steward_b: principal(&gov, &admin, Role::Steward, None, "steward-b").await,
        granted: principal(&gov, &admin, Role::Consumer, None, "business-with-grant").await,
        other_consumer: principal(&gov, &admin, Role::Consumer, None, "business-without").await,
        admin,
        store,
        gov,
    }
}

pub(crate) fn spec(
    id: &str,
    sharing: &str,
    importance: &str,
    columns: Value,
    filter: Option<&str>,
) -> DatasetSpec {
    serde_json::from_value(json!({
        "id": id,
        "source": {"kind": "stream", "name": "service.dossiers"},
        "columns": columns,
        "row_filter": filter,
        "sharing": sharing,
        "importance": importance,
        "metadata": {
            "title": {"vi": "Hồ sơ", "en": "Dossiers"}, "description": {"vi": "Hồ sơ", "en": "Dossiers"},
            "theme": "GOVE", "keywords": ["hồ sơ"], "license": "cc-by-4.0", "accrual_periodicity": "monthly",
            "spatial": "Tây Ninh", "contact_point": {"name": "IOC", "email": "ioc@example.vn"}
        }
    }))
    .unwrap()
}

fn err_text(r: Result<impl std::fmt::Debug, CatalogError>) -> (String, String) {
    let e = r.unwrap_err();
    let kind = match &e {
        CatalogError::Policy(_) => "policy",
        CatalogError::Forbidden(_) => "forbidden",
        CatalogError::Conflict(_) => "conflict",
        CatalogError::Invalid(_) => "invalid",
        CatalogError::NoSuchDataset(_) => "not found",
        _ => "other",
    };
    (kind.to_owned(), e.to_string())
}

#[tokio::test]
async fn each_workflow_violation_has_its_own_refusal() {
    let w = world().await;
    let g = &w.gov;
    let cols = json!([{"name": "agency_code"}, {"name": "entity_id", "tag": "basic", "mask": "pseudonym"}]);
    let cases: Vec<(DatasetSpec, &str, &str)> = vec![
        (
            spec("core-open", "open", "core", cols.clone(), None),
            "policy",
            "core data can never be open",
        ),
        (
            spec("important-open", "open", "important", cols.clone(), None),
            "policy",
            "important data can never be open",
        ),
        (
            spec(
                "sensitive-out",
                "shared",
                "other",
                json!([{"name": "entity_id", "tag": "sensitive", "mask": "pseudonym"}]),
                None,
            ),
            "policy",
            "holds sensitive personal data: it never leaves private datasets",
        ),
        (
            spec(
                "basic-unmasked",
                "open",
                "other",
                json!([{"name": "entity_id", "tag": "basic"}]),
                None,
            ),
            "policy",
            "holds basic personal data: outside private it must be masked",
        ),
        (
            spec(
                "bad-filter",
                "open",
                "other",
                cols.clone(),
                Some("agency_code = = 'A'"),
            ),
            "policy",
            "is not a valid predicate",
        ),
        (
            spec(
                "unknown-column-filter",
                "open",
                "other",
                cols.clone(),
                Some("district = 'A'"),
            ),
            "policy",
            "is not a valid predicate over the source's columns",
        ),
        (
            spec(
                "unknown-column",
                "open",
                "other",
                json!([{"name": "district"}]),
                None,
            ),
            "invalid",
            "column district is not in stream service.dossiers",
        ),
    ];
    for (s, kind, fragment) in cases {
        let id = s.id.clone();
        let (k, text) = err_text(g.draft(&w.services, s).await);
        assert_eq!(k, kind, "{id}: {text}");
        assert!(text.contains(fragment), "{id}: {text}");
    }
    // Another sector's stream.
    let (k, text) = err_text(
        g.draft(
            &w.finance,
            spec("not-mine", "private", "core", cols.clone(), None),
        )
        .await,
    );
    assert_eq!(k, "forbidden");
    assert!(text.contains("belongs to sector services"), "{text}");
    // Steps out of order, and by the wrong people.
    g.draft(
        &w.services,
        spec(
            "ok-dataset",
            "open",
            "other",
            cols.clone(),
            Some("level >= 3"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        err_text(g.approve(&w.steward_a, "ok-dataset", None).await).0,
        "conflict"
    );
    assert_eq!(
        err_text(g.publish(&w.steward_a, "ok-dataset").await).0,
        "conflict"
    );
    assert_eq!(
        err_text(g.propose(&w.finance, "ok-dataset", None).await).0,
        "not found",
        "finance cannot see services' draft"
    );
    g.propose(&w.services, "ok-dataset", Some("công khai".into()))
        .await
        .unwrap();
    let (k, text) = err_text(g.approve(&w.services, "ok-dataset", None).await);
    assert_eq!(
        (k.as_str(), text.as_str()),
        ("forbidden", "approving a dataset needs a steward token")
    );
    // Nobody approves their own proposal: a steward drafting for the center.
    let view = serde_json::from_value::<DatasetSpec>({
        let mut v = serde_json::to_value(spec(
            "center-kpis",
            "open",
            "other",
            json!([{"name": "month"}, {"name": "received"}]),
            None,
        ))
        .unwrap();
        v["source"] = json!({"kind": "view", "name": "service_dossiers"});
        v
    })
    .unwrap();
    let view_spec = view.clone();
    g.draft(&w.steward_a, view).await.unwrap();
    g.propose(&w.steward_a, "center-kpis", None).await.unwrap();
    let (k, text) = err_text(g.approve(&w.steward_a, "center-kpis", None).await);
    assert_eq!(
        (k.as_str(), text.as_str()),
        (
            "forbidden",
            "four eyes: nobody approves their own proposal; another steward must approve"
        )
    );
    g.approve(&w.steward_b, "center-kpis", None).await.unwrap();
    // Nor a dataset they drafted when someone else proposed it.
    let mut other = view_spec.clone();
    other.id = "center-kpis-2".into();
    g.draft(&w.steward_a, other).await.unwrap();
    g.propose(&w.steward_b, "center-kpis-2", None)
        .await
        .unwrap();
    let (k, text) = err_text(g.approve(&w.steward_a, "center-kpis-2", None).await);
    assert_eq!(
        (k.as_str(), text.as_str()),
        (
            "forbidden",
            "four eyes: nobody approves a dataset they drafted; another steward must approve"
        )
    );
    let (k, _) = err_text(g.approve(&w.steward_b, "center-kpis-2", None).await);
    assert_eq!(k, "forbidden", "the proposer may not approve either");

    g.approve(&w.steward_a, "ok-dataset", Some("đạt yêu cầu".into()))
        .await
        .unwrap();
    let d = g.publish(&w.steward_a, "ok-dataset").await.unwrap();
    assert_eq!(d.releases.len(), 1);
    assert!(d.readable_by(Viewer::Anonymous));
    assert_eq!(
        d.history
            .iter()
            .map(|s| s.state.as_str())
            .collect::<Vec<_>>(),
        ["draft", "proposed", "approved", "published"]
    );
    assert_eq!(d.history[1].why.as_deref(), Some("công khai"));
    // Grants are for shared datasets only.
    let grant = NewGrant {
        principal: w.granted.id.clone(),
        purpose: "p".into(),
        legal_basis: "b".into(),
    };
    assert_eq!(
        err_text(g.grant(&w.steward_a, "ok-dataset", grant).await).0,
        "policy"
    );
    // Revoking stops reading at once, in this process and in a replay.
    g.revoke_dataset(&w.services, "ok-dataset", Some("sai sót".into()))
        .await
        .unwrap();
    assert!(
        !g.dataset_for(Viewer::Principal(&w.services), "ok-dataset")
            .unwrap()
            .readable_by(Viewer::Anonymous)
    );
    assert_eq!(
        err_text(g.dataset_for(Viewer::Anonymous, "ok-dataset")).0,
        "not found"
    );
    let replayed = Governance::open(w.store.clone(), ADMIN).await.unwrap();
    assert_eq!(
        replayed
            .dataset_for(Viewer::Principal(&w.steward_b), "ok-dataset")
            .unwrap()
            .state
            .as_str(),
        "revoked"
    );
    let _ = &w.admin;
}

/// A random dataset over the fixture: sharing, columns with tags and masks, a filter.
#[derive(Debug, Clone)]
struct Case {
    sharing: Sharing,
    importance: Importance,
    /// (column, basic?, mask: 0 none, 1 drop, 2 pseudonym)
    columns: Vec<(&'static str, bool, u8)>,
    filter: usize,
}

const FILTERS: [Option<&str>; 5] = [
    None,
    Some("agency_code = 'A'"),
    Some("level >= 3"),
    Some("channel <> 'online'"),
    Some("level > 99"),
];

fn keeps(filter: usize, agency: &str, channel: &str, level: i64) -> bool {
    match filter {
        1 => agency == "A",
        2 => level >= 3,
        3 => channel != "online",
        4 => level > 99,
        _ => true,
    }
}

fn case() -> impl Strategy<Value = Case> {
    let sharing = prop_oneof![
        Just(Sharing::Open),
        Just(Sharing::Shared),
        Just(Sharing::Private)
    ];
    (
        sharing,
        0..3usize,
        proptest::collection::vec((any::<bool>(), 0u8..3), 5),
        0..FILTERS.len(),
    )
        .prop_map(|(sharing, imp, picks, filter)| {
            let importance = if sharing == Sharing::Open {
                Importance::Other
            } else {
                [Importance::Core, Importance::Important, Importance::Other][imp]
            };
            let names: [(&str, bool); 5] = [
                ("entity_id", true),
                ("procedure_code", true),
                ("agency_code", false),
                ("channel", false),
                ("level", false),
            ];
            let mut columns = Vec::new();
            for ((name, basic), (include, mask)) in names.iter().zip(picks) {
                if !include && *name != "agency_code" {
                    continue;
                }
                // Masks the policy allows: basic columns outside private must be masked.
                let mask = if *name == "agency_code" {
                    0 // something is always released
                } else if *basic && sharing != Sharing::Private && mask == 0 {
                    2
                } else if !*basic {
                    mask.min(1)
                } else {
                    mask
                };
                columns.push((*name, *basic, mask));
            }
            Case {
                sharing,
                importance,
                columns,
                filter,
            }
        })
}

fn case_spec(id: &str, c: &Case) -> DatasetSpec {
    let columns: Vec<Value> = c
        .columns
        .iter()
        .map(|(name, basic, mask)| {
            let mut v = json!({"name": name, "tag": if *basic { "basic" } else { "none" }});
            match mask {
                1 => v["mask"] = json!("drop"),
                2 => v["mask"] = json!("pseudonym"),
                _ => {}
            }
            v
        })
        .collect();
    let sharing = match c.sharing {
        Sharing::Open => "open",
        Sharing::Shared => "shared",
        Sharing::Private => "private",
    };
    let importance = match c.importance {
        Importance::Core => "core",
        Importance::Important => "important",
        Importance::Other => "other",
    };
    spec(id, sharing, importance, json!(columns), FILTERS[c.filter])
}

fn cells(batches: &[RecordBatch]) -> HashSet<String> {
    let mut out = HashSet::new();
    for b in batches {
        for c in b.columns() {
            let text = arrow::compute::cast(c, &DataType::Utf8).unwrap();
            let a = text.as_string::<i32>();
            for i in 0..a.len() {
                if !a.is_null(i) {
                    out.insert(a.value(i).to_owned());
                }
            }
        }
    }
    out
}

async fn check_case(c: Case) {
    let w = world().await;
    let g = &w.gov;
    let id = "d-case";
    g.draft(&w.services, case_spec(id, &c))
        .await
        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    g.propose(&w.services, id, None).await.unwrap();
    g.approve(&w.steward_b, id, None).await.unwrap();
    let d = g.publish(&w.steward_a, id).await.unwrap();
    if c.sharing == Sharing::Shared {
        g.grant(
            &w.steward_a,
            id,
            NewGrant {
                principal: w.granted.id.clone(),
                purpose: "study".into(),
                legal_basis: "NĐ 47/2020".into(),
            },
        )
        .await
        .unwrap();
    }
    let d = g
        .dataset_for(Viewer::Principal(&w.steward_a), id)
        .unwrap_or(d);
    let batches: Vec<RecordBatch> = release::read_release(&w.store, &d, 1, &[], 0, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let schema = batches.first().map(|b| b.schema());
    // Rows: exactly those the filter keeps.
    let expected = fixture()
        .iter()
        .filter(|(_, a, ch, l)| keeps(c.filter, a, ch, *l))
        .count();
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        expected,
        "{c:?}"
    );
    assert_eq!(
        d.latest_release().map(|r| r.rows),
        Some(expected as u64),
        "{c:?}: the rows recorded with the release"
    );
    let all = cells(&batches);
    for (name, basic, mask) in &c.columns {
        let present = schema
            .as_ref()
            .is_some_and(|s| s.field_with_name(name).is_ok());
        match mask {
            1 => assert!(
                !present || expected == 0,
                "{c:?}: dropped {name} is in the release"
            ),
            2 => {
                // No raw value of a pseudonymized column anywhere in the release (each
                // column's raw values are unlike every other column's), and the column
                // holds pseudonyms only.
                let raw: Vec<String> = match *name {
                    "entity_id" => fixture().into_iter().map(|f| f.0).collect(),
                    "procedure_code" => (0..60).map(|i| format!("1.00{}", i % 7)).collect(),
                    other => unreachable!("no basic column {other} in the fixture"),
                };
                for v in &raw {
                    assert!(!all.contains(v), "{c:?}: raw {name} value {v} leaked");
                }
                for b in &batches {
                    let col = arrow::compute::cast(
                        b.column_by_name(name)
                            .expect("a pseudonymized column is released"),
                        &DataType::Utf8,
                    )
                    .unwrap();
                    for v in col.as_string::<i32>().iter().flatten() {
                        assert!(
                            v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()),
                            "{c:?}: {name} holds {v:?}, not a pseudonym"
                        );
                    }
                }
            }
            _ => {
                if *basic {
                    assert_eq!(
                        c.sharing,
                        Sharing::Private,
                        "{c:?}: unmasked basic column outside private"
                    );
                }
            }
        }
    }
    if c.sharing != Sharing::Private {
        assert!(
            !all.iter().any(|v| v.contains("secret")),
            "{c:?}: a personal value left a non-private dataset"
        );
    }
    if let Some(agency) = FILTERS[c.filter].filter(|f| f.starts_with("agency")) {
        let _ = agency;
        assert!(
            !all.contains("B") && !all.contains("C"),
            "{c:?}: a row outside the filter"
        );
    }
    // Who may read: computed here from the rules, not from the code under test.
    let expect = |who: &str| {
        matches!(
            (c.sharing, who),
            (Sharing::Open, _) | (_, "services" | "center") | (Sharing::Shared, "granted")
        )
    };
    let callers: [(&str, Viewer<'_>); 8] = [
        ("anonymous", Viewer::Anonymous),
        ("services", Viewer::Principal(&w.services)),
        ("finance", Viewer::Principal(&w.finance)),
        ("center", Viewer::Principal(&w.center)),
        ("steward", Viewer::Principal(&w.steward_a)),
        ("granted", Viewer::Principal(&w.granted)),
        ("other", Viewer::Principal(&w.other_consumer)),
        ("admin", Viewer::Principal(&w.admin)),
    ];
    for (who, viewer) in callers {
        let seen = g.dataset_for(viewer, id);
        let reads = seen.as_ref().is_ok_and(|d| d.readable_by(viewer));
        assert_eq!(reads, expect(who), "{c:?}: {who}");
        // Those who may not read see nothing at all, unless they govern it.
        if !expect(who) && !matches!(who, "steward") {
            assert!(
                matches!(seen, Err(CatalogError::NoSuchDataset(_))),
                "{c:?}: {who} sees the dataset"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn no_release_lets_out_what_its_policy_removes(c in case()) {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(check_case(c));
    }
}

/// A filter that keeps nothing still makes a (empty) release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_may_be_empty() {
    check_case(Case {
        sharing: Sharing::Open,
        importance: Importance::Other,
        columns: vec![("entity_id", true, 2), ("agency_code", false, 0)],
        filter: 4,
    })
    .await;
}

/// A case the property test once found: a private dataset releasing one basic column raw
/// beside another pseudonymized one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_pseudonymized_basic_columns_side_by_side() {
    check_case(Case {
        sharing: Sharing::Private,
        importance: Importance::Core,
        columns: vec![
            ("entity_id", true, 0),
            ("procedure_code", true, 2),
            ("agency_code", false, 0),
            ("level", false, 1),
        ],
        filter: 3,
    })
    .await;
}
