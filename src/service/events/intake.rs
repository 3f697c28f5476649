//! Group commit for event batches on SQLite. SQLite has one writer: concurrent batches used to
//! wait for it one by one, each paying its own commit and its own review of every client it
//! names. Now a batch queues here; whoever holds the writer takes every batch waiting (of one
//! sender, up to [`MAX_EVENTS`]) into one transaction, answers each with its own results, and
//! reviews each client once on the state they all leave. Nobody is answered before the commit
//! that makes their events durable. A transaction of several batches that fails is written
//! again one batch at a time, so a batch fails only for its own sake.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{SubsecRound, Utc};

use super::{Draft, Ingested, only, write_batches};
use crate::service::ServiceError;
use crate::service::policies::PolicyRegistry;
use crate::store::{AnyConnection, Store};

/// Most events in one transaction: bounds how long the writer is held and what a batch waits.
const MAX_EVENTS: usize = 5_000;

type Answer = Result<Ingested, ServiceError>;

/// A batch waiting for the writer.
struct Waiting {
    ticket: u64,
    actor: String,
    drafts: Vec<Draft>,
    reply: SyncSender<Answer>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    next_ticket: u64,
}

/// The batches waiting for the event writer; one per process, shared by the workers.
#[derive(Clone, Default)]
pub struct Intake {
    queue: Arc<Mutex<Queue>>,
}

impl Intake {
    /// Writes `drafts` (from a blocking thread), alone or with the batches waiting with it.
    pub(super) fn submit(
        &self,
        store: &Store,
        registry: &PolicyRegistry,
        actor: String,
        drafts: Vec<Draft>,
    ) -> Answer {
        let (reply, answer) = mpsc::sync_channel(1);
        let ticket = {
            let mut queue = self.lock();
            let ticket = queue.next_ticket;
            queue.next_ticket += 1;
            queue.waiting.push_back(Waiting {
                ticket,
                actor,
                drafts,
                reply,
            });
            ticket
        };
        loop {
            if let Some(done) = answered(&answer) {
                return done;
            }
            // Whoever holds the writer answers every batch it takes before letting it go, so
            // once we hold it our batch is either answered or still waiting.
            let ran = store.with_event_writer(|conn| {
                if let Some(done) = answered(&answer) {
                    return Ok(Some(done));
                }
                let group = self.take();
                write_group(conn, registry, group);
                Ok::<_, ServiceError>(None)
            });
            match ran {
                Ok(Some(done)) => return done,
                Ok(None) => {}
                // No writer connection: our batch leaves the queue with the error, unless a
                // writer took it meanwhile, whose answer is then the one.
                Err(e) => {
                    if self.withdraw(ticket) {
                        return Err(e);
                    }
                    return answer.recv().unwrap_or_else(|_| Err(dropped()));
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The oldest batch waiting, and the ones after it from the same sender (the reviews a
    /// transaction writes are recorded under one actor) while they fit in [`MAX_EVENTS`].
    fn take(&self) -> Vec<Waiting> {
        let mut queue = self.lock();
        let mut group: Vec<Waiting> = Vec::new();
        let mut events = 0;
        while let Some(next) = queue.waiting.front() {
            let fits = group.first().is_none_or(|first| {
                next.actor == first.actor && events + next.drafts.len() <= MAX_EVENTS
            });
            if !fits {
                break;
            }
            events += next.drafts.len();
            group.extend(queue.waiting.pop_front());
        }
        group
    }

    /// Takes the batch of `ticket` out of the queue; false when a writer has taken it.
    fn withdraw(&self, ticket: u64) -> bool {
        let mut queue = self.lock();
        let before = queue.waiting.len();
        queue.waiting.retain(|w| w.ticket != ticket);
        queue.waiting.len() < before
    }
}

/// The answer to our batch if a writer has sent it (or has gone without sending it).
fn answered(answer: &Receiver<Answer>) -> Option<Answer> {
    match answer.try_recv() {
        Ok(done) => Some(done),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Disconnected) => Some(Err(dropped())),
    }
}

fn dropped() -> ServiceError {
    ServiceError::Internal("the event writer dropped a batch".into())
}

/// Writes the group in one transaction and answers each batch; when that fails and the group
/// held several, each is written again in a transaction of its own.
fn write_group(conn: &mut AnyConnection, registry: &PolicyRegistry, group: Vec<Waiting>) {
    let Some(first) = group.first() else {
        return;
    };
    let actor = first.actor.clone();
    let now = Utc::now().trunc_subsecs(6);
    let batches: Vec<&[Draft]> = group.iter().map(|w| w.drafts.as_slice()).collect();
    let together = write_batches(conn, registry, &batches, &actor, now);
    match together {
        Ok(answers) => {
            for (waiting, done) in group.into_iter().zip(answers) {
                // A caller that went away still has its events written; a resend is a duplicate.
                let _ = waiting.reply.send(Ok(done));
            }
        }
        Err(e) if group.len() == 1 => {
            let _ = group[0].reply.send(Err(e));
        }
        Err(e) => {
            tracing::debug!(error = %e, batches = group.len(), "event group failed: one by one");
            for waiting in group {
                let alone =
                    write_batches(conn, registry, &[&waiting.drafts], &actor, now).and_then(only);
                let _ = waiting.reply.send(alone);
            }
        }
    }
}
