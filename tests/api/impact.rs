//! Impact on the open book: a stricter `on_event` draft (limits capped at 80 % of the insured
//! amount) lists exactly the clients whose limit would drop and the exposure that would then
//! sit above their limits, and writes nothing.

use serde_json::{Value, json};

use crate::decisions::{ALL, Facts, given};
use crate::events::{self, invoice};
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

const CAP: &str = r#"
// Stricter: the standing limit never above 80 % of the insured amount.
if client.insurance != () {
    let cap = pct(client.insurance.insured_amount, 80);
    if decision.credit_limit > cap {
        set_credit_limit(cap, "LIMIT_CAPPED_TO_INSURED_SHARE", `Limit capped at 80 % of the insured amount: ${cap} ${client.currency}.`);
    }
}
"#;

/// Submits the active `on_event` with [`CAP`] appended (not activated); its version.
async fn stricter_on_event(app: &TestApp) -> i64 {
    let token = app.token_for("alice", "policies:read policies:write");
    let current = app.get("/v1/policies/on_event", &token).await;
    let active = current.body["active_version"].as_i64().unwrap();
    let source = current.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"].as_i64() == Some(active))
        .unwrap()["source"]
        .as_str()
        .unwrap()
        .to_owned();
    let tests = json!([{
        "name": "limit above 80 % of the cover: capped",
        "input": {"event": {"type": "scheduled_review", "reasons": []},
                  "client": {"credit_limit": "100000.00"}, "decision": {"band": "A"}},
        "expect": {"outcome": "approved", "new_credit_limit": "40000.00",
                   "effects": [{"action": "set_credit_limit", "code": "LIMIT_CAPPED_TO_INSURED_SHARE", "amount": "40000.00"}]}
    }]);
    let body =
        json!({"source": format!("{source}{CAP}"), "description": "80 % of cover", "tests": tests});
    let created = app
        .post_json("/v1/policies/on_event/versions", &token, &body)
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["version"].as_i64().unwrap()
}

/// Limits, statuses and exposures of every client, the decisions and the audit head.
async fn book_state(app: &TestApp) -> Value {
    let token = app.token(ALL);
    let clients = app.get("/v1/clients?limit=500", &token).await;
    let decisions = app.get("/v1/credit-decisions?limit=500", &token).await;
    let (head, _) = app.audit_head().await;
    let standing: Vec<Value> = clients.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            json!([
                c["client_id"],
                c["credit_limit"],
                c["status"],
                c["exposure"]
            ])
        })
        .collect();
    json!({"clients": standing, "decisions": decisions.body["items"], "audit_head": head})
}

async fn a_stricter_draft_lists_the_limits_it_would_cut(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ALL);
    // Insured for 50 000 (80 %: 40 000) unless said otherwise.
    given(&app, "AT-CAP", "40000.00", Facts::good()).await;
    given(&app, "HIGH", "400000.00", Facts::good()).await;
    given(&app, "NEAR", "45000.00", Facts::good()).await;
    given(&app, "OVER", "400000.00", Facts::good()).await;
    let uninsured = Facts {
        insured: None,
        invoices_paid: 12,
        external_score: Some(60),
        ..Facts::default()
    };
    given(&app, "UNINSURED", "100000.00", uninsured).await;
    let issued = events::post(
        &app,
        &app.token("events:write"),
        &[
            invoice("i1", "NEAR", "F1", "43000.00", -5, 25),
            invoice("i2", "OVER", "F1", "45000.00", -5, 25),
        ],
    )
    .await;
    assert_eq!(
        events::statuses(&issued),
        ["accepted"; 2],
        "{}",
        issued.text
    );
    let number = stricter_on_event(&app).await;
    let before = book_state(&app).await;

    let path = format!("/v1/policies/on_event/versions/{number}/impact");
    let answer = app.post_json(&path, &token, &json!({})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let impact = &answer.body;
    assert_eq!(impact["evaluated"], 5);
    let changes = impact["changes"].as_array().unwrap();
    let ids: Vec<&str> = changes
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["HIGH", "NEAR", "OVER"], "{}", answer.text);
    for change in changes {
        assert_eq!(change["new_limit"], "40000.00");
        assert_eq!(change["current_status"], change["new_status"]);
        assert_eq!(change["current_band"], change["new_band"]);
    }
    assert_eq!(changes[1]["current_limit"], "45000.00");
    assert_eq!(changes[1]["exposure"], "43000.00");
    assert_eq!(
        impact["exposure"]["EUR"],
        json!({
            "clients_over_current": 0, "exposure_above_current": "0.00",
            "clients_over_new": 2, "exposure_above_new": "8000.00",
        })
    );

    // Filters.
    let usd = app
        .post_json(&path, &token, &json!({"currency": "USD"}))
        .await;
    assert_eq!(usd.body["evaluated"], 0, "{}", usd.text);
    let bad = app
        .post_json(&path, &token, &json!({"band": "Z", "extra": 1}))
        .await;
    bad.problem(422, "validation_failed");
    // The active version changes nothing.
    let active = app.get("/v1/policies/on_event", &token).await.body["active_version"].clone();
    let same = app
        .post_json(
            &format!("/v1/policies/on_event/versions/{active}/impact"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(same.body["changes"], json!([]), "{}", same.text);
    assert_eq!(same.body["evaluated"], 5);
    // Not a client_event stage, unknown policy or version, missing scope.
    app.post_json("/v1/policies/deposit/versions/1/impact", &token, &json!({}))
        .await
        .problem(422, "validation_failed");
    app.post_json("/v1/policies/nope/versions/1/impact", &token, &json!({}))
        .await
        .problem(404, "not_found");
    app.post_json(
        "/v1/policies/on_event/versions/99/impact",
        &token,
        &json!({}),
    )
    .await
    .problem(404, "not_found");
    app.post_json(&path, &app.token("clients:read"), &json!({}))
        .await
        .problem(403, "forbidden");

    assert_eq!(book_state(&app).await, before, "nothing written");
}

on_both_backends!(a_stricter_draft_lists_the_limits_it_would_cut);
