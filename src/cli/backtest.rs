//! `encours policies backtest NAME VERSION`: the API's backtest from a shell, printed as the
//! outcome matrix, the totals and the first changed decisions.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::policy::PolicyEngine;
use crate::service::backtest::{self as service, Backtest, ChangesPage, Window};
use crate::service::challenge::TermsSummary;
use crate::service::policies::PolicyRegistry;
use crate::store::Store;

/// Changed decisions listed after the totals.
const LISTED: usize = 20;

pub async fn backtest(
    store: &Store,
    name: String,
    version: i32,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: u32,
) -> Result<(), String> {
    let registry = Arc::new(PolicyRegistry::new(PolicyEngine::default()));
    let window = Window {
        from,
        to,
        limit,
        upto: None,
    };
    let page = ChangesPage {
        after: None,
        limit: LISTED,
    };
    let report = service::backtest(store, registry, name, version, window, page)
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", render(&report));
    Ok(())
}

fn render(b: &Backtest) -> String {
    let s = &b.skipped;
    let mut out = format!(
        "{} v{} ({}) over decisions up to record {}, in {} ms\n\
         replayed {}, changed {}, skipped {} (stage not run {}, version missing {}, unreadable {})\n",
        b.policy,
        b.version,
        &b.sha256[..b.sha256.len().min(12)],
        b.upto,
        b.duration_ms,
        b.replayed,
        b.changed,
        s.total,
        s.stage_not_run,
        s.version_missing,
        s.unreadable,
    );
    let c = &b.comparison;
    let mut columns: Vec<&String> = c.outcomes.values().flat_map(|row| row.keys()).collect();
    columns.sort();
    columns.dedup();
    if !columns.is_empty() {
        out += &format!("\n{:<14}", "recorded \\ now");
        for col in &columns {
            out += &format!(" {col:>12}");
        }
        out.push('\n');
        for (from, row) in &c.outcomes {
            out += &format!("{from:<14}");
            for col in &columns {
                out += &format!(" {:>12}", row.get(*col).copied().unwrap_or(0));
            }
            out.push('\n');
        }
    }
    for (currency, t) in &c.amounts {
        out += &format!(
            "\n{currency}: approved {} -> {}, deposits {} -> {}\n",
            t.recorded_approved, t.challenger_approved, t.recorded_deposits, t.challenger_deposits
        );
    }
    out += &format!(
        "terms: {} shortened, {} lengthened, {} given by one side only\n",
        c.terms.shortened, c.terms.lengthened, c.terms.given_by_one_side
    );
    if !b.changes.is_empty() {
        out += &format!("\nchanged (first {}):\n", b.changes.len());
        for ch in &b.changes {
            out += &format!(
                "  #{} {} {}: {} -> {}\n",
                ch.sequence,
                ch.decision_id,
                ch.client_id.as_deref().unwrap_or("-"),
                terms(&ch.recorded),
                terms(&ch.challenger)
            );
        }
    }
    out
}

fn terms(t: &TermsSummary) -> String {
    let mut text = format!("{} {} {}", t.outcome, t.approved_amount, t.currency);
    if !t.deposit_percent.is_zero() {
        text += &format!(", deposit {} % ({})", t.deposit_percent, t.deposit_amount);
    }
    if let Some(days) = t.terms_days {
        text += &format!(", {days} days");
    }
    text
}
