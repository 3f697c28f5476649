//! The client: its profile (what the ERP tells us) and its live state (what events made of it).

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::money::{Currency, Money};

/// The ERP's customer number: 1..64 of `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_len = (1..=64).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok_len && ok_chars {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 3166-1 alpha-2 country code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Country(isocountry::CountryCode);

impl Country {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() != 2 || !raw.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err("must be an ISO 3166-1 alpha-2 code of two upper-case letters".into());
        }
        isocountry::CountryCode::for_alpha2(raw)
            .map(Self)
            .map_err(|_| format!("`{raw}` is not an ISO 3166-1 country"))
    }

    pub fn code(self) -> &'static str {
        self.0.alpha2()
    }
}

/// A NACE activity code: a section letter and/or a division, group or class (`C`, `46`,
/// `46.9`, `46.90`, `C46.90`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sector(String);

impl Sector {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let rest = raw
            .strip_prefix(|c: char| c.is_ascii_uppercase())
            .unwrap_or(raw);
        let section_only = rest.is_empty() && raw.len() == 1;
        let (division, sub) = match rest.split_once('.') {
            Some((d, s)) => (d, Some(s)),
            None => (rest, None),
        };
        let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
            n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
        };
        let numeric = digits(division, 2..=2) && sub.is_none_or(|s| digits(s, 1..=2));
        if section_only || numeric {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be a NACE code such as `C`, `46`, `46.9` or `C46.90`".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Result<Self, String> {
                match raw {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(
                        "`{other}` is not one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum!(
    /// Whether the client may be granted new credit at all.
    ClientStatus { Active = "active", Blocked = "blocked" }
);
text_enum!(
    /// Insolvency proceedings, as the legal events report them.
    LegalStatus {
        None = "none",
        Safeguard = "safeguard",
        Receivership = "receivership",
        Liquidation = "liquidation",
    }
);

/// Risk band from a 0..100 score (higher is riskier): A 0–19, B 20–39, C 40–59, D 60–79, E 80–100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum RiskBand {
    A,
    B,
    C,
    D,
    E,
}

impl RiskBand {
    pub fn from_score(score: u8) -> Self {
        match score {
            0..=19 => Self::A,
            20..=39 => Self::B,
            40..=59 => Self::C,
            60..=79 => Self::D,
            _ => Self::E,
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "A" => Ok(Self::A),
            "B" => Ok(Self::B),
            "C" => Ok(Self::C),
            "D" => Ok(Self::D),
            "E" => Ok(Self::E),
            other => Err(format!("`{other}` is not a risk band (A to E)")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
            Self::D => "D",
            Self::E => "E",
        }
    }
}

/// What the ERP says about a client: the body of `PUT /v1/clients/{id}`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientProfile {
    pub name: String,
    pub registration_number: Option<String>,
    pub country: Country,
    pub sector: Option<Sector>,
    pub currency: Currency,
    pub credit_limit: Money,
    /// `None` keeps the current status (or `active` for a new client).
    pub status: Option<ClientStatus>,
}

/// The stored client with its live state, exact to the minor unit.
/// (The decision writer checks that a draft still holds by the client's version, see
/// `store::clients::Stamp`, not by comparing `Client` values.)
#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    pub client_id: ClientId,
    pub name: String,
    pub registration_number: Option<String>,
    pub country: String,
    pub sector: Option<String>,
    pub currency: Currency,
    pub status: ClientStatus,
    pub is_prospect: bool,
    pub credit_limit: Money,
    pub state: LiveState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The projection of the client's events. Kept in storage, never made up here.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveState {
    pub open_invoices: Money,
    pub reserved: Money,
    pub overdue: Money,
    /// Due date of the oldest unpaid overdue invoice: days past due are counted from it as of now.
    pub oldest_overdue_due_on: Option<NaiveDate>,
    pub invoices_paid: i64,
    pub paid_late: i64,
    pub total_days_late: i64,
    pub insurance: Option<Insurance>,
    pub external_score: Option<ExternalScore>,
    pub alerts_negative: i64,
    pub alerts_positive: i64,
    pub legal_status: LegalStatus,
    pub risk: Option<Risk>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Insurance {
    pub insurer: String,
    pub insured_amount: Money,
    pub valid_until: Option<NaiveDate>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalScore {
    pub provider: String,
    pub score: i64,
    pub as_of: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    pub score: u8,
    pub band: RiskBand,
    pub factors: Vec<RiskFactor>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RiskFactor {
    pub code: String,
    pub points: i64,
}

impl Client {
    /// Exposure = open invoices + active reservations, in minor units.
    pub fn exposure_minor(&self) -> i64 {
        self.state.open_invoices.minor() + self.state.reserved.minor()
    }

    /// Limit minus exposure; negative when the client is over its limit.
    pub fn available_minor(&self) -> i64 {
        self.credit_limit.minor() - self.exposure_minor()
    }

    /// Days past due of the oldest overdue invoice, as of `today`.
    pub fn max_days_past_due(&self, today: NaiveDate) -> i64 {
        self.state
            .oldest_overdue_due_on
            .map_or(0, |due| (today - due).num_days().max(0))
    }

    pub fn average_days_late(&self) -> Option<rust_decimal::Decimal> {
        (self.state.paid_late > 0).then(|| {
            (rust_decimal::Decimal::from(self.state.total_days_late)
                / rust_decimal::Decimal::from(self.state.paid_late))
            .round_dp(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        assert!(ClientId::parse("C-001.fr_2").is_ok());
        assert!(ClientId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "é", "a/b", &"a".repeat(65)] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn countries_and_sectors() {
        assert!(Country::parse("FR").is_ok());
        assert!(Country::parse("fr").is_err());
        assert!(Country::parse("XX").is_err());
        for ok in ["C", "46", "46.9", "46.90", "C46.90"] {
            assert!(Sector::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "c", "4", "466", "46.901", "CC", "46."] {
            assert!(Sector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bands() {
        assert_eq!(RiskBand::from_score(19), RiskBand::A);
        assert_eq!(RiskBand::from_score(20), RiskBand::B);
        assert_eq!(RiskBand::from_score(79), RiskBand::D);
        assert_eq!(RiskBand::from_score(100), RiskBand::E);
    }
}
