//! `/v1/policies/{name}/versions/{version}/shadow`: run a version beside the active one on
//! live decisions (the champion alone decides), report the comparison, stop it.

use actix_web::{HttpResponse, web};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Authed, PoliciesRead, PoliciesWrite};
use super::cursor;
use super::error::ApiError;
use super::json::{Json, Problems};
use super::policies::policy_name;
use crate::AppState;
use crate::service::shadow::{self as service, Page, ShadowReport};

/// How to shadow.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowInput {
    /// The share of decisions to shadow, in (0, 1]; 1 when absent. Sampling is by decision id,
    /// so the same decisions are sampled by every server process.
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 1, example = 0.25)]
    pub sample_rate: Option<serde_json::Number>,
}

/// Which page of changed decisions.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// Changed decisions per page, 1 to 500 (50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A shadow run with the comparison over the decisions seen so far and one page of the
/// decisions it changed.
#[derive(Serialize, ToSchema)]
pub struct ShadowView {
    #[serde(flatten)]
    pub report: ShadowReport,
    /// The next page of `changes`, when there is one.
    pub next_cursor: Option<String>,
}

impl From<ShadowReport> for ShadowView {
    fn from(report: ShadowReport) -> Self {
        Self {
            next_cursor: report.more_after.map(cursor::encode_sequence),
            report,
        }
    }
}

/// Start shadowing a version (draft or any): each new decision (sampled) is also evaluated with
/// it in place of the active stage, after the decision is committed and never on its path.
/// One run per policy at a time (409 `conflict`: stop the running one first); 422 for a stage
/// outside the credit_request pipeline. This process shadows from its next decision, other
/// server processes within a second.
#[utoipa::path(
    post, path = "/v1/policies/{name}/versions/{version}/shadow", tag = "policies",
    params(
        ("name" = String, Path, min_length = 1, max_length = 64, pattern = r"^[a-z0-9_]{1,64}$", description = "The stage"),
        ("version" = i32, Path, minimum = 1, description = "The challenger version"),
    ),
    request_body = ShadowInput,
    responses(
        (status = 201, description = "Shadowing", body = ShadowView),
        (status = 409, description = "A shadow of this policy already runs", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["policies:write"]))
)]
pub async fn start_shadow(
    auth: Authed<PoliciesWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Json<ShadowInput>,
) -> Result<HttpResponse, ApiError> {
    let (name, number) = version_path(&path)?;
    let rate = match &body.0.sample_rate {
        None => Decimal::ONE,
        Some(n) => sample_rate(n)
            .ok_or_else(|| ApiError::field("sample_rate", "must be a number in (0, 1]"))?,
    };
    let feed = state.shadow.clone();
    let report = service::start(&state.store, feed, name, number, rate, auth.actor()).await?;
    Ok(HttpResponse::Created().json(ShadowView::from(report)))
}

/// The latest run of this version, running or stopped: how many decisions it saw and skipped,
/// the same comparison a backtest reports (outcome matrix, amounts and deposits per currency,
/// terms moves) over them, and the changed decisions, paginated.
#[utoipa::path(
    get, path = "/v1/policies/{name}/versions/{version}/shadow", tag = "policies",
    params(
        ("name" = String, Path, min_length = 1, max_length = 64, pattern = r"^[a-z0-9_]{1,64}$", description = "The stage"),
        ("version" = i32, Path, minimum = 1, description = "The challenger version"),
        ChangesQuery,
    ),
    responses((status = 200, description = "The shadow report", body = ShadowView)),
    security(("bearer" = ["policies:read"]))
)]
pub async fn get_shadow(
    _auth: Authed<PoliciesRead>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<ChangesQuery>,
) -> Result<web::Json<ShadowView>, ApiError> {
    let (name, number) = version_path(&path)?;
    let page = page(&query)?;
    let report = service::report(&state.store, name, number, page).await?;
    Ok(web::Json(report.into()))
}

/// Stop the running shadow of this version; answers its final report (decisions made before
/// the stop that the shadow thread has not compared yet are added when it does).
#[utoipa::path(
    delete, path = "/v1/policies/{name}/versions/{version}/shadow", tag = "policies",
    params(
        ("name" = String, Path, min_length = 1, max_length = 64, pattern = r"^[a-z0-9_]{1,64}$", description = "The stage"),
        ("version" = i32, Path, minimum = 1, description = "The challenger version"),
    ),
    responses((status = 200, description = "Stopped", body = ShadowView)),
    security(("bearer" = ["policies:write"]))
)]
pub async fn stop_shadow(
    auth: Authed<PoliciesWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<ShadowView>, ApiError> {
    let (name, number) = version_path(&path)?;
    let feed = state.shadow.clone();
    let report = service::stop(
        &state.store,
        feed,
        name,
        number,
        auth.actor(),
        Page::first(),
    )
    .await?;
    Ok(web::Json(report.into()))
}

/// The rate as written, exactly; a number in exponent notation (`1e-3`, what many JSON
/// encoders write for small floats) through its float, a positive rate too small for a
/// decimal becoming the smallest one.
fn sample_rate(n: &serde_json::Number) -> Option<Decimal> {
    let text = n.to_string();
    let rate = match text.parse::<Decimal>() {
        Ok(rate) => rate,
        Err(_) => {
            let float = n.as_f64().filter(|f| f.is_finite() && *f > 0.0)?;
            Decimal::from_f64_retain(float)
                .filter(|r| !r.is_zero())
                .unwrap_or(Decimal::new(1, 28))
        }
    };
    (rate > Decimal::ZERO && rate <= Decimal::ONE).then_some(rate)
}

fn version_path((name, version): &(String, String)) -> Result<(String, i32), ApiError> {
    let name = policy_name(name)?;
    let number = version
        .parse::<i32>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::field("version", "must be a whole number from 1"))?;
    Ok((name, number))
}

fn page(query: &ChangesQuery) -> Result<Page, ApiError> {
    let mut p = Problems::default();
    let limit = cursor::limit(query.limit, &mut p);
    let after = query
        .cursor
        .as_deref()
        .and_then(|c| p.check("cursor", cursor::decode_sequence(c)));
    p.finish()?;
    Ok(Page {
        after,
        limit: usize::try_from(limit).unwrap_or(50),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(json: &str) -> Option<Decimal> {
        sample_rate(&serde_json::from_str(json).ok()?)
    }

    #[test]
    fn sample_rates_in_any_json_notation() {
        assert_eq!(rate("0.25"), Some(Decimal::new(25, 2)));
        assert_eq!(rate("1"), Some(Decimal::ONE));
        assert_eq!(rate("1e-3"), Some(Decimal::new(1, 3)));
        assert_eq!(
            rate("5e-324"),
            Some(Decimal::new(1, 28)),
            "positive, however small"
        );
        assert_eq!(rate("0"), None);
        assert_eq!(rate("-0.5"), None);
        assert_eq!(rate("1.5"), None);
        assert_eq!(rate("2e0"), None);
    }
}
