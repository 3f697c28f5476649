//! When time alone changes a client's risk: invoices crossing days-past-due thresholds,
//! insurance cover ending, sales alerts ageing out. The scheduled review pass re-scores a
//! client on the next such day. Pure: the caller says what "today" is.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// Days past due at which an invoice changes the picture: it falls due, then passes 30, 60
/// and 90 days (the default policies count "more than 30/60/90 days").
pub const DAYS_PAST_DUE_STEPS: [i64; 4] = [1, 31, 61, 91];

/// A sales alert counts while it is younger than this.
pub const RECENT_ALERT_DAYS: i64 = 90;

/// The earliest time an alert still counts as recent at `now`.
pub fn recent_alerts_since(now: DateTime<Utc>) -> DateTime<Utc> {
    now - TimeDelta::days(RECENT_ALERT_DAYS)
}

/// The first day after `today` on which one of these changes: an open invoice's
/// days-past-due step, the end of the cover (the day after `valid_until`), a recent alert
/// ageing out. `None` when nothing is pending.
pub fn next_review_on(
    today: NaiveDate,
    open_due_dates: impl IntoIterator<Item = NaiveDate>,
    cover_valid_until: Option<NaiveDate>,
    recent_alerts: impl IntoIterator<Item = DateTime<Utc>>,
) -> Option<NaiveDate> {
    let after_today = |d: NaiveDate| (d > today).then_some(d);
    let invoices = open_due_dates.into_iter().filter_map(|due| {
        DAYS_PAST_DUE_STEPS
            .iter()
            .find_map(|step| after_today(due + TimeDelta::days(*step)))
    });
    let cover = cover_valid_until.and_then(|d| after_today(d + TimeDelta::days(1)));
    let alerts = recent_alerts.into_iter().filter_map(|at| {
        after_today((at + TimeDelta::days(RECENT_ALERT_DAYS)).date_naive() + TimeDelta::days(1))
    });
    invoices.chain(cover).chain(alerts).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn next_step_of_each_invoice() {
        let today = d("2026-03-10");
        // Due 2026-03-09: 1 day past due today, 31 on 2026-04-09.
        assert_eq!(
            next_review_on(today, [d("2026-03-09")], None, []),
            Some(d("2026-04-09"))
        );
        // Due tomorrow: overdue the day after.
        assert_eq!(
            next_review_on(today, [d("2026-03-11")], None, []),
            Some(d("2026-03-12"))
        );
        // 91 days past due already: nothing left to cross.
        assert_eq!(next_review_on(today, [d("2025-12-01")], None, []), None);
        assert_eq!(
            next_review_on(today, [d("2026-03-09"), d("2026-02-07")], None, []),
            Some(d("2026-03-10") + TimeDelta::days(30))
        );
    }

    #[test]
    fn cover_end_and_alerts() {
        let today = d("2026-03-10");
        assert_eq!(
            next_review_on(today, [], Some(d("2026-03-10")), []),
            Some(d("2026-03-11"))
        );
        assert_eq!(next_review_on(today, [], Some(d("2026-03-09")), []), None);
        let alert = d("2026-03-01").and_hms_opt(15, 0, 0).unwrap().and_utc();
        assert_eq!(
            next_review_on(today, [], None, [alert]),
            Some(d("2026-05-31"))
        );
    }
}
