//! What is computed when a client is read rather than stored: the credit its reservations
//! hold, what is overdue, and its recent sales alerts, all as of the read. Time alone changes
//! them (a reservation lapses, an invoice falls due, an alert ages), so no event is needed.
//! What is overdue comes from the open amounts by due date the client's row holds
//! ([`ReadTime::count_overdue`]); the rest is read here.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::moment::Moment;
use super::schema::sales_alerts;
use super::{AnyConnection, StoreError, classify, reservations};
use crate::domain::ledger::Dues;
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

impl ReadTime {
    /// Sets what of these dues is overdue on `today`.
    pub fn count_overdue(&mut self, dues: &Dues, today: NaiveDate) {
        (self.overdue_minor, self.oldest_overdue_due_on) = dues.overdue(today);
    }

    fn add_alert(&mut self, negative: bool) {
        if negative {
            self.alerts_negative += 1;
        } else {
            self.alerts_positive += 1;
        }
    }
}

/// The read-time figures of several clients but what is overdue, in two queries.
pub fn for_clients(
    conn: &mut AnyConnection,
    client_ids: &[&str],
    now: DateTime<Utc>,
) -> Result<HashMap<String, ReadTime>, StoreError> {
    let mut out: HashMap<String, ReadTime> = HashMap::with_capacity(client_ids.len());
    for (client, minor) in reservations::reserved_by_client(conn, client_ids, now.naive_utc())? {
        out.entry(client).or_default().reserved_minor = minor;
    }
    for (client, negative, _) in recent_alerts(conn, client_ids, now)? {
        out.entry(client).or_default().add_alert(negative);
    }
    Ok(out)
}

/// One client's figures: the same two queries by `=`, whose statements SQLite keeps
/// prepared (an `IN` list is parsed anew each time); this is the decision path's read, so
/// they run on the concrete connection (see the `store` module).
pub fn for_client(
    conn: &mut AnyConnection,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<ReadTime, StoreError> {
    for_client_until(conn, client_id, now).map(|(read, ..)| read)
}

/// [`for_client`], the first instant after `now` at which time alone changes the figures (a
/// counted reservation lapses or a counted alert ages out; overdue amounts change only with
/// the date; `None` when nothing counted will), and the reservations' change count
/// ([`Reserved::changes`](reservations::Reserved), part of the client's version).
pub fn for_client_until(
    conn: &mut AnyConnection,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<(ReadTime, Option<NaiveDateTime>, i64), StoreError> {
    let reserved = reservations::reserved(conn, client_id, now.naive_utc())?;
    let mut changes_at = reserved.first_expiry;
    let mut read = ReadTime {
        reserved_minor: reserved.minor,
        ..ReadTime::default()
    };
    let since = recent_alerts_since(now);
    let window = now - since;
    let since = since.naive_utc();
    let alerts: Vec<(bool, NaiveDateTime)> = per_backend!(conn, |c| sales_alerts::table
        .filter(sales_alerts::client_id.eq(client_id))
        .filter(sales_alerts::occurred_at.gt(since))
        .select((sales_alerts::negative, sales_alerts::occurred_at))
        .load(c))
    .map_err(classify)?;
    for (negative, at) in alerts {
        read.add_alert(negative);
        // Counted while `occurred_at > now - window`: until `occurred_at + window`.
        let ages_out = at + window;
        changes_at = Some(changes_at.map_or(ages_out, |t| t.min(ages_out)));
    }
    Ok((read, changes_at, reserved.changes))
}

/// (client, negative?, occurred_at) of the alerts still recent at `now`.
pub fn recent_alerts(
    conn: &mut AnyConnection,
    client_ids: &[&str],
    now: DateTime<Utc>,
) -> Result<Vec<(String, bool, DateTime<Utc>)>, StoreError> {
    let since = Moment(recent_alerts_since(now).naive_utc());
    // On the concrete connection: a batch's reviews read thousands of rows, each field read
    // through the MultiConnection's row wrapper otherwise.
    let rows: Vec<(String, bool, Moment)> = per_backend!(conn, |c| sales_alerts::table
        .filter(sales_alerts::client_id.eq_any(client_ids))
        .filter(sales_alerts::occurred_at.gt(since))
        .select((
            sales_alerts::client_id,
            sales_alerts::negative,
            sales_alerts::occurred_at,
        ))
        .load(c))
    .map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(|(c, negative, Moment(at))| (c, negative, at.and_utc()))
        .collect())
}

/// What a limit review reads of a client beyond its row: its read-time figures (what is
/// overdue is the batch's to count, on the dues it has just changed) and when its recent
/// alerts occurred (the days time alone will change its risk).
#[derive(Clone, Debug, Default)]
pub struct Reviewing {
    pub read: ReadTime,
    pub recent_alerts: Vec<DateTime<Utc>>,
}

impl Reviewing {
    fn add_alert(&mut self, negative: bool, at: DateTime<Utc>) {
        self.read.add_alert(negative);
        self.recent_alerts.push(at);
    }
}

/// A sales alert of the batch being written, not stored yet: (client, negative?, occurred_at).
pub type UnloggedAlert<'a> = (&'a str, bool, DateTime<Utc>);

/// [`Reviewing`] for the clients of a batch of events, in two queries whatever their number:
/// one pass over their recent alerts gives both the counts and the dates. `unlogged` are the
/// batch's own alerts, counted as if stored (see `service::events::batch`): an alert
/// row needs its event's log row, which is written while the reviews run.
pub fn for_reviews(
    conn: &mut AnyConnection,
    client_ids: &[&str],
    unlogged: &[UnloggedAlert<'_>],
    now: DateTime<Utc>,
) -> Result<HashMap<String, Reviewing>, StoreError> {
    let mut out: HashMap<String, Reviewing> = HashMap::with_capacity(client_ids.len());
    for (client, minor) in reservations::reserved_by_client(conn, client_ids, now.naive_utc())? {
        out.entry(client).or_default().read.reserved_minor = minor;
    }
    for (client, negative, at) in recent_alerts(conn, client_ids, now)? {
        out.entry(client).or_default().add_alert(negative, at);
    }
    // As `recent_alerts` filters them.
    let since = recent_alerts_since(now).naive_utc();
    for &(client, negative, at) in unlogged {
        if at.naive_utc() > since {
            out.entry(client.to_owned())
                .or_default()
                .add_alert(negative, at);
        }
    }
    Ok(out)
}
