//! What a script reads, converted once per request from JSON.
//!
//! Convention: the caller passes the same JSON the API shows (`request` or
//! `event`, and `client` as in `GET /v1/clients/{id}`), so the audit snapshot is
//! exactly what the policies saw and a replay converts it the same way.
//! - Under a key of [`MONEY_FIELDS`], a string must be a plain decimal
//!   (`-?digits[.digits]`) and becomes a Decimal; a number becomes a Decimal
//!   too; `null` stays `()`, arrays and objects are walked; a bad string or a
//!   boolean there is an [`InputError`], never a silent string.
//! - Elsewhere, an integer number is an INT, any other number a Decimal
//!   (exact, from its text: serde_json's `arbitrary_precision`), strings stay
//!   strings, `null` is `()`.

use rhai::{Array, Dynamic, Map};
use rust_decimal::Decimal;
use serde_json::{Number, Value};

use super::Trigger;

/// Keys whose values are amounts of money, at any depth.
pub const MONEY_FIELDS: &[&str] = &[
    "amount",
    "approved_amount",
    "available_credit",
    "available_credit_after",
    "credit_limit",
    "deposit_amount",
    "insured_amount",
    "limit",
    "open_invoices",
    "requested_amount",
    "reserved",
    "total",
];

/// Whether `key` is one of [`MONEY_FIELDS`]; a `match` on the string
/// instead of comparing with each of them (the input has about 50 keys).
fn is_money_field(key: &str) -> bool {
    matches!(
        key,
        "amount"
            | "approved_amount"
            | "available_credit"
            | "available_credit_after"
            | "credit_limit"
            | "deposit_amount"
            | "insured_amount"
            | "limit"
            | "open_invoices"
            | "requested_amount"
            | "reserved"
            | "total"
    )
}

/// Nesting accepted in input documents (the API's are 3 deep).
const MAX_DEPTH: usize = 32;

/// The input was not what the policies are promised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{path} must be a JSON object")]
    NotAnObject { path: String },
    #[error("{path} is a money field and must be a decimal string or number, got {value}")]
    InvalidMoney { path: String, value: String },
    #[error("{path}: number {value} cannot be represented exactly")]
    InexactNumber { path: String, value: String },
    #[error("{path} is nested deeper than {MAX_DEPTH} levels")]
    TooDeep { path: String },
}

impl InputError {
    fn within(mut self, parent: &str) -> Self {
        let path = match &mut self {
            Self::NotAnObject { path }
            | Self::InvalidMoney { path, .. }
            | Self::InexactNumber { path, .. }
            | Self::TooDeep { path } => path,
        };
        *path = if path.is_empty() {
            parent.to_owned()
        } else if path.starts_with('[') {
            format!("{parent}{path}")
        } else {
            format!("{parent}.{path}")
        };
        self
    }
}

/// Starting values of `decision`, in domain terms rather than guessed from JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// The amount asked for; `approved_amount` starts here.
    pub requested_amount: Option<Decimal>,
    /// The terms asked for; `terms_days` starts here.
    pub requested_terms_days: Option<u32>,
    /// The client's standing limit; `limit` and `credit_limit` start here.
    pub credit_limit: Option<Decimal>,
    /// Minor digits of the account currency (2 for EUR, 0 for JPY): effect
    /// amounts must fit them, outputs are written with them.
    pub minor_digits: u32,
}

impl Baseline {
    pub fn credit_request(
        amount: Decimal,
        terms_days: u32,
        credit_limit: Option<Decimal>,
        minor_digits: u32,
    ) -> Self {
        Self {
            requested_amount: Some(amount),
            requested_terms_days: Some(terms_days),
            credit_limit,
            minor_digits,
        }
    }

    pub fn client_event(credit_limit: Option<Decimal>, minor_digits: u32) -> Self {
        Self {
            requested_amount: None,
            requested_terms_days: None,
            credit_limit,
            minor_digits,
        }
    }
}

/// The converted input of one trigger, built once and shared by all stages
/// (and by as many pipeline runs as needed: evaluate, backtest, replay).
#[derive(Debug, Clone)]
pub struct PolicyInput {
    pub(crate) trigger: Trigger,
    /// `request` or `event`, depending on the trigger.
    pub(crate) subject: Dynamic,
    pub(crate) client: Dynamic,
    pub(crate) baseline: Baseline,
}

impl PolicyInput {
    /// Input for the `credit_request` pipeline: scripts see `request` and `client`.
    pub fn credit_request(
        request: &Value,
        client: &Value,
        baseline: Baseline,
    ) -> Result<Self, InputError> {
        Self::new(Trigger::CreditRequest, request, client, baseline)
    }

    /// Input for the `client_event` pipeline: scripts see `event` and `client`.
    pub fn client_event(
        event: &Value,
        client: &Value,
        baseline: Baseline,
    ) -> Result<Self, InputError> {
        Self::new(Trigger::ClientEvent, event, client, baseline)
    }

    fn new(
        trigger: Trigger,
        subject: &Value,
        client: &Value,
        baseline: Baseline,
    ) -> Result<Self, InputError> {
        Ok(Self {
            trigger,
            subject: object(trigger.subject_name(), subject)?,
            client: object("client", client)?,
            baseline,
        })
    }

    pub fn trigger(&self) -> Trigger {
        self.trigger
    }

    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }
}

fn object(name: &str, value: &Value) -> Result<Dynamic, InputError> {
    if !value.is_object() {
        return Err(InputError::NotAnObject {
            path: name.to_owned(),
        });
    }
    convert(value, false, 0).map_err(|e| e.within(name))
}

fn convert(value: &Value, money: bool, depth: usize) -> Result<Dynamic, InputError> {
    if depth > MAX_DEPTH {
        return Err(InputError::TooDeep {
            path: String::new(),
        });
    }
    Ok(match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) if money => {
            return Err(InputError::InvalidMoney {
                path: String::new(),
                value: b.to_string(),
            });
        }
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => number(n, money)?,
        Value::String(s) if money => {
            Dynamic::from_decimal(parse_money(s).ok_or_else(|| InputError::InvalidMoney {
                path: String::new(),
                value: format!("{s:?}"),
            })?)
        }
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            let mut array = Array::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                array.push(
                    convert(item, money, depth + 1).map_err(|e| e.within(&format!("[{i}]")))?,
                );
            }
            Dynamic::from_array(array)
        }
        Value::Object(fields) => {
            let mut items = Vec::with_capacity(fields.len());
            for (key, item) in fields {
                let money = is_money_field(key);
                items.push((
                    key.as_str().into(),
                    convert(item, money, depth + 1).map_err(|e| e.within(key))?,
                ));
            }
            // Built in one go: JSON objects iterate in key order, which the
            // bulk build checks in one pass and then fills nodes left to
            // right, where inserting key by key shifts or searches each node.
            Dynamic::from_map(Map::from_iter(items))
        }
    })
}

fn number(n: &Number, money: bool) -> Result<Dynamic, InputError> {
    if !money {
        if let Some(i) = n.as_i64() {
            return Ok(Dynamic::from_int(i));
        }
    }
    let text = n.to_string();
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(&text).ok()
    } else {
        Decimal::from_str_exact(&text).ok()
    };
    parsed
        .map(Dynamic::from_decimal)
        .ok_or(InputError::InexactNumber {
            path: String::new(),
            value: text,
        })
}

/// A plain decimal string: no exponent, sign `+`, spaces or separators.
fn parse_money(s: &str) -> Option<Decimal> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let plain = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !(plain(int) && plain(frac)) {
        return None;
    }
    Decimal::from_str_exact(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client() -> Value {
        json!({
            "client_id": "C1", "credit_limit": "50000.00", "available_credit": "-120.50",
            "exposure": {"open_invoices": "30000.00", "reserved": 0, "total": "30000.00"},
            "overdue": {"amount": "1200.10", "max_days_past_due": 12},
            "alerts": {"negative": 2, "positive": 0},
            "insurance": null, "external_score": {"score": 61.5},
        })
    }

    fn get(d: &Dynamic, path: &[&str]) -> Dynamic {
        let mut cur = d.clone();
        for key in path {
            cur = cur.try_cast::<Map>().unwrap().get(*key).unwrap().clone();
        }
        cur
    }

    #[test]
    fn money_fields_become_decimals_other_values_keep_their_type() {
        let input = PolicyInput::credit_request(
            &json!({"amount": "2794.65", "requested_terms_days": 30}),
            &client(),
            Baseline::client_event(None, 2),
        )
        .unwrap();
        let c = &input.client;
        assert_eq!(
            get(c, &["credit_limit"]).as_decimal().unwrap().to_string(),
            "50000.00"
        );
        assert_eq!(
            get(c, &["available_credit"])
                .as_decimal()
                .unwrap()
                .to_string(),
            "-120.50"
        );
        assert_eq!(
            get(c, &["exposure", "reserved"])
                .as_decimal()
                .unwrap()
                .to_string(),
            "0"
        );
        assert_eq!(
            get(c, &["overdue", "max_days_past_due"]).as_int().unwrap(),
            12
        );
        assert_eq!(
            get(c, &["external_score", "score"])
                .as_decimal()
                .unwrap()
                .to_string(),
            "61.5"
        );
        assert_eq!(get(c, &["client_id"]).into_string().unwrap(), "C1");
        assert!(get(c, &["insurance"]).is_unit());
        assert_eq!(
            get(&input.subject, &["amount"])
                .as_decimal()
                .unwrap()
                .to_string(),
            "2794.65"
        );
    }

    #[test]
    fn the_money_match_is_the_money_list() {
        for key in MONEY_FIELDS {
            assert!(is_money_field(key), "{key}");
        }
        for key in ["", "amounts", "Amount", "total_due", "client_id", "score"] {
            assert!(!is_money_field(key), "{key}");
        }
    }

    #[test]
    fn bad_money_is_rejected_with_its_path() {
        for bad in ["12,50", "1e3", "+1.00", " 1.00", "1.", ".5", "abc", ""] {
            let mut c = client();
            c["exposure"]["total"] = json!(bad);
            let err = PolicyInput::client_event(&json!({}), &c, Baseline::client_event(None, 2))
                .unwrap_err();
            assert_eq!(
                err,
                InputError::InvalidMoney {
                    path: "client.exposure.total".into(),
                    value: format!("{bad:?}")
                }
            );
        }
        let err = PolicyInput::client_event(
            &json!({"lines": [{"amount": true}]}),
            &client(),
            Baseline::client_event(None, 2),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string().split(' ').next(),
            Some("event.lines[0].amount")
        );
    }

    #[test]
    fn inputs_must_be_objects_and_shallow() {
        let b = || Baseline::client_event(None, 2);
        assert!(matches!(
            PolicyInput::client_event(&json!([]), &client(), b()),
            Err(InputError::NotAnObject { .. })
        ));
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "x": deep });
        }
        assert!(matches!(
            PolicyInput::client_event(&deep, &client(), b()),
            Err(InputError::TooDeep { .. })
        ));
    }

    #[test]
    fn numbers_are_exact() {
        let input = PolicyInput::client_event(
            &json!({"big": 18446744073709551616_u128, "frac": 0.1, "amount": 12}),
            &client(),
            Baseline::client_event(None, 2),
        )
        .unwrap();
        let e = &input.subject;
        assert_eq!(
            get(e, &["big"]).as_decimal().unwrap().to_string(),
            "18446744073709551616"
        );
        assert_eq!(get(e, &["frac"]).as_decimal().unwrap().to_string(), "0.1");
        assert_eq!(get(e, &["amount"]).as_decimal().unwrap().to_string(), "12");
    }
}
