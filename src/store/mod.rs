//! Storage: the only module that imports diesel. One connection type over SQLite and
//! PostgreSQL, chosen by the URL, pooled by r2d2 through our own manager.
//!
//! Lookups by a unique key use `get_result`, not `first`: `first` adds `LIMIT ?`, and SQLite
//! re-prepared such statements at every execution (`sqlite3Reprepare` under `sqlite3_step`
//! was a third of the decision writer's time in a profile) instead of once per connection.
//!
//! Statements on the decision path run on the concrete connection ([`per_backend!`]), not
//! through the MultiConnection: its wrapper rebuilds a statement's SQL text at every
//! execution (for the cache key, the cache check and the binds alike) even when the statement
//! is prepared and cached, which was about a tenth of the server's CPU per decision. On the
//! concrete connection a statement with a static query id is found in the cache by its type.
//!
//! Rows written many at once derive `Insertable` with `treat_none_as_default_value = false`.
//! Otherwise diesel, as SQLite has no `DEFAULT` in a multi-row `VALUES`, writes such a batch as
//! one `INSERT` per row inside a `SAVEPOINT` of its own; nested in our write transaction, each
//! row's statement journal then walked the savepoint's whole sub-journal on release (quadratic
//! in the rows: 15 % of the CPU of an event batch). With the flag it is one statement.
//! The rows every decision writes carry it too: with a `None` left to its default the SQL
//! text depends on the values (SQLite leaves the column out, PostgreSQL writes `DEFAULT`), so
//! diesel wrote the text and looked the statement up by it at every execution, and on
//! PostgreSQL prepared it again each time. Bound as `NULL`, the columns' default anyway, the
//! text is fixed and the statement stays in diesel's cache.

/// The same diesel statement run on the concrete connection, for what the MultiConnection
/// cannot express (multi-row inserts, row locks) or does slowly (the hot path's statements,
/// see above): the one place SQL is spelled per backend.
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::AnyConnection::Postgres($c) => $body,
            $crate::store::AnyConnection::Sqlite($c) => $body,
        }
    };
}

pub mod alerts;
pub mod audit;
pub mod captured;
mod checkpoint;
pub mod clients;
pub mod day;
pub mod decisions;
pub mod events;
mod health;
pub mod invoices;
pub mod ledgers;
pub mod live;
pub mod moment;
pub mod policies;
pub mod prepared;
pub mod reservations;
mod schema;
pub mod shadow;

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{DatabaseTarget, Settings, SqliteSynchronous, redact_url};
use health::Health;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Serialises migrations of several server processes starting on one PostgreSQL.
const MIGRATION_LOCK_KEY: i64 = 0x656e_636f_7572;

/// A connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or no connection was free in time: retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    /// A concurrent transaction got there first (unique key, serialization failure): the
    /// whole transaction may be retried and will then see the other's work.
    #[error("conflicting concurrent write: {0}")]
    Conflict(String),
    /// Stored data that does not parse back into the domain: never expected.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl StoreError {
    pub fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Connect(#[from] diesel::ConnectionError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// Opens connections for the configured backend, with the SQLite pragmas applied.
#[derive(Clone, Debug)]
pub struct Manager {
    target: DatabaseTarget,
    synchronous: SqliteSynchronous,
    busy_timeout_ms: u32,
    health: Arc<Health>,
}

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ManagerError;

    fn connect(&self) -> Result<AnyConnection, ManagerError> {
        let opened = self.open();
        match &opened {
            Ok(_) => self.health.mark_up(),
            Err(_) => self.health.mark_down(),
        }
        opened
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ManagerError> {
        conn.batch_execute("SELECT 1")?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        <AnyConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

impl Manager {
    fn open(&self) -> Result<AnyConnection, ManagerError> {
        match &self.target {
            DatabaseTarget::Postgres(url) => {
                Ok(AnyConnection::Postgres(PgConnection::establish(url)?))
            }
            DatabaseTarget::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // busy_timeout first: switching to WAL itself may wait for a lock.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
                    self.busy_timeout_ms,
                    self.synchronous.pragma()
                ))?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// The pool plus the way to run blocking database work off the async executor.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    health: Arc<Health>,
    timeout: Duration,
    backend: &'static str,
    /// SQLite: the one connection event batches write through (see `events::EventWriter`).
    event_writer: events::EventWriter,
}

impl Store {
    /// Connects (at least one connection must open) without migrating.
    pub fn connect(settings: &Settings) -> Result<Self, StoreError> {
        let target = settings.database();
        let backend = match target {
            DatabaseTarget::Sqlite(_) => "sqlite",
            DatabaseTarget::Postgres(_) => "postgres",
        };
        let health = Arc::new(Health::default());
        let timeout = Duration::from_millis(settings.pool_timeout_ms);
        let manager = Manager {
            target,
            synchronous: settings.sqlite_synchronous,
            busy_timeout_ms: settings.sqlite_busy_timeout_ms,
            health: Arc::clone(&health),
        };
        let event_writer = events::EventWriter::new(&manager);
        let pool = r2d2::Pool::builder()
            // A `SELECT 1` at every checkout finds a PostgreSQL connection lost since; an open
            // SQLite file cannot be lost, and the test was 2 % of the CPU of a decision.
            .test_on_check_out(backend == "postgres")
            .max_size(settings.pool_size)
            .min_idle(Some(1))
            .connection_timeout(timeout)
            .build(manager)
            .map_err(|e| {
                StoreError::Unavailable(format!("{}: {e}", redact_url(&settings.database_url)))
            })?;
        Ok(Self {
            pool,
            health,
            timeout,
            backend,
            event_writer,
        })
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// A connection for synchronous callers (CLI, start-up); request paths use [`Store::run`].
    /// While the database is away (a connection attempt just failed), the answer comes in
    /// [`health::FAST_TIMEOUT`]; otherwise a busy pool is waited on up to the configured timeout.
    pub fn get(&self) -> Result<PooledConnection, StoreError> {
        let unavailable = |e: r2d2::Error| StoreError::Unavailable(e.to_string());
        match self
            .pool
            .get_timeout(health::FAST_TIMEOUT.min(self.timeout))
        {
            Ok(conn) => Ok(conn),
            Err(e) if self.health.recently_down() => Err(unavailable(e)),
            Err(_) => self
                .pool
                .get_timeout(
                    self.timeout
                        .saturating_sub(health::FAST_TIMEOUT)
                        .max(Duration::from_millis(1)),
                )
                .map_err(unavailable),
        }
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, inside the caller's span.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.blocking(move |store| {
            let mut conn = store.get()?;
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` on a blocking thread, in the caller's tracing span, for work that picks its own
    /// connection (the event writer's, see `with_event_writer`).
    pub async fn blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Store) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            f(&store)
        })
        .await
        .map_err(|e| {
            E::from(StoreError::Unavailable(format!(
                "blocking task failed: {e}"
            )))
        })?
    }

    /// (connections in use, idle connections), for `/metrics`.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (
            state.connections - state.idle_connections,
            state.idle_connections,
        )
    }
}

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock is
/// taken up front and a concurrent writer waits (busy_timeout) instead of failing the upgrade
/// from a read snapshot; on PostgreSQL it is a plain transaction whose row locks do the work.
pub fn write_tx<T, E>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    let begun = match conn {
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        AnyConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c),
    };
    begun.map_err(|e| E::from(classify(e)))?;
    match f(conn) {
        Ok(value) => {
            <AnyConnection as Connection>::TransactionManager::commit_transaction(conn)
                .map_err(|e| E::from(classify(e)))?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) =
                <AnyConnection as Connection>::TransactionManager::rollback_transaction(conn)
            {
                tracing::error!(error = %rollback, "rollback failed");
            }
            Err(err)
        }
    }
}

/// Errors that say "another transaction got there first; run yours again".
pub trait Conflict {
    fn is_conflict(&self) -> bool;
}

impl Conflict for StoreError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }
}

/// Runs `f`'s reads in one read transaction on SQLite, so that they all see one state of the
/// database (a client's version and its live state, a portfolio's totals), whatever commits
/// meanwhile; they also share one page cache, which SQLite empties at each new read
/// transaction after a commit (timed: within the noise, docs/benchmarks.md, thirteenth round).
/// On PostgreSQL `f` runs as before, statement by statement: a transaction there would add two
/// round trips and, read committed, give no common snapshot.
pub fn read_snapshot<T, E>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    let AnyConnection::Sqlite(c) = conn else {
        return f(conn);
    };
    AnsiTransactionManager::begin_transaction_sql(c, "BEGIN DEFERRED")
        .map_err(|e| E::from(classify(e)))?;
    let result = f(conn);
    // Nothing was written: ending the transaction either way only releases the snapshot.
    let ended = <AnyConnection as Connection>::TransactionManager::commit_transaction(conn);
    match (result, ended) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(err), _) => Err(err),
        (Ok(_), Err(e)) => Err(E::from(classify(e))),
    }
}

/// [`write_tx`], run again (up to three times in all) when it fails on a conflict: two
/// callers creating the same row at once both succeed, one as a create, one as an update.
pub fn write_tx_retrying<T, E>(
    conn: &mut AnyConnection,
    mut f: impl FnMut(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError> + Conflict,
{
    let mut attempt = 1;
    loop {
        match write_tx(conn, &mut f) {
            Err(e) if e.is_conflict() && attempt < 3 => attempt += 1,
            other => return other,
        }
    }
}

/// Runs `f` in a savepoint of the current transaction: on error only its own writes are
/// undone and the transaction goes on (group commit runs many decisions in one transaction).
pub fn savepoint<T, E>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    enum Failure<E> {
        Database(diesel::result::Error),
        Caller(E),
    }
    impl<E> From<diesel::result::Error> for Failure<E> {
        fn from(e: diesel::result::Error) -> Self {
            Self::Database(e)
        }
    }
    conn.transaction::<T, Failure<E>, _>(|c| f(c).map_err(Failure::Caller))
        .map_err(|failure| match failure {
            Failure::Database(e) => E::from(classify(e)),
            Failure::Caller(e) => e,
        })
}

/// Tells a lost database apart from a failed query, so callers can answer 503 rather than 500.
pub fn classify(err: diesel::result::Error) -> StoreError {
    use diesel::result::{DatabaseErrorKind, Error};
    if let Some(away) = unavailable(&err) {
        return away;
    }
    match &err {
        Error::DatabaseError(
            DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
            _,
        ) => StoreError::Conflict(err.to_string()),
        _ => StoreError::Query(err),
    }
}

/// The errors of a database that cannot serve now (lost connection, shutting down, locked).
fn unavailable(err: &diesel::result::Error) -> Option<StoreError> {
    use diesel::result::{DatabaseErrorKind, Error};
    let away = match err {
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
        | Error::BrokenTransactionManager => true,
        Error::DatabaseError(_, info) => is_lock_timeout(info.message()),
        Error::RollbackErrorOnCommit { commit_error, .. } => return unavailable(commit_error),
        _ => false,
    };
    away.then(|| StoreError::Unavailable(err.to_string()))
}

/// Messages of a database that is away, busy or going down (SQLite's lock timeout,
/// PostgreSQL shutting down or the connection lost mid-transaction): worth a retry later,
/// not an internal error.
fn is_lock_timeout(message: &str) -> bool {
    const AWAY: [&str; 8] = [
        "database is locked",
        "server closed the connection",
        "terminating connection",
        "the database system is shutting down",
        "the database system is starting up",
        "no connection to the server",
        "could not receive data from server",
        "could not send data to server",
    ];
    AWAY.iter().any(|m| message.contains(m))
}

/// Applies pending migrations; returns the versions applied.
pub fn migrate(conn: &mut AnyConnection) -> Result<Vec<String>, StoreError> {
    let applied = match conn {
        AnyConnection::Sqlite(c) => run_migrations(c, SQLITE_MIGRATIONS),
        AnyConnection::Postgres(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(c)?;
            let applied = run_migrations(c, POSTGRES_MIGRATIONS);
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                .execute(c)?;
            applied
        }
    }?;
    Ok(applied)
}

fn run_migrations<C>(
    conn: &mut C,
    migrations: EmbeddedMigrations,
) -> Result<Vec<String>, StoreError>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    conn.run_pending_migrations(migrations)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| StoreError::Migration(e.to_string()))
}

/// True when every embedded migration has been applied (for `/readyz`).
pub fn migrations_current(conn: &mut AnyConnection) -> Result<bool, StoreError> {
    let pending = match conn {
        AnyConnection::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        AnyConnection::Postgres(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
    };
    pending
        .map(|p| !p)
        .map_err(|e| StoreError::Migration(e.to_string()))
}

/// A store on a fresh SQLite file for the store's own tests; the directory goes with the guard.
#[cfg(test)]
pub(crate) fn temp_sqlite_store(
    tweak: impl FnOnce(&mut crate::config::Settings),
) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::config::Settings {
        database_url: dir.path().join("encours.db").display().to_string(),
        ..crate::config::Settings::default()
    };
    tweak(&mut settings);
    (Store::connect(&settings).unwrap(), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read snapshot sees one state of the database: a commit by another connection in the
    /// middle of it is not seen until the next one.
    #[test]
    fn a_read_snapshot_does_not_see_a_commit_made_during_it() {
        let (store, _dir) = temp_sqlite_store(|_| {});
        let count = |conn: &mut AnyConnection| -> Result<i64, StoreError> {
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let row: Count = diesel::sql_query("SELECT count(*) AS n FROM t")
                .get_result(conn)
                .map_err(classify)?;
            Ok(row.n)
        };
        let insert = |conn: &mut AnyConnection| {
            diesel::sql_query("INSERT INTO t (x) VALUES (1)")
                .execute(conn)
                .map_err(classify)
        };
        let mut reader = store.get().unwrap();
        let mut writer = store.get().unwrap();
        diesel::sql_query("CREATE TABLE t (x INTEGER)")
            .execute(&mut *writer)
            .unwrap();
        insert(&mut writer).unwrap();

        let (before, during) = read_snapshot(&mut reader, |conn| {
            let before = count(conn)?;
            write_tx(&mut writer, |c| insert(c).map(drop))?;
            Ok::<_, StoreError>((before, count(conn)?))
        })
        .unwrap();
        assert_eq!((before, during), (1, 1));
        assert_eq!(
            count(&mut reader).unwrap(),
            2,
            "the next read sees the commit"
        );
    }
}
