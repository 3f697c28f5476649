//! The policy engine: sandboxed Rhai scripts that read a request or event and
//! the client's state, and act only through effect functions. This is the only
//! module that imports rhai; none of its types cross this API.
//!
//! # What a script sees
//! Read-only constants (assigning to them or calling a mutating method on them
//! is a runtime error):
//! - `request` (`credit_request` only) or `event` (`client_event` only), and
//!   `client`: the caller's JSON, money fields as Decimals (see [`PolicyInput`]);
//! - `decision`: what earlier stages decided, every key always present, `()`
//!   when unknown: `outcome`, `requested_amount`, `approved_amount`,
//!   `requested_terms_days`, `terms_days`, `deposit_percent`, `limit`,
//!   `credit_limit`, `client_status`, `score`, `band`, `factors`, `declined`,
//!   `referred`, `minor_digits`.
//!
//! Script functions (`fn`) cannot see these globals: pass what they need.
//! Reading a missing map property is an error (`"key" in client` tests for one).
//!
//! # Money
//! Literals with a point are exact decimals; INT and decimal mix in arithmetic
//! and comparisons. Helpers: `round_money(x, digits)` (half-up), `pct(x, p)`,
//! and rhai's `min`, `max`, `abs`, `round_half_up`. Beware `30 / 100` between
//! two INTs is integer division (0): write `30.0 / 100` or start from an amount.
//!
//! # Scorecards
//! `points_from(value, table)`, `points_under(value, table)` and
//! `factors.add_factor(code, points)`: see the `scorecard` module.
//!
//! # Effects
//! `set_score(score, band[, factors])`, `set_limit`, `cap_amount`,
//! `require_deposit`, `limit_terms`, `refer`, `decline`, `note`, and for
//! `client_event` `set_credit_limit`, `block_client`, `unblock_client`; all but
//! `set_score` take `(…, code, message)`. Codes are `UPPER_SNAKE`; amounts are
//! non-negative with at most the currency's minor digits; percents 0..=100;
//! days 0..=3650. A bad argument is a policy error, never a silent clamp.
//!
//! # How scripts run
//! Compiled to closures (module `compiled`) where every construct of the policy is
//! in the supported subset, on rhai's interpreter otherwise or when the
//! compiled code gives up; the results, errors and operation counts are the
//! same either way ([`Limits::compile`] turns compilation off).
//!
//! # Testing
//! [`testing`] runs a policy's cases (`NAME.tests.json` next to `NAME.rhai`):
//! the runner of `encours policies test`, of version submission and of
//! activation gating. The default policy set lives in `policies/`.

mod cache;
mod compiled;
mod compose;
mod effects;
mod engine;
mod fast_paths;
mod input;
mod money;
mod pipeline;
mod scorecard;
mod tables;
pub mod testing;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use cache::{CompileError, CompiledPolicy, MAX_SOURCE_BYTES, sha256_hex};
pub use compose::{ClientStatus, Outcome, PipelineResult, StageTrace};
pub use effects::{Action, Band, Effect, Factor, POLICY_ERROR, RISK_SCORE, Reason};
pub use engine::{Limits, StageError, StageErrorKind, StageRuns, stage_runs};
pub use input::{Baseline, InputError, JsonDoc, MONEY_FIELDS, PolicyInput};
pub use pipeline::Stage;
pub use testing::{
    CaseOutcome, CasesError, FileReport, LoadError, PolicyFile, TestCase, load_dir, parse_cases,
    run_cases, test_dir, test_file, validate_cases,
};

/// Which pipeline runs: one per trigger, each with its own ordered stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    CreditRequest,
    ClientEvent,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::CreditRequest => "credit_request",
            Trigger::ClientEvent => "client_event",
        }
    }

    /// The script variable holding what triggered the run.
    pub(crate) fn subject_name(self) -> &'static str {
        match self {
            Trigger::CreditRequest => "request",
            Trigger::ClientEvent => "event",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compiled policies kept per sha256 by a [`PolicyEngine`] unless told otherwise.
pub const DEFAULT_CACHE_CAPACITY: usize = 1_024;

/// The service's handle on the policy engine: the limits and the shared AST
/// cache. Cheap to clone and `Send + Sync`; the rhai engines themselves live
/// one per worker thread (a shared one would serialise threads on its string
/// interner), built on first use.
#[derive(Debug, Clone)]
pub struct PolicyEngine {
    limits: Limits,
    cache: Arc<cache::PolicyCache>,
}

impl Default for PolicyEngine {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl PolicyEngine {
    pub fn new(limits: Limits) -> Self {
        Self::with_cache_capacity(limits, DEFAULT_CACHE_CAPACITY)
    }

    pub fn with_cache_capacity(limits: Limits, capacity: usize) -> Self {
        Self {
            limits,
            cache: Arc::new(cache::PolicyCache::new(capacity)),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The same engine (limits, compiled policies) without the wall-clock cap, for runs that
    /// must give the same answer on any machine however busy: replays, backtests, shadow runs,
    /// test cases. The operations cap still stops a runaway script, deterministically.
    pub fn without_deadline(&self) -> Self {
        Self {
            limits: Limits {
                timeout_ms: 0,
                ..self.limits
            },
            cache: Arc::clone(&self.cache),
        }
    }

    /// Compiles `source`, or returns the cached policy with the same sha256.
    pub fn compile(&self, source: &str) -> Result<CompiledPolicy, CompileError> {
        engine::with_engine(&self.limits, |engine| {
            self.cache.get_or_compile(engine, source)
        })
    }

    /// The cached policy compiled from the source with this sha256, if any.
    pub fn cached(&self, sha256: &str) -> Option<CompiledPolicy> {
        self.cache.get(sha256)
    }

    /// Number of compiled policies held by the cache (for metrics).
    pub fn cached_count(&self) -> usize {
        self.cache.len()
    }

    /// Runs a pipeline. Infallible by design: any stage failure yields
    /// `review` with a `POLICY_ERROR` reason and the error in the trace.
    /// The input is shared, not copied: runs on one input cost the same.
    pub fn run(&self, stages: &[Stage], input: &PolicyInput) -> PipelineResult {
        engine::with_sandbox(&self.limits, |sandbox| {
            pipeline::run(sandbox, &self.limits, stages, input)
        })
    }
}

/// Compiles with the default limits, bypassing any cache (tests, tooling).
pub fn compile(source: &str) -> Result<CompiledPolicy, CompileError> {
    engine::with_engine(&Limits::default(), |engine| {
        cache::compile_with(engine, source)
    })
}
