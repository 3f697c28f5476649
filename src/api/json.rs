//! Request-body and input helpers: JSON bodies parsed with the failing field's path, and exact
//! amounts taken from a JSON string or number without ever passing through a float.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::{ApiError, FieldError};

/// A JSON body of `T`: 415 for another media type, 413 over the size limit, 400 for broken
/// JSON, 422 naming the field for a well-formed body of the wrong shape (including unknown
/// and duplicate fields).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let media_ok = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        // Bytes obeys the PayloadConfig registered with the same limit in `build_app`.
        let limit = req
            .app_data::<web::Data<crate::AppState>>()
            .map_or(0, |s| s.settings.body_limit);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !media_ok {
                return Err(ApiError::UnsupportedMediaType(
                    "the body must be sent as `Content-Type: application/json`".into(),
                ));
            }
            let bytes = bytes.await.map_err(|e| {
                let overflow = e
                    .as_error::<actix_web::error::PayloadError>()
                    .is_some_and(|p| matches!(p, actix_web::error::PayloadError::Overflow));
                if overflow || e.as_response_error().status_code().as_u16() == 413 {
                    ApiError::PayloadTooLarge(limit)
                } else {
                    ApiError::BadRequest(format!("the body could not be read: {e}"))
                }
            })?;
            parse(&bytes).map(Json)
        })
    }
}

/// Parses a JSON document into `T`, reporting where it went wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // A shape error can be found before a syntax error further on ("[1,2"): a broken
        // document is reported as such, whatever came first.
        let well_formed = || serde_json::from_slice::<serde::de::IgnoredAny>(bytes);
        match inner.classify() {
            serde_json::error::Category::Data if well_formed().is_ok() => {
                let field = if path == "." { "body".into() } else { path };
                ApiError::Validation(vec![FieldError::new(field, strip_position(&inner))])
            }
            _ => ApiError::BadRequest(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// serde's data errors end with "at line 1 column 42", which says nothing to a caller who
/// already has the field's path.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// An amount exactly as the caller wrote it: a JSON string, or the digits of a JSON number
/// (kept verbatim by serde_json's `arbitrary_precision`). Checked against the currency later.
#[derive(Clone, Debug)]
pub struct AmountText(pub String);

impl<'de> Deserialize<'de> for AmountText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Self(s)),
            serde_json::Value::Number(n) => Ok(Self(n.to_string())),
            _ => Err(serde::de::Error::custom(
                "expected an amount as a decimal string like \"12500.00\" or a JSON number",
            )),
        }
    }
}

impl utoipa::PartialSchema for AmountText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        amount_schema(
            r"^0*[0-9]{1,15}(\.[0-9]{1,3}0*)?$",
            false,
            "An exact amount below 10^15: a decimal string (preferred) or a JSON integer, with at \
             most the currency's minor digits (0, 2 or 3; trailing zeros aside); no sign or \
             exponent",
        )
        .into()
    }
}

/// The schema of an amount: a decimal string or a JSON integer; `positive` excludes zero.
fn amount_schema(
    pattern: &str,
    positive: bool,
    description: &str,
) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    // Integers only: a fraction in a JSON number is accepted when written plainly, but a
    // schema cannot say "plain notation, the currency's digits" of a number.
    let number = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(i32::from(positive)))
        .maximum(Some(999_999_999_999_999_i64));
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
                .examples([serde_json::json!("12500.00")]),
        )
        .item(number)
        .description(Some(description))
        .build()
        .into()
}

/// `schema_with` for an amount that must be above zero (what is asked for on credit).
pub fn positive_amount() -> utoipa::openapi::schema::Schema {
    amount_schema(
        r"^(?:0*[1-9][0-9]{0,14}(?:\.[0-9]{1,3}0*)?|0+\.[0-9]{0,2}[1-9]0*)$",
        true,
        "An exact amount above zero and below 10^15: a decimal string (preferred) or a JSON \
         integer, with at most the currency's minor digits (0, 2 or 3; trailing zeros aside); no \
         sign or exponent",
    )
}

/// `schema_with` for a percentage from 0 to 100, as a plain decimal string or a JSON integer.
pub fn percent() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^(?:0*[0-9]{1,2}(?:\.[0-9]+)?|0*100(?:\.0+)?)$"))
                .examples([serde_json::json!("30")]),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(100)),
        )
        .description(Some("0 to 100: a plain decimal string or a JSON integer"))
        .build()
        .into()
}

impl utoipa::ToSchema for AmountText {}

/// The contract of a bounded text field (`text`): something other than white space, no
/// control characters, at most `max` characters (the server trims first).
fn text_schema(max: usize, nullable: bool) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(
            r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        ))
        .build()
}

/// `schema_with` targets for the text fields, by bound.
pub fn text_64_or_null() -> utoipa::openapi::schema::Object {
    text_schema(64, true)
}
pub fn text_128() -> utoipa::openapi::schema::Object {
    text_schema(128, false)
}
pub fn text_128_or_null() -> utoipa::openapi::schema::Object {
    text_schema(128, true)
}
pub fn text_200() -> utoipa::openapi::schema::Object {
    text_schema(200, false)
}
pub fn text_2000() -> utoipa::openapi::schema::Object {
    text_schema(2000, false)
}

/// Every code of `length` upper-case letters that `parse` accepts: the contract's enum is the
/// server's own list, so the two cannot drift.
fn codes<T, E>(length: u32, parse: impl Fn(&str) -> Result<T, E>) -> Vec<String> {
    (0..26u32.pow(length))
        .map(|mut n| {
            let mut code = vec![b'A'; length as usize];
            for slot in code.iter_mut().rev() {
                *slot = b'A' + (n % 26) as u8;
                n /= 26;
            }
            String::from_utf8_lossy(&code).into_owned()
        })
        .filter(|code| parse(code).is_ok())
        .collect()
}

fn code_schema(
    codes: Vec<String>,
    description: &str,
    example: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes))
        .description(Some(description))
        .examples([serde_json::json!(example)])
        .into()
}

/// An ISO 4217 currency that can carry credit (it has a minor unit).
pub struct CurrencyCode;

impl utoipa::PartialSchema for CurrencyCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        code_schema(
            codes(3, crate::domain::Currency::parse),
            "An ISO 4217 currency with a minor unit",
            "EUR",
        )
    }
}

impl utoipa::ToSchema for CurrencyCode {}

/// An ISO 3166-1 alpha-2 country.
pub struct CountryCode;

impl utoipa::PartialSchema for CountryCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        code_schema(
            codes(2, crate::domain::Country::parse),
            "An ISO 3166-1 alpha-2 country",
            "FR",
        )
    }
}

impl utoipa::ToSchema for CountryCode {}

/// An integer field read as JSON Schema reads one: `45` or `45.0` (no fraction), since the
/// contract's `integer` admits both; `45.5`, `"45"` and anything over 64 bits are refused.
pub fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_i64()
        .or_else(|| {
            n.to_string()
                .parse::<rust_decimal::Decimal>()
                .ok()
                .filter(|v| v.fract().is_zero())
                .and_then(|v| i64::try_from(v).ok())
        })
        .ok_or_else(|| serde::de::Error::custom(format!("`{n}` is not a whole number")))
}

/// [`whole`] for an optional field (absent or null is `None`).
pub fn whole_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole")] i64);
    Ok(Option::<Whole>::deserialize(d)?.map(|w| w.0))
}

/// Collects field problems so a request reports all of them at once.
#[derive(Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    /// Keeps the value, or records the problem under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.0.push(FieldError::new(field, message));
                None
            }
        }
    }

    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// `Err` with every problem found, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// A bounded, printable text field (names, registration numbers, notes).
pub fn text(value: &str, max_chars: usize) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Days {
        #[serde(deserialize_with = "whole")]
        days: i64,
        #[serde(default, deserialize_with = "whole_or_null")]
        more: Option<i64>,
    }

    fn days(json: &str) -> Result<(i64, Option<i64>), String> {
        serde_json::from_str::<Days>(json)
            .map(|d| (d.days, d.more))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn integers_are_read_as_json_schema_reads_them() {
        assert_eq!(days(r#"{"days": 45}"#), Ok((45, None)));
        assert_eq!(days(r#"{"days": 173.0, "more": 2.00}"#), Ok((173, Some(2))));
        assert_eq!(days(r#"{"days": -1, "more": null}"#), Ok((-1, None)));
        assert!(days(r#"{"days": 45.5}"#).is_err());
        assert!(days(r#"{"days": "45"}"#).is_err());
        assert!(days(r#"{"days": 1e400}"#).is_err());
        assert!(days(r#"{"days": 99999999999999999999}"#).is_err());
    }

    #[test]
    fn the_contract_patterns_match_the_parsers() {
        let currencies = codes(3, crate::domain::Currency::parse);
        assert!(currencies.iter().any(|c| c == "EUR") && currencies.iter().any(|c| c == "JPY"));
        assert!(
            !currencies.iter().any(|c| c == "XXX"),
            "no minor unit: cannot carry credit"
        );
        let countries = codes(2, crate::domain::Country::parse);
        assert!(countries.iter().any(|c| c == "FR") && !countries.iter().any(|c| c == "QQ"));
    }
}
