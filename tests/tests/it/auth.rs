//! Tokens through the real binary: issuing, roles, listing without secrets, revocation.

use kho_tests::{ADMIN, Server, client};
use serde_json::{Value, json};

#[tokio::test]
async fn tokens_roles_and_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path().to_str().unwrap(), &[]);
    let http = client();

    // Anyone: health and metrics. Nobody unauthenticated: the streams.
    assert_eq!(
        http.get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = http.get(server.url("/v1/streams")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");

    let center = server.token("center", None, "ioc").await;
    let listed: Value = http
        .get(server.url("/v1/streams"))
        .bearer_auth(&center)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "finance.budget",
            "investment.projects",
            "reference.codes",
            "reference.targets",
            "service.dossiers",
            "service.feedback",
            "service.procedures"
        ]
    );

    // Only the admin issues; bad requests are explained.
    let r = http
        .post(server.url("/v1/admin/tokens"))
        .bearer_auth(&center)
        .json(&json!({"role": "center", "name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "issuing tokens needs an admin token; this is a center token"
    );
    for (req, fragment) in [
        (
            json!({"role": "mayor", "name": "x"}),
            "unknown variant `mayor`",
        ),
        (
            json!({"role": "sector", "name": "x"}),
            "a sector token needs a sector",
        ),
        (
            json!({"role": "sector", "sector": "police", "name": "x"}),
            "unknown sector police",
        ),
        (
            json!({"role": "center", "name": ""}),
            "name must be 1 to 100 characters",
        ),
        (
            json!({"role": "center", "name": "x", "extra": 1}),
            "unknown field `extra`",
        ),
    ] {
        let r = http
            .post(server.url("/v1/admin/tokens"))
            .bearer_auth(ADMIN)
            .json(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{req}");
        let body: Value = r.json().await.unwrap();
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(fragment), "{req}: {msg}");
    }
    let r = http
        .post(server.url("/v1/admin/tokens"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // The list shows no secret and no hash.
    let list = http
        .get(server.url("/v1/admin/tokens"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("\"ioc\""), "{list}");
    assert!(
        !list.contains(center.split('_').nth(2).unwrap()),
        "a secret leaked"
    );
    assert!(!list.contains("sha256"), "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();

    let r = http
        .delete(server.url("/v1/admin/tokens/nope"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .delete(server.url(&format!("/v1/admin/tokens/{id}")))
        .bearer_auth(&center)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .delete(server.url(&format!("/v1/admin/tokens/{id}")))
        .bearer_auth(ADMIN)
        .json(&json!({"reason": "laptop lost"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let revoked: Value = r.json().await.unwrap();
    assert!(revoked["revoked_at"].is_string());
    // Revocation takes effect at once.
    let r = http
        .get(server.url("/v1/streams"))
        .bearer_auth(&center)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(server.url("/no/such/route")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

/// Two `kho serve` on one store agree on governance: a token revoked through one is refused
/// by the other within the stated bound (half a second, plus a check of the log), and the
/// same new dataset id drafted through both at once lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_agree_on_tokens_and_drafts() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    let a = Server::start(store, &[]);
    let b = Server::start(store, &[]);
    let http = client();
    let streams = |s: &Server, t: &str| http.get(s.url("/v1/streams")).bearer_auth(t).send();

    // Issued on a, honoured on b (an unknown token makes b look at the log again).
    let center = a.token("center", None, "ioc").await;
    assert_eq!(streams(&b, &center).await.unwrap().status(), 200);

    // Revoked on b while a keeps being asked: refused by a within the bound.
    let id = center.split('_').nth(1).unwrap().to_owned();
    let r = http
        .delete(b.url(&format!("/v1/admin/tokens/{id}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let revoked = Instant::now();
    let mut accepted_after = Duration::ZERO;
    loop {
        match streams(&a, &center).await.unwrap().status().as_u16() {
            200 => accepted_after = revoked.elapsed(),
            401 => break,
            other => panic!("{other}"),
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(3),
            "a still accepts a token revoked on b {:?} ago",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        accepted_after < Duration::from_secs(1),
        "a accepted the revoked token {accepted_after:?} after its revocation"
    );

    // One id, drafted through both processes at once by two owners: exactly one 201.
    let services = a.token("sector", Some("services"), "portal").await;
    let ioc = a.token("center", None, "ioc-2").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    for round in 0..4 {
        let id = format!("same-id-{round}");
        let by_services =
            kho_tests::stream_dataset(&id, "service.dossiers", &["agency_code"], "open");
        let mut by_center = by_services.clone();
        by_center["source"] = json!({"kind": "view", "name": "service_dossiers"});
        by_center["columns"] = json!([{"name": "month"}, {"name": "received"}]);
        let (x, y) = tokio::join!(
            http.post(a.url("/v1/catalog/datasets"))
                .bearer_auth(&services)
                .json(&by_services)
                .send(),
            http.post(b.url("/v1/catalog/datasets"))
                .bearer_auth(&ioc)
                .json(&by_center)
                .send(),
        );
        let mut statuses = [x.unwrap().status().as_u16(), y.unwrap().status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "round {round}");
    }

    // One proposal, approved by two stewards through both processes at once: one approval
    // lands, the other is told the dataset is no longer proposed.
    let steward_a = a.token("steward", None, "steward-a").await;
    let steward_b = a.token("steward", None, "steward-b").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    for round in 0..4 {
        let id = format!("approved-once-{round}");
        let spec = kho_tests::stream_dataset(&id, "service.dossiers", &["agency_code"], "open");
        let r = http
            .post(a.url("/v1/catalog/datasets"))
            .bearer_auth(&services)
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = http
            .post(b.url(&format!("/v1/catalog/datasets/{id}/propose")))
            .bearer_auth(&services)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let approve = |s: &Server, t: &str| {
            http.post(s.url(&format!("/v1/catalog/datasets/{id}/approve")))
                .bearer_auth(t)
                .send()
        };
        let (x, y) = tokio::join!(approve(&a, &steward_a), approve(&b, &steward_b));
        let mut statuses = [x.unwrap().status().as_u16(), y.unwrap().status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");
        let d: Value = http
            .get(b.url(&format!("/v1/catalog/datasets/{id}")))
            .bearer_auth(&steward_a)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let steps: Vec<&str> = d["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            ["draft", "proposed", "approved"],
            "round {round}: {d}"
        );
    }
}
