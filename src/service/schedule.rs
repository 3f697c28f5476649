//! The scheduled review pass: re-scores and reviews the clients on whose next review day
//! time alone changed their risk (an invoice 1, 31, 61 or 91 days past due, insurance cover
//! ended, a sales alert no longer recent), so that limits do not wait for the next event.
//! It also marks lapsed reservations as expired.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ServiceError;
use super::policies::PolicyRegistry;
use super::reviews::{self, Cause, ReviewRef};
use crate::store::{AnyConnection, Store, ledgers, reservations, write_tx, write_tx_retrying};

/// The actor of the pass's audit records.
pub const ACTOR: &str = "scheduler";
const PAGE: i64 = 200;

#[derive(Debug, Default)]
pub struct PassReport {
    pub reviewed: usize,
    pub reviews: Vec<ReviewRef>,
    pub reservations_expired: usize,
    /// Clients whose review failed (logged); the next pass tries them again.
    pub failed: usize,
}

/// One pass as of `now`: one short transaction per client, so a pass never holds the write
/// lock for long; a client that fails is logged and skipped.
pub fn run_pass(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    now: DateTime<Utc>,
) -> Result<PassReport, ServiceError> {
    let mut report = PassReport {
        reservations_expired: write_tx(conn, |c| {
            reservations::expire_due(c, now.naive_utc()).map_err(ServiceError::from)
        })?,
        ..PassReport::default()
    };
    let today = now.date_naive();
    let mut after = String::new();
    loop {
        let due = ledgers::due_for_review(conn, today, &after, PAGE)?;
        let Some(last) = due.last() else { break };
        after = last.clone();
        for id in due {
            let reviewed = write_tx_retrying(conn, |conn| {
                let Some(account) = ledgers::lock_many(conn, &[id.as_str()])?.pop() else {
                    return Ok(None);
                };
                // A batch of events may have reviewed it since it was listed.
                if !ledgers::review_due(conn, &id, today)? {
                    return Ok(None);
                }
                let active = registry.active(conn)?;
                reviews::review(
                    conn,
                    registry,
                    &active,
                    &account.client_id,
                    Cause::Schedule,
                    ACTOR,
                    now,
                )
                .map(Some)
            });
            match reviewed {
                Ok(Some(review)) => {
                    report.reviewed += 1;
                    report.reviews.extend(review);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(client_id = %id, error = %e, "scheduled review failed");
                    report.failed += 1;
                }
            }
        }
    }
    Ok(report)
}

/// Runs [`run_pass`] every `every` on the server's runtime, the first one right away.
pub fn spawn(store: Store, registry: Arc<PolicyRegistry>, every: Duration) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        loop {
            tick.tick().await;
            let registry = Arc::clone(&registry);
            let pass = store
                .run(move |conn| run_pass(conn, &registry, Utc::now()))
                .await;
            match pass {
                Ok(r) if r.reviewed + r.reservations_expired + r.failed > 0 => tracing::info!(
                    reviewed = r.reviewed,
                    recorded = r.reviews.len(),
                    reservations_expired = r.reservations_expired,
                    failed = r.failed,
                    "scheduled review pass"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduled review pass failed"),
            }
        }
    });
}
