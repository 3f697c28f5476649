//! Backtest: logged decisions re-run from their audit snapshots with one policy version in
//! place of the version of that stage they recorded (every other stage as recorded), compared
//! with what was answered. Nothing is written: a credit manager sees what a version would have
//! done before putting it live.

mod run;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ServiceError;
use super::challenge::{Comparison, TermsSummary};
use super::policies::PolicyRegistry;
use crate::store::Store;
use crate::store::audit::{self as audit_table, RecordFilter};
use crate::store::policies as policy_table;

pub use run::StageCache;

/// The most decisions one backtest re-runs: about five seconds of both cores.
pub const MAX_DECISIONS: u32 = 100_000;

/// Which decisions a backtest re-runs: the most recent `limit` decided in `[from, to)`, none
/// recorded after `upto` (so that the pages of one backtest's changes read the same window).
#[derive(Clone, Debug)]
pub struct Window {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: u32,
    /// The last audit sequence considered; the log's head when `None`.
    pub upto: Option<i64>,
}

/// Which changed decisions to list: those past the `after` sequence, `limit` of them.
#[derive(Clone, Copy, Debug)]
pub struct ChangesPage {
    pub after: Option<i64>,
    pub limit: usize,
}

/// Decisions left out, by why.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Skipped {
    pub total: u64,
    /// The stage did not run in that decision (it did not exist yet, or belongs to the
    /// `client_event` pipeline only).
    pub stage_not_run: u64,
    /// A version the decision recorded for another stage is missing or its source changed.
    pub version_missing: u64,
    /// The record's snapshot does not read (verify the chain).
    pub unreadable: u64,
}

impl Skipped {
    fn merge(&mut self, other: &Skipped) {
        self.total += other.total;
        self.stage_not_run += other.stage_not_run;
        self.version_missing += other.version_missing;
        self.unreadable += other.unreadable;
    }
}

/// A decision the version would have changed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Change {
    pub sequence: i64,
    pub decision_id: String,
    pub client_id: Option<String>,
    pub recorded: TermsSummary,
    pub challenger: TermsSummary,
}

/// What a backtest found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Backtest {
    pub policy: String,
    pub version: i32,
    pub sha256: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: u32,
    /// The last audit sequence the window reached.
    pub upto: i64,
    /// Decisions re-run (`comparison.compared`).
    pub replayed: u64,
    /// Decisions whose outcome, approved amount, deposit or terms would differ.
    pub changed: u64,
    pub skipped: Skipped,
    pub comparison: Comparison,
    /// One page of the changed decisions, in sequence order.
    pub changes: Vec<Change>,
    #[serde(skip)]
    pub more_changes: bool,
    pub duration_ms: u64,
}

/// Backtests version `version` of stage `policy` over `window`.
pub async fn backtest(
    store: &Store,
    registry: Arc<PolicyRegistry>,
    policy: String,
    version: i32,
    window: Window,
    page: ChangesPage,
) -> Result<Backtest, ServiceError> {
    store
        .run(move |conn| {
            let started = Instant::now();
            let row = policy_table::version(conn, &policy, version)?.ok_or_else(|| {
                ServiceError::NotFound {
                    what: format!("version {version} of policy `{policy}`"),
                }
            })?;
            let challenger = registry.stage(&row)?;
            let cache = StageCache::load(conn, &registry)?;
            let upto = match window.upto {
                Some(upto) => upto,
                None => audit_table::head(conn)?.0,
            };
            let filter = RecordFilter {
                kind: Some(super::audit::DECISION_KIND.into()),
                from: window.from.map(|t| t.naive_utc()),
                to: window.to.map(|t| t.naive_utc()),
                ..RecordFilter::default()
            };
            // No wall-clock cap: on a busy machine a stage would now and then run out of time
            // and show as a change that is none.
            let engine = registry.engine().without_deadline();
            let scope = run::Scope {
                engine: &engine,
                cache: &cache,
                challenger: &challenger,
                changes_after: page.after,
            };
            let mut tally = run::run(conn, &scope, &filter, window.limit, upto)?;
            tally.changes.sort_by_key(|c| c.sequence);
            let more_changes = tally.changes.len() > page.limit;
            tally.changes.truncate(page.limit);
            Ok(Backtest {
                policy,
                version,
                sha256: row.sha256,
                from: window.from,
                to: window.to,
                limit: window.limit,
                upto,
                replayed: tally.comparison.compared,
                changed: tally.comparison.changed,
                skipped: tally.skipped,
                comparison: tally.comparison,
                changes: tally.changes,
                more_changes,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            })
        })
        .await
}
