//! rhai's built-in operators (`func/builtin.rs`) for the value types whose
//! results are reproduced here: INT (checked), Decimal (checked) and their
//! mix, strings, booleans and `()`, and the comparisons between values of
//! different types. Any other case gives up; the interpreter decides.

use rhai::{Dynamic, INT, ImmutableString, Token};
use rust_decimal::Decimal;

use super::{Res, Stop};

/// The binary operators compiled inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

pub(super) fn binary_op(token: &Token) -> Option<Op> {
    Some(match token {
        Token::Plus => Op::Add,
        Token::Minus => Op::Sub,
        Token::Multiply => Op::Mul,
        Token::Divide => Op::Div,
        Token::Modulo => Op::Rem,
        Token::EqualsTo => Op::Eq,
        Token::NotEqualsTo => Op::Ne,
        Token::GreaterThan => Op::Gt,
        Token::GreaterThanEqualsTo => Op::Ge,
        Token::LessThan => Op::Lt,
        Token::LessThanEqualsTo => Op::Le,
        _ => return None,
    })
}

/// The operator of an op-assignment compiled inline (`+=` … `%=`).
pub(super) fn assign_op(token: &Token) -> Option<Op> {
    Some(match token {
        Token::PlusAssign => Op::Add,
        Token::MinusAssign => Op::Sub,
        Token::MultiplyAssign => Op::Mul,
        Token::DivideAssign => Op::Div,
        Token::ModuloAssign => Op::Rem,
        _ => return None,
    })
}

enum Num {
    Int(INT),
    Dec(Decimal),
}

impl Num {
    /// (`as_int` and `as_decimal` name the type on failure: tested first.)
    fn of(value: &Dynamic) -> Option<Self> {
        if value.is_int() {
            return value.as_int().ok().map(Self::Int);
        }
        if value.is_decimal() {
            return value.as_decimal().ok().map(Self::Dec);
        }
        None
    }

    fn dec(self) -> Decimal {
        match self {
            Self::Int(i) => Decimal::from(i),
            Self::Dec(d) => d,
        }
    }
}

fn ordering(op: Op, ord: std::cmp::Ordering) -> Option<bool> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    Some(match op {
        Op::Eq => ord == Equal,
        Op::Ne => ord != Equal,
        Op::Gt => ord == Greater,
        Op::Ge => ord != Less,
        Op::Lt => ord == Less,
        Op::Le => ord != Greater,
        _ => return None,
    })
}

/// INT and Decimal, each with rhai's checked built-in arithmetic.
trait Number: Copy + Ord {
    fn checked(op: Op, x: Self, y: Self) -> Option<Self>;
    fn into_dynamic(self) -> Dynamic;
}

impl Number for INT {
    fn checked(op: Op, x: Self, y: Self) -> Option<Self> {
        match op {
            Op::Add => x.checked_add(y),
            Op::Sub => x.checked_sub(y),
            Op::Mul => x.checked_mul(y),
            Op::Div if y == 0 => None,
            Op::Div => x.checked_div(y),
            Op::Rem => x.checked_rem(y),
            _ => None,
        }
    }

    fn into_dynamic(self) -> Dynamic {
        Dynamic::from_int(self)
    }
}

impl Number for Decimal {
    fn checked(op: Op, x: Self, y: Self) -> Option<Self> {
        match op {
            Op::Add => x.checked_add(y),
            Op::Sub => x.checked_sub(y),
            Op::Mul => x.checked_mul(y),
            Op::Div if y.is_zero() => None,
            Op::Div => x.checked_div(y),
            Op::Rem => x.checked_rem(y),
            _ => None,
        }
    }

    fn into_dynamic(self) -> Dynamic {
        Dynamic::from_decimal(self)
    }
}

/// `x op y` on two numbers of one type: a comparison, or checked arithmetic
/// (overflow and division by zero are rhai errors: given up).
fn arithmetic<N: Number>(op: Op, x: N, y: N) -> Res {
    if let Some(holds) = ordering(op, x.cmp(&y)) {
        return Ok(Dynamic::from_bool(holds));
    }
    N::checked(op, x, y)
        .map(Number::into_dynamic)
        .ok_or(Stop::Bail)
}

/// The kinds of value whose mixed comparisons rhai answers with a constant.
fn plain_kind(value: &Dynamic) -> Option<u8> {
    Some(if value.is_unit() {
        0
    } else if value.is_bool() {
        1
    } else if value.is_string() {
        2
    } else if value.is_int() || value.is_decimal() {
        3
    } else if value.is_array() {
        4
    } else if value.is_map() {
        5
    } else {
        return None;
    })
}

/// `x op y` as rhai's built-in does it for two non-custom values.
pub(super) fn binary(op: Op, x: &Dynamic, y: &Dynamic) -> Res {
    if let (Some(a), Some(b)) = (Num::of(x), Num::of(y)) {
        return match (a, b) {
            (Num::Int(a), Num::Int(b)) => arithmetic(op, a, b),
            (a, b) => arithmetic(op, a.dec(), b.dec()),
        };
    }
    if let (Some(a), Some(b)) = (
        x.read_lock::<ImmutableString>(),
        y.read_lock::<ImmutableString>(),
    ) {
        return ordering(op, a.as_str().cmp(b.as_str()))
            .map(Dynamic::from_bool)
            .ok_or(Stop::Bail);
    }
    if x.is_bool()
        && y.is_bool()
        && let (Ok(a), Ok(b)) = (x.as_bool(), y.as_bool())
    {
        return match op {
            Op::Eq => Ok(Dynamic::from_bool(a == b)),
            Op::Ne => Ok(Dynamic::from_bool(a != b)),
            _ => Err(Stop::Bail),
        };
    }
    // `()` against `()`: only `==` holds. Two different kinds (one not a
    // number): `!=` holds, `==` and the orderings do not.
    let same = match (plain_kind(x), plain_kind(y)) {
        (Some(0), Some(0)) => true,
        (Some(a), Some(b)) if a != b => false,
        _ => return Err(Stop::Bail),
    };
    match op {
        Op::Eq => Ok(Dynamic::from_bool(same)),
        Op::Ne if same => Ok(Dynamic::FALSE),
        Op::Ne => Ok(Dynamic::TRUE),
        Op::Gt | Op::Ge | Op::Lt | Op::Le => Ok(Dynamic::FALSE),
        _ => Err(Stop::Bail),
    }
}

/// `!x` and `-x` inline as rhai does them; `None` for a call to the operator function.
pub(super) fn unary(token: &Token, x: &Dynamic) -> Option<Res> {
    match token {
        Token::Bang => x.as_bool().ok().map(|b| Ok(Dynamic::from_bool(!b))),
        Token::Minus | Token::UnaryMinus => {
            if x.is_int()
                && let Ok(i) = x.as_int()
            {
                return Some(i.checked_neg().map(Dynamic::from_int).ok_or(Stop::Bail));
            }
            x.as_decimal().ok().map(|d| Ok(Dynamic::from_decimal(-d)))
        }
        _ => None,
    }
}

/// `target op= value` as rhai's built-in op-assignments: INT with INT, and
/// Decimal with Decimal or INT.
pub(super) fn op_assign(op: Op, target: &mut Dynamic, value: &Dynamic) -> Result<(), Stop> {
    *target = match (Num::of(target), Num::of(value)) {
        (Some(Num::Int(a)), Some(Num::Int(b))) => arithmetic(op, a, b)?,
        (Some(Num::Dec(a)), Some(b)) => arithmetic(op, a, b.dec())?,
        _ => return Err(Stop::Bail),
    };
    Ok(())
}
