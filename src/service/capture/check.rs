//! Re-running captured cases against a new version of one of their policies.

use std::collections::BTreeSet;

use super::{CapturedCase, Expected};
use crate::policy::testing::describe;
use crate::policy::{CompiledPolicy, PipelineResult, PolicyEngine, Stage};
use crate::service::audit::Recorded;
use crate::service::challenge::TermsSummary;
use crate::service::policies::PolicyRegistry;
use crate::service::{CaseFailure, ServiceError};
use crate::store::AnyConnection;
use crate::store::audit as audit_table;
use crate::store::captured as table;
use crate::store::policies as policy_table;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Effect, Outcome, StageTrace, Trigger};
    use crate::service::capture::StageEffects;

    fn deposit(percent: u32) -> Effect {
        Effect {
            policy: "deposit".into(),
            policy_version: percent,
            action: Action::RequireDeposit {
                percent: percent.into(),
            },
            code: "DEPOSIT_PROSPECT".into(),
            message: format!("{percent} % deposit"),
        }
    }

    fn terms(percent: u32) -> TermsSummary {
        TermsSummary {
            outcome: "conditional".into(),
            currency: "EUR".into(),
            approved_amount: 2000.into(),
            deposit_percent: percent.into(),
            deposit_amount: (20 * percent).into(),
            terms_days: Some(30),
        }
    }

    fn result(effects: Vec<Effect>) -> PipelineResult {
        PipelineResult {
            trigger: Trigger::CreditRequest,
            outcome: Outcome::Conditional,
            requested_amount: None,
            approved_amount: None,
            deposit_percent: 0.into(),
            deposit_amount: None,
            terms_days: None,
            limit: None,
            new_credit_limit: None,
            client_status: None,
            score: None,
            band: None,
            factors: Vec::new(),
            reasons: Vec::new(),
            trace: vec![StageTrace {
                policy: "deposit".into(),
                version: 3,
                sha256: String::new(),
                effects,
                logs: Vec::new(),
                operations: 0,
                duration_us: 0,
                error: None,
            }],
        }
    }

    #[test]
    fn tells_what_changed_and_ignores_messages_and_versions() {
        let expected = Expected {
            terms: terms(20),
            stages: vec![StageEffects {
                policy: "deposit".into(),
                version: 2,
                effects: vec![deposit(20)],
            }],
        };
        let mut reworded = deposit(20);
        reworded.message = "another wording".into();
        assert!(differences(&expected, &result(vec![reworded]), &terms(20)).is_empty());
        let changed = differences(&expected, &result(vec![deposit(25)]), &terms(25));
        assert_eq!(
            changed,
            [
                "deposit_percent: 20 → 25",
                "deposit_amount: 400 → 500",
                "stage deposit effects: [require_deposit DEPOSIT_PROSPECT (percent 20)] → \
                 [require_deposit DEPOSIT_PROSPECT (percent 25)]",
            ]
        );
    }
}
