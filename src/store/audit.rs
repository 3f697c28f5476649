//! The audit tables: the chain head and the append-only records.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::prepared::{self, Update};
use super::schema::{audit_head, audit_records};
use super::{AnyConnection, StoreError, classify};

/// One stored audit record, as written.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_records, treat_none_as_default_value = false)]
pub struct AuditRow {
    pub sequence: i64,
    pub kind: String,
    pub subject: String,
    pub client_id: Option<String>,
    pub actor: String,
    pub recorded_at: NaiveDateTime,
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Locks the chain's head until the caller commits (its row on PostgreSQL; on SQLite the write
/// transaction already holds the database lock, so a read is enough) and reads the last
/// sequence and hash. Once per batch of decisions, so once per decision at low load: diesel
/// parses an UPDATE again at every execution, a plain read comes from its cache.
pub fn lock_head(conn: &mut AnyConnection) -> Result<(i64, String), StoreError> {
    match conn {
        AnyConnection::Sqlite(_) => head(conn),
        AnyConnection::Postgres(c) => {
            diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
                .set(audit_head::sequence.eq(audit_head::sequence))
                .returning((audit_head::sequence, audit_head::hash))
                .get_result(c)
                .map_err(classify)
        }
    }
}

/// Moves the head to the last record appended: an UPDATE prepared once per connection (see
/// `prepared`), not at every batch.
pub fn set_head(conn: &mut AnyConnection, sequence: i64, hash: &str) -> Result<(), StoreError> {
    struct SetHead;
    let values = (audit_head::sequence.eq(sequence), audit_head::hash.eq(hash));
    prepared::execute(
        conn,
        Update::<_, _, SetHead>::new("audit_head", values, audit_head::id.eq(1)),
    )
    .map_err(classify)?;
    Ok(())
}

/// Writes one record (the head is moved by [`set_head`]).
pub fn insert(conn: &mut AnyConnection, row: &AuditRow) -> Result<(), StoreError> {
    per_backend!(conn, |c| diesel::insert_into(audit_records::table)
        .values(row)
        .execute(c))
    .map_err(classify)?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, sequence: i64) -> Result<Option<AuditRow>, StoreError> {
    audit_records::table
        .find(sequence)
        .select(AuditRow::as_select())
        .get_result(conn)
        .optional()
        .map_err(classify)
}

/// The stored head (sequence, hash), read without locking.
pub fn head(conn: &mut AnyConnection) -> Result<(i64, String), StoreError> {
    audit_head::table
        .find(1)
        .select((audit_head::sequence, audit_head::hash))
        .get_result(conn)
        .map_err(classify)
}

/// Which records a listing or an export wants.
#[derive(Clone, Debug, Default)]
pub struct RecordFilter {
    pub kind: Option<String>,
    pub client_id: Option<String>,
    /// Recorded at or after.
    pub from: Option<NaiveDateTime>,
    /// Recorded before.
    pub to: Option<NaiveDateTime>,
}

/// One page of records matching `filter`, in sequence order (descending when `newest_first`),
/// strictly past `after` in that order and never above `upto`.
pub fn list(
    conn: &mut AnyConnection,
    filter: &RecordFilter,
    after: Option<i64>,
    upto: Option<i64>,
    newest_first: bool,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    let mut query = audit_records::table
        .select(AuditRow::as_select())
        .limit(limit)
        .into_boxed();
    query = if newest_first {
        query.order(audit_records::sequence.desc())
    } else {
        query.order(audit_records::sequence.asc())
    };
    if let Some(after) = after {
        query = if newest_first {
            query.filter(audit_records::sequence.lt(after))
        } else {
            query.filter(audit_records::sequence.gt(after))
        };
    }
    if let Some(upto) = upto {
        query = query.filter(audit_records::sequence.le(upto));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(audit_records::kind.eq(kind.clone()));
    }
    if let Some(client) = &filter.client_id {
        query = query.filter(audit_records::client_id.eq(client.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_records::recorded_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_records::recorded_at.lt(to));
    }
    query.load(conn).map_err(classify)
}
