//! Regression cases captured from real decisions. A logged decision becomes a case: its
//! recorded input, and as expected its terms and each stage's effects. Every later version of
//! a policy the decision involved re-runs it with that version in place of the recorded one;
//! a change refuses the version unless its submission lists the case as knowingly superseded.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::audit::Recorded;
use super::challenge::TermsSummary;
use super::evaluate::PolicyRef;
use super::policies::{PolicyRegistry, now};
use super::{CaseFailure, ServiceError};
use crate::audit::{self, Entry};
use crate::policy::testing::describe;
use crate::policy::{CompiledPolicy, Effect, PipelineResult, PolicyEngine, Stage, StageTrace};
use crate::store::audit as audit_table;
use crate::store::captured::{self as table, CapturedRow};
use crate::store::policies as policy_table;
use crate::store::{AnyConnection, Store, write_tx_retrying};

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

/// Re-runs every captured case involving `name` with this version in its place. Skipped: the
/// cases it supersedes, and those superseded by a version of `name` that was activated since
/// (that policy's behaviour on them was knowingly changed; other policies still run them).
pub(crate) fn check_version(
    conn: &mut AnyConnection,
    engine: &PolicyEngine,
    name: &str,
    number: i32,
    compiled: &CompiledPolicy,
    supersedes: &[String],
) -> Result<(), ServiceError> {
    let activated: BTreeSet<i32> = policy_table::activations(conn, name)?
        .into_iter()
        .map(|a| a.version)
        .collect();
    let mut skipped: BTreeSet<String> = supersedes.iter().cloned().collect();
    skipped.extend(
        table::superseded(conn, name)?
            .into_iter()
            .filter(|(v, _)| activated.contains(v))
            .map(|(_, id)| id),
    );
    let version = u32::try_from(number).unwrap_or_default();
    let stage = Stage::new(name, version, compiled.clone());
    // Only `stage` is used from it: stored versions compile through the shared engine cache.
    let registry = PolicyRegistry::new(engine.clone());
    let mut failures = Vec::new();
    for row in table::all(conn)? {
        if skipped.contains(&row.id) {
            continue;
        }
        let case = CapturedCase::of(row)?;
        if !case.policies.iter().any(|p| p.name == name) {
            continue;
        }
        let found = run_case(conn, &registry, &stage, &case)?;
        if !found.is_empty() {
            failures.push(CaseFailure {
                policy: name.to_owned(),
                case: case.id,
                failures: found,
            });
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::PolicyTestFailed(failures))
    }
}

/// What differs when `case` runs with `stage` in place of its recorded version, in words.
fn run_case(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    stage: &Stage,
    case: &CapturedCase,
) -> Result<Vec<String>, ServiceError> {
    let Some(record) = audit_table::get(conn, case.sequence)? else {
        return Ok(vec![format!("audit record {} is gone", case.sequence)]);
    };
    let rec = Recorded::parse(&record)?;
    let stages = match rec.stages(conn, registry, Some(stage))? {
        Ok(stages) => stages,
        Err(missing) => {
            return Ok(missing
                .into_iter()
                .map(|d| format!("recorded version not found: {}", d.path))
                .collect());
        }
    };
    let (result, terms) = rec.rerun(registry.engine(), &stages)?;
    let terms = TermsSummary::of(&terms).map_err(ServiceError::Internal)?;
    Ok(differences(&case.expected, &result, &terms))
}

/// Terms first, then each stage whose effects (action, code, parameters) changed.
fn differences(expected: &Expected, result: &PipelineResult, terms: &TermsSummary) -> Vec<String> {
    let mut out = Vec::new();
    let was = &expected.terms;
    let mut field = |name: &str, before: String, after: String| {
        if before != after {
            out.push(format!("{name}: {before} → {after}"));
        }
    };
    field("outcome", was.outcome.clone(), terms.outcome.clone());
    field(
        "approved_amount",
        was.approved_amount.to_string(),
        terms.approved_amount.to_string(),
    );
    field(
        "deposit_percent",
        was.deposit_percent.to_string(),
        terms.deposit_percent.to_string(),
    );
    field(
        "deposit_amount",
        was.deposit_amount.to_string(),
        terms.deposit_amount.to_string(),
    );
    let days = |d: Option<u32>| d.map_or("none".to_owned(), |d| d.to_string());
    field("terms_days", days(was.terms_days), days(terms.terms_days));
    for stage in &expected.stages {
        let trace = result.trace.iter().find(|t| t.policy == stage.policy);
        let before: Vec<String> = stage.effects.iter().map(describe).collect();
        let after: Vec<String> = trace
            .map(|t| t.effects.iter().map(describe).collect())
            .unwrap_or_default();
        if let Some(error) = trace.and_then(|t| t.error.as_ref()) {
            out.push(format!("stage {}: failed: {}", stage.policy, error.message));
        } else if before != after {
            out.push(format!(
                "stage {} effects: [{}] → [{}]",
                stage.policy,
                before.join("; "),
                after.join("; ")
            ));
        }
    }
    out
}
