//! The pipeline runner: stages in order over one shared set of input maps.

use std::time::Instant;

use rhai::{Dynamic, Map, Scope};

use super::cache::CompiledPolicy;
use super::compiled::Memo;
use super::compose::{Composition, PipelineResult, StageTrace};
use super::effects::{Action, Effect};
use super::engine::{Frame, Limits, Sandbox, eval_stage};
use super::input::PolicyInput;

/// The script variable holding what earlier stages decided.
const DECISION: &str = "decision";
/// Scope entries reserved per run: the inputs and a policy's variables
/// (the default scoring policy declares about thirty).
const SCOPE_CAPACITY: usize = 48;

/// One stage of a pipeline: the active version of a named policy.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub version: u32,
    pub policy: CompiledPolicy,
}

impl Stage {
    pub fn new(name: impl Into<String>, version: u32, policy: CompiledPolicy) -> Self {
        Self {
            name: name.into(),
            version,
            policy,
        }
    }
}

/// Runs `stages` in order. Each stage sees `decision` as composed so far; a
/// failing stage applies none of its effects, stops the pipeline and turns the
/// outcome into `review` with a `POLICY_ERROR` reason. Never fails, never panics.
pub(crate) fn run(
    sandbox: &Sandbox,
    limits: &Limits,
    stages: &[Stage],
    input: &PolicyInput,
) -> PipelineResult {
    let mut composition = Composition::new(input.trigger, &input.baseline);
    if stages.is_empty() {
        // No policy is not a reason to approve.
        composition.fail(
            "",
            0,
            &format!("no policy stage is active for {}", input.trigger),
        );
        return composition.finish(Vec::new());
    }
    // Stages share the input through the scope, whose entries are constants
    // (rhai refuses to mutate them) and which is rewound after each stage so
    // that no script variable leaks into the next one. The subject and the
    // client are JSON there, converted where compiled code reads them, and
    // as a whole for a stage that runs on the interpreter (`eval_stage`).
    // `decision` is built once and then only updated where effects changed it.
    let mut scope = Scope::with_capacity(SCOPE_CAPACITY);
    scope.push_constant_dynamic(
        input.trigger.subject_name(),
        Dynamic::from(input.subject.clone()),
    );
    scope.push_constant_dynamic("client", Dynamic::from(input.client.clone()));
    scope.push_constant_dynamic(DECISION, Dynamic::from_map(composition.decision_map()));
    let base = scope.len();
    let mut trace = Vec::with_capacity(stages.len());
    // Values the stages read from `client` and the subject, which no stage can change.
    let mut memo = Memo::default();
    for stage in stages {
        scope.rewind(base);
        if composition.decision_is_stale() {
            update_decision(&mut scope, &mut composition);
        }
        let frame = Frame::new(
            input.trigger,
            input.baseline.minor_digits,
            limits.max_effects,
        );
        let started = Instant::now();
        let run = eval_stage(
            sandbox,
            limits,
            &mut scope,
            &stage.policy.ast,
            frame,
            started,
            &mut memo,
        );
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        // The last score's factors, when `set_score` handed them over as shown.
        let mut shown = None;
        let effects: Vec<Effect> = run
            .effects
            .into_iter()
            .map(|mut recorded| {
                if matches!(recorded.action, Action::SetScore { .. }) {
                    shown = Some(recorded.shown.take());
                }
                Effect::new(&stage.name, stage.version, recorded)
            })
            .collect();
        if run.error.is_none() {
            effects.iter().for_each(|e| composition.apply(e));
            if let Some(Some(factors)) = shown {
                composition.show_factors(factors);
            }
        }
        let failed = run.error.as_ref().map(|e| e.kind.describe());
        trace.push(StageTrace {
            policy: stage.name.clone(),
            version: stage.version,
            sha256: stage.policy.sha256().to_owned(),
            effects,
            logs: run.logs,
            operations: run.operations,
            duration_us,
            error: run.error,
        });
        if let Some(kind) = failed {
            composition.fail(&stage.name, stage.version, kind);
            break;
        }
    }
    composition.finish(trace)
}

/// Rewrites the keys of `decision` that effects changed, in place: the entry is
/// a constant, which scripts cannot change, and taking it out and pushing it back
/// marked every value in it read-only again (its factors' maps included: about 6 %
/// of a default run). The values written are read-only themselves, so that a
/// method on one (`decision.factors.push(…)`) is refused as on the rest.
fn update_decision(scope: &mut Scope<'static>, composition: &mut Composition) {
    // A closure that captured `decision` made the entry shared (rhai's way of
    // capturing), which `get_value_mut` refuses: then it is taken out, updated
    // and pushed back, as every time it once was.
    if scope.get(DECISION).is_some_and(|d| !d.is_shared())
        && let Some(map) = scope.get_value_mut::<Map>(DECISION)
    {
        composition.update_decision_map(map);
        return;
    }
    let map = match scope.remove::<Map>(DECISION) {
        Some(mut map) => {
            composition.update_decision_map(&mut map);
            map
        }
        // Not reachable (scripts cannot remove scope entries); rebuild to be safe.
        None => composition.decision_map(),
    };
    scope.push_constant_dynamic(DECISION, Dynamic::from_map(map));
}
