//! `/v1/audit`: listing and reading records, verifying the chain, replaying a decision, and
//! exporting the log.

pub mod capture;
pub mod export;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{AuditRead, Authed};
use super::cursor;
use super::error::ApiError;
use super::json::Problems;
use crate::AppState;
use crate::audit::AuditRef;
use crate::domain::ClientId;
use crate::service::audit::{self as service, RecordView, Replay};
use crate::store::audit::RecordFilter;

pub use capture::capture;
pub use export::export;

#[derive(Serialize, ToSchema)]
pub struct VerifyReport {
    /// True when every record's content, position and link check out and the chain ends at
    /// the head the writers recorded.
    pub ok: bool,
    pub records: i64,
    pub head: Option<AuditRef>,
    /// The first record that does not check out (changed, removed, moved or added behind the
    /// service's back).
    pub first_broken: Option<i64>,
}

/// The filters a listing and an export share, as the query gave them.
struct FilterQuery {
    kind: Option<String>,
    client_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl FilterQuery {
    fn filter(&self, p: &mut Problems) -> RecordFilter {
        if let Some(kind) = &self.kind
            && (kind.is_empty()
                || kind.len() > 64
                || !kind
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b"._".contains(&b)))
        {
            p.push("kind", "must be a record kind such as `decision`");
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            p.push("to", "must not be before `from`");
        }
        RecordFilter {
            kind: self.kind.clone(),
            client_id: self
                .client_id
                .as_deref()
                .and_then(|c| p.check("client_id", ClientId::parse(c)))
                .map(|c| c.to_string()),
            from: self.from.map(|t| t.naive_utc()),
            to: self.to.map(|t| t.naive_utc()),
        }
    }
}

#[derive(Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first, the chain's own order (the default).
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// e.g. `decision`, `decision.resolution`, `client.created`, `client.updated`,
    /// `policy.version_created`, `policy.activated`, `client.limit_review`.
    #[param(pattern = r"^[a-z._]{1,64}$")]
    pub kind: Option<String>,
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub client_id: Option<String>,
    /// Recorded at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Recorded before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// `asc` (sequence order, the default) or `desc`.
    #[param(inline)]
    pub order: Option<Order>,
    /// 1..500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RecordPage {
    pub items: Vec<RecordView>,
    pub next_cursor: Option<String>,
}

/// Audit records in sequence order (or newest first with `order=desc`), filtered by kind,
/// client and period.
#[utoipa::path(
    get, path = "/v1/audit/records", tag = "audit",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of records", body = RecordPage),
        (status = 422, description = "A bad filter, limit or cursor", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["audit:read"]))
)]
pub async fn list_records(
    _auth: Authed<AuditRead>,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<RecordPage>, ApiError> {
    let q = query.into_inner();
    let mut p = Problems::default();
    let filter = FilterQuery {
        kind: q.kind,
        client_id: q.client_id,
        from: q.from,
        to: q.to,
    }
    .filter(&mut p);
    let limit = cursor::limit(q.limit, &mut p);
    let after = q
        .cursor
        .as_deref()
        .and_then(|c| p.check("cursor", cursor::decode_sequence(c)));
    p.finish()?;
    let newest_first = matches!(q.order.unwrap_or_default(), Order::Desc);
    let mut rows = service::list(&state.store, filter, after, newest_first, limit + 1).await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(0);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| rows.last().map(|r| cursor::encode_sequence(r.sequence)))
        .flatten();
    Ok(web::Json(RecordPage {
        items: rows.into_iter().map(RecordView::from).collect(),
        next_cursor,
    }))
}

/// One audit record: for a decision, its full input snapshot, policy versions and trace.
#[utoipa::path(
    get, path = "/v1/audit/records/{sequence}", tag = "audit",
    params(("sequence" = i64, Path, minimum = 1, description = "The record's place in the chain, from 1")),
    responses(
        (status = 200, description = "The record", body = RecordView),
        (status = 404, description = "No such record", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["audit:read"]))
)]
pub async fn get_record(
    _auth: Authed<AuditRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<RecordView>, ApiError> {
    let sequence = sequence(&path)?;
    let row = service::record(&state.store, sequence)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("audit record {sequence} does not exist")))?;
    Ok(web::Json(RecordView::from(row)))
}

/// Recomputes the whole chain and reports the first broken record, if any.
#[utoipa::path(
    get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, description = "The verification", body = VerifyReport)),
    security(("bearer" = ["audit:read"]))
)]
pub async fn verify(
    _auth: Authed<AuditRead>,
    state: web::Data<AppState>,
) -> Result<web::Json<VerifyReport>, ApiError> {
    let v = service::verify(&state.store).await?;
    Ok(web::Json(VerifyReport {
        ok: v.first_broken.is_none(),
        records: v.records,
        head: v.head,
        first_broken: v.first_broken,
    }))
}

/// Re-runs a recorded decision with the recorded policy versions (by sha256) on the recorded
/// input snapshot, and reports `identical` or the exact differences. Nothing is written.
#[utoipa::path(
    post, path = "/v1/audit/records/{sequence}/replay", tag = "audit",
    params(("sequence" = i64, Path, minimum = 1, description = "The sequence of a `decision` record")),
    responses(
        (status = 200, description = "The replay", body = Replay),
        (status = 404, description = "No such record", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The record's snapshot cannot be read (verify the chain)", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The record is not a decision", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["audit:read"]))
)]
pub async fn replay(
    _auth: Authed<AuditRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<Replay>, ApiError> {
    let sequence = sequence(&path)?;
    let replay = service::replay(&state.store, state.policies.clone(), sequence).await?;
    Ok(web::Json(replay))
}

fn sequence(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(|| ApiError::field("sequence", "must be a whole number from 1"))
}
