//! `/v1/events`: the ERP streams client events in batches; `/v1/clients/{id}/events` lists them.

use actix_web::{http::StatusCode, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Authed, ClientsRead, EventsWrite};
use super::error::{ApiError, FieldError, Problem};
use super::json::{Json, Problems};
use crate::AppState;
use crate::domain::ClientId;
use crate::domain::events::{EventType, MAX_BATCH, Rejection, RejectionCode};
use crate::service::events::{self as service, EventStatus, Ingested};
use crate::service::reviews::ReviewRef;

/// A batch of 1..1000 client events. Each is checked on its own: a bad one is rejected with
/// its reason and never blocks the others.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// Each has `event_id` (the idempotency key, 1..128 characters), `client_id`, `type`,
    /// `occurred_at` (RFC 3339), the fields of its type (see the API guide) and optionally
    /// `currency`, which must be the client's.
    ///
    /// An element that is not an object is rejected on its own too (a batch is never refused
    /// for one bad event), so the contract takes any JSON value here.
    #[schema(value_type = Vec<Value>, min_items = 1, max_items = 1000, example = json!([{
        "event_id": "ERP-88121", "client_id": "C-001", "type": "invoice_issued",
        "occurred_at": "2026-03-02T08:00:00Z", "invoice_id": "F-2026-0042",
        "amount": "1250.00", "issued_on": "2026-03-02", "due_on": "2026-04-01"
    }]))]
    pub events: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    Accepted,
    Duplicate,
    Rejected,
}

/// Something the sender should know about an accepted event (payment before its invoice,
/// over-payment, a report older than the one in force, …).
#[derive(Serialize, ToSchema)]
pub struct NoticeView {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct EventResultView {
    /// As sent; null when it was missing or unusable.
    pub event_id: Option<String>,
    pub status: ResultStatus,
    /// Why it was rejected (`validation_failed`, `unknown_client`, `currency_mismatch`,
    /// `idempotency_conflict`, `invoice_already_issued`, `unknown_decision`,
    /// `reservation_not_active`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<NoticeView>,
}

/// One result per event, in the order sent, and the limit reviews the batch triggered.
#[derive(Serialize, ToSchema)]
pub struct BatchResults {
    pub results: Vec<EventResultView>,
    /// Audit records of the limit reviews: a changed limit or status, or a referral.
    pub reviews: Vec<ReviewRef>,
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
}

/// Send client events.
///
/// Accepted events are committed before the answer. After them, each client with accepted
/// events is re-scored and reviewed once (`scoring`, then `on_event`); reviews that change
/// its limit or status, or refer it, are audit records listed in `reviews`.
#[utoipa::path(
    post, path = "/v1/events", tag = "events",
    request_body = EventBatch,
    responses((status = 200, description = "One result per event", body = BatchResults)),
    security(("bearer" = ["events:write"]))
)]
pub async fn post_events(
    auth: Authed<EventsWrite>,
    state: web::Data<AppState>,
    body: Json<EventBatch>,
) -> Result<web::Json<BatchResults>, ApiError> {
    let events = body.0.events;
    if events.is_empty() || events.len() > MAX_BATCH {
        return Err(ApiError::field(
            "events",
            format!("must hold 1 to {MAX_BATCH} events, not {}", events.len()),
        ));
    }
    let done = service::ingest(
        &state.store,
        &state.events,
        state.policies.clone(),
        events,
        auth.actor(),
    )
    .await?;
    Ok(web::Json(view(done)))
}

fn view(done: Ingested) -> BatchResults {
    let count = |f: fn(&EventStatus) -> bool| done.count(f);
    let accepted = count(|s| matches!(s, EventStatus::Accepted));
    let duplicates = count(|s| matches!(s, EventStatus::Duplicate));
    let rejected = count(|s| matches!(s, EventStatus::Rejected(_)));
    let results = done
        .results
        .into_iter()
        .map(|r| {
            let (status, error) = match r.status {
                EventStatus::Accepted => (ResultStatus::Accepted, None),
                EventStatus::Duplicate => (ResultStatus::Duplicate, None),
                EventStatus::Rejected(why) => (ResultStatus::Rejected, Some(problem(why))),
            };
            EventResultView {
                event_id: r.event_id,
                status,
                error,
                notices: r
                    .notices
                    .into_iter()
                    .map(|n| NoticeView {
                        code: n.code.to_owned(),
                        message: n.message,
                    })
                    .collect(),
            }
        })
        .collect();
    BatchResults {
        results,
        reviews: done.reviews,
        accepted,
        duplicates,
        rejected,
    }
}

/// The problem an event would have been answered with on its own.
fn problem(why: Rejection) -> Problem {
    let status = match why.code {
        RejectionCode::ValidationFailed | RejectionCode::CurrencyMismatch => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        RejectionCode::UnknownClient | RejectionCode::UnknownDecision => StatusCode::NOT_FOUND,
        RejectionCode::IdempotencyConflict
        | RejectionCode::InvoiceAlreadyIssued
        | RejectionCode::ReservationNotActive => StatusCode::CONFLICT,
    };
    let mut p = Problem::new(status, why.code.as_str(), why.detail);
    p.errors = why
        .errors
        .into_iter()
        .map(|(field, message)| FieldError::new(field, message))
        .collect();
    p
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only these types, comma-separated (`invoice_issued,payment_received`).
    #[serde(rename = "type")]
    #[param(
        rename = "type",
        pattern = r"^\s*(?:invoice_issued|payment_received|credit_note_issued|dunning_sent|insurance_cover_changed|external_score_updated|sales_alert|legal_status_changed|order_cancelled)\s*(?:,\s*(?:invoice_issued|payment_received|credit_note_issued|dunning_sent|insurance_cover_changed|external_score_updated|sales_alert|legal_status_changed|order_cancelled)\s*)*$"
    )]
    pub type_: Option<String>,
    /// 1..500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// From the previous page's `next_cursor`.
    #[param(pattern = r"^[+-]?[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// One logged event: the event as accepted (normalised) and when and from whom it came.
#[derive(Serialize, ToSchema)]
pub struct LoggedEvent {
    /// Arrival order across all clients.
    pub sequence: i64,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub received_by: String,
    #[schema(value_type = Object)]
    pub event: Value,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<LoggedEvent>,
    pub next_cursor: Option<String>,
}

/// A client's events, newest first.
#[utoipa::path(
    get, path = "/v1/clients/{client_id}/events", tag = "events",
    params(("client_id" = String, Path, min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$", description = "The ERP's customer number"), EventsQuery),
    responses((status = 200, description = "A page of events", body = EventPage)),
    security(("bearer" = ["clients:read"]))
)]
pub async fn list_events(
    _auth: Authed<ClientsRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<web::Json<EventPage>, ApiError> {
    let q = query.into_inner();
    let mut p = Problems::default();
    let id = p.check("client_id", ClientId::parse(&path));
    let types: Vec<&'static str> = match q.type_.as_deref() {
        Some(list) => list
            .split(',')
            .filter_map(|t| p.check("type", EventType::parse(t.trim())))
            .map(EventType::as_str)
            .collect(),
        None => Vec::new(),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        p.push("limit", "must be 1 to 500");
    }
    let before = q.cursor.as_deref().and_then(|c| {
        p.check(
            "cursor",
            c.parse::<i64>()
                .map_err(|_| "is not a cursor returned by this API".to_string()),
        )
    });
    p.finish()?;
    let id = id.ok_or_else(|| ApiError::field("client_id", "invalid"))?;
    let mut rows = service::list(&state.store, id, types, before, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|r| LoggedEvent {
            sequence: r.seq,
            received_at: r.received_at.and_utc(),
            received_by: r.received_by,
            event: serde_json::from_str(&r.body).unwrap_or(Value::Null),
        })
        .collect();
    Ok(web::Json(EventPage { items, next_cursor }))
}
