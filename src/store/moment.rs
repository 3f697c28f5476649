//! A timestamp as the hot statements read and write it.
//!
//! diesel reads a SQLite `TIMESTAMP` (the text `YYYY-MM-DD HH:MM:SS[.fff…]`) by trying
//! chrono's `parse_from_str` with one format after another, and writes one with `format`:
//! each parses its format string again for every value. An events transaction writes two
//! timestamps an event and reads thousands (clients, sales alerts): 3 to 5 % of the writer's
//! time. [`Moment`] reads the text diesel writes digit by digit (any other text goes to
//! diesel's own reader, formats and Julian days alike) and writes it with `Display`, which
//! gives the same text (a test compares them). On PostgreSQL it is `NaiveDateTime`'s binary
//! encoding.

use chrono::{NaiveDateTime, NaiveTime};
use diesel::deserialize::{self, FromSql};
use diesel::sql_types::Timestamp;
use diesel::sqlite::{Sqlite, SqliteValue};

use super::day::{chrono_newtype, number, year_month_day};

chrono_newtype!(
    /// A `TIMESTAMP` column's value.
    Moment,
    NaiveDateTime,
    Timestamp
);

impl FromSql<Timestamp, Sqlite> for Moment {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        match as_diesel_writes(value.read_text()) {
            Some(at) => Ok(Self(at)),
            None => <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Self),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS`, then `.` and 1 to 9 digits of a second or nothing (diesel's
/// `%F %T%.f`), when it is a real instant; a leap second is left to chrono.
fn as_diesel_writes(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || bytes[10] != b' ' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let date = year_month_day(text.get(..10)?)?;
    let nano = match &bytes[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(digits)? * 10_u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    let (hour, min, sec) = (
        number(&bytes[11..13])?,
        number(&bytes[14..16])?,
        number(&bytes[17..19])?,
    );
    if sec > 59 {
        return None;
    }
    Some(date.and_time(NaiveTime::from_hms_nano_opt(hour, min, sec, nano)?))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    use super::*;

    fn instants() -> Vec<NaiveDateTime> {
        let mut out = Vec::new();
        for (y, m, d) in [
            (2026, 12, 5),
            (1970, 1, 1),
            (2024, 2, 29),
            (1, 1, 1),
            (9999, 12, 31),
        ] {
            for nano in [
                0,
                1,
                1_000,
                1_000_000,
                10_000_000,
                123_456_789,
                500_000_000,
                999_999_999,
            ] {
                for (h, min, s) in [(0, 0, 0), (9, 5, 7), (23, 59, 59)] {
                    let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
                    out.push(day.and_hms_nano_opt(h, min, s, nano).unwrap());
                }
            }
        }
        out
    }

    /// The text SQLite stores for this instant bound as a `TIMESTAMP`: by `Moment`, by diesel.
    fn written(conn: &mut SqliteConnection, at: NaiveDateTime) -> (String, String) {
        let ours = diesel::select(diesel::dsl::sql::<Text>("").bind::<Timestamp, _>(Moment(at)))
            .get_result(conn)
            .unwrap();
        let diesels = diesel::select(diesel::dsl::sql::<Text>("").bind::<Timestamp, _>(at))
            .get_result(conn)
            .unwrap();
        (ours, diesels)
    }

    /// What `Moment` and diesel's `NaiveDateTime` read of this text (`None`: an error).
    fn read(
        conn: &mut SqliteConnection,
        text: &str,
    ) -> (Option<NaiveDateTime>, Option<NaiveDateTime>) {
        let query = || diesel::select(diesel::dsl::sql::<Timestamp>(&format!("'{text}'")));
        let stamp = query().get_result::<Moment>(conn).map(NaiveDateTime::from);
        let naive = query().get_result::<NaiveDateTime>(conn);
        (stamp.ok(), naive.ok())
    }

    /// What diesel's own `NaiveDateTime` writes, `Moment` writes; what it reads, `Moment`
    /// reads alike: its own writing, every other format diesel reads, and errors.
    #[test]
    fn a_moment_reads_and_writes_what_naive_date_time_does() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap();
        for at in instants().into_iter().chain([leap]) {
            let (ours, diesels) = written(&mut conn, at);
            assert_eq!(ours, diesels);
            assert_eq!(read(&mut conn, &ours), (Some(at), Some(at)), "{ours}");
        }
        for text in [
            "2026-12-05T10:11:12",
            "2026-12-05 10:11",
            "2026-12-05 10:11:12.5",
            "2026-12-05 10:11:12.1234567891",
            "2026-12-05 10:11:12+02:00",
            "2461014.5",
            "2026-02-30 10:11:12",
            "2026-12-05 24:00:00",
            "2026-12-05 10:11:1x",
            "not a timestamp",
        ] {
            let (stamp, naive) = read(&mut conn, text);
            assert_eq!(stamp, naive, "{text}");
        }
        let half = NaiveDate::from_ymd_opt(2026, 12, 5)
            .unwrap()
            .and_hms_milli_opt(10, 11, 12, 500)
            .unwrap();
        assert_eq!(read(&mut conn, "2026-12-05 10:11:12.5").0, Some(half));
        assert_eq!(
            read(&mut conn, "2026-02-30 10:11:12").0,
            None,
            "an error, not a guess"
        );
    }
}
