//! Regression cases captured from real decisions: a captured prospect decision refuses a
//! version that changes it (25 % deposit instead of 20 %), lets a comment change through, and
//! accepts the change once the submission says it supersedes the case. None of it decides,
//! reserves or moves a limit.

use std::process::Command;

use serde_json::{Value, json};

use crate::audit::replay::active_deposit;
use crate::decisions::{ALL, Facts, decide, given, order};
use crate::on_both_backends;
use crate::support::{Answer, Backend, TestApp};

const WRITER: &str = "policies:read policies:write audit:read";

async fn submit(app: &TestApp, source: &str, tests: &[Value], supersedes: Option<Value>) -> Answer {
    let mut body = json!({"source": source, "description": "deposit change", "tests": tests});
    if let Some(ids) = supersedes {
        body["supersedes"] = ids;
    }
    let token = app.token_for("alice", WRITER);
    app.post_json("/v1/policies/deposit/versions", &token, &body)
        .await
}

/// What must not move: decisions, reservations, limits.
async fn book_state(app: &TestApp) -> Value {
    let token = app.token(ALL);
    let decisions = app.get("/v1/credit-decisions?limit=500", &token).await;
    let good = app.get("/v1/clients/GOOD-1", &token).await;
    json!({
        "decisions": decisions.body["items"].as_array().map(Vec::len),
        "limit": good.body["credit_limit"],
        "exposure": good.body["exposure"],
    })
}

async fn a_captured_decision_gates_versions_of_its_policies(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let writer = app.token_for("alice", WRITER);
    given(&app, "GOOD-1", "400000.00", Facts::good()).await;
    let good = decide(&app, &order("r-1", "GOOD-1", "1200.00", 30)).await;
    assert_eq!(good.body["outcome"], "approved", "{}", good.text);
    let mut body = order("r-2", "NEW-1", "2000.00", 30);
    body["prospect"] = json!({"name": "Prospect SAS", "country": "FR"});
    let prospect = decide(&app, &body).await;
    assert_eq!(
        prospect.body["deposit"]["percent"], "20",
        "{}",
        prospect.text
    );
    let seq = prospect.body["audit"]["sequence"].as_i64().unwrap();
    let good_seq = good.body["audit"]["sequence"].as_i64().unwrap();

    // A 25 % prospect deposit drafted before the capture: its activation will be checked.
    let (source, tests) = active_deposit(&app).await;
    let raised = source.replace("DEPOSIT_PROSPECT = 20", "DEPOSIT_PROSPECT = 25");
    assert_ne!(raised, source);
    let early = submit(&app, &raised, &tests, None).await;
    assert_eq!(early.status, 201, "{}", early.text);
    let early = early.body["version"].as_i64().unwrap();

    let path = format!("/v1/audit/records/{seq}/capture");
    let captured = app.post_json(&path, &writer, &json!({})).await;
    assert_eq!(captured.status, 201, "{}", captured.text);
    let case = &captured.body;
    let id = format!("captured-{seq}");
    assert_eq!(case["id"], id.as_str());
    assert_eq!(case["decision_id"], prospect.body["decision_id"]);
    assert_eq!(case["captured_by"], "alice");
    assert_eq!(case["policies"], prospect.body["policies"]);
    assert_eq!(case["expected"]["terms"]["outcome"], "conditional");
    assert_eq!(case["expected"]["terms"]["deposit_percent"], "20");
    let deposit_stage = case["expected"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["policy"] == "deposit")
        .unwrap();
    assert_eq!(deposit_stage["effects"][0]["kind"], "require_deposit");
    let again = app.post_json(&path, &writer, &json!({})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body, captured.body, "capturing twice is idempotent");
    let record = app
        .get(
            &format!("/v1/audit/records/{}", case["audit_sequence"]),
            &writer,
        )
        .await;
    assert_eq!(record.body["kind"], "policy.case_captured");
    assert_eq!(record.body["payload"]["case"], id.as_str());
    let good_path = format!("/v1/audit/records/{good_seq}/capture");
    assert_eq!(
        app.post_json(&good_path, &writer, &json!({})).await.status,
        201
    );
    let before = book_state(&app).await;

    // 25 % for prospects changes the captured prospect decision, not the good client's:
    // neither the draft written before the capture nor a new one goes through.
    let bob = app.token_for("bob", "policies:activate");
    let activate = |n: i64| format!("/v1/policies/deposit/versions/{n}/activate");
    let blocked = app.post_json(&activate(early), &bob, &json!({})).await;
    let problem = blocked.problem(422, "policy_test_failed");
    assert_eq!(problem["cases"][0]["case"], id.as_str(), "{}", blocked.text);
    let refused = submit(&app, &raised, &tests, None).await;
    let problem = refused.problem(422, "policy_test_failed");
    let cases = problem["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "{}", refused.text);
    assert_eq!(cases[0]["case"], id.as_str());
    assert_eq!(cases[0]["policy"], "deposit");
    let failures = cases[0]["failures"].to_string();
    assert!(failures.contains("deposit_percent: 20 → 25"), "{failures}");
    assert!(failures.contains("stage deposit effects"), "{failures}");

    // A comment changes no decision.
    let comment = format!("{source}\n// Reviewed by the credit committee.\n");
    assert_eq!(submit(&app, &comment, &tests, None).await.status, 201);

    // Naming a case that does not exist, or does not involve the policy, is refused.
    let unknown = submit(&app, &raised, &tests, Some(json!(["captured-999999"]))).await;
    unknown.problem(422, "validation_failed");
    assert_eq!(unknown.fields(), ["supersedes"]);

    // Knowingly superseded: accepted, recorded with the version and in its audit record.
    let accepted = submit(&app, &raised, &tests, Some(json!([id]))).await;
    assert_eq!(accepted.status, 201, "{}", accepted.text);
    let number = accepted.body["version"].as_i64().unwrap();
    let created = app
        .get(
            &format!("/v1/audit/records/{}", accepted.body["audit"]["sequence"]),
            &writer,
        )
        .await;
    assert_eq!(created.body["payload"]["supersedes"], json!([id]));
    assert_eq!(accepted.body["supersedes"], json!([id]));
    let listed = app.get("/v1/policies/deposit", &writer).await;
    let kept = listed.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"].as_i64() == Some(number))
        .map(|v| v["supersedes"].clone());
    assert_eq!(kept, Some(json!([id])));
    let activated = app.post_json(&activate(number), &bob, &json!({})).await;
    assert_eq!(activated.status, 200, "{}", activated.text);
    // Once that version is live the case no longer binds `deposit`: a later tweak passes.
    let tweak = format!("{raised}\n// 25 % since the committee of November.\n");
    assert_eq!(submit(&app, &tweak, &tests, None).await.status, 201);

    assert_eq!(
        book_state(&app).await,
        before,
        "nothing decided, reserved or moved"
    );
    assert_eq!(app.get("/v1/audit/verify", &writer).await.body["ok"], true);

    // From the shell: the same record answers the existing case.
    let out = Command::new(env!("CARGO_BIN_EXE_encours"))
        .args(["policies", "capture", &seq.to_string(), "--by", "carol"])
        .env("ENCOURS_DATABASE_URL", &app.state.settings.database_url)
        .output()
        .expect("run encours");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("{id}: already captured")), "{text}");
}

async fn only_decisions_are_captured(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let writer = app.token_for("alice", WRITER);
    // Record 1 is the shipped policies' first version, not a decision.
    app.post_json("/v1/audit/records/1/capture", &writer, &json!({}))
        .await
        .problem(422, "validation_failed");
    app.post_json("/v1/audit/records/999999/capture", &writer, &json!({}))
        .await
        .problem(404, "not_found");
    app.post_json(
        "/v1/audit/records/1/capture",
        &app.token("audit:read policies:read"),
        &json!({}),
    )
    .await
    .problem(403, "forbidden");
}

on_both_backends!(
    a_captured_decision_gates_versions_of_its_policies,
    only_decisions_are_captured
);
