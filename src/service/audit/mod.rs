//! Reading the audit log: one record, pages of records, verification, replay and export.

mod diff;
pub mod export;
mod replay;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

pub use diff::{Difference, MAX_DIFFERENCES};
pub use replay::{DECISION_KIND, Recorded, Replay};

use super::ServiceError;
use super::policies::PolicyRegistry;
use crate::audit::{self, Verification};
use crate::store::Store;
use crate::store::audit::{self as table, AuditRow, RecordFilter};

/// One audit record as the API lists and exports it: what happened, to what, by whom, when,
/// and its place in the chain. `payload` is embedded exactly as stored and hashed, so anyone
/// can recompute `hash` from an export.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    pub sequence: i64,
    /// e.g. `decision`, `decision.resolution`, `client.created`, `policy.activated`.
    pub kind: String,
    /// What the record is about, e.g. `decision:0193…`, `client:C-001`.
    pub subject: String,
    pub client_id: Option<String>,
    /// The `sub` of the token that acted.
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    /// The full payload, in the canonical JSON that was hashed. For a decision: `request`,
    /// the `client` snapshot the policies read, `policies` (name, version, sha256), the
    /// pipeline `result` with its per-stage `trace`, and the `answer`.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditRow> for RecordView {
    fn from(row: AuditRow) -> Self {
        // A payload edited into something that is not JSON any more still shows, as a string.
        let payload = RawValue::from_string(row.payload).unwrap_or_else(|e| {
            let text = serde_json::to_string(&format!("unreadable payload: {e}"))
                .unwrap_or_else(|_| "null".into());
            RawValue::from_string(text).unwrap_or_else(|_| RawValue::NULL.to_owned())
        });
        Self {
            sequence: row.sequence,
            kind: row.kind,
            subject: row.subject,
            client_id: row.client_id,
            actor: row.actor,
            recorded_at: row.recorded_at.and_utc(),
            payload,
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

pub async fn record(store: &Store, sequence: i64) -> Result<Option<AuditRow>, ServiceError> {
    store.run(move |conn| Ok(table::get(conn, sequence)?)).await
}

/// One page of records: `limit` of them strictly past the `after` sequence, in sequence order
/// or newest first.
pub async fn list(
    store: &Store,
    filter: RecordFilter,
    after: Option<i64>,
    newest_first: bool,
    limit: i64,
) -> Result<Vec<AuditRow>, ServiceError> {
    store
        .run(move |conn| {
            Ok(table::list(
                conn,
                &filter,
                after,
                None,
                newest_first,
                limit,
            )?)
        })
        .await
}

pub async fn verify(store: &Store) -> Result<Verification, ServiceError> {
    store.run(|conn| Ok(audit::verify(conn)?)).await
}

/// Replays the decision recorded at `sequence`.
pub async fn replay(
    store: &Store,
    registry: Arc<PolicyRegistry>,
    sequence: i64,
) -> Result<Replay, ServiceError> {
    store
        .run(move |conn| {
            let row = table::get(conn, sequence)?.ok_or_else(|| ServiceError::NotFound {
                what: format!("audit record {sequence}"),
            })?;
            replay::replay(conn, &registry, &row)
        })
        .await
}

/// What replaying every decision found.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    pub replayed: u64,
    pub identical: u64,
    /// The replays that were not identical.
    pub changed: Vec<Replay>,
}

/// Replays every recorded decision, a page at a time.
pub async fn replay_all(
    store: &Store,
    registry: Arc<PolicyRegistry>,
) -> Result<ReplaySummary, ServiceError> {
    const PAGE: i64 = 200;
    store
        .run(move |conn| {
            let decisions = RecordFilter {
                kind: Some(DECISION_KIND.into()),
                ..RecordFilter::default()
            };
            let mut summary = ReplaySummary::default();
            let mut after = None;
            loop {
                let page = table::list(conn, &decisions, after, None, false, PAGE)?;
                let Some(last) = page.last() else { break };
                after = Some(last.sequence);
                for row in &page {
                    let replay = replay::replay(conn, &registry, row)?;
                    summary.replayed += 1;
                    if replay.identical {
                        summary.identical += 1;
                    } else {
                        summary.changed.push(replay);
                    }
                }
            }
            Ok(summary)
        })
        .await
}
