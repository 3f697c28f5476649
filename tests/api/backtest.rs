//! Backtest: a draft re-run over logged decisions changes exactly the decisions it should,
//! a draft that changes nothing changes nothing, changes page by cursor over a fixed window,
//! and nothing is ever written.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::audit::replay::{book, draft_deposit};
use crate::decisions::{ALL, decide, given, order};
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

const DECISIONS: usize = 48;

/// A recorded decision: (decision_id, sequence, outcome, deposit percent).
type Logged = (String, i64, String, Option<String>);

/// The book's clients and `DECISIONS` decisions, one in eight for a new prospect.
async fn booked(app: &TestApp) -> Vec<Logged> {
    let clients = book();
    for (id, limit, facts) in book() {
        given(app, id, limit, facts).await;
    }
    let mut logged = Vec::new();
    for i in 0..DECISIONS {
        let amount = format!("{}.{:02}", 50 + (i * 733) % 3_000, (i * 37) % 100);
        let terms = [30, 45, 60, 90][i % 4];
        let body = if i % 8 == 5 {
            let mut body = order(&format!("r-{i}"), &format!("NEW-{i}"), &amount, terms);
            body["prospect"] = json!({"name": format!("Prospect {i} SAS"), "country": "FR"});
            body
        } else {
            order(
                &format!("r-{i}"),
                clients[i % clients.len()].0,
                &amount,
                terms,
            )
        };
        let d = decide(app, &body).await;
        assert_eq!(d.status, 201, "{}", d.text);
        logged.push((
            d.body["decision_id"].as_str().unwrap().to_owned(),
            d.body["audit"]["sequence"].as_i64().unwrap(),
            d.body["outcome"].as_str().unwrap().to_owned(),
            d.body["deposit"]["percent"].as_str().map(str::to_owned),
        ));
    }
    logged
}

async fn backtest(app: &TestApp, policy: &str, version: i64, body: &Value) -> Value {
    let answer = app
        .post_json(
            &format!("/v1/policies/{policy}/versions/{version}/backtest"),
            &app.token("policies:read"),
            body,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}

/// What a backtest must leave as it found: decisions, clients (limits, exposure and so
/// reservations) and the audit chain.
async fn state(app: &TestApp) -> (Value, Value, (i64, String)) {
    let token = app.token(ALL);
    let decisions = app.get("/v1/credit-decisions?limit=500", &token).await;
    let clients = app.get("/v1/clients?limit=500", &token).await;
    (decisions.body, clients.body, app.audit_head().await)
}

fn decimal(v: &Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

fn outcome_counts(logged: &[Logged]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (_, _, outcome, _) in logged {
        *counts.entry(outcome.clone()).or_insert(0) += 1;
    }
    counts
}

/// The outcome matrix has only its diagonal, equal to the recorded outcomes.
fn assert_diagonal(report: &Value, logged: &[Logged]) {
    let matrix = report["comparison"]["outcomes"].as_object().unwrap();
    for (from, row) in matrix {
        let row = row.as_object().unwrap();
        assert_eq!(row.len(), 1, "{from}: {row:?}");
        assert_eq!(
            row[from].as_u64(),
            outcome_counts(logged).get(from).copied()
        );
    }
    assert_eq!(matrix.len(), outcome_counts(logged).len());
}

async fn a_stricter_draft_changes_exactly_the_prospect_deposits(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let logged = booked(&app).await;
    let draft = draft_deposit(&app, "DEPOSIT_PROSPECT = 25", "prospects pay 25 %").await;
    let before = state(&app).await;

    let report = backtest(&app, "deposit", draft, &json!({})).await;

    assert_eq!(state(&app).await, before, "a backtest writes nothing");
    let expected: BTreeSet<&str> = logged
        .iter()
        .filter(|(_, _, _, deposit)| deposit.as_deref() == Some("20"))
        .map(|(id, ..)| id.as_str())
        .collect();
    assert!(expected.len() >= 3, "few 20 % deposits: {logged:?}");
    assert_eq!(report["replayed"], DECISIONS);
    assert_eq!(report["skipped"]["total"], 0);
    assert_eq!(report["changed"], expected.len());
    assert_eq!(report["comparison"]["changed"], expected.len());
    let changes = report["changes"].as_array().unwrap();
    let changed: BTreeSet<&str> = changes
        .iter()
        .map(|c| c["decision_id"].as_str().unwrap())
        .collect();
    assert_eq!(changed, expected);
    let mut extra_deposits = Decimal::ZERO;
    for c in changes {
        let (was, now) = (&c["recorded"], &c["challenger"]);
        assert_eq!(was["deposit_percent"], "20", "{c}");
        assert_eq!(now["deposit_percent"], "25", "{c}");
        assert_eq!(was["outcome"], now["outcome"]);
        assert_eq!(was["approved_amount"], now["approved_amount"]);
        assert_eq!(was["terms_days"], now["terms_days"]);
        assert!(decimal(&now["deposit_amount"]) > decimal(&was["deposit_amount"]));
        extra_deposits += decimal(&now["deposit_amount"]) - decimal(&was["deposit_amount"]);
        let (id, seq, ..) = logged.iter().find(|l| l.0 == c["decision_id"]).unwrap();
        assert_eq!(
            (c["decision_id"].as_str(), c["sequence"].as_i64()),
            (Some(id.as_str()), Some(*seq))
        );
        assert!(c["client_id"].as_str().is_some(), "{c}");
    }
    let sequences: Vec<i64> = changes
        .iter()
        .map(|c| c["sequence"].as_i64().unwrap())
        .collect();
    assert!(sequences.is_sorted(), "{sequences:?}");
    assert_eq!(report["next_cursor"], Value::Null);

    assert_diagonal(&report, &logged);
    let eur = &report["comparison"]["amounts"]["EUR"];
    assert_eq!(eur["recorded_approved"], eur["challenger_approved"]);
    assert_eq!(
        decimal(&eur["challenger_deposits"]) - decimal(&eur["recorded_deposits"]),
        extra_deposits
    );
    let terms = &report["comparison"]["terms"];
    assert_eq!(
        (&terms["shortened"], &terms["lengthened"]),
        (&json!(0), &json!(0))
    );

    // The same from the shell.
    let out = Command::new(env!("CARGO_BIN_EXE_encours"))
        .args(["policies", "backtest", "deposit", &draft.to_string()])
        .env("ENCOURS_DATABASE_URL", &app.state.settings.database_url)
        .output()
        .expect("run encours");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let totals = format!(
        "replayed {DECISIONS}, changed {}, skipped 0",
        expected.len()
    );
    assert!(text.contains(&totals), "{text}");
    assert!(text.contains("deposit 25 %"), "{text}");
    assert_eq!(state(&app).await, before, "a backtest writes nothing");
}

async fn a_comment_changes_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let logged = booked(&app).await;
    let draft = draft_deposit(
        &app,
        "DEPOSIT_PROSPECT = 20; // unchanged, said twice",
        "a comment",
    )
    .await;
    let report = backtest(&app, "deposit", draft, &json!({})).await;
    assert_eq!(report["replayed"], DECISIONS);
    assert_eq!(report["changed"], 0);
    assert_eq!(report["changes"], json!([]));
    assert_diagonal(&report, &logged);
    let eur = &report["comparison"]["amounts"]["EUR"];
    assert_eq!(eur["recorded_approved"], eur["challenger_approved"]);
    assert_eq!(eur["recorded_deposits"], eur["challenger_deposits"]);

    // A stage that never runs on a credit request: every decision is skipped, and says why.
    let report = backtest(&app, "on_event", 1, &json!({})).await;
    assert_eq!(report["replayed"], 0);
    assert_eq!(report["skipped"]["total"], DECISIONS);
    assert_eq!(report["skipped"]["stage_not_run"], DECISIONS);
}

async fn changes_page_over_a_fixed_window(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let logged = booked(&app).await;
    let draft = draft_deposit(&app, "DEPOSIT_PROSPECT = 25", "prospects pay 25 %").await;
    let whole = backtest(&app, "deposit", draft, &json!({})).await;
    let all = whole["changes"].as_array().unwrap().clone();
    assert!(all.len() >= 3);

    let mut paged = Vec::new();
    let mut body = json!({"changes_limit": 2});
    loop {
        let page = backtest(&app, "deposit", draft, &body).await;
        assert_eq!(page["comparison"], whole["comparison"]);
        assert!(page["changes"].as_array().unwrap().len() <= 2);
        paged.extend(page["changes"].as_array().unwrap().iter().cloned());
        if paged.len() == 2 {
            // A decision made meanwhile does not move the window of the pages that follow.
            let mut late = order("late", "NEW-LATE", "900.00", 30);
            late["prospect"] = json!({"name": "Late SAS", "country": "FR"});
            assert_eq!(decide(&app, &late).await.status, 201);
        }
        match page["next_cursor"].as_str() {
            Some(next) => body = json!({"changes_limit": 2, "cursor": next}),
            None => break,
        }
    }
    assert_eq!(paged, all);

    // The most recent `limit` decisions only; a period before any decision holds none.
    let recent = backtest(&app, "deposit", draft, &json!({"limit": 10})).await;
    assert_eq!(recent["replayed"], 10);
    let tenth = logged[DECISIONS - 9].1; // the late decision is the most recent
    for c in recent["changes"].as_array().unwrap() {
        assert!(c["sequence"].as_i64().unwrap() >= tenth, "{c}");
    }
    let none = backtest(
        &app,
        "deposit",
        draft,
        &json!({"from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        (&none["replayed"], &none["changed"]),
        (&json!(0), &json!(0))
    );
}

async fn refusals(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token("policies:read");
    let call = |path: &str, body: Value| {
        let path = path.to_owned();
        let token = token.clone();
        let app = &app;
        async move { app.post_json(&path, &token, &body).await }
    };
    let ok = "/v1/policies/deposit/versions/1/backtest";
    call("/v1/policies/nope/versions/1/backtest", json!({}))
        .await
        .problem(404, "not_found");
    call("/v1/policies/deposit/versions/99/backtest", json!({}))
        .await
        .problem(404, "not_found");
    call("/v1/policies/deposit/versions/abc/backtest", json!({}))
        .await
        .problem(422, "validation_failed");
    call("/v1/policies/Deposit!/versions/1/backtest", json!({}))
        .await
        .problem(422, "validation_failed");
    let bad = call(
        ok,
        json!({"limit": 0, "changes_limit": 5000, "cursor": "nope",
               "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
    )
    .await;
    bad.problem(422, "validation_failed");
    assert_eq!(bad.fields(), ["limit", "changes_limit", "to", "cursor"]);
    call(ok, json!({"limit": 100_001}))
        .await
        .problem(422, "validation_failed");
    let unknown = call(ok, json!({"window": 3})).await;
    unknown.problem(422, "validation_failed");
    app.post_json(ok, &app.token("decisions:read"), &json!({}))
        .await
        .problem(403, "forbidden");
    // No decision yet: an empty backtest, not an error.
    let empty = call(ok, json!({})).await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.body["replayed"], 0);
}

on_both_backends!(
    a_stricter_draft_changes_exactly_the_prospect_deposits,
    a_comment_changes_nothing,
    changes_page_over_a_fixed_window,
    refusals,
);
