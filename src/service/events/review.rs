//! The reviews of a batch, off the writer. Once the batch's first transaction has committed
//! its projection (each touched client marked for review), the clients' new state is read on
//! a connection of its own and their pipelines run outside the write lock, on two threads;
//! a second, short write transaction then writes each review whose client has not changed
//! since it was read (same `clients.version`, same policy generation) and clears the mark.
//! A client that did change is read and reviewed again on its new state: outside the lock
//! once more, then, for what is still stale, inside the last transaction. No review is ever
//! written on a stale read, and a crash between the transactions leaves the marks for the
//! scheduled pass.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Connections;
use crate::policy::Trigger;
use crate::service::ServiceError;
use crate::service::policies::{ActiveSet, PolicyRegistry};
use crate::service::reviews::{self, Cause, Computed, Read, ReviewRef};
use crate::store::AnyConnection;
use crate::store::clients::{self, ForReview};

/// Rounds of reviews computed outside the lock before the last stale ones are reviewed inside.
const ROUNDS: usize = 2;
/// Below this many clients a batch's pipelines run on one thread (a thread costs more).
const SPLIT_FROM: usize = 32;

/// The clients with accepted events of a batch, each with those events' JSON, in order.
pub(super) type Touched = BTreeMap<String, Vec<Value>>;

/// A review computed outside the lock, with the client's version it was run on.
struct Ready {
    version: i64,
    computed: Computed,
}

/// Reviews every touched client once, as described above; the reviews that changed a limit
/// or a status, or referred, in `client_id` order.
pub(super) fn all<C: Connections>(
    conns: &mut C,
    registry: &PolicyRegistry,
    touched: &Touched,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<ReviewRef>, ServiceError> {
    let mut pending: Vec<&str> = touched.keys().map(String::as_str).collect();
    let mut reviews = Vec::new();
    for round in 1..=ROUNDS {
        if pending.is_empty() {
            break;
        }
        let (active, ready) = conns.reading(|conn| {
            let active = registry.active(conn)?;
            let read = clients::find_many_for_review(conn, &pending, now)?;
            let ready = compute_all(registry, &active, read, touched, now)?;
            Ok((active, ready))
        })?;
        let last = round == ROUNDS;
        let (written, stale) = conns.writing(|conn| {
            let mut writer = Writer {
                conn,
                registry,
                touched,
                actor,
                now,
            };
            writer.commit(&active, &ready, last)
        })?;
        reviews.extend(written);
        pending = stale
            .iter()
            .filter_map(|id| touched.get_key_value(id.as_str()).map(|(k, _)| k.as_str()))
            .collect();
    }
    reviews.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok(reviews)
}

/// Runs the pipelines of the clients read, split over two threads when there are enough.
fn compute_all(
    registry: &PolicyRegistry,
    active: &ActiveSet,
    mut read: Vec<ForReview>,
    touched: &Touched,
    now: DateTime<Utc>,
) -> Result<Vec<Ready>, ServiceError> {
    let one = |read: Vec<ForReview>| -> Result<Vec<Ready>, ServiceError> {
        read.into_iter()
            .map(|r| compute(registry, active, r, touched, now))
            .collect()
    };
    if read.len() < SPLIT_FROM {
        return one(read);
    }
    let second = read.split_off(read.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| one(second));
        let mut ready = one(read)?;
        let rest = other
            .join()
            .map_err(|_| ServiceError::Internal("a review thread panicked".into()))??;
        ready.extend(rest);
        Ok(ready)
    })
}

fn compute(
    registry: &PolicyRegistry,
    active: &ActiveSet,
    r: ForReview,
    touched: &Touched,
    now: DateTime<Utc>,
) -> Result<Ready, ServiceError> {
    let events = events_of(touched, r.client.client_id.as_str());
    let read = Read {
        client: r.client,
        open_due_dates: r.reviewing.open_due_dates,
        recent_alerts: r.reviewing.recent_alerts,
    };
    let stages = active.stages(Trigger::ClientEvent);
    let computed = reviews::compute(registry, stages, read, &Cause::Events(events), now)?;
    Ok(Ready {
        version: r.version,
        computed,
    })
}

/// The second transaction of a batch, on the writer.
struct Writer<'a, 'c> {
    conn: &'c mut AnyConnection,
    registry: &'a PolicyRegistry,
    touched: &'a Touched,
    actor: &'a str,
    now: DateTime<Utc>,
}

impl Writer<'_, '_> {
    /// Writes the reviews still current; returns them and the clients that changed since they
    /// were read (none when `last`: those are read and reviewed again here, under the lock).
    fn commit(
        &mut self,
        computed_on: &Arc<ActiveSet>,
        ready: &[Ready],
        last: bool,
    ) -> Result<(Vec<ReviewRef>, Vec<String>), ServiceError> {
        let active = self.registry.active(self.conn)?;
        let same_policies = active.generation == computed_on.generation;
        let ids: Vec<&str> = ready
            .iter()
            .map(|r| r.computed.client_id().as_str())
            .collect();
        let versions: HashMap<String, i64> = clients::lock_versions(self.conn, &ids)?
            .into_iter()
            .collect();
        let stages = active.stages(Trigger::ClientEvent);
        let mut written = Vec::new();
        let mut stale = Vec::new();
        for r in ready {
            let id = r.computed.client_id().as_str();
            if !same_policies || versions.get(id) != Some(&r.version) {
                stale.push(id.to_owned());
                continue;
            }
            let cause = Cause::Events(events_of(self.touched, id));
            written.extend(reviews::write(
                self.conn,
                stages,
                &r.computed,
                &cause,
                self.actor,
                self.now,
            )?);
        }
        if last && !stale.is_empty() {
            written.extend(self.review_here(&active, &stale)?);
            stale.clear();
        }
        Ok((written, stale))
    }

    /// Reads and reviews these clients inside the transaction, whose locks they are under.
    fn review_here(
        &mut self,
        active: &ActiveSet,
        ids: &[String],
    ) -> Result<Vec<ReviewRef>, ServiceError> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let read = clients::find_many_for_review(self.conn, &ids, self.now)?;
        let stages = active.stages(Trigger::ClientEvent);
        let mut written = Vec::new();
        for r in read {
            let ready = compute(self.registry, active, r, self.touched, self.now)?;
            let id = ready.computed.client_id().as_str();
            let cause = Cause::Events(events_of(self.touched, id));
            written.extend(reviews::write(
                self.conn,
                stages,
                &ready.computed,
                &cause,
                self.actor,
                self.now,
            )?);
        }
        Ok(written)
    }
}

fn events_of<'t>(touched: &'t Touched, id: &str) -> &'t [Value] {
    touched.get(id).map_or(&[][..], Vec::as_slice)
}
