//! Hot statements prepared once per connection instead of at every execution.
//!
//! diesel never keeps an UPDATE in its prepared-statement cache (a changeset may skip `None`
//! fields, so one Rust type can stand for many SQL texts), and through the `AnyConnection`
//! wrapper it rebuilds every statement's SQL text to look it up. A batch of events writes one
//! UPDATE per client: preparing it again each time was a fifth of the batch's instructions.
//! [`Update`] writes an UPDATE whose SQL never changes, cacheable under a key type of its own,
//! and [`execute`] runs it on the inner connection, whose cache then finds it by that type
//! without building any SQL.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::expression::{
    AppearsOnTable, Expression, SelectableExpression, TypedExpressionType, ValidGrouping,
    is_aggregate,
};
use diesel::pg::PgConnection;
use diesel::query_builder::{AsChangeset, AstPass, QueryFragment, QueryId, SelectQuery};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::sql_types::{IntoNullable, SqlType};
use diesel::sqlite::SqliteConnection;
use diesel::{QueryResult, RunQueryDsl};

use super::AnyConnection;

/// `UPDATE table SET changeset WHERE filter`, as diesel writes it but cacheable, under `K`.
/// Each distinct SQL text needs its own `K` (a unit struct next to the call): two texts under
/// one key would run the first one's SQL with the second one's binds. A changeset always
/// writes the same columns when its `Option` fields are written as NULL
/// (`treat_none_as_null`) and its tuple is fixed.
pub struct Update<C, W, K> {
    table: &'static str,
    changeset: C,
    filter: W,
    key: PhantomData<K>,
}

impl<C, W, K> Update<C, W, K> {
    pub fn new<V: AsChangeset<Changeset = C>>(table: &'static str, values: V, filter: W) -> Self {
        Self {
            table,
            changeset: values.as_changeset(),
            filter,
            key: PhantomData,
        }
    }
}

impl<C, W, K: 'static> QueryId for Update<C, W, K> {
    type QueryId = K;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB: Backend, C: QueryFragment<DB>, W: QueryFragment<DB>, K> QueryFragment<DB>
    for Update<C, W, K>
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        out.push_identifier(self.table)?;
        out.push_sql(" SET ");
        self.changeset.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())
    }
}

impl<C, W, K, Conn> RunQueryDsl<Conn> for Update<C, W, K> {}

/// `(query)` as a value in another statement: diesel's `single_value` without its `LIMIT ?`.
/// SQLite reads a bound `LIMIT` when it plans, so binding it again at every execution expires
/// the prepared statement and it is prepared anew (the cost `.first()` had, see the `store`
/// module). For queries that give at most one row anyway (an aggregate, a key lookup), and
/// that refer to no outer table: diesel cannot check that here.
#[derive(Clone, Copy, Debug, QueryId)]
pub struct Scalar<Q, ST> {
    query: Q,
    sql_type: PhantomData<ST>,
}

/// [`Scalar`]: NULL when the query finds no row.
pub fn scalar<Q>(query: Q) -> Scalar<Q, <Q::SqlType as IntoNullable>::Nullable>
where
    Q: SelectQuery,
    Q::SqlType: IntoNullable,
{
    Scalar {
        query,
        sql_type: PhantomData,
    }
}

impl<Q, ST: SqlType + TypedExpressionType> Expression for Scalar<Q, ST> {
    type SqlType = ST;
}

impl<Q, ST, QS> AppearsOnTable<QS> for Scalar<Q, ST> where Self: Expression {}

impl<Q, ST, QS> SelectableExpression<QS> for Scalar<Q, ST> where Self: Expression {}

impl<Q, ST, GB> ValidGrouping<GB> for Scalar<Q, ST> {
    type IsAggregate = is_aggregate::Never;
}

impl<DB: Backend, Q: QueryFragment<DB>, ST> QueryFragment<DB> for Scalar<Q, ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("(");
        self.query.walk_ast(out.reborrow())?;
        out.push_sql(")");
        Ok(())
    }
}

/// Runs `statement` on the backend's own connection, where the cache sees its key.
pub fn execute<S>(conn: &mut AnyConnection, statement: S) -> QueryResult<usize>
where
    S: ExecuteDsl<SqliteConnection> + ExecuteDsl<PgConnection>,
{
    match conn {
        AnyConnection::Sqlite(c) => ExecuteDsl::<SqliteConnection>::execute(statement, c),
        AnyConnection::Postgres(c) => ExecuteDsl::<PgConnection>::execute(statement, c),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{Instrumentation, InstrumentationEvent};
    use diesel::prelude::*;

    use super::*;

    diesel::table! {
        accounts (id) {
            id -> Text,
            balance -> BigInt,
            note -> Nullable<Text>,
        }
    }

    struct SetBalance;

    /// Counts the statements prepared into the cache and the queries run.
    #[derive(Default)]
    struct Counter(Arc<Mutex<(usize, usize)>>);

    impl Instrumentation for Counter {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            if let Ok(mut n) = self.0.lock() {
                match event {
                    InstrumentationEvent::CacheQuery { .. } => n.0 += 1,
                    InstrumentationEvent::StartQuery { .. } => n.1 += 1,
                    _ => {}
                }
            }
        }
    }

    fn update(id: &str, balance: i64, note: Option<&str>) -> impl ExecuteDsl<SqliteConnection> {
        let values = (
            accounts::balance.eq(balance),
            accounts::note.eq(note.map(str::to_owned)),
        );
        Update::<_, _, SetBalance>::new("accounts", values, accounts::id.eq(id.to_owned()))
    }

    /// Two accounts in memory, and the counts of (statements prepared into the cache, queries
    /// run) from then on.
    fn accounts() -> (SqliteConnection, Arc<Mutex<(usize, usize)>>) {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        diesel::sql_query(
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL, note TEXT)",
        )
        .execute(&mut conn)
        .unwrap();
        diesel::sql_query("INSERT INTO accounts VALUES ('a', 0, NULL), ('b', 0, NULL)")
            .execute(&mut conn)
            .unwrap();
        let counts = Arc::new(Mutex::new((0, 0)));
        conn.set_instrumentation(Counter(counts.clone()));
        (conn, counts)
    }

    #[test]
    fn an_update_is_prepared_once_and_binds_each_execution() {
        let (mut conn, counts) = accounts();
        for (id, balance, note) in [("a", 10, None), ("b", 20, Some("x")), ("a", 30, Some("y"))] {
            assert_eq!(
                ExecuteDsl::execute(update(id, balance, note), &mut conn).unwrap(),
                1
            );
        }
        let counted = *counts.lock().unwrap();
        assert_eq!(counted, (1, 3), "one preparation for three executions");

        let rows: Vec<(String, i64, Option<String>)> =
            accounts::table.order(accounts::id).load(&mut conn).unwrap();
        let expected = [("a", 30, Some("y")), ("b", 20, Some("x"))]
            .map(|(id, b, n)| (id.to_owned(), b, n.map(str::to_owned)));
        assert_eq!(rows, expected);
    }

    #[test]
    fn a_plain_diesel_update_is_prepared_at_every_execution() {
        // What this module works around: if diesel starts caching updates, it can go.
        let (mut conn, counts) = accounts();
        for balance in 0..3 {
            diesel::update(accounts::table.find("a"))
                .set(accounts::balance.eq(balance))
                .execute(&mut conn)
                .unwrap();
        }
        assert_eq!(*counts.lock().unwrap(), (0, 3));
    }
}
