//! Use cases: each owns its transaction and the order of its steps. No HTTP, no SQL text.

pub mod audit;
pub mod clients;

use crate::store::StoreError;

/// What a use case can refuse, in the domain's words; the API maps each to a status and code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::store::Conflict for ServiceError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_conflict())
    }
}

impl ServiceError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
