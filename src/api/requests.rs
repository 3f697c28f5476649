//! The credit request body, shared by `POST /v1/credit-decisions` and
//! `POST /v1/policies/evaluate`.

use serde::Deserialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::json::{AmountText, CountryCode, CurrencyCode, Problems, text};
use crate::domain::{
    Channel, ClientId, Country, CreditRequest, Currency, MAX_REQUESTED_TERMS_DAYS, Money, Prospect,
    Sector,
};

/// "Can this client have this order on credit?"
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditRequestInput {
    /// The caller's idempotency key, 1..128 characters.
    #[schema(schema_with = super::json::text_128, example = "checkout-7f3a91")]
    pub request_id: String,
    #[schema(
        example = "C-001",
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9._-]{1,64}$"
    )]
    pub client_id: String,
    #[schema(schema_with = super::json::positive_amount)]
    pub amount: AmountText,
    /// Must be the client's account currency.
    #[schema(value_type = CurrencyCode)]
    pub currency: String,
    /// 0..365; policies may shorten it (never above the legal 60 days).
    #[schema(example = 45, minimum = 0, maximum = 365)]
    #[serde(deserialize_with = "super::json::whole")]
    pub requested_terms_days: i64,
    pub channel: Channel,
    #[schema(schema_with = super::json::text_128_or_null)]
    pub order_ref: Option<String>,
    /// Used only when `client_id` is unknown: the new buyer, decided on as a prospect.
    pub prospect: Option<ProspectInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProspectInput {
    #[schema(schema_with = super::json::text_200)]
    pub name: String,
    #[schema(schema_with = super::json::text_64_or_null)]
    pub registration_number: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[schema(value_type = CountryCode)]
    pub country: String,
    /// NACE activity code.
    #[schema(pattern = r"^(?:[A-Z]|[A-Z]?[0-9]{2}(?:\.[0-9]{1,2})?)$")]
    pub sector: Option<String>,
}

impl CreditRequestInput {
    /// Validates every field at once, reporting each problem by its path.
    pub fn validate(self) -> Result<CreditRequest, ApiError> {
        let mut p = Problems::default();
        let request_id = p.check("request_id", text(&self.request_id, 128));
        let client_id = p.check("client_id", ClientId::parse(&self.client_id));
        let currency = p.check("currency", Currency::parse(&self.currency));
        let amount = currency.and_then(|c| p.check("amount", Money::parse(&self.amount.0, c)));
        if amount.is_some_and(|a| a.minor() == 0) {
            p.push("amount", "must be greater than zero");
        }
        let terms = p.check(
            "requested_terms_days",
            u32::try_from(self.requested_terms_days)
                .ok()
                .filter(|d| *d <= MAX_REQUESTED_TERMS_DAYS)
                .ok_or_else(|| format!("must be 0 to {MAX_REQUESTED_TERMS_DAYS}")),
        );
        let order_ref = match &self.order_ref {
            Some(r) => p.check("order_ref", text(r, 128)).map(Some),
            None => Some(None),
        };
        let prospect = match self.prospect {
            Some(pi) => {
                let name = p.check("prospect.name", text(&pi.name, 200));
                let registration_number = match &pi.registration_number {
                    Some(r) => p
                        .check("prospect.registration_number", text(r, 64))
                        .map(Some),
                    None => Some(None),
                };
                let country = p.check("prospect.country", Country::parse(&pi.country));
                let sector = match &pi.sector {
                    Some(s) => p.check("prospect.sector", Sector::parse(s)).map(Some),
                    None => Some(None),
                };
                match (name, registration_number, country, sector) {
                    (Some(name), Some(registration_number), Some(country), Some(sector)) => {
                        Some(Some(Prospect {
                            name,
                            registration_number,
                            country,
                            sector,
                        }))
                    }
                    _ => None,
                }
            }
            None => Some(None),
        };
        p.finish()?;
        match (request_id, client_id, amount, terms, order_ref, prospect) {
            (
                Some(request_id),
                Some(client_id),
                Some(amount),
                Some(requested_terms_days),
                Some(order_ref),
                Some(prospect),
            ) => Ok(CreditRequest {
                request_id,
                client_id,
                amount,
                requested_terms_days,
                channel: self.channel,
                order_ref,
                prospect,
            }),
            _ => Err(ApiError::field("body", "invalid credit request")),
        }
    }
}
