//! The backtest's engine room: the calling thread reads pages of records while one worker per
//! core parses and re-runs them, each with its own tally, merged at the end.

use std::collections::HashMap;
use std::num::NonZero;
use std::sync::{Mutex, mpsc};
use std::thread;

use super::{Change, Skipped};
use crate::policy::{PolicyEngine, Stage};
use crate::service::ServiceError;
use crate::service::audit::Recorded;
use crate::service::challenge::{Comparison, TermsSummary};
use crate::service::evaluate::PolicyRef;
use crate::service::policies::PolicyRegistry;
use crate::store::AnyConnection;
use crate::store::audit::{self as audit_table, AuditRow, RecordFilter};
use crate::store::policies as policy_table;

/// Records read at a time: large enough to keep the workers busy between reads.
const PAGE: i64 = 500;

/// Every stored version of every stage, compiled, by name and number, with its stored sha256:
/// a run over many records looks its stages up here instead of in the database.
pub struct StageCache(HashMap<String, HashMap<u32, (String, Stage)>>);

impl StageCache {
    pub fn load(conn: &mut AnyConnection, registry: &PolicyRegistry) -> Result<Self, ServiceError> {
        let mut by_name = HashMap::new();
        for policy in policy_table::list(conn)? {
            let mut versions = HashMap::new();
            for v in policy_table::versions(conn, &policy.name)? {
                // A stored version that no longer compiles counts as missing.
                if let (Ok(number), Ok(stage)) = (u32::try_from(v.version), registry.stage(&v)) {
                    versions.insert(number, (v.sha256, stage));
                }
            }
            by_name.insert(policy.name, versions);
        }
        Ok(Self(by_name))
    }

    /// The recorded version, or the sha256 stored in its place (`None`: no such version), as
    /// [`Recorded::stages`] checks it.
    pub fn find(&self, p: &PolicyRef) -> Result<Stage, Option<String>> {
        match self.0.get(&p.name).and_then(|v| v.get(&p.version)) {
            Some((sha256, stage)) if *sha256 == p.sha256 => Ok(stage.clone()),
            found => Err(found.map(|(sha256, _)| sha256.clone())),
        }
    }
}

/// What every worker shares.
pub(super) struct Scope<'a> {
    pub engine: &'a PolicyEngine,
    pub cache: &'a StageCache,
    pub challenger: &'a Stage,
    /// Changes at or before this sequence are counted but not listed.
    pub changes_after: Option<i64>,
}

#[derive(Default)]
pub(super) struct Tally {
    pub comparison: Comparison,
    pub skipped: Skipped,
    pub changes: Vec<Change>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.comparison.merge(other.comparison);
        self.skipped.merge(&other.skipped);
        self.changes.extend(other.changes);
    }

    fn skip(&mut self, why: fn(&mut Skipped) -> &mut u64) {
        self.skipped.total += 1;
        *why(&mut self.skipped) += 1;
    }
}

/// Re-runs the most recent `limit` decisions matching `filter` up to `upto`, on every core.
pub(super) fn run(
    conn: &mut AnyConnection,
    scope: &Scope<'_>,
    filter: &RecordFilter,
    limit: u32,
    upto: i64,
) -> Result<Tally, ServiceError> {
    let workers = thread::available_parallelism().map_or(2, NonZero::get);
    let (send, receive) = mpsc::sync_channel::<Vec<AuditRow>>(workers);
    let receive = Mutex::new(receive);
    thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut tally = Tally::default();
                    loop {
                        let page = match receive.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => break,
                        };
                        let Ok(page) = page else { break };
                        for row in &page {
                            replay(scope, row, &mut tally);
                        }
                    }
                    tally
                })
            })
            .collect();
        let read = read(conn, filter, limit, upto, &send);
        drop(send);
        let mut total = Tally::default();
        for handle in handles {
            let tally = handle
                .join()
                .map_err(|_| ServiceError::Internal("a backtest worker panicked".into()))?;
            total.merge(tally);
        }
        read.map(|()| total)
    })
}

/// Sends pages of records, newest first, until `limit` are sent or the window is exhausted.
fn read(
    conn: &mut AnyConnection,
    filter: &RecordFilter,
    limit: u32,
    upto: i64,
    send: &mpsc::SyncSender<Vec<AuditRow>>,
) -> Result<(), ServiceError> {
    let mut left = i64::from(limit);
    let mut after = None;
    while left > 0 {
        let page = audit_table::list(conn, filter, after, Some(upto), true, left.min(PAGE))?;
        let Some(last) = page.last() else { break };
        after = Some(last.sequence);
        left -= i64::try_from(page.len()).unwrap_or(i64::MAX);
        if send.send(page).is_err() {
            break;
        }
    }
    Ok(())
}

/// Re-runs one record with the challenger and counts it.
fn replay(scope: &Scope<'_>, row: &AuditRow, tally: &mut Tally) {
    let Ok(rec) = Recorded::parse_inputs(row) else {
        return tally.skip(|s| &mut s.unreadable);
    };
    if !rec.policies.iter().any(|p| p.name == scope.challenger.name) {
        return tally.skip(|s| &mut s.stage_not_run);
    }
    let stages = match rec.stages_with(Some(scope.challenger), |p| Ok(scope.cache.find(p))) {
        Ok(Ok(stages)) => stages,
        _ => return tally.skip(|s| &mut s.version_missing),
    };
    let summaries = rec
        .rerun(scope.engine, &stages)
        .ok()
        .and_then(|(_, terms)| TermsSummary::of(&terms).ok())
        .zip(TermsSummary::of_answer(&rec.answer).ok());
    let Some((challenger, recorded)) = summaries else {
        return tally.skip(|s| &mut s.unreadable);
    };
    let listed = scope.changes_after.is_none_or(|after| row.sequence > after);
    if tally.comparison.add(&recorded, &challenger) && listed {
        tally.changes.push(Change {
            sequence: row.sequence,
            decision_id: rec.decision_id,
            client_id: row.client_id.clone(),
            recorded,
            challenger,
        });
    }
}
