//! The clients table: profile and live-state columns, mapped to and from the domain.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::live::{self, ReadTime};
use super::moment::Moment;
use super::prepared::scalar;
use super::schema::{client_reserved, clients};
use super::{AnyConnection, StoreError, classify, ledgers};
use crate::domain::{
    Client, ClientId, ClientProfile, ClientStatus, Currency, ExternalScore, Insurance, LegalStatus,
    LiveState, Money, Risk, RiskBand, RiskFactor,
};

#[derive(Queryable, Selectable)]
#[diesel(table_name = clients)]
struct ClientRow {
    client_id: String,
    name: String,
    registration_number: Option<String>,
    country: String,
    sector: Option<String>,
    currency: String,
    status: String,
    is_prospect: bool,
    credit_limit_minor: i64,
    open_invoices_minor: i64,
    invoices_paid: i64,
    paid_late: i64,
    total_days_late: i64,
    insurer: Option<String>,
    insured_minor: Option<i64>,
    insurance_valid_until: Option<NaiveDate>,
    score_provider: Option<String>,
    external_score: Option<i64>,
    external_score_as_of: Option<NaiveDate>,
    legal_status: String,
    risk_score: Option<i64>,
    risk_band: Option<String>,
    risk_factors: Option<String>,
    created_at: Moment,
    updated_at: Moment,
    version: i64,
    open_dues: String,
}

/// What a read of a client rests on, so that a writer can check later, with one comparison,
/// that reading it again would give the same: the client's version (bumped by the database's
/// triggers on every write to its row, reservations, invoices and sales alerts) and the first
/// instant at which time alone changes what was read (a reservation lapsing, an alert ageing
/// out; the date is the caller's to compare).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub version: i64,
    pub changes_at: Option<DateTime<Utc>>,
}

impl Stamp {
    /// Whether the read still holds at `now`, the client's version being `current`.
    pub fn holds(&self, current: Option<i64>, now: DateTime<Utc>) -> bool {
        current == Some(self.version) && self.changes_at.is_none_or(|at| now < at)
    }
}

impl ClientRow {
    /// [`ClientRow::into_client`] with what of its open invoices is overdue on `now`'s day
    /// counted into `read` (a batch's review counts on the ledger it holds instead).
    fn into_client_at(self, mut read: ReadTime, now: DateTime<Utc>) -> Result<Client, StoreError> {
        read.count_overdue(&ledgers::parse_dues(&self.open_dues)?, now.date_naive());
        self.into_client(&read)
    }

    /// The domain client, with what is computed when read: the credit its reservations hold,
    /// what is overdue and the recent alerts, as of the read.
    fn into_client(self, now: &ReadTime) -> Result<Client, StoreError> {
        let r = self;
        let bad = |field: &str, e: String| StoreError::corrupt(format!("clients.{field}: {e}"));
        let currency = Currency::parse(&r.currency).map_err(|e| bad("currency", e))?;
        let money = |minor| Money::from_minor(minor, currency);
        let insurance = match (r.insurer, r.insured_minor) {
            (Some(insurer), Some(minor)) => Some(Insurance {
                insurer,
                insured_amount: money(minor),
                valid_until: r.insurance_valid_until,
            }),
            _ => None,
        };
        let external_score = match (r.score_provider, r.external_score, r.external_score_as_of) {
            (Some(provider), Some(score), Some(as_of)) => Some(ExternalScore {
                provider,
                score,
                as_of,
            }),
            _ => None,
        };
        let risk = match (r.risk_score, r.risk_band) {
            (Some(score), Some(band)) => Some(Risk {
                score: u8::try_from(score).map_err(|e| bad("risk_score", e.to_string()))?,
                band: RiskBand::parse(&band).map_err(|e| bad("risk_band", e))?,
                factors: match r.risk_factors {
                    Some(text) => serde_json::from_str::<Vec<RiskFactor>>(&text)
                        .map_err(|e| bad("risk_factors", e.to_string()))?,
                    None => Vec::new(),
                },
            }),
            _ => None,
        };
        Ok(Client {
            client_id: ClientId::parse(&r.client_id).map_err(|e| bad("client_id", e))?,
            name: r.name,
            registration_number: r.registration_number,
            country: r.country,
            sector: r.sector,
            currency,
            status: ClientStatus::parse(&r.status).map_err(|e| bad("status", e))?,
            is_prospect: r.is_prospect,
            credit_limit: money(r.credit_limit_minor),
            state: LiveState {
                open_invoices: money(r.open_invoices_minor),
                reserved: money(now.reserved_minor),
                overdue: money(now.overdue_minor),
                oldest_overdue_due_on: now.oldest_overdue_due_on,
                invoices_paid: r.invoices_paid,
                paid_late: r.paid_late,
                total_days_late: r.total_days_late,
                insurance,
                external_score,
                alerts_negative: now.alerts_negative,
                alerts_positive: now.alerts_positive,
                legal_status: LegalStatus::parse(&r.legal_status)
                    .map_err(|e| bad("legal_status", e))?,
                risk,
            },
            created_at: r.created_at.0.and_utc(),
            updated_at: r.updated_at.0.and_utc(),
        })
    }
}

#[derive(Insertable, AsChangeset)]
#[diesel(table_name = clients)]
#[diesel(treat_none_as_null = true)]
struct ProfileChange<'a> {
    name: &'a str,
    registration_number: Option<&'a str>,
    country: &'a str,
    sector: Option<&'a str>,
    currency: &'a str,
    status: &'a str,
    credit_limit_minor: i64,
    is_prospect: bool,
    updated_at: NaiveDateTime,
}

impl<'a> ProfileChange<'a> {
    fn new(
        p: &'a ClientProfile,
        status: ClientStatus,
        is_prospect: bool,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            name: &p.name,
            registration_number: p.registration_number.as_deref(),
            country: p.country.code(),
            sector: p.sector.as_ref().map(|s| s.as_str()),
            currency: p.currency.code(),
            status: status.as_str(),
            credit_limit_minor: p.credit_limit.minor(),
            is_prospect,
            updated_at: at.naive_utc(),
        }
    }
}

pub fn find(conn: &mut AnyConnection, id: &ClientId) -> Result<Option<Client>, StoreError> {
    find_at(conn, id, Utc::now())
}

/// [`find`] as of `now` (what is reserved, overdue and recent then).
pub fn find_at(
    conn: &mut AnyConnection,
    id: &ClientId,
    now: DateTime<Utc>,
) -> Result<Option<Client>, StoreError> {
    Ok(find_stamped_at(conn, id, now)?.map(|(client, _)| client))
}

/// [`find_at`] with the [`Stamp`] of the read. The row's share of the version comes with the
/// row, before the read-time figures: a write between the two reads has bumped it past what
/// was read; the reservations' share (SQLite) comes in the same statement as the reserved
/// credit it counts the changes of.
pub fn find_stamped_at(
    conn: &mut AnyConnection,
    id: &ClientId,
    now: DateTime<Utc>,
) -> Result<Option<(Client, Stamp)>, StoreError> {
    let row = per_backend!(conn, |c| clients::table
        .find(id.as_str())
        .select(ClientRow::as_select())
        .get_result(c)
        .optional())
    .map_err(classify)?;
    let Some(row) = row else { return Ok(None) };
    let (read, changes_at, changes_apart) = live::for_client_until(conn, &row.client_id, now)?;
    let stamp = Stamp {
        version: row.version + changes_apart,
        changes_at: changes_at.map(|at| at.and_utc()),
    };
    Ok(Some((row.into_client_at(read, now)?, stamp)))
}

/// The client's version, its row locked until the transaction ends on PostgreSQL (SQLite's
/// write transaction already holds the database): what the decision writer compares with a
/// draft's [`Stamp`] instead of reading the client again. On SQLite it is the row's version
/// plus the changes of its reservations, invoices and sales alerts, counted apart in
/// `client_reserved` (migrations 000014 and 000015) so that a decision's reservation or an
/// event's invoice does not rewrite the client's row.
pub fn lock_version(conn: &mut AnyConnection, id: &ClientId) -> Result<Option<i64>, StoreError> {
    let by_id = || clients::table.find(id.as_str()).select(clients::version);
    match conn {
        AnyConnection::Postgres(pg) => by_id().for_update().get_result(pg).optional(),
        AnyConnection::Sqlite(lite) => {
            let changes = client_reserved::table
                .find(id.as_str())
                .select(client_reserved::changes);
            diesel::select((scalar(by_id()), scalar(changes)))
                .get_result::<(Option<i64>, Option<i64>)>(lite)
                .map(|(version, changes)| version.map(|v| v + changes.unwrap_or(0)))
        }
    }
    .map_err(classify)
}

/// The clients of a batch of events as their reviews read them, in three queries whatever
/// their number; those that do not exist are left out.
pub fn find_many_for_review(
    conn: &mut AnyConnection,
    ids: &[&str],
    unlogged: &[live::UnloggedAlert<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<(Client, live::Reviewing)>, StoreError> {
    let rows: Vec<ClientRow> = clients::table
        .filter(clients::client_id.eq_any(ids))
        .select(ClientRow::as_select())
        .load(conn)
        .map_err(classify)?;
    let mut reviewing = live::for_reviews(conn, ids, unlogged, now)?;
    rows.into_iter()
        .map(|r| {
            let extra = reviewing.remove(&r.client_id).unwrap_or_default();
            Ok((r.into_client(&extra.read)?, extra))
        })
        .collect()
}

fn with_read_time(
    conn: &mut AnyConnection,
    row: Option<ClientRow>,
    now: DateTime<Utc>,
) -> Result<Option<Client>, StoreError> {
    let Some(row) = row else { return Ok(None) };
    let read = live::for_client(conn, &row.client_id, now)?;
    row.into_client_at(read, now).map(Some)
}

/// Reads the client and, on PostgreSQL, locks its row until the transaction ends, so that
/// concurrent changes to one client queue (SQLite's write transaction already holds the
/// database lock).
pub fn find_locked(conn: &mut AnyConnection, id: &ClientId) -> Result<Option<Client>, StoreError> {
    // The select is typed per backend, so it is spelled once per arm.
    let by_id = || clients::table.find(id.as_str());
    let row = match conn {
        AnyConnection::Postgres(pg) => by_id()
            .select(ClientRow::as_select())
            .for_update()
            .get_result(pg)
            .optional(),
        AnyConnection::Sqlite(lite) => by_id()
            .select(ClientRow::as_select())
            .get_result(lite)
            .optional(),
    };
    let row = row.map_err(classify)?;
    with_read_time(conn, row, Utc::now())
}

/// Inserts a new client with an empty live state; a prospect is one created by a credit
/// request rather than by the ERP.
pub fn insert(
    conn: &mut AnyConnection,
    id: &ClientId,
    profile: &ClientProfile,
    status: ClientStatus,
    is_prospect: bool,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::insert_into(clients::table)
        .values((
            clients::client_id.eq(id.as_str()),
            ProfileChange::new(profile, status, is_prospect, at),
            clients::created_at.eq(at.naive_utc()),
        ))
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

/// Replaces the profile of an existing client; its live state is left as it is.
pub fn update_profile(
    conn: &mut AnyConnection,
    id: &ClientId,
    profile: &ClientProfile,
    status: ClientStatus,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::update(clients::table.find(id.as_str()))
        .set(ProfileChange::new(profile, status, false, at))
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

/// Filters and keyset position for listing clients newest first.
#[derive(Debug, Default)]
pub struct ClientQuery {
    pub band: Option<RiskBand>,
    pub status: Option<ClientStatus>,
    /// Last (created_at, client_id) of the previous page.
    pub after: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

pub fn list(conn: &mut AnyConnection, q: &ClientQuery) -> Result<Vec<Client>, StoreError> {
    list_at(conn, q, Utc::now())
}

/// [`list`] as of `now`.
pub fn list_at(
    conn: &mut AnyConnection,
    q: &ClientQuery,
    now: DateTime<Utc>,
) -> Result<Vec<Client>, StoreError> {
    let mut query = clients::table
        .select(ClientRow::as_select())
        .order((clients::created_at.desc(), clients::client_id.desc()))
        .limit(q.limit)
        .into_boxed();
    if let Some(band) = q.band {
        query = query.filter(clients::risk_band.eq(band.as_str()));
    }
    if let Some(status) = q.status {
        query = query.filter(clients::status.eq(status.as_str()));
    }
    if let Some((at, id)) = &q.after {
        let at = at.naive_utc();
        query = query.filter(
            clients::created_at.lt(at).or(clients::created_at
                .eq(at)
                .and(clients::client_id.lt(id.clone()))),
        );
    }
    let rows: Vec<ClientRow> = query.load(conn).map_err(classify)?;
    with_read_times(conn, rows, now)
}

fn with_read_times(
    conn: &mut AnyConnection,
    rows: Vec<ClientRow>,
    now: DateTime<Utc>,
) -> Result<Vec<Client>, StoreError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.client_id.as_str()).collect();
    let read = live::for_clients(conn, &ids, now)?;
    rows.into_iter()
        .map(|r| {
            let at = read.get(&r.client_id).cloned().unwrap_or_default();
            r.into_client_at(at, now)
        })
        .collect()
}

/// Every client in `client_id` order, a page at a time after `after` (portfolio scans).
pub fn page_by_id(
    conn: &mut AnyConnection,
    after: Option<&str>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Client>, StoreError> {
    let mut query = clients::table
        .select(ClientRow::as_select())
        .order(clients::client_id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(clients::client_id.gt(after.to_owned()));
    }
    let rows: Vec<ClientRow> = query.load(conn).map_err(classify)?;
    with_read_times(conn, rows, now)
}
