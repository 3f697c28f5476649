//! `/v1/portfolio`: the book as of now.

use actix_web::web;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::{Authed, ClientsRead};
use super::error::ApiError;
use super::json::CurrencyCode;
use crate::AppState;
use crate::domain::Currency;
use crate::service::portfolio::{self as service, Portfolio};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PortfolioQuery {
    /// Only the book of this account currency.
    #[param(value_type = Option<CurrencyCode>)]
    pub currency: Option<String>,
}

/// The portfolio: per account currency and risk band, clients, exposure, insured exposure and
/// overdue; totals; DSO (formula in the answer); the 10 largest exposures; decisions of the
/// last 30 days by outcome and channel.
#[utoipa::path(
    get, path = "/v1/portfolio", tag = "clients",
    params(PortfolioQuery),
    responses((status = 200, description = "The portfolio", body = Portfolio)),
    security(("bearer" = ["clients:read"]))
)]
pub async fn get_portfolio(
    _auth: Authed<ClientsRead>,
    state: web::Data<AppState>,
    query: web::Query<PortfolioQuery>,
) -> Result<web::Json<Portfolio>, ApiError> {
    let currency = match query.into_inner().currency {
        Some(c) => Some(
            Currency::parse(&c)
                .map_err(|m| ApiError::field("currency", m))?
                .code()
                .to_owned(),
        ),
        None => None,
    };
    Ok(web::Json(service::portfolio(&state.store, currency).await?))
}
