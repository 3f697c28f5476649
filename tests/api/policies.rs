//! Policies through the API: the shipped set, versions that must compile and pass their cases,
//! four-eyes activation, immutability, evaluation without side effects, and hostile scripts
//! that end in a `POLICY_ERROR` review while the server goes on answering.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Answer, Backend, TestApp, client_body};

const ALL: &str =
    "clients:read clients:write policies:read policies:write policies:activate audit:read";
const STAGES: [&str; 8] = [
    "scoring",
    "hard_stops",
    "insured_limit",
    "exposure",
    "deposit",
    "terms",
    "review",
    "on_event",
];

/// `POST /v1/policies/evaluate` of [`request`] on 30-day terms.
async fn evaluate(app: &TestApp, token: &str, client: &str, amount: &str) -> Answer {
    app.post_json("/v1/policies/evaluate", token, &request(client, amount, 30))
        .await
}

fn request(client: &str, amount: &str, terms: i64) -> Value {
    json!({"request": {
        "request_id": "r-1", "client_id": client, "amount": amount, "currency": "EUR",
        "requested_terms_days": terms, "channel": "erp"
    }})
}

async fn deposit_source(app: &TestApp) -> (String, Value) {
    let deposit = app.get("/v1/policies/deposit", &app.token(ALL)).await;
    let v1 = &deposit.body["versions"][0];
    (
        v1["source"].as_str().unwrap().to_owned(),
        v1["tests"].clone(),
    )
}

async fn shipped_set_is_loaded_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    let list = app.get("/v1/policies", &token).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let items = list.body["items"].as_array().unwrap();
    let mut names: Vec<_> = items.iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let mut expected = STAGES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for p in items {
        assert_eq!(p["active_version"], 1, "{p}");
        let v1 = &p["versions"][0];
        assert_eq!(v1["author"], "system");
        assert_eq!(v1["active"], true);
        assert!(
            v1["tests"].as_array().unwrap().len() >= 5,
            "{} has ≥ 5 cases",
            p["name"]
        );
        assert_eq!(p["activations"][0]["activated_by"], "system");
    }
    // Loading again (a restart) adds nothing.
    let store = app.store().clone();
    let loaded = store
        .run(|conn| {
            encours::service::policies::defaults::seed(
                conn,
                &encours::policy::PolicyEngine::default(),
            )
        })
        .await
        .unwrap();
    assert!(loaded.is_empty());
    let verify = app.get("/v1/audit/verify", &token).await;
    assert_eq!(verify.body["ok"], true);
    assert_eq!(
        verify.body["records"], 16,
        "one version and one activation record per stage"
    );
    let ready = app.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
}

async fn compile_errors_name_line_and_column(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    let body = json!({"source": "let x = 1;\nlet y = ;\n", "description": "broken"});
    let answer = app
        .call(
            "POST",
            "/v1/policies/deposit/versions",
            Some(&token),
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await;
    let problem = answer.problem(422, "policy_compile_error");
    assert_eq!(problem["line"], 2, "{}", answer.text);
    assert!(problem["column"].as_u64().is_some());
    for hostile in [
        "import \"x\" as y;",
        "eval(\"1\")",
        "undefined_variable + 1",
    ] {
        let body = json!({"source": hostile, "description": "hostile"});
        let answer = app
            .call(
                "POST",
                "/v1/policies/deposit/versions",
                Some(&token),
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await;
        answer.problem(422, "policy_compile_error");
    }
    let detail = app.get("/v1/policies/deposit", &token).await;
    assert_eq!(
        detail.body["versions"].as_array().unwrap().len(),
        1,
        "nothing stored"
    );
}

async fn failing_cases_block_a_version(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    let (source, _) = deposit_source(&app).await;
    // Lower the band-D deposit without updating the cases: the carried-over cases fail.
    let changed = source.replace("const DEPOSIT_BAND_D = 30;", "const DEPOSIT_BAND_D = 25;");
    assert_ne!(changed, source);
    let body = json!({"source": changed, "description": "lower deposit"});
    let answer = app
        .post_json("/v1/policies/deposit/versions", &token, &body)
        .await;
    let problem = answer.problem(422, "policy_test_failed");
    let cases = problem["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    assert!(
        cases
            .iter()
            .all(|c| c["policy"] == "deposit" && !c["failures"].as_array().unwrap().is_empty())
    );
    let detail = app.get("/v1/policies/deposit", &token).await;
    assert_eq!(
        detail.body["versions"].as_array().unwrap().len(),
        1,
        "nothing stored"
    );
}

async fn four_eyes_and_immutable_versions(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let author = app.token_for("alice", ALL);
    let approver = app.token_for("bob", ALL);
    let (source, tests) = deposit_source(&app).await;
    let reworded = format!("// Reviewed 2026-11.\n{source}");
    let body = json!({"source": reworded, "description": "comment only", "tests": tests});
    let created = app
        .post_json("/v1/policies/deposit/versions", &author, &body)
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["version"], 2);
    assert_eq!(created.body["active"], false);
    assert_eq!(created.body["author"], "alice");

    let own = app
        .post_json(
            "/v1/policies/deposit/versions/2/activate",
            &author,
            &json!({}),
        )
        .await;
    own.problem(403, "four_eyes_required");
    let limited = app.token_for("carol", "policies:read policies:write");
    app.post_json(
        "/v1/policies/deposit/versions/2/activate",
        &limited,
        &json!({}),
    )
    .await
    .problem(403, "forbidden");
    app.post_json(
        "/v1/policies/deposit/versions/9/activate",
        &approver,
        &json!({}),
    )
    .await
    .problem(404, "not_found");
    let ok = app
        .post_json(
            "/v1/policies/deposit/versions/2/activate",
            &approver,
            &json!({}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["activated_by"], "bob");
    let again = app
        .post_json(
            "/v1/policies/deposit/versions/2/activate",
            &approver,
            &json!({}),
        )
        .await;
    again.problem(409, "conflict");

    let detail = app.get("/v1/policies/deposit", &author).await;
    assert_eq!(detail.body["active_version"], 2);
    assert_eq!(detail.body["activations"][0]["activated_by"], "bob");
    let seq = ok.body["audit"]["sequence"].as_i64().unwrap();
    let record = app.get(&format!("/v1/audit/records/{seq}"), &author).await;
    assert_eq!(record.body["kind"], "policy.activated");
    assert_eq!(record.body["payload"]["previous_version"], 1);

    // Versions cannot be edited or deleted, even with SQL.
    assert!(
        app.sql("UPDATE policy_versions SET source = 'decline(\"X\", \"y\");'")
            .await
            .is_err()
    );
    assert!(app.sql("DELETE FROM policy_versions").await.is_err());
}

async fn evaluate_decides_and_records_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    app.put_json("/v1/clients/C-1", &token, &client_body("EUR", "50000.00"))
        .await;
    let before = app.get("/v1/audit/verify", &token).await.body["records"].clone();
    let answer = evaluate(&app, &token, "C-1", "1000.00").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let outcome = answer.body["outcome"].as_str().unwrap();
    assert!(["approved", "conditional", "review", "declined"].contains(&outcome));
    let policies = answer.body["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 7, "the seven credit_request stages");
    assert!(
        policies
            .iter()
            .all(|p| p["version"] == 1 && p["sha256"].as_str().unwrap().len() == 64)
    );
    for reason in answer.body["reasons"].as_array().unwrap() {
        assert!(
            reason["policy"].is_string() && reason["policy_version"].is_number(),
            "{reason}"
        );
    }
    assert_eq!(answer.body["trace"].as_array().unwrap().len(), 7);
    assert_eq!(
        app.get("/v1/audit/verify", &token).await.body["records"],
        before
    );
    assert_eq!(
        app.get("/v1/clients/C-1", &token).await.body["exposure"]["reserved"],
        "0.00"
    );

    // Unknown client, prospect, currency mismatch, bad input.
    evaluate(&app, &token, "NOPE", "10.00")
        .await
        .problem(404, "unknown_client");
    let mut prospect = request("NEW-1", "800.00", 30);
    prospect["request"]["prospect"] = json!({"name": "Nouvelle SARL", "country": "FR"});
    let answer = app
        .post_json("/v1/policies/evaluate", &token, &prospect)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.body["deposit"]["percent"].as_str().is_some(),
        "a prospect pays a deposit: {}",
        answer.text
    );
    app.get("/v1/clients/NEW-1", &token)
        .await
        .problem(404, "not_found");
    let mut usd = request("C-1", "10.00", 30);
    usd["request"]["currency"] = json!("USD");
    app.post_json("/v1/policies/evaluate", &token, &usd)
        .await
        .problem(422, "currency_mismatch");
    let mut bad = request("C-1", "-3", 400);
    bad["request"]["channel"] = json!("fax");
    app.post_json("/v1/policies/evaluate", &token, &bad)
        .await
        .problem(422, "validation_failed");
}

/// Puts a version live behind the API's back (no tests, no four-eyes): how a hostile script
/// could end up running, to prove that the engine contains it.
async fn force_activate(app: &TestApp, name: &str, version: i32, source: &str) {
    let sha = encours::policy::sha256_hex(source);
    let source = source.replace('\'', "''");
    app.sql(&format!(
        "INSERT INTO policy_versions (policy, version, source, sha256, description, author, tests, created_at) \
         VALUES ('{name}', {version}, '{source}', '{sha}', 'hostile', 'mallory', '[]', CURRENT_TIMESTAMP)"
    ))
    .await
    .unwrap();
    app.sql(&format!(
        "UPDATE policies SET active_version = {version} WHERE name = '{name}'"
    ))
    .await
    .unwrap();
    app.sql("UPDATE policy_generation SET generation = generation + 1")
        .await
        .unwrap();
}

async fn hostile_policies_fail_safe(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    app.put_json("/v1/clients/C-1", &token, &client_body("EUR", "50000.00"))
        .await;
    let hostile = [
        "loop { }",
        "fn f(x) { f(x + 1) } f(0);",
        "let s = \"x\"; loop { s += s; }",
        "let a = []; loop { a.push(1); }",
        "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
        "client.nonexistent_field",
    ];
    for (i, source) in hostile.into_iter().enumerate() {
        force_activate(&app, "terms", 100 + i as i32, source).await;
        let answer = evaluate(&app, &token, "C-1", "1000.00").await;
        assert_eq!(answer.status, 200, "{source}: {}", answer.text);
        assert_eq!(answer.body["outcome"], "review", "{source}");
        let reasons = answer.body["reasons"].as_array().unwrap();
        let error = reasons
            .iter()
            .find(|r| r["code"] == "POLICY_ERROR")
            .expect("POLICY_ERROR reason");
        assert_eq!(error["policy"], "terms", "{source}");
        let trace = answer.body["trace"].as_array().unwrap();
        assert!(
            trace
                .iter()
                .any(|s| s["policy"] == "terms" && !s["error"].is_null()),
            "{source}"
        );
        app.sql("UPDATE policies SET active_version = 1 WHERE name = 'terms'")
            .await
            .unwrap();
        app.sql("UPDATE policy_generation SET generation = generation + 1")
            .await
            .unwrap();
        assert_eq!(app.call("GET", "/healthz", None, None).await.status, 200);
    }
    // Back on version 1, the same request is decided normally.
    let answer = evaluate(&app, &token, "C-1", "1000.00").await;
    assert!(
        answer.body["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["code"] != "POLICY_ERROR")
    );
}

async fn activation_reaches_another_process(backend: Backend) {
    if backend != Backend::Postgres {
        return;
    }
    let Some(a) = TestApp::spawn(backend).await else {
        return;
    };
    let Some(b) = a.another_process(|_| {}).await else {
        return;
    };
    let token = a.token_for("alice", ALL);
    a.put_json("/v1/clients/C-1", &token, &client_body("EUR", "50000.00"))
        .await;
    let before = evaluate(&b, &b.token(ALL), "C-1", "10.00").await;
    assert_eq!(before.status, 200, "{}", before.text);
    let (source, tests) = deposit_source(&a).await;
    let body = json!({"source": format!("// v2\n{source}"), "description": "v2", "tests": tests});
    let created = a
        .post_json("/v1/policies/deposit/versions", &token, &body)
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let bob = a.token_for("bob", ALL);
    let activated = a
        .post_json("/v1/policies/deposit/versions/2/activate", &bob, &json!({}))
        .await;
    assert_eq!(activated.status, 200, "{}", activated.text);
    // Process B had the old set cached; its very next evaluation uses version 2.
    let after = evaluate(&b, &b.token(ALL), "C-1", "10.00").await;
    let deposit = after.body["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "deposit")
        .cloned()
        .unwrap();
    assert_eq!(deposit["version"], 2, "{}", after.text);
}

on_both_backends!(
    activation_reaches_another_process,
    shipped_set_is_loaded_once,
    compile_errors_name_line_and_column,
    failing_cases_block_a_version,
    four_eyes_and_immutable_versions,
    evaluate_decides_and_records_nothing,
    hostile_policies_fail_safe,
);
