//! Client events: what the ERP reports about a client. An event is first read field by field
//! ([`parse`]: every problem named at once), then made exact in the client's currency
//! ([`EventDraft::resolve`]). Its normalised JSON ([`ClientEvent::to_json`]) is what is stored,
//! compared for idempotency, listed and shown to the `client_event` policies. Pure: no I/O.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

mod parse;
mod resolve;

pub use parse::{parse, raw_event_id};
pub use resolve::{Rejection, RejectionCode};

use super::client::{ClientId, LegalStatus};
use super::money::{Currency, Money};

/// Events in one `POST /v1/events`.
pub const MAX_BATCH: usize = 1_000;
macro_rules! event_types {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// The nine kinds of client event.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventType { $($variant),+ }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Result<Self, String> {
                match raw {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(
                        "`{}` is not an event type; one of: {}",
                        other.chars().take(40).collect::<String>(),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

event_types!(
    InvoiceIssued = "invoice_issued",
    PaymentReceived = "payment_received",
    CreditNoteIssued = "credit_note_issued",
    DunningSent = "dunning_sent",
    InsuranceCoverChanged = "insurance_cover_changed",
    ExternalScoreUpdated = "external_score_updated",
    SalesAlert = "sales_alert",
    LegalStatusChanged = "legal_status_changed",
    OrderCancelled = "order_cancelled",
);

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sentiment {
    Positive,
    Negative,
}

impl Sentiment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::Negative => "negative",
        }
    }
}

/// What each type carries. `A` is an amount: its text before the client's currency is known,
/// [`Money`] after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBody<A> {
    InvoiceIssued {
        invoice_id: String,
        amount: A,
        issued_on: NaiveDate,
        due_on: NaiveDate,
        decision_id: Option<String>,
    },
    PaymentReceived {
        invoice_id: String,
        amount: A,
        received_on: NaiveDate,
    },
    CreditNoteIssued {
        invoice_id: String,
        amount: A,
    },
    DunningSent {
        invoice_id: String,
        level: u8,
    },
    InsuranceCoverChanged {
        insurer: String,
        insured_amount: A,
        valid_until: Option<NaiveDate>,
    },
    ExternalScoreUpdated {
        provider: String,
        score: u8,
        as_of: NaiveDate,
    },
    SalesAlert {
        sentiment: Sentiment,
        note: String,
    },
    LegalStatusChanged {
        legal_status: LegalStatus,
    },
    OrderCancelled {
        decision_id: String,
    },
}

impl<A> EventBody<A> {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::InvoiceIssued { .. } => EventType::InvoiceIssued,
            Self::PaymentReceived { .. } => EventType::PaymentReceived,
            Self::CreditNoteIssued { .. } => EventType::CreditNoteIssued,
            Self::DunningSent { .. } => EventType::DunningSent,
            Self::InsuranceCoverChanged { .. } => EventType::InsuranceCoverChanged,
            Self::ExternalScoreUpdated { .. } => EventType::ExternalScoreUpdated,
            Self::SalesAlert { .. } => EventType::SalesAlert,
            Self::LegalStatusChanged { .. } => EventType::LegalStatusChanged,
            Self::OrderCancelled { .. } => EventType::OrderCancelled,
        }
    }

    /// The invoice the event is about, if any.
    pub fn invoice_id(&self) -> Option<&str> {
        match self {
            Self::InvoiceIssued { invoice_id, .. }
            | Self::PaymentReceived { invoice_id, .. }
            | Self::CreditNoteIssued { invoice_id, .. }
            | Self::DunningSent { invoice_id, .. } => Some(invoice_id),
            _ => None,
        }
    }

    /// The credit decision (reservation) the event is about, if any.
    pub fn decision_id(&self) -> Option<&str> {
        match self {
            Self::InvoiceIssued { decision_id, .. } => decision_id.as_deref(),
            Self::OrderCancelled { decision_id } => Some(decision_id),
            _ => None,
        }
    }
}

/// An event read from its JSON, amounts still as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDraft {
    pub event_id: String,
    pub client_id: ClientId,
    pub occurred_at: DateTime<Utc>,
    /// The event's own `currency`, when it gives one: it must be the client's.
    pub currency: Option<Currency>,
    pub body: EventBody<String>,
}

/// An event exact in its client's currency: what is applied, stored and listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEvent {
    pub event_id: String,
    pub client_id: ClientId,
    pub occurred_at: DateTime<Utc>,
    pub body: EventBody<Money>,
}

impl<A> EventBody<A> {
    pub(super) fn has_amount(&self) -> bool {
        matches!(
            self,
            Self::InvoiceIssued { .. }
                | Self::PaymentReceived { .. }
                | Self::CreditNoteIssued { .. }
                | Self::InsuranceCoverChanged { .. }
        )
    }
}

impl ClientEvent {
    pub fn event_type(&self) -> EventType {
        self.body.event_type()
    }

    /// The normalised event: amounts with the currency's minor digits and the currency
    /// itself, times in UTC with microseconds, dates `YYYY-MM-DD`, absent options omitted.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        put("event_id", json!(self.event_id));
        put("client_id", json!(self.client_id.as_str()));
        put("type", json!(self.event_type().as_str()));
        put("occurred_at", json!(rfc3339(self.occurred_at)));
        let day = |d: &NaiveDate| json!(d.format("%Y-%m-%d").to_string());
        match &self.body {
            EventBody::InvoiceIssued {
                invoice_id,
                amount,
                issued_on,
                due_on,
                decision_id,
            } => {
                put("invoice_id", json!(invoice_id));
                put("amount", json!(amount.to_string()));
                put("currency", json!(amount.currency().code()));
                put("issued_on", day(issued_on));
                put("due_on", day(due_on));
                if let Some(d) = decision_id {
                    put("decision_id", json!(d));
                }
            }
            EventBody::PaymentReceived {
                invoice_id,
                amount,
                received_on,
            } => {
                put("invoice_id", json!(invoice_id));
                put("amount", json!(amount.to_string()));
                put("currency", json!(amount.currency().code()));
                put("received_on", day(received_on));
            }
            EventBody::CreditNoteIssued { invoice_id, amount } => {
                put("invoice_id", json!(invoice_id));
                put("amount", json!(amount.to_string()));
                put("currency", json!(amount.currency().code()));
            }
            EventBody::DunningSent { invoice_id, level } => {
                put("invoice_id", json!(invoice_id));
                put("level", json!(level));
            }
            EventBody::InsuranceCoverChanged {
                insurer,
                insured_amount,
                valid_until,
            } => {
                put("insurer", json!(insurer));
                put("insured_amount", json!(insured_amount.to_string()));
                put("currency", json!(insured_amount.currency().code()));
                if let Some(d) = valid_until {
                    put("valid_until", day(d));
                }
            }
            EventBody::ExternalScoreUpdated {
                provider,
                score,
                as_of,
            } => {
                put("provider", json!(provider));
                put("score", json!(score));
                put("as_of", day(as_of));
            }
            EventBody::SalesAlert { sentiment, note } => {
                put("sentiment", json!(sentiment.as_str()));
                put("note", json!(note));
            }
            EventBody::LegalStatusChanged { legal_status } => {
                put("legal_status", json!(legal_status.as_str()));
            }
            EventBody::OrderCancelled { decision_id } => put("decision_id", json!(decision_id)),
        }
        Value::Object(m)
    }

    /// Reads back a stored normalised event (the inverse of [`ClientEvent::to_json`]).
    pub fn from_json(value: &Value, currency: Currency) -> Result<Self, String> {
        let draft = parse(value, DateTime::<Utc>::MAX_UTC).map_err(|r| r.detail)?;
        draft.resolve(currency).map_err(|r| r.detail)
    }
}

/// RFC 3339 in UTC with microseconds: the one textual form of an event time.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
