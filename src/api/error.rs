//! One error type for the whole API, rendered as RFC 9457 `application/problem+json` with a
//! stable `code`. Internal failures are logged with their chain and answered opaquely.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::{CaseFailure, ServiceError};
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem detail (RFC 9457) with Encours' stable `code`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:encours:problem:validation_failed", "title": "Validation failed",
    "status": 422, "detail": "1 field is invalid", "code": "validation_failed",
    "errors": [{"field": "credit_limit", "message": "must not be negative"}]
}))]
pub struct Problem {
    /// `urn:encours:problem:{code}`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, machine-readable: `unauthorized`, `forbidden`, `not_found`,
    /// `validation_failed`, `payload_too_large`, `service_unavailable`, `internal`, …
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Where a policy source fails to compile (`policy_compile_error`), 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// The failing test cases (`policy_test_failed`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<CaseFailure>,
}

/// One invalid field of a request.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the body, query or path (`credit_limit`, `prospect.country`).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Syntactically broken request (malformed JSON, invalid UTF-8): 400.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid request: 422 with the fields at fault.
    #[error("{} field(s) invalid", .0.len())]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    UnknownClient(String),
    #[error("{0}")]
    CurrencyMismatch(String),
    #[error("{message}")]
    PolicyCompile {
        message: String,
        line: Option<u32>,
        column: Option<u32>,
    },
    #[error("{} test case(s) of the version fail", .0.len())]
    PolicyTestFailed(Vec<CaseFailure>),
    #[error("{0}")]
    FourEyesRequired(String),
    /// 409: the resource's state forbids the change (`code` says which rule).
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::BadRequest(_) | Self::Validation(_) => "validation_failed",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::UnknownClient(_) => "unknown_client",
            Self::CurrencyMismatch(_) => "currency_mismatch",
            Self::PolicyCompile { .. } => "policy_compile_error",
            Self::PolicyTestFailed(_) => "policy_test_failed",
            Self::FourEyesRequired(_) => "four_eyes_required",
            Self::Conflict { code, .. } => code,
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Validation(errors) => match errors.as_slice() {
                [one] => format!("{}: {}", one.field, one.message),
                many => format!("{} fields are invalid", many.len()),
            },
            Self::Unavailable(_) => "the service cannot reach its database; retry shortly".into(),
            Self::Internal(_) => "an internal error occurred; it has been logged".into(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UnknownClient(_) => StatusCode::NOT_FOUND,
            Self::CurrencyMismatch(_) | Self::PolicyCompile { .. } | Self::PolicyTestFailed(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::FourEyesRequired(_) => StatusCode::FORBIDDEN,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(chain) => tracing::error!(error = %chain, "internal error"),
            Self::Unavailable(why) => tracing::warn!(error = %why, "database unavailable"),
            _ => {}
        }
        let mut problem = Problem::new(self.status_code(), self.code(), self.detail());
        match self {
            Self::Validation(errors) => problem.errors = errors.clone(),
            Self::PolicyCompile { line, column, .. } => {
                problem.line = *line;
                problem.column = *column;
            }
            Self::PolicyTestFailed(cases) => problem.cases = cases.clone(),
            _ => {}
        }
        let mut response = problem.into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            _ => {}
        }
        response
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: String) -> Self {
        Self {
            type_: format!("urn:encours:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors: Vec::new(),
            line: None,
            column: None,
            cases: Vec::new(),
        }
    }

    /// The problem+json response; also used to rewrite actix's own plain error pages.
    pub fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_string(&self).unwrap_or_else(|_| String::from("{}"));
        HttpResponse::build(status)
            .content_type(PROBLEM_JSON)
            .body(body)
    }
}

/// The code and detail for a status produced outside our handlers (routing, actix limits).
pub fn fallback_problem(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("validation_failed", "the request could not be read"),
        401 => ("unauthorized", "a valid bearer token is required"),
        403 => ("forbidden", "the token does not grant this operation"),
        404 => (
            "not_found",
            "no such resource; see /openapi.json for the API",
        ),
        405 => (
            "method_not_allowed",
            "this method is not allowed on this resource",
        ),
        413 => (
            "payload_too_large",
            "the request is larger than the server accepts",
        ),
        415 => ("unsupported_media_type", "send application/json"),
        503 => (
            "service_unavailable",
            "the service is temporarily unavailable",
        ),
        s if s >= 500 => ("internal", "an internal error occurred; it has been logged"),
        _ => ("bad_request", "the request was refused"),
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(why) => Self::Unavailable(why),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound { what } => Self::NotFound(format!("{what} does not exist")),
            ServiceError::Invalid { field, message } => Self::field(field, message),
            ServiceError::UnknownClient(id) => Self::UnknownClient(format!(
                "client `{id}` is unknown; send a `prospect` block to decide on a new buyer"
            )),
            ServiceError::CurrencyMismatch { expected, got } => Self::CurrencyMismatch(format!(
                "the request is in {got} but the client's account currency is {expected}; no conversion is made"
            )),
            ServiceError::PolicyCompile(e) => Self::PolicyCompile {
                message: format!("the policy does not compile: {e}"),
                line: e.line,
                column: e.column,
            },
            ServiceError::PolicyTestFailed(cases) => Self::PolicyTestFailed(cases),
            ServiceError::FourEyesRequired(why) => Self::FourEyesRequired(why),
            ServiceError::Conflict(detail) => Self::Conflict {
                code: "conflict",
                detail,
            },
            ServiceError::IdempotencyConflict(detail) => Self::Conflict {
                code: "idempotency_conflict",
                detail,
            },
            ServiceError::ReviewAlreadyResolved(detail) => Self::Conflict {
                code: "review_already_resolved",
                detail,
            },
            ServiceError::InsufficientCredit(detail) => Self::Conflict {
                code: "insufficient_credit",
                detail,
            },
            ServiceError::Internal(why) => Self::Internal(why),
            ServiceError::Store(e) => e.into(),
        }
    }
}
