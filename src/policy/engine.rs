//! The sandboxed rhai engine: its construction and limits, one engine per
//! worker thread, and the per-evaluation frame that effect functions write to.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage, BasicMapPackage,
    BasicMathPackage, BasicStringPackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{
    AST, Caches, Dynamic, Engine, EvalAltResult, GlobalRuntimeState, Module, Position, Scope,
};
use serde::{Deserialize, Serialize};

use super::Trigger;
use super::compiled::{Memo, Variants};
use super::effects::{self, Recorded};
use super::fast_paths;
use super::input::JsonInput;
use super::money;
use super::scorecard;
use super::tables;

/// Sandbox limits. One engine is built per distinct value of this struct and
/// per thread, so it is meant to come from configuration and stay fixed.
/// As in rhai, 0 lifts a limit (except `max_call_levels`, where 0 forbids calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Operations per stage evaluation (rhai counts statements, expressions, calls).
    pub max_operations: u64,
    /// Nested script function calls.
    pub max_call_levels: usize,
    /// Expression nesting at top level; bounds parser recursion too.
    pub max_expr_depth: usize,
    /// Expression nesting inside script functions.
    pub max_function_expr_depth: usize,
    /// Bytes in any one string.
    pub max_string_size: usize,
    /// Elements in any one array.
    pub max_array_size: usize,
    /// Entries in any one object map.
    pub max_map_size: usize,
    /// Effects one stage may record; bounds the memory a loop of `note()` can take.
    pub max_effects: usize,
    /// Wall-clock cap per stage evaluation, in milliseconds.
    pub timeout_ms: u64,
    /// Run policies compiled to closures where they can be (see `compiled`),
    /// the interpreter otherwise; off, always the interpreter. Same results.
    pub compile: bool,
}

/// The defaults bound what a runaway stage costs, not what a policy may do: the shipped stages
/// use 27 to 300 operations and arrays of a dozen entries. Growing an array or map re-measures
/// it at each step (rhai), so its cost grows with the square of its size; with these bounds a
/// looping, recursing or allocating stage stops in about 2 ms of CPU, and the wall-clock cap
/// bounds the rest (see docs/reliability.md, the hostile-policy drill).
impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: 50_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_size: 16 * 1024,
            max_array_size: 1_000,
            max_map_size: 1_000,
            max_effects: 256,
            timeout_ms: 50,
            compile: true,
        }
    }
}

impl Limits {
    /// The deadline of an evaluation started at `started`; `None` when uncapped.
    fn deadline(&self, started: Instant) -> Option<Instant> {
        if self.timeout_ms == 0 {
            return None;
        }
        started.checked_add(Duration::from_millis(self.timeout_ms))
    }
}

/// The clock is read every this many operations: often enough to stop a
/// script within microseconds of its deadline, rarely enough to cost nothing.
pub(crate) const CLOCK_EVERY_OPS: u64 = 64;
/// Lines of `print`/`debug` output kept per stage, and characters per line.
const MAX_LOG_LINES: usize = 64;
const MAX_LOG_CHARS: usize = 1_000;
/// Engines kept per thread (one per distinct `Limits`; normally exactly one).
const MAX_ENGINES_PER_THREAD: usize = 4;
/// Policies whose resolution caches and compiled forms a thread keeps per
/// engine; past this, all are dropped and rebuilt as policies run again.
const MAX_CACHED_POLICIES: usize = 256;

/// A thread's sandboxed engine, with what it learnt running policies.
pub(crate) struct Sandbox {
    pub engine: Engine,
    /// Per policy, keyed by its AST's address (the entry holds the AST so the
    /// address is not reused); all dropped past `MAX_CACHED_POLICIES`. Looked up
    /// three times a stage: hashed with ahash, not SipHash (addresses, not input).
    policies: RefCell<HashMap<usize, Learnt, ahash::RandomState>>,
}

/// What a thread learnt running one policy.
struct Learnt {
    ast: Arc<AST>,
    /// rhai resolves each call (name and argument types to a function, through
    /// the script's and the engine's modules) and caches the answer for one
    /// evaluation only; kept here, the answers serve every later evaluation of
    /// the policy on this thread (about 5 % of a pipeline run), and the
    /// compiled code calls through them. They depend only on the engine and
    /// the AST, both fixed. `None` while an evaluation holds them, or after
    /// one that failed (an interrupted call may leave them half-written).
    caches: Option<Caches>,
    /// The policy compiled to closures, once per set of input names (closures
    /// are not `Send`, hence per thread).
    variants: Variants,
}

impl Sandbox {
    fn new(limits: &Limits) -> Self {
        Self {
            engine: build(limits),
            policies: RefCell::new(HashMap::default()),
        }
    }

    /// Runs `f` on what this thread learnt of `ast`, making room for it.
    fn learnt<R>(&self, ast: &Arc<AST>, f: impl FnOnce(&mut Learnt) -> R) -> Option<R> {
        let key = Arc::as_ptr(ast) as usize;
        let mut policies = self.policies.try_borrow_mut().ok()?;
        if policies.len() >= MAX_CACHED_POLICIES && !policies.contains_key(&key) {
            policies.clear();
        }
        let learnt = policies.entry(key).or_insert_with(|| Learnt {
            ast: Arc::clone(ast),
            caches: None,
            variants: Variants::default(),
        });
        Some(f(learnt))
    }

    fn take_caches(&self, ast: &Arc<AST>) -> Caches {
        self.learnt(ast, |learnt| learnt.caches.take())
            .flatten()
            .unwrap_or_default()
    }

    fn keep_caches(&self, ast: &Arc<AST>, caches: Caches) {
        self.learnt(ast, |learnt| learnt.caches = Some(caches));
    }
}

/// What the effect functions of the running evaluation need and fill.
#[derive(Debug)]
pub(crate) struct Frame {
    pub trigger: Trigger,
    pub minor_digits: u32,
    pub max_effects: usize,
    pub effects: Vec<Recorded>,
    pub logs: Vec<String>,
}

impl Frame {
    pub(crate) fn new(trigger: Trigger, minor_digits: u32, max_effects: usize) -> Self {
        Self {
            trigger,
            minor_digits,
            max_effects,
            effects: Vec::new(),
            logs: Vec::new(),
        }
    }
}

thread_local! {
    static ENGINES: RefCell<Vec<(Limits, Rc<Sandbox>)>> = const { RefCell::new(Vec::new()) };
    // Evaluation is synchronous on one thread, so per-thread state is per-evaluation
    // state; it also stays correct if an Engine were ever shared between threads.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static FRAME: RefCell<Option<Frame>> = const { RefCell::new(None) };
}

/// Stages run since the process started, by how: `/metrics` shows them, so that a policy
/// version whose compiled form keeps giving up (and runs at the interpreter's speed) shows.
static STAGES_COMPILED: AtomicU64 = AtomicU64::new(0);
static STAGES_INTERPRETED: AtomicU64 = AtomicU64::new(0);

/// Policy stages run since the process started: compiled to the end, and on rhai's
/// interpreter (compiling off, a construct the compiler refuses, or a compiled run that gave
/// up part-way and ran again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageRuns {
    pub compiled: u64,
    pub interpreted: u64,
}

pub fn stage_runs() -> StageRuns {
    StageRuns {
        compiled: STAGES_COMPILED.load(Ordering::Relaxed),
        interpreted: STAGES_INTERPRETED.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
thread_local! {
    static COMPILED_RUNS: Cell<u64> = const { Cell::new(0) };
}

/// Stages this thread ran compiled to the end (tests check the compiled
/// path is taken, not only that results agree).
#[cfg(test)]
pub(crate) fn compiled_runs() -> u64 {
    COMPILED_RUNS.try_with(Cell::get).unwrap_or(0)
}

/// Builds a sandboxed engine. `new_raw` plus the standard packages except
/// `LanguageCorePackage` (it holds `sleep`, which blocks the thread beyond the
/// reach of the clock, and `exit`/`parse_json`/tags) and `BasicTimePackage`
/// (`timestamp()` would make decisions impossible to replay).
pub(crate) fn build(limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(library().into());
    engine.disable_symbol("eval");
    engine
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size);
    engine.on_print(|text| log_line(text.to_owned()));
    engine.on_debug(|text, _source, pos| log_line(format!("{pos}: {text}")));
    // rhai calls this at every operation (about 12 instructions each, 2 % of
    // a default run); without a wall-clock cap (replays, backtests, shadow
    // runs) it would only ever answer "go on". rhai counts operations (the
    // trace's `operations`) only for its own limit or for this callback, so
    // it stays when that limit is lifted.
    if limits.timeout_ms > 0 || limits.max_operations == 0 {
        engine.on_progress(check_deadline);
    }
    money::register(&mut engine);
    scorecard::register(&mut engine);
    tables::register(&mut engine);
    fast_paths::register(&mut engine);
    effects::register(&mut engine);
    engine
}

/// The standard packages scripts may use, in one module, built as rhai builds
/// its own `StandardPackage`. rhai looks a call up in every global module in
/// turn, and again for each way of matching `Dynamic` parameters: one module
/// instead of nine saves most of those probes. The packages overlap only in
/// `to_int(char)` and the iterators over arrays and strings, which they define
/// identically; a later package wins, as when each was its own module.
fn library() -> Module {
    let mut module = Module::new();
    ArithmeticPackage::init(&mut module);
    BasicStringPackage::init(&mut module);
    BasicIteratorPackage::init(&mut module);
    BasicFnPackage::init(&mut module);
    LogicPackage::init(&mut module);
    BasicMathPackage::init(&mut module);
    BasicArrayPackage::init(&mut module);
    BasicMapPackage::init(&mut module);
    MoreStringPackage::init(&mut module);
    module.register_lazy_functions();
    module.build_index();
    module
}

/// Runs `f` with this thread's engine for `limits`, building it on first use.
pub(crate) fn with_engine<R>(limits: &Limits, f: impl FnOnce(&Engine) -> R) -> R {
    with_sandbox(limits, |sandbox| f(&sandbox.engine))
}

/// Runs `f` with this thread's sandbox for `limits`, building it on first use.
pub(crate) fn with_sandbox<R>(limits: &Limits, f: impl FnOnce(&Sandbox) -> R) -> R {
    let cached = ENGINES
        .try_with(|cell| {
            let mut engines = cell.try_borrow_mut().ok()?;
            if let Some((_, sandbox)) = engines.iter().find(|(l, _)| l == limits) {
                return Some(Rc::clone(sandbox));
            }
            if engines.len() >= MAX_ENGINES_PER_THREAD {
                engines.remove(0);
            }
            let sandbox = Rc::new(Sandbox::new(limits));
            engines.push((*limits, Rc::clone(&sandbox)));
            Some(sandbox)
        })
        .ok()
        .flatten();
    match cached {
        Some(sandbox) => f(&sandbox),
        // Thread-local storage is being torn down: build a throwaway engine.
        None => f(&Sandbox::new(limits)),
    }
}

/// Called by rhai at every operation: only every `CLOCK_EVERY_OPS`th does
/// anything (the count itself is read from rhai's state after the run).
fn check_deadline(ops: u64) -> Option<Dynamic> {
    if ops % CLOCK_EVERY_OPS != 0 {
        return None;
    }
    past_deadline().then(|| Dynamic::from("wall-clock limit exceeded"))
}

/// Whether the running stage is past its wall-clock deadline.
pub(crate) fn past_deadline() -> bool {
    DEADLINE
        .try_with(Cell::get)
        .ok()
        .flatten()
        .is_some_and(|deadline| Instant::now() >= deadline)
}

fn log_line(mut line: String) {
    if let Some((cut, _)) = line.char_indices().nth(MAX_LOG_CHARS) {
        line.truncate(cut);
        line.push('…');
    }
    // print/debug outside an evaluation have nowhere to go, which is the point.
    let _ = with_frame(|frame| {
        if frame.logs.len() < MAX_LOG_LINES {
            frame.logs.push(line);
        }
        Ok(())
    });
}

/// Gives the effect functions access to the running evaluation's frame.
pub(crate) fn with_frame<R>(f: impl FnOnce(&mut Frame) -> Result<R, String>) -> Result<R, String> {
    FRAME
        .try_with(|cell| {
            let mut slot = cell
                .try_borrow_mut()
                .map_err(|_| "policy state is busy".to_owned())?;
            match slot.as_mut() {
                Some(frame) => f(frame),
                None => Err("effect functions can only be called while a policy runs".to_owned()),
            }
        })
        .unwrap_or_else(|_| Err("policy state is unavailable".to_owned()))
}

/// Installs the frame and deadline for one evaluation and always removes them.
struct FrameGuard;

impl FrameGuard {
    fn enter(frame: Frame, deadline: Option<Instant>) -> Self {
        let _ = FRAME.try_with(|cell| cell.replace(Some(frame)));
        let _ = DEADLINE.try_with(|cell| cell.set(deadline));
        FrameGuard
    }

    fn take(&self) -> Option<Frame> {
        FRAME.try_with(|cell| cell.take()).ok().flatten()
    }

    /// Forgets what an abandoned compiled run recorded.
    fn reset(&self) {
        let _ = FRAME.try_with(|cell| {
            if let Ok(mut slot) = cell.try_borrow_mut()
                && let Some(frame) = slot.as_mut()
            {
                frame.effects.clear();
                frame.logs.clear();
            }
        });
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        let _ = FRAME.try_with(|cell| cell.take());
        let _ = DEADLINE.try_with(|cell| cell.set(None));
    }
}

/// Why a stage stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageErrorKind {
    /// A script error: bad types, missing variable or property, invalid effect argument…
    Runtime,
    /// The wall-clock cap was hit.
    Timeout,
    /// The operation budget was spent.
    OperationLimit,
    /// Script functions nested too deeply.
    CallDepth,
    /// A string, array or map grew past its limit.
    DataTooLarge,
    /// A bug outside the script; caught so the server goes on.
    Panic,
}

impl StageErrorKind {
    /// Short wording for the `POLICY_ERROR` reason message.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Runtime => "runtime error",
            Self::Timeout => "wall-clock limit exceeded",
            Self::OperationLimit => "operation limit exceeded",
            Self::CallDepth => "call depth exceeded",
            Self::DataTooLarge => "data size limit exceeded",
            Self::Panic => "internal error",
        }
    }
}

/// A stage failure, kept in the trace; positions are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct StageError {
    pub kind: StageErrorKind,
    pub message: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// What one stage evaluation produced.
pub(crate) struct StageRun {
    pub effects: Vec<Recorded>,
    pub logs: Vec<String>,
    /// Operations counted by the progress callback (the whole budget when it ran out).
    pub operations: u64,
    pub error: Option<StageError>,
}

/// Evaluates one compiled policy with `scope` holding the input constants;
/// the wall-clock cap runs from `started`.
pub(crate) fn eval_stage(
    sandbox: &Sandbox,
    limits: &Limits,
    scope: &mut Scope<'static>,
    ast: &Arc<AST>,
    frame: Frame,
    started: Instant,
    memo: &mut Memo,
) -> StageRun {
    let engine = &sandbox.engine;
    // What `Engine::run_ast_with_scope` does, with this policy's caches.
    let mut global = engine.new_global_runtime_state();
    global.lib.push(ast.shared_lib().clone());
    let guard = FrameGuard::enter(frame, limits.deadline(started));
    if limits.compile
        && let Some(operations) = run_compiled(sandbox, limits, &global, scope, ast, memo)
    {
        STAGES_COMPILED.fetch_add(1, Ordering::Relaxed);
        #[cfg(test)]
        let _ = COMPILED_RUNS.try_with(|n| n.set(n.get() + 1));
        let (effects, logs) = guard
            .take()
            .map_or_else(Default::default, |f| (f.effects, f.logs));
        return StageRun {
            effects,
            logs,
            operations,
            error: None,
        };
    }
    guard.reset();
    STAGES_INTERPRETED.fetch_add(1, Ordering::Relaxed);
    let mut caches = sandbox.take_caches(ast);
    JsonInput::materialize(scope);
    // Unwinding costs nothing unless a panic happens; the guard resets the
    // thread-local state either way.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        run_statements(engine, &mut global, &mut caches, scope, ast)
    }));
    let frame = guard.take();
    drop(guard);
    // Past the limit rhai counts the operation it refused.
    let operations = match limits.max_operations {
        0 => global.num_operations,
        max => global.num_operations.min(max),
    };
    if outcome.is_ok() {
        // A call interrupted by an error may leave its own level behind.
        caches.rewind_fn_resolution_caches(caches.fn_resolution_caches_len().min(1));
        sandbox.keep_caches(ast, caches);
    }
    let error = match outcome {
        Ok(Ok(_)) => None,
        Ok(Err(err)) => Some(classify(&err, limits)),
        Err(_) => Some(StageError {
            kind: StageErrorKind::Panic,
            message: "internal error while evaluating the policy".to_owned(),
            line: None,
            column: None,
        }),
    };
    let (effects, logs) = frame.map_or_else(Default::default, |f| (f.effects, f.logs));
    StageRun {
        effects,
        logs,
        operations,
        error,
    }
}

/// Runs the compiled form of `ast`, if it has one; `None` when it gave up
/// (or panicked), and the interpreter must run the stage. The compiled code
/// calls through the policy's resolution caches where the thread keeps them
/// (only reading them: nothing to put back).
fn run_compiled(
    sandbox: &Sandbox,
    limits: &Limits,
    global: &GlobalRuntimeState,
    scope: &Scope<'static>,
    ast: &Arc<AST>,
    memo: &mut Memo,
) -> Option<u64> {
    let engine = &sandbox.engine;
    sandbox
        .learnt(ast, |learnt| {
            let (program, inputs) = learnt.variants.get(engine, &learnt.ast, scope)?;
            let caches = learnt.caches.get_or_insert_with(Caches::default);
            catch_unwind(AssertUnwindSafe(|| {
                program.run(engine, global, caches, &inputs, memo, limits.max_operations)
            }))
            .ok()
            .flatten()
        })
        .flatten()
}

/// `eval_statements_raw` is the one entry point that takes the caches
/// (`internals`; deprecated for removal in rhai 2, where this must follow).
#[allow(deprecated)]
pub(crate) fn run_statements(
    engine: &Engine,
    global: &mut GlobalRuntimeState,
    caches: &mut Caches,
    scope: &mut Scope<'static>,
    ast: &AST,
) -> Result<Dynamic, Box<EvalAltResult>> {
    engine.eval_statements_raw(global, caches, scope, ast.statements())
}

fn classify(err: &EvalAltResult, limits: &Limits) -> StageError {
    let mut inner = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, cause, _) = inner {
        inner = cause;
    }
    let (kind, message) = match inner {
        EvalAltResult::ErrorTerminated(..) => (
            StageErrorKind::Timeout,
            format!(
                "stopped: ran longer than the {} ms wall-clock limit",
                limits.timeout_ms
            ),
        ),
        EvalAltResult::ErrorTooManyOperations(..) => (
            StageErrorKind::OperationLimit,
            format!("stopped: more than {} operations", limits.max_operations),
        ),
        EvalAltResult::ErrorStackOverflow(..) => (
            StageErrorKind::CallDepth,
            format!(
                "stopped: function calls nested deeper than {}",
                limits.max_call_levels
            ),
        ),
        EvalAltResult::ErrorDataTooLarge(..) => (StageErrorKind::DataTooLarge, err.to_string()),
        _ => (StageErrorKind::Runtime, err.to_string()),
    };
    let pos = if inner.position().is_none() {
        err.position()
    } else {
        inner.position()
    };
    let (line, column) = position(pos);
    StageError {
        kind,
        message,
        line,
        column,
    }
}

/// rhai positions as 1-based (line, column), `None` when unknown.
pub(crate) fn position(pos: Position) -> (Option<u32>, Option<u32>) {
    let conv = |v: Option<usize>| v.and_then(|v| u32::try_from(v).ok());
    (conv(pos.line()), conv(pos.position()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merged_library_keeps_every_package_function() {
        let parts = [
            ArithmeticPackage::new().as_shared_module(),
            BasicStringPackage::new().as_shared_module(),
            BasicIteratorPackage::new().as_shared_module(),
            BasicFnPackage::new().as_shared_module(),
            LogicPackage::new().as_shared_module(),
            BasicMathPackage::new().as_shared_module(),
            BasicArrayPackage::new().as_shared_module(),
            BasicMapPackage::new().as_shared_module(),
            MoreStringPackage::new().as_shared_module(),
        ];
        let (vars, fns, iters) = parts
            .iter()
            .map(|m| m.count())
            .fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
        assert!(fns > 300, "{fns}");
        // The known overlaps: `to_int(char)`; iterators over arrays, strings, chars.
        assert_eq!(library().count(), (vars, fns - 1, iters - 3));
        let engine = build(&Limits::default());
        let value = |script: &str| engine.eval::<Dynamic>(script).map(|v| v.to_string());
        assert_eq!(value("to_int('a')").ok().as_deref(), Some("97"));
        assert_eq!(
            value("let n = 0; for c in \"ab\" { n += 1; } for x in [1, 2] { n += x; } n")
                .ok()
                .as_deref(),
            Some("5")
        );
    }
}
