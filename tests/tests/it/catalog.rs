//! The catalog through the real binary: faces and formats never let out what a policy
//! removes, real clients (ckanapi, rdflib) read the faces, the workflow refuses what it
//! must, small cells stay hidden, every pull is audited and tampering shows, pulls are
//! rate-limited.

use std::path::Path;
use std::process::Command;

use kho_tests::{Server, client, python};
use serde_json::{Value, json};

const SECRET: &str = "BI-MAT";
const FILTERED_OUT: &str = "CHI-BUU-CHINH";
const DROPPED: &str = "TTHC-AN";

struct World {
    server: Server,
    store: String,
    services: String,
    steward_a: String,
    steward_b: String,
    consumer: String,
    consumer_id: String,
    center: String,
    _dir: tempfile::TempDir,
}

async fn world(extra: &[&str]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let server = Server::start(&store, extra);
    let consumer = server.token("consumer", None, "doanh-nghiep").await;
    World {
        services: server.token("sector", Some("services"), "portal").await,
        steward_a: server.token("steward", None, "steward-a").await,
        steward_b: server.token("steward", None, "steward-b").await,
        center: server.token("center", None, "ioc").await,
        consumer_id: consumer.split('_').nth(1).unwrap().to_owned(),
        consumer,
        server,
        store,
        _dir: dir,
    }
}

impl World {
    /// Dossiers whose ids carry a secret marker; postal ones come from an agency that
    /// handles nothing else, so a filter on the channel must hide it.
    async fn dossiers(&self, n: usize) {
        let rows: String = (0..n)
            .map(|i| {
                let channel = ["counter", "online", "postal"][i % 3];
                let agency = if channel == "postal" { FILTERED_OUT } else { ["STP", "SXD"][i % 2] };
                let level = if channel == "online" { 4 } else { 2 };
                format!(
                    "{}\n",
                    json!({"event_type": "dossier_received", "entity_id": format!("cong-dan-{i}-{SECRET}"), "occurred_at": "2021-03-10T08:00:00+07:00",
                           "procedure_code": format!("{DROPPED}-{i}"), "agency_code": agency, "level": level, "channel": channel,
                           "due_at": "2021-03-20T17:00:00+07:00"})
                )
            })
            .collect();
        let (st, body, _) = self
            .server
            .append(
                Some(&self.services),
                "service.dossiers",
                "application/x-ndjson",
                rows,
                None,
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }

    async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let http = client();
        let url = self.server.url(path);
        let mut req = if method == "POST" {
            http.post(url)
        } else if method == "DELETE" {
            http.delete(url)
        } else {
            http.get(url)
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Draft, propose, approve, publish; each step must succeed.
    async fn publish(&self, owner: &str, spec: Value) {
        let id = spec["id"].as_str().unwrap().to_owned();
        let (st, body) = self
            .call(Some(owner), "POST", "/v1/catalog/datasets", Some(spec))
            .await;
        assert_eq!(st, 201, "{body}");
        for (token, step) in [
            (owner, "propose"),
            (self.steward_b.as_str(), "approve"),
            (self.steward_a.as_str(), "publish"),
        ] {
            let (st, body) = self
                .call(
                    Some(token),
                    "POST",
                    &format!("/v1/catalog/datasets/{id}/{step}"),
                    Some(json!({"why": "test"})),
                )
                .await;
            assert_eq!(st, 200, "{step}: {body}");
        }
    }
}

fn metadata() -> Value {
    json!({
        "title": {"vi": "Hồ sơ thủ tục hành chính", "en": "Administrative dossiers"},
        "description": {"vi": "Hồ sơ tiếp nhận", "en": "Dossiers received"},
        "theme": "GOVE", "keywords": ["hồ sơ", "dịch vụ công"], "license": "cc-by-4.0", "accrual_periodicity": "monthly",
        "temporal": {"start": "2021-01-01", "end": "2021-12-31"},
        "spatial": "Tỉnh Tây Ninh", "contact_point": {"name": "IOC", "email": "ioc@tayninh.gov.vn"}
    })
}

fn dossier_spec(
    id: &str,
    sharing: &str,
    importance: &str,
    columns: Value,
    filter: Option<&str>,
) -> Value {
    json!({"id": id, "source": {"kind": "stream", "name": "service.dossiers"}, "columns": columns, "row_filter": filter,
           "sharing": sharing, "importance": importance, "metadata": metadata()})
}

/// Every value of a Parquet or Arrow answer, as text.
fn decoded(bytes: &[u8], parquet: bool) -> String {
    let batches: Vec<arrow::array::RecordBatch> = if parquet {
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::copy_from_slice(bytes),
        )
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
    } else {
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut out = String::new();
    for b in &batches {
        out.push_str(
            &arrow::util::pretty::pretty_format_batches(std::slice::from_ref(b))
                .unwrap()
                .to_string(),
        );
    }
    out
}

#[tokio::test]
async fn no_face_and_no_format_lets_out_what_the_policy_removes() {
    let w = world(&[]).await;
    w.dossiers(30).await;
    let open_columns = json!([
        {"name": "entity_id", "tag": "basic", "mask": "pseudonym"},
        {"name": "procedure_code", "tag": "basic", "mask": "drop"},
        {"name": "agency_code"}, {"name": "channel"}, {"name": "level"}, {"name": "occurred_at"}
    ]);
    w.publish(
        &w.services,
        dossier_spec(
            "ho-so-mo",
            "open",
            "other",
            open_columns,
            Some("channel <> 'postal'"),
        ),
    )
    .await;
    w.publish(
        &w.services,
        dossier_spec(
            "ho-so-rieng",
            "private",
            "core",
            json!([{"name": "entity_id", "tag": "basic"}, {"name": "agency_code"}]),
            None,
        ),
    )
    .await;

    let http = client();
    let mut bodies: Vec<(String, String)> = Vec::new();
    for path in [
        "/v1/catalog/datasets",
        "/v1/catalog/datasets/ho-so-mo",
        "/v1/catalog/datasets/ho-so-mo/data?format=csv",
        "/v1/catalog/datasets/ho-so-mo/data?format=json",
        "/catalog.jsonld",
        "/api/3/action/package_list",
        "/api/3/action/package_show?id=ho-so-mo",
        "/api/3/action/package_search?q=h%E1%BB%93",
        "/api/3/action/datastore_search?resource_id=ho-so-mo&limit=100",
        "/api/action/datastore_search?resource_id=ho-so-mo-csv&filters=%7B%22channel%22%3A%22online%22%7D",
    ] {
        let r = http.get(w.server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        bodies.push((path.to_owned(), r.text().await.unwrap()));
    }
    let r = http
        .post(w.server.url("/api/3/action/datastore_search"))
        .json(&json!({"resource_id": "ho-so-mo", "limit": 1000}))
        .send()
        .await
        .unwrap();
    bodies.push(("POST datastore_search".into(), r.text().await.unwrap()));
    for (format, parquet) in [("parquet", true), ("arrow", false)] {
        let r = http
            .get(w.server.url(&format!(
                "/v1/catalog/datasets/ho-so-mo/data?format={format}"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        bodies.push((format.into(), decoded(&r.bytes().await.unwrap(), parquet)));
    }
    for (what, body) in &bodies {
        assert!(!body.contains(SECRET), "{what} leaks a masked value");
        assert!(!body.contains(DROPPED), "{what} leaks a dropped column");
        assert!(
            !body.contains(FILTERED_OUT),
            "{what} leaks a row outside the filter"
        );
        assert!(
            !body.contains("ho-so-rieng"),
            "{what} shows the private dataset to anyone"
        );
    }
    // The open release has the filtered rows, pseudonyms in place of ids.
    let rows: Vec<Value> = serde_json::from_str(&bodies[3].1).unwrap();
    assert_eq!(rows.len(), 20);
    assert!(
        rows.iter()
            .all(|r| r["entity_id"].as_str().unwrap().len() == 32
                && r.get("procedure_code").is_none())
    );
    // The private dataset: 404 to anyone else, the raw ids to its owner and the center.
    for token in [None, Some(w.consumer.as_str()), Some(w.steward_a.as_str())] {
        let (st, _) = w
            .call(
                token,
                "GET",
                "/v1/catalog/datasets/ho-so-rieng/data?format=json",
                None,
            )
            .await;
        assert!(
            st == 404 || (st == 403 && token == Some(w.steward_a.as_str())),
            "{token:?}: {st}"
        );
    }
    let (st, body) = w
        .call(
            None,
            "GET",
            "/api/3/action/package_show?id=ho-so-rieng",
            None,
        )
        .await;
    assert_eq!((st, body["success"].as_bool()), (404, Some(false)));
    for token in [&w.services, &w.center] {
        let r = http
            .get(
                w.server
                    .url("/v1/catalog/datasets/ho-so-rieng/data?format=csv"),
            )
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.text().await.unwrap().contains(SECRET),
            "the owner reads its private data"
        );
    }

    // Real clients nobody here wrote.
    let Some(py) = python() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/catalog_clients.py");
    let out = Command::new(py)
        .arg(script)
        .arg(&w.server.base)
        .arg("ho-so-mo-csv")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["packages"], json!(["ho-so-mo"]));
    assert_eq!(found["titles"]["ho-so-mo"], "Hồ sơ thủ tục hành chính");
    assert_eq!(found["licenses_of_packages"]["ho-so-mo"], "cc-by-4.0");
    assert_eq!(
        found["resources"]["ho-so-mo"],
        json!(["CSV", "JSON", "Parquet"])
    );
    assert_eq!(
        found["organizations"],
        json!(["trung-tam-phuc-vu-hanh-chinh-cong"])
    );
    assert_eq!(
        (
            found["datastore_total"].as_u64(),
            found["datastore_online_total"].as_u64()
        ),
        (Some(20), Some(10))
    );
    assert_eq!(found["datastore_records"].as_array().unwrap().len(), 5);
    assert_eq!(
        found["datastore_fields"],
        json!([
            "entity_id",
            "agency_code",
            "channel",
            "level",
            "occurred_at"
        ])
    );
    assert_eq!(found["missing"], "NotFound");
    assert!(
        found["license_list"]
            .as_array()
            .unwrap()
            .contains(&json!("cc-by-4.0"))
    );
    let dcat = &found["dcat"];
    assert_eq!(
        dcat.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["ho-so-mo"],
        "every open dataset, and only those"
    );
    assert_eq!(
        dcat["ho-so-mo"]["titles"],
        json!(["en:Administrative dossiers", "vi:Hồ sơ thủ tục hành chính"])
    );
    assert_eq!(
        dcat["ho-so-mo"]["license"],
        "https://creativecommons.org/licenses/by/4.0/"
    );
    assert_eq!(
        dcat["ho-so-mo"]["distributions"].as_array().unwrap().len(),
        3
    );
    assert!(!found.to_string().contains(SECRET));
}

#[tokio::test]
async fn the_workflow_refuses_what_it_must_and_revocation_is_immediate() {
    let w = world(&[]).await;
    w.dossiers(9).await;
    let masked = json!([{"name": "entity_id", "tag": "basic", "mask": "pseudonym"}, {"name": "agency_code"}]);
    for (spec, status, code, fragment) in [
        (
            dossier_spec("core-mo", "open", "core", masked.clone(), None),
            422,
            "policy_violation",
            "core data can never be open",
        ),
        (
            dossier_spec(
                "nhay-cam",
                "shared",
                "other",
                json!([{"name": "entity_id", "tag": "sensitive", "mask": "pseudonym"}]),
                None,
            ),
            422,
            "policy_violation",
            "never leaves private",
        ),
        (
            dossier_spec(
                "khong-che",
                "open",
                "other",
                json!([{"name": "entity_id", "tag": "basic"}]),
                None,
            ),
            422,
            "policy_violation",
            "must be masked",
        ),
        (
            dossier_spec(
                "loc-sai",
                "open",
                "other",
                masked.clone(),
                Some("agency_code ="),
            ),
            422,
            "policy_violation",
            "is not a valid predicate",
        ),
        (
            dossier_spec(
                "loc-cot-la",
                "open",
                "other",
                masked.clone(),
                Some("district = 'X'"),
            ),
            422,
            "policy_violation",
            "is not a valid predicate",
        ),
    ] {
        let (st, body) = w
            .call(
                Some(&w.services),
                "POST",
                "/v1/catalog/datasets",
                Some(spec),
            )
            .await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(fragment),
            "{body}"
        );
    }
    let finance = w.server.token("sector", Some("finance"), "treasury").await;
    let (st, body) = w
        .call(
            Some(&finance),
            "POST",
            "/v1/catalog/datasets",
            Some(dossier_spec(
                "cua-nganh-khac",
                "private",
                "core",
                masked.clone(),
                None,
            )),
        )
        .await;
    assert_eq!(st, 403, "{body}");
    let (st, body) = w
        .call(
            Some(&w.consumer),
            "POST",
            "/v1/catalog/datasets",
            Some(dossier_spec(
                "cua-dn",
                "private",
                "core",
                masked.clone(),
                None,
            )),
        )
        .await;
    assert_eq!(st, 403, "{body}");

    let (st, _) = w
        .call(
            Some(&w.services),
            "POST",
            "/v1/catalog/datasets",
            Some(dossier_spec(
                "ho-so-mo",
                "open",
                "other",
                masked.clone(),
                None,
            )),
        )
        .await;
    assert_eq!(st, 201);
    // Out of order.
    let (st, body) = w
        .call(
            Some(&w.steward_a),
            "POST",
            "/v1/catalog/datasets/ho-so-mo/approve",
            None,
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    // A draft is nobody's business but its owner's and the stewards'.
    let (st, _) = w
        .call(None, "GET", "/v1/catalog/datasets/ho-so-mo", None)
        .await;
    assert_eq!(st, 404);
    let (st, _) = w
        .call(Some(&finance), "GET", "/v1/catalog/datasets/ho-so-mo", None)
        .await;
    assert_eq!(st, 404);
    let (st, _) = w
        .call(
            Some(&w.steward_a),
            "GET",
            "/v1/catalog/datasets/ho-so-mo",
            None,
        )
        .await;
    assert_eq!(st, 200);
    // A steward does not approve its own proposal.
    let view_spec = json!({"id": "kpi-trung-tam", "source": {"kind": "view", "name": "service_dossiers"}, "columns": [{"name": "month"}, {"name": "received"}],
                           "sharing": "open", "importance": "other", "metadata": metadata()});
    assert_eq!(
        w.call(
            Some(&w.steward_a),
            "POST",
            "/v1/catalog/datasets",
            Some(view_spec)
        )
        .await
        .0,
        201
    );
    assert_eq!(
        w.call(
            Some(&w.steward_a),
            "POST",
            "/v1/catalog/datasets/kpi-trung-tam/propose",
            None
        )
        .await
        .0,
        200
    );
    let (st, body) = w
        .call(
            Some(&w.steward_a),
            "POST",
            "/v1/catalog/datasets/kpi-trung-tam/approve",
            None,
        )
        .await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(
        body["error"]["message"],
        "four eyes: nobody approves their own proposal; another steward must approve"
    );

    // Published, pulled, revoked: the next pull is refused at once.
    for (token, step) in [
        (&w.services, "propose"),
        (&w.steward_b, "approve"),
        (&w.steward_a, "publish"),
    ] {
        assert_eq!(
            w.call(
                Some(token),
                "POST",
                &format!("/v1/catalog/datasets/ho-so-mo/{step}"),
                None
            )
            .await
            .0,
            200,
            "{step}"
        );
    }
    assert_eq!(
        w.call(None, "GET", "/v1/catalog/datasets/ho-so-mo/data", None)
            .await
            .0,
        200
    );
    let (st, d) = w
        .call(
            Some(&w.steward_a),
            "POST",
            "/v1/catalog/datasets/ho-so-mo/revoke",
            Some(json!({"why": "phát hiện sai sót"})),
        )
        .await;
    assert_eq!((st, d["state"].as_str()), (200, Some("revoked")));
    assert_eq!(
        w.call(None, "GET", "/v1/catalog/datasets/ho-so-mo/data", None)
            .await
            .0,
        404
    );
    assert_eq!(
        w.call(
            None,
            "GET",
            "/api/3/action/datastore_search?resource_id=ho-so-mo",
            None
        )
        .await
        .0,
        404
    );
    let (st, body) = w
        .call(
            Some(&w.services),
            "GET",
            "/v1/catalog/datasets/ho-so-mo/data",
            None,
        )
        .await;
    assert_eq!(st, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );

    // Shared: only with a grant, which records purpose and legal basis.
    w.publish(
        &w.services,
        dossier_spec("ho-so-chia-se", "shared", "important", masked.clone(), None),
    )
    .await;
    assert_eq!(
        w.call(
            Some(&w.consumer),
            "GET",
            "/v1/catalog/datasets/ho-so-chia-se/data",
            None
        )
        .await
        .0,
        404
    );
    let (st, body) = w.call(Some(&w.steward_a), "POST", "/v1/catalog/datasets/ho-so-chia-se/grants",
        Some(json!({"principal": w.consumer_id, "purpose": "nghiên cứu", "legal_basis": "Nghị định 47/2020/NĐ-CP"}))).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["grants"][0]["legal_basis"], "Nghị định 47/2020/NĐ-CP");
    assert_eq!(
        w.call(
            Some(&w.consumer),
            "GET",
            "/v1/catalog/datasets/ho-so-chia-se/data",
            None
        )
        .await
        .0,
        200
    );
    let (st, body) = w
        .call(
            Some(&w.consumer),
            "GET",
            "/v1/catalog/datasets/ho-so-chia-se",
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert!(
        body.get("grants").is_none(),
        "a grantee does not see the grant list"
    );
    assert_eq!(
        w.call(
            Some(&w.steward_a),
            "DELETE",
            &format!(
                "/v1/catalog/datasets/ho-so-chia-se/grants/{}",
                w.consumer_id
            ),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        w.call(
            Some(&w.consumer),
            "GET",
            "/v1/catalog/datasets/ho-so-chia-se/data",
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn small_cells_are_withheld_beyond_recomputation() {
    let w = world(&["--view-debounce-ms", "600000", "--view-poll-secs", "3600"]).await;
    // March: STP 50, SXD 40, UBND 3 (total 93); April: 30, 20, 25.
    let mut rows = String::new();
    for (month, counts) in [("03", [50, 40, 3]), ("04", [30, 20, 25])] {
        for (agency, n) in ["STP", "SXD", "UBND-TN"].iter().zip(counts) {
            for i in 0..n {
                rows.push_str(&format!("{}\n", json!({"event_type": "dossier_received", "entity_id": format!("{month}-{agency}-{i}"),
                    "occurred_at": format!("2021-{month}-10T08:00:00+07:00"), "procedure_code": "1.001", "agency_code": agency,
                    "level": 2, "channel": "counter", "due_at": "2021-06-30T17:00:00+07:00"})));
            }
        }
    }
    let (st, _, _) = w
        .server
        .append(
            Some(&w.services),
            "service.dossiers",
            "application/x-ndjson",
            rows,
            None,
        )
        .await;
    assert_eq!(st, 201);
    let spec = json!({"id": "ho-so-theo-thang", "source": {"kind": "view", "name": "service_dossiers"},
        "columns": [{"name": "month"}, {"name": "agency_code"}, {"name": "received"}, {"name": "pending"}],
        "suppression": {"count_column": "received", "k": 10, "group_by": ["month"], "also": ["pending"]},
        "sharing": "open", "importance": "other", "metadata": metadata()});
    w.publish(&w.services, spec).await;
    let (st, rows) = w
        .call(
            None,
            "GET",
            "/v1/catalog/datasets/ho-so-theo-thang/data?format=json",
            None,
        )
        .await;
    assert_eq!(st, 200);
    let got: Vec<(String, String, Option<i64>, Option<i64>)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["month"].as_str().unwrap().into(),
                r["agency_code"].as_str().unwrap().into(),
                r["received"].as_i64(),
                r["pending"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2021-03".into(), "STP".into(), Some(50), Some(50)),
            // 3 is withheld; 40 with it, or the March total (93, public) would give the 3 back.
            ("2021-03".into(), "SXD".into(), None, None),
            ("2021-03".into(), "UBND-TN".into(), None, None),
            ("2021-04".into(), "STP".into(), Some(30), Some(30)),
            ("2021-04".into(), "SXD".into(), Some(20), Some(20)),
            ("2021-04".into(), "UBND-TN".into(), Some(25), Some(25)),
        ]
    );
    // From the published rows and the month total, the withheld cells are only known as a sum.
    let march_total = 93;
    let known: i64 = got
        .iter()
        .filter(|r| r.0 == "2021-03")
        .filter_map(|r| r.2)
        .sum();
    let withheld = got
        .iter()
        .filter(|r| r.0 == "2021-03" && r.2.is_none())
        .count();
    assert_eq!(
        (march_total - known, withheld),
        (43, 2),
        "two unknowns, one equation"
    );
}

#[tokio::test]
async fn every_pull_is_audited_and_tampering_shows() {
    let w = world(&[]).await;
    w.dossiers(6).await;
    w.publish(
        &w.services,
        dossier_spec(
            "ho-so-mo",
            "open",
            "other",
            json!([{"name": "agency_code"}, {"name": "level"}]),
            None,
        ),
    )
    .await;
    let http = client();
    let r = http
        .get(
            w.server
                .url("/v1/catalog/datasets/ho-so-mo/data?format=csv&limit=2"),
        )
        .header("x-purpose", "báo cáo tháng")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-kho-audit-seq"], "1");
    assert_eq!(
        http.get(
            w.server
                .url("/v1/catalog/datasets/ho-so-mo/data?format=parquet")
        )
        .bearer_auth(&w.consumer)
        .send()
        .await
        .unwrap()
        .status(),
        200
    );
    assert_eq!(
        http.get(
            w.server
                .url("/api/3/action/datastore_search?resource_id=ho-so-mo&limit=3")
        )
        .send()
        .await
        .unwrap()
        .status(),
        200
    );

    assert_eq!(
        w.call(Some(&w.services), "GET", "/v1/catalog/audit", None)
            .await
            .0,
        403
    );
    let (st, log) = w
        .call(Some(&w.steward_a), "GET", "/v1/catalog/audit", None)
        .await;
    assert_eq!(st, 200);
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(
        (
            entries[0]["format"].as_str(),
            entries[0]["rows"].as_u64(),
            entries[0]["purpose"].as_str()
        ),
        (Some("csv"), Some(2), Some("báo cáo tháng"))
    );
    assert!(entries[0]["principal"].is_null());
    let ip_hash = entries[0]["ip_hash"].as_str().unwrap();
    assert_eq!(ip_hash.len(), 32);
    assert!(
        !log.to_string().contains("127.0.0.1"),
        "the raw address is never stored"
    );
    assert_eq!(
        entries[1]["principal"].as_str(),
        Some(w.consumer_id.as_str())
    );
    assert_eq!(
        (entries[2]["format"].as_str(), entries[2]["rows"].as_u64()),
        (Some("ckan-datastore"), Some(3))
    );
    assert_eq!(entries[1]["prev_hash"], entries[0]["hash"]);

    let (_, v) = w
        .call(Some(&w.steward_a), "GET", "/v1/catalog/audit/verify", None)
        .await;
    assert_eq!(
        v,
        json!({"entries": 3, "valid": true, "head": entries[2]["hash"]})
    );

    let Some(py) = python() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tamper_audit.py");
    let out = Command::new(py)
        .arg(script)
        .arg(&w.store)
        .arg("2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, v) = w
        .call(Some(&w.steward_a), "GET", "/v1/catalog/audit/verify", None)
        .await;
    assert_eq!(
        (v["valid"].as_bool(), v["first_broken"].as_u64()),
        (Some(false), Some(2)),
        "{v}"
    );
    assert_eq!(v["reason"], "its content does not match its hash");
}

#[tokio::test]
async fn anonymous_pulls_are_rate_limited() {
    let w = world(&[
        "--pulls-per-min-anonymous",
        "3",
        "--pulls-per-min-token",
        "10",
    ])
    .await;
    w.dossiers(3).await;
    w.publish(
        &w.services,
        dossier_spec(
            "ho-so-mo",
            "open",
            "other",
            json!([{"name": "agency_code"}]),
            None,
        ),
    )
    .await;
    let http = client();
    let pull = |token: Option<&str>| {
        let mut r = http.get(
            w.server
                .url("/v1/catalog/datasets/ho-so-mo/data?format=csv"),
        );
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for _ in 0..3 {
        assert_eq!(pull(None).await.unwrap().status(), 200);
    }
    let r = pull(None).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "20");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a consumer token has a higher quota")
    );
    for _ in 0..10 {
        assert_eq!(
            pull(Some(&w.consumer)).await.unwrap().status(),
            200,
            "a token has its own, larger quota"
        );
    }
    assert_eq!(pull(Some(&w.consumer)).await.unwrap().status(), 429);
    // Refused pulls are not audited as pulls.
    let (_, log) = w
        .call(Some(&w.steward_a), "GET", "/v1/catalog/audit", None)
        .await;
    assert_eq!(log["total"], 13);
}
