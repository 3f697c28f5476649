//! Group commit for decisions. Every decision is one transaction's worth of writes (decision,
//! reservation, audit record, chain head) and the commit's fsync dominates its cost. One writer
//! thread per process takes every decision waiting in its queue, runs each in its own savepoint
//! of one transaction and commits once: the fsync is paid per batch, a failing decision undoes
//! only its own writes, and nobody is answered before the commit that makes them durable.

use std::sync::Arc;
use std::thread;

use chrono::Duration;
use tokio::sync::{mpsc, oneshot};

use super::ServiceError;
use super::decisions::{Decided, decide_in_tx};
use super::policies::PolicyRegistry;
use crate::domain::CreditRequest;
use crate::store::{Conflict, Store, savepoint, write_tx};

/// Most decisions in one transaction: bounds the time the write lock is held.
const MAX_BATCH: usize = 256;
/// Queued decisions before callers wait (backpressure, not unbounded memory).
const QUEUE: usize = 4096;
/// Attempts for one decision that lost a race with another process (PostgreSQL).
const ATTEMPTS: usize = 3;

struct Job {
    request: CreditRequest,
    sha: String,
    actor: String,
    reply: oneshot::Sender<Result<Decided, ServiceError>>,
}

/// The handle requests use; the writer thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct DecisionWriter {
    queue: mpsc::Sender<Job>,
}

impl DecisionWriter {
    pub fn start(
        store: Store,
        registry: Arc<PolicyRegistry>,
        ttl: Duration,
    ) -> Result<Self, String> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        thread::Builder::new()
            .name("decision-writer".into())
            .spawn(move || run(jobs, &store, &registry, ttl))
            .map_err(|e| format!("decision writer: {e}"))?;
        Ok(Self { queue })
    }

    /// Queues the decision and waits for the commit that makes it durable.
    pub async fn decide(
        &self,
        request: CreditRequest,
        sha: String,
        actor: String,
    ) -> Result<Decided, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            sha,
            actor,
            reply,
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| ServiceError::Internal("the decision writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| ServiceError::Internal("the decision writer dropped a decision".into()))?
    }
}

fn run(mut jobs: mpsc::Receiver<Job>, store: &Store, registry: &PolicyRegistry, ttl: Duration) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let span = tracing::debug_span!("decision_batch", size = batch.len());
        let _entered = span.enter();
        commit_batch(batch, store, registry, ttl);
    }
}

fn commit_batch(batch: Vec<Job>, store: &Store, registry: &PolicyRegistry, ttl: Duration) {
    let mut conn = match store.get() {
        Ok(conn) => conn,
        Err(e) => return fail_all(batch, &ServiceError::Store(e)),
    };
    let outcome = write_tx(&mut conn, |conn| {
        let results: Vec<Result<Decided, ServiceError>> = batch
            .iter()
            .map(|job| {
                let mut attempt = 1;
                loop {
                    let result = savepoint(conn, |c| {
                        decide_in_tx(c, registry, ttl, &job.request, &job.sha, &job.actor)
                    });
                    match result {
                        Err(e) if e.is_conflict() && attempt < ATTEMPTS => attempt += 1,
                        other => return other,
                    }
                }
            })
            .collect();
        Ok::<_, ServiceError>(results)
    });
    match outcome {
        Ok(results) => {
            for (job, result) in batch.into_iter().zip(results) {
                // A caller that went away (timeout, disconnect) still has its decision stored;
                // its retry with the same request_id gets it.
                let _ = job.reply.send(result);
            }
        }
        Err(e) => fail_all(batch, &e),
    }
}

/// The commit failed: nothing of the batch was written, every caller gets the error.
fn fail_all(batch: Vec<Job>, error: &ServiceError) {
    tracing::warn!(error = %error, decisions = batch.len(), "decision batch not committed");
    for job in batch {
        let _ = job.reply.send(Err(error.for_another_caller()));
    }
}
