//! Reading the audit log.

use super::ServiceError;
use crate::audit::{self, Verification};
use crate::store::Store;
use crate::store::audit::{self as table, AuditRow};

pub async fn record(store: &Store, sequence: i64) -> Result<Option<AuditRow>, ServiceError> {
    store.run(move |conn| Ok(table::get(conn, sequence)?)).await
}

pub async fn verify(store: &Store) -> Result<Verification, ServiceError> {
    store.run(|conn| Ok(audit::verify(conn)?)).await
}
