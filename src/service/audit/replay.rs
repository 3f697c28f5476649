//! Replaying a recorded decision: the recorded policy versions (found by name, version and
//! sha256) run again on the recorded input snapshot, and the result is compared with what was
//! answered. Nothing is written.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::diff::{Difference, differences};
use crate::domain::Currency;
use crate::policy::{Baseline, PipelineResult, PolicyEngine, PolicyInput, Stage};
use crate::service::ServiceError;
use crate::service::answer::{DecisionTerms, Standing};
use crate::service::evaluate::PolicyRef;
use crate::service::policies::PolicyRegistry;
use crate::store::AnyConnection;
use crate::store::audit::AuditRow;
use crate::store::policies as policy_table;

/// The kind of audit record a credit decision writes; the only kind that replays.
pub const DECISION_KIND: &str = "decision";

/// How a replay compares with the record.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replay {
    pub sequence: i64,
    pub decision_id: String,
    /// True when the replay gives exactly the recorded answer and pipeline result.
    pub identical: bool,
    /// What was recorded: `answer` (the terms answered) and `result` (the pipeline's result
    /// and trace, stage durations left out since they are not part of the decision).
    #[schema(value_type = Object)]
    pub original: Value,
    /// The same, recomputed; `null` when a recorded policy version cannot be found.
    #[schema(value_type = Object, nullable)]
    pub replayed: Value,
    /// Every place where the two differ (at most [`super::diff::MAX_DIFFERENCES`]).
    pub differences: Vec<Difference>,
}

/// A decision as its audit record keeps it: what the policies read, which versions ran, and
/// what was answered. What replay, backtests and captured test cases start from.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub sequence: i64,
    pub decision_id: String,
    /// The `request` object the policies read.
    pub request: Value,
    /// The `client` object the policies read.
    pub client: Value,
    pub policies: Vec<PolicyRef>,
    /// The pipeline's result as recorded.
    pub result: Value,
    /// The terms answered (a [`DecisionTerms`]).
    pub answer: Value,
}

#[derive(Deserialize)]
struct Snapshot {
    decision_id: String,
    request: RequestSnapshot,
    client: Value,
    policies: Vec<PolicyRef>,
    result: Value,
    answer: Value,
}

/// A [`Snapshot`] without its `result`, which serde then skips without building it.
#[derive(Deserialize)]
struct Inputs {
    decision_id: String,
    request: RequestSnapshot,
    client: Value,
    policies: Vec<PolicyRef>,
    answer: Value,
}

#[derive(Deserialize)]
struct RequestSnapshot {
    request: Value,
}

impl Recorded {
    /// Reads a `decision` record; another kind is refused (422), a payload that does not read
    /// is a conflict (409: the chain needs verifying).
    pub fn parse(row: &AuditRow) -> Result<Self, ServiceError> {
        only_decisions(row)?;
        Self::from_payload(row.sequence, &row.payload)
    }

    /// Reads the payload of the `decision` record `sequence` (as the decision writer handed it
    /// to the shadow runs, before anyone reads it back).
    pub fn from_payload(sequence: i64, payload: &str) -> Result<Self, ServiceError> {
        let snap: Snapshot =
            serde_json::from_str(payload).map_err(|e| unreadable(sequence, e.to_string()))?;
        Ok(Self {
            sequence,
            decision_id: snap.decision_id,
            request: snap.request.request,
            client: snap.client,
            policies: snap.policies,
            result: snap.result,
            answer: snap.answer,
        })
    }

    /// [`Self::parse`] without the recorded `result` (left `null`): the trace is most of a
    /// record, and a run that compares answers (a backtest) never reads it.
    pub fn parse_inputs(row: &AuditRow) -> Result<Self, ServiceError> {
        only_decisions(row)?;
        let snap: Inputs = serde_json::from_str(&row.payload)
            .map_err(|e| unreadable(row.sequence, e.to_string()))?;
        Ok(Self {
            sequence: row.sequence,
            decision_id: snap.decision_id,
            request: snap.request.request,
            client: snap.client,
            policies: snap.policies,
            result: Value::Null,
            answer: snap.answer,
        })
    }

    /// The stages that decided, from their stored versions (sha256 checked), with `instead`
    /// in place of the stage of the same name. A version that cannot be found, or whose
    /// sha256 changed, is returned as a difference instead.
    pub fn stages(
        &self,
        conn: &mut AnyConnection,
        registry: &PolicyRegistry,
        instead: Option<&Stage>,
    ) -> Result<Result<Vec<Stage>, Vec<Difference>>, ServiceError> {
        self.stages_with(instead, |p| {
            let version =
                i32::try_from(p.version).map_err(|e| unreadable(self.sequence, e.to_string()))?;
            Ok(match policy_table::version(conn, &p.name, version)? {
                Some(v) if v.sha256 == p.sha256 => Ok(registry.stage(&v)?),
                found => Err(found.map(|v| v.sha256)),
            })
        })
    }

    /// [`Self::stages`] with the versions taken from `find` (a cache, for runs over many
    /// records): the stage, or the sha256 found instead of the recorded one (`None`: absent).
    pub fn stages_with(
        &self,
        instead: Option<&Stage>,
        mut find: impl FnMut(&PolicyRef) -> Result<Result<Stage, Option<String>>, ServiceError>,
    ) -> Result<Result<Vec<Stage>, Vec<Difference>>, ServiceError> {
        let mut stages = Vec::with_capacity(self.policies.len());
        let mut missing = Vec::new();
        for p in &self.policies {
            if let Some(stage) = instead.filter(|s| s.name == p.name) {
                stages.push(stage.clone());
                continue;
            }
            match find(p)? {
                Ok(stage) => stages.push(stage),
                Err(found) => missing.push(Difference {
                    path: format!("policies.{}.v{}.sha256", p.name, p.version),
                    original: Value::String(p.sha256.clone()),
                    replayed: found.map_or(Value::Null, Value::String),
                }),
            }
        }
        Ok(if missing.is_empty() {
            Ok(stages)
        } else {
            Err(missing)
        })
    }

    /// Runs `stages` on the recorded input: the pipeline's result and the terms it gives.
    pub fn rerun(
        &self,
        engine: &PolicyEngine,
        stages: &[Stage],
    ) -> Result<(PipelineResult, DecisionTerms), ServiceError> {
        let (baseline, standing) =
            measures(&self.request, &self.client).map_err(|e| unreadable(self.sequence, e))?;
        let input = PolicyInput::credit_request(&self.request, &self.client, baseline)
            .map_err(|e| unreadable(self.sequence, e.to_string()))?;
        // A replay must not depend on how busy the machine is: no wall-clock cap.
        let result = engine.without_deadline().run(stages, &input);
        let policies = PolicyRef::of_stages(stages);
        let terms = DecisionTerms::compose(&result, &policies, &standing);
        Ok((result, terms))
    }
}

fn only_decisions(row: &AuditRow) -> Result<(), ServiceError> {
    if row.kind == DECISION_KIND {
        return Ok(());
    }
    Err(ServiceError::invalid(
        "sequence",
        format!(
            "record {} is a `{}` record; only `{DECISION_KIND}` records replay",
            row.sequence, row.kind
        ),
    ))
}

fn unreadable(sequence: i64, e: String) -> ServiceError {
    ServiceError::Conflict(format!(
        "the snapshot of record {sequence} cannot be read ({e}); verify the chain"
    ))
}

/// Replays the decision recorded in `row` with the versions it names.
pub fn replay(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    row: &AuditRow,
) -> Result<Replay, ServiceError> {
    let rec = Recorded::parse(row)?;
    let original = json!({
        "answer": rec.answer,
        "result": without_durations(rec.result.clone()),
    });
    let stages = match rec.stages(conn, registry, None)? {
        Ok(stages) => stages,
        Err(missing) => {
            return Ok(Replay {
                sequence: rec.sequence,
                decision_id: rec.decision_id,
                identical: false,
                original,
                replayed: Value::Null,
                differences: missing,
            });
        }
    };
    let (result, terms) = rec.rerun(registry.engine(), &stages)?;
    let to_value = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| ServiceError::Internal(format!("replay of record {}: {e}", rec.sequence)))
    };
    let replayed = json!({
        "answer": to_value(serde_json::to_value(&terms))?,
        "result": without_durations(to_value(serde_json::to_value(&result))?),
    });
    let differences = differences(&original, &replayed);
    Ok(Replay {
        sequence: rec.sequence,
        decision_id: rec.decision_id,
        identical: differences.is_empty(),
        original,
        replayed,
        differences,
    })
}

/// The pipeline's baseline and the client's standing, as the decision had them, from the
/// request and client snapshots.
fn measures(request: &Value, client: &Value) -> Result<(Baseline, Standing), String> {
    let text = |v: &Value, path: &[&str]| -> Result<String, String> {
        path.iter()
            .try_fold(v, |v, key| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("no `{}`", path.join(".")))
    };
    let decimal = |v: &Value, path: &[&str]| -> Result<Decimal, String> {
        let raw = text(v, path)?;
        raw.parse::<Decimal>()
            .map_err(|e| format!("`{}` = {raw}: {e}", path.join(".")))
    };
    let currency = Currency::parse(&text(request, &["currency"])?)?;
    let terms_days = request
        .get("requested_terms_days")
        .and_then(Value::as_u64)
        .and_then(|d| u32::try_from(d).ok())
        .ok_or("no `requested_terms_days`")?;
    let credit_limit = decimal(client, &["credit_limit"])?;
    let baseline = Baseline::credit_request(
        decimal(request, &["amount"])?,
        terms_days,
        Some(credit_limit),
        currency.minor_digits(),
    );
    let standing = Standing {
        currency,
        credit_limit,
        exposure: decimal(client, &["exposure", "total"])?,
    };
    Ok((baseline, standing))
}

/// `result` without each stage's wall-clock duration, which no replay reproduces.
fn without_durations(mut result: Value) -> Value {
    if let Some(trace) = result.get_mut("trace").and_then(Value::as_array_mut) {
        for stage in trace.iter_mut().filter_map(Value::as_object_mut) {
            stage.remove("duration_us");
        }
    }
    result
}
