//! `POST /v1/policies/{name}/versions/{version}/impact`: what a `client_event` version would do
//! to the open book today. Nothing is written.

use actix_web::web;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{Authed, PoliciesRead};
use super::error::ApiError;
use super::json::{CurrencyCode, Json, Problems};
use super::policies::policy_name;
use crate::AppState;
use crate::domain::{Currency, RiskBand};
use crate::service::impact::{self as service, Filter, Impact};

/// Which clients to evaluate; `{}` for the whole book.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpactInput {
    /// Only clients with this account currency.
    #[schema(value_type = Option<CurrencyCode>)]
    pub currency: Option<String>,
    /// Only clients in this risk band now.
    #[schema(value_type = Option<RiskBand>)]
    pub band: Option<String>,
}

/// Runs the `client_event` pipeline (a scheduled review's input) with this version in place
/// of the active one over every current client, and lists the clients whose limit, status or
/// band would change, with the exposure that would sit above the new limits per currency.
/// Nothing is written. 422 when the policy is not a stage of the `client_event` pipeline.
#[utoipa::path(
    post, path = "/v1/policies/{name}/versions/{version}/impact", tag = "policies",
    params(
        ("name" = String, Path, min_length = 1, max_length = 64, pattern = r"^[a-z0-9_]{1,64}$", description = "A stage of the `client_event` pipeline"),
        ("version" = i32, Path, minimum = 1, description = "The version to try"),
    ),
    request_body = ImpactInput,
    responses((status = 200, description = "The impact on the open book", body = Impact)),
    security(("bearer" = ["policies:read"]))
)]
pub async fn impact(
    _auth: Authed<PoliciesRead>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Json<ImpactInput>,
) -> Result<web::Json<Impact>, ApiError> {
    let (name, version) = path.into_inner();
    let name = policy_name(&name)?;
    let input = body.0;
    let mut p = Problems::default();
    let number = p.check(
        "version",
        version
            .parse::<i32>()
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| "must be a whole number from 1".to_owned()),
    );
    let filter = Filter {
        currency: input
            .currency
            .and_then(|c| p.check("currency", Currency::parse(&c))),
        band: input
            .band
            .and_then(|b| p.check("band", RiskBand::parse(&b))),
    };
    p.finish()?;
    let number = number.unwrap_or_default();
    let impact =
        service::impact(&state.store, state.policies.clone(), name, number, filter).await?;
    Ok(web::Json(impact))
}
