//! The shadow thread: re-runs each handed decision's snapshot with the challenger in place of
//! the active stage (exactly as a backtest re-runs a logged one) and writes the two terms side
//! by side. It refreshes the active runs every [`REFRESH`], which is how runs started or
//! stopped by another server process reach this one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::feed::{Handed, Runs, Ticket, flush};
use crate::policy::Stage;
use crate::service::ServiceError;
use crate::service::audit::Recorded;
use crate::service::challenge::TermsSummary;
use crate::service::policies::PolicyRegistry;
use crate::store::policies as policy_table;
use crate::store::shadow::{self as table, ResultRow};
use crate::store::{AnyConnection, Store, StoreError, write_tx};

/// How often the active runs are re-read: the longest a start or stop made by another server
/// process takes to reach this one.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How often results are written: on SQLite every write takes the one write lock (and, with
/// `synchronous = FULL`, an fsync) that the decision writer needs, so they are grouped.
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// Most decisions compared between two looks at the clock.
const MAX_BATCH: usize = 256;

pub(super) fn run(
    handed: &Receiver<Handed>,
    store: &Store,
    registry: &PolicyRegistry,
    runs: &Runs,
) {
    let mut worker = Worker {
        registry,
        challengers: HashMap::new(),
        recorded: HashMap::new(),
        rows: Vec::new(),
        owners: Vec::new(),
    };
    let mut refreshed: Option<Instant> = None;
    let mut written = Instant::now();
    loop {
        if refreshed.is_none_or(|at| at.elapsed() >= REFRESH) {
            if let Err(e) = refresh(store, runs, &mut worker) {
                tracing::warn!(error = %e, "shadow runs not refreshed");
            }
            refreshed = Some(Instant::now());
        }
        let mut wait = refreshed.map_or(REFRESH, |at| REFRESH.saturating_sub(at.elapsed()));
        if !worker.rows.is_empty() {
            wait = wait.min(WRITE_EVERY.saturating_sub(written.elapsed()));
        }
        let open = match handed.recv_timeout(wait) {
            Ok(first) => {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match handed.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                worker.process(store, &batch);
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        };
        if !open || written.elapsed() >= WRITE_EVERY {
            worker.write(store);
            written = Instant::now();
        }
        if !open {
            break;
        }
    }
}

/// Re-reads the active runs, adds the skipped counts pending, forgets stopped challengers.
fn refresh(store: &Store, runs: &Runs, worker: &mut Worker) -> Result<(), StoreError> {
    let mut conn = store.get()?;
    for ticket in runs.current().iter() {
        flush(&mut conn, ticket)?;
    }
    runs.reload(&mut conn)?;
    let current = runs.current();
    worker
        .challengers
        .retain(|run, _| current.iter().any(|t| t.run == *run));
    Ok(())
}

struct Worker<'a> {
    registry: &'a PolicyRegistry,
    /// Run → its challenger stage.
    challengers: HashMap<i64, Stage>,
    /// The stages a decision recorded (names, versions, sha256) → those stages, so that a
    /// steady flow of decisions reads no policy version from the database.
    recorded: HashMap<String, Vec<Stage>>,
    /// Results not written yet, and whose each is.
    rows: Vec<ResultRow>,
    owners: Vec<Arc<Ticket>>,
}

impl Worker<'_> {
    fn process(&mut self, store: &Store, batch: &[Handed]) {
        let mut conn = match store.get() {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, decisions = batch.len(), "shadow batch skipped");
                return skip_all(batch);
            }
        };
        for handed in batch {
            match self.compare(&mut conn, handed) {
                Ok(results) => {
                    for (ticket, result) in handed.runs.iter().zip(results) {
                        match result {
                            Ok(row) => {
                                self.rows.push(row);
                                self.owners.push(Arc::clone(ticket));
                            }
                            Err(e) => {
                                tracing::warn!(run = ticket.run, sequence = handed.sequence, error = %e, "decision not shadowed");
                                ticket.add_skipped(1);
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(sequence = handed.sequence, error = %e, "decision not shadowed");
                    skip_all(std::slice::from_ref(handed));
                }
            }
        }
    }

    /// Writes the results pending; when that fails they are counted as skipped.
    fn write(&mut self, store: &Store) {
        if self.rows.is_empty() {
            return;
        }
        let written = store
            .get()
            .and_then(|mut conn| write_tx(&mut conn, |c| table::insert_results(c, &self.rows)));
        if let Err(e) = written {
            tracing::warn!(error = %e, results = self.rows.len(), "shadow results not written");
            self.owners.iter().for_each(|t| t.add_skipped(1));
        }
        self.rows.clear();
        self.owners.clear();
    }

    /// The decision's terms as answered and as each run's challenger gives them.
    fn compare(
        &mut self,
        conn: &mut AnyConnection,
        handed: &Handed,
    ) -> Result<Vec<Result<ResultRow, ServiceError>>, ServiceError> {
        let rec = Recorded::from_payload(handed.sequence, &handed.payload)?;
        let recorded = TermsSummary::of_answer(&rec.answer).map_err(ServiceError::Internal)?;
        let recorded_json = to_json(&recorded)?;
        let stages = self.recorded_stages(conn, &rec)?;
        let mut out = Vec::with_capacity(handed.runs.len());
        for ticket in &handed.runs {
            let row = self.challenger(conn, ticket).and_then(|challenger| {
                let swapped: Vec<Stage> = stages
                    .iter()
                    .map(|s| {
                        if s.name == challenger.name {
                            &challenger
                        } else {
                            s
                        }
                    })
                    .cloned()
                    .collect();
                let (_, terms) = rec.rerun(self.registry.engine(), &swapped)?;
                let summary = TermsSummary::of(&terms).map_err(ServiceError::Internal)?;
                Ok(ResultRow {
                    run: ticket.run,
                    sequence: handed.sequence,
                    decision_id: handed.decision_id.clone(),
                    client_id: handed.client_id.clone(),
                    changed: summary != recorded,
                    recorded: recorded_json.clone(),
                    challenger: to_json(&summary)?,
                })
            });
            out.push(row);
        }
        Ok(out)
    }

    /// The stages the decision recorded, from its stored versions (sha256 checked).
    fn recorded_stages(
        &mut self,
        conn: &mut AnyConnection,
        rec: &Recorded,
    ) -> Result<Vec<Stage>, ServiceError> {
        let key = rec
            .policies
            .iter()
            .map(|p| format!("{}:{}:{}", p.name, p.version, p.sha256))
            .collect::<Vec<_>>()
            .join(",");
        if !self.recorded.contains_key(&key) {
            let stages = rec.stages(conn, self.registry, None)?.map_err(|missing| {
                ServiceError::Internal(format!(
                    "record {}: {} recorded policy version(s) not found",
                    rec.sequence,
                    missing.len()
                ))
            })?;
            if self.recorded.len() > 64 {
                self.recorded.clear();
            }
            self.recorded.insert(key.clone(), stages);
        }
        Ok(self.recorded.get(&key).cloned().unwrap_or_default())
    }

    fn challenger(
        &mut self,
        conn: &mut AnyConnection,
        ticket: &Ticket,
    ) -> Result<Stage, ServiceError> {
        if !self.challengers.contains_key(&ticket.run) {
            let row =
                policy_table::version(conn, &ticket.policy, ticket.version)?.ok_or_else(|| {
                    ServiceError::NotFound {
                        what: format!("version {} of policy `{}`", ticket.version, ticket.policy),
                    }
                })?;
            self.challengers
                .insert(ticket.run, self.registry.stage(&row)?);
        }
        self.challengers
            .get(&ticket.run)
            .cloned()
            .ok_or_else(|| ServiceError::Internal("challenger not cached".into()))
    }
}

fn to_json(summary: &TermsSummary) -> Result<String, ServiceError> {
    serde_json::to_string(summary).map_err(|e| ServiceError::Internal(e.to_string()))
}

fn skip_all(batch: &[Handed]) {
    batch
        .iter()
        .flat_map(|h| &h.runs)
        .for_each(|t| t.add_skipped(1));
}
