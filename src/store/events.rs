//! The client event log: append-only, one row per accepted event, in arrival order (`seq`),
//! and the connection event batches are written through.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use r2d2::ManageConnection;

use super::checkpoint::Checkpointer;
use super::moment::Moment;
use super::schema::client_events;
use super::{AnyConnection, Manager, Store, StoreError, classify};
use crate::config::DatabaseTarget;

/// Pragmas of the event writer's connection, on top of the pool's: temporary b-trees (sorts,
/// `IN` lists) in memory, and a page cache of 64 MiB rather than 2 MiB so that the indexes a
/// batch probes (event ids, invoices, clients) stay in memory as the tables grow.
const WRITER_PRAGMAS: &str = "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536;";

/// With a checkpoint thread (see `checkpoint`), the writer's commits leave the copying to it.
const NO_CHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 0;";

/// SQLite has one writer at a time. Concurrent batches on pooled connections queued on the
/// database lock through SQLite's busy handler, which sleeps and polls (up to 100 ms a try):
/// the lock sat idle between batches and some failed with "database is locked" after
/// `busy_timeout`. They now queue on this mutex and write through one dedicated connection,
/// whose statement and page caches stay warm. PostgreSQL needs none of it (row locks).
#[derive(Clone)]
pub struct EventWriter {
    sqlite: Option<Arc<Sqlite>>,
}

struct Sqlite {
    manager: Manager,
    writer: Mutex<Option<AnyConnection>>,
    checkpointer: Option<Checkpointer>,
}

impl EventWriter {
    pub(super) fn new(manager: &Manager) -> Self {
        let sqlite = matches!(manager.target, DatabaseTarget::Sqlite(_)).then(|| {
            Arc::new(Sqlite {
                manager: manager.clone(),
                writer: Mutex::new(None),
                checkpointer: Checkpointer::start(manager),
            })
        });
        Self { sqlite }
    }
}

impl Store {
    /// Runs `f` on the connection event batches write through, from a blocking thread: on
    /// SQLite the dedicated writer connection, one caller at a time (opened on first use and
    /// again after it broke); on PostgreSQL a pooled connection.
    pub fn with_event_writer<T, E>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let Some(sqlite) = &self.event_writer.sqlite else {
            let mut conn = self.get()?;
            return f(&mut conn);
        };
        let Sqlite {
            manager,
            writer,
            checkpointer,
        } = &**sqlite;
        let mut guard = writer.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = match guard.take() {
            Some(conn) => conn,
            None => {
                let mut conn = manager
                    .connect()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                conn.batch_execute(WRITER_PRAGMAS)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                if checkpointer.is_some() {
                    conn.batch_execute(NO_CHECKPOINT)
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                }
                conn
            }
        };
        if let Some(checkpointer) = checkpointer {
            checkpointer.before_write();
        }
        let conn = guard.insert(conn);
        // A caller that panics inside a transaction (a bug) would leave it open, holding
        // SQLite's write lock for every writer: the connection is dropped, which rolls it back.
        let result = match catch_unwind(AssertUnwindSafe(|| f(&mut *conn))) {
            Ok(result) => result,
            Err(panic) => {
                *guard = None;
                resume_unwind(panic);
            }
        };
        if manager.has_broken(conn) {
            *guard = None;
        }
        if let Some(checkpointer) = checkpointer {
            checkpointer.after_write();
        }
        result
    }
}

/// One stored event.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = client_events)]
pub struct EventRow {
    pub seq: i64,
    pub event_id: String,
    pub client_id: String,
    pub event_type: String,
    pub occurred_at: NaiveDateTime,
    pub received_at: NaiveDateTime,
    pub received_by: String,
    pub body_sha256: String,
    /// The normalised event, canonical JSON.
    pub body: String,
}

/// An event to append.
#[derive(Debug, Insertable)]
#[diesel(table_name = client_events, treat_none_as_default_value = false)]
pub struct NewEvent {
    pub event_id: String,
    pub client_id: String,
    pub event_type: String,
    pub occurred_at: Moment,
    pub received_at: Moment,
    pub received_by: String,
    pub body_sha256: String,
    pub body: String,
}

/// The events already logged under these ids: event id → (client id, body sha256).
pub fn known(
    conn: &mut AnyConnection,
    event_ids: &[&str],
) -> Result<HashMap<String, (String, String)>, StoreError> {
    let mut found = HashMap::with_capacity(event_ids.len());
    for chunk in event_ids.chunks(10_000) {
        let rows: Vec<(String, String, String)> = client_events::table
            .filter(client_events::event_id.eq_any(chunk))
            .select((
                client_events::event_id,
                client_events::client_id,
                client_events::body_sha256,
            ))
            .load(conn)
            .map_err(classify)?;
        for (id, client, sha) in rows {
            found.insert(id, (client, sha));
        }
    }
    Ok(found)
}

/// Appends the events; returns event id → seq.
pub fn insert_many(
    conn: &mut AnyConnection,
    rows: &[NewEvent],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut seqs = HashMap::with_capacity(rows.len());
    // 8 columns a row: stay well under SQLite's 32766 bound values.
    for chunk in rows.chunks(1_000) {
        let returned: Vec<(String, i64)> =
            per_backend!(conn, |c| diesel::insert_into(client_events::table)
                .values(chunk)
                .returning((client_events::event_id, client_events::seq))
                .get_results(c))
            .map_err(classify)?;
        seqs.extend(returned);
    }
    Ok(seqs)
}

/// A client's events newest first, optionally of some types only, before `before` (a seq).
pub fn page(
    conn: &mut AnyConnection,
    client_id: &str,
    types: &[&str],
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let mut query = client_events::table
        .filter(client_events::client_id.eq(client_id))
        .order(client_events::seq.desc())
        .limit(limit)
        .select(EventRow::as_select())
        .into_boxed();
    if !types.is_empty() {
        query = query.filter(client_events::event_type.eq_any(types.to_vec()));
    }
    if let Some(before) = before {
        query = query.filter(client_events::seq.lt(before));
    }
    query.load(conn).map_err(classify)
}

/// A client's events oldest first, after `after` (a seq): the unit of a replay.
pub fn replay_page(
    conn: &mut AnyConnection,
    client_id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    client_events::table
        .filter(client_events::client_id.eq(client_id))
        .filter(client_events::seq.gt(after))
        .order(client_events::seq.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)
        .map_err(classify)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::write_tx;

    /// A panic inside the event writer's transaction must not leave SQLite's write lock held:
    /// any other connection can write at once, and the next batch gets a working writer.
    #[test]
    fn a_panic_in_a_batch_releases_the_write_lock() {
        let (store, _dir) = crate::store::temp_sqlite_store(|s| s.sqlite_busy_timeout_ms = 50);
        let in_tx = |conn: &mut AnyConnection| {
            write_tx(conn, |conn| {
                diesel::sql_query("CREATE TABLE IF NOT EXISTS t (x INTEGER)").execute(conn)?;
                Ok::<_, StoreError>(())
            })
        };
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            store.with_event_writer(|conn| {
                write_tx(conn, |_| -> Result<(), StoreError> {
                    panic!("a bug mid-batch")
                })
            })
        }));
        assert!(panicked.is_err());
        // Without the fix this waits busy_timeout and fails: "database is locked".
        in_tx(&mut store.get().unwrap()).unwrap();
        store.with_event_writer(in_tx).unwrap();
    }
}
