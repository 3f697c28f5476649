//! Shadow challenger: a policy version evaluated beside the active one on live decisions. The
//! champion alone decides; after the commit, each decision a run samples is re-run off the
//! request's path (see [`feed`] and [`worker`]) and both sides' terms are stored, so the report
//! is the backtest's [`Comparison`] over the traffic seen, from every server process.
//!
//! One run per policy at a time: a second start is a conflict (409) rather than a silent
//! replacement that would mix two challengers in one report.

mod feed;
mod worker;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

pub use feed::ShadowFeed;
pub use worker::REFRESH;

use super::ServiceError;
use super::challenge::{Comparison, TermsSummary};
use super::policies::{now, registry::runs_in};
use crate::audit::{self, Entry};
use crate::policy::Trigger;
use crate::store::policies as policy_table;
use crate::store::shadow::{self as table, RunRow};
use crate::store::{AnyConnection, Store, StoreError, write_tx_retrying};

/// A decision the challenger would have answered differently.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowChange {
    pub decision_id: String,
    /// The decision's audit record.
    pub sequence: i64,
    pub client_id: String,
    /// What was answered (by the champion).
    pub recorded: TermsSummary,
    pub challenger: TermsSummary,
}

/// A shadow run and what its challenger did on the decisions seen so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowReport {
    pub policy: String,
    pub version: i32,
    /// The share of decisions shadowed, in (0, 1].
    pub sample_rate: f64,
    /// The run's id: the audit record of its start. Only later decisions are shadowed.
    pub started_sequence: i64,
    pub started_at: DateTime<Utc>,
    pub started_by: String,
    /// The audit record of its stop; decisions recorded after it are not counted.
    pub stopped_sequence: Option<i64>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub stopped_by: Option<String>,
    /// Decisions compared.
    pub seen: u64,
    /// Sampled decisions not compared: the shadow queue was full, or the snapshot could not
    /// be re-run (logged).
    pub skipped: u64,
    pub comparison: Comparison,
    /// Changed decisions in record order, one page.
    pub changes: Vec<ShadowChange>,
    /// The last change of this page when more follow.
    #[serde(skip)]
    pub more_after: Option<i64>,
}

/// Which changes to list: those after `after` (a decision's sequence), at most `limit`.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub after: Option<i64>,
    pub limit: usize,
}

/// Starts shadowing version `number` of `name`: 404 unknown, 422 not a `credit_request`
/// stage (or one without an active version to stand beside), 409 when a run of that policy
/// goes on. This process shadows from its next decision, other processes within [`REFRESH`].
pub async fn start(
    store: &Store,
    feed: ShadowFeed,
    name: String,
    number: i32,
    sample_rate: Decimal,
    actor: String,
) -> Result<ShadowReport, ServiceError> {
    store
        .run(move |conn| {
            let run = write_tx_retrying(conn, |conn| {
                start_in_tx(conn, &name, number, sample_rate, &actor)
            })?;
            reload(&feed, conn);
            report_of(conn, run, Page::first())
        })
        .await
}

fn start_in_tx(
    conn: &mut AnyConnection,
    name: &str,
    number: i32,
    sample_rate: Decimal,
    actor: &str,
) -> Result<RunRow, ServiceError> {
    let (policy, version) = crate::service::policies::stage_and_version(conn, name, number, true)?;
    if !runs_in(&policy.trigger_name, Trigger::CreditRequest) {
        return Err(ServiceError::invalid(
            "name",
            format!(
                "`{name}` is a `{}` stage; only stages of the credit_request pipeline shadow decisions",
                policy.trigger_name
            ),
        ));
    }
    if policy.active_version.is_none() {
        return Err(ServiceError::invalid(
            "name",
            format!("`{name}` has no active version for a challenger to stand beside"),
        ));
    }
    if let Some(run) = table::active_for(conn, name)? {
        return Err(ServiceError::Conflict(format!(
            "version {} of `{name}` has been shadowed since record {}; stop it first",
            run.version, run.started_sequence
        )));
    }
    let audit = audit::append(
        conn,
        Entry::on_policy(
            "policy.shadow_started",
            name,
            actor,
            json!({
                "policy": name,
                "version": number,
                "sha256": version.sha256,
                "sample_rate": sample_rate.normalize().to_string(),
            }),
        ),
    )?;
    let row = RunRow {
        started_sequence: audit.sequence,
        policy: name.to_owned(),
        version: number,
        sample_rate: sample_rate.normalize().to_string(),
        started_at: now(),
        started_by: actor.to_owned(),
        stopped_sequence: None,
        stopped_at: None,
        stopped_by: None,
        skipped: 0,
    };
    table::insert_run(conn, &row)?;
    Ok(row)
}

/// Stops the run of version `number` of `name` (404 when none runs) and reports it. Decisions
/// recorded before the stop that are still queued are added to the report when compared.
pub async fn stop(
    store: &Store,
    feed: ShadowFeed,
    name: String,
    number: i32,
    actor: String,
    page: Page,
) -> Result<ShadowReport, ServiceError> {
    store
        .run(move |conn| {
            let run = write_tx_retrying(conn, |conn| stop_in_tx(conn, &name, number, &actor))?;
            reload(&feed, conn);
            report_of(conn, run, page)
        })
        .await
}

fn stop_in_tx(
    conn: &mut AnyConnection,
    name: &str,
    number: i32,
    actor: &str,
) -> Result<RunRow, ServiceError> {
    policy_table::get_locked(conn, name)?;
    let mut run = table::active_for(conn, name)?
        .filter(|run| run.version == number)
        .ok_or_else(|| ServiceError::NotFound {
            what: format!("a running shadow of version {number} of policy `{name}`"),
        })?;
    let audit = audit::append(
        conn,
        Entry::on_policy(
            "policy.shadow_stopped",
            name,
            actor,
            json!({
                "policy": name,
                "version": number,
                "started_sequence": run.started_sequence,
            }),
        ),
    )?;
    let at = now();
    table::stop(conn, run.started_sequence, audit.sequence, at, actor)?;
    run.stopped_sequence = Some(audit.sequence);
    run.stopped_at = Some(at);
    run.stopped_by = Some(actor.to_owned());
    Ok(run)
}

/// The latest run of version `number` of `name`, running or stopped.
pub async fn report(
    store: &Store,
    name: String,
    number: i32,
    page: Page,
) -> Result<ShadowReport, ServiceError> {
    store
        .run(move |conn| {
            let run =
                table::latest(conn, &name, number)?.ok_or_else(|| ServiceError::NotFound {
                    what: format!("a shadow run of version {number} of policy `{name}`"),
                })?;
            report_of(conn, run, page)
        })
        .await
}

/// A failed reload is not the caller's failure: the shadow thread re-reads within [`REFRESH`].
fn reload(feed: &ShadowFeed, conn: &mut AnyConnection) {
    if let Err(e) = feed.reload(conn) {
        tracing::warn!(error = %e, "shadow runs not reloaded; the next refresh will");
    }
}

fn report_of(
    conn: &mut AnyConnection,
    run: RunRow,
    page: Page,
) -> Result<ShadowReport, ServiceError> {
    let mut comparison = Comparison::default();
    let mut changes = Vec::new();
    let mut more_after = None;
    for row in table::results(conn, run.started_sequence, run.stopped_sequence)? {
        let recorded = summary(&row.recorded)?;
        let challenger = summary(&row.challenger)?;
        let changed = comparison.add(&recorded, &challenger);
        if !changed || page.after.is_some_and(|after| row.sequence <= after) {
            continue;
        }
        if changes.len() == page.limit {
            more_after = changes.last().map(|c: &ShadowChange| c.sequence);
            continue;
        }
        changes.push(ShadowChange {
            decision_id: row.decision_id,
            sequence: row.sequence,
            client_id: row.client_id,
            recorded,
            challenger,
        });
    }
    Ok(ShadowReport {
        sample_rate: run
            .sample_rate
            .parse::<Decimal>()
            .ok()
            .and_then(|r| r.to_f64())
            .ok_or_else(|| StoreError::corrupt(format!("sample rate `{}`", run.sample_rate)))?,
        policy: run.policy,
        version: run.version,
        started_sequence: run.started_sequence,
        started_at: run.started_at.and_utc(),
        started_by: run.started_by,
        stopped_sequence: run.stopped_sequence,
        stopped_at: run.stopped_at.map(|at| at.and_utc()),
        stopped_by: run.stopped_by,
        seen: comparison.compared,
        skipped: u64::try_from(run.skipped).unwrap_or_default(),
        comparison,
        changes,
        more_after,
    })
}

fn summary(json: &str) -> Result<TermsSummary, StoreError> {
    serde_json::from_str(json).map_err(StoreError::corrupt)
}

impl Page {
    pub fn first() -> Self {
        Self {
            after: None,
            limit: 50,
        }
    }
}
