//! Captured regression cases and the versions that knowingly supersede them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{captured_case_supersessions as supersessions, captured_cases};
use super::{AnyConnection, StoreError, classify};

/// One captured case; `policies` and `expected` are JSON.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = captured_cases)]
pub struct CapturedRow {
    pub id: String,
    pub sequence: i64,
    pub decision_id: String,
    pub policies: String,
    pub expected: String,
    pub captured_by: String,
    pub captured_at: NaiveDateTime,
    pub audit_sequence: i64,
}

pub fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<CapturedRow>, StoreError> {
    captured_cases::table
        .find(id)
        .select(CapturedRow::as_select())
        .get_result(conn)
        .optional()
        .map_err(classify)
}

pub fn insert(conn: &mut AnyConnection, row: &CapturedRow) -> Result<(), StoreError> {
    diesel::insert_into(captured_cases::table)
        .values(row)
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

/// Every case, oldest first. A regression suite is a handful to a few hundred cases, so the
/// caller filters by policy in memory rather than keeping a join table.
pub fn all(conn: &mut AnyConnection) -> Result<Vec<CapturedRow>, StoreError> {
    captured_cases::table
        .order(captured_cases::sequence.asc())
        .select(CapturedRow::as_select())
        .load(conn)
        .map_err(classify)
}

/// Records that `version` of `policy` knowingly changes these cases.
pub fn supersede(
    conn: &mut AnyConnection,
    policy: &str,
    version: i32,
    case_ids: &[String],
) -> Result<(), StoreError> {
    for id in case_ids {
        diesel::insert_into(supersessions::table)
            .values((
                supersessions::policy.eq(policy),
                supersessions::version.eq(version),
                supersessions::case_id.eq(id),
            ))
            .execute(conn)
            .map_err(classify)?;
    }
    Ok(())
}

/// (version, case id) of every supersession recorded by versions of `policy`.
pub fn superseded(
    conn: &mut AnyConnection,
    policy: &str,
) -> Result<Vec<(i32, String)>, StoreError> {
    supersessions::table
        .filter(supersessions::policy.eq(policy))
        .select((supersessions::version, supersessions::case_id))
        .load(conn)
        .map_err(classify)
}
