//! Ingesting client events: a batch is read event by event (a bad one never blocks the
//! rest), then applied in one write transaction: the clients named are locked in id order,
//! each event is checked (unknown client, currency, idempotency, reservation) and applied to
//! its client's projection, the accepted ones are logged, and every client with accepted
//! events is re-scored and reviewed once. Accepted events are committed before the answer.

mod batch;
mod intake;

pub use intake::Intake;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;

use super::ServiceError;
use super::policies::PolicyRegistry;
use super::reviews::ReviewRef;
use crate::domain::events::{self, EventDraft, Rejection};
use crate::domain::ledger::Notice;
use crate::store::{AnyConnection, Store, write_tx_retrying};

/// What became of one event of the batch.
#[derive(Clone, Debug)]
pub enum EventStatus {
    Accepted,
    /// Already logged with the same body: nothing done again.
    Duplicate,
    Rejected(Rejection),
}

#[derive(Clone, Debug)]
pub struct EventResult {
    /// As sent, when it was a usable id.
    pub event_id: Option<String>,
    pub status: EventStatus,
    /// What the sender should know about an accepted event (see `domain::ledger`).
    pub notices: Vec<Notice>,
}

/// The answer to a batch: one result per event, in order, and the reviews it triggered.
#[derive(Debug)]
pub struct Ingested {
    pub results: Vec<EventResult>,
    pub reviews: Vec<ReviewRef>,
}

impl Ingested {
    pub fn count(&self, what: fn(&EventStatus) -> bool) -> usize {
        self.results.iter().filter(|r| what(&r.status)).count()
    }
}

/// Ingests a batch of raw events (already bounded in number by the caller). The events are
/// read before the batch queues for the writer (see `Store::with_event_writer`), so only the
/// transaction itself is serialised. On SQLite, the batches waiting for the writer go into
/// one transaction together (see [`Intake`]).
pub async fn ingest(
    store: &Store,
    intake: &Intake,
    registry: Arc<PolicyRegistry>,
    raw: Vec<Value>,
    actor: String,
) -> Result<Ingested, ServiceError> {
    let intake = intake.clone();
    store
        .blocking(move |store| {
            let now = Utc::now().trunc_subsecs(6);
            let drafts = read(&raw, now);
            if store.backend() == "sqlite" {
                return intake.submit(store, &registry, actor, drafts);
            }
            store.with_event_writer(|conn| {
                write_batches(conn, &registry, &[&drafts], &actor, now).and_then(only)
            })
        })
        .await
}

/// [`ingest`] on a connection, as of `now` (the CLI import and the tests use it directly).
pub fn ingest_at(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    raw: &[Value],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Ingested, ServiceError> {
    ingest_many_at(conn, registry, &[raw], actor, now).and_then(only)
}

/// Several batches in one transaction, as the writer takes them on SQLite: each as if it came
/// after the ones before, each client with accepted events reviewed once (the tests use it
/// to hold that on both backends). The first batch is added, then the others join it
/// together, as batches that arrive while the writer decides the first ones do (see
/// [`Intake`]).
pub fn ingest_many_at(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    batches: &[&[Value]],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Ingested>, ServiceError> {
    let now = now.trunc_subsecs(6);
    let drafts: Vec<Vec<Draft>> = batches.iter().map(|raw| read(raw, now)).collect();
    let drafts: Vec<&[Draft]> = drafts.iter().map(Vec::as_slice).collect();
    let (first, later) = drafts.split_at(drafts.len().min(1));
    let mut later = Some(later);
    write_joining(
        conn,
        registry,
        actor,
        now,
        &mut first.to_vec(),
        |batch| batch,
        |_| later.take().map(<[_]>::to_vec).unwrap_or_default(),
    )
}

/// Writes `batches` in one transaction, run again on a conflict.
fn write_batches(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    batches: &[&[Draft]],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Ingested>, ServiceError> {
    write_joining(
        conn,
        registry,
        actor,
        now,
        &mut batches.to_vec(),
        |batch| batch,
        |_| Vec::new(),
    )
}

/// The one way batches are written: one transaction (run again on a conflict, every batch
/// again) of the batches in `items`, then of those `more` gives each time the ones before are
/// decided, until it gives none; each batch as if it came after the ones before it, each
/// client with accepted events reviewed once on the state they all leave (see
/// [`batch::Batch`]). `items` ends holding every batch written, answered in its order.
fn write_joining<T>(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    actor: &str,
    now: DateTime<Utc>,
    items: &mut Vec<T>,
    drafts: fn(&T) -> &[Draft],
    mut more: impl FnMut(&[T]) -> Vec<T>,
) -> Result<Vec<Ingested>, ServiceError> {
    write_tx_retrying(conn, |conn| {
        let mut open = batch::Batch::new(actor, now);
        let mut added = 0;
        loop {
            let batches: Vec<&[Draft]> = items[added..].iter().map(drafts).collect();
            open.add(conn, &batches)?;
            added = items.len();
            let joining = more(items);
            if joining.is_empty() {
                return open.finish(conn, registry);
            }
            items.extend(joining);
        }
    })
}

/// The answer of a transaction that held one batch.
fn only(mut answers: Vec<Ingested>) -> Result<Ingested, ServiceError> {
    match (answers.pop(), answers.is_empty()) {
        (Some(answer), true) => Ok(answer),
        _ => Err(ServiceError::Internal(
            "one batch written, not one answer".into(),
        )),
    }
}

/// An event's id as sent (when usable) and its draft, or why it is refused.
type Draft = (Option<String>, Result<EventDraft, Rejection>);

/// Each raw event's id (when usable) and its draft or why it is refused.
fn read(raw: &[Value], now: DateTime<Utc>) -> Vec<Draft> {
    raw.iter()
        .map(|v| (events::raw_event_id(v), events::parse(v, now)))
        .collect()
}

/// A page of a client's logged events, newest first, of `types` only (all when empty),
/// before the `before` sequence number.
pub async fn list(
    store: &Store,
    id: crate::domain::ClientId,
    types: Vec<&'static str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<crate::store::events::EventRow>, ServiceError> {
    store
        .run(move |conn| {
            crate::store::read_snapshot(conn, |conn| {
                if !crate::store::ledgers::exists(conn, id.as_str())? {
                    return Err(ServiceError::NotFound {
                        what: format!("client `{id}`"),
                    });
                }
                Ok(crate::store::events::page(
                    conn,
                    id.as_str(),
                    &types,
                    before,
                    limit,
                )?)
            })
        })
        .await
}
