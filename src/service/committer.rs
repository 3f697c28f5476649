//! Group commit for decisions. Every decision is one transaction's worth of writes (decision,
//! reservation, audit record, chain head) and the commit's fsync dominates its cost. Requests
//! evaluate their policies in parallel and hand the writer a draft; one writer thread per
//! process takes every draft waiting in its queue, checks and writes each in one transaction
//! and commits once: the fsync is paid per batch, a failing decision undoes only its own
//! writes, and nobody is answered before the commit that makes them durable.
//!
//! On PostgreSQL each decision has its own savepoint (a failed statement aborts the whole
//! transaction there). On SQLite a batch is first written without any: a savepoint costs two
//! statements parsed by `sqlite3_exec` and, above all, a copy of every page a decision touches
//! into the sub-journal, and decisions almost never fail in the writer (the request thread
//! already refused what it could). When one does, the whole transaction is rolled back — none
//! of its rows stay — and the batch is written again with a savepoint per decision.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use chrono::Duration;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc, oneshot};

use super::ServiceError;
use super::decisions::{Decided, Draft, commit_in_tx};
use super::policies::PolicyRegistry;
use super::shadow::ShadowFeed;
use super::writer_stats::{WriterCounts, WriterStats};
use crate::audit::Chain;
use crate::store::policies as policy_table;
use crate::store::{AnyConnection, Conflict, Store, StoreError, savepoint, write_tx};

/// Most decisions in one transaction: bounds the time the write lock is held.
const MAX_BATCH: usize = 256;
/// Queued decisions before callers wait (backpressure, not unbounded memory).
const QUEUE: usize = 4096;
/// Drafts prepared at once per core on SQLite (see [`DecisionWriter::drafting`]). With one,
/// the cores idled between a draft's end and the next one's start and the writer's batches
/// shrank: the bench's open loop at 2,000/s had a worse p99 and saturated once in six runs
/// (docs/benchmarks.md, decisions, sixth round).
const DRAFTS_PER_CORE: usize = 2;
/// Attempts for one decision that lost a race with another process (PostgreSQL).
const ATTEMPTS: usize = 3;

type Reply = oneshot::Sender<Result<Decided, ServiceError>>;

struct Job {
    draft: Draft,
    reply: Reply,
}

/// The handle requests use; the writer thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct DecisionWriter {
    queue: mpsc::Sender<Job>,
    /// Requests preparing a draft at once, on SQLite (see [`DecisionWriter::drafting`]).
    drafting: Option<Arc<Semaphore>>,
    stats: Arc<WriterStats>,
}

impl DecisionWriter {
    pub fn start(
        store: Store,
        registry: Arc<PolicyRegistry>,
        ttl: Duration,
        shadow: ShadowFeed,
    ) -> Result<Self, String> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let stats = Arc::new(WriterStats::default());
        let counted = Arc::clone(&stats);
        let drafting = (store.backend() == "sqlite").then(|| {
            let cores = thread::available_parallelism().map_or(1, usize::from);
            Arc::new(Semaphore::new(DRAFTS_PER_CORE * cores))
        });
        thread::Builder::new()
            .name("decision-writer".into())
            .spawn(move || run(jobs, &store, &registry, ttl, &shadow, &counted))
            .map_err(|e| format!("decision writer: {e}"))?;
        Ok(Self {
            queue,
            drafting,
            stats,
        })
    }

    /// The writer's batches, decisions and busy time so far.
    pub fn counts(&self) -> WriterCounts {
        self.stats.counts()
    }

    /// Waits for a turn to prepare a draft (read the client, run the policies), in arrival
    /// order. On SQLite that work is all CPU: more drafts at once than `DRAFTS_PER_CORE` per
    /// core only share the cores, and queue for pooled connections, which r2d2 does not hand
    /// out in order (a newcomer can take the one a waiter was woken for); without turns the
    /// bench's closed loop had a p99.9 of 176-344 ms, with them 55-87 ms. On
    /// PostgreSQL a draft waits on the network, and only the pool bounds it.
    pub(crate) async fn drafting(&self) -> Result<Option<SemaphorePermit<'_>>, ServiceError> {
        match &self.drafting {
            None => Ok(None),
            Some(turns) => turns
                .acquire()
                .await
                .map(Some)
                .map_err(|_| ServiceError::Internal("the decision writer has stopped".into())),
        }
    }

    /// Queues the draft and waits for the commit that makes its decision durable.
    pub(crate) async fn decide(&self, draft: Draft) -> Result<Decided, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { draft, reply };
        self.queue
            .send(job)
            .await
            .map_err(|_| ServiceError::Internal("the decision writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| ServiceError::Internal("the decision writer dropped a decision".into()))?
    }
}

fn run(
    jobs: mpsc::Receiver<Job>,
    store: &Store,
    registry: &PolicyRegistry,
    ttl: Duration,
    shadow: &ShadowFeed,
    stats: &WriterStats,
) {
    serve(jobs, |batch| {
        let size = batch.len();
        let span = tracing::debug_span!("decision_batch", size);
        let _entered = span.enter();
        let started = Instant::now();
        let answers = commit_batch(batch, store, registry, ttl);
        // Counted before anyone is answered: a caller that reads `/metrics` after its answer
        // finds its decision there.
        stats.record(size, started.elapsed());
        for (reply, mut result) in answers {
            // Durable now: the shadow runs may see it (never waited for).
            if let Ok(decided) = &mut result {
                shadow.hand_off(decided);
            }
            // A caller that went away (timeout, disconnect) still has its decision stored;
            // its retry with the same request_id gets it.
            let _ = reply.send(result);
        }
    });
}

/// A caller's reply channel and what to send it.
type Answer = (Reply, Result<Decided, ServiceError>);

/// Takes every job waiting (up to `MAX_BATCH`) and hands them to `commit` together, until the
/// last handle is dropped. A panic in `commit` (a bug) fails that batch alone: its callers'
/// replies are dropped with it, so they get an error, and the thread goes on with the next
/// batch instead of leaving every later decision without a writer until a restart. Its pooled
/// connection is not reused: the pool discards a connection returned inside a transaction.
fn serve<J>(mut jobs: mpsc::Receiver<J>, mut commit: impl FnMut(Vec<J>)) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        if catch_unwind(AssertUnwindSafe(|| commit(batch))).is_err() {
            tracing::error!(
                decisions = size,
                "the decision writer panicked: batch failed"
            );
        }
    }
}

/// Writes a batch; what each caller is to be answered, in order.
fn commit_batch(
    batch: Vec<Job>,
    store: &Store,
    registry: &PolicyRegistry,
    ttl: Duration,
) -> Vec<Answer> {
    let mut conn = match store.get() {
        Ok(conn) => conn,
        Err(e) => {
            let replies = batch.into_iter().map(|j| j.reply).collect();
            return fail_all(replies, &ServiceError::Store(e));
        }
    };
    let (drafts, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|j| (j.draft, j.reply)).unzip();
    let unguarded = match *conn {
        AnyConnection::Sqlite(_) => write_batch(&mut conn, &drafts, registry, ttl, Mode::Unguarded),
        AnyConnection::Postgres(_) => Err(Failed::Decision),
    };
    let outcome = match unguarded {
        Err(Failed::Decision) => write_batch(&mut conn, &drafts, registry, ttl, Mode::Guarded),
        other => other,
    };
    match outcome {
        Ok(results) => replies.into_iter().zip(results).collect(),
        Err(Failed::Batch(e)) => fail_all(replies, &e),
        Err(Failed::Decision) => fail_all(
            replies,
            &ServiceError::Internal("a decision failed outside a savepoint".into()),
        ),
    }
}

/// Whether each decision of a batch gets its own savepoint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// None: the first decision that fails rolls the whole transaction back (SQLite).
    Unguarded,
    /// One per decision: a decision that fails undoes only its own writes.
    Guarded,
}

/// Why a batch's transaction was not committed.
enum Failed {
    /// The transaction itself (begin, chain head, commit): every caller gets the error.
    Batch(ServiceError),
    /// A decision failed in an unguarded batch: write it again, guarded.
    Decision,
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Self::Batch(ServiceError::Store(e))
    }
}

/// Writes every draft in one transaction; a result per draft, in order.
fn write_batch(
    conn: &mut AnyConnection,
    drafts: &[Draft],
    registry: &PolicyRegistry,
    ttl: Duration,
    mode: Mode,
) -> Result<Vec<Result<Decided, ServiceError>>, Failed> {
    write_tx(conn, |conn| {
        // Read once: an activation committed during the batch applies from the next one.
        let generation = policy_table::generation(conn)?;
        let mut chain = Chain::lock(conn)?;
        let mut results = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let draft = draft.clone();
            let result = match mode {
                Mode::Guarded => commit_one(conn, &mut chain, registry, ttl, generation, draft),
                Mode::Unguarded => {
                    match commit_in_tx(conn, &mut chain, registry, ttl, generation, draft) {
                        Ok(decided) => Ok(decided),
                        Err(e) => {
                            tracing::debug!(error = %e, "decision failed unguarded: batch again");
                            return Err(Failed::Decision);
                        }
                    }
                }
            };
            results.push(result);
        }
        chain.finish(conn)?;
        Ok(results)
    })
}

/// One draft in its own savepoint; a conflict with another process (PostgreSQL) is retried
/// on the state as it is then.
fn commit_one(
    conn: &mut AnyConnection,
    chain: &mut Chain,
    registry: &PolicyRegistry,
    ttl: Duration,
    generation: i64,
    draft: Draft,
) -> Result<Decided, ServiceError> {
    let mut draft = draft;
    let mut attempt = 1;
    loop {
        let (retry, before) = (draft.clone(), chain.clone());
        let result = savepoint(conn, |c| {
            commit_in_tx(c, chain, registry, ttl, generation, draft)
        });
        if result.is_err() {
            // The savepoint undid its records: the chain goes on from where it was.
            *chain = before;
        }
        match result {
            Err(e) if e.is_conflict() && attempt < ATTEMPTS => {
                attempt += 1;
                draft = retry;
            }
            other => return other,
        }
    }
}

/// The commit failed: nothing of the batch was written, every caller gets the error.
fn fail_all(replies: Vec<Reply>, error: &ServiceError) -> Vec<Answer> {
    tracing::warn!(error = %error, decisions = replies.len(), "decision batch not committed");
    replies
        .into_iter()
        .map(|reply| (reply, Err(error.for_another_caller())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestJob = (u32, oneshot::Sender<u32>);

    fn ask(queue: &mpsc::Sender<TestJob>, n: u32) -> Result<u32, oneshot::error::RecvError> {
        let (reply, answer) = oneshot::channel();
        queue
            .blocking_send((n, reply))
            .map_err(|_| "writer gone")
            .unwrap();
        answer.blocking_recv()
    }

    /// A batch whose commit panics fails alone (its callers get an error, not a hang); the
    /// writer goes on with the next batch.
    #[test]
    fn a_panicking_batch_does_not_stop_the_writer() {
        let (queue, jobs) = mpsc::channel::<TestJob>(8);
        let writer = thread::spawn(move || {
            serve(jobs, |batch| {
                for (n, reply) in batch {
                    assert_ne!(n, 13, "a bug in the writer");
                    let _ = reply.send(n * 10);
                }
            });
        });
        assert_eq!(ask(&queue, 1).ok(), Some(10));
        assert!(ask(&queue, 13).is_err());
        assert_eq!(ask(&queue, 2).ok(), Some(20));
        drop(queue);
        assert!(writer.join().is_ok());
    }
}
