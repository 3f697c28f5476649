//! Checkpoints of the event writer's write-ahead log, on a thread and connection of their own.
//!
//! In WAL mode the commit that takes the log past 1,000 pages copies the log back into the
//! database file inside itself. An event group dirties thousands of pages, so every group paid
//! that copy (a tenth of the writer's time) while the machine's other core sat idle. The
//! writer's connection now never checkpoints (`wal_autocheckpoint = 0`); after each of its
//! writes this thread runs a `PASSIVE` checkpoint, which neither waits for nor blocks the
//! writer, and the writer goes on with its next group meanwhile.
//!
//! The log restarts from its beginning only when a write transaction *begins* on a fully
//! copied log, which a writer that never waits would almost never see: the log would grow
//! without bound. So once a checkpoint reports a log longer than [`RESTART_FRAMES`], the
//! writer waits for the checkpoint under way to finish before its next transaction.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Integer;
use r2d2::ManageConnection;

use super::{AnyConnection, Manager};

/// Log length (in 4 KiB pages) past which the writer lets the log restart: about 160 MB, some
/// ten event groups. Each restart costs the writer the wait for the checkpoint under way (a
/// group's pages, 20–30 ms); at 40 MB every second group waited, 5 % of the writer's time.
/// Readers do not pay for a longer log: they search only the frames written since the last
/// checkpoint.
const RESTART_FRAMES: i32 = 40_000;

/// Longest the writer waits for a checkpoint before writing on (a checkpoint takes tens of
/// milliseconds).
const LONGEST_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    /// A write happened since the last checkpoint began.
    asked: bool,
    running: bool,
    /// The log's length in pages at the last checkpoint.
    frames: i32,
    /// The writer is gone: the thread ends.
    closed: bool,
}

impl State {
    /// A checkpoint is asked for or under way: the log is not all copied yet.
    fn copying(&self) -> bool {
        self.asked || self.running
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer's handle on its checkpoint thread; dropping it ends the thread.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    /// [`RESTART_FRAMES`], but in tests.
    restart_frames: i32,
}

impl Checkpointer {
    /// Starts the thread; `None` (logged) when no thread can be had, and then the writer keeps
    /// SQLite's own checkpoints.
    pub(super) fn start(manager: &Manager) -> Option<Self> {
        Self::start_with(manager, RESTART_FRAMES)
    }

    fn start_with(manager: &Manager, restart_frames: i32) -> Option<Self> {
        let shared = Arc::new(Shared::default());
        let spawned = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn({
                let shared = Arc::clone(&shared);
                let manager = manager.clone();
                move || run(&manager, &shared)
            });
        match spawned {
            Ok(_) => Some(Self {
                shared,
                restart_frames,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread: the event writer checkpoints itself");
                None
            }
        }
    }

    /// Before a write transaction: when the log has grown past [`RESTART_FRAMES`], waits for the
    /// checkpoint under way so that the transaction begins on a fully copied log and restarts it.
    /// A checkpoint that never ends (a thread gone) costs the writer [`LONGEST_WAIT`] once,
    /// never its progress.
    pub(super) fn before_write(&self) {
        let mut state = self.shared.lock();
        if state.frames <= self.restart_frames {
            return;
        }
        let until = Instant::now() + LONGEST_WAIT;
        while state.copying() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("the event log's checkpoint is late: writing on");
                break;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        // This transaction restarts the log (the next checkpoint says so if it did not).
        state.frames = 0;
    }

    /// After a write: asks for a checkpoint (one already asked for covers it).
    pub(super) fn after_write(&self) {
        self.shared.lock().asked = true;
        self.shared.changed.notify_all();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

/// What `PRAGMA wal_checkpoint` answers.
#[derive(QueryableByName)]
struct Checkpointed {
    #[diesel(sql_type = Integer)]
    busy: i32,
    #[diesel(sql_type = Integer)]
    log: i32,
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

/// The thread: one checkpoint per round of writes, until the writer is dropped.
fn run(manager: &Manager, shared: &Shared) {
    let mut conn: Option<AnyConnection> = None;
    loop {
        {
            let mut state = shared.lock();
            while !state.asked && !state.closed {
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.closed {
                return;
            }
            state.asked = false;
            state.running = true;
        }
        let frames = checkpoint(manager, &mut conn);
        let mut state = shared.lock();
        state.running = false;
        if let Some(frames) = frames {
            state.frames = frames;
        }
        shared.changed.notify_all();
    }
}

/// One `PASSIVE` checkpoint; the log's length in pages after it, `None` when it failed
/// (logged; the connection is opened again next time).
fn checkpoint(manager: &Manager, conn: &mut Option<AnyConnection>) -> Option<i32> {
    if conn.is_none() {
        *conn = manager
            .connect()
            .map_err(|e| tracing::warn!(error = %e, "checkpoint connection"))
            .ok();
    }
    let c = conn.as_mut()?;
    match diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<Checkpointed>(c) {
        Ok(done) => {
            tracing::trace!(
                busy = done.busy,
                log = done.log,
                checkpointed = done.checkpointed,
                "event log checkpoint"
            );
            Some(done.log)
        }
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint after an event write");
            *conn = None;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use diesel::connection::SimpleConnection;

    use super::*;
    use crate::config::{DatabaseTarget, SqliteSynchronous};

    impl Checkpointer {
        /// Waits until the checkpoints asked for are done.
        fn settle(&self) {
            let mut state = self.shared.lock();
            while state.copying() {
                state = self.shared.changed.wait(state).unwrap();
            }
        }
    }

    fn wal_frames(db: &std::path::Path) -> u64 {
        let wal = std::fs::metadata(db.with_extension("db-wal"))
            .unwrap()
            .len();
        wal.saturating_sub(32) / (4096 + 24)
    }

    /// A writer that never checkpoints, as the event writer: its log is copied by the thread,
    /// and restarts whenever it has grown past the bound instead of growing forever.
    #[test]
    fn the_thread_copies_the_log_and_lets_it_restart_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("encours.db");
        let manager = Manager {
            target: DatabaseTarget::Sqlite(db.clone()),
            synchronous: SqliteSynchronous::Normal,
            busy_timeout_ms: 1_000,
            health: Arc::default(),
        };
        let mut writer = manager.connect().unwrap();
        writer
            .batch_execute("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (b BLOB NOT NULL);")
            .unwrap();
        let checkpointer = Checkpointer::start_with(&manager, 50).unwrap();
        // Forty writes of 25 pages: 1,000 pages of log if it never restarted. Each waits for its
        // checkpoint, as the event writer's groups (a quarter of a second) outlast theirs.
        for _ in 0..40 {
            checkpointer.before_write();
            writer
                .batch_execute("INSERT INTO t VALUES (randomblob(100000));")
                .unwrap();
            checkpointer.after_write();
            checkpointer.settle();
        }
        let frames = wal_frames(&db);
        assert!(
            frames < 150,
            "the log restarted: {frames} pages, not about 1,000"
        );
        let copied = std::fs::metadata(&db).unwrap().len();
        assert!(
            copied > 3_000_000,
            "the thread copied the log: {copied} bytes"
        );

        // A writer past the bound waits for the checkpoint it asked for (unless that one has
        // reported a short log already), then counts on a restart.
        checkpointer.shared.lock().frames = 51;
        checkpointer.after_write();
        checkpointer.before_write();
        let state = checkpointer.shared.lock();
        assert!(!state.copying(), "the checkpoint asked for is done");
        assert!(state.frames <= 50, "{} pages", state.frames);
    }

    /// Without the wait, a writer faster than its checkpoints always begins on a log not yet
    /// copied, and SQLite never restarts it. The writer waits exactly while one is pending.
    #[test]
    fn past_the_bound_the_writer_waits_while_a_checkpoint_is_pending() {
        let state = |asked, running| State {
            asked,
            running,
            ..State::default()
        };
        assert!(state(true, false).copying());
        assert!(state(false, true).copying());
        assert!(state(true, true).copying());
        assert!(!state(false, false).copying());
    }
}
