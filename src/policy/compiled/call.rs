//! Function and operator calls, as rhai's `eval_fn_call_expr` makes them:
//! the same operation counts, and functions taken from the resolution cache
//! the interpreter fills (so every call resolves exactly as rhai would; a
//! call it has not resolved yet gives up, and the interpreter resolves it).

use std::any::TypeId;

use rhai::{Dynamic, FnCallExpr, ImmutableString, NativeCallContext, Position, RhaiFunc};
use smallvec::SmallVec;

use super::build::{Compiler, Var};
use super::{Code, Ctx, Res, Stop, ops};
use crate::policy::input::JsonInput;

/// Calls rhai handles itself (printing, reflection, `eval`, function pointers),
/// as functions or methods: left to the interpreter.
pub(super) const SYNTACTIC: [&str; 12] = [
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
    "eval",
    "this",
    "exit",
];

/// Argument values of a call, on the stack for the usual arities.
pub(super) type Values = SmallVec<[Dynamic; 4]>;
/// The arguments as rhai passes them to a native function.
pub(super) type Args<'a> = SmallVec<[&'a mut Dynamic; 5]>;

/// A function found in the resolution cache, with the module it came from.
pub(super) struct Resolved {
    func: RhaiFunc,
    source: Option<ImmutableString>,
}

impl Resolved {
    pub(super) fn is_pure(&self) -> bool {
        self.func.is_pure()
    }
}

/// The function rhai resolved for `hash` and these argument types, if cached.
pub(super) fn resolve(
    ctx: &mut Ctx<'_>,
    hash: u64,
    types: impl IntoIterator<Item = TypeId>,
) -> Result<Resolved, Stop> {
    let key = super::fn_hash_full(hash, types);
    match ctx.caches.fn_resolution_cache_mut().dict.get(&key) {
        Some(Some(entry)) if entry.func.is_native() => Ok(Resolved {
            func: entry.func.clone(),
            source: entry.source.clone(),
        }),
        _ => Err(Stop::Bail),
    }
}

/// Calls a resolved native function as `exec_native_fn_call` does (without
/// its operation, counted by the caller); any error gives up.
pub(super) fn invoke(
    ctx: &Ctx<'_>,
    resolved: &Resolved,
    name: &str,
    args: &mut [&mut Dynamic],
) -> Res {
    let context = resolved.func.has_context().then(|| {
        NativeCallContext::from((
            ctx.engine,
            name,
            resolved.source.as_deref(),
            ctx.global,
            Position::NONE,
        ))
    });
    let result = match &resolved.func {
        RhaiFunc::Pure { func, .. } | RhaiFunc::Method { func, .. } => func(context, args),
        RhaiFunc::Plugin { func } => func.call(context, args),
        RhaiFunc::StaticPlugin { func } => func.call(context, args),
        _ => return Err(Stop::Bail),
    };
    let value = result.map_err(|_| Stop::Bail)?;
    ctx.engine
        .ensure_data_size_within_limits(&value)
        .map_err(|_| Stop::Bail)?;
    Ok(value)
}

/// A native call on values the function may consume: one operation, resolve, call.
pub(super) fn native(ctx: &mut Ctx<'_>, name: &str, hash: u64, args: &mut [&mut Dynamic]) -> Res {
    ctx.count(1)?;
    let resolved = resolve(ctx, hash, args.iter().map(|a| a.type_id()))?;
    invoke(ctx, &resolved, name, args)
}

/// A call whose first argument is a variable: rhai passes it by reference,
/// so a method (`&mut` first parameter) may change it; a read-only one is
/// copied first, and a non-pure function on it is an error.
pub(super) fn on_variable(
    env: &mut super::Env<'_>,
    var: Var,
    name: &str,
    hash: u64,
    rest: &mut [Dynamic],
) -> Res {
    // `"key" in input` on an input held as JSON: rhai's map `contains`, which
    // the interpreter resolved for a map and a string, answered on the JSON
    // rather than on the whole input converted for it.
    if let Var::Input(i) = var
        && name == "contains"
        && let [key] = &*rest
        && let Some(input) = env.inputs[i].read_lock::<JsonInput>()
        && let Some(key) = key.read_lock::<ImmutableString>()
    {
        let types = [TypeId::of::<rhai::Map>(), TypeId::of::<ImmutableString>()];
        resolve(&mut env.ctx, hash, types)?;
        return Ok(Dynamic::from_bool(input.has_key(&key)));
    }
    // A read-only variable (a constant, or a loop variable over one) keeps
    // its slot: rhai copies it for the call, but a pure method cannot change
    // it (rhai passes a constant by reference to one in method-call style),
    // so only a function taking it by value gets a copy, as a `let` does.
    let (mut copy, slot, read_only) = match var {
        Var::Input(i) => (JsonInput::value_of(env.inputs[i]), None, true),
        Var::Const(s) => (Dynamic::UNIT, Some(s), true),
        Var::Loop(s) => (Dynamic::UNIT, Some(s), env.locals[s].is_read_only()),
        Var::Let(s) => (Dynamic::UNIT, Some(s), false),
    };
    let first_type = slot.map_or_else(|| copy.type_id(), |s| env.locals[s].type_id());
    let types = std::iter::once(first_type).chain(rest.iter().map(Dynamic::type_id));
    let resolved = resolve(&mut env.ctx, hash, types)?;
    if read_only && !resolved.func.is_pure() {
        return Err(Stop::Bail);
    }
    // A function that takes its first argument by value gets a copy.
    let mut taken;
    let first = match slot {
        None => &mut copy,
        Some(s) if !resolved.func.is_method() => {
            taken = env.locals[s].clone();
            &mut taken
        }
        Some(s) => &mut env.locals[s],
    };
    let mut args: Args<'_> = SmallVec::new();
    args.push(first);
    args.extend(rest.iter_mut());
    let value = invoke(&env.ctx, &resolved, name, &mut args)?;
    // What a method may have changed (a pure one on a read-only value cannot).
    if !(read_only && slot.is_some()) {
        env.ctx
            .engine
            .ensure_data_size_within_limits(args[0])
            .map_err(|_| Stop::Bail)?;
    }
    Ok(value)
}

/// An operand read where it is, not copied: a literal, or a script variable
/// (each counts one operation, as `Compiler::arg` would). An input is not one:
/// its value is made from the JSON when read.
enum Operand {
    Literal(Dynamic),
    Slot(usize),
}

impl Operand {
    fn of(c: &Compiler<'_>, expr: &rhai::Expr) -> Option<Self> {
        if let Some(value) = expr.get_literal_value(None) {
            return Some(Self::Literal(value));
        }
        match expr {
            rhai::Expr::Variable(v, ..) => match c.lookup(v.1.as_str())? {
                Var::Let(s) | Var::Const(s) | Var::Loop(s) => Some(Self::Slot(s)),
                Var::Input(_) => None,
            },
            _ => None,
        }
    }

    fn get<'e>(&'e self, env: &'e super::Env<'_>) -> &'e Dynamic {
        match self {
            Self::Literal(value) => value,
            Self::Slot(s) => &env.locals[*s],
        }
    }
}

/// An operand of a binary operator: read in place, or computed.
enum Side {
    Plain(Operand),
    Code(Code),
}

impl Side {
    fn of(c: &mut Compiler<'_>, expr: &rhai::Expr) -> Option<Self> {
        match Operand::of(c, expr) {
            Some(operand) => Some(Self::Plain(operand)),
            None => c.arg(expr).map(Self::Code),
        }
    }

    /// Runs a computed operand; a plain one only counts its operation.
    fn eval(&self, env: &mut super::Env<'_>) -> Res {
        match self {
            Self::Code(code) => code(env),
            Self::Plain(_) => env.ctx.count(1).map(|()| Dynamic::UNIT),
        }
    }

    /// The operand's value: `computed` by [`Self::eval`], or read in place.
    fn value<'e>(&'e self, computed: &'e Dynamic, env: &'e super::Env<'_>) -> &'e Dynamic {
        match self {
            Self::Code(_) => computed,
            Self::Plain(operand) => operand.get(env),
        }
    }
}

/// Compiles a call (the expression's or statement's own operation is counted by the caller).
pub(super) fn compile(c: &mut Compiler<'_>, x: &FnCallExpr) -> Option<Code> {
    let hash = x.hashes.native();
    if x.capture_parent_scope || super::fn_hash(&x.name, x.args.len()) != hash {
        return None;
    }
    let name = x.name.clone();
    if let Some(token) = &x.op_token {
        return match x.args.as_slice() {
            [operand] => {
                let operand = c.arg(operand)?;
                let token = token.clone();
                Some(Box::new(move |env| {
                    let mut value = operand(env)?;
                    match ops::unary(&token, &value) {
                        Some(result) => result,
                        None => native(&mut env.ctx, &name, hash, &mut [&mut value]),
                    }
                }))
            }
            [lhs, rhs] => {
                // Other operators (`**`, ranges, bit operations…) stay interpreted.
                let op = ops::binary_op(token)?;
                let l = Side::of(c, lhs)?;
                let r = Side::of(c, rhs)?;
                let l = match l {
                    // The right side may change a variable on the left (`x == x.pop()`):
                    // the left one is copied before the right side runs, as rhai does.
                    Side::Plain(Operand::Slot(_)) if matches!(r, Side::Code(_)) => {
                        Side::Code(c.arg(lhs)?)
                    }
                    l => l,
                };
                Some(Box::new(move |env| {
                    let x = l.eval(env)?;
                    let y = r.eval(env)?;
                    let (x, y) = (l.value(&x, env), r.value(&y, env));
                    if x.is_variant() || y.is_variant() {
                        // Registered functions come first for custom types.
                        let (mut x, mut y) = (x.clone(), y.clone());
                        return native(&mut env.ctx, &name, hash, &mut [&mut x, &mut y]);
                    }
                    ops::binary(op, x, y)
                }))
            }
            _ => None,
        };
    }
    if SYNTACTIC.contains(&name.as_str()) {
        return None;
    }
    if let Some(rhai::Expr::Variable(v, ..)) = x.args.first() {
        let var = c.lookup(v.1.as_str())?;
        let rest = x.args[1..]
            .iter()
            .map(|a| c.arg(a))
            .collect::<Option<Vec<_>>>()?;
        return Some(Box::new(move |env| {
            env.ctx.count(1)?;
            let mut values = rest.iter().map(|r| r(env)).collect::<Result<Values, _>>()?;
            env.ctx.count(1)?;
            on_variable(env, var, &name, hash, &mut values)
        }));
    }
    let args = x
        .args
        .iter()
        .map(|a| c.arg(a))
        .collect::<Option<Vec<_>>>()?;
    Some(Box::new(move |env| {
        let mut values = args.iter().map(|a| a(env)).collect::<Result<Values, _>>()?;
        let mut refs: Args<'_> = values.iter_mut().collect();
        native(&mut env.ctx, &name, hash, &mut refs)
    }))
}
