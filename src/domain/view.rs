//! The client as everyone sees it: the API's `GET /v1/clients/{id}`, the `client` object of
//! policy scripts and the snapshot kept with each decision are one and the same shape.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::client::{Client, ClientStatus, LegalStatus, RiskBand, RiskFactor};
use super::money::format_minor;

/// Open invoices + active reservations.
#[derive(Serialize, ToSchema)]
pub struct Exposure {
    pub open_invoices: String,
    pub reserved: String,
    pub total: String,
}

#[derive(Serialize, ToSchema)]
pub struct Overdue {
    pub amount: String,
    /// Days past due of the oldest overdue invoice, as of today.
    pub max_days_past_due: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentBehaviour {
    pub invoices_paid: i64,
    pub paid_late: i64,
    /// Over the invoices paid late; null when none was.
    #[schema(value_type = Option<f64>)]
    pub average_days_late: Option<serde_json::Number>,
}

#[derive(Serialize, ToSchema)]
pub struct InsuranceView {
    pub insurer: String,
    pub insured_amount: String,
    pub valid_until: Option<NaiveDate>,
}

#[derive(Serialize, ToSchema)]
pub struct ExternalScoreView {
    pub provider: String,
    /// 0..100, higher is safer.
    pub score: i64,
    pub as_of: NaiveDate,
}

#[derive(Serialize, ToSchema)]
pub struct Alerts {
    pub negative: i64,
    pub positive: i64,
}

/// Risk as last scored; null score and band until the scoring policy has run.
#[derive(Serialize, ToSchema)]
pub struct RiskView {
    pub score: Option<u8>,
    pub band: Option<RiskBand>,
    pub factors: Vec<RiskFactor>,
}

/// A client with its live state; amounts are exact decimal strings in `currency`.
#[derive(Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub registration_number: Option<String>,
    pub country: String,
    pub sector: Option<String>,
    pub currency: String,
    pub status: ClientStatus,
    pub is_prospect: bool,
    #[schema(example = "12500.00")]
    pub credit_limit: String,
    pub exposure: Exposure,
    /// Limit minus exposure; negative when over the limit.
    pub available_credit: String,
    pub overdue: Overdue,
    pub payment_behaviour: PaymentBehaviour,
    pub insurance: Option<InsuranceView>,
    pub external_score: Option<ExternalScoreView>,
    pub alerts: Alerts,
    pub legal_status: LegalStatus,
    pub risk: RiskView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ClientView {
    pub fn new(c: &Client, today: NaiveDate) -> Self {
        let currency = c.currency;
        let days_past_due = c.max_days_past_due(today);
        let average = c
            .average_days_late()
            .and_then(|d| d.to_string().parse::<serde_json::Number>().ok());
        let (exposure, available) = (c.exposure_minor(), c.available_minor());
        let s = &c.state;
        Self {
            client_id: c.client_id.to_string(),
            name: c.name.clone(),
            registration_number: c.registration_number.clone(),
            country: c.country.clone(),
            sector: c.sector.clone(),
            currency: currency.code().to_owned(),
            status: c.status,
            is_prospect: c.is_prospect,
            credit_limit: c.credit_limit.to_string(),
            exposure: Exposure {
                open_invoices: s.open_invoices.to_string(),
                reserved: s.reserved.to_string(),
                total: format_minor(exposure, currency),
            },
            available_credit: format_minor(available, currency),
            overdue: Overdue {
                amount: s.overdue.to_string(),
                max_days_past_due: days_past_due,
            },
            payment_behaviour: PaymentBehaviour {
                invoices_paid: s.invoices_paid,
                paid_late: s.paid_late,
                average_days_late: average,
            },
            insurance: s.insurance.as_ref().map(|i| InsuranceView {
                insurer: i.insurer.clone(),
                insured_amount: i.insured_amount.to_string(),
                valid_until: i.valid_until,
            }),
            external_score: s.external_score.as_ref().map(|e| ExternalScoreView {
                provider: e.provider.clone(),
                score: e.score,
                as_of: e.as_of,
            }),
            alerts: Alerts {
                negative: s.alerts_negative,
                positive: s.alerts_positive,
            },
            legal_status: s.legal_status,
            risk: match &s.risk {
                Some(r) => RiskView {
                    score: Some(r.score),
                    band: Some(r.band),
                    factors: r.factors.clone(),
                },
                None => RiskView {
                    score: None,
                    band: None,
                    factors: Vec::new(),
                },
            },
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}
