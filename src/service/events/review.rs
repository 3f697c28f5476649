//! The reviews of a batch, in its transaction: its clients are read at once, with the batch's
//! projection in place of the stored one; their pipelines, which do not touch the database and
//! were half of a batch's instructions, run on two threads (the batch's own and one helper
//! kept for the process); then each review is written with the client's projection, in
//! `client_id` order (so the audit chain grows as before).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, mpsc};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::ledger::Ledger;
use crate::domain::{Client, Insurance, Money};
use crate::policy::{PolicyEngine, Trigger};
use crate::service::ServiceError;
use crate::service::policies::{ActiveSet, PolicyRegistry};
use crate::service::reviews::{self, Cause, Computed, Read, ReviewRef};
use crate::store::ledgers::Account;
use crate::store::{AnyConnection, clients};

/// Below this many clients a batch's pipelines run on one thread (a thread costs more).
const SPLIT_FROM: usize = 32;

/// The clients with accepted events of a batch, each with those events' JSON, in order.
pub(super) type Touched = BTreeMap<String, Vec<Value>>;

/// Re-scores and reviews each touched client once, on its new state; the reviews that changed
/// a limit or a status, or referred, in `client_id` order.
pub(super) fn all(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    touched: Touched,
    accounts: &HashMap<String, Account>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<ReviewRef>, ServiceError> {
    if touched.is_empty() {
        return Ok(Vec::new());
    }
    let active = registry.active(conn)?;
    let ids: Vec<&str> = touched.keys().map(String::as_str).collect();
    let mut reads = Vec::with_capacity(ids.len());
    for (mut client, extra) in clients::find_many_for_review(conn, &ids, now)? {
        let Some(account) = accounts.get(client.client_id.as_str()) else {
            continue;
        };
        with_ledger(&mut client, &account.ledger, now);
        reads.push(Read {
            client,
            open_due_dates: extra.open_due_dates,
            recent_alerts: extra.recent_alerts,
        });
    }
    let touched = Arc::new(touched);
    let mut computed = compute_all(registry.engine(), &active, reads, &touched, now)?;
    computed.sort_by(|a, b| a.client_id().cmp(b.client_id()));
    let stages = active.stages(Trigger::ClientEvent);
    let mut reviews = Vec::new();
    for c in &computed {
        let id = c.client_id().as_str();
        let ledger = accounts.get(id).map(|a| &a.ledger);
        let cause = Cause::Events(events_of(&touched, id));
        reviews.extend(reviews::write(conn, stages, c, &cause, actor, now, ledger)?);
    }
    Ok(reviews)
}

/// Runs the pipelines of the clients read: the second half on the helper thread when there
/// are enough, the first here meanwhile.
fn compute_all(
    engine: &PolicyEngine,
    active: &Arc<ActiveSet>,
    mut reads: Vec<Read>,
    touched: &Arc<Touched>,
    now: DateTime<Utc>,
) -> Result<Vec<Computed>, ServiceError> {
    if reads.len() < SPLIT_FROM {
        return compute_part(engine, active, reads, touched, now);
    }
    let second = reads.split_off(reads.len() / 2);
    let (engine2, active2, touched2) = (engine.clone(), Arc::clone(active), Arc::clone(touched));
    let (tx, rx) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        // The caller may have gone (its own half failed): nothing to tell then.
        let _ = tx.send(compute_part(&engine2, &active2, second, &touched2, now));
    });
    // Without the helper (it did not start), the second half runs here after the first.
    let unsent = match helper() {
        Some(h) => h.send(job).err().map(|e| e.0),
        None => Some(job),
    };
    let mut computed = compute_part(engine, active, reads, touched, now)?;
    if let Some(job) = unsent {
        job();
    }
    let rest = rx
        .recv()
        .map_err(|_| ServiceError::Internal("a review on the helper thread panicked".into()))??;
    computed.extend(rest);
    Ok(computed)
}

fn compute_part(
    engine: &PolicyEngine,
    active: &ActiveSet,
    reads: Vec<Read>,
    touched: &Touched,
    now: DateTime<Utc>,
) -> Result<Vec<Computed>, ServiceError> {
    let stages = active.stages(Trigger::ClientEvent);
    reads
        .into_iter()
        .map(|read| {
            let events = events_of(touched, read.client.client_id.as_str());
            reviews::compute(engine, stages, read, &Cause::Events(events), now)
        })
        .collect()
}

type Job = Box<dyn FnOnce() + Send>;

/// The helper thread, started on first use and kept: the rhai engines are per thread, so a
/// thread started for each batch would build its engine every time. A job that panics is
/// caught there (its caller sees its channel closed) and the thread goes on.
fn helper() -> Option<&'static mpsc::Sender<Job>> {
    static HELPER: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();
    HELPER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let started = std::thread::Builder::new()
                .name("encours-reviews".into())
                .spawn(move || {
                    for job in rx {
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            match started {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::error!(error = %e, "the review helper thread did not start");
                    None
                }
            }
        })
        .as_ref()
}

fn events_of<'t>(touched: &'t Touched, id: &str) -> &'t [Value] {
    touched.get(id).map_or(&[][..], Vec::as_slice)
}

/// The client as read, with the projection of this batch in place of the stored one (not
/// written yet): what `clients::find_at` would read once it is.
fn with_ledger(client: &mut Client, ledger: &Ledger, now: DateTime<Utc>) {
    let money = |minor| Money::from_minor(minor, client.currency);
    let state = &mut client.state;
    state.open_invoices = money(ledger.open_invoices_minor);
    state.invoices_paid = ledger.invoices_paid;
    state.paid_late = ledger.paid_late;
    state.total_days_late = ledger.total_days_late;
    state.insurance = ledger.insurance.as_ref().map(|c| Insurance {
        insurer: c.insurer.clone(),
        insured_amount: money(c.insured_minor),
        valid_until: c.valid_until,
    });
    state.external_score = ledger.external_score.clone();
    state.legal_status = ledger.legal_status;
    client.updated_at = now;
}
