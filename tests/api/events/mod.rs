//! Client events: the batch endpoint, the live state it keeps, limit reviews, rebuild, the
//! scheduled pass, listing and the portfolio.

mod batch;
mod group;
mod migration;
mod reading;
mod rebuild;
mod reviews;
mod state;
mod validation;

use chrono::{NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::support::{Answer, TestApp, client_body};

pub const SCOPES: &str = "events:write clients:read clients:write audit:read";

/// A day relative to today, as the API writes it.
pub fn day(offset: i64) -> String {
    (Utc::now().date_naive() + TimeDelta::days(offset)).to_string()
}

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Noon (UTC) of the day before, `offset_days` away, RFC 3339: in the past for offsets up to
/// 0, and the same all day long, so an event built twice is the same event.
pub fn at(offset_days: i64) -> String {
    let noon = (today() + TimeDelta::days(offset_days - 1)).and_hms_opt(12, 0, 0);
    noon.map(|t| t.and_utc().to_rfc3339()).unwrap_or_default()
}

/// An event: `fields` merged over the common ones.
pub fn ev(id: &str, client: &str, kind: &str, fields: Value) -> Value {
    let mut e = json!({"event_id": id, "client_id": client, "type": kind, "occurred_at": at(0)});
    if let (Some(e), Some(f)) = (e.as_object_mut(), fields.as_object()) {
        for (k, v) in f {
            e.insert(k.clone(), v.clone());
        }
    }
    e
}

pub fn invoice(id: &str, client: &str, inv: &str, amount: &str, issued: i64, due: i64) -> Value {
    ev(
        id,
        client,
        "invoice_issued",
        json!({
            "invoice_id": inv, "amount": amount, "issued_on": day(issued), "due_on": day(due),
            "occurred_at": at(issued),
        }),
    )
}

/// A Coface cover of `insured` until `valid_until` days from today.
pub fn cover(id: &str, client: &str, insured: &str, valid_until: i64) -> Value {
    ev(
        id,
        client,
        "insurance_cover_changed",
        json!({"insurer": "Coface", "insured_amount": insured, "valid_until": day(valid_until)}),
    )
}

pub fn payment(id: &str, client: &str, inv: &str, amount: &str, received: i64) -> Value {
    ev(
        id,
        client,
        "payment_received",
        json!({
            "invoice_id": inv, "amount": amount, "received_on": day(received), "occurred_at": at(received),
        }),
    )
}

pub async fn post(app: &TestApp, token: &str, events: &[Value]) -> Answer {
    let body = json!({ "events": events }).to_string().into_bytes();
    app.call(
        "POST",
        "/v1/events",
        Some(token),
        Some(("application/json", body)),
    )
    .await
}

/// Posts and asserts every event got `status`; returns the answer.
#[track_caller]
pub fn statuses(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|x| x["status"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Creates a client with this currency and limit.
pub async fn client(app: &TestApp, token: &str, id: &str, currency: &str, limit: &str) {
    let created = app
        .put_json(
            &format!("/v1/clients/{id}"),
            token,
            &client_body(currency, limit),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
}

pub async fn get_client(app: &TestApp, token: &str, id: &str) -> Value {
    let read = app.get(&format!("/v1/clients/{id}"), token).await;
    assert_eq!(read.status, 200, "{}", read.text);
    read.body
}
