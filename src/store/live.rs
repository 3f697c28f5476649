//! What is computed when a client is read rather than stored: the credit its reservations
//! hold, what is overdue, and its recent sales alerts, all as of the read. Time alone changes
//! them (a reservation lapses, an invoice falls due, an alert ages), so no event is needed.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;

use super::schema::{invoices, sales_alerts};
use super::{AnyConnection, StoreError, classify, reservations};
use crate::domain::review::recent_alerts_since;

/// A client's read-time figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadTime {
    pub reserved_minor: i64,
    /// Open amount of the invoices whose due date has passed.
    pub overdue_minor: i64,
    pub oldest_overdue_due_on: Option<NaiveDate>,
    pub alerts_negative: i64,
    pub alerts_positive: i64,
}

/// The read-time figures of several clients, in three queries.
pub fn for_clients(
    conn: &mut AnyConnection,
    client_ids: &[&str],
    now: DateTime<Utc>,
) -> Result<HashMap<String, ReadTime>, StoreError> {
    let mut out: HashMap<String, ReadTime> = HashMap::with_capacity(client_ids.len());
    for (client, minor) in reservations::reserved_by_client(conn, client_ids, now.naive_utc())? {
        out.entry(client).or_default().reserved_minor = minor;
    }
    for (client, due_on, open) in overdue(conn, client_ids, now.date_naive())? {
        let read = out.entry(client).or_default();
        read.overdue_minor += open;
        read.oldest_overdue_due_on =
            Some(read.oldest_overdue_due_on.map_or(due_on, |d| d.min(due_on)));
    }
    for (client, negative, _) in recent_alerts(conn, client_ids, now)? {
        let read = out.entry(client).or_default();
        if negative {
            read.alerts_negative += 1;
        } else {
            read.alerts_positive += 1;
        }
    }
    Ok(out)
}

/// (client, due date, open amount) of the open invoices due before `today`.
fn overdue(
    conn: &mut AnyConnection,
    client_ids: &[&str],
    today: NaiveDate,
) -> Result<Vec<(String, NaiveDate, i64)>, StoreError> {
    let rows: Vec<(String, Option<NaiveDate>, i64)> = invoices::table
        .filter(invoices::client_id.eq_any(client_ids))
        .filter(invoices::open_minor.gt(0))
        .filter(invoices::due_on.lt(today))
        .select((invoices::client_id, invoices::due_on, invoices::open_minor))
        .load(conn)
        .map_err(classify)?;
    Ok(rows
        .into_iter()
        .filter_map(|(c, due, open)| due.map(|d| (c, d, open)))
        .collect())
}

/// (client, negative?, occurred_at) of the alerts still recent at `now`.
pub fn recent_alerts(
    conn: &mut AnyConnection,
    client_ids: &[&str],
    now: DateTime<Utc>,
) -> Result<Vec<(String, bool, DateTime<Utc>)>, StoreError> {
    let rows: Vec<(String, bool, chrono::NaiveDateTime)> = sales_alerts::table
        .filter(sales_alerts::client_id.eq_any(client_ids))
        .filter(sales_alerts::occurred_at.gt(recent_alerts_since(now).naive_utc()))
        .select((
            sales_alerts::client_id,
            sales_alerts::negative,
            sales_alerts::occurred_at,
        ))
        .load(conn)
        .map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(|(c, negative, at)| (c, negative, at.and_utc()))
        .collect())
}
