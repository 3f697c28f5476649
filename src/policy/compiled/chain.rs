//! Property and index chains (`client.overdue.amount`, `TABLE[0].points`,
//! `factors.add_factor(…)`), counted as rhai's `eval_dot_index_chain` counts
//! them: one operation per call of `eval_dot_index_chain_arguments`, the
//! arguments and index expressions, the root, and one per link followed.
//! Values are read by reference and only the result is copied.

use std::rc::Rc;

use rhai::{ASTFlags, Dynamic, Expr, FnCallExpr, ImmutableString};

use super::build::{Compiler, Var};
use crate::policy::input::JsonInput;
use smallvec::SmallVec;

use super::call::{Args, Values};
use super::{Code, Env, Path, Res, Stop, call};

enum Link {
    /// `.name` on a map.
    Prop(ImmutableString),
    /// `[index]`, the index a literal or computed before the root is read.
    Index(Index),
    /// `.name(args)`, last in the chain.
    Method {
        name: ImmutableString,
        hash: u64,
        args: Vec<Code>,
    },
}

enum Index {
    Literal(Dynamic),
    Computed(Code),
}

enum Root {
    Var(Var),
    /// A literal (a table constant): read in place.
    Literal(Dynamic),
    Expr(Code),
}

fn parts(expr: &Expr) -> Option<(&rhai::BinaryExpr, bool, ASTFlags)> {
    match expr {
        Expr::Dot(x, flags, _) => Some((x, false, *flags)),
        Expr::Index(x, flags, _) => Some((x, true, *flags)),
        _ => None,
    }
}

fn method(c: &mut Compiler<'_>, m: &FnCallExpr) -> Option<Link> {
    let hash = m.hashes.native();
    if m.capture_parent_scope
        || call::SYNTACTIC.contains(&m.name.as_str())
        || super::fn_hash(&m.name, m.args.len() + 1) != hash
    {
        return None;
    }
    let args = m
        .args
        .iter()
        .map(|a| c.arg(a))
        .collect::<Option<Vec<_>>>()?;
    Some(Link::Method {
        name: m.name.clone(),
        hash,
        args,
    })
}

/// rhai's `eval_dot_index_chain_arguments` for `expr`, the right side of
/// `parent`: counts itself, records the links it passes.
fn arguments(
    c: &mut Compiler<'_>,
    parent: &Expr,
    expr: &Expr,
    links: &mut Vec<Link>,
    fixed: &mut u64,
) -> Option<()> {
    *fixed += 1;
    let (_, indexing, flags) = parts(parent)?;
    match expr {
        Expr::MethodCall(m, _) if !indexing => links.push(method(c, m)?),
        Expr::Property(p, _) if !indexing => links.push(Link::Prop(p.2.clone())),
        Expr::Index(x, ..) | Expr::Dot(x, ..) if !flags.intersects(ASTFlags::BREAK) => {
            links.push(match &x.lhs {
                Expr::Property(p, _) if !indexing => Link::Prop(p.2.clone()),
                Expr::MethodCall(m, _) if !indexing => method(c, m)?,
                lhs if indexing => Link::Index(Index::Computed(c.expr(lhs)?)),
                _ => return None,
            });
            arguments(c, expr, &x.rhs, links, fixed)?;
        }
        other if indexing => links.push(Link::Index(Index::Computed(c.expr(other)?))),
        _ => return None,
    }
    Some(())
}

/// Compiles a chain (its expression's own operation is counted by the caller).
pub(super) fn compile(c: &mut Compiler<'_>, top: &Expr) -> Option<Code> {
    let (x, indexing, _) = parts(top)?;
    let mut links = Vec::new();
    let mut fixed = 0;
    match &x.rhs {
        Expr::Property(p, _) if !indexing => links.push(Link::Prop(p.2.clone())),
        Expr::MethodCall(m, _) if !indexing && m.args.is_empty() => links.push(method(c, m)?),
        rhs if indexing && rhs.get_literal_value(None).is_some() => {
            links.push(Link::Index(Index::Literal(rhs.get_literal_value(None)?)));
        }
        rhs => arguments(c, top, rhs, &mut links, &mut fixed)?,
    }
    let root = match &x.lhs {
        Expr::Variable(v, ..) => Root::Var(c.lookup(v.1.as_str())?),
        // A constant that rhai's `eval_expr` counts as one operation (an
        // array or map literal counts its items too: compiled as an expression).
        lhs @ (Expr::DynamicConstant(..)
        | Expr::IntegerConstant(..)
        | Expr::StringConstant(..)
        | Expr::CharConstant(..)
        | Expr::BoolConstant(..)
        | Expr::Unit(..)) => Root::Literal(lhs.get_literal_value(None)?),
        lhs => Root::Expr(c.expr(lhs)?),
    };
    let (last, path) = links.split_last()?;
    if path.iter().any(|l| matches!(l, Link::Method { .. })) {
        return None;
    }
    if let Link::Method { .. } = last {
        // A method may change a writable variable: only directly on it.
        if matches!(root, Root::Var(Var::Let(_) | Var::Loop(_))) && !path.is_empty() {
            return None;
        }
    }
    let memo = memo_path(c, &root, &links);
    Some(Box::new(move |env| {
        run(env, &root, &links, fixed, memo.as_ref())
    }))
}

/// The memo key of a chain of properties from an input other than `decision`.
fn memo_path(c: &Compiler<'_>, root: &Root, links: &[Link]) -> Option<Rc<Path>> {
    let Root::Var(Var::Input(i)) = root else {
        return None;
    };
    let input = c.input_name(*i)?;
    if input == "decision" {
        return None;
    }
    let mut text = input.to_owned();
    for link in links {
        let Link::Prop(name) = link else {
            return None;
        };
        text.push('.');
        text.push_str(name);
    }
    Some(Rc::new(Path::new(text)))
}

fn run(env: &mut Env<'_>, root: &Root, links: &[Link], fixed: u64, memo: Option<&Rc<Path>>) -> Res {
    // rhai evaluates the chain's indexes and arguments first, left to right
    // (a method is the last link, so its arguments come last).
    env.ctx.count(fixed)?;
    let mut indexes = Values::new();
    let mut args = Values::new();
    for link in links {
        match link {
            Link::Index(Index::Computed(code)) => indexes.push(code(env)?),
            Link::Method { args: codes, .. } => {
                for code in codes {
                    args.push(code(env)?);
                }
            }
            _ => {}
        }
    }
    let last = links.last().ok_or(Stop::Bail)?;
    // Then the root (a variable or a literal counts one operation), then one
    // operation per link: counted at once, as a failing link gives up anyway.
    let links_ops = links.len() as u64;
    let temp;
    let base: &Dynamic = match root {
        Root::Var(var) => {
            env.ctx.count(1)?;
            if let (Link::Method { name, hash, .. }, Var::Let(s) | Var::Loop(s)) = (last, var) {
                return call_on_slot(env, *s, name, *hash, &mut args);
            }
            env.ctx.count(links_ops)?;
            if let Some(value) = memo.and_then(|path| env.memo.get(path)) {
                return Ok(value.clone());
            }
            match var {
                Var::Input(i) => env.inputs[*i],
                Var::Let(s) | Var::Const(s) | Var::Loop(s) => &env.locals[*s],
            }
        }
        Root::Literal(value) => {
            env.ctx.count(1 + links_ops)?;
            value
        }
        Root::Expr(code) => {
            temp = code(env)?;
            env.ctx.count(links_ops)?;
            &temp
        }
    };
    // An input held as JSON: its leading properties are followed there and
    // only the value reached is converted (a chain of properties alone ends
    // there), the other links follow on that value.
    let lazy;
    let (base, links) = match base.read_lock::<JsonInput>() {
        Some(input) => {
            let method = usize::from(matches!(last, Link::Method { .. }));
            let props = links[..links.len() - method]
                .iter()
                .map_while(|link| match link {
                    Link::Prop(name) => Some(name.as_str()),
                    _ => None,
                });
            let walked = props.clone().count();
            let value = input.get(props).ok_or(Stop::Bail)?;
            if walked == links.len() {
                if let Some(path) = memo {
                    env.memo.keep(path, &value);
                }
                return Ok(value);
            }
            lazy = value;
            (&lazy, &links[walked..])
        }
        None => (base, links),
    };
    let (last, path) = links.split_last().ok_or(Stop::Bail)?;
    let mut at = 0;
    let Link::Method { name, hash, .. } = last else {
        let value = within(base, links, &indexes, &mut at, &mut |v| Ok(v.clone()))?;
        // Only chains of properties from an unchanging input have a memo path.
        if let Some(path) = memo {
            env.memo.keep(path, &value);
        }
        return Ok(value);
    };
    let ctx = &mut env.ctx;
    within(base, path, &indexes, &mut at, &mut |target| {
        if target.is_map() {
            // A map may hold a function pointer of that name: rhai's business.
            return Err(Stop::Bail);
        }
        let mut object = target.clone();
        let mut call_args: Args<'_> = SmallVec::new();
        call_args.push(&mut object);
        call_args.extend(args.iter_mut());
        let resolved = call::resolve(ctx, *hash, call_args.iter().map(|a| a.type_id()))?;
        // On a read-only value (everything reached from the inputs) a
        // function that changes its object is an error.
        if !resolved.is_pure() {
            return Err(Stop::Bail);
        }
        call::invoke(ctx, &resolved, name, &mut call_args)
    })
}

/// `root.method(args)` on a writable variable: the method may change it.
fn call_on_slot(
    env: &mut Env<'_>,
    slot: usize,
    name: &str,
    hash: u64,
    args: &mut [Dynamic],
) -> Res {
    let target = &env.locals[slot];
    if target.is_map() || target.is_read_only() {
        return Err(Stop::Bail);
    }
    env.ctx.count(1)?;
    call::on_variable(env, Var::Let(slot), name, hash, args)
}

/// Follows `path` from `base` and hands the value reached to `f`.
fn within<R>(
    base: &Dynamic,
    path: &[Link],
    indexes: &[Dynamic],
    at: &mut usize,
    f: &mut dyn FnMut(&Dynamic) -> Result<R, Stop>,
) -> Result<R, Stop> {
    let Some((link, rest)) = path.split_first() else {
        return f(base);
    };
    let index = match link {
        Link::Prop(name) => {
            return in_map(base, name.as_str(), |v| within(v, rest, indexes, at, f));
        }
        Link::Index(Index::Literal(value)) => value,
        Link::Index(Index::Computed(_)) => {
            let value = indexes.get(*at).ok_or(Stop::Bail)?;
            *at += 1;
            value
        }
        Link::Method { .. } => return Err(Stop::Bail),
    };
    if index.is_int()
        && let Ok(i) = index.as_int()
    {
        let array = base.read_lock::<rhai::Array>().ok_or(Stop::Bail)?;
        let element = usize::try_from(i)
            .ok()
            .and_then(|i| array.get(i))
            .ok_or(Stop::Bail)?;
        return within(element, rest, indexes, at, f);
    }
    let key = index.read_lock::<ImmutableString>().ok_or(Stop::Bail)?;
    in_map(base, key.as_str(), |v| within(v, rest, indexes, at, f))
}

fn in_map<R>(
    target: &Dynamic,
    key: &str,
    f: impl FnOnce(&Dynamic) -> Result<R, Stop>,
) -> Result<R, Stop> {
    let map = target.read_lock::<rhai::Map>().ok_or(Stop::Bail)?;
    f(map.get(key).ok_or(Stop::Bail)?)
}
