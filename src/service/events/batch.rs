//! Batches inside their write transaction: load what the events touch, decide each event in
//! order against the state the earlier ones left, then write everything and review once per
//! client.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Draft, EventResult, EventStatus, Ingested};
use crate::audit::canonical_json;
use crate::domain::events::{ClientEvent, EventBody, EventDraft, Rejection, RejectionCode};
use crate::domain::ledger::Ledger;
use crate::domain::ledger::{self, Invoice, Notice};
use crate::domain::{Client, Insurance, Money};
use crate::policy::Trigger;
use crate::service::policies::PolicyRegistry;
use crate::service::reviews::{self, Cause, ReviewRef};
use crate::service::{ServiceError, shared};
use crate::store::alerts::{self, AlertRow};
use crate::store::events::{self as log, NewEvent};
use crate::store::ledgers::{self, Account};
use crate::store::moment::Moment;
use crate::store::reservations::{self, Settlement};
use crate::store::{AnyConnection, clients, invoices, live};

/// An event ready to apply: itself, its normalised JSON, that JSON in canonical form (what the
/// log stores) and its sha256.
type Ready = (ClientEvent, Value, String, String);

/// The batches of one transaction while their events are decided: batches join it one call
/// of [`Batch::add`] after another (the event writer adds those that arrive meanwhile), then
/// [`Batch::finish`] writes everything and reviews each client once.
pub(super) struct Batch<'a> {
    actor: &'a str,
    now: DateTime<Utc>,
    accounts: HashMap<String, Account>,
    /// Logged before this transaction: event id → (client, sha256).
    known: HashMap<String, (String, String)>,
    /// Accepted earlier in this transaction: event id → sha256.
    seen: HashMap<String, String>,
    invoices: HashMap<(String, String), Invoice>,
    dirty_invoices: Vec<(String, String)>,
    new_events: Vec<NewEvent>,
    alerts: Vec<(String, String, bool, DateTime<Utc>)>,
    /// Clients with accepted events → those events' JSON, in order.
    touched: BTreeMap<String, Vec<Value>>,
    /// Each batch's results so far, and the clients it had events accepted for.
    answered: Vec<(Vec<EventResult>, BTreeSet<String>)>,
}

/// What the batch's events touch, as stored before it: the events already logged under their
/// ids (id → client, sha256) and the invoices they name.
type Found = (
    HashMap<String, (String, String)>,
    HashMap<(String, String), Invoice>,
);

/// Resolves every draft (see [`resolve`]) while reading what the drafts touch. Resolving (the
/// canonical JSON and its sha256) needs no database, so a helper thread starts on it at once
/// and the writer joins in once it has read (see [`shared::map_while`]); the ids read come from
/// the drafts, whatever resolving makes of them.
#[expect(clippy::type_complexity, reason = "one result per draft, per batch")]
fn resolve_while_reading(
    conn: &mut AnyConnection,
    batches: &[&[Draft]],
    accounts: &HashMap<String, Account>,
) -> Result<(Vec<Vec<Result<Ready, Rejection>>>, Found), ServiceError> {
    let drafts: Vec<&EventDraft> = batches
        .iter()
        .flat_map(|drafts| drafts.iter())
        .filter_map(|(_, d)| d.as_ref().ok())
        .filter(|d| accounts.contains_key(d.client_id.as_str()))
        .collect();
    let all: Vec<&Draft> = batches.iter().flat_map(|drafts| drafts.iter()).collect();
    let (resolved, found) = shared::map_while(
        "resolve-helper",
        &all,
        |(_, draft)| resolve(draft, accounts),
        || read_found(conn, &drafts),
    );
    let mut resolved = resolved.into_iter();
    let ready = batches
        .iter()
        .map(|drafts| resolved.by_ref().take(drafts.len()).collect())
        .collect();
    Ok((ready, found?))
}

/// [`Found`] for these drafts.
fn read_found(conn: &mut AnyConnection, drafts: &[&EventDraft]) -> Result<Found, ServiceError> {
    let ids: Vec<&str> = drafts.iter().map(|d| d.event_id.as_str()).collect();
    let known = log::known(conn, &ids)?;
    let mut invoice_keys: Vec<(&str, &str)> = drafts
        .iter()
        .filter_map(|d| d.body.invoice_id().map(|id| (d.client_id.as_str(), id)))
        .collect();
    invoice_keys.sort_unstable();
    invoice_keys.dedup();
    let invoices = if invoice_keys.is_empty() {
        HashMap::new()
    } else {
        invoices::find_many(conn, &invoice_keys)?
    };
    Ok((known, invoices))
}

/// Makes a draft exact in its client's currency, with its normalised JSON and digest.
fn resolve(
    draft: &Result<EventDraft, Rejection>,
    accounts: &HashMap<String, Account>,
) -> Result<Ready, Rejection> {
    let draft = draft.as_ref().map_err(Clone::clone)?;
    let account = accounts.get(draft.client_id.as_str()).ok_or_else(|| {
        Rejection::new(
            RejectionCode::UnknownClient,
            format!(
                "client `{}` is unknown; create it with PUT /v1/clients/{{client_id}} first",
                draft.client_id
            ),
        )
    })?;
    let event = draft.clone().resolve(account.currency)?;
    let json = event.to_json();
    let canonical = canonical_json(&json);
    let sha = hex::encode(Sha256::digest(canonical.as_bytes()));
    Ok((event, json, canonical, sha))
}

impl<'a> Batch<'a> {
    pub(super) fn new(actor: &'a str, now: DateTime<Utc>) -> Self {
        Self {
            actor,
            now,
            accounts: HashMap::new(),
            known: HashMap::new(),
            seen: HashMap::new(),
            invoices: HashMap::new(),
            dirty_invoices: Vec::new(),
            new_events: Vec::new(),
            alerts: Vec::new(),
            touched: BTreeMap::new(),
            answered: Vec::new(),
        }
    }

    /// Decides the events of more batches, each after the ones already added: locks the
    /// clients not locked yet, reads the event ids and invoices the batches name (an invoice
    /// already in memory, changed by an earlier batch, stays as it is) and decides each event.
    /// On PostgreSQL the clients of a later call are locked after those of earlier ones, not
    /// in one id order: only SQLite's event writer adds batches to a transaction under way
    /// (its transaction holds the whole database), and the tests one transaction at a time.
    pub(super) fn add(
        &mut self,
        conn: &mut AnyConnection,
        batches: &[&[Draft]],
    ) -> Result<(), ServiceError> {
        if batches.is_empty() {
            return Ok(());
        }
        let mut client_ids: Vec<&str> = batches
            .iter()
            .flat_map(|drafts| drafts.iter())
            .filter_map(|(_, d)| d.as_ref().ok())
            .map(|d| d.client_id.as_str())
            .filter(|id| !self.accounts.contains_key(*id))
            .collect();
        client_ids.sort_unstable();
        client_ids.dedup();
        for account in ledgers::lock_many(conn, &client_ids)? {
            self.accounts.insert(account.client_id.to_string(), account);
        }
        let (ready, (known, invoices)) = resolve_while_reading(conn, batches, &self.accounts)?;
        self.known.extend(known);
        for (key, invoice) in invoices {
            self.invoices.entry(key).or_insert(invoice);
        }
        self.new_events
            .reserve(ready.iter().flatten().filter(|r| r.is_ok()).count());
        for (drafts, ready) in batches.iter().zip(ready) {
            let mut results = Vec::with_capacity(drafts.len());
            let mut named = BTreeSet::new();
            for ((event_id, _), item) in drafts.iter().zip(ready) {
                let (status, notices) = match item {
                    Err(rejection) => (EventStatus::Rejected(rejection), Vec::new()),
                    Ok(ready) => {
                        let client = ready.0.client_id.to_string();
                        let decided = self.decide(conn, ready)?;
                        if matches!(decided.0, EventStatus::Accepted) {
                            named.insert(client);
                        }
                        decided
                    }
                };
                results.push(EventResult {
                    event_id: event_id.clone(),
                    status,
                    notices,
                });
            }
            self.answered.push((results, named));
        }
        Ok(())
    }

    /// Writes the invoices, the log and the reviews of every batch added, and answers each.
    pub(super) fn finish(
        mut self,
        conn: &mut AnyConnection,
        registry: &PolicyRegistry,
    ) -> Result<Vec<Ingested>, ServiceError> {
        self.write_invoices(conn)?;
        let reviews = self.review(conn, registry)?;
        Ok(self
            .answered
            .into_iter()
            .map(|(results, named)| Ingested {
                results,
                reviews: reviews
                    .iter()
                    .filter(|r| named.contains(&r.client_id))
                    .cloned()
                    .collect(),
            })
            .collect())
    }

    /// Accepts, recognises as a duplicate, or rejects one event.
    fn decide(
        &mut self,
        conn: &mut AnyConnection,
        (event, json, canonical, sha): Ready,
    ) -> Result<(EventStatus, Vec<Notice>), ServiceError> {
        let rejected = |r: Rejection| Ok((EventStatus::Rejected(r), Vec::new()));
        let earlier = self
            .seen
            .get(&event.event_id)
            .or_else(|| self.known.get(&event.event_id).map(|(_, s)| s));
        if let Some(earlier) = earlier {
            if *earlier == sha {
                return Ok((EventStatus::Duplicate, Vec::new()));
            }
            return rejected(Rejection::new(
                RejectionCode::IdempotencyConflict,
                format!(
                    "event `{}` was already received with another body; an event id names one event forever",
                    event.event_id
                ),
            ));
        }
        let client = event.client_id.to_string();
        let (settle, mut notices) = match self.check_reservation(conn, &event)? {
            Ok(found) => found,
            Err(r) => return rejected(r),
        };
        let Some(account) = self.accounts.get_mut(&client) else {
            return Err(ServiceError::Internal(format!(
                "account `{client}` not loaded"
            )));
        };
        let key = event
            .body
            .invoice_id()
            .map(|id| (client.clone(), id.to_owned()));
        let invoice = key.as_ref().map(|k| {
            self.invoices
                .entry(k.clone())
                .or_insert_with(|| Invoice::new(&k.1))
        });
        match ledger::apply(&mut account.ledger, invoice, &event) {
            Ok(more) => notices.extend(more),
            Err(r) => return rejected(r),
        }
        if let Some((decision_id, how)) = settle {
            let by = format!("event:{}", event.event_id);
            reservations::settle(conn, &decision_id, how, &by, self.now.naive_utc())?;
        }
        if let Some(k) = key {
            self.dirty_invoices.push(k);
        }
        if let EventBody::SalesAlert { sentiment, .. } = &event.body {
            let negative = *sentiment == crate::domain::events::Sentiment::Negative;
            self.alerts.push((
                event.event_id.clone(),
                client.clone(),
                negative,
                event.occurred_at,
            ));
        }
        self.new_events.push(NewEvent {
            event_id: event.event_id.clone(),
            client_id: client.clone(),
            event_type: event.event_type().as_str().to_owned(),
            occurred_at: Moment(event.occurred_at.naive_utc()),
            received_at: Moment(self.now.naive_utc()),
            received_by: self.actor.to_owned(),
            body_sha256: sha.clone(),
            body: canonical,
        });
        self.seen.insert(event.event_id, sha);
        self.touched.entry(client).or_default().push(json);
        Ok((EventStatus::Accepted, notices))
    }

    /// The reservation an event settles, if any. `invoice_issued` with a `decision_id` turns
    /// an active reservation into the invoice; one no longer active (expired, released, or
    /// invoiced already — an order invoiced in several parts) leaves the invoice accepted,
    /// with a notice. `order_cancelled` releases an active reservation and is refused
    /// otherwise. A decision unknown for this client is refused either way.
    #[expect(clippy::type_complexity, reason = "local result of a local check")]
    fn check_reservation(
        &self,
        conn: &mut AnyConnection,
        event: &ClientEvent,
    ) -> Result<Result<(Option<(String, Settlement)>, Vec<Notice>), Rejection>, ServiceError> {
        let (decision_id, how) = match &event.body {
            EventBody::InvoiceIssued {
                decision_id: Some(d),
                ..
            } => (d, Settlement::Invoiced),
            EventBody::OrderCancelled { decision_id } => (decision_id, Settlement::Released),
            _ => return Ok(Ok((None, Vec::new()))),
        };
        let found = reservations::get(conn, decision_id)?
            .filter(|r| r.client_id == event.client_id.as_str());
        let Some(r) = found else {
            return Ok(Err(Rejection::new(
                RejectionCode::UnknownDecision,
                format!(
                    "client `{}` has no credit decision `{decision_id}` holding a reservation",
                    event.client_id
                ),
            )));
        };
        if r.holds_at(self.now.naive_utc()) {
            return Ok(Ok((Some((decision_id.clone(), how)), Vec::new())));
        }
        let state = if r.status == "active" {
            "expired"
        } else {
            r.status.as_str()
        };
        let why = format!("the reservation of credit decision `{decision_id}` is {state}");
        Ok(match how {
            Settlement::Released => Err(Rejection::new(
                RejectionCode::ReservationNotActive,
                format!("{why}: there is nothing left to cancel"),
            )),
            _ => Ok((
                None,
                vec![Notice::new(
                    "RESERVATION_NOT_ACTIVE",
                    format!("{why}: the invoice is recorded, no reservation is converted"),
                )],
            )),
        })
    }

    /// Re-scores and reviews each client with accepted events, once, on its new state; its
    /// projection is written with the review. The clients, their open invoices, recent alerts
    /// and reservations are read for all of them at once, after the batch's invoices are
    /// written; its alerts, not logged yet, are counted in memory. Their pipelines run while
    /// the batch's log is written (see [`reviews::run_many_while`]).
    fn review(
        &self,
        conn: &mut AnyConnection,
        registry: &PolicyRegistry,
    ) -> Result<Vec<ReviewRef>, ServiceError> {
        if self.touched.is_empty() {
            return self.write_log(conn).map(|()| Vec::new());
        }
        let active = registry.active(conn)?;
        let ids: Vec<&str> = self.touched.keys().map(String::as_str).collect();
        let unlogged: Vec<live::UnloggedAlert<'_>> = self
            .alerts
            .iter()
            .map(|(_, client, negative, at)| (client.as_str(), *negative, *at))
            .collect();
        let mut read: HashMap<String, (Client, live::Reviewing)> =
            clients::find_many_for_review(conn, &ids, &unlogged, self.now)?
                .into_iter()
                .map(|(c, extra)| (c.client_id.to_string(), (c, extra)))
                .collect();
        let mut reads = Vec::with_capacity(self.touched.len());
        for (client, events) in &self.touched {
            let Some(account) = self.accounts.get(client) else {
                continue;
            };
            let (mut c, extra) = read.remove(client).ok_or_else(|| ServiceError::NotFound {
                what: format!("client `{client}`"),
            })?;
            with_ledger(&mut c, &account.ledger, self.now);
            let r = reviews::Read {
                client: c,
                open_due_dates: account.ledger.open_dues.dates().collect(),
                recent_alerts: extra.recent_alerts,
                ledger: Some(&account.ledger),
            };
            reads.push((r, Cause::Events(events)));
        }
        let stages = active.stages(Trigger::ClientEvent);
        let (runs, logged) =
            reviews::run_many_while(registry, stages, &reads, self.now, || self.write_log(conn));
        logged?;
        let mut reviews = Vec::new();
        for ((r, cause), ran) in reads.into_iter().zip(runs) {
            if let Some(review) =
                reviews::record(conn, stages, r, ran?, &cause, self.actor, self.now)?
            {
                reviews.push(review);
            }
        }
        Ok(reviews)
    }

    /// Writes the invoices the batch changed (the client-level projection, their sums by due
    /// date included, is written with the review).
    fn write_invoices(&mut self, conn: &mut AnyConnection) -> Result<(), ServiceError> {
        self.dirty_invoices.sort_unstable();
        self.dirty_invoices.dedup();
        let dirty: Vec<(&str, &Invoice)> = self
            .dirty_invoices
            .iter()
            .filter_map(|key| self.invoices.get(key).map(|inv| (key.0.as_str(), inv)))
            .collect();
        if !dirty.is_empty() {
            invoices::upsert_many(conn, &dirty)?;
        }
        Ok(())
    }

    /// Logs the accepted events and stores their sales alerts.
    fn write_log(&self, conn: &mut AnyConnection) -> Result<(), ServiceError> {
        if self.new_events.is_empty() {
            return Ok(());
        }
        let seqs = log::insert_many(conn, &self.new_events)?;
        let alert_rows: Vec<AlertRow> = self
            .alerts
            .iter()
            .filter_map(|(event_id, client, negative, at)| {
                seqs.get(event_id)
                    .map(|seq| AlertRow::new(*seq, client, *negative, *at))
            })
            .collect();
        alerts::insert_many(conn, &alert_rows)?;
        Ok(())
    }
}

/// The client as read, with the projection of this batch in place of the stored one (not
/// written yet): what `clients::find_at` would read once it is.
fn with_ledger(client: &mut Client, ledger: &Ledger, now: DateTime<Utc>) {
    let money = |minor| Money::from_minor(minor, client.currency);
    let state = &mut client.state;
    state.open_invoices = money(ledger.open_invoices_minor);
    state.invoices_paid = ledger.invoices_paid;
    state.paid_late = ledger.paid_late;
    state.total_days_late = ledger.total_days_late;
    state.insurance = ledger.insurance.as_ref().map(|c| Insurance {
        insurer: c.insurer.clone(),
        insured_amount: money(c.insured_minor),
        valid_until: c.valid_until,
    });
    state.external_score = ledger.external_score.clone();
    state.legal_status = ledger.legal_status;
    let (overdue, oldest) = ledger.open_dues.overdue(now.date_naive());
    state.overdue = money(overdue);
    state.oldest_overdue_due_on = oldest;
    client.updated_at = now;
}
