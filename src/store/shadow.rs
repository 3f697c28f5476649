//! Shadow runs and what their challengers gave on each shadowed decision.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{shadow_results, shadow_runs};
use super::{AnyConnection, StoreError, classify};

/// A run, named by the sequence of the audit record that started it.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = shadow_runs)]
pub struct RunRow {
    pub started_sequence: i64,
    pub policy: String,
    pub version: i32,
    /// An exact decimal in (0, 1].
    pub sample_rate: String,
    pub started_at: NaiveDateTime,
    pub started_by: String,
    pub stopped_sequence: Option<i64>,
    pub stopped_at: Option<NaiveDateTime>,
    pub stopped_by: Option<String>,
    pub skipped: i64,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = shadow_results, treat_none_as_default_value = false)]
pub struct ResultRow {
    pub run: i64,
    /// The decision's audit record.
    pub sequence: i64,
    pub decision_id: String,
    pub client_id: String,
    pub changed: bool,
    /// `TermsSummary` JSON.
    pub recorded: String,
    pub challenger: String,
}

pub fn insert_run(conn: &mut AnyConnection, row: &RunRow) -> Result<(), StoreError> {
    diesel::insert_into(shadow_runs::table)
        .values(row)
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

/// Every run not stopped, oldest first.
pub fn active(conn: &mut AnyConnection) -> Result<Vec<RunRow>, StoreError> {
    shadow_runs::table
        .filter(shadow_runs::stopped_sequence.is_null())
        .order(shadow_runs::started_sequence.asc())
        .select(RunRow::as_select())
        .load(conn)
        .map_err(classify)
}

/// The run of this policy not stopped, if any.
pub fn active_for(conn: &mut AnyConnection, policy: &str) -> Result<Option<RunRow>, StoreError> {
    shadow_runs::table
        .filter(shadow_runs::policy.eq(policy))
        .filter(shadow_runs::stopped_sequence.is_null())
        .select(RunRow::as_select())
        .get_result(conn)
        .optional()
        .map_err(classify)
}

/// The latest run of this version, stopped or not.
pub fn latest(
    conn: &mut AnyConnection,
    policy: &str,
    version: i32,
) -> Result<Option<RunRow>, StoreError> {
    shadow_runs::table
        .filter(shadow_runs::policy.eq(policy))
        .filter(shadow_runs::version.eq(version))
        .order(shadow_runs::started_sequence.desc())
        .select(RunRow::as_select())
        .first(conn)
        .optional()
        .map_err(classify)
}

pub fn stop(
    conn: &mut AnyConnection,
    run: i64,
    sequence: i64,
    at: NaiveDateTime,
    by: &str,
) -> Result<(), StoreError> {
    diesel::update(shadow_runs::table.find(run))
        .set((
            shadow_runs::stopped_sequence.eq(Some(sequence)),
            shadow_runs::stopped_at.eq(Some(at)),
            shadow_runs::stopped_by.eq(Some(by)),
        ))
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

pub fn add_skipped(conn: &mut AnyConnection, run: i64, count: i64) -> Result<(), StoreError> {
    diesel::update(shadow_runs::table.find(run))
        .set(shadow_runs::skipped.eq(shadow_runs::skipped + count))
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

pub fn insert_results(conn: &mut AnyConnection, rows: &[ResultRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(1_000) {
        per_backend!(conn, |c| diesel::insert_into(shadow_results::table)
            .values(chunk)
            .execute(c))
        .map_err(classify)?;
    }
    Ok(())
}

/// A run's results for decisions recorded before `before` (its stop), in decision order.
pub fn results(
    conn: &mut AnyConnection,
    run: i64,
    before: Option<i64>,
) -> Result<Vec<ResultRow>, StoreError> {
    let mut query = shadow_results::table
        .filter(shadow_results::run.eq(run))
        .order(shadow_results::sequence.asc())
        .select(ResultRow::as_select())
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(shadow_results::sequence.lt(before));
    }
    query.load(conn).map_err(classify)
}
