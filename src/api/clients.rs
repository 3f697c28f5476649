//! `/v1/clients`: create or update a client, read it with its live state, list clients.

use actix_web::{HttpResponse, web};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Authed, ClientsRead, ClientsWrite};
use super::cursor;
use super::error::ApiError;
use super::json::{AmountText, CountryCode, CurrencyCode, Json, Problems, text};
use crate::AppState;
use crate::audit::AuditRef;
use crate::domain::{
    ClientId, ClientProfile, ClientStatus, ClientView, Country, Currency, Money, RiskBand, Sector,
};
use crate::service::clients as service;

/// The body of `PUT /v1/clients/{client_id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// Legal name, 1..200 characters.
    #[schema(schema_with = super::json::text_200, example = "Boulangeries Martin SAS")]
    pub name: String,
    /// Company registration number (SIREN, Companies House number, …).
    #[schema(schema_with = super::json::text_64_or_null)]
    pub registration_number: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[schema(value_type = CountryCode)]
    pub country: String,
    /// NACE activity code.
    #[schema(
        example = "C10.71",
        pattern = r"^(?:[A-Z]|[A-Z]?[0-9]{2}(?:\.[0-9]{1,2})?)$"
    )]
    pub sector: Option<String>,
    /// ISO 4217 account currency; cannot change once the client exists.
    #[schema(value_type = CurrencyCode)]
    pub currency: String,
    /// Standing credit limit in the account currency.
    pub credit_limit: AmountText,
    /// Defaults to `active` for a new client; absent keeps the current status.
    pub status: Option<ClientStatus>,
}

impl ClientInput {
    fn validate(self) -> Result<ClientProfile, ApiError> {
        let mut p = Problems::default();
        let name = p.check("name", text(&self.name, 200));
        let registration_number = match &self.registration_number {
            Some(r) => p.check("registration_number", text(r, 64)).map(Some),
            None => Some(None),
        };
        let country = p.check("country", Country::parse(&self.country));
        let sector = match &self.sector {
            Some(s) => p.check("sector", Sector::parse(s)).map(Some),
            None => Some(None),
        };
        let currency = p.check("currency", Currency::parse(&self.currency));
        let credit_limit =
            currency.and_then(|c| p.check("credit_limit", Money::parse(&self.credit_limit.0, c)));
        p.finish()?;
        match (
            name,
            registration_number,
            country,
            sector,
            currency,
            credit_limit,
        ) {
            (
                Some(name),
                Some(registration_number),
                Some(country),
                Some(sector),
                Some(currency),
                Some(credit_limit),
            ) => Ok(ClientProfile {
                name,
                registration_number,
                country,
                sector,
                currency,
                credit_limit,
                status: self.status,
            }),
            _ => Err(ApiError::field("body", "invalid client")),
        }
    }
}

/// The answer to a `PUT`: the client, and the audit record of the change (null when the body
/// changed nothing, so no record was needed).
#[derive(Serialize, ToSchema)]
pub struct ClientWritten {
    #[serde(flatten)]
    pub client: ClientView,
    pub audit: Option<AuditRef>,
}

#[derive(Serialize, ToSchema)]
pub struct ClientPage {
    pub items: Vec<ClientView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Risk band A..E.
    #[param(value_type = Option<RiskBand>)]
    pub band: Option<String>,
    /// `active` or `blocked`.
    #[param(value_type = Option<ClientStatus>)]
    pub status: Option<String>,
    /// 1..500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

fn client_id(raw: &str) -> Result<ClientId, ApiError> {
    ClientId::parse(raw).map_err(|m| ApiError::field("client_id", m))
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Create or update a client.
///
/// 201 when created, 200 when updated; each change is an audit record written in the same
/// transaction. A body identical to the stored profile changes nothing and records nothing.
#[utoipa::path(
    put, path = "/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$", description = "The ERP's customer number: 1..64 of [A-Za-z0-9._-]")),
    request_body = ClientInput,
    responses(
        (status = 201, description = "Created", body = ClientWritten),
        (status = 200, description = "Updated (or unchanged)", body = ClientWritten),
    ),
    security(("bearer" = ["clients:write"]))
)]
pub async fn put_client(
    auth: Authed<ClientsWrite>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Json<ClientInput>,
) -> Result<HttpResponse, ApiError> {
    let id = client_id(&path)?;
    let profile = body.0.validate()?;
    let done = service::upsert(&state.store, id, profile, auth.actor()).await?;
    let answer = ClientWritten {
        client: ClientView::new(&done.client, today()),
        audit: done.audit,
    };
    Ok(if done.created {
        HttpResponse::Created().json(answer)
    } else {
        HttpResponse::Ok().json(answer)
    })
}

/// A client's profile and live state.
#[utoipa::path(
    get, path = "/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$", description = "The ERP's customer number")),
    responses((status = 200, description = "The client", body = ClientView)),
    security(("bearer" = ["clients:read"]))
)]
pub async fn get_client(
    _auth: Authed<ClientsRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<ClientView>, ApiError> {
    let id = client_id(&path)?;
    let client = service::get(&state.store, id).await?;
    Ok(web::Json(ClientView::new(&client, today())))
}

/// Clients, newest first, filtered by risk band and status.
#[utoipa::path(
    get, path = "/v1/clients", tag = "clients",
    params(ListQuery),
    responses((status = 200, description = "A page of clients", body = ClientPage)),
    security(("bearer" = ["clients:read"]))
)]
pub async fn list_clients(
    _auth: Authed<ClientsRead>,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<ClientPage>, ApiError> {
    let q = query.into_inner();
    let mut p = Problems::default();
    let band = q
        .band
        .as_deref()
        .and_then(|b| p.check("band", RiskBand::parse(b)));
    let status = q
        .status
        .as_deref()
        .and_then(|s| p.check("status", ClientStatus::parse(s)));
    let limit = cursor::limit(q.limit, &mut p);
    let after = q
        .cursor
        .as_deref()
        .and_then(|c| p.check("cursor", cursor::decode(c)));
    p.finish()?;
    let items = service::list(&state.store, band, status, after, limit + 1).await?;
    let (items, next_cursor) = cursor::page(items, limit, |c| (c.created_at, c.client_id.as_str()));
    let today = today();
    Ok(web::Json(ClientPage {
        items: items
            .into_iter()
            .map(|c| ClientView::new(&c, today))
            .collect(),
        next_cursor,
    }))
}
