//! Rebuilding a client's projection from its event log, with the same rule the incremental
//! path uses (`domain::ledger::apply`), and saying what differed. Risk, limit and status are
//! not projections but decisions already recorded (audit records): they are left alone.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ServiceError;
use crate::domain::events::{ClientEvent, EventBody, Sentiment};
use crate::domain::ledger::{self, Invoice, Ledger};
use crate::domain::{ClientId, Currency};
use crate::store::alerts::{self, AlertRow};
use crate::store::{AnyConnection, StoreError, events, invoices, ledgers, write_tx};

/// Everything the events make of a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Projection {
    pub ledger: Ledger,
    pub invoices: BTreeMap<String, Invoice>,
    /// (event seq, negative?) of its sales alerts.
    pub alerts: Vec<(i64, bool)>,
}

/// The outcome for one client.
#[derive(Debug)]
pub struct Rebuilt {
    pub client_id: String,
    pub events: usize,
    /// What the stored projection had wrong, in words; empty when it was exact.
    pub differences: Vec<String>,
}

/// Replays the client's log and compares with what is stored; with `write`, replaces the
/// stored projection by the replayed one when they differ.
pub fn rebuild_client(
    conn: &mut AnyConnection,
    id: &ClientId,
    write: bool,
    now: DateTime<Utc>,
) -> Result<Rebuilt, ServiceError> {
    write_tx(conn, |conn| {
        let account = ledgers::lock_many(conn, &[id.as_str()])?
            .pop()
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("client `{id}`"),
            })?;
        let Replayed {
            projection: replayed,
            events: count,
            alert_times,
        } = replay(conn, id, account.currency)?;
        let stored = Projection {
            ledger: account.ledger,
            invoices: invoices::for_client(conn, id.as_str())?
                .into_iter()
                .map(|i| (i.invoice_id.clone(), i))
                .collect(),
            alerts: alerts::for_client(conn, id.as_str())?,
        };
        let differences = differences(&stored, &replayed);
        if write && !differences.is_empty() {
            store(conn, id, &replayed, &alert_times, now)?;
        }
        Ok(Rebuilt {
            client_id: id.to_string(),
            events: count,
            differences,
        })
    })
}

/// A replay: the projection, how many events made it, when each sales alert occurred.
pub struct Replayed {
    pub projection: Projection,
    pub events: usize,
    pub alert_times: BTreeMap<i64, DateTime<Utc>>,
}

/// The projection of the client's logged events, from nothing.
pub fn replay(
    conn: &mut AnyConnection,
    id: &ClientId,
    currency: Currency,
) -> Result<Replayed, ServiceError> {
    const PAGE: i64 = 5_000;
    let mut p = Projection {
        ledger: Ledger::default(),
        invoices: BTreeMap::new(),
        alerts: Vec::new(),
    };
    let (mut after, mut count) = (0, 0);
    let mut alert_times = BTreeMap::new();
    loop {
        let page = events::replay_page(conn, id.as_str(), after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in page {
            count += 1;
            let corrupt =
                |what: String| StoreError::corrupt(format!("event `{}`: {what}", row.event_id));
            let json: Value =
                serde_json::from_str(&row.body).map_err(|e| corrupt(e.to_string()))?;
            let event = ClientEvent::from_json(&json, currency).map_err(corrupt)?;
            let invoice = event.body.invoice_id().map(|inv| {
                p.invoices
                    .entry(inv.to_owned())
                    .or_insert_with(|| Invoice::new(inv))
            });
            ledger::apply(&mut p.ledger, invoice, &event)
                .map_err(|r| corrupt(format!("no longer applies: {}", r.detail)))?;
            if let EventBody::SalesAlert { sentiment, .. } = event.body {
                p.alerts.push((row.seq, sentiment == Sentiment::Negative));
                alert_times.insert(row.seq, row.occurred_at.and_utc());
            }
        }
    }
    Ok(Replayed {
        projection: p,
        events: count,
        alert_times,
    })
}

fn store(
    conn: &mut AnyConnection,
    id: &ClientId,
    p: &Projection,
    times: &BTreeMap<i64, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let client = id.as_str();
    invoices::delete_for_client(conn, client)?;
    let rows: Vec<(&str, &Invoice)> = p.invoices.values().map(|i| (client, i)).collect();
    invoices::insert_many(conn, &rows)?;
    alerts::delete_for_client(conn, client)?;
    let rows: Vec<AlertRow> = p
        .alerts
        .iter()
        .filter_map(|(seq, negative)| {
            times
                .get(seq)
                .map(|at| AlertRow::new(*seq, client, *negative, *at))
        })
        .collect();
    alerts::insert_many(conn, &rows)?;
    ledgers::save(conn, client, &p.ledger, now)?;
    Ok(())
}

fn differences(stored: &Projection, replayed: &Projection) -> Vec<String> {
    let mut out = Vec::new();
    if stored.ledger != replayed.ledger {
        out.push(format!(
            "client figures: stored {:?}, replayed {:?}",
            stored.ledger, replayed.ledger
        ));
    }
    for (id, inv) in &replayed.invoices {
        match stored.invoices.get(id) {
            Some(s) if s == inv => {}
            Some(s) => out.push(format!("invoice `{id}`: stored {s:?}, replayed {inv:?}")),
            None => out.push(format!("invoice `{id}`: missing")),
        }
    }
    for id in stored
        .invoices
        .keys()
        .filter(|id| !replayed.invoices.contains_key(*id))
    {
        out.push(format!("invoice `{id}`: stored but no event names it"));
    }
    if stored.alerts != replayed.alerts {
        out.push(format!(
            "sales alerts: stored {:?}, replayed {:?}",
            stored.alerts, replayed.alerts
        ));
    }
    out
}
