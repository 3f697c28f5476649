//! The hand-off from the decision writer to the shadow thread. After its commit the writer
//! reads this process's list of active runs (memory, no database) and `try_send`s the decision
//! to a bounded queue; when the queue is full the decision is counted as skipped for each run
//! it was sampled for, and the writer never waits.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sha2::{Digest, Sha256};

use super::worker;
use crate::service::decisions::Decided;
use crate::service::policies::PolicyRegistry;
use crate::store::shadow::{self as table, RunRow};
use crate::store::{AnyConnection, Store, StoreError};

/// Decisions waiting for the shadow thread before new ones are skipped.
const QUEUE: usize = 4096;

/// An active run as this process knows it.
#[derive(Debug)]
pub(crate) struct Ticket {
    /// The run's id: the sequence of its start record. Decisions recorded before it are not
    /// shadowed.
    pub run: i64,
    pub policy: String,
    pub version: i32,
    /// A decision is sampled when its hash is at or under this (`u64::MAX` at rate 1).
    threshold: u64,
    /// Sampled decisions the full queue turned away, not yet added to the run's row.
    pub skipped: AtomicU64,
}

impl Ticket {
    fn new(row: &RunRow) -> Result<Self, StoreError> {
        let rate: Decimal = row.sample_rate.parse().map_err(|e| {
            StoreError::corrupt(format!("shadow run {}: {e}", row.started_sequence))
        })?;
        let threshold = if rate >= Decimal::ONE {
            u64::MAX
        } else {
            (rate * Decimal::from(u64::MAX))
                .floor()
                .to_u64()
                .unwrap_or(0)
        };
        Ok(Self {
            run: row.started_sequence,
            policy: row.policy.clone(),
            version: row.version,
            threshold,
            skipped: AtomicU64::new(0),
        })
    }

    /// Sampling by a hash of the run and the decision: the same decisions in every process
    /// and on every run of the report, with no state to share.
    fn covers(&self, sequence: i64, decision_id: &str) -> bool {
        if sequence <= self.run {
            return false;
        }
        if self.threshold == u64::MAX {
            return true;
        }
        let digest = Sha256::new()
            .chain_update(self.run.to_be_bytes())
            .chain_update(decision_id.as_bytes())
            .finalize();
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(head) <= self.threshold
    }

    /// Takes the count of skipped decisions to add to the run's row.
    pub fn take_skipped(&self) -> u64 {
        self.skipped.swap(0, Ordering::Relaxed)
    }

    pub fn add_skipped(&self, n: u64) {
        self.skipped.fetch_add(n, Ordering::Relaxed);
    }
}

/// A committed decision on its way to the challengers of `runs`.
pub(crate) struct Handed {
    pub sequence: i64,
    pub decision_id: String,
    pub client_id: String,
    /// Its audit record's payload.
    pub payload: String,
    pub runs: Vec<Arc<Ticket>>,
}

/// The active runs of this process; shared by the feed handles and the shadow thread (which
/// holds no sender, so the thread ends when the last handle goes).
#[derive(Default)]
pub(crate) struct Runs {
    current: RwLock<Arc<[Arc<Ticket>]>>,
    /// One reload at a time, so that an older read of the table never replaces a newer one.
    reloading: Mutex<()>,
}

impl Runs {
    pub fn current(&self) -> Arc<[Arc<Ticket>]> {
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&guard)
    }

    /// Reads the active runs from the table. A run still active keeps its ticket (and its
    /// pending count); the pending count of a run gone is added to its row first.
    pub fn reload(&self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        let _one = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let rows = table::active(conn)?;
        let old = self.current();
        let mut tickets = Vec::with_capacity(rows.len());
        for row in &rows {
            match old.iter().find(|t| t.run == row.started_sequence) {
                Some(kept) => tickets.push(Arc::clone(kept)),
                None => tickets.push(Arc::new(Ticket::new(row)?)),
            }
        }
        for gone in old
            .iter()
            .filter(|t| !tickets.iter().any(|k| k.run == t.run))
        {
            flush(conn, gone)?;
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = tickets.into();
        Ok(())
    }
}

/// Adds a ticket's pending skipped count to its run's row (kept pending when that fails).
pub(crate) fn flush(conn: &mut AnyConnection, ticket: &Ticket) -> Result<(), StoreError> {
    let n = ticket.take_skipped();
    if n == 0 {
        return Ok(());
    }
    let counted = i64::try_from(n).unwrap_or(i64::MAX);
    table::add_skipped(conn, ticket.run, counted).inspect_err(|_| ticket.add_skipped(n))
}

/// The handle the decision writer and the shadow use cases hold.
#[derive(Clone)]
pub struct ShadowFeed {
    queue: SyncSender<Handed>,
    runs: Arc<Runs>,
}

impl ShadowFeed {
    /// Starts this process's shadow thread.
    pub fn start(store: Store, registry: Arc<PolicyRegistry>) -> Result<Self, String> {
        let (queue, handed) = mpsc::sync_channel(QUEUE);
        let runs = Arc::new(Runs::default());
        let shared = Arc::clone(&runs);
        thread::Builder::new()
            .name("shadow".into())
            .spawn(move || {
                // A bug while shadowing must not end every run for good: the worker starts
                // again, fresh (results not yet written are lost, as in a crash).
                while catch_unwind(AssertUnwindSafe(|| {
                    worker::run(&handed, &store, &registry, &shared);
                }))
                .is_err()
                {
                    tracing::error!("the shadow worker panicked: started again");
                }
            })
            .map_err(|e| format!("shadow thread: {e}"))?;
        Ok(Self { queue, runs })
    }

    /// Called by the decision writer after the commit that made `decided` durable: hands it
    /// to the runs that sample it, or counts it skipped when the queue is full. Never blocks.
    pub(crate) fn hand_off(&self, decided: &mut Decided) {
        if let Some(payload) = decided.payload.take() {
            let d = &decided.decision;
            self.offer(d.audit.sequence, &d.decision_id, &d.client_id, payload);
        }
    }

    fn offer(&self, sequence: i64, decision_id: &str, client_id: &str, payload: String) {
        let runs: Vec<Arc<Ticket>> = self
            .runs
            .current()
            .iter()
            .filter(|t| t.covers(sequence, decision_id))
            .cloned()
            .collect();
        if runs.is_empty() {
            return;
        }
        let handed = Handed {
            sequence,
            decision_id: decision_id.to_owned(),
            client_id: client_id.to_owned(),
            payload,
            runs,
        };
        if let Err(TrySendError::Full(h) | TrySendError::Disconnected(h)) =
            self.queue.try_send(handed)
        {
            h.runs.iter().for_each(|t| t.add_skipped(1));
        }
    }

    /// The runs this process shadows decisions for, by id (diagnostics, tests).
    pub fn active_runs(&self) -> Vec<i64> {
        self.runs.current().iter().map(|t| t.run).collect()
    }

    /// Re-reads the active runs now (after a start or a stop in this process), rather than at
    /// the shadow thread's next refresh.
    pub(crate) fn reload(&self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        self.runs.reload(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_skips_and_never_waits() {
        let (queue, handed) = mpsc::sync_channel(1);
        let runs = Arc::new(Runs::default());
        let ticket = Arc::new(ticket("1"));
        *runs.current.write().unwrap() = vec![Arc::clone(&ticket)].into();
        let feed = ShadowFeed { queue, runs };
        feed.offer(9, "before the start", "C-1", "{}".into());
        feed.offer(11, "first", "C-1", "{}".into());
        feed.offer(12, "second", "C-1", "{}".into());
        assert_eq!(ticket.take_skipped(), 1);
        assert_eq!(handed.try_recv().unwrap().decision_id, "first");
        assert!(handed.try_recv().is_err());
    }

    fn ticket(rate: &str) -> Ticket {
        let row = RunRow {
            started_sequence: 10,
            policy: "deposit".into(),
            version: 2,
            sample_rate: rate.into(),
            started_at: chrono::NaiveDateTime::default(),
            started_by: "alice".into(),
            stopped_sequence: None,
            stopped_at: None,
            stopped_by: None,
            skipped: 0,
        };
        Ticket::new(&row).unwrap()
    }

    #[test]
    fn samples_about_the_rate_and_only_after_the_start() {
        let all = ticket("1");
        assert!(!all.covers(10, "d"), "recorded before the start");
        assert!(all.covers(11, "d"));
        let quarter = ticket("0.25");
        let ids: Vec<String> = (0..4000).map(|i| format!("decision-{i}")).collect();
        let sampled = ids.iter().filter(|id| quarter.covers(11, id)).count();
        assert!((800..1200).contains(&sampled), "{sampled} of 4000");
        // The same decisions every time.
        assert_eq!(
            sampled,
            ids.iter().filter(|id| quarter.covers(99, id)).count()
        );
    }
}
