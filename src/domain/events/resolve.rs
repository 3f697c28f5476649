//! Why an event is refused, and making a draft exact in its client's currency.

use super::{ClientEvent, EventBody, EventDraft};
use crate::domain::money::{Currency, Money};

/// Why an event was not accepted. `code` is one of the API's problem codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectionCode,
    pub detail: String,
    /// Field problems (`validation_failed`), each by its name in the event.
    pub errors: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionCode {
    ValidationFailed,
    UnknownClient,
    CurrencyMismatch,
    IdempotencyConflict,
    InvoiceAlreadyIssued,
    UnknownDecision,
    ReservationNotActive,
}

impl RejectionCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::UnknownClient => "unknown_client",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::InvoiceAlreadyIssued => "invoice_already_issued",
            Self::UnknownDecision => "unknown_decision",
            Self::ReservationNotActive => "reservation_not_active",
        }
    }
}

impl Rejection {
    pub fn new(code: RejectionCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn fields(errors: Vec<(String, String)>) -> Self {
        let detail = match errors.as_slice() {
            [(field, message)] => format!("{field}: {message}"),
            many => format!("{} fields are invalid", many.len()),
        };
        Self {
            code: RejectionCode::ValidationFailed,
            detail,
            errors,
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::fields(vec![(field.to_owned(), message.into())])
    }
}

impl EventDraft {
    /// Makes the amounts exact in the client's currency.
    pub fn resolve(self, currency: Currency) -> Result<ClientEvent, Rejection> {
        if let Some(given) = self.currency
            && given != currency
        {
            return Err(Rejection::new(
                RejectionCode::CurrencyMismatch,
                format!(
                    "the event is in {given} but the client's account currency is {currency}; no conversion is made"
                ),
            ));
        }
        if self.currency.is_some() && !self.body.has_amount() {
            return Err(Rejection::field(
                "currency",
                format!("a {} event has no amount", self.body.event_type()),
            ));
        }
        let money = |field: &str, text: &str, positive: bool| {
            let m = Money::parse(text, currency).map_err(|e| Rejection::field(field, e))?;
            if positive && m.minor() == 0 {
                return Err(Rejection::field(field, "must be greater than zero"));
            }
            Ok(m)
        };
        let body = match self.body {
            EventBody::InvoiceIssued {
                invoice_id,
                amount,
                issued_on,
                due_on,
                decision_id,
            } => EventBody::InvoiceIssued {
                invoice_id,
                amount: money("amount", &amount, true)?,
                issued_on,
                due_on,
                decision_id,
            },
            EventBody::PaymentReceived {
                invoice_id,
                amount,
                received_on,
            } => EventBody::PaymentReceived {
                invoice_id,
                amount: money("amount", &amount, true)?,
                received_on,
            },
            EventBody::CreditNoteIssued { invoice_id, amount } => EventBody::CreditNoteIssued {
                invoice_id,
                amount: money("amount", &amount, true)?,
            },
            EventBody::InsuranceCoverChanged {
                insurer,
                insured_amount,
                valid_until,
            } => EventBody::InsuranceCoverChanged {
                insurer,
                insured_amount: money("insured_amount", &insured_amount, false)?,
                valid_until,
            },
            EventBody::DunningSent { invoice_id, level } => {
                EventBody::DunningSent { invoice_id, level }
            }
            EventBody::ExternalScoreUpdated {
                provider,
                score,
                as_of,
            } => EventBody::ExternalScoreUpdated {
                provider,
                score,
                as_of,
            },
            EventBody::SalesAlert { sentiment, note } => EventBody::SalesAlert { sentiment, note },
            EventBody::LegalStatusChanged { legal_status } => {
                EventBody::LegalStatusChanged { legal_status }
            }
            EventBody::OrderCancelled { decision_id } => EventBody::OrderCancelled { decision_id },
        };
        Ok(ClientEvent {
            event_id: self.event_id,
            client_id: self.client_id,
            occurred_at: self.occurred_at,
            body,
        })
    }
}
