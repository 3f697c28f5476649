//! Limit reviews after events and from the scheduled pass, each an audit record.

use chrono::{TimeDelta, Utc};
use encours::service::schedule;
use serde_json::json;

use super::*;
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

async fn cover_cut_below_the_limit_cuts_the_limit(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token_for("erp", SCOPES);
    client(&app, &token, "C-1", "EUR", "50000.00").await;
    let (before, _) = app.audit_head().await;
    // The cut comes first in the batch; the events after it must not hide it.
    let answer = post(
        &app,
        &token,
        &[
            invoice("e1", "C-1", "F1", "1000.00", -5, 25),
            cover("e2", "C-1", "30000.00", 200),
            payment("e3", "C-1", "F1", "10.00", 0),
        ],
    )
    .await;
    assert_eq!(statuses(&answer), ["accepted"; 3]);
    let reviews = answer.body["reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 1, "{}", answer.text);
    let review = &reviews[0];
    assert_eq!(review["client_id"], "C-1");
    assert_eq!(review["credit_limit"], "30000.00");
    assert_eq!(review["referred"], false);
    assert_eq!(review["sequence"], before + 1);
    assert!(
        review["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("LIMIT_CUT_TO_INSURED"))
    );
    let state = get_client(&app, &token, "C-1").await;
    assert_eq!(state["credit_limit"], "30000.00");
    assert_eq!(state["available_credit"], "29010.00");

    let record = app
        .get(&format!("/v1/audit/records/{}", before + 1), &token)
        .await;
    assert_eq!(record.status, 200, "{}", record.text);
    assert_eq!(record.body["kind"], "client.limit_review");
    assert_eq!(record.body["actor"], "erp");
    assert_eq!(record.body["client_id"], "C-1");
    assert_eq!(record.body["hash"], review["hash"]);
    let payload = &record.body["payload"];
    assert_eq!(payload["before"]["credit_limit"], "50000.00");
    assert_eq!(payload["after"]["credit_limit"], "30000.00");
    assert_eq!(payload["cause"], "events");
    assert_eq!(
        payload["input"]["event"]["batch"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        payload["input"]["client"]["insurance"]["insured_amount"],
        "30000.00"
    );
    assert!(payload["policies"].as_array().is_some_and(|p| p.len() == 2));
    // Nothing new to review: no record.
    let quiet = post(&app, &token, &[payment("e4", "C-1", "F1", "10.00", 0)]).await;
    assert!(
        quiet.body["reviews"].as_array().unwrap().is_empty(),
        "{}",
        quiet.text
    );
    let verify = app.get("/v1/audit/verify", &token).await;
    assert_eq!(
        (verify.body["ok"].clone(), verify.body["records"].clone()),
        (json!(true), json!(before + 1))
    );
}

async fn the_scheduled_pass_reviews_when_time_moves(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "50000.00").await;
    client(&app, &token, "C-2", "EUR", "50000.00").await;
    client(&app, &token, "C-3", "EUR", "50000.00").await;
    let answer = post(
        &app,
        &token,
        &[
            // 60 days past due today: more than 60 tomorrow.
            invoice("a1", "C-1", "F1", "5000.00", -90, -60),
            // Cover ends today.
            cover("b1", "C-2", "40000.00", 0),
            // Nothing pending for months.
            invoice("c1", "C-3", "F1", "100.00", 0, 120),
        ],
    )
    .await;
    assert_eq!(statuses(&answer), ["accepted"; 3]);
    // C-2's cut to the cover is a review now; C-1 has nothing to refer yet.
    assert_eq!(
        answer.body["reviews"].as_array().map(Vec::len),
        Some(1),
        "{}",
        answer.text
    );
    let registry = app.state.policies.clone();
    let pass = |days: i64| {
        let registry = registry.clone();
        app.store().run(move |conn| {
            schedule::run_pass(conn, &registry, Utc::now() + TimeDelta::days(days))
        })
    };
    let today = pass(0).await.unwrap();
    assert_eq!(today.reviewed, 0, "nothing is due today");
    let tomorrow = pass(1).await.unwrap();
    assert_eq!(tomorrow.reviewed, 2, "{tomorrow:?}");
    let by_client = |id: &str| tomorrow.reviews.iter().find(|r| r.client_id == id).cloned();
    let c1 = by_client("C-1").expect("C-1 referred for arrears");
    assert!(
        c1.referred && c1.reasons.contains(&"ARREARS_REVIEW".to_owned()),
        "{c1:?}"
    );
    let c2 = by_client("C-2").expect("C-2 referred for its ended cover");
    assert!(
        c2.referred && c2.reasons.contains(&"INSURANCE_EXPIRED".to_owned()),
        "{c2:?}"
    );
    let record = app
        .get(
            &format!("/v1/audit/records/{}", c2.audit.sequence),
            &app.token("audit:read"),
        )
        .await;
    assert_eq!(record.body["actor"], "scheduler");
    assert_eq!(record.body["payload"]["cause"], "schedule");
    assert_eq!(
        record.body["payload"]["input"]["event"]["type"],
        "scheduled_review"
    );
    // Done for the day: the same pass again reviews nobody.
    assert_eq!(pass(1).await.unwrap().reviewed, 0);
    // C-1's next step is 91 days past due.
    assert_eq!(pass(30).await.unwrap().reviewed, 0);
    let at_91 = pass(31).await.unwrap();
    assert_eq!(
        at_91
            .reviews
            .iter()
            .map(|r| r.client_id.as_str())
            .collect::<Vec<_>>(),
        ["C-1"]
    );
}

/// The next review is the earliest step any open invoice has ahead: not a step an invoice
/// crossed already, not a settled invoice's. The events set it (the batch's reviews), then
/// each scheduled review (one client's).
async fn the_next_review_is_the_earliest_step_ahead(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "50000.00").await;
    let answer = post(
        &app,
        &token,
        &[
            // 45 days past due: 61 in 16 days.
            invoice("a", "C-1", "F1", "1000.00", -75, -45),
            // Due in 5 days: overdue in 6, then 31 days past due in 36.
            invoice("b", "C-1", "F2", "1000.00", -25, 5),
            // Paid: 31 days past due in 2 days had it stayed open.
            invoice("c", "C-1", "F3", "1000.00", -59, -29),
            payment("d", "C-1", "F3", "1000.00", -1),
        ],
    )
    .await;
    assert_eq!(statuses(&answer), ["accepted"; 4]);
    let registry = app.state.policies.clone();
    let pass = |days: i64| {
        let registry = registry.clone();
        app.store().run(move |conn| {
            schedule::run_pass(conn, &registry, Utc::now() + TimeDelta::days(days))
        })
    };
    let reviewed = |days: i64| async move { pass(days).await.unwrap().reviewed };
    assert_eq!(reviewed(2).await, 0, "the settled invoice is not counted");
    assert_eq!(reviewed(5).await, 0);
    assert_eq!(reviewed(6).await, 1, "F2 falls due");
    assert_eq!(reviewed(15).await, 0, "F2's next step is on day 36");
    assert_eq!(reviewed(16).await, 1, "F1 passes 60 days");
}

on_both_backends!(
    cover_cut_below_the_limit_cuts_the_limit,
    the_scheduled_pass_reviews_when_time_moves,
    the_next_review_is_the_earliest_step_ahead
);
