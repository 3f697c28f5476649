//! Every validation error, each reported by field, none blocking the others.

use chrono::{TimeDelta, Utc};
use serde_json::json;

use super::*;
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

async fn every_validation_error(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "10000.00").await;
    let inv = |fields: Value| ev("x", "C-1", "invoice_issued", fields);
    let ok_invoice =
        json!({"invoice_id": "F1", "amount": "10.00", "issued_on": day(-1), "due_on": day(29)});
    let with = |base: &Value, patch: Value| {
        let mut v = base.clone();
        for (k, x) in patch.as_object().unwrap() {
            if x.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = x.clone();
            }
        }
        v
    };
    let good = inv(ok_invoice.clone());
    let future = (Utc::now() + TimeDelta::days(2)).to_rfc3339();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (with(&good, json!({"event_id": null})), vec!["event_id"]),
        (with(&good, json!({"event_id": ""})), vec!["event_id"]),
        (
            with(&good, json!({"event_id": "x".repeat(129)})),
            vec!["event_id"],
        ),
        (
            with(&good, json!({"event_id": " padded"})),
            vec!["event_id"],
        ),
        (with(&good, json!({"client_id": "a b"})), vec!["client_id"]),
        (with(&good, json!({"type": "invoice_paid"})), vec!["type"]),
        (
            with(&good, json!({"occurred_at": "2026-13-01T00:00:00Z"})),
            vec!["occurred_at"],
        ),
        (
            with(&good, json!({"occurred_at": "2026-03-01"})),
            vec!["occurred_at"],
        ),
        (
            with(&good, json!({"occurred_at": future})),
            vec!["occurred_at"],
        ),
        (
            with(
                &good,
                json!({"amount": null, "issued_on": null, "due_on": null}),
            ),
            vec!["amount", "issued_on", "due_on"],
        ),
        (with(&good, json!({"due_on": day(-2)})), vec!["due_on"]),
        (with(&good, json!({"due_on": day(4000)})), vec!["due_on"]),
        (
            with(&good, json!({"issued_on": "2026-1-5"})),
            vec!["issued_on"],
        ),
        (
            with(&good, json!({"issued_on": "1960-01-05"})),
            vec!["issued_on"],
        ),
        (with(&good, json!({"amount": "1e3"})), vec!["amount"]),
        (with(&good, json!({"amount": "-5.00"})), vec!["amount"]),
        (with(&good, json!({"amount": "0.00"})), vec!["amount"]),
        (with(&good, json!({"amount": "12.345"})), vec!["amount"]),
        (with(&good, json!({"amount": true})), vec!["amount"]),
        (
            with(&good, json!({"amount": "1000000000000000"})),
            vec!["amount"],
        ),
        (with(&good, json!({"invoice_id": 42})), vec!["invoice_id"]),
        (with(&good, json!({"decision_id": ""})), vec!["decision_id"]),
        (
            with(&good, json!({"foo": 1, "level": 2})),
            vec!["foo", "level"],
        ),
        (with(&good, json!({"currency": "eur"})), vec!["currency"]),
        (
            ev(
                "x",
                "C-1",
                "payment_received",
                json!({"invoice_id": "F1", "amount": "1.00"}),
            ),
            vec!["received_on"],
        ),
        (
            ev(
                "x",
                "C-1",
                "credit_note_issued",
                json!({"invoice_id": "F1", "amount": [1]}),
            ),
            vec!["amount"],
        ),
        (
            ev(
                "x",
                "C-1",
                "dunning_sent",
                json!({"invoice_id": "F1", "level": 0}),
            ),
            vec!["level"],
        ),
        (
            ev(
                "x",
                "C-1",
                "dunning_sent",
                json!({"invoice_id": "F1", "level": 10}),
            ),
            vec!["level"],
        ),
        (
            ev(
                "x",
                "C-1",
                "dunning_sent",
                json!({"invoice_id": "F1", "level": "2"}),
            ),
            vec!["level"],
        ),
        (
            ev(
                "x",
                "C-1",
                "insurance_cover_changed",
                json!({"insurer": "A", "insured_amount": "-1"}),
            ),
            vec!["insured_amount"],
        ),
        (
            ev(
                "x",
                "C-1",
                "insurance_cover_changed",
                json!({"insurer": " ", "insured_amount": "1", "valid_until": "x"}),
            ),
            vec!["insurer", "valid_until"],
        ),
        (
            ev(
                "x",
                "C-1",
                "external_score_updated",
                json!({"provider": "P", "score": 101, "as_of": day(0)}),
            ),
            vec!["score"],
        ),
        (
            ev(
                "x",
                "C-1",
                "external_score_updated",
                json!({"provider": "P", "score": -1, "as_of": day(0)}),
            ),
            vec!["score"],
        ),
        (
            ev(
                "x",
                "C-1",
                "external_score_updated",
                json!({"provider": "P", "score": 50.5}),
            ),
            vec!["score", "as_of"],
        ),
        (
            ev(
                "x",
                "C-1",
                "sales_alert",
                json!({"sentiment": "neutral", "note": ""}),
            ),
            vec!["sentiment", "note"],
        ),
        (
            ev(
                "x",
                "C-1",
                "sales_alert",
                json!({"sentiment": "negative", "note": "x".repeat(2001)}),
            ),
            vec!["note"],
        ),
        (
            ev(
                "x",
                "C-1",
                "legal_status_changed",
                json!({"legal_status": "bankrupt"}),
            ),
            vec!["legal_status"],
        ),
        (
            ev("x", "C-1", "order_cancelled", json!({})),
            vec!["decision_id"],
        ),
        (json!(["not", "an", "object"]), vec!["event"]),
    ];
    let events: Vec<Value> = cases.iter().map(|(e, _)| e.clone()).collect();
    let answer = post(&app, &token, &events).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    for (i, (event, fields)) in cases.iter().enumerate() {
        let result = &answer.body["results"][i];
        assert_eq!(result["status"], "rejected", "case {i}: {event}\n{result}");
        let error = &result["error"];
        assert_eq!(error["code"], "validation_failed", "case {i}: {result}");
        assert_eq!(error["status"], 422, "case {i}");
        assert!(error["detail"].as_str().is_some_and(|d| !d.is_empty()));
        let got: Vec<&str> = error["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert_eq!(&got, fields, "case {i}: {result}");
    }
    // None of them changed anything; a good event still goes through after them.
    let ok = post(&app, &token, &[good]).await;
    assert_eq!(statuses(&ok), ["accepted"]);
    assert_eq!(
        get_client(&app, &token, "C-1").await["exposure"]["open_invoices"],
        "10.00"
    );
}

async fn malformed_bodies(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    let raw = |body: &'static str| {
        app.call(
            "POST",
            "/v1/events",
            Some(&token),
            Some(("application/json", body.as_bytes().to_vec())),
        )
    };
    raw("{\"events\": [")
        .await
        .problem(400, "validation_failed");
    raw("{\"events\": {}}")
        .await
        .problem(422, "validation_failed");
    let text = app
        .call(
            "POST",
            "/v1/events",
            Some(&token),
            Some(("text/plain", b"{}".to_vec())),
        )
        .await;
    assert_eq!(text.status, 415);
    app.call(
        "POST",
        "/v1/events",
        None,
        Some(("application/json", b"{}".to_vec())),
    )
    .await
    .problem(401, "unauthorized");
}

on_both_backends!(every_validation_error, malformed_bodies);
