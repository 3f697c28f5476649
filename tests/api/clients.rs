//! Clients: exact money round trips, create/update/no-op, listing, and the audit record of
//! every change.

use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, TestApp, client_body};

const RW: &str = "clients:read clients:write audit:read";

async fn create_read_update_with_audit(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token_for("erp-sync", RW);
    let (base, head) = app.audit_head().await;

    let created = app
        .put_json("/v1/clients/C-001", &token, &client_body("EUR", "0.10"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["credit_limit"], "0.10");
    assert_eq!(created.body["available_credit"], "0.10");
    assert_eq!(created.body["exposure"]["total"], "0.00");
    assert_eq!(created.body["status"], "active");
    assert_eq!(created.body["is_prospect"], false);
    assert!(created.body["risk"]["score"].is_null());
    let first = created.body["audit"].clone();
    assert_eq!(first["sequence"], base + 1);

    let read = app.get("/v1/clients/C-001", &token).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["credit_limit"], "0.10");
    assert_eq!(read.body["sector"], "C10.71");
    assert!(read.body.get("audit").is_none());

    let record = app
        .get(&format!("/v1/audit/records/{}", base + 1), &token)
        .await;
    assert_eq!(record.status, 200, "{}", record.text);
    assert_eq!(record.body["kind"], "client.created");
    assert_eq!(record.body["actor"], "erp-sync");
    assert_eq!(record.body["subject"], "client:C-001");
    assert_eq!(record.body["prev_hash"], head);
    assert_eq!(record.body["hash"], first["hash"]);
    assert_eq!(record.body["payload"]["after"]["credit_limit"], "0.10");
    assert!(record.body["payload"]["before"].is_null());

    // A number is taken exactly, never through a float.
    let mut body = client_body("EUR", "0");
    body["credit_limit"] = serde_json::from_str("12500.10").unwrap();
    let updated = app.put_json("/v1/clients/C-001", &token, &body).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["credit_limit"], "12500.10");
    assert_eq!(updated.body["audit"]["sequence"], base + 2);
    let record = app
        .get(&format!("/v1/audit/records/{}", base + 2), &token)
        .await;
    assert_eq!(record.body["kind"], "client.updated");
    assert_eq!(record.body["prev_hash"], first["hash"]);
    assert_eq!(record.body["payload"]["before"]["credit_limit"], "0.10");
    assert_eq!(record.body["payload"]["after"]["credit_limit"], "12500.10");

    // The same body again changes nothing and records nothing.
    let again = app.put_json("/v1/clients/C-001", &token, &body).await;
    assert_eq!(again.status, 200);
    assert!(again.body["audit"].is_null());
    let verify = app.get("/v1/audit/verify", &token).await;
    assert_eq!(verify.body["ok"], true);
    assert_eq!(verify.body["records"], base + 2);
    assert_eq!(verify.body["head"]["sequence"], base + 2);

    // Blocking keeps the status until it is sent again.
    let mut blocked = body.clone();
    blocked["status"] = json!("blocked");
    assert_eq!(
        app.put_json("/v1/clients/C-001", &token, &blocked)
            .await
            .body["status"],
        "blocked"
    );
    assert_eq!(
        app.put_json("/v1/clients/C-001", &token, &body).await.body["status"],
        "blocked"
    );
}

async fn currency_minor_units(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(RW);
    let yen = app
        .put_json("/v1/clients/JP-1", &token, &client_body("JPY", "1500"))
        .await;
    assert_eq!(yen.status, 201, "{}", yen.text);
    assert_eq!(yen.body["credit_limit"], "1500");
    app.put_json("/v1/clients/JP-2", &token, &client_body("JPY", "1500.5"))
        .await
        .problem(422, "validation_failed");
    let dinar = app
        .put_json("/v1/clients/KW-1", &token, &client_body("KWD", "1.234"))
        .await;
    assert_eq!(dinar.body["credit_limit"], "1.234");
    let big = app
        .put_json(
            "/v1/clients/BIG",
            &token,
            &client_body("EUR", "999999999999999.99"),
        )
        .await;
    assert_eq!(big.body["credit_limit"], "999999999999999.99");
    assert_eq!(
        app.get("/v1/clients/BIG", &token).await.body["credit_limit"],
        "999999999999999.99"
    );
}

async fn currency_cannot_change(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(RW);
    app.put_json("/v1/clients/C-1", &token, &client_body("EUR", "100"))
        .await;
    let answer = app
        .put_json("/v1/clients/C-1", &token, &client_body("USD", "100"))
        .await;
    answer.problem(422, "validation_failed");
    assert_eq!(answer.fields(), ["currency"]);
    assert_eq!(
        app.get("/v1/clients/C-1", &token).await.body["currency"],
        "EUR"
    );
}

async fn unknown_client_is_404(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.get("/v1/clients/NOPE", &app.token(RW))
        .await
        .problem(404, "not_found");
}

async fn list_filters_and_paginates(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(RW);
    for i in 0..5 {
        let mut body = client_body("EUR", "1000");
        if i % 2 == 0 {
            body["status"] = json!("blocked");
        }
        let answer = app
            .put_json(&format!("/v1/clients/C-{i}"), &token, &body)
            .await;
        assert_eq!(answer.status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/clients?limit=2".to_owned();
    loop {
        let page = app.get(&path, &token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|c| c["client_id"].as_str().unwrap().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/clients?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["C-4", "C-3", "C-2", "C-1", "C-0"],
        "newest first, each once"
    );

    let blocked = app.get("/v1/clients?status=blocked", &token).await;
    let ids: Vec<_> = blocked.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["C-4", "C-2", "C-0"]);
    let none = app.get("/v1/clients?band=E", &token).await;
    assert_eq!(none.body["items"], json!([]), "no client is scored yet");
}

async fn concurrent_changes_keep_one_chain(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.pool_size = 8).await else {
        return;
    };
    let token = app.token(RW);
    let (base, _) = app.audit_head().await;
    let puts = (0..16).map(|i| {
        let app = &app;
        let token = &token;
        async move {
            app.put_json(
                &format!("/v1/clients/P-{i}"),
                token,
                &client_body("EUR", "10"),
            )
            .await
            .status
        }
    });
    let statuses = futures_util::future::join_all(puts).await;
    assert!(statuses.iter().all(|s| s.as_u16() == 201), "{statuses:?}");
    let verify = app.get("/v1/audit/verify", &token).await;
    assert_eq!(verify.body["ok"], true, "{}", verify.text);
    assert_eq!(verify.body["records"], base + 16);
    assert_eq!(verify.body["head"]["sequence"], base + 16);
}

async fn racing_creates_of_one_client(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.pool_size = 8).await else {
        return;
    };
    let token = app.token(RW);
    let (base, _) = app.audit_head().await;
    let puts = (0..8).map(|i| {
        let (app, token) = (&app, &token);
        async move {
            let limit = format!("{}.00", 100 + i);
            app.put_json("/v1/clients/SAME", token, &client_body("EUR", &limit))
                .await
                .status
                .as_u16()
        }
    });
    let mut statuses = futures_util::future::join_all(puts).await;
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 200, 201],
        "one create, the rest updates"
    );
    let verify = app.get("/v1/audit/verify", &token).await;
    assert_eq!(verify.body["ok"], true);
    assert_eq!(verify.body["records"], base + 8);
    // Each update's `before` is the state the previous one left: the changes were serialised.
    let mut previous_after = serde_json::Value::Null;
    for seq in base + 1..=base + 8 {
        let record = app.get(&format!("/v1/audit/records/{seq}"), &token).await;
        assert_eq!(
            record.body["payload"]["before"], previous_after,
            "record {seq}"
        );
        previous_after = record.body["payload"]["after"].clone();
    }
}

on_both_backends!(
    racing_creates_of_one_client,
    create_read_update_with_audit,
    currency_minor_units,
    currency_cannot_change,
    unknown_client_is_404,
    list_filters_and_paginates,
    concurrent_changes_keep_one_chain,
);
