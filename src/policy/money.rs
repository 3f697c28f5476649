//! Exact money for scripts. With rhai's `decimal` + `no_float` features every
//! literal with a point is a `rust_decimal::Decimal`, and rhai's built-in
//! operators already mix INT and Decimal (`amount * 30 / 100`, `amount > 1000`,
//! `x += 0.5`) and provide `min`/`max`/`abs`/`round_half_up` on decimals, so
//! only the domain helpers are registered here.

use rhai::{Dynamic, Engine, EvalAltResult, INT};
use rust_decimal::{Decimal, RoundingStrategy};

/// Most minor digits any currency needs (ISO 4217 tops out at 4).
const MAX_MINOR_DIGITS: INT = 8;

pub(crate) fn register(engine: &mut Engine) {
    engine.register_fn("round_money", round_money);
    engine.register_fn("pct", pct);
}

/// `round_money(amount, minor_digits)`: half-up (away from zero) to the minor unit.
fn round_money(amount: Dynamic, minor_digits: INT) -> Result<Decimal, Box<EvalAltResult>> {
    let value = decimal_of(&amount).ok_or_else(|| {
        format!(
            "round_money: amount must be a number, got {}",
            amount.type_name()
        )
    })?;
    let digits = u32::try_from(minor_digits)
        .ok()
        .filter(|d| INT::from(*d) <= MAX_MINOR_DIGITS)
        .ok_or_else(|| {
            format!("round_money: minor_digits must be 0..={MAX_MINOR_DIGITS}, got {minor_digits}")
        })?;
    Ok(round_half_up(value, digits))
}

/// `pct(amount, percent)`: `amount * percent / 100`, exact (round it yourself).
fn pct(amount: Dynamic, percent: Dynamic) -> Result<Decimal, Box<EvalAltResult>> {
    let a = decimal_of(&amount)
        .ok_or_else(|| format!("pct: amount must be a number, got {}", amount.type_name()))?;
    let p = decimal_of(&percent)
        .ok_or_else(|| format!("pct: percent must be a number, got {}", percent.type_name()))?;
    a.checked_mul(p)
        .and_then(|x| x.checked_div(Decimal::ONE_HUNDRED))
        .ok_or_else(|| format!("pct: {a} * {p} / 100 overflows").into())
}

pub(crate) fn round_half_up(value: Decimal, digits: u32) -> Decimal {
    let mut rounded = value.round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(digits);
    rounded
}

/// An INT or Decimal script value as a Decimal; `None` for anything else.
pub(crate) fn decimal_of(value: &Dynamic) -> Option<Decimal> {
    if let Ok(i) = value.as_int() {
        return Some(Decimal::from(i));
    }
    value.as_decimal().ok()
}

/// `value` written with exactly `digits` decimals, or `None` if that would
/// drop non-zero digits: amounts never get rounded behind the author's back.
pub(crate) fn fit_minor(value: Decimal, digits: u32) -> Option<Decimal> {
    let mut v = value.normalize();
    if v.scale() > digits {
        return None;
    }
    v.rescale(digits);
    Some(v)
}

/// A non-negative money argument of an effect function, at the currency's scale.
pub(crate) fn amount_arg(
    func: &str,
    value: &Dynamic,
    minor_digits: u32,
) -> Result<Decimal, String> {
    let amount = decimal_of(value)
        .ok_or_else(|| format!("{func}: amount must be a number, got {}", value.type_name()))?;
    if amount < Decimal::ZERO {
        return Err(format!("{func}: amount must not be negative, got {amount}"));
    }
    fit_minor(amount, minor_digits).ok_or_else(|| {
        format!(
            "{func}: amount {amount} has more than {minor_digits} decimals; \
             use round_money(amount, {minor_digits})"
        )
    })
}

/// A percentage argument in 0..=100.
pub(crate) fn percent_arg(func: &str, value: &Dynamic) -> Result<Decimal, String> {
    let percent = decimal_of(value).ok_or_else(|| {
        format!(
            "{func}: percent must be a number, got {}",
            value.type_name()
        )
    })?;
    if percent < Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
        return Err(format!(
            "{func}: percent must be between 0 and 100, got {percent}"
        ));
    }
    Ok(percent.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::engine::{Limits, build};

    fn eval(script: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        build(&Limits::default()).eval::<Dynamic>(script)
    }

    fn dec(script: &str) -> Decimal {
        let value = eval(script).unwrap();
        decimal_of(&value).unwrap_or_else(|| panic!("{script} gave {value:?}"))
    }

    #[test]
    fn decimal_literals_are_exact() {
        assert!(eval("0.10 + 0.20 == 0.30").unwrap().as_bool().unwrap());
        assert_eq!(dec("0.10 + 0.20").to_string(), "0.30");
        assert_eq!(eval("type_of(1.5)").unwrap().to_string(), "decimal");
    }

    #[test]
    fn int_and_decimal_mix() {
        assert_eq!(dec("2794.65 * 30 / 100").to_string(), "838.3950");
        assert_eq!(
            dec("round_money(2794.65 * 30 / 100, 2)").to_string(),
            "838.40"
        );
        assert_eq!(
            dec("(2794.65 * 30 / 100).round_half_up(2)").to_string(),
            "838.40"
        );
        assert!(
            eval("2794.65 > 1000 && 1000 < 2794.65 && 5 == 5.00 && 3 != 3.5")
                .unwrap()
                .as_bool()
                .unwrap()
        );
        assert_eq!(dec("let x = 1; x += 0.5; x").to_string(), "1.5");
        assert_eq!(dec("1000 - 0.01").to_string(), "999.99");
    }

    #[test]
    fn min_max_on_mixed_numbers() {
        assert_eq!(dec("min(2794.65, 1000)").to_string(), "1000");
        assert_eq!(dec("max(2, 3.5)").to_string(), "3.5");
        assert_eq!(dec("min(0.1, 0.2)").to_string(), "0.1");
    }

    #[test]
    fn round_money_is_half_up_to_minor_unit() {
        assert_eq!(dec("round_money(0.125, 2)").to_string(), "0.13");
        assert_eq!(dec("round_money(0.124, 2)").to_string(), "0.12");
        assert_eq!(dec("round_money(-0.125, 2)").to_string(), "-0.13");
        assert_eq!(dec("round_money(12, 2)").to_string(), "12.00");
        assert_eq!(dec("round_money(1234.5, 0)").to_string(), "1235");
        assert!(eval("round_money(1.0, -1)").is_err());
        assert!(eval("round_money(1.0, 9)").is_err());
        assert!(eval("round_money(\"1.0\", 2)").is_err());
    }

    #[test]
    fn pct_is_exact() {
        assert_eq!(dec("pct(2794.65, 30)").to_string(), "838.3950");
        assert_eq!(dec("pct(100, 12.5)").to_string(), "12.5");
        assert_eq!(dec("pct(10, 33)").to_string(), "3.30");
        assert!(eval("pct(1, \"x\")").is_err());
    }

    #[test]
    fn money_arguments_are_checked() {
        let two = 2;
        assert_eq!(
            amount_arg("f", &Dynamic::from(12_i64), two)
                .unwrap()
                .to_string(),
            "12.00"
        );
        let d = |s: &str| Dynamic::from_decimal(s.parse().unwrap());
        assert_eq!(
            amount_arg("f", &d("12.500"), two).unwrap().to_string(),
            "12.50"
        );
        assert!(
            amount_arg("f", &d("12.505"), two)
                .unwrap_err()
                .contains("round_money")
        );
        assert!(
            amount_arg("f", &d("-1"), two)
                .unwrap_err()
                .contains("negative")
        );
        assert!(amount_arg("f", &Dynamic::from("1"), two).is_err());
        assert!(percent_arg("f", &d("100.5")).is_err());
        assert!(percent_arg("f", &Dynamic::from(-1_i64)).is_err());
        assert_eq!(percent_arg("f", &d("30.0")).unwrap().to_string(), "30");
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(eval("79228162514264337593543950335.0 * 2").is_err());
        assert!(eval("pct(79228162514264337593543950335.0, 100)").is_err());
        assert!(eval("1.0 / 0").is_err());
    }
}
