//! What a script reads: the caller's JSON, checked once per request and
//! converted where a script reads it.
//!
//! Convention: the caller passes the same JSON the API shows (`request` or
//! `event`, and `client` as in `GET /v1/clients/{id}`), so the audit snapshot is
//! exactly what the policies saw and a replay converts it the same way.
//!
//! Conversion is lazy: the pipeline holds the JSON ([`JsonInput`]), compiled
//! policies convert only the values they read (`client.overdue.amount`: one
//! number, not the client's fifty), and the whole document is converted only
//! for a stage that takes `client` as a whole or runs on rhai's interpreter.
//! Converting the client's map and dropping it was about a sixth of a default
//! pipeline run. The checks run in full up front, so a bad value is an
//! [`InputError`] before any stage runs, whatever the stages read.
//! - Under a key of [`MONEY_FIELDS`], a string must be a plain decimal
//!   (`-?digits[.digits]`) and becomes a Decimal; a number becomes a Decimal
//!   too; `null` stays `()`, arrays and objects are walked; a bad string or a
//!   boolean there is an [`InputError`], never a silent string.
//! - Elsewhere, an integer number is an INT, any other number a Decimal
//!   (exact, from its text: serde_json's `arbitrary_precision`), strings stay
//!   strings, `null` is `()`.

use std::sync::Arc;

use rhai::{Array, Dynamic, Map, Scope};
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

/// The input of one trigger, checked once and shared by all stages (and by as
/// many pipeline runs as needed: evaluate, backtest, replay).
#[derive(Debug, Clone)]
pub struct PolicyInput {
    pub(crate) trigger: Trigger,
    /// `request` or `event`, depending on the trigger.
    pub(crate) subject: JsonInput,
    pub(crate) client: JsonInput,
    pub(crate) baseline: Baseline,
}

impl PolicyInput {
    /// Input for the `credit_request` pipeline: scripts see `request` and `client`.
    pub fn credit_request(
        request: impl JsonDoc,
        client: impl JsonDoc,
        baseline: Baseline,
    ) -> Result<Self, InputError> {
        Self::new(
            Trigger::CreditRequest,
            request.shared(),
            client.shared(),
            baseline,
        )
    }

    /// Input for the `client_event` pipeline: scripts see `event` and `client`.
    pub fn client_event(
        event: impl JsonDoc,
        client: impl JsonDoc,
        baseline: Baseline,
    ) -> Result<Self, InputError> {
        Self::new(
            Trigger::ClientEvent,
            event.shared(),
            client.shared(),
            baseline,
        )
    }

    fn new(
        trigger: Trigger,
        subject: Arc<Value>,
        client: Arc<Value>,
        baseline: Baseline,
    ) -> Result<Self, InputError> {
        Ok(Self {
            trigger,
            subject: JsonInput::checked(trigger.subject_name(), subject)?,
            client: JsonInput::checked("client", client)?,
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

/// A JSON document given to [`PolicyInput`]: owned or shared, it is kept as
/// it is; borrowed, it is copied (a copy costs about what converting it did).
pub trait JsonDoc {
    fn shared(self) -> Arc<Value>;
}

impl JsonDoc for Value {
    fn shared(self) -> Arc<Value> {
        Arc::new(self)
    }
}

impl JsonDoc for Arc<Value> {
    fn shared(self) -> Arc<Value> {
        self
    }
}

impl JsonDoc for &Value {
    fn shared(self) -> Arc<Value> {
        Arc::new(self.clone())
    }
}

/// A JSON object a script reads as a constant, checked (every value converts), converted
/// where it is read. In the pipeline's scope it stands for the object until a stage needs
/// the whole of it as a rhai map (see [`JsonInput::materialize`]).
#[derive(Debug, Clone)]
pub(crate) struct JsonInput(Arc<Value>);

impl JsonInput {
    fn checked(name: &str, value: Arc<Value>) -> Result<Self, InputError> {
        if !value.is_object() {
            return Err(InputError::NotAnObject {
                path: name.to_owned(),
            });
        }
        check(&value, false, 0).map_err(|e| e.within(name))?;
        Ok(Self(value))
    }

    /// The whole object as a rhai map.
    pub(crate) fn to_dynamic(&self) -> Dynamic {
        #[cfg(test)]
        WHOLE_CONVERSIONS.with(|n| n.set(n.get() + 1));
        self.get(std::iter::empty()).unwrap_or(Dynamic::UNIT)
    }

    /// The value at `path` (keys from the object down), converted as a whole
    /// conversion would have it; `None` where a key is missing or a value on
    /// the way is not an object.
    pub(crate) fn get<'k>(&self, path: impl IntoIterator<Item = &'k str>) -> Option<Dynamic> {
        let mut node = &*self.0;
        let mut money = false;
        let mut depth = 0;
        for key in path {
            node = node.as_object()?.get(key)?;
            money = is_money_field(key);
            depth += 1;
        }
        // Checked when made: the conversion cannot fail.
        convert(node, money, depth).ok()
    }

    /// Whether the object has `key` (`"key" in input`).
    pub(crate) fn has_key(&self, key: &str) -> bool {
        self.0
            .as_object()
            .is_some_and(|fields| fields.contains_key(key))
    }

    /// `value` itself, or the whole input it holds as a rhai map.
    pub(crate) fn value_of(value: &Dynamic) -> Dynamic {
        match value.read_lock::<JsonInput>() {
            Some(input) => input.to_dynamic(),
            None => value.clone(),
        }
    }

    /// Replaces the inputs in `scope` by their rhai maps, for rhai's
    /// interpreter, which reads only maps (a no-op once done). The scope is
    /// made again in the same order, constants staying constants.
    pub(crate) fn materialize(scope: &mut Scope<'static>) {
        if !scope.iter_raw().any(|(.., value)| value.is::<JsonInput>()) {
            return;
        }
        let entries: Vec<(String, bool, Dynamic)> = scope
            .iter_raw()
            .map(|(name, constant, value)| (name.to_owned(), constant, Self::value_of(value)))
            .collect();
        scope.clear();
        // `iter_raw` goes from the last entry to the first.
        for (name, constant, value) in entries.into_iter().rev() {
            if constant {
                scope.push_constant_dynamic(name, value);
            } else {
                scope.push_dynamic(name, value);
            }
        }
    }
}

#[cfg(test)]
thread_local! {
    static WHOLE_CONVERSIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Inputs this thread converted whole (tests check a compiled default run converts none).
#[cfg(test)]
pub(crate) fn whole_conversions() -> u64 {
    WHOLE_CONVERSIONS.with(std::cell::Cell::get)
}

/// The conversion's checks, without building: what [`convert`] would refuse.
fn check(value: &Value, money: bool, depth: usize) -> Result<(), InputError> {
    if depth > MAX_DEPTH {
        return Err(InputError::TooDeep {
            path: String::new(),
        });
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check(item, money, depth + 1).map_err(|e| e.within(&format!("[{i}]")))?;
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                check(item, is_money_field(key), depth + 1).map_err(|e| e.within(key))?;
            }
        }
        Value::String(s) if money && plain_digits(s).is_some_and(|n| n <= ALWAYS_EXACT_DIGITS) => {}
        Value::String(_) | Value::Bool(_) | Value::Number(_) if money => {
            let _ = scalar(value, true)?;
        }
        Value::Number(n) if n.as_i64().is_none() => {
            let _ = number(n, false)?;
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
    Ok(())
}

fn convert(value: &Value, money: bool, depth: usize) -> Result<Dynamic, InputError> {
    if depth > MAX_DEPTH {
        return Err(InputError::TooDeep {
            path: String::new(),
        });
    }
    Ok(match value {
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
        scalar_value => scalar(scalar_value, money)?,
    })
}

/// A value that is neither an array nor an object.
fn scalar(value: &Value, money: bool) -> Result<Dynamic, InputError> {
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
        // Never given one (callers walk them); refused rather than guessed at.
        Value::Array(_) | Value::Object(_) => {
            return Err(InputError::NotAnObject {
                path: String::new(),
            });
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
    plain_digits(s)?;
    Decimal::from_str_exact(s).ok()
}

/// The digits of a plain decimal string (a missing fraction counts one), `None`
/// for any other string.
fn plain_digits(s: &str) -> Option<usize> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let plain = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    (plain(int) && plain(frac)).then(|| int.len() + frac.len())
}

/// Up to this many digits a plain decimal string is always an exact `Decimal`
/// (its 96-bit mantissa holds any 28 digits, and 28 is its largest scale), so
/// [`check`] need not parse it.
const ALWAYS_EXACT_DIGITS: usize = 28;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_the_check_does_not_parse_always_parses() {
        let nines = |n: usize| "9".repeat(n);
        let mut cases = vec!["0".to_owned(), "-0.00".into(), "1.".into(), ".5".into()];
        for total in 26..=31 {
            for scale in [0, 1, 2, 14, 27, 28, 29] {
                if scale < total {
                    let s = format!("{}.{}", nines(total - scale), nines(scale));
                    cases.push(s.clone());
                    cases.push(format!("-{s}"));
                }
            }
            cases.push(nines(total));
        }
        for s in &cases {
            if plain_digits(s).is_some_and(|n| n <= ALWAYS_EXACT_DIGITS) {
                assert!(parse_money(s).is_some(), "{s}");
            }
            // Either way the check answers as the conversion does.
            let value = json!({ "amount": s });
            let checked = check(&value, false, 0).is_ok();
            assert_eq!(checked, parse_money(s).is_some(), "{s}");
        }
    }

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
            json!({"amount": "2794.65", "requested_terms_days": 30}),
            client(),
            Baseline::client_event(None, 2),
        )
        .unwrap();
        let c = &input.client.to_dynamic();
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
            get(&input.subject.to_dynamic(), &["amount"])
                .as_decimal()
                .unwrap()
                .to_string(),
            "2794.65"
        );
    }

    /// Every path down the client's objects, the empty one (the whole) included.
    fn paths(value: &Value, prefix: &[String], out: &mut Vec<Vec<String>>) {
        out.push(prefix.to_vec());
        if let Value::Object(fields) = value {
            for (key, item) in fields {
                let mut path = prefix.to_vec();
                path.push(key.clone());
                paths(item, &path, out);
            }
        }
    }

    #[test]
    fn a_value_read_where_it_is_is_the_whole_conversions() {
        let input = JsonInput::checked("client", Arc::new(client())).unwrap();
        let whole = input.to_dynamic();
        let mut all = Vec::new();
        paths(&client(), &[], &mut all);
        assert!(all.len() > 15, "{all:?}");
        for path in all {
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            let lazy = input.get(keys.iter().copied()).unwrap();
            let expected = get(&whole, &keys);
            assert_eq!(lazy.type_name(), expected.type_name(), "{path:?}");
            assert_eq!(lazy.to_string(), expected.to_string(), "{path:?}");
        }
        assert!(input.get(["overdue", "nope"]).is_none());
        assert!(
            input.get(["insurance", "insured_amount"]).is_none(),
            "null is no object"
        );
        assert!(input.get(["client_id", "x"]).is_none());
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
            let err = PolicyInput::client_event(json!({}), &c, Baseline::client_event(None, 2))
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
            json!({"lines": [{"amount": true}]}),
            client(),
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
            PolicyInput::client_event(json!([]), client(), b()),
            Err(InputError::NotAnObject { .. })
        ));
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "x": deep });
        }
        assert!(matches!(
            PolicyInput::client_event(&deep, client(), b()),
            Err(InputError::TooDeep { .. })
        ));
    }

    #[test]
    fn numbers_are_exact() {
        let input = PolicyInput::client_event(
            json!({"big": 18446744073709551616_u128, "frac": 0.1, "amount": 12}),
            client(),
            Baseline::client_event(None, 2),
        )
        .unwrap();
        let e = &input.subject.to_dynamic();
        assert_eq!(
            get(e, &["big"]).as_decimal().unwrap().to_string(),
            "18446744073709551616"
        );
        assert_eq!(get(e, &["frac"]).as_decimal().unwrap().to_string(), "0.1");
        assert_eq!(get(e, &["amount"]).as_decimal().unwrap().to_string(), "12");
    }
}
