//! Policies compiled to closures: a policy's rhai AST walked once into a tree
//! of Rust closures that does what rhai's interpreter does, with variables in
//! slots instead of a scope searched by name, property chains read by
//! reference, and operators on INT, Decimal, strings and `()` inline.
//!
//! Exactness is the rule and speed the reason. The compiled code counts
//! operations where rhai counts them (the trace shows them, the limit stops
//! on them), calls functions through the resolution cache the interpreter
//! fills, and computes operators only for the value types whose rhai results
//! it reproduces. Anything else gives up: a statement or expression outside
//! the supported subset when compiling; a value of another type, an error, a
//! function not yet in the cache, the operation limit or the deadline when
//! running. The stage then runs again on the interpreter, which decides (a
//! stage has no effect outside its frame, so a second run is exact). The differential
//! tests in `policy/tests/compiled.rs` hold the two to the same results.

mod build;
mod call;
mod chain;
mod ops;

use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::OnceLock;

use rhai::{AST, Caches, Dynamic, Engine, GlobalRuntimeState, INT, Scope};

use super::engine::{CLOCK_EVERY_OPS, past_deadline};
use build::Compiler;

/// Why compiled code stopped before the end of the script.
pub(crate) enum Stop {
    /// Give up: the interpreter runs the stage instead.
    Bail,
    /// A `return` statement: the script ends normally.
    Return,
}

pub(crate) type Res = Result<Dynamic, Stop>;
/// A compiled statement or expression.
pub(crate) type Code = Box<dyn Fn(&mut Env<'_>) -> Res>;

/// What compiled code needs from rhai, and its operation count.
pub(crate) struct Ctx<'a> {
    pub engine: &'a Engine,
    pub global: &'a GlobalRuntimeState,
    pub caches: &'a mut Caches,
    pub ops: u64,
    max_ops: u64,
}

impl Ctx<'_> {
    /// Counts `n` operations; past the limit, or past the stage's deadline
    /// (read as often as the interpreter reads it), the interpreter takes
    /// over and reports it (its first look at the clock then stops it).
    #[inline]
    pub fn count(&mut self, n: u64) -> Result<(), Stop> {
        let before = self.ops;
        self.ops += n;
        if self.max_ops != 0 && self.ops > self.max_ops {
            return Err(Stop::Bail);
        }
        if before / CLOCK_EVERY_OPS != self.ops / CLOCK_EVERY_OPS && past_deadline() {
            return Err(Stop::Bail);
        }
        Ok(())
    }
}

/// One run's state: the input constants by reference and the script's variables.
pub(crate) struct Env<'a> {
    pub ctx: Ctx<'a>,
    pub inputs: &'a [&'a Dynamic],
    pub locals: Vec<Dynamic>,
    pub memo: &'a mut Memo,
}

/// Values read from the pipeline's unchanging inputs (`client`, `request`,
/// `event`: constants for the whole run, unlike `decision`), kept for the
/// stages after: reading `client.overdue.amount` again costs one comparison
/// per remembered path instead of a map search per link. Only plain values
/// are kept (a map read whole is copied anyway). One per pipeline run.
#[derive(Default)]
pub(crate) struct Memo(Vec<(Rc<Path>, Dynamic)>);

/// A chain of properties from an input, as a memo key.
#[derive(PartialEq, Eq)]
pub(crate) struct Path {
    hash: u64,
    text: String,
}

impl Path {
    pub(crate) fn new(text: String) -> Self {
        let s = &mut ahash::AHasher::default();
        text.hash(s);
        Self {
            hash: s.finish(),
            text,
        }
    }
}

impl Memo {
    /// Remembered paths at most: the default pipeline reads about twenty.
    const CAPACITY: usize = 64;

    pub(crate) fn get(&self, path: &Path) -> Option<&Dynamic> {
        self.0
            .iter()
            .find(|(p, _)| p.hash == path.hash && p.text == path.text)
            .map(|(_, v)| v)
    }

    pub(crate) fn keep(&mut self, path: &Rc<Path>, value: &Dynamic) {
        let plain = value.is_int()
            || value.is_decimal()
            || value.is_string()
            || value.is_bool()
            || value.is_unit();
        if plain && self.0.len() < Self::CAPACITY {
            self.0.push((Rc::clone(path), value.clone()));
        }
    }
}

/// The input constants of a run, by reference (three: subject, client, decision).
pub(crate) type Inputs<'s> = smallvec::SmallVec<[&'s Dynamic; 4]>;

/// A compiled policy.
pub(crate) struct Program {
    body: Vec<Code>,
    slots: usize,
}

/// Input name sets a policy is compiled for on one thread, at most (two in
/// practice: `scoring` runs under both triggers, with `request` or `event`).
const MAX_VARIANTS: usize = 4;

/// A policy's compiled forms on one thread, one per set of input names it
/// ran with; `None` where it uses what the compiler does not support.
#[derive(Default)]
pub(crate) struct Variants(Vec<(Vec<String>, Option<Rc<Program>>)>);

impl Variants {
    /// The program for the inputs in `scope`, compiled on first use, and
    /// those inputs by reference; `None` when it does not compile.
    pub(crate) fn get<'s>(
        &mut self,
        engine: &Engine,
        ast: &AST,
        scope: &'s Scope<'_>,
    ) -> Option<(Rc<Program>, Inputs<'s>)> {
        for (names, program) in &self.0 {
            if let Some(inputs) = inputs_named(names, scope) {
                return program.clone().map(|p| (p, inputs));
            }
        }
        if self.0.len() >= MAX_VARIANTS {
            self.0.clear();
        }
        let mut names: Vec<String> = scope.iter_raw().map(|(name, ..)| name.to_owned()).collect();
        names.reverse();
        let program = Program::compile(engine, ast, &names).map(Rc::new);
        let inputs = inputs_named(&names, scope);
        self.0.push((names, program.clone()));
        Some((program?, inputs?))
    }
}

/// The scope's entries by reference, if they are exactly `names`.
fn inputs_named<'s>(names: &[String], scope: &'s Scope<'_>) -> Option<Inputs<'s>> {
    if scope.len() != names.len() {
        return None;
    }
    // `iter_raw` goes from the last entry to the first.
    let mut inputs = scope
        .iter_raw()
        .zip(names.iter().rev())
        .map(|((name, _, value), expected)| (name == expected).then_some(value))
        .collect::<Option<Inputs<'s>>>()?;
    inputs.reverse();
    Some(inputs)
}

impl Program {
    /// Compiles `ast` for a scope holding `inputs` (in scope order); `None`
    /// when any part of it is outside the compiled subset.
    pub(crate) fn compile(engine: &Engine, ast: &AST, inputs: &[String]) -> Option<Self> {
        if ast.has_functions() || !engine.fast_operators() || !hashing_matches(engine) {
            return None;
        }
        #[cfg(test)]
        COMPILATIONS.with(|n| n.set(n.get() + 1));
        let (body, slots) = Compiler::new(engine, inputs).program(ast.statements())?;
        Some(Self { body, slots })
    }

    /// Runs the program; the operations it counted, or `None` to run the
    /// interpreter instead (effects recorded meanwhile must be discarded).
    pub(crate) fn run(
        &self,
        engine: &Engine,
        global: &GlobalRuntimeState,
        caches: &mut Caches,
        inputs: &[&Dynamic],
        memo: &mut Memo,
        max_ops: u64,
    ) -> Option<u64> {
        let mut env = Env {
            ctx: Ctx {
                engine,
                global,
                caches,
                ops: 0,
                max_ops,
            },
            inputs,
            locals: std::iter::repeat_with(|| Dynamic::UNIT)
                .take(self.slots)
                .collect(),
            memo,
        };
        for code in &self.body {
            match code(&mut env) {
                Ok(_) => {}
                Err(Stop::Return) => break,
                Err(Stop::Bail) => return None,
            }
        }
        Some(env.ctx.ops)
    }
}

/// rhai's `calc_fn_hash` for a function without namespace: the key of a
/// call's name and arity. Checked against the AST's own hashes at compile time.
pub(crate) fn fn_hash(name: &str, num_args: usize) -> u64 {
    let s = &mut ahash::AHasher::default();
    s.write_u8(b'F');
    s.write_usize(0);
    name.hash(s);
    s.write_usize(num_args);
    s.finish()
}

/// rhai's `calc_fn_hash_full`: the resolution cache's key for a call with
/// these argument types. Checked once per process by [`hashing_matches`].
pub(crate) fn fn_hash_full(base: u64, types: impl IntoIterator<Item = std::any::TypeId>) -> u64 {
    let s = &mut ahash::AHasher::default();
    s.write_u8(b'A');
    let mut count = 0;
    for t in types {
        t.hash(s);
        count += 1;
    }
    s.write_usize(count);
    s.finish() ^ base
}

/// Whether [`fn_hash_full`] finds what rhai put in its resolution cache: a
/// call run three times by the interpreter must be found under our key. If
/// not (another ahash, a seeded build), nothing is compiled.
fn hashing_matches(engine: &Engine) -> bool {
    static MATCHES: OnceLock<bool> = OnceLock::new();
    *MATCHES.get_or_init(|| {
        let Ok(ast) = engine.compile("min(1, 2); min(1, 2); min(1, 2);") else {
            return false;
        };
        let mut caches = Caches::new();
        let mut global = engine.new_global_runtime_state();
        let mut scope = Scope::new();
        if super::engine::run_statements(engine, &mut global, &mut caches, &mut scope, &ast)
            .is_err()
        {
            return false;
        }
        let key = fn_hash_full(fn_hash("min", 2), [std::any::TypeId::of::<INT>(); 2]);
        matches!(
            caches.fn_resolution_cache_mut().dict.get(&key),
            Some(Some(_))
        )
    })
}

/// Whether `source` compiles to closures for a `credit_request` scope.
#[cfg(test)]
pub(crate) fn compiles(source: &str) -> bool {
    let limits = super::Limits::default();
    super::engine::with_engine(&limits, |engine| {
        let Ok(policy) = super::cache::compile_with(engine, source) else {
            return false;
        };
        let inputs = ["request", "client", "decision"].map(String::from);
        Program::compile(engine, &policy.ast, &inputs).is_some()
    })
}

#[cfg(test)]
thread_local! {
    static COMPILATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Policies this thread compiled to closures (or tried to).
#[cfg(test)]
pub(crate) fn compilations() -> u64 {
    COMPILATIONS.with(std::cell::Cell::get)
}
