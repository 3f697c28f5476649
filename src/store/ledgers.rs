//! The event-projection columns of the clients table ([`Ledger`]) and what a limit review
//! writes back (risk, limit, status, next review day).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use diesel::prelude::*;

use super::day::{self, year_month_day};
use super::moment::Moment;
use super::prepared::{self, Update};
use super::schema::clients;
use super::{AnyConnection, StoreError, classify};
use crate::domain::ledger::{Cover, Due, Dues, Ledger};
use crate::domain::{ClientId, ClientStatus, Currency, ExternalScore, LegalStatus, Risk};

#[derive(Queryable, Selectable)]
#[diesel(table_name = clients)]
struct LedgerRow {
    client_id: String,
    currency: String,
    open_invoices_minor: i64,
    invoices_paid: i64,
    paid_late: i64,
    total_days_late: i64,
    insurer: Option<String>,
    insured_minor: Option<i64>,
    insurance_valid_until: Option<NaiveDate>,
    insurance_changed_at: Option<Moment>,
    score_provider: Option<String>,
    external_score: Option<i64>,
    external_score_as_of: Option<NaiveDate>,
    legal_status: String,
    legal_status_changed_at: Option<Moment>,
    open_dues: String,
}

#[derive(AsChangeset)]
#[diesel(table_name = clients)]
#[diesel(treat_none_as_null = true)]
struct LedgerChange<'a> {
    open_invoices_minor: i64,
    invoices_paid: i64,
    paid_late: i64,
    total_days_late: i64,
    insurer: Option<&'a str>,
    insured_minor: Option<i64>,
    insurance_valid_until: Option<NaiveDate>,
    insurance_changed_at: Option<Moment>,
    score_provider: Option<&'a str>,
    external_score: Option<i64>,
    external_score_as_of: Option<NaiveDate>,
    legal_status: &'a str,
    legal_status_changed_at: Option<Moment>,
    updated_at: Moment,
    open_dues: String,
}

/// A client as the projection needs it.
#[derive(Clone, Debug)]
pub struct Account {
    pub client_id: ClientId,
    pub currency: Currency,
    pub ledger: Ledger,
}

impl LedgerRow {
    fn into_account(self) -> Result<Account, StoreError> {
        let bad = |field: &str, e: String| StoreError::corrupt(format!("clients.{field}: {e}"));
        let insurance = match (self.insurer, self.insured_minor) {
            (Some(insurer), Some(insured_minor)) => Some(Cover {
                insurer,
                insured_minor,
                valid_until: self.insurance_valid_until,
            }),
            _ => None,
        };
        let external_score = match (
            self.score_provider,
            self.external_score,
            self.external_score_as_of,
        ) {
            (Some(provider), Some(score), Some(as_of)) => Some(ExternalScore {
                provider,
                score,
                as_of,
            }),
            _ => None,
        };
        Ok(Account {
            client_id: ClientId::parse(&self.client_id).map_err(|e| bad("client_id", e))?,
            currency: Currency::parse(&self.currency).map_err(|e| bad("currency", e))?,
            ledger: Ledger {
                open_invoices_minor: self.open_invoices_minor,
                invoices_paid: self.invoices_paid,
                paid_late: self.paid_late,
                total_days_late: self.total_days_late,
                insurance,
                insurance_changed_at: self.insurance_changed_at.map(|t| t.0.and_utc()),
                external_score,
                legal_status: LegalStatus::parse(&self.legal_status)
                    .map_err(|e| bad("legal_status", e))?,
                legal_status_changed_at: self.legal_status_changed_at.map(|t| t.0.and_utc()),
                open_dues: parse_dues(&self.open_dues)?,
            },
        })
    }
}

/// The accounts of these clients (those that exist), in `client_id` order; on PostgreSQL
/// their rows stay locked until the transaction ends, taken in that order so that two
/// batches naming the same clients queue instead of deadlocking.
pub fn lock_many(
    conn: &mut AnyConnection,
    client_ids: &[&str],
) -> Result<Vec<Account>, StoreError> {
    let query = || {
        clients::table
            .filter(clients::client_id.eq_any(client_ids))
            .order(clients::client_id.asc())
    };
    // SQLite has no row locks: its write transaction already holds the database.
    let rows = match conn {
        AnyConnection::Postgres(pg) => query().select(LedgerRow::as_select()).for_update().load(pg),
        AnyConnection::Sqlite(lite) => query().select(LedgerRow::as_select()).load(lite),
    }
    .map_err(classify)?;
    rows.into_iter().map(LedgerRow::into_account).collect()
}

fn ledger_change(ledger: &Ledger, at: DateTime<Utc>) -> LedgerChange<'_> {
    let cover = ledger.insurance.as_ref();
    let score = ledger.external_score.as_ref();
    LedgerChange {
        open_invoices_minor: ledger.open_invoices_minor,
        invoices_paid: ledger.invoices_paid,
        paid_late: ledger.paid_late,
        total_days_late: ledger.total_days_late,
        insurer: cover.map(|c| c.insurer.as_str()),
        insured_minor: cover.map(|c| c.insured_minor),
        insurance_valid_until: cover.and_then(|c| c.valid_until),
        insurance_changed_at: ledger.insurance_changed_at.map(|t| Moment(t.naive_utc())),
        score_provider: score.map(|s| s.provider.as_str()),
        external_score: score.map(|s| s.score),
        external_score_as_of: score.map(|s| s.as_of),
        legal_status: ledger.legal_status.as_str(),
        legal_status_changed_at: ledger
            .legal_status_changed_at
            .map(|t| Moment(t.naive_utc())),
        updated_at: Moment(at.naive_utc()),
        open_dues: dues_text(&ledger.open_dues),
    }
}

/// `clients.open_dues` as written: a JSON array of `["YYYY-MM-DD", open minor, invoices]`, one
/// a due date, earliest first (what migration 000017 writes too).
fn dues_text(dues: &Dues) -> String {
    // Written by hand rather than with `write!`: every client of every batch of events writes
    // its dues, tens of them, and the formatting machinery was 5 % of an event's instructions.
    let mut out = String::with_capacity(256);
    let mut number = itoa::Buffer::new();
    out.push('[');
    for (i, (day, due)) in dues.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("[\"");
        push_day(&mut out, day);
        out.push_str("\",");
        out.push_str(number.format(due.open_minor));
        out.push(',');
        out.push_str(number.format(due.invoices));
        out.push(']');
    }
    out.push(']');
    out
}

/// `YYYY-MM-DD` (a year outside 0..=9999 as chrono writes it, sign and all).
fn push_day(out: &mut String, day: NaiveDate) {
    let (year, month, date) = (day.year(), day.month(), day.day());
    if !(0..=9999).contains(&year) {
        out.push_str(&day.to_string());
        return;
    }
    let year = year.unsigned_abs();
    let digit = |n: u32| char::from_digit(n % 10, 10).unwrap_or('0');
    for n in [year / 1000, year / 100, year / 10, year] {
        out.push(digit(n));
    }
    out.push('-');
    out.push(digit(month / 10));
    out.push(digit(month));
    out.push('-');
    out.push(digit(date / 10));
    out.push(digit(date));
}

/// Reads `clients.open_dues`: what [`dues_text`] writes digit by digit (read for every client
/// a batch of events locks; serde_json took 800 instructions a day of it), any other JSON of
/// that shape (PostgreSQL's `json_agg` spaces it) through serde_json.
pub(super) fn parse_dues(text: &str) -> Result<Dues, StoreError> {
    if let Some(dues) = as_dues_text_writes(text) {
        return Ok(dues);
    }
    let bad = |e: String| StoreError::corrupt(format!("clients.open_dues: {e}"));
    let days: Vec<(&str, i64, i64)> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    days.into_iter()
        .map(|(day, open_minor, invoices)| {
            let day = day::parse(day).map_err(|e| bad(format!("`{day}`: {e}")))?;
            Ok((
                day,
                Due {
                    open_minor,
                    invoices,
                },
            ))
        })
        .collect()
}

/// `[["YYYY-MM-DD",open,invoices],…]` exactly as [`dues_text`] writes it; `None` otherwise.
fn as_dues_text_writes(text: &str) -> Option<Dues> {
    let mut rest = text.strip_prefix('[')?.strip_suffix(']')?;
    let mut dues = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix("[\"")?;
        let day = year_month_day(rest.get(..10)?)?;
        rest = rest.get(10..)?.strip_prefix("\",")?;
        let (open, tail) = rest.split_once(',')?;
        let (invoices, tail) = tail.split_once(']')?;
        let due = Due {
            open_minor: open.parse().ok()?,
            invoices: invoices.parse().ok()?,
        };
        dues.push((day, due));
        rest = match tail.strip_prefix(',') {
            Some(more) if !more.is_empty() => more,
            Some(_) => return None,
            None => tail,
        };
    }
    Some(dues.into_iter().collect())
}

/// A client's open invoices by due date, as stored (the scheduled review's read).
pub fn dues(conn: &mut AnyConnection, client_id: &str) -> Result<Dues, StoreError> {
    let text: String = clients::table
        .find(client_id)
        .select(clients::open_dues)
        .get_result(conn)
        .map_err(classify)?;
    parse_dues(&text)
}

/// Writes the projection of a client.
pub fn save(
    conn: &mut AnyConnection,
    client_id: &str,
    ledger: &Ledger,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::update(clients::table.find(client_id))
        .set(ledger_change(ledger, at))
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

/// Writes the projection of a client and its review in one statement (what a batch of
/// events does for each client it touched: half the updates of [`save`] then
/// [`save_review`]).
pub fn save_reviewed(
    conn: &mut AnyConnection,
    client_id: &str,
    ledger: &Ledger,
    r: &Reviewed<'_>,
) -> Result<(), StoreError> {
    let change = ledger_change(ledger, r.at);
    let review = (
        clients::credit_limit_minor.eq(r.credit_limit_minor),
        clients::status.eq(r.status.as_str()),
        clients::next_review_on.eq(r.next_review_on),
        // Bumped here, not by the row's trigger (migration 000010), which would run a second
        // UPDATE of the row for every client of every batch.
        clients::version.eq(clients::version + 1),
    );
    // One UPDATE per client of every batch of events: prepared once (see `prepared`).
    struct WithRisk;
    struct KeepingRisk;
    let target = clients::client_id.eq(client_id);
    match r.risk {
        Some(risk) => {
            let factors = serde_json::to_string(&risk.factors).map_err(StoreError::corrupt)?;
            let values = (
                change,
                review,
                clients::risk_score.eq(Some(i64::from(risk.score))),
                clients::risk_band.eq(Some(risk.band.as_str())),
                clients::risk_factors.eq(Some(factors)),
            );
            prepared::execute(
                conn,
                Update::<_, _, WithRisk>::new("clients", values, target),
            )
        }
        None => {
            let values = (change, review);
            prepared::execute(
                conn,
                Update::<_, _, KeepingRisk>::new("clients", values, target),
            )
        }
    }
    .map_err(classify)?;
    Ok(())
}

/// What a review writes back on the client.
#[derive(Debug)]
pub struct Reviewed<'a> {
    /// `None` keeps the risk held (the scoring stage failed).
    pub risk: Option<&'a Risk>,
    pub credit_limit_minor: i64,
    pub status: ClientStatus,
    pub next_review_on: Option<NaiveDate>,
    pub at: DateTime<Utc>,
}

pub fn save_review(
    conn: &mut AnyConnection,
    client_id: &str,
    r: &Reviewed<'_>,
) -> Result<(), StoreError> {
    let target = clients::table.find(client_id);
    let common = (
        clients::credit_limit_minor.eq(r.credit_limit_minor),
        clients::status.eq(r.status.as_str()),
        clients::next_review_on.eq(r.next_review_on),
        clients::updated_at.eq(Moment(r.at.naive_utc())),
    );
    match r.risk {
        Some(risk) => {
            let factors = serde_json::to_string(&risk.factors).map_err(StoreError::corrupt)?;
            diesel::update(target)
                .set((
                    common,
                    clients::risk_score.eq(Some(i64::from(risk.score))),
                    clients::risk_band.eq(Some(risk.band.as_str())),
                    clients::risk_factors.eq(Some(factors)),
                ))
                .execute(conn)
        }
        None => diesel::update(target).set(common).execute(conn),
    }
    .map_err(classify)?;
    Ok(())
}

/// Clients whose next review day has come, at most `limit`, in `client_id` order after `after`.
pub fn due_for_review(
    conn: &mut AnyConnection,
    today: NaiveDate,
    after: &str,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    clients::table
        .filter(clients::next_review_on.le(today))
        .filter(clients::client_id.gt(after))
        .order(clients::client_id.asc())
        .limit(limit)
        .select(clients::client_id)
        .load(conn)
        .map_err(classify)
}

/// Whether the client's next review day has come.
pub fn review_due(
    conn: &mut AnyConnection,
    client_id: &str,
    today: NaiveDate,
) -> Result<bool, StoreError> {
    let day: Option<Option<NaiveDate>> = clients::table
        .find(client_id)
        .select(clients::next_review_on)
        .first(conn)
        .optional()
        .map_err(classify)?;
    Ok(day.flatten().is_some_and(|d| d <= today))
}

/// Whether the client exists.
pub fn exists(conn: &mut AnyConnection, client_id: &str) -> Result<bool, StoreError> {
    let found: Option<String> = clients::table
        .find(client_id)
        .select(clients::client_id)
        .first(conn)
        .optional()
        .map_err(classify)?;
    Ok(found.is_some())
}

/// Client ids in order after `after`, at most `limit` (for passes over every client).
pub fn ids_after(
    conn: &mut AnyConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    clients::table
        .filter(clients::client_id.gt(after))
        .order(clients::client_id.asc())
        .limit(limit)
        .select(clients::client_id)
        .load(conn)
        .map_err(classify)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    /// What the writer writes it reads back; what migration 000017 writes on either backend
    /// (PostgreSQL's `json_agg` spaces it) it reads too; anything else is an error.
    #[test]
    fn dues_text_reads_back() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let dues: Dues = [
            (
                day(5),
                Due {
                    open_minor: 12_345,
                    invoices: 2,
                },
            ),
            (
                day(31),
                Due {
                    open_minor: 1,
                    invoices: 1,
                },
            ),
        ]
        .into_iter()
        .collect();
        let text = dues_text(&dues);
        assert_eq!(text, r#"[["2026-12-05",12345,2],["2026-12-31",1,1]]"#);
        for (y, m, d) in [(1, 1, 1), (999, 9, 9), (2024, 2, 29), (9999, 12, 31)] {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let mut out = String::new();
            push_day(&mut out, day);
            assert_eq!(out, day.to_string());
        }
        assert_eq!(parse_dues(&text).unwrap(), dues);
        let spaced = r#"[["2026-12-31", 1, 1], ["2026-12-05", 12345, 2]]"#;
        assert_eq!(parse_dues(spaced).unwrap(), dues);
        assert_eq!(
            as_dues_text_writes(&text),
            Some(dues.clone()),
            "the fast path"
        );
        assert_eq!(as_dues_text_writes(spaced), None, "serde_json's");
        assert_eq!(parse_dues("[]").unwrap(), Dues::default());
        let far: Dues = [(
            NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap(),
            Due {
                open_minor: 1,
                invoices: 1,
            },
        )]
        .into_iter()
        .collect();
        assert_eq!(
            parse_dues(&dues_text(&far)).unwrap(),
            far,
            "a year past 9999"
        );
        for bad in [
            "",
            "{}",
            r#"[["2026-12-32",1,1]]"#,
            r#"[["2026-12-05",1]]"#,
            r#"[["2026-12-05",1,1],]"#,
            r#"[["2026-12-05",1,x]]"#,
        ] {
            assert!(parse_dues(bad).is_err(), "{bad}");
        }
    }
}
