//! Decisions as answered, and review resolutions.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{decisions, review_resolutions};
use super::{AnyConnection, StoreError, classify};

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = decisions, treat_none_as_default_value = false)]
pub struct DecisionRow {
    pub decision_id: String,
    pub request_id: String,
    pub request_sha256: String,
    pub client_id: String,
    pub outcome: String,
    pub channel: String,
    pub approved_minor: i64,
    pub decided_at: NaiveDateTime,
    pub resolves: Option<String>,
    pub actor: String,
    /// The JSON answer exactly as first returned.
    pub answer: String,
    pub audit_sequence: i64,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = review_resolutions)]
pub struct ResolutionRow {
    pub review_id: String,
    pub resolution_id: String,
    pub resolved_by: String,
    pub resolved_at: NaiveDateTime,
}

pub fn insert(conn: &mut AnyConnection, row: &DecisionRow) -> Result<(), StoreError> {
    per_backend!(conn, |c| diesel::insert_into(decisions::table)
        .values(row)
        .execute(c))
    .map_err(classify)?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, decision_id: &str) -> Result<Option<DecisionRow>, StoreError> {
    decisions::table
        .find(decision_id)
        .select(DecisionRow::as_select())
        .get_result(conn)
        .optional()
        .map_err(classify)
}

pub fn by_request_id(
    conn: &mut AnyConnection,
    request_id: &str,
) -> Result<Option<DecisionRow>, StoreError> {
    per_backend!(conn, |c| decisions::table
        .filter(decisions::request_id.eq(request_id))
        .select(DecisionRow::as_select())
        .get_result(c)
        .optional())
    .map_err(classify)
}

/// Records that `row.review_id` is resolved; fails with a conflict if it already was.
pub fn insert_resolution(conn: &mut AnyConnection, row: &ResolutionRow) -> Result<(), StoreError> {
    diesel::insert_into(review_resolutions::table)
        .values(row)
        .execute(conn)
        .map_err(classify)?;
    Ok(())
}

/// Review id → its resolution, for the given decisions.
pub fn resolutions_for(
    conn: &mut AnyConnection,
    review_ids: &[&str],
) -> Result<HashMap<String, ResolutionRow>, StoreError> {
    let rows: Vec<ResolutionRow> = review_resolutions::table
        .filter(review_resolutions::review_id.eq_any(review_ids))
        .select(ResolutionRow::as_select())
        .load(conn)
        .map_err(classify)?;
    Ok(rows.into_iter().map(|r| (r.review_id.clone(), r)).collect())
}

/// Filters and keyset position for listing decisions newest first.
#[derive(Debug, Default)]
pub struct DecisionQuery {
    pub client_id: Option<String>,
    pub outcome: Option<String>,
    /// Reviews only: `false` = still waiting, `true` = resolved.
    pub resolved: Option<bool>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
    pub after: Option<(NaiveDateTime, String)>,
    pub limit: i64,
}

pub fn list(conn: &mut AnyConnection, q: &DecisionQuery) -> Result<Vec<DecisionRow>, StoreError> {
    let mut query = decisions::table
        .select(DecisionRow::as_select())
        .order((decisions::decided_at.desc(), decisions::decision_id.desc()))
        .limit(q.limit)
        .into_boxed();
    if let Some(client) = &q.client_id {
        query = query.filter(decisions::client_id.eq(client.clone()));
    }
    if let Some(outcome) = &q.outcome {
        query = query.filter(decisions::outcome.eq(outcome.clone()));
    }
    if let Some(resolved) = q.resolved {
        let resolved_ids = review_resolutions::table.select(review_resolutions::review_id);
        query = query.filter(decisions::outcome.eq("review"));
        query = if resolved {
            query.filter(decisions::decision_id.eq_any(resolved_ids))
        } else {
            query.filter(decisions::decision_id.ne_all(resolved_ids))
        };
    }
    if let Some(from) = q.from {
        query = query.filter(decisions::decided_at.ge(from));
    }
    if let Some(to) = q.to {
        query = query.filter(decisions::decided_at.lt(to));
    }
    if let Some((at, id)) = &q.after {
        query = query.filter(
            decisions::decided_at.lt(*at).or(decisions::decided_at
                .eq(*at)
                .and(decisions::decision_id.lt(id.clone()))),
        );
    }
    query.load(conn).map_err(classify)
}

/// (outcome, channel) → number of decisions made since `since`.
pub fn counts_since(
    conn: &mut AnyConnection,
    since: NaiveDateTime,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    decisions::table
        .filter(decisions::decided_at.ge(since))
        .group_by((decisions::outcome, decisions::channel))
        .select((
            decisions::outcome,
            decisions::channel,
            diesel::dsl::count_star(),
        ))
        .order((decisions::outcome.asc(), decisions::channel.asc()))
        .load(conn)
        .map_err(classify)
}
