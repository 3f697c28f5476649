//! Native fast paths for script patterns that rhai implements generically,
//! with exactly rhai's results.

use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, NativeCallContext};

pub(crate) fn register(engine: &mut Engine) {
    engine.register_fn("contains", contains_string);
}

/// `value in array` with a string value (`legal in ["receivership", …]`).
/// rhai's `contains` calls `==` through the engine for each element, copying
/// its runtime state each time (over a microsecond for a list of two); here string
/// and `()` elements are compared directly (as rhai's built-in `==` does)
/// and any other element still goes through `==`, errors included.
fn contains_string(
    ctx: NativeCallContext,
    array: &mut Array,
    value: ImmutableString,
) -> Result<bool, Box<EvalAltResult>> {
    for item in array.iter_mut() {
        let equal = if let Some(s) = item.read_lock::<ImmutableString>() {
            *s == value
        } else if item.is_unit() {
            false
        } else {
            generic_equals(&ctx, item, &value)?
        };
        if equal {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What rhai's array `contains` does per element: `==`, and `false` when no
/// `==` exists between two different types.
fn generic_equals(
    ctx: &NativeCallContext,
    item: &mut Dynamic,
    value: &ImmutableString,
) -> Result<bool, Box<EvalAltResult>> {
    let mut value = Dynamic::from(value.clone());
    match ctx.call_native_fn_raw("==", true, &mut [item, &mut value]) {
        Ok(result) => Ok(result.as_bool().unwrap_or(false)),
        Err(err) => match *err {
            EvalAltResult::ErrorFunctionNotFound(ref sig, ..)
                if sig.starts_with("==") && item.type_id() != value.type_id() =>
            {
                Ok(false)
            }
            _ => Err(err),
        },
    }
}
