//! Decisions as answered, and review resolutions.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{audit_records, decisions, review_resolutions};
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
#[derive(Debug)]
pub struct DecisionQuery {
    pub listing: Listing,
    pub outcome: Option<String>,
    /// Reviews only: `false` = still waiting, `true` = resolved.
    pub resolved: Option<bool>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
    pub limit: i64,
}

/// Which decisions, in which order, and where the page starts (strictly past the last item
/// of the previous page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Every decision, newest `decided_at` first; past the last item's time and id.
    All {
        after: Option<(NaiveDateTime, String)>,
    },
    /// One client's decisions, the last recorded first; recorded before the decision the
    /// last item's id names (the same cursor as the other list's).
    Client {
        client_id: String,
        after: Option<(NaiveDateTime, String)>,
    },
}

/// Audit kinds whose records are decisions (subject `decision:{decision_id}`).
const DECISION_KINDS: [&str; 2] = ["decision", "decision.resolution"];
/// Where the decision id starts in a decision record's subject (1-based, as SQL's `substr`).
const SUBJECT_ID_START: i32 = "decision:".len() as i32 + 1;

diesel::define_sql_function! {
    /// SQL's `substr(text, start)`, 1-based, on both backends.
    fn substr(text: diesel::sql_types::Text, start: diesel::sql_types::Integer) -> diesel::sql_types::Text;
}

/// The filters both lists share, on a boxed query that has `decisions` in it.
macro_rules! filtered {
    ($query:expr, $q:expr) => {{
        let mut query = $query;
        if let Some(outcome) = &$q.outcome {
            query = query.filter(decisions::outcome.eq(outcome.clone()));
        }
        if let Some(resolved) = $q.resolved {
            let resolved_ids = review_resolutions::table.select(review_resolutions::review_id);
            query = query.filter(decisions::outcome.eq("review"));
            query = if resolved {
                query.filter(decisions::decision_id.eq_any(resolved_ids))
            } else {
                query.filter(decisions::decision_id.ne_all(resolved_ids))
            };
        }
        if let Some(from) = $q.from {
            query = query.filter(decisions::decided_at.ge(from));
        }
        if let Some(to) = $q.to {
            query = query.filter(decisions::decided_at.lt(to));
        }
        query
    }};
}

/// A page of decisions, as `q.listing` says.
pub fn list(conn: &mut AnyConnection, q: &DecisionQuery) -> Result<Vec<DecisionRow>, StoreError> {
    match &q.listing {
        Listing::All { after } => list_all(conn, after.as_ref(), q),
        Listing::Client { client_id, after } => list_for_client(conn, client_id, after.as_ref(), q),
    }
}

fn list_all(
    conn: &mut AnyConnection,
    after: Option<&(NaiveDateTime, String)>,
    q: &DecisionQuery,
) -> Result<Vec<DecisionRow>, StoreError> {
    let mut query = filtered!(
        decisions::table
            .select(DecisionRow::as_select())
            .order((decisions::decided_at.desc(), decisions::decision_id.desc()))
            .limit(q.limit)
            .into_boxed(),
        q
    );
    if let Some((at, id)) = after {
        query = query.filter(
            decisions::decided_at.lt(*at).or(decisions::decided_at
                .eq(*at)
                .and(decisions::decision_id.lt(id.clone()))),
        );
    }
    query.load(conn).map_err(classify)
}

/// A client's decisions through the audit log's per-client index, whose records of the
/// decision kinds name each decision: the decisions table keeps no index of its own by
/// client, one b-tree page fewer written at a random place per decision (4.5 KB a decision
/// in the load benchmark, docs/benchmarks.md). Newest first is the order of recording, and a
/// page starts below the audit sequence of the decision the cursor names (a cursor naming no
/// decision, from another list, by its time alone).
fn list_for_client(
    conn: &mut AnyConnection,
    client: &str,
    after: Option<&(NaiveDateTime, String)>,
    q: &DecisionQuery,
) -> Result<Vec<DecisionRow>, StoreError> {
    let below = match after {
        Some((_, id)) => decisions::table
            .find(id)
            .select(decisions::audit_sequence)
            .get_result::<i64>(conn)
            .optional()
            .map_err(classify)?,
        None => None,
    };
    let mut query = filtered!(
        audit_records::table
            .inner_join(
                decisions::table.on(decisions::decision_id
                    .eq(substr(audit_records::subject, SUBJECT_ID_START))),
            )
            .filter(audit_records::client_id.eq(client.to_owned()))
            .filter(audit_records::kind.eq_any(DECISION_KINDS))
            .select(DecisionRow::as_select())
            .order(audit_records::sequence.desc())
            .limit(q.limit)
            .into_boxed(),
        q
    );
    match (below, after) {
        (Some(sequence), _) => query = query.filter(audit_records::sequence.lt(sequence)),
        (None, Some((at, _))) => query = query.filter(decisions::decided_at.lt(*at)),
        (None, None) => {}
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
