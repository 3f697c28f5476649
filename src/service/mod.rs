//! Use cases: each owns its transaction and the order of its steps. No HTTP, no SQL text.

pub mod answer;
pub mod audit;
pub mod backtest;
pub mod capture;
pub mod challenge;
pub mod clients;
pub mod committer;
pub mod decisions;
pub mod evaluate;
pub mod events;
pub mod impact;
pub mod policies;
pub mod portfolio;
pub mod rebuild;
pub mod reviews;
pub mod schedule;
pub mod shadow;
pub mod shared;
pub mod writer_stats;

use crate::store::StoreError;

/// What a use case can refuse, in the domain's words; the API maps each to a status and code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A credit request for a client we do not know, without a `prospect` to create it.
    #[error("client `{0}` is unknown and the request has no `prospect`")]
    UnknownClient(String),
    #[error("the request is in {got} but the client's account currency is {expected}")]
    CurrencyMismatch { expected: String, got: String },
    #[error("the policy does not compile: {0}")]
    PolicyCompile(crate::policy::CompileError),
    /// The version's own test cases fail; each entry says which and how.
    #[error("{} test case(s) fail", .0.len())]
    PolicyTestFailed(Vec<CaseFailure>),
    #[error("{0}")]
    FourEyesRequired(String),
    #[error("{0}")]
    Conflict(String),
    /// The same idempotency key with another body.
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error("{0}")]
    ReviewAlreadyResolved(String),
    /// Approving a review needs room under the limit that is no longer there.
    #[error("{0}")]
    InsufficientCredit(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One failing test case of a policy version.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CaseFailure {
    pub policy: String,
    pub case: String,
    /// What differed, in words.
    pub failures: Vec<String>,
}

impl crate::store::Conflict for ServiceError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_conflict())
    }
}

impl ServiceError {
    /// The same failure, told to each caller of a batch that shared it.
    pub fn for_another_caller(&self) -> Self {
        match self {
            Self::Store(StoreError::Unavailable(why)) => {
                Self::Store(StoreError::Unavailable(why.clone()))
            }
            other => Self::Internal(other.to_string()),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
