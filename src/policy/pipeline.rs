//! The pipeline runner: stages in order over one shared set of input maps.

use std::time::Instant;

use rhai::{Engine, Scope};

use super::cache::CompiledPolicy;
use super::compose::{Composition, PipelineResult, StageTrace};
use super::effects::Effect;
use super::engine::{Frame, Limits, eval_stage};
use super::input::PolicyInput;

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
    engine: &Engine,
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
    // One clone of the input per run; stages share it through the scope, whose
    // entries are constants (rhai refuses to mutate them) and which is rewound
    // after each stage so that no script variable leaks into the next one.
    let mut scope = Scope::new();
    scope.push_constant_dynamic(input.trigger.subject_name(), input.subject.clone());
    scope.push_constant_dynamic("client", input.client.clone());
    let base = scope.len();
    let mut trace = Vec::with_capacity(stages.len());
    for stage in stages {
        scope.rewind(base);
        scope.push_constant_dynamic("decision", composition.decision_map());
        let frame = Frame::new(
            input.trigger,
            input.baseline.minor_digits,
            limits.max_effects,
        );
        let started = Instant::now();
        let run = eval_stage(engine, limits, &mut scope, &stage.policy.ast, frame);
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let effects: Vec<Effect> = run
            .effects
            .into_iter()
            .map(|recorded| Effect::new(&stage.name, stage.version, recorded))
            .collect();
        if run.error.is_none() {
            effects.iter().for_each(|e| composition.apply(e));
        }
        let failed = run.error.as_ref().map(|e| e.kind.describe());
        trace.push(StageTrace {
            policy: stage.name.clone(),
            version: stage.version,
            sha256: stage.policy.sha256().to_owned(),
            effects,
            logs: run.logs,
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
