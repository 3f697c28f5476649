//! Group commit: batches written in one transaction answer as if each had been written after
//! the one before, and each client is reviewed once, on the state they all leave.

use std::collections::BTreeMap;

use chrono::Utc;
use encours::service::events::{Ingested, ingest_at, ingest_many_at};
use serde_json::{Value, json};

use super::*;
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

fn batches() -> Vec<Vec<Value>> {
    let first = vec![
        invoice("g1", "C-1", "F1", "1000.00", -40, -10),
        invoice("g2", "C-2", "F1", "500.00", -5, 25),
        invoice("g3", "C-3", "U1", "99.99", -2, 28),
    ];
    let mut conflicting = first[2].clone();
    conflicting["amount"] = json!("100.00");
    let second = vec![
        // Pays part of an invoice the first batch issued.
        payment("g4", "C-1", "F1", "400.00", 0),
        // The first batch's event again: a duplicate.
        first[1].clone(),
        ev(
            "g5",
            "C-2",
            "sales_alert",
            json!({"sentiment": "negative", "note": "late again"}),
        ),
        invoice("g6", "C-9", "X1", "1.00", -2, 28),
    ];
    let third = vec![
        // Another body for an id of the first batch: refused.
        conflicting,
        cover("g7", "C-1", "30000.00", 200),
        payment("g8", "C-1", "F1", "600.00", 0),
        second[0].clone(),
    ];
    vec![first, second, third]
}

/// What a batch was answered, event by event.
fn results(done: &Ingested) -> Vec<String> {
    done.results
        .iter()
        .map(|r| format!("{:?} {:?} {:?}", r.event_id, r.status, r.notices))
        .collect()
}

fn kinds(done: &Ingested) -> Vec<&'static str> {
    done.results
        .iter()
        .map(|r| match r.status {
            encours::service::events::EventStatus::Accepted => "accepted",
            encours::service::events::EventStatus::Duplicate => "duplicate",
            encours::service::events::EventStatus::Rejected(_) => "rejected",
        })
        .collect()
}

/// A client's state as `GET /v1/clients/{id}` shows it, without when it was written.
async fn state(app: &TestApp, token: &str, id: &str) -> Value {
    let mut view = get_client(app, token, id).await;
    if let Some(map) = view.as_object_mut() {
        for volatile in ["updated_at", "created_at", "version"] {
            map.remove(volatile);
        }
    }
    view
}

async fn batches_written_together_answer_as_one_by_one(backend: Backend) {
    let (Some(together), Some(apart)) =
        (TestApp::spawn(backend).await, TestApp::spawn(backend).await)
    else {
        return;
    };
    let token = together.token_for("erp", SCOPES);
    let token_apart = apart.token_for("erp", SCOPES);
    for (app, token) in [(&together, &token), (&apart, &token_apart)] {
        client(app, token, "C-1", "EUR", "50000.00").await;
        client(app, token, "C-2", "EUR", "20000.00").await;
        client(app, token, "C-3", "USD", "5000.00").await;
    }
    let (before, _) = together.audit_head().await;
    let now = Utc::now();
    let (state_together, state_apart) = (together.state.clone(), apart.state.clone());
    let (grouped, alone) = tokio::task::spawn_blocking(move || {
        let all = batches();
        let slices: Vec<&[Value]> = all.iter().map(Vec::as_slice).collect();
        let mut conn = state_together.store.get().expect("connection");
        let grouped = ingest_many_at(&mut conn, &state_together.policies, &slices, "erp", now)
            .expect("written together");
        let mut conn = state_apart.store.get().expect("connection");
        let alone: Vec<Ingested> = all
            .iter()
            .map(|b| ingest_at(&mut conn, &state_apart.policies, b, "erp", now).expect("alone"))
            .collect();
        (grouped, alone)
    })
    .await
    .expect("join");

    assert_eq!(grouped.len(), 3);
    assert_eq!(
        grouped.iter().map(kinds).collect::<Vec<_>>(),
        [
            vec!["accepted"; 3],
            vec!["accepted", "duplicate", "accepted", "rejected"],
            vec!["rejected", "accepted", "accepted", "duplicate"],
        ]
    );
    for (g, a) in grouped.iter().zip(&alone) {
        assert_eq!(results(g), results(a));
    }
    // One review per client at most, listed by every batch that had events accepted for it.
    let mut reviewed: BTreeMap<String, i64> = BTreeMap::new();
    for (n, done) in grouped.iter().enumerate() {
        for review in &done.reviews {
            let seq = reviewed
                .entry(review.client_id.clone())
                .or_insert(review.audit.sequence);
            assert_eq!(
                *seq, review.audit.sequence,
                "{} reviewed twice",
                review.client_id
            );
            let named = done.results.iter().any(|r| {
                matches!(r.status, encours::service::events::EventStatus::Accepted)
                    && batches()[n].iter().any(|e| {
                        e["event_id"] == json!(r.event_id)
                            && e["client_id"] == json!(review.client_id)
                    })
            });
            assert!(named, "batch {n} lists a review of {}", review.client_id);
        }
    }
    let cut = grouped[2].reviews.iter().find(|r| r.client_id == "C-1");
    assert!(
        cut.is_some_and(|r| r.credit_limit == "30000.00"
            && r.reasons.iter().any(|c| c == "LIMIT_CUT_TO_INSURED")),
        "{:?}",
        grouped[2].reviews
    );
    assert!(grouped[0].reviews.iter().any(|r| r.client_id == "C-1"));
    let (after, _) = together.audit_head().await;
    assert_eq!(after - before, i64::try_from(reviewed.len()).unwrap_or(0));

    for id in ["C-1", "C-2", "C-3"] {
        assert_eq!(
            state(&together, &token, id).await,
            state(&apart, &token_apart, id).await,
            "{id}"
        );
    }
    let c1 = get_client(&together, &token, "C-1").await;
    assert_eq!(c1["exposure"]["open_invoices"], "0.00");
    assert_eq!(c1["credit_limit"], "30000.00");
    for (app, token) in [(&together, &token), (&apart, &token_apart)] {
        let verify = app.get("/v1/audit/verify", token).await;
        assert_eq!(verify.body["ok"], json!(true), "{}", verify.text);
    }
}

/// Enough clients for the reviews' pipelines to be shared with a second thread: every client
/// reviewed, the reviews written and listed in client order.
async fn a_batch_naming_many_clients_reviews_each_in_order(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token_for("erp", SCOPES);
    let ids: Vec<String> = (0..80).map(|n| format!("M-{n:03}")).collect();
    for id in &ids {
        client(&app, &token, id, "EUR", "50000.00").await;
    }
    let (before, _) = app.audit_head().await;
    // Each client's cover (so its new limit) is its own: a run recorded for another client
    // would show. Sent in reverse order: the reviews still come in client order.
    let limit = |n: usize| format!("{}.00", 30_000 + n);
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .rev()
        .map(|(n, id)| cover(&format!("cut-{id}"), id, &limit(n), 200))
        .collect();
    let answer = post(&app, &token, &events).await;
    assert_eq!(statuses(&answer), vec!["accepted"; ids.len()]);
    let reviews = answer.body["reviews"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let reviewed: Vec<&str> = reviews
        .iter()
        .filter_map(|r| r["client_id"].as_str())
        .collect();
    assert_eq!(reviewed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    for (n, review) in reviews.iter().enumerate() {
        assert_eq!(
            review["sequence"],
            json!(before + 1 + i64::try_from(n).unwrap_or(0))
        );
        assert_eq!(review["credit_limit"], json!(limit(n)));
    }
    for n in [0, 40, 79] {
        let id = &ids[n];
        let state = get_client(&app, &token, id).await;
        assert_eq!(state["credit_limit"], json!(limit(n)), "{id}");
        assert!(
            state["risk"]["score"].is_number(),
            "{id}: {}",
            state["risk"]
        );
    }
    let verify = app.get("/v1/audit/verify", &token).await;
    assert_eq!(verify.body["ok"], json!(true), "{}", verify.text);
}

on_both_backends!(
    batches_written_together_answer_as_one_by_one,
    a_batch_naming_many_clients_reviews_each_in_order
);
