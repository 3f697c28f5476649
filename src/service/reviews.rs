//! Limit reviews: the `client_event` pipeline (scoring, then `on_event`) run on a client's
//! state after its events are applied, or when time alone changed its risk. The new risk is
//! written back; a changed limit or status, or a referral, is an audit record.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::evaluate::PolicyRef;
use super::policies::{ActiveSet, PolicyRegistry};
use super::{ServiceError, shared};
use crate::audit::{self, AuditRef, Entry};
use crate::domain::events::rfc3339;
use crate::domain::ledger::Ledger;
use crate::domain::review::{DAYS_PAST_DUE_STEPS, next_review_on};
use crate::domain::{
    Client, ClientId, ClientStatus, ClientView, Money, Risk, RiskBand, RiskFactor,
};
use crate::policy::{self, Baseline, Outcome, PipelineResult, PolicyInput, Stage, Trigger};
use crate::store::ledgers::{self, Reviewed};
use crate::store::{AnyConnection, clients, live};

/// The audit kind of a limit review.
pub const KIND: &str = "client.limit_review";

/// What set the review off.
pub enum Cause<'a> {
    /// The client's events accepted in one batch, normalised, in order.
    Events(&'a [Value]),
    /// The scheduled pass: time alone changed something.
    Schedule,
}

/// A review that changed the limit or the status, or referred the client: its audit record.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewRef {
    pub client_id: String,
    #[serde(flatten)]
    pub audit: AuditRef,
    /// The standing limit after the review.
    pub credit_limit: String,
    pub status: ClientStatus,
    /// A credit manager must look at the client.
    pub referred: bool,
    /// The reason codes of the review, in order.
    pub reasons: Vec<String>,
}

/// Re-scores and reviews one client (whose row the caller holds locked) as of `now`.
pub fn review(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    active: &ActiveSet,
    id: &ClientId,
    cause: Cause<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<ReviewRef>, ServiceError> {
    let client = clients::find_at(conn, id, now)?.ok_or_else(|| ServiceError::NotFound {
        what: format!("client `{id}`"),
    })?;
    let due = ledgers::dues(conn, id.as_str())?.dates().collect();
    let alerts = live::recent_alerts(conn, &[id.as_str()], now)?
        .into_iter()
        .map(|(_, _, at)| at)
        .collect();
    let read = Read {
        client,
        open_due_dates: due,
        recent_alerts: alerts,
        ledger: None,
    };
    review_read(conn, registry, active, read, cause, actor, now)
}

/// A client as a review reads it: read once for many clients by a batch of events.
pub struct Read<'a> {
    pub client: Client,
    /// Due dates of its open invoices, and when its recent sales alerts occurred: the days
    /// time alone will change its risk.
    pub open_due_dates: Vec<NaiveDate>,
    pub recent_alerts: Vec<DateTime<Utc>>,
    /// Its projection, to write in the same statement as the review (a batch of events
    /// writes both at once); `None` when it is stored already.
    pub ledger: Option<&'a Ledger>,
}

/// [`review`] of a client already read.
pub fn review_read(
    conn: &mut AnyConnection,
    registry: &PolicyRegistry,
    active: &ActiveSet,
    read: Read<'_>,
    cause: Cause<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<ReviewRef>, ServiceError> {
    let stages = active.stages(Trigger::ClientEvent);
    let ran = run(registry, stages, &read.client, &cause, now)?;
    record(conn, stages, read, ran, &cause, actor, now)
}

/// [`run`] for many clients (a batch of events reviews hundreds) while the caller, who holds
/// the write transaction, does `meanwhile` (the batch writes its log): the pipelines read
/// nothing from the database, so a helper thread starts on them at once and the caller joins in
/// (see [`shared::map_while`]). The runs come back in order, for the caller to [`record`] in
/// order.
pub fn run_many_while<R>(
    registry: &PolicyRegistry,
    stages: &[Stage],
    reads: &[(Read<'_>, Cause<'_>)],
    now: DateTime<Utc>,
    meanwhile: impl FnOnce() -> R,
) -> (Vec<Result<Run, ServiceError>>, R) {
    // What only an audit record shows is dropped by the thread that ran it, not by the writer.
    let one = |(read, cause): &(Read<'_>, Cause<'_>)| {
        let mut ran = run(registry, stages, &read.client, cause, now)?;
        if !Standing::after(&read.client, &ran.result).recorded(&read.client) {
            ran.event = Value::Null;
            ran.view = Value::Null;
            ran.result.trace = Vec::new();
        }
        Ok(ran)
    };
    shared::map_while("review-helper", reads, one, meanwhile)
}

/// Writes a review [`run`] on `read` (whose client the caller holds locked since it was
/// read): the new risk, limit and status, and an audit record when the limit or the status
/// changed or the client was referred.
pub fn record(
    conn: &mut AnyConnection,
    stages: &[Stage],
    read: Read<'_>,
    ran: Run,
    cause: &Cause<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<ReviewRef>, ServiceError> {
    let client = &read.client;
    let id = &client.client_id;
    let Run {
        event,
        view,
        result,
    } = ran;

    let risk = risk_of(&result);
    let standing = Standing::after(client, &result);
    let Standing {
        limit,
        status,
        referred,
    } = standing;
    let next_review_on = next_review_on(
        now.date_naive(),
        read.open_due_dates.iter().copied(),
        client.state.insurance.as_ref().and_then(|i| i.valid_until),
        read.recent_alerts.iter().copied(),
    );
    let reviewed = Reviewed {
        risk: risk.as_ref(),
        credit_limit_minor: limit.minor(),
        status,
        next_review_on,
        at: now,
    };
    match read.ledger {
        Some(ledger) => ledgers::save_reviewed(conn, id.as_str(), ledger, &reviewed)?,
        None => ledgers::save_review(conn, id.as_str(), &reviewed)?,
    }
    if !standing.recorded(client) {
        return Ok(None);
    }
    let policies = PolicyRef::of_stages(stages);
    let reasons: Vec<String> = result.reasons.iter().map(|r| r.code.clone()).collect();
    let payload = json!({
        "client_id": id.as_str(),
        "cause": match cause { Cause::Events(_) => "events", Cause::Schedule => "schedule" },
        "before": {"credit_limit": client.credit_limit.to_string(), "status": client.status.as_str()},
        "after": {"credit_limit": limit.to_string(), "status": status.as_str()},
        "referred": referred,
        "outcome": result.outcome.as_str(),
        "score": result.score,
        "band": result.band.map(|b| b.as_str()),
        "reasons": result.reasons,
        "policies": policies,
        "input": {"event": event, "client": view},
        "trace": result.trace,
    });
    let audit = audit::append(
        conn,
        Entry {
            kind: KIND,
            subject: format!("client:{id}"),
            client_id: Some(id.to_string()),
            actor: actor.to_owned(),
            payload,
        },
    )?;
    Ok(Some(ReviewRef {
        client_id: id.to_string(),
        audit,
        credit_limit: limit.to_string(),
        status,
        referred,
        reasons,
    }))
}

/// One run of the `client_event` pipeline on a client: what the policies read, and the result.
pub struct Run {
    pub event: Value,
    pub view: Value,
    pub result: PipelineResult,
}

/// Runs `stages` on `client` as a review for `cause` would, as of `now`. Nothing is written:
/// impact runs drafts through it over the whole book.
pub fn run(
    registry: &PolicyRegistry,
    stages: &[Stage],
    client: &Client,
    cause: &Cause<'_>,
    now: DateTime<Utc>,
) -> Result<Run, ServiceError> {
    let view = serde_json::to_value(ClientView::new(client, now.date_naive()))
        .map(Arc::new)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let event = Arc::new(event_json(client, cause, now));
    let digits = client.currency.minor_digits();
    let baseline = Baseline::client_event(Some(client.credit_limit.to_decimal()), digits);
    let input = PolicyInput::client_event(Arc::clone(&event), Arc::clone(&view), baseline)
        .map_err(|e| ServiceError::Internal(format!("policy input: {e}")))?;
    let result = registry.engine().run(stages, &input);
    // The input's shares gone, the documents are taken back without a copy.
    drop(input);
    Ok(Run {
        event: Arc::unwrap_or_clone(event),
        view: Arc::unwrap_or_clone(view),
        result,
    })
}

/// The client's standing after a review's result.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Standing {
    pub limit: Money,
    pub status: ClientStatus,
    /// A credit manager must look.
    pub referred: bool,
}

impl Standing {
    /// Whether a review ending here is an audit record: the limit or the status changed, or the
    /// client was referred.
    fn recorded(&self, client: &Client) -> bool {
        self.limit != client.credit_limit || self.status != client.status || self.referred
    }

    pub(crate) fn after(client: &Client, result: &PipelineResult) -> Self {
        let new_limit = match result.new_credit_limit {
            Some(d) => Money::from_decimal(d, client.currency).ok(),
            None => Some(client.credit_limit),
        };
        let status = match result.client_status {
            Some(policy::ClientStatus::Blocked) => ClientStatus::Blocked,
            Some(policy::ClientStatus::Active) => ClientStatus::Active,
            None => client.status,
        };
        Self {
            limit: new_limit.unwrap_or(client.credit_limit),
            status,
            // A limit the currency cannot hold is not applied: a credit manager must look.
            referred: result.outcome == Outcome::Review || new_limit.is_none(),
        }
    }
}

/// The `event` the policies see. For a batch: its client's last accepted event, with
/// `batch` listing all of them in order (the default `on_event` reads every one). For the
/// scheduled pass: a `scheduled_review` event whose `reasons` say what time changed:
/// `INSURANCE_EXPIRED` (cover ended before today) and `DAYS_PAST_DUE_n` (the highest step,
/// 1, 31, 61 or 91, the oldest unpaid invoice has reached).
fn event_json(client: &Client, cause: &Cause<'_>, now: DateTime<Utc>) -> Value {
    match cause {
        Cause::Events(events) => {
            let mut last = events.last().cloned().unwrap_or_else(|| json!({}));
            if let Some(map) = last.as_object_mut() {
                map.insert("batch".into(), Value::Array(events.to_vec()));
            }
            last
        }
        Cause::Schedule => json!({
            "event_id": null,
            "client_id": client.client_id.as_str(),
            "type": "scheduled_review",
            "occurred_at": rfc3339(now),
            "reasons": schedule_reasons(client, now.date_naive()),
            "batch": [],
        }),
    }
}

fn schedule_reasons(client: &Client, today: chrono::NaiveDate) -> Vec<String> {
    let mut reasons = Vec::new();
    let cover_ended = client.state.insurance.as_ref().and_then(|i| i.valid_until);
    if cover_ended.is_some_and(|d| d < today) {
        reasons.push("INSURANCE_EXPIRED".to_owned());
    }
    let days = client.max_days_past_due(today);
    if let Some(step) = DAYS_PAST_DUE_STEPS.iter().rev().find(|s| days >= **s) {
        reasons.push(format!("DAYS_PAST_DUE_{step}"));
    }
    reasons
}

/// The risk a pipeline's `scoring` stage gave, if it ran.
pub(crate) fn risk_of(result: &PipelineResult) -> Option<Risk> {
    let (score, band) = (result.score?, result.band?);
    Some(Risk {
        score,
        band: RiskBand::parse(band.as_str()).unwrap_or(RiskBand::from_score(score)),
        factors: result
            .factors
            .iter()
            .map(|f| RiskFactor {
                code: f.code.clone(),
                points: f.points,
            })
            .collect(),
    })
}
