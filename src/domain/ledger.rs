//! The projection of a client's events: the client-level figures ([`Ledger`]) and one
//! [`Invoice`] per invoice id. [`apply`] is the one rule both the incremental path and the
//! rebuild from the log use, so they cannot disagree. Pure: no I/O, no clock.
//!
//! The rules where the contract is silent (see docs/events.md):
//! - a payment, credit note or dunning letter for an invoice not issued yet is kept on that
//!   invoice and counts once `invoice_issued` arrives (events may come out of order);
//! - over-payments and credit notes larger than what is open leave the invoice at zero and the
//!   excess as a credit balance on that invoice; it never reduces other invoices;
//! - an invoice is settled when its open amount reaches zero. If any payment was received on
//!   it, it counts as paid, dated by its latest payment, late when that is after the due date;
//!   an invoice settled by credit notes alone was cancelled, not paid;
//! - a cover change or legal status reported as having occurred before the one in force, or a
//!   score older than the one held, is logged but changes nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::client::{ExternalScore, LegalStatus};
use super::events::{ClientEvent, EventBody, Rejection, RejectionCode};

/// Credit insurance in force, in minor units of the client's currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cover {
    pub insurer: String,
    pub insured_minor: i64,
    pub valid_until: Option<NaiveDate>,
}

/// What the events made of the client (stored on the client row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ledger {
    /// Σ open amount of its issued invoices.
    pub open_invoices_minor: i64,
    pub invoices_paid: i64,
    pub paid_late: i64,
    pub total_days_late: i64,
    pub insurance: Option<Cover>,
    pub insurance_changed_at: Option<DateTime<Utc>>,
    pub external_score: Option<ExternalScore>,
    pub legal_status: LegalStatus,
    pub legal_status_changed_at: Option<DateTime<Utc>>,
    /// Its open invoices summed by due date: all that reviews, decisions and client reads
    /// need of them (what is overdue, since when, the days the 30/60/90 steps are crossed),
    /// kept with the figures so that none of them reads the invoices.
    pub open_dues: Dues,
}

/// What a client's open invoices due one day add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub open_minor: i64,
    /// How many invoices; a day with none is not held.
    pub invoices: i64,
}

/// A client's open invoices ([`Invoice::open_due`]) summed by due date.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dues(BTreeMap<NaiveDate, Due>);

impl Dues {
    /// The days, earliest first.
    pub fn iter(&self) -> impl Iterator<Item = (NaiveDate, Due)> + '_ {
        self.0.iter().map(|(day, due)| (*day, *due))
    }

    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.0.keys().copied()
    }

    /// Σ open amount due before `today`, and the earliest such due date.
    pub fn overdue(&self, today: NaiveDate) -> (i64, Option<NaiveDate>) {
        let before = self.0.range(..today);
        let oldest = before.clone().next().map(|(day, _)| *day);
        (before.map(|(_, due)| due.open_minor).sum(), oldest)
    }

    /// One invoice went from `before` to `after` (its [`Invoice::open_due`]). The sums cannot
    /// overflow: each is part of the client's open total, checked as it changes.
    pub fn replace(&mut self, before: Option<(NaiveDate, i64)>, after: Option<(NaiveDate, i64)>) {
        if let Some((day, open)) = before
            && let Some(due) = self.0.get_mut(&day)
        {
            due.open_minor -= open;
            due.invoices -= 1;
            if due.invoices <= 0 {
                self.0.remove(&day);
            }
        }
        if let Some((day, open)) = after {
            let due = self.0.entry(day).or_default();
            due.open_minor += open;
            due.invoices += 1;
        }
    }
}

impl FromIterator<(NaiveDate, Due)> for Dues {
    fn from_iter<I: IntoIterator<Item = (NaiveDate, Due)>>(days: I) -> Self {
        Self(days.into_iter().collect())
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            open_invoices_minor: 0,
            invoices_paid: 0,
            paid_late: 0,
            total_days_late: 0,
            insurance: None,
            insurance_changed_at: None,
            external_score: None,
            legal_status: LegalStatus::None,
            legal_status_changed_at: None,
            open_dues: Dues::default(),
        }
    }
}

/// What `invoice_issued` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub amount_minor: i64,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
    pub decision_id: Option<String>,
}

/// One invoice of a client, created by the first event that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoice {
    pub invoice_id: String,
    /// `None` until `invoice_issued` arrives.
    pub issued: Option<Issued>,
    pub paid_minor: i64,
    pub credited_minor: i64,
    /// The latest `received_on` of its payments.
    pub last_paid_on: Option<NaiveDate>,
    /// The highest dunning level sent.
    pub dunning_level: u8,
    /// When its open amount reached zero.
    pub settled_on: Option<NaiveDate>,
}

impl Invoice {
    pub fn new(invoice_id: &str) -> Self {
        Self {
            invoice_id: invoice_id.to_owned(),
            issued: None,
            paid_minor: 0,
            credited_minor: 0,
            last_paid_on: None,
            dunning_level: 0,
            settled_on: None,
        }
    }

    /// The due date and open amount of an invoice still owed (issued, open amount above
    /// zero): what [`Dues`] sums by due date.
    pub fn open_due(&self) -> Option<(NaiveDate, i64)> {
        let open = self.open_minor();
        self.issued
            .as_ref()
            .filter(|_| open > 0)
            .map(|i| (i.due_on, open))
    }

    /// Issued − paid − credited, never below zero; zero until issued.
    pub fn open_minor(&self) -> i64 {
        self.issued.as_ref().map_or(0, |i| {
            i.amount_minor
                .saturating_sub(self.paid_minor)
                .saturating_sub(self.credited_minor)
                .max(0)
        })
    }

    /// What was paid or credited beyond the invoice (all of it while not issued).
    pub fn excess_minor(&self) -> i64 {
        let received = self.paid_minor.saturating_add(self.credited_minor);
        received
            .saturating_sub(self.issued.as_ref().map_or(0, |i| i.amount_minor))
            .max(0)
    }
}

/// Something the sender should know about an accepted event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub code: &'static str,
    pub message: String,
}

impl Notice {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Applies `event` to the client's ledger and, for invoice events, to its invoice (which the
/// caller creates with [`Invoice::new`] when unknown). On a rejection nothing changed.
pub fn apply(
    ledger: &mut Ledger,
    invoice: Option<&mut Invoice>,
    event: &ClientEvent,
) -> Result<Vec<Notice>, Rejection> {
    let mut notices = Vec::new();
    let day = event.occurred_at.date_naive();
    match (&event.body, invoice) {
        (
            EventBody::InvoiceIssued { .. }
            | EventBody::PaymentReceived { .. }
            | EventBody::CreditNoteIssued { .. }
            | EventBody::DunningSent { .. },
            Some(inv),
        ) => {
            let mut next = inv.clone();
            // The figures are checked on a copy, the dues changed once they pass (not copied
            // for every event).
            let dues = std::mem::take(&mut ledger.open_dues);
            let mut l = ledger.clone();
            ledger.open_dues = dues;
            invoice_event(&mut next, &event.body, day, &mut notices)?;
            let delta = next.open_minor() - inv.open_minor();
            l.open_invoices_minor = add(l.open_invoices_minor, delta)?;
            if inv.settled_on.is_none() && next.settled_on.is_some() && next.paid_minor > 0 {
                count_payment(&mut l, &next)?;
            }
            l.open_dues = std::mem::take(&mut ledger.open_dues);
            l.open_dues.replace(inv.open_due(), next.open_due());
            *inv = next;
            *ledger = l;
        }
        (body, None) if body.invoice_id().is_some() => {
            return Err(Rejection::field(
                "invoice_id",
                "no invoice given to apply the event to",
            ));
        }
        (
            EventBody::InsuranceCoverChanged {
                insurer,
                insured_amount,
                valid_until,
            },
            _,
        ) => {
            if stale(
                ledger.insurance_changed_at,
                event,
                "cover change",
                &mut notices,
            ) {
                return Ok(notices);
            }
            ledger.insurance = (insured_amount.minor() > 0).then(|| Cover {
                insurer: insurer.clone(),
                insured_minor: insured_amount.minor(),
                valid_until: *valid_until,
            });
            ledger.insurance_changed_at = Some(event.occurred_at);
        }
        (
            EventBody::ExternalScoreUpdated {
                provider,
                score,
                as_of,
            },
            _,
        ) => {
            if let Some(held) = &ledger.external_score
                && held.as_of > *as_of
            {
                notices.push(Notice::new(
                    "OLDER_THAN_IN_FORCE",
                    format!("this score is as of {as_of}, older than the one held (as of {}): logged, not applied", held.as_of),
                ));
                return Ok(notices);
            }
            ledger.external_score = Some(ExternalScore {
                provider: provider.clone(),
                score: i64::from(*score),
                as_of: *as_of,
            });
        }
        (EventBody::LegalStatusChanged { legal_status }, _) => {
            if stale(
                ledger.legal_status_changed_at,
                event,
                "legal status change",
                &mut notices,
            ) {
                return Ok(notices);
            }
            ledger.legal_status = *legal_status;
            ledger.legal_status_changed_at = Some(event.occurred_at);
        }
        // Sales alerts are counted while recent and reservations live with decisions: the
        // caller keeps both; the ledger has nothing to change.
        _ => {}
    }
    Ok(notices)
}

fn invoice_event(
    inv: &mut Invoice,
    body: &EventBody<super::money::Money>,
    day: NaiveDate,
    notices: &mut Vec<Notice>,
) -> Result<(), Rejection> {
    let id = inv.invoice_id.clone();
    let open_before = inv.open_minor();
    match body {
        EventBody::InvoiceIssued {
            amount,
            issued_on,
            due_on,
            decision_id,
            ..
        } => {
            if inv.issued.is_some() {
                return Err(Rejection::new(
                    RejectionCode::InvoiceAlreadyIssued,
                    format!(
                        "invoice `{id}` was already issued; send a credit note or a new invoice id to change it"
                    ),
                ));
            }
            inv.issued = Some(Issued {
                amount_minor: amount.minor(),
                issued_on: *issued_on,
                due_on: *due_on,
                decision_id: decision_id.clone(),
            });
            if inv.open_minor() == 0 {
                inv.settled_on = Some(inv.last_paid_on.unwrap_or(*issued_on));
            }
        }
        EventBody::PaymentReceived {
            amount,
            received_on,
            ..
        } => {
            inv.paid_minor = add(inv.paid_minor, amount.minor())?;
            inv.last_paid_on = inv.last_paid_on.max(Some(*received_on));
            excess_notice(
                inv,
                open_before,
                amount.minor(),
                "PAYMENT",
                "payment",
                notices,
            );
            if inv.issued.is_some() && open_before > 0 && inv.open_minor() == 0 {
                inv.settled_on = Some(*received_on);
            }
        }
        EventBody::CreditNoteIssued { amount, .. } => {
            inv.credited_minor = add(inv.credited_minor, amount.minor())?;
            excess_notice(
                inv,
                open_before,
                amount.minor(),
                "CREDIT_NOTE",
                "credit note",
                notices,
            );
            if inv.issued.is_some() && open_before > 0 && inv.open_minor() == 0 {
                inv.settled_on = Some(day);
            }
        }
        EventBody::DunningSent { level, .. } => {
            inv.dunning_level = inv.dunning_level.max(*level);
            if inv.issued.is_none() {
                notices.push(Notice::new(
                    "DUNNING_BEFORE_INVOICE",
                    format!("invoice `{id}` is not known yet: the dunning level is kept on it"),
                ));
            } else if inv.settled_on.is_some() {
                notices.push(Notice::new(
                    "DUNNING_ON_SETTLED_INVOICE",
                    format!(
                        "invoice `{id}` is already settled: the dunning level is recorded only"
                    ),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Says where money that does not reduce an open amount went.
fn excess_notice(
    inv: &Invoice,
    open_before: i64,
    amount: i64,
    code: &'static str,
    what: &str,
    notices: &mut Vec<Notice>,
) {
    let id = &inv.invoice_id;
    if inv.issued.is_none() {
        notices.push(Notice::new(
            if code == "PAYMENT" { "PAYMENT_BEFORE_INVOICE" } else { "CREDIT_NOTE_BEFORE_INVOICE" },
            format!("invoice `{id}` is not known yet: the {what} is kept on it and counts once it is issued"),
        ));
    } else if amount > open_before {
        notices.push(Notice::new(
            if code == "PAYMENT" { "OVERPAYMENT" } else { "CREDIT_NOTE_EXCEEDS_OPEN" },
            format!(
                "the {what} exceeds what was open on invoice `{id}` by {} minor units: the excess is a credit balance on that invoice and reduces no other",
                amount - open_before
            ),
        ));
    }
}

fn count_payment(l: &mut Ledger, inv: &Invoice) -> Result<(), Rejection> {
    l.invoices_paid = add(l.invoices_paid, 1)?;
    if let (Some(issued), Some(paid_on)) = (&inv.issued, inv.last_paid_on) {
        let late = (paid_on - issued.due_on).num_days();
        if late > 0 {
            l.paid_late = add(l.paid_late, 1)?;
            l.total_days_late = add(l.total_days_late, late)?;
        }
    }
    Ok(())
}

/// True (with a notice) when the event occurred before the report in force.
fn stale(
    in_force: Option<DateTime<Utc>>,
    event: &ClientEvent,
    what: &str,
    notices: &mut Vec<Notice>,
) -> bool {
    match in_force {
        Some(at) if event.occurred_at < at => {
            notices.push(Notice::new(
                "OLDER_THAN_IN_FORCE",
                format!(
                    "this {what} occurred at {}, before the one in force ({}): logged, not applied",
                    super::events::rfc3339(event.occurred_at),
                    super::events::rfc3339(at)
                ),
            ));
            true
        }
        _ => false,
    }
}

fn add(a: i64, b: i64) -> Result<i64, Rejection> {
    a.checked_add(b).ok_or_else(|| {
        Rejection::field(
            "amount",
            "the running totals would exceed what can be held exactly",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    /// Issued, paid in part, moved to another due date, settled: each day holds the sum and
    /// the count of what is still open on it, and a day with nothing left goes.
    #[test]
    fn dues_follow_each_invoice() {
        let mut dues = Dues::default();
        dues.replace(None, Some((day(10), 500)));
        dues.replace(None, Some((day(10), 300)));
        dues.replace(None, Some((day(20), 100)));
        dues.replace(Some((day(10), 500)), Some((day(10), 200)));
        let held: Vec<_> = dues.iter().collect();
        assert_eq!(
            held,
            [
                (
                    day(10),
                    Due {
                        open_minor: 500,
                        invoices: 2
                    }
                ),
                (
                    day(20),
                    Due {
                        open_minor: 100,
                        invoices: 1
                    }
                )
            ]
        );
        assert_eq!(dues.overdue(day(10)), (0, None), "due today is not overdue");
        assert_eq!(dues.overdue(day(11)), (500, Some(day(10))));
        assert_eq!(dues.overdue(day(21)), (600, Some(day(10))));
        dues.replace(Some((day(10), 300)), Some((day(25), 300)));
        dues.replace(Some((day(10), 200)), None);
        assert_eq!(dues.dates().collect::<Vec<_>>(), [day(20), day(25)]);
        dues.replace(Some((day(20), 100)), None);
        dues.replace(Some((day(25), 300)), None);
        assert_eq!(dues, Dues::default());
    }
}
