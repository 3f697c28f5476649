//! The compiler: statements and expressions to closures, each counting the
//! operations rhai's `eval_stmt` and `eval_expr` count.

use rhai::{ASTFlags, Array, BinaryExpr, Dynamic, Engine, Expr, FlowControl, Stmt};

use super::{Code, Env, Stop, call, chain, ops};
use crate::policy::input::JsonInput;

/// Where a variable lives: an input constant or a slot of the run.
#[derive(Debug, Clone, Copy)]
pub(super) enum Var {
    Input(usize),
    /// `let`: writable (rhai makes the value and everything in it writable).
    Let(usize),
    /// `const`: read-only.
    Const(usize),
    /// A `for` variable: writable unless the element itself is read-only.
    Loop(usize),
}

pub(super) struct Compiler<'e> {
    pub engine: &'e Engine,
    /// Names in sight, innermost last; the inputs first, never out of sight.
    names: Vec<(String, Var)>,
    slots: usize,
    /// `let` variables read for the last time by the statement being compiled:
    /// moved out of their slot rather than copied (see [`Compiler::program`]).
    last_reads: Vec<String>,
}

/// Reads a variable, counting the expression.
fn read(var: Var) -> Code {
    match var {
        Var::Input(i) => Box::new(move |env| {
            env.ctx.count(1)?;
            Ok(JsonInput::value_of(env.inputs[i]))
        }),
        Var::Let(s) | Var::Const(s) | Var::Loop(s) => Box::new(move |env| {
            env.ctx.count(1)?;
            Ok(env.locals[s].clone())
        }),
    }
}

/// The variables a statement that is a call `f(a, b, …)` of distinct plain
/// variables and literals passes: read there and nowhere else in it. Empty
/// for any other statement (a variable read twice must stay in its slot).
fn last_reads(stmt: &Stmt) -> Vec<String> {
    let call = match stmt {
        Stmt::FnCall(x, ..) => x,
        Stmt::Expr(e) => match &**e {
            Expr::FnCall(x, ..) => x,
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    let mut names: Vec<String> = Vec::with_capacity(call.args.len());
    for arg in &call.args {
        match arg {
            Expr::Variable(v, ..) if !names.iter().any(|n| n == v.1.as_str()) => {
                names.push(v.1.to_string());
            }
            _ if arg.is_constant() => {}
            _ => return Vec::new(),
        }
    }
    names
}

/// A literal value, counting the expression.
fn literal(value: Dynamic) -> Code {
    Box::new(move |env| {
        env.ctx.count(1)?;
        Ok(value.clone())
    })
}

/// Counts one operation (the statement or expression itself), then runs `code`.
fn counted(code: Code) -> Code {
    Box::new(move |env| {
        env.ctx.count(1)?;
        code(env)
    })
}

fn size_checked(env: &Env<'_>, value: &Dynamic) -> Result<(), Stop> {
    env.ctx
        .engine
        .ensure_data_size_within_limits(value)
        .map_err(|_| Stop::Bail)
}

/// A number, boolean or `()` as rhai's `to_string` shows it: `Display` of
/// the value (`to_string_generic`, `print_bool`), nothing for `()` (`print_unit`).
enum Shown {
    Int(rhai::INT),
    Decimal(rust_decimal::Decimal),
    Bool(bool),
    Unit,
}

impl Shown {
    fn write(&self, text: &mut String) -> std::fmt::Result {
        use std::fmt::Write as _;
        match self {
            Self::Int(i) => write!(text, "{i}"),
            Self::Decimal(d) => write!(text, "{d}"),
            Self::Bool(b) => write!(text, "{b}"),
            Self::Unit => Ok(()),
        }
    }
}

fn displayed(value: &Dynamic) -> Option<Shown> {
    if value.is_int() {
        value.as_int().ok().map(Shown::Int)
    } else if value.is_decimal() {
        value.as_decimal().ok().map(Shown::Decimal)
    } else if value.is_bool() {
        value.as_bool().ok().map(Shown::Bool)
    } else if value.is_unit() {
        Some(Shown::Unit)
    } else {
        None
    }
}

impl<'e> Compiler<'e> {
    pub fn new(engine: &'e Engine, inputs: &[String]) -> Self {
        Self {
            engine,
            names: inputs
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), Var::Input(i)))
                .collect(),
            slots: 0,
            last_reads: Vec::new(),
        }
    }

    /// The top-level statements and the number of slots they need.
    ///
    /// The last statement reads the variables it passes to a call for the last
    /// time (nothing runs after it), so those are moved into the call: a
    /// scoring policy's `set_score(score, band, factors)` no longer copies its
    /// factors, maps and all.
    pub fn program(mut self, stmts: &[Stmt]) -> Option<(Vec<Code>, usize)> {
        let mut body = Vec::with_capacity(stmts.len());
        for (i, stmt) in stmts.iter().enumerate() {
            if i + 1 == stmts.len() {
                self.last_reads = last_reads(stmt);
            }
            body.push(self.stmt(stmt)?);
        }
        Some((body, self.slots))
    }

    /// The name of input `i`.
    pub fn input_name(&self, i: usize) -> Option<&str> {
        self.names.get(i).map(|(name, _)| name.as_str())
    }

    pub fn lookup(&self, name: &str) -> Option<Var> {
        self.names
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    fn declare(&mut self, name: &str, var: impl FnOnce(usize) -> Var) -> usize {
        let slot = self.slots;
        self.slots += 1;
        self.names.push((name.to_owned(), var(slot)));
        slot
    }

    /// A block: its statements in a scope of their own; its value is the last one's.
    fn block(&mut self, stmts: &[Stmt]) -> Option<Code> {
        let mark = self.names.len();
        let codes = stmts
            .iter()
            .map(|s| self.stmt(s))
            .collect::<Option<Vec<_>>>();
        self.names.truncate(mark);
        let codes = codes?;
        Some(Box::new(move |env| {
            let mut value = Dynamic::UNIT;
            for code in &codes {
                value = code(env)?;
            }
            Ok(value)
        }))
    }

    fn stmt(&mut self, stmt: &Stmt) -> Option<Code> {
        Some(match stmt {
            Stmt::Noop(..) => literal(Dynamic::UNIT),
            Stmt::Expr(expr) => counted(self.expr(expr)?),
            Stmt::Block(block) => counted(self.block(block.statements())?),
            Stmt::FnCall(x, ..) => counted(call::compile(self, x)?),
            Stmt::Var(x, flags, ..) => {
                let (ident, expr, index) = &**x;
                if index.is_some() || flags.intersects(ASTFlags::EXPORTED) {
                    return None;
                }
                // The initial value cannot see the name it initialises.
                let value = self.expr(expr)?;
                let slot = if flags.intersects(ASTFlags::CONSTANT) {
                    self.declare(ident.as_str(), Var::Const)
                } else {
                    self.declare(ident.as_str(), Var::Let)
                };
                Box::new(move |env| {
                    env.ctx.count(1)?;
                    env.locals[slot] = value(env)?;
                    Ok(Dynamic::UNIT)
                })
            }
            Stmt::Assignment(x) => self.assignment(x)?,
            Stmt::If(x, ..) => {
                let FlowControl { expr, body, branch } = &**x;
                let guard = self.expr(expr)?;
                let body = self.block(body.statements())?;
                let branch = self.block(branch.statements())?;
                Box::new(move |env| {
                    env.ctx.count(1)?;
                    if guard(env)?.as_bool().map_err(|_| Stop::Bail)? {
                        body(env)
                    } else {
                        branch(env)
                    }
                })
            }
            // `throw` is a `Return` flagged BREAK: left to the interpreter.
            Stmt::Return(expr, flags, ..) if !flags.intersects(ASTFlags::BREAK) => {
                let value = match expr {
                    Some(expr) => Some(self.expr(expr)?),
                    None => None,
                };
                Box::new(move |env| {
                    env.ctx.count(1)?;
                    if let Some(value) = &value {
                        let _ = value(env)?;
                    }
                    Err(Stop::Return)
                })
            }
            Stmt::For(x, ..) => self.for_loop(x)?,
            _ => return None,
        })
    }

    /// `var = value` and `var op= value` on a writable variable; assignments
    /// into properties or indexes, and to constants (an error), are not compiled.
    fn assignment(&mut self, x: &(rhai::OpAssignment, BinaryExpr)) -> Option<Code> {
        let (op, BinaryExpr { lhs, rhs }) = x;
        let Expr::Variable(v, ..) = lhs else {
            return None;
        };
        let (slot, is_loop) = match self.lookup(v.1.as_str())? {
            Var::Let(s) => (s, false),
            Var::Loop(s) => (s, true),
            Var::Input(_) | Var::Const(_) => return None,
        };
        let rhs = self.expr(rhs)?;
        let op = match op.get_op_assignment_info() {
            None => None,
            Some((.., op_assign, _, _, _)) => Some(ops::assign_op(op_assign)?),
        };
        Some(Box::new(move |env| {
            env.ctx.count(1)?;
            let value = rhs(env)?;
            env.ctx.count(1)?;
            let target = &mut env.locals[slot];
            if is_loop && target.is_read_only() {
                return Err(Stop::Bail);
            }
            match op {
                None => *target = value,
                Some(op) => ops::op_assign(op, target, &value)?,
            }
            Ok(Dynamic::UNIT)
        }))
    }

    /// `for x in array { … }`; other iterables and counters are not compiled.
    fn for_loop(&mut self, x: &(rhai::Ident, Option<rhai::Ident>, FlowControl)) -> Option<Code> {
        let (var, counter, FlowControl { expr, body, .. }) = x;
        if counter.is_some() {
            return None;
        }
        let iter = self.expr(expr)?;
        let mark = self.names.len();
        let slot = self.declare(var.as_str(), Var::Loop);
        let empty = body.statements().is_empty();
        let body = self.block(body.statements());
        self.names.truncate(mark);
        let body = body?;
        Some(Box::new(move |env| {
            env.ctx.count(1)?;
            let array = iter(env)?.into_array().map_err(|_| Stop::Bail)?;
            for item in array {
                if empty {
                    env.ctx.count(1)?;
                    continue;
                }
                env.locals[slot] = item;
                let _ = body(env)?;
            }
            Ok(Dynamic::UNIT)
        }))
    }

    /// A function argument, as rhai's `get_arg_value`: a literal counts one
    /// operation, anything else is an expression.
    pub fn arg(&mut self, expr: &Expr) -> Option<Code> {
        match expr.get_literal_value(None) {
            Some(value) => Some(literal(value)),
            None => self.expr(expr),
        }
    }

    pub fn expr(&mut self, expr: &Expr) -> Option<Code> {
        Some(match expr {
            Expr::DynamicConstant(..)
            | Expr::IntegerConstant(..)
            | Expr::CharConstant(..)
            | Expr::StringConstant(..)
            | Expr::BoolConstant(..)
            | Expr::Unit(..) => literal(expr.get_literal_value(None)?),
            Expr::Variable(v, ..) => match self.lookup(v.1.as_str())? {
                Var::Let(s) if self.last_reads.iter().any(|n| n == v.1.as_str()) => {
                    Box::new(move |env| {
                        env.ctx.count(1)?;
                        Ok(std::mem::take(&mut env.locals[s]))
                    })
                }
                var => read(var),
            },
            Expr::FnCall(x, ..) => counted(call::compile(self, x)?),
            Expr::Dot(..) | Expr::Index(..) => counted(chain::compile(self, expr)?),
            Expr::Stmt(block) => counted(self.block(block.statements())?),
            Expr::InterpolatedString(parts, ..) => self.interpolated(parts)?,
            Expr::Array(items, ..) => {
                let items = items
                    .iter()
                    .map(|e| self.expr(e))
                    .collect::<Option<Vec<_>>>()?;
                Box::new(move |env| {
                    env.ctx.count(1)?;
                    let mut array = Array::with_capacity(items.len());
                    for item in &items {
                        array.push(item(env)?);
                    }
                    let value = Dynamic::from_array(array);
                    size_checked(env, &value)?;
                    Ok(value)
                })
            }
            Expr::Map(x, ..) => {
                let (entries, template) = &**x;
                let template = template.clone();
                let entries = entries
                    .iter()
                    .map(|(key, e)| Some((key.as_str().to_owned(), self.expr(e)?)))
                    .collect::<Option<Vec<_>>>()?;
                Box::new(move |env| {
                    env.ctx.count(1)?;
                    let mut map = template.clone();
                    for (key, value) in &entries {
                        let value = value(env)?;
                        *map.get_mut(key.as_str()).ok_or(Stop::Bail)? = value;
                    }
                    let value = Dynamic::from_map(map);
                    size_checked(env, &value)?;
                    Ok(value)
                })
            }
            Expr::And(x, ..) | Expr::Or(x, ..) => {
                let all = matches!(expr, Expr::And(..));
                let terms = x.iter().map(|e| self.expr(e)).collect::<Option<Vec<_>>>()?;
                Box::new(move |env| {
                    env.ctx.count(1)?;
                    for term in &terms {
                        if term(env)?.as_bool().map_err(|_| Stop::Bail)? != all {
                            return Ok(Dynamic::from_bool(!all));
                        }
                    }
                    Ok(Dynamic::from_bool(all))
                })
            }
            _ => return None,
        })
    }

    /// `` `text ${value}` ``: strings as they are, anything else through its
    /// `to_string` (one operation, as rhai's printing), the length checked
    /// after each part.
    fn interpolated(&mut self, parts: &[Expr]) -> Option<Code> {
        let parts = parts
            .iter()
            .map(|e| self.expr(e))
            .collect::<Option<Vec<_>>>()?;
        let to_string = super::fn_hash("to_string", 1);
        let max = self.engine.max_string_size();
        Some(Box::new(move |env| {
            env.ctx.count(1)?;
            let mut text = String::with_capacity(64);
            for part in &parts {
                let mut value = part(env)?;
                if value.is_string() {
                    text.push_str(&value.into_immutable_string().map_err(|_| Stop::Bail)?);
                } else if let Some(shown) = displayed(&value) {
                    // What rhai's `to_string` writes for these, one operation.
                    env.ctx.count(1)?;
                    let _ = shown.write(&mut text);
                } else {
                    value = call::native(&mut env.ctx, "to_string", to_string, &mut [&mut value])?;
                    text.push_str(&value.into_immutable_string().map_err(|_| Stop::Bail)?);
                }
                if max != 0 && text.len() > max {
                    return Err(Stop::Bail);
                }
            }
            Ok(Dynamic::from(text))
        }))
    }
}
