//! `POST /v1/policies/{name}/versions/{version}/backtest`: what a version would have decided
//! on logged decisions. Read-only.

use actix_web::web;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Authed, PoliciesRead};
use super::error::ApiError;
use super::json::{Json, Problems};
use super::policies::policy_name;
use crate::AppState;
use crate::service::backtest::{self as service, Backtest, ChangesPage, MAX_DECISIONS, Window};

const MAX_CHANGES: i64 = 1_000;
const DEFAULT_CHANGES: i64 = 100;

/// Which logged decisions to re-run, and which page of the changed ones to list.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestInput {
    /// Decided at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Decided before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// The most recent this many decisions of the period: 1..100000, default 100000.
    #[schema(minimum = 1, maximum = 100_000)]
    pub limit: Option<i64>,
    /// Changed decisions listed per page: 1..1000, default 100.
    #[schema(minimum = 1, maximum = 1_000)]
    pub changes_limit: Option<i64>,
    /// `next_cursor` of the previous page; send the same `from`, `to` and `limit` with it.
    /// The window stays the one of the first page even if decisions were made since.
    pub cursor: Option<String>,
}

/// The backtest, with a page of the decisions it changes.
#[derive(Serialize, ToSchema)]
pub struct BacktestReport {
    #[serde(flatten)]
    pub backtest: Backtest,
    /// Present when more changed decisions follow; re-runs the same window.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// The window's last audit sequence.
    u: i64,
    /// The last change listed.
    s: i64,
}

/// Re-runs logged decisions (the most recent `limit` decided in `[from, to)`) from their audit
/// snapshots with this version in place of the one of its stage they recorded — every other
/// stage as recorded — and compares with what was answered: how many replayed, how many
/// changed and which, the outcome-change matrix, approved amounts and deposits per currency,
/// terms. Decisions the stage did not run in, or whose other versions are missing, are
/// counted as skipped. Nothing is written.
#[utoipa::path(
    post, path = "/v1/policies/{name}/versions/{version}/backtest", tag = "policies",
    params(
        ("name" = String, Path, min_length = 1, max_length = 64, pattern = r"^[a-z0-9_]{1,64}$", description = "The stage"),
        ("version" = i32, Path, minimum = 1, description = "The version to try"),
    ),
    request_body = BacktestInput,
    responses(
        (status = 200, description = "The comparison", body = BacktestReport),
        (status = 404, description = "No such policy or version", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["policies:read"]))
)]
pub async fn backtest(
    _auth: Authed<PoliciesRead>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Json<BacktestInput>,
) -> Result<web::Json<BacktestReport>, ApiError> {
    let (name, version) = path.into_inner();
    let input = body.0;
    let name = policy_name(&name)?;
    let mut p = Problems::default();
    let version = p.check("version", version_number(&version));
    let limit = bounded(
        &mut p,
        "limit",
        input.limit,
        MAX_DECISIONS.into(),
        MAX_DECISIONS.into(),
    );
    let changes = bounded(
        &mut p,
        "changes_limit",
        input.changes_limit,
        DEFAULT_CHANGES,
        MAX_CHANGES,
    );
    if let (Some(from), Some(to)) = (input.from, input.to)
        && from > to
    {
        p.push("to", "must not be before `from`");
    }
    let cursor = input
        .cursor
        .as_deref()
        .and_then(|c| p.check("cursor", decode(c)));
    p.finish()?;
    let window = Window {
        from: input.from,
        to: input.to,
        limit: u32::try_from(limit).unwrap_or(MAX_DECISIONS),
        upto: cursor.as_ref().map(|c| c.u),
    };
    let page = ChangesPage {
        after: cursor.as_ref().map(|c| c.s),
        limit: usize::try_from(changes).unwrap_or(0),
    };
    let backtest = service::backtest(
        &state.store,
        state.policies.clone(),
        name,
        version.unwrap_or_default(),
        window,
        page,
    )
    .await?;
    let next_cursor = backtest
        .more_changes
        .then(|| backtest.changes.last())
        .flatten()
        .map(|last| encode(backtest.upto, last.sequence));
    Ok(web::Json(BacktestReport {
        backtest,
        next_cursor,
    }))
}

fn version_number(raw: &str) -> Result<i32, String> {
    raw.parse::<i32>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| "must be a whole number from 1".into())
}

/// `raw` or `default`, which must lie in 1..=`max`.
fn bounded(p: &mut Problems, field: &str, raw: Option<i64>, default: i64, max: i64) -> i64 {
    let value = raw.unwrap_or(default);
    if !(1..=max).contains(&value) {
        p.push(field, format!("must be 1 to {max}"));
    }
    value
}

fn encode(upto: i64, sequence: i64) -> String {
    let json = serde_json::to_vec(&Cursor {
        u: upto,
        s: sequence,
    })
    .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

fn decode(raw: &str) -> Result<Cursor, String> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| "is not a cursor returned by this API".to_string())
}
