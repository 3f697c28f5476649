//! A credit request: the question a checkout or an ERP asks for one order.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{ClientId, ClientStatus, Country, LegalStatus, Sector};
use super::money::{Currency, Money};
use super::{Client, LiveState};

/// Longest terms a request may ask for. The legal 60-day ceiling is a policy (`terms`), so
/// that a request above it is answered with shortened terms rather than refused.
pub const MAX_REQUESTED_TERMS_DAYS: u32 = 365;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Checkout,
    Erp,
    Manual,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checkout => "checkout",
            Self::Erp => "erp",
            Self::Manual => "manual",
        }
    }
}

/// Who a new buyer is, when the request is the first we hear of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Prospect {
    pub name: String,
    pub registration_number: Option<String>,
    pub country: Country,
    pub sector: Option<Sector>,
}

/// A validated credit request.
#[derive(Clone, Debug, PartialEq)]
pub struct CreditRequest {
    pub request_id: String,
    pub client_id: ClientId,
    pub amount: Money,
    pub requested_terms_days: u32,
    pub channel: Channel,
    pub order_ref: Option<String>,
    pub prospect: Option<Prospect>,
}

impl CreditRequest {
    pub fn currency(&self) -> Currency {
        self.amount.currency()
    }

    /// The `request` object policy scripts read: the request as the API shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "request_id": self.request_id,
            "client_id": self.client_id.as_str(),
            "amount": self.amount.to_string(),
            "currency": self.currency().code(),
            "requested_terms_days": self.requested_terms_days,
            "channel": self.channel.as_str(),
            "order_ref": self.order_ref,
        })
    }

    /// Everything the caller sent, for comparing a retry with the first request.
    pub fn idempotency_json(&self) -> Value {
        json!({
            "request": self.to_json(),
            "prospect": self.prospect.as_ref().map(|p| json!({
                "name": p.name,
                "registration_number": p.registration_number,
                "country": p.country.code(),
                "sector": p.sector.as_ref().map(|s| s.as_str()),
            })),
        })
    }

    /// The client a prospect would be: no history, no limit, nothing owed.
    pub fn prospect_client(&self, at: chrono::DateTime<chrono::Utc>) -> Option<Client> {
        let p = self.prospect.as_ref()?;
        let zero = Money::zero(self.currency());
        Some(Client {
            client_id: self.client_id.clone(),
            name: p.name.clone(),
            registration_number: p.registration_number.clone(),
            country: p.country.code().to_owned(),
            sector: p.sector.as_ref().map(|s| s.as_str().to_owned()),
            currency: self.currency(),
            status: ClientStatus::Active,
            is_prospect: true,
            credit_limit: zero,
            state: LiveState {
                open_invoices: zero,
                reserved: zero,
                overdue: zero,
                oldest_overdue_due_on: None,
                invoices_paid: 0,
                paid_late: 0,
                total_days_late: 0,
                insurance: None,
                external_score: None,
                alerts_negative: 0,
                alerts_positive: 0,
                legal_status: LegalStatus::None,
                risk: None,
            },
            created_at: at,
            updated_at: at,
        })
    }
}
