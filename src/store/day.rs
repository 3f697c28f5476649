//! A calendar date as the hot statements read and write it.
//!
//! diesel reads a SQLite `DATE` (the text `YYYY-MM-DD`) with chrono's `parse_from_str`, which
//! parses the format string again for every value, and writes one with `format`, the same way.
//! A batch of events reads tens of thousands of open invoices' due dates: that parsing was most
//! of the cost of each row. [`Day`] reads `YYYY-MM-DD` digit by digit (any other text goes to
//! chrono's `FromStr`) and writes it with `Display`; on PostgreSQL it is `NaiveDate`'s binary
//! encoding.

use chrono::NaiveDate;
use diesel::deserialize::{self, FromSql};
use diesel::sql_types::Date;
use diesel::sqlite::{Sqlite, SqliteValue};

/// A newtype over a chrono value (`$ty($chrono)`, SQL type `$sql`) and the conversions that
/// are chrono's own: PostgreSQL's binary encoding both ways, SQLite's text written with
/// `Display` (which gives the text diesel writes; each type's test checks it), and the
/// MultiConnection's, which hand over to those. Only reading SQLite is each type's own.
macro_rules! chrono_newtype {
    ($(#[$doc:meta])* $ty:ident, $chrono:ty, $sql:ty) => {
        $(#[$doc])*
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            diesel::expression::AsExpression,
            diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = $sql)]
        pub struct $ty(pub $chrono);

        impl From<$ty> for $chrono {
            fn from(value: $ty) -> Self {
                value.0
            }
        }

        impl diesel::serialize::ToSql<$sql, diesel::sqlite::Sqlite> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
            ) -> diesel::serialize::Result {
                out.set_value(self.0.to_string());
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::deserialize::FromSql<$sql, diesel::pg::Pg> for $ty {
            fn from_sql(
                value: <diesel::pg::Pg as diesel::backend::Backend>::RawValue<'_>,
            ) -> diesel::deserialize::Result<Self> {
                <$chrono as diesel::deserialize::FromSql<$sql, diesel::pg::Pg>>::from_sql(value)
                    .map(Self)
            }
        }

        impl diesel::serialize::ToSql<$sql, diesel::pg::Pg> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <$chrono as diesel::serialize::ToSql<$sql, diesel::pg::Pg>>::to_sql(
                    &self.0,
                    &mut out.reborrow(),
                )
            }
        }

        impl diesel::deserialize::FromSql<$sql, $crate::store::MultiBackend> for $ty {
            fn from_sql(
                value: $crate::store::MultiRawValue<'_>,
            ) -> diesel::deserialize::Result<Self> {
                value.from_sql::<Self, $sql>()
            }
        }

        impl diesel::serialize::ToSql<$sql, $crate::store::MultiBackend> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, $crate::store::MultiBackend>,
            ) -> diesel::serialize::Result {
                out.set_value((<$sql>::default(), self));
                Ok(diesel::serialize::IsNull::No)
            }
        }
    };
}
pub(super) use chrono_newtype;

chrono_newtype!(
    /// A `DATE` column's value.
    Day,
    NaiveDate,
    Date
);

impl FromSql<Date, Sqlite> for Day {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        Ok(Self(parse(value.read_text())?))
    }
}

/// A date as SQLite holds it: `YYYY-MM-DD` digit by digit, any other text through chrono's
/// `FromStr` (a year past 9999, as `Display` writes it).
pub(super) fn parse(text: &str) -> Result<NaiveDate, chrono::ParseError> {
    year_month_day(text).map_or_else(|| text.parse(), Ok)
}

/// `YYYY-MM-DD` exactly (as diesel writes a date into SQLite), when it is a real date.
pub(super) fn year_month_day(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = i32::try_from(number(&bytes[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, number(&bytes[5..7])?, number(&bytes[8..10])?)
}

/// The number these ASCII digits write, `None` if one is not a digit (or on overflow).
pub(super) fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0_u32, |n, d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u32::from(d - b'0')))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::{Nullable, Text};

    use super::*;

    /// What diesel's own `NaiveDate` reads and writes, `Day` reads and writes alike.
    #[test]
    fn a_day_reads_and_writes_what_naive_date_does() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        for text in ["2026-12-05", "1970-01-01", "2100-02-28", "2024-02-29"] {
            let query = || diesel::select(diesel::dsl::sql::<Date>(&format!("'{text}'")));
            let day: Day = query().get_result(&mut conn).unwrap();
            let naive: NaiveDate = query().get_result(&mut conn).unwrap();
            assert_eq!(day.0, naive);
            let written: String = diesel::select(diesel::dsl::sql::<Text>("").bind::<Date, _>(day))
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(written, text);
        }
        let none: Option<Day> = diesel::select(diesel::dsl::sql::<Nullable<Date>>("NULL"))
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(none, None);
        let bad =
            diesel::select(diesel::dsl::sql::<Date>("'2026-02-30'")).get_result::<Day>(&mut conn);
        assert!(bad.is_err(), "not a date: an error, not a guess");
    }
}
