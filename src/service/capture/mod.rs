//! Regression cases captured from real decisions. A logged decision becomes a case: its
//! recorded input, and as expected its terms and each stage's effects. Every later version of
//! a policy the decision involved re-runs it with that version in place of the recorded one;
//! a change refuses the version unless its submission lists the case as knowingly superseded.

mod check;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::ServiceError;
use super::audit::{DECISION_KIND, Recorded};
use super::challenge::TermsSummary;
use super::evaluate::PolicyRef;
use super::policies::now;
use crate::audit::{self, Entry};
use crate::policy::{Effect, StageTrace};
use crate::store::audit as audit_table;
use crate::store::captured::{self as table, CapturedRow};
use crate::store::{AnyConnection, Store, write_tx_retrying};

pub(crate) use check::check_version;

/// The audit kind of a capture.
pub const KIND: &str = "policy.case_captured";

/// The id of the case captured from audit record `sequence`: one case per record.
pub fn case_id(sequence: i64) -> String {
    format!("captured-{sequence}")
}

/// What one stage did in the recorded decision.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StageEffects {
    pub policy: String,
    pub version: u32,
    /// The stage's effects, as recorded in the trace.
    #[schema(value_type = Vec<Object>)]
    pub effects: Vec<Effect>,
}

/// What the decision must stay: its terms and every stage's effects (messages aside: a
/// rewording is not a change of decision).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Expected {
    pub terms: TermsSummary,
    pub stages: Vec<StageEffects>,
}

/// A captured regression case.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CapturedCase {
    /// `captured-{sequence}`: what a submission's `supersedes` names.
    pub id: String,
    /// The `decision` audit record whose snapshot is the case's input.
    pub sequence: i64,
    pub decision_id: String,
    /// The policy versions the decision involved; a new version of any of them runs the case.
    pub policies: Vec<PolicyRef>,
    pub expected: Expected,
    pub captured_by: String,
    pub captured_at: DateTime<Utc>,
    /// The `policy.case_captured` audit record.
    pub audit_sequence: i64,
}

impl CapturedCase {
    fn of(row: CapturedRow) -> Result<Self, ServiceError> {
        let corrupt =
            |e: serde_json::Error| ServiceError::Internal(format!("captured case {}: {e}", row.id));
        Ok(Self {
            policies: serde_json::from_str(&row.policies).map_err(corrupt)?,
            expected: serde_json::from_str(&row.expected).map_err(corrupt)?,
            id: row.id,
            sequence: row.sequence,
            decision_id: row.decision_id,
            captured_by: row.captured_by,
            captured_at: row.captured_at.and_utc(),
            audit_sequence: row.audit_sequence,
        })
    }
}

/// Captures the decision of audit record `sequence`; `false` when it was captured already
/// (the existing case is returned unchanged).
pub async fn capture(
    store: &Store,
    sequence: i64,
    actor: String,
) -> Result<(CapturedCase, bool), ServiceError> {
    store
        .run(move |conn| write_tx_retrying(conn, |conn| capture_in(conn, sequence, &actor)))
        .await
}

fn capture_in(
    conn: &mut AnyConnection,
    sequence: i64,
    actor: &str,
) -> Result<(CapturedCase, bool), ServiceError> {
    let id = case_id(sequence);
    if let Some(row) = table::get(conn, &id)? {
        return Ok((CapturedCase::of(row)?, false));
    }
    let record = audit_table::get(conn, sequence)?.ok_or_else(|| ServiceError::NotFound {
        what: format!("audit record {sequence}"),
    })?;
    if record.kind != DECISION_KIND {
        return Err(ServiceError::invalid(
            "sequence",
            format!(
                "record {sequence} is a `{}` record; only `{DECISION_KIND}` records are captured",
                record.kind
            ),
        ));
    }
    let rec = Recorded::parse(&record)?;
    let expected = expected_of(&rec)?;
    let to_text = |v: Result<String, serde_json::Error>| {
        v.map_err(|e| ServiceError::Internal(format!("captured case {id}: {e}")))
    };
    let audit = audit::append(
        conn,
        Entry {
            kind: KIND,
            subject: format!("case:{id}"),
            client_id: record.client_id.clone(),
            actor: actor.to_owned(),
            payload: json!({
                "case": id,
                "sequence": sequence,
                "decision_id": rec.decision_id,
                "policies": rec.policies,
                "expected": expected,
            }),
        },
    )?;
    let row = CapturedRow {
        id: id.clone(),
        sequence,
        decision_id: rec.decision_id.clone(),
        policies: to_text(serde_json::to_string(&rec.policies))?,
        expected: to_text(serde_json::to_string(&expected))?,
        captured_by: actor.to_owned(),
        captured_at: now(),
        audit_sequence: audit.sequence,
    };
    table::insert(conn, &row)?;
    Ok((CapturedCase::of(row)?, true))
}

/// The recorded terms and per-stage effects of a decision.
fn expected_of(rec: &Recorded) -> Result<Expected, ServiceError> {
    let unreadable = |e: String| {
        ServiceError::Conflict(format!(
            "the decision of record {} cannot be read ({e}); verify the chain",
            rec.sequence
        ))
    };
    let terms = TermsSummary::of_answer(&rec.answer).map_err(unreadable)?;
    let trace = rec.result.get("trace").cloned().unwrap_or(Value::Null);
    let trace: Vec<StageTrace> =
        serde_json::from_value(trace).map_err(|e| unreadable(e.to_string()))?;
    let stages = trace
        .into_iter()
        .map(|t| StageEffects {
            policy: t.policy,
            version: t.version,
            effects: t.effects,
        })
        .collect();
    Ok(Expected { terms, stages })
}

/// The cases a version of `policy` knowingly supersedes, as its submission listed them.
pub(crate) fn superseded_by(
    conn: &mut AnyConnection,
    policy: &str,
    version: i32,
) -> Result<Vec<String>, ServiceError> {
    Ok(table::superseded(conn, policy)?
        .into_iter()
        .filter(|(v, _)| *v == version)
        .map(|(_, id)| id)
        .collect())
}

/// Refuses a `supersedes` list naming a case that does not exist or does not involve `policy`.
pub(crate) fn check_supersedes(
    conn: &mut AnyConnection,
    policy: &str,
    ids: &[String],
) -> Result<(), ServiceError> {
    for id in ids {
        let involves = match table::get(conn, id)? {
            Some(row) => CapturedCase::of(row)?
                .policies
                .iter()
                .any(|p| p.name == policy),
            None => false,
        };
        if !involves {
            return Err(ServiceError::invalid(
                "supersedes",
                format!("`{id}` is not a captured case involving `{policy}`"),
            ));
        }
    }
    Ok(())
}
