//! Reservations: credit held by approved decisions until invoiced, released or expired.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::prepared::scalar;
use super::schema::{client_reserved, reservations};
use super::{AnyConnection, StoreError, classify};

/// What happened to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Turned into an open invoice (`invoice_issued` with `decision_id`).
    Invoiced,
    /// Given back (`order_cancelled`).
    Released,
    /// Lapsed at `expires_at`.
    Expired,
}

impl Settlement {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoiced => "invoiced",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = reservations, treat_none_as_default_value = false)]
pub struct ReservationRow {
    pub decision_id: String,
    pub client_id: String,
    pub amount_minor: i64,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub settled_at: Option<NaiveDateTime>,
    pub settled_by: Option<String>,
}

impl ReservationRow {
    /// Holds credit now: active and not past its expiry.
    pub fn holds_at(&self, now: NaiveDateTime) -> bool {
        self.status == "active" && self.expires_at > now
    }
}

pub fn insert(conn: &mut AnyConnection, row: &ReservationRow) -> Result<(), StoreError> {
    per_backend!(conn, |c| diesel::insert_into(reservations::table)
        .values(row)
        .execute(c))
    .map_err(classify)?;
    Ok(())
}

pub fn get(
    conn: &mut AnyConnection,
    decision_id: &str,
) -> Result<Option<ReservationRow>, StoreError> {
    reservations::table
        .find(decision_id)
        .select(ReservationRow::as_select())
        .get_result(conn)
        .optional()
        .map_err(classify)
}

/// Ends an active, unexpired reservation. `None` when there is none to end (unknown,
/// already settled, or expired — the caller says which from [`get`]).
pub fn settle(
    conn: &mut AnyConnection,
    decision_id: &str,
    how: Settlement,
    by: &str,
    now: NaiveDateTime,
) -> Result<Option<ReservationRow>, StoreError> {
    let changed = diesel::update(
        reservations::table
            .find(decision_id)
            .filter(reservations::status.eq("active"))
            .filter(reservations::expires_at.gt(now)),
    )
    .set((
        reservations::status.eq(how.as_str()),
        reservations::settled_at.eq(Some(now)),
        reservations::settled_by.eq(Some(by)),
    ))
    .execute(conn)
    .map_err(classify)?;
    if changed == 0 {
        return Ok(None);
    }
    get(conn, decision_id)
}

/// Marks every reservation past its expiry as expired; returns how many. Exposure never counts
/// them anyway (see [`reserved_minor`]); this keeps the status honest for readers.
pub fn expire_due(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<usize, StoreError> {
    diesel::update(
        reservations::table
            .filter(reservations::status.eq("active"))
            .filter(reservations::expires_at.le(now)),
    )
    .set((
        reservations::status.eq(Settlement::Expired.as_str()),
        reservations::settled_at.eq(Some(now)),
        reservations::settled_by.eq(Some("expiry")),
    ))
    .execute(conn)
    .map_err(classify)
}

diesel::define_sql_function! {
    /// `SUM` over integers as SQLite answers it, an integer (diesel types a `SUM` of `BIGINT`
    /// as `NUMERIC`, PostgreSQL's answer, which would pass through a float on SQLite).
    #[aggregate]
    #[sql_name = "SUM"]
    fn integer_sum(x: diesel::sql_types::BigInt) -> diesel::sql_types::Nullable<diesel::sql_types::BigInt>;
}

/// The credit a client's active, unexpired reservations hold, in minor units, and the earliest
/// expiry among them (when that sum next changes by time alone).
pub fn reserved_minor(
    conn: &mut AnyConnection,
    client_id: &str,
    now: NaiveDateTime,
) -> Result<(i64, Option<NaiveDateTime>), StoreError> {
    reserved(conn, client_id, now).map(|r| (r.minor, r.first_expiry))
}

/// What a read of a client's reservations gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// The credit its active, unexpired reservations hold, in minor units.
    pub minor: i64,
    /// The earliest expiry among them: when `minor` next changes by time alone.
    pub first_expiry: Option<NaiveDateTime>,
    /// SQLite: the changes made to the client's reservations, invoices and sales alerts
    /// (`client_reserved.changes`), their share of the client's version (see
    /// `clients::lock_version`); 0 on PostgreSQL, where they bump the client's row.
    pub changes: i64,
}

/// [`reserved_minor`] with the reservations' change count, read in the same statement.
/// SQLite keeps each client's active reservations summed (`client_reserved`, by triggers): the
/// read subtracts the active ones past their expiry that the sweep has not marked yet and finds
/// the next expiry, both short ranges of the `reservations_by_client` index (the `min` stops at
/// its first entry), so its cost no longer grows with the client's reservations (summing them
/// was about 5 % of the request threads' CPU in the load benchmark, a hundred and more a
/// client). One statement, compared by `=` so it stays prepared, and without `single_value`'s
/// `LIMIT ?` (see [`Scalar`](super::prepared::Scalar)).
/// PostgreSQL sums when read: its `SUM(BIGINT)` is a `NUMERIC`, so there the rows are added up
/// here, decoded from binary at little cost.
pub fn reserved(
    conn: &mut AnyConnection,
    client_id: &str,
    now: NaiveDateTime,
) -> Result<Reserved, StoreError> {
    let active = || {
        reservations::table
            .filter(reservations::client_id.eq(client_id))
            .filter(reservations::status.eq("active"))
    };
    match conn {
        AnyConnection::Sqlite(c) => {
            let kept = || client_reserved::table.find(client_id);
            let lapsed = active()
                .filter(reservations::expires_at.le(now))
                .select(integer_sum(reservations::amount_minor));
            let next = active()
                .filter(reservations::expires_at.gt(now))
                .select(diesel::dsl::min(reservations::expires_at));
            let (total, changes, lapsed, first_expiry): (
                Option<i64>,
                Option<i64>,
                Option<i64>,
                Option<NaiveDateTime>,
            ) = diesel::select((
                scalar(kept().select(client_reserved::active_minor)),
                scalar(kept().select(client_reserved::changes)),
                scalar(lapsed),
                scalar(next),
            ))
            .get_result(c)
            .map_err(classify)?;
            Ok(Reserved {
                minor: total.unwrap_or(0) - lapsed.unwrap_or(0),
                first_expiry,
                changes: changes.unwrap_or(0),
            })
        }
        AnyConnection::Postgres(c) => {
            let rows: Vec<(i64, NaiveDateTime)> = active()
                .filter(reservations::expires_at.gt(now))
                .select((reservations::amount_minor, reservations::expires_at))
                .load(c)
                .map_err(classify)?;
            Ok(Reserved {
                minor: rows.iter().map(|(minor, _)| minor).sum(),
                first_expiry: rows.iter().map(|(_, at)| *at).min(),
                changes: 0,
            })
        }
    }
}

/// [`reserved_minor`] for several clients in one query (client lists).
pub fn reserved_by_client(
    conn: &mut AnyConnection,
    client_ids: &[&str],
    now: NaiveDateTime,
) -> Result<HashMap<String, i64>, StoreError> {
    let rows: Vec<(String, i64)> = reservations::table
        .filter(reservations::client_id.eq_any(client_ids))
        .filter(reservations::status.eq("active"))
        .filter(reservations::expires_at.gt(now))
        .select((reservations::client_id, reservations::amount_minor))
        .load(conn)
        .map_err(classify)?;
    let mut sums = HashMap::new();
    for (client, minor) in rows {
        *sums.entry(client).or_insert(0) += minor;
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use chrono::{TimeDelta, Utc};
    use diesel::connection::{Instrumentation, InstrumentationEvent};

    use super::*;
    use crate::domain::{ClientId, ClientProfile, ClientStatus, Country, Currency, Money};
    use crate::store::{clients, migrate};

    /// The statements prepared into the cache, and the SQL of the queries run.
    #[derive(Default)]
    struct Seen(Arc<Mutex<(usize, Vec<String>)>>);

    impl Instrumentation for Seen {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            if let Ok(mut seen) = self.0.lock() {
                match event {
                    InstrumentationEvent::CacheQuery { .. } => seen.0 += 1,
                    InstrumentationEvent::StartQuery { query, .. } => {
                        seen.1.push(query.to_string())
                    }
                    _ => {}
                }
            }
        }
    }

    /// On SQLite the read is one statement, prepared once per connection: cached by diesel, and
    /// without a bound `LIMIT` (which SQLite would have prepared again at every execution).
    #[test]
    fn the_sqlite_read_is_one_statement_prepared_once() {
        let (store, _dir) = crate::store::temp_sqlite_store(|_| {});
        let mut conn = store.get().unwrap();
        migrate(&mut conn).unwrap();
        let now = Utc::now();
        let eur = Currency::parse("EUR").unwrap();
        let profile = ClientProfile {
            name: "Read SA".into(),
            registration_number: None,
            country: Country::parse("FR").unwrap(),
            sector: None,
            currency: eur,
            credit_limit: Money::from_minor(1_000_000, eur),
            status: None,
        };
        for id in ["A", "B"] {
            let id = ClientId::parse(id).unwrap();
            clients::insert(&mut conn, &id, &profile, ClientStatus::Active, false, now).unwrap();
        }
        let now = now.naive_utc();
        for (n, ttl) in [(1, 10), (2, 20), (3, 30)] {
            let row = ReservationRow {
                decision_id: format!("d{n}"),
                client_id: "A".into(),
                amount_minor: 100 * n,
                status: "active".into(),
                created_at: now,
                expires_at: now + TimeDelta::seconds(ttl),
                settled_at: None,
                settled_by: None,
            };
            insert(&mut conn, &row).unwrap();
        }
        let seen = Arc::new(Mutex::new((0, Vec::new())));
        let AnyConnection::Sqlite(lite) = &mut *conn else {
            unreachable!("a SQLite path")
        };
        lite.set_instrumentation(Seen(Arc::clone(&seen)));

        let at = |s| now + TimeDelta::seconds(s);
        assert_eq!(
            reserved_minor(&mut conn, "A", at(0)).unwrap(),
            (600, Some(at(10)))
        );
        assert_eq!(
            reserved_minor(&mut conn, "A", at(15)).unwrap(),
            (500, Some(at(20)))
        );
        assert_eq!(reserved_minor(&mut conn, "A", at(30)).unwrap(), (0, None));
        assert_eq!(reserved_minor(&mut conn, "B", at(0)).unwrap(), (0, None));

        let (prepared, queries) = &*seen.lock().unwrap();
        assert_eq!((*prepared, queries.len()), (1, 4), "{queries:#?}");
        assert!(!queries[0].contains("LIMIT"), "{}", queries[0]);
    }
}
