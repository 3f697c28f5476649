//! The open_dues table: a client's open invoices summed by due date, one row a day.
//!
//! Everything read of a client's invoices on the hot paths depends on their due dates only:
//! what is overdue and since when (decisions, client reads), and the days its invoices will
//! cross 30, 60 or 90 days past due (reviews, the scheduled pass). Summed by day, a review
//! reads as many rows as its client has due dates, however many invoices fall due on each.
//! The event writer keeps the table in the transaction that writes the invoices, by the net
//! change of each day ([`Changes`]); the rebuild replaces a client's rows with the sums of its
//! replayed invoices.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use diesel::prelude::*;

use super::day::Day;
use super::schema::open_dues;
use super::{AnyConnection, StoreError, classify};
use crate::domain::ledger::Invoice;

/// What a client's open invoices due one day add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub open_minor: i64,
    /// How many invoices; a day with none has no row.
    pub invoices: i64,
}

impl Due {
    fn add(&mut self, open_minor: i64, invoices: i64) {
        self.open_minor += open_minor;
        self.invoices += invoices;
    }
}

/// A client's open amounts by due date.
pub type Dues = BTreeMap<NaiveDate, Due>;

/// The dues of these invoices (those still owed, see [`Invoice::open_due`]).
pub fn sum<'a>(invoices: impl IntoIterator<Item = &'a Invoice>) -> Dues {
    let mut dues = Dues::new();
    for (due_on, open) in invoices.into_iter().filter_map(Invoice::open_due) {
        dues.entry(due_on).or_default().add(open, 1);
    }
    dues
}

/// The net change a transaction makes to its clients' days, invoice by invoice.
#[derive(Debug, Default)]
pub struct Changes(HashMap<(String, NaiveDate), Due>);

impl Changes {
    /// One invoice of `client` went from `before` to `after` (its [`Invoice::open_due`] as
    /// stored, `None` for a new one, and as it is now).
    pub fn replace(
        &mut self,
        client: &str,
        before: Option<(NaiveDate, i64)>,
        after: Option<(NaiveDate, i64)>,
    ) {
        if before == after {
            return;
        }
        let mut add = |(due_on, open): (NaiveDate, i64), sign: i64| {
            self.0
                .entry((client.to_owned(), due_on))
                .or_default()
                .add(sign * open, sign);
        };
        if let Some(before) = before {
            add(before, -1);
        }
        if let Some(after) = after {
            add(after, 1);
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = open_dues, treat_none_as_default_value = false)]
struct DueRow<'a> {
    client_id: &'a str,
    due_on: Day,
    open_minor: i64,
    invoices: i64,
}

/// Adds the changes to the stored rows (a day not stored yet starts at zero), then removes
/// the days left without an invoice.
pub fn apply(conn: &mut AnyConnection, changes: &Changes) -> Result<(), StoreError> {
    use diesel::upsert::excluded;
    use open_dues::dsl as d;
    let rows: Vec<DueRow<'_>> = changes
        .0
        .iter()
        .filter(|(_, due)| **due != Due::default())
        .map(|((client, due_on), due)| DueRow {
            client_id: client,
            due_on: Day(*due_on),
            open_minor: due.open_minor,
            invoices: due.invoices,
        })
        .collect();
    // 4 columns a row: stay under SQLite's 32766 bound values.
    for chunk in rows.chunks(5_000) {
        per_backend!(conn, |c| diesel::insert_into(open_dues::table)
            .values(chunk)
            .on_conflict((d::client_id, d::due_on))
            .do_update()
            .set((
                d::open_minor.eq(d::open_minor + excluded(d::open_minor)),
                d::invoices.eq(d::invoices + excluded(d::invoices)),
            ))
            .execute(c))
        .map_err(classify)?;
    }
    let emptied: Vec<&DueRow<'_>> = rows.iter().filter(|r| r.invoices < 0).collect();
    // Each key nests the OR one level deeper: stay well under SQLite's expression depth.
    for chunk in emptied.chunks(100) {
        let mut query = diesel::delete(open_dues::table).into_boxed();
        for row in chunk {
            query = query.or_filter(
                d::client_id
                    .eq(row.client_id)
                    .and(d::due_on.eq(row.due_on.0))
                    .and(d::invoices.le(0)),
            );
        }
        query.execute(conn).map_err(classify)?;
    }
    Ok(())
}

/// A client's dues, as stored.
pub fn for_client(conn: &mut AnyConnection, client_id: &str) -> Result<Dues, StoreError> {
    // On the concrete connection: the decision path's read, kept prepared (see `store`).
    let rows: Vec<(Day, i64, i64)> = per_backend!(conn, |c| open_dues::table
        .filter(open_dues::client_id.eq(client_id))
        .select((
            open_dues::due_on,
            open_dues::open_minor,
            open_dues::invoices
        ))
        .load(c))
    .map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(|(Day(due_on), open_minor, invoices)| {
            (
                due_on,
                Due {
                    open_minor,
                    invoices,
                },
            )
        })
        .collect())
}

/// (client, due date, open amount) of these clients' days, those before `before` when given.
pub fn for_clients(
    conn: &mut AnyConnection,
    client_ids: &[&str],
    before: Option<NaiveDate>,
) -> Result<Vec<(String, NaiveDate, i64)>, StoreError> {
    let rows: Vec<(String, Day, i64)> = per_backend!(conn, |c| {
        let mut query = open_dues::table
            .filter(open_dues::client_id.eq_any(client_ids))
            .select((
                open_dues::client_id,
                open_dues::due_on,
                open_dues::open_minor,
            ))
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(open_dues::due_on.lt(before));
        }
        query.load(c)
    })
    .map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(|(client, Day(due_on), open)| (client, due_on, open))
        .collect())
}

/// Replaces a client's rows by these dues (the rebuild).
pub fn replace_for_client(
    conn: &mut AnyConnection,
    client_id: &str,
    dues: &Dues,
) -> Result<(), StoreError> {
    diesel::delete(open_dues::table.filter(open_dues::client_id.eq(client_id)))
        .execute(conn)
        .map_err(classify)?;
    let rows: Vec<DueRow<'_>> = dues
        .iter()
        .map(|(due_on, due)| DueRow {
            client_id,
            due_on: Day(*due_on),
            open_minor: due.open_minor,
            invoices: due.invoices,
        })
        .collect();
    for chunk in rows.chunks(5_000) {
        per_backend!(conn, |c| diesel::insert_into(open_dues::table)
            .values(chunk)
            .execute(c))
        .map_err(classify)?;
    }
    Ok(())
}
