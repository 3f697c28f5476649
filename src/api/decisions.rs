//! `/v1/credit-decisions`: decide, read, list, and resolve what was referred to review.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Authed, DecisionsRead, DecisionsWrite, ReviewsWrite};
use super::cursor;
use super::error::ApiError;
use super::json::{AmountText, Json, Problems, text};
use super::requests::CreditRequestInput;
use crate::AppState;
use crate::domain::ClientId;
use crate::service::answer::CreditDecision;
use crate::service::decisions::{self as service, DecisionRecord, Resolution};
use crate::store::decisions::{DecisionQuery, Listing};

fn ttl(state: &AppState) -> Duration {
    Duration::seconds(i64::try_from(state.settings.reservation_ttl_secs).unwrap_or(i64::MAX / 2))
}

/// Decide on a credit request: how much, on what terms, with what deposit, and why.
///
/// 201 with the decision, reserved and audited before the answer leaves; 200 with the first
/// answer when the same `request_id` comes again with the same body; 409
/// `idempotency_conflict` with another body. An unknown client needs a `prospect` block
/// (404 `unknown_client` otherwise); another currency than the client's is 422
/// `currency_mismatch`.
#[utoipa::path(
    post, path = "/v1/credit-decisions", tag = "decisions",
    request_body = CreditRequestInput,
    responses(
        (status = 201, description = "Decided", body = CreditDecision),
        (status = 200, description = "The first answer to this request_id", body = CreditDecision),
        (status = 404, description = "`unknown_client`: no such client and no `prospect` block", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "request_id reused with another body", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["decisions:write"]))
)]
pub async fn decide(
    auth: Authed<DecisionsWrite>,
    state: web::Data<AppState>,
    body: Json<CreditRequestInput>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0.validate()?;
    let decided = service::decide(
        &state.store,
        state.policies.clone(),
        &state.decisions,
        ttl(&state),
        request,
        auth.actor(),
    )
    .await?;
    // The answer as stored (what a retry is answered too), not serialised a second time.
    let mut answer = if decided.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(answer
        .content_type(ContentType::json())
        .body(decided.answer))
}

/// A decision as answered, and what became of it.
#[derive(Serialize, ToSchema)]
pub struct DecisionView {
    #[serde(flatten)]
    pub decision: CreditDecision,
    /// For a review: the decision that resolved it, or null while it waits.
    pub resolved_by: Option<String>,
}

impl From<DecisionRecord> for DecisionView {
    fn from(r: DecisionRecord) -> Self {
        Self {
            decision: r.decision,
            resolved_by: r.resolved_by,
        }
    }
}

/// One decision.
#[utoipa::path(
    get, path = "/v1/credit-decisions/{decision_id}", tag = "decisions",
    params(("decision_id" = String, Path, format = "uuid", description = "The decision")),
    responses((status = 200, description = "The decision", body = DecisionView)),
    security(("bearer" = ["decisions:read"]))
)]
pub async fn get_decision(
    _auth: Authed<DecisionsRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<DecisionView>, ApiError> {
    let id = decision_id(&path)?;
    Ok(web::Json(service::get(&state.store, id).await?.into()))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub client_id: Option<String>,
    /// `approved`, `conditional`, `review` or `declined`.
    #[param(pattern = r"^(?:approved|conditional|review|declined)$")]
    pub outcome: Option<String>,
    /// Reviews only: `false` for the queue waiting for a credit manager, `true` for resolved.
    pub resolved: Option<bool>,
    /// Decided at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Decided before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// 1..500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DecisionPage {
    pub items: Vec<DecisionView>,
    pub next_cursor: Option<String>,
}

/// Decisions, newest first; `outcome=review&resolved=false` is the review queue.
///
/// Every decision by decision time; with `client_id`, that client's decisions in the order
/// the audit log recorded them.
#[utoipa::path(
    get, path = "/v1/credit-decisions", tag = "decisions",
    params(ListQuery),
    responses((status = 200, description = "A page of decisions", body = DecisionPage)),
    security(("bearer" = ["decisions:read"]))
)]
pub async fn list_decisions(
    _auth: Authed<DecisionsRead>,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<DecisionPage>, ApiError> {
    let q = query.into_inner();
    let mut p = Problems::default();
    let client_id = q
        .client_id
        .as_deref()
        .and_then(|c| p.check("client_id", ClientId::parse(c)))
        .map(|c| c.to_string());
    if let Some(o) = &q.outcome
        && !["approved", "conditional", "review", "declined"].contains(&o.as_str())
    {
        p.push(
            "outcome",
            "must be approved, conditional, review or declined",
        );
    }
    let limit = cursor::limit(q.limit, &mut p);
    let after = q
        .cursor
        .as_deref()
        .and_then(|c| p.check("cursor", cursor::decode(c)))
        .map(|(t, id)| (t.naive_utc(), id));
    p.finish()?;
    // A client's decisions come in the order the audit log recorded them, every decision by
    // decision time; both page by the last item's (time, id).
    let listing = match client_id {
        Some(client_id) => Listing::Client { client_id, after },
        None => Listing::All { after },
    };
    let query = DecisionQuery {
        listing,
        outcome: q.outcome,
        resolved: q.resolved,
        from: q.from.map(|t| t.naive_utc()),
        to: q.to.map(|t| t.naive_utc()),
        limit: limit + 1,
    };
    let items = service::list(&state.store, query).await?;
    let (items, next_cursor) = cursor::page(items, limit, |r| {
        (r.decision.decided_at, r.decision.decision_id.as_str())
    });
    Ok(web::Json(DecisionPage {
        items: items.into_iter().map(DecisionView::from).collect(),
        next_cursor,
    }))
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionOutcome {
    Approved,
    Conditional,
    Declined,
}

/// A credit manager's verdict on a referred request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolutionInput {
    pub outcome: ResolutionOutcome,
    /// Defaults to the amount requested.
    pub approved_amount: Option<AmountText>,
    /// Defaults to the terms of the referred decision.
    #[schema(minimum = 0, maximum = 365)]
    #[serde(default, deserialize_with = "super::json::whole_or_null")]
    pub terms_days: Option<i64>,
    /// 0..100.
    #[schema(schema_with = super::json::percent)]
    pub deposit_percent: Option<AmountText>,
    /// Why: kept with the decision and in the audit log.
    #[schema(schema_with = super::json::text_2000)]
    pub comment: String,
}

/// Resolve a review: a new decision pointing to the original (which is never edited). Approving
/// reserves atomically (409 `insufficient_credit` when the room is gone); a second resolution
/// is 409 `review_already_resolved`. The reviewer's `sub` is kept.
#[utoipa::path(
    post, path = "/v1/credit-decisions/{decision_id}/resolution", tag = "decisions",
    params(("decision_id" = String, Path, format = "uuid", description = "The review to resolve")),
    request_body = ResolutionInput,
    responses(
        (status = 201, description = "The resolving decision", body = CreditDecision),
        (status = 409, description = "Already resolved, not a review, or no room left", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["reviews:write"]))
)]
pub async fn resolve(
    auth: Authed<ReviewsWrite>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<ResolutionInput>,
) -> Result<HttpResponse, ApiError> {
    let id = decision_id(&path)?;
    let input = body.0;
    let mut p = Problems::default();
    let comment = p.check("comment", text(&input.comment, 2000));
    let approved_amount = input
        .approved_amount
        .as_ref()
        .and_then(|a| p.check("approved_amount", decimal(&a.0, Decimal::MAX)));
    let deposit_percent = input
        .deposit_percent
        .as_ref()
        .and_then(|d| p.check("deposit_percent", decimal(&d.0, Decimal::ONE_HUNDRED)));
    let terms_days = match input.terms_days {
        Some(d) => p.check(
            "terms_days",
            u32::try_from(d)
                .ok()
                .filter(|d| *d <= 365)
                .ok_or_else(|| "must be 0 to 365".to_string()),
        ),
        None => None,
    };
    p.finish()?;
    let resolution = Resolution {
        outcome: match input.outcome {
            ResolutionOutcome::Approved => "approved",
            ResolutionOutcome::Conditional => "conditional",
            ResolutionOutcome::Declined => "declined",
        },
        approved_amount,
        terms_days,
        deposit_percent,
        comment: comment.unwrap_or_default(),
    };
    let decision =
        service::resolve(&state.store, ttl(&state), id, resolution, auth.actor()).await?;
    Ok(HttpResponse::Created().json(decision))
}

/// A plain non-negative decimal (no sign, exponent or spaces) not above `max`.
fn decimal(raw: &str, max: Decimal) -> Result<Decimal, String> {
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match raw.split_once('.') {
        Some((i, f)) => plain(i) && plain(f),
        None => plain(raw),
    };
    let value = ok
        .then(|| raw.parse::<Decimal>().ok())
        .flatten()
        .ok_or_else(|| format!("`{raw}` is not a plain decimal like \"30\" or \"1250.00\""))?;
    if value > max {
        return Err(format!("must be at most {max}"));
    }
    Ok(value)
}

fn decision_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::field("decision_id", "must be a decision id (a UUID)"))
}
