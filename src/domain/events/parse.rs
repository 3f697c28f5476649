//! Reading one event from its JSON, field by field: every problem is reported at once, by the
//! field's name, and unknown fields are refused.

use chrono::{DateTime, Datelike, NaiveDate, SubsecRound, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::{EventBody, EventDraft, EventType, Rejection, Sentiment};
use crate::domain::client::{ClientId, LegalStatus};
use crate::domain::money::Currency;

/// How far ahead of the server's clock `occurred_at` may be (clock skew, time zones).
const MAX_FUTURE: TimeDelta = TimeDelta::days(1);
const MAX_ID_CHARS: usize = 128;
const MAX_NAME_CHARS: usize = 200;
const MAX_NOTE_CHARS: usize = 2_000;
/// Dates outside these years are typing errors, not trade credit.
const YEARS: std::ops::RangeInclusive<i32> = 1970..=2100;
/// Payment terms longer than this are a typing error.
const MAX_TERMS_DAYS: i64 = 3_650;

/// The `event_id` of a raw event, when it has a usable one (for its result line).
pub fn raw_event_id(raw: &Value) -> Option<String> {
    raw.get("event_id")
        .and_then(Value::as_str)
        .filter(|id| identifier(id).is_ok())
        .map(str::to_owned)
}

/// Reads one event, reporting every problem by field name. `now` bounds `occurred_at`.
pub fn parse(raw: &Value, now: DateTime<Utc>) -> Result<EventDraft, Rejection> {
    let Some(map) = raw.as_object() else {
        return Err(Rejection::field("event", "must be a JSON object"));
    };
    let mut f = Fields::new(map);
    let event_id = f.take("event_id", true, |v| identifier(str_of(v)?));
    let client_id = f.take("client_id", true, |v| ClientId::parse(str_of(v)?));
    let occurred_at = f.take("occurred_at", true, |v| timestamp(str_of(v)?, now));
    let currency = f.take("currency", false, |v| Currency::parse(str_of(v)?));
    let kind = f.take("type", true, |v| EventType::parse(str_of(v)?));
    let kind = kind.flatten();
    let body = kind.and_then(|kind| body(&mut f, kind));
    // Without a known type, which fields belong is unknown: only `type` is reported.
    f.finish(kind.is_some())?;
    match (event_id, client_id, occurred_at, currency, body) {
        (
            Some(Some(event_id)),
            Some(Some(client_id)),
            Some(Some(occurred_at)),
            Some(currency),
            Some(body),
        ) => Ok(EventDraft {
            event_id,
            client_id,
            occurred_at,
            currency,
            body,
        }),
        _ => Err(Rejection::field("event", "is invalid")),
    }
}

fn body(f: &mut Fields<'_>, kind: EventType) -> Option<EventBody<String>> {
    let needed = |v: Option<Option<String>>| v.flatten();
    Some(match kind {
        EventType::InvoiceIssued => {
            let invoice_id = needed(f.take("invoice_id", true, |v| identifier(str_of(v)?)));
            let amount = needed(f.take("amount", true, amount_text));
            let issued_on = f.take("issued_on", true, |v| date(str_of(v)?)).flatten();
            let due_on = f.take("due_on", true, |v| date(str_of(v)?)).flatten();
            let decision_id = f.take("decision_id", false, |v| identifier(str_of(v)?));
            if let (Some(issued), Some(due)) = (issued_on, due_on) {
                let terms = (due - issued).num_days();
                if terms < 0 {
                    f.problem("due_on", "must not be before issued_on");
                } else if terms > MAX_TERMS_DAYS {
                    f.problem(
                        "due_on",
                        format!("must be within {MAX_TERMS_DAYS} days of issued_on"),
                    );
                }
            }
            EventBody::InvoiceIssued {
                invoice_id: invoice_id?,
                amount: amount?,
                issued_on: issued_on?,
                due_on: due_on?,
                decision_id: decision_id?,
            }
        }
        EventType::PaymentReceived => {
            let invoice_id = needed(f.take("invoice_id", true, |v| identifier(str_of(v)?)));
            let amount = needed(f.take("amount", true, amount_text));
            let received_on = f.take("received_on", true, |v| date(str_of(v)?)).flatten();
            EventBody::PaymentReceived {
                invoice_id: invoice_id?,
                amount: amount?,
                received_on: received_on?,
            }
        }
        EventType::CreditNoteIssued => {
            let invoice_id = needed(f.take("invoice_id", true, |v| identifier(str_of(v)?)));
            let amount = needed(f.take("amount", true, amount_text));
            EventBody::CreditNoteIssued {
                invoice_id: invoice_id?,
                amount: amount?,
            }
        }
        EventType::DunningSent => {
            let invoice_id = needed(f.take("invoice_id", true, |v| identifier(str_of(v)?)));
            let level = f.take("level", true, |v| small_int(v, 1, 9)).flatten();
            EventBody::DunningSent {
                invoice_id: invoice_id?,
                level: level?,
            }
        }
        EventType::InsuranceCoverChanged => {
            let insurer = needed(f.take("insurer", true, |v| name(str_of(v)?, MAX_NAME_CHARS)));
            let insured_amount = needed(f.take("insured_amount", true, amount_text));
            let valid_until = f.take("valid_until", false, |v| date(str_of(v)?));
            EventBody::InsuranceCoverChanged {
                insurer: insurer?,
                insured_amount: insured_amount?,
                valid_until: valid_until?,
            }
        }
        EventType::ExternalScoreUpdated => {
            let provider = needed(f.take("provider", true, |v| name(str_of(v)?, MAX_NAME_CHARS)));
            let score = f.take("score", true, |v| small_int(v, 0, 100)).flatten();
            let as_of = f.take("as_of", true, |v| date(str_of(v)?)).flatten();
            EventBody::ExternalScoreUpdated {
                provider: provider?,
                score: score?,
                as_of: as_of?,
            }
        }
        EventType::SalesAlert => {
            let sentiment = f
                .take("sentiment", true, |v| match str_of(v)? {
                    "positive" => Ok(Sentiment::Positive),
                    "negative" => Ok(Sentiment::Negative),
                    _ => Err("must be `positive` or `negative`".into()),
                })
                .flatten();
            let note = needed(f.take("note", true, |v| name(str_of(v)?, MAX_NOTE_CHARS)));
            EventBody::SalesAlert {
                sentiment: sentiment?,
                note: note?,
            }
        }
        EventType::LegalStatusChanged => {
            let legal_status = f
                .take("legal_status", true, |v| LegalStatus::parse(str_of(v)?))
                .flatten();
            EventBody::LegalStatusChanged {
                legal_status: legal_status?,
            }
        }
        EventType::OrderCancelled => {
            let decision_id = needed(f.take("decision_id", true, |v| identifier(str_of(v)?)));
            EventBody::OrderCancelled {
                decision_id: decision_id?,
            }
        }
    })
}

/// The fields of one event object: each taken once, unknown ones reported at the end.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    taken: Vec<&'static str>,
    errors: Vec<(String, String)>,
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>) -> Self {
        Self {
            map,
            taken: Vec::with_capacity(8),
            errors: Vec::new(),
        }
    }

    fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push((field.to_owned(), message.into()));
    }

    /// `None`: invalid (recorded). `Some(None)`: absent (or null) and optional.
    fn take<T>(
        &mut self,
        name: &'static str,
        required: bool,
        read: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<Option<T>> {
        self.taken.push(name);
        match self.map.get(name) {
            None | Some(Value::Null) if required => {
                self.problem(name, "is required");
                None
            }
            None | Some(Value::Null) => Some(None),
            Some(value) => match read(value) {
                Ok(v) => Some(Some(v)),
                Err(message) => {
                    self.problem(name, message);
                    None
                }
            },
        }
    }

    fn finish(mut self, check_unknown: bool) -> Result<(), Rejection> {
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|k| check_unknown && !self.taken.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            let key: String = key.chars().take(64).collect();
            self.problem(&key, "is not a field of this event type");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Rejection::fields(self.errors))
        }
    }
}

fn str_of(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| "must be a string".to_owned())
}

/// Identifiers are kept verbatim: 1..128 printable characters, no surrounding spaces.
fn identifier(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.chars().count() > MAX_ID_CHARS {
        return Err(format!("must be 1 to {MAX_ID_CHARS} characters"));
    }
    if raw.trim() != raw || raw.chars().any(char::is_control) {
        return Err("must not contain control characters or surrounding spaces".into());
    }
    Ok(raw.to_owned())
}

fn name(raw: &str, max: usize) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n') {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_owned())
}

/// An amount exactly as written: a JSON string or the digits of a JSON number.
fn amount_text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err("must be an amount: a decimal string like \"12500.00\" or a JSON number".into()),
    }
}

fn small_int(v: &Value, min: u8, max: u8) -> Result<u8, String> {
    v.as_u64()
        .and_then(|n| u8::try_from(n).ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("must be a whole number from {min} to {max}"))
}

fn date(raw: &str) -> Result<NaiveDate, String> {
    let bad = || {
        format!(
            "`{}` is not a date YYYY-MM-DD",
            raw.chars().take(40).collect::<String>()
        )
    };
    if raw.len() != 10 {
        return Err(bad());
    }
    let d = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| bad())?;
    if !YEARS.contains(&d.year()) {
        return Err(format!(
            "must be between {} and {}",
            YEARS.start(),
            YEARS.end()
        ));
    }
    Ok(d)
}

fn timestamp(raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let at = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| {
            format!(
                "`{}` is not an RFC 3339 time such as 2026-03-02T08:00:00Z",
                raw.chars().take(40).collect::<String>()
            )
        })?
        .with_timezone(&Utc)
        .trunc_subsecs(6);
    if !YEARS.contains(&at.year()) {
        return Err(format!(
            "must be between {} and {}",
            YEARS.start(),
            YEARS.end()
        ));
    }
    if now < DateTime::<Utc>::MAX_UTC && at > now + MAX_FUTURE {
        return Err("must not be more than a day ahead of the server's clock".into());
    }
    Ok(at)
}
