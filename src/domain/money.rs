//! Exact money: amounts are `rust_decimal::Decimal` held to the currency's minor unit.
//! Parsing is strict at the edge so nothing inexact or absurd gets in.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// Largest accepted amount in major units: far above any trade credit line, far below the
/// point where minor units (up to 3 decimals) stop fitting an `i64`.
const MAX_MAJOR_DIGITS: usize = 15;

/// An ISO 4217 currency that has a minor unit (funds, metals and "no currency" are refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Parses an upper-case ISO 4217 alphabetic code.
    pub fn parse(code: &str) -> Result<Self, String> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err("must be an ISO 4217 code of three upper-case letters".into());
        }
        let currency = iso_currency::Currency::from_code(code)
            .ok_or_else(|| format!("`{code}` is not an ISO 4217 currency"))?;
        match currency.exponent() {
            Some(_) => Ok(Self(currency)),
            None => Err(format!(
                "`{code}` has no minor unit and cannot carry credit"
            )),
        }
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Number of decimals of the minor unit (2 for EUR, 0 for JPY, 3 for KWD).
    pub fn minor_digits(self) -> u32 {
        u32::from(self.0.exponent().unwrap_or(0))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount checked against a currency: non-negative, at most the currency's minor digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// Rebuilds an amount from storage (integer minor units).
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Parses the textual form of an amount exactly as the client sent it (a JSON string or
    /// the literal digits of a JSON number), for the given currency.
    pub fn parse(text: &str, currency: Currency) -> Result<Self, String> {
        let digits = currency.minor_digits();
        let (int, frac) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        if text.starts_with('-') {
            return Err("must not be negative".into());
        }
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !plain(int) || frac.is_some_and(|f| !plain(f)) {
            return Err(format!(
                "`{}` is not a plain decimal amount like \"12500.00\" (no sign, exponent or spaces)",
                truncate(text)
            ));
        }
        if int.trim_start_matches('0').len() > MAX_MAJOR_DIGITS {
            return Err(format!("must be below 10^{MAX_MAJOR_DIGITS}"));
        }
        let frac = frac.unwrap_or("");
        let significant = frac.trim_end_matches('0');
        if significant.len() > digits as usize {
            return Err(format!(
                "has more decimals than {} allows ({digits})",
                currency.code()
            ));
        }
        let value = Decimal::from_str(&format!("{int}.{significant}0"))
            .map_err(|e| format!("is not a decimal amount: {e}"))?;
        Self::from_decimal(value, currency)
    }

    /// Converts an exact decimal, refusing what does not fit the currency.
    pub fn from_decimal(value: Decimal, currency: Currency) -> Result<Self, String> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err("must not be negative".into());
        }
        let scaled = value * Decimal::from(10_i64.pow(currency.minor_digits()));
        if !scaled.fract().is_zero() {
            return Err(format!(
                "has more decimals than {} allows ({})",
                currency.code(),
                currency.minor_digits()
            ));
        }
        let minor = i64::try_from(scaled).map_err(|_| "is too large".to_string())?;
        Ok(Self { minor, currency })
    }

    pub fn minor(self) -> i64 {
        self.minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.minor, self.currency.minor_digits())
    }
}

impl fmt::Display for Money {
    /// Always the currency's minor digits: `"0.10"` stays `"0.10"`, `12500` becomes `"12500.00"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_decimal())
    }
}

/// Formats a signed minor-unit figure (e.g. available credit, which may be negative).
pub fn format_minor(minor: i64, currency: Currency) -> String {
    Decimal::new(minor, currency.minor_digits()).to_string()
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn keeps_minor_digits() {
        assert_eq!(Money::parse("0.10", eur()).unwrap().to_string(), "0.10");
        assert_eq!(Money::parse("0.1", eur()).unwrap().to_string(), "0.10");
        assert_eq!(
            Money::parse("12500", eur()).unwrap().to_string(),
            "12500.00"
        );
        assert_eq!(Money::parse("7.000", eur()).unwrap().minor(), 700);
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(Money::parse("1500", jpy).unwrap().to_string(), "1500");
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::parse("1.234", kwd).unwrap().to_string(), "1.234");
    }

    #[test]
    fn refuses_inexact_or_absurd() {
        for bad in [
            "-1", "1e3", "1E3", "NaN", "inf", " 1", "1 ", "+1", "1.", ".5", "1.001", "", "0x10",
            "1,5",
        ] {
            assert!(Money::parse(bad, eur()).is_err(), "{bad:?} accepted");
        }
        assert!(Money::parse(&"9".repeat(400), eur()).is_err());
        assert!(Money::parse("999999999999999.99", eur()).is_ok());
        assert!(Money::parse("1000000000000000", eur()).is_err());
        assert!(Money::parse("1500.5", Currency::parse("JPY").unwrap()).is_err());
    }

    #[test]
    fn currencies() {
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("XAU").is_err());
        assert!(Currency::parse("ZZZ").is_err());
        assert_eq!(Currency::parse("USD").unwrap().minor_digits(), 2);
    }
}
