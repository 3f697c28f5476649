//! `/v1/audit`: reading one record and verifying the whole chain.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{AuditRead, Authed};
use super::error::ApiError;
use crate::AppState;
use crate::audit::AuditRef;
use crate::service::audit as service;

/// One audit record: what happened, to what, by whom, when, and its place in the chain.
#[derive(Serialize, ToSchema)]
pub struct AuditRecordView {
    pub sequence: i64,
    /// e.g. `client.created`, `client.updated`.
    pub kind: String,
    /// What the record is about, e.g. `client:C-001`.
    pub subject: String,
    pub client_id: Option<String>,
    /// The `sub` of the token that acted.
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    /// The full payload, as hashed.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyReport {
    /// True when every record's content, position and link check out.
    pub ok: bool,
    pub records: i64,
    pub head: Option<AuditRef>,
    /// The first record that does not check out.
    pub first_broken: Option<i64>,
}

/// One audit record.
#[utoipa::path(
    get, path = "/v1/audit/records/{sequence}", tag = "audit",
    params(("sequence" = i64, Path, description = "The record's place in the chain, from 1")),
    responses((status = 200, description = "The record", body = AuditRecordView)),
    security(("bearer" = ["audit:read"]))
)]
pub async fn get_record(
    _auth: Authed<AuditRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<AuditRecordView>, ApiError> {
    let sequence = path
        .parse::<i64>()
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(|| ApiError::field("sequence", "must be a whole number from 1"))?;
    let row = service::record(&state.store, sequence)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("audit record {sequence} does not exist")))?;
    let payload = serde_json::from_str(&row.payload)
        .map_err(|e| ApiError::Internal(format!("audit record {sequence}: {e}")))?;
    Ok(web::Json(AuditRecordView {
        sequence: row.sequence,
        kind: row.kind,
        subject: row.subject,
        client_id: row.client_id,
        actor: row.actor,
        recorded_at: row.recorded_at.and_utc(),
        payload,
        prev_hash: row.prev_hash,
        hash: row.hash,
    }))
}

/// Recomputes the whole chain and reports the first broken record, if any.
#[utoipa::path(
    get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, description = "The verification", body = VerifyReport)),
    security(("bearer" = ["audit:read"]))
)]
pub async fn verify(
    _auth: Authed<AuditRead>,
    state: web::Data<AppState>,
) -> Result<web::Json<VerifyReport>, ApiError> {
    let v = service::verify(&state.store).await?;
    Ok(web::Json(VerifyReport {
        ok: v.first_broken.is_none(),
        records: v.records,
        head: v.head,
        first_broken: v.first_broken,
    }))
}
