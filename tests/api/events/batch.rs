//! The batch endpoint: idempotency, mixed batches, concurrency, reservations, auth.

use chrono::{TimeDelta, Utc};
use encours::store::reservations::{self, ReservationRow};
use serde_json::json;

use super::*;
use crate::on_both_backends;
use crate::support::{Backend, TestApp};

async fn idempotency_both_ways(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "10000.00").await;
    let first = invoice("e1", "C-1", "F1", "100.00", -1, 30);
    assert_eq!(
        statuses(&post(&app, &token, std::slice::from_ref(&first)).await),
        ["accepted"]
    );
    // Same id, same event (written differently: a number, another time zone): duplicate.
    let mut same = first.clone();
    same["amount"] = serde_json::from_str("100").unwrap();
    let offset = chrono::DateTime::parse_from_rfc3339(first["occurred_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
    same["occurred_at"] = json!(offset.to_rfc3339());
    let again = post(&app, &token, &[same]).await;
    assert_eq!(statuses(&again), ["duplicate"]);
    assert!(again.body["reviews"].as_array().unwrap().is_empty());
    // Same id, another body: refused, nothing applied.
    let mut other = first.clone();
    other["amount"] = json!("100.01");
    let conflict = post(&app, &token, &[other]).await;
    assert_eq!(statuses(&conflict), ["rejected"]);
    let error = &conflict.body["results"][0]["error"];
    assert_eq!(error["code"], "idempotency_conflict");
    assert_eq!(error["status"], 409);
    assert_eq!(error["type"], "urn:encours:problem:idempotency_conflict");
    // Within one batch too.
    let mut twin = payment("p1", "C-1", "F1", "10.00", 0);
    let batch = post(
        &app,
        &token,
        &[twin.clone(), twin.clone(), {
            twin["amount"] = json!("11.00");
            twin
        }],
    )
    .await;
    assert_eq!(statuses(&batch), ["accepted", "duplicate", "rejected"]);
    let state = get_client(&app, &token, "C-1").await;
    assert_eq!(state["exposure"]["open_invoices"], "90.00");
}

async fn a_mixed_batch(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "10000.00").await;
    client(&app, &token, "C-2", "USD", "5000.00").await;
    let old = invoice("old", "C-1", "F0", "1.00", -1, 1);
    assert_eq!(
        statuses(&post(&app, &token, std::slice::from_ref(&old)).await),
        ["accepted"]
    );
    let events = vec![
        invoice("m1", "C-1", "F1", "2500.00", -2, 28),
        invoice("m2", "C-2", "U1", "99.99", -2, 28),
        invoice("m3", "C-9", "X1", "1.00", -2, 28),
        json!("not an object"),
        old,
        ev(
            "m4",
            "C-2",
            "sales_alert",
            json!({"sentiment": "positive", "note": "big order coming"}),
        ),
        payment("m5", "C-1", "F1", "2500.001", 0),
        ev(
            "m6",
            "C-1",
            "dunning_sent",
            json!({"invoice_id": "F1", "level": 1, "currency": "EUR"}),
        ),
        invoice("m7", "C-2", "U2", "10.00", -1, 1),
    ];
    let mut m7 = events[8].clone();
    m7["currency"] = json!("EUR");
    let mut events = events;
    events[8] = m7;
    let answer = post(&app, &token, &events).await;
    assert_eq!(
        statuses(&answer),
        [
            "accepted",
            "accepted",
            "rejected",
            "rejected",
            "duplicate",
            "accepted",
            "rejected",
            "rejected",
            "rejected"
        ]
    );
    let r = &answer.body["results"];
    assert_eq!(r[2]["error"]["code"], "unknown_client");
    assert_eq!(r[2]["error"]["status"], 404);
    assert!(r[3]["event_id"].is_null());
    assert_eq!(r[3]["error"]["errors"][0]["field"], "event");
    assert_eq!(r[6]["error"]["errors"][0]["field"], "amount");
    assert_eq!(r[7]["error"]["errors"][0]["field"], "currency");
    assert_eq!(r[8]["error"]["code"], "currency_mismatch");
    assert_eq!(
        (
            answer.body["accepted"].as_i64(),
            answer.body["rejected"].as_i64()
        ),
        (Some(3), Some(5))
    );
    assert_eq!(
        get_client(&app, &token, "C-1").await["exposure"]["open_invoices"],
        "2501.00"
    );
    let c2 = get_client(&app, &token, "C-2").await;
    assert_eq!(c2["exposure"]["open_invoices"], "99.99");
    assert_eq!(c2["alerts"]["positive"], 1);
}

async fn concurrent_batches_for_one_client(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "1000000.00").await;
    // Two batches of 200 invoices and payments on the same client, 50 events in common.
    let batch = |from: usize| -> Vec<Value> {
        (from..from + 100)
            .flat_map(|i| {
                [
                    invoice(&format!("i{i}"), "C-1", &format!("F{i}"), "100.01", -3, 27),
                    payment(&format!("p{i}"), "C-1", &format!("F{i}"), "0.01", -1),
                ]
            })
            .collect()
    };
    let (a, b) = (batch(0), batch(75));
    let (ra, rb) = futures_util::future::join(post(&app, &token, &a), post(&app, &token, &b)).await;
    let (sa, sb) = (statuses(&ra), statuses(&rb));
    let accepted = sa.iter().chain(&sb).filter(|s| *s == "accepted").count();
    let duplicates = sa.iter().chain(&sb).filter(|s| *s == "duplicate").count();
    assert_eq!(
        (accepted, duplicates),
        (350, 50),
        "{}\n{}",
        ra.text,
        rb.text
    );
    let state = get_client(&app, &token, "C-1").await;
    assert_eq!(state["exposure"]["open_invoices"], "17500.00");
    let listed = app.get("/v1/clients/C-1/events?limit=500", &token).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(350));
}

fn reservation(id: &str, client: &str, minor: i64, expires_in: TimeDelta) -> ReservationRow {
    let now = Utc::now().naive_utc();
    ReservationRow {
        decision_id: id.into(),
        client_id: client.into(),
        amount_minor: minor,
        status: "active".into(),
        created_at: now,
        expires_at: now + expires_in,
        settled_at: None,
        settled_by: None,
    }
}

async fn reservations_invoiced_released_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(SCOPES);
    client(&app, &token, "C-1", "EUR", "10000.00").await;
    client(&app, &token, "C-2", "EUR", "10000.00").await;
    let rows = [
        reservation("D-1", "C-1", 300_000, TimeDelta::days(7)),
        reservation("D-2", "C-1", 100_000, TimeDelta::days(7)),
        reservation("D-3", "C-1", 50_000, TimeDelta::seconds(-1)),
        reservation("D-9", "C-2", 10_000, TimeDelta::days(7)),
    ];
    app.store()
        .run(move |conn| rows.iter().try_for_each(|r| reservations::insert(conn, r)))
        .await
        .unwrap();
    assert_eq!(
        get_client(&app, &token, "C-1").await["exposure"]["reserved"],
        "4000.00"
    );
    let mut converted = invoice("v1", "C-1", "F1", "2900.00", 0, 30);
    converted["decision_id"] = json!("D-1");
    let mut late = invoice("v2", "C-1", "F2", "500.00", 0, 30);
    late["decision_id"] = json!("D-3");
    let mut foreign = invoice("v3", "C-1", "F3", "1.00", 0, 30);
    foreign["decision_id"] = json!("D-9");
    let cancel = |id: &str, d: &str| ev(id, "C-1", "order_cancelled", json!({"decision_id": d}));
    let answer = post(
        &app,
        &token,
        &[
            converted,
            late,
            foreign,
            cancel("x1", "D-2"),
            cancel("x2", "D-2"),
            cancel("x3", "D-404"),
        ],
    )
    .await;
    assert_eq!(
        statuses(&answer),
        [
            "accepted", "accepted", "rejected", "accepted", "rejected", "rejected"
        ]
    );
    let r = &answer.body["results"];
    assert_eq!(r[1]["notices"][0]["code"], "RESERVATION_NOT_ACTIVE");
    assert_eq!(r[2]["error"]["code"], "unknown_decision");
    assert_eq!(r[4]["error"]["code"], "reservation_not_active");
    assert_eq!(r[5]["error"]["code"], "unknown_decision");
    let state = get_client(&app, &token, "C-1").await;
    assert_eq!(
        state["exposure"],
        json!({"open_invoices": "3400.00", "reserved": "0.00", "total": "3400.00"})
    );
    let settled = app
        .store()
        .run(|conn| reservations::get(conn, "D-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (settled.status.as_str(), settled.settled_by.as_deref()),
        ("invoiced", Some("event:v1"))
    );
    let released = app
        .store()
        .run(|conn| reservations::get(conn, "D-2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(released.status, "released");
}

async fn scopes_and_batch_bounds(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let reader = app.token("clients:read");
    post(&app, &reader, &[]).await.problem(403, "forbidden");
    let token = app.token(SCOPES);
    let empty = post(&app, &token, &[]).await;
    assert_eq!(
        empty.problem(422, "validation_failed")["errors"][0]["field"],
        "events"
    );
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"event_id": format!("e{i}")}))
        .collect();
    post(&app, &token, &many)
        .await
        .problem(422, "validation_failed");
    let unknown = app
        .call(
            "POST",
            "/v1/events",
            Some(&token),
            Some(("application/json", br#"{"events":[],"x":1}"#.to_vec())),
        )
        .await;
    unknown.problem(422, "validation_failed");
}

on_both_backends!(
    idempotency_both_ways,
    a_mixed_batch,
    concurrent_batches_for_one_client,
    reservations_invoiced_released_refused,
    scopes_and_batch_bounds,
);
