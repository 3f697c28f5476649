//! Group commit for event batches on SQLite. SQLite has one writer: concurrent batches used to
//! wait for it one by one, each paying its own commit and its own review of every client it
//! names. Now a batch queues here; whoever holds the writer takes every batch waiting (of one
//! sender, up to [`MAX_EVENTS`]) into one transaction, answers each with its own results, and
//! reviews each client once on the state they all leave. Nobody is answered before the commit
//! that makes their events durable. A transaction of several batches that fails is written
//! again one batch at a time, so a batch fails only for its own sake.
//!
//! The writer also waits a little for the senders it has just answered (see [`Intake::take`]):
//! a client's review costs the same for one batch as for eight, and under load most of a
//! group's time is its reviews, so one group of eight batches is written much faster than two
//! of four.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};

use super::{Draft, Ingested, only, write_batches};
use crate::service::ServiceError;
use crate::service::policies::PolicyRegistry;
use crate::service::writer_stats::{WriterCounts, WriterStats};
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
    /// The batches of the last group plus those waiting when it was answered: the senders
    /// active then, so how many batches the next group can expect once they send again.
    expected: usize,
}

impl Queue {
    /// Fewer batches wait than expected, and they leave room in a transaction.
    fn short(&self) -> bool {
        self.waiting.len() < self.expected
            && self.waiting.iter().map(|w| w.drafts.len()).sum::<usize>() < MAX_EVENTS
    }
}

/// The batches waiting for the event writer; one per process, shared by the workers.
#[derive(Clone, Default)]
pub struct Intake {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    /// Longest a writer waits for the expected batches; zero never waits.
    wait: Duration,
    stats: Arc<WriterStats>,
}

impl Intake {
    /// An intake whose writer waits up to `wait` for the senders of its last group.
    pub fn new(wait: Duration) -> Self {
        Self {
            wait,
            ..Self::default()
        }
    }

    /// Writes `drafts` (from a blocking thread), alone or with the batches waiting with it.
    pub(super) fn submit(
        &self,
        store: &Store,
        registry: &PolicyRegistry,
        actor: String,
        drafts: Vec<Draft>,
    ) -> Answer {
        let (ticket, answer) = self.enqueue(actor, drafts);
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
                let started = Instant::now();
                let taken = group.len();
                write_group(conn, registry, group);
                self.stats.record(taken, started);
                self.answered(taken);
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

    /// Queues a batch and wakes a writer waiting for it: its ticket, and where its answer comes.
    fn enqueue(&self, actor: String, drafts: Vec<Draft>) -> (u64, Receiver<Answer>) {
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
        self.queue.1.notify_all();
        (ticket, answer)
    }

    /// The writer's transactions, the batches they carried and its busy time (the waits for
    /// batches to come left out).
    pub fn counts(&self) -> WriterCounts {
        self.stats.counts()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that a group of `taken` batches was answered: their senders and those waiting are
    /// the batches the next group waits for.
    fn answered(&self, taken: usize) {
        let mut queue = self.lock();
        queue.expected = taken + queue.waiting.len();
    }

    /// The oldest batch waiting, and the ones after it from the same sender (the reviews a
    /// transaction writes are recorded under one actor) while they fit in [`MAX_EVENTS`].
    ///
    /// First, while fewer batches wait than the last group expected (and less than
    /// [`MAX_EVENTS`]), it waits for them, up to the intake's `wait`: the senders just answered
    /// are sending their next batches, and a client named by several is then reviewed once.
    /// A lone sender (one expected) never waits; a sender gone away costs one wait, after
    /// which fewer are expected.
    fn take(&self) -> Vec<Waiting> {
        let mut queue = self.lock();
        let until = Instant::now() + self.wait;
        while queue.short() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue = self
                .queue
                .1
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{Rejection, RejectionCode};

    /// Queues a batch of `events` refused drafts from `actor`, as `submit` does.
    fn push(intake: &Intake, actor: &str, events: usize) -> Receiver<Answer> {
        let draft = || {
            (
                None,
                Err(Rejection::new(RejectionCode::UnknownClient, "test")),
            )
        };
        let drafts = (0..events).map(|_| draft()).collect();
        intake.enqueue(actor.into(), drafts).1
    }

    #[test]
    fn a_queue_is_short_while_fewer_batches_wait_than_expected_and_they_fit() {
        let intake = Intake::default();
        assert!(
            !intake.lock().short(),
            "nothing expected, nothing to wait for"
        );
        let _a = push(&intake, "erp", 500);
        intake.lock().expected = 2;
        assert!(intake.lock().short());
        let _b = push(&intake, "erp", 500);
        assert!(!intake.lock().short(), "the two expected are there");
        intake.lock().expected = 3;
        let _c = push(&intake, "erp", MAX_EVENTS);
        intake.lock().expected = 4;
        assert!(
            !intake.lock().short(),
            "a full transaction waits for no one"
        );
    }

    #[test]
    fn the_writer_waits_for_the_senders_it_answered_then_takes_them_together() {
        // An hour: `take` returns because the expected batches came, not because time passed.
        let intake = Intake::new(Duration::from_secs(3600));
        let _first = push(&intake, "erp", 500);
        intake.answered(2);
        assert_eq!(intake.lock().expected, 3, "two answered and one waiting");
        let sender = {
            let intake = intake.clone();
            std::thread::spawn(move || (push(&intake, "erp", 500), push(&intake, "erp", 500)))
        };
        let group = intake.take();
        assert_eq!(group.len(), 3);
        assert!(intake.lock().waiting.is_empty());
        let _answers = sender.join();
        intake.answered(group.len());
        assert_eq!(intake.lock().expected, 3);
    }

    #[test]
    fn without_a_wait_or_with_one_sender_the_writer_takes_what_waits() {
        let intake = Intake::new(Duration::ZERO);
        let _a = push(&intake, "erp", 10);
        intake.answered(4);
        assert_eq!(intake.take().len(), 1, "no wait configured");

        let intake = Intake::new(Duration::from_secs(3600));
        let _a = push(&intake, "erp", 10);
        intake.answered(1);
        assert_eq!(intake.lock().expected, 2);
        let _b = push(&intake, "erp", 10);
        let _c = push(&intake, "shop", 10);
        let group = intake.take();
        assert_eq!(
            group.len(),
            2,
            "another sender's batch goes in the next group"
        );
        intake.answered(group.len());
        assert_eq!(
            intake.lock().expected,
            3,
            "the two answered and the one left waiting"
        );
    }
}
