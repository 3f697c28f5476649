//! Reservations: credit held by approved decisions until invoiced, released or expired.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::reservations;
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
/// One client's query compares by `=`, so its statement stays prepared (an `IN` list is
/// prepared anew each time), and reads only the `reservations_by_client` index, which covers it.
/// SQLite sums in the query: decoding every row's timestamp from text was a tenth of a
/// decision's CPU once a client held a hundred reservations (docs/benchmarks.md, decisions,
/// eighth round). PostgreSQL's `SUM(BIGINT)` is a `NUMERIC`, so there the rows are added up
/// here, decoded from binary at little cost.
pub fn reserved_minor(
    conn: &mut AnyConnection,
    client_id: &str,
    now: NaiveDateTime,
) -> Result<(i64, Option<NaiveDateTime>), StoreError> {
    let held = reservations::table
        .filter(reservations::client_id.eq(client_id))
        .filter(reservations::status.eq("active"))
        .filter(reservations::expires_at.gt(now));
    match conn {
        AnyConnection::Sqlite(c) => {
            let (sum, first_expiry): (Option<i64>, Option<NaiveDateTime>) = held
                .select((
                    integer_sum(reservations::amount_minor),
                    diesel::dsl::min(reservations::expires_at),
                ))
                .get_result(c)
                .map_err(classify)?;
            Ok((sum.unwrap_or(0), first_expiry))
        }
        AnyConnection::Postgres(c) => {
            let rows: Vec<(i64, NaiveDateTime)> = held
                .select((reservations::amount_minor, reservations::expires_at))
                .load(c)
                .map_err(classify)?;
            let first_expiry = rows.iter().map(|(_, at)| *at).min();
            Ok((rows.iter().map(|(minor, _)| minor).sum(), first_expiry))
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
