//! Scorecard helpers: the table lookups and the factor list of a scoring
//! policy. As script functions (a script call, a copy of the table and an
//! interpreted loop per indicator) they were three fifths of the default
//! scoring policy's run time; natively each is one call.
//!
//! - `points_from(value, table)`: the `points` of the first line of `table`
//!   whose `from` the value reaches (`value >= line.from`), `0` if none;
//! - `points_under(value, table)`: the `points` of the first line whose
//!   `under` the value is below (`value < line.under`), `0` if none;
//! - `factors.add_factor(code, points)`: appends `#{code, points}` to the
//!   array unless `points` is `0`, so that only what counts is listed.
//!
//! A table is an array of maps; a line without its threshold, or a value or
//! threshold that is not a number, is a policy error. A script that defines a
//! function of the same name and arity uses its own.

use std::cmp::Ordering;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FuncRegistration, INT, ImmutableString, Map};

use super::money::decimal_of;
use super::tables::SharedTable;

pub(crate) fn register(engine: &mut Engine) {
    engine.register_fn("points_from", |value: Dynamic, table: Array| {
        lookup("points_from", "from", &value, &table, Ordering::is_ge)
    });
    engine.register_fn("points_under", |value: Dynamic, table: Array| {
        lookup("points_under", "under", &value, &table, Ordering::is_lt)
    });
    // The same on a literal table shared at compile time (see `tables`).
    engine.register_fn("points_from", |value: Dynamic, table: SharedTable| {
        lookup("points_from", "from", &value, &table.0, Ordering::is_ge)
    });
    engine.register_fn("points_under", |value: Dynamic, table: SharedTable| {
        lookup("points_under", "under", &value, &table.0, Ordering::is_lt)
    });
    // Not pure: it changes its array, so rhai must refuse it on a constant
    // (`client.risk.factors`), as it refuses `push`.
    FuncRegistration::new("add_factor")
        .with_purity(false)
        .register_into_engine(engine, add_factor);
}

/// The `points` of the first line whose threshold `matches` the value.
fn lookup(
    func: &str,
    key: &str,
    value: &Dynamic,
    table: &[Dynamic],
    matches: fn(Ordering) -> bool,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let value = decimal_of(value).ok_or_else(|| {
        format!(
            "{func}: the value must be a number, got {}",
            value.type_name()
        )
    })?;
    for (i, line) in table.iter().enumerate() {
        let threshold = line
            .read_lock::<Map>()
            .and_then(|map| map.get(key).and_then(decimal_of))
            .ok_or_else(|| format!("{func}: line {} of the table has no number `{key}`", i + 1))?;
        if matches(value.cmp(&threshold)) {
            return line
                .read_lock::<Map>()
                .and_then(|map| map.get("points").cloned())
                .ok_or_else(|| {
                    format!("{func}: line {} of the table has no `points`", i + 1).into()
                });
        }
    }
    Ok(Dynamic::from_int(0))
}

fn add_factor(factors: &mut Array, code: ImmutableString, points: INT) {
    if points != 0 {
        factors.push(factor(code, points));
    }
}

/// `#{code, points}`: a factor as scripts build and read it, and as
/// `decision.factors` shows it (`set_score` hands such a list over as it is).
pub(crate) fn factor(code: ImmutableString, points: INT) -> Dynamic {
    let mut factor = Map::new();
    factor.insert("code".into(), code.into());
    factor.insert("points".into(), Dynamic::from_int(points));
    Dynamic::from_map(factor)
}
