//! The audit tables: the chain head and the append-only records.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{audit_head, audit_records};
use super::{AnyConnection, StoreError, classify};

/// One stored audit record, as written.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_records)]
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
/// transaction already holds the database lock) and reads the last sequence and hash.
pub fn lock_head(conn: &mut AnyConnection) -> Result<(i64, String), StoreError> {
    diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set(audit_head::sequence.eq(audit_head::sequence))
        .returning((audit_head::sequence, audit_head::hash))
        .get_result(conn)
        .map_err(classify)
}

/// Moves the head to the last record appended.
pub fn set_head(conn: &mut AnyConnection, sequence: i64, hash: &str) -> Result<(), StoreError> {
    diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set((audit_head::sequence.eq(sequence), audit_head::hash.eq(hash)))
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

/// Writes one record (the head is moved by [`set_head`]).
pub fn insert(conn: &mut AnyConnection, row: &AuditRow) -> Result<(), StoreError> {
    diesel::insert_into(audit_records::table)
        .values(row)
        .execute(conn)
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

/// Records after `after` in sequence order, at most `limit`: the unit of streaming reads.
pub fn page_after(
    conn: &mut AnyConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    audit_records::table
        .filter(audit_records::sequence.gt(after))
        .order(audit_records::sequence.asc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
        .map_err(classify)
}

/// Records about one client, newest first (used by tests and the client history).
pub fn for_client(
    conn: &mut AnyConnection,
    client_id: &str,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    audit_records::table
        .filter(audit_records::client_id.eq(client_id))
        .order(audit_records::sequence.desc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
        .map_err(classify)
}
