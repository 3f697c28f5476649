//! Group commit for event batches on SQLite. SQLite has one writer: concurrent batches used to
//! wait for it one by one, each paying its own commit and its own review of every client it
//! names. Now a batch queues here; whoever holds the writer takes every batch waiting (of one
//! sender, up to [`MAX_EVENTS`]) into one transaction, answers each with its own results, and
//! reviews each client once on the state they all leave. Nobody is answered before the commit
//! that makes their events durable. A transaction of several batches that fails is written
//! again one batch at a time, so a batch fails only for its own sake.
//!
//! Batches that arrive while the writer decides the events of its group join the group in the
//! same transaction, and the writer waits a little for the senders it has just answered (see
//! [`Intake::more`]): a client's review costs the same for one batch as for eight, and under
//! load most of a group's time is its reviews, so one group of eight batches is written much
//! faster than two of four. The wait overlaps the work: the group's first batches are decided
//! while the others are on their way.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};

use super::{Draft, Ingested, only, write_batches, write_joining};
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
    /// The waiting batches that can join `group` (the oldest waiting when it is empty): those
    /// of its sender, in order, while they fit in [`MAX_EVENTS`] (the reviews a transaction
    /// writes are recorded under one actor).
    fn take_for(&mut self, group: &[Waiting]) -> Vec<Waiting> {
        let mut events: usize = group.iter().map(|w| w.drafts.len()).sum();
        let mut taken: Vec<Waiting> = Vec::new();
        while let Some(next) = self.waiting.front() {
            let actor = group.first().or(taken.first()).map(|w| w.actor.as_str());
            let fits = actor.is_none_or(|actor| {
                next.actor == actor && events + next.drafts.len() <= MAX_EVENTS
            });
            if !fits {
                break;
            }
            events += next.drafts.len();
            taken.extend(self.waiting.pop_front());
        }
        taken
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
                let started = Instant::now();
                let (taken, waited) = self.write_group(conn, registry);
                self.stats
                    .record(taken, started.elapsed().saturating_sub(waited));
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

    /// Batches to join `group` (the batches a transaction holds so far): those waiting that
    /// can ([`Queue::take_for`]), without waiting when there are some; when there are none,
    /// while the group holds fewer batches than the last group expected and less than
    /// [`MAX_EVENTS`], the next ones to come, until `until`. The senders just answered are
    /// sending their next batches, and a client named by several is then reviewed once. A
    /// lone sender (one expected) never waits; a sender gone away costs one wait, after which
    /// fewer are expected. Also returns how long it waited.
    fn more(&self, group: &[Waiting], until: Instant) -> (Vec<Waiting>, Duration) {
        let started = Instant::now();
        let events: usize = group.iter().map(|w| w.drafts.len()).sum();
        let mut queue = self.lock();
        loop {
            let joining = queue.take_for(group);
            let left = until.saturating_duration_since(Instant::now());
            let expecting = group.len() < queue.expected && events < MAX_EVENTS;
            // A batch waiting that cannot join goes in the next group: no reason to wait.
            if !joining.is_empty() || !queue.waiting.is_empty() || !expecting || left.is_zero() {
                return (joining, started.elapsed());
            }
            queue = self
                .queue
                .1
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Writes the oldest batch waiting and the batches of its sender that join it (see
    /// [`Intake::more`]) in one transaction, and answers each; when that fails and the group
    /// held several, each is written again in a transaction of its own. Returns how many
    /// batches it answered and how long it waited for them.
    fn write_group(
        &self,
        conn: &mut AnyConnection,
        registry: &PolicyRegistry,
    ) -> (usize, Duration) {
        let mut group = self.lock().take_for(&[]);
        let Some(first) = group.first() else {
            return (0, Duration::ZERO);
        };
        let actor = first.actor.clone();
        let now = Utc::now().trunc_subsecs(6);
        let until = Instant::now() + self.wait;
        let mut waited = Duration::ZERO;
        let together = write_joining(
            conn,
            registry,
            &actor,
            now,
            &mut group,
            |waiting| waiting.drafts.as_slice(),
            |group| {
                let (joining, wait) = self.more(group, until);
                waited += wait;
                joining
            },
        );
        let taken = group.len();
        match together {
            Ok(answers) => {
                for (waiting, done) in group.into_iter().zip(answers) {
                    // A caller that went away still has its events written; a resend is a
                    // duplicate.
                    let _ = waiting.reply.send(Ok(done));
                }
            }
            Err(e) if taken == 1 => {
                let _ = group[0].reply.send(Err(e));
            }
            Err(e) => {
                tracing::debug!(error = %e, batches = taken, "event group failed: one by one");
                for waiting in group {
                    let alone = write_batches(conn, registry, &[&waiting.drafts], &actor, now)
                        .and_then(only);
                    let _ = waiting.reply.send(alone);
                }
            }
        }
        (taken, waited)
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

    /// The hour a test gives `more`: it returns because batches came or none are expected,
    /// not because time passed.
    fn an_hour() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn a_group_takes_the_batches_of_its_sender_while_they_fit() {
        let intake = Intake::default();
        let _a = push(&intake, "erp", 500);
        let _b = push(&intake, "erp", 500);
        let _c = push(&intake, "shop", 10);
        let _d = push(&intake, "erp", 10);
        let group = intake.lock().take_for(&[]);
        assert_eq!(group.len(), 2, "the oldest and the next of its sender");
        assert!(
            intake.lock().take_for(&group).is_empty(),
            "another sender's is next"
        );
        let shop = intake.lock().take_for(&[]);
        assert_eq!(shop.len(), 1);
        let _full = push(&intake, "erp", MAX_EVENTS);
        let erp = intake.lock().take_for(&[]);
        assert_eq!(
            erp.len(),
            1,
            "the small one; the full one does not fit after it"
        );
        assert_eq!(intake.lock().waiting.len(), 1);
    }

    #[test]
    fn the_writer_waits_for_the_senders_it_answered_and_they_join_its_group() {
        let intake = Intake::new(Duration::from_secs(3600));
        let _first = push(&intake, "erp", 500);
        intake.answered(2);
        assert_eq!(intake.lock().expected, 3, "two answered and one waiting");
        let mut group = intake.lock().take_for(&[]);
        let sender = {
            let intake = intake.clone();
            std::thread::spawn(move || (push(&intake, "erp", 500), push(&intake, "erp", 500)))
        };
        while group.len() < 3 {
            let (joining, _) = intake.more(&group, an_hour());
            assert!(!joining.is_empty(), "it waits until a batch comes");
            group.extend(joining);
        }
        let _answers = sender.join();
        let (none, _) = intake.more(&group, an_hour());
        assert!(none.is_empty(), "all three expected are in: no more wait");
        intake.answered(group.len());
        assert_eq!(intake.lock().expected, 3);
    }

    #[test]
    fn without_a_wait_or_with_one_sender_the_writer_takes_what_waits() {
        let intake = Intake::default();
        let _a = push(&intake, "erp", 10);
        intake.answered(4);
        let group = intake.lock().take_for(&[]);
        assert!(
            intake.more(&group, Instant::now()).0.is_empty(),
            "the wait is over"
        );

        let intake = Intake::default();
        let _a = push(&intake, "erp", 10);
        intake.answered(0);
        let group = intake.lock().take_for(&[]);
        assert!(
            intake.more(&group, an_hour()).0.is_empty(),
            "a lone sender: nobody else expected"
        );

        let intake = Intake::default();
        let _a = push(&intake, "erp", 10);
        intake.answered(2);
        let group = intake.lock().take_for(&[]);
        let _b = push(&intake, "shop", 10);
        assert!(
            intake.more(&group, an_hour()).0.is_empty(),
            "another sender's batch waits: the group does not"
        );
        intake.answered(group.len());
        assert_eq!(
            intake.lock().expected,
            2,
            "the one answered and the one left waiting"
        );
    }
}
